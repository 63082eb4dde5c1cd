"""Rectified flow: the training objective (`objective`) and the samplers (`samplers`).

The convention, fixed for the whole project (never the reverse one):

- time ``t`` runs over [0, 1]; **t = 0 is pure noise, t = 1 is data**;
- the path is straight: ``x_t = (1 - t) * noise + t * data``, so ``1 - t`` is the noise level;
- the model predicts the velocity ``v = dx_t/dt = data - noise`` from ``(x_t, t)``;
- sampling integrates ``dx/dt = v(x, t)`` forward, from noise at t = 0 to data at t = 1.

Timesteps are "shifted" towards noise as sequences grow longer (`timestep_shift`, `shift_time`):
the same shift is used to sample training times and to lay out the sampler's schedule, so the
model spends its capacity where generation needs it.

A `Denoiser` is any ``(x (B, ...), t (B,)) -> velocity (B, ...)`` callable; the pipeline builds one
around the transformer (text, known frames) and hands it to a sampler, optionally wrapped in
`classifier_free_guidance`.
"""

from kinetoscope.flow.objective import (
    FlowError,
    flow_matching_loss,
    interpolate,
    sample_timesteps,
    shift_time,
    timestep_shift,
    velocity_target,
)
from kinetoscope.flow.samplers import (
    Denoiser,
    classifier_free_guidance,
    guided_velocity,
    sample_euler,
    sample_heun,
    timestep_schedule,
)

__all__ = [
    "Denoiser",
    "FlowError",
    "classifier_free_guidance",
    "flow_matching_loss",
    "guided_velocity",
    "interpolate",
    "sample_euler",
    "sample_heun",
    "sample_timesteps",
    "shift_time",
    "timestep_schedule",
    "timestep_shift",
    "velocity_target",
]
