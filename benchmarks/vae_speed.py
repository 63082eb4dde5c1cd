"""Measure the video VAE's speed, and its memory on long clips.

    python benchmarks/vae_speed.py                          # throughput, then long-clip memory
    python benchmarks/vae_speed.py --presets small --sizes 128 --skip-memory
    python benchmarks/vae_speed.py --skip-throughput --memory-seconds 10 60

Throughput: encode + decode of one clip of ``--frames`` frames (17 by default: 5 latent
frames), chunked (8 frames per encode chunk, 2 latent frames per decode chunk), float32 under
`torch.inference_mode`, after one warm-up run; the median of ``--repeats`` runs is reported as
frames per second (encode and decode separately, then both). On CUDA it runs under bf16
autocast. Weights are freshly initialised: speed does not depend on training.

Memory: for each duration in ``--memory-seconds``, a fresh child process encodes a synthetic
clip of that many seconds at 16 fps (``--memory-size`` pixels square) with `encode_stream`
(16 frames a chunk), keeps the latents, then decodes them with `decode_stream` (4 latent
frames a chunk) and drops each decoded chunk after turning it into uint8 frames, as a writer
would. Frames are generated chunk by chunk, so no clip is ever held whole. The child reports
its peak resident memory (``getrusage``); flat peaks across durations show bounded memory.

The output is markdown (machine facts, then tables) ready for docs/benchmarks.md; ``--json``
also writes the numbers. Run it on a quiet machine: other processes on the same cores make CPU
timings swing.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from kinetoscope.models.vae import VAE_PRESETS, VideoVAE, tensor_to_frames

FPS = 16
ENCODE_CHUNK_FRAMES = 8  # throughput runs: 17 frames = 1 + 8 + 8
DECODE_CHUNK_LATENTS = 2
STREAM_CHUNK_FRAMES = 16  # memory runs
STREAM_CHUNK_LATENTS = 4


@dataclass
class Throughput:
    device: str
    preset: str
    parameters: int
    size: int
    frames: int
    threads: int
    encode_fps: float
    decode_fps: float
    total_fps: float  # frames per second of encode + decode
    repeats: int
    gpu_peak_mib: float | None  # the GPU memory allocated at most (None on the CPU)


@dataclass
class Memory:
    preset: str
    size: int
    seconds: float
    frames: int
    threads: int
    baseline_mib: float  # resident memory after building the model, before any coding
    peak_mib: float  # peak resident memory of the whole process
    wall_s: float
    total_fps: float


# ---- synthetic clips -------------------------------------------------------------------------


def synthetic_chunk(start: int, count: int, size: int) -> torch.Tensor:
    """Frames start .. start + count - 1 of a clip of moving waves and a moving square,
    float (1, 3, count, size, size) in [-1, 1]: any frame can be made on its own."""
    t = (torch.arange(start, start + count, dtype=torch.float32) / FPS)[:, None, None]
    grid = torch.linspace(0, 1, size)
    y, x = grid[:, None], grid[None, :]
    red = torch.sin(12 * x + 3 * t) * torch.cos(9 * y - 2 * t)
    green = torch.sin(20 * (x + y) - 5 * t)
    centre = 0.5 + 0.3 * torch.sin(t)
    square = ((x - centre).abs() < 0.1) & ((y - 0.5).abs() < 0.1)
    blue = torch.where(square, 1.0, -0.5).expand(count, size, size)
    return 0.9 * torch.stack([red.expand(count, size, size), green, blue])[None]


# ---- throughput ------------------------------------------------------------------------------


def time_once(vae: VideoVAE, clip: torch.Tensor, device: str) -> tuple[float, float]:
    """Seconds to encode, then to decode, one clip, the device synchronised around each."""

    def synchronise() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda")
    with torch.inference_mode(), autocast:
        synchronise()
        start = time.perf_counter()
        latents = vae.encode(clip, chunk_frames=ENCODE_CHUNK_FRAMES).mode()
        synchronise()
        encoded = time.perf_counter()
        vae.decode(latents, chunk_latents=DECODE_CHUNK_LATENTS)
        synchronise()
        decoded = time.perf_counter()
    return encoded - start, decoded - encoded


def measure_throughput(
    preset: str, size: int, frames: int, device: str, repeats: int
) -> Throughput:
    vae = VideoVAE(VAE_PRESETS[preset]).to(device).eval()
    clip = synthetic_chunk(0, frames, size).to(device)
    time_once(vae, clip, device)  # warm-up: kernels and oneDNN primitives for these shapes
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    runs = [time_once(vae, clip, device) for _ in range(repeats)]
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None
    encode = statistics.median(run[0] for run in runs)
    decode = statistics.median(run[1] for run in runs)
    total = statistics.median(run[0] + run[1] for run in runs)
    return Throughput(
        device=device,
        preset=preset,
        parameters=sum(p.numel() for p in vae.parameters()),
        size=size,
        frames=frames,
        threads=torch.get_num_threads(),
        encode_fps=frames / encode,
        decode_fps=frames / decode,
        total_fps=frames / total,
        repeats=repeats,
        gpu_peak_mib=peak,
    )


# ---- memory on long clips (in a child process each) ------------------------------------------


def resident_mib() -> float:
    """The process's resident memory now, from /proc (Linux)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def long_clip_child(preset: str, size: int, seconds: float) -> Memory:
    """Encode then decode a long synthetic clip in streamed chunks (runs in the child)."""
    frames = 1 + STREAM_CHUNK_FRAMES * round(seconds * FPS / STREAM_CHUNK_FRAMES)  # 1 + 16n
    vae = VideoVAE(VAE_PRESETS[preset]).eval()
    baseline = resident_mib()
    starts = [0, *range(1, frames, STREAM_CHUNK_FRAMES)]
    ends = [*starts[1:], frames]
    chunks = (synthetic_chunk(s, e - s, size) for s, e in zip(starts, ends, strict=True))
    start = time.perf_counter()
    with torch.inference_mode():
        latents = [posterior.mode() for posterior in vae.encode_stream(chunks)]
        latents = torch.cat(latents, dim=2)  # (1, C, 1 + k, h, w): kept, as a pipeline would
        latent_chunks = latents.split(STREAM_CHUNK_LATENTS, dim=2)
        decoded = 0
        for pixels in vae.decode_stream(latent_chunks):
            decoded += tensor_to_frames(pixels).shape[0]  # a writer would encode these
    wall = time.perf_counter() - start
    assert decoded == frames, (decoded, frames)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return Memory(
        preset=preset,
        size=size,
        seconds=(frames - 1) / FPS,
        frames=frames,
        threads=torch.get_num_threads(),
        baseline_mib=baseline,
        peak_mib=peak,
        wall_s=wall,
        total_fps=frames / wall,
    )


def measure_memory(preset: str, size: int, seconds: float, threads: int | None) -> Memory:
    """Run `long_clip_child` in a fresh interpreter, so every peak is its own."""
    command = [sys.executable, __file__, "--child", preset, str(size), str(seconds)]
    if threads is not None:
        command += ["--threads", str(threads)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return Memory(**json.loads(result.stdout.strip().splitlines()[-1]))


# ---- report ----------------------------------------------------------------------------------


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_lines(devices: list[str]) -> list[str]:
    lines = [
        f"- date: {datetime.date.today().isoformat()}",
        f"- CPU: {cpu_name()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}",
        f"- torch {torch.__version__}, Python {platform.python_version()}, {platform.system()}",
    ]
    if "cuda" in devices:
        lines.append(f"- GPU: {torch.cuda.get_device_name()} (bf16 autocast)")
    return lines


def throughput_table(results: list[Throughput]) -> list[str]:
    lines = [
        "| device | preset | params | size | frames | encode fps | decode fps | both fps "
        "| GPU peak |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        peak = "-" if r.gpu_peak_mib is None else f"{r.gpu_peak_mib:.0f} MiB"
        lines.append(
            f"| {r.device} ({r.threads} threads) | {r.preset} | {r.parameters / 1e6:.2f} M "
            f"| {r.size}x{r.size} | {r.frames} | {r.encode_fps:.2f} | {r.decode_fps:.2f} "
            f"| {r.total_fps:.2f} | {peak} |"
        )
    return lines


def memory_table(results: list[Memory]) -> list[str]:
    lines = [
        "| preset | size | clip | frames | RSS before coding | peak RSS | wall | fps |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.preset} | {r.size}x{r.size} | {r.seconds:g} s at {FPS} fps | {r.frames} "
            f"| {r.baseline_mib:.0f} MiB | {r.peak_mib:.0f} MiB | {r.wall_s:.0f} s "
            f"| {r.total_fps:.2f} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=["small", "base"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[128, 256])
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", choices=["cpu", "cuda"], default=None)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--memory-preset", default="small")
    parser.add_argument("--memory-size", type=int, default=256)
    parser.add_argument("--memory-seconds", nargs="+", type=float, default=[10.0, 60.0])
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--child", nargs=3, metavar=("PRESET", "SIZE", "SECONDS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    if args.child is not None:  # one long-clip memory run, in its own process
        preset, size, seconds = args.child
        print(json.dumps(asdict(long_clip_child(preset, int(size), float(seconds)))))
        return

    devices = (
        [args.device] if args.device else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    )
    print("### Video VAE speed and memory\n")
    print("\n".join(machine_lines(devices)) + "\n")
    throughput: list[Throughput] = []
    if not args.skip_throughput:
        for device in devices:
            for preset in args.presets:
                for size in args.sizes:
                    throughput.append(
                        measure_throughput(preset, size, args.frames, device, args.repeats)
                    )
                    print(throughput_table(throughput[-1:])[-1], file=sys.stderr, flush=True)
        print("\n".join(throughput_table(throughput)) + "\n")
    memory: list[Memory] = []
    if not args.skip_memory:
        for seconds in args.memory_seconds:
            memory.append(
                measure_memory(args.memory_preset, args.memory_size, seconds, args.threads)
            )
            print(memory_table(memory[-1:])[-1], file=sys.stderr, flush=True)
        print("\n".join(memory_table(memory)) + "\n")
    if args.json is not None:
        payload = {
            "throughput": [asdict(r) for r in throughput],
            "memory": [asdict(r) for r in memory],
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
