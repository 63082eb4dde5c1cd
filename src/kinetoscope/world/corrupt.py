"""Corruptions of physics-world clips, for validating the judge as an instrument.

Each corruption breaks one thing a video can get wrong, and names the judge dimensions it must
lower; every other dimension should stay where it was. Pixel corruptions act on the frames;
object corruptions (a wrong colour, an object vanishing, an object duplicated) re-render the
scene with the change made to its spec, so nothing else in the clip changes.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from kinetoscope.world import physics, vocab
from kinetoscope.world.render import render_batch
from kinetoscope.world.shapes import geometry
from kinetoscope.world.spec import SceneSpec


@dataclass(frozen=True)
class Corruption:
    name: str
    lowers: tuple[str, ...]  # judge dimensions this corruption must lower
    description: str
    # dimensions it may lower too, because the physics ties them together (a bounce played
    # backwards gains height: wrong direction and wrong physics at once)
    may_lower: tuple[str, ...] = ()


CORRUPTIONS: dict[str, Corruption] = {
    c.name: c
    for c in (
        Corruption("wrong_color", ("color",), "one object drawn in another named colour"),
        Corruption("mirrored", ("motion_direction",), "frames flipped left to right"),
        Corruption(
            "reversed",
            ("motion_direction",),
            "frames played backwards",
            may_lower=("trajectory",),  # a bounce played backwards gains height
        ),
        Corruption(
            "shuffled",
            ("temporal_consistency", "trajectory"),
            "frames in random order",
            # with time scrambled, so is everything measured along it
            may_lower=("motion_direction", "size", "permanence"),
        ),
        Corruption("vanish", ("permanence",), "an object disappears mid-clip, in the open"),
        Corruption("duplicate", ("object_count",), "a copy of an object moves beside it"),
        Corruption(
            "flicker",
            ("temporal_consistency", "background_stability"),
            "brightness jumps by up to 20% from frame to frame",
        ),
        Corruption("noise", ("background_stability",), "gaussian noise, sigma 25 levels"),
        Corruption(
            "frozen",
            ("motion_direction", "trajectory"),
            "the first frame held",
            may_lower=("size",),  # a growing object stays at its first size
        ),
    )
}


def applies(name: str, scene: SceneSpec) -> bool:
    """Whether corruption `name` changes what the judge should see in `scene` (mirroring a
    clip with no sideways motion, say, leaves a correct clip)."""
    moving = [
        o
        for o in scene.objects
        if o.motion != "still" or o.growth or (o.spin and o.shape != "circle")
    ]
    if name == "mirrored":
        sideways = any(
            abs(o.velocity[0]) > 0.05 or o.motion == "orbit" or (o.spin and o.shape != "circle")
            for o in scene.objects
        )
        return sideways or scene.camera_pan != 0
    if name == "reversed":
        return _reversal_shows(scene)
    if name in ("shuffled", "frozen"):
        return bool(moving) or scene.camera_pan != 0
    return True


def _reversal_shows(scene: SceneSpec) -> bool:
    """Whether playing the scene backwards changes how something starts out: played
    backwards, an object starts with minus its final velocity (a swap of velocities in a
    head-on collision of equal masses looks the same both ways), and gravity, spin and
    growth all run the wrong way."""
    if any(o.motion in ("fall", "throw") or o.growth for o in scene.objects):
        return True
    if any(o.spin and o.shape != "circle" for o in scene.objects):
        return True
    dt = 1 / 32
    times = torch.tensor([0.0, dt, scene.seconds - dt, scene.seconds], dtype=torch.float64)
    tracks = physics.simulate(physics.pack([scene], 1.0), times)
    start = torch.stack(
        [tracks.x[0, :, 1] - tracks.x[0, :, 0], tracks.y[0, :, 1] - tracks.y[0, :, 0]], -1
    )
    end = torch.stack(
        [tracks.x[0, :, 3] - tracks.x[0, :, 2], tracks.y[0, :, 3] - tracks.y[0, :, 2]], -1
    )
    backwards = -end
    moving = (start.norm(dim=-1) > 1e-4) | (backwards.norm(dim=-1) > 1e-4)
    cosine = torch.nn.functional.cosine_similarity(start, backwards, dim=-1)
    return bool((moving & (cosine < math.cos(math.radians(45)))).any())


def corrupt(name: str, scene: SceneSpec, frames: Tensor, fps: float, seed: int = 0) -> Tensor:
    """Apply corruption `name` to `frames`, uint8 (T, H, W, 3), a render of `scene`."""
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; choose from {', '.join(CORRUPTIONS)}")
    rng = random.Random(seed)
    if name in _PIXEL:
        return _PIXEL[name](frames, rng)
    return _OBJECT[name](scene, frames, fps)


def _rerender(scene: SceneSpec, like: Tensor, fps: float) -> Tensor:
    """Render `scene` with the size and frame count of the frames `like`."""
    return render_batch([scene], like.shape[2], like.shape[1], fps, len(like))[0]


# ---- pixel corruptions -----------------------------------------------------------------------


def _flicker(frames: Tensor, rng: random.Random) -> Tensor:
    gains = torch.tensor([1 + rng.uniform(-0.2, 0.2) for _ in range(len(frames))])
    return (frames.float() * gains[:, None, None, None]).round().clamp(0, 255).to(torch.uint8)


def _noise(frames: Tensor, rng: random.Random) -> Tensor:
    generator = torch.Generator().manual_seed(rng.randrange(2**31))
    noise = torch.randn(frames.shape, generator=generator) * 25
    return (frames.float() + noise).round().clamp(0, 255).to(torch.uint8)


def _shuffled(frames: Tensor, rng: random.Random) -> Tensor:
    order = list(range(len(frames)))
    rng.shuffle(order)
    return frames[order]


_PIXEL: dict[str, Callable[[Tensor, random.Random], Tensor]] = {
    "mirrored": lambda frames, rng: frames.flip(2),
    "reversed": lambda frames, rng: frames.flip(0),
    "shuffled": _shuffled,
    "flicker": _flicker,
    "noise": _noise,
    "frozen": lambda frames, rng: frames[:1].expand_as(frames).contiguous(),
}


# ---- object corruptions (re-rendered) --------------------------------------------------------


def _wrong_color(scene: SceneSpec, frames: Tensor, fps: float) -> Tensor:
    """Object 0 in the named colour furthest from its own that the scene still allows."""
    target = scene.objects[0]
    taken = {o.color for o in scene.objects}
    backgrounds = [scene.background.color, scene.background.color2 or scene.background.color]
    options = [
        c
        for c in vocab.OBJECT_COLORS
        if c not in taken
        and all(vocab.color_distance(vocab.COLORS[c], vocab.COLORS[b]) >= 150 for b in backgrounds)
    ]
    furthest = max(
        options, key=lambda c: vocab.color_distance(vocab.COLORS[c], vocab.COLORS[target.color])
    )
    objects = (dataclasses.replace(target, color=furthest), *scene.objects[1:])
    return _rerender(dataclasses.replace(scene, objects=objects), frames, fps)


def _vanish(scene: SceneSpec, frames: Tensor, fps: float) -> Tensor:
    """From some frame in the middle of the clip on, one object's pixels show what is behind
    it: the object and the frame (30% to 70% of the way) where it stands clearest of the
    others and of the frame's edges, so that its going cannot pass for hiding or leaving.

    Its footprint is where a render with the object recoloured differs from the clip (so
    anti-aliased edges are included); those pixels come from a render without it.
    """
    index, start = _clearest(scene, frames, fps)
    target = scene.objects[index]
    marker = next(c for c in vocab.OBJECT_COLORS if c != target.color)
    objects = list(scene.objects)
    objects[index] = dataclasses.replace(target, color=marker)
    recoloured = _rerender(dataclasses.replace(scene, objects=tuple(objects)), frames, fps)
    footprint = (recoloured != frames).any(dim=-1, keepdim=True)  # (T, H, W, 1)
    if len(scene.objects) == 1:
        # nothing else to draw: an object pushed far outside the frame leaves the background
        gone = dataclasses.replace(
            target, size="small", x=-0.9, y=-0.9, motion="still", spin=0.0, growth=0.0
        )
        behind = _rerender(dataclasses.replace(scene, objects=(gone,)), frames, fps)
    else:
        rest = tuple(o for i, o in enumerate(scene.objects) if i != index)
        behind = _rerender(dataclasses.replace(scene, objects=rest, collision=None), frames, fps)
    clip = frames.clone()
    clip[start:] = torch.where(footprint[start:], behind[start:], frames[start:])
    return clip


def _clearest(scene: SceneSpec, frames: Tensor, fps: float) -> tuple[int, int]:
    """(object, frame) with the largest gap between the object's outline and any other
    object or the frame's edge, over frames 30% to 70% of the way through; objects outside a
    collision first."""
    aspect = frames.shape[2] / frames.shape[1]
    first, last = int(0.3 * len(frames)), max(int(0.7 * len(frames)), int(0.3 * len(frames)) + 1)
    candidates = torch.arange(first, last)
    tracks = physics.simulate(physics.pack([scene], aspect), candidates.double() / fps)
    width, height = physics.world_size(aspect)
    x, y = tracks.x[0], tracks.y[0]  # (N, T)
    reach = torch.stack(
        [
            geometry(o.shape).outer * vocab.SIZES[o.size] * tracks.scale[0, j]
            for j, o in enumerate(scene.objects)
        ]
    )  # (N, T)
    gap = torch.minimum(torch.minimum(x, width - x), torch.minimum(y, height - y)) - reach
    for i in range(len(scene.objects)):
        for j in range(len(scene.objects)):
            if i != j:
                apart = torch.hypot(x[i] - x[j], y[i] - y[j]) - reach[i] - reach[j]
                gap[i] = torch.minimum(gap[i], apart)
    outside = [i for i in range(len(scene.objects)) if i not in (scene.collision or ())]
    rows = outside or list(range(len(scene.objects)))
    best = int(gap[rows].argmax())
    return rows[best // gap.shape[1]], int(candidates[best % gap.shape[1]])


def _duplicate(scene: SceneSpec, frames: Tensor, fps: float) -> Tensor:
    """Object 0 gets a twin, offset so that it stays in frame and clear of the others."""
    aspect = frames.shape[2] / frames.shape[1]
    target = scene.objects[0]
    steps = [k * 0.1 for k in range(-6, 7)]
    offsets = sorted(((dx, dy) for dx in steps for dy in steps), key=lambda d: math.hypot(*d))
    for dx, dy in offsets:  # nearest first, and clearly beside the original
        if math.hypot(dx, dy) < 0.2:
            continue
        twin = dataclasses.replace(target, x=target.x + dx, y=target.y + dy)
        candidate = dataclasses.replace(scene, objects=(*scene.objects, twin))
        if _clear(candidate, len(scene.objects), aspect):
            return _rerender(candidate, frames, fps)
    raise ValueError("no room for a duplicate in this scene")


def _clear(scene: SceneSpec, index: int, aspect: float) -> bool:
    """Object `index` stays in frame and away from every other object the whole clip."""
    steps = max(2, int(scene.seconds * 32) + 1)
    times = torch.linspace(0, scene.seconds, steps, dtype=torch.float64)
    tracks = physics.simulate(physics.pack([scene], aspect), times)
    width, height = physics.world_size(aspect)
    reach = [
        geometry(o.shape).outer * vocab.SIZES[o.size] * tracks.scale[0, j]
        for j, o in enumerate(scene.objects)
    ]
    x, y = tracks.x[0, index], tracks.y[0, index]
    floor = scene.floor_y * height
    inside = (x - reach[index] > 0.01) & (x + reach[index] < width - 0.01)
    down = geometry(scene.objects[index].shape).down * vocab.SIZES[scene.objects[index].size]
    inside &= (y - reach[index] > 0.01) & (y + down * tracks.scale[0, index] <= floor + 1e-6)
    if not bool(inside.all()):
        return False
    for j in range(len(scene.objects)):
        if j != index:
            gap = torch.hypot(x - tracks.x[0, j], y - tracks.y[0, j]) - reach[index] - reach[j]
            if bool((gap < 0.02).any()):
                return False
    return True


_OBJECT: dict[str, Callable[[SceneSpec, Tensor, float], Tensor]] = {
    "wrong_color": _wrong_color,
    "vanish": _vanish,
    "duplicate": _duplicate,
}
