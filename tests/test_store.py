"""The result store: stable keys, atomic records, labels, export, unwritable folders."""

import json

import numpy as np
import pandas as pd
import pytest

from cutbench import CutbenchError
from cutbench.canonical import canonical_json
from cutbench.identity import cell_key
from cutbench.store import ResultStore, flatten_record


def make_record(name="k1", status="ok", acc=0.9, seed=None):
    """A record of its own configuration, its key computed from it: the seed follows ``name`` unless given."""
    config = {"dataset": {"name": "blobs", "params": {"n": 10}, "fingerprint": "f"},
              "features": {"name": "raw"}, "method": {"name": "kmeans", "params": {"n_init": 3}},
              "protocol": {"train_size": None, "nmi_average_method": "arithmetic"},
              "seed": sum(map(ord, name)) if seed is None else seed, "device": "cpu"}
    rec = {"key": cell_key(config), "study": "s", "config": config, "status": status, "error": None}
    if status == "ok":
        rec["metrics"] = {"acc": acc, "nmi": 0.8, "ari": 0.7, "nca": 0.6}
        rec["timings"] = {"fit": {"seconds": 1.5, "cold_seconds": 2.0}, "total": {"seconds": 1.7}}
    else:
        rec["error"] = "RuntimeError: boom"
    return rec


def test_key_is_stable_and_changes_with_any_input():
    config = make_record()["config"]
    reordered = json.loads(json.dumps(config, sort_keys=False))
    assert cell_key(config) == cell_key(dict(reversed(list(reordered.items()))))
    changed = json.loads(json.dumps(config))
    changed["method"]["params"]["n_init"] = 4
    assert cell_key(changed) != cell_key(config)
    changed = json.loads(json.dumps(config))
    changed["seed"] = 1
    assert cell_key(changed) != cell_key(config)
    assert canonical_json({"b": 1, "a": np.int64(2)}) == '{"a":2,"b":1}'


def test_write_get_labels_roundtrip(tmp_path):
    store = ResultStore(tmp_path)
    record = make_record()
    store.write(record, labels=np.array([0, 1, 1]))
    assert store.get(record["key"])["metrics"]["acc"] == 0.9
    np.testing.assert_array_equal(store.labels(record["key"]), [0, 1, 1])
    assert store.get("missing") is None
    # no temporary files are left behind
    assert not [p for p in (tmp_path / "records").iterdir() if p.name.startswith(".")]


def test_corrupt_or_partial_record_is_treated_as_missing(tmp_path):
    store = ResultStore(tmp_path)
    (tmp_path / "records" / "bad.json").write_text('{"key": "bad", "sta')
    (tmp_path / "records" / ".k2.json.123.part").write_text("{}")
    assert store.get("bad") is None
    assert list(store.records()) == []


def test_failed_record_has_nan_metrics_not_zero(tmp_path):
    store = ResultStore(tmp_path)
    a, b = make_record("a", acc=0.5), make_record("b", status="failed")
    store.write(a, labels=np.zeros(10))
    store.write(b)
    frame = store.to_frame().set_index("key")
    assert frame.loc[b["key"], "status"] == "failed"
    assert np.isnan(frame.loc[b["key"], "acc"]) and np.isnan(frame.loc[b["key"], "fit_s"])
    assert frame.loc[b["key"], "error"] == "RuntimeError: boom"
    assert frame.loc[a["key"], "param.n_init"] == 3 and frame.loc[a["key"], "fit_cold_s"] == 2.0


def test_export_csv_and_parquet_agree(tmp_path):
    store = ResultStore(tmp_path)
    store.write(make_record("a"), labels=np.zeros(10))
    store.write(make_record("b", status="failed"))
    csv, parquet = store.export()
    a, b = pd.read_csv(csv), pd.read_parquet(parquet)
    assert len(a) == len(b) == 2
    assert list(a.columns) == list(b.columns)


def test_invalid_status_rejected(tmp_path):
    with pytest.raises(CutbenchError, match=r"does not match the record schema: status: 'done' is not one of \['ok'"):
        ResultStore(tmp_path).write(make_record(status="done"))


def test_unwritable_folder_path_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(CutbenchError, match="--out"):
        ResultStore(tmp_path / "file" / "out")


def test_flatten_keeps_non_scalar_params_as_json():
    rec = make_record()
    rec["config"]["method"]["params"]["affinity"] = {"sigma": "median", "n_neighbors": 10}
    row = flatten_record(rec)
    assert json.loads(row["param.affinity"]) == {"n_neighbors": 10, "sigma": "median"}
