"""Generation: prompts (and known frames) to video, with a pipeline folder.

A pipeline folder holds ``model_index.json``, ``vae/`` and ``transformer/`` (each a
``from_pretrained`` folder). ``model_index.json`` also records what the model was trained on
(fps, short side, aspects, durations), which are the defaults and limits of `generate`.

    pipeline = load_default()
    video = pipeline.generate(GenerationConfig("A red circle falls and bounces.", seconds=2))
    write_video("clip.mp4", video)

Steps of `Pipeline.generate`: 1. check the request (cheap, before any model runs); 2. encode
the prompt and the negative prompt (or the learned null text); 3. draw the noise from the
seed on the CPU, so the same seed gives the same clip on every device of a kind; 4. integrate
the flow with classifier-free guidance; 5. decode the latents with the VAE in chunks.

`Pipeline.sample_latents` is the shared core: the creative tools (image-to-video, extension,
connect, loop) call it with known latent frames and a mask.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from kinetoscope.errors import KinetoscopeError
from kinetoscope.flow.objective import timestep_shift
from kinetoscope.flow.samplers import (
    classifier_free_guidance,
    sample_euler,
    sample_heun,
    timestep_schedule,
)
from kinetoscope.io.video import Video
from kinetoscope.models.dit import DiffusionTransformer
from kinetoscope.models.text import TextEmbedding, TextEncoder, load_text_encoder
from kinetoscope.models.vae import FrameLayout, VideoVAE, decode_video
from kinetoscope.training.buckets import ASPECTS, Bucket, bucket
from kinetoscope.training.conditioning import with_known_frames
from kinetoscope.weights import DEFAULT_MODEL_DIR

INDEX_FILE = "model_index.json"
SAMPLERS: dict[str, Callable[..., Tensor]] = {"euler": sample_euler, "heun": sample_heun}
MAX_STEPS = 200
MAX_GUIDANCE = 30.0
Progress = Callable[[int, int], None]  # (steps done, steps in all)


class GenerationError(KinetoscopeError, ValueError):
    """A generation request the model cannot serve; the message lists what it supports."""


@dataclass(frozen=True)
class ModelIndex:
    """``model_index.json``: the parts of a pipeline folder and the clips it was trained on."""

    transformer: str = "transformer"
    vae: str = "vae"
    fps: int = 16
    short_side: int = 128
    aspects: tuple[str, ...] = tuple(ASPECTS)
    min_seconds: float = 1.0
    max_seconds: float = 4.0  # longer clips: extension (see the creative tools)
    steps: int = 25  # the default sampling steps and guidance
    guidance: float = 5.0
    extra: dict[str, Any] = field(default_factory=dict)  # recipe notes, scores, ...

    def to_dict(self) -> dict[str, Any]:
        return {
            "transformer": self.transformer,
            "vae": self.vae,
            "fps": self.fps,
            "short_side": self.short_side,
            "aspects": list(self.aspects),
            "min_seconds": self.min_seconds,
            "max_seconds": self.max_seconds,
            "steps": self.steps,
            "guidance": self.guidance,
            **self.extra,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelIndex:
        known = {name for name in cls.__dataclass_fields__ if name != "extra"}
        values = {key: value for key, value in data.items() if key in known}
        if "aspects" in values:
            values["aspects"] = tuple(values["aspects"])
        extra = {key: value for key, value in data.items() if key not in known}
        return cls(**values, extra=extra)


@dataclass(frozen=True)
class GenerationConfig:
    """One text-to-video request. None means the model's own default (from its index)."""

    prompt: str
    negative_prompt: str = ""
    seconds: float | None = None  # the model's longest native duration (4 s)
    aspect: str = "16:9"
    size: int | None = None  # short side in pixels
    fps: int | None = None
    seed: int = 0
    steps: int | None = None
    guidance: float | None = None
    sampler: str = "euler"


@dataclass(frozen=True)
class _Plan:
    """A checked request with every default filled in."""

    bucket: Bucket
    fps: int
    steps: int
    guidance: float
    sampler: str


class Pipeline:
    """A VAE, a transformer and the frozen text encoder, on one device."""

    def __init__(
        self,
        vae: VideoVAE,
        transformer: DiffusionTransformer,
        index: ModelIndex,
        text_encoder: TextEncoder | None = None,
    ) -> None:
        self.vae = vae.eval()
        self.transformer = transformer.eval()
        self.index = index
        self.device = next(transformer.parameters()).device
        self.text_encoder = text_encoder or load_text_encoder(self.device)

    @classmethod
    def from_pretrained(
        cls, folder: str | os.PathLike[str], device: torch.device | str = "cpu"
    ) -> Pipeline:
        """Load a pipeline folder (``model_index.json``, ``vae/``, ``transformer/``)."""
        folder = Path(folder)
        index = read_model_index(folder)
        vae = VideoVAE.from_pretrained(folder / index.vae, device=device)
        transformer = DiffusionTransformer.from_pretrained(
            folder / index.transformer, device=device
        )
        # weights may ship in bf16; generation runs in float32 on a CPU
        return cls(vae.float(), transformer.float(), index)

    def save_pretrained(
        self, folder: str | os.PathLike[str], dtype: torch.dtype | None = None
    ) -> Path:
        """Write the pipeline folder: both models (``dtype``: e.g. bf16) and the index."""
        folder = Path(folder)
        self.vae.save_pretrained(folder / self.index.vae, dtype=dtype)
        self.transformer.save_pretrained(folder / self.index.transformer, dtype=dtype)
        temporary = folder / f".{INDEX_FILE}.tmp"
        temporary.write_text(json.dumps(self.index.to_dict(), indent=2) + "\n")
        temporary.replace(folder / INDEX_FILE)
        return folder

    # -- requests -------------------------------------------------------------------------------

    def plan(self, config: GenerationConfig) -> _Plan:
        """Check a request against what the model supports and fill in its defaults."""
        index = self.index
        if not isinstance(config.prompt, str) or not isinstance(config.negative_prompt, str):
            raise GenerationError("the prompt and the negative prompt must be strings")
        fps = index.fps if config.fps is None else config.fps
        if fps != index.fps:
            raise GenerationError(f"this model makes {index.fps} fps video, not {fps} fps")
        if config.aspect not in index.aspects:
            raise GenerationError(
                f"unsupported aspect {config.aspect!r}; this model supports {list(index.aspects)}"
            )
        seconds = index.max_seconds if config.seconds is None else config.seconds
        if not (isinstance(seconds, int | float) and math.isfinite(seconds)) or not (
            index.min_seconds <= seconds <= index.max_seconds
        ):
            raise GenerationError(
                f"unsupported duration {seconds!r} s; this model makes {index.min_seconds:g} to "
                f"{index.max_seconds:g} s in one go (extend a clip for longer ones)"
            )
        size = index.short_side if config.size is None else config.size
        if not isinstance(size, int) or size % 16 or not 64 <= size <= 2 * index.short_side:
            raise GenerationError(
                f"unsupported size {size!r}; the short side must be a multiple of 16 from 64 to "
                f"{2 * index.short_side} (the model was trained at {index.short_side})"
            )
        steps = index.steps if config.steps is None else config.steps
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
            raise GenerationError(f"steps must be an integer from 1 to {MAX_STEPS}, got {steps!r}")
        guidance = index.guidance if config.guidance is None else config.guidance
        if not (isinstance(guidance, int | float) and 0 <= guidance <= MAX_GUIDANCE):
            raise GenerationError(
                f"guidance must be a number from 0 to {MAX_GUIDANCE:g}, got {guidance!r}"
            )
        if config.sampler not in SAMPLERS:
            raise GenerationError(
                f"unknown sampler {config.sampler!r}; choose from {list(SAMPLERS)}"
            )
        if isinstance(config.seed, bool) or not isinstance(config.seed, int) or config.seed < 0:
            raise GenerationError(f"the seed must be a non-negative integer, got {config.seed!r}")
        try:
            shape = bucket(size, config.aspect, float(seconds), fps)
        except KinetoscopeError as exc:
            raise GenerationError(str(exc)) from exc
        return _Plan(shape, fps, steps, float(guidance), config.sampler)

    def generate(self, config: GenerationConfig, progress: Progress | None = None) -> Video:
        """Text to video: uint8 frames (T, H, W, 3) for ``config``."""
        # 1. check the request before any model runs
        plan = self.plan(config)
        # 2. the prompt, and what guidance pushes away from: the negative prompt or null text
        if not config.prompt.strip():
            warnings.warn("empty prompt: generating unconditionally", UserWarning, stacklevel=2)
        text = self.encode_prompt(config.prompt)
        # the negative prompt only steers the guided (unconditional) pass
        guided = plan.guidance != 1.0 and text is not None
        negative = self.encode_prompt(config.negative_prompt) if guided else None
        # 3.-4. noise from the seed, then the flow
        latents = self.sample_latents(
            plan.bucket.latent_shape,
            text,
            negative,
            seed=config.seed,
            steps=plan.steps,
            guidance=plan.guidance,
            sampler=plan.sampler,
            progress=progress,
        )  # (1, C, t, h, w)
        # 5. latents to pixels
        frames = self.decode(latents, plan.bucket)  # (T, H, W, 3)
        return Video(frames, float(plan.fps))

    def encode_prompt(self, prompt: str) -> TextEmbedding | None:
        """One prompt as a one-row TextEmbedding; None for an empty one (the transformer's
        learned null text stands in for it)."""
        return self.text_encoder.encode([prompt]) if prompt.strip() else None

    @torch.no_grad()
    def sample_latents(
        self,
        latent_shape: tuple[int, int, int, int],
        text: TextEmbedding | None,
        negative: TextEmbedding | None,
        seed: int,
        steps: int,
        guidance: float,
        sampler: str = "euler",
        known_latents: Tensor | None = None,
        known_mask: Tensor | None = None,
        progress: Progress | None = None,
    ) -> Tensor:
        """Integrate the flow from seeded noise to normalised latents (1, C, t, h, w).

        ``known_latents`` (1, C, t, h, w) and ``known_mask`` (1, t) bool hold latent frames
        that are given (first frame, ends, ...); they are copied into the result.
        """
        # noise on the CPU from the seed: the same seed is the same clip whatever the device
        generator = torch.Generator().manual_seed(seed)
        noise = torch.randn((1, *latent_shape), generator=generator).to(self.device)
        tokens = math.prod(latent_shape[1:]) // 4  # 1x2x2 patches
        schedule = timestep_schedule(steps, timestep_shift(tokens), device=self.device)
        model = self._denoiser(text, negative, guidance, known_latents, known_mask)
        callback = None if progress is None else (lambda i, total, _x: progress(i + 1, total))
        latents = SAMPLERS[sampler](model, noise, schedule, callback=callback)
        if known_latents is not None and known_mask is not None:
            latents = with_known_frames(latents, known_latents, known_mask)
        return latents

    def _denoiser(
        self,
        text: TextEmbedding | None,
        negative: TextEmbedding | None,
        guidance: float,
        known_latents: Tensor | None,
        known_mask: Tensor | None,
    ) -> Callable[[Tensor, Tensor], Tensor]:
        """The velocity field the sampler integrates: the conditional model alone when
        guidance is 1 (or there is no prompt), else conditional and unconditional rows in one
        batched forward, combined by classifier-free guidance."""
        transformer = self.transformer
        null = transformer.null_text(1, self.device, torch.float32)
        conditional = (null if text is None else text).to(self.device)

        if guidance == 1.0 or text is None:

            def single(x: Tensor, t: Tensor) -> Tensor:
                x = _clean_known(x, known_latents, known_mask)  # (1, C, t, h, w)
                return transformer(x, t, conditional, known_latents, known_mask)

            return single
        unconditional = (null if negative is None else negative).to(self.device)
        pair = TextEmbedding.cat([conditional, unconditional])  # 2 rows
        known = None if known_latents is None else torch.cat([known_latents, known_latents])
        mask = None if known_mask is None else torch.cat([known_mask, known_mask])

        def paired(x: Tensor, t: Tensor) -> Tensor:
            x = _clean_known(x, known, mask)  # (2, C, t, h, w)
            return transformer(x, t, pair, known, mask)  # (2, C, t, h, w)

        return classifier_free_guidance(paired, guidance)

    @torch.no_grad()
    def decode(self, latents: Tensor, shape: Bucket) -> Tensor:
        """Normalised latents (1, C, t, h, w) to uint8 frames (T, H, W, 3) of ``shape``."""
        layout = FrameLayout(shape.frames, shape.height, shape.width)
        return decode_video(self.vae, latents, layout)


def read_model_index(folder: str | os.PathLike[str]) -> ModelIndex:
    """A pipeline folder's ``model_index.json``: its parts and what the model supports."""
    index_path = Path(folder) / INDEX_FILE
    if not index_path.is_file():
        raise KinetoscopeError(f"{folder} is not a pipeline folder: it has no {INDEX_FILE}")
    try:
        return ModelIndex.from_dict(json.loads(index_path.read_text()))
    except (ValueError, TypeError) as exc:
        raise KinetoscopeError(f"{index_path} is not a valid model index: {exc}") from exc


def _clean_known(x: Tensor, known_latents: Tensor | None, known_mask: Tensor | None) -> Tensor:
    """Known frames enter the transformer clean at every sampler step, as in training."""
    if known_latents is None or known_mask is None:
        return x
    return with_known_frames(x, known_latents, known_mask)


def has_default_model() -> bool:
    """Whether a default model ships with this installation."""
    return (DEFAULT_MODEL_DIR / INDEX_FILE).is_file()


def load_default(device: torch.device | str = "cpu") -> Pipeline:
    """The model that ships inside the package."""
    if not has_default_model():
        raise KinetoscopeError(
            "no default model ships with this installation yet; pass a trained pipeline "
            "folder (the one `kinetoscope train dit` exports)"
        )
    return Pipeline.from_pretrained(DEFAULT_MODEL_DIR, device=device)
