"""The shared hyper-parameter checks in cutbench._validation."""

import math

import numpy as np
import pytest

from cutbench import CutbenchError
from cutbench._validation import check_hidden_dims, check_number


@pytest.mark.parametrize("value, kwargs", [
    (0, dict(minimum=0)),
    (0.5, dict(minimum=0, strict=True)),
    (3, dict(minimum=1, integer=True)),
    (np.int64(3), dict(minimum=1, integer=True)),
    (np.float32(2.5), dict(minimum=2.5)),
])
def test_check_number_accepts(value, kwargs):
    assert check_number("x", value, **kwargs) is None


@pytest.mark.parametrize("value, kwargs, message", [
    (0, dict(minimum=0, strict=True), "lr must be a finite number > 0; got 0."),
    (-1, dict(minimum=0), "lr must be a finite number >= 0; got -1."),
    (math.inf, dict(minimum=0), "lr must be a finite number >= 0; got inf."),
    (math.nan, dict(minimum=0), "lr must be a finite number >= 0; got nan."),
    (True, dict(minimum=0), "lr must be a finite number >= 0; got True."),
    (True, dict(minimum=1, integer=True), "lr must be an integer >= 1; got True."),
    (2.0, dict(minimum=1, integer=True), "lr must be an integer >= 1; got 2.0."),
    (0, dict(minimum=1, integer=True), "lr must be an integer >= 1; got 0."),
    ("1", dict(minimum=0), "lr must be a finite number >= 0; got '1'."),
])
def test_check_number_names_parameter_and_bound(value, kwargs, message):
    with pytest.raises(CutbenchError) as info:
        check_number("lr", value, **kwargs)
    assert str(info.value) == message


def test_check_number_appends_hint():
    with pytest.raises(CutbenchError, match=r"^tau must be a finite number >= 0.5; got 0.1\. Raise it\.$"):
        check_number("tau", 0.1, minimum=0.5, hint=" Raise it.")


@pytest.mark.parametrize("value", [(512, 512), [8], (np.int32(4), 2)])
def test_check_hidden_dims_accepts(value):
    check_hidden_dims(value)


@pytest.mark.parametrize("value", [(0,), (True,), (2.0,), 512, "512"])
def test_check_hidden_dims_refuses(value):
    with pytest.raises(CutbenchError, match=r"hidden_dims must be a tuple of positive integers, e\.g\. \(64,\)"):
        check_hidden_dims(value, example=(64,))
