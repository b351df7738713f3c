"""The result store: one verified JSON record per configuration and seed, written atomically.

Layout of a store folder::

    records/<key>.json   config, status, error, metrics, timings, memory, provenance, earlier outcomes
    labels/<key>.npy     predicted labels of every evaluated point (so any metric can be recomputed)
    claims/<key>.claim   the process computing that cell right now (see :meth:`ResultStore.claim`)

The key is a hash of everything that determines a result except the data's fingerprint, so a cell
that failed because its data was broken and succeeds once the data is fixed has one record: its
latest outcome, with the earlier ones kept in ``previous_outcomes``. The fingerprint is kept in the
record: a stored result of other data is not reused.

Files appear only once complete (temporary file + ``os.replace``), readable by the group as the
umask allows, so a study killed at any moment leaves either a whole record or none. Every record is
checked when read (its fields, and its labels file's length and hash); one that fails is reported
by name and treated as missing, so a re-run recomputes it.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import socket
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import psutil

from cutbench import CutbenchError
from cutbench.atomic import write_atomically
from cutbench.canonical import canonical_json, json_default
from cutbench.metrics import METRICS

STATUSES = ("ok", "failed", "timeout", "skipped")
STAGES = ("features", "affinity", "fit", "predict", "total")
PREVIOUS_OUTCOMES_KEPT = 20
"""Earlier outcomes of a cell kept in its record (the latest ones)."""

_REQUIRED = ("study", "key", "config", "status")
_REQUIRED_CONFIG = ("dataset", "method", "protocol", "seed")
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def cell_key(config: dict) -> str:
    """Content hash of the configuration and seed of a cell (the data's fingerprint excluded)."""
    dataset = {name: value for name, value in config.get("dataset", {}).items() if name != "fingerprint"}
    return hashlib.sha256(canonical_json({**config, "dataset": dataset}).encode()).hexdigest()[:20]


def configuration_key(config: dict) -> str:
    """Content hash of a cell's configuration alone: its key without the seed and the cutbench version,
    so that the seeds of one configuration, and runs of it by two versions, can be grouped and compared."""
    return cell_key({name: value for name, value in config.items() if name not in ("seed", "cutbench_version")})


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically; a full disk is a clear error."""
    try:
        write_atomically(path, lambda stream: stream.write(data))
    except OSError as exc:
        raise _write_error(path, exc) from exc


def _write_error(path: Path, exc: OSError) -> CutbenchError:
    if exc.errno in _NO_SPACE:
        return CutbenchError(f"no space left on the device to write {path.name} in {path.parent}: nothing stored "
                             "before was lost (every file is written whole or not at all). Free some space, or give "
                             "another output folder with --out, and run the study again to go on where it stopped.")
    return CutbenchError(f"cannot write {path}: {exc.strerror or exc}. Nothing stored before was lost; check the "
                         "folder's permissions or give another output folder with --out.")


@dataclass(frozen=True)
class Problem:
    """A stored file that could not be used, and why."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def _labels_digest(labels: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(labels, dtype="<i8").tobytes()).hexdigest()


class ResultStore:
    """A folder of result records.

    Parameters
    ----------
    root : path
        The store folder; created if missing. An unwritable folder is an error at construction.

    Attributes
    ----------
    problems : list of Problem
        Files found unusable by the reads so far (corrupt or incomplete records, truncated labels),
        each with its reason; such a record counts as missing.
    """

    def __init__(self, root):
        self.root = Path(root)
        self.problems: list[Problem] = []
        try:
            for folder in ("records", "labels", "claims"):
                (self.root / folder).mkdir(parents=True, exist_ok=True)
            # A probe of its own: several workers open one store at once.
            with tempfile.TemporaryFile(dir=self.root / "records", prefix=".write-probe-"):
                pass
        except OSError as exc:
            raise CutbenchError(f"cannot write results to {self.root}: {exc.strerror}. "
                                "Choose another output folder with --out.") from exc

    def _record_path(self, key: str) -> Path:
        return self.root / "records" / f"{key}.json"

    def _labels_path(self, key: str) -> Path:
        return self.root / "labels" / f"{key}.npy"

    # -- writing ---------------------------------------------------------------------------------
    def write(self, record: dict, labels: np.ndarray | None = None) -> None:
        """Store one record (and its labels first, so a visible record always has its labels).

        A record already stored under the same key (an earlier outcome of the same cell) is kept
        in the new record's ``previous_outcomes``.
        """
        if record.get("status") not in STATUSES:
            raise CutbenchError(f"record status must be one of {STATUSES}; got {record.get('status')!r}.")
        key = record["key"]
        record = dict(record)
        earlier = self._read(key, report=False)
        if earlier is not None:
            previous = [*earlier.get("previous_outcomes", []), _outcome(earlier)]
            record["previous_outcomes"] = previous[-PREVIOUS_OUTCOMES_KEPT:]
        if labels is not None:
            labels = np.asarray(labels, dtype=np.int64)
            buf = io.BytesIO()
            np.save(buf, labels)
            _atomic_write_bytes(self._labels_path(key), buf.getvalue())
            record["labels"] = {"n": int(labels.size), "sha256": _labels_digest(labels)}
        _atomic_write_bytes(self._record_path(key), json.dumps(record, indent=1, default=json_default).encode())

    # -- reading ---------------------------------------------------------------------------------
    def _read(self, key: str, *, report: bool = True, check_labels: bool = True) -> dict | None:
        path = self._record_path(key)
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        record, reason = self._checked(path, text, check_labels)
        if reason is not None:
            if report:
                self.problems.append(Problem(path, reason))
            return None
        return record

    def _checked(self, path: Path, text: str, check_labels: bool) -> tuple[dict | None, str | None]:
        """``(record, None)`` for a usable record, else ``(None, why not)``."""
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            return None, f"not valid JSON ({exc.msg} at character {exc.pos} of {len(text)}): truncated or corrupt"
        if not isinstance(record, dict):
            return None, "not a record (a JSON object)"
        missing = [name for name in _REQUIRED if name not in record]
        config = record.get("config")
        if not missing and isinstance(config, dict):
            missing = [f"config.{name}" for name in _REQUIRED_CONFIG if name not in config]
        elif not missing:
            missing = ["config (an object)"]
        if record.get("status") == "ok":
            missing += [name for name in ("metrics", "timings", "labels") if not isinstance(record.get(name), dict)]
        if missing:
            return None, f"incomplete record: missing {', '.join(missing)}"
        if record["status"] not in STATUSES:
            return None, f"unknown status {record['status']!r}"
        if record["key"] != path.stem:
            return None, f"holds key {record['key']!r}, not its file name's"
        if record["status"] == "ok":
            reason = self._labels_problem(record, full=check_labels)
            if reason is not None:
                return None, reason
        return record, None

    def _labels_problem(self, record: dict, *, full: bool) -> str | None:
        """Why the labels file of an ok record is unusable, or None. ``full`` reads and hashes it;
        otherwise only its size is compared with the length the record gives."""
        path = self._labels_path(record["key"])
        expected = record["labels"]
        if not path.is_file():
            return f"its labels file {path.name} is missing"
        if not full:  # the header's shape, and a file size that holds it: no read of the labels themselves
            try:
                with open(path, "rb") as fh:
                    major, _ = np.lib.format.read_magic(fh)
                    read_header = (np.lib.format.read_array_header_1_0 if major == 1
                                   else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = read_header(fh)
                    data_start = fh.tell()
            except (ValueError, OSError, EOFError) as exc:
                return f"its labels file {path.name} is unreadable ({exc}): truncated or corrupt"
            size = path.stat().st_size
            if shape != (expected["n"],) or size != data_start + dtype.itemsize * expected["n"]:
                return (f"its labels file {path.name} does not match the record: {size} bytes for shape {shape}, "
                        f"expected {expected['n']} labels")
            return None
        try:
            labels = np.load(path)
        except (ValueError, OSError, EOFError) as exc:
            return f"its labels file {path.name} is unreadable ({exc}): truncated or corrupt"
        if labels.size != expected["n"] or _labels_digest(labels) != expected["sha256"]:
            return f"its labels file {path.name} does not match the record ({labels.size} labels, expected {expected['n']})"
        return None

    def get(self, key: str) -> dict | None:
        """The stored record for ``key``, or None; an unusable record counts as missing (and is re-run),
        and is added to :attr:`problems`."""
        return self._read(key)

    def labels(self, key: str) -> np.ndarray:
        """The labels of an ok record, checked against the length and hash the record gives."""
        record = self._read(key, report=False, check_labels=False)
        if record is None or record["status"] != "ok":
            raise CutbenchError(f"no usable ok record {key!r} in {self.root}; run the study to (re)compute it.")
        reason = self._labels_problem(record, full=True)
        if reason is not None:
            raise CutbenchError(f"record {key}: {reason}. Run the study again to recompute it.")
        return np.load(self._labels_path(key))

    def records(self) -> Iterator[dict]:
        """Every usable record (temporary files are never read); unusable ones go to :attr:`problems`.

        Labels files are checked by size here (a full hash check is :meth:`labels`'s), so reading
        a large store stays cheap.
        """
        for path in sorted((self.root / "records").glob("*.json")):
            try:
                text = path.read_text()
            except FileNotFoundError:  # replaced between the listing and the read
                continue
            record, reason = self._checked(path, text, check_labels=False)
            if reason is not None:
                self.problems.append(Problem(path, reason))
            else:
                yield record

    def latest_by_configuration(self) -> dict[str, dict]:
        """The latest usable record of every configuration and seed, by :func:`cell_key` of its config.

        Usually one record per key; records written by versions whose keys included the data's
        fingerprint are found here under their configuration too.
        """
        latest: dict[str, dict] = {}
        for record in self.records():
            key = cell_key(record["config"])
            if key not in latest or _stamp(record) >= _stamp(latest[key]):
                latest[key] = record
        return latest

    def to_frame(self) -> pd.DataFrame:
        """One row per configuration and seed: its latest outcome, in the columns the reports consume.

        Records written by versions whose keys included the data's fingerprint can hold several
        outcomes of one configuration; only the latest is kept.
        """
        rows = [flatten_record(record) for record in self.records()]
        frame = pd.DataFrame(rows)
        if frame.empty:
            return frame
        stamps = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
        latest = frame.assign(_stamp=stamps).sort_values("_stamp", kind="stable", na_position="first")
        return frame.loc[sorted(latest.drop_duplicates("config_key", keep="last").index)].reset_index(drop=True)

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

    def problems_summary(self) -> str | None:
        """One line naming the unusable files found so far and why, or None when there were none."""
        if not self.problems:
            return None
        unique = list(dict.fromkeys(str(problem) for problem in self.problems))
        return f"skipped {len(unique)} unusable stored file(s), counted as missing: " + "; ".join(unique)

    # -- claims ----------------------------------------------------------------------------------
    @contextmanager
    def claim(self, key: str):
        """Claim cell ``key`` while computing it; yields True when this process holds the claim.

        A claim is a file created exclusively, naming the process and host; it is removed when the
        block ends. A claim left by a process that no longer runs on this host is taken over; a live
        one (or one from another host) is respected: the block gets False and should not compute.
        """
        path = self.root / "claims" / f"{key}.claim"
        mine = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                           "started": datetime.now(timezone.utc).isoformat()})
        held = self._try_claim(path, mine)
        try:
            yield held
        finally:
            if held:
                path.unlink(missing_ok=True)

    def _try_claim(self, path: Path, mine: str) -> bool:
        for _ in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            except FileExistsError:
                if not self._stale(path):
                    return False
                try:  # one taker wins the rename; the others then see a fresh claim
                    os.replace(path, path.with_name(f"{path.name}.taken-{os.getpid()}"))
                    path.with_name(f"{path.name}.taken-{os.getpid()}").unlink()
                except FileNotFoundError:
                    pass
                continue
            except OSError as exc:
                raise _write_error(path, exc) from exc
            with os.fdopen(fd, "w") as fh:
                fh.write(mine)
            return True
        return False

    @staticmethod
    def _stale(path: Path) -> bool:
        try:
            holder = json.loads(path.read_text())
        except FileNotFoundError:
            return True
        except json.JSONDecodeError:
            return False  # being written right now
        if holder.get("host") != socket.gethostname():
            return False
        return not psutil.pid_exists(holder.get("pid", -1))


def _stamp(record: dict) -> str:
    return (record.get("provenance") or {}).get("timestamp") or ""


def _outcome(record: dict) -> dict:
    """The part of an earlier record kept in ``previous_outcomes``."""
    config = record.get("config") or {}
    return {"status": record.get("status"), "error": record.get("error"), "metrics": record.get("metrics"),
            "fingerprint": (config.get("dataset") or {}).get("fingerprint"),
            "timestamp": (record.get("provenance") or {}).get("timestamp")}


def flatten_record(record: dict) -> dict:
    """A record as one flat row: config, metrics, stage seconds, ``features.<name>`` and ``param.<name>`` columns."""
    config = record["config"]
    row = {
        "study": record.get("study"),
        "key": record["key"],
        "config_key": cell_key(config),
        "group_key": configuration_key(config),
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
        "fingerprint": config["dataset"].get("fingerprint"),
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
    for name, value in config["dataset"].get("params", {}).items():
        row[f"dataset.{name}"] = value if np.isscalar(value) or value is None else canonical_json(value)
    for name, value in config.get("features", {}).items():
        if name != "name":
            row[f"features.{name}"] = value
    for name, value in config["method"].get("params", {}).items():
        row[f"param.{name}"] = value if np.isscalar(value) or value is None else canonical_json(value)
    knn = record.get("knn") or {}
    row["knn_backend"], row["knn_recall"] = knn.get("backend"), knn.get("recall", np.nan)
    provenance = record.get("provenance") or {}
    load = record.get("load") or {}
    row["threads"] = (provenance.get("threads") or {}).get("torch_threads")
    row["load_start"], row["load_end"], row["cores"] = load.get("start"), load.get("end"), load.get("cores")
    git = provenance.get("git") or {}
    row["git_commit"], row["git_dirty"] = git.get("commit"), git.get("dirty")
    row["cpu"] = provenance.get("cpu")  # network results on CPU depend on the kernels this CPU picks
    row["timestamp"] = provenance.get("timestamp")
    return row
