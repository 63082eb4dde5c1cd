"""Training batches of the diffusion transformer: captioned clips, bucketed, as latents.

A batch is a `LatentBatch`: the normalised VAE latents (b, 16, t, h, w) of b clips of one
`Bucket` shape, and their captions encoded by the frozen text encoder. It is made in three
stages:

1. Plan (`plan_batch`): the step's bucket (`BucketSampler`, shared by every rank) and, for each
   sample index of the global batch, a draw from its own generator seeded with
   (seed, step, index): the source, the clip and the caption wording. A rank plans only its
   own indices (`rank_indices`), and the union over ranks is exactly the one-process batch.
2. Pixels (`make_pixels`), for the samples not in the cache:
   - ``world``: a physics-world scene, `sample_scene` of a seed below `HELD_OUT_SEED_START`
     (evaluation takes its scenes from there; the sampler never draws held-out colour x shape
     x motion combinations anyway) at the bucket's aspect and duration, rendered with
     `render_batch` at the bucket's size and fps; captioned by `world.captions.caption` in a
     drawn style and wording.
   - ``video``: a folder of video files and a ``captions.jsonl`` with lines
     ``{"video": "name.mp4", "caption": "..."}`` (`VideoFolder`). A clip is the file's first
     ``bucket.frames`` frames at the bucket's fps (the nearest source frame for each output
     time), scaled to cover the bucket's size and centre-cropped. A file too short for the
     bucket is passed over for the next one in the sample's own random order.
3. Latents (`DiTBatchStream`): pixels -> VAE posterior mean -> `normalize_latents`; captions
   -> `TextEncoder.encode`. With the cache on, each clip's latents are stored once per
   (VAE, bucket, clip) and each caption's embedding once per caption, as safetensors, so later
   epochs skip rendering, decoding and both encoders. ``world_scenes`` keeps the physics
   world's scene seeds to a finite set so that clips do repeat.

Determinism: a batch is a pure function of (config, step, rank, world size) and of the files
it reads, whether it comes from the cache or not (the cache stores exactly what would be
computed, up to the float rounding of batching), so a resumed run sees the batches an
uninterrupted one would. With ``workers > 0`` stages 1-2 run in DataLoader processes, ahead.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
import os
import secrets
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor

from kinetoscope.errors import KinetoscopeError
from kinetoscope.io.video import read_video
from kinetoscope.models.text import TextEmbedding, TextEncoder, load_text_encoder
from kinetoscope.models.vae import VideoVAE
from kinetoscope.training.buckets import (
    ASPECTS,
    WEIGHTINGS,
    Bucket,
    BucketSampler,
    batch_size_for,
    buckets_for,
)
from kinetoscope.training.vae_data import (
    HELD_OUT_SEED_START,
    SeededStream,
    sample_training_scene,
)
from kinetoscope.world.captions import CAPTION_STYLES, caption
from kinetoscope.world.render import render_batch
from kinetoscope.world.spec import SceneSpec

SOURCES = ("world", "video")
CAPTIONS_FILE = "captions.jsonl"
TEXT_ENCODER_NAME = "all-MiniLM-L6-v2"  # names the text cache: another encoder, another folder
ENCODE_CLIPS = 8  # clips the VAE encodes at once: bounds its activation memory


@dataclass(frozen=True)
class DiTDataConfig:
    """What the training batches hold. Source weights are relative; 0 turns a source off."""

    batch_size: int = 8  # clips per step, over all ranks together
    max_tokens: int | None = None  # fewer clips per batch in buckets of many tokens
    short_side: int = 128
    aspects: tuple[str, ...] = tuple(ASPECTS)
    durations: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0)  # seconds
    fps: float = 16.0
    bucket_weighting: str = "uniform"  # or "tokens": see BucketSampler
    seed: int = 0
    world_weight: float = 1.0
    world_scenes: int | None = 5000  # scene seeds drawn from [0, N); None: any training seed
    caption_styles: tuple[str, ...] = CAPTION_STYLES
    caption_wordings: int = 4  # caption seeds per scene and style: few, so the text cache hits
    video_folder: str | None = None  # a folder of videos with a captions.jsonl
    video_weight: float = 0.0
    cache: bool = True  # keep latents and text embeddings on disk

    def validate(self) -> DiTDataConfig:
        """Raise KinetoscopeError naming the first bad field; return self."""
        if self.batch_size < 1:
            raise KinetoscopeError(f"batch size must be at least 1, got {self.batch_size}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise KinetoscopeError(f"max_tokens must be at least 1 or None, got {self.max_tokens}")
        self.buckets()  # sizes, aspects and durations, with their own messages
        if self.bucket_weighting not in WEIGHTINGS:
            raise KinetoscopeError(
                f"unknown bucket weighting {self.bucket_weighting!r}; choose from {WEIGHTINGS}"
            )
        weights = (self.world_weight, self.video_weight)
        if min(weights) < 0 or sum(weights) <= 0:
            raise KinetoscopeError(
                f"source weights (world, video) must be >= 0, not both 0, got {weights}"
            )
        if self.world_scenes is not None and not 1 <= self.world_scenes <= HELD_OUT_SEED_START:
            raise KinetoscopeError(
                f"world_scenes must be from 1 to {HELD_OUT_SEED_START} or None, "
                f"got {self.world_scenes}"
            )
        unknown = sorted(set(self.caption_styles) - set(CAPTION_STYLES))
        if not self.caption_styles or unknown:
            raise KinetoscopeError(
                f"caption styles must be some of {CAPTION_STYLES}, got {self.caption_styles}"
            )
        if self.caption_wordings < 1:
            raise KinetoscopeError(
                f"caption_wordings must be at least 1, got {self.caption_wordings}"
            )
        if self.video_weight > 0:
            if self.video_folder is None:
                raise KinetoscopeError("video_weight > 0 needs a video_folder")
            VideoFolder.open(self.video_folder)  # files and captions, checked now
        return self

    def buckets(self) -> tuple[Bucket, ...]:
        return buckets_for(self.short_side, self.aspects, self.durations, self.fps)

    def to_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> DiTDataConfig:
        """The inverse of `to_dict`, also for its JSON form (lists instead of tuples)."""
        values = {key: tuple(v) if isinstance(v, list) else v for key, v in data.items()}
        return cls(**values)  # type: ignore[arg-type]


# ---- stage 1: the plan -----------------------------------------------------------------------


@dataclass(frozen=True)
class SampleDraw:
    """What one sample of a batch is, before any pixel exists."""

    index: int  # in the global batch
    source: str  # "world" or "video"
    scene_seed: int  # world: the drawn scene seed
    caption_style: str  # world: "long" or "short"
    caption_seed: int  # world: picks the caption's wording
    video_order: tuple[int, ...]  # video: files to try, in this order, until one is long enough


@dataclass(frozen=True)
class BatchPlan:
    step: int
    bucket: Bucket
    global_batch: int  # samples over all ranks
    draws: tuple[SampleDraw, ...]  # this rank's


def global_batch_size(config: DiTDataConfig, bucket: Bucket, world_size: int) -> int:
    """Clips per step in ``bucket`` over all ranks: ``batch_size`` (or fewer under
    ``max_tokens``), rounded down to a multiple of the world size, at least one per rank."""
    wanted = batch_size_for(bucket, config.batch_size, config.max_tokens)
    return max(1, wanted // world_size) * world_size


def rank_indices(global_batch: int, rank: int, world_size: int) -> range:
    """This rank's contiguous block of the global batch's sample indices."""
    share = global_batch // world_size
    return range(rank * share, (rank + 1) * share)


def plan_batch(
    config: DiTDataConfig, step: int, rank: int = 0, world_size: int = 1, videos: int = 0
) -> BatchPlan:
    """Batch ``step``'s bucket and this rank's sample draws (``videos``: files in the video
    folder, 0 when there is none)."""
    bucket = BucketSampler(config.buckets(), config.seed, config.bucket_weighting)(step)
    total = global_batch_size(config, bucket, world_size)
    draws = tuple(
        draw_sample(config, step, index, videos) for index in rank_indices(total, rank, world_size)
    )
    return BatchPlan(step=step, bucket=bucket, global_batch=total, draws=draws)


def draw_sample(config: DiTDataConfig, step: int, index: int, videos: int) -> SampleDraw:
    """Sample ``index`` of batch ``step``: a pure function of (seed, step, index)."""
    rng = np.random.default_rng([config.seed, step, index])
    weights = np.array([config.world_weight, config.video_weight if videos else 0.0])
    if weights.sum() <= 0:
        raise KinetoscopeError("the video source is on but the video folder holds no videos")
    source = SOURCES[int(rng.choice(len(SOURCES), p=weights / weights.sum()))]
    seeds = config.world_scenes if config.world_scenes is not None else HELD_OUT_SEED_START
    return SampleDraw(
        index=index,
        source=source,
        scene_seed=int(rng.integers(seeds)),
        caption_style=str(rng.choice(config.caption_styles)),
        caption_seed=int(rng.integers(config.caption_wordings)),
        video_order=tuple(int(i) for i in rng.permutation(videos)) if source == "video" else (),
    )


# ---- stage 2: pixels -------------------------------------------------------------------------


@dataclass(frozen=True)
class PixelBatch:
    """A planned batch with its captions, and pixels for the clips the cache lacks."""

    plan: BatchPlan
    keys: tuple[str, ...]  # per sample: names the clip within its bucket (cache file name)
    captions: tuple[str, ...]  # per sample
    missing: tuple[int, ...]  # positions (in this rank's samples) whose latents are to be made
    pixels: Tensor | None  # uint8 (len(missing), 3, T, H, W)
    scenes: tuple[str, ...]  # per missing sample: its scene spec JSON ("" for a video)


def make_pixels(
    config: DiTDataConfig, plan: BatchPlan, cache: LatentCache | None, videos: VideoFolder | None
) -> PixelBatch:
    """Captions for every sample of ``plan``, pixels for those ``cache`` lacks."""
    bucket = plan.bucket
    keys, captions, missing, clips, scenes = [], [], [], [], []
    world_missing: list[tuple[int, SceneSpec]] = []
    for position, draw in enumerate(plan.draws):
        if draw.source == "video":
            assert videos is not None
            name, clip = videos.clip(draw.video_order, bucket, cache)
            key = f"video-{name}"
            keys.append(key)
            captions.append(videos.captions[name])
            if clip is not None:
                missing.append(position)
                clips.append(clip)
                scenes.append("")
            continue
        key = f"world-{draw.scene_seed:010d}"
        stored = cache.scene(bucket, key) if cache is not None else None
        scene = SceneSpec.from_json(stored) if stored else training_scene(draw.scene_seed, bucket)
        aspect = bucket.width / bucket.height
        keys.append(key)
        captions.append(caption(scene, draw.caption_style, draw.caption_seed, aspect))
        if stored is None:
            missing.append(position)
            clips.append(None)  # rendered below, all scenes together
            scenes.append(scene.to_json(indent=None))
            world_missing.append((len(clips) - 1, scene))
    if world_missing:
        rendered = render_batch(
            [scene for _, scene in world_missing],
            bucket.width,
            bucket.height,
            config.fps,
            bucket.frames,
        )  # (n, T, H, W, 3)
        for (slot, _), video in zip(world_missing, rendered, strict=True):
            clips[slot] = video.permute(3, 0, 1, 2)  # (3, T, H, W)
    return PixelBatch(
        plan=plan,
        keys=tuple(keys),
        captions=tuple(captions),
        missing=tuple(missing),
        pixels=torch.stack(clips) if clips else None,  # (m, 3, T, H, W)
        scenes=tuple(scenes),
    )


@functools.lru_cache(maxsize=4096)
def training_scene(seed: int, bucket: Bucket) -> SceneSpec:
    """`sample_training_scene` at the bucket's aspect and duration, remembered (a scene takes
    the sampler a fraction of a second), so a finite scene pool costs that once."""
    return sample_training_scene(seed, bucket.width / bucket.height, bucket.seconds)


class VideoFolder:
    """Video files and their captions: ``captions.jsonl`` lines ``{"video", "caption"}``."""

    def __init__(self, folder: Path, captions: dict[str, str]) -> None:
        self.folder = folder
        self.captions = captions
        self.names = tuple(sorted(captions))
        self._fps: dict[str, float] = {}
        self._short: dict[str, int] = {}  # name -> most frames a read found (too few)

    @classmethod
    def open(cls, folder: str | os.PathLike[str]) -> VideoFolder:
        """Read and check the captions file: every line names an existing file and has a
        caption, and every video file in the folder has a line."""
        return _open_video_folder(str(folder))

    def clip(
        self, order: Sequence[int], bucket: Bucket, cache: LatentCache | None
    ) -> tuple[str, Tensor | None]:
        """The first file in ``order`` long enough for ``bucket``: its name and its clip,
        uint8 (3, T, H, W) (None when ``cache`` already holds its latents)."""
        for index in order:
            name = self.names[index]
            if self._short.get(name, math.inf) < bucket.frames:
                continue
            if cache is not None and cache.has(bucket, f"video-{name}"):
                return name, None
            frames = self._read(name, bucket)
            if frames is not None:
                return name, fit_frames(frames, bucket.height, bucket.width)
        raise KinetoscopeError(
            f"no video in {self.folder} lasts the {bucket.seconds:g} s ({bucket.frames} frames) "
            f"of bucket {bucket.name}: drop that duration or add longer videos"
        )

    def _read(self, name: str, bucket: Bucket) -> Tensor | None:
        """Frames (T, H, W, 3) at the bucket's fps, or None when the file is too short."""
        path = self.folder / name
        if name not in self._fps:
            self._fps[name] = read_video(path, max_frames=1).fps
        rate = self._fps[name] * bucket.seconds / (bucket.frames - 1)  # source frames per frame
        wanted = [round(i * rate) for i in range(bucket.frames)]
        video = read_video(path, max_frames=wanted[-1] + 1)
        if video.num_frames <= wanted[-1]:
            self._short[name] = math.floor((video.num_frames - 1) / rate) + 1
            return None
        return video.frames[wanted]  # (T, H, W, 3)


@functools.cache
def _open_video_folder(folder: str) -> VideoFolder:
    path = Path(folder)
    if not path.is_dir():
        raise KinetoscopeError(f"video folder {folder} does not exist")
    captions_path = path / CAPTIONS_FILE
    if not captions_path.is_file():
        raise KinetoscopeError(
            f"{folder} has no {CAPTIONS_FILE}: write one line per video, "
            '{"video": "name.mp4", "caption": "..."}'
        )
    captions: dict[str, str] = {}
    for number, line in enumerate(captions_path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise KinetoscopeError(f"{captions_path}:{number}: not JSON ({exc.msg})") from None
        name, text = (
            (record.get("video"), record.get("caption"))
            if isinstance(record, dict)
            else (None, None)
        )
        if not isinstance(name, str) or not isinstance(text, str) or not text.strip():
            raise KinetoscopeError(
                f'{captions_path}:{number}: needs {{"video": "name.mp4", "caption": "..."}} '
                "with a non-empty caption"
            )
        if not (path / name).is_file():
            raise KinetoscopeError(f"{captions_path}:{number}: no video file {path / name}")
        captions[name] = text
    if not captions:
        raise KinetoscopeError(f"{captions_path} lists no videos")
    video_suffixes = {".mp4", ".webm", ".mkv", ".mov", ".avi", ".gif"}
    uncaptioned = sorted(
        p.name
        for p in path.iterdir()
        if p.suffix.lower() in video_suffixes and p.name not in captions
    )
    if uncaptioned:
        raise KinetoscopeError(
            f"{len(uncaptioned)} videos in {folder} have no caption in {CAPTIONS_FILE}: "
            f"{', '.join(uncaptioned[:5])}"
        )
    return VideoFolder(path, captions)


def fit_frames(frames: Tensor, height: int, width: int) -> Tensor:
    """uint8 frames (T, H0, W0, 3) scaled (antialiased bilinear) to cover height x width and
    centre-cropped to it: uint8 (3, T, height, width)."""
    source_height, source_width = frames.shape[1:3]
    scale = max(height / source_height, width / source_width)
    size = (max(height, round(source_height * scale)), max(width, round(source_width * scale)))
    pictures = frames.permute(0, 3, 1, 2).float()  # (T, 3, H0, W0)
    if size != (source_height, source_width):
        pictures = F.interpolate(pictures, size=size, mode="bilinear", antialias=True)
    top, left = (size[0] - height) // 2, (size[1] - width) // 2
    crop = pictures[:, :, top : top + height, left : left + width]  # (T, 3, height, width)
    return crop.round().clamp(0, 255).to(torch.uint8).transpose(0, 1).contiguous()


# ---- the cache -------------------------------------------------------------------------------


class LatentCache:
    """Latents per (VAE, bucket, clip) and text embeddings per caption, as safetensors.

    Layout: ``latents/<VAE fingerprint>/<bucket name>/<clip key>.safetensors`` holding
    ``latents`` (16, t, h, w) float32 and, in its metadata, the clip's scene spec; and
    ``text/<encoder>/<sha256 of the caption>.safetensors`` holding ``tokens`` (L, 384),
    ``mask`` (L,) and ``pooled`` (384,). Files appear atomically (temporary, then rename), so
    ranks and workers sharing a cache never read half a file.
    """

    def __init__(self, folder: Path, vae_fingerprint: str) -> None:
        self.folder = Path(folder)
        self.latent_folder = self.folder / "latents" / vae_fingerprint
        self.text_folder = self.folder / "text" / TEXT_ENCODER_NAME

    def _latent_path(self, bucket: Bucket, key: str) -> Path:
        return self.latent_folder / bucket.name / f"{key}.safetensors"

    def has(self, bucket: Bucket, key: str) -> bool:
        return self._latent_path(bucket, key).is_file()

    def scene(self, bucket: Bucket, key: str) -> str | None:
        """The stored scene JSON of a cached world clip, or None when it is not cached."""
        path = self._latent_path(bucket, key)
        if not path.is_file():
            return None
        with safe_open(path, framework="pt") as stored:
            return (stored.metadata() or {}).get("scene", "")

    def latents(self, bucket: Bucket, key: str) -> Tensor:
        return load_file(self._latent_path(bucket, key))["latents"]  # (16, t, h, w)

    def put_latents(self, bucket: Bucket, key: str, latents: Tensor, scene: str) -> None:
        _write(
            self._latent_path(bucket, key),
            {"latents": latents.float().cpu().contiguous()},
            {"scene": scene},
        )

    def _text_path(self, text: str) -> Path:
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
        return self.text_folder / digest[:2] / f"{digest}.safetensors"

    def text(self, text: str) -> TextEmbedding | None:
        path = self._text_path(text)
        if not path.is_file():
            return None
        stored = load_file(path)
        return TextEmbedding(
            tokens=stored["tokens"][None], mask=stored["mask"][None], pooled=stored["pooled"][None]
        )

    def put_text(self, text: str, embedding: TextEmbedding) -> None:
        """Store one row, without its padding."""
        length = int(embedding.mask[0].sum())  # real tokens come first
        _write(
            self._text_path(text),
            {
                "tokens": embedding.tokens[0, :length].float().cpu().contiguous(),
                "mask": embedding.mask[0, :length].cpu().contiguous(),
                "pooled": embedding.pooled[0].float().cpu().contiguous(),
            },
            {"caption": text},
        )


def _write(path: Path, tensors: dict[str, Tensor], metadata: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        save_file(tensors, temporary, metadata=metadata)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def vae_fingerprint(vae: VideoVAE) -> str:
    """A short hash of the VAE's config and weights: latents of another VAE never mix in."""
    digest = hashlib.sha256(json.dumps(vae.config.__dict__, sort_keys=True, default=str).encode())
    for name, tensor in sorted(vae.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


# ---- stage 3: latents ------------------------------------------------------------------------


@dataclass(frozen=True)
class LatentBatch:
    """What a training step reads: latents and text of b clips of one bucket."""

    step: int
    bucket: Bucket
    latents: Tensor  # (b, 16, t, h, w) float32, normalised
    text: TextEmbedding  # b rows
    captions: tuple[str, ...]
    keys: tuple[str, ...]
    indices: tuple[int, ...]  # each sample's index in the global batch
    global_batch: int


class DiTBatchStream(SeededStream):
    """An infinite iterator of `LatentBatch` for one rank; ``state_dict()`` is all a resume
    needs. ``next(stream)`` gives batch ``stream.step`` and advances the step."""

    def __init__(
        self,
        config: DiTDataConfig,
        vae: VideoVAE,
        device: torch.device,
        cache_folder: Path | None = None,
        rank: int = 0,
        world_size: int = 1,
        workers: int = 0,
        step: int = 0,
        text_encoder: TextEncoder | None = None,
    ) -> None:
        self.config = config.validate()
        self.vae = vae.eval().requires_grad_(False)
        self.device = device
        self.rank, self.world_size, self.workers = rank, world_size, workers
        self.step = step
        self._text_encoder = text_encoder
        self.cache = (
            LatentCache(cache_folder, vae_fingerprint(vae))
            if config.cache and cache_folder is not None
            else None
        )
        self.videos = (
            VideoFolder.open(config.video_folder)
            if config.video_folder is not None and config.video_weight > 0
            else None
        )
        self._iterator: Iterator[PixelBatch] | None = None

    def __iter__(self) -> DiTBatchStream:
        return self

    def __next__(self) -> LatentBatch:
        if self._iterator is None:
            self._iterator = self._start(self.step)
        batch = self.encode(next(self._iterator))
        self.step += 1
        return batch

    def batch(self, step: int) -> LatentBatch:
        """Batch number ``step``, without moving the stream."""
        return self.encode(self.pixels(step))

    def pixels(self, step: int) -> PixelBatch:
        """Stages 1-2 of batch ``step``."""
        return _PixelsAt(self)[step]

    @property
    def text_encoder(self) -> TextEncoder:
        """Loaded on first use: a run whose captions are all cached never loads it."""
        if self._text_encoder is None:
            self._text_encoder = load_text_encoder(self.device)
        return self._text_encoder

    # -- stage 3 --------------------------------------------------------------------------------

    @torch.no_grad()
    def encode(self, pixels: PixelBatch) -> LatentBatch:
        """Latents (from the cache or the VAE) and text embeddings of a `PixelBatch`."""
        plan = pixels.plan
        made = self._encode_pixels(pixels.pixels) if pixels.pixels is not None else None
        latents: list[Tensor] = []
        fresh = dict(zip(pixels.missing, range(len(pixels.missing)), strict=True))
        for position, key in enumerate(pixels.keys):
            if position in fresh:
                latent = made[fresh[position]]  # type: ignore[index]
                if self.cache is not None:
                    self.cache.put_latents(plan.bucket, key, latent, pixels.scenes[fresh[position]])
            else:
                assert self.cache is not None
                latent = self.cache.latents(plan.bucket, key).to(self.device)
            latents.append(latent)
        return LatentBatch(
            step=plan.step,
            bucket=plan.bucket,
            latents=torch.stack(latents),  # (b, 16, t, h, w)
            text=self._encode_text(pixels.captions),
            captions=pixels.captions,
            keys=pixels.keys,
            indices=tuple(draw.index for draw in plan.draws),
            global_batch=plan.global_batch,
        )

    def _encode_pixels(self, pixels: Tensor) -> Tensor:
        """uint8 (m, 3, T, H, W) -> normalised posterior means (m, 16, t, h, w) float32."""
        weights = next(self.vae.parameters())
        video = pixels.to(self.device).to(weights.dtype) / 127.5 - 1.0  # (m, 3, T, H, W)
        autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16)
            if self.device.type == "cuda"
            else nullcontext()
        )
        with autocast:
            z = torch.cat(
                [self.vae.encode(part).mode().float() for part in video.split(ENCODE_CLIPS)]
            )  # (m, 16, t, h, w)
        return self.vae.normalize_latents(z)

    def _encode_text(self, captions: Sequence[str]) -> TextEmbedding:
        rows: list[TextEmbedding | None] = [
            self.cache.text(text) if self.cache is not None else None for text in captions
        ]
        todo = sorted({text for text, row in zip(captions, rows, strict=True) if row is None})
        if todo:
            encoded = self.text_encoder.encode(todo)
            made = {text: encoded.select(slice(i, i + 1)) for i, text in enumerate(todo)}
            for text, embedding in made.items():
                if self.cache is not None:
                    self.cache.put_text(text, embedding)
            rows = [
                row if row is not None else made[text]
                for text, row in zip(captions, rows, strict=True)
            ]
        return TextEmbedding.cat([_trimmed(row) for row in rows]).to(self.device)  # type: ignore[arg-type]

    # -- stages 1-2 in worker processes ---------------------------------------------------------

    def _start(self, step: int) -> Iterator[PixelBatch]:
        if self.workers == 0:
            return (self.pixels(s) for s in itertools.count(step))
        loader = torch.utils.data.DataLoader(
            _PixelsAt(self),
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


def _trimmed(row: TextEmbedding) -> TextEmbedding:
    """One row without trailing padding, so a batch pads to the same length whether its rows
    came from the cache or from one encoder call."""
    length = int(row.mask[0].sum())
    tokens, mask = row.tokens[:, :length], row.mask[:, :length]  # (1, l, D), (1, l)
    return TextEmbedding(tokens=tokens.cpu(), mask=mask.cpu(), pooled=row.pooled.cpu())


class _PixelsAt(torch.utils.data.Dataset):
    """Map-style view of stages 1-2 for DataLoader workers: index = step. Holds only what a
    worker needs (not the VAE)."""

    def __init__(self, stream: DiTBatchStream) -> None:
        self.config, self.cache, self.videos = stream.config, stream.cache, stream.videos
        self.rank, self.world_size = stream.rank, stream.world_size

    def __getitem__(self, step: int) -> PixelBatch:
        videos = len(self.videos.names) if self.videos else 0
        plan = plan_batch(self.config, step, self.rank, self.world_size, videos)
        return make_pixels(self.config, plan, self.cache, self.videos)


def _one_thread(_: int) -> None:
    torch.set_num_threads(1)  # workers share the cores with each other and the training loop
