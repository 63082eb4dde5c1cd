"""A video's progress as server-sent events (``text/event-stream``).

Each event is ``event: status`` with the video's JSON (as ``GET /api/videos/{id}``) as its
data, sent when its status or progress changes; the stream ends after a final status
(succeeded, failed, cancelled) or after `MAX_STREAM_SECONDS` (a browser's EventSource then
reconnects by itself). A comment line every `KEEPALIVE_SECONDS` keeps proxies from closing it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from kinetoscope.studio.db import FINAL_STATUSES, User
from kinetoscope.studio.deps import OptionalUser, SessionDep, Studio, StudioDep
from kinetoscope.studio.errors import NotFoundError
from kinetoscope.studio.routes.videos import video_out, visible_video

router = APIRouter(prefix="/api/videos", tags=["events"])
POLL_SECONDS = 0.25
KEEPALIVE_SECONDS = 15.0
MAX_STREAM_SECONDS = 600.0


@router.get(
    "/{video_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
def events(
    video_id: str, request: Request, viewer: OptionalUser, session: SessionDep, studio: StudioDep
) -> StreamingResponse:
    """Follow a video's status and progress until it ends."""
    visible_video(session, video_id, viewer)  # 404 before the stream starts
    session.commit()  # hold no transaction (nor a write lock) while the stream lasts
    return StreamingResponse(
        _stream(studio, video_id, viewer, request),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _stream(
    studio: Studio, video_id: str, viewer: User | None, request: Request
) -> AsyncIterator[str]:
    started = last_sent = time.monotonic()
    previous = None
    while time.monotonic() - started < MAX_STREAM_SECONDS:
        snapshot = await asyncio.to_thread(_snapshot, studio, video_id, viewer)
        if snapshot is None:  # deleted meanwhile
            yield "event: gone\ndata: {}\n\n"
            return
        status, data = snapshot
        if data != previous:
            previous, last_sent = data, time.monotonic()
            yield f"event: status\ndata: {data}\n\n"
            if status in FINAL_STATUSES:
                return
        elif time.monotonic() - last_sent > KEEPALIVE_SECONDS:
            last_sent = time.monotonic()
            yield ": keep-alive\n\n"
        if await request.is_disconnected():
            return
        await asyncio.sleep(POLL_SECONDS)


def _snapshot(studio: Studio, video_id: str, viewer: User | None) -> tuple[str, str] | None:
    with studio.db.sessions() as session:
        try:
            video = visible_video(session, video_id, viewer)
        except NotFoundError:
            return None
        return video.status, video_out(session, video, viewer).model_dump_json()
