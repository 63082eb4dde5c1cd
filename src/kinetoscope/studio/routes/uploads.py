"""Uploads: images and videos for the tools, each with the uploader's rights attestation.

An upload is checked before it is kept: a known file type, within the plan's size limit, a
rights attestation, and a file `kinetoscope.io.video.read_video` decodes (an image is a
one-frame file), at least `MIN_INPUT_SIDE` pixels a side, at most `MAX_SECONDS` long and at
most `MAX_DECODED_BYTES` of decoded frames (about 7 s of 1080p: the studio works at small
sizes).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from pathlib import Path, PurePath
from typing import Annotated, BinaryIO

from fastapi import APIRouter, File, Form, UploadFile
from sqlalchemy import select

from kinetoscope.errors import KinetoscopeError
from kinetoscope.inputs import MIN_INPUT_SIDE
from kinetoscope.io.video import Video, read_video
from kinetoscope.pipeline import MAX_SECONDS
from kinetoscope.studio.db import Upload
from kinetoscope.studio.deps import CurrentUser, SessionDep, StudioDep
from kinetoscope.studio.errors import NotFoundError, StudioError
from kinetoscope.studio.plans import plan_for
from kinetoscope.studio.schemas import UploadOut

router = APIRouter(prefix="/api/uploads", tags=["uploads"])
IMAGE_TYPES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
VIDEO_TYPES = (".mp4", ".webm", ".mov", ".mkv", ".avi", ".gif")
CHUNK = 1 << 20
MAX_DECODED_BYTES = 1 << 30  # of RGB frames: bounds the memory one upload's check takes


class UploadRefusedError(StudioError):
    status = 422


def upload_out(row: Upload) -> UploadOut:
    return UploadOut(
        id=row.id,
        media=row.media,
        filename=row.filename,
        bytes=row.bytes,
        frames=row.frames,
        width=row.width,
        height=row.height,
        fps=row.fps,
        seconds=row.frames / row.fps,
        sha256=row.sha256,
        rights_attested=row.rights_attested,
        created_at=row.created_at,
    )


@router.post("", response_model=UploadOut, status_code=201)
def create_upload(
    file: Annotated[UploadFile, File(description="an image or a video")],
    rights_attested: Annotated[
        bool, Form(description="true: you hold the rights to this file (required)")
    ],
    user: CurrentUser,
    session: SessionDep,
    studio: StudioDep,
) -> UploadOut:
    """Upload an image or a video for the tools; answers its id."""
    # 1. what can be checked before reading a byte
    if rights_attested is not True:
        raise UploadRefusedError(
            "an upload needs rights_attested=true: attest that you hold the rights to it"
        )
    filename = PurePath(file.filename or "upload").name[:200]
    suffix = PurePath(filename).suffix.lower()
    if suffix not in IMAGE_TYPES + VIDEO_TYPES:
        raise StudioError(
            f"{filename!r}: unsupported file type; images: {', '.join(IMAGE_TYPES)}; "
            f"videos: {', '.join(VIDEO_TYPES)}",
            status=415,
        )
    limit = min(plan_for(user.tier).max_upload_bytes, studio.settings.max_upload_bytes)
    # 2. the bytes, stored under a new id (at most `limit` of them), hashed on the way
    upload_id = secrets.token_hex(16)
    relative = studio.storage.upload_name(upload_id, suffix)
    digest = hashlib.sha256()
    size = studio.storage.write(relative, _chunks(file.file, digest), limit)
    # 3. it must decode, within bounds; an image is one frame
    path = studio.storage.path(relative)
    try:
        video = _decode(studio.storage.path(relative), filename)
        media = "image" if suffix in IMAGE_TYPES or video.num_frames == 1 else "video"
        _check_media(filename, media, video)
    except UploadRefusedError:
        path.unlink(missing_ok=True)
        raise
    row = Upload(
        id=upload_id,
        user_id=user.id,
        media=media,
        filename=filename,
        file=relative,
        bytes=size,
        frames=video.num_frames,
        width=video.width,
        height=video.height,
        fps=video.fps,
        sha256=digest.hexdigest(),
        rights_attested=True,
    )
    session.add(row)
    session.flush()
    return upload_out(row)


@router.get("", response_model=list[UploadOut])
def list_uploads(user: CurrentUser, session: SessionDep) -> list[UploadOut]:
    rows = session.scalars(
        select(Upload).where(Upload.user_id == user.id).order_by(Upload.created_at.desc())
    )
    return [upload_out(row) for row in rows]


@router.get("/{upload_id}", response_model=UploadOut)
def get_upload(upload_id: str, user: CurrentUser, session: SessionDep) -> UploadOut:
    return upload_out(_own_upload(session, upload_id, user.id))


@router.delete("/{upload_id}", status_code=204)
def delete_upload(
    upload_id: str, user: CurrentUser, session: SessionDep, studio: StudioDep
) -> None:
    row = _own_upload(session, upload_id, user.id)
    session.delete(row)
    session.commit()
    studio.storage.delete(row.file)


def _own_upload(session: SessionDep, upload_id: str, user_id: int) -> Upload:
    row = session.get(Upload, upload_id)
    if row is None or row.user_id != user_id:
        raise NotFoundError(f"no upload {upload_id}")
    return row


def _chunks(stream: BinaryIO, digest: hashlib._Hash) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
        yield chunk


def _decode(path: Path, filename: str) -> Video:
    """The upload's frames, decoding at most `MAX_DECODED_BYTES` of them."""
    try:
        first = read_video(path, max_frames=1)
        budget = MAX_DECODED_BYTES // (first.height * first.width * 3)
        video = read_video(path, max_frames=budget + 1)
    except KinetoscopeError as exc:
        message = str(exc).replace(str(path), repr(filename))
        raise UploadRefusedError(f"{filename!r} cannot be decoded: {message}") from exc
    if video.num_frames > budget:
        raise UploadRefusedError(
            f"{filename!r} is too long for its size: at most {budget} frames of "
            f"{first.width}x{first.height}"
        )
    return video


def _check_media(filename: str, media: str, video: Video) -> None:
    if media == "image" and video.num_frames != 1:
        raise UploadRefusedError(
            f"{filename!r} is named as an image but holds {video.num_frames} frames"
        )
    if min(video.width, video.height) < MIN_INPUT_SIDE:
        raise UploadRefusedError(
            f"{filename!r} is {video.width}x{video.height}: at least {MIN_INPUT_SIDE} pixels "
            "a side, please"
        )
    if video.seconds > MAX_SECONDS:
        raise UploadRefusedError(
            f"{filename!r} lasts {video.seconds:g} s; the tools take videos up to {MAX_SECONDS:g} s"
        )
