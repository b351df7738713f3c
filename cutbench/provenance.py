"""Where and how a result was produced: code version, packages, hardware, thread settings."""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import socket
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import torch

import cutbench
from cutbench.threads import cores, thread_settings

_PACKAGES = ("torch", "numpy", "scipy", "scikit-learn", "pandas", "pyarrow", "matplotlib")


def git_state(path: Path | None = None) -> dict:
    """Commit and dirty flag of the git checkout holding cutbench (None outside a checkout)."""
    path = path or Path(cutbench.__file__).resolve().parent.parent

    def git(*args):
        return subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True, timeout=10)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return {"commit": None, "dirty": None}
        status = git("status", "--porcelain", "--untracked-files=no")
        return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None, "dirty": None}


def cpu_model() -> str:
    """The CPU model name as the OS reports it (e.g. "AMD EPYC 7B13"), recorded with every result."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpu_info() -> dict:
    if not torch.cuda.is_available():
        return {"cuda_available": False}
    props = torch.cuda.get_device_properties(0)
    info = {"cuda_available": True, "gpu_name": props.name, "gpu_count": torch.cuda.device_count(),
            "gpu_memory_bytes": int(props.total_memory), "cuda_runtime": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        info["driver"] = out.stdout.strip().splitlines()[0] if out.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, IndexError):
        info["driver"] = None
    return info


@functools.lru_cache(maxsize=1)
def _static_provenance() -> dict:
    versions = {}
    for pkg in _PACKAGES:
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "cutbench_version": cutbench.__version__,
        "git": git_state(),
        "python": platform.python_version(),
        "packages": versions,
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cores": cores(),
        **_gpu_info(),
    }


def provenance() -> dict:
    """Provenance for a result written now (the static part is computed once per process)."""
    return {**_static_provenance(), "threads": thread_settings(),
            "timestamp": datetime.now(timezone.utc).isoformat(timespec="microseconds")}
