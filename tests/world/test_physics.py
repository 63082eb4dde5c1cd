"""Closed-form motion: every law is checked numerically against its definition (finite
differences, apex heights, conservation laws), and batching and fps change nothing."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from kinetoscope.world import physics, vocab
from kinetoscope.world.physics import VISIBLE_BOUNCE_HEIGHT, pack, simulate
from kinetoscope.world.shapes import contact_distance, geometry
from kinetoscope.world.spec import Background, ObjectSpec, SceneSpec

DT = 1e-3  # seconds between samples of the dense tracks


def _times(seconds: float, dt: float = DT) -> torch.Tensor:
    return torch.arange(round(seconds / dt) + 1, dtype=torch.float64) * dt


def _tracks(scene: SceneSpec, times: torch.Tensor, aspect: float = 1.0) -> physics.Tracks:
    return simulate(pack([scene.validate()], aspect), times)


def _one(obj: ObjectSpec, seconds: float = 4.0, **fields: object) -> SceneSpec:
    return SceneSpec(objects=(obj,), seconds=seconds, **fields)


def _radius(obj: ObjectSpec) -> float:
    return vocab.SIZES[obj.size]


def _ground(obj: ObjectSpec, floor: float = 1.0) -> float:
    """Where the centre is when the outline stands on the floor."""
    return floor - geometry(obj.shape).down * _radius(obj)


# ---- straight lines and walls ----------------------------------------------------------------


def test_still_and_linear_are_exact():
    times = _times(2.0, 0.125)
    still = ObjectSpec(shape="star", color="red", x=0.3, y=0.6)
    moving = ObjectSpec(
        shape="circle", color="blue", x=0.2, y=0.4, motion="linear", velocity=(0.3, -0.1)
    )
    tracks = _tracks(SceneSpec(objects=(still, moving), seconds=2.0), times, aspect=16 / 9)
    width = 16 / 9  # short sides: x is a fraction of the width
    assert torch.equal(tracks.x[0, 0], torch.full_like(times, 0.3 * width))
    assert torch.equal(tracks.y[0, 0], torch.full_like(times, 0.6))
    assert torch.allclose(tracks.x[0, 1], 0.2 * width + 0.3 * times, atol=1e-12, rtol=0)
    assert torch.allclose(tracks.y[0, 1], 0.4 - 0.1 * times, atol=1e-12, rtol=0)
    assert tracks.wall_bounces.tolist() == [[0, 0]]
    assert tracks.floor_bounces.tolist() == [[0, 0]]
    assert tracks.collision_time.tolist() == [math.inf]


def _reversals(u: torch.Tensor) -> int:
    """How often a sampled coordinate changes direction."""
    step = torch.diff(u)
    step = step[step != 0]
    return int((torch.sign(step[1:]) != torch.sign(step[:-1])).sum())


def test_bounce_stays_between_the_walls_at_constant_speed():
    obj = ObjectSpec(
        shape="triangle", color="red", x=0.4, y=0.3, motion="bounce", velocity=(1.3, 0.9)
    )
    scene = _one(obj, seconds=4.0)
    times = _times(4.0)
    tracks = _tracks(scene, times, aspect=16 / 9)
    x, y = tracks.x[0, 0], tracks.y[0, 0]
    geo, r = geometry("triangle"), _radius(obj)
    width = 16 / 9
    # the outline never leaves the frame, and it reaches both walls on both axes
    assert float(x.min()) >= geo.half_width * r - 1e-12
    assert float(x.max()) <= width - geo.half_width * r + 1e-12
    assert float(y.min()) >= geo.up * r - 1e-12
    assert float(y.max()) <= 1 - geo.down * r + 1e-12
    assert float(x.min()) == pytest.approx(geo.half_width * r, abs=2e-3)
    assert float(y.max()) == pytest.approx(1 - geo.down * r, abs=2e-3)
    # away from reflections each axis moves at its own constant speed
    vx, vy = torch.diff(x) / DT, torch.diff(y) / DT
    for v, speed in ((vx, 1.3), (vy, 0.9)):
        steady = (v.abs() - speed).abs() < 1e-6
        assert float(steady.float().mean()) > 0.98  # only the steps across a reflection differ
        assert float(v.abs().max()) <= speed + 1e-6  # a reflection never speeds it up
    # each reflection reverses one axis; the count is what the tracks report
    reflections = _reversals(x) + _reversals(y)
    assert tracks.wall_bounces.tolist() == [[reflections]]
    # closed form: the unfolded path crosses one span per reflection
    span_x = width - 2 * geo.half_width * r
    span_y = 1 - (geo.up + geo.down) * r
    unfolded_x = (0.4 * width + 1.3 * 4 - geo.half_width * r) / span_x
    unfolded_y = (0.3 + 0.9 * 4 - geo.up * r) / span_y
    assert reflections == math.floor(unfolded_x) + math.floor(unfolded_y)


def test_bounce_reflects_off_the_floor_line():
    floor = Background(kind="sky_floor", color="pale blue", color2="gray", floor=0.7)
    obj = ObjectSpec(shape="square", color="red", x=0.5, y=0.3, motion="bounce", velocity=(0, 1))
    tracks = _tracks(_one(obj, seconds=1.0, background=floor), _times(1.0))
    lowest = _ground(obj, floor=0.7)
    assert float(tracks.y.max()) <= lowest + 1e-12
    assert float(tracks.y.max()) == pytest.approx(lowest, abs=1e-3)  # samples 1 ms apart


# ---- gravity ---------------------------------------------------------------------------------


def _falling(restitution: float, y: float = 0.2, vy: float = 0.0, **fields: object):
    return ObjectSpec(
        shape="circle",
        color="red",
        size="small",
        x=0.5,
        y=y,
        motion="fall",
        velocity=(0.0, vy),
        restitution=restitution,
        **fields,
    )


def _apexes(y: torch.Tensor, ground: float) -> list[float]:
    """Heights above the ground of the interior highest points (smallest y) of a track."""
    inner = y[1:-1]
    peaks = (inner < y[:-2]) & (inner <= y[2:])
    return (ground - inner[peaks]).tolist()


def test_fall_accelerates_at_gravity_between_bounces():
    gravity = 1.5
    scene = _one(_falling(0.6), seconds=3.0, gravity=gravity)
    y = _tracks(scene, _times(3.0)).y[0, 0]
    ground = _ground(scene.objects[0])
    accel = (y[2:] - 2 * y[1:-1] + y[:-2]) / DT**2
    # every window of three samples accelerates at g, except the few that hold an impact,
    # where the velocity turns from down to up
    free = (accel - gravity).abs() < 1e-6
    impacts = ~free
    assert bool((accel[impacts] < -100).all())
    assert 1 <= int(impacts.sum()) <= 2 * 4
    # the first impact comes when the closed form says
    first = math.sqrt(2 * (ground - 0.2) / gravity)
    window = int(torch.nonzero(impacts).flatten()[0])  # samples window .. window + 2
    assert window * DT <= first <= (window + 2) * DT


def test_rebounds_lose_restitution_squared_of_their_height_and_come_to_rest():
    e = 0.6
    scene = _one(_falling(e), seconds=8.0)
    times = _times(8.0, 2e-4)
    tracks = _tracks(scene, times)
    y = tracks.y[0, 0]
    ground = _ground(scene.objects[0])
    drop = ground - 0.2
    apexes = _apexes(y, ground)
    # heights e^2k of the drop, measured on the sampled track
    big = [h for h in apexes if h > 1e-3]
    assert len(big) >= 5
    for k, height in enumerate(big, start=1):
        assert height == pytest.approx(drop * e ** (2 * k), rel=1e-3)
    # visible bounces are the rebounds that rise at least VISIBLE_BOUNCE_HEIGHT
    expected = sum(1 for k in range(1, 100) if drop * e ** (2 * k) >= VISIBLE_BOUNCE_HEIGHT)
    assert expected == sum(1 for h in apexes if h >= VISIBLE_BOUNCE_HEIGHT) == 4
    assert tracks.floor_bounces.tolist() == [[expected]]
    # at rest on the floor well before the end: the last second is the ground itself
    assert torch.equal(y[-5000:], torch.full((5000,), ground, dtype=torch.float64))


def test_floor_bounces_count_only_the_rebounds_started_so_far():
    e = 0.6
    scene = _one(_falling(e), seconds=8.0)
    ground = _ground(scene.objects[0])
    drop = ground - 0.2
    first = math.sqrt(2 * drop / scene.gravity)
    flight = 2 * e * math.sqrt(2 * scene.gravity * drop) / scene.gravity  # first rebound
    times = torch.tensor(
        [0.0, first - 0.01, first + 0.01, first + flight - 0.01, first + flight + 0.01, 8.0],
        dtype=torch.float64,
    )
    counts = []
    for t in times.tolist():  # floor_bounces is the count at the last of the given times
        counts.append(_tracks(scene, torch.tensor([0.0, t], dtype=torch.float64)).floor_bounces)
    assert [int(c) for c in counts] == [0, 0, 1, 1, 2, 4]


def test_elastic_rebounds_keep_their_height():
    scene = _one(_falling(1.0, y=0.4), seconds=6.0, gravity=3.0)
    tracks = _tracks(scene, _times(6.0, 5e-4))
    y = tracks.y[0, 0]
    ground = _ground(scene.objects[0])
    apexes = _apexes(y, ground)
    assert len(apexes) >= 4
    assert apexes == pytest.approx([ground - 0.4] * len(apexes), rel=1e-4)
    period = 2 * math.sqrt(2 * (ground - 0.4) / 3.0)
    impacts = math.floor((6.0 - period / 2) / period) + 1
    assert tracks.floor_bounces.tolist() == [[impacts]]


def test_a_dead_ball_stops_on_the_floor():
    scene = _one(_falling(0.0, vy=0.5), seconds=2.0)
    tracks = _tracks(scene, _times(2.0))
    ground = _ground(scene.objects[0])
    y = tracks.y[0, 0]
    assert float(y.max()) == ground
    assert bool((torch.diff(y) >= 0).all())  # never rises again
    assert tracks.floor_bounces.tolist() == [[0]]


def test_throw_reaches_the_analytic_apex_and_reflects_off_the_side_walls():
    gravity, vx, vy = 2.5, 0.8, -1.2
    obj = dataclasses.replace(_falling(0.5, y=0.8, vy=vy), motion="throw", velocity=(vx, vy), x=0.3)
    scene = _one(obj, seconds=3.0, gravity=gravity)
    tracks = _tracks(scene, _times(3.0, 1e-4), aspect=16 / 9)
    y, x = tracks.y[0, 0], tracks.x[0, 0]
    apex = 0.8 - vy * vy / (2 * gravity)
    assert float(y.min()) == pytest.approx(apex, abs=1e-8)
    assert float(torch.argmin(y)) * 1e-4 == pytest.approx(-vy / gravity, abs=1e-4)
    # horizontally it moves at constant speed between the side walls
    r = _radius(obj)
    assert float(x.max()) <= 16 / 9 - r + 1e-12 and float(x.min()) >= r - 1e-12
    assert tracks.wall_bounces.tolist() == [[_reversals(x)]] and _reversals(x) >= 1


# ---- orbit, spin, growth, camera ------------------------------------------------------------


def test_orbit_radius_speed_and_clockwise_sense():
    obj = ObjectSpec(
        shape="hexagon",
        color="green",
        x=0.5,
        y=0.5,
        motion="orbit",
        orbit_radius=0.25,
        orbit_phase=0.0,
        orbit_speed=1.5,
    )
    times = _times(2.0)
    tracks = _tracks(_one(obj, seconds=2.0), times)
    dx, dy = tracks.x[0, 0] - 0.5, tracks.y[0, 0] - 0.5
    assert torch.allclose(torch.hypot(dx, dy), torch.full_like(dx, 0.25), atol=1e-12)
    angle = torch.atan2(dy, dx)  # y down: growing angle runs clockwise on screen
    step = torch.remainder(torch.diff(angle) + math.pi, 2 * math.pi) - math.pi
    assert torch.allclose(step / DT, torch.full_like(step, 1.5), atol=1e-8)
    # a quarter turn after starting on the right it is straight below the centre
    quarter = round(math.pi / 2 / 1.5 / DT)
    assert float(dy[quarter]) == pytest.approx(0.25, abs=1e-3)
    assert abs(float(dx[quarter])) < 1e-3
    # a negative speed goes the other way: up first
    back = _tracks(_one(dataclasses.replace(obj, orbit_speed=-1.5), seconds=2.0), times)
    assert float(back.y[0, 0, quarter]) == pytest.approx(0.25, abs=1e-3)


def test_spin_and_growth():
    obj = ObjectSpec(shape="star", color="red", spin=-2.5, growth=0.3)
    times = _times(2.0, 0.25)
    tracks = _tracks(_one(obj, seconds=2.0), times)
    assert torch.allclose(tracks.angle[0, 0], -2.5 * times, atol=1e-12, rtol=0)
    assert torch.allclose(tracks.scale[0, 0], torch.exp(0.3 * times), atol=1e-12, rtol=0)


def test_camera_pan_shifts_screen_x():
    obj = ObjectSpec(shape="circle", color="red", motion="linear", velocity=(0.2, 0.1))
    times = _times(2.0, 0.125)
    fixed = _tracks(_one(obj, seconds=2.0), times)
    panned = _tracks(_one(obj, seconds=2.0, camera_pan=0.35), times)
    assert torch.allclose(panned.camera[0], 0.35 * times, atol=1e-12)
    assert torch.allclose(fixed.x - panned.x, (0.35 * times).expand_as(fixed.x), atol=1e-12)
    assert torch.equal(fixed.y, panned.y)


# ---- collisions ------------------------------------------------------------------------------


def _collision_scene(left: ObjectSpec, right: ObjectSpec) -> SceneSpec:
    return SceneSpec(objects=(left, right), seconds=3.0, collision=(0, 1))


def _velocities(x: torch.Tensor, index: int) -> float:
    return float(x[index + 1] - x[index]) / DT


def test_collision_conserves_momentum_and_energy_and_touches_at_contact():
    left = ObjectSpec(
        shape="triangle", color="red", size="small", x=0.2, motion="linear", velocity=(0.5, 0)
    )
    right = ObjectSpec(
        shape="square", color="blue", size="large", x=0.8, motion="linear", velocity=(-0.3, 0)
    )
    scene = _collision_scene(left, right)
    reach = contact_distance("triangle", 0.065, "square", 0.135)
    when = (0.6 - reach) / (0.5 + 0.3)
    times = _times(3.0)
    tracks = _tracks(scene, times)
    assert float(tracks.collision_time[0]) == pytest.approx(when, abs=1e-12)
    xa, xb = tracks.x[0, 0], tracks.x[0, 1]
    # momentum and kinetic energy before and after, from finite differences
    ma, mb = 0.065**2, 0.135**2  # masses go with area
    before, after = 10, len(times) - 10
    va0, vb0 = _velocities(xa, before), _velocities(xb, before)
    va1, vb1 = _velocities(xa, after), _velocities(xb, after)
    assert (va0, vb0) == pytest.approx((0.5, -0.3), abs=1e-9)
    assert ma * va1 + mb * vb1 == pytest.approx(ma * va0 + mb * vb0, abs=1e-12)
    assert ma * va1**2 + mb * vb1**2 == pytest.approx(ma * va0**2 + mb * vb0**2, abs=1e-12)
    assert va1 < 0 < vb1 or (va1 < vb1)  # they separate
    # exactly at contact the centres are the contact distance apart; never closer
    at = _tracks(scene, torch.tensor([0.0, when], dtype=torch.float64))
    assert float(at.x[0, 1, 1] - at.x[0, 0, 1]) == pytest.approx(reach, abs=1e-12)
    assert float((xb - xa).min()) >= reach - 1e-12


def test_equal_masses_swap_velocities_with_a_still_target():
    mover = ObjectSpec(
        shape="circle", color="red", x=0.7, motion="linear", velocity=(-0.4, 0.0), layer=1
    )
    target = ObjectSpec(shape="circle", color="blue", x=0.3, motion="still", layer=1)
    scene = _collision_scene(mover, target)
    tracks = _tracks(scene, _times(3.0))
    when = (0.4 - 2 * 0.095) / 0.4
    assert float(tracks.collision_time[0]) == pytest.approx(when, rel=1e-4)
    end = len(_times(3.0)) - 2
    assert _velocities(tracks.x[0, 0], end) == pytest.approx(0.0, abs=1e-9)
    assert _velocities(tracks.x[0, 1], end) == pytest.approx(-0.4, abs=1e-9)
    assert _velocities(tracks.x[0, 1], 5) == 0.0  # still before it is hit


def test_no_collision_when_the_objects_never_meet_in_time():
    left = ObjectSpec(shape="circle", color="red", x=0.1, motion="linear", velocity=(0.01, 0))
    right = ObjectSpec(shape="circle", color="blue", x=0.9, motion="still")
    scene = _collision_scene(left, right)
    tracks = _tracks(scene, _times(3.0, 0.5))
    when = (0.8 - 2 * 0.095) / 0.01  # long after the clip ends
    assert float(tracks.collision_time[0]) == pytest.approx(when, rel=1e-4)
    assert torch.allclose(tracks.x[0, 0], 0.1 + 0.01 * _times(3.0, 0.5), atol=1e-12)


# ---- batching and fps ------------------------------------------------------------------------


def _varied_scenes() -> list[SceneSpec]:
    floor = Background(kind="sky_floor", color="peach", color2="tan", floor=0.75)
    return [
        _one(_falling(0.7), seconds=4.0, gravity=1.2),
        SceneSpec(
            objects=(
                ObjectSpec(shape="star", color="red", x=0.2, motion="linear", velocity=(0.4, 0)),
                ObjectSpec(shape="cross", color="blue", x=0.8, motion="still"),
                ObjectSpec(shape="heart", color="pink", motion="bounce", velocity=(0.7, -0.4)),
                ObjectSpec(
                    shape="diamond",
                    color="cyan",
                    motion="orbit",
                    orbit_radius=0.2,
                    orbit_speed=-1.0,
                    spin=1.0,
                    growth=0.1,
                ),
            ),
            background=floor,
            camera_pan=0.1,
            collision=(0, 1),
        ),
        _one(
            dataclasses.replace(_falling(0.4, y=0.6, vy=-1.0), motion="throw"),
            background=floor,
        ),
    ]


def _per_scene(tracks: physics.Tracks, index: int, count: int) -> dict[str, torch.Tensor]:
    return {
        "x": tracks.x[index, :count],
        "y": tracks.y[index, :count],
        "angle": tracks.angle[index, :count],
        "scale": tracks.scale[index, :count],
        "camera": tracks.camera[index],
        "floor_bounces": tracks.floor_bounces[index, :count],
        "wall_bounces": tracks.wall_bounces[index, :count],
        "collision_time": tracks.collision_time[index],
    }


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_a_batch_simulates_each_scene_as_if_alone():
    scenes = _varied_scenes()
    times = _times(4.0, 1 / 16)
    batched = simulate(pack(scenes, 16 / 9), times)
    assert batched.x.shape == (3, 4, len(times))
    for i, scene in enumerate(scenes):
        alone = simulate(pack([scene], 16 / 9), times)
        count = len(scene.objects)
        assert alone.x.shape == (1, count, len(times))
        _assert_same(_per_scene(alone, 0, count), _per_scene(batched, i, count))


def test_padding_slots_are_inactive():
    packed = pack(_varied_scenes(), 1.0)
    assert packed.active.tolist() == [
        [True, False, False, False],
        [True, True, True, True],
        [True, False, False, False],
    ]
    assert packed.collision.tolist() == [[-1, -1], [0, 1], [-1, -1]]
    assert packed.contact[1] > 0 and packed.contact[0] == packed.contact[2] == 0


@pytest.mark.parametrize("aspect", [1.0, 16 / 9, 9 / 16])
def test_physics_does_not_depend_on_fps(aspect):
    scenes = _varied_scenes()
    packed = pack(scenes, aspect)
    at16 = simulate(packed, torch.arange(65, dtype=torch.float64) / 16)
    at24 = simulate(packed, torch.arange(97, dtype=torch.float64) / 24)
    # times k / 8 are shared: frame 2k at 16 fps and frame 3k at 24 fps
    for name in ("x", "y", "angle", "scale"):
        a, b = getattr(at16, name)[..., ::2], getattr(at24, name)[..., ::3]
        assert torch.equal(a, b), name
    assert torch.equal(at16.floor_bounces, at24.floor_bounces)
    assert torch.equal(at16.wall_bounces, at24.wall_bounces)
    assert torch.equal(at16.collision_time, at24.collision_time)


def test_world_size():
    assert physics.world_size(1.0) == (1.0, 1.0)
    assert physics.world_size(2.0) == (2.0, 1.0)
    assert physics.world_size(0.5) == (1.0, 2.0)
