"""Wall time of a 3-cell study whose dataset must be downloaded through a network that never answers.

A local TCP server accepts every connection and never sends a byte; HTTP(S) traffic is sent to it as a
proxy, so every download connects and then waits. The study (MNIST, k-means, 3 seeds) runs in a fresh
process with an empty CUTBENCH_DATA and downloads allowed. Run: ``python benchmarks/measure/stalled_download.py``.
Only the loopback address is used.
"""

import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

STUDY = textwrap.dedent("""
    name: stalled-download
    datasets:
      - name: mnist
        params: {n: 1000}
    methods: [kmeans]
    seeds: [0, 1, 2]
    device: cpu
    timing: {warmup: 0, repeats: 1}
""")


def silent_server() -> tuple[socket.socket, int]:
    """A loopback server that accepts connections and never answers (they are held open)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held = []

    def accept():
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    return server, server.getsockname()[1]


def main() -> None:
    server, port = silent_server()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        (folder / "study.yaml").write_text(STUDY)
        proxy = f"http://127.0.0.1:{port}"
        env = {**os.environ, "CUTBENCH_DATA": str(folder / "data"), "CUTBENCH_DOWNLOAD": "1",
               "http_proxy": proxy, "https_proxy": proxy, "HTTP_PROXY": proxy, "HTTPS_PROXY": proxy, "no_proxy": ""}
        started = time.perf_counter()
        run = subprocess.run([sys.executable, "-m", "cutbench.cli", "run", str(folder / "study.yaml"), "--out",
                              str(folder / "results")], env=env, capture_output=True, text=True, timeout=3600)
        wall = time.perf_counter() - started
    server.close()
    print(run.stdout[-3000:])
    print(run.stderr[-3000:])
    print(f"exit code {run.returncode}; wall time {wall:.1f} s")


if __name__ == "__main__":
    main()
