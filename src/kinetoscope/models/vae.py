"""Kinetoscope's video autoencoder: a causal 3D convolutional VAE, 4x in time, 8x8 in space.

Video inside the model is float (B, 3, T, H, W) in [-1, 1]; latents are (B, C, 1 + k, H/8, W/8)
for T = 1 + 4k frames, C = ``latent_channels`` (16). Causal in time: frame 0 is encoded on its
own, so an image is a 1-frame video and becomes 1 latent frame; latent frame j (j >= 1) stands
for frames 4j-3 .. 4j and depends on no later frame; decoding mirrors that.

Architecture (see `layers` for the blocks)::

    Encoder  conv_in 3->w0 | level 0: blocks, down space           (T,      H/2)
                           | level 1: blocks, down space and time   (1+(T-1)/2, H/4)
                           | level 2: blocks, down space and time   (1+(T-1)/4, H/8)
                           | level 3: blocks | mid: res, attention, res | norm, SiLU, conv -> 2C
    Decoder  the mirror, from C latent channels back to 3.

Widths are ``base_channels * channel_multipliers[level]``. Time is compressed at the deeper
levels only, so the full-resolution layers see every frame. Attention (optional) is among the
pixels of each frame, never across frames.

Long and large inputs (bounded memory):

- Temporal chunks. ``encode(x, chunk_frames=N)`` codes frames [0, 1+N), then N at a time;
  ``decode(z, chunk_latents=n)`` codes n latent frames at a time. A `CausalCache` carries each
  causal conv's unfinished input frames between chunks, so the result equals whole-clip coding
  up to float rounding. ``encode_stream`` / ``decode_stream`` take and yield chunks one by one:
  with them memory stays flat however long the clip is.
- Spatial tiles. ``tile=Tiling(size, overlap)`` (pixels, multiples of 8) codes overlapping
  tiles, each with its own cache, and blends the overlaps with linear ramps (over the middle
  half of each overlap; the outer quarters, nearest a tile's edge, get no weight). This is an
  approximation: a tile does not see past its edges, so outputs near seams differ slightly
  from untiled coding (the convolutions' zero padding and per-frame attention see only the
  tile). A tile at least as large as the frame is exactly untiled coding.

Pixel boundary (`frames_to_tensor`, `tensor_to_frames`, `encode_video`, `decode_video`): uint8
frames (T, H, W, 3) in, out. Input policy: a frame count not of the form 1 + 4k is padded by
repeating the last frame, and a height or width not divisible by 8 is padded by repeating the
edge pixels (bottom and right); `decode_video` trims both off again using the `FrameLayout`
that `encode_video` returns. `encode_video` returns *normalised* latents, the ones the
diffusion model works on: (z - shift_factor) * scaling_factor, per channel.

Bad input raises `VAEInputError` before any compute, naming the problem: not a tensor, wrong
rank, wrong channel count, empty, wrong dtype (model inputs must be floating point and match
the weights' dtype, unless autocast is on), wrong device, a shape the model
cannot take, NaN or inf. Values outside [-1, 1] are not checked.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kinetoscope.errors import KinetoscopeError
from kinetoscope.models.layers import (
    MEMORY_FORMAT,
    CausalCache,
    CausalConv3d,
    ChannelRMSNorm,
    Downsample,
    FrameAttention,
    ResBlock,
    Upsample,
)
from kinetoscope.models.pretrained import load_pretrained, save_pretrained

__all__ = [
    "VAE_PRESETS",
    "DiagonalGaussian",
    "FrameLayout",
    "Tiling",
    "VAEConfig",
    "VAEInputError",
    "VideoVAE",
    "decode_video",
    "encode_video",
    "frames_to_tensor",
    "tensor_to_frames",
]

TEMPORAL_DOWNSAMPLE = 4  # fixed by the architecture: two 2x temporal steps
SPATIAL_DOWNSAMPLE = 8  # three 2x spatial steps
LEVELS = 4  # resolutions: 1, 1/2, 1/4, 1/8
DEFAULT_CHUNK_FRAMES = 16  # encode_video's temporal chunk: exact, and bounded memory
DEFAULT_CHUNK_LATENTS = 4  # decode_video's: 16 frames a chunk


class VAEInputError(KinetoscopeError, ValueError):
    """An input the VAE cannot code; the message names what is wrong with it."""


# ---------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class VAEConfig:
    """Hyperparameters of a `VideoVAE`; stored in a checkpoint's config.json.

    ``scaling_factor`` and ``shift_factor`` normalise latents for the diffusion model,
    ``(z - shift) * scale``: one number for all channels or one per channel.
    """

    latent_channels: int = 16
    base_channels: int = 32
    channel_multipliers: tuple[int, ...] = (1, 2, 4, 4)  # one per level, LEVELS of them
    blocks_per_level: int = 1  # residual blocks per level, in the encoder and the decoder
    attention: bool = True  # per-frame self-attention in the middle blocks
    norm_eps: float = 1e-6
    temporal_downsample: int = TEMPORAL_DOWNSAMPLE  # fixed by the architecture
    spatial_downsample: int = SPATIAL_DOWNSAMPLE  # fixed by the architecture
    scaling_factor: float | tuple[float, ...] = 1.0
    shift_factor: float | tuple[float, ...] = 0.0

    def __post_init__(self) -> None:
        for name in ("latent_channels", "base_channels", "blocks_per_level"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"VAEConfig.{name} must be a positive int, got {value!r}")
        multipliers = self.channel_multipliers
        if (
            not isinstance(multipliers, tuple)
            or len(multipliers) != LEVELS
            or not all(
                isinstance(m, int) and not isinstance(m, bool) and m >= 1 for m in multipliers
            )
        ):
            raise ValueError(
                f"VAEConfig.channel_multipliers must be a tuple of {LEVELS} positive ints "
                f"(one per resolution), got {multipliers!r}"
            )
        if self.temporal_downsample != TEMPORAL_DOWNSAMPLE:
            raise ValueError(
                f"VAEConfig.temporal_downsample is fixed by the architecture at "
                f"{TEMPORAL_DOWNSAMPLE}, got {self.temporal_downsample!r}"
            )
        if self.spatial_downsample != SPATIAL_DOWNSAMPLE:
            raise ValueError(
                f"VAEConfig.spatial_downsample is fixed by the architecture at "
                f"{SPATIAL_DOWNSAMPLE}, got {self.spatial_downsample!r}"
            )
        if not (isinstance(self.norm_eps, float) and 0 < self.norm_eps < 1):
            raise ValueError(f"VAEConfig.norm_eps must be a float in (0, 1), got {self.norm_eps!r}")
        if not isinstance(self.attention, bool):
            raise ValueError(f"VAEConfig.attention must be a bool, got {self.attention!r}")
        self._check_per_channel("scaling_factor", nonzero=True)
        self._check_per_channel("shift_factor", nonzero=False)

    def _check_per_channel(self, name: str, nonzero: bool) -> None:
        value = getattr(self, name)
        values = value if isinstance(value, tuple) else (value,)
        if isinstance(value, tuple) and len(value) != self.latent_channels:
            raise ValueError(
                f"VAEConfig.{name} must be one number or {self.latent_channels} "
                f"(one per latent channel), got {len(value)}"
            )
        for number in values:
            ok = isinstance(number, int | float) and not isinstance(number, bool)
            if not ok or not math.isfinite(number) or (nonzero and number == 0):
                kind = "finite non-zero numbers" if nonzero else "finite numbers"
                raise ValueError(f"VAEConfig.{name} must hold {kind}, got {value!r}")

    @property
    def widths(self) -> tuple[int, ...]:
        """Channels at each level, full resolution first."""
        return tuple(self.base_channels * m for m in self.channel_multipliers)


VAE_PRESETS: dict[str, VAEConfig] = {
    # tests: runs on 16x16 frames in milliseconds
    "tiny": VAEConfig(base_channels=4, channel_multipliers=(1, 1, 1, 1)),
    # trainable on a CPU in the background
    "small": VAEConfig(base_channels=16, channel_multipliers=(1, 2, 4, 4), attention=False),
    # the shipped model, trained on a GPU: ~30 MiB of bf16 weights at most
    "base": VAEConfig(base_channels=32, channel_multipliers=(1, 2, 4, 4), blocks_per_level=2),
}


@dataclass(frozen=True)
class Tiling:
    """Overlapping spatial tiles, in pixels (multiples of 8, so tiles align with latents)."""

    size: int = 256
    overlap: int = 64

    def __post_init__(self) -> None:
        step = SPATIAL_DOWNSAMPLE
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < step:
            raise ValueError(f"Tiling.size must be an int of at least {step}, got {self.size!r}")
        if self.size % step or not isinstance(self.overlap, int) or self.overlap % step:
            raise ValueError(
                f"Tiling size and overlap must be multiples of {step} pixels, "
                f"got {self.size!r} and {self.overlap!r}"
            )
        if not 0 <= self.overlap < self.size:
            raise ValueError(
                f"Tiling.overlap must be at least 0 and less than the size {self.size}, "
                f"got {self.overlap!r}"
            )


# ---------------------------------------------------------------------------------------------
# Posterior


class DiagonalGaussian:
    """The encoder's posterior q(z | x): an independent normal per latent element.

    ``moments`` (B, 2C, t, h, w) holds the means, then the log-variances (clamped to
    [-30, 20] so exp() stays finite).
    """

    def __init__(self, moments: Tensor) -> None:
        self.moments = moments  # (B, 2C, t, h, w)
        mean, logvar = moments.chunk(2, dim=1)  # (B, C, t, h, w) each
        self.mean = mean
        self.logvar = logvar.clamp(-30.0, 20.0)
        self.std = torch.exp(0.5 * self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """A draw mean + std * noise, (B, C, t, h, w); ``generator`` makes it reproducible."""
        noise = torch.randn(
            self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype
        )
        return self.mean + self.std * noise

    def mode(self) -> Tensor:
        """The most likely latent: the mean, (B, C, t, h, w)."""
        return self.mean

    def kl(self) -> Tensor:
        """KL(q || N(0, 1)) per latent element, float32 (B, C, t, h, w): reduce it as the loss
        needs (``.mean()`` or ``.sum()``). Zero exactly when q is a standard normal."""
        mean, logvar = self.mean.float(), self.logvar.float()
        return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar)


# ---------------------------------------------------------------------------------------------
# Encoder and decoder


class EncoderLevel(nn.Module):
    """Residual blocks at one resolution, then (except at the last level) a downsample."""

    def __init__(
        self,
        in_channels: int,
        width: int,
        blocks: int,
        downsample: bool,
        temporal: bool,
        eps: float,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            ResBlock(in_channels if i == 0 else width, width, eps) for i in range(blocks)
        )
        self.downsample = Downsample(width, temporal) if downsample else None

    def forward(self, x: Tensor, cache: CausalCache | None) -> Tensor:
        for block in self.blocks:
            x = block(x, cache)  # (B, W, T, H, W)
        if self.downsample is not None:
            x = self.downsample(x, cache)  # (B, W, T or 1 + (T-1)/2, H/2, W/2)
        return x


class DecoderLevel(nn.Module):
    """Residual blocks at one resolution, then (except at full resolution) an upsample."""

    def __init__(
        self, in_channels: int, width: int, blocks: int, upsample: bool, temporal: bool, eps: float
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            ResBlock(in_channels if i == 0 else width, width, eps) for i in range(blocks)
        )
        self.upsample = Upsample(width, temporal) if upsample else None

    def forward(self, x: Tensor, cache: CausalCache | None) -> Tensor:
        for block in self.blocks:
            x = block(x, cache)  # (B, W, T, H, W)
        if self.upsample is not None:
            x = self.upsample(x, cache)  # (B, W, T or 2T - 1, 2H, 2W)
        return x


class MidBlock(nn.Module):
    """Residual block, per-frame attention (optional), residual block: at 1/8 resolution."""

    def __init__(self, channels: int, attention: bool, eps: float) -> None:
        super().__init__()
        self.block1 = ResBlock(channels, channels, eps)
        self.attention = FrameAttention(channels, eps) if attention else None
        self.block2 = ResBlock(channels, channels, eps)

    def forward(self, x: Tensor, cache: CausalCache | None) -> Tensor:
        x = self.block1(x, cache)  # (B, C, t, h, w)
        if self.attention is not None:
            x = self.attention(x)  # (B, C, t, h, w)
        return self.block2(x, cache)  # (B, C, t, h, w)


def _is_temporal(level: int) -> bool:
    """Whether the resampling between ``level`` and ``level + 1`` also halves time: the two
    deepest ones (1 -> 2 and 2 -> 3) do, so the full-resolution layers see every frame."""
    return level in (1, 2)


class Encoder(nn.Module):
    """Pixels (B, 3, T, H, W) to posterior moments (B, 2C, 1 + (T-1)/4, H/8, W/8)."""

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        widths, eps = config.widths, config.norm_eps
        self.conv_in = CausalConv3d(3, widths[0])
        self.levels = nn.ModuleList(
            EncoderLevel(
                widths[max(level - 1, 0)],
                widths[level],
                config.blocks_per_level,
                downsample=level < LEVELS - 1,
                temporal=_is_temporal(level),
                eps=eps,
            )
            for level in range(LEVELS)
        )
        self.mid = MidBlock(widths[-1], config.attention, eps)
        self.norm_out = ChannelRMSNorm(widths[-1], eps)
        self.conv_out = CausalConv3d(widths[-1], 2 * config.latent_channels)

    def forward(self, x: Tensor, cache: CausalCache | None = None) -> Tensor:
        h = self.conv_in(x, cache)  # (B, w0, T, H, W)
        for level in self.levels:
            h = level(h, cache)  # ... (B, w3, 1 + (T-1)/4, H/8, W/8)
        h = self.mid(h, cache)  # (B, w3, t, h, w)
        return self.conv_out(F.silu(self.norm_out(h)), cache)  # (B, 2C, t, h, w)


class Decoder(nn.Module):
    """Latents (B, C, t, h, w) to pixels (B, 3, 1 + 4(t-1), 8h, 8w); the encoder's mirror."""

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        widths, eps = config.widths, config.norm_eps
        self.conv_in = CausalConv3d(config.latent_channels, widths[-1])
        self.mid = MidBlock(widths[-1], config.attention, eps)
        self.levels = nn.ModuleList(
            DecoderLevel(
                widths[min(level + 1, LEVELS - 1)],
                widths[level],
                config.blocks_per_level,
                upsample=level > 0,
                temporal=level > 0 and _is_temporal(level - 1),
                eps=eps,
            )
            for level in reversed(range(LEVELS))
        )
        self.norm_out = ChannelRMSNorm(widths[0], eps)
        self.conv_out = CausalConv3d(widths[0], 3)

    def forward(self, z: Tensor, cache: CausalCache | None = None) -> Tensor:
        h = self.conv_in(z, cache)  # (B, w3, t, h, w)
        h = self.mid(h, cache)  # (B, w3, t, h, w)
        for level in self.levels:
            h = level(h, cache)  # ... (B, w0, 1 + 4(t-1), 8h, 8w)
        return self.conv_out(F.silu(self.norm_out(h)), cache)  # (B, 3, T, H, W)


# ---------------------------------------------------------------------------------------------
# The model


class VideoVAE(nn.Module):
    """Causal video VAE: `encode` pixels to a `DiagonalGaussian`, `decode` latents to pixels."""

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.initialize_weights()
        self.to(memory_format=MEMORY_FORMAT)  # channels-last weights: see `layers`

    def initialize_weights(self) -> None:
        """Every weight of the model, set here and only here.

        - Convolutions: normal with std 1/sqrt(fan_in) (variance-preserving), zero bias.
        - Norms: gain 1, bias 0.
        - The last conv of each residual branch and the attention output: zero, so every block
          starts as the identity and the untrained network is a short, well-scaled path.
        - Temporal resamplers start as plain resampling: the downsampler averages each pair of
          frames (frame 0 passes through), the upsampler repeats each frame.
        """
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                fan_in = module.weight[0].numel()
                nn.init.normal_(module.weight, std=fan_in**-0.5)
                nn.init.zeros_(module.bias)
            elif isinstance(module, ChannelRMSNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for module in self.modules():
            if isinstance(module, ResBlock):
                nn.init.zeros_(module.conv2.conv.weight)
            elif isinstance(module, FrameAttention):
                nn.init.zeros_(module.proj.conv.weight)
            elif isinstance(module, Downsample) and module.temporal is not None:
                weight = module.temporal.conv.weight  # (C, C, 3, 1, 1): taps t-2, t-1, t
                identity = torch.eye(weight.shape[0])[:, :, None, None]  # (C, C, 1, 1)
                with torch.no_grad():
                    weight.zero_()
                    weight[:, :, 1] = identity / 2
                    weight[:, :, 2] = identity / 2
            elif isinstance(module, Upsample) and module.temporal is not None:
                weight = module.temporal.conv.weight  # (2C, C, 3, 1, 1): two frames per frame
                channels = weight.shape[1]
                identity = torch.eye(channels)[:, :, None, None]  # (C, C, 1, 1)
                with torch.no_grad():
                    weight.zero_()
                    weight[:channels, :, 2] = identity
                    weight[channels:, :, 2] = identity

    # -- coding -------------------------------------------------------------------------------

    def encode(
        self, x: Tensor, chunk_frames: int | None = None, tile: Tiling | None = None
    ) -> DiagonalGaussian:
        """Pixels (B, 3, 1 + 4k, H, W) in [-1, 1] to the posterior over (B, C, 1 + k, H/8, W/8).

        ``chunk_frames`` (a multiple of 4) codes frames [0, 1 + N) and then N at a time with a
        causal cache: the same result up to rounding, with memory bounded by the chunk.
        ``tile`` codes overlapping spatial tiles (approximate; see the module docstring).
        """
        self._check_pixels(x, first_chunk=True)
        _check_tiling(tile)
        if chunk_frames is not None and not _is_positive_int(chunk_frames, multiple_of=4):
            raise VAEInputError(
                f"chunk_frames must be a positive multiple of 4, got {chunk_frames!r}"
            )
        chunks = _split_time(x, chunk_frames, first_extra=1)
        moments = [posterior.moments for posterior in self._encode_chunks(chunks, tile, False)]
        return DiagonalGaussian(torch.cat(moments, dim=2))  # (B, 2C, 1 + k, H/8, W/8)

    def decode(
        self, z: Tensor, chunk_latents: int | None = None, tile: Tiling | None = None
    ) -> Tensor:
        """Latents (B, C, 1 + k, h, w) to pixels (B, 3, 1 + 4k, 8h, 8w), roughly in [-1, 1].

        ``chunk_latents`` decodes that many latent frames at a time with a causal cache (the
        same result up to rounding); ``tile`` decodes overlapping spatial tiles (approximate).
        """
        self._check_latents(z)
        _check_tiling(tile)
        if chunk_latents is not None and not _is_positive_int(chunk_latents, multiple_of=1):
            raise VAEInputError(f"chunk_latents must be a positive int, got {chunk_latents!r}")
        chunks = _split_time(z, chunk_latents, first_extra=0)
        return torch.cat(list(self._decode_chunks(chunks, tile, False)), dim=2)  # (B, 3, T, H, W)

    def encode_stream(
        self, chunks: Iterable[Tensor], tile: Tiling | None = None
    ) -> Iterator[DiagonalGaussian]:
        """Encode a clip given as consecutive chunks of frames, yielding one posterior each.

        The first chunk holds 1 + 4a frames, every later one 4b (a, b >= 0 may vary): chunk
        sizes the temporal downsamplers can split without looking ahead. Each chunk is checked
        as it arrives. Only the cache and the current chunk are held, so memory stays flat.
        """
        _check_tiling(tile)
        return self._encode_chunks(chunks, tile, check=True)

    def decode_stream(
        self, chunks: Iterable[Tensor], tile: Tiling | None = None
    ) -> Iterator[Tensor]:
        """Decode a clip's latents given as consecutive chunks (any lengths), yielding pixels:
        the first chunk of n latent frames gives 1 + 4(n - 1) frames, every later one 4n."""
        _check_tiling(tile)
        return self._decode_chunks(chunks, tile, check=True)

    def forward(
        self, x: Tensor, sample: bool = True, generator: torch.Generator | None = None
    ) -> tuple[Tensor, DiagonalGaussian]:
        """Reconstruct pixels (B, 3, T, H, W): returns (reconstruction, posterior). Decodes a
        sample of the posterior (training), or its mean when ``sample`` is False."""
        posterior = self.encode(x)  # over (B, C, t, h, w)
        z = posterior.sample(generator) if sample else posterior.mode()  # (B, C, t, h, w)
        return self.decode(z), posterior  # (B, 3, T, H, W)

    def _encode_chunks(
        self, chunks: Iterable[Tensor], tile: Tiling | None, check: bool
    ) -> Iterator[DiagonalGaussian]:
        tiles = None if tile is None else (tile.size, tile.overlap)  # in pixels
        caches: dict[tuple[int, int], CausalCache] = {}  # one per tile, kept across chunks
        first: Tensor | None = None
        for chunk in chunks:
            if check:
                self._check_pixels(chunk, first_chunk=first is None)
                _check_same_clip(chunk, first, "pixels")
            first = chunk if first is None else first
            moments = _code_tiled(self.encoder, chunk, tiles, caches, scale=(1, SPATIAL_DOWNSAMPLE))
            yield DiagonalGaussian(moments.contiguous())  # over (B, C, t, H/8, W/8)

    def _decode_chunks(
        self, chunks: Iterable[Tensor], tile: Tiling | None, check: bool
    ) -> Iterator[Tensor]:
        step = SPATIAL_DOWNSAMPLE
        tiles = None if tile is None else (tile.size // step, tile.overlap // step)  # in latents
        caches: dict[tuple[int, int], CausalCache] = {}  # one per tile, kept across chunks
        first: Tensor | None = None
        for chunk in chunks:
            if check:
                self._check_latents(chunk)
                _check_same_clip(chunk, first, "latents")
            first = chunk if first is None else first
            pixels = _code_tiled(self.decoder, chunk, tiles, caches, scale=(step, 1))
            yield pixels.contiguous()  # (B, 3, T, 8h, 8w)

    # -- latent normalisation ------------------------------------------------------------------

    def normalize_latents(self, z: Tensor) -> Tensor:
        """VAE latents to the diffusion model's: (z - shift_factor) * scaling_factor."""
        scale, shift = self._latent_scale_shift(z)
        return (z - shift) * scale

    def denormalize_latents(self, latents: Tensor) -> Tensor:
        """The inverse of `normalize_latents`: latents / scaling_factor + shift_factor."""
        scale, shift = self._latent_scale_shift(latents)
        return latents / scale + shift

    def _latent_scale_shift(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """The factors as (C, 1, 1, 1) tensors (or scalars) on z's device and dtype."""
        factors = []
        for value in (self.config.scaling_factor, self.config.shift_factor):
            factor = torch.as_tensor(value, device=z.device, dtype=z.dtype)
            factors.append(factor[:, None, None, None] if factor.ndim else factor)
        return factors[0], factors[1]

    # -- checkpoints ---------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        folder: str | os.PathLike[str],
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> VideoVAE:
        """Load a checkpoint folder (config.json + safetensors), in eval mode."""
        return load_pretrained(cls, VAEConfig, folder, device=device, dtype=dtype)

    def save_pretrained(
        self, folder: str | os.PathLike[str], dtype: torch.dtype | None = None
    ) -> Path:
        """Write config.json + safetensors to ``folder`` atomically (``dtype``: e.g. bf16)."""
        return save_pretrained(self, self.config, folder, dtype=dtype)

    # -- input checks --------------------------------------------------------------------------

    def _check_pixels(self, x: object, first_chunk: bool) -> None:
        """Raise `VAEInputError` unless ``x`` is pixels this model can encode."""
        _check_model_tensor(x, "pixels", 3, self._weights())
        frames, height, width = x.shape[2:]
        if first_chunk and (frames - 1) % TEMPORAL_DOWNSAMPLE:
            raise VAEInputError(
                f"pixels must have 1 + 4k frames (1, 5, 9, ...), got {frames}; "
                "encode_video pads other counts"
            )
        if not first_chunk and frames % TEMPORAL_DOWNSAMPLE:
            raise VAEInputError(f"a later chunk must have a multiple of 4 frames, got {frames}")
        if height % SPATIAL_DOWNSAMPLE or width % SPATIAL_DOWNSAMPLE:
            raise VAEInputError(
                f"pixels must have a height and width divisible by 8, got {height}x{width}; "
                "encode_video pads other sizes"
            )
        _check_finite(x, "pixels")

    def _check_latents(self, z: object) -> None:
        """Raise `VAEInputError` unless ``z`` is latents this model can decode."""
        _check_model_tensor(z, "latents", self.config.latent_channels, self._weights())
        _check_finite(z, "latents")

    def _weights(self) -> Tensor:
        return self.decoder.conv_out.conv.weight


def _is_positive_int(value: object, multiple_of: int) -> bool:
    return (
        isinstance(value, int) and not isinstance(value, bool) and value > 0
    ) and value % multiple_of == 0


def _check_model_tensor(x: object, what: str, channels: int, weights: Tensor) -> None:
    """Type, rank, channels, size, dtype and device of a (B, C, T, H, W) model input."""
    if not isinstance(x, Tensor):
        raise VAEInputError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 5:
        raise VAEInputError(f"{what} must be 5D (B, C, T, H, W), got shape {tuple(x.shape)}")
    if x.shape[1] != channels:
        raise VAEInputError(
            f"{what} must have {channels} channels (dim 1 of B, C, T, H, W), "
            f"got shape {tuple(x.shape)}"
        )
    if x.numel() == 0:
        raise VAEInputError(f"{what} are empty: shape {tuple(x.shape)}")
    if not x.is_floating_point():
        hint = "; convert uint8 frames with frames_to_tensor" if x.dtype == torch.uint8 else ""
        raise VAEInputError(f"{what} must be a float tensor, got {x.dtype}{hint}")
    if x.device != weights.device:
        raise VAEInputError(f"{what} are on {x.device} but the VAE is on {weights.device}")
    if x.dtype != weights.dtype and not torch.is_autocast_enabled(x.device.type):
        raise VAEInputError(
            f"{what} are {x.dtype} but the VAE's weights are {weights.dtype}: "
            "cast the input or run under torch.autocast"
        )


def _check_same_clip(chunk: Tensor, first: Tensor | None, what: str) -> None:
    """Later chunks of a stream must match the first in batch size, height and width."""
    if first is not None and (chunk.shape[:2] + chunk.shape[3:]) != (
        first.shape[:2] + first.shape[3:]
    ):
        raise VAEInputError(
            f"{what} chunks of one clip must share B, C, H and W: the first chunk has shape "
            f"{tuple(first.shape)}, a later one {tuple(chunk.shape)}"
        )


def _check_tiling(tile: object) -> None:
    if tile is not None and not isinstance(tile, Tiling):
        raise VAEInputError(f"tile must be a Tiling(size, overlap) or None, got {tile!r}")


def _check_finite(x: Tensor, what: str) -> None:
    if not torch.isfinite(x).all():
        nan, inf = int(torch.isnan(x).sum()), int(torch.isinf(x).sum())
        raise VAEInputError(f"{what} hold {nan} NaN and {inf} infinite values")


# ---------------------------------------------------------------------------------------------
# Chunks and tiles


def _split_time(x: Tensor, chunk: int | None, first_extra: int) -> list[Tensor]:
    """``x`` cut along time: [0, first_extra + chunk), then ``chunk`` at a time."""
    if chunk is None:
        return [x]
    frames = x.shape[2]
    starts = [0, *range(first_extra + chunk, frames, chunk)]
    ends = [*starts[1:], frames]
    return [x[:, :, start:end] for start, end in zip(starts, ends, strict=True)]


@dataclass(frozen=True)
class _Tile:
    """One spatial tile: where it is read from, where its output goes, and its blend weights."""

    key: tuple[int, int]  # (row, column) of the tile: names its cache
    source: tuple[slice, slice]  # rows and columns of the input
    target: tuple[slice, slice]  # rows and columns of the output
    weight: Tensor  # (h', w') blend weights over the output tile


def _code_tiled(
    coder: Callable[[Tensor, CausalCache], Tensor],
    x: Tensor,
    tiling: tuple[int, int] | None,
    caches: dict[tuple[int, int], CausalCache],
    scale: tuple[int, int],
) -> Tensor:
    """``coder(x, cache)`` over overlapping spatial tiles of x, blended by their weights.

    ``tiling`` is (size, overlap) in x's units, or None for one tile; an output size is an
    input size times up / down, ``scale`` = (up, down). Each tile has its own cache in
    ``caches``, kept between the chunks of a clip. With one tile this is exactly
    ``coder(x, cache)``.
    """
    height, width = x.shape[-2:]
    up, down = scale
    tiles = _plan_tiles(height, width, tiling, scale, x.device)
    if len(tiles) == 1:
        return coder(x, caches.setdefault(tiles[0].key, CausalCache()))
    total = weight = piece = None
    for tile in tiles:
        cache = caches.setdefault(tile.key, CausalCache())
        piece = coder(x[(..., *tile.source)], cache)  # (B, C', T', h', w')
        if total is None or weight is None:
            out_size = (height * up // down, width * up // down)
            total = piece.new_zeros(*piece.shape[:3], *out_size, dtype=torch.float32)
            weight = torch.zeros(out_size, device=x.device)  # (H', W')
        total[(..., *tile.target)] += piece.float() * tile.weight  # (B, C', T', H', W')
        weight[tile.target] += tile.weight
    assert total is not None and weight is not None and piece is not None
    return (total / weight).to(piece.dtype)  # (B, C', T', H', W'), bf16 under autocast


def _plan_tiles(
    height: int,
    width: int,
    tiling: tuple[int, int] | None,
    scale: tuple[int, int],
    device: torch.device,
) -> list[_Tile]:
    """The tiles covering a (height, width) input, row by row."""
    size, overlap = tiling if tiling is not None else (max(height, width), 0)
    up, down = scale
    tiles = []
    for i, (top, tile_h) in enumerate(_tile_spans(height, size, overlap)):
        for j, (left, tile_w) in enumerate(_tile_spans(width, size, overlap)):
            rows = _ramp(tile_h * up // down, overlap * up // down, top > 0, top + tile_h < height)
            cols = _ramp(tile_w * up // down, overlap * up // down, left > 0, left + tile_w < width)
            tiles.append(
                _Tile(
                    key=(i, j),
                    source=(slice(top, top + tile_h), slice(left, left + tile_w)),
                    target=(
                        slice(top * up // down, (top + tile_h) * up // down),
                        slice(left * up // down, (left + tile_w) * up // down),
                    ),
                    weight=(rows[:, None] * cols[None, :]).to(device),  # (h', w')
                )
            )
    return tiles


def _tile_spans(length: int, size: int, overlap: int) -> list[tuple[int, int]]:
    """(start, length) of tiles covering [0, length): a step of size - overlap, the last tile
    flush with the end (so it may overlap more); one tile when it fits."""
    if size >= length:
        return [(0, length)]
    starts = [*range(0, length - size, size - overlap), length - size]
    return [(start, size) for start in starts]


def _ramp(length: int, overlap: int, rise: bool, fall: bool) -> Tensor:
    """Blend weights (length,) for one tile along one axis: 1 inside, and across an overlap
    with a neighbour (at the start when ``rise``, at the end when ``fall``): 0 over the outer
    quarter of the overlap, whose content the missing context beyond the tile's edge distorts
    most, then a linear ramp over the middle half, then 1. Neighbours overlapping by exactly
    ``overlap`` get weights that sum to 1; a larger overlap (the last tile) normalises the same.
    """
    weights = torch.ones(length)
    span = min(overlap, length)
    if span == 0:
        return weights
    margin = span // 4
    middle = span - 2 * margin
    edge = torch.ones(span)  # (span,) rising from 0 to 1
    edge[:margin] = 0.0
    edge[margin : margin + middle] = (torch.arange(middle) + 0.5) / middle
    if rise:
        weights[:span] = torch.minimum(weights[:span], edge)
    if fall:
        weights[-span:] = torch.minimum(weights[-span:], edge.flip(0))
    return weights


# ---------------------------------------------------------------------------------------------
# Pixel boundary


@dataclass(frozen=True)
class FrameLayout:
    """The frame count and size of a clip before `encode_video` padded it."""

    num_frames: int
    height: int
    width: int


def frames_to_tensor(frames: Tensor) -> Tensor:
    """uint8 frames (T, H, W, 3) to float32 (1, 3, T, H, W) in [-1, 1]."""
    _check_frames(frames)
    pixels = frames.permute(3, 0, 1, 2)[None]  # (1, 3, T, H, W) uint8
    return pixels.float() / 127.5 - 1.0  # (1, 3, T, H, W) in [-1, 1]


def tensor_to_frames(x: Tensor) -> Tensor:
    """Float (1, 3, T, H, W) in [-1, 1] (clamped) to uint8 frames (T, H, W, 3), on the CPU."""
    if not isinstance(x, Tensor) or x.ndim != 5 or x.shape[0] != 1 or x.shape[1] != 3:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise VAEInputError(f"tensor_to_frames takes one clip (1, 3, T, H, W), got {shape}")
    if not x.is_floating_point():
        raise VAEInputError(f"tensor_to_frames takes a float tensor, got {x.dtype}")
    levels = ((x[0].float().clamp(-1.0, 1.0) + 1.0) * 127.5).round()  # (3, T, H, W) in 0..255
    return levels.to(torch.uint8).permute(1, 2, 3, 0).contiguous().cpu()  # (T, H, W, 3)


def encode_video(
    vae: VideoVAE,
    frames: Tensor,
    sample: bool = False,
    generator: torch.Generator | None = None,
    chunk_frames: int | None = DEFAULT_CHUNK_FRAMES,
    tile: Tiling | None = None,
) -> tuple[Tensor, FrameLayout]:
    """uint8 frames (T, H, W, 3) of any count and size to normalised latents (1, C, t, h, w).

    Pads to 1 + 4k frames (repeating the last) and to multiples of 8 (repeating the bottom
    row and right column); returns the latents and the `FrameLayout` that `decode_video`
    trims back to. The posterior's mean unless ``sample``. Chunked by default (exact).
    """
    # 1. check, and pad to a shape the model takes
    _check_frames(frames)
    layout = FrameLayout(*frames.shape[:3])
    padded = _pad_frames(frames)  # (1 + 4k, 8h, 8w, 3)
    # 2. encode in the weights' dtype, on their device
    weights = next(vae.parameters())
    pixels = frames_to_tensor(padded.to(weights.device)).to(weights.dtype)  # (1, 3, T', H', W')
    posterior = vae.encode(pixels, chunk_frames=chunk_frames, tile=tile)
    z = posterior.sample(generator) if sample else posterior.mode()  # (1, C, 1 + k, h, w)
    return vae.normalize_latents(z), layout


def decode_video(
    vae: VideoVAE,
    latents: Tensor,
    layout: FrameLayout,
    chunk_latents: int | None = DEFAULT_CHUNK_LATENTS,
    tile: Tiling | None = None,
) -> Tensor:
    """Normalised latents (1, C, t, h, w) to uint8 frames (T, H, W, 3), trimmed to ``layout``."""
    z = vae.denormalize_latents(latents)  # (1, C, t, h, w)
    pixels = vae.decode(z, chunk_latents=chunk_latents, tile=tile)  # (1, 3, T', H', W')
    frames = tensor_to_frames(pixels)  # (T', H', W', 3)
    if (
        layout.num_frames > frames.shape[0]
        or layout.height > frames.shape[1]
        or layout.width > frames.shape[2]
    ):
        raise VAEInputError(
            f"the layout {layout} is larger than the decoded frames {tuple(frames.shape[:3])}"
        )
    return frames[: layout.num_frames, : layout.height, : layout.width].contiguous()


def _check_frames(frames: object) -> None:
    """Raise `VAEInputError` unless ``frames`` is a non-empty uint8 (T, H, W, 3) tensor."""
    if not isinstance(frames, Tensor):
        raise VAEInputError(f"frames must be a torch.Tensor, got {type(frames).__name__}")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise VAEInputError(f"frames must have shape (T, H, W, 3), got {tuple(frames.shape)}")
    if frames.dtype != torch.uint8:
        raise VAEInputError(f"frames must be uint8 (0..255), got {frames.dtype}")
    if frames.numel() == 0:
        raise VAEInputError(f"frames are empty: shape {tuple(frames.shape)}")


def _pad_frames(frames: Tensor) -> Tensor:
    """(T, H, W, 3) padded to 1 + 4k frames and a height and width divisible by 8."""
    count, height, width = frames.shape[:3]
    extra_frames = -(count - 1) % TEMPORAL_DOWNSAMPLE
    extra_rows, extra_cols = -height % SPATIAL_DOWNSAMPLE, -width % SPATIAL_DOWNSAMPLE
    if extra_frames:
        last = frames[-1:].expand(extra_frames, -1, -1, -1)  # (extra, H, W, 3)
        frames = torch.cat([frames, last], dim=0)  # (1 + 4k, H, W, 3)
    if extra_rows:
        bottom = frames[:, -1:].expand(-1, extra_rows, -1, -1)  # (T, extra, W, 3)
        frames = torch.cat([frames, bottom], dim=1)  # (T, 8h, W, 3)
    if extra_cols:
        right = frames[:, :, -1:].expand(-1, -1, extra_cols, -1)  # (T, H, extra, 3)
        frames = torch.cat([frames, right], dim=2)  # (T, H, 8w, 3)
    return frames
