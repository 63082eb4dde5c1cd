"""Captions for physics-world scenes: varied, faithful English made from the spec and its physics.

`caption(scene, style, seed, aspect)` describes a scene in one of `CAPTION_STYLES`:

    long   one to three sentences naming every object's size, colour, shape and motion, the
           background and the events: floor bounces ("bounces twice"), wall bounces,
           collisions, passing behind another object, the camera pan, spin and orbit
           direction, growing or shrinking, the direction of travel
    short  a lowercase phrase, like a tag: "a small red ball bouncing on a gray floor"

Events come from the physics (`physics.simulate`), not from how a scene was sampled: floor
bounces are the visible ones, a collision is mentioned only when it happens inside the clip,
and "passes behind" only when one object is fully hidden behind another and clear of it at
both ends; a circle's spin does not show, so it is never mentioned. The `seed` picks among
synonyms, templates and word orders with its own `random.Random`, so a (scene, style, seed)
always gives the same words.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace

import numpy as np
import torch

from kinetoscope.errors import SpecError
from kinetoscope.world import physics, vocab
from kinetoscope.world.rules import ROUND_SHAPES, SceneChecks
from kinetoscope.world.shapes import geometry
from kinetoscope.world.spec import ObjectSpec, SceneSpec

CAPTION_STYLES: tuple[str, ...] = ("short", "long")

# Words for the vocabulary. The first shape word is the shape's own name.
SHAPE_WORDS: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "ball", "disc", "dot"),
    "square": ("square", "block", "box"),
    "triangle": ("triangle",),
    "star": ("star",),
    "diamond": ("diamond", "rhombus"),
    "hexagon": ("hexagon",),
    "heart": ("heart",),
    "cross": ("cross", "plus sign"),
}
SIZE_WORDS: dict[str, tuple[str, ...]] = {
    "small": ("small", "little"),
    "medium": ("medium-sized", "medium", "mid-sized"),
    "large": ("large", "big"),
}
DIRECTION_WORDS: dict[str, tuple[str, ...]] = {
    "right": ("to the right", "rightward", "toward the right"),
    "left": ("to the left", "leftward", "toward the left"),
    "up": ("upward", "straight up", "toward the top"),
    "down": ("downward", "straight down", "toward the bottom"),
    "up-right": ("toward the upper right", "up and to the right", "diagonally up and right"),
    "up-left": ("toward the upper left", "up and to the left", "diagonally up and left"),
    "down-right": ("toward the lower right", "down and to the right", "diagonally down and right"),
    "down-left": ("toward the lower left", "down and to the left", "diagonally down and left"),
}
_SHORT_DIRECTIONS = {
    "right": "right",
    "left": "left",
    "up": "up",
    "down": "down",
    "up-right": "up and right",
    "up-left": "up and left",
    "down-right": "down and right",
    "down-left": "down and left",
}
_TIMES = {1: "once", 2: "twice", 3: "three times", 4: "four times", 5: "five times"}
_AT_REST = 1e-7  # short sides: a ballistic object this close to the floor, twice, has settled
_ON_FLOOR = 2e-3  # short sides: an outline this close to the floor stands on it


def caption(scene: SceneSpec, style: str = "long", seed: int = 0, aspect: float = 1.0) -> str:
    """A caption of `scene` in `style` ("long" or "short"); `seed` picks the wording."""
    if style not in CAPTION_STYLES:
        raise SpecError(f"caption style must be one of {CAPTION_STYLES}, got {style!r}")
    scene = _as_seen(scene.validate())
    facts = _Facts.of(scene, aspect)
    words = _Words(scene, random.Random(seed))
    return _long(scene, facts, words) if style == "long" else _short(scene, facts, words)


def _as_seen(scene: SceneSpec) -> SceneSpec:
    """The scene as it looks: a round shape's spin does not show, so it is never mentioned."""
    objects = tuple(
        replace(obj, spin=0.0) if obj.shape in ROUND_SHAPES else obj for obj in scene.objects
    )
    return replace(scene, objects=objects)


# ---- what happens, from the physics ----------------------------------------------------------


@dataclass
class _Facts:
    floor_bounces: list[int]  # visible floor bounces by the end
    wall_bounces: list[int]
    settled: list[bool]  # a falling or thrown object lies still on the floor at the end
    on_floor: list[bool]  # a still or sliding object stands on the floor
    collision_time: float  # seconds, inf when nothing collides inside the clip
    after: dict[int, float]  # x velocity of each colliding object after the collision
    passes: list[tuple[int, int]]  # (far, near): far passes behind near and comes out again

    @classmethod
    def of(cls, scene: SceneSpec, aspect: float) -> _Facts:
        checks = SceneChecks.batch([scene], aspect)[0]  # the physics at the rules' check times
        m, (_, height) = checks.tracks, checks.size
        floor = scene.floor_y * height
        ground = np.array([floor - _down(obj) for obj in scene.objects])
        settled = (np.abs(ground[:, None] - m.y[:, -2:]) < _AT_REST).all(axis=1)
        collision_time = m.collision_time if m.collision_time <= scene.seconds else math.inf
        return cls(
            floor_bounces=m.floor_bounces.tolist(),
            wall_bounces=m.wall_bounces.tolist(),
            settled=[
                # without friction, one that still slides sideways never comes to rest
                bool(s) and obj.motion in ("fall", "throw") and obj.velocity[0] == 0
                for s, obj in zip(settled, scene.objects, strict=True)
            ],
            on_floor=[
                scene.background.kind == "sky_floor"
                and (
                    obj.motion == "throw"
                    or (obj.motion in ("still", "linear") and obj.velocity[1] == 0)
                )
                and not obj.spin
                and not obj.growth
                and abs(float(m.y[i, 0]) + _down(obj) - floor) < _ON_FLOOR
                for i, obj in enumerate(scene.objects)
            ],
            collision_time=collision_time,
            after=_after_collision(scene, aspect, collision_time),
            passes=checks.passes_behind(),
        )


def _down(obj: ObjectSpec) -> float:
    """How far the outline reaches below the centre, in short sides."""
    return geometry(obj.shape).down * vocab.SIZES[obj.size]


def _after_collision(scene: SceneSpec, aspect: float, when: float) -> dict[int, float]:
    if scene.collision is None or when > scene.seconds - 0.05:
        return {}
    times = torch.tensor([when + 0.01, scene.seconds], dtype=torch.float64)
    tracks = physics.simulate(physics.pack([scene], aspect), times)
    world_x = tracks.x[0] + tracks.camera[0]
    return {
        i: float(world_x[i, 1] - world_x[i, 0]) / float(times[1] - times[0])
        for i in scene.collision
    }


# ---- words -----------------------------------------------------------------------------------


class _Words:
    """Chooses words with the caption's rng and remembers which objects were introduced."""

    def __init__(self, scene: SceneSpec, rng: random.Random) -> None:
        self.scene, self.rng = scene, rng
        self.shape_word = [rng.choice(SHAPE_WORDS[o.shape]) for o in scene.objects]
        self.size_word = [rng.choice(SIZE_WORDS[o.size]) for o in scene.objects]
        self.introduced: set[int] = set()
        self.floor_named = False

    def pick(self, *options: str) -> str:
        return self.rng.choice(options)

    def noun(self, i: int, with_size: bool = True) -> str:
        """Object i as a noun phrase: "a small red ball" the first time, "the red ball" after."""
        obj = self.scene.objects[i]
        if i in self.introduced:
            return f"the {obj.color} {self.shape_word[i]}"
        self.introduced.add(i)
        size = f"{self.size_word[i]} " if with_size else ""
        return with_article(f"{size}{obj.color} {self.shape_word[i]}")

    def direction(self, velocity: tuple[float, float]) -> str:
        name = vocab.direction_name(velocity)
        return self.rng.choice(DIRECTION_WORDS[name]) if name else ""

    def floor(self) -> str:
        """The floor as a noun phrase: "the gray floor" the first time, "the floor" after."""
        if self.floor_named:
            return "the floor"
        self.floor_named = True
        return f"the {self.scene.background.color2} floor"


def with_article(phrase: str) -> str:
    """Prefix "a" or "an", by the sound of the first word (all our words sound as spelled)."""
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase


def count_words(times: int) -> str:
    """How many times, in words: once, twice, ... five times; above five, again and again."""
    return _TIMES.get(times, "again and again")


def _spin_words(spin: float) -> str:
    return "clockwise" if spin > 0 else "counter-clockwise"


def _speed_word(words: _Words, velocity: tuple[float, float]) -> str:
    speed = (velocity[0] ** 2 + velocity[1] ** 2) ** 0.5
    if speed < 0.15:
        return words.pick("slowly ", "gently ", "")
    if speed > 0.6:
        return words.pick("quickly ", "fast ", "")
    return ""


def _grows(words: _Words, growth: float, ing: bool = False) -> str:
    if ing:
        return (
            words.pick("growing", "getting bigger")
            if growth > 0
            else words.pick("shrinking", "getting smaller")
        )
    return (
        words.pick("grows larger", "swells", "gets bigger")
        if growth > 0
        else words.pick("shrinks", "gets smaller", "dwindles")
    )


def _bounce_count(times: int) -> str:
    """The floor bounces in words: bounces once, bounces twice, ... keeps bouncing above five."""
    return "keeps bouncing" if times > 5 else f"bounces {count_words(times)}"


# ---- long captions ---------------------------------------------------------------------------


def _long(scene: SceneSpec, facts: _Facts, w: _Words) -> str:
    # 1. the events that involve two objects, then every other object
    sentences, done = [], set()
    if scene.collision is not None and facts.collision_time < float("inf"):
        sentences.append(_collision_sentence(scene, facts, w))
        done |= set(scene.collision)
    for far, near in facts.passes:
        if far not in done and near not in done:
            sentences.append(_pass_sentence(scene, facts, w, far, near))
            done |= {far, near}
    followed = False
    for i, obj in enumerate(scene.objects):
        if i in done:
            continue
        if scene.camera_pan and obj.motion == "linear" and obj.velocity == (scene.camera_pan, 0.0):
            follow = w.pick("follows", "tracks", "keeps pace with")
            sentences.append(
                f"the camera {follow} {w.noun(i)} as it {_linear_phrase(scene, facts, w, i)}"
            )
            followed = True
        else:
            sentences.append(f"{w.noun(i)} {_motion_phrase(scene, facts, w, i)}")
    # 2. clauses into sentences, then the camera and the background
    body = _join_clauses(w, sentences)
    if scene.camera_pan and not followed:
        body = _with_camera(w, body, scene.camera_pan)
    body = _with_background(w, body, scene)
    return " ".join(_capitalise(s) + "." for s in body)


def _join_clauses(w: _Words, clauses: list[str]) -> list[str]:
    """Independent clauses as sentences, or joined by "while", "meanwhile" or commas."""
    if len(clauses) == 1:
        return clauses
    style = w.pick("sentences", "while", "and")
    if style == "sentences":
        return clauses
    if len(clauses) == 2:
        link = w.pick(", while ", "; meanwhile, ", ", as ") if style == "while" else ", and "
        return [clauses[0] + link + clauses[1]]
    return [", ".join(clauses[:-1]) + ", and " + clauses[-1]]


def _with_camera(w: _Words, sentences: list[str], pan: float) -> list[str]:
    side = w.pick("to the right", "right") if pan > 0 else w.pick("to the left", "left")
    speed = w.pick("slowly ", "") if abs(pan) < 0.1 else w.pick("steadily ", "")
    camera = f"the camera {speed}pans {side}"
    return _attach(w, sentences, f"as {camera},", f"as {camera}", camera)


def _with_background(w: _Words, sentences: list[str], scene: SceneSpec) -> list[str]:
    bg = scene.background
    if bg.kind == "solid":
        phrase = w.pick(
            f"on a plain {bg.color} background",
            f"against a {bg.color} backdrop",
            f"on a {bg.color} background",
        )
        sentence = w.pick(
            f"the background is plain {bg.color}", f"everything sits on a {bg.color} background"
        )
    elif bg.kind == "gradient":
        phrase = w.pick(
            f"against a {bg.color}-to-{bg.color2} gradient",
            f"on a background that fades from {bg.color} to {bg.color2}",
        )
        sentence = f"the background fades from {bg.color} at the top to {bg.color2} at the bottom"
    else:
        sky = with_article(f"{bg.color} sky")
        floor = (
            ""
            if w.floor_named
            else w.pick(f" over a {bg.color2} floor", f" above a {bg.color2} floor")
        )
        phrase = w.pick(f"under {sky}{floor}", f"beneath {sky}{floor}")
        sentence = f"the sky is {bg.color}" + (
            "" if w.floor_named else f" and the floor is {bg.color2}"
        )
    return _attach(w, sentences, f"{phrase},", phrase, sentence)


def _attach(w: _Words, sentences: list[str], before: str, after: str, alone: str) -> list[str]:
    """Add a phrase in front of the first sentence, after the last, or as a sentence."""
    where = w.pick("before", "after", "alone")
    if where == "before":
        return [f"{before} {sentences[0]}", *sentences[1:]]
    if where == "after":
        return [*sentences[:-1], f"{sentences[-1]} {after}"]
    return [*sentences, alone]


def _capitalise(sentence: str) -> str:
    return sentence[:1].upper() + sentence[1:]


def _motion_phrase(scene: SceneSpec, facts: _Facts, w: _Words, i: int) -> str:
    """What object i does, as a present-tense verb phrase: "drops onto the floor and bounces"."""
    motion = scene.objects[i].motion
    if motion == "still":
        return _still_phrase(scene, facts, w, i)
    if motion == "linear":
        return _linear_phrase(scene, facts, w, i)
    if motion == "bounce":
        return _bounce_phrase(scene, facts, w, i)
    if motion == "orbit":
        return _orbit_phrase(scene, w, i)
    return _ballistic_phrase(scene, facts, w, i)


def _extras(w: _Words, obj: ObjectSpec) -> str:
    """Spin and growth added to a moving object's phrase."""
    extra = ""
    if obj.spin:
        turn = _spin_words(obj.spin)
        extra += w.pick(
            f", spinning {turn}", f" while rotating {turn}", f", turning {turn} as it goes"
        )
    if obj.growth:
        extra += (
            w.pick(" and ", " while ") + _grows(w, obj.growth, ing=True)
            if obj.spin
            else f", {_grows(w, obj.growth, ing=True)} as it goes"
        )
    return extra


def _still_phrase(scene: SceneSpec, facts: _Facts, w: _Words, i: int) -> str:
    obj = scene.objects[i]
    if obj.spin:
        turn = _spin_words(obj.spin)
        phrase = w.pick(
            f"spins {turn} in place", f"rotates {turn} on the spot", f"turns {turn} without moving"
        )
        return phrase + (f" while {_grows(w, obj.growth, ing=True)}" if obj.growth else "")
    if obj.growth:
        return _grows(w, obj.growth) + w.pick(" in place", " without moving", "")
    if facts.on_floor[i]:
        floor = w.floor()
        return w.pick(f"rests on {floor}", f"sits still on {floor}", f"stands on {floor}")
    return w.pick("stays still", "sits still", "hangs in place", "stays where it is", "stays put")


def _linear_phrase(scene: SceneSpec, facts: _Facts, w: _Words, i: int) -> str:
    obj = scene.objects[i]
    if facts.on_floor[i]:
        verb = w.pick("slides", "glides", *(("rolls",) if obj.shape == "circle" else ()))
        where = f" along {w.floor()}"
    else:
        verb, where = w.pick("drifts", "glides", "slides", "moves", "travels", "floats"), ""
    return (
        f"{verb} {_speed_word(w, obj.velocity)}{w.direction(obj.velocity)}{where}{_extras(w, obj)}"
    )


def _bounce_phrase(scene: SceneSpec, facts: _Facts, w: _Words, i: int) -> str:
    obj, hits = scene.objects[i], facts.wall_bounces[i]
    heading = w.direction(obj.velocity)
    if hits == 0:
        return f"moves {heading}"
    times = count_words(hits)
    start = w.pick(f"heads {heading} and ", f"sets off {heading} and ", "")
    return start + w.pick(
        f"ricochets off the walls {times}",
        f"bounces off the edges of the frame {times}",
        f"bounces around the frame, hitting the walls {times}",
    )


def _orbit_phrase(scene: SceneSpec, w: _Words, i: int) -> str:
    obj = scene.objects[i]
    turn = _spin_words(obj.orbit_speed)
    phrase = w.pick(
        f"circles {turn}",
        f"orbits {turn} around a fixed point",
        f"goes round in a {turn} circle",
        f"loops {turn} around a point",
    )
    return phrase + _extras(w, obj)


def _ballistic_phrase(scene: SceneSpec, facts: _Facts, w: _Words, i: int) -> str:
    """Falls and throws: the flight, the landing and the visible floor bounces."""
    obj, bounces, settled = scene.objects[i], facts.floor_bounces[i], facts.settled[i]
    has_floor = scene.background.kind == "sky_floor"

    def floor() -> str:  # named when it is written, so "the gray floor" comes first
        return w.floor() if has_floor else "the bottom of the frame"

    if obj.motion == "fall":
        flight = w.pick("drops", "falls", "tumbles down", "drops down")
        onto = ("onto" if has_floor else "to") if bounces or settled else "toward"
        landed = f"{flight} {onto} {floor()}"
    else:  # a throw goes up and to one side, whatever its exact angle
        launch = w.pick("is thrown", "is tossed", "is launched", "flies")
        start = f" from {floor()}" if facts.on_floor[i] else ""
        arc = w.pick("in an arc", "along a parabola", "in a curved arc")
        side = (obj.velocity[0] > 0) - (obj.velocity[0] < 0)
        heading = w.direction((float(side), -1.0) if obj.velocity[1] < 0 else obj.velocity)
        landed = f"{launch} {heading}{start} {arc}"
        if bounces or settled:
            landed += w.pick(", lands on ", " and comes down on ") + floor()
    if bounces:
        landed += (" and " if obj.motion == "fall" else ", then ") + _bounce_count(bounces)
        if settled:
            landed += w.pick(
                " before coming to rest", " and then settles", " until it comes to rest"
            )
    elif settled:
        landed += w.pick(" and stays there", " without bouncing")
    if obj.motion == "fall" and obj.velocity[0]:
        landed += f", drifting {w.direction((obj.velocity[0], 0.0))}"
    return landed


def _collision_sentence(scene: SceneSpec, facts: _Facts, w: _Words) -> str:
    """Two objects meet head-on (or one catches up with the other) and what each does after."""
    first, second = scene.collision
    if scene.objects[first].motion == "still":  # the mover comes first
        first, second = second, first
    a, b = scene.objects[first], scene.objects[second]
    noun_a, noun_b = w.noun(first), w.noun(second)  # every template names a first
    verb = w.pick("slides", "glides", "moves", "rolls" if a.shape == "circle" else "slides")
    going = w.direction(a.velocity)
    if b.motion == "still":
        approach = w.pick(
            f"{noun_a} {verb} {going} and hits {noun_b}, which sits still",
            f"{noun_a} {verb} {going} into {noun_b}, which stands in its way",
        )
    elif a.velocity[0] * b.velocity[0] < 0:
        approach = w.pick(
            f"{noun_a} and {noun_b} move toward each other and collide head-on",
            f"{noun_a} {verb} {going} and collides head-on with {noun_b} coming the other way",
        )
    else:
        approach = f"{noun_a} {verb} {going} and catches up with {noun_b}, which is slower"
    if not facts.after:
        return approach
    outcome = " and ".join(
        f"{w.noun(i)} {_after_phrase(w, scene.objects[i], facts.after[i])}" for i in (first, second)
    )
    return approach + w.pick("; afterwards, ", ", and then ", ". After the collision, ") + outcome


def _after_phrase(w: _Words, obj: ObjectSpec, after: float) -> str:
    before = 0.0 if obj.motion == "still" else obj.velocity[0]
    going = w.direction((after, 0.0))
    if abs(after) < 0.02:
        return w.pick("stops", "comes to a stop", "stops dead")
    if before == 0:
        return w.pick(f"is knocked {going}", f"shoots off {going}", f"gets pushed {going}")
    if before * after > 0:
        return w.pick(f"keeps moving {going}", f"carries on {going}")
    return w.pick(f"bounces back {going}", f"rebounds {going}")


def _pass_sentence(scene: SceneSpec, facts: _Facts, w: _Words, far: int, near: int) -> str:
    """The far object goes behind the near one and comes out again."""
    if w.rng.random() < 0.5:  # the one in front first, in a sentence of its own
        front = f"{w.noun(near)} {_motion_phrase(scene, facts, w, near)}"
        moving = f"{w.noun(far)} {_motion_phrase(scene, facts, w, far)}"
        hide = w.pick(f", passes behind {w.noun(near)}", f" and slips behind {w.noun(near)}")
        return f"{front}. {_capitalise(moving)}{hide}" + w.pick(
            " and comes out the other side",
            ", reappearing on the other side",
            " before emerging again",
        )
    moving = f"{w.noun(far)} {_motion_phrase(scene, facts, w, far)}"
    hidden_by = w.noun(near)
    which = _motion_phrase(scene, facts, w, near)
    return f"{moving} and passes behind {hidden_by}, which {which}, " + w.pick(
        "then comes out the other side", "then reappears on the far side", "and emerges again"
    )


# ---- short captions --------------------------------------------------------------------------


def _short(scene: SceneSpec, facts: _Facts, w: _Words) -> str:
    sized = w.rng.random() < 0.5
    if scene.collision is not None and facts.collision_time < float("inf"):
        first, second = scene.collision
        a, b = w.noun(first, sized), w.noun(second, sized)
        core = w.pick(
            f"{a} and {b} colliding",
            f"{a} colliding with {b}",
            f"{a} and {b} bumping into each other",
        )
        done = {first, second}
    elif facts.passes:
        far, near = facts.passes[0]
        moving = w.pick("passing", "sliding", "moving")
        core = f"{w.noun(far, sized)} {moving} behind {w.noun(near, sized)}"
        done = {far, near}
    else:
        core, done = "", set()
    parts = [core] if core else []
    parts += [
        f"{w.noun(i, sized)} {_short_motion(scene, facts, w, i)}"
        for i in range(len(scene.objects))
        if i not in done
    ]
    phrase = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    if w.rng.random() < 0.6:
        phrase += _short_background(scene, w)
    if scene.camera_pan:
        side = "right" if scene.camera_pan > 0 else "left"
        phrase += w.pick(f", camera panning {side}", f" as the camera pans {side}")
    return phrase


def _short_motion(scene: SceneSpec, facts: _Facts, w: _Words, i: int) -> str:
    obj = scene.objects[i]
    extra = ""
    if obj.spin and obj.motion != "still":
        extra += f" while spinning {_spin_words(obj.spin)}"
    if obj.growth and (obj.motion != "still" or obj.spin):
        extra += (" and " if extra else " while ") + _grows(w, obj.growth, ing=True)
    if obj.motion == "still":
        if obj.spin:
            return f"spinning {_spin_words(obj.spin)}" + extra
        if obj.growth:
            return _grows(w, obj.growth, ing=True)
        return (
            "resting on the floor"
            if facts.on_floor[i]
            else w.pick("sitting still", "at rest", "staying put")
        )
    if obj.motion == "linear":
        verb = w.pick("drifting", "sliding", "gliding", "moving")
        return f"{verb} {_SHORT_DIRECTIONS[vocab.direction_name(obj.velocity)]}" + extra
    if obj.motion == "bounce" and facts.wall_bounces[i] == 0:
        return f"moving {_SHORT_DIRECTIONS[vocab.direction_name(obj.velocity)]}"
    if obj.motion == "bounce":
        return w.pick("bouncing around", "bouncing off the walls", "ricocheting around the frame")
    if obj.motion == "orbit":
        return w.pick("orbiting", "circling") + f" {_spin_words(obj.orbit_speed)}" + extra
    if obj.motion == "throw":
        return w.pick("thrown in an arc", "flying in an arc", "tossed in an arc")
    bounces = facts.floor_bounces[i] > 0
    if not (bounces or facts.settled[i]):
        return w.pick("falling", "dropping")
    if scene.background.kind != "sky_floor":
        return w.pick("falling and bouncing", "dropping and bouncing") if bounces else "falling"
    floor = w.floor() if w.floor_named else f"a {scene.background.color2} floor"
    w.floor_named = True
    if bounces:
        return w.pick("bouncing on ", "dropping and bouncing on ") + floor
    return w.pick("dropping onto ", "falling onto ") + floor


def _short_background(scene: SceneSpec, w: _Words) -> str:
    bg = scene.background
    if bg.kind == "solid":
        return w.pick(f" on {bg.color}", f" on a {bg.color} background")
    if bg.kind == "gradient":
        return f" on a {bg.color}-to-{bg.color2} gradient"
    if w.floor_named:
        return f" under {with_article(bg.color)} sky"
    return w.pick(f" on a {bg.color2} floor", f" under {with_article(bg.color)} sky")
