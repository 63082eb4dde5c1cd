"""Random physics-world scenes: the model's training distribution and the judge's test scenes.

`sample_scene(seed, aspect, seconds, config)` draws one `SceneSpec` of a scenario kind (see
`SCENARIO_KINDS`): still objects, constant velocity in the eight compass directions, bouncing
off the walls, falling and bouncing on the floor, thrown in a parabola, spinning, growing or
shrinking, orbiting, a head-on elastic collision, one object passing behind another, a camera
pan, or a mix of independent motions. The kind, the number of objects and the duration are
drawn once; everything else is drawn again for each candidate until one passes the checks.

Candidates are built to fit (a start is chosen so that the planned path stays in frame), then
checked on the physics against every rule of `kinetoscope.world.rules`: outlines inside the
frame by a margin, above the floor, colours far from each other and from the background, no
overlap within a layer, nothing covered by a nearer object for long except in the
pass-behind scenario, no spinning circles, motion large enough to see and slow enough for
16 fps, and the scenario's event inside the clip. Everything is drawn from one
`random.Random(seed)` in a fixed order, so a seed gives the same scene on every platform.

Held-out combinations (`HeldOut`: colour x shape x motion) never appear in `sample_scene`;
`sample_held_out_scene` draws scenes that contain one, to measure compositional
generalisation.
"""

from __future__ import annotations

import difflib
import functools
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from kinetoscope.errors import SpecError
from kinetoscope.world import physics, rules, vocab
from kinetoscope.world.rules import (
    HIDE_MARGIN,
    MAX_ORBIT_SPEED,
    MAX_SPEED,
    MIN_ORBIT_TURN,
    MIN_PAN_TRAVEL,
    MIN_TRAVEL,
    ROUND_SHAPES,
)
from kinetoscope.world.shapes import contact_distance, geometry
from kinetoscope.world.spec import Background, ObjectSpec, SceneSpec

_PLACE_MARGIN = rules.MARGIN + 0.002  # planned paths keep more, so rounding never breaks them
_CANDIDATES_PER_ROUND = 4  # checked by the physics as one batch
_SPIN_MOTIONS = ("still", "linear", "orbit")  # may spin or grow (see ObjectSpec)

Weights = tuple[tuple[str, float], ...]

# fmt: off
_KIND_WEIGHTS: Weights = (
    ("still", 0.5), ("linear", 1.0), ("bounce", 1.0), ("fall", 1.0), ("throw", 0.8),
    ("spin", 0.6), ("grow", 0.6), ("orbit", 0.8), ("collision", 0.8), ("pass_behind", 0.8),
    ("camera_pan", 0.6), ("mixed", 1.0),
)
_MIXED_MOTION_WEIGHTS: Weights = (
    ("still", 0.6), ("linear", 1.0), ("bounce", 1.0), ("fall", 1.0), ("throw", 0.7),
    ("orbit", 0.8),
)
# fmt: on
SCENARIO_KINDS: tuple[str, ...] = tuple(kind for kind, _ in _KIND_WEIGHTS)
_ALL_SHAPES: Weights = tuple((name, 1.0) for name in vocab.SHAPES)
_ALL_COLORS: Weights = tuple((name, 1.0) for name in vocab.OBJECT_COLORS)
_ALL_SIZES: Weights = tuple((name, 1.0) for name in vocab.SIZES)
_ALL_BACKGROUNDS: Weights = tuple((name, 1.0) for name in vocab.BACKGROUNDS)


@dataclass(frozen=True)
class HeldOut:
    """A combination kept out of training; an object matches when every given field matches."""

    color: str | None = None
    shape: str | None = None
    motion: str | None = None

    def matches(self, color: str, shape: str, motion: str) -> bool:
        """Whether an object of this colour, shape and motion has the combination."""
        pairs = ((self.color, color), (self.shape, shape), (self.motion, motion))
        return all(want is None or want == have for want, have in pairs)


DEFAULT_HELD_OUT: tuple[HeldOut, ...] = (
    HeldOut("red", "triangle", "bounce"),
    HeldOut("blue", "star", "fall"),
    HeldOut("green", "heart", "orbit"),
    HeldOut("yellow", "square", "throw"),
    HeldOut("purple", "circle", "linear"),
    HeldOut("orange", "hexagon", "still"),
)


@dataclass(frozen=True)
class SamplerConfig:
    """What to sample and how often. Weights are relative (a dict works too); a name left out
    has weight 0."""

    kinds: Weights = _KIND_WEIGHTS
    motions: Weights = _MIXED_MOTION_WEIGHTS  # of the objects in "mixed" scenes
    shapes: Weights = _ALL_SHAPES
    colors: Weights = _ALL_COLORS
    sizes: Weights = _ALL_SIZES
    backgrounds: Weights = _ALL_BACKGROUNDS
    object_counts: tuple[tuple[int, float], ...] = ((1, 0.5), (2, 0.3), (3, 0.2))
    spin_probability: float = 0.2  # of each still, linear or orbiting object in other kinds
    growth_probability: float = 0.1
    pan_probability: float = 0.15  # of still/linear/spin/grow/orbit scenes over a floor
    seconds: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0)
    held_out: tuple[HeldOut, ...] = DEFAULT_HELD_OUT
    max_attempts: int = 400  # candidates; two throws in a 4 s clip may need a few hundred

    def __post_init__(self) -> None:
        for name in _WEIGHTED_NAMES:
            if isinstance(getattr(self, name), Mapping):
                object.__setattr__(self, name, tuple(getattr(self, name).items()))
        self.validate()

    def validate(self) -> SamplerConfig:
        """Raise SpecError naming the first unknown name or bad value; return self."""
        for where, names in _WEIGHTED_NAMES.items():
            for name, weight in getattr(self, where):
                _check_name(where, name, names)
                if not (isinstance(weight, int | float) and math.isfinite(weight) and weight >= 0):
                    raise SpecError(
                        f"sampler {where} weight of {name!r} must be >= 0, got {weight}"
                    )
            if not any(weight > 0 for _, weight in getattr(self, where)):
                raise SpecError(f"sampler {where} needs at least one positive weight")
        for name in ("spin_probability", "growth_probability", "pan_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise SpecError(f"sampler {name} must be in [0, 1], got {getattr(self, name)}")
        if not self.seconds or not all(0 < s <= 60 for s in self.seconds):
            raise SpecError(f"sampler seconds must be durations in (0, 60], got {self.seconds}")
        for entry in self.held_out:
            if entry == HeldOut():
                raise SpecError("a HeldOut entry needs at least one of color, shape, motion")
            _check_name("held_out color", entry.color, vocab.OBJECT_COLORS)
            _check_name("held_out shape", entry.shape, vocab.SHAPES)
            _check_name("held_out motion", entry.motion, vocab.MOTIONS)
        if self.max_attempts < 1:
            raise SpecError(f"sampler max_attempts must be at least 1, got {self.max_attempts}")
        return self


_WEIGHTED_NAMES: dict[str, Sequence[object]] = {  # the weight fields and the names they weigh
    "kinds": SCENARIO_KINDS,
    "motions": vocab.MOTIONS,
    "shapes": vocab.SHAPES,
    "colors": vocab.OBJECT_COLORS,
    "sizes": tuple(vocab.SIZES),
    "backgrounds": vocab.BACKGROUNDS,
    "object_counts": (1, 2, 3),
}


def _check_name(where: str, value: object, allowed: Sequence[object]) -> None:
    if value is None or value in allowed:
        return
    close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; choose from {list(allowed)}"
    raise SpecError(f"sampler {where} has unknown name {value!r}{hint}")


DEFAULT = SamplerConfig()
SAMPLER_PRESETS: dict[str, SamplerConfig] = {
    # the training distribution, with DEFAULT_HELD_OUT kept out
    "default": DEFAULT,
    # everything, nothing held out: for a model that is not measured on composition
    "full": SamplerConfig(held_out=()),
    # one object, one motion: a first curriculum stage and simple judge tests
    "single": SamplerConfig(
        kinds=tuple(
            (k, w) for k, w in _KIND_WEIGHTS if k not in ("collision", "pass_behind", "mixed")
        ),
        object_counts=((1, 1.0),),
        spin_probability=0.0,
        growth_probability=0.0,
    ),
    # the scenarios with events to caption and judge: bounces, collisions, occlusion, pans
    "events": SamplerConfig(
        kinds={
            "bounce": 1.0,
            "fall": 1.5,
            "throw": 1.0,
            "collision": 2.0,
            "pass_behind": 2.0,
            "camera_pan": 1.0,
        }
    ),
}


def sampler_preset(name: str) -> SamplerConfig:
    """The preset of `SAMPLER_PRESETS` called `name`, with a clear error for an unknown name."""
    _check_name("preset", name, tuple(SAMPLER_PRESETS))
    return SAMPLER_PRESETS[name]


# ---- public API ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SampledScene:
    """A drawn scene and the scenario kind it was drawn as."""

    scene: SceneSpec
    kind: str  # one of SCENARIO_KINDS


def sample(
    seed: int, aspect: float = 1.0, seconds: float | None = None, config: SamplerConfig = DEFAULT
) -> SampledScene:
    """Draw a scene free of held-out combinations, with the scenario kind it was drawn as."""
    return _sample(seed, aspect, seconds, config, held_out=False)


def sample_scene(
    seed: int, aspect: float = 1.0, seconds: float | None = None, config: SamplerConfig = DEFAULT
) -> SceneSpec:
    """Draw a scene (the same for the same arguments) that holds no held-out combination."""
    return sample(seed, aspect, seconds, config).scene


def sample_held_out_scene(
    seed: int, aspect: float = 1.0, seconds: float | None = None, config: SamplerConfig = DEFAULT
) -> SceneSpec:
    """Draw a scene in which one object has a combination of `config.held_out`."""
    if not config.held_out:
        raise SpecError("the sampler config holds nothing out (held_out is empty)")
    return _sample(seed, aspect, seconds, config, held_out=True).scene


def is_held_out(scene: SceneSpec, config: SamplerConfig = DEFAULT) -> bool:
    """Whether any object of the scene matches any held-out entry of the config."""
    return any(
        entry.matches(obj.color, obj.shape, obj.motion)
        for obj in scene.objects
        for entry in config.held_out
    )


# ---- the draw --------------------------------------------------------------------------------


@dataclass
class _Draft:
    """One candidate scene in the making."""

    rng: random.Random
    config: SamplerConfig
    width: float
    height: float
    seconds: float
    background: Background
    forced: HeldOut | None  # the held-out combination still to be given to an object
    pan: float = 0.0
    gravity: float | None = None  # drawn by the first ballistic object
    colors: list[str] = field(default_factory=list)

    @property
    def has_floor(self) -> bool:
        return self.background.kind == "sky_floor"

    @property
    def ground(self) -> float:
        """The floor surface (the frame's bottom without a floor), short sides from the top."""
        return (self.background.floor if self.has_floor else 1.0) * self.height

    def ballistic_gravity(self) -> float:
        if self.gravity is None:  # gravity below the default keeps falls slow enough for 16 fps
            self.gravity = round(self.rng.uniform(0.8, 2.0), 2)
        return self.gravity


@dataclass(frozen=True)
class _Look:
    shape: str
    color: str
    size: str
    spin: float = 0.0
    growth: float = 0.0


# fmt: off
_KIND_MOTIONS: dict[str, tuple[str, ...]] = {  # what the objects of the simpler kinds do
    "still": ("still",), "linear": ("linear",), "bounce": ("bounce",), "fall": ("fall",),
    "throw": ("throw",), "spin": ("still",), "grow": ("still", "linear"), "orbit": ("orbit",),
    "mixed": vocab.MOTIONS,
}
# fmt: on
_MAX_SAME = {"bounce": 2, "throw": 2}  # more would keep crossing each other's paths


def _sample(
    seed: int, aspect: float, seconds: float | None, config: SamplerConfig, held_out: bool
) -> SampledScene:
    # 1. check inputs
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise SpecError(f"seed must be a whole number, got {seed!r}")
    if not (isinstance(aspect, int | float) and math.isfinite(aspect) and 0.2 <= aspect <= 5):
        raise SpecError(f"aspect must be a width / height between 0.2 and 5, got {aspect!r}")
    if seconds is not None and not (isinstance(seconds, int | float) and 0 < seconds <= 60):
        raise SpecError(f"seconds must be in (0, 60], got {seconds!r}")
    # 2. drawn once: duration, held-out combination, kind, number of objects
    rng = random.Random(seed)
    seconds = float(seconds if seconds is not None else rng.choice(config.seconds))
    forced = rng.choice(config.held_out) if held_out else None
    kinds = config.kinds
    if forced is not None:  # the simpler kinds, where any object may take the held-out motion
        kinds = tuple(
            (k, w) for k, w in kinds if forced.motion in (None, *_KIND_MOTIONS.get(k, ()))
        )
        kinds = kinds if any(w > 0 for _, w in kinds) else (("mixed", 1.0),)
    kind = str(_pick(rng, kinds))
    counts = [(n, w) for n, w in config.object_counts if n >= 2 or kind != "mixed"]
    count = int(_pick(rng, counts) or 2)
    colors = sum(1 for _, weight in config.colors if weight > 0)  # one colour per object
    count = min(count, _MAX_SAME.get(kind, count), colors)
    # 3. candidates, a batch at a time, until one passes the checks
    width, height = physics.world_size(aspect)
    for _ in range(math.ceil(config.max_attempts / _CANDIDATES_PER_ROUND)):
        scenes = []
        for _ in range(_CANDIDATES_PER_ROUND):
            background = _background(rng, config, kind)
            draft = _Draft(rng, config, width, height, seconds, background, forced)
            scene = _compose(draft, kind, count)
            if scene is not None:
                scenes.append(scene)
        for checks in rules.SceneChecks.batch(scenes, aspect, kind):
            if not checks.broken(first=True):
                return SampledScene(scene=checks.scene, kind=kind)
    raise SpecError(
        f"no {kind!r} scene passed the checks in {config.max_attempts} attempts (seed {seed}, "
        f"aspect {aspect:.3g}, {seconds} s); try a longer clip or a larger max_attempts"
    )


def _pick(rng: random.Random, weights: Sequence[tuple[object, float]]) -> object:
    """A name drawn with its weight; None when no weight is positive."""
    names = [name for name, weight in weights if weight > 0]
    return rng.choices(names, [w for _, w in weights if w > 0])[0] if names else None


def _background(rng: random.Random, config: SamplerConfig, kind: str) -> Background:
    weights = dict(config.backgrounds)
    if kind == "camera_pan":  # the floor's tiles are what make a pan visible
        weights = {"sky_floor": 1.0}
    elif kind in ("fall", "throw"):  # a visible floor reads better
        weights["sky_floor"] = 3 * weights.get("sky_floor", 0.0)
    chosen = _pick(rng, tuple(weights.items())) or _pick(rng, config.backgrounds)
    if chosen == "solid":
        return Background("solid", rng.choice(vocab.SOLID_COLORS))
    if chosen == "gradient":
        ends = rng.choice(vocab.GRADIENTS)
        top, bottom = ends if rng.random() < 0.5 else ends[::-1]
        return Background("gradient", top, bottom)
    sky, floor = rng.choice(vocab.SKY_COLORS), rng.choice(vocab.FLOOR_COLORS)
    return Background("sky_floor", sky, floor, floor=round(rng.uniform(0.72, 0.88), 2))


@functools.cache
def _held_out_triples(held_out: tuple[HeldOut, ...]) -> frozenset[tuple[str, str, str]]:
    every = [(c, s, m) for c in vocab.OBJECT_COLORS for s in vocab.SHAPES for m in vocab.MOTIONS]
    return frozenset(t for t in every if any(entry.matches(*t) for entry in held_out))


def _choose_look(
    d: _Draft,
    motion: str,
    shapes: Sequence[str] | None = None,
    sizes: Sequence[str] | None = None,
    spin: float = 0.0,
    growth: float = 0.0,
) -> _Look | None:
    """Shape, size and colour for an object of `motion`; None when nothing allowed is left.

    The held-out combination, while it is still to be given, goes to the first object whose
    motion matches it; every other object avoids every held-out combination. A spinning
    object is never round: its spin would not show."""
    forced = d.forced if d.forced and d.forced.motion in (None, motion) else None
    shape = _pick(d.rng, [(s, w) for s, w in d.config.shapes if shapes is None or s in shapes])
    shape = forced.shape if forced and forced.shape else shape
    size = _pick(d.rng, [(s, w) for s, w in d.config.sizes if sizes is None or s in sizes])
    if shape is None or size is None or (shapes is not None and shape not in shapes):
        return None
    if spin and shape in ROUND_SHAPES:
        return None
    allowed = rules.allowed_colors(rules.background_colors(d.background))
    excluded = _held_out_triples(d.config.held_out)
    colors = [
        (c, w)
        for c, w in d.config.colors
        if c in allowed
        and c not in d.colors
        and ((c, shape, motion) not in excluded if forced is None else forced.color in (None, c))
    ]
    color = _pick(d.rng, colors)
    if color is None:
        return None
    d.forced = None if forced else d.forced
    d.colors.append(str(color))
    return _Look(str(shape), str(color), str(size), spin, growth)


def _spin(rng: random.Random) -> float:
    return round(rng.choice((-1, 1)) * rng.uniform(1.2, 3.8), 3)


def _growth(rng: random.Random, seconds: float) -> float:
    final_scale = rng.uniform(1.4, 1.9) if rng.random() < 0.6 else rng.uniform(0.45, 0.65)
    return round(math.log(final_scale) / seconds, 4)


def _pan(rng: random.Random, seconds: float) -> float:
    low = max(1.15 * MIN_PAN_TRAVEL / seconds, 0.04)
    return round(rng.choice((-1, 1)) * rng.uniform(low, max(low, 0.3)), 4)


# ---- scenarios -------------------------------------------------------------------------------

_PAN_KINDS = ("still", "linear", "spin", "grow", "orbit")  # may get a pan over a floor


def _compose(d: _Draft, kind: str, count: int) -> SceneSpec | None:
    """One candidate of the scenario `kind`, or None when a draw does not fit."""
    if kind == "collision":
        return _collision(d)
    if kind == "pass_behind":
        return _pass_behind(d)
    pan_chance = d.config.pan_probability if kind in _PAN_KINDS and d.has_floor else 0.0
    if kind == "camera_pan" or d.rng.random() < pan_chance:
        d.pan = _pan(d.rng, d.seconds)
    shared = kind == "orbit" and count >= 2 and d.rng.random() < 0.5
    objects = _shared_orbit(d, count) if shared else _objects(d, kind, count)
    if objects is None:
        return None
    if len(objects) > 1 and d.rng.random() < 0.5:  # else all on layer 0, where none may overlap
        layers = d.rng.sample(range(len(objects)), len(objects))
        objects = [replace(obj, layer=layer) for obj, layer in zip(objects, layers, strict=True)]
    return _scene(d, objects)


def _scene(
    d: _Draft, objects: Sequence[ObjectSpec], collision: tuple[int, int] | None = None
) -> SceneSpec | None:
    if d.forced is not None:  # no object took the held-out combination
        return None
    gravity = d.gravity if d.gravity is not None else vocab.DEFAULT_GRAVITY
    return SceneSpec(tuple(objects), d.background, d.seconds, gravity, d.pan, collision).validate()


def _motion_and_extras(d: _Draft, kind: str) -> tuple[str, float, float]:
    """The next object's motion (the held-out one while it is unplaced), spin and growth."""
    if kind == "mixed":
        options: Sequence[tuple[str, float]] = d.config.motions
    elif kind == "camera_pan":  # a linear object moves with the camera, if that is far enough
        tracked = abs(d.pan) * d.seconds >= 1.05 * MIN_TRAVEL
        options = (("still", 0.5), ("linear", 0.3 if tracked else 0.0), ("fall", 0.2))
    else:
        options = tuple((m, 1.0) for m in _KIND_MOTIONS[kind])
    motion = str(_pick(d.rng, options))
    if d.forced and d.forced.motion in [m for m, w in options if w > 0]:
        motion = d.forced.motion
    if kind in ("spin", "grow"):
        spin = _spin(d.rng) if kind == "spin" else 0.0
        return motion, spin, _growth(d.rng, d.seconds) if kind == "grow" else 0.0
    if kind in ("still", "camera_pan") or motion not in _SPIN_MOTIONS:
        return motion, 0.0, 0.0
    spin = _spin(d.rng) if d.rng.random() < d.config.spin_probability else 0.0
    growth = _growth(d.rng, d.seconds) if d.rng.random() < d.config.growth_probability else 0.0
    return motion, spin, growth


def _objects(d: _Draft, kind: str, count: int) -> list[ObjectSpec] | None:
    """`count` objects of a kind; each is redrawn a few times until it starts clear of the rest."""
    objects: list[ObjectSpec] = []
    for _ in range(count):
        motion, spin, growth = _motion_and_extras(d, kind)
        look = _choose_look(d, motion, spin=spin, growth=growth)
        if look is None:
            return None
        build = _tracked if kind == "camera_pan" and motion == "linear" else _BUILDERS[motion]
        tries = (build(d, look) for _ in range(4))
        obj = next((o for o in tries if o is not None and _clear_of(d, o, objects)), None)
        if obj is None:
            return None
        objects.append(obj)
    return objects


def _clear_of(d: _Draft, obj: ObjectSpec, others: Sequence[ObjectSpec]) -> bool:
    """A cheap first test before the physics: starts apart, falling objects in their own lanes."""
    for other in others:
        if "orbit" in (obj.motion, other.motion):  # an orbit starts away from its centre
            continue
        reach = sum(geometry(o.shape).outer * vocab.SIZES[o.size] for o in (obj, other)) + 0.01
        dx, dy = (obj.x - other.x) * d.width, (obj.y - other.y) * d.height
        if dx * dx + dy * dy < reach * reach or (
            obj.motion == other.motion == "fall" and abs(dx) < reach
        ):
            return False
    return True


def _shared_orbit(d: _Draft, count: int) -> list[ObjectSpec] | None:
    """Objects spaced evenly around one circle, orbiting the same centre together."""
    looks = []
    for _ in range(count):
        _, spin, growth = _motion_and_extras(d, "orbit")
        looks.append(_choose_look(d, "orbit", spin=spin, growth=growth))
    if None in looks:
        return None
    extents = [_extents(look, d.seconds) for look in looks]
    plan = _orbit_plan(d, *(max(e[k] for e in extents) for k in range(3)))
    if plan is None:
        return None
    start = d.rng.uniform(-math.pi, math.pi)
    phases = [round(start + 2 * math.pi * k / count, 3) for k in range(count)]
    return [_orbit(d, look, plan, phase) for look, phase in zip(looks, phases, strict=True)]


def _collision(d: _Draft) -> SceneSpec | None:
    """Two objects on one horizontal line meet head-on between 30% and 60% of the clip."""
    rng, seconds = d.rng, d.seconds
    motions = rng.choice((("linear", "linear"), ("still", "linear"), ("linear", "still")))
    if d.forced and d.forced.motion == "still" and "still" not in motions:
        motions = ("still", "linear")
    left = _choose_look(d, motions[0])
    if left is None:
        return None
    right = _choose_look(d, motions[1])
    hit = rng.uniform(0.3, 0.6) * seconds
    low = max(0.08, 1.05 * MIN_TRAVEL / hit)  # a mover is seen to move, even if it then stops
    high = min(0.6, 0.7 * (d.width - 0.3) / seconds)  # both paths, before and after, fit
    if right is None or low > high:
        return None
    v_left = 0.0 if motions[0] == "still" else round(rng.uniform(low, high), 4)
    v_right = 0.0 if motions[1] == "still" else -round(rng.uniform(low, high), 4)
    m_left, m_right = vocab.SIZES[left.size] ** 2, vocab.SIZES[right.size] ** 2
    after_left = ((m_left - m_right) * v_left + 2 * m_right * v_right) / (m_left + m_right)
    after_right = ((m_right - m_left) * v_right + 2 * m_left * v_left) / (m_left + m_right)
    (half_left, up_left, down_left) = _extents(left, seconds)
    (half_right, up_right, down_right) = _extents(right, seconds)
    reach = contact_distance(
        left.shape, vocab.SIZES[left.size], right.shape, vocab.SIZES[right.size]
    )
    # centres relative to the left one's at the contact, at the start and at the end
    path_left = (-v_left * hit, after_left * (seconds - hit))
    path_right = (reach - v_right * hit, reach + after_right * (seconds - hit))
    spans = [(*_x_span(d, half_left), path_left), (*_x_span(d, half_right), path_right)]
    contact = _place(rng, spans)
    y = _place(rng, [(*_y_span(d, max(up_left, up_right), max(down_left, down_right)), (0.0,))])
    if contact is None or y is None:
        return None
    objects = [
        _object(d, left, motions[0], contact + path_left[0], y, velocity=(v_left, 0.0)),
        _object(d, right, motions[1], contact + path_right[0], y, velocity=(v_right, 0.0)),
    ]
    return _scene(d, objects[:: rng.choice((1, -1))], collision=(0, 1))


@functools.cache
def _occluders() -> tuple[str, ...]:
    """Shapes with room to hide a smaller object completely (not the heart or the cross)."""
    return tuple(s for s in vocab.SHAPES if rules.inscribed(s) >= 0.7)


# fmt: off
_PASS_DIRECTIONS: Weights = (
    ("right", 3.0), ("left", 3.0), ("up-right", 1.0), ("up-left", 1.0), ("down-right", 1.0),
    ("down-left", 1.0), ("up", 0.5), ("down", 0.5),
)
# fmt: on


def _pass_behind(d: _Draft) -> SceneSpec | None:
    """A smaller object on layer 1 crosses behind a larger one on layer 0, hidden mid-clip."""
    rng, seconds = d.rng, d.seconds
    drift = rng.random() < 0.4 and not (d.forced and d.forced.motion == "still")
    near = _choose_look(d, "linear" if drift else "still", _occluders(), ("large", "medium"))
    if near is None:
        return None
    room = rules.inscribed(near.shape) * vocab.SIZES[near.size] - HIDE_MARGIN
    fits = [(s, z) for s in vocab.SHAPES for z in vocab.SIZES if _outer(s, z) <= room - 0.01]
    far = _choose_look(d, "linear", [s for s, _ in fits], [z for _, z in fits])
    if far is None or (far.shape, far.size) not in fits:
        return None
    margin = room - _outer(far.shape, far.size)  # how far the passer may stray and stay hidden
    hidden_at = rng.uniform(0.35, 0.65) * seconds
    slowest = 1.05 * MIN_TRAVEL / seconds
    drift_speed = rng.uniform(slowest, max(slowest, 0.15)) if drift else 0.0
    # clear of each other at both ends, hidden for at least 0.1 s in between
    reach = _outer(near.shape, near.size) + _outer(far.shape, far.size) + 0.01
    low = max(slowest, reach / min(hidden_at, seconds - hidden_at)) + drift_speed
    high = min(0.9 * MAX_SPEED, 2 * margin / 0.1) - drift_speed
    if low > high:
        return None
    ux, uy = vocab.DIRECTIONS[str(_pick(rng, _PASS_DIRECTIONS))]
    speed, offset = rng.uniform(low, high), rng.uniform(-0.3, 0.3) * margin
    v_far = (round(speed * ux, 4), round(speed * uy, 4))
    dx, dy = vocab.DIRECTIONS[rng.choice(tuple(vocab.DIRECTIONS))]
    v_near = (round(drift_speed * dx, 4), round(drift_speed * dy, 4))
    near_ext, far_ext = _extents(near, seconds), _extents(far, seconds)
    starts = []  # per axis: both start coordinates, planned around where they meet
    for axis, across in ((0, -uy * offset), (1, ux * offset)):
        near_path = (-v_near[axis] * hidden_at, v_near[axis] * (seconds - hidden_at))
        far_path = (across - v_far[axis] * hidden_at, across + v_far[axis] * (seconds - hidden_at))
        if axis == 0:
            bounds = _x_span(d, near_ext[0]), _x_span(d, far_ext[0])
        else:
            bounds = _y_span(d, *near_ext[1:]), _y_span(d, *far_ext[1:])
        meet = _place(rng, [(*bounds[0], near_path), (*bounds[1], far_path)])
        if meet is None:
            return None
        starts.append((meet + near_path[0], meet + far_path[0]))
    near_motion = "linear" if drift else "still"
    front = _object(d, near, near_motion, starts[0][0], starts[1][0], velocity=v_near)
    back = _object(d, far, "linear", starts[0][1], starts[1][1], velocity=v_far)
    return _scene(d, [front, replace(back, layer=1)][:: rng.choice((1, -1))])


# ---- objects: each builder plans a path that stays in frame ---------------------------------


def _outer(shape: str, size: str) -> float:
    return geometry(shape).outer * vocab.SIZES[size]


def _extents(look: _Look, seconds: float) -> tuple[float, float, float]:
    """The largest half width, extent above and extent below the centre over the clip."""
    geo = geometry(look.shape)
    radius = vocab.SIZES[look.size] * max(1.0, math.exp(look.growth * seconds))
    if look.spin:
        return geo.outer * radius, geo.outer * radius, geo.outer * radius
    return geo.half_width * radius, geo.up * radius, geo.down * radius


def _place(
    rng: random.Random, spans: Sequence[tuple[float, float, Sequence[float]]]
) -> float | None:
    """A coordinate c with low <= c + p <= high for every (low, high, path) and every p in path."""
    low = max(lo - min(path) for lo, _, path in spans)
    high = min(hi - max(path) for _, hi, path in spans)
    return rng.uniform(low, high) if low <= high else None


def _x_span(d: _Draft, half_width: float) -> tuple[float, float]:
    return half_width + _PLACE_MARGIN, d.width - half_width - _PLACE_MARGIN


def _y_span(d: _Draft, up: float, down: float) -> tuple[float, float]:
    return up + _PLACE_MARGIN, d.ground - down - _PLACE_MARGIN


def _stands(d: _Draft, look: _Look) -> bool:
    """Whether a still or sliding object stands on the floor (sometimes, over a floor)."""
    return d.has_floor and not look.spin and not look.growth and d.rng.random() < 0.4


def _object(
    d: _Draft,
    look: _Look,
    motion: str,
    x: float,
    y: float,
    on_floor: bool = False,
    **fields: object,
) -> ObjectSpec:
    # a centre on the floor is rounded up the screen, so the outline never dips into the floor
    y_frac = math.floor(y / d.height * 1e4) / 1e4 if on_floor else round(y / d.height, 4)
    if "velocity" in fields:  # no "-0.0" in the JSON
        fields["velocity"] = tuple(v + 0.0 for v in fields["velocity"])  # type: ignore[union-attr]
    return ObjectSpec(
        shape=look.shape,
        color=look.color,
        size=look.size,
        x=round(x / d.width, 4),
        y=y_frac,
        motion=motion,
        spin=look.spin,
        growth=look.growth,
        **fields,  # type: ignore[arg-type]
    )


def _still(d: _Draft, look: _Look, velocity: tuple[float, float] = (0.0, 0.0)) -> ObjectSpec | None:
    half_width, up, down = _extents(look, d.seconds)
    shift = (velocity[0] - d.pan) * d.seconds  # on screen
    x = _place(d.rng, [(*_x_span(d, half_width), (0.0, shift))])
    on_floor = _stands(d, look)
    y = d.ground - down if on_floor else _place(d.rng, [(*_y_span(d, up, down), (0.0,))])
    if x is None or y is None:
        return None
    return _object(
        d, look, "linear" if any(velocity) else "still", x, y, on_floor, velocity=velocity
    )


def _tracked(d: _Draft, look: _Look) -> ObjectSpec | None:
    """A linear object that moves with the camera, so it stays put on screen."""
    return _still(d, look, velocity=(d.pan, 0.0))


def _linear(d: _Draft, look: _Look) -> ObjectSpec | None:
    ux, uy = vocab.DIRECTIONS[d.rng.choice(tuple(vocab.DIRECTIONS))]
    half_width, up, down = _extents(look, d.seconds)
    (x_low, x_high), (y_low, y_high) = _x_span(d, half_width), _y_span(d, up, down)
    room_x = (x_high - x_low) / abs(ux) if ux else math.inf
    room_y = (y_high - y_low) / abs(uy) if uy else math.inf
    low, high = 1.05 * MIN_TRAVEL / d.seconds, min(0.9 * MAX_SPEED, min(room_x, room_y) / d.seconds)
    if low > high:
        return None
    speed = d.rng.uniform(low, high)
    vx, vy = round(speed * ux, 4), round(speed * uy, 4)
    if uy == 0:  # horizontal motion may slide along the floor
        return _still(d, look, velocity=(vx, vy))
    x = _place(d.rng, [(x_low, x_high, (0.0, (vx - d.pan) * d.seconds))])
    y = _place(d.rng, [(y_low, y_high, (0.0, vy * d.seconds))])
    return None if x is None or y is None else _object(d, look, "linear", x, y, velocity=(vx, vy))


def _bounce(d: _Draft, look: _Look) -> ObjectSpec | None:
    half_width, up, down = _extents(look, d.seconds)
    while True:  # a direction drawn without trigonometry, so it is exact on every platform
        ux, uy = d.rng.uniform(-1, 1), d.rng.uniform(-1, 1)
        norm = math.sqrt(ux * ux + uy * uy)
        if 0.2 < norm <= 1.0:
            break
    speed = d.rng.uniform(0.35, 0.85) / norm
    x = _place(d.rng, [(*_x_span(d, half_width), (0.0,))])
    y = _place(d.rng, [(*_y_span(d, up, down), (0.0,))])
    velocity = (round(speed * ux, 4), round(speed * uy, 4))
    return None if x is None or y is None else _object(d, look, "bounce", x, y, velocity=velocity)


def _fall(d: _Draft, look: _Look) -> ObjectSpec | None:
    half_width, up, down = _extents(look, d.seconds)
    gravity, rest = d.ballistic_gravity(), d.ground - down
    sideways = d.rng.random() < 0.3
    vx = round(d.rng.choice((-1, 1)) * d.rng.uniform(0.08, 0.3), 4) if sideways else 0.0
    # the impact speed sqrt(vx^2 + 2 g drop) stays below MAX_SPEED; the floor is hit by 60%
    impact_limit = ((0.9 * MAX_SPEED) ** 2 - vx * vx) / (2 * gravity)
    high = min(impact_limit, rest - up - _PLACE_MARGIN, 0.5 * gravity * (0.6 * d.seconds) ** 2)
    x = _place(d.rng, [(*_x_span(d, half_width), (0.0, -d.pan * d.seconds))])
    if high < 0.15 or x is None:
        return None
    y = rest - d.rng.uniform(0.15, high)
    restitution = round(d.rng.uniform(0.4, 0.85), 2)
    return _object(d, look, "fall", x, y, velocity=(vx, 0.0), restitution=restitution)


def _throw(d: _Draft, look: _Look) -> ObjectSpec | None:
    half_width, up, down = _extents(look, d.seconds)
    gravity, rest = d.ballistic_gravity(), d.ground - down
    lift = 0.0 if d.rng.random() < 0.6 else d.rng.uniform(0.05, 0.3)  # launch height
    vx = round(d.rng.choice((-1, 1)) * d.rng.uniform(0.1, max(0.12, min(0.4, 1 / d.seconds))), 4)
    vertical_budget = (0.9 * MAX_SPEED) ** 2 - vx * vx - 2 * gravity * lift  # at the floor
    high = min(vertical_budget / (2 * gravity), rest - lift - up - _PLACE_MARGIN)
    x = _place(d.rng, [(*_x_span(d, half_width), (0.0,))])
    if high < 0.12 or x is None:
        return None
    vy = round(-math.sqrt(2 * gravity * d.rng.uniform(0.12, high)), 4)
    restitution = round(d.rng.uniform(0.3, 0.8), 2)
    fields = {"velocity": (vx, vy), "restitution": restitution}
    return _object(d, look, "throw", x, rest - lift, lift == 0, **fields)


def _orbit_plan(
    d: _Draft, half_width: float, up: float, down: float
) -> tuple[float, float, float, float] | None:
    """Radius, angular speed and centre (x, y) of an orbit whose whole circle stays in frame."""
    radius = round(d.rng.uniform(0.1, 0.32), 4)
    low = max(1.1 * MIN_ORBIT_TURN / d.seconds, 0.6)
    high = min(0.95 * MAX_ORBIT_SPEED, 0.9 * MAX_SPEED / radius)
    if low > high:
        return None
    speed = round(d.rng.choice((-1, 1)) * d.rng.uniform(low, high), 3)
    shift = -d.pan * d.seconds
    x_path = (-radius, radius, shift - radius, shift + radius)
    x = _place(d.rng, [(*_x_span(d, half_width), x_path)])
    y = _place(d.rng, [(*_y_span(d, up, down), (-radius, radius))])
    return None if x is None or y is None else (radius, speed, x, y)


def _orbit(
    d: _Draft, look: _Look, plan: tuple[float, ...] | None = None, phase: float | None = None
) -> ObjectSpec | None:
    plan = plan or _orbit_plan(d, *_extents(look, d.seconds))
    if plan is None:
        return None
    radius, speed, x, y = plan
    phase = phase if phase is not None else round(d.rng.uniform(-math.pi, math.pi), 3)
    fields = {"orbit_radius": radius, "orbit_speed": speed, "orbit_phase": phase}
    return _object(d, look, "orbit", x, y, **fields)


_BUILDERS: dict[str, Callable[[_Draft, _Look], ObjectSpec | None]] = {
    "still": _still,
    "linear": _linear,
    "bounce": _bounce,
    "fall": _fall,
    "throw": _throw,
    "orbit": _orbit,
}
