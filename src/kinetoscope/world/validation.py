"""Validating the judge as an instrument: scores of true renders, and of corrupted ones.

`ground_truth_scores` judges renders of sampled scenes (optionally after an H.264 round trip)
against their own specs: a sound instrument scores them near 1 on every dimension.
`corruption_scores` judges the same renders after each corruption in `corrupt.CORRUPTIONS`:
each must lower the dimensions it names and leave the others. The tests assert both, and
`benchmarks/judge_validation.py` writes the tables in docs/judge.md from the same functions.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from kinetoscope.io.video import Video, read_video, write_video
from kinetoscope.world.corrupt import CORRUPTIONS, applies, corrupt
from kinetoscope.world.judge import DIMENSIONS, judge
from kinetoscope.world.render import render_batch
from kinetoscope.world.sampler import sample_scene
from kinetoscope.world.spec import SceneSpec

FPS = 16.0


@dataclass
class ScoreTable:
    """Scores per dimension over many clips (one list entry per clip)."""

    scores: dict[str, list[float]] = field(default_factory=lambda: {d: [] for d in DIMENSIONS})

    def add(self, dimensions: dict[str, float]) -> None:
        for d in DIMENSIONS:
            self.scores[d].append(dimensions[d])

    def mean(self, dimension: str) -> float:
        return float(np.mean(self.scores[dimension]))

    def means(self) -> dict[str, float]:
        return {d: self.mean(d) for d in DIMENSIONS}

    def __len__(self) -> int:
        return len(self.scores[DIMENSIONS[0]])


def rendered(seeds: Iterable[int], size: int) -> Iterable[tuple[int, SceneSpec, torch.Tensor]]:
    """(seed, scene, frames) for square renders of sampled scenes at FPS."""
    for seed in seeds:
        scene = sample_scene(seed)
        yield seed, scene, render_batch([scene], size, size, FPS)[0]


def h264(frames: torch.Tensor, crf: int = 28) -> torch.Tensor:
    """The frames after an H.264 round trip at `crf`."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clip.mp4"
        write_video(path, Video(frames=frames, fps=FPS), crf=crf)
        return read_video(path).frames


def ground_truth_scores(
    seeds: Sequence[int], size: int = 128, crf: int | None = None, progress: Callable | None = None
) -> ScoreTable:
    """Judge renders of `seeds` against their own specs (after H.264 at `crf` if given)."""
    table = ScoreTable()
    for seed, scene, frames in rendered(seeds, size):
        clip = h264(frames, crf) if crf is not None else frames
        table.add(judge(clip.numpy(), FPS, scene).dimensions)
        if progress is not None:
            progress(seed)
    return table


def corruption_scores(
    seeds: Sequence[int],
    size: int = 128,
    names: Sequence[str] = tuple(CORRUPTIONS),
    progress: Callable | None = None,
) -> tuple[ScoreTable, dict[str, ScoreTable]]:
    """Judge clean renders and each applicable corruption of them. Returns the clean table
    over the scenes each corruption applied to, and the corrupted tables, keyed by name.
    The clean table per corruption makes "lowered" a comparison on the same scenes."""
    clean_for = {name: ScoreTable() for name in names}
    corrupted = {name: ScoreTable() for name in names}
    for seed, scene, frames in rendered(seeds, size):
        clean = judge(frames.numpy(), FPS, scene).dimensions
        for name in names:
            if not applies(name, scene):
                continue
            try:
                clip = corrupt(name, scene, frames, FPS, seed=seed)
            except ValueError:  # e.g. no room beside an object for its duplicate
                continue
            clean_for[name].add(clean)
            corrupted[name].add(judge(clip.numpy(), FPS, scene).dimensions)
        if progress is not None:
            progress(seed)
    return clean_for, corrupted
