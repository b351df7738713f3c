"""The timing module: synchronisation order, warm-up/cold bookkeeping, memory fields."""

import numpy as np
import pytest
import torch

from cutbench import CutbenchError
from cutbench.timing import DeviceClock, StageTimer, clock_for


class RecordingClock(DeviceClock):
    """A CUDA stand-in: 'queued work' finishes only at synchronize(), which advances the fake clock."""

    name = "fake-cuda"
    synchronizes = True

    def __init__(self, events):
        self.events = events
        self.pending = 0.0
        self.now = 0.0

    def synchronize(self):
        self.events.append("sync")
        self.now += self.pending
        self.pending = 0.0

    def reset_peak_memory(self):
        self.events.append("reset")

    def peak_memory_bytes(self):
        return 1234


def test_gpu_path_synchronises_before_reading_the_clock():
    events = []
    clock = RecordingClock(events)

    def perf_counter():
        events.append("clock")
        return clock.now

    def enqueue_kernel():
        events.append("work")
        clock.pending += 2.5  # asynchronous: returns at once, finishes at the next sync

    timer = StageTimer(clock=clock, perf_counter=perf_counter)
    with timer.stage("fit"):
        enqueue_kernel()
    # sync, start clock, work, sync (waits for the kernel), stop clock
    assert [e for e in events if e != "reset"] == ["sync", "clock", "work", "sync", "clock"]
    assert timer.stages["fit"].seconds == pytest.approx(2.5)
    assert timer.stages["fit"].synchronized
    assert timer.stages["fit"].peak_device_bytes == 1234


def test_warmup_is_recorded_as_cold_and_excluded_from_measured_runs():
    times = iter([0.0, 10.0, 10.0, 11.0, 11.0, 12.5, 12.5, 13.0])  # runs of 10, 1, 1.5, 0.5 s
    timer = StageTimer(perf_counter=lambda: next(times))
    calls = []
    result = timer.run("fit", lambda: calls.append(1) or len(calls), warmup=1, repeats=3)
    rec = timer.stages["fit"]
    assert result == 4 and len(calls) == 4
    assert rec.cold_seconds == 10.0
    assert rec.runs == [1.0, 1.5, 0.5]
    assert rec.seconds == 1.0  # median of the measured runs only
    d = rec.to_dict()
    assert d["min_seconds"] == 0.5 and d["max_seconds"] == 1.5


def test_without_warmup_the_first_run_is_the_cold_run():
    times = iter([0.0, 3.0])
    timer = StageTimer(perf_counter=lambda: next(times))
    timer.run("fit", lambda: None, warmup=0, repeats=1)
    assert timer.stages["fit"].cold_seconds == timer.stages["fit"].seconds == 3.0


def test_host_peak_memory_sees_a_large_temporary_allocation():
    timer = StageTimer("cpu")
    timer.run("alloc", lambda: np.ones(50_000_000).sum())  # 400 MB temporary
    rec = timer.stages["alloc"]
    assert rec.peak_rss_bytes > 400e6
    assert not rec.synchronized and rec.peak_device_bytes is None


def test_bad_arguments():
    timer = StageTimer("cpu")
    with pytest.raises(CutbenchError, match="repeats >= 1"):
        timer.run("fit", lambda: None, repeats=0)
    with pytest.raises(CutbenchError, match="accepted"):
        clock_for("meta")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_timing_counts_queued_kernels():
    a = torch.randn(8192, 8192, device="cuda")
    timer = StageTimer("cuda")
    timer.run("matmul", lambda: a @ a, warmup=1, repeats=3)
    rec = timer.stages["matmul"]
    # An 8192^3 matmul is ~1.1 TFLOP: a synchronised timer sees well over 0.5 ms on any current GPU.
    assert rec.synchronized and rec.seconds > 5e-4
    assert rec.peak_device_bytes >= 3 * a.numel() * 4
