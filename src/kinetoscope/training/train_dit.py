"""Train the text-to-video diffusion transformer: `train_dit(config, out)`, or
``kinetoscope train dit`` (``torchrun --nproc_per_node N -m kinetoscope train dit ...`` for
several processes).

One linear `train_dit` with numbered steps; the pieces it uses are small functions above it.
A run folder holds:

- ``config.json``: the `DiTTrainConfig` of the run;
- ``metrics.jsonl``: one line per logged step (loss, gradient norm, learning rate, bucket,
  tokens/s, ...) and one per evaluation (``eval_*``: the physics-world judge's mean scores);
- ``checkpoint.pt``: everything needed to continue exactly, whole (not sharded) whatever the
  number of processes, saved every ``checkpoint_every`` steps and at the end, atomically;
- ``cache/``: the clips' latents and the captions' embeddings (see `dit_data`);
- the exported pipeline folder, once finished: ``transformer/`` (the EMA weights, or the
  weights when EMA is off), ``vae/`` (a copy of the VAE trained on) and ``model_index.json``.

The objective (see `kinetoscope.flow`): rectified flow, t = 0 noise and t = 1 data,
``x_t = (1 - t) noise + t data``, the model regressing ``data - noise``, with logit-normal
times shifted by the token count. Per sample:

- classifier-free guidance: the prompt is replaced by the model's learned null prompt with
  probability ``text_dropout``;
- frame conditioning (`conditioning`): a pattern of known latent frames (none, first, last,
  both ends, ...). Known frames enter *clean*: as ``known_latents`` (with ``known_mask``) and
  also in the noisy input itself, where they replace x_t (`with_known_frames`); the loss
  counts only the unknown frames. Samplers must therefore put the known latents into x
  before every model call, as training did.

Every random draw of a step comes from generators seeded by (seed, step, sample index), one per
sample of the global batch. So the stream is a pure function of the step (resumption is exact:
bit-identical weights on a CPU, tested), and a run on N processes sees exactly the samples of
the one-process run, each rank a contiguous block of them.

Precision: bf16 autocast on CUDA (``bf16=True``); FSDP then gathers bf16 weights and reduces
gradients in float32. Weights, EMA and optimiser stay float32. On a CPU everything is float32.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor, nn

from kinetoscope.adherence import PromptCase, judge_cases, prompt_cases
from kinetoscope.errors import KinetoscopeError
from kinetoscope.flow.objective import flow_matching_loss, interpolate, sample_timesteps
from kinetoscope.models.dit import DIT_PRESETS, DiffusionTransformer
from kinetoscope.models.pretrained import MAX_SHARD_BYTES
from kinetoscope.models.text import TextEncoder
from kinetoscope.models.vae import VideoVAE
from kinetoscope.pipeline import INDEX_FILE, ModelIndex, Pipeline, read_model_index
from kinetoscope.training.buckets import check_aspect
from kinetoscope.training.budget import (
    TimeBudget,
    budget_steps,
    check_init_folder,
    check_minutes,
    load_initial_weights,
)
from kinetoscope.training.checkpoint import (
    check_run_folder,
    checkpoint_path,
    restore_rng_states,
    rng_states,
    save_checkpoint,
)
from kinetoscope.training.conditioning import (
    PATTERNS,
    ConditioningConfig,
    sample_known_mask,
    with_known_frames,
)
from kinetoscope.training.distributed import (
    STRATEGIES,
    Distributed,
    broadcast_object,
    check_device,
    full_model_state,
    full_optimizer_state,
    init_distributed,
    load_full_model_state,
    load_full_optimizer_state,
    mean_over_ranks,
    shutdown,
    wrap_model,
)
from kinetoscope.training.dit_data import DiTBatchStream, DiTDataConfig, LatentBatch
from kinetoscope.training.ema import EMA
from kinetoscope.training.metrics import METRICS_NAME, MetricsLog
from kinetoscope.training.schedule import WarmupCosine, check_optimization
from kinetoscope.weights import SHIPPED_VAE_DIR

T = TypeVar("T")
# fields that may change between a run and its resumption; everything else must match
RESUMABLE_CHANGES = (
    "steps",
    "minutes",
    "checkpoint_every",
    "log_every",
    "workers",
    "device",
    "parallel",
    "evaluation.every",
    "evaluation.prompts",
    "evaluation.steps",
    "evaluation.guidance",
)
SHIPPED_VAE = SHIPPED_VAE_DIR
TRANSFORMER_FOLDER, VAE_FOLDER, CACHE_FOLDER = "transformer", "vae", "cache"
MIN_EVALUATION_SIZE = 64  # the pipeline's smallest short side


@dataclass(frozen=True)
class EvaluationConfig:
    """The periodic check: generate the first ``prompts`` cases of `adherence.prompt_cases`
    (scenes training never draws, over the run's aspects and durations) with the EMA model and
    score them with the physics-world judge. ``steps`` and ``guidance`` are also the exported
    pipeline's sampling defaults."""

    every: int = 0  # steps between evaluations (and one at the end); 0: never
    prompts: int = 4
    steps: int = 25  # Euler steps
    guidance: float = 5.0

    def validate(self) -> EvaluationConfig:
        if self.every < 0 or self.prompts < 1 or self.steps < 1:
            raise KinetoscopeError(
                "evaluation needs every >= 0, prompts >= 1 and steps >= 1, got "
                f"{self.every}, {self.prompts} and {self.steps}"
            )
        if not 0 <= self.guidance <= 30:
            raise KinetoscopeError(f"evaluation guidance must be in [0, 30], got {self.guidance}")
        return self


@dataclass(frozen=True)
class DiTTrainConfig:
    """Everything that defines a diffusion-transformer training run, except where it writes."""

    model: str = "S"  # a DIT_PRESETS name
    vae: str | None = None  # a VAE folder (save_pretrained); None: the one that ships
    init: str | None = None  # a transformer or pipeline folder to start from; None: random
    steps: int = 10000
    minutes: float | None = None  # train for about this long: steps become an upper bound
    lr: float = 2e-4
    min_lr_ratio: float = 0.1  # the cosine decays to lr * this
    warmup_steps: int = 500
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0
    ema_decay: float | None = 0.999  # None: no EMA (the raw weights are exported)
    text_dropout: float = 0.1  # classifier-free guidance: prompts replaced by the null prompt
    bf16: bool = True  # autocast in bf16 on CUDA (ignored on a CPU)
    gradient_checkpointing: bool = False  # recompute block activations: less memory
    parallel: str = "auto"  # auto: ddp under torchrun with several processes, else none
    export_bf16: bool = True  # store the exported transformer in bf16
    checkpoint_every: int = 500
    log_every: int = 10
    seed: int = 0
    device: str = "auto"  # "auto": CUDA when there is one, else the CPU
    workers: int = 0  # data-loading processes (0: make batches in the training process)
    data: DiTDataConfig = field(default_factory=DiTDataConfig)
    conditioning: ConditioningConfig = field(default_factory=ConditioningConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)

    def validate(self) -> DiTTrainConfig:
        """Raise KinetoscopeError naming the first bad option; return self."""
        if self.model not in DIT_PRESETS:
            raise KinetoscopeError(
                f"unknown DiT preset {self.model!r}; choose from {list(DIT_PRESETS)}"
            )
        check_optimization(self)
        check_minutes(self.minutes)
        if self.init is not None:
            check_init_folder(str(init_folder(self.init)), "transformer")
        if not 0 <= self.text_dropout < 1:
            raise KinetoscopeError(f"text_dropout must be in [0, 1), got {self.text_dropout}")
        if self.parallel not in STRATEGIES:
            raise KinetoscopeError(
                f"unknown parallel strategy {self.parallel!r}; choose from {STRATEGIES}"
            )
        if self.checkpoint_every < 1 or self.log_every < 1 or self.workers < 0:
            raise KinetoscopeError(
                "checkpoint_every and log_every must be at least 1, workers at least 0"
            )
        check_device(self.device)
        self.data.validate()
        self.conditioning.validate()
        self.evaluation.validate()
        if self.evaluation.every and self.data.short_side < MIN_EVALUATION_SIZE:
            raise KinetoscopeError(
                f"evaluation generates through the pipeline, which needs a short side of at "
                f"least {MIN_EVALUATION_SIZE} pixels, got {self.data.short_side}: pass "
                "--eval-every 0 or a larger --size"
            )
        for aspect in self.data.aspects:
            check_aspect(aspect)
        vae_folder(self)  # a clear error now rather than after the model is built
        return self

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))  # JSON types: lists, not tuples


def config_from_dict(data: dict[str, Any]) -> DiTTrainConfig:
    """The inverse of `DiTTrainConfig.to_dict`."""
    data = dict(data)
    data["data"] = DiTDataConfig.from_dict(data["data"])
    data["conditioning"] = ConditioningConfig.from_dict(data["conditioning"])
    data["evaluation"] = EvaluationConfig(**data["evaluation"])
    data["betas"] = tuple(data["betas"])
    return DiTTrainConfig(**data)


TRAIN_PRESETS: dict[str, DiTTrainConfig] = {
    # tests and smoke runs: seconds on a CPU (16-pixel frames, half-second clips)
    "tiny-cpu": DiTTrainConfig(
        model="tiny",
        steps=6,
        lr=1e-3,
        warmup_steps=2,
        ema_decay=0.9,
        export_bf16=False,
        checkpoint_every=3,
        log_every=1,
        device="cpu",
        data=DiTDataConfig(
            batch_size=2,
            short_side=16,
            aspects=("1:1", "16:9"),
            durations=(0.5,),
            world_scenes=4,
            caption_wordings=1,
        ),
        evaluation=EvaluationConfig(every=0, prompts=1, steps=2, guidance=2.0),
    ),
    # a 2-core CPU in about an hour: the shipped "S" model on 64-pixel clips of 1-2 s (about a
    # second a step), from a pool of 300 scenes whose latents are cached after the first visit
    "cpu": DiTTrainConfig(
        model="S",
        steps=2000,
        lr=3e-4,
        warmup_steps=100,
        ema_decay=0.995,
        checkpoint_every=100,
        log_every=10,
        workers=1,
        data=DiTDataConfig(batch_size=4, short_side=64, durations=(1.0, 2.0), world_scenes=300),
        evaluation=EvaluationConfig(every=500, prompts=3, steps=20, guidance=4.0),
    ),
    # the default model on one H100 in about 20 minutes (an estimate until measured): "S" at
    # 128 pixels over every native aspect and 1-4 s
    "gpu": DiTTrainConfig(
        model="S",
        steps=8000,
        lr=3e-4,
        warmup_steps=300,
        ema_decay=0.999,
        checkpoint_every=1000,
        log_every=25,
        workers=12,
        data=DiTDataConfig(batch_size=32, short_side=128, world_scenes=1500),
        evaluation=EvaluationConfig(every=2000, prompts=12, steps=25, guidance=5.0),
    ),
    # the >= 1B preset ("XL", 1.36 B parameters) sharded with FSDP2 over the GPUs of a node
    # (torchrun --nproc_per_node N); it also runs on one 80 GB GPU
    "gpu-1b": DiTTrainConfig(
        model="XL",
        steps=4000,
        lr=1e-4,
        warmup_steps=500,
        weight_decay=0.01,
        ema_decay=0.9995,
        gradient_checkpointing=True,
        parallel="fsdp",
        checkpoint_every=500,
        log_every=10,
        workers=12,
        data=DiTDataConfig(batch_size=32, short_side=128, world_scenes=5000),
        evaluation=EvaluationConfig(every=1000, prompts=12, steps=25, guidance=5.0),
    ),
}


def train_preset(name: str) -> DiTTrainConfig:
    if name not in TRAIN_PRESETS:
        raise KinetoscopeError(
            f"unknown training preset {name!r}; choose from {list(TRAIN_PRESETS)}"
        )
    return TRAIN_PRESETS[name]


def with_overrides(config: DiTTrainConfig, **changes: Any) -> DiTTrainConfig:
    """The config with the given (not None) options replaced; the command line's overrides.
    Names: the top-level fields, plus ``batch`` (clips per step), ``size`` (short side),
    ``scenes`` (the physics-world pool), ``video_folder`` (with ``video_weight``),
    ``eval_every`` and ``patterns`` (frame-pattern weights by name; the patterns it does not
    name keep theirs); ``seed`` sets both seeds; ``minutes`` without ``steps`` lifts the
    preset's step count (`budget_steps`)."""
    changes["steps"] = budget_steps(changes.get("steps"), changes.get("minutes"))
    kept = {key: value for key, value in changes.items() if value is not None}
    data_changes = {
        "batch_size": kept.pop("batch", None),
        "short_side": kept.pop("size", None),
        "world_scenes": kept.pop("scenes", None),
        "video_folder": kept.pop("video_folder", None),
        "video_weight": kept.pop("video_weight", None),
        "seed": kept.get("seed"),
    }
    data = dataclasses.replace(
        config.data, **{key: value for key, value in data_changes.items() if value is not None}
    )
    evaluation = config.evaluation
    if "eval_every" in kept:
        evaluation = dataclasses.replace(evaluation, every=kept.pop("eval_every"))
    conditioning = config.conditioning
    if "patterns" in kept:
        weights = kept.pop("patterns")
        unknown_patterns = sorted(set(weights) - set(PATTERNS))
        if unknown_patterns:
            raise KinetoscopeError(
                f"unknown frame patterns {unknown_patterns}; choose from {list(PATTERNS)}"
            )
        conditioning = dataclasses.replace(conditioning, **weights)
    unknown = sorted(set(kept) - {f.name for f in dataclasses.fields(DiTTrainConfig)})
    if unknown:
        raise KinetoscopeError(f"unknown training options {unknown}")
    return dataclasses.replace(
        config, data=data, evaluation=evaluation, conditioning=conditioning, **kept
    )


def vae_folder(config: DiTTrainConfig) -> Path:
    """The VAE the run trains on: ``config.vae``, or the shipped one; a clear error if none."""
    folder = Path(config.vae) if config.vae is not None else SHIPPED_VAE
    if not (folder / "config.json").is_file():
        if config.vae is None:
            raise KinetoscopeError(
                "no VAE ships with this installation yet: train one (kinetoscope train vae) "
                "and pass its folder with --vae RUN/vae"
            )
        raise KinetoscopeError(f"{folder} is not a VAE folder (it has no config.json)")
    return folder


def init_folder(init: str) -> Path:
    """The transformer folder of ``--init``: the folder itself, or a pipeline's
    ``transformer/`` (a folder with a model index, such as the shipped default)."""
    folder = Path(init)
    return folder / TRANSFORMER_FOLDER if (folder / INDEX_FILE).is_file() else folder


def init_trained_steps(init: str | None) -> int:
    """The steps already behind ``--init``: its model index's ``trained_steps``, so that a
    continued model counts all of its training. 0 for a fresh start or a bare transformer
    folder (no index records its steps)."""
    if init is None or not (Path(init) / INDEX_FILE).is_file():
        return 0
    steps = read_model_index(init).extra.get("trained_steps", 0)
    return steps if isinstance(steps, int) and steps >= 0 else 0


# ---- pieces of the loop ----------------------------------------------------------------------


@dataclass(frozen=True)
class StepDraws:
    """A step's random inputs for this rank's samples."""

    noise: Tensor  # (b, 16, t, h, w)
    timesteps: Tensor  # (b,) in (0, 1)
    known_mask: Tensor  # (b, t) bool
    drop_text: Tensor  # (b,) bool


def sample_generator(seed: int, step: int, index: int) -> torch.Generator:
    """The generator of one sample of one step (index: in the global batch)."""
    state = np.random.SeedSequence([seed, step, index]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def draw_step(config: DiTTrainConfig, batch: LatentBatch) -> StepDraws:
    """Noise, time, known frames and prompt dropout of each sample, on the CPU, each from
    `sample_generator` (a sample gets the same draws on any rank and in any batch split)."""
    shape = batch.latents.shape[1:]  # (16, t, h, w)
    tokens = batch.bucket.tokens
    noise, times, masks, drops = [], [], [], []
    for index in batch.indices:
        generator = sample_generator(config.seed, batch.step, index)
        noise.append(torch.randn(shape, generator=generator))  # (16, t, h, w)
        times.append(sample_timesteps(1, tokens, generator=generator))  # (1,)
        mask, _ = sample_known_mask(config.conditioning, 1, shape[1], generator)  # (1, t)
        masks.append(mask)
        drops.append(torch.rand(1, generator=generator) < config.text_dropout)  # (1,)
    return StepDraws(
        noise=torch.stack(noise),
        timesteps=torch.cat(times),
        known_mask=torch.cat(masks),
        drop_text=torch.cat(drops),
    )


def flow_loss(
    model: nn.Module, batch: LatentBatch, draws: StepDraws, autocast: bool
) -> tuple[Tensor, dict[str, float]]:
    """The masked flow-matching loss of one batch, and a few numbers about it."""
    device = batch.latents.device
    data = batch.latents  # (b, 16, t, h, w)
    noise = draws.noise.to(device)  # (b, 16, t, h, w)
    timesteps = draws.timesteps.to(device)  # (b,)
    known = draws.known_mask.to(device)  # (b, t)
    noisy = with_known_frames(interpolate(noise, data, timesteps), data, known)  # (b, 16, t, h, w)
    context = torch.autocast(device.type, dtype=torch.bfloat16) if autocast else nullcontext()
    with context:
        velocity = model(noisy, timesteps, batch.text, data, known, draws.drop_text.to(device))
    loss_mask = (~known)[:, None, :, None, None]  # (b, 1, t, 1, 1): unknown frames count
    loss = flow_matching_loss(velocity, noise, data, loss_mask)
    facts = {
        "known_fraction": float(known.float().mean()),
        "mean_t": float(timesteps.mean()),
    }
    return loss, facts


def train_step(
    model: nn.Module,
    batch: LatentBatch,
    optimizer: torch.optim.Optimizer,
    config: DiTTrainConfig,
) -> dict[str, float]:
    """One optimisation step; returns the loss, the gradient norm and a few facts."""
    autocast = config.bf16 and batch.latents.device.type == "cuda"
    model.train()
    loss, facts = flow_loss(model, batch, draw_step(config, batch), autocast)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    if hasattr(grad_norm, "full_tensor"):  # FSDP2: a DTensor holding the global norm
        grad_norm = grad_norm.full_tensor()
    optimizer.step()
    return {"loss": float(loss.detach()), "grad_norm": float(grad_norm), **facts}


def full_weights(model: nn.Module, ema: EMA | None) -> dict[str, Tensor]:
    """The whole weights to ship, on rank 0: the EMA's when there is one. Collective."""
    with ema.swapped_into(model) if ema is not None else nullcontext(model):
        return full_model_state(model)


def plain_transformer(config: DiTTrainConfig, weights: dict[str, Tensor]) -> DiffusionTransformer:
    """A fresh, unsharded `DiffusionTransformer` on the CPU holding ``weights``."""
    transformer = DiffusionTransformer(DIT_PRESETS[config.model])
    transformer.load_state_dict(weights)
    return transformer.eval()


def model_index(config: DiTTrainConfig, extra: dict[str, Any]) -> ModelIndex:
    """The pipeline's ``model_index.json``: what the model was trained on, how to sample."""
    data = config.data
    return ModelIndex(
        transformer=TRANSFORMER_FOLDER,
        vae=VAE_FOLDER,
        fps=round(data.fps),
        short_side=data.short_side,
        aspects=tuple(data.aspects),
        min_seconds=min(data.durations),
        max_seconds=max(data.durations),
        steps=config.evaluation.steps,
        guidance=config.evaluation.guidance,
        extra=extra,
    )


def evaluation_cases(config: DiTTrainConfig) -> list[PromptCase]:
    """The fixed prompt cases of the periodic evaluation (drawn once, at the start of a run,
    so a scene the sampler cannot fill stops the run before any training)."""
    data = config.data
    return prompt_cases(config.evaluation.prompts, aspects=data.aspects, durations=data.durations)


def evaluate(
    config: DiTTrainConfig,
    cases: list[PromptCase],
    weights: dict[str, Tensor],
    vae: VideoVAE,
    text_encoder: TextEncoder,
    device: torch.device,
) -> dict[str, float]:
    """Judge scores (means per dimension, ``overall``, ...) of clips the weights generate for
    ``cases``, through the same `Pipeline` that users generate with; on rank 0, with an
    unsharded copy of the model."""
    transformer = plain_transformer(config, weights).to(device)
    pipeline = Pipeline(vae, transformer, model_index(config, {}), text_encoder=text_encoder)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if config.bf16 and device.type == "cuda"
        else nullcontext()
    )
    with autocast:
        report = judge_cases(
            pipeline,
            cases,
            seed=config.seed,
            steps=config.evaluation.steps,
            guidance=config.evaluation.guidance,
        )
    return {f"eval_{name}": value for name, value in report.means.items()}


def export_pipeline(
    config: DiTTrainConfig, weights: dict[str, Tensor], out: Path, extra: dict[str, Any]
) -> Path:
    """Write the pipeline folder into ``out``: ``transformer/``, ``vae/``, model_index.json."""
    transformer = plain_transformer(config, weights)
    largest = max(t.numel() * t.element_size() for t in transformer.state_dict().values())
    transformer.save_pretrained(
        out / TRANSFORMER_FOLDER,
        dtype=torch.bfloat16 if config.export_bf16 else None,
        max_shard_bytes=max(MAX_SHARD_BYTES, largest + 2**20),  # L and XL hold larger tensors
    )
    shutil.rmtree(out / VAE_FOLDER, ignore_errors=True)
    shutil.copytree(vae_folder(config), out / VAE_FOLDER)
    index = model_index(config, extra)
    temporary = out / f".{INDEX_FILE}.tmp"
    temporary.write_text(json.dumps(index.to_dict(), indent=2) + "\n")
    temporary.replace(out / INDEX_FILE)
    return out


def on_main(context: Distributed, work: Callable[[], T], default: T) -> T:
    """``work()`` on rank 0 (``default`` on the others). Its KinetoscopeError reaches every
    rank, so all of them stop with the same message instead of waiting for rank 0 forever."""
    result, problem = default, None
    if context.is_main:
        try:
            result = work()
        except KinetoscopeError as exc:
            problem = str(exc)
    problem = broadcast_object(problem, context)
    if problem is not None:
        raise KinetoscopeError(problem)
    return result


@dataclass
class TrainingParts:
    """What a run trains with, built the same way for fresh and resumed runs."""

    config: DiTTrainConfig
    context: Distributed
    vae: VideoVAE
    model: nn.Module  # the transformer, wrapped for the parallel strategy
    ema: EMA | None
    optimizer: torch.optim.Optimizer
    schedule: WarmupCosine
    scheduler: torch.optim.lr_scheduler.LambdaLR
    stream: DiTBatchStream


def build_parts(
    config: DiTTrainConfig,
    out: Path,
    context: Distributed,
    strategy: str,
    text_encoder: TextEncoder | None,
) -> TrainingParts:
    device = context.device
    vae = VideoVAE.from_pretrained(vae_folder(config), device=device, dtype=torch.float32)
    torch.manual_seed(config.seed)  # the same initial weights on every rank
    transformer = DiffusionTransformer(DIT_PRESETS[config.model]).to(device)
    if config.init is not None:  # a resumed run then loads its checkpoint over these
        load_initial_weights(
            transformer, DiffusionTransformer.from_pretrained(init_folder(config.init))
        )
    transformer.enable_gradient_checkpointing(config.gradient_checkpointing)
    model = wrap_model(transformer, context, strategy, bf16=config.bf16)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, betas=config.betas, weight_decay=config.weight_decay
    )
    schedule = WarmupCosine(config.warmup_steps, config.steps, config.min_lr_ratio)
    stream = DiTBatchStream(
        config.data,
        vae,
        device,
        cache_folder=out / CACHE_FOLDER,
        rank=context.rank,
        world_size=context.world_size,
        workers=config.workers,
        text_encoder=text_encoder,
    )
    return TrainingParts(
        config=config,
        context=context,
        vae=vae,
        model=model,
        ema=EMA(model, config.ema_decay) if config.ema_decay is not None else None,
        optimizer=optimizer,
        schedule=schedule,
        scheduler=torch.optim.lr_scheduler.LambdaLR(optimizer, schedule),
        stream=stream,
    )


def restore_parts(parts: TrainingParts, state: dict[str, Any]) -> tuple[int, float]:
    """Load a checkpoint (read by rank 0; other ranks pass {}) into the parts; returns the
    step and the training seconds so far. Collective."""
    model, ema, context = parts.model, parts.ema, parts.context
    load_full_model_state(model, state.get("model", {}))
    if ema is not None:
        with ema.swapped_into(model):  # weights loaded into the model here become the EMA
            load_full_model_state(model, state.get("ema", {}))
    load_full_optimizer_state(model, parts.optimizer, state.get("optimizer", {}))
    small = broadcast_object(
        {key: state.get(key) for key in ("scheduler", "data", "step", "elapsed_seconds")},
        context,
    )
    parts.scheduler.load_state_dict(small["scheduler"])
    parts.scheduler.lr_lambdas[0] = parts.schedule  # a changed `steps` stretches the cosine
    parts.stream.load_state_dict(small["data"])
    if context.is_main:
        restore_rng_states(state["rng"])
    return small["step"], small["elapsed_seconds"]


def save_parts(parts: TrainingParts, out: Path, step: int, elapsed: float) -> None:
    """Write the run's checkpoint: whole tensors gathered from every rank (collective), written
    by rank 0."""
    model_state = full_model_state(parts.model)
    ema_state = full_weights(parts.model, parts.ema) if parts.ema is not None else None
    optimizer_state = full_optimizer_state(parts.model, parts.optimizer)
    if parts.context.is_main:
        save_checkpoint(
            checkpoint_path(out),
            {
                "step": step,
                "elapsed_seconds": elapsed,
                "config": parts.config.to_dict(),
                "model": model_state,
                "ema": ema_state,
                "optimizer": optimizer_state,
                "scheduler": parts.scheduler.state_dict(),
                "data": parts.stream.state_dict(),
                "rng": rng_states(),
                "world_size": parts.context.world_size,
            },
        )


def evaluation_scores(parts: TrainingParts, cases: list[PromptCase]) -> dict[str, float]:
    """`evaluate` the current (EMA) weights on rank 0; {} on the others. Collective."""
    weights = full_weights(parts.model, parts.ema)
    if not parts.context.is_main:
        return {}
    encoder = parts.stream.text_encoder
    return evaluate(parts.config, cases, weights, parts.vae, encoder, parts.context.device)


class Throughput:
    """Samples, tokens and data-loading time since the last logged step."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.start, self.samples, self.tokens, self.data_seconds = time.perf_counter(), 0, 0, 0.0

    def add(self, batch: LatentBatch, data_seconds: float) -> None:
        self.samples += batch.global_batch
        self.tokens += batch.global_batch * batch.bucket.tokens
        self.data_seconds += data_seconds

    def record(self, device: torch.device) -> tuple[float, dict[str, float]]:
        """The window's seconds and its rates; starts a new window."""
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = max(time.perf_counter() - self.start, 1e-9)
        rates = {
            "samples_per_second": self.samples / seconds,
            "tokens_per_second": self.tokens / seconds,
            "data_seconds": self.data_seconds,
        }
        self.reset()
        return seconds, rates


@dataclass(frozen=True)
class TrainResult:
    """What a `train_dit` call did."""

    step: int  # steps done in all, this call and earlier ones
    finished: bool  # all ``config.steps`` done (False when stopped early by ``stop_at``)
    last: dict[str, float]  # the last step's numbers (this rank's)
    pipeline_folder: Path | None  # the exported pipeline (``out``), when finished
    evaluation: dict[str, float]  # the last evaluation's scores ({} when none ran)


# ---- the training run ------------------------------------------------------------------------


def train_dit(
    config: DiTTrainConfig,
    out: Path,
    resume: bool = False,
    stop_at: int | None = None,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
    text_encoder: TextEncoder | None = None,
) -> TrainResult:
    """Train a `DiffusionTransformer` as ``config`` says, writing the run folder ``out``.

    ``stop_at`` stops after that many steps in all, as an interruption would (a checkpoint is
    saved; resume later). ``on_step(step, numbers)`` is called after every step on rank 0;
    in a time-budgeted run (``config.minutes``) ``numbers["steps"]`` is the planned total.
    ``text_encoder``: an already loaded one to reuse (by default loaded when first needed).
    Under torchrun every process calls this with the same arguments.
    """
    # 1. check everything before any compute; join the other processes; check the run folder
    config.validate()
    out = Path(out)
    if stop_at is not None and stop_at < 1:
        raise KinetoscopeError(f"stop_at must be at least 1, got {stop_at}")
    context, strategy = init_distributed(config.device, config.parallel)
    try:
        # rank 0 reads the checkpoint (when resuming) and draws the evaluation's scenes
        state = on_main(
            context,
            lambda: check_run_folder(
                out, config.to_dict(), config.steps, resume, RESUMABLE_CHANGES
            ),
            None,
        )
        resumed = bool(broadcast_object(state is not None, context))
        every = config.evaluation.every
        cases = on_main(context, lambda: evaluation_cases(config) if every else [], [])
        if context.is_main:
            out.mkdir(exist_ok=True)
            (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
        if context.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True

        # 2. models, optimiser, schedule, data
        parts = build_parts(config, out, context, strategy, text_encoder)
        model, ema, stream = parts.model, parts.ema, parts.stream

        # 3. resume: weights, EMA, optimiser moments, schedule, data position
        step, elapsed = restore_parts(parts, state or {}) if resumed else (0, 0.0)

        # 4. the loop: one batch, one step; log, evaluate, checkpoint
        last_step = min(config.steps, stop_at) if stop_at is not None else config.steps
        budget = TimeBudget(config.minutes, step, config.steps) if config.minutes else None
        terms: dict[str, float] = {}
        scores: dict[str, float] = {}
        log = None
        if context.is_main:
            log = MetricsLog(out / METRICS_NAME, resume_step=step if resumed else None)
        try:
            window = Throughput()
            while step < last_step:
                fetch_start = time.perf_counter()
                batch = next(stream)
                window.add(batch, time.perf_counter() - fetch_start)
                terms = train_step(model, batch, parts.optimizer, config)
                lr = parts.scheduler.get_last_lr()[0]
                parts.scheduler.step()
                if ema is not None:
                    ema.update(model)
                step += 1
                if step % config.log_every == 0 or step == last_step:
                    seconds, rates = window.record(context.device)
                    elapsed += seconds
                    averaged = mean_over_ranks(terms, context)  # collective
                    if log is not None:
                        record = {"step": step, **averaged, "lr": lr, "bucket": batch.bucket.name}
                        log.write({**record, "seconds": elapsed, **rates})
                    if budget is not None:  # rank 0's clock decides for every rank
                        planned = broadcast_object(budget.plan(step), context)  # collective
                        if planned is not None and planned != config.steps:
                            config = dataclasses.replace(config, steps=planned)
                            parts.config = config  # checkpoints record the new total
                            parts.schedule.total = planned  # the cosine ends there
                            last_step = min(planned, stop_at) if stop_at is not None else planned
                if on_step is not None and context.is_main:  # after planning: the current total
                    on_step(step, terms if budget is None else {**terms, "steps": config.steps})
                if every and (step % every == 0 or step == config.steps):
                    scores = evaluation_scores(parts, cases)
                    if log is not None:
                        log.write({"step": step, **scores})
                    window.reset()  # evaluation is not training time
                if step % config.checkpoint_every == 0 and step < last_step:
                    save_parts(parts, out, step, elapsed)
            save_parts(parts, out, step, elapsed)
        finally:
            if log is not None:
                log.close()

        # 5. export the finished model: EMA weights, a copy of the VAE, the model index
        if step < config.steps:
            return TrainResult(step, False, terms, None, scores)
        weights = full_weights(model, ema)
        if context.is_main:
            trained = init_trained_steps(config.init) + step
            extra = {"trained_steps": trained, "dit_preset": config.model, **scores}
            export_pipeline(config, weights, out, extra)
        return TrainResult(step, True, terms, out, scores)
    finally:
        shutdown(context)
