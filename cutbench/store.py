"""The result store: one verified JSON record per configuration and seed, written atomically.

Layout of a store folder::

    records/<key>.json   config, status, error, metrics, timings, memory, provenance, earlier outcomes
    labels/<key>.npy     predicted labels of every evaluated point (so any metric can be recomputed)
    claims/<key>.claim   the process computing that cell right now (see :meth:`ResultStore.claim`)

The key is a hash of everything that determines a result except the data's fingerprint, so a cell
that failed because its data was broken and succeeds once the data is fixed has one record: its
latest outcome, with the earlier ones kept in ``previous_outcomes``. The fingerprint is kept in the
record: a stored result of other data is not reused.

Files appear only once complete (temporary file + ``os.replace``; a claim by an exclusive link),
readable by the group as the umask allows, so a study killed at any moment leaves either a whole
record or none. Every record is checked when written and when read against the record schema
(:mod:`cutbench.records`), its key against its configuration, and an ok record's labels file against
its length and sha256 (cached by the file's size and modification time in ``labels/.verified.json``);
one that fails is reported by name and treated as missing, so a re-run recomputes it.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import socket
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import psutil

from cutbench import CutbenchError
from cutbench.atomic import probe_writable, write_atomically
from cutbench.canonical import canonical_json, json_default
from cutbench.identity import cell_key, configuration_key
from cutbench.metrics import METRICS, note_recorded_metrics
from cutbench.records import SCHEMA, record_problem

STATUSES = tuple(SCHEMA["properties"]["status"]["enum"])  # ("ok", "failed", "timeout", "skipped")
STAGES = ("features", "affinity", "fit", "predict", "total")
PREVIOUS_OUTCOMES_KEPT = 20
"""Earlier outcomes of a cell kept in its record (the latest ones)."""

CLAIM_HEARTBEAT_SECONDS = 30.0
"""How often the holder of a claim refreshes its file's modification time."""
CLAIM_EXPIRES_SECONDS = 600.0
"""A claim not refreshed for this long is stale whoever holds it (a holder on another host, which cannot be
asked whether it still runs, or one stopped without removing its claim)."""

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_VERIFIED = ".verified.json"  # labels/.verified.json: the labels files hashed already, by size and mtime


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
        self._verified: dict | None = None
        self._verified_changed = False
        try:
            for folder in ("labels", "claims"):
                (self.root / folder).mkdir(parents=True, exist_ok=True)
            probe_writable(self.root / "records")  # a probe of its own: several workers open one store at once
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

        The record is checked against the schema (:mod:`cutbench.records`) before anything is written.
        A record already stored under the same key (an earlier outcome of the same cell) is kept in
        the new record's ``previous_outcomes``.
        """
        key = record["key"]
        record = dict(record)
        if labels is not None:
            labels = np.asarray(labels, dtype=np.int64)
            record["labels"] = {"n": int(labels.size), "sha256": _labels_digest(labels)}
        reason = record_problem(record, key)
        if reason is not None:
            raise CutbenchError(f"refusing to store record {key}: it {reason}.")
        earlier = self._read(key, report=False)
        if earlier is not None:
            previous = [*earlier.get("previous_outcomes", []), _outcome(earlier)]
            record["previous_outcomes"] = previous[-PREVIOUS_OUTCOMES_KEPT:]
        if labels is not None:
            buf = io.BytesIO()
            np.save(buf, labels)
            _atomic_write_bytes(self._labels_path(key), buf.getvalue())
        _atomic_write_bytes(self._record_path(key), json.dumps(record, indent=1, default=json_default).encode())

    # -- reading ---------------------------------------------------------------------------------
    def _read(self, key: str, *, report: bool = True) -> dict | None:
        record, reason = self._load(key)
        if reason is not None and report:
            self.problems.append(Problem(self._record_path(key), reason))
        return record

    def _load(self, key: str) -> tuple[dict | None, str | None]:
        """``(record, None)``, ``(None, why it is unusable)``, or ``(None, None)`` when none is stored."""
        path = self._record_path(key)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None, None
        except (UnicodeDecodeError, OSError) as exc:
            text = exc
        return self._checked(path, text)

    def _checked(self, path: Path, text: str | Exception) -> tuple[dict | None, str | None]:
        """``(record, None)`` for a usable record, else ``(None, why not)``: the record schema, its key,
        and for an ok record its labels file's length and sha256."""
        if isinstance(text, Exception):
            return None, f"unreadable ({text})"
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            return None, f"not valid JSON ({exc.msg} at character {exc.pos} of {len(text)}): truncated or corrupt"
        reason = record_problem(record, path.stem)
        if reason is None and record["status"] == "ok":
            reason = self._labels_problem(record)
        if reason is None:
            note_recorded_metrics(record["config"].get("metrics"))
        return (None, reason) if reason is not None else (record, None)

    def _verified_labels(self) -> dict:
        """Labels files already hashed, ``key -> [size, mtime_ns, sha256]`` (persisted in the store)."""
        if self._verified is None:
            try:
                self._verified = json.loads((self.root / "labels" / _VERIFIED).read_text())
                if not isinstance(self._verified, dict):
                    self._verified = {}
            except (OSError, ValueError):  # none yet, or damaged: everything is hashed again
                self._verified = {}
        return self._verified

    def _save_verified_labels(self) -> None:
        if self._verified_changed:
            try:
                _atomic_write_bytes(self.root / "labels" / _VERIFIED, json.dumps(self._verified).encode())
                self._verified_changed = False
            except CutbenchError:
                pass  # only a cache: the next read hashes again

    def _labels_problem(self, record: dict) -> str | None:
        """Why the labels file of an ok record is unusable, or None: its length and sha256 against the
        record's. A file hashed before, unchanged since (same size and modification time), is not
        read again."""
        key = record["key"]
        path = self._labels_path(key)
        expected = record["labels"]
        try:
            stat = path.stat()
        except FileNotFoundError:
            return f"its labels file {path.name} is missing"
        stamp = [stat.st_size, stat.st_mtime_ns, expected["sha256"]]
        if self._verified_labels().get(key) == stamp:
            return None
        try:
            labels = np.load(path)
        except (ValueError, OSError, EOFError) as exc:
            return f"its labels file {path.name} is unreadable ({exc}): truncated or corrupt"
        if labels.size != expected["n"]:
            return f"its labels file {path.name} holds {labels.size} labels, the record {expected['n']}"
        if _labels_digest(labels) != expected["sha256"]:
            return (f"its labels file {path.name} does not match the record's sha256: the labels were changed or "
                    "swapped after the run")
        self._verified[key] = stamp
        self._verified_changed = True
        return None

    def get(self, key: str) -> dict | None:
        """The stored record for ``key``, or None; an unusable record counts as missing (and is re-run),
        and is added to :attr:`problems`."""
        return self._read(key)

    def labels(self, key: str) -> np.ndarray:
        """The labels of an ok record, checked against the length and sha256 the record gives."""
        record, reason = self._load(key)
        if record is None or record["status"] != "ok":
            why = reason or ("no record" if record is None else f"its status is {record['status']}")
            raise CutbenchError(f"record {key} in {self.root}: {why}. Run the study again to (re)compute it.")
        return np.load(self._labels_path(key))

    def records(self) -> Iterator[dict]:
        """Every usable record (temporary files are never read); unusable ones go to :attr:`problems`.

        Every record is checked against the schema and its labels file against its sha256 (a file
        unchanged since its last check is not hashed again), so a table or comparison never uses a
        record whose labels were changed.
        """
        for path in sorted((self.root / "records").glob("*.json")):
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError:  # replaced between the listing and the read
                continue
            except (UnicodeDecodeError, OSError) as exc:
                text = exc
            record, reason = self._checked(path, text)
            if reason is not None:
                self.problems.append(Problem(path, reason))
            else:
                yield record
        self._save_verified_labels()

    # -- the plan: which cells the studies run into this folder asked for --------------------------
    def write_plan(self, study: str, configs: list[dict]) -> None:
        """Add the cells of ``study`` about to run (their configurations) to ``plan.json``, so a report
        can count the cells never stored (an interrupted study) and not only those stored."""
        plan = self.plan()
        for config in configs:
            plan[cell_key(config)] = {"study": study, "config": config}
        _atomic_write_bytes(self.root / "plan.json",
                            json.dumps(plan, indent=1, sort_keys=True, default=json_default).encode())

    def plan(self) -> dict[str, dict]:
        """The planned cells, ``key -> {"study", "config"}`` (empty for folders written before plans were
        kept); a damaged plan is added to :attr:`problems` and counts as empty."""
        path = self.root / "plan.json"
        try:
            plan = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            self.problems.append(Problem(path, f"unreadable plan ({exc}); the cells never run cannot be counted"))
            return {}
        if not isinstance(plan, dict) or not all(isinstance(v, dict) and "config" in v for v in plan.values()):
            self.problems.append(Problem(path, "not a plan (an object of key -> {study, config})"))
            return {}
        return plan

    def coverage(self) -> dict:
        """How much of the plan is stored: ``planned``, ``stored`` (usable records of planned cells),
        ``by_status`` (their counts), ``missing`` (keys of planned cells with no usable record) and
        ``unplanned`` (usable records outside the plan, e.g. of folders written before plans were kept)."""
        plan = self.plan()
        latest = self.latest_by_configuration()
        stored = [latest[key] for key in plan if key in latest]
        by_status: dict[str, int] = {}
        for record in stored:
            by_status[record["status"]] = by_status.get(record["status"], 0) + 1
        return {"planned": len(plan), "stored": len(stored), "by_status": by_status,
                "missing": sorted(key for key in plan if key not in latest),
                "unplanned": sum(key not in plan for key in latest)}

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

        A claim is a file that appears whole (written aside, then linked into place exclusively),
        naming the process (pid and start time, so a reused pid is recognised), the host and when it
        was claimed; the holder refreshes its modification time every
        :data:`CLAIM_HEARTBEAT_SECONDS` and removes it when the block ends. A live claim is respected:
        the block gets False and should not compute. A claim that is unreadable, whose process no longer
        runs on this host (or whose pid now names another process), or that has not been refreshed for
        :data:`CLAIM_EXPIRES_SECONDS` is taken over, with a message on stderr.

        Raises
        ------
        CutbenchError
            The claim cannot be written (a full disk: the same message as for a record); nothing is left.
        """
        path = self.root / "claims" / f"{key}.claim"
        held = self._try_claim(path)
        stop = threading.Event()
        if held:
            threading.Thread(target=_heartbeat, args=(path, stop), daemon=True, name=f"claim-{key}").start()
        try:
            yield held
        finally:
            if held:
                stop.set()
                path.unlink(missing_ok=True)

    def claim_holder(self, key: str) -> str | None:
        """Who holds the claim on cell ``key``, in words (None when nobody does)."""
        path = self.root / "claims" / f"{key}.claim"
        try:
            holder, age = json.loads(path.read_text()), time.time() - path.stat().st_mtime
        except (OSError, ValueError):
            return None
        if not isinstance(holder, dict):
            return None
        return (f"process {holder.get('pid')} on {holder.get('host')} (claimed {holder.get('claimed', '?')}, "
                f"alive {age:.0f} s ago)")

    def _try_claim(self, path: Path) -> bool:
        mine = json.dumps(_this_process())
        for _ in range(3):
            if _create_whole(path, mine):
                return True
            reason = _stale_reason(path)
            if reason is None:
                return False
            if reason:
                print(f"cutbench: taking over the claim on cell {path.stem}: {reason}", file=sys.stderr)
            aside = path.with_name(f"{path.name}.taken-{os.getpid()}-{threading.get_ident()}")
            try:  # one taker wins the rename; the others then see its fresh claim
                os.replace(path, aside)
                aside.unlink()
            except FileNotFoundError:
                pass
        return False


def _this_process() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "process_started": psutil.Process().create_time(),
            "claimed": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def _create_whole(path: Path, text: str) -> bool:
    """Create ``path`` holding ``text`` if it does not exist, never visible empty or partly written;
    False when it exists. A full disk is a :func:`_write_error` and leaves nothing behind."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        try:
            os.link(temporary, path)  # atomic and exclusive: fails if the claim exists
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            try:  # a file system without hard links: an exclusive create (written straight after)
                with open(path, "x") as fh:
                    fh.write(text)
            except FileExistsError:
                return False
        return True
    except OSError as exc:
        raise _write_error(path, exc) from exc
    finally:
        Path(temporary).unlink(missing_ok=True)


def _stale_reason(path: Path) -> str | None:
    """Why the claim at ``path`` may be taken over ("" when it is gone already), or None when its holder
    may still be computing."""
    try:
        text, age = path.read_text(), time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return ""
    try:
        holder = json.loads(text)
        pid, host = holder["pid"], holder["host"]
    except (ValueError, TypeError, KeyError):
        return f"the claim file is empty or corrupt ({len(text)} bytes)"
    if age > CLAIM_EXPIRES_SECONDS:
        return (f"process {pid} on {host} has not refreshed it for {age:.0f} s "
                f"(a claim expires after {CLAIM_EXPIRES_SECONDS:.0f} s)")
    if host != socket.gethostname():
        return None  # a live claim of another machine: its process cannot be looked up from here
    try:
        started = psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, ValueError, TypeError):
        return f"process {pid} no longer runs"
    except psutil.AccessDenied:
        return None
    recorded = holder.get("process_started")
    claimed = _epoch(holder.get("claimed") or holder.get("started"))  # "started": claims of earlier versions
    if (isinstance(recorded, (int, float)) and abs(started - recorded) > 1.0) or (claimed and started > claimed + 1.0):
        return f"process id {pid} now belongs to another process (started after the claim was made)"
    return None


def _epoch(timestamp) -> float | None:
    try:
        return datetime.fromisoformat(timestamp).timestamp()
    except (TypeError, ValueError):
        return None


def _heartbeat(path: Path, stop: threading.Event) -> None:
    """Refresh the claim's modification time until ``stop`` is set, so it never looks abandoned."""
    while not stop.wait(CLAIM_HEARTBEAT_SECONDS):
        try:
            os.utime(path)
        except OSError:
            return


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
        # a network cell's training: did its objective converge (cutbench.convergence.RULE)? None: no network
        "converged": (record.get("convergence") or {}).get("converged"),
        "convergence": (record.get("convergence") or {}).get("verdict"),
    }
    metrics = record.get("metrics") or {}
    for name in [*METRICS, *sorted(set(metrics) - set(METRICS))]:  # plugin metrics after the built-ins
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
