"""The worker: a process that loads the model once and makes videos from the queue.

`StudioWorker.run`: 1. bring the database up to date and make the folders; 2. load the model;
3. say it is alive (a `Worker` row) and recover jobs lost by dead workers; 4. run huey's
consumer (one thread: one job at a time, the model is not shared between jobs) while a
watcher thread keeps the heartbeat and recovers lost jobs every `RECOVER_EVERY` seconds;
5. on stopping, put its unfinished job back in the queue.

A job (`StudioWorker.execute`) is claimed in the database, made with the creative tool its
kind names, written with `kinetoscope.results.save` (so the file is watermarked and signed
like any Kinetoscope video) and marked succeeded. An error the request caused fails the job
with its message; any other error is retried by huey (``Settings.job_attempts`` runs in all).
"""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from kinetoscope.errors import KinetoscopeError
from kinetoscope.studio import jobs
from kinetoscope.studio.db import Database, Upload, Video
from kinetoscope.studio.errors import NotFoundError
from kinetoscope.studio.kinds import tool_call
from kinetoscope.studio.queue import JobQueue
from kinetoscope.studio.settings import Settings
from kinetoscope.studio.storage import Storage

RECOVER_EVERY = 10.0  # seconds between looks for lost jobs
PROGRESS_EVERY = 0.25  # seconds between progress writes
STOP_WAIT = 15.0  # seconds a stopping worker waits for its job to notice
RESTART_DELAY = 5.0  # seconds before a worker that exited is started again
log = logging.getLogger("kinetoscope.studio.worker")


class JobStopped(Exception):  # noqa: N818 (a signal, not an error)
    """Raised from the progress callback: the job was cancelled, or the worker is stopping."""


class StudioWorker:
    """One worker process: the model, the queue, and the job in hand."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.db_url)
        self.storage = Storage(settings.data_dir)
        self.queue = JobQueue(settings)
        self.id = f"{jobs.this_host()}-{os.getpid()}-{secrets.token_hex(4)}"
        self.pipeline = None
        self._stopping = threading.Event()

    def run(self) -> None:
        """Work until SIGINT (finish the job in hand first) or SIGTERM (stop now; the job
        goes back to the queue)."""
        from huey.consumer import Consumer

        # 1-2. database, folders, model
        self.db.upgrade()
        self.storage.prepare()
        self.load_model()
        # 3. alive, and lost jobs found
        jobs.register_worker(self.db, self.id)
        recovered = jobs.recover(self.db, self.queue, self.settings)
        if recovered:
            log.info("queued again: %s", ", ".join(recovered))
        self.queue.attach(self.execute)
        watcher = threading.Thread(target=self._watch, name="watcher", daemon=True)
        watcher.start()
        # 4. the consumer: one worker thread, polling at most every second when idle
        consumer = Consumer(
            self.queue.huey, workers=1, periodic=False, initial_delay=0.1, max_delay=1.0
        )
        log.info("worker %s ready", self.id)
        try:
            consumer.run()
        finally:
            # 5. stop the job in hand at its next progress report, then give it back
            self._stopping.set()
            for _, thread in consumer.worker_threads:
                thread.join(STOP_WAIT)
            jobs.unregister_worker(self.db, self.queue, self.id)
            self.db.dispose()
            log.info("worker %s stopped", self.id)

    def load_model(self) -> None:
        from kinetoscope.pipeline import Pipeline

        started = time.monotonic()
        self.pipeline = Pipeline.from_pretrained(self.settings.model, device=self.settings.device)
        log.info(
            "model %s loaded on %s in %.1f s",
            self.pipeline.source,
            self.pipeline.device,
            time.monotonic() - started,
        )

    def execute(self, video_id: str, retries_left: int) -> None:
        """Make one video (the queue's handler)."""
        from kinetoscope.results import save

        video = jobs.claim(self.db, video_id, self.id, self.settings.job_attempts)
        if video is None:
            return
        log.info("making %s (%s, attempt %d)", video_id, video.kind, video.attempts)
        try:
            tool, arguments = tool_call(video.parameters, self._path_of)
            method = getattr(self.pipeline, tool)
            result = method(**arguments, progress=self._progress(video_id))
            file = Storage.video_name(video_id)
            save(result, self.storage.path(file))
            if not jobs.finish(self.db, video_id, file, result.video.seconds, result.record["id"]):
                self.storage.delete(file)  # cancelled while it was being written
        except JobStopped:
            if self._stopping.is_set():
                jobs.requeue(self.db, self.queue, video_id, "the worker stopped", enqueue=True)
            log.info("stopped %s", video_id)
        except KinetoscopeError as exc:
            jobs.fail(self.db, video_id, str(exc))
            log.info("refused %s: %s", video_id, exc)
        except Exception as exc:
            problem = f"internal error: {type(exc).__name__}: {exc}"
            if retries_left > 0:
                jobs.requeue(self.db, self.queue, video_id, problem, enqueue=False)
                raise  # huey retries it
            jobs.fail(self.db, video_id, problem)
            log.exception("failed %s", video_id)

    def _path_of(self, reference_id: str) -> Path:
        """The file of an input id (checked when the job was submitted)."""
        with self.db.session() as session:
            row = session.get(Upload, reference_id) or session.get(Video, reference_id)
            if row is None or row.file is None:
                raise NotFoundError(f"the input {reference_id} was deleted before the job ran")
            return self.storage.path(row.file)

    def _progress(self, video_id: str) -> Callable[[int, int], None]:
        """The tools' progress callback: stores the fraction done now and then, and stops
        the job when it was cancelled or the worker is stopping."""
        last = 0.0

        def report(done: int, total: int) -> None:
            nonlocal last
            if self._stopping.is_set():
                raise JobStopped
            now = time.monotonic()
            if now - last < PROGRESS_EVERY and done < total:
                return
            last = now
            if not jobs.report_progress(self.db, video_id, done / max(total, 1)):
                raise JobStopped

        return report

    def _watch(self) -> None:
        """Heartbeat, and now and then recover lost jobs (another worker may have died)."""
        last_recovery = time.monotonic()
        while not self._stopping.wait(self.settings.heartbeat_seconds):
            try:
                jobs.heartbeat(self.db, self.id)
                if time.monotonic() - last_recovery >= RECOVER_EVERY:
                    last_recovery = time.monotonic()
                    jobs.recover(self.db, self.queue, self.settings)
            except Exception:
                log.exception("heartbeat failed")


def run_worker(settings: Settings) -> None:
    """The ``kinetoscope worker`` process."""
    StudioWorker(settings).run()


class WorkerProcesses:
    """Worker processes beside the web server (``kinetoscope serve``): started, restarted
    when one exits, and stopped with the server (SIGTERM: each gives its job back)."""

    def __init__(self, settings: Settings, count: int) -> None:
        self.settings = settings
        self.count = count
        self.processes: list[subprocess.Popen[bytes]] = []
        self._stopping = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="workers", daemon=True)

    def command(self) -> list[str]:
        settings = self.settings
        command = [sys.executable, "-m", "kinetoscope", "worker", "--data", str(settings.data_dir)]
        if settings.redis_url:
            command += ["--redis", settings.redis_url]
        if settings.model is not None:
            command += ["--model", str(settings.model)]
        if settings.device is not None:
            command += ["--device", settings.device]
        return command

    def start(self) -> None:
        self.processes = [self._spawn() for _ in range(self.count)]
        self._watcher.start()

    def stop(self) -> None:
        self._stopping.set()
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(STOP_WAIT + 5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def _spawn(self) -> subprocess.Popen[bytes]:
        environment = dict(os.environ)
        if self.settings.database_url:
            environment["KINETOSCOPE_STUDIO_DATABASE"] = self.settings.database_url
        return subprocess.Popen(self.command(), env=environment)

    def _watch(self) -> None:
        while not self._stopping.wait(2.0):
            for number, process in enumerate(self.processes):
                if process.poll() is not None and not self._stopping.is_set():
                    log.warning(
                        "worker %d exited (%s): starting another", number, process.returncode
                    )
                    self._stopping.wait(RESTART_DELAY)
                    if not self._stopping.is_set():
                        self.processes[number] = self._spawn()
