"""The scene sampler: determinism, JSON, coverage of the vocabulary, and every scene rule,
rechecked here with the physics independently of `kinetoscope.world.rules`."""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from kinetoscope.errors import SpecError
from kinetoscope.world import physics, vocab
from kinetoscope.world.rules import passes_behind
from kinetoscope.world.sampler import (
    DEFAULT,
    DEFAULT_HELD_OUT,
    SAMPLER_PRESETS,
    SCENARIO_KINDS,
    HeldOut,
    SampledScene,
    SamplerConfig,
    is_held_out,
    sample,
    sample_held_out_scene,
    sample_scene,
    sampler_preset,
)
from kinetoscope.world.shapes import geometry, shape_sdf
from kinetoscope.world.spec import SceneSpec

SEEDS = range(300)
ASPECTS = (1.0, 16 / 9, 9 / 16)


@functools.cache
def _draws(aspect: float) -> list[SampledScene]:
    return [sample(seed, aspect) for seed in SEEDS]


@pytest.fixture(scope="module", params=ASPECTS, ids=("1:1", "16:9", "9:16"))
def drawn(request) -> tuple[float, list[SampledScene]]:
    """(aspect, 300 sampled scenes with their kinds), drawn once per aspect."""
    return request.param, _draws(request.param)


@pytest.fixture(scope="module")
def square() -> list[SampledScene]:
    """The 300 scenes at aspect 1, where the structural properties are checked."""
    return _draws(1.0)


# ---- determinism and JSON ------------------------------------------------------------------


def test_same_seed_same_scene_and_different_seeds_differ(square):
    for seed in (0, 1, 57):
        assert sample_scene(seed).to_json() == square[seed].scene.to_json()
    assert sample_scene(3, 16 / 9).to_json() == sample_scene(3, 16 / 9).to_json()
    assert len({item.scene.to_json() for item in square}) == len(square)


def test_seconds_and_aspect_are_respected(square):
    assert sample_scene(5, seconds=2.5).seconds == 2.5
    assert {item.scene.seconds for item in square[:40]} == set(DEFAULT.seconds)


def test_json_round_trip(drawn):
    _, items = drawn
    for item in items[:100]:
        assert SceneSpec.from_json(item.scene.to_json()) == item.scene
        assert not re.search(r"-0\.0\b", item.scene.to_json())  # no negative zeros


# ---- coverage of the vocabulary -----------------------------------------------------------


def test_every_kind_shape_colour_size_background_and_motion_appears(square):
    objects = [obj for item in square for obj in item.scene.objects]
    assert {item.kind for item in square} == set(SCENARIO_KINDS)
    assert {obj.shape for obj in objects} == set(vocab.SHAPES)
    assert {obj.color for obj in objects} == set(vocab.OBJECT_COLORS)
    assert {obj.size for obj in objects} == set(vocab.SIZES)
    assert {obj.motion for obj in objects} == set(vocab.MOTIONS)
    assert {item.scene.background.kind for item in square} == set(vocab.BACKGROUNDS)
    assert {len(item.scene.objects) for item in square} == {1, 2, 3}
    directions = {
        vocab.direction_name(obj.velocity)
        for obj in objects
        if obj.motion == "linear" and obj.velocity != (0.0, 0.0)
    }
    assert set(vocab.DIRECTIONS) <= directions
    assert any(obj.spin > 0 for obj in objects) and any(obj.spin < 0 for obj in objects)
    assert any(obj.growth > 0 for obj in objects) and any(obj.growth < 0 for obj in objects)
    orbits = [obj.orbit_speed for obj in objects if obj.motion == "orbit"]
    assert min(orbits) < 0 < max(orbits)
    collisions = [item.scene for item in square if item.kind == "collision"]
    pairs = {frozenset(s.objects[i].shape for i in s.collision) for s in collisions}
    assert any(len(p) == 2 for p in pairs)  # different shapes collide, not only twins
    assert any({"triangle", "star"} & set(p) for p in pairs)


def test_kind_frequencies_follow_the_weights(square):
    counts = Counter(item.kind for item in square)
    weights = dict(DEFAULT.kinds)
    total = sum(weights.values())
    expected = np.array([weights[k] / total * len(square) for k in weights])
    observed = np.array([counts[k] for k in weights])
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    dof = torch.tensor((len(weights) - 1) / 2, dtype=torch.float64)
    p_value = float(torch.special.gammaincc(dof, torch.tensor(chi2 / 2, dtype=torch.float64)))
    assert p_value > 1e-3, (p_value, counts)


# ---- the rules, checked with the physics ---------------------------------------------------


def _times(seconds: float) -> torch.Tensor:
    times = torch.arange(0, seconds, 1 / 32, dtype=torch.float64)
    return torch.cat([times, torch.tensor([seconds], dtype=torch.float64)])


@dataclass
class _Seen:
    """One scene's physics at 32 samples per second: (N, T) arrays, on screen."""

    times: np.ndarray
    x: np.ndarray
    y: np.ndarray
    world_x: np.ndarray
    scale: np.ndarray
    wall_bounces: np.ndarray
    floor_bounces: np.ndarray
    collision_time: float


def _simulate(scenes: list[SceneSpec], aspect: float) -> list[_Seen]:
    """The physics of every scene, one batch per duration."""
    seen: dict[int, _Seen] = {}
    for seconds in {s.seconds for s in scenes}:
        rows = [i for i, s in enumerate(scenes) if s.seconds == seconds]
        times = _times(seconds)
        tracks = physics.simulate(physics.pack([scenes[i] for i in rows], aspect), times)
        for row, i in enumerate(rows):
            n = len(scenes[i].objects)
            x = tracks.x[row, :n].numpy()
            seen[i] = _Seen(
                times=times.numpy(),
                x=x,
                y=tracks.y[row, :n].numpy(),
                world_x=x + tracks.camera[row].numpy(),
                scale=tracks.scale[row, :n].numpy(),
                wall_bounces=tracks.wall_bounces[row, :n].numpy(),
                floor_bounces=tracks.floor_bounces[row, :n].numpy(),
                collision_time=float(tracks.collision_time[row]),
            )
    return [seen[i] for i in range(len(scenes))]


def _overlap_area(d: np.ndarray, r1: float | np.ndarray, r2: float | np.ndarray) -> np.ndarray:
    """Area shared by two discs, from the two circular segments (a second formula)."""
    d = np.maximum(d, 1e-12)
    a1 = np.clip((d * d - r2 * r2 + r1 * r1) / (2 * d), -r1, r1)  # centre 1 to the chord
    a2 = np.clip(d - a1, -r2, r2)
    seg1 = r1 * r1 * np.arccos(a1 / r1) - a1 * np.sqrt(np.maximum(r1 * r1 - a1 * a1, 0))
    seg2 = r2 * r2 * np.arccos(a2 / r2) - a2 * np.sqrt(np.maximum(r2 * r2 - a2 * a2, 0))
    small = np.pi * np.minimum(r1, r2) ** 2
    return np.where(d >= r1 + r2, 0.0, np.where(d <= np.abs(r1 - r2), small, seg1 + seg2))


@functools.cache
def _outline_points(shape: str, step: float = 0.02) -> tuple[torch.Tensor, torch.Tensor]:
    """Points within `step` of the outline of a shape of radius 1 (maths axes)."""
    grid = torch.arange(-1.7, 1.7 + 1e-9, step, dtype=torch.float64)
    u, v = torch.meshgrid(grid, grid, indexing="xy")
    edge = shape_sdf(shape, u, v).abs() <= step
    return u[edge], v[edge]


def _fully_hidden(scene: SceneSpec, far: int, near: int, x, y) -> torch.Tensor:
    """Exact test on the shapes: whether the outline of `far` lies inside `near`, (T,).

    Every shape is simply connected, so an outline inside means the whole shape inside."""
    a, b = scene.objects[far], scene.objects[near]
    u, v = _outline_points(a.shape)
    ra, rb = vocab.SIZES[a.size], vocab.SIZES[b.size]
    px = x[far, :, None] + u * ra  # (T, P) screen positions of the outline points
    py = y[far, :, None] - v * ra
    local_u, local_v = (px - x[near, :, None]) / rb, -(py - y[near, :, None]) / rb
    return (shape_sdf(b.shape, local_u, local_v) * rb <= -0.002).all(dim=1)


def _scene_problems(scene: SceneSpec, kind: str, aspect: float, seen: _Seen) -> list[str]:
    width, height = physics.world_size(aspect)
    floor = scene.background.kind == "sky_floor"
    x, y, scale = seen.x, seen.y, seen.scale
    problems = _colour_problems(scene)
    radius = np.array([vocab.SIZES[o.size] for o in scene.objects])[:, None] * scale
    for i, obj in enumerate(scene.objects):
        g = geometry(obj.shape)
        hw, up, down = (g.outer,) * 3 if obj.spin else (g.half_width, g.up, g.down)
        side = 0.0 if obj.motion in ("bounce", "fall", "throw") else 0.01
        gaps = {
            "left": (x[i] - hw * radius[i]).min() - side,
            "right": (width - x[i] - hw * radius[i]).min() - side,
            "top": (y[i] - up * radius[i]).min() - (0.0 if obj.motion == "bounce" else 0.01),
        }
        if floor:
            gaps["floor"] = (scene.floor_y * height - y[i] - down * radius[i]).min()
        else:
            gaps["bottom"] = (height - y[i] - down * radius[i]).min() - side
        problems += [f"object {i} out at the {k}" for k, gap in gaps.items() if gap < -1e-9]
        step = np.hypot(np.diff(x[i]), np.diff(y[i])) / np.diff(seen.times)
        if step.max() > 0.96 + 1e-6:
            problems.append(f"object {i} too fast: {step.max():.3f}")
        problems += _motion_problems(scene, seen, i)
    if scene.camera_pan and (abs(scene.camera_pan) * scene.seconds < 0.15 or not floor):
        problems.append("camera pan too small or without a floor")
    problems += _overlap_problems(scene, kind, x, y, radius)
    return problems


def _colour_problems(scene: SceneSpec) -> list[str]:
    backdrop = [scene.background.color] + [scene.background.color2] * (
        scene.background.color2 is not None
    )
    colors = [obj.color for obj in scene.objects]
    problems = ["repeated colour"] if len(set(colors)) != len(colors) else []
    for c in colors:
        for b in backdrop:
            if vocab.color_distance(vocab.COLORS[c], vocab.COLORS[b]) < 150:
                problems.append(f"{c} on {b}")
    return problems


def _motion_problems(scene: SceneSpec, seen: _Seen, i: int) -> list[str]:
    obj, problems = scene.objects[i], []
    path = np.hypot(np.diff(seen.world_x[i]), np.diff(seen.y[i])).sum()
    if obj.motion in ("linear", "bounce", "fall", "throw") and path < 0.2:
        problems.append(f"object {i} barely moves: {path:.3f}")
    if obj.motion == "orbit":
        turn = abs(obj.orbit_speed) * scene.seconds
        if turn < math.pi / 2 - 1e-9 or abs(obj.orbit_speed) > 3:
            problems.append(f"object {i} orbit speed {obj.orbit_speed}")
    if obj.spin and not 1 <= abs(obj.spin) <= 4:
        problems.append(f"object {i} spin {obj.spin}")
    if obj.spin and obj.shape == "circle":
        problems.append(f"object {i} is a spinning circle, which looks still")
    if obj.growth and abs(seen.scale[i, -1] - 1) < 0.3:
        problems.append(f"object {i} growth {obj.growth}")
    if obj.motion in ("bounce", "fall", "throw") and (obj.spin or obj.growth):
        problems.append(f"object {i} spins or grows while it {obj.motion}s")
    return problems


def _overlap_problems(scene: SceneSpec, kind: str, x, y, radius) -> list[str]:
    """Same layer: apart (the colliding pair is checked on the exact shapes elsewhere).
    Different layers, outside pass-behind: covered briefly and never by much."""
    problems = []
    outer = np.array([geometry(o.shape).outer for o in scene.objects])[:, None] * radius
    for far, a in enumerate(scene.objects):
        covered = np.zeros(x.shape[1], dtype=bool)
        for near, b in enumerate(scene.objects):
            if near == far or {far, near} == set(scene.collision or ()):
                continue
            distance = np.hypot(x[far] - x[near], y[far] - y[near])
            if a.layer == b.layer and near > far and (distance < outer[far] + outer[near]).any():
                problems.append(f"objects {far}, {near} overlap on layer {a.layer}")
            if b.layer < a.layer and kind != "pass_behind":
                area = _overlap_area(distance, outer[near], outer[far])
                if (area > 0.3 * np.pi * radius[far] ** 2 + 1e-12).any():
                    problems.append(f"object {far} hidden behind object {near}")
                covered |= distance < outer[far] + outer[near]
        if covered.mean() > 0.25:
            problems.append(f"object {far} covered for {covered.mean():.0%} of the clip")
    return problems


def test_every_scene_validates_obeys_the_rules_and_shows_its_event(drawn):
    aspect, items = drawn
    seen = _simulate([item.scene for item in items], aspect)
    for seed, item, physics_seen in zip(SEEDS, items, seen, strict=True):
        item.scene.validate()
        assert 1 <= len(item.scene.objects) <= 3
        assert not is_held_out(item.scene)
        problems = _scene_problems(item.scene, item.kind, aspect, physics_seen)
        assert not problems, (seed, item.kind, problems, item.scene.to_json(indent=None))
        _assert_event(item.scene, item.kind, aspect, physics_seen)


def _assert_event(scene: SceneSpec, kind: str, aspect: float, seen: _Seen) -> None:
    """The event a scenario kind is about happens inside the clip."""
    motions = {obj.motion for obj in scene.objects}
    if kind == "collision":
        assert scene.collision is not None
        assert 0 < seen.collision_time < scene.seconds
        _assert_touch_without_overlap(scene, aspect)
    else:
        assert scene.collision is None
    if kind == "bounce":
        assert motions == {"bounce"} and (seen.wall_bounces >= 1).all()
    if kind == "fall":
        assert motions == {"fall"} and (seen.floor_bounces >= 1).all()
    if kind == "throw":
        assert motions == {"throw"} and all(obj.velocity[1] < 0 for obj in scene.objects)
    if kind == "spin":
        assert all(obj.spin and obj.motion == "still" for obj in scene.objects)
    if kind == "grow":
        assert all(obj.growth for obj in scene.objects)
    if kind == "orbit":
        assert motions == {"orbit"}
    if kind == "camera_pan":
        assert scene.camera_pan != 0 and scene.background.kind == "sky_floor"
    if kind == "pass_behind":
        _assert_passes_behind(scene, seen, aspect)


def _assert_touch_without_overlap(scene: SceneSpec, aspect: float) -> None:
    """The colliding shapes, on their exact outlines: just apart before the collision, touching
    at it, and never one inside the other."""
    ia, ib = scene.collision
    a, b = scene.objects[ia], scene.objects[ib]
    packed = physics.pack([scene], aspect)
    when = float(physics.simulate(packed, torch.zeros(1, dtype=torch.float64)).collision_time[0])
    times = torch.tensor([0.0, when - 0.05, when, when + 0.05, scene.seconds], dtype=torch.float64)
    tracks = physics.simulate(packed, times)
    x, y = tracks.x[0], tracks.y[0]
    u, v = _outline_points(a.shape, step=0.01)
    ra, rb = vocab.SIZES[a.size], vocab.SIZES[b.size]
    px, py = x[ia, :, None] + u * ra, y[ia, :, None] - v * ra  # (T, P)
    gap = (shape_sdf(b.shape, (px - x[ib, :, None]) / rb, -(py - y[ib, :, None]) / rb) * rb).amin(1)
    assert (gap >= -0.002).all(), (gap, scene.to_json(indent=None))  # outline points never inside
    assert gap[2].abs() <= 0.002 and gap[1] > 0.0, (gap, scene.to_json(indent=None))


def _assert_passes_behind(scene: SceneSpec, seen: _Seen, aspect: float) -> None:
    """The smaller object on layer 1 is seen at both ends and hidden, exactly, in between."""
    far = next(i for i, obj in enumerate(scene.objects) if obj.layer == 1)
    near = 1 - far
    assert scene.objects[far].motion == "linear"
    assert vocab.SIZES[scene.objects[far].size] < vocab.SIZES[scene.objects[near].size]
    assert passes_behind(scene, aspect) == [(far, near)]
    x, y = torch.from_numpy(seen.x), torch.from_numpy(seen.y)
    hidden = _fully_hidden(scene, far, near, x, y).nonzero().flatten()
    assert len(hidden) >= 2
    assert hidden[0] > 0 and hidden[-1] < len(seen.times) - 1


# ---- held-out combinations -----------------------------------------------------------------


def test_default_held_out_is_spread_over_colours_shapes_and_motions():
    assert len(DEFAULT_HELD_OUT) == 6
    for name in ("color", "shape", "motion"):
        assert len({getattr(h, name) for h in DEFAULT_HELD_OUT}) == 6


def test_held_out_sampler_contains_a_held_out_combination():
    scenes = [sample_held_out_scene(seed) for seed in range(40)]
    for scene, seen in zip(scenes, _simulate(scenes, 1.0), strict=True):
        scene.validate()
        assert is_held_out(scene)
        assert not _scene_problems(scene, "mixed", 1.0, seen)
    matched = {next(h for h in DEFAULT_HELD_OUT if _matches(h, scene)) for scene in scenes}
    assert matched == set(DEFAULT_HELD_OUT)  # the draws spread over the entries


def _matches(entry: HeldOut, scene: SceneSpec) -> bool:
    return any(
        entry.color in (None, o.color)
        and entry.shape in (None, o.shape)
        and entry.motion in (None, o.motion)
        for o in scene.objects
    )


def test_is_held_out_agrees_with_the_entries(square):
    config = SamplerConfig(held_out=(HeldOut(color="red"), HeldOut(shape="star", motion="fall")))
    for item in square:
        expected = any(_matches(entry, item.scene) for entry in config.held_out)
        assert is_held_out(item.scene, config) == expected
        assert not is_held_out(item.scene, DEFAULT)
    only_colour = SamplerConfig(held_out=(HeldOut(color="red"),))
    for seed in range(15):
        assert all(obj.color != "red" for obj in sample_scene(seed, config=only_colour).objects)


# ---- config --------------------------------------------------------------------------------


def test_presets():
    assert set(SAMPLER_PRESETS) >= {"default", "full", "single", "events"}
    assert sampler_preset("default") is DEFAULT
    single = sampler_preset("single")
    assert all(len(sample_scene(seed, config=single).objects) == 1 for seed in range(20))
    assert sampler_preset("full").held_out == ()
    with pytest.raises(SpecError, match="did you mean 'single'"):
        sampler_preset("singel")


def test_config_errors_name_the_problem():
    with pytest.raises(SpecError, match="did you mean 'circle'"):
        SamplerConfig(shapes=(("circel", 1.0),))
    with pytest.raises(SpecError, match="kinds"):
        SamplerConfig(kinds={"juggle": 1.0})
    with pytest.raises(SpecError, match="at least one positive weight"):
        SamplerConfig(colors=(("red", 0.0),))
    with pytest.raises(SpecError, match="spin_probability"):
        SamplerConfig(spin_probability=1.5)
    with pytest.raises(SpecError, match="held_out motion"):
        SamplerConfig(held_out=(HeldOut(motion="hover"),))
    with pytest.raises(SpecError, match="seed"):
        sample_scene("7")  # type: ignore[arg-type]


def test_dict_weights_and_restricted_configs():
    config = SamplerConfig(kinds={"fall": 1.0}, shapes={"heart": 1.0}, colors={"red": 1, "blue": 1})
    for seed in range(20):
        item = sample(seed, config=config)
        assert item.kind == "fall"
        assert all(obj.shape == "heart" for obj in item.scene.objects)
        assert all(obj.color in ("red", "blue") for obj in item.scene.objects)


def test_circles_never_spin():
    config = SamplerConfig(kinds={"spin": 1.0, "orbit": 1.0, "linear": 1.0}, spin_probability=1.0)
    scenes = [sample_scene(seed, config=config) for seed in range(30)]
    objects = [obj for scene in scenes for obj in scene.objects]
    assert all(obj.spin for obj in objects)
    assert all(obj.shape != "circle" for obj in objects)
    only_circles = SamplerConfig(kinds={"spin": 1.0}, shapes={"circle": 1.0}, max_attempts=8)
    with pytest.raises(SpecError, match="no 'spin' scene passed"):
        sample_scene(0, config=only_circles)


def test_impossible_requests_fail_clearly():
    config = SamplerConfig(kinds={"orbit": 1.0}, max_attempts=8)
    with pytest.raises(SpecError, match="no 'orbit' scene passed the checks in 8 attempts"):
        sample_scene(0, seconds=0.2, config=config)
