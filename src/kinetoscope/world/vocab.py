"""The physics world's vocabulary: named shapes, colours, sizes, motions and directions.

These names are shared by the scene spec, the renderer, the captions and the judge. They are
the world's facts (what "red" or "large" means), not renderer internals.

Units: positions are fractions of the frame; lengths, speeds and gravity are in *short sides*
(the shorter of the frame's width and height is 1), so a scene keeps its physics at any
resolution and its shapes stay round at any aspect ratio. Screen y grows downwards.
"""

from __future__ import annotations

import math

SHAPES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "star",
    "diamond",
    "hexagon",
    "heart",
    "cross",
)

# sRGB 0-255. Object colours are chosen to stay far apart from one another.
COLORS: dict[str, tuple[int, int, int]] = {
    # object colours
    "red": (215, 38, 45),
    "orange": (242, 128, 22),
    "yellow": (250, 220, 40),
    "green": (46, 160, 67),
    "blue": (36, 92, 214),
    "purple": (128, 62, 184),
    "pink": (240, 120, 180),
    "brown": (125, 78, 42),
    "white": (246, 246, 243),
    "black": (28, 28, 30),
    "cyan": (34, 196, 214),
    # background colours
    "pale blue": (172, 206, 236),
    "light gray": (206, 208, 212),
    "peach": (250, 214, 186),
    "lavender": (212, 202, 236),
    "gray": (112, 112, 114),
    "dark gray": (68, 68, 72),
    "tan": (192, 162, 116),
    "dark green": (52, 98, 58),
    "navy": (24, 34, 80),
    "beige": (232, 221, 196),
    "midnight": (12, 14, 34),
}

OBJECT_COLORS: tuple[str, ...] = (
    "red",
    "orange",
    "yellow",
    "green",
    "blue",
    "purple",
    "pink",
    "brown",
    "white",
    "black",
    "cyan",
)
SKY_COLORS: tuple[str, ...] = ("pale blue", "light gray", "peach", "lavender")
FLOOR_COLORS: tuple[str, ...] = ("gray", "dark gray", "tan", "dark green")
SOLID_COLORS: tuple[str, ...] = ("white", "black", "light gray", "navy", "beige", "pale blue")
GRADIENTS: tuple[tuple[str, str], ...] = (
    ("pale blue", "white"),
    ("navy", "purple"),
    ("peach", "pink"),
    ("midnight", "navy"),
    ("light gray", "dark gray"),
)

# Radius of a circle with the same area as the object, in short sides. Every shape is scaled to
# the area of this circle, so "size" means the same amount of pixels whatever the shape.
SIZES: dict[str, float] = {"small": 0.065, "medium": 0.095, "large": 0.135}

BACKGROUNDS: tuple[str, ...] = ("solid", "sky_floor", "gradient")

# Translational motions. Spin and growth are separate fields and combine with any of these.
MOTIONS: tuple[str, ...] = ("still", "linear", "bounce", "fall", "throw", "orbit")

# The eight compass directions on screen as unit vectors (x right, y down).
_D = math.sqrt(0.5)
DIRECTIONS: dict[str, tuple[float, float]] = {
    "right": (1.0, 0.0),
    "up-right": (_D, -_D),
    "up": (0.0, -1.0),
    "up-left": (-_D, -_D),
    "left": (-1.0, 0.0),
    "down-left": (-_D, _D),
    "down": (0.0, 1.0),
    "down-right": (_D, _D),
}

DEFAULT_GRAVITY = 2.0  # short sides per second squared
FLOOR_LINE_WIDTH = 0.012  # short sides; the darker line drawn where the floor meets the sky
FLOOR_TILE_WIDTH = 0.25  # short sides; the floor's subtle tiles, which make a camera pan visible
FLOOR_TILE_CONTRAST = 7  # sRGB levels above and below the floor colour
FLOOR_LINE_DARKEN = 0.55  # the floor line is the floor colour times this


def direction_name(velocity: tuple[float, float]) -> str | None:
    """The compass direction nearest to a velocity, or None for a velocity of (about) zero."""
    vx, vy = velocity
    if math.hypot(vx, vy) < 1e-9:
        return None
    angle = math.atan2(-vy, vx)  # counter-clockwise from "right", with y up
    index = round(angle / (math.pi / 4)) % 8
    return ("right", "up-right", "up", "up-left", "left", "down-left", "down", "down-right")[index]


def color_distance(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    """A perceptual distance between two sRGB colours (the "redmean" weighting), 0 to ~765."""
    rmean = (a[0] + b[0]) / 2
    dr, dg, db = a[0] - b[0], a[1] - b[1], a[2] - b[2]
    return math.sqrt(
        (2 + rmean / 256) * dr * dr + 4 * dg * dg + (2 + (255 - rmean) / 256) * db * db
    )
