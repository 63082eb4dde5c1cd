"""Train the video autoencoder: `train_vae(config, out)`, or ``kinetoscope train vae``.

One linear `train_vae` with numbered steps; the pieces it uses (schedule, EMA, one training
step, latent statistics, export) are small functions above it. A run folder holds:

- ``config.json``: the `VAETrainConfig` of the run;
- ``metrics.jsonl``: one line per logged step (losses, learning rate, seconds, frames/s);
- ``checkpoint.pt``: everything needed to continue exactly (see `checkpoint`), saved every
  ``checkpoint_every`` steps and at the end, atomically;
- ``vae/``: the final model (`VideoVAE.save_pretrained`; the EMA weights when EMA is on),
  with latent normalisation factors measured on training batches.

Resuming (``resume=True``) continues from ``checkpoint.pt`` and, on a CPU, gives
bit-identical weights to an uninterrupted run (tested): the data stream is a pure function of
the step, every random generator's state is saved, and the schedule lives in the checkpoint.
On CUDA the same holds up to the nondeterminism of its kernels. Only
``steps`` and the bookkeeping fields (`RESUMABLE_CHANGES`) may differ from the saved config.

Precision: bf16 autocast on CUDA (``bf16=True``); the weights and optimizer stay float32.
On a CPU training runs in float32.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from kinetoscope.errors import KinetoscopeError
from kinetoscope.models.vae import VAE_PRESETS, VideoVAE
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
from kinetoscope.training.distributed import check_device, resolve_device
from kinetoscope.training.ema import EMA
from kinetoscope.training.losses import VAELoss, VAELossConfig
from kinetoscope.training.metrics import METRICS_NAME, MetricsLog
from kinetoscope.training.schedule import WarmupCosine, check_optimization
from kinetoscope.training.vae_data import WEIGHT_FIELDS, VAEBatchStream, VAEDataConfig

# fields that may change between a run and its resumption; everything else must match
RESUMABLE_CHANGES = ("steps", "minutes", "checkpoint_every", "log_every", "workers", "device")
EXPORT_FOLDER = "vae"
CONFIG_NAME = "config.json"


@dataclass(frozen=True)
class VAETrainConfig:
    """Everything that defines a VAE training run, except where it writes."""

    model: str = "tiny"  # a VAE_PRESETS name
    init: str | None = None  # a saved VAE of the same preset to start from; None: random
    # train the decoder alone, from ``init``: its encoder and latent normalisation are kept,
    # so the latent space, and every diffusion model trained on it, stays valid
    decoder_only: bool = False
    steps: int = 1000
    minutes: float | None = None  # train for about this long: steps become an upper bound
    lr: float = 2e-4
    min_lr_ratio: float = 0.1  # the cosine decays to lr * this
    warmup_steps: int = 100
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0
    ema_decay: float | None = None  # e.g. 0.999; None: no EMA
    bf16: bool = True  # autocast in bf16 on CUDA (ignored on a CPU)
    export_bf16: bool = False  # store the exported model's weights in bf16
    checkpoint_every: int = 500
    log_every: int = 10
    seed: int = 0
    device: str = "auto"  # "auto": CUDA when there is one, else the CPU
    workers: int = 0  # data-loading processes (0: make batches in the training process)
    latent_stat_batches: int = 4  # batches that measure the latents' mean and std for export
    data: VAEDataConfig = field(default_factory=VAEDataConfig)
    loss: VAELossConfig = field(default_factory=VAELossConfig)

    def validate(self) -> VAETrainConfig:
        """Raise KinetoscopeError naming the first bad option; return self."""
        if self.model not in VAE_PRESETS:
            raise KinetoscopeError(
                f"unknown VAE preset {self.model!r}; choose from {list(VAE_PRESETS)}"
            )
        check_optimization(self)
        check_minutes(self.minutes)
        check_init_folder(self.init, "VAE")
        if self.decoder_only and self.init is None:
            raise KinetoscopeError(
                "decoder_only fine-tunes a saved VAE's decoder: pass --init with that VAE"
            )
        if self.checkpoint_every < 1 or self.log_every < 1:
            raise KinetoscopeError("checkpoint_every and log_every must be at least 1")
        if self.workers < 0 or self.latent_stat_batches < 0:
            raise KinetoscopeError("workers and latent_stat_batches must be >= 0")
        check_device(self.device)
        self.data.validate()
        self.loss.validate()
        smallest = 2 ** (self.loss.discriminator_layers + 2)
        if self.loss.uses_discriminator and self.data.size < smallest:
            raise KinetoscopeError(
                f"a {self.loss.discriminator_layers}-layer discriminator needs frames of at "
                f"least {smallest} pixels, got size {self.data.size}"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))  # JSON types: lists, not tuples


TRAIN_PRESETS: dict[str, VAETrainConfig] = {
    # tests and smoke runs: seconds on a CPU
    "tiny-cpu": VAETrainConfig(
        model="tiny",
        steps=20,
        lr=1e-3,
        warmup_steps=2,
        checkpoint_every=10,
        log_every=1,
        latent_stat_batches=1,
        data=VAEDataConfig(
            batch_size=2, size=16, frames=5, skimage_images=("chelsea", "coffee", "astronaut")
        ),
        loss=VAELossConfig(perceptual_frames=2),
    ),
    # a background run on a small CPU machine: the "small" model on 64x64x9 clips
    "cpu": VAETrainConfig(
        model="small",
        steps=3000,
        lr=3e-4,
        warmup_steps=100,
        checkpoint_every=250,
        log_every=10,
        workers=1,
        data=VAEDataConfig(batch_size=4, size=64, frames=9),
        loss=VAELossConfig(perceptual_frames=3),
    ),
    # about 20 minutes on one H100 (an estimate until measured): the shipped "base" model
    "gpu": VAETrainConfig(
        model="base",
        steps=4000,
        lr=3e-4,
        warmup_steps=200,
        ema_decay=0.999,
        bf16=True,
        export_bf16=True,
        checkpoint_every=500,
        log_every=20,
        workers=8,
        latent_stat_batches=8,
        data=VAEDataConfig(batch_size=16, size=128, frames=17),
        loss=VAELossConfig(perceptual_frames=5),
    ),
}


def train_preset(name: str) -> VAETrainConfig:
    if name not in TRAIN_PRESETS:
        raise KinetoscopeError(
            f"unknown training preset {name!r}; choose from {list(TRAIN_PRESETS)}"
        )
    return TRAIN_PRESETS[name]


def with_overrides(
    config: VAETrainConfig,
    steps: int | None = None,
    batch: int | None = None,
    size: int | None = None,
    frames: int | None = None,
    lr: float | None = None,
    device: str | None = None,
    workers: int | None = None,
    seed: int | None = None,
    minutes: float | None = None,
    init: str | None = None,
    decoder_only: bool | None = None,
    mix: tuple[float, float, float] | None = None,
) -> VAETrainConfig:
    """The config with the given (not None) options replaced; the command line's overrides.
    ``mix`` is the data's (world, camera, still) weights; ``minutes`` without ``steps`` lifts
    the preset's step count (`budget_steps`)."""
    data_changes = {"batch_size": batch, "size": size, "frames": frames, "seed": seed}
    if mix is not None:
        data_changes |= dict(zip(WEIGHT_FIELDS, mix, strict=True))
    data = dataclasses.replace(
        config.data, **{key: value for key, value in data_changes.items() if value is not None}
    )
    changes = {
        "steps": budget_steps(steps, minutes),
        "lr": lr,
        "device": device,
        "workers": workers,
        "seed": seed,
        "minutes": minutes,
        "init": init,
        "decoder_only": decoder_only,
    }
    kept = {key: value for key, value in changes.items() if value is not None}
    return dataclasses.replace(config, data=data, **kept)


def config_from_dict(data: dict[str, Any]) -> VAETrainConfig:
    """The inverse of `VAETrainConfig.to_dict`."""
    data = dict(data)
    data["data"] = VAEDataConfig.from_dict(data["data"])
    data["loss"] = VAELossConfig(**data["loss"])
    data["betas"] = tuple(data["betas"])
    return VAETrainConfig(**data)


# ---- pieces of the loop ----------------------------------------------------------------------


def train_step(
    vae: VideoVAE,
    loss_fn: VAELoss,
    batch: Tensor,
    optimizer: torch.optim.Optimizer,
    config: VAETrainConfig,
    step: int,
    discriminator_optimizer: torch.optim.Optimizer | None = None,
) -> dict[str, float]:
    """One optimisation step on ``batch`` (B, 3, T, H, W) in [-1, 1]; returns the loss terms
    and the gradient norm as floats. The caller steps the scheduler."""
    device = batch.device
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16)
        if config.bf16 and device.type == "cuda"
        else nullcontext()
    )
    # perceptual frames drawn from (seed, step): resumable without touching the global RNG
    frame_picker = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
    vae.train()
    with autocast:
        reconstruction, posterior = vae(batch)  # (B, 3, T, H, W), q(z | x)
        terms = loss_fn(
            batch,
            reconstruction,
            posterior,
            step=step,
            last_layer=vae.decoder.conv_out.conv.weight,
            generator=frame_picker,
        )
    optimizer.zero_grad(set_to_none=True)
    terms["total"].backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(vae.parameters(), config.grad_clip)
    optimizer.step()
    if discriminator_optimizer is not None:
        with autocast:
            discriminator_terms = loss_fn.discriminator_loss(batch, reconstruction)
        discriminator_optimizer.zero_grad(set_to_none=True)
        discriminator_terms["discriminator"].backward()
        discriminator_optimizer.step()
        terms.update(discriminator_terms)
    record = {name: float(value.detach()) for name, value in terms.items()}
    record["grad_norm"] = float(grad_norm)
    return record


@torch.no_grad()
def latent_statistics(
    vae: VideoVAE, batches: Iterable[Tensor]
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel (shift, scale) that make the posterior means of ``batches`` zero-mean and
    unit-variance: the diffusion model's latent normalisation, (z - shift) * scale."""
    vae.eval()
    latents = []
    for batch in batches:
        z = vae.encode(batch).mode().float()  # (B, C, t, h, w)
        latents.append(z.transpose(0, 1).flatten(1))  # (C, B*t*h*w)
    values = torch.cat(latents, dim=1)  # (C, N)
    mean, std = values.mean(dim=1), values.std(dim=1).clamp_min(1e-6)
    return tuple(mean.tolist()), tuple((1.0 / std).tolist())


def export_model(
    vae: VideoVAE,
    folder: Path,
    statistics: tuple[tuple[float, ...], tuple[float, ...]] | None,
    bf16: bool,
) -> Path:
    """``save_pretrained`` a copy of ``vae`` with its latent normalisation set."""
    model = copy.deepcopy(vae).cpu().eval()
    if statistics is not None:
        shift, scale = statistics
        model.config = dataclasses.replace(model.config, shift_factor=shift, scaling_factor=scale)
    return model.save_pretrained(folder, dtype=torch.bfloat16 if bf16 else None)


@dataclass(frozen=True)
class TrainResult:
    """What a `train_vae` call did."""

    step: int  # steps done in all, this call and earlier ones
    finished: bool  # all ``config.steps`` done (False when stopped early by ``stop_at``)
    last: dict[str, float]  # the last step's loss terms
    model_folder: Path | None  # the exported model, when finished


# ---- the training run ------------------------------------------------------------------------


def train_vae(
    config: VAETrainConfig,
    out: Path,
    resume: bool = False,
    stop_at: int | None = None,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train a `VideoVAE` as ``config`` says, writing the run folder ``out``.

    ``stop_at`` stops after that many steps in all, as an interruption would (a checkpoint
    is saved; resume later). ``on_step(step, terms)`` is called after every step; in a
    time-budgeted run (``config.minutes``) ``terms["steps"]`` is the planned total.
    """
    # 1. check everything before any compute
    config.validate()
    out = Path(out)
    if stop_at is not None and stop_at < 1:
        raise KinetoscopeError(f"stop_at must be at least 1, got {stop_at}")
    state = check_run_folder(out, config.to_dict(), config.steps, resume, RESUMABLE_CHANGES)
    out.mkdir(exist_ok=True)
    (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    device = resolve_device(config.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    # 2. model, loss, optimizers, schedule: built the same way for fresh and resumed runs
    torch.manual_seed(config.seed)
    vae = VideoVAE(VAE_PRESETS[config.model]).to(device)
    kept_statistics = None  # the latent normalisation to export instead of measuring one
    # a resumed run has its weights in the checkpoint; it reads --init only for its statistics
    if config.init is not None and (state is None or config.decoder_only):
        initial = VideoVAE.from_pretrained(config.init)
        if state is None:
            load_initial_weights(vae, initial, ignore=("scaling_factor", "shift_factor"))
        if config.decoder_only:
            kept_statistics = (initial.config.shift_factor, initial.config.scaling_factor)
    if config.decoder_only:
        vae.encoder.requires_grad_(False)
    ema = EMA(vae, config.ema_decay) if config.ema_decay is not None else None
    loss_fn = VAELoss(config.loss).to(device)
    optimizer = torch.optim.AdamW(
        [parameter for parameter in vae.parameters() if parameter.requires_grad],
        lr=config.lr,
        betas=config.betas,
        weight_decay=config.weight_decay,
    )
    schedule = WarmupCosine(config.warmup_steps, config.steps, config.min_lr_ratio)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    discriminator_optimizer = None
    if loss_fn.discriminator is not None:
        discriminator_optimizer = torch.optim.AdamW(
            loss_fn.discriminator.parameters(), lr=config.lr, betas=(0.5, 0.9), weight_decay=0.0
        )
    stream = VAEBatchStream(config.data, workers=config.workers)

    # 3. resume: weights, optimizer moments, schedule, data position, random generators
    step, elapsed = 0, 0.0
    if state is not None:
        vae.load_state_dict(state["model"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scheduler.lr_lambdas[0] = schedule  # a changed `steps` stretches the cosine
        if loss_fn.discriminator is not None:
            loss_fn.discriminator.load_state_dict(state["discriminator"])
            discriminator_optimizer.load_state_dict(state["discriminator_optimizer"])  # type: ignore[union-attr]
        stream.load_state_dict(state["data"])
        restore_rng_states(state["rng"])
        step, elapsed = state["step"], state["elapsed_seconds"]

    def save(at_step: int) -> None:
        save_checkpoint(
            checkpoint_path(out),
            {
                "step": at_step,
                "elapsed_seconds": elapsed,
                "config": config.to_dict(),
                "model": vae.state_dict(),
                "ema": ema.state_dict() if ema is not None else None,
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "discriminator": (
                    loss_fn.discriminator.state_dict() if loss_fn.discriminator else None
                ),
                "discriminator_optimizer": (
                    discriminator_optimizer.state_dict() if discriminator_optimizer else None
                ),
                "data": stream.state_dict(),
                "rng": rng_states(),
            },
        )

    # 4. the loop: one batch, one step; log, checkpoint
    last_step = min(config.steps, stop_at) if stop_at is not None else config.steps
    budget = TimeBudget(config.minutes, step, config.steps) if config.minutes else None
    terms: dict[str, float] = {}
    with MetricsLog(out / METRICS_NAME, resume_step=step if state is not None else None) as log:
        window_start, window_frames, data_seconds = time.perf_counter(), 0, 0.0
        while step < last_step:
            fetch_start = time.perf_counter()
            batch = next(stream).to(device, non_blocking=True)  # (B, 3, T, S, S)
            data_seconds += time.perf_counter() - fetch_start
            terms = train_step(
                vae, loss_fn, batch, optimizer, config, step, discriminator_optimizer
            )
            lr = scheduler.get_last_lr()[0]
            scheduler.step()
            if ema is not None:
                ema.update(vae)
            step += 1
            window_frames += batch.shape[0] * batch.shape[2]
            if step % config.log_every == 0 or step == last_step:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                now = time.perf_counter()
                elapsed += now - window_start
                log.write(
                    {
                        "step": step,
                        **terms,
                        "lr": lr,
                        "seconds": elapsed,
                        "frames_per_second": window_frames / max(now - window_start, 1e-9),
                        "data_seconds": data_seconds,
                    }
                )
                window_start, window_frames, data_seconds = now, 0, 0.0
                planned = budget.plan(step) if budget is not None else None
                if planned is not None and planned != config.steps:
                    config = dataclasses.replace(config, steps=planned)  # saved with the run
                    schedule.total = planned  # the cosine ends at the new last step
                    last_step = min(planned, stop_at) if stop_at is not None else planned
            if on_step is not None:  # after planning: the current total
                on_step(step, terms if budget is None else {**terms, "steps": config.steps})
            if step % config.checkpoint_every == 0 and step < last_step:
                save(step)
    save(step)

    # 5. export the finished model, with its latent normalisation measured
    if step < config.steps:
        return TrainResult(step=step, finished=False, last=terms, model_folder=None)
    with ema.swapped_into(vae) if ema is not None else nullcontext(vae) as final:
        statistics = kept_statistics
        if statistics is None and config.latent_stat_batches > 0:
            # batches past the end of training: deterministic, and none was trained on
            batches = (
                stream.batch(config.steps + i).to(device) for i in range(config.latent_stat_batches)
            )
            statistics = latent_statistics(final, batches)
        folder = export_model(final, out / EXPORT_FOLDER, statistics, config.export_bf16)
    return TrainResult(step=step, finished=True, last=terms, model_folder=folder)
