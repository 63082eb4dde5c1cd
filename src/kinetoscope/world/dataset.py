"""Physics-world datasets on disk: clips plus a JSONL of captions and specs, resumable.

Layout of a dataset folder:

    dataset.json      the settings it was made with (a resumed run must use the same ones)
    clips/000000.mp4  one clip per index; its mp4 comment holds the caption
    captions.jsonl    one line per finished clip: index, file, seed, size, fps, captions, spec

A clip counts as done once its line is in captions.jsonl. Clips are written to a temporary
file and renamed, and a line is appended only after its clip is in place, so a run stopped at
any moment resumes where it left off without redoing finished clips or keeping broken ones.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from kinetoscope.errors import KinetoscopeError
from kinetoscope.io.video import Video, write_video
from kinetoscope.world.captions import caption
from kinetoscope.world.render import render_batch
from kinetoscope.world.sampler import sample_scene
from kinetoscope.world.spec import SceneSpec

CAPTIONS_FILE = "captions.jsonl"
SETTINGS_FILE = "dataset.json"


@dataclass(frozen=True)
class DatasetConfig:
    """What to generate. Clip i is scene `sample_scene(seed + i)`, so any clip can be remade."""

    count: int
    width: int = 128
    height: int = 128
    fps: float = 16.0
    seconds: float | None = None  # None: the sampler picks 1-4 s per clip
    seed: int = 0
    batch: int = 16  # clips rendered together (clips of one batch share a duration)
    crf: int = 18

    def validate(self) -> DatasetConfig:
        if self.count < 1:
            raise KinetoscopeError(f"count must be at least 1, got {self.count}")
        if self.batch < 1:
            raise KinetoscopeError(f"batch must be at least 1, got {self.batch}")
        if not 0 <= self.crf <= 51:
            raise KinetoscopeError(f"crf must be from 0 to 51, got {self.crf}")
        return self


def build_dataset(
    config: DatasetConfig, out: Path, progress: Callable[[int], None] | None = None
) -> int:
    """Generate the clips of `config` missing from `out`; returns how many were made.

    `progress(n)` is called after each clip with the number of clips finished so far.
    """
    config.validate()
    (out / "clips").mkdir(parents=True, exist_ok=True)
    _check_settings(out, config)
    done = finished_indices(out)
    todo = [i for i in range(config.count) if i not in done]
    made = 0
    with (out / CAPTIONS_FILE).open("a", encoding="utf-8") as lines:
        for group in _groups(todo, config):
            indices, scenes = zip(*group, strict=True)
            frames = render_batch(list(scenes), config.width, config.height, config.fps)
            for index, scene, clip in zip(indices, scenes, frames, strict=True):
                record = _write_clip(out, config, index, scene, clip)
                lines.write(json.dumps(record) + "\n")
                lines.flush()
                os.fsync(lines.fileno())
                made += 1
                if progress is not None:
                    progress(len(done) + made)
    return made


def finished_indices(out: Path) -> set[int]:
    """Indices with a complete line in captions.jsonl and their clip on disk."""
    path = out / CAPTIONS_FILE
    if not path.exists():
        return set()
    done: set[int] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by an interrupted run
        if (out / record["file"]).exists():
            done.add(int(record["index"]))
    return done


def read_records(out: Path) -> Iterator[dict]:
    """The dataset's records (one per finished clip), in file order."""
    path = out / CAPTIONS_FILE
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            continue


def _check_settings(out: Path, config: DatasetConfig) -> None:
    path = out / SETTINGS_FILE
    wanted = {k: v for k, v in dataclasses.asdict(config).items() if k != "count"}
    if path.exists():
        stored = json.loads(path.read_text(encoding="utf-8"))
        stored.pop("count", None)
        if stored != wanted:
            changed = sorted(k for k in wanted if stored.get(k) != wanted[k])
            raise KinetoscopeError(
                f"{out} holds a dataset made with other settings ({', '.join(changed)} differ);"
                " use a new folder or the same settings"
            )
        return
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(dataclasses.asdict(config), indent=2), encoding="utf-8")
    os.replace(temporary, path)


def _scene(index: int, config: DatasetConfig) -> SceneSpec:
    return sample_scene(config.seed + index, config.width / config.height, config.seconds)


def _groups(todo: list[int], config: DatasetConfig) -> Iterator[list[tuple[int, SceneSpec]]]:
    """Batches of (index, scene) whose scenes last equally long (they render as one tensor)."""
    by_length: dict[float, list[tuple[int, SceneSpec]]] = {}
    for index in todo:
        scene = _scene(index, config)
        group = by_length.setdefault(scene.seconds, [])
        group.append((index, scene))
        if len(group) == config.batch:
            yield by_length.pop(scene.seconds)
    yield from (group for group in by_length.values() if group)


def _write_clip(
    out: Path, config: DatasetConfig, index: int, scene: SceneSpec, frames: torch.Tensor
) -> dict:
    aspect = config.width / config.height
    long_caption = caption(scene, style="long", seed=config.seed + index, aspect=aspect)
    short_caption = caption(scene, style="short", seed=config.seed + index, aspect=aspect)
    name = f"clips/{index:06d}.mp4"
    write_video(
        out / name,
        Video(frames=frames, fps=config.fps),
        metadata={"comment": long_caption, "description": scene.to_json(indent=None)},
        crf=config.crf,
    )
    return {
        "index": index,
        "file": name,
        "seed": config.seed + index,
        "width": config.width,
        "height": config.height,
        "fps": config.fps,
        "seconds": scene.seconds,
        "caption": long_caption,
        "caption_short": short_caption,
        "spec": scene.to_dict(),
    }
