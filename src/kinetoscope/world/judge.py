"""The judge: scores a video against a scene spec, from the video's pixels alone.

`observe` reads the clip (background, objects, tracks) without any access to how it was
rendered. The judge then matches what it saw to the spec's objects and scores each dimension
in [0, 1]:

    object_count          distinct objects seen (duplicates count) against the spec's
    color                 each object's colour against its named colour (soft nearest-colour)
    shape                 outline template match (any rotation, normalised scale)
    size                  radius of the equal-area circle against the named sizes
    motion_direction      where each object goes: the spec's direction, rotation sense, growth
                          sign, orbit sense, camera pan sense; still things stay still
    trajectory            the path fits the spec's law: straight lines, reflections at the
                          walls, parabolas with the world's gravity between floor bounces (and
                          as many bounces, each lower), circles, momentum kept in a collision
    permanence            objects that disappear do so behind another object or off the frame
    temporal_consistency  colour, size and position change smoothly (no flicker, no jumps)
    background_stability  the background keeps its brightness and stays clean

`overall` is the mean of the nine. The laws the judge checks (gravity, walls, the floor) are
the physics world's, with the spec's parameters; the positions come only from the pixels.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from kinetoscope.errors import KinetoscopeError
from kinetoscope.world import vocab
from kinetoscope.world.laws import (
    ROTATION_STEP_DEG,
    SYMMETRY,
    Expected,
    Motion,
    expected_tracks,
    growth_scores,
    line_fit,
    motion_scores,
    pan_scores,
    rotation_rate,
    spin_scores,
    travel_scores,
)
from kinetoscope.world.observe import (
    DESCRIPTOR_EXTENT,
    DESCRIPTOR_SIZE,
    Observation,
    Track,
    observe,
)
from kinetoscope.world.shapes import coverage
from kinetoscope.world.spec import ObjectSpec, SceneSpec

DIMENSIONS: tuple[str, ...] = (
    "object_count",
    "color",
    "shape",
    "size",
    "motion_direction",
    "trajectory",
    "permanence",
    "temporal_consistency",
    "background_stability",
)


@dataclass(frozen=True)
class Scores:
    """Per-dimension scores in [0, 1], their mean `overall`, and the named items behind the
    motion dimensions (e.g. details["trajectory"]["objects[0].gravity"]), for diagnosis."""

    dimensions: dict[str, float]
    details: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def overall(self) -> float:
        return float(np.mean([self.dimensions[d] for d in DIMENSIONS]))

    def to_dict(self) -> dict[str, float]:
        return {"overall": round(self.overall, 4)} | {
            d: round(self.dimensions[d], 4) for d in DIMENSIONS
        }


def judge(frames: np.ndarray | torch.Tensor, fps: float, scene: SceneSpec) -> Scores:
    """Score a clip, uint8 (T, H, W, 3) at `fps`, against the scene it should show."""
    _check_clip(frames, fps)
    scene.validate()
    floor = scene.background.floor if scene.background.kind == "sky_floor" else None
    seen = observe(frames, fps, floor)
    return score(seen, scene)


def _check_clip(frames: np.ndarray | torch.Tensor, fps: float) -> None:
    if not isinstance(frames, np.ndarray | torch.Tensor):
        raise KinetoscopeError(f"frames must be an array or tensor, got {type(frames).__name__}")
    dtype = str(frames.dtype).removeprefix("torch.")
    if dtype != "uint8":
        raise KinetoscopeError(f"frames must be uint8 (0-255), got {dtype}")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise KinetoscopeError(f"frames must have shape (T, H, W, 3), got {tuple(frames.shape)}")
    if frames.shape[0] < 3 or min(frames.shape[1:3]) < 16:
        raise KinetoscopeError(
            f"the judge needs at least 3 frames of at least 16x16 pixels, got {tuple(frames.shape)}"
        )
    if not (isinstance(fps, int | float) and math.isfinite(fps) and fps > 0):
        raise KinetoscopeError(f"fps must be a positive number, got {fps!r}")


def score(seen: Observation, scene: SceneSpec) -> Scores:
    """Score an observation against a scene spec."""
    tracks = [tr for tr in seen.tracks if _is_object(tr, seen)]
    matched = _match(tracks, scene, seen)
    expected = expected_tracks(scene, seen)
    per_object = [
        _object_scores(obj, matched[j], j, scene, seen, expected, matched)
        for j, obj in enumerate(scene.objects)
    ]
    pan_direction, pan_trajectory = pan_scores(scene, seen)
    details: dict[str, dict[str, float]] = {"motion_direction": {}, "trajectory": {}}
    for key, items in (("motion_direction", pan_direction), ("trajectory", pan_trajectory)):
        details[key].update({f"camera.{name}": value for name, value in items.items()})
    for j, (_, items) in enumerate(per_object):
        for key in details:
            details[key].update({f"objects[{j}].{n}": v for n, v in items[key].items()})

    def mean_of(key: str) -> float:
        return float(np.mean([scores[key] for scores, _ in per_object]))

    dims = {
        "object_count": _count_score(tracks, len(scene.objects)),
        "color": mean_of("color"),
        "shape": mean_of("shape"),
        "size": mean_of("size"),
        "motion_direction": _mean_items(details["motion_direction"]),
        "trajectory": _mean_items(details["trajectory"]),
        "permanence": mean_of("permanence"),
        "temporal_consistency": mean_of("temporal_consistency"),
        "background_stability": _background_score(seen, scene),
    }
    clipped = {k: float(np.clip(v, 0.0, 1.0)) for k, v in dims.items()}
    return Scores(clipped, details)


def _is_object(track: Track, seen: Observation) -> bool:
    """A track counts as an object when it is there in at least 5% of the frames (and two)
    with a coverage-weighted area of at least a fifth of the smallest size."""
    present = track.present.sum()
    if present < max(2, 0.05 * seen.frames):
        return False
    smallest = math.pi * (vocab.SIZES["small"] * seen.short_side) ** 2
    return float(np.nanmedian(track.area)) >= 0.2 * smallest


def _mean_items(items: dict[str, float]) -> float:
    """The mean of named items; a clip with nothing to check in a dimension scores 1."""
    return float(np.mean(list(items.values()))) if items else 1.0


# ---- matching --------------------------------------------------------------------------------


def _expected_area(obj: ObjectSpec, scene: SceneSpec, short_side: int) -> float:
    scale = math.exp(obj.growth * scene.seconds / 2)
    return math.pi * (vocab.SIZES[obj.size] * scale * short_side) ** 2


def _match(tracks: list[Track], scene: SceneSpec, seen: Observation) -> list[Track | None]:
    """Pair tracks with spec objects by colour and size (Hungarian); None where none is left."""
    matched: list[Track | None] = [None] * len(scene.objects)
    if not tracks:
        return matched
    cost = np.zeros((len(tracks), len(scene.objects)))
    for i, track in enumerate(tracks):
        area = np.nanmedian(track.area)
        for j, obj in enumerate(scene.objects):
            color_cost = np.linalg.norm(track.color - np.array(vocab.COLORS[obj.color])) / 100
            size_cost = abs(math.log(area / _expected_area(obj, scene, seen.short_side)))
            cost[i, j] = color_cost + size_cost
    rows, cols = linear_sum_assignment(cost)
    for i, j in zip(rows, cols, strict=True):
        matched[j] = tracks[i]
    return matched


def _count_score(tracks: list[Track], expected: int) -> float:
    duplicated = sum(
        1 for tr in tracks if tr.duplicated[tr.present].mean() >= 0.25 and tr.present.any()
    )
    seen = len(tracks) + duplicated
    return max(0.0, 1.0 - abs(seen - expected) / expected)


# ---- the expected motion, from the spec's physics ----------------------------------------------


def _object_scores(
    obj: ObjectSpec,
    track: Track | None,
    index: int,
    scene: SceneSpec,
    seen: Observation,
    expected: Expected,
    matched: list[Track | None],
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """One spec object's scores, and the named motion items behind two of them."""
    if track is None:
        missing = {"motion_direction": {"seen": 0.0}, "trajectory": {"seen": 0.0}}
        return dict.fromkeys(_OBJECT_DIMENSIONS, 0.0), missing
    motion = Motion(track, seen, obj)
    direction, trajectory = motion_scores(obj, index, scene, motion, expected, matched, seen)
    rotation = rotation_rate(obj, _rotation_track(track, obj.shape, motion.frames), seen.fps)
    for more_direction, more_trajectory in (
        spin_scores(obj, rotation),
        growth_scores(obj, motion),
        travel_scores(obj, index, motion, expected),
    ):
        direction |= more_direction
        trajectory |= more_trajectory
    scores = {
        "color": _color_score(track, obj.color),
        "shape": _shape_score(track, obj.shape, motion.frames),
        "size": _size_score(track, obj, motion, scene),
        "permanence": _permanence_score(track, [m for m in matched if m is not track], seen),
        "temporal_consistency": _consistency_score(track, obj, motion, rotation),
    }
    return scores, {"motion_direction": direction, "trajectory": trajectory}


_OBJECT_DIMENSIONS = ("color", "shape", "size", "permanence", "temporal_consistency")


def _color_score(track: Track, name: str) -> float:
    """Soft nearest-colour: the share of the expected colour among all object colours."""
    names = list(vocab.OBJECT_COLORS)
    palette = np.array([vocab.COLORS[n] for n in names], dtype=np.float64)
    distance = np.linalg.norm(palette - track.color, axis=1)
    logits = -(distance**2) / (2 * 30.0**2)
    weights = np.exp(logits - logits.max())
    if name not in names:  # a background colour used for an object: hard nearest check
        return float(np.linalg.norm(np.array(vocab.COLORS[name]) - track.color) < 40)
    return float(weights[names.index(name)] / weights.sum())


@functools.cache
def _templates() -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Outline pictures of every shape at every rotation, (K, S*S), with their shape index
    and rotation angle: the same grid `observe` samples objects on."""
    steps = torch.linspace(-DESCRIPTOR_EXTENT, DESCRIPTOR_EXTENT, DESCRIPTOR_SIZE)
    cell = float(steps[1] - steps[0])
    dy, dx = torch.meshgrid(steps / cell, steps / cell, indexing="ij")
    angles = torch.arange(0, 360, ROTATION_STEP_DEG, dtype=torch.float32) * math.pi / 180
    pictures, shape_index, angle_of = [], [], []
    for s, name in enumerate(vocab.SHAPES):
        pics = coverage(name, dx[None], dy[None], torch.tensor(1 / cell), angles[:, None, None])
        pictures.append(pics.reshape(len(angles), -1))
        shape_index += [s] * len(angles)
        angle_of += angles.tolist()
    return torch.cat(pictures), np.array(shape_index), np.array(angle_of)


def _outline_frames(track: Track, whole: np.ndarray, limit: int | None = 12) -> np.ndarray:
    """Frames whose outline is usable: the whole ones, else any present ones."""
    frames = whole
    if len(frames) == 0:
        frames = np.flatnonzero(track.present)
    if limit is not None and len(frames) > limit:
        frames = frames[np.linspace(0, len(frames) - 1, limit).round().astype(int)]
    return frames


def _template_distances(
    track: Track, frames: np.ndarray, chosen: np.ndarray | None = None
) -> np.ndarray:
    """L1 distances between the outlines in `frames` and the templates (all, or `chosen`)."""
    pictures, _, _ = _templates()
    if chosen is not None:
        pictures = pictures[torch.from_numpy(chosen)]
    seen = torch.from_numpy(track.outline[frames].reshape(len(frames), -1))
    return torch.cdist(seen, pictures, p=1).numpy()  # (F, K)


def _shape_score(track: Track, name: str, whole: np.ndarray) -> float:
    frames = _outline_frames(track, whole)
    if len(frames) == 0:
        return 0.0
    _, shape_index, _ = _templates()
    distance = _template_distances(track, frames)
    per_shape = np.stack(
        [distance[:, shape_index == s].min(axis=1) for s in range(len(vocab.SHAPES))], axis=1
    )
    guesses = per_shape.argmin(axis=1)
    return float(np.mean(guesses == vocab.SHAPES.index(name)))


def _rotation_track(track: Track, name: str, whole: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best-matching rotation of the expected shape per whole frame: (frames, angles)."""
    frames = _outline_frames(track, whole, limit=None)
    if len(frames) == 0 or SYMMETRY[name] is None:
        return frames, np.zeros(0)
    _, shape_index, angle_of = _templates()
    chosen = shape_index == vocab.SHAPES.index(name)
    distance = _template_distances(track, frames, chosen)  # (F, rotations)
    best = distance.argmin(axis=1)
    # refine between template steps: a parabola through the best and its two neighbours
    rows = np.arange(len(frames))
    left = distance[rows, (best - 1) % distance.shape[1]]
    right = distance[rows, (best + 1) % distance.shape[1]]
    mid = distance[rows, best]
    curvature = left - 2 * mid + right
    offset = np.where(curvature > 1e-9, 0.5 * (left - right) / np.maximum(curvature, 1e-9), 0.0)
    step = math.radians(ROTATION_STEP_DEG)
    return frames, angle_of[chosen][best] + np.clip(offset, -0.5, 0.5) * step


def _size_score(track: Track, obj: ObjectSpec, motion: Motion, scene: SceneSpec) -> float:
    """Soft nearest size of the equal-area radius. A growing object is compared at mid-clip
    (a log-area fit there against the spec's size times its growth by then), which does not
    depend on which way the clip runs."""
    middle = scene.seconds / 2
    if len(motion) >= 2 and obj.growth:
        slope, intercept = np.polyfit(motion.t, np.log(motion.area), 1)
        area = math.exp(intercept + slope * middle) / math.exp(2 * obj.growth * middle)
    elif len(motion):
        area = float(np.median(motion.area))
    else:
        area = float(np.nanmedian(track.area)) / motion.short_side**2
    radius = math.sqrt(area / math.pi)
    names = list(vocab.SIZES)
    logits = np.array([-(math.log(radius / vocab.SIZES[n]) ** 2) / (2 * 0.1**2) for n in names])
    weights = np.exp(logits - logits.max())
    return float(weights[names.index(obj.size)] / weights.sum())


# ---- motion: direction and trajectory per kind -------------------------------------------------


def _permanence_score(track: Track, others: list[Track | None], seen: Observation) -> float:
    """Missing frames are explained when the object would be behind another object there, or
    off the frame: its position then is interpolated between where it was last and next seen
    (or carried on at its last velocity when it never comes back). Unexplained missing frames
    cost twice their share of the clip."""
    seen_frames = np.flatnonzero(track.present)
    if len(seen_frames) == 0:
        return 0.0
    unexplained = 0
    for run in _missing_runs(track.present):
        for frame in run:
            x, y = _predicted_position(track, seen_frames, frame)
            if not _explained(x, y, frame, others, seen):
                unexplained += 1
    return max(0.0, 1.0 - 2.0 * unexplained / len(track.present))


def _predicted_position(track: Track, seen_frames: np.ndarray, frame: int) -> tuple[float, float]:
    """Where a missing object should be at `frame`, from the frames it is seen in."""
    before, after = seen_frames[seen_frames < frame], seen_frames[seen_frames > frame]
    if len(before) and len(after):
        a, b = before[-1], after[0]
        w = (frame - a) / (b - a)
        return (1 - w) * track.x[a] + w * track.x[b], (1 - w) * track.y[a] + w * track.y[b]
    known = before[-2:] if len(before) else after[:2]
    if len(known) < 2:
        return track.x[known[0]], track.y[known[0]]
    a, b = known
    vx, vy = (track.x[b] - track.x[a]) / (b - a), (track.y[b] - track.y[a]) / (b - a)
    return track.x[b] + vx * (frame - b), track.y[b] + vy * (frame - b)


def _explained(
    x: float, y: float, frame: int, others: list[Track | None], seen: Observation
) -> bool:
    """Off the frame, or inside the box of another object seen in that frame."""
    pad = 2.0
    if not (0 <= x < seen.width and 0 <= y < seen.height):
        return True
    for other in others:
        if other is None or not other.present[frame]:
            continue
        inside_x = other.left[frame] - pad <= x <= other.right[frame] + pad
        if inside_x and other.top[frame] - pad <= y <= other.bottom[frame] + pad:
            return True
    return False


def _missing_runs(present: np.ndarray) -> list[list[int]]:
    runs: list[list[int]] = []
    for i, here in enumerate(present):
        if here:
            continue
        if runs and runs[-1][-1] == i - 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def _consistency_score(
    track: Track, obj: ObjectSpec, m: Motion, rotation: tuple[float, float] | None
) -> float:
    """Colour steady frame to frame, size steady (or growing smoothly), no jumps in position
    (nor frames where the object is lost to one), and no turning for an object the spec
    does not spin."""
    colors = track.frame_color[track.present]
    drift = np.linalg.norm(colors - np.median(colors, axis=0), axis=1)
    color = math.exp(-max(0.0, float(np.mean(drift)) - 3.0) / 8.0)
    if len(m) >= 3:
        log_area = np.log(m.area)
        spread = log_area - np.median(log_area) if obj.growth == 0 else line_fit(m.t, log_area)[2]
        size = math.exp(-max(0.0, float(np.median(np.abs(spread))) - 0.03) / 0.05)
        smooth = _smoothness(m)
    else:
        size = smooth = 0.0
    continuity = math.exp(-float(np.mean(track.jumped)) / 0.1)  # lost to a jump
    items = [color, size, smooth, continuity]
    if obj.spin == 0 and rotation is not None:
        items.append(math.exp(-max(0.0, abs(rotation[0]) - 0.1) / 0.5))
    return float(np.mean(items))


def _smoothness(m: Motion) -> float:
    """How rarely the path doubles back: over each pair of steps between consecutive frames,
    the straight distance over the sum of the two steps is near 1 for any smooth motion (an
    orbit too) and falls only at a bounce; frames out of order make it fall everywhere. Pairs
    where the object hardly moves (under 0.02 short sides) are left out; up to 15% of the
    pairs may turn back (the bounces)."""
    consecutive = np.flatnonzero(
        (m.frames[1:-1] - m.frames[:-2] == 1) & (m.frames[2:] - m.frames[1:-1] == 1)
    )
    if len(consecutive) < 3:
        return 1.0
    before = np.hypot(
        m.x[consecutive + 1] - m.x[consecutive], m.y[consecutive + 1] - m.y[consecutive]
    )
    after = np.hypot(
        m.x[consecutive + 2] - m.x[consecutive + 1], m.y[consecutive + 2] - m.y[consecutive + 1]
    )
    across = np.hypot(
        m.x[consecutive + 2] - m.x[consecutive], m.y[consecutive + 2] - m.y[consecutive]
    )
    moving = before + after > 0.02
    if moving.sum() < 3:
        return 1.0
    turned = (across[moving] / (before + after)[moving]) < 0.5
    return math.exp(-max(0.0, float(np.mean(turned)) - 0.15) / 0.1)


def _background_score(seen: Observation, scene: SceneSpec) -> float:
    """Brightness steady over time, the background close to its model (no noise), and a
    camera that moves only when the spec pans it (seen on a tiled floor)."""
    steady = math.exp(-max(0.0, float(np.std(seen.gain)) - 0.005) / 0.02)
    clean = math.exp(-max(0.0, float(np.median(seen.residual)) - 3.0) / 4.0)
    items = [steady, clean]
    if scene.background.kind == "sky_floor" and scene.camera_pan == 0 and seen.frames >= 3:
        rate = np.polyfit(np.arange(seen.frames) / seen.fps, seen.camera / seen.short_side, 1)[0]
        items.append(math.exp(-max(0.0, abs(rate) - 0.01) / 0.03))
    return float(np.mean(items))
