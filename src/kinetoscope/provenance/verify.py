"""Check where a video came from: its C2PA manifest and its invisible watermark, together.

The two answer different questions. The manifest says, verifiably, who made the file and how,
but stripping it or re-encoding the video removes it. The watermark lives in the pixels, so it
survives re-encoding, but says only that a Kinetoscope model made the frames (and a short
payload). A file with a valid manifest and a watermark is a Kinetoscope video as written; a
watermark without a manifest is one whose metadata was lost or removed.

Frames smaller than the watermark's `MIN_SIDE` on a side cannot carry the mark, so they are
not searched: the report says the watermark was not checked.
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kinetoscope.io.video import read_video
from kinetoscope.provenance.c2pa import ManifestReport, read_manifest
from kinetoscope.provenance.watermark import (
    MIN_SIDE,
    PAYLOAD_BITS,
    WatermarkReading,
    detect_watermark,
)

__all__ = ["VerifyReport", "verify_file"]


@dataclass(frozen=True)
class VerifyReport:
    """What `verify_file` found in one file: its manifest and its watermark reading (None
    when the frames were too small to search)."""

    path: Path
    manifest: ManifestReport
    watermark: WatermarkReading | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: file, manifest, trusted, reason, summary and watermark
        (checked, detected, payload as a hex string or None, confidence)."""
        reading = self.watermark
        payload = None if reading is None else reading.payload
        return {
            "file": str(self.path),
            **self.manifest.to_dict(),
            "watermark": {
                "checked": reading is not None,
                "detected": reading is not None and bool(reading.detected),
                "payload": None if payload is None else f"{payload:0{PAYLOAD_BITS // 4}x}",
                "confidence": 0.0 if reading is None else float(reading.confidence),
            },
        }


def verify_file(
    path: str | os.PathLike[str], trust_anchors: list[Path] | None = None
) -> VerifyReport:
    """Read ``path``'s C2PA manifest (trusting ``trust_anchors``, default:
    `~kinetoscope.provenance.identity.default_trust_anchors`) and look for the watermark in
    its frames. Raises `~kinetoscope.errors.VideoError` when the file is not a readable
    video; whatever the manifest and watermark are, a report comes back."""
    path = Path(path)
    video = read_video(path)  # first, so that an unreadable file fails before anything else
    manifest = read_manifest(path, trust_anchors)
    watermark = None
    if min(video.height, video.width) >= MIN_SIDE:
        watermark = detect_watermark(video.frames)  # frames: (T, H, W, 3) uint8
    return VerifyReport(path=path, manifest=manifest, watermark=watermark)
