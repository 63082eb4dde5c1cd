"""What both trainers share about optimisation: the learning-rate schedule and the checks of
its options."""

from __future__ import annotations

import math
from typing import Protocol

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


class OptimizationOptions(Protocol):
    """The optimisation fields every training config has."""

    steps: int
    lr: float
    min_lr_ratio: float
    warmup_steps: int
    weight_decay: float
    grad_clip: float
    ema_decay: float | None


def check_optimization(config: OptimizationOptions) -> None:
    """Raise KinetoscopeError naming the first bad optimisation option of a training config."""
    if config.steps < 1:
        raise KinetoscopeError(f"steps must be at least 1, got {config.steps}")
    if not (config.lr > 0 and math.isfinite(config.lr)):
        raise KinetoscopeError(f"learning rate must be a positive number, got {config.lr}")
    if not 0 <= config.min_lr_ratio <= 1:
        raise KinetoscopeError(f"min_lr_ratio must be in [0, 1], got {config.min_lr_ratio}")
    if config.warmup_steps < 0 or config.grad_clip <= 0 or config.weight_decay < 0:
        raise KinetoscopeError("warmup_steps and weight_decay must be >= 0, grad_clip > 0")
    if config.ema_decay is not None and not 0 < config.ema_decay < 1:
        raise KinetoscopeError(f"ema_decay must be in (0, 1) or None, got {config.ema_decay}")
