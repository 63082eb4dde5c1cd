"""The life of a video job, in the database (each function one short transaction).

    queued ──claim──► running ──finish──► succeeded
       ▲                 │ ├──fail────► failed
       └──requeue────────┘ └──(cancel)─► cancelled     (cancel also ends a queued job)

`claim` is one conditional UPDATE, so a job runs once however many messages name it (a
duplicate message finds it no longer queued). A running job reports progress with
`report_progress`, which answers False once the job is cancelled, so the worker stops.
`recover` finds jobs left running by a dead worker (its process gone on this machine, or
silent for `Settings.stale_worker_seconds`) and queues them again (until
`Settings.job_attempts` runs have started: then the job fails), and queues again any queued
job whose message the queue lost.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from kinetoscope.studio.db import ACTIVE_STATUSES, Database, User, Video, Worker, utcnow
from kinetoscope.studio.plans import month_start
from kinetoscope.studio.queue import JobQueue
from kinetoscope.studio.settings import Settings


@dataclass(frozen=True)
class Usage:
    """An account's jobs in flight and this month's credits."""

    active_jobs: int
    credits_used: int


def usage(session: Session, user: User) -> Usage:
    """Jobs queued or running, and credits charged this calendar month (UTC): every video
    but failed and cancelled ones."""
    active = session.scalar(
        select(func.count())
        .select_from(Video)
        .where(Video.user_id == user.id, Video.status.in_(ACTIVE_STATUSES))
    )
    spent = session.scalar(
        select(func.coalesce(func.sum(Video.credits), 0)).where(
            Video.user_id == user.id,
            Video.created_at >= month_start(utcnow()),
            Video.status.not_in(("failed", "cancelled")),
        )
    )
    return Usage(int(active or 0), int(spent or 0))


def lock_account(session: Session, user: User) -> None:
    """Hold ``user``'s row until the transaction ends, so that the account's requests count
    its jobs and store a new one in turn: the jobs-at-once and credit limits then hold
    however many requests arrive together. An UPDATE that changes nothing (of a column no key
    uses) takes the row's lock on PostgreSQL and the database's write lock on SQLite, and
    waits while another transaction holds it."""
    session.execute(
        update(User)
        .where(User.id == user.id)
        .values(tier=User.tier)
        .execution_options(synchronize_session=False)
    )


def claim(db: Database, video_id: str, worker_id: str, max_attempts: int) -> Video | None:
    """Take a queued job for ``worker_id``: the job, now running, or None when it is not
    queued (cancelled, deleted, or already taken). A job that has used up its attempts
    fails instead."""
    now = utcnow()
    with db.session() as session:
        taken = session.execute(
            update(Video)
            .where(Video.id == video_id, Video.status == "queued")
            .values(
                status="running",
                worker_id=worker_id,
                attempts=Video.attempts + 1,
                progress=0.0,
                started_at=now,
                updated_at=now,
            )
        ).rowcount
        if not taken:
            return None
        video = session.get(Video, video_id)
        if video.attempts > max_attempts:
            last = video.error or "the worker stopped"
            _end(video, "failed", f"gave up after {max_attempts} attempts (last: {last})")
            return None
        return video


def report_progress(db: Database, video_id: str, fraction: float) -> bool:
    """Store a running job's progress (0-1); False when it is no longer running (cancelled
    or deleted): the worker should stop."""
    with db.session() as session:
        return bool(
            session.execute(
                update(Video)
                .where(Video.id == video_id, Video.status == "running")
                .values(progress=min(max(fraction, 0.0), 1.0), updated_at=utcnow())
            ).rowcount
        )


def finish(db: Database, video_id: str, file: str, seconds: float, record_id: str) -> bool:
    """Mark a running job succeeded with its file; False when it was cancelled meanwhile."""
    with db.session() as session:
        video = session.get(Video, video_id)
        if video is None or video.status != "running":
            return False
        video.file, video.seconds, video.record_id = file, seconds, record_id
        video.error = None
        _end(video, "succeeded")
        return True


def fail(db: Database, video_id: str, message: str) -> None:
    """End a running job as failed, with the message the user will see."""
    with db.session() as session:
        video = session.get(Video, video_id)
        if video is not None and video.status == "running":
            _end(video, "failed", message)


def requeue(db: Database, queue: JobQueue, video_id: str, reason: str, enqueue: bool) -> None:
    """Put a running job back in the queue (``enqueue``: send a message; huey's own retry
    sends one already)."""
    with db.session() as session:
        video = session.get(Video, video_id)
        if video is None or video.status != "running":
            return
        video.status, video.worker_id, video.error = "queued", None, reason
        video.progress, video.updated_at = 0.0, utcnow()
        priority = video.priority
    if enqueue:
        queue.enqueue(video_id, priority)


def cancel(session: Session, video: Video) -> None:
    """Cancel a queued or running job (a running one stops at its next progress report)."""
    _end(video, "cancelled", "cancelled by its owner")


def _end(video: Video, status: str, error: str | None = None) -> None:
    now = utcnow()
    video.status, video.finished_at, video.updated_at = status, now, now
    video.worker_id = None
    if error is not None:
        video.error = error
    if status == "succeeded":
        video.progress = 1.0


# ---- workers -----------------------------------------------------------------------------------


def this_host() -> str:
    return socket.gethostname()


def register_worker(db: Database, worker_id: str) -> None:
    with db.session() as session:
        session.merge(Worker(id=worker_id, host=this_host(), pid=os.getpid()))


def heartbeat(db: Database, worker_id: str) -> None:
    with db.session() as session:
        session.execute(update(Worker).where(Worker.id == worker_id).values(heartbeat_at=utcnow()))


def unregister_worker(db: Database, queue: JobQueue, worker_id: str) -> None:
    """A worker stopping: its running jobs go back to the queue, its row goes."""
    _release(db, queue, [worker_id], "the worker stopped while making it")


def recover(db: Database, queue: JobQueue, settings: Settings) -> list[str]:
    """Queue again the jobs of dead workers and the queued jobs the queue lost; returns
    their ids."""
    dead = dead_workers(db, settings)
    recovered = _release(db, queue, dead, "the worker making it stopped (queued again)")
    with db.session() as session:
        queued = session.execute(
            select(Video.id, Video.priority).where(Video.status == "queued")
        ).all()
    waiting = queue.waiting_ids()
    for video_id, priority in queued:
        if video_id not in waiting:
            queue.enqueue(video_id, priority)
            recovered.append(video_id)
    return recovered


def dead_workers(db: Database, settings: Settings) -> list[str]:
    """Workers whose process is gone on this machine, or silent too long anywhere, and the
    ids named by running jobs that no worker row claims."""
    stale = utcnow() - timedelta(seconds=settings.stale_worker_seconds)
    host = this_host()
    with db.session() as session:
        workers = session.scalars(select(Worker)).all()
        known = {worker.id for worker in workers}
        orphaned = session.scalars(
            select(Video.worker_id).where(Video.status == "running").distinct()
        ).all()
    dead = [
        worker.id
        for worker in workers
        if (worker.host == host and not _process_alive(worker.pid)) or worker.heartbeat_at < stale
    ]
    return dead + [worker_id for worker_id in orphaned if worker_id and worker_id not in known]


def _release(db: Database, queue: JobQueue, worker_ids: list[str], reason: str) -> list[str]:
    """Requeue the running jobs of ``worker_ids`` and forget those workers."""
    if not worker_ids:
        return []
    with db.session() as session:
        running = session.scalars(
            select(Video.id).where(Video.status == "running", Video.worker_id.in_(worker_ids))
        ).all()
        session.execute(delete(Worker).where(Worker.id.in_(worker_ids)))
    for video_id in running:
        requeue(db, queue, video_id, reason, enqueue=True)
    return list(running)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True
