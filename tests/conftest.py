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


@pytest.fixture(autouse=True)
def _private_config_dir(tmp_path_factory, monkeypatch):
    """Signing identities and settings go to a folder of the test session's, never to the
    home of whoever runs the tests (tests that need a fresh one set their own)."""
    monkeypatch.setenv("KINETOSCOPE_CONFIG_DIR", str(tmp_path_factory.getbasetemp() / "config"))
    for name in ("KINETOSCOPE_C2PA_CERT", "KINETOSCOPE_C2PA_KEY", "KINETOSCOPE_C2PA_TRUST"):
        monkeypatch.delenv(name, raising=False)
