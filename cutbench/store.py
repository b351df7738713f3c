"""The result store: one JSON record per cell, keyed by a content hash, written atomically.

Layout of a store folder::

    records/<key>.json   config, status, error, metrics, timings, memory, provenance
    labels/<key>.npy     predicted labels of every evaluated point (so any metric can be recomputed)

A record appears only once it is complete (temporary file + ``os.replace``), so a study killed at
any moment leaves either a whole record or none, and a re-run skips exactly the finished cells.
Several processes may write to one store; readers never see half-written files.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from cutbench import CutbenchError
from cutbench.canonical import canonical_json, json_default
from cutbench.metrics import METRICS

STATUSES = ("ok", "failed", "timeout", "skipped")
STAGES = ("features", "affinity", "fit", "predict", "total")


def cell_key(config: dict) -> str:
    """Content hash of everything that determines a cell's result."""
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()[:20]


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ResultStore:
    """A folder of result records.

    Parameters
    ----------
    root : path
        The store folder; created if missing. An unwritable folder is an error at construction.
    """

    def __init__(self, root):
        self.root = Path(root)
        try:
            (self.root / "records").mkdir(parents=True, exist_ok=True)
            (self.root / "labels").mkdir(parents=True, exist_ok=True)
            probe = self.root / "records" / ".write-probe"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise CutbenchError(f"cannot write results to {self.root}: {exc.strerror}. "
                                "Choose another output folder with --out.") from exc

    def _record_path(self, key: str) -> Path:
        return self.root / "records" / f"{key}.json"

    def _labels_path(self, key: str) -> Path:
        return self.root / "labels" / f"{key}.npy"

    def write(self, record: dict, labels: np.ndarray | None = None) -> None:
        """Store one record (and its labels first, so a visible record always has its labels)."""
        if record.get("status") not in STATUSES:
            raise CutbenchError(f"record status must be one of {STATUSES}; got {record.get('status')!r}.")
        key = record["key"]
        if labels is not None:
            buf = io.BytesIO()
            np.save(buf, np.asarray(labels, dtype=np.int64))
            _atomic_write_bytes(self._labels_path(key), buf.getvalue())
        _atomic_write_bytes(self._record_path(key), json.dumps(record, indent=1, default=json_default).encode())

    def get(self, key: str) -> dict | None:
        """The stored record for ``key``, or None. A corrupt file counts as missing (and is re-run)."""
        try:
            return json.loads(self._record_path(key).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def labels(self, key: str) -> np.ndarray:
        return np.load(self._labels_path(key))

    def records(self) -> Iterator[dict]:
        """Every complete record (partial temporary files are never read)."""
        for path in sorted((self.root / "records").glob("*.json")):
            try:
                yield json.loads(path.read_text())
            except json.JSONDecodeError:
                continue

    def to_frame(self) -> pd.DataFrame:
        """One row per record, in the columns the reports consume."""
        rows = [flatten_record(r) for r in self.records()]
        return pd.DataFrame(rows)

    def export(self, stem: Path | None = None) -> list[Path]:
        """Write the flat table as ``<stem>.csv`` and ``<stem>.parquet`` (default: ``<root>/results``)."""
        stem = Path(stem) if stem else self.root / "results"
        frame = self.to_frame()
        csv, parquet = stem.with_suffix(".csv"), stem.with_suffix(".parquet")
        _atomic_write_bytes(csv, frame.to_csv(index=False).encode())
        buf = io.BytesIO()
        frame.to_parquet(buf, index=False)
        _atomic_write_bytes(parquet, buf.getvalue())
        return [csv, parquet]


def flatten_record(record: dict) -> dict:
    """A record as one flat row: config, metrics, stage seconds, ``features.<name>`` and ``param.<name>`` columns."""
    config = record["config"]
    row = {
        "study": record.get("study"),
        "key": record["key"],
        "dataset": config["dataset"]["name"],
        "features": config.get("features", {}).get("name"),
        "method": config["method"]["name"],
        "seed": config["seed"],
        "status": record["status"],
        "error": record.get("error"),
        "train_size": config["protocol"].get("train_size"),
        "fit_on": record.get("fit_on"),
        "device": config.get("device"),
        "nmi_average_method": config["protocol"].get("nmi_average_method"),
    }
    metrics = record.get("metrics") or {}
    for name in METRICS:
        row[name] = metrics.get(name, np.nan)
    timings = record.get("timings") or {}
    for stage in STAGES:
        row[f"{stage}_s"] = timings.get(stage, {}).get("seconds", np.nan)
    row["fit_cold_s"] = timings.get("fit", {}).get("cold_seconds", np.nan)
    row["fit_peak_rss_bytes"] = timings.get("fit", {}).get("peak_rss_bytes", np.nan)
    row["fit_peak_device_bytes"] = timings.get("fit", {}).get("peak_device_bytes", np.nan)
    for name, value in config.get("features", {}).items():
        if name != "name":
            row[f"features.{name}"] = value
    for name, value in config["method"].get("params", {}).items():
        row[f"param.{name}"] = value if np.isscalar(value) or value is None else canonical_json(value)
    provenance = record.get("provenance") or {}
    git = provenance.get("git") or {}
    row["git_commit"], row["git_dirty"] = git.get("commit"), git.get("dirty")
    row["timestamp"] = provenance.get("timestamp")
    return row
