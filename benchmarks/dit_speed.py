"""Measure the diffusion transformer's speed: CPU generation, GPU training, and against Wan.

    python benchmarks/dit_speed.py                                 # (a) on the CPU
    python benchmarks/dit_speed.py --dtypes bfloat16 --threads 2 --steps 20 30
    python benchmarks/dit_speed.py --device cuda --json dit.json   # (b) and (c) on a GPU

(a) CPU generation (``--device cpu``). The forward pass of ``--preset`` (default: S, the
shipped model) at the token count of a ``--seconds`` (4) s clip at ``--size`` (128) pixels
square: 1 + 4 s x 16 fps / 4 = 17 latent frames of 16x16 latents, 17 x 64 = 1088 tokens. A
guided step needs a conditional and an unconditional prediction: timed both as one batch of
two and as two batches of one. Seconds for N steps = N x the faster of the two (the
transformer alone: text encoding and VAE decoding come on top), per dtype in ``--dtypes``,
under `torch.inference_mode`.

(b) GPU training (``--device cuda``). For each of ``--train-presets`` (default S and XL):
samples per second of a full step (forward and backward under bf16 autocast, fused AdamW on
float32 weights) on 4 s 128x128 clips at batch ``--batch``, and the model FLOPs utilisation
MFU = 3 x forward FLOPs per sample (`DiTConfig.forward_flops`) x samples/s / the GPU's dense
bf16 peak (989 TFLOP/s for an H100 SXM or an H200, read from the device name; ``--peak-tflops``
for other GPUs). Model FLOPs, so gradient checkpointing's recomputation does not count.

(c) Against diffusers' `WanTransformer3DModel` (``--device cuda``, when diffusers is
installed; it is not a dependency): built with the same width, depth, heads, MLP width, input
channels (33), text width and patch size, random weights, fed the same token count and text
length; the forward and backward time of each under bf16 autocast, in one run on one GPU,
and their ratio (ours / Wan's: below 1 means ours is faster).

Every timing is the median of ``--repeats`` runs after ``--warmup`` runs. The output is markdown
ready for docs/benchmarks.md; ``--json PATH`` also writes the numbers. CPU timings swing when
other processes share the cores: run on a quiet machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from kinetoscope.models.dit import (
    DIT_PRESETS,
    DiffusionTransformer,
    DiTConfig,
    frame_conditioning,
)
from kinetoscope.models.text import TEXT_DIM, TextEmbedding

FPS = 16
TEXT_TOKENS = 16  # a typical prompt of the physics world, in MiniLM tokens
PEAK_BF16_TFLOPS = {"H100 PCIe": 756.0, "H100": 989.0, "H200": 989.0, "A100": 312.0}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass
class Generation:
    preset: str
    parameters: int
    dtype: str
    threads: int
    tokens: int
    batch_of_two_s: float  # one forward pass, conditional and unconditional batched
    two_of_one_s: float  # two forward passes of one sample each
    step_s: float  # the faster of the two
    generation_s: dict[int, float]  # seconds for N steps


@dataclass
class Training:
    preset: str
    parameters: int
    batch: int
    tokens: int
    checkpointing: bool
    step_s: float
    samples_per_s: float
    model_tflops: float  # achieved model FLOP/s, in TFLOP/s
    mfu: float | None  # None when the GPU's peak is unknown


@dataclass
class Comparison:
    preset: str
    batch: int
    tokens: int
    ours_parameters: int
    wan_parameters: int
    ours_s: float  # forward + backward
    wan_s: float
    ratio: float  # ours / Wan's


# ---- inputs ----------------------------------------------------------------------------------


def latent_grid(seconds: float, size: int) -> tuple[int, int, int]:
    """Latent (frames, height, width) of a square clip: 1 + 4k frames -> 1 + k, 8x8 pixels."""
    frames = 1 + round(seconds * FPS) // 4
    return frames, size // 8, size // 8


def random_inputs(
    config: DiTConfig, batch: int, grid: tuple[int, int, int], device: str, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, TextEmbedding]:
    latents = torch.randn(batch, config.latent_channels, *grid, device=device, dtype=dtype)
    timesteps = torch.rand(batch, device=device)
    text = TextEmbedding(
        tokens=torch.randn(batch, TEXT_TOKENS, TEXT_DIM, device=device, dtype=dtype),
        mask=torch.ones(batch, TEXT_TOKENS, dtype=torch.bool, device=device),
        pooled=F.normalize(torch.randn(batch, TEXT_DIM, device=device), dim=-1).to(dtype),
    )
    return latents, timesteps, text


def tokens_of(config: DiTConfig, grid: tuple[int, int, int]) -> int:
    return math.prod(size // patch for size, patch in zip(grid, config.patch_size, strict=True))


def median_seconds(run: Callable[[], object], device: str, warmup: int, repeats: int) -> float:
    """Median wall time of ``run()`` over ``repeats`` calls after ``warmup`` calls."""

    def synchronise() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        synchronise()
        start = time.perf_counter()
        run()
        synchronise()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# ---- (a) CPU generation ----------------------------------------------------------------------


def measure_generation(
    preset: str, dtype_name: str, grid: tuple[int, int, int], steps: list[int], args
) -> Generation:
    config = DIT_PRESETS[preset]
    dtype = DTYPES[dtype_name]
    model = DiffusionTransformer(config).to(dtype).eval()
    pair = random_inputs(config, 2, grid, "cpu", dtype)
    single = random_inputs(config, 1, grid, "cpu", dtype)
    with torch.inference_mode():
        batched = median_seconds(lambda: model(*pair), "cpu", args.warmup, args.repeats)
        one = median_seconds(lambda: model(*single), "cpu", args.warmup, args.repeats)
    step = min(batched, 2 * one)
    return Generation(
        preset=preset,
        parameters=model.num_parameters(),
        dtype=dtype_name,
        threads=torch.get_num_threads(),
        tokens=tokens_of(config, grid),
        batch_of_two_s=batched,
        two_of_one_s=2 * one,
        step_s=step,
        generation_s={n: n * step for n in steps},
    )


def generation_table(results: list[Generation], steps: list[int]) -> list[str]:
    step_columns = " | ".join(f"{n} steps" for n in steps)
    lines = [
        f"| preset | params | dtype | threads | tokens | batch of 2 | 2 x batch of 1 "
        f"| {step_columns} |",
        "|---|---|---|---|---|---|---|" + "---|" * len(steps),
    ]
    for r in results:
        totals = " | ".join(f"{r.generation_s[n]:.1f} s" for n in steps)
        lines.append(
            f"| {r.preset} | {r.parameters / 1e6:.1f} M | {r.dtype} | {r.threads} | {r.tokens} "
            f"| {r.batch_of_two_s:.3f} s | {r.two_of_one_s:.3f} s | {totals} |"
        )
    return lines


# ---- (b) GPU training ------------------------------------------------------------------------


def peak_tflops(override: float | None) -> float | None:
    """The GPU's dense bf16 peak from its name (the most specific match first)."""
    if override is not None:
        return override
    name = torch.cuda.get_device_name()
    for key in sorted(PEAK_BF16_TFLOPS, key=len, reverse=True):
        if key in name:
            return PEAK_BF16_TFLOPS[key]
    return None


def measure_training(
    preset: str, batch: int, grid: tuple[int, int, int], checkpointing: bool, args
) -> Training:
    config = DIT_PRESETS[preset]
    model = DiffusionTransformer(config).cuda().train()
    model.enable_gradient_checkpointing(checkpointing)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    latents, timesteps, text = random_inputs(config, batch, grid, "cuda", torch.float32)
    target = torch.randn_like(latents)
    drop = torch.rand(batch, device="cuda") < 0.1  # classifier-free guidance dropout

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            velocity = model(latents, timesteps, text, drop_text=drop)
        loss = F.mse_loss(velocity.float(), target)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    seconds = median_seconds(step, "cuda", args.warmup, args.repeats)
    tokens = tokens_of(config, grid)
    samples = batch / seconds
    achieved = 3 * config.forward_flops(tokens, TEXT_TOKENS) * samples / 1e12
    peak = peak_tflops(args.peak_tflops)
    result = Training(
        preset=preset,
        parameters=model.num_parameters(),
        batch=batch,
        tokens=tokens,
        checkpointing=checkpointing,
        step_s=seconds,
        samples_per_s=samples,
        model_tflops=achieved,
        mfu=None if peak is None else achieved / peak,
    )
    return result


def training_table(results: list[Training]) -> list[str]:
    lines = [
        "| preset | params | batch | tokens | checkpointing | step | samples/s | TFLOP/s | MFU |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        mfu = "unknown peak" if r.mfu is None else f"{100 * r.mfu:.1f} %"
        lines.append(
            f"| {r.preset} | {r.parameters / 1e6:.1f} M | {r.batch} | {r.tokens} "
            f"| {'yes' if r.checkpointing else 'no'} | {r.step_s * 1000:.0f} ms "
            f"| {r.samples_per_s:.1f} | {r.model_tflops:.0f} | {mfu} |"
        )
    return lines


# ---- (c) against WanTransformer3DModel -------------------------------------------------------


def wan_twin(config: DiTConfig) -> torch.nn.Module:
    """diffusers' Wan transformer with our width, depth, heads, MLP, channels and patch."""
    from diffusers import WanTransformer3DModel

    return WanTransformer3DModel(
        patch_size=config.patch_size,
        num_attention_heads=config.heads,
        attention_head_dim=config.head_dim,
        in_channels=config.in_channels,
        out_channels=config.latent_channels,
        text_dim=config.text_dim,
        freq_dim=config.timestep_frequencies,
        ffn_dim=config.mlp_width,
        num_layers=config.depth,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        eps=config.norm_eps,
    )


def forward_backward_seconds(forward: Callable[[], torch.Tensor], args) -> float:
    def run() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            output = forward()
        output.float().square().mean().backward()

    return median_seconds(run, "cuda", args.warmup, args.repeats)


def measure_comparison(preset: str, batch: int, grid: tuple[int, int, int], args) -> Comparison:
    config = DIT_PRESETS[preset]
    inputs = random_inputs(config, batch, grid, "cuda", torch.float32)
    ours_parameters, ours_s = time_ours(config, inputs, args)
    torch.cuda.empty_cache()  # one model at a time on the GPU: each is freed on return
    wan_parameters, wan_s = time_wan(config, inputs, args)
    torch.cuda.empty_cache()
    return Comparison(
        preset=preset,
        batch=batch,
        tokens=tokens_of(config, grid),
        ours_parameters=ours_parameters,
        wan_parameters=wan_parameters,
        ours_s=ours_s,
        wan_s=wan_s,
        ratio=ours_s / wan_s,
    )


def time_ours(config: DiTConfig, inputs: tuple, args) -> tuple[int, float]:
    """Parameters and forward + backward seconds of our transformer."""
    model = DiffusionTransformer(config).cuda().train()
    return model.num_parameters(), forward_backward_seconds(lambda: model(*inputs), args)


def time_wan(config: DiTConfig, inputs: tuple, args) -> tuple[int, float]:
    """The same for the Wan twin, fed the same 33 input channels, timesteps and text."""
    latents, timesteps, text = inputs
    model = wan_twin(config).cuda().train()
    model_input = frame_conditioning(latents, None, None)  # (B, 33, t, h, w), as ours sees it

    def forward() -> torch.Tensor:
        return model(
            hidden_states=model_input,
            timestep=timesteps * 1000,  # Wan's timesteps run over [0, 1000]
            encoder_hidden_states=text.tokens,
            return_dict=False,
        )[0]

    parameters = sum(p.numel() for p in model.parameters())
    return parameters, forward_backward_seconds(forward, args)


def comparison_table(results: list[Comparison]) -> list[str]:
    lines = [
        "| preset | batch | tokens | ours (params) | Wan (params) | ours fwd+bwd | Wan fwd+bwd "
        "| ours / Wan |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.preset} | {r.batch} | {r.tokens} | {r.ours_parameters / 1e6:.1f} M "
            f"| {r.wan_parameters / 1e6:.1f} M | {r.ours_s * 1000:.0f} ms "
            f"| {r.wan_s * 1000:.0f} ms | {r.ratio:.2f} |"
        )
    return lines


def diffusers_available() -> bool:
    try:
        import diffusers  # noqa: F401
    except ImportError:
        return False
    return True


# ---- report ----------------------------------------------------------------------------------


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_lines(device: str) -> list[str]:
    lines = [
        f"- date: {datetime.date.today().isoformat()}",
        f"- CPU: {cpu_name()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}",
        f"- torch {torch.__version__}, Python {platform.python_version()}, {platform.system()}",
    ]
    if device == "cuda":
        lines.append(f"- GPU: {torch.cuda.get_device_name()} (bf16 autocast)")
    return lines


def parse_batches(values: list[str]) -> dict[str, int]:
    """``PRESET=BATCH`` pairs."""
    batches = {}
    for value in values:
        preset, _, batch = value.partition("=")
        if preset not in DIT_PRESETS or not batch.isdigit() or int(batch) < 1:
            raise argparse.ArgumentTypeError(f"--batch takes PRESET=N pairs, got {value!r}")
        batches[preset] = int(batch)
    return batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--preset", choices=list(DIT_PRESETS), default="S", help="for (a)")
    parser.add_argument("--dtypes", nargs="+", choices=list(DTYPES), default=list(DTYPES))
    parser.add_argument("--steps", nargs="+", type=int, default=[20, 25, 30])
    parser.add_argument("--seconds", type=float, default=4.0, help="clip length")
    parser.add_argument("--size", type=int, default=128, help="clip side in pixels")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    parser.add_argument(
        "--train-presets", nargs="+", choices=list(DIT_PRESETS), default=["S", "XL"]
    )
    parser.add_argument(
        "--batch", nargs="+", default=["S=64", "XL=8"], help="per-preset GPU batch, PRESET=N"
    )
    parser.add_argument("--checkpointing", action="store_true", help="gradient checkpointing")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the GPU's bf16 peak")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--skip-comparison", action="store_true")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.size % 16:
        parser.error(f"--size must be a multiple of 16 (8x VAE, 2x patch), got {args.size}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here; (b) and (c) need a GPU")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    grid = latent_grid(args.seconds, args.size)
    payload: dict[str, list[dict]] = {}
    print("### Diffusion transformer speed\n")
    print("\n".join(machine_lines(args.device)) + "\n")

    if args.device == "cpu":
        # (a) generation on the CPU; (b) and (c) only run with --device cuda
        results = []
        for dtype_name in args.dtypes:
            results.append(measure_generation(args.preset, dtype_name, grid, args.steps, args))
            print(generation_table(results[-1:], args.steps)[-1], file=sys.stderr, flush=True)
        print(f"CPU generation, {args.seconds:g} s at {args.size}x{args.size}, guided steps:\n")
        print("\n".join(generation_table(results, args.steps)) + "\n")
        print("GPU training and the Wan comparison: run with --device cuda.\n")
        payload["generation"] = [asdict(r) for r in results]
    else:
        batches = parse_batches(args.batch)
        missing = [p for p in args.train_presets if p not in batches]
        if missing:
            parser.error(f"--batch has no batch size for preset(s) {missing}")
        if not args.skip_training:
            training = []
            for preset in args.train_presets:
                training.append(
                    measure_training(preset, batches[preset], grid, args.checkpointing, args)
                )
                torch.cuda.empty_cache()  # the model and optimizer went with the call
                print(training_table(training[-1:])[-1], file=sys.stderr, flush=True)
            print("GPU training (bf16 autocast, fused AdamW):\n")
            print("\n".join(training_table(training)) + "\n")
            payload["training"] = [asdict(r) for r in training]
        if args.skip_comparison:
            pass
        elif not diffusers_available():
            print("diffusers is not installed: the WanTransformer3DModel comparison is skipped")
            print("(pip install diffusers to run it; it is not a dependency of the project).\n")
        else:
            comparison = []
            for preset in args.train_presets:
                comparison.append(measure_comparison(preset, batches[preset], grid, args))
                print(comparison_table(comparison[-1:])[-1], file=sys.stderr, flush=True)
            print("Forward + backward against WanTransformer3DModel (bf16 autocast):\n")
            print("\n".join(comparison_table(comparison)) + "\n")
            payload["comparison"] = [asdict(r) for r in comparison]
    if args.json is not None:
        args.json.write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
