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
import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from kinetoscope.world import physics, vocab
from kinetoscope.world.observe import (
    DESCRIPTOR_EXTENT,
    DESCRIPTOR_SIZE,
    Observation,
    Track,
    observe,
)
from kinetoscope.world.shapes import coverage, geometry
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
ROTATION_STEP_DEG = 3
# rotations after which a shape looks the same (radians); None: no rotation is visible
SYMMETRY = {
    "circle": None,
    "square": math.pi / 2,
    "triangle": 2 * math.pi / 3,
    "star": 2 * math.pi / 5,
    "diamond": math.pi,
    "hexagon": math.pi / 3,
    "heart": 2 * math.pi,
    "cross": math.pi / 2,
}


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
    floor = scene.background.floor if scene.background.kind == "sky_floor" else None
    seen = observe(frames, fps, floor)
    return score(seen, scene)


def score(seen: Observation, scene: SceneSpec) -> Scores:
    """Score an observation against a scene spec."""
    tracks = [tr for tr in seen.tracks if _is_object(tr, seen)]
    matched = _match(tracks, scene, seen)
    expected = _expected_tracks(scene, seen)
    per_object = [
        _object_scores(obj, matched[j], j, scene, seen, expected, matched)
        for j, obj in enumerate(scene.objects)
    ]
    pan_direction, pan_trajectory = _pan_scores(scene, seen)
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


@dataclass
class Expected:
    floor_bounces: np.ndarray  # (N,) visible floor bounces in the clip
    x: np.ndarray  # (N, T) world positions in short sides (camera motion removed)
    y: np.ndarray


def _expected_tracks(scene: SceneSpec, seen: Observation) -> Expected:
    times = torch.arange(seen.frames, dtype=torch.float64) / seen.fps
    tracks = physics.simulate(physics.pack([scene], seen.width / seen.height), times)
    return Expected(
        floor_bounces=tracks.floor_bounces[0].numpy(),
        x=(tracks.x[0] + tracks.camera[0][None, :]).numpy(),
        y=tracks.y[0].numpy(),
    )


# ---- per object ------------------------------------------------------------------------------


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
    motion = _Motion(track, seen, obj)
    direction, trajectory = _motion_scores(obj, index, scene, motion, expected, matched, seen)
    rotation = _rotation_rate(obj, _rotation_track(track, obj.shape, motion.frames), seen.fps)
    for more_direction, more_trajectory in (
        _spin_scores(obj, rotation),
        _growth_scores(obj, motion),
        _travel_scores(obj, index, motion, expected),
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


class _Motion:
    """A track in world units: short sides, camera motion removed, whole frames only.

    Whole frames show all of the object: the area it has when isolated (so neither partly
    hidden nor cut by the frame's edge). A duplicate beside it does not matter: the track
    follows one of the two. Extents come from the area and the
    spec's shape, which is sharper than the blurred mask's bounding box.
    """

    def __init__(self, track: Track, seen: Observation, obj: ObjectSpec) -> None:
        s = seen.short_side
        reference = _reference_area(track, obj.growth != 0, seen.fps)
        # touching the frame's edge is fine (a wall bounce) unless the edge cuts it
        full = track.area >= np.where(track.at_edge, 0.97, 0.85) * reference
        whole = track.present & full
        self.frames = np.flatnonzero(whole)
        self.t = self.frames / seen.fps
        self.x = (track.x[self.frames] + _camera_path(seen)[self.frames]) / s
        self.y = track.y[self.frames] / s
        self.area = track.area[self.frames] / s**2
        radius = math.sqrt(float(np.median(self.area)) / math.pi) if len(self) else 0.0
        geo = geometry(obj.shape)
        self.half_width = geo.half_width * radius
        self.down = geo.down * radius
        self.up = geo.up * radius
        self.short_side = s
        self.width_units = seen.width / s
        self.height_units = seen.height / s

    def __len__(self) -> int:
        return len(self.frames)


def _camera_path(seen: Observation) -> np.ndarray:
    """The camera's x per frame (pixels) as a straight-line fit of the measured path: the
    physics world pans at constant speed, and the fit averages away what noise does to
    each frame's measurement."""
    frames = np.arange(seen.frames)
    if seen.frames < 3:
        return seen.camera
    slope, intercept = np.polyfit(frames, seen.camera, 1)
    return slope * frames + intercept


def _reference_area(track: Track, growing: bool, fps: float) -> np.ndarray:
    """The object's full area per frame (T,). Being partly hidden or cut only ever takes area
    away, so this follows the upper envelope: the 90th percentile of the isolated frames (all
    present frames when it is never isolated), or for a growing object a log-linear fit
    refitted without the frames that fall well below it."""
    frames = np.flatnonzero(track.isolated)
    if len(frames) < 2:
        frames = np.flatnonzero(track.present)
    t = np.arange(len(track.present)) / fps
    if not growing or len(frames) < 2:
        return np.full(len(t), np.percentile(track.area[frames], 90))
    log_area = np.log(track.area[frames])
    keep = np.ones(len(frames), dtype=bool)
    for _ in range(3):
        slope, intercept = np.polyfit(frames[keep] / fps, log_area[keep], 1)
        below = log_area - (intercept + slope * frames / fps)
        keep = below > -0.05
        if keep.sum() < 2:
            break
    return np.exp(intercept + slope * t)


def _size_score(track: Track, obj: ObjectSpec, motion: _Motion, scene: SceneSpec) -> float:
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


def _direction_match(observed: np.ndarray, wanted: tuple[float, float]) -> float:
    """1 within 22.5 degrees of the wanted direction, 0 beyond 67.5, linear in the cosine."""
    norm_o, norm_w = np.linalg.norm(observed), math.hypot(*wanted)
    if norm_w < 1e-9:
        return 1.0
    if norm_o < 1e-9:
        return 0.0
    cos = float(np.dot(observed, wanted) / (norm_o * norm_w))
    hi, lo = math.cos(math.radians(22.5)), math.cos(math.radians(67.5))
    return float(np.clip((cos - lo) / (hi - lo), 0.0, 1.0))


def _fit_error(residual: np.ndarray, tolerance: float, slack: float = 0.004) -> float:
    """exp(-excess / tolerance) of an RMS error beyond `slack` (short sides)."""
    if len(residual) == 0:
        return 0.0
    rms = float(np.sqrt(np.mean(residual**2)))
    return math.exp(-max(0.0, rms - slack) / tolerance)


def _line_fit(t: np.ndarray, v: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Least-squares v = a + b t; returns (a, b, residuals)."""
    b, a = np.polyfit(t, v, 1)
    return a, b, v - (a + b * t)


def _motion_scores(
    obj: ObjectSpec,
    index: int,
    scene: SceneSpec,
    m: _Motion,
    expected: Expected,
    matched: list[Track | None],
    seen: Observation,
) -> tuple[dict[str, float], dict[str, float]]:
    if len(m) < 4:
        return {"visible": 0.0}, {"visible": 0.0}
    if scene.collision is not None and index in scene.collision:
        return _collision_scores(obj, index, scene, matched, seen)
    kind = obj.motion
    if kind == "still":
        return _still_scores(m)
    if kind == "linear":
        return _linear_scores(obj, m)
    if kind == "bounce":
        return _bounce_scores(obj, m, scene)
    if kind in ("fall", "throw"):
        return _ballistic_scores(obj, index, m, scene, expected)
    return _orbit_scores(obj, m)


def _still_scores(m: _Motion) -> tuple[dict[str, float], dict[str, float]]:
    points = np.stack([m.x, m.y], axis=1)
    spread = np.linalg.norm(points - np.median(points, axis=0), axis=1)
    stays = math.exp(-max(0.0, float(spread.max()) - 0.02) / 0.05)
    return {"stays": stays}, {"steady": _fit_error(spread, 0.01)}


def _linear_scores(obj: ObjectSpec, m: _Motion) -> tuple[dict[str, float], dict[str, float]]:
    _, vx, rx = _line_fit(m.t, m.x)
    _, vy, ry = _line_fit(m.t, m.y)
    direction = _direction_match(np.array([vx, vy]), obj.velocity)
    return {"heading": direction}, {"straight": _fit_error(np.hypot(rx, ry), 0.01)}


def _fold(u: np.ndarray, lo: float, hi: float) -> np.ndarray:
    span = max(hi - lo, 1e-9)
    w = np.remainder(u - lo, 2 * span)
    return lo + np.where(w <= span, w, 2 * span - w)


def _reflected_path(t: np.ndarray, v: np.ndarray, lo: float, hi: float) -> tuple[float, np.ndarray]:
    """Fit a path reflecting between lo and hi at constant speed: the speed is the median
    frame-to-frame speed and the path starts at the first position, in whichever sense fits
    better (an object may meet a wall within its first frames). Returns the signed start
    velocity and the residuals."""
    if len(t) < 3 or hi - lo < 1e-6:
        return 0.0, np.zeros(0)
    speed = float(np.median(np.abs(np.diff(v)) / np.maximum(np.diff(t), 1e-9)))
    start = float(np.clip(v[0], lo, hi))
    fits = []
    for sense, unfolded in ((1.0, start), (-1.0, 2 * hi - start)):
        # moving down the fold means starting on its way back from hi
        residual = v - _fold(unfolded + speed * (t - t[0]), lo, hi)
        fits.append((float(np.mean(residual**2)), sense, residual))
    _, sense, residual = min(fits, key=lambda fit: fit[0])
    return sense * speed, residual


def _bounce_scores(
    obj: ObjectSpec, m: _Motion, scene: SceneSpec
) -> tuple[dict[str, float], dict[str, float]]:
    floor = scene.floor_y * m.height_units
    vx, rx = _reflected_path(m.t, m.x, m.half_width, m.width_units - m.half_width)
    vy, ry = _reflected_path(m.t, m.y, m.up, floor - m.down)
    if len(rx) == 0 or len(ry) == 0:
        return {"visible": 0.0}, {"visible": 0.0}
    direction = _direction_match(np.array([vx, vy]), obj.velocity)
    return {"heading": direction}, {"reflections": _fit_error(np.hypot(rx, ry), 0.01)}


def _contacts(y: np.ndarray, ground: float, tolerance: float) -> np.ndarray:
    """Indices where a falling path touches the ground: its local lowest points on screen
    (largest y). Free flight under gravity has none, so each is a contact; the ground test
    allows for the frames missing the contact by up to a frame's motion."""
    if len(y) < 3:
        return np.zeros(0, dtype=int)
    step = np.maximum(np.abs(y[1:-1] - y[:-2]), np.abs(y[2:] - y[1:-1]))
    lowest = (y[1:-1] >= y[:-2]) & (y[1:-1] > y[2:]) & (y[1:-1] >= ground - tolerance - step)
    return np.flatnonzero(lowest) + 1


def _bounce_count(y: np.ndarray, ground: float, tolerance: float) -> int:
    """Contacts followed by a visible rebound (a rise of at least 0.02 short sides)."""
    count = 0
    contacts = _contacts(y, ground, tolerance)
    for i, c in enumerate(contacts):
        end = contacts[i + 1] if i + 1 < len(contacts) else len(y)
        if end - c >= 2 and y[c] - y[c:end].min() >= 0.02:
            count += 1
    return count


def _ballistic_scores(
    obj: ObjectSpec, index: int, m: _Motion, scene: SceneSpec, expected: Expected
) -> tuple[dict[str, float], dict[str, float]]:
    """Direction: the start velocity (gravity's pull for a drop from rest). Trajectory:
    parabolas with the world's gravity between floor contacts, as many visible bounces as the
    spec's physics gives, each rebound lower than the last, and a straight (reflected) x."""
    ground = float(np.max(m.y))
    tolerance = 0.02
    contacts = _contacts(m.y, ground, tolerance)
    # 1. direction
    first_flight = slice(0, min(8, contacts[0] if len(contacts) else len(m)))
    start = _start_velocity(m.t[first_flight], m.x[first_flight], m.y[first_flight])
    if abs(obj.velocity[0]) > 1e-6:  # x may reflect off a wall within the first frames
        start[0] = _reflected_path(m.t, m.x, m.half_width, m.width_units - m.half_width)[0]
    dropped = math.hypot(*obj.velocity) <= 0.05
    if dropped:
        # released from rest: its first clear vertical move (0.02 short sides) is down
        moved = np.flatnonzero(np.abs(m.y - m.y[0]) > 0.02)
        heading = 1.0 if len(moved) and m.y[moved[0]] > m.y[0] else 0.0
    else:
        heading = _direction_match(start, obj.velocity)
    # 2. trajectory; contact frames belong to neither flight (the bounce is between frames)
    edges = [-1, *contacts.tolist(), len(m)]
    accelerations, weights = [], []
    for a, b in itertools.pairwise(edges):
        # a gap in the whole frames may hide a contact: fit each unbroken run on its own
        for run in _unbroken(m.frames, a + 1, b):
            if len(run) >= 5:
                accelerations.append(2 * np.polyfit(m.t[run], m.y[run], 2)[0])
                weights.append(len(run))
    g = scene.gravity
    gravity_items = [math.exp(-(((acc - g) / (0.15 * g)) ** 2)) for acc in accelerations]
    gravity = float(np.average(gravity_items, weights=weights)) if gravity_items else 0.0
    wanted_y = expected.y[index][m.frames]  # the spec's path over the frames seen whole
    wanted_bounces = _bounce_count(wanted_y, float(expected.y[index].max()), tolerance)
    bounces = math.exp(-abs(_bounce_count(m.y, ground, tolerance) - wanted_bounces))
    apexes = [m.y[a:b].min() for a, b in itertools.pairwise(edges[1:]) if b - a >= 3]
    heights = ground - np.array(apexes)
    losing = float(np.mean(np.diff(heights) < 0.005)) if len(heights) >= 2 else 1.0
    if abs(obj.velocity[0]) > 1e-6:
        _, rx = _reflected_path(m.t, m.x, m.half_width, m.width_units - m.half_width)
    else:
        rx = m.x - np.median(m.x)
    return {"heading": heading}, {
        "gravity": gravity,
        "bounces": bounces,
        "losing_height": losing,
        "horizontal": _fit_error(rx, 0.01),
    }


def _unbroken(frames: np.ndarray, start: int, stop: int) -> list[np.ndarray]:
    """Index runs within [start, stop) whose frame numbers follow one another."""
    if stop <= start:
        return []
    breaks = np.flatnonzero(np.diff(frames[start:stop]) > 1) + 1
    return np.split(np.arange(start, stop), breaks)


def _start_velocity(t: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Velocity at the first frame: a line in x, a parabola in y (gravity bends it)."""
    if len(t) < 2:
        return np.zeros(2)
    vx = np.polyfit(t, x, 1)[0]
    if len(t) >= 4:
        c2, c1, _ = np.polyfit(t, y, 2)
        vy = c1 + 2 * c2 * t[0]
    else:
        vy = np.polyfit(t, y, 1)[0]
    return np.array([vx, vy])


def _orbit_scores(obj: ObjectSpec, m: _Motion) -> tuple[dict[str, float], dict[str, float]]:
    # algebraic circle fit: x^2 + y^2 + D x + E y + F = 0
    design = np.stack([m.x, m.y, np.ones_like(m.x)], axis=1)
    rhs = -(m.x**2 + m.y**2)
    (d, e, f), *_ = np.linalg.lstsq(design, rhs, rcond=None)
    cx, cy = -d / 2, -e / 2
    radius = math.sqrt(max(cx * cx + cy * cy - f, 1e-12))
    radial = np.hypot(m.x - cx, m.y - cy) - radius
    angle = np.unwrap(np.arctan2(m.y - cy, m.x - cx))
    _, rate, angle_residual = _line_fit(m.t, angle)
    sense = 1.0 if np.sign(rate) == np.sign(obj.orbit_speed) else 0.0
    return {"sense": sense}, {
        "circle": _fit_error(radial, 0.01),
        "steady_rate": _fit_error(angle_residual * radius, 0.01),
    }


def _collision_scores(
    obj: ObjectSpec, index: int, scene: SceneSpec, matched: list[Track | None], seen: Observation
) -> tuple[dict[str, float], dict[str, float]]:
    """Both objects of the pair: straight before and after the moment they are closest, moving
    as the spec says before it, and the pair keeping its momentum and its closing speed."""
    a, b = scene.collision
    other = b if index == a else a
    pair = [matched[index], matched[other]]
    if pair[1] is None:
        return {"partner": 0.0}, {"partner": 0.0}
    ma, mb = _Motion(pair[0], seen, obj), _Motion(pair[1], seen, scene.objects[other])
    heading = _collision_heading(obj, ma)
    common = np.intersect1d(ma.frames, mb.frames)
    if len(common) < 8:
        return heading, {"together": 0.0}
    xa = np.interp(common, ma.frames, ma.x)
    xb = np.interp(common, mb.frames, mb.x)
    t = common / seen.fps
    gap = np.abs(xb - xa)
    split = int(np.clip(np.argmin(gap), 3, len(t) - 4))
    # the frames either side of the closest approach may straddle the contact
    before, after = slice(0, split - 1), slice(split + 2, len(t))
    if split - 1 < 3 or len(t) - split - 2 < 3:
        # the pair is not seen together on both sides of a meeting: nothing to weigh
        return heading, {}
    fits = {}
    for name, x in (("a", xa), ("b", xb)):
        _, v0, r0 = _line_fit(t[before], x[before])
        _, v1, r1 = _line_fit(t[after], x[after])
        fits[name] = (v0, v1, np.concatenate([r0, r1]))
    va0, va1, ra = fits["a"]
    vb0, vb1, _ = fits["b"]
    mass_a, mass_b = float(np.median(ma.area)), float(np.median(mb.area))
    momentum_before, momentum_after = mass_a * va0 + mass_b * vb0, mass_a * va1 + mass_b * vb1
    scale = abs(mass_a * va0) + abs(mass_b * vb0) + 1e-9
    momentum = math.exp(-abs(momentum_after - momentum_before) / (0.2 * scale))
    closing = va0 - vb0
    elastic = math.exp(-abs((va1 - vb1) + closing) / (0.25 * abs(closing) + 1e-9))
    return heading, {
        "straight": _fit_error(ra, 0.01),
        "momentum": momentum,
        "elastic": elastic,
    }


def _collision_heading(obj: ObjectSpec, m: _Motion) -> dict[str, float]:
    """Before a collision: a still object stays put, a moving one heads the spec's way
    (from a line through its first six whole frames)."""
    first = slice(0, min(6, len(m)))
    velocity = np.polyfit(m.t[first], m.x[first], 1)[0]
    if obj.motion == "still":
        return {"stays": math.exp(-max(0.0, abs(velocity) - 0.02) / 0.05)}
    return {"heading": _direction_match(np.array([velocity, 0.0]), (obj.velocity[0], 0.0))}


def _rotation_rate(
    obj: ObjectSpec, angles: tuple[np.ndarray, np.ndarray], fps: float
) -> tuple[float, float] | None:
    """Turning rate and its wobble (radians per second) from the best-matching template angle
    in consecutive whole frames; None for a shape whose turning cannot be seen. A turn is only
    known modulo the shape's symmetry, so each frame-to-frame change is wrapped into half a
    symmetry period either way (spins up to that much per frame are unambiguous)."""
    frames, angle = angles
    period = SYMMETRY[obj.shape]
    if period is None or len(angle) < 4:
        return None
    change = np.diff(angle)[np.diff(frames) == 1]
    change = (change + period / 2) % period - period / 2
    if len(change) < 3:
        return None
    typical = np.median(change)
    spread = float(np.median(np.abs(change - typical)))
    kept = change[np.abs(change - typical) <= 3 * spread + math.radians(ROTATION_STEP_DEG)]
    return float(np.mean(kept)) * fps, spread * fps


def _spin_scores(obj: ObjectSpec, rotation: tuple[float, float] | None) -> tuple[dict, dict]:
    """A spinning object turns the spec's way, at about its rate, steadily."""
    if obj.spin == 0 or rotation is None:
        return {}, {}
    rate, wobble = rotation
    sense = 1.0 if np.sign(rate) == np.sign(obj.spin) else 0.0
    speed = math.exp(-abs(math.log(max(abs(rate) / abs(obj.spin), 1e-6))) / 0.3)
    steady = math.exp(-max(0.0, wobble / abs(obj.spin) - 0.15) / 0.3)
    return {"spin_sense": sense}, {"spin_rate": speed, "spin_steady": steady}


def _travel_scores(
    obj: ObjectSpec, index: int, m: _Motion, expected: Expected
) -> tuple[dict[str, float], dict[str, float]]:
    """An object the spec moves must move, about as far: the extent of its path (the diagonal
    of the box around its positions) against the spec's over the same frames."""
    if len(m) < 2:
        return {}, {}
    wanted = _extent(expected.x[index][m.frames], expected.y[index][m.frames])
    if wanted < 0.05:
        return {}, {}
    seen = _extent(m.x, m.y)
    moves = float(np.clip(seen / (0.5 * wanted), 0.0, 1.0))
    ratio = abs(math.log(max(seen, 1e-6) / wanted))
    return {"moves": moves}, {"travel": math.exp(-max(0.0, ratio - math.log(1.5)) / 0.5)}


def _extent(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.hypot(np.ptp(x), np.ptp(y)))


def _growth_scores(obj: ObjectSpec, m: _Motion) -> tuple[dict[str, float], dict[str, float]]:
    if obj.growth == 0 or len(m) < 4:
        return {}, {}
    _, rate, residual = _line_fit(m.t, np.log(m.area) / 2)  # radius grows as exp(growth t)
    sense = 1.0 if np.sign(rate) == np.sign(obj.growth) else 0.0
    speed = math.exp(-abs(math.log(max(abs(rate) / abs(obj.growth), 1e-6))) / 0.3)
    return {"growth_sense": sense}, {
        "growth_rate": speed,
        "growth_steady": _fit_error(residual, 0.03, slack=0.01),
    }


def _pan_scores(scene: SceneSpec, seen: Observation) -> tuple[dict[str, float], dict[str, float]]:
    """The camera's pan from the floor tiles: its sense and speed against the spec's."""
    if scene.background.kind != "sky_floor":
        return {}, {}
    t = np.arange(seen.frames) / seen.fps
    if len(t) < 3:
        return {}, {}
    _, rate, _ = _line_fit(t, seen.camera / seen.short_side)
    wanted = scene.camera_pan
    if wanted == 0:
        return {}, {}  # a camera that should stand still: see background_stability
    sense = 1.0 if np.sign(rate) == np.sign(wanted) else 0.0
    speed = math.exp(-abs(math.log(max(abs(rate) / abs(wanted), 1e-6))) / 0.3)
    return {"pan_sense": sense}, {"pan_rate": speed}


# ---- permanence, consistency, background -------------------------------------------------------


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
    track: Track, obj: ObjectSpec, m: _Motion, rotation: tuple[float, float] | None
) -> float:
    """Colour steady frame to frame, size steady (or growing smoothly), no jumps in position
    (nor frames where the object is lost to one), and no turning for an object the spec
    does not spin."""
    colors = track.frame_color[track.present]
    drift = np.linalg.norm(colors - np.median(colors, axis=0), axis=1)
    color = math.exp(-max(0.0, float(np.mean(drift)) - 3.0) / 8.0)
    if len(m) >= 3:
        log_area = np.log(m.area)
        spread = log_area - np.median(log_area) if obj.growth == 0 else _line_fit(m.t, log_area)[2]
        size = math.exp(-max(0.0, float(np.median(np.abs(spread))) - 0.03) / 0.05)
        smooth = _smoothness(m)
    else:
        size = smooth = 0.0
    continuity = math.exp(-float(np.mean(track.jumped)) / 0.1)  # lost to a jump
    items = [color, size, smooth, continuity]
    if obj.spin == 0 and rotation is not None:
        items.append(math.exp(-max(0.0, abs(rotation[0]) - 0.1) / 0.5))
    return float(np.mean(items))


def _smoothness(m: _Motion) -> float:
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
