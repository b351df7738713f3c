"""pytest-benchmark settings of the micro suite: the machine information every saved run carries."""

import subprocess

import pytest
import torch
from threadpoolctl import threadpool_info


def pytest_benchmark_update_machine_info(config, machine_info):
    """Add what changes these timings: torch, its threads, BLAS/OpenMP threads, and the GPU when present."""
    machine_info["torch"] = torch.__version__
    machine_info["torch_threads"] = torch.get_num_threads()
    machine_info["torch_interop_threads"] = torch.get_num_interop_threads()
    machine_info["threadpools"] = [{"api": p["internal_api"], "threads": p["num_threads"], "version": p.get("version")}
                                   for p in threadpool_info()]
    machine_info["cuda_available"] = torch.cuda.is_available()
    if torch.cuda.is_available():
        machine_info["gpu"] = torch.cuda.get_device_name(0)
        machine_info["cuda_runtime"] = torch.version.cuda
        try:
            driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                    capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            driver = None
        machine_info["gpu_driver"] = driver or None


@pytest.fixture(params=["cpu", "cuda"])
def device(request):
    """Each benchmark on the CPU, and on CUDA where there is one (skipped cleanly otherwise)."""
    if request.param == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    return torch.device(request.param)
