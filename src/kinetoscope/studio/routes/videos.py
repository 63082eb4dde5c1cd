"""Videos: create (queue a job), read, download, change, like, cancel or delete.

A private video is visible to its owner alone: to anyone else it does not exist (404, the
same answer as for an id that was never made). A public one anyone may watch, like and use
as an input (the new video credits its creator).
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Body, Query
from fastapi.responses import FileResponse
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kinetoscope.studio import jobs
from kinetoscope.studio.db import ACTIVE_STATUSES, STATUSES, Like, User, Video, utcnow
from kinetoscope.studio.deps import CurrentUser, OptionalUser, SessionDep, StudioDep
from kinetoscope.studio.errors import ConflictError, ForbiddenError, NotFoundError
from kinetoscope.studio.kinds import prepare, resolver
from kinetoscope.studio.plans import check_request, plan_for
from kinetoscope.studio.schemas import Created, VideoChange, VideoCreate, VideoList, VideoOut

router = APIRouter(prefix="/api/videos", tags=["videos"])


def visible_video(session: Session, video_id: str, viewer: User | None) -> Video:
    """The video if ``viewer`` may see it (theirs, or public), else `NotFoundError`."""
    video = session.get(Video, video_id)
    if video is None or not (video.public or (viewer is not None and video.user_id == viewer.id)):
        raise NotFoundError(f"no video {video_id}")
    return video


def own_video(session: Session, video_id: str, user: User) -> Video:
    video = session.get(Video, video_id)
    if video is None or video.user_id != user.id:
        raise NotFoundError(f"no video {video_id}")
    return video


def video_out(session: Session, video: Video, viewer: User | None) -> VideoOut:
    """A video as the API shows it to ``viewer``."""
    creator = session.get(User, video.user_id)
    credited = None if video.credited_user_id is None else session.get(User, video.credited_user_id)
    likes = session.scalar(select(func.count()).select_from(Like).where(Like.video_id == video.id))
    liked = viewer is not None and session.get(Like, (viewer.id, video.id)) is not None
    return VideoOut(
        id=video.id,
        kind=video.kind,
        status=video.status,
        progress=video.progress,
        error=video.error,
        parameters=video.parameters,
        title=video.title,
        creator=creator.name if creator else "",
        credited_creator=credited.name if credited else None,
        source_video=video.source_video_id,
        public=video.public,
        featured=video.featured,
        seconds=video.seconds,
        size=video.size,
        credits=video.credits,
        attempts=video.attempts,
        likes=int(likes or 0),
        liked=liked,
        mine=viewer is not None and viewer.id == video.user_id,
        file_url=f"/api/videos/{video.id}/file" if video.status == "succeeded" else None,
        created_at=video.created_at,
        finished_at=video.finished_at,
    )


@router.post("", response_model=Created, status_code=202)
def create_video(
    body: Annotated[VideoCreate, Body()],
    user: CurrentUser,
    session: SessionDep,
    studio: StudioDep,
) -> Created:
    """Queue a video of any kind; poll ``GET /api/videos/{id}`` or follow its events."""
    # 1. the request, its inputs and the model's rules
    job = prepare(body, user, resolver(session, studio.storage, user), studio.index)
    # 2. the plan's limits (a failed or cancelled video costs nothing), counted with the
    # account held until the video is stored: simultaneous requests are counted in turn
    plan = plan_for(user.tier)
    jobs.lock_account(session, user)
    used = jobs.usage(session, user)
    cost = check_request(plan, job.seconds, job.size, used.active_jobs, used.credits_used)
    # 3. stored first, then queued: a job the queue loses is found again from the database
    video = Video(
        id=secrets.token_hex(16),
        user_id=user.id,
        kind=job.kind,
        parameters=job.parameters,
        title=body.title,
        public=body.public,
        seconds=job.seconds,
        size=job.size,
        credits=cost,
        priority=plan.priority,
        source_video_id=job.source_video_id,
        credited_user_id=job.credited_user_id,
    )
    session.add(video)
    session.commit()
    studio.queue.enqueue(video.id, plan.priority)
    return Created(id=video.id, status=video.status)


@router.get("", response_model=VideoList)
def list_videos(
    user: CurrentUser,
    session: SessionDep,
    status: Annotated[str | None, Query(description=" or ".join(STATUSES))] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> VideoList:
    """The caller's own videos, newest first."""
    query = select(Video).where(Video.user_id == user.id)
    if status is not None:
        query = query.where(Video.status == status)
    rows = session.scalars(query.order_by(Video.created_at.desc()).limit(limit).offset(offset))
    return VideoList(videos=[video_out(session, row, user) for row in rows])


@router.get("/{video_id}", response_model=VideoOut)
def get_video(video_id: str, viewer: OptionalUser, session: SessionDep) -> VideoOut:
    """A video's status, progress (0-1), error and parameters."""
    return video_out(session, visible_video(session, video_id, viewer), viewer)


@router.get("/{video_id}/file", response_class=FileResponse)
def get_file(
    video_id: str,
    viewer: OptionalUser,
    session: SessionDep,
    studio: StudioDep,
    download: bool = False,
) -> FileResponse:
    """The mp4 (``download=true``: as an attachment)."""
    video = visible_video(session, video_id, viewer)
    if video.status != "succeeded" or video.file is None:
        raise ConflictError(f"video {video_id} is {video.status}: there is no file yet")
    return FileResponse(
        studio.storage.path(video.file),
        media_type="video/mp4",
        filename=f"kinetoscope-{video_id}.mp4",
        content_disposition_type="attachment" if download else "inline",
    )


@router.patch("/{video_id}", response_model=VideoOut)
def change_video(
    video_id: str, body: VideoChange, user: CurrentUser, session: SessionDep
) -> VideoOut:
    """Its owner renames, publishes or unpublishes it; an admin features a public one."""
    video = visible_video(session, video_id, user)
    if (body.title is not None or body.public is not None) and video.user_id != user.id:
        raise ForbiddenError("only its creator may rename, publish or unpublish a video")
    if body.featured is not None and not user.is_admin:
        raise ForbiddenError("only an admin may feature a video")
    if body.title is not None:
        video.title = body.title
    if body.public is not None:
        video.public = body.public
        if not body.public:
            video.featured = False
    if body.featured:
        if not video.public:
            raise ConflictError("only a public video can be featured")
        video.featured = True
    elif body.featured is False:
        video.featured = False
    video.updated_at = utcnow()
    session.flush()
    return video_out(session, video, user)


@router.delete("/{video_id}", response_model=Created)
def delete_video(
    video_id: str, user: CurrentUser, session: SessionDep, studio: StudioDep
) -> Created:
    """Cancel a queued or running video; delete a finished one (and its file)."""
    video = own_video(session, video_id, user)
    if video.status in ACTIVE_STATUSES:
        jobs.cancel(session, video)
        return Created(id=video.id, status=video.status)
    file = video.file
    session.delete(video)
    session.commit()
    studio.storage.delete(file)
    return Created(id=video_id, status="deleted")


@router.post("/{video_id}/like", response_model=VideoOut)
def like(video_id: str, user: CurrentUser, session: SessionDep) -> VideoOut:
    video = visible_video(session, video_id, user)
    if session.get(Like, (user.id, video.id)) is None:
        session.add(Like(user_id=user.id, video_id=video.id))
        session.flush()
    return video_out(session, video, user)


@router.delete("/{video_id}/like", response_model=VideoOut)
def unlike(video_id: str, user: CurrentUser, session: SessionDep) -> VideoOut:
    video = visible_video(session, video_id, user)
    row = session.get(Like, (user.id, video.id))
    if row is not None:
        session.delete(row)
        session.flush()
    return video_out(session, video, user)
