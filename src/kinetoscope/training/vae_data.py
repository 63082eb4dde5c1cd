"""Training batches for the video autoencoder: an infinite, seeded stream that can resume.

Every batch is float (B, 3, T, S, S) in [-1, 1] and mixes three kinds of clip (weights in
`VAEDataConfig`):

- ``world``: a physics-world scene (`sample_scene`, scene seeds below `HELD_OUT_SEED_START`)
  of a random aspect (1:1, 16:9, 9:16) and duration, rendered on the fly with its short side
  at S (or a little more) and cut to S x S at a random place and a random start frame.
- ``camera``: a real photograph filmed by a virtual camera that pans along a smooth curve,
  zooms and turns a little (one affine `grid_sample` per frame), so the temporal path sees
  real textures in motion.
- ``still``: a random view of a real photograph, the same in every frame.

With probability ``image_batch_probability`` a batch is of images instead (T = 1): the
causal encoder codes a clip's first frame on its own, so images train that path directly.

Real photographs come from scikit-image's bundled data images (no download) and, optionally,
image folders (for example Debian's wallpaper packages). Nothing from Debian's opencv-doc
package may be used: its example videos are the held-out real-video evaluation set, and
folders under it are refused.

Determinism: batch ``step`` is a pure function of (config, step): every draw comes from a
generator seeded with (config.seed, step). So the stream's state is just the next step, and
a resumed run sees exactly the batches an uninterrupted one would. With ``workers > 0`` the
batches are made in DataLoader worker processes, in the same order and with the same bytes.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from kinetoscope.errors import KinetoscopeError, SpecError
from kinetoscope.world.render import render_batch
from kinetoscope.world.sampler import sample_scene
from kinetoscope.world.spec import SceneSpec, frame_count

# Scene seeds at or above this are never drawn for training: evaluation takes its physics-world
# clips from there (see benchmarks/vae_quality.py), on top of the sampler's held-out
# colour x shape x motion combinations, which `sample_scene` never draws anyway.
HELD_OUT_SEED_START = 2**31
SCENE_ATTEMPTS = 100  # seeds tried from a drawn one on until the sampler fills a scene
FORBIDDEN_IMAGE_SOURCE = "opencv-doc"  # the real-video evaluation set lives in this package

# scikit-image's data images that ship inside the wheel (others would need a download)
SKIMAGE_IMAGES: tuple[str, ...] = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "colorwheel",
    "logo",
    "motorcycle_left",
    "motorcycle_right",
    "brick",
    "camera",
    "clock",
    "coins",
    "grass",
    "gravel",
    "moon",
    "page",
    "text",
)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
KINDS = ("world", "camera", "still")
WEIGHT_FIELDS = tuple(f"{kind}_weight" for kind in KINDS)  # VAEDataConfig's, in KINDS order


@dataclass(frozen=True)
class VAEDataConfig:
    """What the training batches hold. Weights are relative; a weight of 0 turns a kind off."""

    batch_size: int = 8
    size: int = 128  # S: frames are S x S
    frames: int = 17  # T = 1 + 4k
    seed: int = 0
    world_weight: float = 0.5
    camera_weight: float = 0.35
    still_weight: float = 0.15
    image_batch_probability: float = 0.1  # a batch of 1-frame images instead of clips
    aspects: tuple[tuple[float, float], ...] = ((1.0, 1.0), (16 / 9, 1.0), (9 / 16, 1.0))
    world_seconds: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0)  # those too short for T are skipped
    world_zoom: tuple[float, float] = (1.0, 1.5)  # short side rendered at S x U(low, high)
    fps: float = 16.0
    skimage_images: tuple[str, ...] = SKIMAGE_IMAGES
    image_folders: tuple[str, ...] = ()  # more photographs (png, jpg, ...), searched recursively
    max_pan: float = 0.03  # camera travel per frame, in view widths
    max_zoom: float = 1.5  # zoom factor over a camera clip, in or out
    max_rotation: float = 8.0  # degrees the camera turns over a clip
    max_tilt: float = 4.0  # degrees a view may start turned by
    overfit: bool = False  # every step gets batch 0: for debugging a model on one batch

    def weights(self) -> tuple[float, ...]:
        """The (world, camera, still) weights, in `KINDS` order."""
        return tuple(getattr(self, name) for name in WEIGHT_FIELDS)

    def validate(self) -> VAEDataConfig:
        """Raise KinetoscopeError naming the first bad field; return self."""
        if self.batch_size < 1:
            raise KinetoscopeError(f"batch size must be at least 1, got {self.batch_size}")
        if self.size < 8 or self.size % 8:
            raise KinetoscopeError(f"size must be a multiple of 8, at least 8, got {self.size}")
        if self.frames < 1 or (self.frames - 1) % 4:
            raise KinetoscopeError(
                f"frames must be 1 + 4k (1, 5, 9, 17, 33, 65, ...), got {self.frames}"
            )
        weights = self.weights()
        if not all(math.isfinite(w) and w >= 0 for w in weights) or sum(weights) <= 0:
            raise KinetoscopeError(
                f"data weights must be finite and >= 0, not all 0, got {weights}"
            )
        if not 0 <= self.image_batch_probability <= 1:
            raise KinetoscopeError(
                f"image_batch_probability must be in [0, 1], got {self.image_batch_probability}"
            )
        if not self.aspects or any(a <= 0 or w < 0 for a, w in self.aspects):
            raise KinetoscopeError(f"aspects must be (aspect > 0, weight >= 0), got {self.aspects}")
        low, high = self.world_zoom
        if not 1 <= low <= high:
            raise KinetoscopeError(f"world_zoom must be 1 <= low <= high, got {self.world_zoom}")
        if self.camera_weight + self.still_weight > 0 and not (
            self.skimage_images or self.image_folders
        ):
            raise KinetoscopeError("camera and still clips need images: none are configured")
        unknown = sorted(set(self.skimage_images) - set(SKIMAGE_IMAGES))
        if unknown:
            raise KinetoscopeError(
                f"unknown scikit-image images {unknown}; known: {SKIMAGE_IMAGES}"
            )
        for folder in self.image_folders:
            _check_image_folder(folder)
        return self

    def to_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> VAEDataConfig:
        """The inverse of `to_dict`, also for its JSON form (lists instead of tuples)."""
        return cls(**{key: _tuples(value) for key, value in data.items()})


def _tuples(value: object) -> object:
    return tuple(_tuples(v) for v in value) if isinstance(value, list | tuple) else value


def _check_image_folder(folder: str) -> None:
    path = Path(folder)
    if FORBIDDEN_IMAGE_SOURCE in path.resolve().parts or FORBIDDEN_IMAGE_SOURCE in str(path):
        raise KinetoscopeError(
            f"{folder}: images from Debian's opencv-doc package are the held-out evaluation "
            "set and must not be trained on"
        )
    if not path.is_dir():
        raise KinetoscopeError(f"image folder {folder} does not exist")


# ---- the stream ------------------------------------------------------------------------------


class SeededStream:
    """A batch stream whose state is its next step and its seed (a batch is a pure function
    of both): what a checkpoint saves and a resumed run restores."""

    step: int
    config: Any  # a data config with a ``seed``
    _iterator: Iterator[Any] | None

    def state_dict(self) -> dict[str, int]:
        return {"step": self.step, "seed": self.config.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state.get("seed", self.config.seed) != self.config.seed:
            raise KinetoscopeError(
                f"the saved data stream used seed {state['seed']}, this one {self.config.seed}"
            )
        self.step = int(state["step"])
        self._iterator = None


class VAEBatchStream(SeededStream):
    """An infinite iterator of training batches; ``state_dict()`` is all a resume needs.

    ``next(stream)`` gives batch ``stream.step`` and advances the step. ``workers > 0`` makes
    batches ahead of time in that many processes (same batches, same order).
    """

    def __init__(self, config: VAEDataConfig, step: int = 0, workers: int = 0) -> None:
        self.config = config.validate()
        self.step = step
        self.workers = workers
        self._iterator: Iterator[Tensor] | None = None

    def __iter__(self) -> VAEBatchStream:
        return self

    def __next__(self) -> Tensor:
        if self._iterator is None:
            self._iterator = self._start(self.step)
        batch = next(self._iterator)
        self.step += 1
        return to_model_range(batch)

    def batch(self, step: int) -> Tensor:
        """Batch number ``step``, without moving the stream."""
        return to_model_range(make_batch(self.config, step))

    def _start(self, step: int) -> Iterator[Tensor]:
        if self.workers == 0:
            return (make_batch(self.config, s) for s in itertools.count(step))
        loader = torch.utils.data.DataLoader(
            _BatchAt(self.config),
            batch_size=None,
            sampler=itertools.count(step),  # type: ignore[arg-type]
            num_workers=self.workers,
            worker_init_fn=_one_thread,
            prefetch_factor=4,
            # its own generator: a DataLoader otherwise draws its base seed from torch's
            # global RNG, which would make a resumed run's randomness differ
            generator=torch.Generator().manual_seed(self.config.seed),
        )
        return iter(loader)


class _BatchAt(torch.utils.data.Dataset):
    """Map-style view of the stream for DataLoader workers: index = step."""

    def __init__(self, config: VAEDataConfig) -> None:
        self.config = config

    def __getitem__(self, step: int) -> Tensor:
        return make_batch(self.config, step)


def _one_thread(_: int) -> None:
    torch.set_num_threads(1)  # workers share the cores with each other and the training loop


def to_model_range(frames: Tensor) -> Tensor:
    """uint8 (B, 3, T, H, W) -> float32 in [-1, 1]."""
    return frames.float() / 127.5 - 1.0


# ---- one batch -------------------------------------------------------------------------------


def make_batch(config: VAEDataConfig, step: int) -> Tensor:
    """Batch ``step`` as uint8 (B, 3, T, S, S): a pure function of (config, step)."""
    step = 0 if config.overfit else step
    rng = np.random.default_rng([config.seed, step])
    frames = 1 if rng.random() < config.image_batch_probability else config.frames
    weights = np.array(config.weights())
    kinds = rng.choice(len(KINDS), size=config.batch_size, p=weights / weights.sum())
    clips: list[Tensor | None] = [None] * config.batch_size
    world = [i for i, kind in enumerate(kinds) if KINDS[kind] == "world"]
    for i, clip in zip(world, world_clips(config, rng, len(world), frames), strict=True):
        clips[i] = clip
    for i, kind in enumerate(kinds):
        if KINDS[kind] != "world":
            image = _pick_image(config, rng)
            moving = KINDS[kind] == "camera" and frames > 1
            clips[i] = camera_clip(image, config, rng, frames, moving)
    return torch.stack(clips)  # type: ignore[arg-type]


def world_clips(
    config: VAEDataConfig, rng: np.random.Generator, count: int, frames: int
) -> list[Tensor]:
    """``count`` physics-world clips, uint8 (3, T, S, S) each: scenes of random aspect and
    duration, rendered with the short side at S x zoom, cut to S x S at random."""
    if count == 0:
        return []
    size = config.size
    zoom = rng.uniform(*config.world_zoom)  # one per batch, so same-aspect scenes render together
    aspect_values = np.array([a for a, _ in config.aspects])
    aspect_weights = np.array([w for _, w in config.aspects])
    long_enough = [s for s in config.world_seconds if frame_count(s, config.fps) >= frames]
    durations = long_enough or [(frames - 1) / config.fps]
    plans = []  # (aspect, scene, first frame)
    for _ in range(count):
        aspect = float(rng.choice(aspect_values, p=aspect_weights / aspect_weights.sum()))
        seconds = float(rng.choice(durations))
        scene = sample_training_scene(int(rng.integers(HELD_OUT_SEED_START)), aspect, seconds)
        start = int(rng.integers(scene.frame_count(config.fps) - frames + 1))
        plans.append((aspect, scene, start))
    clips: list[Tensor | None] = [None] * count
    for aspect in sorted({aspect for aspect, _, _ in plans}):
        members = [i for i, plan in enumerate(plans) if plan[0] == aspect]
        short = max(size, round(size * zoom))
        width, height = (
            (round(short * aspect), short) if aspect >= 1 else (short, round(short / aspect))
        )
        needed = max(plans[i][2] for i in members) + frames
        rendered = render_batch([plans[i][1] for i in members], width, height, config.fps, needed)
        for i, video in zip(members, rendered, strict=True):  # video: (needed, H, W, 3)
            top = int(rng.integers(height - size + 1))
            left = int(rng.integers(width - size + 1))
            start = plans[i][2]
            clip = video[start : start + frames, top : top + size, left : left + size]
            clips[i] = clip.permute(3, 0, 1, 2).contiguous()  # (3, T, S, S)
    return clips  # type: ignore[return-value]


def sample_training_scene(seed: int, aspect: float, seconds: float) -> SceneSpec:
    """The scene of the first seed from ``seed`` on that the sampler can fill at that aspect
    and duration; seeds stay below `HELD_OUT_SEED_START`. Both trainers draw scenes here."""
    for attempt in range(SCENE_ATTEMPTS):
        try:
            return sample_scene((seed + attempt) % HELD_OUT_SEED_START, aspect, seconds)
        except SpecError:
            continue
    raise KinetoscopeError(
        f"no scene could be sampled from seed {seed} on ({aspect=}, {seconds} s)"
    )


def camera_clip(
    image: Tensor, config: VAEDataConfig, rng: np.random.Generator, frames: int, moving: bool
) -> Tensor:
    """A virtual camera over ``image`` (uint8 (3, H, W)): uint8 (3, T, S, S).

    A still (``moving=False``) is one random view repeated. A moving camera follows a
    quadratic Bezier path between two random points, eased, while its view grows or shrinks
    geometrically (zoom) and turns linearly (rotation); the whole path is planned inside the
    image, so no frame ever shows past its edge.
    """
    size = config.size
    height, width = image.shape[1:]
    # 1. orientation and zoom over the clip
    tilt = math.radians(config.max_tilt) * rng.uniform(-1, 1)
    turn = math.radians(config.max_rotation) * rng.uniform(-1, 1) if moving else 0.0
    zoom = math.exp(math.log(config.max_zoom) * rng.uniform(-1, 1)) if moving else 1.0
    widest = max(abs(tilt), abs(tilt + turn))
    reach = math.cos(widest) + math.sin(widest)  # a turned square's half-extent per half-side
    # 2. view sides (pixels of the image) at the start and the end, the larger fitting inside
    largest = min(height, width) / reach
    smallest = min(largest, max(0.75 * size, 0.2 * min(height, width)))
    big = math.exp(rng.uniform(math.log(smallest), math.log(largest)))
    side_start, side_end = (big, big / zoom) if zoom >= 1 else (big * zoom, big)
    # 3. a path for the view's centre inside the box where the largest view fits
    margin = big / 2 * reach
    low, high = np.array([margin, margin]), np.array([width - margin, height - margin])
    start = rng.uniform(low, high)
    travel = rng.uniform(0, config.max_pan) * (frames - 1) * (side_start + side_end) / 2
    direction = rng.normal(size=2)
    direction /= np.linalg.norm(direction) + 1e-12
    end = np.clip(start + travel * direction, low, high)
    bend = np.array([-direction[1], direction[0]]) * travel * rng.uniform(-0.3, 0.3)
    middle = np.clip((start + end) / 2 + bend, low, high)
    # 4. per-frame camera: eased time, Bezier centre, geometric zoom, linear turn
    t = np.linspace(0.0, 1.0, frames) if moving else np.zeros(frames)
    ease = rng.uniform(0, 1)
    tau = (1 - ease) * t + ease * t * t * (3 - 2 * t)  # blend of constant speed and smoothstep
    centre = (
        ((1 - tau) ** 2)[:, None] * start
        + (2 * (1 - tau) * tau)[:, None] * middle
        + (tau**2)[:, None] * end
    )  # (T, 2) pixels (x, y)
    side = side_start * (side_end / side_start) ** tau  # (T,)
    angle = tilt + turn * tau  # (T,)
    # 5. shrink the image first (antialiased) so the smallest view is about S pixels: then the
    # bilinear sampling below never skips pixels; theta is in normalised units, unchanged by it
    picture = image.float()[None]  # (1, 3, H, W)
    shrink = float(side.min()) / size
    if shrink > 1:
        new_size = (max(1, round(height / shrink)), max(1, round(width / shrink)))
        picture = F.interpolate(picture, size=new_size, mode="bilinear", antialias=True)
    if rng.random() < 0.5:
        picture = picture.flip(-1)  # mirrored photographs are photographs too
    # output (u, v) in [-1, 1] -> image point centre + R(angle) (u, v) side / 2, normalised
    cos, sin = np.cos(angle), np.sin(angle)
    theta = np.stack(
        [
            np.stack([side * cos / width, -side * sin / width, 2 * centre[:, 0] / width - 1], -1),
            np.stack([side * sin / height, side * cos / height, 2 * centre[:, 1] / height - 1], -1),
        ],
        axis=1,
    )  # (T, 2, 3)
    views = frames if moving else 1
    grid = F.affine_grid(
        torch.from_numpy(theta[:views]).float(), [views, 3, size, size], align_corners=False
    )  # (views, S, S, 2)
    sampled = F.grid_sample(
        picture.expand(views, -1, -1, -1), grid, mode="bilinear", align_corners=False
    )  # (views, 3, S, S)
    clip = sampled.round().clamp(0, 255).to(torch.uint8).transpose(0, 1)  # (3, views, S, S)
    return clip.expand(-1, frames, -1, -1).contiguous()  # a still repeats its one view


# ---- images ----------------------------------------------------------------------------------


def _pick_image(config: VAEDataConfig, rng: np.random.Generator) -> Tensor:
    bank = image_bank(config.skimage_images, config.image_folders)
    return bank[int(rng.integers(len(bank)))]


@functools.cache
def image_bank(skimage_names: Sequence[str], folders: Sequence[str]) -> tuple[Tensor, ...]:
    """The photographs, uint8 (3, H, W) each, loaded once per process, in a fixed order."""
    images = [_skimage_image(name) for name in skimage_names]
    for folder in folders:
        _check_image_folder(folder)
        paths = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        images += [_file_image(path) for path in paths]
    if not images:
        raise KinetoscopeError("no images found for camera and still clips")
    return tuple(images)


def _skimage_image(name: str) -> Tensor:
    try:
        import skimage.data
    except ImportError:
        raise KinetoscopeError(
            "training on photographs needs scikit-image: pip install 'kinetoscope[train]'"
        ) from None
    if name.startswith("motorcycle_"):
        left, right, _ = skimage.data.stereo_motorcycle()
        array = left if name == "motorcycle_left" else right
    else:
        array = getattr(skimage.data, name)()
    return _as_rgb(np.asarray(array))


def _file_image(path: Path) -> Tensor:
    from kinetoscope.io.video import read_video  # FFmpeg reads a PNG or JPEG as one frame

    frame = read_video(path, max_frames=1).frames[0]  # (H, W, 3) uint8
    return frame.permute(2, 0, 1).contiguous()


def _as_rgb(array: np.ndarray) -> Tensor:
    """Grey, RGB or RGBA (H, W[, C]) of any dtype -> uint8 (3, H, W)."""
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    elif array.dtype != np.uint8:
        array = np.clip(array * (255 if array.max() <= 1 else 1), 0, 255).astype(np.uint8)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    if array.shape[-1] == 4:  # composite over white, as a viewer would show it
        alpha = array[..., 3:].astype(np.float32) / 255
        array = (array[..., :3] * alpha + 255 * (1 - alpha)).round().astype(np.uint8)
    return torch.from_numpy(np.ascontiguousarray(array[..., :3])).permute(2, 0, 1).contiguous()
