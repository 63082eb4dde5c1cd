"""Studio test helpers: settings in a data folder, an API client that waits for jobs, real
worker processes, a real PostgreSQL server, free ports."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
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


class PostgresServer:
    """A PostgreSQL server of one test's own (Debian's postgresql package: initdb, pg_ctl),
    on a free loopback port, with trust authentication and no data kept. As root it runs as
    the package's ``postgres`` user (the server refuses to run as root)."""

    def __init__(self) -> None:
        self.bin = _postgres_bin()
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="kinetoscope-postgres-"))
        self.runner: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.folder, owner.pw_uid, owner.pw_gid)
            self.runner = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://kinetoscope@127.0.0.1:{self.port}/postgres"

    def start(self) -> PostgresServer:
        data = str(self.folder / "data")
        self._run("initdb", "-D", data, "-U", "kinetoscope", "-A", "trust")
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''"
        self._run(
            "pg_ctl",
            "start",
            "-w",
            "-D",
            data,
            "-l",
            str(self.folder / "server.log"),
            "-o",
            options + " -c fsync=off",
        )
        return self

    def stop(self) -> None:
        if (self.folder / "data" / "postmaster.pid").exists():
            self._run("pg_ctl", "stop", "-w", "-m", "immediate", "-D", str(self.folder / "data"))
        shutil.rmtree(self.folder, ignore_errors=True)

    def _run(self, program: str, *arguments: str) -> None:
        command = [*self.runner, str(self.bin / program), *arguments]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        log = self.folder / "server.log"
        assert done.returncode == 0, (
            f"{program} failed: {done.stderr[-2000:]}"
            f"{log.read_text(errors='replace')[-2000:] if log.exists() else ''}"
        )


def _postgres_bin() -> Path:
    """The folder of Debian's PostgreSQL server programs (the newest version installed)."""
    folders = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda f: int(f.split("/")[4]))
    found = [Path(f) for f in folders if Path(f, "initdb").is_file()]
    assert found, "PostgreSQL is not installed: apt-get install -y postgresql"
    return found[-1]
