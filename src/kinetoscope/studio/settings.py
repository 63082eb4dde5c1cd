"""Studio settings: where the data lives, which model and queue to use, and request limits.

Every setting has a default; the environment overrides it (``KINETOSCOPE_*`` variables, see
`Settings.from_env`) and command-line options override the environment. The data folder
holds everything that must survive a restart: the database (``studio.db``), the queue
(``queue.db``, when no Redis URL is given), uploads and videos.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from kinetoscope.errors import KinetoscopeError

DATA_DIR_VARIABLE = "KINETOSCOPE_DATA_DIR"
MB = 1 << 20


class SettingsError(KinetoscopeError, ValueError):
    """A setting that cannot be used; the message names it."""


def default_data_dir() -> Path:
    """``$KINETOSCOPE_DATA_DIR``, else ``$XDG_DATA_HOME/kinetoscope``, else
    ``~/.local/share/kinetoscope``."""
    explicit = os.environ.get(DATA_DIR_VARIABLE)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base).expanduser() / "kinetoscope"


@dataclass(frozen=True)
class Settings:
    """Everything the app and the worker need to agree on."""

    data_dir: Path
    redis_url: str | None = None  # None: a SQLite queue in the data folder
    model: Path | None = None  # a pipeline folder; None: the shipped model
    device: str | None = None  # the worker's torch device; None: a GPU when there is one
    database_url: str | None = None  # None: SQLite in the data folder
    max_body_bytes: int = 256 * 1024  # JSON requests
    max_upload_bytes: int = 64 * MB  # the largest upload any plan takes
    session_days: int = 14
    sign_in_failures: int = 10  # failed sign-ins allowed per account, and per client, ...
    sign_in_window_seconds: float = 600.0  # ... within this long: then 429 until one is older
    heartbeat_seconds: float = 2.0  # how often a worker says it is alive
    stale_worker_seconds: float = 60.0  # silent this long on another machine: presumed dead
    job_attempts: int = 3  # runs of a job (retries after errors and dead workers included)

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Settings from the environment, with ``overrides`` (None: not given) on top:
        ``KINETOSCOPE_DATA_DIR``, ``KINETOSCOPE_STUDIO_REDIS``, ``KINETOSCOPE_STUDIO_MODEL``,
        ``KINETOSCOPE_STUDIO_DEVICE``, ``KINETOSCOPE_STUDIO_DATABASE``."""
        environment = {
            "data_dir": default_data_dir(),
            "redis_url": os.environ.get("KINETOSCOPE_STUDIO_REDIS") or None,
            "model": _path_or_none(os.environ.get("KINETOSCOPE_STUDIO_MODEL")),
            "device": os.environ.get("KINETOSCOPE_STUDIO_DEVICE") or None,
            "database_url": os.environ.get("KINETOSCOPE_STUDIO_DATABASE") or None,
        }
        given = {key: value for key, value in overrides.items() if value is not None}
        return cls(**(environment | given)).checked()

    def checked(self) -> Settings:
        """These settings with paths made absolute, or a `SettingsError`."""
        data_dir = Path(self.data_dir).expanduser().resolve()
        if data_dir.exists() and not data_dir.is_dir():
            raise SettingsError(f"the data folder {data_dir} is a file, not a folder")
        model = None if self.model is None else Path(self.model).expanduser().resolve()
        if model is not None and not (model / "model_index.json").is_file():
            raise SettingsError(f"the model {model} is not a pipeline folder (no model_index.json)")
        if self.redis_url is not None and not self.redis_url.startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise SettingsError(
                f"the Redis URL must start with redis://, rediss:// or unix://, got "
                f"{self.redis_url!r}"
            )
        return replace(self, data_dir=data_dir, model=model)

    @property
    def db_url(self) -> str:
        """The SQLAlchemy URL of the studio database."""
        return self.database_url or f"sqlite:///{self.data_dir / 'studio.db'}"

    @property
    def queue_file(self) -> Path:
        """The SQLite queue, used when no Redis URL is set."""
        return self.data_dir / "queue.db"


def _path_or_none(text: str | None) -> Path | None:
    return Path(text) if text else None
