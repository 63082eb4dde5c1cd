"""Building blocks of the causal video autoencoder: causal 3D convolutions and their cache,
per-voxel normalisation, residual blocks, per-frame attention, and the 2x resamplers.

Video inside the models is float (B, C, T, H, W). Two rules make temporal chunking exact:

- Only `CausalConv3d` looks across time, and only backwards: output frame t reads input frames
  up to t. At the start of a clip the missing past is filled with copies of the first frame
  (replicate padding, not zeros), so a still image looks to every layer like a clip that has
  been still forever, and images and videos share one set of statistics.
- Everything else works on each frame (normalisation: on each voxel) on its own.

A `CausalCache` carries, for each causal convolution, the input frames it has not finished with
from one chunk to the next; chunked coding then equals whole-clip coding up to float rounding.
The cache is the one place that state lives: layers take it as an argument and keep nothing.

Memory format: activations and convolution weights are channels-last (`MEMORY_FORMAT`).
On a CPU, oneDNN runs the per-frame (1x3x3), 1x1x1 and 3-channel convolutions of this
network 2-4x faster that way, and the 3x3x3 ones up to 1.8x (measured with torch 2.13 on
2 cores); cuDNN prefers it for bf16 too. `CausalConv3d` converts its input (a no-op when it
already is), and `VideoVAE` stores its weights so.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from kinetoscope.models.attention import attention

MEMORY_FORMAT = torch.channels_last_3d

__all__ = [
    "MEMORY_FORMAT",
    "CausalCache",
    "CausalConv3d",
    "ChannelRMSNorm",
    "Downsample",
    "FrameAttention",
    "ResBlock",
    "Upsample",
    "convolve",
]


class CausalCache:
    """What the causal layers carry from one temporal chunk of a clip to the next.

    Use a fresh cache per clip (and per spatial tile): it starts the clip, and passing it
    through every chunk in order makes the chunks' outputs, concatenated, equal the output for
    the whole clip. Layers are the keys, so one cache serves exactly one model.
    Passing ``cache=None`` to a layer means "this input is a whole clip": nothing is kept.
    """

    def __init__(self) -> None:
        self._kept: dict[nn.Module, Tensor] = {}
        self._started: set[nn.Module] = set()

    def is_start(self, layer: nn.Module) -> bool:
        """Whether this call of ``layer`` sees the start of the clip (its first call)."""
        start = layer not in self._started
        self._started.add(layer)
        return start

    def take(self, layer: nn.Module) -> Tensor:
        """The input frames ``layer`` kept at the end of the previous chunk."""
        return self._kept.pop(layer)

    def keep(self, layer: nn.Module, frames: Tensor) -> None:
        """Keep ``frames`` (B, C, t, H, W) for ``layer``'s next chunk."""
        # clone: a view would pin the memory of the whole chunk it was cut from
        self._kept[layer] = frames.clone()


def convolve(conv: nn.Conv3d, x: Tensor) -> Tensor:
    """``conv(x)``, calling oneDNN directly for float32 on a CPU: the one kernel choice here.

    PyTorch's CPU dispatch sends a batch of one with few channels x frames x rows (most of
    this network's convolutions at inference) to its reference im2col kernel, which ran
    5-10x slower than oneDNN on these shapes (torch 2.13, 1-2 threads). Elsewhere (CUDA,
    other dtypes, CPU autocast, oneDNN missing or disabled) the ordinary path runs.
    """
    direct = (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and torch.backends.mkldnn.is_available()
        and torch.backends.mkldnn.enabled
        and not torch.is_autocast_enabled("cpu")
    )
    if not direct:
        return conv(x)
    return torch.mkldnn_convolution(
        x, conv.weight, conv.bias, conv.padding, conv.stride, conv.dilation, conv.groups
    )


class CausalConv3d(nn.Module):
    """A 3D convolution that looks only backwards in time; every convolution of the VAE is one.

    Time is padded on the left with ``kernel_t - 1`` copies of the first frame (at the clip's
    start) or with the frames kept in the cache (later chunks); space is zero-padded
    symmetrically. With a temporal stride s, output frame i reads padded frames
    s*i .. s*i + kernel_t - 1, so with kernel_t = 3 and s = 2 output 0 sees frame 0 alone
    and output i >= 1 sees frames 2i-2 .. 2i. The cache keeps every input frame that a later
    output still needs, which also keeps the stride's phase across chunks of any length.
    With kernel_t = 1 it is a per-frame convolution and keeps nothing.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: tuple[int, int, int] = (3, 3, 3),
        stride: tuple[int, int, int] = (1, 1, 1),
    ) -> None:
        super().__init__()
        kernel_t, kernel_h, kernel_w = kernel_size
        if kernel_t == 1 and stride[0] != 1:
            raise ValueError("a per-frame convolution (kernel_t = 1) cannot stride in time")
        self.history = kernel_t - 1  # past frames each output reads
        self.time_stride = stride[0]
        self.conv = nn.Conv3d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=(0, kernel_h // 2, kernel_w // 2),
        )

    def forward(self, x: Tensor, cache: CausalCache | None = None) -> Tensor:
        if self.history == 0:  # per frame: no past to read, nothing to keep
            return convolve(
                self.conv, x.contiguous(memory_format=MEMORY_FORMAT)
            )  # (B, C', T, H', W')
        if cache is None or cache.is_start(self):
            past = x[:, :, :1].expand(-1, -1, self.history, -1, -1)  # (B, C, k-1, H, W)
        else:
            past = cache.take(self)  # (B, C, kept, H, W)
        frames = torch.cat([past, x], dim=2)  # (B, C, kept + T, H, W)
        frames = frames.contiguous(memory_format=MEMORY_FORMAT)  # no copy when it already is
        out = convolve(self.conv, frames)  # (B, C', T_out, H', W')
        if cache is not None:
            cache.keep(self, frames[:, :, out.shape[2] * self.time_stride :])
        return out


class ChannelRMSNorm(nn.Module):
    """RMS normalisation over the channels of each voxel, with a learned gain and bias.

    Per voxel, so it mixes nothing across time (chunking stays exact) or space (tiles see the
    same statistics as the whole frame). Computed in float32 under bf16 autocast.
    """

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        x32 = x.float()  # (B, C, T, H, W)
        inverse_rms = x32.pow(2).mean(dim=1, keepdim=True).add(self.eps).rsqrt()  # (B, 1, T, H, W)
        gain = self.weight.float()[:, None, None, None]  # (C, 1, 1, 1)
        bias = self.bias.float()[:, None, None, None]  # (C, 1, 1, 1)
        return (x32 * inverse_rms * gain + bias).to(x.dtype)  # (B, C, T, H, W)


class ResBlock(nn.Module):
    """norm -> SiLU -> causal conv, twice, plus a shortcut (1x1x1 when the width changes)."""

    def __init__(self, in_channels: int, out_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm1 = ChannelRMSNorm(in_channels, eps)
        self.conv1 = CausalConv3d(in_channels, out_channels)
        self.norm2 = ChannelRMSNorm(out_channels, eps)
        self.conv2 = CausalConv3d(out_channels, out_channels)  # zero-initialised: block = identity
        self.shortcut = (
            CausalConv3d(in_channels, out_channels, (1, 1, 1))
            if in_channels != out_channels
            else None
        )

    def forward(self, x: Tensor, cache: CausalCache | None = None) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)), cache)  # (B, C_out, T, H, W)
        h = self.conv2(F.silu(self.norm2(h)), cache)  # (B, C_out, T, H, W)
        skip = x if self.shortcut is None else self.shortcut(x)  # (B, C_out, T, H, W)
        return skip + h


class FrameAttention(nn.Module):
    """Single-head self-attention among the pixels of each frame, never across frames.

    Through `kinetoscope.models.attention.attention`, the project's one kernel-dispatch point.
    """

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm = ChannelRMSNorm(channels, eps)
        self.to_qkv = CausalConv3d(channels, 3 * channels, (1, 1, 1))
        self.proj = CausalConv3d(channels, channels, (1, 1, 1))  # zero-initialised: identity

    def forward(self, x: Tensor) -> Tensor:
        height, width = x.shape[-2:]
        qkv = self.to_qkv(self.norm(x))  # (B, 3C, T, H, W)
        q, k, v = rearrange(qkv, "b (n c) t h w -> n (b t) 1 (h w) c", n=3)  # (B*T, 1, HW, C)
        attended = attention(q, k, v)  # (B*T, 1, HW, C)
        attended = rearrange(
            attended, "(b t) 1 (h w) c -> b c t h w", t=x.shape[2], h=height, w=width
        )  # (B, C, T, H, W)
        return x + self.proj(attended)  # (B, C, T, H, W)


class Downsample(nn.Module):
    """Halve height and width (a stride-2 per-frame conv), and optionally time.

    Time is halved by a causal conv with kernel 3 and stride 2: output frame 0 reads frame 0
    alone, and output i >= 1 stands for the pair (2i-1, 2i), also reading frame 2i-2 before
    it; so 1 + 2m frames become 1 + m (see `CausalConv3d`). Space goes first, so the temporal
    conv runs at the lower resolution.
    """

    def __init__(self, channels: int, temporal: bool) -> None:
        super().__init__()
        self.spatial = CausalConv3d(channels, channels, (1, 3, 3), stride=(1, 2, 2))
        self.temporal = (
            CausalConv3d(channels, channels, (3, 1, 1), stride=(2, 1, 1)) if temporal else None
        )

    def forward(self, x: Tensor, cache: CausalCache | None = None) -> Tensor:
        x = self.spatial(x)  # (B, C, T, H/2, W/2)
        if self.temporal is not None:
            x = self.temporal(x, cache)  # (B, C, 1 + (T-1)/2, H/2, W/2)
        return x


class Upsample(nn.Module):
    """Double time (optionally), then height and width: the mirror of `Downsample`.

    Time: a causal conv makes two frames out of each input frame (channels 2C, split into a
    pair); at the clip's start the first of frame 0's pair is dropped, so 1 + m frames become
    1 + 2m and frame 0 maps to frame 0 alone. Space: nearest-neighbour 2x, then a per-frame conv.
    """

    def __init__(self, channels: int, temporal: bool) -> None:
        super().__init__()
        self.temporal = CausalConv3d(channels, 2 * channels, (3, 1, 1)) if temporal else None
        self.spatial = CausalConv3d(channels, channels, (1, 3, 3))

    def forward(self, x: Tensor, cache: CausalCache | None = None) -> Tensor:
        if self.temporal is not None:
            start = cache is None or cache.is_start(self)
            pairs = self.temporal(x, cache)  # (B, 2C, T, H, W)
            x = rearrange(pairs, "b (two c) t h w -> b c (t two) h w", two=2)  # (B, C, 2T, H, W)
            if start:
                x = x[:, :, 1:]  # (B, C, 2T - 1, H, W): frame 0 stays one frame
        x = F.interpolate(x, scale_factor=(1.0, 2.0, 2.0), mode="nearest")  # (B, C, T', 2H, 2W)
        return self.spatial(x)  # (B, C, T', 2H, 2W)
