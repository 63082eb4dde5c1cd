"""Kinetoscope's diffusion transformer: spacetime patches in, velocity out.

The model reads a noisy latent video (B, 16, t, h, w), the timestep t in [0, 1] of rectified
flow (t = 0 noise, t = 1 data) and the prompt's `TextEmbedding`, and predicts the velocity
data - noise, (B, 16, t, h, w). Known frames (image-to-video, extension, connect, loop) come
in as a second latent and a per-frame mask, so one model does every task::

    [noisy (16) | known_latents * known_mask (16) | known_mask (1)]     (B, 33, t, h, w)
      -> PatchEmbed: 1x2x2 patches, one linear layer                   (B, L, width), L = t*h*w/4
      -> DiTBlock x depth:                                             (B, L, width)
           adaLN-zero self-attention over all L patches (QK RMS-norm, 3D rotary positions)
           cross-attention to the text tokens (pre-norm, key-padding mask)
           adaLN-zero MLP (GELU)
      -> FinalLayer: adaLN, linear to 16 x 1x2x2 values per patch      (B, L, 64)
      -> unpatchify                                                    (B, 16, t, h, w)

Conditioning, following DiT and PixArt-alpha:

- c = TimestepEmbedder(t) + an MLP of the pooled text (B, width): what the whole clip is
  conditioned on. One shared modulation layer ("adaLN-single") maps c to 6 x width shifts,
  scales and gates; each block adds its own learned (6, width) offsets to them. That costs
  6 width^2 parameters for the whole model instead of per block (a third of a DiT block).
- Text tokens go through a small MLP into the model width, once, and every block
  cross-attends to them with its own keys and values; padding keys are masked out, so padding
  never changes the output.
- adaLN-zero: the shared modulation layer, the per-block offsets and the cross-attention's
  output projection start at zero, so every block starts as the identity; the final layer
  starts at zero too, so the untrained model predicts exactly zero velocity.

Positions: `RotaryEmbedding3D` splits each head's dimension into three even parts, one per
axis (t, h, w), and rotates query and key pairs by angles proportional to the patch's integer
coordinate on that axis. Attention scores then depend on relative positions only, and nothing
is tied to a size: one model runs any duration, size and aspect ratio.

Classifier-free guidance: the model holds a learned null prompt (``null_tokens`` (1, N, 384)
and ``null_pooled`` (1, 384)). ``drop_text`` (B,) bool swaps it in for chosen rows (training
drops prompts at random; a sampler's unconditional pass drops them all); `null_text` returns
it as a `TextEmbedding`.

Presets (parameters counted exactly; forward GFLOPs per sample at 1088 tokens, a 4 s 128x128
clip, with 16 text tokens, from `DiTConfig.forward_flops`). B and L have DiT-B's and DiT-L's
widths and depths; with cross-attention added and adaLN-single saving 6 width^2 per block
they come out ~7% smaller than those DiTs::

    name   width  depth  heads  head dim    parameters   GFLOPs
    tiny      32      2      2        16       0.087 M      0.38
    S        384      6      6        64      16.30 M      38.3
    B        768     12     12        64     120.88 M     261
    L       1024     24     16        64     415.98 M     887
    XL      2048     20     16       128    1391.72 M    2759

S is the shipped CPU model (and `DiTConfig()`'s defaults): lean enough for a guided 4 s clip
in 20-30 steps on two CPU cores (see benchmarks/dit_speed.py).

Bad input raises `DiTInputError` before any compute, naming the problem: wrong type, rank,
channel count, shape (sizes not divisible by the patch, batch mismatches), dtype (inputs must
be floating point and match the weights' dtype unless autocast is on), device, NaN or inf,
timesteps outside [0, 1], a text row with no real token.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from kinetoscope.errors import KinetoscopeError
from kinetoscope.models.attention import attention
from kinetoscope.models.pretrained import MAX_SHARD_BYTES, load_pretrained, save_pretrained
from kinetoscope.models.text import TEXT_DIM, TextEmbedding

__all__ = [
    "DIT_PRESETS",
    "DiTBlock",
    "DiTConfig",
    "DiTInputError",
    "DiffusionTransformer",
    "FinalLayer",
    "PatchEmbed",
    "RotaryEmbedding3D",
    "TimestepEmbedder",
    "apply_rotary",
    "frame_conditioning",
    "modulate",
    "patch_positions",
]


class DiTInputError(KinetoscopeError, ValueError):
    """An input the diffusion transformer cannot take; the message names what is wrong."""


# ---------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class DiTConfig:
    """Hyperparameters of a `DiffusionTransformer`; stored in a checkpoint's config.json."""

    latent_channels: int = 16  # the VAE's
    patch_size: tuple[int, int, int] = (1, 2, 2)  # latent voxels per patch in (t, h, w)
    width: int = 384
    depth: int = 6
    heads: int = 6
    mlp_ratio: float = 4.0  # MLP hidden width / width
    text_dim: int = TEXT_DIM  # the text encoder's
    null_text_tokens: int = 4  # length of the learned null prompt (classifier-free guidance)
    timestep_frequencies: int = 256  # sinusoids in the timestep embedding
    timestep_scale: float = 1000.0  # t in [0, 1] is embedded as t * scale
    rope_theta: float = 10000.0  # rotary base: the longest wavelength in patches
    qk_norm_eps: float = 1e-6
    norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        for name in (
            "latent_channels",
            "width",
            "depth",
            "heads",
            "text_dim",
            "null_text_tokens",
            "timestep_frequencies",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"DiTConfig.{name} must be a positive int, got {value!r}")
        patch = self.patch_size
        if not (
            isinstance(patch, tuple)
            and len(patch) == 3
            and all(isinstance(p, int) and not isinstance(p, bool) and p >= 1 for p in patch)
        ):
            raise ValueError(
                f"DiTConfig.patch_size must be a tuple of 3 positive ints (t, h, w), got {patch!r}"
            )
        if self.width % self.heads:
            raise ValueError(
                f"DiTConfig.width ({self.width}) must be divisible by heads ({self.heads})"
            )
        if self.head_dim % 2 or self.head_dim < 6:
            raise ValueError(
                f"DiTConfig: the head dimension width / heads = {self.head_dim} must be even and "
                "at least 6, to split into three even rotary parts (t, h, w)"
            )
        if self.timestep_frequencies % 2:
            raise ValueError(
                "DiTConfig.timestep_frequencies must be even (cosines and sines), "
                f"got {self.timestep_frequencies}"
            )
        for name, low in (("mlp_ratio", 0.0), ("timestep_scale", 0.0), ("rope_theta", 1.0)):
            value = getattr(self, name)
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not ok or not math.isfinite(value) or value <= low:
                raise ValueError(f"DiTConfig.{name} must be a number above {low}, got {value!r}")
        if self.mlp_width < 1:
            raise ValueError(f"DiTConfig.mlp_ratio {self.mlp_ratio} leaves an empty MLP")
        for name in ("qk_norm_eps", "norm_eps"):
            value = getattr(self, name)
            if not (isinstance(value, float) and 0 < value < 1):
                raise ValueError(f"DiTConfig.{name} must be a float in (0, 1), got {value!r}")

    @property
    def head_dim(self) -> int:
        return self.width // self.heads

    @property
    def mlp_width(self) -> int:
        return round(self.width * self.mlp_ratio)

    @property
    def in_channels(self) -> int:
        """Channels of the model input: noisy latent, known latents, known mask."""
        return 2 * self.latent_channels + 1

    @property
    def patch_volume(self) -> int:
        return math.prod(self.patch_size)

    @property
    def rope_dims(self) -> tuple[int, int, int]:
        """How each head's dimension is split among the (t, h, w) rotary axes: even parts,
        height and width equal, time taking the rest (it is the longest axis in patches)."""
        spatial = 2 * (self.head_dim // 6)
        return (self.head_dim - 2 * spatial, spatial, spatial)

    def forward_flops(self, tokens: int, text_tokens: int) -> int:
        """FLOPs of one sample's forward pass (2 per multiply-add) with ``tokens`` patches and
        ``text_tokens`` text tokens: the matrix products and attention, which are nearly all
        of it (norms, rotary and activations are left out). A training step (forward and
        backward) is about three times this."""
        w, n, m, hidden = self.width, tokens, text_tokens, self.mlp_width
        block = (
            2 * n * w * 3 * w  # self-attention q, k, v
            + 2 * 2 * n * n * w  # scores and weighted sum over n keys
            + 2 * n * w * w  # self-attention output
            + 2 * n * w * w  # cross-attention queries
            + 2 * m * w * 2 * w  # cross-attention keys and values from the text
            + 2 * 2 * n * m * w  # scores and weighted sum over m keys
            + 2 * n * w * w  # cross-attention output
            + 2 * 2 * n * w * hidden  # MLP
        )
        patches = 2 * n * w * self.patch_volume * (self.in_channels + self.latent_channels)
        text = 2 * m * (self.text_dim * w + w * w)  # token projection
        conditioning = 2 * (
            (self.timestep_frequencies + w) * w  # timestep MLP
            + (self.text_dim + w) * w  # pooled-text MLP
            + 6 * w * w  # shared modulation
            + 2 * w * w  # final layer's modulation
        )
        return self.depth * block + patches + text + conditioning


DIT_PRESETS: dict[str, DiTConfig] = {
    # tests: milliseconds on 16x16 latents
    "tiny": DiTConfig(width=32, depth=2, heads=2),
    # the shipped CPU model: a 4 s 128x128 clip in 20-30 guided steps on 2 cores
    "S": DiTConfig(width=384, depth=6, heads=6),
    "B": DiTConfig(width=768, depth=12, heads=12),
    "L": DiTConfig(width=1024, depth=24, heads=16),
    "XL": DiTConfig(width=2048, depth=20, heads=16),
}


# ---------------------------------------------------------------------------------------------
# Building blocks


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """adaLN: tokens (B, L, W) scaled by 1 + ``scale`` and shifted by ``shift``, both (B, W)."""
    # x * (1 + scale) + shift in one pass over x (3x faster than two on a CPU)
    return torch.addcmul(shift[:, None], x, 1 + scale[:, None])  # (B, L, W)


class RMSNorm(nn.Module):
    """Root-mean-square norm over the last dimension with a learned gain, computed in float32
    (so bf16 queries and keys get exact statistics) and returned in the input's dtype."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        x32 = x.float()  # (..., dim)
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (normed * self.weight.float()).to(x.dtype)


class Mlp(nn.Module):
    """Linear, GELU, linear: the blocks' MLP and the conditioning MLPs.

    The exact (erf) GELU, not the tanh approximation: the same function to 1e-3, and on a CPU
    the tanh form took 3x as long, a tenth of the whole forward pass of the small model.
    """

    def __init__(self, in_features: int, hidden: int, out_features: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, out_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))  # (..., out_features)


class PatchEmbed(nn.Module):
    """Cut (B, C, t, h, w) into pt x ph x pw patches, one token each, in (t, h, w) raster
    order, and project every patch to the model width with one linear layer."""

    def __init__(self, in_channels: int, patch_size: tuple[int, int, int], width: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Linear(in_channels * math.prod(patch_size), width)

    def forward(self, x: Tensor) -> Tensor:
        pt, ph, pw = self.patch_size
        patches = rearrange(
            x, "b c (t pt) (h ph) (w pw) -> b (t h w) (c pt ph pw)", pt=pt, ph=ph, pw=pw
        )  # (B, L, C * pt * ph * pw)
        return self.proj(patches)  # (B, L, width)


class TimestepEmbedder(nn.Module):
    """t in [0, 1] (B,) -> (B, width): sinusoids of t * scale (float32), then an MLP.

    Scaling by 1000 spreads [0, 1] over the sinusoids' range of wavelengths the way DiT's
    integer timesteps do, so neighbouring timesteps get distinguishable embeddings.
    """

    def __init__(self, width: int, frequencies: int, scale: float) -> None:
        super().__init__()
        self.frequencies = frequencies
        self.scale = scale
        self.mlp = Mlp(frequencies, width, width)

    def sinusoids(self, timesteps: Tensor) -> Tensor:
        """(B,) -> (B, frequencies) float32: cosines then sines, periods 2 pi .. 2 pi 10^4."""
        half = self.frequencies // 2
        exponents = torch.arange(half, device=timesteps.device, dtype=torch.float32) / half
        rates = torch.exp(-math.log(10000.0) * exponents)  # (half,)
        angles = timesteps.float()[:, None] * self.scale * rates[None]  # (B, half)
        return torch.cat([angles.cos(), angles.sin()], dim=-1)  # (B, frequencies)

    def forward(self, timesteps: Tensor) -> Tensor:
        features = self.sinusoids(timesteps).to(self.mlp.fc1.weight.dtype)  # (B, frequencies)
        return self.mlp(features)  # (B, width)


def patch_positions(grid: tuple[int, int, int], device: torch.device | str) -> Tensor:
    """Integer (t, h, w) coordinates of every patch of a (t, h, w) grid, (L, 3) int64, in the
    raster order `PatchEmbed` makes tokens in."""
    axes = [torch.arange(size, device=device) for size in grid]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)  # (L, 3)


class RotaryEmbedding3D(nn.Module):
    """Rotary position angles factored over (t, h, w).

    Each head's dimension d is split into parts (d_t, d_h, d_w), all even. On axis a, pair i
    of its part turns by position_a * theta^(-2i / d_a): wavelengths from 2 pi to about
    2 pi theta patches, so near and far offsets are both told apart. Rotating queries and keys
    by their own positions makes q.k depend on the difference of the positions only.
    No parameters: the angles are computed (in float64) per call, and returned as unit
    complex numbers, which turn a pair with one complex product (15x faster on a CPU than
    the same rotation written with cos and sin).
    """

    def __init__(self, dims: tuple[int, int, int], theta: float) -> None:
        super().__init__()
        self.dims = dims
        self.theta = theta

    def forward(self, positions: Tensor) -> Tensor:
        """(L, 3) coordinates -> exp(i angle), (L, d / 2) complex64."""
        angles = []
        for axis, dim in enumerate(self.dims):
            exponents = torch.arange(0, dim, 2, device=positions.device, dtype=torch.float64)
            rates = self.theta ** (-exponents / dim)  # (dim / 2,)
            angles.append(positions[:, axis, None].double() * rates)  # (L, dim / 2)
        angle = torch.cat(angles, dim=-1).float()  # (L, d / 2)
        return torch.polar(torch.ones_like(angle), angle)  # (L, d / 2) complex


def apply_rotary(x: Tensor, rope: Tensor) -> Tensor:
    """Rotate each pair (x[2i], x[2i+1]) of (B, heads, L, d), read as a complex number, by
    the (L, d / 2) unit complex numbers of `RotaryEmbedding3D`; in float32, returned in x's
    dtype."""
    pairs = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)))  # (B, heads, L, d / 2)
    return torch.view_as_real(pairs * rope).flatten(-2).to(x.dtype)  # (B, heads, L, d)


class SelfAttention(nn.Module):
    """Multi-head self-attention over all patches, with QK RMS-norm and 3D rotary positions.

    Normalising queries and keys bounds the attention logits, which keeps large models stable
    in bf16 (the logits cannot grow without bound as weights do).
    """

    def __init__(self, width: int, heads: int, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.q_norm = RMSNorm(width // heads, eps)
        self.k_norm = RMSNorm(width // heads, eps)
        self.proj = nn.Linear(width, width)

    def forward(self, x: Tensor, rope: Tensor) -> Tensor:
        qkv = rearrange(self.qkv(x), "b l (n h d) -> n b h l d", n=3, h=self.heads)
        q, k, v = qkv.unbind(0)  # (B, heads, L, d) each
        q = apply_rotary(self.q_norm(q), rope)  # (B, heads, L, d)
        k = apply_rotary(self.k_norm(k), rope)  # (B, heads, L, d)
        attended = attention(q, k, v)  # (B, heads, L, d)
        return self.proj(rearrange(attended, "b h l d -> b l (h d)"))  # (B, L, W)


class CrossAttention(nn.Module):
    """Multi-head attention from the patches to the text tokens (no positions: the text
    encoder has already placed its tokens), with QK RMS-norm and a key-padding mask."""

    def __init__(self, width: int, heads: int, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(width, 2 * width)
        self.q_norm = RMSNorm(width // heads, eps)
        self.k_norm = RMSNorm(width // heads, eps)
        self.proj = nn.Linear(width, width)  # zero-initialised: the block starts as identity

    def forward(self, x: Tensor, context: Tensor, context_mask: Tensor) -> Tensor:
        q = rearrange(self.q(x), "b l (h d) -> b h l d", h=self.heads)  # (B, heads, L, d)
        kv = rearrange(self.kv(context), "b m (n h d) -> n b h m d", n=2, h=self.heads)
        k, v = kv.unbind(0)  # (B, heads, M, d) each
        attended = attention(self.q_norm(q), self.k_norm(k), v, context_mask)  # (B, heads, L, d)
        return self.proj(rearrange(attended, "b h l d -> b l (h d)"))  # (B, L, W)


class DiTBlock(nn.Module):
    """adaLN-zero self-attention, pre-norm cross-attention to the text, adaLN-zero MLP.

    The six modulation vectors (shift, scale, gate for attention, then for the MLP) are the
    model's shared modulation of c plus this block's learned ``modulation_offset`` (6, W).
    """

    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        width, eps = config.width, config.norm_eps
        self.norm1 = nn.LayerNorm(width, eps=eps, elementwise_affine=False)
        self.self_attn = SelfAttention(width, config.heads, config.qk_norm_eps)
        self.norm2 = nn.LayerNorm(width, eps=eps)  # own gain and bias: no modulation here
        self.cross_attn = CrossAttention(width, config.heads, config.qk_norm_eps)
        self.norm3 = nn.LayerNorm(width, eps=eps, elementwise_affine=False)
        self.mlp = Mlp(width, config.mlp_width, width)
        self.modulation_offset = nn.Parameter(torch.zeros(6, width))

    def forward(
        self,
        x: Tensor,
        modulation: Tensor,
        rope: Tensor,
        context: Tensor,
        context_mask: Tensor,
    ) -> Tensor:
        shift_sa, scale_sa, gate_sa, shift_mlp, scale_mlp, gate_mlp = (
            modulation + self.modulation_offset
        ).unbind(1)  # (B, W) each
        attended = self.self_attn(modulate(self.norm1(x), shift_sa, scale_sa), rope)  # (B, L, W)
        x = torch.addcmul(x, gate_sa[:, None], attended)  # x + gate * attended, (B, L, W)
        x = x + self.cross_attn(self.norm2(x), context, context_mask)  # (B, L, W)
        hidden = self.mlp(modulate(self.norm3(x), shift_mlp, scale_mlp))  # (B, L, W)
        return torch.addcmul(x, gate_mlp[:, None], hidden)  # x + gate * hidden, (B, L, W)


class FinalLayer(nn.Module):
    """adaLN (its own shift and scale from c), then a linear map to each patch's output
    values; both zero-initialised, so the untrained model predicts zero velocity."""

    def __init__(self, width: int, out_features: int, eps: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width, eps=eps, elementwise_affine=False)
        self.modulation = nn.Linear(width, 2 * width)
        self.linear = nn.Linear(width, out_features)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        shift, scale = self.modulation(F.silu(c)).chunk(2, dim=-1)  # (B, W) each
        return self.linear(modulate(self.norm(x), shift, scale))  # (B, L, out_features)


# ---------------------------------------------------------------------------------------------
# The model


class DiffusionTransformer(nn.Module):
    """Velocity of rectified flow for latent video, conditioned on text and known frames."""

    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        self.config = config
        width = config.width
        self.patch_embed = PatchEmbed(config.in_channels, config.patch_size, width)
        self.timestep_embedder = TimestepEmbedder(
            width, config.timestep_frequencies, config.timestep_scale
        )
        self.pooled_embedder = Mlp(config.text_dim, width, width)
        self.text_projection = Mlp(config.text_dim, width, width)
        self.null_tokens = nn.Parameter(torch.empty(1, config.null_text_tokens, config.text_dim))
        self.null_pooled = nn.Parameter(torch.empty(1, config.text_dim))
        self.modulation = nn.Linear(width, 6 * width)  # adaLN-single: shared by every block
        self.rope = RotaryEmbedding3D(config.rope_dims, config.rope_theta)
        self.blocks = nn.ModuleList(DiTBlock(config) for _ in range(config.depth))
        self.final_layer = FinalLayer(
            width, config.latent_channels * config.patch_volume, config.norm_eps
        )
        self.gradient_checkpointing = False
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """Every weight of the model, set here and only here.

        - Linear layers: Xavier-uniform, zero bias (DiT); the patch embedding too, as the
          linear map it is. Norm gains 1, biases 0.
        - Conditioning MLPs (timestep, pooled text, text tokens): normal, std 0.02.
        - Null prompt: normal with std 1/sqrt(text_dim), vectors of about unit length like
          the L2-normalised pooled text.
        - adaLN-zero: the shared modulation layer, each block's offsets and the
          cross-attention output projections are zero, so every block starts as the identity;
          the final layer (modulation and output) is zero, so the output starts at zero.
        """
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm) and module.elementwise_affine:
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, RMSNorm):
                nn.init.ones_(module.weight)
        for mlp in (self.timestep_embedder.mlp, self.pooled_embedder, self.text_projection):
            nn.init.normal_(mlp.fc1.weight, std=0.02)
            nn.init.normal_(mlp.fc2.weight, std=0.02)
        nn.init.normal_(self.null_tokens, std=self.config.text_dim**-0.5)
        nn.init.normal_(self.null_pooled, std=self.config.text_dim**-0.5)
        zeroed = [self.modulation, self.final_layer.modulation, self.final_layer.linear]
        zeroed += [block.cross_attn.proj for block in self.blocks]
        for layer in zeroed:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        for block in self.blocks:
            nn.init.zeros_(block.modulation_offset)

    # -- the forward pass ---------------------------------------------------------------------

    def forward(
        self,
        latents: Tensor,
        timesteps: Tensor,
        text: TextEmbedding,
        known_latents: Tensor | None = None,
        known_mask: Tensor | None = None,
        drop_text: Tensor | None = None,
    ) -> Tensor:
        """Velocity (B, 16, t, h, w) in ``latents``' dtype.

        ``latents`` (B, 16, t, h, w): the noisy latent x_t. ``timesteps`` (B,) float in
        [0, 1] (0 noise, 1 data). ``text``: the prompts, one row per sample.
        ``known_latents`` (B, 16, t, h, w) and ``known_mask`` (B, t) bool: clean latents of
        the frames marked True, shown to the model (both or neither; neither means no frame
        is known). ``drop_text`` (B,) bool: rows whose prompt is replaced by the null prompt.
        """
        # 1. check inputs
        self._check_inputs(latents, timesteps, text, known_latents, known_mask, drop_text)
        _, _, frames, height, width = latents.shape
        pt, ph, pw = self.config.patch_size
        grid = (frames // pt, height // ph, width // pw)
        # 2. tokens: [noisy | known | mask] patches, and their rotary angles
        model_input = frame_conditioning(latents, known_latents, known_mask)  # (B, 33, t, h, w)
        x = self.patch_embed(model_input)  # (B, L, W)
        rope = self.rope(patch_positions(grid, latents.device))  # (L, d / 2) complex
        # 3. conditioning: text tokens for cross-attention, c for adaLN
        tokens, text_mask, pooled = self._text_or_null(text, drop_text)  # (B, M, D), (B, M), (B, D)
        context = self.text_projection(tokens)  # (B, M, W)
        c = self.timestep_embedder(timesteps) + self.pooled_embedder(pooled)  # (B, W)
        modulation = self.modulation(F.silu(c)).unflatten(1, (6, -1))  # (B, 6, W)
        # 4. blocks
        for block in self.blocks:
            if self.gradient_checkpointing and torch.is_grad_enabled():
                x = checkpoint(
                    block, x, modulation, rope, context, text_mask, use_reentrant=False
                )  # (B, L, W), activations recomputed in the backward pass
            else:
                x = block(x, modulation, rope, context, text_mask)  # (B, L, W)
        # 5. velocity
        patches = self.final_layer(x, c)  # (B, L, 16 * pt * ph * pw)
        velocity = rearrange(
            patches,
            "b (t h w) (c pt ph pw) -> b c (t pt) (h ph) (w pw)",
            t=grid[0],
            h=grid[1],
            w=grid[2],
            pt=pt,
            ph=ph,
            pw=pw,
        )  # (B, 16, t, h, w)
        return velocity.to(latents.dtype)

    def null_text(
        self,
        batch: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> TextEmbedding:
        """The learned null prompt for ``batch`` rows: tokens (batch, N, 384), all real, and
        pooled (batch, 384); on the model's device and in its dtype unless given."""
        tokens = self.null_tokens.expand(batch, -1, -1).to(device=device, dtype=dtype)
        pooled = self.null_pooled.expand(batch, -1).to(device=device, dtype=dtype)
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return TextEmbedding(tokens=tokens, mask=mask, pooled=pooled)

    def _text_or_null(
        self, text: TextEmbedding, drop_text: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The text's tokens (B, M, D), mask (B, M) and pooled (B, D), with the rows marked in
        ``drop_text`` replaced by the null prompt (padded to M = max(L, N) tokens)."""
        if drop_text is None:
            return text.tokens, text.mask, text.pooled
        null = self.null_text(1, device=text.tokens.device)
        length = max(text.tokens.shape[1], null.tokens.shape[1])
        tokens, mask = _pad_text(text.tokens, text.mask, length)  # (B, M, D), (B, M)
        null_tokens, null_mask = _pad_text(null.tokens, null.mask, length)  # (1, M, D), (1, M)
        drop = drop_text[:, None]  # (B, 1)
        tokens = torch.where(drop[:, :, None], null_tokens.to(tokens.dtype), tokens)
        mask = torch.where(drop, null_mask, mask)
        pooled = torch.where(drop, null.pooled.to(text.pooled.dtype), text.pooled)
        return tokens, mask, pooled

    # -- helpers ------------------------------------------------------------------------------

    def enable_gradient_checkpointing(self, enabled: bool = True) -> None:
        """Recompute each block's activations in the backward pass instead of keeping them:
        activation memory of one block instead of ``depth``, for about a third more compute.
        Only takes effect while gradients are being recorded."""
        self.gradient_checkpointing = enabled

    def num_parameters(self) -> int:
        """Number of parameters (elements), all of them trainable."""
        return sum(p.numel() for p in self.parameters())

    # -- checkpoints ---------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        folder: str | os.PathLike[str],
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> DiffusionTransformer:
        """Load a checkpoint folder (config.json + safetensors), in eval mode."""
        return load_pretrained(cls, DiTConfig, folder, device=device, dtype=dtype)

    def save_pretrained(
        self,
        folder: str | os.PathLike[str],
        dtype: torch.dtype | None = None,
        max_shard_bytes: int = MAX_SHARD_BYTES,
    ) -> Path:
        """Write config.json + safetensors to ``folder`` atomically (``dtype``: e.g. bf16).

        The default shard limit is the shipping rule (15 MiB files). Some tensors of the L
        preset in float32, and of XL in any dtype, are larger than that: their checkpoints
        need a larger ``max_shard_bytes``.
        """
        return save_pretrained(
            self, self.config, folder, dtype=dtype, max_shard_bytes=max_shard_bytes
        )

    # -- input checks --------------------------------------------------------------------------

    def _check_inputs(
        self,
        latents: object,
        timesteps: object,
        text: object,
        known_latents: object,
        known_mask: object,
        drop_text: object,
    ) -> None:
        """Raise `DiTInputError` unless the inputs are ones this model can take."""
        config, weights = self.config, self.patch_embed.proj.weight
        channels = config.latent_channels
        latents = _tensor(latents, "latents")
        if latents.ndim != 5 or latents.shape[1] != channels:
            raise DiTInputError(
                f"latents must be 5D (B, {channels}, t, h, w), got shape {tuple(latents.shape)}"
            )
        if latents.numel() == 0:
            raise DiTInputError(f"latents are empty: shape {tuple(latents.shape)}")
        _check_float(latents, "latents", weights)
        for axis, size, patch in zip(
            ("frames (t)", "height (h)", "width (w)"),
            latents.shape[2:],
            config.patch_size,
            strict=True,
        ):
            if size % patch:
                raise DiTInputError(
                    f"latents' {axis} must be divisible by the patch size {config.patch_size} "
                    f"(t, h, w), got shape {tuple(latents.shape)}"
                )
        batch, frames = latents.shape[0], latents.shape[2]
        timesteps = _tensor(timesteps, "timesteps")
        if timesteps.shape != (batch,):
            raise DiTInputError(
                f"timesteps must have shape (B,) = ({batch},), got {tuple(timesteps.shape)}"
            )
        if not timesteps.is_floating_point():
            raise DiTInputError(f"timesteps must be floats in [0, 1], got {timesteps.dtype}")
        _check_device(timesteps, "timesteps", weights)
        self._check_text(text, batch, weights)
        if (known_latents is None) != (known_mask is None):
            raise DiTInputError("known_latents and known_mask go together: give both or neither")
        if known_latents is not None:
            known_latents = _tensor(known_latents, "known_latents")
            if known_latents.shape != latents.shape:
                raise DiTInputError(
                    f"known_latents must have the latents' shape {tuple(latents.shape)}, "
                    f"got {tuple(known_latents.shape)}"
                )
            _check_float(known_latents, "known_latents", weights)
            _check_bool(known_mask, "known_mask", (batch, frames), "(B, t)", weights)
        if drop_text is not None:
            _check_bool(drop_text, "drop_text", (batch,), "(B,)", weights)
        assert isinstance(text, TextEmbedding)  # checked above
        _check_values(latents, timesteps, text, known_latents)

    def _check_text(self, text: object, batch: int, weights: Tensor) -> None:
        """Types, shapes, dtypes and devices of a `TextEmbedding` for ``batch`` rows."""
        if not isinstance(text, TextEmbedding):
            raise DiTInputError(f"text must be a TextEmbedding, got {type(text).__name__}")
        dim = self.config.text_dim
        tokens = _tensor(text.tokens, "text.tokens")
        if tokens.ndim != 3 or tokens.shape[2] != dim or tokens.shape[1] == 0:
            raise DiTInputError(
                f"text.tokens must be (B, L, {dim}) with L >= 1, got shape {tuple(tokens.shape)}"
            )
        if tokens.shape[0] != batch:
            raise DiTInputError(
                f"text has {tokens.shape[0]} row(s) but the latents {batch}: one prompt per sample"
            )
        _check_float(tokens, "text.tokens", weights)
        _check_bool(text.mask, "text.mask", tuple(tokens.shape[:2]), "(B, L)", weights)
        pooled = _tensor(text.pooled, "text.pooled")
        if pooled.shape != (batch, dim):
            raise DiTInputError(
                f"text.pooled must have shape (B, {dim}) = ({batch}, {dim}), "
                f"got {tuple(pooled.shape)}"
            )
        _check_float(pooled, "text.pooled", weights)


def frame_conditioning(
    latents: Tensor, known_latents: Tensor | None, known_mask: Tensor | None
) -> Tensor:
    """The model input [latents | known_latents * mask | mask], (B, 2C + 1, t, h, w).

    The known latents are zeroed at unknown frames, so whatever a caller leaves there has no
    effect; the mask channel tells "known to be zero" from "unknown". No known frames (None):
    both extra parts are zero.
    """
    batch, _, frames, height, width = latents.shape
    if known_latents is None or known_mask is None:
        mask = latents.new_zeros(batch, 1, frames, height, width)  # (B, 1, t, h, w)
        known = torch.zeros_like(latents)  # (B, C, t, h, w)
    else:
        mask = known_mask.to(latents.dtype)[:, None, :, None, None]  # (B, 1, t, 1, 1)
        mask = mask.expand(batch, 1, frames, height, width)  # (B, 1, t, h, w)
        known = known_latents.to(latents.dtype) * mask  # (B, C, t, h, w)
    return torch.cat([latents, known, mask], dim=1)  # (B, 2C + 1, t, h, w)


def _pad_text(tokens: Tensor, mask: Tensor, length: int) -> tuple[Tensor, Tensor]:
    """Tokens (B, L, D) and mask (B, L) padded with zero, masked-out tokens to ``length``."""
    extra = length - tokens.shape[1]
    if extra == 0:
        return tokens, mask
    tokens = F.pad(tokens, (0, 0, 0, extra))  # (B, length, D)
    mask = torch.cat([mask, mask.new_zeros(mask.shape[0], extra)], dim=1)  # (B, length)
    return tokens, mask


def _tensor(x: object, what: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise DiTInputError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
    return x


def _check_device(x: Tensor, what: str, weights: Tensor) -> None:
    if x.device != weights.device:
        raise DiTInputError(f"{what} is on {x.device} but the model is on {weights.device}")


def _check_float(x: Tensor, what: str, weights: Tensor) -> None:
    """Floating point, on the model's device, in the weights' dtype unless autocast is on."""
    if not x.is_floating_point():
        raise DiTInputError(f"{what} must be a float tensor, got {x.dtype}")
    _check_device(x, what, weights)
    if x.dtype != weights.dtype and not torch.is_autocast_enabled(x.device.type):
        raise DiTInputError(
            f"{what} is {x.dtype} but the model's weights are {weights.dtype}: "
            "cast the input or run under torch.autocast"
        )


def _check_bool(x: object, what: str, shape: tuple[int, ...], names: str, weights: Tensor) -> None:
    x = _tensor(x, what)
    if x.dtype != torch.bool:
        raise DiTInputError(f"{what} must be a bool tensor, got {x.dtype}")
    if tuple(x.shape) != shape:
        raise DiTInputError(f"{what} must have shape {names} = {shape}, got {tuple(x.shape)}")
    _check_device(x, what, weights)


def _check_values(
    latents: Tensor, timesteps: Tensor, text: TextEmbedding, known_latents: Tensor | None
) -> None:
    """The checks that read values: finite inputs, timesteps in [0, 1], a real token in every
    prompt. All verdicts are gathered on the device and read with one sync (on a GPU each
    read waits for the queued work); the slow, specific checks run only when one failed."""
    finite = {"latents": latents, "timesteps": timesteps}
    if known_latents is not None:
        finite["known_latents"] = known_latents
    finite |= {"text.tokens": text.tokens, "text.pooled": text.pooled}
    in_range = (timesteps >= 0) & (timesteps <= 1)  # (B,)
    has_token = text.mask.any(dim=1)  # (B,)
    verdicts = [torch.isfinite(x).all() for x in finite.values()]
    verdicts += [in_range.all(), has_token.all()]
    if bool(torch.stack(verdicts).all()):
        return
    for what, x in finite.items():
        _check_finite(x, what)
    if not bool(in_range.all()):
        raise DiTInputError(
            f"timesteps must lie in [0, 1] (0 noise, 1 data), got values from "
            f"{float(timesteps.min()):g} to {float(timesteps.max()):g}"
        )
    empty_rows = (~has_token).nonzero().flatten().tolist()
    raise DiTInputError(
        f"text.mask has no real token (no True) in row(s) {empty_rows}: every prompt "
        "needs at least one; use drop_text or null_text for no prompt"
    )


def _check_finite(x: Tensor, what: str) -> None:
    if not torch.isfinite(x).all():
        nan, inf = int(torch.isnan(x).sum()), int(torch.isinf(x).sum())
        raise DiTInputError(f"{what} hold {nan} NaN and {inf} infinite values")
