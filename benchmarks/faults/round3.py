"""The fault cases of issue 19 ("nothing stuck, nothing silent", round 3), each run and classified.

    python benchmarks/faults/round3.py                       # this checkout (its installed cutbench)
    PYTHONPATH=/path/to/other/site python benchmarks/faults/round3.py --cutbench /path/to/other/site/bin/cutbench

Each case prints one row: what was done, and what happened (the exit status and the first line a user
sees, or the outcome in the store). Run it against two versions to get a before/after table. It uses
only entry points both versions share (the ``cutbench`` command, ``ResultStore``, ``run_study``,
``expand_study``, ``execute_cell``), in temporary folders.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

STUDY = {"name": "faults", "datasets": [{"name": "blobs", "params": {"n": 60}}], "methods": ["kmeans"],
         "seeds": [0, 1], "device": "cpu", "timing": {"warmup": 0, "repeats": 1}}
STUDY_YAML = ("name: faults\ndatasets:\n  - {name: blobs, params: {n: 60}}\nmethods: [kmeans]\nseeds: [0, 1]\n"
              "device: cpu\ntiming: {warmup: 0, repeats: 1}\n")


_REAL_FDOPEN = os.fdopen


class FullDisk:
    """``os.fdopen`` of a full disk: the file opens, every write raises ENOSPC (patch it over ``os.fdopen``)."""

    def __init__(self, fd, mode="r", *args, **kwargs):
        self.stream = _REAL_FDOPEN(fd, mode, *args, **kwargs)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stream.close()
        return False

    def write(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")


def first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if any(line.startswith("Traceback") for line in lines):
        return f"TRACEBACK ({len(lines)} lines): {lines[-1][:110]}"
    if lines and lines[0].startswith("usage:"):  # argparse: the usage, then the error on the last line
        return lines[-1][:140]
    return (lines[0] if lines else "(nothing)")[:140]


def cli(command: str, args: list[str], cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([command, *args], cwd=cwd, capture_output=True, text=True, check=False, **kwargs)


def outcome(result: subprocess.CompletedProcess, *, stdout: bool = False) -> str:
    shown = result.stderr if result.stderr.strip() else result.stdout
    if stdout:
        shown = result.stdout + result.stderr
    return f"exit {result.returncode}: {first_line(shown)}"


def stored_study(root: Path) -> tuple[list[str], Path]:
    from cutbench.runner import run_study
    from cutbench.store import ResultStore
    from cutbench.study import expand_study

    run_study(expand_study(STUDY), ResultStore(root), progress=lambda _: None)
    return sorted(p.stem for p in (root / "records").glob("*.json")), root


def report_says(command: str, root: Path, *needles: str) -> str:
    result = cli(command, ["report", str(root)], root.parent)
    text = result.stdout + result.stderr
    if "Traceback" in text:
        return outcome(result)
    table = [line for line in text.splitlines() if line.startswith("| blobs")]
    found = [needle for needle in needles if needle in text]
    return (f"exit {result.returncode}; table count {table[0].rsplit('|', 2)[-2].strip() if table else '-'}; "
            + (f"names: {', '.join(found)}" if found else "the damage is not mentioned"))


def claim_case(command: str, work: Path, content: str) -> str:
    root = work / "claim"
    shutil.rmtree(root, ignore_errors=True)
    keys, _ = stored_study(root)
    (root / "records" / f"{keys[0]}.json").unlink()
    (root / "claims" / f"{keys[0]}.claim").write_text(content)
    (work / "s.yaml").write_text(STUDY_YAML)
    result = cli(command, ["run", "s.yaml", "--out", str(root)], work)
    present = (root / "records" / f"{keys[0]}.json").exists()
    text = result.stdout + result.stderr
    said = next((line for line in text.splitlines()
                 if any(words in line for words in ("taking over", "another process", "being computed"))), "")
    return f"exit {result.returncode}; cell {'computed' if present else 'MISSING'}; said: {said[:100] or '-'}"


def full_disk_at_claim(work: Path) -> str:
    import cutbench.store as store_module
    from cutbench.runner import execute_cell
    from cutbench.store import ResultStore
    from cutbench.study import expand_study

    root = work / "disk"
    shutil.rmtree(root, ignore_errors=True)
    ResultStore(root)
    cell = expand_study(STUDY).cells[0]
    store_module.os.fdopen = FullDisk
    try:
        execute_cell(cell, str(root), "faults")
        first = "no error"
    except Exception as exc:  # noqa: BLE001 - the case records whatever happens
        first = f"{type(exc).__name__}: {str(exc)[:80]}"
    finally:
        store_module.os.fdopen = _REAL_FDOPEN
    left = [p.name for p in (root / "claims").iterdir()]
    status = execute_cell(cell, str(root), "faults")[1]
    return f"{first}; left behind: {left or 'nothing'}; after space is freed: {status}"


def predict_at_1e30() -> str:
    import warnings

    from cutbench.methods.registry import get_method, list_methods

    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(60, 4)), rng.normal(size=(60, 4)) + 6])
    refused, silent = [], []
    for name in list_methods():
        cls = get_method(name)
        if not cls.capabilities.out_of_sample:
            continue
        params = {key: value for key, value in {"n_clusters": 2, "device": "cpu", "random_state": 0, "epochs": 2,
                                                "steps_per_epoch": 2, "batch_size": 60}.items()
                  if key in cls().get_params()}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = cls(**params).fit(X)
            try:
                model.predict(X * 1e30)
                silent.append(name)
            except ValueError:
                refused.append(name)
    return f"refused: {', '.join(refused) or 'none'}; silent labels: {', '.join(silent) or 'none'}"


def nan_to_ncut() -> str:
    from cutbench.methods.registry import get_method

    X = np.random.default_rng(0).normal(size=(10, 2))
    X[3, 1] = np.nan
    try:
        get_method("ncut")(n_clusters=2).fit(X)
        return "accepted"
    except ValueError as exc:
        return str(exc).splitlines()[0][:120]


def interrupted(command: str, work: Path) -> str:
    (work / "slow.yaml").write_text(
        "name: slow\ndatasets:\n  - {name: blobs, params: {n: 300}}\nmethods:\n  - name: neuncut\n"
        "    params: {epochs: 400, batch_size: 100}\nseeds: [0, 1, 2, 3]\ndevice: cpu\n"
        "timing: {warmup: 0, repeats: 1}\n")
    shutil.rmtree(work / "slow", ignore_errors=True)
    process = subprocess.Popen([command, "run", "slow.yaml", "--out", "slow"], cwd=work, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and not list((work / "slow" / "records").glob("*.json")):
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    lines = [line for line in err.splitlines() if line.strip()]
    ctrl_c = f"exit {process.returncode}, {len(lines)} line(s) on stderr: {first_line(err)}"
    report = report_says(command, work / "slow", "missing", "planned")
    return ctrl_c, report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cutbench", default=shutil.which("cutbench") or "cutbench",
                        help="the cutbench command of the version under test")
    args = parser.parse_args(argv)
    command = args.cutbench
    import cutbench

    print(f"cutbench {cutbench.__version__} from {Path(cutbench.__file__).parent}; command {command}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rows.append(("full disk when a cell is claimed", full_disk_at_claim(work)))
        rows.append(("empty claim file", claim_case(command, work, "")))
        rows.append(("corrupt claim file", claim_case(command, work, '{"pid": 12')))
        parent = os.getppid()
        rows.append(("claim naming a live unrelated process (reused pid)",
                     claim_case(command, work, json.dumps({"pid": parent, "host": os.uname().nodename,
                                                           "started": "2000-01-01T00:00:00+00:00"}))))
        damages = {
            "labels swapped, same length": lambda root, key: np.save(
                root / "labels" / f"{key}.npy", (np.load(root / "labels" / f"{key}.npy") + 1) % 3),
            "record with empty metrics": lambda root, key: _edit(root, key, lambda r: r.update(metrics={})),
            "non-numeric metric": lambda root, key: _edit(root, key, lambda r: r["metrics"].update(acc="high")),
            "config edited (seed 99)": lambda root, key: _edit(root, key, lambda r: r["config"].update(seed=99)),
        }
        for what, damage in damages.items():
            root = work / "damaged"
            shutil.rmtree(root, ignore_errors=True)
            keys, _ = stored_study(root)
            damage(root, keys[0])
            rows.append((f"report: {what}", report_says(command, root, "does not match", "schema", "sha256",
                                                        "config does not give", "missing")))
        rows.append(("predict on data scaled by 1e30 (out-of-sample methods)", predict_at_1e30()))
        rows.append(("Ncut() on 10 points with a NaN", nan_to_ncut()))
        rows.append(("gamma-search --n 0", outcome(cli(command, ["gamma-search", "two_moons", "--n", "0", "--gammas",
                                                                 "100", "--params", "{epochs: 1}", "--out", "g"],
                                                       work, timeout=300), stdout=True)))
        (work / "s.yaml").write_text(STUDY_YAML)
        rows.append(("run --executor pool --workers 0", outcome(cli(command, ["run", "s.yaml", "--out", "w0",
                                                                              "--executor", "pool", "--workers", "0"],
                                                                    work, timeout=300), stdout=True)))
        (work / "latin1.yaml").write_bytes(STUDY_YAML.replace("faults", "café").encode("latin-1"))
        rows.append(("non-UTF-8 study file", outcome(cli(command, ["run", "latin1.yaml", "--dry-run"], work))))
        rows.append(("gamma-search --params '[1,2'", outcome(cli(command, ["gamma-search", "two_moons", "--params",
                                                                           "[1,2"], work))))
        (work / "a-file").write_text("")
        stored_study(work / "cmp-src")
        rows.append(("compare --out into a folder that cannot be created",
                     outcome(cli(command, ["compare", "cmp-src", "cmp-src", "--out", "a-file/cmp"], work))))
        for sub in ("info", "list"):
            piped = subprocess.run(f"{command} {sub} | head -0", shell=True, cwd=work, capture_output=True, text=True,
                                   check=False)
            rows.append((f"cutbench {sub} | head -0", f"stderr: {first_line(piped.stderr)}"))
        (work / "n0.yaml").write_text("name: n0\ndatasets:\n  - {name: blobs, params: {n: 0}}\nmethods: [neuncut]\n")
        rows.append(("dataset with n: 0", outcome(cli(command, ["run", "n0.yaml", "--dry-run"], work))))
        (work / "records-only" / "records").mkdir(parents=True)
        rows.append(("report on an empty results folder", outcome(cli(command, ["report", "records-only"], work),
                                                                  stdout=True)))
        (work / "inner").mkdir()
        (work / "inner" / "escape.yaml").write_text(STUDY_YAML.replace("name: faults", "name: ../../escape"))
        escaped = cli(command, ["run", "escape.yaml"], work / "inner", timeout=300)
        rows.append(("study name ../../escape, default output folder",
                     f"{outcome(escaped)}; wrote outside results/: {(work / 'escape').exists()}"))
        ctrl_c, report = interrupted(command, work)
        rows.append(("Ctrl-C during a run", ctrl_c))
        rows.append(("report of that interrupted 4-seed study", report))
    width = max(len(what) for what, _ in rows)
    for what, result in rows:
        print(f"{what:<{width}} | {result}")
    return 0


def _edit(root: Path, key: str, change) -> None:
    path = root / "records" / f"{key}.json"
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))


if __name__ == "__main__":
    sys.exit(main())
