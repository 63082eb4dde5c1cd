"""The studio's commands: `serve`, `worker` and `users create`. Only argparse and the
options live here; the web app (this package's other modules, the studio extra) is imported
when one of these commands runs, so that `kinetoscope` works without the extra."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from kinetoscope.errors import KinetoscopeError

console = Console(stderr=True)


def add_studio_commands(commands: argparse._SubParsersAction) -> None:
    """Add `serve`, `worker` and `users` to the `kinetoscope` command's subcommands."""
    _add_serve(commands)
    _add_worker(commands)
    _add_users(commands)


@dataclass(frozen=True)
class StudioOptions:
    """Where the studio's data lives and what it runs (None: the environment's or default)."""

    data: Path | None = None
    redis: str | None = None
    model: Path | None = None
    device: str | None = None


@dataclass(frozen=True)
class ServeOptions:
    studio: StudioOptions
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1


@dataclass(frozen=True)
class UserCreateOptions:
    studio: StudioOptions
    name: str
    tier: str = "free"
    password: str | None = None
    admin: bool = False


def _studio_settings(options: StudioOptions) -> object:
    try:
        from kinetoscope.studio.settings import Settings
    except ImportError as exc:
        raise KinetoscopeError(
            f"the studio needs its extra: pip install 'kinetoscope[studio]' ({exc})"
        ) from exc
    return Settings.from_env(
        data_dir=options.data, redis_url=options.redis, model=options.model, device=options.device
    )


def run_serve(options: ServeOptions) -> int:
    """The studio: the web app and its worker processes."""
    if options.workers < 0:
        raise KinetoscopeError(f"--workers must be 0 or more, got {options.workers}")
    settings = _studio_settings(options.studio)
    from kinetoscope.studio.app import serve

    console.print(f"studio data in {settings.data_dir}; {options.workers} worker(s)")
    serve(settings, options.host, options.port, options.workers)
    return 0


def run_worker(options: StudioOptions) -> int:
    """A studio worker: loads the model once and makes the queued videos."""
    import logging

    settings = _studio_settings(options)
    from kinetoscope.studio.worker import run_worker as work

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    work(settings)
    return 0


def run_users_create(options: UserCreateOptions) -> int:
    """Make an account; its API key alone on the last line of standard output."""
    settings = _studio_settings(options.studio)
    from kinetoscope.studio.auth import create_account

    key = create_account(settings, options.name, options.tier, options.password, options.admin)
    role = "admin" if options.admin else "user"
    console.print(f"[green]created[/green] {role} {options.name} ({options.tier}); API key:")
    print(key)
    return 0


def _add_studio_options(parser: argparse.ArgumentParser, model: bool = True) -> None:
    parser.add_argument(
        "--data", type=Path, help="data folder ($KINETOSCOPE_DATA_DIR, else the user's data dir)"
    )
    if model:
        parser.add_argument("--redis", help="a Redis URL for the queue (default: SQLite in --data)")
        parser.add_argument("--model", type=Path, help="a pipeline folder (default: shipped)")
        parser.add_argument("--device", help="the workers' device: cpu or cuda[:N]")


def _studio_options(a: argparse.Namespace) -> StudioOptions:
    return StudioOptions(
        a.data, getattr(a, "redis", None), getattr(a, "model", None), getattr(a, "device", None)
    )


def _add_serve(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser(
        "serve",
        help="run Kinetoscope Studio, the web app (needs the studio extra)",
        description="Serve the studio's web UI and REST API (OpenAPI at /docs), with worker "
        "processes beside it that make the videos.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (8000)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (1)")
    serve.add_argument(
        "--no-worker", action="store_true", help="no worker: run `kinetoscope worker` elsewhere"
    )
    _add_studio_options(serve)
    serve.set_defaults(
        handler=lambda a: run_serve(
            ServeOptions(_studio_options(a), a.host, a.port, 0 if a.no_worker else a.workers)
        )
    )


def _add_worker(commands: argparse._SubParsersAction) -> None:
    worker = commands.add_parser(
        "worker",
        help="run a studio worker: make the queued videos (needs the studio extra)",
        description="Load the model once and make the studio's queued videos, one at a time. "
        "SIGINT finishes the video in hand first; SIGTERM gives it back to the queue.",
    )
    _add_studio_options(worker)
    worker.set_defaults(handler=lambda a: run_worker(_studio_options(a)))


def _add_users(commands: argparse._SubParsersAction) -> None:
    users = commands.add_parser("users", help="studio accounts")
    user_commands = users.add_subparsers(dest="users_command", required=True, metavar="COMMAND")
    create = user_commands.add_parser(
        "create",
        help="make an account; prints its API key on the last line",
        description="Make a studio account. Its first API key is printed alone on the last "
        "line of standard output. Without --password it signs in with API keys only.",
    )
    create.add_argument("name", help="user name: 2-40 letters, digits, '_', '.' or '-'")
    create.add_argument("--tier", default="free", choices=("free", "plus", "pro"), help="plan")
    create.add_argument("--password", help="for signing in from a browser (8+ characters)")
    create.add_argument("--admin", action="store_true", help="may make accounts, feature videos")
    _add_studio_options(create, model=False)
    create.set_defaults(
        handler=lambda a: run_users_create(
            UserCreateOptions(_studio_options(a), a.name, a.tier, a.password, a.admin)
        )
    )
