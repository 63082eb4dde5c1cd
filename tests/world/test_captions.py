"""Captions: deterministic, varied, grammatical, and faithful to the spec and its physics."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
import torch

from kinetoscope.errors import SpecError
from kinetoscope.world import physics, vocab
from kinetoscope.world.captions import (
    CAPTION_STYLES,
    DIRECTION_WORDS,
    SHAPE_WORDS,
    SIZE_WORDS,
    caption,
    with_article,
)
from kinetoscope.world.rules import passes_behind
from kinetoscope.world.sampler import sample
from kinetoscope.world.shapes import geometry
from kinetoscope.world.spec import Background, ObjectSpec, SceneSpec

ASPECT = 16 / 9


@pytest.fixture(scope="module")
def captioned():
    """(kind, scene, long caption, short caption) for 200 sampled scenes."""
    rows = []
    for seed in range(200):
        item = sample(seed, ASPECT)
        long = caption(item.scene, "long", seed, ASPECT)
        short = caption(item.scene, "short", seed, ASPECT)
        rows.append((item.kind, item.scene, long, short))
    return rows


def _floor_bounces(scene: SceneSpec) -> list[int]:
    times = torch.tensor([0.0, scene.seconds], dtype=torch.float64)
    tracks = physics.simulate(physics.pack([scene], ASPECT), times)
    return tracks.floor_bounces[0, : len(scene.objects)].tolist()


def _colour_words(text: str) -> set[str]:
    """Colour names in the text, longest first ("pale blue" is not also "blue")."""
    found = set()
    for name in sorted(vocab.COLORS, key=len, reverse=True):
        pattern = rf"\b{re.escape(name)}\b"
        if re.search(pattern, text):
            found.add(name)
            text = re.sub(pattern, " ", text)
    return found


def _direction_names(text: str) -> set[str]:
    found = set()
    phrases = sorted(
        ((phrase, name) for name, words in DIRECTION_WORDS.items() for phrase in words),
        key=lambda item: len(item[0]),
        reverse=True,
    )
    for phrase, name in phrases:
        if phrase in text:
            found.add(name)
            text = text.replace(phrase, " ")
    return found


def _grammar_problems(text: str) -> list[str]:
    problems = []
    if "  " in text:
        problems.append("double space")
    if re.search(r"\b(a|an) (a|an|the)\b", text, re.IGNORECASE):
        problems.append("doubled article")
    for article, word in re.findall(r"\b([Aa]n?) ([a-z]+)", text):
        vowel = word[0] in "aeiou"
        if vowel != (article.lower() == "an"):
            problems.append(f"'{article} {word}'")
    if re.search(r" [,.;]|,,|\.\.|;;", text):
        problems.append("stray punctuation")
    return problems


# ---- basics ----------------------------------------------------------------------------------


def test_styles_and_bad_style():
    assert CAPTION_STYLES == ("short", "long")
    scene = sample(0).scene
    with pytest.raises(SpecError, match="style"):
        caption(scene, "medium")


def test_deterministic():
    scene = sample(11, ASPECT).scene
    for style in CAPTION_STYLES:
        assert caption(scene, style, 3, ASPECT) == caption(scene, style, 3, ASPECT)


def test_variety(captioned):
    longs = [row[2] for row in captioned]
    assert len(set(longs)) >= 195
    shorts = [row[3] for row in captioned]
    assert len(set(shorts)) >= 150
    scene = captioned[4][1]
    assert len({caption(scene, "long", seed, ASPECT) for seed in range(20)}) >= 8
    assert len({caption(scene, "short", seed, ASPECT) for seed in range(20)}) >= 3


def test_grammar(captioned):
    for _, _, long, short in captioned:
        assert long[0].isupper() and long.endswith("."), long
        assert all(s[0].isupper() for s in long.split(". ")), long
        assert not _grammar_problems(long), (long, _grammar_problems(long))
        assert short[0].islower() and not short.endswith("."), short
        assert not _grammar_problems(short), (short, _grammar_problems(short))
    assert with_article("orange ball") == "an orange ball"
    assert with_article("small orange ball") == "a small orange ball"
    assert with_article("ochre sky") == "an ochre sky"


# ---- faithfulness ----------------------------------------------------------------------------


def test_every_object_is_named_with_size_colour_and_shape(captioned):
    for _, scene, long, short in captioned:
        for obj in scene.objects:
            names = [
                f"{size} {obj.color} {shape}"
                for size in SIZE_WORDS[obj.size]
                for shape in SHAPE_WORDS[obj.shape]
            ]
            assert any(re.search(rf"\b{name}\b", long) for name in names), (obj, long)
            assert any(f"{obj.color} {shape}" in short for shape in SHAPE_WORDS[obj.shape])


def test_only_colours_of_the_scene(captioned):
    for _, scene, long, short in captioned:
        allowed = {obj.color for obj in scene.objects} | {scene.background.color}
        allowed |= {scene.background.color2} - {None}
        assert _colour_words(long) <= allowed, long
        assert _colour_words(short) <= allowed, short
        assert {obj.color for obj in scene.objects} <= _colour_words(long)


def test_background_is_described(captioned):
    for _, scene, long, _ in captioned:
        bg = scene.background
        assert bg.color in _colour_words(long), long
        if bg.color2 is not None:
            assert bg.color2 in _colour_words(long), long
        if bg.kind == "sky_floor":
            assert "sky" in long and "floor" in long


def test_bounces_twice_exactly_when_the_physics_says_so(captioned):
    said, seen = 0, 0
    for _, scene, long, _ in captioned:
        bounces = _floor_bounces(scene)
        twice = 2 in bounces
        assert ("bounces twice" in long) == twice, long
        said += twice
        for count, words in ((1, "bounces once"), (3, "bounces three times")):
            if count in bounces:
                assert words in long
                seen += 1
    assert said >= 5 and seen >= 5  # the sample has enough bouncing to mean something


def test_many_bounces_are_not_counted():
    scene = _scene(
        ObjectSpec("circle", "red", "small", y=0.3, motion="fall", restitution=0.95),
        background=Background("sky_floor", "pale blue", "gray"),
        seconds=8.0,
    )
    assert max(_floor_bounces(scene)) > 5
    for seed in range(5):
        long = caption(scene, "long", seed)
        assert "keeps bouncing" in long and "times" not in long


def test_events_are_mentioned_only_when_they_happen(captioned):
    for kind, scene, long, short in captioned:
        collides = scene.collision is not None
        assert collides == bool(re.search(r"collid|\bhits\b|\binto\b|catches up", long)), long
        assert collides == ("collid" in short or "bumping" in short), short
        behind = bool(passes_behind(scene, ASPECT))
        assert behind == ("behind" in long), long
        assert behind == ("behind" in short), short
        assert (kind == "pass_behind") <= behind
        assert bool(scene.camera_pan) == ("camera" in long)
        assert bool(scene.camera_pan) == ("camera" in short)


def test_motion_words_only_for_motions_the_scene_has(captioned):
    for _, scene, long, short in captioned:
        objects = scene.objects
        times = torch.tensor([0.0, scene.seconds], dtype=torch.float64)
        tracks = physics.simulate(physics.pack([scene], ASPECT), times)
        walls, floors = tracks.wall_bounces[0].tolist(), tracks.floor_bounces[0].tolist()
        bounces = any(
            (o.motion == "bounce" and walls[i]) or (o.motion in ("fall", "throw") and floors[i])
            for i, o in enumerate(objects)
        )
        expected = {
            r"\bspin|rotat|\bturn": any(o.spin for o in objects),
            r"grow|bigger|swell|shrink|smaller|dwindl": any(o.growth for o in objects),
            r"orbit|\bcircles\b|circling|loops|goes round": any(
                o.motion == "orbit" for o in objects
            ),
            r"\barc\b|parabola": any(o.motion == "throw" for o in objects),
            r"\bfall|\bdrop|tumbles": any(o.motion == "fall" for o in objects),
        }
        for pattern, present in expected.items():
            assert bool(re.search(pattern, long)) == present, (pattern, long)
        said_bounce = re.search(r"bounc|ricochet", long.replace("bounces back", ""))
        assert bool(said_bounce) == bounces, long
        for pattern, present in list(expected.items())[:4]:  # the short forms say these too
            assert bool(re.search(pattern, short)) == present, (pattern, short)


def test_direction_words_match(captioned):
    for _, scene, long, short in captioned:
        if len(scene.objects) != 1 or scene.camera_pan:
            continue
        obj = scene.objects[0]
        if obj.motion == "linear":
            assert _direction_names(long) == {vocab.direction_name(obj.velocity)}, long
        turning = obj.orbit_speed if obj.motion == "orbit" else obj.spin
        if turning and not (obj.motion == "orbit" and obj.spin):
            counter = "counter-clockwise" in long
            assert counter == (turning < 0) and "clockwise" in long, long
            assert counter == ("counter-clockwise" in short), short
        if obj.growth:
            grows = any(w in long for w in ("grow", "bigger", "swell"))
            assert grows == (obj.growth > 0), long
            assert grows != any(w in long for w in ("shrink", "smaller", "dwindle"))


def test_a_circle_spin_is_never_mentioned():
    """A turning circle looks exactly like a still one, so no caption may say that it spins;
    the same object as a square does."""
    turning = (
        ObjectSpec("circle", "red", "medium", x=0.3, y=0.3, spin=2.0),
        ObjectSpec("circle", "red", "large", x=0.3, y=0.4, spin=-1.5, growth=0.2),
        ObjectSpec("circle", "red", "small", x=0.2, motion="linear", velocity=(0.3, 0.0), spin=3),
        ObjectSpec(
            "circle", "red", "small", motion="orbit", orbit_radius=0.2, orbit_speed=1.5, spin=2
        ),
    )
    spin_words = r"\bspin|rotat|\bturn"
    for obj in turning:
        as_square = _scene(replace(obj, shape="square"))
        for seed in range(6):
            for style in CAPTION_STYLES:
                text = caption(_scene(obj), style, seed)
                assert not re.search(spin_words, text), text
                assert re.search(spin_words, caption(as_square, style, seed))


def test_collision_outcome_follows_the_physics():
    # a large object hits a small one standing still: the small one is knocked to the right
    scene = _scene(
        ObjectSpec("circle", "red", "large", x=0.2, y=0.5, motion="linear", velocity=(0.4, 0.0)),
        ObjectSpec("square", "blue", "small", x=0.6, y=0.5),
        collision=(0, 1),
        seconds=2.0,
    )
    for seed in range(8):
        long = caption(scene, "long", seed)
        assert re.search(r"blue (square|block|box) (is knocked|shoots off|gets pushed)", long)
        assert re.search(r"red (circle|ball|disc|dot) (keeps moving|carries on)", long)
        assert "to the left" not in long and "leftward" not in long


def test_still_objects_and_floor():
    scene = _scene(
        ObjectSpec("square", "red", "medium", y=0.6),
        background=Background("sky_floor", "peach", "tan", floor=0.8),
    )
    down = geometry("square").down * vocab.SIZES["medium"]
    standing = _scene(
        ObjectSpec("square", "red", "medium", y=0.8 - down),
        background=Background("sky_floor", "peach", "tan", floor=0.8),
    )
    for seed in range(6):
        assert "on the tan floor" not in caption(scene, "long", seed)
        assert "tan floor" in caption(standing, "long", seed)


def _scene(*objects: ObjectSpec, **fields) -> SceneSpec:
    return SceneSpec(objects=objects, **fields).validate()


def test_an_object_that_keeps_sliding_never_comes_to_rest():
    slides = ObjectSpec("square", "red", "medium", x=0.3, y=0.5, motion="fall", velocity=(0.1, 0))
    drops = ObjectSpec("square", "red", "medium", x=0.3, y=0.5, motion="fall", restitution=0.3)
    floor = Background("sky_floor", "pale blue", "gray", 0.8)
    for seed in range(8):
        sliding = caption(SceneSpec(objects=(slides,), background=floor, seconds=4), seed=seed)
        assert "rest" not in sliding and "settles" not in sliding, sliding
    still = {
        caption(SceneSpec(objects=(drops,), background=floor, seconds=4), seed=s) for s in range(8)
    }
    assert any("rest" in c or "settles" in c or "stays there" in c for c in still)
