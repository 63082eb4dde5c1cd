"""Files under the data folder: uploads and the videos the workers make.

Layout (paths in the database are relative to the data folder, so it can move):

    uploads/ID.EXT          an upload, as sent (after it decoded)
    videos/ID.mp4           a made video, written by `kinetoscope.results.save` (watermarked
    videos/ID.mp4.json      and signed there), with its sidecar record

Every file appears whole or not at all: it is written under a hidden temporary name beside
its place and moved there in one step (`os.replace`).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from kinetoscope.results import record_path
from kinetoscope.studio.errors import StudioError

UPLOADS = "uploads"
VIDEOS = "videos"


class TooLargeError(StudioError):
    status = 413


class Storage:
    """The data folder's files."""

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir)

    def prepare(self) -> None:
        """Make the folders (the data folder included) if they are missing."""
        for folder in (UPLOADS, VIDEOS):
            (self.root / folder).mkdir(parents=True, exist_ok=True)

    def path(self, relative: str) -> Path:
        """The absolute path of a stored file."""
        return self.root / relative

    @staticmethod
    def upload_name(upload_id: str, suffix: str) -> str:
        return f"{UPLOADS}/{upload_id}{suffix}"

    @staticmethod
    def video_name(video_id: str) -> str:
        return f"{VIDEOS}/{video_id}.mp4"

    def write(self, relative: str, chunks: Iterable[bytes], limit: int) -> int:
        """Write ``chunks`` to a stored file atomically; returns its size in bytes, or a
        `TooLargeError` (nothing written) past ``limit`` bytes."""
        target = self.path(relative)
        temporary = target.with_name(f".{target.name}.{secrets.token_hex(6)}.part")
        written = 0
        try:
            with open(temporary, "wb") as file:
                for chunk in chunks:
                    written += len(chunk)
                    if written > limit:
                        raise TooLargeError(
                            f"the file is larger than the {limit >> 20} MiB allowed"
                        )
                    file.write(chunk)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)
        return written

    def delete(self, relative: str | None) -> None:
        """Remove a stored file and its sidecar record, if there."""
        if relative is None:
            return
        path = self.path(relative)
        path.unlink(missing_ok=True)
        record_path(path).unlink(missing_ok=True)
