"""The scene rules on hand-made scenes: each rule is broken on its own, and named."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from kinetoscope.world.rules import (
    CHECKS_PER_SECOND,
    RULES,
    SceneChecks,
    check_scene,
    check_times,
    passes_behind,
)
from kinetoscope.world.sampler import sample
from kinetoscope.world.spec import Background, ObjectSpec, SceneSpec

WHITE = Background("solid", "white")


def _scene(*objects: ObjectSpec, **fields) -> SceneSpec:
    return SceneSpec(objects=objects, **{"background": WHITE, "seconds": 2.0, **fields}).validate()


def _far(**fields) -> ObjectSpec:
    """A medium red circle at the centre, on layer 1, behind whatever is on layer 0."""
    return _object(**{"color": "red", "size": "medium", "layer": 1, **fields})


def _near(**fields) -> ObjectSpec:
    return _object(**{"color": "blue", "size": "small", **fields})


def _object(**fields) -> ObjectSpec:
    return ObjectSpec(**{"shape": "circle", "x": 0.5, "y": 0.5, **fields})


def test_check_times():
    times = check_times(1.0)
    assert len(times) == CHECKS_PER_SECOND + 1 and float(times[-1]) == 1.0
    assert float(times[1]) == 1 / CHECKS_PER_SECOND
    assert float(check_times(0.1)[-1]) == 0.1


def test_a_good_scene_breaks_nothing():
    assert check_scene(_scene(_far(), _near(x=0.15, y=0.15))) == []


def test_each_rule_is_named():
    base = _far(layer=0)
    assert check_scene(_scene(base, _near(color="red", x=0.15, y=0.15))) == ["colours"]
    assert check_scene(_scene(replace(base, color="white"))) == ["colours"]
    assert check_scene(_scene(replace(base, shape="square", spin=2.0))) == []
    assert check_scene(_scene(replace(base, spin=2.0))) == ["circle spin"]
    assert check_scene(_scene(replace(base, x=0.05))) == ["frame"]
    fast = replace(base, x=0.1, motion="linear", velocity=(1.5, 0.0))
    assert "speed" in check_scene(_scene(fast, seconds=0.5))
    slow = replace(base, motion="linear", velocity=(0.05, 0.0))
    assert check_scene(_scene(slow)) == ["visible motion"]
    assert check_scene(_scene(base, _near(x=0.6, y=0.6))) == ["overlap"]
    bounce = replace(base, motion="bounce", velocity=(0.1, 0.1))
    assert check_scene(_scene(bounce), kind="bounce") == ["event"]
    assert set(RULES) == {
        "colours",
        "circle spin",
        "frame",
        "speed",
        "visible motion",
        "overlap",
        "cover",
        "event",
    }


# ---- cover: a nearer object may cover another only briefly and only a little ------------------


def test_cover_for_the_whole_clip_is_too_long():
    # bounding circles 0.095 + 0.065 apart by 0.14: a sliver of the far circle is covered
    always = _scene(_far(), _near(y=0.64))
    assert check_scene(always) == ["cover"]
    assert "cover" not in check_scene(always, kind="pass_behind")  # hiding is the point there


def test_a_brief_graze_is_allowed():
    # crossing at 0.4 per second, the discs meet while |dx| < sqrt(0.16^2 - 0.14^2), 19% of 2 s
    graze = _scene(_far(), _near(x=0.1, y=0.64, motion="linear", velocity=(0.4, 0.0)))
    assert check_scene(graze) == []
    slower = _scene(_far(), _near(x=0.3, y=0.64, motion="linear", velocity=(0.15, 0.0)))
    assert check_scene(slower) == ["cover"]  # the same graze for 52% of the clip


def test_a_brief_but_deep_cover_is_not_allowed():
    # 16:9, crossing the far circle's centre at 0.8 per second: 20% of the clip, but the small
    # disc then covers 47% of the far one's area
    crossing = _near(x=0.05, motion="linear", velocity=(0.8, 0.0))
    assert check_scene(_scene(_far(), crossing), 16 / 9) == ["cover"]


def test_old_seed_48_breaks_the_new_rules():
    """The default sampler's seed 48 at 1:1 used to draw a spinning brown circle that covered a
    growing yellow hexagon for the whole clip, so the hexagon was never seen whole."""
    hexagon = ObjectSpec(
        "hexagon", "yellow", "large", x=0.6787, y=0.3975, motion="linear",
        velocity=(-0.1005, 0.1005), spin=1.269, growth=0.1759, layer=1,
    )  # fmt: skip
    circle = ObjectSpec(
        "circle", "brown", "medium", x=0.5822, y=0.1544, motion="linear",
        velocity=(0.0, 0.1602), spin=2.298,
    )  # fmt: skip
    scene = _scene(hexagon, circle, background=Background("solid", "black"), seconds=3.0)
    assert check_scene(scene, kind="linear") == ["circle spin", "cover"]
    assert sample(48).scene != scene


# ---- collisions: the colliding pair touches, with no gap and no overlap -----------------------


def test_shapes_of_any_kind_collide_without_a_gap():
    # the triangle's base meets the circle 0.231 apart, where the sum of half-widths is 0.277
    triangle = _far(shape="triangle", size="large", x=0.2, motion="linear", velocity=(0.4, 0.0))
    scene = _scene(replace(triangle, layer=0), _near(size="medium"), collision=(0, 1))
    assert check_scene(scene, 16 / 9, kind="collision") == []
    checks = SceneChecks.batch([scene], 16 / 9)[0]
    assert checks.tracks.collision_time == pytest.approx((0.3 * 16 / 9 - 0.2309) / 0.4, abs=1e-3)
    overlapping = replace(scene, objects=(scene.objects[0], _near(size="medium", x=0.3)))
    assert check_scene(overlapping, 16 / 9, kind="collision") == ["overlap", "event"]  # at t = 0


# ---- the batch and the sampler ----------------------------------------------------------------


def test_batch_matches_one_by_one_and_the_sampler_obeys_the_rules():
    items = [sample(seed, 16 / 9) for seed in range(24)]
    batch = SceneChecks.batch([item.scene for item in items], 16 / 9)
    for item, checks in zip(items, batch, strict=True):
        hiding = ["cover"] if item.kind == "pass_behind" else []  # allowed in that kind only
        assert checks.broken() == check_scene(item.scene, 16 / 9) == hiding
        assert check_scene(item.scene, 16 / 9, kind=item.kind) == []
    behind = [item.scene for item in items if item.kind == "pass_behind"]
    assert behind and all(passes_behind(scene, 16 / 9) for scene in behind)


@pytest.mark.parametrize("seconds", [0.5, 1.0, 2.0 + 1 / 64])
def test_check_times_cover_the_clip(seconds):
    times = check_times(seconds)
    assert float(times[0]) == 0.0 and math.isclose(float(times[-1]), seconds)
    assert len(times) == math.floor(seconds * CHECKS_PER_SECOND + 1e-9) + 1 + (
        seconds * CHECKS_PER_SECOND % 1 > 1e-9
    )
