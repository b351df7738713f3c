"""Test-suite settings: the tests never download anything."""

import os

import pytest
import torch
from threadpoolctl import threadpool_limits


def pytest_configure(config):
    # Set in the environment (not only in-process) so that subprocesses such as CLI runs inherit it.
    os.environ["CUTBENCH_DOWNLOAD"] = "0"


@pytest.fixture(scope="module")
def one_thread():
    """The test problems are tiny: extra threads (torch, BLAS, OpenMP in k-means) only add
    synchronisation, which on a busy 2-core machine made these tests up to 50x slower.

    Not autouse: a module opts in with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def an_idle_machine(monkeypatch):
    """Runs inside a test choose their threads as on an idle machine, whatever else runs beside the suite,
    so results do not depend on the load and no run spends half a second measuring it. The tests of the
    busy case inject their own measurement (or ``monkeypatch.undo()`` to measure for real)."""
    monkeypatch.setattr("cutbench.threads.busy_cores", lambda seconds=0.5: 0.0)
