"""The rules every sampled scene obeys, checked on the physics at 32 samples per second.

    colours         the objects' colours differ, and each is far from every background colour
    circle spin     no circle spins: a turning circle looks exactly like a still one
    frame           outlines stay inside the frame by MARGIN, except at the walls and floor an
                    object bounces off; over a floor, everything stays above it
    speed           nothing moves faster on screen than MAX_SPEED, so 16 fps shows it smoothly
    visible motion  travel, orbit turn, spin, growth and camera pan are large enough to see
                    and within their limits
    overlap         objects on one layer never meet; the colliding pair only touches
    cover           outside the pass-behind scenario, a nearer object covers at most
                    MAX_COVERED of a farther one's area, and covers it at all in at most
                    MAX_COVERED_TIME of the check times
    event           the event the scenario kind is about happens inside the clip

`check_scene(scene, aspect, kind)` names the rules a scene breaks (none: it obeys them all).
`SceneChecks.batch` checks many scenes with one physics run per duration; the sampler checks
its candidates that way. Overlap and cover are measured on bounding circles (`outer`), which
hold each shape whatever its spin, so they err on the safe side. `passes_behind` finds the
pass-behind events the captions describe.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from kinetoscope.world import physics, vocab
from kinetoscope.world.shapes import contact_distance, geometry
from kinetoscope.world.spec import Background, SceneSpec

# Short sides, seconds, radians.
MARGIN = 0.01  # between an outline and the frame edge, except at walls it bounces off
MAX_SPEED = 0.96  # 0.06 short sides per frame at 16 fps
MIN_TRAVEL = 0.2  # path length of anything that moves
MIN_PAN_TRAVEL = 0.15
MIN_ORBIT_TURN = math.pi / 2
MAX_ORBIT_SPEED = 3.0
SPIN_RANGE = (1.0, 4.0)
MIN_SCALE_CHANGE = 0.3
MIN_COLOR_DISTANCE = 150.0
MAX_COVERED = 0.3  # of an object's area by a nearer object, outside pass-behind scenes
MAX_COVERED_TIME = 0.25  # of the check times at which an object may be covered at all
CHECKS_PER_SECOND = 32
HIDE_MARGIN = 0.004  # a hidden object's anti-aliased edge must stay covered too
WALL_MOTIONS = ("bounce", "fall", "throw")  # touch the side walls and the floor
ROUND_SHAPES = ("circle",)  # look the same at every angle, so they never spin

RULES: tuple[str, ...] = (
    "colours",
    "circle spin",
    "frame",
    "speed",
    "visible motion",
    "overlap",
    "cover",
    "event",
)


def check_scene(scene: SceneSpec, aspect: float = 1.0, kind: str | None = None) -> list[str]:
    """The names of the `RULES` that `scene` breaks, in that order; [] when it obeys them all.

    `kind` is the scenario the scene was drawn as: it names the event to look for, and
    "pass_behind" allows hiding. None checks everything but the event."""
    return SceneChecks.batch([scene], aspect, kind)[0].broken()


def check_times(seconds: float) -> Tensor:
    """The times the checks look at: 32 per second from 0, and the last time. (T,) float64."""
    steps = math.floor(seconds * CHECKS_PER_SECOND + 1e-9)
    times = [k / CHECKS_PER_SECOND for k in range(steps + 1)]
    if times[-1] < seconds - 1e-9:
        times.append(seconds)
    return torch.tensor(times, dtype=torch.float64)


def passes_behind(
    scene: SceneSpec, aspect: float = 1.0, min_hidden: int = 1
) -> list[tuple[int, int]]:
    """Pairs (far, near): object `far` is fully hidden behind the nearer object `near` at
    `min_hidden` or more check times, and clear of it at the first and the last time."""
    return SceneChecks.batch([scene], aspect)[0].passes_behind(min_hidden)


def background_colors(background: Background) -> tuple[str, ...]:
    """The colours a background shows: one when solid, else both ends or sky and floor."""
    return (background.color,) + ((background.color2,) if background.color2 else ())


@functools.cache
def allowed_colors(backdrop: tuple[str, ...]) -> frozenset[str]:
    """The object colours at least MIN_COLOR_DISTANCE from every colour of `backdrop`."""
    return frozenset(
        c
        for c in vocab.OBJECT_COLORS
        if all(
            vocab.color_distance(vocab.COLORS[c], vocab.COLORS[b]) >= MIN_COLOR_DISTANCE
            for b in backdrop
        )
    )


@functools.cache
def inscribed(shape: str) -> float:
    """Radius of the largest circle about the centre that fits in the shape, in object radii."""
    zero = torch.zeros(1, dtype=torch.float64)
    return -float(geometry(shape).sdf(zero, zero)[0])


# ---- one scene's physics at the check times --------------------------------------------------


@dataclass
class SceneTracks:
    """One scene at the check times, in numpy: (N, T) tracks, (N,) outlines in short sides."""

    times: np.ndarray  # (T,)
    x: np.ndarray  # on screen
    world_x: np.ndarray
    y: np.ndarray
    scale: np.ndarray
    outline: dict[str, np.ndarray]  # half_width, up, down (outer when spinning), radius, ...
    wall_bounces: np.ndarray  # (N,)
    floor_bounces: np.ndarray
    collision_time: float

    @classmethod
    def of(cls, scene: SceneSpec, tracks: physics.Tracks, times: Tensor, row: int) -> SceneTracks:
        """Row `row` of a physics batch that holds `scene`, simulated at `times`."""
        n = len(scene.objects)
        radius = np.array([vocab.SIZES[o.size] for o in scene.objects])
        geos = [geometry(o.shape) for o in scene.objects]
        spin = np.array([o.spin != 0 for o in scene.objects])
        outline = {
            k: np.array([getattr(g, k) for g in geos]) * radius
            for k in ("half_width", "up", "down", "outer")
        }
        for k in ("half_width", "up", "down"):
            outline[k] = np.where(spin, outline["outer"], outline[k])
        outline["radius"] = radius
        outline["inscribed"] = np.array([inscribed(o.shape) for o in scene.objects]) * radius
        x = tracks.x[row, :n].numpy()
        return cls(
            times=times.numpy(),
            x=x,
            world_x=x + tracks.camera[row].numpy(),
            y=tracks.y[row, :n].numpy(),
            scale=tracks.scale[row, :n].numpy(),
            outline=outline,
            wall_bounces=tracks.wall_bounces[row, :n].numpy(),
            floor_bounces=tracks.floor_bounces[row, :n].numpy(),
            collision_time=float(tracks.collision_time[row]),
        )

    def size(self, name: str, i: int | slice = slice(None)) -> np.ndarray:
        """An outline measure of object(s) i over time, scaled by growth."""
        scale = self.scale[i]
        return (
            self.outline[name][i][..., None] * scale
            if scale.ndim > 1
            else self.outline[name][i] * scale
        )

    def distance(self, i: int, j: int) -> np.ndarray:
        """Distance between the centres of objects i and j on screen, (T,)."""
        return np.hypot(self.x[i] - self.x[j], self.y[i] - self.y[j])


# ---- the rules ---------------------------------------------------------------------------------


@dataclass
class SceneChecks:
    """One scene and its physics at the check times; a method per rule says whether it holds."""

    scene: SceneSpec
    kind: str | None  # the scenario drawn, which names the event; None: no event to check
    tracks: SceneTracks
    size: tuple[float, float]  # frame width and height in short sides

    @classmethod
    def batch(
        cls, scenes: Sequence[SceneSpec], aspect: float = 1.0, kind: str | None = None
    ) -> list[SceneChecks]:
        """Checks for each scene, from one physics run per distinct duration."""
        checks: dict[int, SceneChecks] = {}
        for seconds in dict.fromkeys(scene.seconds for scene in scenes):
            rows = [i for i, scene in enumerate(scenes) if scene.seconds == seconds]
            times = check_times(seconds)
            tracks = physics.simulate(physics.pack([scenes[i] for i in rows], aspect), times)
            for row, i in enumerate(rows):
                m = SceneTracks.of(scenes[i], tracks, times, row)
                checks[i] = cls(scenes[i], kind, m, physics.world_size(aspect))
        return [checks[i] for i in range(len(scenes))]

    def broken(self, first: bool = False) -> list[str]:
        """The names of the rules broken, in `RULES` order; only the first one when `first`."""
        names = []
        for name in RULES:
            if not getattr(self, name.replace(" ", "_"))():
                names.append(name)
                if first:
                    break
        return names

    def colours(self) -> bool:
        """Colours differ and stand out from every background colour."""
        colors = [obj.color for obj in self.scene.objects]
        allowed = allowed_colors(background_colors(self.scene.background))
        return len(set(colors)) == len(colors) and set(colors) <= allowed

    def circle_spin(self) -> bool:
        """No round shape spins (its spin could not be seen)."""
        return not any(obj.spin and obj.shape in ROUND_SHAPES for obj in self.scene.objects)

    def frame(self) -> bool:
        """Outlines in frame by MARGIN, except at walls and floor an object bounces off; over a
        floor, everything stays above it."""
        width, height = self.size
        m, motions = self.tracks, [obj.motion for obj in self.scene.objects]
        side = np.where([mo in WALL_MOTIONS for mo in motions], 0.0, MARGIN)[:, None]
        top = np.where([mo == "bounce" for mo in motions], 0.0, MARGIN)[:, None]
        bottom = 0.0 if self.scene.background.kind == "sky_floor" else side
        half_width, up, down = m.size("half_width"), m.size("up"), m.size("down")
        return bool(
            (m.x - half_width >= side - 1e-9).all()
            and (width - m.x - half_width >= side - 1e-9).all()
            and (m.y - up >= top - 1e-9).all()
            and (self.scene.floor_y * height - m.y - down >= bottom - 1e-9).all()
        )

    def speed(self) -> bool:
        """No object moves more than MAX_SPEED on screen between check times."""
        m = self.tracks
        step = np.hypot(np.diff(m.x, axis=1), np.diff(m.y, axis=1))
        return bool((step <= MAX_SPEED * np.diff(m.times) + 1e-9).all())

    def visible_motion(self) -> bool:
        """Every motion, spin, growth and pan is large enough to see and within its limits."""
        scene, m = self.scene, self.tracks
        path = np.hypot(np.diff(m.world_x, axis=1), np.diff(m.y, axis=1)).sum(axis=1)
        for i, obj in enumerate(scene.objects):
            turn = abs(obj.orbit_speed)
            if (
                (obj.motion in ("linear", *WALL_MOTIONS) and path[i] < MIN_TRAVEL)
                or (
                    obj.motion == "orbit"
                    and not MIN_ORBIT_TURN / scene.seconds <= turn <= MAX_ORBIT_SPEED
                )
                or (obj.spin and not SPIN_RANGE[0] <= abs(obj.spin) <= SPIN_RANGE[1])
                or (obj.growth and abs(m.scale[i, -1] - 1.0) < MIN_SCALE_CHANGE)
            ):
                return False
        pan_travel = abs(scene.camera_pan) * scene.seconds
        return not scene.camera_pan or (
            pan_travel >= MIN_PAN_TRAVEL and scene.background.kind == "sky_floor"
        )

    def overlap(self) -> bool:
        """Same layer: bounding circles never meet; the colliding pair never comes closer than
        the contact distance of its shapes."""
        scene, m = self.scene, self.tracks
        outer = m.size("outer")
        for i, j in _pairs(len(scene.objects)):
            a, b = scene.objects[i], scene.objects[j]
            if scene.collision is not None and {i, j} == set(scene.collision):
                reach = contact_distance(a.shape, vocab.SIZES[a.size], b.shape, vocab.SIZES[b.size])
                apart = np.abs(m.x[i] - m.x[j]) >= reach - 1e-6
            elif a.layer == b.layer:
                apart = m.distance(i, j) >= outer[i] + outer[j] + 0.005
            else:
                continue
            if not apart.all():
                return False
        return True

    def cover(self) -> bool:
        """Outside pass-behind: nearer objects cover at most MAX_COVERED of a farther one's
        area, and overlap its bounding circle in at most MAX_COVERED_TIME of the times."""
        if self.kind == "pass_behind":
            return True
        scene, m = self.scene, self.tracks
        outer = m.size("outer")
        for far, far_obj in enumerate(scene.objects):
            covered_at = np.zeros(len(m.times), dtype=bool)
            for near, near_obj in enumerate(scene.objects):
                if near_obj.layer >= far_obj.layer:
                    continue
                distance = m.distance(far, near)
                area = _lens_area(distance, outer[near], outer[far])
                if (area > MAX_COVERED * np.pi * m.size("radius", far) ** 2).any():
                    return False
                covered_at |= distance < outer[far] + outer[near]
            if covered_at.sum() > MAX_COVERED_TIME * len(m.times):
                return False
        return True

    def event(self) -> bool:
        """The event of the scenario kind happens inside the clip (nothing to check for None)."""
        scene, kind, m = self.scene, self.kind, self.tracks
        movers = {
            mo: [i for i, o in enumerate(scene.objects) if o.motion == mo] for mo in WALL_MOTIONS
        }
        if kind == "bounce":
            return all(m.wall_bounces[i] >= 1 for i in movers["bounce"])
        if kind == "fall":
            return all(m.floor_bounces[i] >= 1 for i in movers["fall"])
        if kind == "throw":
            return all(m.y[i].min() <= m.y[i, 0] - 0.1 for i in movers["throw"])
        if kind == "collision":
            return 0.15 * scene.seconds <= m.collision_time <= 0.85 * scene.seconds
        if kind == "pass_behind":
            return bool(self.passes_behind(min_hidden=3))
        return True

    def passes_behind(self, min_hidden: int = 1) -> list[tuple[int, int]]:
        """Pairs (far, near): `far` fully hidden behind `near` at `min_hidden` or more check
        times, and clear of it at the first and the last."""
        scene, m = self.scene, self.tracks
        pairs = []
        outer, inside = m.size("outer"), m.size("inscribed")
        for far, far_obj in enumerate(scene.objects):
            for near, near_obj in enumerate(scene.objects):
                if far_obj.layer <= near_obj.layer:
                    continue
                distance = m.distance(far, near)
                hidden = distance + outer[far] + HIDE_MARGIN <= inside[near]
                clear = distance >= outer[far] + outer[near]
                if hidden.sum() >= min_hidden and clear[0] and clear[-1]:
                    pairs.append((far, near))
        return pairs


def _pairs(n: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(n) for j in range(i + 1, n)]


def _lens_area(distance: np.ndarray, r1: np.ndarray, r2: np.ndarray) -> np.ndarray:
    """Area shared by two discs of radii r1, r2 whose centres are `distance` apart."""
    d = np.maximum(distance, 1e-12)
    a = np.clip((d * d + r1 * r1 - r2 * r2) / (2 * d * r1), -1.0, 1.0)
    b = np.clip((d * d + r2 * r2 - r1 * r1) / (2 * d * r2), -1.0, 1.0)
    k = (-d + r1 + r2) * (d + r1 - r2) * (d - r1 + r2) * (d + r1 + r2)
    lens = r1 * r1 * np.arccos(a) + r2 * r2 * np.arccos(b) - 0.5 * np.sqrt(np.maximum(k, 0.0))
    contained = np.pi * np.minimum(r1, r2) ** 2
    return np.where(d >= r1 + r2, 0.0, np.where(d <= np.abs(r1 - r2), contained, lens))
