"""Studio fixtures: a tiny random pipeline folder, settings in a temporary data folder (on
SQLite, or on a real PostgreSQL server), the app under TestClient, and real worker
processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from studio_helpers import PostgresServer, WorkerProcess, make_settings

from kinetoscope.models.dit import DIT_PRESETS, DiffusionTransformer
from kinetoscope.models.vae import VAE_PRESETS, VideoVAE
from kinetoscope.pipeline import ModelIndex, Pipeline
from kinetoscope.studio.app import create_app
from kinetoscope.studio.settings import Settings


@pytest.fixture(scope="session")
def model_folder(tmp_path_factory) -> Path:
    """A tiny random pipeline (short side 128, so sizes 64-256 pass the model's own check and
    the plans' size limits can be reached)."""
    torch.manual_seed(0)
    pipeline = Pipeline(
        VideoVAE(VAE_PRESETS["tiny"]),
        DiffusionTransformer(DIT_PRESETS["tiny"]),
        ModelIndex(short_side=128, steps=2),
    )
    return pipeline.save_pretrained(tmp_path_factory.mktemp("studio-model") / "model")


@pytest.fixture
def settings(tmp_path, model_folder) -> Settings:
    return make_settings(tmp_path / "data", model_folder)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_database(request, tmp_path, model_folder):
    """Settings on SQLite in the data folder, or on a PostgreSQL server of the test's own."""
    if request.param == "sqlite":
        yield make_settings(tmp_path / "data", model_folder)
        return
    server = PostgresServer().start()
    try:
        yield make_settings(tmp_path / "data", model_folder, database_url=server.url)
    finally:
        server.stop()


@pytest.fixture
def client(settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def start_worker(tmp_path) -> Iterator:
    """start_worker(settings) -> a running `WorkerProcess`, stopped after the test."""
    started: list[WorkerProcess] = []

    def start(settings: Settings) -> WorkerProcess:
        worker = WorkerProcess(settings, tmp_path / f"worker-{len(started)}.log")
        started.append(worker)
        return worker.start()

    yield start
    for worker in started:
        worker.stop()
