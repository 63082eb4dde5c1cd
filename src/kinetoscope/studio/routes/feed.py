"""The feed: public finished videos, featured ones first, then the newest."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from kinetoscope.studio.db import Video
from kinetoscope.studio.deps import OptionalUser, SessionDep
from kinetoscope.studio.routes.videos import video_out
from kinetoscope.studio.schemas import VideoList

router = APIRouter(prefix="/api/feed", tags=["feed"])


@router.get("", response_model=VideoList)
def feed(
    viewer: OptionalUser,
    session: SessionDep,
    featured: Annotated[bool, Query(description="featured videos only")] = False,
    limit: Annotated[int, Query(ge=1, le=100)] = 30,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> VideoList:
    query = select(Video).where(Video.public.is_(True), Video.status == "succeeded")
    if featured:
        query = query.where(Video.featured.is_(True))
    query = query.order_by(Video.featured.desc(), Video.created_at.desc())
    rows = session.scalars(query.limit(limit).offset(offset))
    return VideoList(videos=[video_out(session, row, viewer) for row in rows])
