"""10-million-point double rings / double C: wall time and peak traced memory vs output size.

Usage: python benchmarks/measure/large_generators.py
"""
import time
import tracemalloc

from cutbench.datasets import load_dataset

for name in ("double_rings", "double_c"):
    tracemalloc.start()
    started = time.perf_counter()
    data = load_dataset(name, n=10_000_000, random_state=0)
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    output = data.X.nbytes + data.y.nbytes
    print(f"{name}: n={len(data.y):,} in {seconds:.1f} s; output X+y {output / 1e6:.0f} MB, peak traced "
          f"{peak / 1e6:.0f} MB = {peak / output:.2f} x output; class counts {data.meta['class_counts']}", flush=True)
    del data
