"""Declared parameters (cutbench.params): one test per constraint type, canonical values, and the
estimators' validation before fit."""

import math

import numpy as np
import pytest
import torch

from cutbench import CutbenchError
from cutbench.methods import CNC, NeuNcut, SpectralNet
from cutbench.params import (Boolean, Device, Interval, NoneValue, Options, RandomState, Satisfies, Widths,
                             canonical_params, validate_params)


def refusal(constraints, value) -> str:
    with pytest.raises(CutbenchError) as info:
        validate_params("Owner", {"p": constraints}, {"p": value})
    return str(info.value)


@pytest.mark.parametrize("constraint, accepted, refused, described", [
    (Interval(int, 1), [1, 7, np.int64(3)], [0, 2.0, True, "1", None], "an integer >= 1"),
    (Interval(float, 0), [0, 0.5, np.float32(2.5), 3], [-1e-9, math.nan, math.inf, True, "1"], "a number >= 0"),
    (Interval(float, 0, None, closed="neither"), [1e-12], [0, -1], "a number > 0"),
    (Interval(float, 0, 1, closed="neither"), [0.5], [0, 1, 1.5], "a number in (0, 1)"),
    (Interval(float, 0, 1, closed="left"), [0, 0.99], [1], "a number in [0, 1)"),
    (Interval(int, None, 3), [-5, 3], [4], "an integer <= 3"),
])
def test_interval_accepts_its_range_and_names_it(constraint, accepted, refused, described):
    for value in accepted:
        validate_params("Owner", {"p": [constraint]}, {"p": value})
    for value in refused:
        assert refusal([constraint], value) == f"Owner: p must be {described}; got {value!r}."


def test_options_boolean_and_none():
    assert refusal([Options("qr", "cholesky")], "svd") == "Owner: p must be one of 'qr', 'cholesky'; got 'svd'."
    assert refusal([Boolean()], 1) == "Owner: p must be True or False; got 1."
    validate_params("Owner", {"p": [Boolean()]}, {"p": np.bool_(True)})
    # Alternatives are listed together, each with what it means.
    message = refusal([Interval(int, 1), NoneValue("one pass per epoch")], 0)
    assert message == "Owner: p must be an integer >= 1 or None (one pass per epoch); got 0."


def test_widths_random_state_and_device():
    assert "a tuple of positive integers, e.g. (64,)" in refusal([Widths((64,))], (8, 0))
    for bad in [(), (True,), (2.5,), 512, "512"]:
        refusal([Widths()], bad)
    validate_params("Owner", {"p": [Widths()]}, {"p": [np.int32(4), 2]})
    for good in [None, 0, 2**32 - 1, np.random.default_rng(0)]:
        validate_params("Owner", {"p": [RandomState()]}, {"p": good})
    for bad in [-1, 2**32, 1.5, "0"]:
        refusal([RandomState()], bad)
    for good in ["auto", "cpu", "cuda", "cuda:1", torch.device("cpu")]:
        validate_params("Owner", {"p": [Device()]}, {"p": good})
    assert refusal([Device()], "gpu") == "Owner: p must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got 'gpu'."


def test_satisfies_keeps_the_detailed_reason():
    def even(value):
        if value % 2:
            raise CutbenchError(f"{value} is odd; use an even number")
        return value // 2

    assert refusal([Satisfies(even, "an even number")], 3) == "Owner: p: 3 is odd; use an even number"
    assert canonical_params("Owner", {"p": [Satisfies(even, "an even number")]}, {"p": 4}) == {"p": 2}


def test_canonical_values_do_not_depend_on_the_spelling():
    constraints = {"epochs": [Interval(int, 1)], "gamma": [Interval(float, 0)], "widths": [Widths()],
                   "steps": [Interval(int, 1), NoneValue()], "name": [Options("a")]}
    one = canonical_params("M", constraints, {"epochs": 80.0, "gamma": 80, "widths": [64, 64.0], "steps": None,
                                              "name": "a"})
    two = canonical_params("M", constraints, {"epochs": np.int64(80), "gamma": 80.0, "widths": (64, 64),
                                              "steps": None, "name": "a"})
    assert one == two == {"epochs": 80, "gamma": 80.0, "widths": (64, 64), "steps": None, "name": "a"}
    assert type(one["epochs"]) is int and type(one["gamma"]) is float
    with pytest.raises(CutbenchError, match=r"M: epochs must be an integer >= 1; got 80.5\."):
        canonical_params("M", constraints, {"epochs": 80.5})
    assert canonical_params("M", constraints, {"unknown": [1]}) == {"unknown": [1]}  # undeclared: untouched


@pytest.mark.parametrize("estimator, message", [
    (NeuNcut(epochs=0), r"NeuNcut: epochs must be an integer >= 1; got 0\."),
    (NeuNcut(gamma=-1), r"NeuNcut: gamma must be a number >= 0; got -1\."),
    (NeuNcut(orth_norm="fro"), r"NeuNcut: orth_norm must be one of 'fro_over_k', 'fro_sq'; got 'fro'\."),
    (NeuNcut(detach_volume="yes"), r"NeuNcut: detach_volume must be True or False; got 'yes'\."),
    (NeuNcut(hidden_dims=(8, 0)), r"NeuNcut: hidden_dims must be a tuple of positive integers"),
    (NeuNcut(affinity="nope"), r"NeuNcut: affinity: unknown affinity 'nope'; accepted names: 'knn'"),
    (SpectralNet(steps_per_epoch=0), r"steps_per_epoch must be an integer >= 1 or None \(one pass"),
    (CNC(lr_drop=1.0), r"CNC: lr_drop must be a number in \(0, 1\); got 1\.0\."),
    (CNC(tau_start=0.4, tau_min=0.5), r"CNC: tau_start must be a number >= tau_min = 0\.5; got 0\.4"),
    (NeuNcut(random_state=-1), r"NeuNcut: random_state must be None, an integer in \[0, 2\*\*32\)"),
    (NeuNcut(device="gpu"), r"NeuNcut: device must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got 'gpu'\."),
])
def test_estimators_validate_their_declared_parameters_before_fit(estimator, message):
    X = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(CutbenchError, match=message):
        estimator.fit(X)
    assert not hasattr(estimator, "n_features_in_")  # refused before looking at the data
