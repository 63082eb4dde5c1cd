"""The creative tools' moves, in pixels and latent windows: extend, bridge, regenerate.

The transformer makes at most ``window`` latent frames at a time (the model's longest native
clip: 17 latent frames, 4 s, for the default model), and always as a clip of its own whose
latent frame 0 encodes one picture alone (the VAE is causal). Every tool is made of three
moves on such windows, each encoding its known frames as a clip of their own, so the
transformer sees known frames the way it saw them in training:

    forward    [context: the last 1 + 4m frames, known | new groups]      extend, animate
    backward   [new image + groups | context: the first 4m frames, known]  extend backwards
    bridge     [a's last 1 + 4m frames | new groups | b's first 4m frames] connect, loop
    regenerate windows over given clips, re-noised to a strength           remix, blend

(a latent "group" is one latent frame after the first: 4 pixel frames). A backward context
starts with its first frame repeated, ``[f0, f0, f1, ...]``: that clip's latent frame 0 (f0
alone) is dropped and its groups, which begin exactly at f0, are what is known.

Every join with a real frame is matched: a window decodes its known frames too, and the model's
picture of the real frame next to the new ones differs from it by the VAE's round-trip error,
a jump larger than the model's own frame-to-frame change. `pull_to_known` shifts the new
frames by that error, fully at the picture and fading out over `SEAM_REACH` frames, so the
join changes no more than the model's frames do and the real frames stay as they are.

`Composer` runs these moves for one request: one prompt embedding per prompt, one seed
stream (window i draws its noise from ``seed + i``), and one progress count over every
sampling step of the request. A dry run (``dry=True``) does the same arithmetic without any
model call, so the total number of steps is known before the first one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from kinetoscope.models.text import TextEmbedding
from kinetoscope.models.vae import FrameLayout
from kinetoscope.training.buckets import LATENT_CHANNELS, SPATIAL_COMPRESSION

if TYPE_CHECKING:
    from kinetoscope.pipeline import Pipeline, Progress

GROUP = 4  # pixel frames per latent frame after the first
CONTEXT_GROUPS = 2  # known latent groups carried into each new window (8 frames, 0.5 s)
SEAM_REACH = 2 * GROUP  # frames over which a join's correction fades out (0.5 s)


def frames_for(latent_frames: int) -> int:
    """Pixel frames of a clip of ``latent_frames`` latent frames: 1 + 4 (t - 1)."""
    return 1 + GROUP * (latent_frames - 1)


def pad_to_clip(frames: Tensor, count: int) -> Tensor:
    """(T, H, W, 3) cut or padded (repeating the last frame) to exactly ``count`` frames."""
    if frames.shape[0] >= count:
        return frames[:count]
    last = frames[-1:].expand(count - frames.shape[0], -1, -1, -1)  # (extra, H, W, 3)
    return torch.cat([frames, last])  # (count, H, W, 3)


def pull_to_known(
    frames: Tensor, known: Tensor, at_end: bool = False, reach: int = SEAM_REACH
) -> Tensor:
    """``frames`` (N, H, W, 3) uint8, whose first frame (last if ``at_end``) is the model's
    picture of the real frame ``known`` (H, W, 3), shifted towards ``known`` by that picture's
    error: the picture becomes ``known`` and the correction falls linearly to nothing
    ``reach + 1`` frames from it. Returns (N, H, W, 3) uint8."""
    distance = torch.arange(frames.shape[0], dtype=torch.float32)  # from the picture
    if at_end:
        distance = distance.flip(0)
    weight = (1 - distance / (reach + 1)).clamp_min(0)  # (N,)
    error = known.float() - frames[-1 if at_end else 0].float()  # (H, W, 3)
    pulled = frames.float() + weight[:, None, None, None] * error
    return pulled.round().clamp(0, 255).to(torch.uint8)


def frames_after(made: Tensor, known: int, last_known: Tensor) -> Tensor:
    """A window's new frames: ``made`` (N, H, W, 3) past its first ``known`` frames, the last
    of which pictures the real frame ``last_known`` (H, W, 3), joined to it by
    `pull_to_known`. Returns (N - known, H, W, 3)."""
    return pull_to_known(made[known - 1 :], last_known)[1:]


@dataclass
class Composer:
    """The moves of one request; see the module docstring."""

    pipeline: Pipeline
    height: int
    width: int
    steps: int
    guidance: float
    sampler: str
    seed: int
    negative_prompt: str = ""
    progress: Progress | None = None
    dry: bool = False  # count steps only: no model runs
    total_steps: int | None = None  # from a dry run, for the progress callback
    done_steps: int = 0
    windows: int = 0
    _texts: dict[str, TextEmbedding | None] = field(default_factory=dict)

    @property
    def window(self) -> int:
        """The most latent frames one window holds: the model's longest native clip."""
        index = self.pipeline.index
        return 1 + round(index.max_seconds * index.fps) // GROUP

    # -- the moves -----------------------------------------------------------------------------

    def fresh(self, prompt: str, latent_frames: int) -> Tensor:
        """One window from noise alone: (1 + 4(t - 1), H, W, 3)."""
        return self._decode(self._sample(prompt, [], latent_frames))

    def clip(self, prompt: str, count: int) -> Tensor:
        """``count`` frames from noise: one window, then forwards: (count, H, W, 3)."""
        first = self.fresh(prompt, min(self.window, 1 + math.ceil((count - 1) / GROUP)))
        return self.forward(first[:count], count - min(count, first.shape[0]), prompt)

    def forward(self, frames: Tensor, new_frames: int, prompt: str) -> Tensor:
        """``frames`` (T, H, W, 3) followed by ``new_frames`` more: (T + new_frames, H, W, 3)."""
        out = frames
        while out.shape[0] < frames.shape[0] + new_frames:
            groups_known = min(CONTEXT_GROUPS, (out.shape[0] - 1) // GROUP)
            context = out[-frames_for(1 + groups_known) :]  # (1 + 4m, H, W, 3)
            missing = frames.shape[0] + new_frames - out.shape[0]
            groups = min(self.window - 1 - groups_known, math.ceil(missing / GROUP))
            known = self._encode(context)  # (1, C, 1 + m, h, w)
            latents = self._sample(prompt, [(0, known)], 1 + groups_known + groups)
            made = self._decode(latents)  # (1 + 4(m + g), H, W, 3)
            out = torch.cat([out, frames_after(made, context.shape[0], out[-1])])
        return out[: frames.shape[0] + new_frames]

    def backward(self, frames: Tensor, new_frames: int, prompt: str) -> Tensor:
        """``new_frames`` leading up to ``frames``: (new_frames + T, H, W, 3)."""
        out = frames
        while out.shape[0] < frames.shape[0] + new_frames:
            head = self._head_groups(out)  # (1, C, m, h, w)
            missing = frames.shape[0] + new_frames - out.shape[0]
            groups = min(self.window - 1 - head.shape[2], math.ceil((missing - 1) / GROUP))
            latents = self._sample(prompt, [(1 + groups, head)], 1 + groups + head.shape[2])
            made = self._decode(latents)  # frames 0 .. 4g come before out[0]
            new = frames_for(1 + groups)  # made[new] pictures out[0]
            joined = pull_to_known(made[: new + 1], out[0], at_end=True)
            out = torch.cat([joined[:-1], out])
        return out[out.shape[0] - frames.shape[0] - new_frames :]

    def bridge(self, a: Tensor, b: Tensor, groups: int, prompt: str) -> Tensor:
        """A transition of 4 * ``groups`` + 2 frames from (the VAE's picture of) a's last frame
        to b's first: (4g + 2, H, W, 3). Longer than one window: a is extended first."""
        head = self._head_groups(b)  # (1, C, m', h, w)
        fits = self.window - 1 - CONTEXT_GROUPS - head.shape[2]
        start = a[-1:]
        if groups > fits:  # walk towards b first, then bridge the last stretch
            a = self.forward(a, GROUP * (groups - fits), prompt)
            start, groups = torch.cat([start, a[-GROUP * (groups - fits) :]]), fits
        groups_known = min(CONTEXT_GROUPS, (a.shape[0] - 1) // GROUP)
        context = a[-frames_for(1 + groups_known) :]  # (1 + 4m, H, W, 3)
        tail = self._encode(context)  # (1, C, 1 + m, h, w)
        latent_frames = 1 + groups_known + groups + head.shape[2]
        latents = self._sample(
            prompt, [(0, tail), (latent_frames - head.shape[2], head)], latent_frames
        )
        made = self._decode(latents)
        first = context.shape[0] - 1  # the frame that pictures a's last one
        span = made[first : first + GROUP * groups + 2]  # (4g + 2, H, W, 3): a[-1] .. b[0]
        reach = min(SEAM_REACH, span.shape[0] - 2)  # each end's correction stops short of the other
        span = pull_to_known(span, context[-1], reach=reach)
        span = pull_to_known(span, b[0], at_end=True, reach=reach)
        return torch.cat([start[:-1], span])

    def regenerate(
        self, sources: list[Tensor], weights: Tensor, strength: float, prompt: str
    ) -> Tensor:
        """Clips of one shape (T, H, W, 3), mixed per frame by ``weights`` (len(sources), T;
        each column sums to 1) in latent space, re-noised to ``strength`` and generated anew
        under ``prompt``, a window at a time, each continuing the output so far."""
        count = sources[0].shape[0]
        out = sources[0][:0]  # (0, H, W, 3)
        while out.shape[0] < count:
            # the output's last 1 + 4m frames are known (none in the first window)
            groups_known = min(CONTEXT_GROUPS, (out.shape[0] - 1) // GROUP)
            context = out[-frames_for(1 + groups_known) :] if out.shape[0] else out
            new = min(frames_for(self.window) - context.shape[0], count - out.shape[0])
            latent_frames = 1 + math.ceil((context.shape[0] + new - 1) / GROUP)
            span = slice(out.shape[0], out.shape[0] + new)
            mixed = self._mix(sources, weights, context, span, frames_for(latent_frames))
            known = [(0, mixed[:, :, : 1 + groups_known])] if context.shape[0] else []
            latents = self._sample(prompt, known, latent_frames, init=mixed, strength=strength)
            made = self._decode(latents)  # (1 + 4(t - 1), H, W, 3)
            fresh = frames_after(made, context.shape[0], out[-1]) if context.shape[0] else made
            out = torch.cat([out, fresh[:new]])
        return out

    def _mix(
        self, sources: list[Tensor], weights: Tensor, context: Tensor, span: slice, frames: int
    ) -> Tensor:
        """Latents (1, C, t, h, w) of ``context`` followed by each source's ``span``, mixed by
        the sources' weights over the frames each latent frame pictures."""
        terms = []
        for source, weight in zip(sources, weights, strict=True):
            clip = pad_to_clip(torch.cat([context, source[span]]), frames)  # (1 + 4k, H, W, 3)
            # the context's latents are the same for every source: any weights summing to 1
            per_frame = torch.cat([weight[span][:1].expand(context.shape[0]), weight[span]])
            per_frame = torch.cat([per_frame, per_frame[-1:].expand(frames - per_frame.shape[0])])
            terms.append(self._encode(clip) * _latent_weights(per_frame)[None, None, :, None, None])
        mixed = torch.stack(terms).sum(dim=0)
        return mixed  # (1, C, t, h, w)

    # -- model calls (shapes only when dry) ------------------------------------------------------

    def _head_groups(self, frames: Tensor) -> Tensor:
        """The latent groups of ``frames``' first 4m frames, encoded as ``[f0, f0, f1, ...]``
        so that they begin exactly at f0: (1, C, m, h, w), m >= 1."""
        groups = max(1, min(CONTEXT_GROUPS, frames.shape[0] // GROUP))
        clip = pad_to_clip(torch.cat([frames[:1], frames]), frames_for(1 + groups))
        return self._encode(clip)[:, :, 1:]

    def _encode(self, frames: Tensor) -> Tensor:
        """(1 + 4k, H, W, 3) uint8 to normalised latents (1, C, 1 + k, h, w)."""
        if self.dry:
            h, w = self.height // SPATIAL_COMPRESSION, self.width // SPATIAL_COMPRESSION
            return torch.zeros(1, LATENT_CHANNELS, 1 + (frames.shape[0] - 1) // GROUP, h, w)
        return self.pipeline.encode(frames)

    def _decode(self, latents: Tensor) -> Tensor:
        """(1, C, t, h, w) to uint8 frames (1 + 4(t - 1), H, W, 3)."""
        layout = FrameLayout(frames_for(latents.shape[2]), self.height, self.width)
        if self.dry:
            return torch.zeros(layout.num_frames, self.height, self.width, 3, dtype=torch.uint8)
        return self.pipeline.decode(latents, layout)

    def _sample(
        self,
        prompt: str,
        known: list[tuple[int, Tensor]],
        latent_frames: int,
        init: Tensor | None = None,
        strength: float = 1.0,
    ) -> Tensor:
        """One window of ``latent_frames``: ``known`` places latents (1, C, k, h, w) at start
        positions; returns latents (1, C, t, h, w)."""
        shape = (
            LATENT_CHANNELS,
            latent_frames,
            self.height // SPATIAL_COMPRESSION,
            self.width // SPATIAL_COMPRESSION,
        )
        known_latents = torch.zeros((1, *shape))
        known_mask = torch.zeros(1, latent_frames, dtype=torch.bool)
        for start, latents in known:
            known_latents[:, :, start : start + latents.shape[2]] = latents
            known_mask[:, start : start + latents.shape[2]] = True
        schedule = self.pipeline.schedule(shape, self.steps, strength)
        seed = self.seed + self.windows
        self.windows += 1
        if self.dry:
            self.done_steps += schedule.shape[0] - 1
            return known_latents
        text, negative = self._embeddings(prompt)
        return self.pipeline.sample_latents(
            shape,
            text,
            negative,
            seed=seed,
            steps=self.steps,
            guidance=self.guidance,
            sampler=self.sampler,
            known_latents=known_latents if known else None,
            known_mask=known_mask if known else None,
            init_latents=init,
            strength=strength,
            progress=self._window_progress(),
        )

    def _embeddings(self, prompt: str) -> tuple[TextEmbedding | None, TextEmbedding | None]:
        if prompt not in self._texts:
            self._texts[prompt] = self.pipeline.encode_prompt(prompt)
        text = self._texts[prompt]
        guided = self.guidance != 1.0 and text is not None
        if not guided:
            return text, None
        if self.negative_prompt not in self._texts:
            self._texts[self.negative_prompt] = self.pipeline.encode_prompt(self.negative_prompt)
        return text, self._texts[self.negative_prompt]

    def _window_progress(self) -> Callable[[int, int], None] | None:
        if self.progress is None:
            return None
        offset, report = self.done_steps, self.progress

        def step(done: int, total: int) -> None:
            self.done_steps = offset + done
            report(self.done_steps, max(self.total_steps or 0, self.done_steps))

        return step


def _latent_weights(per_frame: Tensor) -> Tensor:
    """Per-frame weights (1 + 4k,) to per-latent-frame (1 + k,): each latent frame takes
    the mean weight of the frames it pictures."""
    first = per_frame[:1]
    groups = (
        per_frame[1:].reshape(-1, GROUP).mean(dim=1) if per_frame.shape[0] > 1 else per_frame[:0]
    )
    return torch.cat([first, groups])
