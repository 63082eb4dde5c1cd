"""Images and videos given to the creative tools: read, checked, recorded and fitted to a clip.

An input is a path (any image or video that PyAV decodes: png, jpg, webp, mp4, webm, gif, ...)
or frames already in memory (a `Video`). Inputs are *uploads*: the caller must attest that
they hold the rights to them (``rights_attested=True`` in the library, ``--i-own-the-rights``
on the command line); the attestation goes into the output's record and manifest.

Fitting policy (documented in docs/tools.md): an input whose size or frame rate differs from
the clip being made is centre-cropped to the clip's aspect ratio, resized with an antialiased
bilinear filter and resampled to the clip's fps (nearest frame in time), with an
`InputAdjustedWarning` saying so. Inputs under `MIN_INPUT_SIDE` pixels on a side are refused.
"""

from __future__ import annotations

import hashlib
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from kinetoscope.errors import KinetoscopeError
from kinetoscope.io.video import Video, read_video
from kinetoscope.training.buckets import ASPECTS

MIN_INPUT_SIDE = 16
Source = str | os.PathLike[str] | Video


class InputError(KinetoscopeError, ValueError):
    """An input image or video that cannot be used; the message names it and why."""


class InputAdjustedWarning(UserWarning):
    """An input was cropped, resized or resampled to fit the clip being made."""


@dataclass(frozen=True, eq=False)
class LoadedInput:
    """One input, read: its frames, and what the record keeps of it."""

    role: str  # "image", "video", "video_a", ...
    video: Video
    path: str | None  # None for frames given in memory (such a run cannot be reproduced)
    sha256: str  # of the file's bytes, or `frames_sha256` for an in-memory input
    rights_attested: bool

    def to_record(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "path": self.path,
            "sha256": self.sha256,
            "frames": self.video.num_frames,
            "size": [self.video.height, self.video.width],
            "fps": self.video.fps,
            "rights_attested": self.rights_attested,
        }


def check_rights(rights_attested: bool, roles: str) -> None:
    """Raise `InputError` unless the caller attested the rights to the inputs."""
    if rights_attested is not True:
        raise InputError(
            f"the {roles} you give is an upload: attest that you own the rights to it "
            "(rights_attested=True, or --i-own-the-rights on the command line)"
        )


def load_input(
    source: Source, role: str, rights_attested: bool, image: bool = False
) -> LoadedInput:
    """Read an input (a path or a `Video`) and check it; ``image``: keep its first frame only
    and refuse a file that is a video of many frames."""
    check_rights(rights_attested, role)
    if isinstance(source, Video):
        video = source
        digest = frames_sha256(video.frames)
        path = None
    elif isinstance(source, str | os.PathLike):
        file = Path(source)
        if not file.is_file():
            raise InputError(f"{role} {file}: no such file")
        try:
            video = read_video(file)
        except KinetoscopeError as exc:
            raise InputError(f"{role} {file} cannot be read: {exc}") from exc
        from kinetoscope.provenance.c2pa import file_sha256  # C2PA's import is slow: when needed

        digest = file_sha256(file)
        path = str(file.resolve())
    else:
        raise InputError(f"the {role} must be a path or a Video, got {type(source).__name__}")
    if image and video.num_frames > 1:
        raise InputError(f"the {role} must be an image, got a video of {video.num_frames} frames")
    if min(video.height, video.width) < MIN_INPUT_SIDE:
        raise InputError(
            f"the {role} is {video.width}x{video.height}: inputs need at least "
            f"{MIN_INPUT_SIDE} pixels on each side"
        )
    return LoadedInput(role, video, path, digest, rights_attested)


def frames_sha256(frames: Tensor) -> str:
    """The SHA-256 of uint8 frames (T, H, W, 3) and their shape."""
    digest = hashlib.sha256(str(tuple(frames.shape)).encode())
    digest.update(frames.contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


def nearest_aspect(height: int, width: int) -> str:
    """The supported aspect ratio closest (in log ratio) to a frame's."""
    ratio = width / height

    def distance(aspect: str) -> float:
        ratio_w, ratio_h = ASPECTS[aspect]
        return abs(math.log(ratio * ratio_h / ratio_w))

    return min(ASPECTS, key=distance)


def fit_frames(video: Video, height: int, width: int, fps: float, role: str) -> Tensor:
    """``video``'s frames (T', height, width, 3) uint8 at ``fps``: centre-cropped to the
    aspect ratio, resized and resampled in time, with a notice when anything changed."""
    frames = video.frames  # (T, H, W, 3) uint8
    changes = []
    if video.num_frames > 1 and abs(video.fps - fps) > 1e-6:
        frames = _resample_time(frames, video.fps, fps)
        changes.append(f"resampled from {video.fps:g} to {fps:g} fps")
    if (video.height, video.width) != (height, width):
        frames = _crop_and_resize(frames, height, width)
        changes.append(f"resized from {video.width}x{video.height} to {width}x{height}")
    if changes:
        warnings.warn(f"the {role} was {' and '.join(changes)}", InputAdjustedWarning, stacklevel=3)
    return frames.contiguous()


def _resample_time(frames: Tensor, fps: float, target_fps: float) -> Tensor:
    """(T, H, W, 3) at ``fps`` to the nearest frame at each instant of ``target_fps``."""
    seconds = frames.shape[0] / fps
    count = max(1, round(seconds * target_fps))
    times = torch.arange(count, dtype=torch.float64) / target_fps  # (T',)
    index = (times * fps).round().long().clamp(max=frames.shape[0] - 1)  # (T',)
    return frames[index]  # (T', H, W, 3)


def _crop_and_resize(frames: Tensor, height: int, width: int) -> Tensor:
    """(T, H, W, 3) uint8, centre-cropped to height:width and resized (antialiased)."""
    source_h, source_w = frames.shape[1:3]
    # the largest centred window of the target's aspect ratio
    crop_h = min(source_h, round(source_w * height / width))
    crop_w = min(source_w, round(source_h * width / height))
    top, left = (source_h - crop_h) // 2, (source_w - crop_w) // 2
    window = frames[:, top : top + crop_h, left : left + crop_w]  # (T, h, w, 3)
    pixels = window.permute(0, 3, 1, 2).float()  # (T, 3, h, w)
    resized = F.interpolate(
        pixels, size=(height, width), mode="bilinear", antialias=True, align_corners=False
    )  # (T, 3, height, width)
    return resized.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)  # (T, H, W, 3)
