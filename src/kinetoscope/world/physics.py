"""Closed-form motion of physics-world objects, vectorised over a batch of scenes.

Every motion is an exact function of time, so a clip sampled at any fps shows the same
continuous motion, and the captions and the judge can ask the same laws where an object is:

    still    x(t) = x0
    linear   x(t) = x0 + v t
    bounce   each axis folds x0 + v t between the walls (a triangle wave: perfect reflection)
    fall     free flight under gravity g until the floor, then rebounds that keep `restitution`
    throw    of the speed each time; the flights k = 1, 2, ... last tau_1 e^(k-1), so the bounce
             in progress at time t follows from a logarithm, without stepping
    orbit    centre + R (cos(phase + w t), sin(phase + w t))
    collision  two objects on one horizontal line exchange momentum elastically when their
             outlines meet (1D, masses proportional to area; the contact distance is the
             largest sum of the two half-widths at any height both outlines reach)

Positions are in short sides from the frame's top-left corner (y down). Walls are the frame's
edges at t = 0; the camera pan shifts what is on screen, not the world.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from kinetoscope.world import vocab
from kinetoscope.world.shapes import contact_distance, geometry
from kinetoscope.world.spec import SceneSpec

MOTION_CODE = {name: i for i, name in enumerate(vocab.MOTIONS)}
SHAPE_CODE = {name: i for i, name in enumerate(vocab.SHAPES)}
VISIBLE_BOUNCE_HEIGHT = 0.01  # short sides: lower rebounds do not count as bounces


def world_size(aspect: float) -> tuple[float, float]:
    """Frame width and height in short sides for an aspect ratio (width / height)."""
    return (aspect, 1.0) if aspect >= 1 else (1.0, 1.0 / aspect)


@dataclass
class PackedScenes:
    """A batch of scenes as tensors. Objects are padded to N slots; `active` marks real ones.

    Per scene (B,): gravity, pan, floor (y of the floor surface), seconds.
    Per object (B, N): codes, start, velocity and the other motion parameters, in world units.
    """

    width: float
    height: float
    gravity: Tensor
    pan: Tensor
    floor: Tensor
    seconds: Tensor
    collision: Tensor  # (B, 2) object indices, -1 where a scene has no collision
    contact: Tensor  # (B,) centre distance at which the colliding pair touches
    active: Tensor
    motion: Tensor
    shape: Tensor
    layer: Tensor
    radius: Tensor
    half_width: Tensor
    up: Tensor
    down: Tensor
    x0: Tensor
    y0: Tensor
    vx: Tensor
    vy: Tensor
    restitution: Tensor
    orbit_radius: Tensor
    orbit_phase: Tensor
    orbit_speed: Tensor
    spin: Tensor
    growth: Tensor
    color: Tensor  # (B, N, 3) sRGB 0-255

    @property
    def batch(self) -> int:
        return self.active.shape[0]

    @property
    def slots(self) -> int:
        return self.active.shape[1]


def pack(
    scenes: Sequence[SceneSpec], aspect: float, device: torch.device | str = "cpu"
) -> PackedScenes:
    """Turn scene specs into batched tensors for a frame of the given aspect (width / height)."""
    width, height = world_size(aspect)
    slots = max(len(s.objects) for s in scenes)
    rows: dict[str, list[list[float]]] = {name: [] for name in _OBJECT_FIELDS}
    for scene in scenes:
        padding = slots - len(scene.objects)
        values = [_object_values(obj, width, height) for obj in scene.objects]
        values += [_object_values(None, width, height)] * padding
        for name in _OBJECT_FIELDS:
            rows[name].append([v[name] for v in values])

    def tensor(data: object, dtype: torch.dtype = torch.float64) -> Tensor:
        return torch.tensor(data, dtype=dtype, device=device)

    colors = [
        [list(vocab.COLORS[o.color]) for o in s.objects] + [[0, 0, 0]] * (slots - len(s.objects))
        for s in scenes
    ]
    return PackedScenes(
        width=width,
        height=height,
        gravity=tensor([s.gravity for s in scenes]),
        pan=tensor([s.camera_pan for s in scenes]),
        floor=tensor([s.floor_y * height for s in scenes]),
        seconds=tensor([s.seconds for s in scenes]),
        collision=tensor([list(s.collision or (-1, -1)) for s in scenes], torch.long),
        contact=tensor([_contact(s) for s in scenes]),
        active=tensor([[i < len(s.objects) for i in range(slots)] for s in scenes], torch.bool),
        motion=tensor(rows["motion"], torch.long),
        shape=tensor(rows["shape"], torch.long),
        layer=tensor(rows["layer"], torch.long),
        color=tensor(colors, torch.float32),
        **{name: tensor(rows[name]) for name in _OBJECT_FIELDS if name not in _INT_FIELDS},
    )


def _contact(scene: SceneSpec) -> float:
    """Centre distance at which a scene's colliding pair touches (0 without a collision)."""
    if scene.collision is None:
        return 0.0
    a, b = (scene.objects[i] for i in scene.collision)
    return contact_distance(a.shape, vocab.SIZES[a.size], b.shape, vocab.SIZES[b.size])


_INT_FIELDS = ("motion", "shape", "layer")
_OBJECT_FIELDS = (
    *_INT_FIELDS,
    "radius",
    "half_width",
    "up",
    "down",
    "x0",
    "y0",
    "vx",
    "vy",
    "restitution",
    "orbit_radius",
    "orbit_phase",
    "orbit_speed",
    "spin",
    "growth",
)


def _object_values(obj: object, width: float, height: float) -> dict[str, float]:
    if obj is None:  # an empty slot: a still, invisible dot
        values = dict.fromkeys(_OBJECT_FIELDS, 0.0)
        values["radius"] = 1e-3
        return values
    geo = geometry(obj.shape)
    radius = vocab.SIZES[obj.size]
    return {
        "motion": MOTION_CODE[obj.motion],
        "shape": SHAPE_CODE[obj.shape],
        "layer": obj.layer,
        "radius": radius,
        "half_width": geo.half_width * radius,
        "up": geo.up * radius,
        "down": geo.down * radius,
        "x0": obj.x * width,
        "y0": obj.y * height,
        "vx": obj.velocity[0],
        "vy": obj.velocity[1],
        "restitution": obj.restitution,
        "orbit_radius": obj.orbit_radius,
        "orbit_phase": obj.orbit_phase,
        "orbit_speed": obj.orbit_speed,
        "spin": obj.spin,
        "growth": obj.growth,
    }


@dataclass
class Tracks:
    """Object states at each time, (B, N, T); positions on screen in short sides."""

    x: Tensor
    y: Tensor
    angle: Tensor  # radians, clockwise on screen
    scale: Tensor  # multiplies the radius
    camera: Tensor  # (B, T) camera offset in short sides (screen x = world x - camera)
    floor_bounces: Tensor  # (B, N) visible floor bounces by the last time
    wall_bounces: Tensor  # (B, N) reflections off the walls by the last time
    collision_time: Tensor  # (B,) seconds, +inf where nothing collides


def simulate(packed: PackedScenes, times: Tensor) -> Tracks:
    """Where every object is at each time in `times` (T,) seconds."""
    t = times.to(packed.x0)[None, None, :]  # (1, 1, T)
    p = packed
    # 1. the translational motions, each in closed form; picked per object by its motion code
    left, right = p.half_width, p.width - p.half_width  # (B, N) centre limits between the walls
    top, bottom = p.up, p.floor[:, None] - p.down
    lin_x, lin_y = _linear(p.x0, p.vx, t), _linear(p.y0, p.vy, t)
    fold_x, walls_x = _fold(lin_x, left, right)
    fold_y, walls_y = _fold(lin_y, top, bottom)
    fall_y, floor_hits = _ballistic(p.y0, p.vy, p.gravity[:, None], bottom, p.restitution, t)
    orbit_angle = p.orbit_phase[..., None] + p.orbit_speed[..., None] * t
    orbit_x = p.x0[..., None] + p.orbit_radius[..., None] * torch.cos(orbit_angle)
    orbit_y = p.y0[..., None] + p.orbit_radius[..., None] * torch.sin(orbit_angle)
    still_x, still_y = p.x0[..., None].expand_as(lin_x), p.y0[..., None].expand_as(lin_y)

    code = p.motion[..., None]
    is_ballistic = (code == MOTION_CODE["fall"]) | (code == MOTION_CODE["throw"])
    x = _select(
        code,
        {"still": still_x, "linear": lin_x, "bounce": fold_x, "orbit": orbit_x},
        default=fold_x,  # fall and throw reflect off the side walls
    )
    y = _select(
        code,
        {"still": still_y, "linear": lin_y, "bounce": fold_y, "orbit": orbit_y},
        default=fall_y,
    )
    # 2. a head-on collision replaces the two objects' x
    collision_time = _apply_collision(p, x, t)
    # 3. spin, growth and the camera
    angle = p.spin[..., None] * t
    scale = torch.exp(p.growth[..., None] * t)
    camera = p.pan[:, None] * t[0]  # (B, T)
    bounce_code = code == MOTION_CODE["bounce"]
    wall_bounces = torch.where(
        bounce_code, walls_x + walls_y, torch.where(is_ballistic, walls_x, 0)
    )
    floor_bounces = torch.where(is_ballistic, floor_hits, 0)
    return Tracks(
        x=x - camera[:, None, :],
        y=y,
        angle=angle.expand_as(x),
        scale=scale.expand_as(x),
        camera=camera,
        floor_bounces=floor_bounces[..., -1],
        wall_bounces=wall_bounces[..., -1],
        collision_time=collision_time,
    )


def _linear(start: Tensor, velocity: Tensor, t: Tensor) -> Tensor:
    return start[..., None] + velocity[..., None] * t


def _select(code: Tensor, options: dict[str, Tensor], default: Tensor) -> Tensor:
    out = default
    for name, value in options.items():
        out = torch.where(code == MOTION_CODE[name], value, out)
    return out


def _fold(u: Tensor, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    """Reflect free positions u (B, N, T) into [lo, hi] (B, N); also count the reflections."""
    lo, hi = lo[..., None], hi[..., None]
    span = (hi - lo).clamp(min=1e-9)
    phase = (u - lo) / span  # in spans; every whole span crossed is one reflection
    wrapped = torch.remainder(phase, 2.0)
    folded = lo + span * torch.where(wrapped <= 1.0, wrapped, 2.0 - wrapped)
    start = phase[..., :1]
    reflections = (torch.floor(phase) - torch.floor(start)).abs()
    return folded, reflections.long()


def _ballistic(
    y0: Tensor, vy: Tensor, gravity: Tensor, ground: Tensor, restitution: Tensor, t: Tensor
) -> tuple[Tensor, Tensor]:
    """Height under gravity with rebounds on the ground at y = ground (y down).

    Returns y (B, N, T) and the number of visible rebounds started by each time (B, N, T).
    """
    g = gravity.clamp(min=1e-9)[..., None]
    y0, vy, ground = y0[..., None], vy[..., None], ground[..., None]
    e = restitution[..., None]
    drop = (ground - y0).clamp(min=0.0)
    # first impact: y0 + vy t + g t^2 / 2 = ground
    first = (-vy + torch.sqrt(vy * vy + 2 * g * drop)) / g
    impact = vy + g * first  # downward speed at the first impact
    flight = 2 * e * impact / g  # duration of the first rebound flight
    since = (t - first).clamp(min=0.0)
    # index k (0-based) of the rebound flight in progress, and when it started
    elastic = e > 1 - 1e-6
    e_safe = e.clamp(1e-6, 1 - 1e-6)
    remaining = 1 - since * (1 - e_safe) / flight.clamp(min=1e-12)
    at_rest = (remaining <= 0) | (e < 1e-6)
    k_inelastic = torch.floor(torch.log(remaining.clamp(min=1e-300)) / torch.log(e_safe))
    k_elastic = torch.floor(since / flight.clamp(min=1e-12))
    k = torch.where(elastic, k_elastic, k_inelastic).clamp(min=0.0, max=1e6)
    started = torch.where(
        elastic, k * flight, flight * (1 - e_safe**k) / (1 - e_safe)
    )  # start of flight k, after the first impact
    speed = impact * torch.where(elastic, torch.ones_like(k), e_safe**k) * e  # upward speed
    s = since - started
    rebound_y = ground - speed * s + 0.5 * g * s * s
    free_y = y0 + vy * t + 0.5 * g * t * t
    y = torch.where(t < first, free_y, torch.where(at_rest, ground, rebound_y))
    y = torch.minimum(y, ground.expand_as(y))
    # visible rebounds: flights that rise at least VISIBLE_BOUNCE_HEIGHT
    min_speed = math.sqrt(2 * VISIBLE_BOUNCE_HEIGHT) * torch.sqrt(g)
    visible = torch.where(
        elastic | (e * impact >= min_speed),
        torch.where(
            elastic,
            torch.full_like(e, 1e6),
            1
            + torch.floor(torch.log(min_speed / (e * impact).clamp(min=1e-12)) / torch.log(e_safe)),
        ),
        torch.zeros_like(e),
    )
    started_flights = torch.where(t >= first, torch.where(at_rest, visible, k + 1), 0.0)
    hits = torch.minimum(started_flights, visible)
    return y, hits.long()


def _apply_collision(p: PackedScenes, x: Tensor, t: Tensor) -> Tensor:
    """Overwrite x (B, N, T) for colliding pairs; return the collision times (B,)."""
    batch = torch.arange(p.batch, device=x.device)
    has = p.collision[:, 0] >= 0
    ia, ib = p.collision[:, 0].clamp(min=0), p.collision[:, 1].clamp(min=0)
    xa, xb = p.x0[batch, ia], p.x0[batch, ib]
    still = MOTION_CODE["still"]
    va = torch.where(p.motion[batch, ia] == still, 0.0, p.vx[batch, ia])
    vb = torch.where(p.motion[batch, ib] == still, 0.0, p.vx[batch, ib])
    # contact when the centres are as far apart as the outlines' widest joint reach
    sign = torch.where(xa < xb, 1.0, -1.0)  # +1 when a is on the left
    reach = p.contact
    closing = (va - vb) * sign
    gap = (xb - xa) * sign - reach
    when = torch.where(
        has & (closing > 0), (gap / closing.clamp(min=1e-12)).clamp(min=0.0), math.inf
    )
    ma, mb = p.radius[batch, ia] ** 2, p.radius[batch, ib] ** 2
    va_after = ((ma - mb) * va + 2 * mb * vb) / (ma + mb)
    vb_after = ((mb - ma) * vb + 2 * ma * va) / (ma + mb)
    tt = t[0]  # (1, T)
    before = tt < when[:, None]
    dt_after = (tt - when[:, None]).clamp(min=0.0)
    finite_when = torch.where(torch.isfinite(when), when, 0.0)[:, None]
    path_a = torch.where(
        before,
        xa[:, None] + va[:, None] * tt,
        xa[:, None] + va[:, None] * finite_when + va_after[:, None] * dt_after,
    )
    path_b = torch.where(
        before,
        xb[:, None] + vb[:, None] * tt,
        xb[:, None] + vb[:, None] * finite_when + vb_after[:, None] * dt_after,
    )
    rows = batch[has]
    x[rows, ia[has]] = path_a[has]
    x[rows, ib[has]] = path_b[has]
    return when
