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

import hashlib
import json
import math
import os
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict, Unpack

import torch
from torch import Tensor

from kinetoscope import __version__
from kinetoscope.creative import GROUP, Composer
from kinetoscope.curves import CurveSpec, check_curve, curve_weights
from kinetoscope.errors import KinetoscopeError
from kinetoscope.flow.objective import timestep_shift
from kinetoscope.flow.samplers import (
    classifier_free_guidance,
    sample_euler,
    sample_heun,
    timestep_schedule,
)
from kinetoscope.inputs import (
    LoadedInput,
    Source,
    fit_frames,
    frames_sha256,
    load_input,
    nearest_aspect,
)
from kinetoscope.io.video import Video
from kinetoscope.models.dit import DiffusionTransformer
from kinetoscope.models.text import TextEmbedding, TextEncoder, load_text_encoder
from kinetoscope.models.vae import FrameLayout, VideoVAE, decode_video, encode_video
from kinetoscope.safety.policy import PromptPolicy, default_policy
from kinetoscope.storyboard import Storyboard, compose_storyboard
from kinetoscope.training.buckets import ASPECTS, Bucket, bucket
from kinetoscope.training.conditioning import with_known_frames
from kinetoscope.weights import DEFAULT_MODEL_DIR

INDEX_FILE = "model_index.json"
SAMPLERS: dict[str, Callable[..., Tensor]] = {"euler": sample_euler, "heun": sample_heun}
MAX_STEPS = 200
MAX_GUIDANCE = 30.0
MAX_SECONDS = 600.0  # the longest video any tool makes (extension, loop, storyboard, ...)
DIRECTIONS = ("forward", "backward")
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


class SamplingOptions(TypedDict, total=False):
    """Options every tool takes (as keywords) beside its own; missing ones take the model's
    defaults. ``aspect`` defaults to "16:9", or to the closest to the input's for the tools
    that take one."""

    negative_prompt: str
    aspect: str
    size: int  # short side in pixels
    fps: int
    seed: int
    steps: int
    guidance: float
    sampler: str


@dataclass(frozen=True, eq=False)
class Result:
    """What every tool returns: the video, and a record of every parameter used (JSON-ready:
    the tool, its arguments with every default filled in, the inputs with their hashes, the
    model, and an id) from which `kinetoscope reproduce` makes the same frames again."""

    video: Video
    record: dict[str, Any]

    @property
    def frames(self) -> Tensor:
        """uint8 (T, H, W, 3)."""
        return self.video.frames

    @property
    def fps(self) -> float:
        return self.video.fps


def check_strength(strength: object) -> float:
    """A re-noising strength: a number in [0, 1], or a `GenerationError`."""
    if (
        isinstance(strength, bool)
        or not isinstance(strength, int | float)
        or not 0 <= strength <= 1
    ):
        raise GenerationError(f"strength must be a number from 0 to 1, got {strength!r}")
    return float(strength)


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
        policy: PromptPolicy | None = None,
    ) -> None:
        self.vae = vae.eval()
        self.transformer = transformer.eval()
        self.index = index
        self.device = next(transformer.parameters()).device
        self.dtype = torch.float32  # the transformer's compute dtype (autocast when lower)
        self.text_encoder = text_encoder or load_text_encoder(self.device)
        self.source = "in memory"  # where the weights came from, for the record
        # prompts are checked before any compute; None: the process's policy (from the
        # environment, see docs/safety.md), loaded on the first check
        self.policy = policy
        self._model_sha256: str | None = None

    @classmethod
    def from_pretrained(
        cls,
        folder: str | os.PathLike[str] | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Pipeline:
        """Load a pipeline folder (``model_index.json``, ``vae/``, ``transformer/``), or the
        shipped default model when ``folder`` is None. ``device``: a GPU when there is one,
        else the CPU; ``dtype``: the transformer's compute precision (weights stay float32,
        lower precision runs under autocast): bfloat16 on a GPU, float32 on a CPU."""
        if folder is None:
            if not has_default_model():
                raise KinetoscopeError(
                    "no default model ships with this installation yet; pass a trained pipeline "
                    "folder (the one `kinetoscope train dit` exports)"
                )
            folder = DEFAULT_MODEL_DIR
        folder = Path(folder)
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        dtype = dtype or (torch.bfloat16 if device.type == "cuda" else torch.float32)
        index = read_model_index(folder)
        vae = VideoVAE.from_pretrained(folder / index.vae, device=device)
        transformer = DiffusionTransformer.from_pretrained(
            folder / index.transformer, device=device
        )
        # weights may ship in bf16: they are held in float32
        pipeline = cls(vae.float(), transformer.float(), index)
        pipeline.dtype = dtype
        pipeline.source = "default" if folder == DEFAULT_MODEL_DIR else str(folder.resolve())
        return pipeline

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

    @property
    def model_sha256(self) -> str:
        """A SHA-256 of the weights: of the folder's files when loaded from one, else of the
        tensors themselves (computed once)."""
        if self._model_sha256 is None:
            if self.source == "in memory":
                digest = hashlib.sha256()
                for model in (self.vae, self.transformer):
                    for name, tensor in sorted(model.state_dict().items()):
                        digest.update(name.encode())
                        digest.update(tensor.detach().float().cpu().numpy().tobytes())
                self._model_sha256 = digest.hexdigest()
            else:
                from kinetoscope.provenance.c2pa import weights_sha256

                folder = DEFAULT_MODEL_DIR if self.source == "default" else Path(self.source)
                self._model_sha256 = weights_sha256(folder)
        return self._model_sha256

    # -- requests ------------------------------------------------------------------------------

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

    # -- the tools -----------------------------------------------------------------------------

    def generate(
        self,
        prompt: str,
        seconds: float | None = None,
        *,
        progress: Progress | None = None,
        **options: Unpack[SamplingOptions],
    ) -> Result:
        """Text to video, at most the model's longest native duration (extend for more)."""
        # 1. check the request before any model runs
        config = self._request(prompt, seconds, options)
        plan = self.plan(config)
        if not prompt.strip():
            warnings.warn("empty prompt: generating unconditionally", UserWarning, stacklevel=2)
        # 2. one window from seeded noise, decoded
        frames = self._compose(
            plan, config, progress, lambda c: c.fresh(prompt, plan.bucket.latent_frames)
        )
        arguments = {"prompt": prompt, "seconds": plan.bucket.seconds}
        return self._result("generate", frames, plan, config, arguments, [])

    def animate(
        self,
        image: Source,
        prompt: str,
        seconds: float | None = None,
        *,
        rights_attested: bool = False,
        progress: Progress | None = None,
        **options: Unpack[SamplingOptions],
    ) -> Result:
        """Image to video: the image (fitted to the clip) is the first frame."""
        # 1. the input and the request, before any model runs
        loaded = load_input(image, "image", rights_attested, image=True)
        config = self._request(prompt, seconds, options, like=loaded.video)
        plan = self.plan(config)
        # 2. generate forwards from the image alone
        first = self._fit(loaded, plan)  # (1, H, W, 3)
        new_frames = plan.bucket.frames - 1
        frames = self._compose(
            plan, config, progress, lambda c: c.forward(first, new_frames, prompt)
        )
        arguments = {"image": loaded.path, "prompt": prompt, "seconds": plan.bucket.seconds}
        return self._result("animate", frames, plan, config, arguments, [loaded])

    def extend(
        self,
        video: Source,
        prompt: str,
        seconds: float,
        direction: str = "forward",
        *,
        rights_attested: bool = False,
        progress: Progress | None = None,
        **options: Unpack[SamplingOptions],
    ) -> Result:
        """The whole video with ``seconds`` more before or after it, made a window at a time,
        each window knowing the last (or first) half second made."""
        # 1. the input and the request, before any model runs
        if direction not in DIRECTIONS:
            raise GenerationError(f"direction must be one of {list(DIRECTIONS)}, got {direction!r}")
        loaded = load_input(video, "video", rights_attested)
        config = self._request(prompt, None, options, like=loaded.video)
        plan = self.plan(config)
        source = self._fit(loaded, plan)  # (T, H, W, 3)
        new_frames = self._frames_for(seconds, plan, "seconds to add")
        self._check_length(source.shape[0] + new_frames, plan)
        # 2. window after window
        move = "forward" if direction == "forward" else "backward"
        frames = self._compose(
            plan, config, progress, lambda c: getattr(c, move)(source, new_frames, prompt)
        )
        arguments = {
            "video": loaded.path,
            "prompt": prompt,
            "seconds": seconds,
            "direction": direction,
        }
        return self._result("extend", frames, plan, config, arguments, [loaded])

    def remix(
        self,
        video: Source,
        prompt: str,
        strength: float = 0.6,
        *,
        rights_attested: bool = False,
        progress: Progress | None = None,
        **options: Unpack[SamplingOptions],
    ) -> Result:
        """Video to video: the clip re-noised to ``strength`` (0 keeps it, 1 keeps only its
        length) and generated again under ``prompt``."""
        # 1. the input and the request, before any model runs
        check_strength(strength)
        loaded = load_input(video, "video", rights_attested)
        config = self._request(prompt, None, options, like=loaded.video)
        plan = self.plan(config)
        source = self._fit(loaded, plan)  # (T, H, W, 3)
        self._check_length(source.shape[0], plan)
        # 2. window after window, each continuing the output
        weights = torch.ones(1, source.shape[0])  # (1, T): one source
        frames = self._compose(
            plan, config, progress, lambda c: c.regenerate([source], weights, strength, prompt)
        )
        arguments = {"video": loaded.path, "prompt": prompt, "strength": strength}
        return self._result("remix", frames, plan, config, arguments, [loaded])

    def connect(
        self,
        video_a: Source,
        video_b: Source,
        prompt: str = "",
        seconds: float = 1.0,
        *,
        rights_attested: bool = False,
        progress: Progress | None = None,
        **options: Unpack[SamplingOptions],
    ) -> Result:
        """A transition of about ``seconds`` from a's last frame to b's first (both ends
        included: 4 * round(seconds * fps / 4) + 2 frames)."""
        # 1. the inputs and the request, before any model runs
        loaded_a = load_input(video_a, "video_a", rights_attested)
        loaded_b = load_input(video_b, "video_b", rights_attested)
        config = self._request(prompt, None, options, like=loaded_a.video)
        plan = self.plan(config)
        groups = self._groups_for(seconds, plan)
        a, b = self._fit(loaded_a, plan), self._fit(loaded_b, plan)  # (T, H, W, 3) each
        # 2. one window knowing both ends (a is extended first when the gap is longer)
        frames = self._compose(plan, config, progress, lambda c: c.bridge(a, b, groups, prompt))
        arguments = {
            "video_a": loaded_a.path,
            "video_b": loaded_b.path,
            "prompt": prompt,
            "seconds": seconds,
        }
        return self._result("connect", frames, plan, config, arguments, [loaded_a, loaded_b])

    def loop(
        self,
        prompt: str = "",
        seconds: float | None = None,
        *,
        video: Source | None = None,
        transition: float = 1.0,
        rights_attested: bool = False,
        progress: Progress | None = None,
        **options: Unpack[SamplingOptions],
    ) -> Result:
        """A seamless loop of ``seconds``: a clip (generated from ``prompt``, or ``video``)
        whose end flows back into its start through a transition of about ``transition``
        seconds. For a video, ``seconds`` defaults to its length plus the transition; a video
        longer than the loop is cut, a shorter one gets a longer transition."""
        # 1. the source and the request, before any model runs
        loaded = None if video is None else load_input(video, "video", rights_attested)
        config = self._request(prompt, None, options, like=None if loaded is None else loaded.video)
        plan = self.plan(config)
        groups = self._groups_for(transition, plan)
        source = None if loaded is None else self._fit(loaded, plan)
        if seconds is None and source is None:
            raise GenerationError("a loop from a prompt needs its length: pass seconds")
        total = (
            source.shape[0] + GROUP * groups
            if seconds is None and source is not None
            else self._frames_for(seconds, plan, "loop seconds")
        )
        self._check_length(total, plan)
        base_frames = total - GROUP * groups
        if source is not None:
            source = source[:base_frames]
            groups = (total - source.shape[0]) // GROUP
        elif base_frames < 1 + GROUP:
            raise GenerationError(
                f"a loop of {total} frames with a {transition:g} s transition leaves too little "
                "to generate: make it longer or the transition shorter"
            )

        def make(c: Composer) -> Tensor:
            base = source if source is not None else c.clip(prompt, base_frames)
            # the transition's first and last frames picture base[-1] and base[0]: drop them
            return torch.cat([base, c.bridge(base, base, groups, prompt)[1:-1]])

        frames = self._compose(plan, config, progress, make)
        arguments = {
            "prompt": prompt,
            "seconds": seconds,
            "video": None if loaded is None else loaded.path,
            "transition": transition,
        }
        return self._result(
            "loop", frames, plan, config, arguments, [] if loaded is None else [loaded]
        )

    def blend(
        self,
        video_a: Source,
        video_b: Source,
        prompt: str = "",
        curve: CurveSpec = "ease-in-out",
        strength: float = 0.5,
        *,
        rights_attested: bool = False,
        progress: Progress | None = None,
        **options: Unpack[SamplingOptions],
    ) -> Result:
        """Mix two clips with a weight over time (``curve``: 0 is all a, 1 all b), in latent
        space, then re-noise to ``strength`` and generate under ``prompt`` so that the mix is
        one coherent clip. As long as the shorter clip."""
        # 1. the inputs and the request, before any model runs
        curve = check_curve(curve)
        check_strength(strength)
        loaded_a = load_input(video_a, "video_a", rights_attested)
        loaded_b = load_input(video_b, "video_b", rights_attested)
        config = self._request(prompt, None, options, like=loaded_a.video)
        plan = self.plan(config)
        a, b = self._fit(loaded_a, plan), self._fit(loaded_b, plan)
        count = min(a.shape[0], b.shape[0])
        self._check_length(count, plan)
        weight = curve_weights(curve, count)  # (T,) of b
        weights = torch.stack([1 - weight, weight])  # (2, T)
        # 2. window after window over the mixed latents
        frames = self._compose(
            plan,
            config,
            progress,
            lambda c: c.regenerate([a[:count], b[:count]], weights, strength, prompt),
        )
        arguments = {
            "video_a": loaded_a.path,
            "video_b": loaded_b.path,
            "prompt": prompt,
            "curve": curve,
            "strength": strength,
        }
        return self._result("blend", frames, plan, config, arguments, [loaded_a, loaded_b])

    def storyboard(
        self,
        board: Storyboard | dict[str, Any],
        *,
        rights_attested: bool = False,
        progress: Progress | None = None,
        **options: Unpack[SamplingOptions],
    ) -> Result:
        """Cards of text, image or video at times on a timeline, made into one continuous
        video: see `kinetoscope.storyboard`."""
        # 1. the board, its inputs and the request, before any model runs
        board = board if isinstance(board, Storyboard) else Storyboard.from_dict(board)
        self.check_prompts(*(card.prompt for card in board.cards))
        loaded = board.load_inputs(rights_attested)
        like = loaded[0].video if loaded else None
        config = self._request(board.cards[0].prompt, None, options, like=like)
        plan = self.plan(config)
        total = self._frames_for(board.seconds, plan, "storyboard seconds")
        self._check_length(total, plan)
        media = {loaded_input.role: self._fit(loaded_input, plan) for loaded_input in loaded}
        segments = board.segments(plan.fps, total, media)
        # 2. the segments in order, each continuing the video so far
        frames = self._compose(plan, config, progress, lambda c: compose_storyboard(c, segments))
        arguments = {"board": board.to_dict()}
        return self._result("storyboard", frames, plan, config, arguments, loaded)

    # -- what the tools share ------------------------------------------------------------------

    def _request(
        self,
        prompt: str,
        seconds: float | None,
        options: SamplingOptions,
        like: Video | None = None,
    ) -> GenerationConfig:
        """A `GenerationConfig` of a tool's prompt and options (checked by `plan`); the
        aspect defaults to the closest to ``like``'s, the input's."""
        unknown = sorted(set(options) - set(SamplingOptions.__annotations__))
        if unknown:
            raise GenerationError(
                f"unknown option {', '.join(unknown)}; "
                f"options: {list(SamplingOptions.__annotations__)}"
            )
        if not isinstance(prompt, str):
            raise GenerationError(f"the prompt must be a string, got {type(prompt).__name__}")
        self.check_prompts(prompt)
        aspect = "16:9" if like is None else nearest_aspect(like.height, like.width)
        return GenerationConfig(prompt=prompt, seconds=seconds, **({"aspect": aspect} | options))

    def check_prompts(self, *prompts: str) -> None:
        """Raise `PolicyRefusal` (naming the category) for a prompt the policy refuses.
        Negative prompts are not checked: they say what to steer away from."""
        (self.policy or default_policy()).enforce(*prompts)

    def _fit(self, loaded: LoadedInput, plan: _Plan) -> Tensor:
        """An input's frames at the clip's size and fps: (T, H, W, 3) uint8."""
        shape = plan.bucket
        return fit_frames(loaded.video, shape.height, shape.width, plan.fps, loaded.role)

    def _frames_for(self, seconds: object, plan: _Plan, what: str) -> int:
        """Frames in ``seconds`` at the clip's fps (at least one), checked."""
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not math.isfinite(seconds)
            or not 0 < seconds <= MAX_SECONDS
        ):
            raise GenerationError(
                f"{what} must be a number above 0 and at most {MAX_SECONDS:g}, got {seconds!r}"
            )
        return max(1, round(seconds * plan.fps))

    def _groups_for(self, seconds: object, plan: _Plan) -> int:
        """Latent groups (4 frames each, at least one) in a transition of ``seconds``."""
        return max(1, round(self._frames_for(seconds, plan, "transition seconds") / GROUP))

    def _check_length(self, frames: int, plan: _Plan) -> None:
        if frames > MAX_SECONDS * plan.fps + 1:
            raise GenerationError(
                f"that makes {frames / plan.fps:g} s of video; the longest is {MAX_SECONDS:g} s"
            )

    def _compose(
        self,
        plan: _Plan,
        config: GenerationConfig,
        progress: Progress | None,
        make: Callable[[Composer], Tensor],
    ) -> Tensor:
        """Run a tool's moves: once dry, to count the sampling steps, then for real."""

        def composer(dry: bool, total: int | None) -> Composer:
            shape = plan.bucket
            return Composer(
                self,
                shape.height,
                shape.width,
                plan.steps,
                plan.guidance,
                plan.sampler,
                config.seed,
                config.negative_prompt,
                progress=progress,
                dry=dry,
                total_steps=total,
            )

        counting = composer(dry=True, total=None)
        make(counting)
        return make(composer(dry=False, total=counting.done_steps))

    def _result(
        self,
        tool: str,
        frames: Tensor,
        plan: _Plan,
        config: GenerationConfig,
        arguments: dict[str, Any],
        inputs: list[LoadedInput],
    ) -> Result:
        """The tool's `Result`: frames at the plan's fps and the record of the run."""
        shape = plan.bucket
        settings = {
            "negative_prompt": config.negative_prompt,
            "aspect": shape.aspect,
            "size": min(shape.height, shape.width),
            "fps": plan.fps,
            "seed": config.seed,
            "steps": plan.steps,
            "guidance": plan.guidance,
            "sampler": plan.sampler,
        }
        video = Video(frames, float(plan.fps))
        record = {
            "id": uuid.uuid4().hex,
            "tool": tool,
            "arguments": arguments | settings,
            "inputs": [loaded.to_record() for loaded in inputs],
            "model": {
                "source": self.source,
                "name": self.index.extra.get("name", "kinetoscope"),
                "sha256": self.model_sha256,
            },
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "kinetoscope": __version__,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "output": {
                "frames": video.num_frames,
                "height": video.height,
                "width": video.width,
                "fps": video.fps,
                "seconds": video.seconds,
                # the frames as made, before any watermark or encoding (H.264 is not
                # bit-exact from run to run): what `reproduce` compares
                "frames_sha256": frames_sha256(frames),
            },
        }
        return Result(video, record)

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
        init_latents: Tensor | None = None,
        strength: float = 1.0,
        progress: Progress | None = None,
    ) -> Tensor:
        """Integrate the flow from seeded noise to normalised latents (1, C, t, h, w).

        ``known_latents`` (1, C, t, h, w) and ``known_mask`` (1, t) bool hold latent frames
        that are given (first frame, ends, ...); they are copied into the result.
        ``init_latents`` (1, C, t, h, w) with ``strength`` < 1 starts from them re-noised to
        time ``1 - strength`` instead of from pure noise (remix; strength 0 returns them).
        """
        # noise on the CPU from the seed: the same seed is the same clip whatever the device
        generator = torch.Generator().manual_seed(seed)
        noise = torch.randn((1, *latent_shape), generator=generator).to(self.device)
        schedule = self.schedule(latent_shape, steps, strength if init_latents is not None else 1.0)
        if init_latents is not None:
            start = schedule[0]  # x_t = (1 - t) noise + t data
            noise = (1 - start) * noise + start * init_latents.to(self.device, noise.dtype)
        if known_latents is not None and known_mask is not None:
            known_latents, known_mask = known_latents.to(self.device), known_mask.to(self.device)
        if schedule.shape[0] < 2:  # strength 0: nothing to regenerate
            latents = noise
        else:
            model = self._denoiser(text, negative, guidance, known_latents, known_mask)
            callback = None if progress is None else (lambda i, n, _x: progress(i + 1, n))
            with torch.autocast(self.device.type, self.dtype, enabled=self.dtype != torch.float32):
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
                return transformer(x, t, conditional, known_latents, known_mask).float()

            return single
        unconditional = (null if negative is None else negative).to(self.device)
        pair = TextEmbedding.cat([conditional, unconditional])  # 2 rows
        known = None if known_latents is None else torch.cat([known_latents, known_latents])
        mask = None if known_mask is None else torch.cat([known_mask, known_mask])

        def paired(x: Tensor, t: Tensor) -> Tensor:
            x = _clean_known(x, known, mask)  # (2, C, t, h, w)
            return transformer(x, t, pair, known, mask).float()  # (2, C, t, h, w)

        return classifier_free_guidance(paired, guidance)

    def schedule(
        self, latent_shape: tuple[int, int, int, int], steps: int, strength: float = 1.0
    ) -> Tensor:
        """The sampling times for a clip of ``latent_shape``: from 0 (noise) to 1 (data), or
        from ``1 - strength`` for a remix, which then takes only the steps after that time."""
        tokens = math.prod(latent_shape[1:]) // 4  # 1x2x2 patches
        times = timestep_schedule(steps, timestep_shift(tokens), device=self.device)
        if strength >= 1.0:
            return times
        start = torch.tensor([1.0 - strength], device=self.device)
        return torch.cat([start, times[times > start]])  # (steps kept + 1,)

    @torch.no_grad()
    def encode(self, frames: Tensor) -> Tensor:
        """uint8 frames (1 + 4k, H, W, 3) to normalised latents (1, C, 1 + k, h, w)."""
        latents, _ = encode_video(self.vae, frames.to(self.device))
        return latents.float()

    @torch.no_grad()
    def decode(self, latents: Tensor, layout: FrameLayout) -> Tensor:
        """Normalised latents (1, C, t, h, w) to uint8 frames (T, H, W, 3) of ``layout``."""
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


def load_default(device: torch.device | str | None = None) -> Pipeline:
    """The model that ships inside the package (`Pipeline.from_pretrained` with no folder)."""
    return Pipeline.from_pretrained(None, device=device)
