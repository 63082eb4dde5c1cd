"""The studio's FastAPI application: the API routers, the web UI, limits and error answers.

`create_app(settings)` builds it; at start (its lifespan) it brings the database to the
newest schema, makes the data folders and readies the prompt policy (requests are checked
against it before they are queued). The model's weights are loaded by the workers
only: the app reads the model index to check requests.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from kinetoscope import __version__
from kinetoscope.errors import KinetoscopeError
from kinetoscope.pipeline import read_model_index
from kinetoscope.results import TOOLS
from kinetoscope.safety.policy import default_policy
from kinetoscope.studio.db import Database
from kinetoscope.studio.deps import Studio
from kinetoscope.studio.errors import StudioError
from kinetoscope.studio.queue import JobQueue
from kinetoscope.studio.routes import events, feed, uploads, users, videos
from kinetoscope.studio.settings import Settings
from kinetoscope.studio.storage import Storage
from kinetoscope.weights import DEFAULT_MODEL_DIR

WEB_DIR = Path(__file__).parent / "web"
UPLOAD_PATH = "/api/uploads"
MULTIPART_OVERHEAD = 64 * 1024  # form fields and boundaries around an upload's bytes

ASGIApp = Callable[..., Awaitable[None]]


def create_app(settings: Settings) -> FastAPI:
    """The studio app for ``settings``."""
    index = read_model_index(settings.model or DEFAULT_MODEL_DIR)
    studio = Studio(
        settings=settings,
        db=Database(settings.db_url),
        storage=Storage(settings.data_dir),
        queue=JobQueue(settings),
        index=index,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        studio.storage.prepare()
        studio.db.upgrade()
        default_policy().prepare()  # the prompt policy's encoder, before the first request
        yield
        studio.db.dispose()

    app = FastAPI(
        title="Kinetoscope Studio",
        version=__version__,
        description="Make videos from text, images and videos with Kinetoscope's tools.",
        lifespan=lifespan,
    )
    app.state.studio = studio
    for module in (users, uploads, videos, events, feed):
        app.include_router(module.router)
    _add_error_answers(app)
    app.add_middleware(
        BodyLimit,
        limit=settings.max_body_bytes,
        upload_limit=settings.max_upload_bytes + MULTIPART_OVERHEAD,
    )
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def index_page() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    return app


def _add_error_answers(app: FastAPI) -> None:
    """Every refusal is ``{"detail": message}`` with a status that says whose fault it is."""

    @app.exception_handler(StudioError)
    async def studio_error(_request: Request, exc: StudioError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(KinetoscopeError)
    async def library_error(_request: Request, exc: KinetoscopeError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        return JSONResponse(
            {"detail": "; ".join(_describe(error) for error in errors), "errors": _plain(errors)},
            status_code=422,
        )


def _describe(error: dict[str, Any]) -> str:
    """'seconds: Input should be greater than 0' from one pydantic error."""
    where = [str(part) for part in error.get("loc", ()) if part not in ("body", "query")]
    # a tagged union puts the kind in the location: keep the field names only
    where = [part for part in where if part not in TOOLS] or ["request"]
    return f"{'.'.join(where)}: {error.get('msg', 'invalid')}"


def _plain(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The errors without their Python objects (``ctx`` may hold exceptions)."""
    return [{key: error[key] for key in ("loc", "msg", "type") if key in error} for error in errors]


class BodyLimit:
    """Refuse request bodies over the limit (413) before the app reads them: by their
    Content-Length, or while they stream in when there is none."""

    def __init__(self, app: ASGIApp, limit: int, upload_limit: int) -> None:
        self.app = app
        self.limit = limit
        self.upload_limit = upload_limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.upload_limit if scope["path"].startswith(UPLOAD_PATH) else self.limit
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await _too_large(send, limit)
            return
        received, too_large, answered = 0, False, False

        async def counted() -> dict[str, Any]:
            # past the limit the app is told the client left, so it stops reading
            nonlocal received, too_large
            if too_large:
                return {"type": "http.disconnect"}
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                too_large = True
                return {"type": "http.disconnect"}
            return message

        async def guarded(message: dict[str, Any]) -> None:
            # whatever the app answers to a cut-off body, the client gets the 413
            nonlocal answered
            if too_large:
                if not answered:
                    answered = True
                    await _too_large(send, limit)
                return
            answered = True
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not too_large:
                raise
            if not answered:
                await _too_large(send, limit)


async def _too_large(send: Any, limit: int) -> None:
    response = JSONResponse(
        {"detail": f"the request body is larger than the {limit} bytes allowed"}, status_code=413
    )
    await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> dict[str, Any]:
    return {"type": "http.disconnect"}


def serve(settings: Settings, host: str, port: int, workers: int) -> None:
    """Run the app with uvicorn, and ``workers`` worker processes beside it."""
    import uvicorn

    from kinetoscope.studio.worker import WorkerProcesses

    # the schema first, so that the workers and the app never race to make it
    Storage(settings.data_dir).prepare()
    database = Database(settings.db_url)
    database.upgrade()
    database.dispose()
    app = create_app(settings)
    processes = WorkerProcesses(settings, workers)
    # uvicorn stops on SIGTERM, then raises it again: end with an exit, so that the workers
    # are stopped below (each gives its job back to the queue) rather than left behind
    signal.signal(signal.SIGTERM, _exit_quietly)
    processes.start()
    try:
        uvicorn.run(app, host=host, port=port, log_level="info")
    finally:
        processes.stop()


def _exit_quietly(_signal: int, _frame: object) -> None:
    raise SystemExit(0)
