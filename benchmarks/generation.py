"""Measure text-to-video generation: prompt adherence with the judge, and speed.

    python benchmarks/generation.py                         # the shipped model, 200 + 50 prompts
    python benchmarks/generation.py --model runs/dit/model --prompts 20 --held-out 8
    python benchmarks/generation.py --speed-only            # seconds for one 4 s 128x128 clip
    python benchmarks/generation.py --reference             # the ceiling the VAE sets

Quality: the first ``--prompts`` cases of the fixed prompt set (`kinetoscope.adherence`),
generated at each case's aspect and duration with the model's default steps and guidance and
noise seed 0 (or ``--steps`` / ``--guidance`` / ``--sampler`` / ``--seed``, to compare
sampling settings), judged against their scenes; then ``--held-out`` cases with held-out
combinations, reported separately. ``--reference`` judges the sets' own scenes instead,
rendered at the shapes the model generates and passed through its VAE: the judge's ceiling
for this model, since every generated clip is decoded by that VAE.
Speed: the model's longest clip (4 s) at its short side, 1:1 (the issue's "4 s 128x128"),
default settings, median of ``--repeats`` runs after a warm-up, on the CPU threads given.
Prints markdown for docs/benchmarks.md; ``--json PATH`` also writes the numbers.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from kinetoscope.adherence import (
    TARGETS,
    AdherenceReport,
    judge_cases,
    native_durations,
    prompt_cases,
)
from kinetoscope.pipeline import SAMPLERS, GenerationConfig, Pipeline, load_default
from kinetoscope.world.judge import DIMENSIONS

COLUMNS = ("overall", *DIMENSIONS, "gravity_bounce")


def machine() -> str:
    return (
        f"{datetime.date.today()}, {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}"
    )


def speed(pipeline: Pipeline, repeats: int) -> list[float]:
    # the model's longest native clip (4 s for the default model) at its short side, square
    prompt = "A red circle falls and bounces."
    pipeline.generate(prompt, aspect="1:1")  # warm-up
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        pipeline.generate(prompt, aspect="1:1")
        times.append(time.perf_counter() - began)
    return times


def table(rows: dict[str, AdherenceReport]) -> str:
    header = "| set | clips | " + " | ".join(COLUMNS) + " |"
    lines = [header, "|" + "---|" * (len(COLUMNS) + 2)]
    targets = ["target", ""] + [f">= {TARGETS[c]:.2f}" if c in TARGETS else "" for c in COLUMNS]
    lines.append("| " + " | ".join(targets) + " |")
    for name, report in rows.items():
        cells = [f"{report.means[c]:.3f}" if c in report.means else "-" for c in COLUMNS]
        lines.append(f"| {name} | {report.cases} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="a pipeline folder (default: shipped)")
    parser.add_argument("--prompts", type=int, default=200, help="fixed-set prompts (200)")
    parser.add_argument(
        "--held-out", type=int, default=50, help="prompts with held-out combinations (50)"
    )
    parser.add_argument("--steps", type=int, help="sampling steps (the model's default)")
    parser.add_argument("--guidance", type=float, help="guidance scale (the model's default)")
    parser.add_argument(
        "--sampler",
        default=GenerationConfig.sampler,
        choices=sorted(SAMPLERS),
        help="sampler (%(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=GenerationConfig.seed,
        help="noise seed of every clip (%(default)s)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed generations (3)")
    parser.add_argument("--threads", type=int, help="CPU threads (default: torch's)")
    parser.add_argument("--speed-only", action="store_true", help="time, judge nothing")
    parser.add_argument("--reference", action="store_true", help="judge the scenes through the VAE")
    parser.add_argument("--device", default="cpu", help="torch device (cpu)")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.model is None:
        pipeline = load_default(args.device)
    else:
        pipeline = Pipeline.from_pretrained(args.model, args.device)
    results: dict[str, object] = {"machine": machine()}
    print(f"{machine()}\n")

    times = speed(pipeline, args.repeats)
    results["seconds_4s_clip"] = times
    index = pipeline.index
    print(
        f"{index.max_seconds:g} s {index.short_side}x{index.short_side} clip, "
        f"{index.steps} steps, guidance "
        f"{index.guidance:g}: median {statistics.median(times):.1f} s "
        f"(min {min(times):.1f}, max {max(times):.1f}, {len(times)} runs)\n"
    )
    if not args.speed_only:
        chosen = {
            "steps": args.steps,
            "guidance": args.guidance,
            "sampler": args.sampler,
            "seed": args.seed,
        }
        options = {name: value for name, value in chosen.items() if value is not None}
        if not args.reference:  # the reference rows sample nothing
            sampling = {"steps": index.steps, "guidance": index.guidance} | options
            line = "sampling: {steps} steps, guidance {guidance:g}, {sampler}, seed {seed}"
            print(line.format(**sampling))
            results["sampling"] = sampling
        reports = {}
        suffix = ", its scenes through the VAE" if args.reference else ""
        for name, count, held_out in (
            ("fixed set" + suffix, args.prompts, False),
            ("held-out combinations" + suffix, args.held_out, True),
        ):
            if count <= 0:
                continue
            began = time.perf_counter()
            # durations the model makes in one go (1-4 s for the default recipe)
            cases = prompt_cases(count, held_out=held_out, durations=native_durations(index))
            reports[name] = judge_cases(pipeline, cases, reference=args.reference, **options)
            print(f"{name}: {count} clips in {time.perf_counter() - began:.0f} s")
        print()
        print(table(reports))
        results["quality"] = {name: report.means for name, report in reports.items()}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
