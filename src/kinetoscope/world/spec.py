"""Scene specs: the complete, resolution-free description of one physics-world clip.

A `SceneSpec` says which objects exist, how they look and move, the background, the camera and
the duration. Rendering it at any width, height and fps is deterministic. Specs round-trip
through JSON (`to_json` / `from_json`) and are checked by `validate`, which names the field and
the value that is wrong.

Coordinates: `x`, `y` are fractions of the frame width and height (y grows downwards); lengths,
velocities and gravity are in short sides (see `vocab`).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from kinetoscope.errors import SpecError
from kinetoscope.world import vocab

SPEC_FORMAT = "kinetoscope.scene/1"
MAX_OBJECTS = 8


@dataclass(frozen=True)
class ObjectSpec:
    """One object: its look, its start and its motion.

    motion:
        still   stays where it is (it may still spin or grow)
        linear  constant `velocity`
        bounce  constant speed, reflecting off the frame's walls (and the floor, if any)
        fall    released with `velocity` (usually zero); gravity pulls it to the floor, where it
                bounces keeping `restitution` of its speed; side walls reflect it
        throw   like fall, launched upwards with `velocity`, so it flies a parabola
        orbit   circles the centre (`x`, `y`) at `orbit_radius`, starting at `orbit_phase`

    `spin` and `growth` combine with still, linear and orbit (not with the motions that touch
    walls or the floor, whose contacts assume a fixed outline).
    """

    shape: str
    color: str
    size: str = "medium"
    x: float = 0.5  # start (orbit: orbit centre), fraction of the frame width
    y: float = 0.5  # fraction of the frame height
    motion: str = "still"
    velocity: tuple[float, float] = (0.0, 0.0)  # short sides per second; +y is down
    restitution: float = 0.7  # fall / throw: fraction of speed kept at each floor bounce
    orbit_radius: float = 0.0  # short sides
    orbit_phase: float = 0.0  # radians at t = 0; 0 is to the right of the centre
    orbit_speed: float = 0.0  # radians per second; positive is clockwise on screen
    spin: float = 0.0  # radians per second; positive is clockwise on screen
    growth: float = 0.0  # scale(t) = exp(growth * t); positive grows
    layer: int = 0  # 0 is nearest the camera; higher layers pass behind lower ones


@dataclass(frozen=True)
class Background:
    """solid: one `color`; sky_floor: `color` sky over a `color2` floor whose line is at
    `floor` (fraction of the frame height); gradient: `color` at the top to `color2` at the
    bottom."""

    kind: str = "solid"
    color: str = "white"
    color2: str | None = None
    floor: float = 0.8


@dataclass(frozen=True)
class SceneSpec:
    objects: tuple[ObjectSpec, ...]
    background: Background = field(default_factory=Background)
    seconds: float = 4.0
    gravity: float = vocab.DEFAULT_GRAVITY  # short sides per second squared
    camera_pan: float = 0.0  # short sides per second; positive moves the camera right
    collision: tuple[int, int] | None = None  # indices of two objects that collide head-on

    # ---- derived facts ---------------------------------------------------------------------

    @property
    def floor_y(self) -> float:
        """Where gravity's floor is, as a fraction of the frame height."""
        return self.background.floor if self.background.kind == "sky_floor" else 1.0

    def frame_count(self, fps: float) -> int:
        """Frames in the clip: one at t = 0 and one every 1/fps up to `seconds`."""
        return frame_count(self.seconds, fps)

    def with_seconds(self, seconds: float) -> SceneSpec:
        return dataclasses.replace(self, seconds=seconds)

    # ---- JSON ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["format"] = SPEC_FORMAT
        return data

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SceneSpec:
        """Build and validate a spec from `to_dict` output; unknown keys are errors."""
        if not isinstance(data, dict):
            raise SpecError(f"a scene spec must be a JSON object, got {type(data).__name__}")
        data = dict(data)
        fmt = data.pop("format", SPEC_FORMAT)
        if fmt != SPEC_FORMAT:
            raise SpecError(f"unsupported spec format {fmt!r} (expected {SPEC_FORMAT!r})")
        objects_data = data.pop("objects", None)
        if not isinstance(objects_data, list | tuple):  # to_dict keeps the tuple
            raise SpecError(
                f"scene spec field 'objects' must be a list of objects, got {objects_data!r}"
            )
        objects = tuple(
            _build(ObjectSpec, item, f"objects[{i}]") for i, item in enumerate(objects_data)
        )
        background = _build(Background, data.pop("background", {}), "background")
        scene = _build(cls, {**data, "objects": objects, "background": background}, "scene")
        scene.validate()
        return scene

    @classmethod
    def from_json(cls, text: str) -> SceneSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"scene spec is not valid JSON: {exc}") from exc
        return cls.from_dict(data)

    # ---- validation ------------------------------------------------------------------------

    def validate(self) -> SceneSpec:
        """Raise SpecError naming the first problem; return self when the spec is sound."""
        if not 1 <= len(self.objects) <= MAX_OBJECTS:
            raise SpecError(f"a scene has 1 to {MAX_OBJECTS} objects, got {len(self.objects)}")
        _check_range("seconds", self.seconds, 1e-3, 3600.0)
        _check_range("gravity", self.gravity, 0.0, 100.0)
        _check_range("camera_pan", self.camera_pan, -10.0, 10.0)
        _validate_background(self.background)
        for i, obj in enumerate(self.objects):
            _validate_object(obj, f"objects[{i}]")
        if self.collision is not None:
            _validate_collision(self)
        return self


def frame_count(seconds: float, fps: float) -> int:
    """Frames in a clip of `seconds` at `fps`: one at t = 0, then one every 1/fps."""
    if fps <= 0 or not math.isfinite(fps):
        raise SpecError(f"fps must be a positive number, got {fps}")
    # the last frame is the last one at or before `seconds` (the epsilon absorbs float error)
    return math.floor(seconds * fps + 1e-9) + 1


# ---- helpers -------------------------------------------------------------------------------


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise SpecError(f"{where} must be a JSON object, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise SpecError(f"{where} has unknown field(s) {', '.join(map(repr, unknown))}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    try:
        return cls(**values)
    except TypeError as exc:
        raise SpecError(f"{where}: {exc}") from exc


def _check_name(where: str, value: Any, allowed: tuple[str, ...] | list[str]) -> None:
    if value in allowed:
        return
    close = difflib.get_close_matches(str(value), list(allowed), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; choose from {', '.join(allowed)}"
    raise SpecError(f"{where} is {value!r}, which is not known{hint}")


def _check_range(where: str, value: Any, lo: float, hi: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SpecError(f"{where} must be a finite number, got {value!r}")
    if not lo <= value <= hi:
        raise SpecError(f"{where} must be between {lo} and {hi}, got {value}")


def _validate_background(bg: Background) -> None:
    _check_name("background.kind", bg.kind, vocab.BACKGROUNDS)
    _check_name("background.color", bg.color, list(vocab.COLORS))
    if bg.kind == "solid":
        if bg.color2 is not None:
            raise SpecError(
                f"background.color2 is only used by 'sky_floor' and 'gradient', got {bg.color2!r}"
                " on a 'solid' background"
            )
    else:
        if bg.color2 is None:
            raise SpecError(f"a {bg.kind!r} background needs background.color2")
        _check_name("background.color2", bg.color2, list(vocab.COLORS))
    _check_range("background.floor", bg.floor, 0.2, 0.98)


def _validate_object(obj: ObjectSpec, where: str) -> None:
    _check_name(f"{where}.shape", obj.shape, vocab.SHAPES)
    _check_name(f"{where}.color", obj.color, list(vocab.COLORS))
    _check_name(f"{where}.size", obj.size, list(vocab.SIZES))
    _check_name(f"{where}.motion", obj.motion, vocab.MOTIONS)
    _check_range(f"{where}.x", obj.x, -1.0, 2.0)
    _check_range(f"{where}.y", obj.y, -1.0, 2.0)
    if not isinstance(obj.velocity, tuple) or len(obj.velocity) != 2:
        raise SpecError(f"{where}.velocity must be two numbers [vx, vy], got {obj.velocity!r}")
    for axis, v in zip("xy", obj.velocity, strict=True):
        _check_range(f"{where}.velocity.{axis}", v, -20.0, 20.0)
    _check_range(f"{where}.restitution", obj.restitution, 0.0, 1.0)
    _check_range(f"{where}.orbit_radius", obj.orbit_radius, 0.0, 5.0)
    _check_range(f"{where}.orbit_phase", obj.orbit_phase, -100.0, 100.0)
    _check_range(f"{where}.orbit_speed", obj.orbit_speed, -100.0, 100.0)
    _check_range(f"{where}.spin", obj.spin, -100.0, 100.0)
    _check_range(f"{where}.growth", obj.growth, -5.0, 5.0)
    if isinstance(obj.layer, bool) or not isinstance(obj.layer, int) or not 0 <= obj.layer < 16:
        raise SpecError(f"{where}.layer must be a whole number from 0 to 15, got {obj.layer!r}")
    if obj.motion == "orbit" and obj.orbit_radius <= 0:
        raise SpecError(f"{where} orbits, so it needs orbit_radius > 0, got {obj.orbit_radius}")
    if obj.motion in ("bounce", "fall", "throw") and (obj.spin or obj.growth):
        # contacts with walls and floor are computed for the unrotated, constant-size outline
        raise SpecError(
            f"{where} has motion {obj.motion!r}, which cannot spin or grow"
            f" (got spin={obj.spin}, growth={obj.growth})"
        )
    moving = obj.motion in ("linear", "bounce", "throw")
    if moving and math.hypot(*obj.velocity) == 0:
        raise SpecError(f"{where} has motion {obj.motion!r} but zero velocity")


def _validate_collision(scene: SceneSpec) -> None:
    pair = scene.collision
    n = len(scene.objects)
    if (
        not isinstance(pair, tuple)
        or len(pair) != 2
        or not all(isinstance(i, int) and 0 <= i < n for i in pair)
        or pair[0] == pair[1]
    ):
        raise SpecError(f"collision must name two different object indices below {n}, got {pair}")
    a, b = (scene.objects[i] for i in pair)
    for i, obj in zip(pair, (a, b), strict=True):
        if obj.motion not in ("linear", "still") or obj.velocity[1] != 0:
            raise SpecError(
                f"collision: objects[{i}] must move horizontally ('linear' with velocity y = 0)"
                f" or stand 'still', got motion {obj.motion!r} with velocity {obj.velocity}"
            )
        if obj.spin or obj.growth:
            raise SpecError(
                f"collision: objects[{i}] may not spin or grow"
                f" (got spin={obj.spin}, growth={obj.growth})"
            )
    if a.layer != b.layer:
        raise SpecError(
            f"collision: the two objects must be on the same layer, got {a.layer} and {b.layer}"
        )
    if a.y != b.y:
        raise SpecError(
            f"collision: the two objects must start at the same height (y), got {a.y} and {b.y}"
        )
    left, right = (a, b) if a.x < b.x else (b, a)

    def speed(obj: ObjectSpec) -> float:
        return 0.0 if obj.motion == "still" else obj.velocity[0]

    if speed(left) - speed(right) <= 0:
        raise SpecError(
            "collision: the two objects must be moving towards each other, got x velocities"
            f" {speed(left)} (left) and {speed(right)} (right)"
        )
