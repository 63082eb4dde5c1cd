"""Clip shapes: buckets of (duration, height, width) that training batches and generation use.

A batch holds clips of one shape, so the model sees every aspect ratio and duration at its
native size, never cropped to a square or padded. The shapes come from three choices:

- an aspect ratio, one of `ASPECTS` ("1:1", "16:9", "9:16");
- a short side in pixels (128 for the default model); the long side is the short side times
  the ratio, rounded to the nearest multiple of `PIXEL_MULTIPLE`;
- a duration in seconds at an fps: ``frame_count(seconds, fps)`` frames, which must be 1 + 4k.

Sizes are multiples of 16 = the VAE's 8x spatial compression x the transformer's 2x2 patches,
and frame counts 1 + 4k fit the VAE's causal 4x temporal compression (1 + k latent frames).
At 16 fps, 1-4 s give 17, 33, 49 and 65 frames. `frame_size` and `clip_frames` are the same
rules that ``generate --aspect --size --seconds`` uses, so what generation asks for is what
training saw.

`BucketSampler` picks the bucket of each training step from (seed, step) alone, so a resumed
run and every rank of a distributed run agree on it without talking.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kinetoscope.errors import KinetoscopeError
from kinetoscope.world.spec import frame_count

SPATIAL_COMPRESSION = 8  # the VAE's
PATCH_SIZE = 2  # the transformer's spatial patch
PIXEL_MULTIPLE = SPATIAL_COMPRESSION * PATCH_SIZE  # 16: sizes that make whole patches
TEMPORAL_COMPRESSION = 4  # the VAE's: clips have 1 + 4k frames
LATENT_CHANNELS = 16
ASPECTS: dict[str, tuple[int, int]] = {"1:1": (1, 1), "16:9": (16, 9), "9:16": (9, 16)}
WEIGHTINGS = ("uniform", "tokens")


@dataclass(frozen=True)
class Bucket:
    """One clip shape: ``frames`` pixel frames of ``height`` x ``width``."""

    aspect: str  # a key of ASPECTS
    seconds: float
    frames: int  # 1 + 4k
    height: int  # a multiple of 16
    width: int  # a multiple of 16

    @property
    def latent_frames(self) -> int:
        return 1 + (self.frames - 1) // TEMPORAL_COMPRESSION

    @property
    def latent_shape(self) -> tuple[int, int, int, int]:
        """(C, t, h, w) of the clip's latents."""
        return (
            LATENT_CHANNELS,
            self.latent_frames,
            self.height // SPATIAL_COMPRESSION,
            self.width // SPATIAL_COMPRESSION,
        )

    @property
    def tokens(self) -> int:
        """Spacetime patches the transformer sees: t x h/2 x w/2."""
        _, frames, height, width = self.latent_shape
        return frames * (height // PATCH_SIZE) * (width // PATCH_SIZE)

    @property
    def name(self) -> str:
        """e.g. "16x9-2s-128x224": used in cache folder names, so no ':' or '/'."""
        return f"{self.aspect.replace(':', 'x')}-{self.seconds:g}s-{self.height}x{self.width}"


def check_aspect(aspect: str) -> tuple[int, int]:
    """(width ratio, height ratio) of a supported aspect, or a KinetoscopeError listing them."""
    if aspect not in ASPECTS:
        raise KinetoscopeError(f"unsupported aspect {aspect!r}; choose from {list(ASPECTS)}")
    return ASPECTS[aspect]


def check_short_side(short_side: int) -> int:
    """The short side, or a KinetoscopeError unless it is a positive multiple of 16."""
    if isinstance(short_side, bool) or not isinstance(short_side, int):
        raise KinetoscopeError(f"the short side must be an int, got {short_side!r}")
    if short_side < PIXEL_MULTIPLE or short_side % PIXEL_MULTIPLE:
        raise KinetoscopeError(
            f"the short side must be a multiple of {PIXEL_MULTIPLE} pixels (16, 32, ..., 128, "
            f"...), got {short_side}"
        )
    return short_side


def frame_size(short_side: int, aspect: str) -> tuple[int, int]:
    """(height, width) in pixels of a frame of ``aspect`` with that short side; the long side
    is rounded to the nearest multiple of 16 (128 at 16:9 gives 128 x 224)."""
    check_short_side(short_side)
    ratio_w, ratio_h = check_aspect(aspect)
    ratio = max(ratio_w, ratio_h) / min(ratio_w, ratio_h)  # >= 1
    long_side = round(short_side * ratio / PIXEL_MULTIPLE) * PIXEL_MULTIPLE
    return (short_side, long_side) if ratio_w >= ratio_h else (long_side, short_side)


def clip_frames(seconds: float, fps: float) -> int:
    """Frames of a clip of ``seconds`` at ``fps`` (`world.spec.frame_count`: one at t = 0, then
    one every 1/fps), checked to be 1 + 4k; the error names the nearest durations that are."""
    if not (isinstance(seconds, int | float) and seconds > 0):
        raise KinetoscopeError(f"seconds must be a positive number, got {seconds!r}")
    count = frame_count(seconds, fps)
    if (count - 1) % TEMPORAL_COMPRESSION:
        below = count - (count - 1) % TEMPORAL_COMPRESSION
        above = below + TEMPORAL_COMPRESSION
        raise KinetoscopeError(
            f"{seconds:g} s at {fps:g} fps is {count} frames, but clips have 1 + 4k frames: "
            f"try {(below - 1) / fps:g} s ({below} frames) or {(above - 1) / fps:g} s "
            f"({above} frames)"
        )
    return count


def bucket(short_side: int, aspect: str, seconds: float, fps: float) -> Bucket:
    """The bucket of one (short side, aspect, duration) at ``fps``."""
    height, width = frame_size(short_side, aspect)
    return Bucket(aspect, float(seconds), clip_frames(seconds, fps), height, width)


def buckets_for(
    short_side: int = 128,
    aspects: Sequence[str] = tuple(ASPECTS),
    durations: Sequence[float] = (1.0, 2.0, 3.0, 4.0),
    fps: float = 16.0,
) -> tuple[Bucket, ...]:
    """Every (aspect, duration) bucket, aspects outer, durations inner."""
    if not aspects or not durations:
        raise KinetoscopeError("buckets need at least one aspect and one duration")
    return tuple(bucket(short_side, a, s, fps) for a in aspects for s in durations)


def batch_size_for(bucket: Bucket, batch_size: int, max_tokens: int | None) -> int:
    """Clips per batch in ``bucket``: ``batch_size``, fewer when ``max_tokens`` caps the tokens
    of a batch (long clips then come fewer at a time), but always at least one."""
    if max_tokens is None:
        return batch_size
    return max(1, min(batch_size, max_tokens // bucket.tokens))


class BucketSampler:
    """Chooses each step's bucket: a pure function of (seed, step).

    ``weighting`` "uniform" draws every bucket equally often; "tokens" draws a bucket in
    proportion to its token count, so every token of training is equally likely to come from
    any bucket (long clips are seen more often, as they are most of what is generated).
    ``weights`` (one per bucket) multiply either.
    """

    def __init__(
        self,
        buckets: Sequence[Bucket],
        seed: int = 0,
        weighting: str = "uniform",
        weights: Sequence[float] | None = None,
    ) -> None:
        if not buckets:
            raise KinetoscopeError("a bucket sampler needs at least one bucket")
        if weighting not in WEIGHTINGS:
            raise KinetoscopeError(f"unknown weighting {weighting!r}; choose from {WEIGHTINGS}")
        extra = np.ones(len(buckets)) if weights is None else np.asarray(weights, dtype=float)
        if extra.shape != (len(buckets),) or not np.all(extra >= 0) or extra.sum() <= 0:
            raise KinetoscopeError(
                f"bucket weights must be {len(buckets)} numbers >= 0, not all 0, got {weights}"
            )
        tokens = np.array([b.tokens for b in buckets], dtype=float)
        probabilities = extra * (tokens if weighting == "tokens" else 1.0)
        self.buckets = tuple(buckets)
        self.seed = seed
        self.probabilities = probabilities / probabilities.sum()  # (N,)

    def __call__(self, step: int) -> Bucket:
        """The bucket of training step ``step``."""
        # a stream of its own ("buckets") so no other draw of the step shifts it
        rng = np.random.default_rng([self.seed, step, 0x6275636B])
        return self.buckets[int(rng.choice(len(self.buckets), p=self.probabilities))]
