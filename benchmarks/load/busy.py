"""A synthetic load for measuring cutbench on a busy machine: N processes that spin, bounded in time.

    python benchmarks/load/busy.py --processes 4 --seconds 1800 &   # 2x the cores of a 2-core machine
    time cutbench run --out /tmp/quick-busy
    kill %1                                                          # or let --seconds end it

Each process runs a pure-Python loop (no memory traffic, no I/O), so it competes for the CPU only;
the parent stops every child at --seconds or on SIGTERM/SIGINT, so a forgotten load cannot outlive
the measurement.
"""

from __future__ import annotations

import argparse
import multiprocessing
import signal
import sys
import time


def spin(deadline: float) -> None:
    while time.monotonic() < deadline:
        for _ in range(100_000):
            pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=4, help="busy processes (default 4)")
    parser.add_argument("--seconds", type=float, default=1800.0, help="stop after this many seconds (default 1800)")
    args = parser.parse_args(argv)
    if args.processes < 1 or args.seconds <= 0:
        parser.error("--processes must be >= 1 and --seconds > 0")
    deadline = time.monotonic() + args.seconds
    children = [multiprocessing.Process(target=spin, args=(deadline,), daemon=True) for _ in range(args.processes)]
    for child in children:
        child.start()

    def stop(*_):
        for child in children:
            child.terminate()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for child in children:
        child.join()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
