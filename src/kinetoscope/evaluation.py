"""How well the video autoencoder reconstructs video: PSNR, SSIM and temporal flicker, and
the logic of ``kinetoscope eval vae``.

Protocol (what `evaluate_vae` does to each video):

1. Read the first frames (any format FFmpeg decodes) and keep N = 1 + 4k of them: the
   ``frames`` asked for, or the largest 1 + 4k the video has when it is shorter.
2. Centre-crop to a square and resize to ``size`` x ``size`` (bilinear, antialiased), rounded
   to uint8: this clip is the reference.
3. Encode and decode it with the VAE at the pixel boundary (`encode_video` / `decode_video`:
   the posterior mean, temporal chunks with a causal cache), giving uint8 frames.
4. Compare the two uint8 clips.

Metrics, all on uint8 frames (T, H, W, 3):

- PSNR (dB): 10 log10(255^2 / MSE), the MSE over every pixel, channel and frame of the
  clip (one MSE per clip, not a mean of per-frame PSNRs). Identical clips give +inf.
- SSIM: Wang et al. 2004 on luma (Y = 0.299 R + 0.587 G + 0.114 B, BT.601, as video codecs
  report it), Gaussian window 11 x 11 with sigma 1.5, K1 = 0.01, K2 = 0.03, L = 255, computed
  over the positions where the window fits inside the frame (no padding), averaged over
  positions and then over frames. Frames smaller than 11 pixels use the largest odd window
  that fits. This matches ``skimage.metrics.structural_similarity(gaussian_weights=True,
  sigma=1.5, use_sample_covariance=False, data_range=255)`` on the luma plane.
- Flicker (8-bit levels): mean over pixels, channels and consecutive frame pairs of
  |(x̂[t+1] - x̂[t]) - (x[t+1] - x[t])|: the error in how each pixel changes from one frame to
  the next. It is 0 when the reconstruction changes exactly as the original does, whatever
  its per-frame error (a constant error does not flicker), and it grows when the
  reconstruction shimmers on a still scene or misses motion. Undefined (None) for one frame.

Means over videos are plain averages of the per-video numbers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from kinetoscope.errors import KinetoscopeError
from kinetoscope.weights import SHIPPED_VAE_DIR

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # BT.601
DEFAULT_VAE_FOLDER = SHIPPED_VAE_DIR


# ---- metrics ---------------------------------------------------------------------------------


def _check_pair(original: Tensor, reconstruction: Tensor) -> None:
    for clip in (original, reconstruction):
        if clip.dtype != torch.uint8 or clip.ndim != 4 or clip.shape[-1] != 3:
            raise KinetoscopeError(
                f"metrics take uint8 frames (T, H, W, 3), got {clip.dtype} {tuple(clip.shape)}"
            )
    if original.shape != reconstruction.shape:
        raise KinetoscopeError(
            f"clips differ in shape: {tuple(original.shape)} and {tuple(reconstruction.shape)}"
        )


def psnr(original: Tensor, reconstruction: Tensor) -> float:
    """PSNR in dB of uint8 clips (T, H, W, 3): one MSE over the whole clip; +inf if equal."""
    _check_pair(original, reconstruction)
    mse = (original.double() - reconstruction.double()).pow(2).mean().item()
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def luma(frames: Tensor) -> Tensor:
    """uint8 (T, H, W, 3) RGB -> float64 (T, H, W) BT.601 luma in 0..255."""
    weights = torch.tensor(LUMA_WEIGHTS, dtype=torch.float64)
    return frames.double() @ weights


def _gaussian_window(size: int, sigma: float) -> Tensor:
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    weights = torch.exp(-(offsets**2) / (2 * sigma**2))
    return weights / weights.sum()  # (size,)


def ssim(original: Tensor, reconstruction: Tensor) -> float:
    """Mean SSIM of uint8 clips (T, H, W, 3) on luma (see the module docstring)."""
    _check_pair(original, reconstruction)
    x = luma(original)[:, None]  # (T, 1, H, W)
    y = luma(reconstruction)[:, None]
    size = min(SSIM_WINDOW, *x.shape[-2:])
    size -= 1 - size % 2  # odd
    window = _gaussian_window(size, SSIM_SIGMA)

    def blur(image: Tensor) -> Tensor:  # separable Gaussian, valid positions only
        image = F.conv2d(image, window.view(1, 1, 1, size))
        return F.conv2d(image, window.view(1, 1, size, 1))

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (SSIM_K1 * 255) ** 2, (SSIM_K2 * 255) ** 2
    index = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )  # (T, 1, H', W')
    return index.mean(dim=(1, 2, 3)).mean().item()


def flicker(original: Tensor, reconstruction: Tensor) -> float | None:
    """Mean |Δx̂ - Δx| over consecutive frames, in 8-bit levels; None for one frame."""
    _check_pair(original, reconstruction)
    if original.shape[0] < 2:
        return None
    change = original[1:].double() - original[:-1].double()  # (T-1, H, W, 3)
    reconstructed_change = reconstruction[1:].double() - reconstruction[:-1].double()
    return (reconstructed_change - change).abs().mean().item()


# ---- clips -----------------------------------------------------------------------------------


def usable_frames(available: int, wanted: int) -> int:
    """The frames to code: ``wanted`` (1 + 4k) or, for a shorter video, the largest 1 + 4k."""
    count = min(available, wanted)
    return count - (count - 1) % 4


def prepare_clip(frames: Tensor, size: int, count: int) -> Tensor:
    """uint8 (T, H, W, 3) -> the first `usable_frames` frames, centre-cropped to a square and
    resized to size x size (bilinear, antialiased), uint8 (N, size, size, 3)."""
    frames = frames[: usable_frames(frames.shape[0], count)]
    height, width = frames.shape[1:3]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = frames[:, top : top + side, left : left + side]  # (N, side, side, 3)
    if side == size:
        return square.contiguous()
    pixels = square.permute(0, 3, 1, 2).float()  # (N, 3, side, side)
    resized = F.interpolate(pixels, size=(size, size), mode="bilinear", antialias=True)
    return resized.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


@torch.no_grad()
def reconstruct(vae: torch.nn.Module, clip: Tensor) -> Tensor:
    """Encode and decode uint8 frames (T, H, W, 3) with the VAE's pixel-boundary functions
    (posterior mean, temporal chunks); uint8 frames of the same shape."""
    from kinetoscope.models.vae import decode_video, encode_video

    latents, layout = encode_video(vae, clip)
    return decode_video(vae, latents, layout)


@dataclass(frozen=True)
class ClipScore:
    """One video's numbers."""

    video: str
    frames: int
    psnr: float
    ssim: float
    flicker: float | None
    seconds: float  # encode + decode time

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["psnr"] = _finite_or_none(self.psnr)
        return data


@dataclass(frozen=True)
class EvalReport:
    """Per-video scores and their means."""

    clips: tuple[ClipScore, ...]
    size: int

    def means(self) -> dict[str, float | None]:
        def mean(values: list[float | None]) -> float | None:
            present = [v for v in values if v is not None]
            return sum(present) / len(present) if present else None

        return {
            "psnr": mean([c.psnr for c in self.clips]),
            "ssim": mean([c.ssim for c in self.clips]),
            "flicker": mean([c.flicker for c in self.clips]),
        }

    def to_dict(self) -> dict[str, object]:
        means = {key: _finite_or_none(value) for key, value in self.means().items()}
        return {"size": self.size, "videos": [c.to_dict() for c in self.clips], "mean": means}


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def score_clip(vae: torch.nn.Module, name: str, clip: Tensor) -> ClipScore:
    """Reconstruct one prepared uint8 clip (T, S, S, 3) and measure it."""
    start = time.perf_counter()
    reconstruction = reconstruct(vae, clip)
    seconds = time.perf_counter() - start
    return ClipScore(
        video=name,
        frames=clip.shape[0],
        psnr=psnr(clip, reconstruction),
        ssim=ssim(clip, reconstruction),
        flicker=flicker(clip, reconstruction),
        seconds=seconds,
    )


# ---- the eval command ------------------------------------------------------------------------


def check_eval_options(size: int, frames: int) -> None:
    if size < 8 or size % 8:
        raise KinetoscopeError(f"--size must be a multiple of 8, at least 8, got {size}")
    if frames < 1 or (frames - 1) % 4:
        raise KinetoscopeError(f"--frames must be 1 + 4k (1, 5, 9, 17, 33, 65, ...), got {frames}")


def load_vae(folder: Path | None, device: str = "cpu") -> torch.nn.Module:
    """The VAE in ``folder`` (a `save_pretrained` folder), or the shipped default when None,
    in float32 and eval mode."""
    from kinetoscope.models.vae import VideoVAE

    if folder is None:
        if not (DEFAULT_VAE_FOLDER / "config.json").exists():
            raise KinetoscopeError(
                f"no shipped VAE yet ({DEFAULT_VAE_FOLDER} does not exist); pass a trained one "
                "with --model DIR, e.g. the vae/ folder that `kinetoscope train vae` writes"
            )
        folder = DEFAULT_VAE_FOLDER
    if not Path(folder).is_dir():
        raise KinetoscopeError(f"--model {folder}: no such folder")
    return VideoVAE.from_pretrained(folder, device=device, dtype=torch.float32).eval()


def evaluate_vae(
    vae: torch.nn.Module,
    videos: Sequence[Path],
    size: int = 256,
    frames: int = 65,
) -> EvalReport:
    """Score the VAE on video files (see the module docstring for the protocol)."""
    from kinetoscope.io.video import read_video

    check_eval_options(size, frames)
    scores = []
    for path in videos:
        clip = prepare_clip(read_video(path, max_frames=frames).frames, size, frames)
        scores.append(score_clip(vae, str(path), clip))
    return EvalReport(clips=tuple(scores), size=size)
