"""Measure physics-world rendering throughput in clips per second.

    python benchmarks/world_render.py                        # CPU, and CUDA when there is one
    python benchmarks/world_render.py --json bench.json      # also write the results as JSON
    python benchmarks/world_render.py --device cpu --sizes 128 --batches 8 16 32

Clips are 4 s at 16 fps (65 frames) of scenes drawn by the sampler, rendered with
`render_batch`. Each setting (device, frame size, batch size) is warmed up once, then timed
`--repeats` times on different batches of the scene pool; the median is reported. The output
is markdown: machine facts, then one table row per setting, ready to paste into
docs/benchmarks.md. Targets (from the issue): >= 20 clips/s at 128x128x65 on 2 CPU cores,
>= 5000 clips/s on a GPU.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from kinetoscope.world.render import render_batch
from kinetoscope.world.sampler import sample_scene
from kinetoscope.world.spec import SceneSpec

SECONDS, FPS = 4.0, 16
TARGETS = {"cpu": 20.0, "cuda": 5000.0}  # clips/s at 128x128x65
CPU_BATCHES = (8, 16, 32)
CUDA_BATCHES = (256, 1024, 2048)  # at 128x128; a float canvas is 12.8 MB per clip there


@dataclass
class Result:
    device: str
    size: int
    frames: int
    batch: int
    threads: int
    median: float  # clips per second
    low: float
    high: float
    repeats: int


def scene_pool(count: int) -> list[SceneSpec]:
    """`count` sampled scenes of 4 s (seeds from 0; a seed the sampler rejects is skipped)."""
    scenes, seed = [], 0
    while len(scenes) < count:
        try:
            scenes.append(sample_scene(seed, aspect=1.0, seconds=SECONDS))
        except Exception as exc:  # any sampler failure only costs that seed
            print(f"seed {seed} skipped: {type(exc).__name__}: {exc}")
        seed += 1
    return scenes


def batches(pool: list[SceneSpec], batch: int, count: int) -> list[list[SceneSpec]]:
    """`count` batches cut one after another from the pool, wrapping around it."""
    return [[pool[(i * batch + j) % len(pool)] for j in range(batch)] for i in range(count)]


def default_batches(device: str, size: int) -> tuple[int, ...]:
    """CPU: 8, 16, 32. CUDA: larger batches, fewer as the frames grow (memory goes with area)."""
    if device == "cpu":
        return CPU_BATCHES
    shrink = max(1, (size // 128) ** 2)
    return tuple(max(1, batch // shrink) for batch in CUDA_BATCHES)


def time_render(scenes: list[SceneSpec], size: int, device: str) -> float:
    """Seconds to render one batch, the device synchronised on both sides."""
    if device == "cuda":
        torch.cuda.synchronize()
    began = time.perf_counter()
    render_batch(scenes, size, size, FPS, device=device)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - began


def measure(pool: list[SceneSpec], device: str, size: int, batch: int, repeats: int) -> Result:
    warm_up, *timed = batches(pool, batch, repeats + 1)
    time_render(warm_up, size, device)
    rates = [batch / time_render(scenes, size, device) for scenes in timed]
    return Result(
        device=device,
        size=size,
        frames=pool[0].frame_count(FPS),
        batch=batch,
        threads=torch.get_num_threads(),
        median=statistics.median(rates),
        low=min(rates),
        high=max(rates),
        repeats=repeats,
    )


def machine() -> dict[str, object]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    facts: dict[str, object] = {
        "date": datetime.date.today().isoformat(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    if torch.cuda.is_available():
        facts["gpu"] = torch.cuda.get_device_name(0)
        facts["cuda"] = torch.version.cuda
    return facts


def table(results: list[Result]) -> str:
    lines = [
        "| device | size | frames | batch | threads | clips/s (median) | min - max |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.device} | {r.size}x{r.size} | {r.frames} | {r.batch} | {r.threads} "
            f"| {r.median:.1f} | {r.low:.1f} - {r.high:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("all", "cpu", "cuda"), default="all")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--batches", type=int, nargs="+", help="batch sizes for every device")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--pool", type=int, default=64, help="distinct sampled scenes")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: all)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    # 1. the machine and the scenes
    facts = machine()
    print("\n".join(f"- {key}: {value}" for key, value in facts.items()))
    began = time.perf_counter()
    pool = scene_pool(args.pool)
    print(f"- scenes: {len(pool)} sampled in {time.perf_counter() - began:.1f} s\n")

    # 2. every setting
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    if "cuda" in devices and not torch.cuda.is_available():
        print("CUDA is not available: CPU only\n")
        devices.remove("cuda")
    results = []
    for device in devices:
        for size in args.sizes:
            for batch in args.batches or default_batches(device, size):
                try:
                    result = measure(pool, device, size, batch, args.repeats)
                except torch.cuda.OutOfMemoryError:
                    print(f"| {device} | {size}x{size} | batch {batch}: out of memory |")
                    torch.cuda.empty_cache()
                    continue
                results.append(result)
                print(table([result]).splitlines()[-1], flush=True)

    # 3. the table, the best batch per setting and the targets
    print("\n" + table(results) + "\n")
    best = {}
    for r in results:
        key = (r.device, r.size)
        if key not in best or r.median > best[key].median:
            best[key] = r
    for (device, size), r in best.items():
        line = f"best {device} {size}x{size}: {r.median:.1f} clips/s at batch {r.batch}"
        if size == 128 and device in TARGETS:
            verdict = "meets" if r.median >= TARGETS[device] else "misses"
            line += f" ({verdict} the target of {TARGETS[device]:.0f})"
        print(line)
    if args.json:
        payload = {
            "machine": facts,
            "seconds": SECONDS,
            "fps": FPS,
            "results": [asdict(r) for r in results],
            "best": [asdict(r) for r in best.values()],
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
