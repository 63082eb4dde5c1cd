"""The rectified-flow training objective: the path, its velocity, the loss and training times.

Convention (see `kinetoscope.flow`): t = 0 is noise, t = 1 is data,
``x_t = (1 - t) * noise + t * data`` and the model regresses ``v = data - noise``.

Training times are logit-normal (SD3, Esser et al. 2024: most weight on the middle of the
path, where the velocity is hardest to predict) and then shifted towards noise by an amount
that grows with the number of tokens. Why shift: a longer or larger latent carries more
redundant copies of the same content (neighbouring pixels, neighbouring frames), so at a given
noise level more of the content is still recognisable; to make the task equally hard the
model must see more noise. Shifting maps the noise level ``s = 1 - t`` to
``s' = shift * s / (1 + (shift - 1) * s)``; shift = 1 changes nothing, shift > 1 moves every
time towards noise, keeping both ends in place.

How much (`timestep_shift`): as in Flux, ``mu`` (the log of the shift) is linear in the
sequence length, through ``(base_length, base_shift)`` and ``(max_length, max_shift)``. Our
defaults put no shift on a single 128x128 latent frame (64 tokens, an image: the size where SD3
found no shift is needed) and a shift of 3 at 2048 tokens, just past our longest native clip (4 s
of 16:9, 17 latent frames x 112 tokens = 1904); 3 is the shift SD3 found best for its
4096-token images, reached here at fewer tokens because video tokens are also redundant
across time. Resulting shifts and median training times:

    tokens  clip                 shift  median t
      64    one 1:1 frame        1.00   0.50
     320    1 s, 1:1 (5 x 64)    1.15   0.46
     560    1 s, 16:9 (5 x 112)  1.32   0.43
    1088    4 s, 1:1 (17 x 64)   1.76   0.36
    1904    4 s, 16:9 (17 x 112) 2.77   0.27

Beyond ``max_length`` the line extends (8 s of 16:9, 3696 tokens, gets 7.5); a model at larger
sizes should retune the constants. Training (`sample_timesteps`) and sampling
(`samplers.timestep_schedule`) must use the same shift for a given sequence length.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from kinetoscope.errors import KinetoscopeError

__all__ = [
    "BASE_LENGTH",
    "BASE_SHIFT",
    "MAX_LENGTH",
    "MAX_SHIFT",
    "TIME_EPS",
    "FlowError",
    "flow_matching_loss",
    "interpolate",
    "sample_timesteps",
    "shift_time",
    "timestep_shift",
    "velocity_target",
]

BASE_LENGTH = 64  # tokens of one 128x128 latent frame (8 x 8 patches)
BASE_SHIFT = 0.0  # log shift there: no shift
MAX_LENGTH = 2048  # about our longest native clip, 4 s of 16:9 (1904 tokens)
MAX_SHIFT = math.log(3.0)  # log shift there: shift 3
TIME_EPS = 1e-5  # sampled times stay in [TIME_EPS, 1 - TIME_EPS], strictly inside (0, 1)


class FlowError(KinetoscopeError, ValueError):
    """Bad input to the flow objective or a sampler; the message names what is wrong."""


def interpolate(noise: Tensor, data: Tensor, t: Tensor) -> Tensor:
    """The point ``x_t = (1 - t) * noise + t * data`` of the straight path; ``t`` (B,) is
    broadcast over each sample's other dimensions."""
    _check_pair(noise, data)
    t = _per_sample(t, data)  # (B, 1, ...)
    return (1 - t) * noise + t * data


def velocity_target(noise: Tensor, data: Tensor) -> Tensor:
    """The velocity of the straight path, ``dx_t/dt = data - noise``: what the model learns."""
    _check_pair(noise, data)
    return data - noise


def flow_matching_loss(
    predicted_velocity: Tensor, noise: Tensor, data: Tensor, loss_mask: Tensor | None = None
) -> Tensor:
    """Mean squared error between ``predicted_velocity`` and ``data - noise``, in float32.

    ``loss_mask`` (bool or 0/1, broadcastable to the data, e.g. (B, 1, T, 1, 1) per latent
    frame) is 1 where the loss counts; the mean is then over the counted elements only. A mask
    that counts nothing gives 0 (no host sync to check it).
    """
    if predicted_velocity.shape != data.shape:
        raise FlowError(
            f"predicted velocity has shape {tuple(predicted_velocity.shape)}, "
            f"the data {tuple(data.shape)}"
        )
    error = predicted_velocity.float() - velocity_target(noise, data).float()  # (B, C, T, H, W)
    squared = error.square()  # (B, C, T, H, W)
    if loss_mask is None:
        return squared.mean()
    try:
        weights = torch.broadcast_to(loss_mask, squared.shape).float()  # (B, C, T, H, W)
    except RuntimeError as error:
        raise FlowError(
            f"loss_mask of shape {tuple(loss_mask.shape)} does not broadcast to the data's "
            f"{tuple(squared.shape)}"
        ) from error
    return (squared * weights).sum() / weights.sum().clamp_min(1)


def timestep_shift(
    sequence_length: int,
    base_length: int = BASE_LENGTH,
    max_length: int = MAX_LENGTH,
    base_shift: float = BASE_SHIFT,
    max_shift: float = MAX_SHIFT,
) -> float:
    """The time shift for a sequence of ``sequence_length`` tokens: ``exp(mu)``, with ``mu``
    linear in the length through (base_length, base_shift) and (max_length, max_shift).
    The two ``*_shift`` values are log shifts. See the module docstring for the defaults."""
    if sequence_length < 1:
        raise FlowError(f"sequence_length must be at least 1, got {sequence_length}")
    if max_length <= base_length:
        raise FlowError(f"max_length ({max_length}) must exceed base_length ({base_length})")
    slope = (max_shift - base_shift) / (max_length - base_length)
    mu = base_shift + slope * (sequence_length - base_length)
    return math.exp(mu)


def shift_time(t: Tensor, shift: float) -> Tensor:
    """Move times towards noise by ``shift`` (> 0): the noise level ``s = 1 - t`` becomes
    ``s' = shift * s / (1 + (shift - 1) * s)``, i.e. ``t' = t / (t + shift * (1 - t))``.

    shift = 1 is exactly the identity; shift > 1 gives t' < t inside (0, 1); 0 and 1 stay put.
    """
    if not (math.isfinite(shift) and shift > 0):
        raise FlowError(f"shift must be a finite number > 0, got {shift}")
    # the t-form is exact at shift = 1: t + (1 - t) rounds to exactly 1 in floating point
    return t / (t + shift * (1 - t))


def sample_timesteps(
    batch: int,
    sequence_length: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    mean: float = 0.0,
    std: float = 1.0,
) -> Tensor:
    """Training times (B,) float32: logit-normal ``sigmoid(N(mean, std))``, then shifted by
    ``timestep_shift(sequence_length)``; kept strictly inside (0, 1).

    ``generator`` must live on ``device`` (by default the generator's device, else the CPU).
    """
    if batch < 1:
        raise FlowError(f"batch must be at least 1, got {batch}")
    if not (math.isfinite(std) and std > 0):
        raise FlowError(f"std must be a finite number > 0, got {std}")
    shift = timestep_shift(sequence_length)
    if device is None and generator is not None:
        device = generator.device
    normal = torch.randn(batch, generator=generator, device=device)  # (B,)
    t = torch.sigmoid(mean + std * normal)  # (B,) logit-normal
    return shift_time(t, shift).clamp(TIME_EPS, 1 - TIME_EPS)  # (B,)


def _check_pair(noise: Tensor, data: Tensor) -> None:
    if noise.shape != data.shape:
        raise FlowError(
            f"noise has shape {tuple(noise.shape)} but data {tuple(data.shape)}; they must match"
        )


def _per_sample(t: Tensor, like: Tensor) -> Tensor:
    """``t`` (B,) viewed as (B, 1, ..., 1) to broadcast over ``like`` (B, ...)."""
    if t.ndim != 1 or t.shape[0] != like.shape[0]:
        raise FlowError(
            f"t must have shape ({like.shape[0]},), one time per sample, got {tuple(t.shape)}"
        )
    return t.to(like.dtype).view(-1, *([1] * (like.ndim - 1)))
