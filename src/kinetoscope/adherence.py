"""How well a text-to-video model follows its prompts: the physics-world judge over a fixed set.

A *prompt case* is a sampled scene with its caption, an aspect ratio and a duration. The model
gets only the caption; the judge then scores the generated clip against the scene (colour,
shape, count, motion, physics, permanence, consistency; see `kinetoscope.world.judge`).

The fixed set (`prompt_cases`): scene seeds from `EVAL_SEED_START` on, which training never
draws (it stays below `HELD_OUT_SEED_START`), aspect ratios and durations cycling over the
native ones. ``held_out=True`` draws every scene with one of the sampler's held-out colour x
shape x motion combinations instead, to measure composition beyond the training set.

The issue's targets are per judge dimension, plus ``gravity_bounce``: the mean of the
trajectory items that check gravity and bounces (parabolas between floor contacts, the number
of bounces, losing height, reflections at the walls) over the clips that have them.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Unpack

from kinetoscope.evaluation import reconstruct
from kinetoscope.pipeline import GenerationConfig, ModelIndex, Pipeline, SamplingOptions
from kinetoscope.training.buckets import ASPECTS, check_aspect
from kinetoscope.training.vae_data import HELD_OUT_SEED_START
from kinetoscope.world.captions import caption
from kinetoscope.world.judge import DIMENSIONS, Scores, judge
from kinetoscope.world.render import render
from kinetoscope.world.sampler import sample_held_out_scene, sample_scene
from kinetoscope.world.spec import SceneSpec

EVAL_SEED_START = HELD_OUT_SEED_START + 1_000_000  # clear of every seed training draws
DURATIONS = (1.0, 2.0, 3.0, 4.0)
GRAVITY_ITEMS = ("gravity", "bounces", "losing_height", "reflections")
TARGETS: dict[str, float] = {
    "color": 0.95,
    "shape": 0.90,
    "object_count": 0.90,
    "motion_direction": 0.90,
    "gravity_bounce": 0.80,
    "permanence": 0.80,
    "temporal_consistency": 0.90,
}


@dataclass(frozen=True)
class PromptCase:
    """One prompt of the set: the scene to show, its caption and the clip's shape."""

    seed: int
    scene: SceneSpec
    prompt: str
    aspect: str
    seconds: float
    held_out: bool


def prompt_cases(
    count: int,
    held_out: bool = False,
    aspects: Sequence[str] = tuple(ASPECTS),
    durations: Sequence[float] = DURATIONS,
) -> list[PromptCase]:
    """The first ``count`` cases of the fixed set (the same on every machine)."""
    cases = []
    for index in range(count):
        seed = EVAL_SEED_START + index
        aspect = aspects[index % len(aspects)]
        seconds = float(durations[(index // len(aspects)) % len(durations)])
        width, height = check_aspect(aspect)
        draw = sample_held_out_scene if held_out else sample_scene
        scene = draw(seed, aspect=width / height, seconds=seconds)
        prompt = caption(scene, aspect=width / height)
        cases.append(PromptCase(seed, scene, prompt, aspect, seconds, held_out))
    return cases


def native_durations(index: ModelIndex) -> tuple[float, ...]:
    """The set's durations that a model makes in one go (its longest when none is)."""
    fitting = tuple(d for d in DURATIONS if index.min_seconds <= d <= index.max_seconds)
    return fitting or (index.max_seconds,)


def gravity_bounce(scores: Scores) -> float | None:
    """The mean of the gravity and bounce items of a clip's trajectory, None if it has none."""
    items = scores.details.get("trajectory", {})
    values = [value for name, value in items.items() if name.rsplit(".", 1)[-1] in GRAVITY_ITEMS]
    return statistics.fmean(values) if values else None


def judge_case(
    pipeline: Pipeline,
    case: PromptCase,
    reference: bool = False,
    **options: Unpack[SamplingOptions],
) -> Scores:
    """Generate the case's caption at its shape and judge the clip against its scene.
    ``options`` are the sampling options of `Pipeline.generate` (the case sets the aspect).

    ``reference=True`` judges the scene's own clip instead, rendered at the shape the model
    would generate and passed through the model's VAE: the most its transformer can score,
    since every generated clip is decoded by that VAE."""
    if reference:
        request = GenerationConfig(case.prompt, seconds=case.seconds, aspect=case.aspect)
        plan = pipeline.plan(request)
        shape = plan.bucket
        frames = render(case.scene, width=shape.width, height=shape.height, fps=plan.fps).frames
        frames = reconstruct(pipeline.vae, frames.to(pipeline.device))  # (T, H, W, 3) uint8
        return judge(frames, plan.fps, case.scene)
    result = pipeline.generate(case.prompt, case.seconds, **(options | {"aspect": case.aspect}))
    return judge(result.frames, result.fps, case.scene)


@dataclass(frozen=True)
class AdherenceReport:
    """Per-dimension means over a prompt set (plus ``overall`` and ``gravity_bounce``)."""

    cases: int
    means: dict[str, float]

    def meets(self) -> dict[str, bool]:
        """Whether each target dimension reaches its target (those the set measured)."""
        return {
            name: self.means[name] >= target
            for name, target in TARGETS.items()
            if name in self.means
        }


def judge_cases(
    pipeline: Pipeline,
    cases: Sequence[PromptCase],
    progress: Callable[[int], None] | None = None,
    reference: bool = False,
    **options: Unpack[SamplingOptions],
) -> AdherenceReport:
    """Judge every case (``reference`` and ``options``: as `judge_case`); ``progress(done)``
    after each."""
    per_dimension: dict[str, list[float]] = {name: [] for name in (*DIMENSIONS, "overall")}
    physics: list[float] = []
    for done, case in enumerate(cases, start=1):
        scores = judge_case(pipeline, case, reference, **options)
        for name in DIMENSIONS:
            per_dimension[name].append(scores.dimensions[name])
        per_dimension["overall"].append(scores.overall)
        value = gravity_bounce(scores)
        if value is not None:
            physics.append(value)
        if progress is not None:
            progress(done)
    means = {name: statistics.fmean(values) for name, values in per_dimension.items() if values}
    if physics:
        means["gravity_bounce"] = statistics.fmean(physics)
    return AdherenceReport(len(cases), means)
