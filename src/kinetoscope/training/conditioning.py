"""Frame conditioning for training: which latent frames of each clip the model is shown.

One diffusion transformer does text-to-video, image-to-video, extension, connect and loop: the
difference is only which latent frames are *known* (given clean, beside the noisy input) and
which it must generate. Training draws a pattern per sample so that the model learns them all:

    none            no frame known: text-to-video
    first_frame     frame 0: image-to-video, and extension from a single frame
    first_frames    frames [0, k): extending a clip forwards
    last_frame      the last frame: a clip leading up to an image
    last_frames     the last k frames: extending a clip backwards
    first_and_last  frames 0 and t-1: connect two images, and loop (same image at both ends)
    both_ends       frames [0, k) and the last j: connect two clips, and loop a video
    random_frames   k frames anywhere: keyframes, and robustness to any mask

``k`` is drawn uniformly from 1 .. t-1 (at least one frame is always left to generate; for
both_ends k from 1 .. t-2, then j from 1 .. t-1-k), and a pattern that cannot leave a frame
unknown at this length is never drawn for it (for a one-frame clip, an image, only "none"
remains; "first_and_last" and "both_ends" need three frames): the remaining patterns'
probabilities are renormalised. A saved config without a pattern's weight (written before the
pattern existed) reads it as 0. Draws come from the given `torch.Generator` alone,
so a training step's masks are a pure function of its seed.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor

from kinetoscope.errors import KinetoscopeError

PATTERNS: tuple[str, ...] = (
    "none",
    "first_frame",
    "first_frames",
    "last_frame",
    "last_frames",
    "first_and_last",
    "both_ends",
    "random_frames",
)
# the fewest latent frames at which each pattern still leaves a frame to generate
MIN_FRAMES: dict[str, int] = {
    "none": 1,
    "first_frame": 2,
    "first_frames": 2,
    "last_frame": 2,
    "last_frames": 2,
    "first_and_last": 3,
    "both_ends": 3,
    "random_frames": 2,
}


@dataclass(frozen=True)
class ConditioningConfig:
    """Relative probability of each pattern (one field per name in `PATTERNS`); 0 turns a
    pattern off. The defaults keep text-to-video the most common case."""

    none: float = 0.4
    first_frame: float = 0.2
    first_frames: float = 0.1
    last_frame: float = 0.05
    last_frames: float = 0.1
    first_and_last: float = 0.05
    both_ends: float = 0.05
    random_frames: float = 0.05

    def validate(self) -> ConditioningConfig:
        """Raise KinetoscopeError naming the first bad weight; return self."""
        weights = self.weights()
        for name, weight in zip(PATTERNS, weights, strict=True):
            if not weight >= 0:  # also catches NaN
                raise KinetoscopeError(f"conditioning weight {name} must be >= 0, got {weight}")
        if self.none <= 0:
            # single-frame clips (images) can only be drawn unconditioned
            raise KinetoscopeError(
                "conditioning weight none must be > 0: it is the only pattern for 1-frame clips"
            )
        return self

    def weights(self) -> tuple[float, ...]:
        """The weights in `PATTERNS` order."""
        return tuple(float(getattr(self, name)) for name in PATTERNS)

    def to_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, float]) -> ConditioningConfig:
        """The inverse of `to_dict`; a pattern the dict does not name gets weight 0, so that a
        config saved before the pattern existed keeps drawing what it drew."""
        return cls(**({name: 0.0 for name in PATTERNS} | data))


def pattern_mask(pattern: str, latent_frames: int, count: int = 1, end_count: int = 1) -> Tensor:
    """The known-frame mask (t,) bool of a deterministic pattern: ``count`` is k for
    first_frames, last_frames and both_ends, ``end_count`` is both_ends' j; the others ignore
    them. "random_frames" has no fixed mask: see `sample_known_mask`. Raises KinetoscopeError
    for a pattern that would know every frame.
    """
    if pattern not in PATTERNS or pattern == "random_frames":
        fixed = [name for name in PATTERNS if name != "random_frames"]
        raise KinetoscopeError(f"unknown frame pattern {pattern!r}; choose from {fixed}")
    if latent_frames < MIN_FRAMES[pattern]:
        raise KinetoscopeError(
            f"pattern {pattern} needs at least {MIN_FRAMES[pattern]} latent frames "
            f"to leave one to generate, got {latent_frames}"
        )
    if pattern in ("first_frames", "last_frames") and not 1 <= count < latent_frames:
        raise KinetoscopeError(
            f"{pattern} takes 1 to {latent_frames - 1} known frames of {latent_frames}, got {count}"
        )
    if pattern == "both_ends" and not (
        count >= 1 and end_count >= 1 and count + end_count < latent_frames
    ):
        raise KinetoscopeError(
            f"both_ends takes at least one known frame at each end and at most "
            f"{latent_frames - 1} in all of {latent_frames}, got {count} + {end_count}"
        )
    # every fixed pattern is a run of known frames at the start and one at the end
    head, tail = {
        "none": (0, 0),
        "first_frame": (1, 0),
        "first_frames": (count, 0),
        "last_frame": (0, 1),
        "last_frames": (0, count),
        "first_and_last": (1, 1),
        "both_ends": (count, end_count),
    }[pattern]
    mask = torch.zeros(latent_frames, dtype=torch.bool)  # (t,)
    mask[:head] = True
    mask[latent_frames - tail :] = True
    return mask


def sample_known_mask(
    config: ConditioningConfig,
    batch: int,
    latent_frames: int,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, list[str]]:
    """Draw a pattern per sample: returns known_mask (B, t) bool and the patterns' names.

    Every row leaves at least one frame unknown. Deterministic for a seeded ``generator``.
    """
    if batch < 1 or latent_frames < 1:
        raise KinetoscopeError(
            f"batch and latent_frames must be at least 1, got {batch} and {latent_frames}"
        )
    possible = torch.tensor(
        [
            w if latent_frames >= MIN_FRAMES[name] else 0.0
            for name, w in zip(PATTERNS, config.weights(), strict=True)
        ],
        dtype=torch.float64,
    )  # (P,)
    if possible.sum() <= 0:
        raise KinetoscopeError(f"no conditioning pattern applies to {latent_frames} frames")
    drawn = torch.multinomial(possible, batch, replacement=True, generator=generator)  # (B,)
    masks, names = [], []
    for index in drawn.tolist():
        name = PATTERNS[index]
        if name == "both_ends":
            start = int(torch.randint(1, latent_frames - 1, (1,), generator=generator))
            end = int(torch.randint(1, latent_frames - start, (1,), generator=generator))
            mask = pattern_mask(name, latent_frames, start, end)
        elif name in ("random_frames", "first_frames", "last_frames"):
            count = int(torch.randint(1, max(2, latent_frames), (1,), generator=generator))
            if name == "random_frames":
                order = torch.randperm(latent_frames, generator=generator)  # (t,)
                mask = torch.zeros(latent_frames, dtype=torch.bool)
                mask[order[:count]] = True
            else:
                mask = pattern_mask(name, latent_frames, count)
        else:  # the patterns whose frames are fixed by their name
            mask = pattern_mask(name, latent_frames)
        masks.append(mask)
        names.append(name)
    return torch.stack(masks), names  # (B, t) bool


def with_known_frames(x: Tensor, known_latents: Tensor, known_mask: Tensor) -> Tensor:
    """``x`` (B, C, t, h, w) with the known frames replaced by ``known_latents``: known frames
    enter the transformer clean, in training and at every sampler step alike (``known_mask``
    (B, t) bool)."""
    keep = known_mask[:, None, :, None, None]  # (B, 1, t, 1, 1)
    return torch.where(keep, known_latents.to(x.dtype), x)
