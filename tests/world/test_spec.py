"""Scene specs: JSON round trips, frame counts, and validation errors that name the field and
the value that is wrong."""

from __future__ import annotations

import dataclasses
import json
import math
import re

import pytest

from kinetoscope.errors import SpecError
from kinetoscope.world.spec import SPEC_FORMAT, Background, ObjectSpec, SceneSpec, frame_count


def _scene(*objects: ObjectSpec, **fields: object) -> SceneSpec:
    return SceneSpec(objects=objects, **fields)


RED_CIRCLE = ObjectSpec(shape="circle", color="red")
# two objects on one line moving towards each other: a valid collision
LEFT = ObjectSpec(shape="circle", color="red", x=0.2, motion="linear", velocity=(0.5, 0.0))
RIGHT = ObjectSpec(shape="square", color="blue", x=0.8, motion="linear", velocity=(-0.25, 0.0))


def _fails(scene: SceneSpec, *fragments: str) -> str:
    """Validate `scene`, expecting a SpecError whose message holds every fragment."""
    with pytest.raises(SpecError) as info:
        scene.validate()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


def _object_fails(obj: ObjectSpec, *fragments: str) -> str:
    return _fails(_scene(obj), *fragments)


# ---- JSON ----------------------------------------------------------------------------------


def test_json_round_trip_keeps_every_field():
    scene = SceneSpec(
        objects=(
            dataclasses.replace(LEFT, size="small"),
            RIGHT,
            ObjectSpec(
                shape="star",
                color="yellow",
                size="large",
                x=0.5,
                y=0.3,
                motion="orbit",
                orbit_radius=0.2,
                orbit_phase=1.25,
                orbit_speed=-2.0,
                spin=3.5,
                growth=-0.1,
            ),
            ObjectSpec(shape="heart", color="pink", motion="fall", velocity=(0.3, -0.1), layer=2),
        ),
        background=Background(kind="sky_floor", color="pale blue", color2="tan", floor=0.7),
        seconds=2.5,
        gravity=1.5,
        camera_pan=-0.2,
        collision=(0, 1),
    )
    text = scene.to_json()
    data = json.loads(text)
    assert data["format"] == SPEC_FORMAT
    assert data["collision"] == [0, 1]  # JSON has no tuples ...
    back = SceneSpec.from_json(text)
    assert back == scene  # ... yet they come back as tuples, so the specs compare equal
    assert back.collision == (0, 1) and isinstance(back.collision, tuple)
    assert back.objects[3].velocity == (0.3, -0.1) and isinstance(back.objects[3].velocity, tuple)
    assert back.to_json() == text
    assert SceneSpec.from_json(scene.to_json(indent=None)) == scene


def test_from_dict_fills_defaults_and_format_is_optional():
    scene = SceneSpec.from_dict({"objects": [{"shape": "circle", "color": "red"}]})
    assert scene == _scene(RED_CIRCLE)
    assert scene.background == Background() and scene.collision is None


def test_wrong_format_is_rejected_with_the_value():
    data = _scene(RED_CIRCLE).to_dict()
    data["format"] = "kinetoscope.scene/2"
    with pytest.raises(SpecError, match=re.escape("'kinetoscope.scene/2'")):
        SceneSpec.from_dict(data)


@pytest.mark.parametrize(
    ("where", "patch", "names"),
    [
        ("scene", {"fps": 16}, "'fps'"),
        (
            "objects[0]",
            {"objects": [{"shape": "circle", "color": "red", "colour": "x"}]},
            "'colour'",
        ),
        ("background", {"background": {"kind": "solid", "tint": 3}}, "'tint'"),
    ],
)
def test_unknown_fields_are_rejected(where, patch, names):
    data = {"objects": [{"shape": "circle", "color": "red"}], **patch}
    with pytest.raises(SpecError) as info:
        SceneSpec.from_dict(data)
    assert where in str(info.value) and names in str(info.value)


def test_malformed_json_and_structure_raise_spec_errors():
    with pytest.raises(SpecError, match="not valid JSON"):
        SceneSpec.from_json("{objects: ")
    with pytest.raises(SpecError, match="list"):
        SceneSpec.from_json('{"objects": "circle"}')
    with pytest.raises(SpecError, match="must be a JSON object"):
        SceneSpec.from_json("[1, 2]")
    with pytest.raises(SpecError, match=re.escape("objects[0]") + ".*color"):
        SceneSpec.from_dict({"objects": [{"shape": "circle"}]})  # a required field missing
    with pytest.raises(SpecError, match=re.escape("objects[0].velocity")):
        SceneSpec.from_dict(
            {"objects": [{"shape": "circle", "color": "red", "velocity": [1, 2, 3]}]}
        )


def test_to_dict_output_builds_the_same_spec():
    scene = _scene(LEFT, RIGHT, collision=(0, 1))
    assert SceneSpec.from_dict(scene.to_dict()) == scene


def test_from_dict_validates():
    data = _scene(RED_CIRCLE).to_dict()
    data["objects"][0]["shape"] = "circel"
    with pytest.raises(SpecError, match="did you mean 'circle'"):
        SceneSpec.from_dict(data)


# ---- frame counts ----------------------------------------------------------------------------


def test_frame_count_includes_both_ends():
    assert _scene(RED_CIRCLE, seconds=4.0).frame_count(16) == 65
    assert _scene(RED_CIRCLE, seconds=1.0).frame_count(24) == 25
    assert frame_count(4.0, 16) == 65
    assert frame_count(2.5, 10) == 26
    assert frame_count(0.5, 30) == 16
    for bad in (0, -16, math.nan, math.inf):
        with pytest.raises(SpecError, match="fps"):
            frame_count(4.0, bad)


def test_with_seconds():
    scene = _scene(RED_CIRCLE).with_seconds(1.5)
    assert scene.seconds == 1.5 and scene.frame_count(16) == 25


def test_floor_y_only_for_sky_floor():
    floor = Background(kind="sky_floor", color="peach", color2="gray", floor=0.65)
    assert _scene(RED_CIRCLE, background=floor).floor_y == 0.65
    gradient = Background(kind="gradient", color="navy", color2="purple", floor=0.65)
    assert _scene(RED_CIRCLE, background=gradient).floor_y == 1.0


# ---- validation: names and numbers -----------------------------------------------------------


def test_a_sound_spec_validates_and_returns_itself():
    scene = _scene(LEFT, RIGHT, collision=(0, 1))
    assert scene.validate() is scene


def test_unknown_shape_suggests_the_nearest_name():
    _object_fails(
        dataclasses.replace(RED_CIRCLE, shape="triangel"),
        "objects[0].shape",
        "'triangel'",
        "did you mean 'triangle'?",
    )
    # nothing close: the message lists the choices instead
    _object_fails(
        dataclasses.replace(RED_CIRCLE, shape="zzz"), "objects[0].shape", "'zzz'", "hexagon"
    )


def test_unknown_colour_size_motion_and_background_names():
    _object_fails(dataclasses.replace(RED_CIRCLE, color="magenta"), "objects[0].color", "'magenta'")
    _object_fails(
        dataclasses.replace(RED_CIRCLE, color="purpel"),
        "objects[0].color",
        "did you mean 'purple'",
    )
    _object_fails(dataclasses.replace(RED_CIRCLE, size="huge"), "objects[0].size", "'huge'")
    _object_fails(dataclasses.replace(RED_CIRCLE, motion="bounse"), "objects[0].motion", "'bounce'")
    _fails(
        _scene(RED_CIRCLE, background=Background(kind="stripes")), "background.kind", "'stripes'"
    )
    _fails(_scene(RED_CIRCLE, background=Background(color="mauve")), "background.color", "'mauve'")
    floor = Background(kind="sky_floor", color="pale blue", color2="grey")
    _fails(_scene(RED_CIRCLE, background=floor), "background.color2", "'grey'", "'gray'")


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("x", 2.5, "2.5"),
        ("y", -1.5, "-1.5"),
        ("restitution", 1.2, "1.2"),
        ("orbit_radius", -0.1, "-0.1"),
        ("growth", 6.0, "6.0"),
        ("spin", 101.0, "101.0"),
        ("x", math.nan, "nan"),
        ("y", math.inf, "inf"),
        ("x", True, "True"),  # a bool is not a number, even though Python says so
        ("restitution", "0.5", "'0.5'"),
    ],
)
def test_object_numbers_out_of_range_or_not_numbers(field, value, fragment):
    obj = dataclasses.replace(RED_CIRCLE, **{field: value})
    _object_fails(obj, f"objects[0].{field}", fragment)


def test_velocity_components_are_checked():
    moving = dataclasses.replace(RED_CIRCLE, motion="linear", velocity=(0.1, 25.0))
    _object_fails(moving, "objects[0].velocity.y", "25.0")
    _object_fails(
        dataclasses.replace(moving, velocity=(math.nan, 0.0)), "objects[0].velocity.x", "nan"
    )
    _object_fails(
        dataclasses.replace(moving, velocity=(False, 1.0)), "objects[0].velocity.x", "False"
    )
    _object_fails(dataclasses.replace(moving, velocity=(1.0,)), "objects[0].velocity", "(1.0,)")


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("seconds", 0.0, "0.0"),
        ("seconds", math.nan, "nan"),
        ("gravity", -1.0, "-1.0"),
        ("gravity", True, "True"),
        ("camera_pan", 11.0, "11.0"),
    ],
)
def test_scene_numbers(field, value, fragment):
    _fails(_scene(RED_CIRCLE, **{field: value}), field, fragment)


def test_object_count_and_layer():
    _fails(SceneSpec(objects=()), "1 to 8", "got 0")
    _fails(SceneSpec(objects=(RED_CIRCLE,) * 9), "got 9")
    _object_fails(dataclasses.replace(RED_CIRCLE, layer=16), "objects[0].layer", "16")
    _object_fails(dataclasses.replace(RED_CIRCLE, layer=1.0), "objects[0].layer", "1.0")
    _object_fails(dataclasses.replace(RED_CIRCLE, layer=True), "objects[0].layer", "True")


def test_background_rules():
    for kind in ("sky_floor", "gradient"):
        _fails(
            _scene(RED_CIRCLE, background=Background(kind=kind, color="peach")),
            "background.color2",
            repr(kind),
        )
    solid = Background(kind="solid", color="white", color2="black")
    _fails(_scene(RED_CIRCLE, background=solid), "background.color2", "'black'")
    low = Background(kind="sky_floor", color="peach", color2="tan", floor=0.1)
    _fails(_scene(RED_CIRCLE, background=low), "background.floor", "0.1")


def test_motion_rules():
    orbit = dataclasses.replace(RED_CIRCLE, motion="orbit", orbit_speed=1.0)
    _object_fails(orbit, "objects[0]", "orbit_radius", "0.0")
    for motion in ("bounce", "fall", "throw"):
        base = dataclasses.replace(RED_CIRCLE, motion=motion, velocity=(0.2, -0.3))
        assert _scene(base).validate()
        _object_fails(dataclasses.replace(base, spin=1.5), "objects[0]", repr(motion), "spin=1.5")
        _object_fails(
            dataclasses.replace(base, growth=-0.2), "objects[0]", repr(motion), "growth=-0.2"
        )
    for motion in ("linear", "bounce", "throw"):
        still = dataclasses.replace(RED_CIRCLE, motion=motion)
        _object_fails(still, "objects[0]", repr(motion), "zero velocity")
    # the motions that do not need a velocity, with spin and growth
    for motion in ("still", "fall"):
        assert _scene(dataclasses.replace(RED_CIRCLE, motion=motion)).validate()
    spinning = dataclasses.replace(RED_CIRCLE, motion="linear", velocity=(0.1, 0.0), spin=2.0)
    assert _scene(dataclasses.replace(spinning, growth=0.3)).validate()


# ---- validation: collisions ------------------------------------------------------------------


def test_collision_between_valid_pairs():
    assert _scene(LEFT, RIGHT, collision=(1, 0)).validate()
    # a still target is hit; a still object counts as speed 0 whatever its velocity says
    target = dataclasses.replace(RIGHT, motion="still", velocity=(0.0, 0.0))
    assert _scene(LEFT, target, collision=(0, 1)).validate()
    drifting = dataclasses.replace(RIGHT, motion="still", velocity=(3.0, 0.0))
    assert _scene(LEFT, drifting, collision=(0, 1)).validate()
    # both moving right, the left one faster: it catches up
    chaser = dataclasses.replace(LEFT, velocity=(0.6, 0.0))
    slow = dataclasses.replace(RIGHT, velocity=(0.1, 0.0))
    assert _scene(chaser, slow, collision=(0, 1)).validate()


@pytest.mark.parametrize("pair", [(0, 2), (-1, 0), (1, 1), (0,), (0, 1, 1)])
def test_collision_indices_must_name_two_objects(pair):
    _fails(_scene(LEFT, RIGHT, collision=pair), "collision", str(pair))


def test_collision_objects_move_horizontally_or_stand_still():
    diagonal = dataclasses.replace(LEFT, velocity=(0.5, 0.1))
    _fails(_scene(diagonal, RIGHT, collision=(0, 1)), "objects[0]", "'linear'", "0.1")
    falling = dataclasses.replace(RIGHT, motion="fall", velocity=(-0.3, 0.0))
    _fails(_scene(LEFT, falling, collision=(0, 1)), "objects[1]", "'fall'")
    spinning = dataclasses.replace(RIGHT, spin=1.0)
    _fails(_scene(LEFT, spinning, collision=(0, 1)), "objects[1]", "spin=1.0")


def test_collision_objects_share_a_layer_and_a_height():
    behind = dataclasses.replace(RIGHT, layer=1)
    _fails(_scene(LEFT, behind, collision=(0, 1)), "layer", "0", "1")
    lower = dataclasses.replace(RIGHT, y=0.6)
    _fails(_scene(LEFT, lower, collision=(0, 1)), "y", "0.5", "0.6")


def test_collision_objects_must_approach():
    apart = dataclasses.replace(RIGHT, velocity=(0.5, 0.0))  # same speed: never closer
    _fails(_scene(LEFT, apart, collision=(0, 1)), "towards each other", "0.5")
    receding = dataclasses.replace(LEFT, velocity=(-0.5, 0.0))
    _fails(_scene(receding, RIGHT, collision=(0, 1)), "towards each other", "-0.5")
    # still objects are speed 0: a still left object and a right one moving away never meet
    still = dataclasses.replace(LEFT, motion="still", velocity=(2.0, 0.0))
    away = dataclasses.replace(RIGHT, velocity=(0.2, 0.0))
    _fails(_scene(still, away, collision=(0, 1)), "towards each other")
    both_still = dataclasses.replace(RIGHT, motion="still", velocity=(-2.0, 0.0))
    _fails(_scene(still, both_still, collision=(0, 1)), "towards each other")


@pytest.mark.parametrize(("seconds", "fps"), [(1.0, 3.5), (0.3, 10.0), (2.0, 29.97), (1.0, 12.5)])
def test_frame_count_never_passes_the_end_and_misses_no_frame(seconds, fps):
    count = frame_count(seconds, fps)
    assert (count - 1) / fps <= seconds + 1e-9
    assert count / fps > seconds - 1e-9
