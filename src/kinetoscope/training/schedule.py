"""What both trainers share about optimisation: the learning-rate schedule and the checks of
its options."""

from __future__ import annotations

import math

from kinetoscope.errors import KinetoscopeError


class WarmupCosine:
    """Learning-rate factor: linear warmup to 1, then a cosine down to ``floor`` at the end.
    A class (not a lambda) so that LambdaLR can save it in a checkpoint."""

    def __init__(self, warmup: int, total: int, floor: float) -> None:
        self.warmup, self.total, self.floor = warmup, total, floor

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * progress))


def check_optimization(
    steps: int,
    lr: float,
    min_lr_ratio: float,
    warmup_steps: int,
    weight_decay: float,
    grad_clip: float,
    ema_decay: float | None,
) -> None:
    """Raise KinetoscopeError naming the first bad optimisation option of a training config."""
    if steps < 1:
        raise KinetoscopeError(f"steps must be at least 1, got {steps}")
    if not (lr > 0 and math.isfinite(lr)):
        raise KinetoscopeError(f"learning rate must be a positive number, got {lr}")
    if not 0 <= min_lr_ratio <= 1:
        raise KinetoscopeError(f"min_lr_ratio must be in [0, 1], got {min_lr_ratio}")
    if warmup_steps < 0 or grad_clip <= 0 or weight_decay < 0:
        raise KinetoscopeError("warmup_steps and weight_decay must be >= 0, grad_clip > 0")
    if ema_decay is not None and not 0 < ema_decay < 1:
        raise KinetoscopeError(f"ema_decay must be in (0, 1) or None, got {ema_decay}")
