"""The job queue: huey, holding only video ids (the database holds the jobs themselves).

Without a Redis URL the queue is a SQLite file in the data folder (`huey.SqliteHuey`): one
machine, no server to run. With one it is `huey.PriorityRedisHuey`, for workers on several
machines. Both run higher ``priority`` first (paying plans before free ones), and both retry
a job whose run raised an unexpected error (``job_attempts - 1`` times, after
`RETRY_DELAY` seconds). A message can still be lost (a worker killed after taking it):
`kinetoscope.studio.jobs.recover` finds such jobs in the database and queues them again.
"""

from __future__ import annotations

from collections.abc import Callable

from huey import PriorityRedisHuey, SqliteHuey
from huey.api import Huey, Task

from kinetoscope.studio.settings import Settings

TASK_NAME = "make_video"
RETRY_DELAY = 2  # seconds
Handler = Callable[[str, int], None]  # (video id, retries left)


def make_huey(settings: Settings) -> Huey:
    """The huey instance for these settings (no results stored: the database has them)."""
    if settings.redis_url:
        return PriorityRedisHuey("kinetoscope", url=settings.redis_url, results=False)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SqliteHuey("kinetoscope", filename=str(settings.queue_file), results=False)


class JobQueue:
    """Enqueue video ids; a worker attaches the handler that makes them."""

    def __init__(self, settings: Settings) -> None:
        self.huey = make_huey(settings)
        self._handler: Handler | None = None
        self._task = self.huey.task(
            retries=max(0, settings.job_attempts - 1),
            retry_delay=RETRY_DELAY,
            context=True,
            name=TASK_NAME,
        )(self._run)

    def enqueue(self, video_id: str, priority: int = 0) -> None:
        self._task(video_id, priority=priority)

    def waiting_ids(self) -> set[str]:
        """The ids in the queue now, or waiting for a retry."""
        tasks = self.huey.pending() + self.huey.scheduled()
        return {task.args[0] for task in tasks if task.name == self._task.name and task.args}

    def attach(self, handler: Handler) -> None:
        """Run ``handler(video_id, retries_left)`` for each job this process takes."""
        self._handler = handler

    def _run(self, video_id: str, task: Task | None = None) -> None:
        if self._handler is None:
            raise RuntimeError("no handler attached to run jobs in this process")
        self._handler(video_id, 0 if task is None else task.retries)
