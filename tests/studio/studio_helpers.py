"""Studio test helpers: settings in a data folder, an API client that waits for jobs, real
worker processes, free ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from kinetoscope.studio.auth import create_account
from kinetoscope.studio.db import Database, Worker
from kinetoscope.studio.settings import Settings

# the example of the issue, at the tiny model's smallest size and shortest length
EXAMPLE = {"kind": "generate", "prompt": "a red ball bounces", "seconds": 1, "aspect": "1:1"}
EXAMPLE |= {"size": 64, "seed": 0, "steps": 2}
FINAL = ("succeeded", "failed", "cancelled")


def make_settings(data_dir: Path, model_folder: Path, **changes: object) -> Settings:
    return Settings(data_dir=data_dir, model=model_folder, **changes).checked()


class Api:
    """A TestClient that signs each request with one account's API key."""

    def __init__(self, client: TestClient, key: str | None) -> None:
        self.client = client
        self.headers = {} if key is None else {"Authorization": f"Bearer {key}"}

    def get(self, url: str, **options: object):
        return self.client.get(url, headers=self.headers, **options)

    def post(self, url: str, **options: object):
        return self.client.post(url, headers=self.headers, **options)

    def patch(self, url: str, **options: object):
        return self.client.patch(url, headers=self.headers, **options)

    def delete(self, url: str, **options: object):
        return self.client.delete(url, headers=self.headers, **options)

    def create(self, body: dict) -> str:
        answer = self.post("/api/videos", json=body)
        assert answer.status_code == 202, answer.text
        return answer.json()["id"]

    def wait(self, video_id: str, until: tuple[str, ...] = FINAL, timeout: float = 90) -> dict:
        """Poll until the video's status is one of ``until``."""
        deadline = time.monotonic() + timeout
        while True:
            video = self.get(f"/api/videos/{video_id}").json()
            if video["status"] in until:
                return video
            assert time.monotonic() < deadline, f"still {video['status']} after {timeout} s"
            time.sleep(0.1)


def account(settings: Settings, name: str, tier: str = "pro", **options: object) -> str:
    """A new account's API key."""
    return create_account(
        settings, name, tier, options.get("password"), options.get("admin", False)
    )


class WorkerProcess:
    """A real `kinetoscope worker` process on ``settings``, its output in a log file."""

    def __init__(self, settings: Settings, log: Path) -> None:
        self.settings = settings
        self.log_path = log
        self.process: subprocess.Popen | None = None

    def start(self) -> WorkerProcess:
        command = [sys.executable, "-m", "kinetoscope", "worker"]
        command += ["--data", str(self.settings.data_dir), "--model", str(self.settings.model)]
        if self.settings.redis_url:
            command += ["--redis", self.settings.redis_url]
        environment = dict(os.environ, OMP_NUM_THREADS="1")
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log, env=environment)
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 120) -> None:
        """Until the worker has loaded the model and registered itself."""
        database = Database(self.settings.db_url)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                assert self.process.poll() is None, f"the worker exited: {self.log()}"
                try:
                    with database.session() as session:
                        pids = session.scalars(select(Worker.pid)).all()
                except Exception:  # the schema may not be there yet
                    pids = []
                if self.process.pid in pids:
                    return
                time.sleep(0.2)
        finally:
            database.dispose()
        raise AssertionError(f"the worker did not start: {self.log()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """SIGKILL, as a crash would (and reap it, so its pid is really gone)."""
        self.process.kill()
        self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
