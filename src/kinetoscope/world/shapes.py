"""Shape geometry as signed distance functions (negative inside), shared by renderer and judge.

Each raw shape is drawn around the origin with its outermost points near radius 1, in maths
axes (y up). `Geometry` then rescales and recentres it so that every shape has the area of the
unit circle and its centroid at the origin: an object of radius r covers pi r^2 whatever its
shape, and its centre is its centre of mass.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from kinetoscope.world.vocab import SHAPES

SdfFn = Callable[[Tensor, Tensor], Tensor]


# ---- raw shapes (maths axes, y up, outer radius about 1) -----------------------------------


def _circle(x: Tensor, y: Tensor) -> Tensor:
    return torch.sqrt(x * x + y * y) - 1.0


def _segment_distance(qx: Tensor, qy: Tensor, ax: float, ay: float, bx: float, by: float) -> Tensor:
    """Distance from points q to the segment a-b."""
    ex, ey = bx - ax, by - ay
    h = (((qx - ax) * ex + (qy - ay) * ey) / (ex * ex + ey * ey)).clamp(0.0, 1.0)
    return torch.sqrt((qx - ax - h * ex) ** 2 + (qy - ay - h * ey) ** 2)


def _fold_angle(x: Tensor, y: Tensor, offset: float, period: float) -> tuple[Tensor, Tensor]:
    """Polar fold: rotate by -offset, reduce the angle into [0, period/2] by symmetry.

    Returns the folded point (qx, qy) with qy >= 0.
    """
    radius = torch.sqrt(x * x + y * y)
    angle = torch.atan2(y, x) - offset
    angle = angle - period * torch.round(angle / period)
    return radius * torch.cos(angle), radius * torch.sin(angle).abs()


def _regular_polygon(sides: int, vertex_angle: float) -> SdfFn:
    """Regular polygon with circumradius 1 and a vertex at `vertex_angle` radians."""
    half = math.pi / sides
    apothem, half_edge = math.cos(half), math.sin(half)

    def sdf(x: Tensor, y: Tensor) -> Tensor:
        # fold onto the sector around one edge's normal: the edge is x = apothem
        qx, qy = _fold_angle(x, y, vertex_angle + half, 2 * half)
        dist = _segment_distance(qx, qy, apothem, 0.0, apothem, half_edge)
        return torch.where(qx > apothem, dist, -dist)

    return sdf


def _star(points: int = 5, inner: float = 0.47) -> SdfFn:
    """Star with outer radius 1, inner radius `inner`, one point straight up."""
    half = math.pi / points
    bx, by = inner * math.cos(half), inner * math.sin(half)

    def sdf(x: Tensor, y: Tensor) -> Tensor:
        # fold onto half a spike: the boundary there is the segment tip (1, 0) -> valley b
        qx, qy = _fold_angle(x, y, math.pi / 2, 2 * half)
        dist = _segment_distance(qx, qy, 1.0, 0.0, bx, by)
        inside = (bx - 1.0) * qy - by * (qx - 1.0) > 0  # origin side of the tip-valley line
        return torch.where(inside, -dist, dist)

    return sdf


def _diamond(half_width: float = 0.62) -> SdfFn:
    """Rhombus, taller than wide: vertices (0, +-1) and (+-half_width, 0)."""

    def sdf(x: Tensor, y: Tensor) -> Tensor:
        qx, qy = x.abs(), y.abs()
        dist = _segment_distance(qx, qy, half_width, 0.0, 0.0, 1.0)
        inside = half_width - qx - half_width * qy > 0
        return torch.where(inside, -dist, dist)

    return sdf


def _box(x: Tensor, y: Tensor, half_w: float, half_h: float) -> Tensor:
    qx, qy = x.abs() - half_w, y.abs() - half_h
    outside = torch.sqrt(qx.clamp(min=0) ** 2 + qy.clamp(min=0) ** 2)
    return outside + torch.maximum(qx, qy).clamp(max=0)


def _cross(arm: float = 0.34) -> SdfFn:
    """Plus sign: two bars of half-length 1 and half-thickness `arm`."""

    def sdf(x: Tensor, y: Tensor) -> Tensor:
        return torch.minimum(_box(x, y, 1.0, arm), _box(x, y, arm, 1.0))

    return sdf


def _heart(side: float = 1.0) -> SdfFn:
    """A square standing on a corner, with a half-disc on each of its two upper sides."""
    diag = side / math.sqrt(2)
    lobe = side / 2
    lobe_x, lobe_y = diag / 2, diag / 2

    def sdf(x: Tensor, y: Tensor) -> Tensor:
        # square rotated by 45 degrees about the origin
        rx, ry = (x + y) / math.sqrt(2), (y - x) / math.sqrt(2)
        body = _box(rx, ry, side / 2, side / 2)
        left = torch.sqrt((x + lobe_x) ** 2 + (y - lobe_y) ** 2) - lobe
        right = torch.sqrt((x - lobe_x) ** 2 + (y - lobe_y) ** 2) - lobe
        return torch.minimum(body, torch.minimum(left, right))

    return sdf


_RAW: dict[str, SdfFn] = {
    "circle": _circle,
    "square": _regular_polygon(4, math.pi / 4),
    "triangle": _regular_polygon(3, math.pi / 2),
    "star": _star(),
    "diamond": _diamond(),
    "hexagon": _regular_polygon(6, 0.0),
    "heart": _heart(),
    "cross": _cross(),
}
assert tuple(_RAW) == SHAPES


# ---- normalised geometry ---------------------------------------------------------------------


@dataclass(frozen=True)
class Geometry:
    """A shape normalised to the area of the unit circle, centroid at the origin.

    All lengths are in units of the object's radius. `up`/`down` are the extents above and below
    the centre on screen; `half_width` is the extent to either side (every shape is mirror
    symmetric); `outer` is the largest distance from the centre to the outline.
    """

    name: str
    scale: float  # raw units per normalised unit
    center_x: float  # centroid of the raw shape
    center_y: float
    half_width: float
    up: float
    down: float
    outer: float

    def sdf(self, x: Tensor, y: Tensor) -> Tensor:
        """Signed distance in normalised units at points (x, y), maths axes (y up)."""
        raw = _RAW[self.name]
        return raw(x * self.scale + self.center_x, y * self.scale + self.center_y) / self.scale


@functools.cache
def geometry(name: str) -> Geometry:
    """Measure a raw shape on a fine grid and normalise it (cached; a few ms per shape).

    Extents use the signed distance itself: for any point p, p.e - sdf(p) never exceeds the
    shape's extent along e and equals it just beyond the extreme point, so the grid only has
    to sample near the outline, not hit it.
    """
    n, extent = 801, 1.6
    axis = torch.linspace(-extent, extent, n, dtype=torch.float64)
    cell = float(axis[1] - axis[0])
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    distance = _RAW[name](x, y)
    coverage = (0.5 - distance / cell).clamp(0.0, 1.0)
    area = float(coverage.sum()) * cell * cell
    cx = float((coverage * x).sum() / coverage.sum())
    cy = float((coverage * y).sum() / coverage.sum())
    xs, ys = x - cx, y - cy
    scale = math.sqrt(area / math.pi)
    return Geometry(
        name=name,
        scale=scale,
        center_x=cx,
        center_y=cy,
        half_width=float((xs - distance).max()) / scale,
        up=float((ys - distance).max()) / scale,
        down=float((-ys - distance).max()) / scale,
        outer=float((torch.sqrt(xs * xs + ys * ys) - distance).max()) / scale,
    )


@functools.cache
def width_profile(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Half-width of the normalised shape at each height: (heights, half_widths), heights
    from -2 to 2 radii (maths axes, y up), zero where the shape does not reach. Each row's
    edge is found between grid samples by interpolating the signed distance."""
    xs = torch.linspace(0.0, 2.0, 801, dtype=torch.float64)
    heights = torch.linspace(-2.0, 2.0, 1601, dtype=torch.float64)
    y, x = torch.meshgrid(heights, xs, indexing="ij")
    distance = shape_sdf(name, x, y).numpy()  # (rows, columns)
    inside = distance <= 0
    last = np.where(
        inside.any(axis=1), inside.shape[1] - 1 - np.argmax(inside[:, ::-1], axis=1), -1
    )
    rows = np.arange(len(heights))
    nxt = np.minimum(last + 1, len(xs) - 1)
    d0, d1 = distance[rows, last], distance[rows, nxt]
    step = float(xs[1] - xs[0])
    fraction = np.where(d1 > d0, -d0 / np.maximum(d1 - d0, 1e-12), 0.0)
    half = np.where(last >= 0, xs.numpy()[np.maximum(last, 0)] + fraction * step, 0.0)
    return heights.numpy(), half


def contact_distance(shape_a: str, radius_a: float, shape_b: str, radius_b: float) -> float:
    """How far apart the centres of two unrotated shapes on one horizontal line are when
    they touch side by side: the largest sum of their half-widths at any height both reach."""
    heights_a, half_a = width_profile(shape_a)
    heights_b, half_b = width_profile(shape_b)
    top = min(heights_a.max() * radius_a, heights_b.max() * radius_b)
    levels = np.linspace(-top, top, 2001)
    wa = np.interp(levels / radius_a, heights_a, half_a) * radius_a
    wb = np.interp(levels / radius_b, heights_b, half_b) * radius_b
    both = (wa > 0) & (wb > 0)
    return float((wa + wb)[both].max()) if both.any() else 0.0


def shape_sdf(name: str, x: Tensor, y: Tensor) -> Tensor:
    """Signed distance to shape `name` of radius 1 centred at the origin (maths axes, y up)."""
    return geometry(name).sdf(x, y)


def coverage(name: str, dx: Tensor, dy: Tensor, radius: Tensor, angle: Tensor) -> Tensor:
    """Anti-aliased coverage in [0, 1] of pixels by a shape.

    dx, dy: pixel centre minus the shape's centre, in pixels, screen axes (y down).
    radius: the shape's radius in pixels; angle: clockwise rotation on screen in radians.
    All arguments broadcast together.
    """
    cos, sin = torch.cos(angle), torch.sin(angle)
    # undo the clockwise rotation, then flip y into maths axes
    local_x = (cos * dx + sin * dy) / radius
    local_y = -(-sin * dx + cos * dy) / radius
    distance_px = shape_sdf(name, local_x, local_y) * radius
    return (0.5 - distance_px).clamp(0.0, 1.0)
