"""The laws of the physics world, checked against an observed track.

The judge's motion dimensions come from here. Each check takes a track in world units
(`Motion`: short sides, camera pan removed, whole frames only) and returns named items in
[0, 1] for two dimensions: where the object goes (motion_direction) and whether its path obeys
the spec's law (trajectory). The laws are the physics world's, with the spec's parameters:
straight lines, reflections at the walls, parabolas under the world's gravity between floor
bounces, circles, momentum kept in a collision, steady spin and growth, a steady pan.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch

from kinetoscope.world import physics
from kinetoscope.world.observe import Observation, Track
from kinetoscope.world.shapes import geometry
from kinetoscope.world.spec import ObjectSpec, SceneSpec

Items = tuple[dict[str, float], dict[str, float]]  # (motion_direction, trajectory) items

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


@dataclass
class Expected:
    """What the spec's physics says happens over the clip's frames."""

    floor_bounces: np.ndarray  # (N,) visible floor bounces in the clip
    x: np.ndarray  # (N, T) world positions in short sides (camera motion removed)
    y: np.ndarray


def expected_tracks(scene: SceneSpec, seen: Observation) -> Expected:
    """Simulate the scene at the observed clip's frame times and aspect ratio."""
    times = torch.arange(seen.frames, dtype=torch.float64) / seen.fps
    tracks = physics.simulate(physics.pack([scene], seen.width / seen.height), times)
    return Expected(
        floor_bounces=tracks.floor_bounces[0].numpy(),
        x=(tracks.x[0] + tracks.camera[0][None, :]).numpy(),
        y=tracks.y[0].numpy(),
    )


# ---- tracks in world units ----------------------------------------------------------------


class Motion:
    """A track in world units: short sides, camera motion removed, whole frames only.

    Whole frames show all of the object: the area it has when isolated (so neither partly
    hidden nor cut by the frame's edge). A duplicate beside it does not matter: the track
    follows one of the two. Extents come from the area and the spec's shape, which is sharper
    than the blurred mask's bounding box.
    """

    def __init__(self, track: Track, seen: Observation, obj: ObjectSpec) -> None:
        s = seen.short_side
        reference = _reference_area(track, obj.growth != 0, seen.fps)
        # touching the frame's edge is fine (a wall bounce) unless the edge cuts it
        full = track.area >= np.where(track.at_edge, 0.97, 0.85) * reference
        whole = track.present & full
        self.frames = np.flatnonzero(whole)
        self.t = self.frames / seen.fps
        self.x = (track.x[self.frames] + camera_path(seen)[self.frames]) / s
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


def camera_path(seen: Observation) -> np.ndarray:
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


def line_fit(t: np.ndarray, v: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Least-squares v = a + b t; returns (a, b, residuals)."""
    b, a = np.polyfit(t, v, 1)
    return a, b, v - (a + b * t)


def motion_scores(
    obj: ObjectSpec,
    index: int,
    scene: SceneSpec,
    m: Motion,
    expected: Expected,
    matched: list[Track | None],
    seen: Observation,
) -> Items:
    """The direction and trajectory items of one object's translation, by its motion kind
    (a colliding object is judged with its partner)."""
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


def _still_scores(m: Motion) -> Items:
    points = np.stack([m.x, m.y], axis=1)
    spread = np.linalg.norm(points - np.median(points, axis=0), axis=1)
    stays = math.exp(-max(0.0, float(spread.max()) - 0.02) / 0.05)
    return {"stays": stays}, {"steady": _fit_error(spread, 0.01)}


def _linear_scores(obj: ObjectSpec, m: Motion) -> Items:
    _, vx, rx = line_fit(m.t, m.x)
    _, vy, ry = line_fit(m.t, m.y)
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


def _bounce_scores(obj: ObjectSpec, m: Motion, scene: SceneSpec) -> Items:
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
    obj: ObjectSpec, index: int, m: Motion, scene: SceneSpec, expected: Expected
) -> Items:
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


def _orbit_scores(obj: ObjectSpec, m: Motion) -> Items:
    # algebraic circle fit: x^2 + y^2 + D x + E y + F = 0
    design = np.stack([m.x, m.y, np.ones_like(m.x)], axis=1)
    rhs = -(m.x**2 + m.y**2)
    (d, e, f), *_ = np.linalg.lstsq(design, rhs, rcond=None)
    cx, cy = -d / 2, -e / 2
    radius = math.sqrt(max(cx * cx + cy * cy - f, 1e-12))
    radial = np.hypot(m.x - cx, m.y - cy) - radius
    angle = np.unwrap(np.arctan2(m.y - cy, m.x - cx))
    _, rate, angle_residual = line_fit(m.t, angle)
    sense = 1.0 if np.sign(rate) == np.sign(obj.orbit_speed) else 0.0
    return {"sense": sense}, {
        "circle": _fit_error(radial, 0.01),
        "steady_rate": _fit_error(angle_residual * radius, 0.01),
    }


def _collision_scores(
    obj: ObjectSpec, index: int, scene: SceneSpec, matched: list[Track | None], seen: Observation
) -> Items:
    """Both objects of the pair: straight before and after the moment they are closest, moving
    as the spec says before it, and the pair keeping its momentum and its closing speed."""
    a, b = scene.collision
    other = b if index == a else a
    pair = [matched[index], matched[other]]
    if pair[1] is None:
        return {"partner": 0.0}, {"partner": 0.0}
    ma, mb = Motion(pair[0], seen, obj), Motion(pair[1], seen, scene.objects[other])
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
        _, v0, r0 = line_fit(t[before], x[before])
        _, v1, r1 = line_fit(t[after], x[after])
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


def _collision_heading(obj: ObjectSpec, m: Motion) -> dict[str, float]:
    """Before a collision: a still object stays put, a moving one heads the spec's way
    (from a line through its first six whole frames)."""
    first = slice(0, min(6, len(m)))
    velocity = np.polyfit(m.t[first], m.x[first], 1)[0]
    if obj.motion == "still":
        return {"stays": math.exp(-max(0.0, abs(velocity) - 0.02) / 0.05)}
    return {"heading": _direction_match(np.array([velocity, 0.0]), (obj.velocity[0], 0.0))}


def rotation_rate(
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


def spin_scores(obj: ObjectSpec, rotation: tuple[float, float] | None) -> tuple[dict, dict]:
    """A spinning object turns the spec's way, at about its rate, steadily."""
    if obj.spin == 0 or rotation is None:
        return {}, {}
    rate, wobble = rotation
    sense = 1.0 if np.sign(rate) == np.sign(obj.spin) else 0.0
    speed = math.exp(-abs(math.log(max(abs(rate) / abs(obj.spin), 1e-6))) / 0.3)
    steady = math.exp(-max(0.0, wobble / abs(obj.spin) - 0.15) / 0.3)
    return {"spin_sense": sense}, {"spin_rate": speed, "spin_steady": steady}


def travel_scores(obj: ObjectSpec, index: int, m: Motion, expected: Expected) -> Items:
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


def growth_scores(obj: ObjectSpec, m: Motion) -> Items:
    if obj.growth == 0 or len(m) < 4:
        return {}, {}
    _, rate, residual = line_fit(m.t, np.log(m.area) / 2)  # radius grows as exp(growth t)
    sense = 1.0 if np.sign(rate) == np.sign(obj.growth) else 0.0
    speed = math.exp(-abs(math.log(max(abs(rate) / abs(obj.growth), 1e-6))) / 0.3)
    return {"growth_sense": sense}, {
        "growth_rate": speed,
        "growth_steady": _fit_error(residual, 0.03, slack=0.01),
    }


def pan_scores(scene: SceneSpec, seen: Observation) -> Items:
    """The camera's pan from the floor tiles: its sense and speed against the spec's."""
    if scene.background.kind != "sky_floor":
        return {}, {}
    t = np.arange(seen.frames) / seen.fps
    if len(t) < 3:
        return {}, {}
    _, rate, _ = line_fit(t, seen.camera / seen.short_side)
    wanted = scene.camera_pan
    if wanted == 0:
        return {}, {}  # a camera that should stand still: see background_stability
    sense = 1.0 if np.sign(rate) == np.sign(wanted) else 0.0
    speed = math.exp(-abs(math.log(max(abs(rate) / abs(wanted), 1e-6))) / 0.3)
    return {"pan_sense": sense}, {"pan_rate": speed}


# ---- permanence, consistency, background -------------------------------------------------------
