"""Feature pipelines in studies: the ``features`` key, its axes and errors, and the runner's features stage."""

import numpy as np
import pytest

from cutbench import CutbenchError
from cutbench.datasets import compute_features, load_dataset, resolve_features
from cutbench.identity import cell_config
from cutbench.runner import DatasetCache, run_cell
from cutbench.study import apply_override, expand_study, select_cells


def study(features=None, **extra):
    raw = {"name": "f", "datasets": [{"name": "blobs", "params": {"n": 120, "n_clusters": 3, "d": 6}}],
           "methods": [{"name": "kmeans"}], "seeds": [0], "device": "cpu", "timing": {"warmup": 0, "repeats": 1},
           **extra}
    if features is not None:
        raw["features"] = features
    return expand_study(raw)


def test_default_features_are_plain_raw_and_keep_their_key():
    (cell,) = study().cells
    assert cell.features == {"name": "raw", "l2_normalize": False}
    assert cell_config(cell, "fp", "cpu")["features"] == {"name": "raw"}  # the key earlier versions stored
    assert "raw" not in cell.label()


def test_features_presets_params_and_axes():
    cells = study([{"name": "raw", "l2_normalize": True}, {"name": "pca", "n_components": [2, 3]}]).cells
    assert [cell.features for cell in cells] == [
        {"name": "raw", "l2_normalize": True},
        {"name": "pca", "n_components": 2, "center": True, "l2_normalize": False},
        {"name": "pca", "n_components": 3, "center": True, "l2_normalize": False}]
    assert cell_config(cells[1], "fp", "cpu")["features"] == {"name": "pca", "n_components": 2}
    assert "pca, n_components=3" in cells[2].label()
    assert [cell.features["n_components"] for cell in select_cells(cells, ["features.n_components=3"])] == [3]
    raw = {"features": "raw"}
    apply_override(raw, "features=raw,scatnet")
    assert raw["features"] == ["raw", "scatnet"]


@pytest.mark.parametrize("features, match", [
    ("hog", r"<study>: unknown features 'hog'; accepted: raw, pca, scatnet, ae"),
    ({"name": "scatnet", "n_component": 100}, r"features 'scatnet' got unknown parameter\(s\) 'n_component'"),
    ({"name": "pca", "center": "no"}, "parameter 'center' must be True or False"),
])
def test_bad_features_are_explained(features, match):
    with pytest.raises(CutbenchError, match=match):
        study(features)


def test_runner_computes_features_and_records_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CUTBENCH_DATA", str(tmp_path))
    (cell,) = study({"name": "pca", "n_components": 2, "l2_normalize": True}).cells
    record, labels = run_cell(cell, DatasetCache(), "f")
    assert record["status"] == "ok", record.get("traceback")
    assert record["features"]["cache"] == ["miss", "off"] and record["features"]["cache_hit"] is False
    assert record["features"]["d"] == 2 and record["config"]["features"] == {"name": "pca", "n_components": 2,
                                                                             "l2_normalize": True}
    again, labels_again = run_cell(cell, DatasetCache(), "f")
    assert again["features"]["cache"] == ["hit", "off"] and again["features"]["cache_hit"] is True
    np.testing.assert_array_equal(labels, labels_again)
    expected = compute_features(load_dataset("blobs", n=120, n_clusters=3, d=6),
                                resolve_features(cell.features, "blobs"), cache=False)
    assert again["features"]["fingerprint"] == expected.meta["fingerprint"]
    (plain,) = study().cells
    assert run_cell(plain, DatasetCache(), "f")[0]["features"]["cache_hit"] is None  # nothing to cache


def test_a_features_step_that_cannot_apply_fails_the_cell_with_its_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("CUTBENCH_DATA", str(tmp_path))
    (cell,) = study("scatnet").cells
    record, labels = run_cell(cell, DatasetCache(), "f")
    assert record["status"] == "failed" and labels is None
    assert "needs greyscale images" in record["error"]
