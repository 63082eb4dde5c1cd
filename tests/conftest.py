"""Shared test settings."""

import os

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread_per_worker():
    """`pytest -n 2` runs one worker per core; torch's own threads in each worker would only
    fight over the same cores (a test ran 20 times slower that way)."""
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
