"""Put what the GPU check needs into .gpu_data/ (git-ignored, carried to the device machine; at most 64 MiB).

    CUTBENCH_DATA=../shared/data python benchmarks/gpu/prepare.py

It copies the four Fashion-MNIST files (30 MB; the check computes its features on the GPU, which is one of
the figures it reports) and downloads the wheels of the pure-Python packages the device machine lacks
(kymatio and appdirs). Then, with the device tool: carry [".gpu_data"] and run

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .gpu_data/wheels/*.whl &&
    PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 python3 benchmarks/gpu/check.py
"""

import shutil
import subprocess
import sys
from pathlib import Path

from cutbench.datasets import data_dir

ROOT = Path(__file__).resolve().parents[2]
TARGET = ROOT / ".gpu_data"
WHEELS = ("kymatio==0.3.0", "appdirs==1.4.4")
LIMIT = 64 * 2**20


def main() -> int:
    source = data_dir() / "fashion-mnist"
    (TARGET / "fashion-mnist").mkdir(parents=True, exist_ok=True)
    for path in sorted(source.glob("*-ubyte.gz")):
        shutil.copy2(path, TARGET / "fashion-mnist" / path.name)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d",
                    str(TARGET / "wheels"), *WHEELS], check=True)
    size = sum(path.stat().st_size for path in TARGET.rglob("*") if path.is_file())
    print(f"{TARGET}: {size / 2**20:.1f} MiB ({'within' if size <= LIMIT else 'OVER'} the 64 MiB a device call carries)")
    return 0 if size <= LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
