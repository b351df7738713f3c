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
