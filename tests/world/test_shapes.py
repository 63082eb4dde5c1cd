"""Shape geometry: every shape has the unit circle's area and its centroid at the origin, the
measured extents agree with closed forms and with the signed distance, and the coverage and
contact helpers follow the screen conventions."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch

from kinetoscope.world import vocab
from kinetoscope.world.shapes import contact_distance, coverage, geometry, shape_sdf, width_profile

EPS = 2e-3  # how far beyond (or within) an extent the sdf is probed


def _grid(half: float = 1.8, cells: int = 500) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Cell centres of a square grid over [-half, half]^2, float64; also the cell size.

    Deliberately not the grid `geometry` measures on (801 corners over [-1.6, 1.6])."""
    cell = 2 * half / cells
    axis = -half + cell * (torch.arange(cells, dtype=torch.float64) + 0.5)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    return x, y, cell


def _line(lo: float = -2.0, hi: float = 2.0, n: int = 8001) -> torch.Tensor:
    return torch.linspace(lo, hi, n, dtype=torch.float64)


# ---- normalisation -------------------------------------------------------------------------


@pytest.mark.parametrize("name", vocab.SHAPES)
def test_every_shape_has_area_pi_and_its_centroid_at_the_origin(name):
    x, y, cell = _grid()
    distance = shape_sdf(name, x, y)
    inside = (0.5 - distance / cell).clamp(0.0, 1.0)  # fraction of each cell inside
    area = float(inside.sum()) * cell * cell
    assert area == pytest.approx(math.pi, rel=2e-3)
    assert float((inside * x).sum()) * cell * cell / area == pytest.approx(0.0, abs=2e-3)
    assert float((inside * y).sum()) * cell * cell / area == pytest.approx(0.0, abs=2e-3)
    # nothing reaches the grid's border: the whole shape was measured
    assert float(distance[0].min()) > 0 and float(distance[:, -1].min()) > 0


def test_extents_match_closed_forms():
    circle = geometry("circle")
    for extent in (circle.half_width, circle.up, circle.down, circle.outer):
        assert extent == pytest.approx(1.0, rel=1e-4)
    # an axis-aligned square of area pi has side sqrt(pi)
    square = geometry("square")
    half_side = math.sqrt(math.pi) / 2
    for extent in (square.half_width, square.up, square.down):
        assert extent == pytest.approx(half_side, rel=1e-4)
    assert square.outer == pytest.approx(half_side * math.sqrt(2), rel=1e-4)
    # an upright equilateral triangle of area pi: circumradius R, centroid a third of the way up
    circumradius = math.sqrt(4 * math.pi / (3 * math.sqrt(3)))
    triangle = geometry("triangle")
    assert triangle.up == pytest.approx(circumradius, rel=1e-4)
    assert triangle.outer == pytest.approx(circumradius, rel=1e-4)
    assert triangle.down == pytest.approx(circumradius / 2, rel=1e-4)
    assert triangle.half_width == pytest.approx(circumradius * math.sqrt(3) / 2, rel=1e-4)
    # a hexagon with vertices left and right: area (3 sqrt 3 / 2) R^2
    hexagon = geometry("hexagon")
    circumradius = math.sqrt(2 * math.pi / (3 * math.sqrt(3)))
    assert hexagon.half_width == pytest.approx(circumradius, rel=1e-4)
    assert hexagon.up == pytest.approx(circumradius * math.sqrt(3) / 2, rel=1e-4)


@pytest.mark.parametrize("name", vocab.SHAPES)
def test_extents_agree_with_the_sdf(name):
    """Just beyond an extent every point is outside; just within it some point is inside."""
    geo = geometry(name)
    along = _line()
    constant = torch.ones_like(along)

    def inside_anywhere(x: torch.Tensor, y: torch.Tensor) -> bool:
        return bool((shape_sdf(name, x, y) < 0).any())

    # (x, y) lines at a given offset from the centre; maths axes, so screen "up" is +y
    for extent, line in (
        (geo.half_width, lambda d: (d * constant, along)),
        (geo.half_width, lambda d: (-d * constant, along)),  # every shape is mirror symmetric
        (geo.up, lambda d: (along, d * constant)),
        (geo.down, lambda d: (along, -d * constant)),
    ):
        assert not inside_anywhere(*line(extent + EPS))
        assert inside_anywhere(*line(extent - EPS))
    # the outer radius: a circle just beyond holds nothing; one just within touches the shape
    theta = torch.linspace(0, 2 * math.pi, 20001, dtype=torch.float64)
    for radius, expect in ((geo.outer + EPS, False), (geo.outer - EPS, True)):
        assert inside_anywhere(radius * torch.cos(theta), radius * torch.sin(theta)) is expect


@pytest.mark.parametrize("name", vocab.SHAPES)
def test_width_profile_matches_the_extents(name):
    geo = geometry(name)
    heights, half = width_profile(name)
    # rows are 0.0025 apart, so a sharp widest point (a star's tip, a triangle's base corner)
    # falls a little between rows
    assert half.max() == pytest.approx(geo.half_width, abs=2.5e-3)
    reached = heights[half > 0]
    assert reached.max() == pytest.approx(geo.up, abs=3e-3)
    assert reached.min() == pytest.approx(-geo.down, abs=3e-3)
    # each row's half-width is where the sdf changes sign along that row
    rows = np.flatnonzero(half > 1e-2)[::40]
    sdf_at_edge = shape_sdf(
        name, torch.from_numpy(half[rows]), torch.from_numpy(heights[rows])
    ).numpy()
    assert np.abs(sdf_at_edge).max() < 1e-4


@pytest.mark.parametrize("name", ["circle", "square", "diamond", "hexagon", "cross"])
def test_width_profile_of_top_bottom_symmetric_shapes_is_symmetric(name):
    heights, half = width_profile(name)
    assert np.allclose(heights, -heights[::-1])
    assert np.abs(half - half[::-1]).max() < 1e-6


def test_width_profile_of_the_circle():
    heights, half = width_profile("circle")
    within = np.abs(heights) < 0.95
    assert np.abs(half[within] - np.sqrt(1 - heights[within] ** 2)).max() < 1e-4
    assert (half[np.abs(heights) > 1.01] == 0).all()


# ---- coverage: screen axes and rotation ------------------------------------------------------


def _covered_rows_and_columns(angle: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel offsets (screen axes, y down) covered by a triangle of radius 20 px."""
    offsets = torch.arange(-40, 41, dtype=torch.float64)
    alpha = coverage(
        "triangle",
        offsets[None, :],  # dx along columns
        offsets[:, None],  # dy along rows
        torch.tensor(20.0, dtype=torch.float64),
        torch.tensor(angle, dtype=torch.float64),
    )
    rows, cols = torch.nonzero(alpha > 0.5, as_tuple=True)
    return offsets[rows], offsets[cols]


def test_coverage_rotates_clockwise_on_screen():
    geo = geometry("triangle")
    tip, base = 20 * geo.up, 20 * geo.down  # pixels from the centre
    dy, dx = _covered_rows_and_columns(0.0)  # upright: the tip is above the centre (dy < 0)
    assert float(-dy.min()) == pytest.approx(tip, abs=1.5)
    assert float(dy.max()) == pytest.approx(base, abs=1.5)
    dy, dx = _covered_rows_and_columns(math.pi)  # half a turn: the tip points down
    assert float(dy.max()) == pytest.approx(tip, abs=1.5)
    assert float(-dy.min()) == pytest.approx(base, abs=1.5)
    dy, dx = _covered_rows_and_columns(math.pi / 2)  # a quarter turn clockwise: tip right
    assert float(dx.max()) == pytest.approx(tip, abs=1.5)
    assert float(-dx.min()) == pytest.approx(base, abs=1.5)


def test_coverage_is_a_one_pixel_ramp_across_the_edge():
    dx = torch.tensor([8.0, 9.75, 10.0, 10.25, 12.0], dtype=torch.float64)
    alpha = coverage(
        "circle", dx, torch.zeros_like(dx), torch.tensor(10.0, dtype=torch.float64), dx * 0
    )
    assert alpha.tolist() == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0], abs=1e-4)


# ---- contact ---------------------------------------------------------------------------------


def test_contact_distance_closed_forms():
    assert contact_distance("circle", 0.065, "circle", 0.135) == pytest.approx(0.2, rel=1e-4)
    half_side = math.sqrt(math.pi) / 2
    assert contact_distance("square", 0.065, "square", 0.135) == pytest.approx(
        half_side * 0.2, rel=1e-4
    )
    # two squares of very different size still touch along their full sides
    assert contact_distance("square", 0.05, "square", 0.5) == pytest.approx(
        half_side * 0.55, rel=1e-4
    )
    assert contact_distance("circle", 0.1, "square", 0.1) == pytest.approx(
        0.1 + 0.1 * half_side, rel=1e-4
    )


@functools.cache
def _outline(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Points on the outline of a shape of radius 1: grid points near it, moved onto it along
    the sdf's gradient (points near a vertex all land on the vertex)."""
    axis = _line(-1.8, 1.8, 801)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    distance = shape_sdf(name, x, y)
    near = distance.abs() < 0.007
    gy, gx = torch.gradient(distance, spacing=(axis, axis))
    return (x - distance * gx)[near], (y - distance * gy)[near]


def _boundary_gap(shape_a: str, radius_a: float, shape_b: str, radius_b: float, d: float):
    """Smallest signed distance from shape a (at the origin) to the outline of b at (d, 0)."""
    bx, by = _outline(shape_b)
    bx, by = bx * radius_b + d, by * radius_b
    return float((shape_sdf(shape_a, bx / radius_a, by / radius_a) * radius_a).min())


@pytest.mark.parametrize(
    ("shape_a", "radius_a", "shape_b", "radius_b"),
    [
        ("triangle", 0.095, "circle", 0.065),
        ("circle", 0.135, "triangle", 0.065),
        ("star", 0.095, "heart", 0.095),
        ("hexagon", 0.065, "diamond", 0.135),
    ],
)
def test_contact_distance_makes_the_outlines_touch(shape_a, radius_a, shape_b, radius_b):
    d = contact_distance(shape_a, radius_a, shape_b, radius_b)
    scale = min(radius_a, radius_b)
    # at the contact distance the outlines meet without overlapping ...
    assert _boundary_gap(shape_a, radius_a, shape_b, radius_b, d) == pytest.approx(
        0.0, abs=2e-3 * scale
    )
    # ... a little closer they overlap, a little further they are apart
    assert _boundary_gap(shape_a, radius_a, shape_b, radius_b, d - 0.02 * scale) < 0
    assert _boundary_gap(shape_a, radius_a, shape_b, radius_b, d + 0.02 * scale) > 0
    # the distance does not depend on which shape is on the left
    assert contact_distance(shape_b, radius_b, shape_a, radius_a) == pytest.approx(d, rel=1e-3)
