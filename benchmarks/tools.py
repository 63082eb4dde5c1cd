"""Measure the creative tools: seams, loops, joins, remix, and long extensions.

Prints a Markdown report for docs/benchmarks.md (the shipped model, or --model DIR), the time
it takes to extend a clip to 60 s included.

    python benchmarks/tools.py [--cases 4] [--extend-to 60] [--steps N] [--model DIR]
    python benchmarks/tools.py --cases 12 --long-cases 8 --long-to 16   # + a multi-prompt check

Seam and loop numbers use the mean absolute difference (0-255) between consecutive frames:
a seam or a loop's wrap passes when its difference is within 1.5x the median consecutive
difference of the same video. Long extensions are judged for temporal consistency on each 4 s
window: one long prompt by default, and with --long-cases N also N 2 s clips extended to
--long-to seconds, each prompt scored by its windows' mean.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import platform
import statistics
import time
from pathlib import Path

import torch

from kinetoscope.adherence import PromptCase, prompt_cases
from kinetoscope.creative import CONTEXT_GROUPS, GROUP, frames_for
from kinetoscope.evaluation import psnr
from kinetoscope.io.video import Video
from kinetoscope.pipeline import Pipeline, Result
from kinetoscope.world.judge import judge

RATIO = 1.5


def machine() -> str:
    return (
        f"{datetime.date.today()}, {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}"
    )


def differences(frames: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between consecutive frames: (T - 1,)."""
    return (frames[1:].float() - frames[:-1].float()).abs().mean(dim=(1, 2, 3))


def wrap_ratio(frames: torch.Tensor) -> float:
    """A loop's last-to-first difference over its median consecutive difference."""
    wrap = (frames[0].float() - frames[-1].float()).abs().mean()
    return float(wrap / differences(frames).median().clamp_min(1e-6))


def seam_ratios(frames: torch.Tensor, seams: list[int]) -> list[float]:
    """Each seam's difference (between frames s - 1 and s) over the median."""
    steps = differences(frames)
    median = steps.median().clamp_min(1e-6)
    return [float(steps[s - 1] / median) for s in seams if 0 < s < frames.shape[0]]


def extension_seams(start: int, total: int, window: int) -> list[int]:
    """Where a forward extension's windows begin (the first new frame of each)."""
    seams, made = [], start
    per_window = GROUP * (window - 1 - CONTEXT_GROUPS)
    while made < total:
        seams.append(made)
        made += per_window
    return seams


def psnr_frames(a: torch.Tensor, b: torch.Tensor) -> float:
    return psnr(a[None] if a.ndim == 3 else a, b[None] if b.ndim == 3 else b)


def measure(pipeline: Pipeline, cases: int, extend_to: float, options: dict) -> str:
    fps = pipeline.index.fps
    window = 1 + round(pipeline.index.max_seconds * fps) // GROUP
    rows = {"loop wrap / median": [], "extension seam / median (max)": []}
    rows |= {"backward extension seam / median": [], "animate": []}
    rows |= {"connect a's end / median": [], "connect b's start / median": []}
    rows |= {"remix s=0": [], "remix s=1 judge": []}
    lines = []
    drawn = prompt_cases(cases + 1, aspects=("1:1",), durations=(2.0,))
    for case, new_case in itertools.pairwise(drawn):
        base = pipeline.generate(case.prompt, 2.0, seed=case.seed, **options).video
        loop = pipeline.loop(case.prompt, 3.0, seed=case.seed, **options).frames
        rows["loop wrap / median"].append(wrap_ratio(loop))
        longer = pipeline.extend(base, case.prompt, 4.0, rights_attested=True, **options).frames
        seams = extension_seams(base.num_frames, longer.shape[0], window)
        rows["extension seam / median (max)"].append(max(seam_ratios(longer, seams)))
        # one window backwards: the new frames end where the clip's first frame begins
        earlier = pipeline.extend(
            base, case.prompt, 1.0, "backward", rights_attested=True, **options
        ).frames
        seam = earlier.shape[0] - base.num_frames
        rows["backward extension seam / median"].append(seam_ratios(earlier, [seam])[0])
        image = Video(base.frames[:1], fps)
        animated = pipeline.animate(image, case.prompt, 2.0, rights_attested=True, **options)
        # the first frame is the image itself; what the model saw of it is the VAE's picture
        seen = pipeline.decode(pipeline.encode(base.frames[:1]), _layout(base.frames[:1]))
        rows["animate"].append(psnr_frames(seen[0], animated.frames[0]))
        other = pipeline.generate(case.prompt, 2.0, seed=case.seed + 1, **options).video
        bridge = pipeline.connect(base, other, case.prompt, 1.0, rights_attested=True, **options)
        # the joins: from a's real last frame into the transition, and from the transition
        # into b's real first frame (the transition's own ends are those frames)
        spliced = torch.cat([base.frames[-1:], bridge.frames[1:-1], other.frames[:1]])
        joins = seam_ratios(spliced, [1, spliced.shape[0] - 1])
        rows["connect a's end / median"].append(joins[0])
        rows["connect b's start / median"].append(joins[1])
        kept = pipeline.remix(base, case.prompt, 0.0, rights_attested=True, **options).frames
        rows["remix s=0"].append(psnr_frames(kept, base.frames))
        # strength 1 keeps only the length: each clip is remixed into the next prompt
        remixed = pipeline.remix(base, new_case.prompt, 1.0, rights_attested=True, **options)
        rows["remix s=1 judge"].append(judge(remixed.frames, fps, new_case.scene).overall)
    lines.append(f"| measure | median over {cases} prompts | all |")
    lines.append("|---|---|---|")
    for name, values in rows.items():
        shown = ", ".join(f"{v:.2f}" for v in values)
        lines.append(f"| {name} | {statistics.median(values):.2f} | {shown} |")
    lines.append("")
    lines.append(long_extension(pipeline, extend_to, options))
    return "\n".join(lines)


def window_consistency(frames: torch.Tensor, fps: float, scene) -> list[float]:
    """The judge's temporal consistency on each 4 s window (65 frames, sharing end frames;
    when they leave the clip's last frames out, one more window ends at the last frame)."""
    span = frames_for(1 + 4 * GROUP)
    starts = list(range(0, frames.shape[0] - span + 1, span - 1))
    if starts and starts[-1] + span < frames.shape[0]:
        starts.append(frames.shape[0] - span)
    return [
        judge(frames[start : start + span], fps, scene).to_dict()["temporal_consistency"]
        for start in starts
    ]


def extended(
    pipeline: Pipeline, case: PromptCase, seconds: float, to: float, options: dict
) -> tuple[Video, Result, float]:
    """Generate ``case`` for ``seconds`` and extend it forward to ``to`` seconds: the clip,
    extend's result (the whole longer video) and the seconds the extension took."""
    base = pipeline.generate(case.prompt, seconds, seed=case.seed, **options).video
    began = time.perf_counter()
    longer = pipeline.extend(base, case.prompt, to - base.seconds, rights_attested=True, **options)
    return base, longer, time.perf_counter() - began


def long_consistency(pipeline: Pipeline, cases: int, seconds: float, options: dict) -> str:
    """Extend ``cases`` 2 s clips to ``seconds``: per prompt, the mean of its windows'
    temporal consistency, and how many windows the judge found no object in (0)."""
    fps = pipeline.index.fps
    means, windows, zeros = [], 0, 0
    for case in prompt_cases(cases, aspects=("1:1",), durations=(2.0,)):
        _, longer, _ = extended(pipeline, case, 2.0, seconds, options)
        scores = window_consistency(longer.frames, fps, case.scene)
        means.append(statistics.mean(scores))
        windows += len(scores)
        zeros += sum(score == 0 for score in scores)
    shown = ", ".join(f"{m:.3f}" for m in means)
    return (
        f"Extension of {cases} 2 s clips to {seconds:g} s: judge temporal consistency per "
        f"4 s window, each prompt's mean: mean {statistics.mean(means):.3f}, median "
        f"{statistics.median(means):.3f} ({shown}); {zeros} of {windows} windows at 0."
    )


def long_extension(pipeline: Pipeline, extend_to: float, options: dict) -> str:
    """Extend the model's longest native clip to ``extend_to`` seconds: time, seams and the
    judge's temporal consistency on each 4 s window."""
    native = pipeline.index.max_seconds
    case = prompt_cases(1, aspects=("1:1",), durations=(native,))[0]
    fps = pipeline.index.fps
    base, result, seconds = extended(pipeline, case, native, extend_to, options)
    frames = result.frames
    window = 1 + round(pipeline.index.max_seconds * fps) // GROUP
    seams = seam_ratios(frames, extension_seams(base.num_frames, frames.shape[0], window))
    consistency = window_consistency(frames, fps, case.scene)
    return (
        f"Extension of a {native:g} s clip to {frames.shape[0] / fps:.1f} s "
        f"({frames.shape[0]} frames, {frames.shape[2]}x{frames.shape[1]}): {seconds:.0f} s on "
        f"this machine; seams over the median difference: max "
        f"{max(seams):.2f}, median {statistics.median(seams):.2f} ({len(seams)} seams, "
        f"{sum(s > RATIO for s in seams)} over {RATIO}); judge temporal consistency per 4 s "
        f"window: min {min(consistency):.3f}, median {statistics.median(consistency):.3f}."
    )


def _layout(frames: torch.Tensor):
    from kinetoscope.models.vae import FrameLayout

    return FrameLayout(*frames.shape[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=4, help="prompts per measure (default 4)")
    parser.add_argument(
        "--extend-to", type=float, default=60.0, help="seconds of the long extension (default 60)"
    )
    parser.add_argument("--steps", type=int, help="sampling steps (the model's default)")
    parser.add_argument("--model", type=Path, help="a pipeline folder (default: shipped)")
    parser.add_argument("--long-cases", type=int, default=0, help="prompts for --long-to")
    parser.add_argument("--long-to", type=float, default=16.0, help="seconds (default 16)")
    args = parser.parse_args()
    if args.long_cases and args.long_to <= 4.0:
        parser.error("--long-to must be over 4 s: the judge scores windows of 4 s + 1 frame")
    pipeline = Pipeline.from_pretrained(args.model)
    status = pipeline.index.extra.get("status", "")
    print(f"Machine: {machine()}; model: {args.model or 'shipped'} {status}\n")
    options = {"aspect": "1:1"} | ({"steps": args.steps} if args.steps else {})
    print(measure(pipeline, args.cases, args.extend_to, options))
    if args.long_cases:
        print()
        print(long_consistency(pipeline, args.long_cases, args.long_to, options))


if __name__ == "__main__":
    main()
