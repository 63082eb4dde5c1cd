"""Samplers: pure functions that integrate ``dx/dt = v(x, t)`` from noise (t = 0) to data (t = 1).

Each takes a `Denoiser` ``model(x (B, ...), t (B,)) -> velocity (B, ...)``, the starting
noise, an increasing schedule of times from `timestep_schedule`, and an optional
``callback(step_index, total_steps, x)`` called after each step (progress bars, previews).
They hold no state and draw no random numbers, so the same inputs give the same output.
``x`` stays in the noise's dtype: pass float32 noise and let the model autocast inside.

Classifier-free guidance (Ho & Salimans 2022) is a wrapper, not a sampler option:
`classifier_free_guidance` turns one model call over a doubled batch, conditional rows first
and unconditional rows second, into a guided `Denoiser`. Intended use in a pipeline::

    text = TextEmbedding.cat([prompt_embedding, empty_prompt_embedding])  # (2B rows)
    paired = lambda x, t: transformer(x, t, text)  # x (2B, ...): one forward for both halves
    latents = sample_heun(classifier_free_guidance(paired, guidance), noise, schedule)

With guidance 1 the result is the conditional velocity alone: skip the wrapper (and the
unconditional half of the batch) then.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from kinetoscope.flow.objective import FlowError, shift_time

__all__ = [
    "Callback",
    "Denoiser",
    "classifier_free_guidance",
    "guided_velocity",
    "sample_euler",
    "sample_heun",
    "timestep_schedule",
]

Denoiser = Callable[[Tensor, Tensor], Tensor]  # (x (B, ...), t (B,)) -> velocity (B, ...)
Callback = Callable[[int, int, Tensor], None]  # (step_index, total_steps, x after the step)


def timestep_schedule(
    steps: int, shift: float = 1.0, device: torch.device | str | None = None
) -> Tensor:
    """``steps + 1`` increasing times from exactly 0 (noise) to exactly 1 (data), float32:
    evenly spaced, then moved towards noise by `shift_time` (use the training shift,
    ``timestep_shift(sequence_length)``)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise FlowError(f"steps must be an integer >= 1, got {steps!r}")
    even = torch.linspace(0, 1, steps + 1, device=device)  # (steps + 1,)
    return shift_time(even, shift)  # (steps + 1,)


def sample_euler(
    model: Denoiser, noise: Tensor, timesteps: Tensor, callback: Callback | None = None
) -> Tensor:
    """Euler's method: ``x += (t_next - t) * v(x, t)``; one model call per step."""
    _check_schedule(noise, timesteps)
    timesteps = timesteps.to(noise.device)
    x = noise
    total = timesteps.shape[0] - 1
    for index in range(total):
        t, t_next = timesteps[index], timesteps[index + 1]
        velocity = model(x, t.expand(x.shape[0]))  # (B, ...)
        x = x + (t_next - t).to(x.dtype) * velocity
        if callback is not None:
            callback(index, total, x)
    return x


def sample_heun(
    model: Denoiser, noise: Tensor, timesteps: Tensor, callback: Callback | None = None
) -> Tensor:
    """Heun's method (the explicit trapezoidal rule, 2nd order): an Euler step predicts
    ``x_next``, then the step is redone with the mean of the velocities at both ends.

    A step that ends at t = 1 is a plain Euler step: the model never trains at t = 1 (the
    path is pure data there) and the exact velocity ``(data - x) / (1 - t)`` is singular.
    So a schedule ending at 1 costs ``2 * steps - 1`` model calls.
    """
    _check_schedule(noise, timesteps)
    timesteps = timesteps.to(noise.device)
    x = noise
    total = timesteps.shape[0] - 1
    batch = x.shape[0]
    for index in range(total):
        t, t_next = timesteps[index], timesteps[index + 1]
        step = (t_next - t).to(x.dtype)
        velocity = model(x, t.expand(batch))  # (B, ...)
        x_euler = x + step * velocity  # (B, ...)
        if index == total - 1 and bool(t_next >= 1):
            x = x_euler
        else:
            velocity_next = model(x_euler, t_next.expand(batch))  # (B, ...)
            x = x + step * (velocity + velocity_next) / 2
        if callback is not None:
            callback(index, total, x)
    return x


def guided_velocity(conditional: Tensor, unconditional: Tensor, guidance: float) -> Tensor:
    """Classifier-free guidance: ``unconditional + guidance * (conditional - unconditional)``.
    guidance 0 is the unconditional velocity, 1 the conditional one, > 1 pushes past it."""
    _check_guidance(guidance)
    return unconditional + guidance * (conditional - unconditional)


def classifier_free_guidance(paired_model: Denoiser, guidance: float) -> Denoiser:
    """A guided `Denoiser` from ``paired_model``, which runs over a doubled batch (2B, ...):
    rows [0, B) conditional, rows [B, 2B) unconditional (see the module docstring). Each call
    feeds ``x`` and ``t`` twice, in one forward, and combines the halves with
    `guided_velocity`."""
    _check_guidance(guidance)

    def guided(x: Tensor, t: Tensor) -> Tensor:
        doubled = torch.cat([x, x])  # (2B, ...)
        velocity = paired_model(doubled, torch.cat([t, t]))  # (2B, ...)
        if velocity.shape != doubled.shape:
            raise FlowError(
                f"the paired model returned shape {tuple(velocity.shape)} for input "
                f"{tuple(doubled.shape)}; it must return one velocity per input row"
            )
        conditional, unconditional = velocity.chunk(2)  # (B, ...) each
        return guided_velocity(conditional, unconditional, guidance)

    return guided


def _check_guidance(guidance: float) -> None:
    if not (math.isfinite(guidance) and guidance >= 0):
        raise FlowError(f"guidance must be a finite number >= 0, got {guidance}")


def _check_schedule(noise: Tensor, timesteps: Tensor) -> None:
    """Checks once, before any model call: a batch of noise and an increasing schedule in
    [0, 1] with at least one step."""
    if noise.ndim < 1 or noise.shape[0] < 1:
        raise FlowError(f"noise must be a batch (B, ...), got shape {tuple(noise.shape)}")
    if timesteps.ndim != 1 or timesteps.shape[0] < 2:
        raise FlowError(
            f"timesteps must be 1-D with at least 2 times (1 step), got {tuple(timesteps.shape)}"
        )
    if not bool((timesteps[1:] > timesteps[:-1]).all()):
        raise FlowError("timesteps must be strictly increasing (t = 0 is noise, t = 1 is data)")
    if bool(timesteps[0] < 0) or bool(timesteps[-1] > 1):
        raise FlowError(
            f"timesteps must lie in [0, 1], got {timesteps[0].item()} .. {timesteps[-1].item()}"
        )
