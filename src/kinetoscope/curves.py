"""Blend curves: how much of the second clip a blend holds at each moment.

A curve maps the fraction of the clip's duration, 0 to 1, to a weight, 0 (all of the first
clip) to 1 (all of the second). It is a name from `CURVES` or a list of ``[time, weight]``
points (times from 0 to 1, increasing), joined by straight lines and held flat past the ends.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from kinetoscope.errors import KinetoscopeError

CurveSpec = str | Sequence[Sequence[float]]


def _smoothstep(x: Tensor) -> Tensor:
    return x * x * (3 - 2 * x)


CURVES: dict[str, Callable[[Tensor], Tensor]] = {
    "linear": lambda x: x,
    "ease-in-out": _smoothstep,
    "ease-in": lambda x: x * x,
    "ease-out": lambda x: 1 - (1 - x) ** 2,
    "hold": lambda x: torch.full_like(x, 0.5),  # an even mix all along
    "cut": lambda x: (x >= 0.5).to(x.dtype),  # the first clip, then the second
}


class CurveError(KinetoscopeError, ValueError):
    """A blend curve that is not a known name or a valid list of points."""


def check_curve(curve: CurveSpec) -> CurveSpec:
    """Raise `CurveError` naming the problem, before any compute; return the curve."""
    if isinstance(curve, str):
        if curve not in CURVES:
            raise CurveError(f"unknown curve {curve!r}; choose from {list(CURVES)} or give points")
        return curve
    points = _points(curve)
    times = [time for time, _ in points]
    if any(later <= earlier for earlier, later in itertools.pairwise(times)):
        raise CurveError(f"curve point times must increase, got {times}")
    return [list(point) for point in points]


def curve_weights(curve: CurveSpec, count: int) -> Tensor:
    """The curve's weight at ``count`` evenly spaced moments from 0 to 1: (count,) float32."""
    check_curve(curve)
    times = torch.linspace(0, 1, count) if count > 1 else torch.zeros(1)  # (count,)
    if isinstance(curve, str):
        return CURVES[curve](times).float()
    points = torch.tensor(_points(curve), dtype=torch.float32)  # (P, 2)
    return _interpolate(times, points[:, 0].contiguous(), points[:, 1].contiguous())


def _points(curve: object) -> list[tuple[float, float]]:
    if not isinstance(curve, Sequence) or isinstance(curve, str) or not curve:
        raise CurveError(f"a curve is a name or a list of [time, weight] points, got {curve!r}")
    points = []
    for point in curve:
        if (
            not isinstance(point, Sequence)
            or len(point) != 2
            or not all(isinstance(v, int | float) and math.isfinite(v) for v in point)
        ):
            raise CurveError(f"each curve point is [time, weight] (two numbers), got {point!r}")
        time, weight = float(point[0]), float(point[1])
        if not (0 <= time <= 1 and 0 <= weight <= 1):
            raise CurveError(f"curve times and weights lie in [0, 1], got {list(point)}")
        points.append((time, weight))
    return points


def _interpolate(x: Tensor, xs: Tensor, ys: Tensor) -> Tensor:
    """Piecewise-linear through (xs, ys), flat beyond the first and last points."""
    right = torch.searchsorted(xs, x).clamp(1, max(1, len(xs) - 1))  # (N,)
    left = right - 1
    if len(xs) == 1:
        return ys[0].expand_as(x).clone()
    span = (xs[right] - xs[left]).clamp_min(1e-12)
    fraction = ((x - xs[left]) / span).clamp(0, 1)
    return ys[left] + fraction * (ys[right] - ys[left])
