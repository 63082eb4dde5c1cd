"""The scene sampler: determinism, JSON, coverage of the vocabulary, and every scene rule,
rechecked here with the physics independently of the sampler's own checks."""

from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np
import pytest
import torch

from kinetoscope.errors import SpecError
from kinetoscope.world import physics, vocab
from kinetoscope.world.sampler import (
    DEFAULT,
    DEFAULT_HELD_OUT,
    SAMPLER_PRESETS,
    SCENARIO_KINDS,
    HeldOut,
    SamplerConfig,
    is_held_out,
    passes_behind,
    sample,
    sample_held_out_scene,
    sample_scene,
    sampler_preset,
)
from kinetoscope.world.shapes import geometry, shape_sdf
from kinetoscope.world.spec import SceneSpec

SEEDS = range(500)
ASPECTS = (1.0, 16 / 9, 9 / 16)


@pytest.fixture(scope="module")
def drawn():
    """500 sampled scenes (with their kinds) at each aspect."""
    return {aspect: [sample(seed, aspect) for seed in SEEDS] for aspect in ASPECTS}


# ---- determinism and JSON ------------------------------------------------------------------


def test_same_seed_same_scene_and_different_seeds_differ():
    for seed in (0, 1, 12345):
        assert sample_scene(seed).to_json() == sample_scene(seed).to_json()
    assert sample_scene(3, 16 / 9).to_json() == sample_scene(3, 16 / 9).to_json()
    texts = {sample_scene(seed).to_json() for seed in range(60)}
    assert len(texts) == 60


def test_seconds_and_aspect_are_respected():
    assert sample_scene(5, seconds=2.5).seconds == 2.5
    assert {sample_scene(s).seconds for s in range(40)} == set(DEFAULT.seconds)


def test_json_round_trip(drawn):
    for aspect in ASPECTS:
        for item in drawn[aspect][:200]:
            assert SceneSpec.from_json(item.scene.to_json()) == item.scene
            assert not re.search(r"-0\.0\b", item.scene.to_json())  # no negative zeros


# ---- coverage of the vocabulary -----------------------------------------------------------


def test_every_kind_shape_colour_size_background_and_motion_appears(drawn):
    for aspect in ASPECTS:
        items = drawn[aspect]
        objects = [obj for item in items for obj in item.scene.objects]
        assert {item.kind for item in items} == set(SCENARIO_KINDS)
        assert {obj.shape for obj in objects} == set(vocab.SHAPES)
        assert {obj.color for obj in objects} == set(vocab.OBJECT_COLORS)
        assert {obj.size for obj in objects} == set(vocab.SIZES)
        assert {obj.motion for obj in objects} == set(vocab.MOTIONS)
        assert {item.scene.background.kind for item in items} == set(vocab.BACKGROUNDS)
        assert {len(item.scene.objects) for item in items} == {1, 2, 3}
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


def test_kind_frequencies_follow_the_weights(drawn):
    counts = Counter(item.kind for aspect in ASPECTS for item in drawn[aspect])
    weights = dict(DEFAULT.kinds)
    total = sum(weights.values())
    for kind, weight in weights.items():
        expected = weight / total * len(ASPECTS) * len(SEEDS)
        assert abs(counts[kind] - expected) < 5 * math.sqrt(expected), kind


# ---- the rules, checked with the physics ---------------------------------------------------


def _times(seconds: float) -> torch.Tensor:
    times = torch.arange(0, seconds, 1 / 32, dtype=torch.float64)
    return torch.cat([times, torch.tensor([seconds], dtype=torch.float64)])


def _overlap_area(d: np.ndarray, r1: float | np.ndarray, r2: float | np.ndarray) -> np.ndarray:
    """Area shared by two discs, from the two circular segments (a second formula)."""
    d = np.maximum(d, 1e-12)
    a1 = np.clip((d * d - r2 * r2 + r1 * r1) / (2 * d), -r1, r1)  # centre 1 to the chord
    a2 = np.clip(d - a1, -r2, r2)
    seg1 = r1 * r1 * np.arccos(a1 / r1) - a1 * np.sqrt(np.maximum(r1 * r1 - a1 * a1, 0))
    seg2 = r2 * r2 * np.arccos(a2 / r2) - a2 * np.sqrt(np.maximum(r2 * r2 - a2 * a2, 0))
    small = np.pi * np.minimum(r1, r2) ** 2
    return np.where(d >= r1 + r2, 0.0, np.where(d <= np.abs(r1 - r2), small, seg1 + seg2))


def _fully_hidden(scene: SceneSpec, far: int, near: int, x, y) -> torch.Tensor:
    """Exact test on the shapes: whether the outline of `far` lies inside `near`, (T,).

    Every shape is simply connected, so an outline inside means the whole shape inside."""
    a, b = scene.objects[far], scene.objects[near]
    grid = torch.linspace(-1.7, 1.7, 171, dtype=torch.float64)
    u, v = torch.meshgrid(grid, grid, indexing="xy")
    edge = shape_sdf(a.shape, u, v).abs() <= float(grid[1] - grid[0])  # points on the outline
    ra, rb = vocab.SIZES[a.size], vocab.SIZES[b.size]
    px = x[far, :, None] + u[edge] * ra  # (T, P) screen positions of the outline points
    py = y[far, :, None] - v[edge] * ra
    local_u, local_v = (px - x[near, :, None]) / rb, -(py - y[near, :, None]) / rb
    return (shape_sdf(b.shape, local_u, local_v) * rb <= -0.002).all(dim=1)


def _simulate(scene: SceneSpec, aspect: float) -> physics.Tracks:
    return physics.simulate(physics.pack([scene], aspect), _times(scene.seconds))


def _scene_problems(
    scene: SceneSpec, kind: str, aspect: float, tracks: physics.Tracks
) -> list[str]:
    width, height = physics.world_size(aspect)
    times = _times(scene.seconds)
    n = len(scene.objects)
    x, y, scale = (t[0, :n].numpy() for t in (tracks.x, tracks.y, tracks.scale))
    world_x = x + tracks.camera[0].numpy()
    dt = np.diff(times.numpy())
    problems = []
    floor = scene.background.kind == "sky_floor"
    backdrop = [scene.background.color] + [scene.background.color2] * (
        scene.background.color2 is not None
    )
    colors = [obj.color for obj in scene.objects]
    if len(set(colors)) != n:
        problems.append("repeated colour")
    for c in colors:
        for b in backdrop:
            if vocab.color_distance(vocab.COLORS[c], vocab.COLORS[b]) < 150:
                problems.append(f"{c} on {b}")
    radius = np.array([vocab.SIZES[o.size] for o in scene.objects])[:, None] * scale
    for i, obj in enumerate(scene.objects):
        g = geometry(obj.shape)
        hw, up, down = (g.outer,) * 3 if obj.spin else (g.half_width, g.up, g.down)
        walls = obj.motion in ("bounce", "fall", "throw")
        side = 0.0 if walls else 0.01
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
        step = np.hypot(np.diff(x[i]), np.diff(y[i])) / dt
        if step.max() > 0.96 + 1e-6:
            problems.append(f"object {i} too fast: {step.max():.3f}")
        path = np.hypot(np.diff(world_x[i]), np.diff(y[i])).sum()
        if obj.motion in ("linear", "bounce", "fall", "throw") and path < 0.2:
            problems.append(f"object {i} barely moves: {path:.3f}")
        if obj.motion == "orbit":
            turn = abs(obj.orbit_speed) * scene.seconds
            if turn < math.pi / 2 - 1e-9 or abs(obj.orbit_speed) > 3:
                problems.append(f"object {i} orbit speed {obj.orbit_speed}")
        if obj.spin and not 1 <= abs(obj.spin) <= 4:
            problems.append(f"object {i} spin {obj.spin}")
        if obj.growth and abs(scale[i, -1] - 1) < 0.3:
            problems.append(f"object {i} growth {obj.growth}")
        if obj.motion in ("bounce", "fall", "throw") and (obj.spin or obj.growth):
            problems.append(f"object {i} spins or grows while it {obj.motion}s")
    if scene.camera_pan and (abs(scene.camera_pan) * scene.seconds < 0.15 or not floor):
        problems.append("camera pan too small or without a floor")
    problems += _overlap_problems(scene, kind, x, y, radius)
    return problems


def _overlap_problems(scene: SceneSpec, kind: str, x, y, radius) -> list[str]:
    problems = []
    outer = np.array([geometry(o.shape).outer for o in scene.objects])[:, None] * radius
    for i in range(len(scene.objects)):
        for j in range(i + 1, len(scene.objects)):
            a, b = scene.objects[i], scene.objects[j]
            distance = np.hypot(x[i] - x[j], y[i] - y[j])
            if scene.collision is not None and {i, j} == set(scene.collision):
                reach = (geometry(a.shape).half_width * radius[i]) + (
                    geometry(b.shape).half_width * radius[j]
                )
                if (np.abs(x[i] - x[j]) < reach - 1e-6).any():
                    problems.append(f"colliding objects {i}, {j} overlap")
            elif a.layer == b.layer:
                if (distance < outer[i] + outer[j]).any():
                    problems.append(f"objects {i}, {j} overlap on layer {a.layer}")
            elif kind != "pass_behind":
                far = i if a.layer > b.layer else j
                near = j if far == i else i
                covered = _overlap_area(distance, outer[near], outer[far])
                if (covered > 0.3 * np.pi * radius[far] ** 2 + 1e-12).any():
                    problems.append(f"object {far} hidden behind object {near}")
    return problems


@pytest.mark.parametrize("aspect", ASPECTS)
def test_every_scene_validates_obeys_the_rules_and_shows_its_event(drawn, aspect):
    for seed, item in zip(SEEDS, drawn[aspect], strict=True):
        item.scene.validate()
        assert 1 <= len(item.scene.objects) <= 3
        assert not is_held_out(item.scene)
        tracks = _simulate(item.scene, aspect)
        problems = _scene_problems(item.scene, item.kind, aspect, tracks)
        assert not problems, (seed, item.kind, problems, item.scene.to_json(indent=None))
        _assert_event(item.scene, item.kind, aspect, tracks)


def _assert_event(scene: SceneSpec, kind: str, aspect: float, tracks: physics.Tracks) -> None:
    """The event a scenario kind is about happens inside the clip."""
    motions = {obj.motion for obj in scene.objects}
    n = len(scene.objects)
    if kind == "collision":
        assert scene.collision is not None
        assert 0 < float(tracks.collision_time[0]) < scene.seconds
    else:
        assert scene.collision is None
    if kind == "bounce":
        assert motions == {"bounce"} and (tracks.wall_bounces[0, :n] >= 1).all()
    if kind == "fall":
        assert motions == {"fall"} and (tracks.floor_bounces[0, :n] >= 1).all()
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
        _assert_passes_behind(scene, tracks, aspect)


def _assert_passes_behind(scene: SceneSpec, tracks: physics.Tracks, aspect: float) -> None:
    """The smaller object on layer 1 is seen at both ends and hidden, exactly, in between."""
    far = next(i for i, obj in enumerate(scene.objects) if obj.layer == 1)
    near = 1 - far
    assert scene.objects[far].motion == "linear"
    assert vocab.SIZES[scene.objects[far].size] < vocab.SIZES[scene.objects[near].size]
    assert passes_behind(scene, aspect) == [(far, near)]
    hidden = _fully_hidden(scene, far, near, tracks.x[0], tracks.y[0]).nonzero().flatten()
    assert len(hidden) >= 2
    assert hidden[0] > 0 and hidden[-1] < tracks.x.shape[-1] - 1


# ---- held-out combinations -----------------------------------------------------------------


def test_default_held_out_is_spread_over_colours_shapes_and_motions():
    assert len(DEFAULT_HELD_OUT) == 6
    for name in ("color", "shape", "motion"):
        assert len({getattr(h, name) for h in DEFAULT_HELD_OUT}) == 6


def test_held_out_sampler_contains_a_held_out_combination():
    for seed in range(60):
        scene = sample_held_out_scene(seed)
        scene.validate()
        assert is_held_out(scene)
        assert not _scene_problems(scene, "mixed", 1.0, _simulate(scene, 1.0))
    assert {  # the draws spread over the entries
        next(h for h in DEFAULT_HELD_OUT if _matches(h, scene))
        for scene in (sample_held_out_scene(seed) for seed in range(60))
    } == set(DEFAULT_HELD_OUT)


def _matches(entry: HeldOut, scene: SceneSpec) -> bool:
    return any(
        entry.color in (None, o.color)
        and entry.shape in (None, o.shape)
        and entry.motion in (None, o.motion)
        for o in scene.objects
    )


def test_is_held_out_agrees_with_the_entries(drawn):
    config = SamplerConfig(held_out=(HeldOut(color="red"), HeldOut(shape="star", motion="fall")))
    for item in drawn[1.0][:200]:
        expected = any(_matches(entry, item.scene) for entry in config.held_out)
        assert is_held_out(item.scene, config) == expected
        assert not is_held_out(item.scene, DEFAULT)
    only_colour = SamplerConfig(held_out=(HeldOut(color="red"),))
    for seed in range(30):
        assert all(obj.color != "red" for obj in sample_scene(seed, config=only_colour).objects)


# ---- config --------------------------------------------------------------------------------


def test_presets():
    assert set(SAMPLER_PRESETS) >= {"default", "full", "single", "events"}
    assert sampler_preset("default") is DEFAULT
    single = sampler_preset("single")
    assert all(len(sample_scene(seed, config=single).objects) == 1 for seed in range(40))
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


def test_impossible_requests_fail_clearly():
    config = SamplerConfig(kinds={"orbit": 1.0}, max_attempts=8)
    with pytest.raises(SpecError, match="no 'orbit' scene passed the checks in 8 attempts"):
        sample_scene(0, seconds=0.2, config=config)
