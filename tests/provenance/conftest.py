"""Provenance tests: each test gets a configuration folder of its own."""

import pytest

from kinetoscope.provenance.identity import CERT_ENV, CONFIG_DIR_ENV, KEY_ENV, TRUST_ENV


@pytest.fixture(autouse=True)
def config(tmp_path, monkeypatch):
    """A configuration folder of this test's own; no configured identity or trust."""
    folder = tmp_path / "config"
    monkeypatch.setenv(CONFIG_DIR_ENV, str(folder))
    for name in (CERT_ENV, KEY_ENV, TRUST_ENV):
        monkeypatch.delenv(name, raising=False)
    return folder
