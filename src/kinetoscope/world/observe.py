"""What a video shows, read from its pixels alone: background, objects and their tracks.

This is the judge's eye. It never looks at how a scene was rendered; it needs from the spec only
what a viewer would be told (whether the background has a floor, and where), and finds:

1. the background: every physics-world background is constant along each row, so each row's
   most common colour over the whole clip is its background; a per-frame gain absorbs global
   brightness changes; on a tiled floor a per-frame column profile absorbs the tiles, whose
   shift from frame to frame is the camera pan;
2. foreground pixels: far from the background after a 3x3 blur (which tames noise);
3. objects: clusters of foreground colours (objects in a scene have distinct colours), each
   pixel assigned to the cluster whose colour best explains it as a mix with the background;
4. tracks: per object and frame, the main connected component's coverage-weighted area and
   centroid, its mean colour, whether it is isolated (whole, alone) or duplicated, and a
   scale-normalised picture of its outline for shape matching.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from kinetoscope.world import vocab

LEVELS = 16  # colour quantisation per channel for histogram modes
DETECT = 30.0  # minimum background distance (sRGB levels, after blur) of a foreground pixel
FLAT_RANGE = 24.0  # core pixels vary less than this (sRGB levels) over their 3x3 neighbourhood
CLUSTER_RADIUS = 60.0  # colours within this distance of a cluster centre belong to it
DESCRIPTOR_SIZE = 33  # outline pictures are DESCRIPTOR_SIZE^2 samples ...
DESCRIPTOR_EXTENT = 1.8  # ... spanning +-this many radii around the centroid
_EIGHT = np.ones((3, 3), dtype=bool)


@dataclass
class Track:
    """One object over time; arrays have one entry per frame, NaN where the object is absent."""

    color: np.ndarray  # (3,) its colour, from brightness-normalised frames
    present: np.ndarray  # (T,) bool
    area: np.ndarray  # (T,) pixels, coverage-weighted
    x: np.ndarray  # (T,) centroid in pixels (screen)
    y: np.ndarray
    left: np.ndarray  # (T,) bounding box in pixels
    right: np.ndarray
    top: np.ndarray
    bottom: np.ndarray
    isolated: np.ndarray  # (T,) bool: alone (no other object near), single, off the edges
    at_edge: np.ndarray  # (T,) bool: touches the frame's border
    duplicated: np.ndarray  # (T,) bool: a second component as large as half the first
    frame_color: np.ndarray  # (T, 3) mean colour of its core pixels in the raw frames
    outline: np.ndarray  # (T, S, S) scale-normalised coverage around the centroid


@dataclass
class Observation:
    fps: float
    width: int
    height: int
    tracks: list[Track]
    camera: np.ndarray  # (T,) camera x in pixels: world x = screen x + camera
    gain: np.ndarray  # (T,) brightness of each frame relative to the clip's background
    residual: np.ndarray  # (T,) mean distance of background pixels from the background model
    background: np.ndarray  # (H, 3) the clip's background colour per row

    @property
    def frames(self) -> int:
        return len(self.gain)

    @property
    def short_side(self) -> int:
        return min(self.width, self.height)


def observe(frames: np.ndarray | torch.Tensor, fps: float, floor: float | None) -> Observation:
    """Read a clip, uint8 (T, H, W, 3). `floor`: the floor line as a fraction of the height,
    when the background has a tiled floor, else None."""
    raw = np.asarray(frames, dtype=np.float32)
    t, h, w, _ = raw.shape
    # 1. background model
    rows = _row_background(raw)  # (H, 3)
    gain = _gain(raw, rows)  # (T,)
    norm = raw / gain[:, None, None, None]
    floor_rows = _floor_rows(h, min(h, w), floor)
    profile = _floor_profile(norm, rows, floor_rows)  # (T, W, 3)
    model = np.broadcast_to(rows[None, :, None, :], raw.shape).copy()
    if floor_rows is not None:
        model[:, floor_rows] += profile[:, None]
    camera = _camera_from_profile(profile, min(h, w)) if floor_rows is not None else np.zeros(t)
    # 2. foreground
    blurred = ndimage.uniform_filter(norm, size=(1, 3, 3, 1), mode="nearest")
    distance = np.linalg.norm(blurred - model, axis=-1)  # (T, H, W)
    foreground = distance > DETECT
    residual = _background_residual(norm, model, foreground)
    # 3. objects
    core = _core(foreground, blurred)
    colors = _cluster_colors(blurred[core], min_mass=_min_area(min(h, w)) * max(2, t // 8))
    labels = _assign(blurred, model, foreground, colors)  # (T, H, W) int, -1 background
    # 4. tracks
    tracks = [
        _track(k, color, labels, norm, model, raw, core, min(h, w))
        for k, color in enumerate(colors)
    ]
    return Observation(
        fps=float(fps),
        width=w,
        height=h,
        tracks=tracks,
        camera=camera,
        gain=gain,
        residual=residual,
        background=rows,
    )


# ---- background ------------------------------------------------------------------------------


def _row_background(raw: np.ndarray) -> np.ndarray:
    """Each row's background colour over the clip (H, 3): of a few candidates (the row's
    median and the centres of its fullest coarse-histogram bins), the one with the most
    pixels near it. Counting support, not bin height, matters: compression spreads a row's
    colour over neighbouring bins, and a large object's one colour could win a plain mode."""
    t, h, w, _ = raw.shape
    by_row = raw.transpose(1, 0, 2, 3).reshape(h, t * w, 3)
    step = 256 // LEVELS
    q = (by_row // step).astype(np.int64)
    key = (q[..., 0] * LEVELS + q[..., 1]) * LEVELS + q[..., 2]  # (H, T*W)
    bins = LEVELS**3
    hist = np.bincount((np.arange(h)[:, None] * bins + key).ravel(), minlength=h * bins)
    top = np.argsort(hist.reshape(h, bins), axis=1)[:, -3:]  # (H, 3)
    centres = (
        np.stack([top // (LEVELS * LEVELS), (top // LEVELS) % LEVELS, top % LEVELS], axis=-1) * step
        + step / 2
    )  # (H, 3, 3)
    candidates = np.concatenate([np.median(by_row, axis=1)[:, None], centres], axis=1)
    candidates = np.stack([_refine(by_row, candidates[:, k]) for k in range(4)], axis=1)
    support = np.stack(
        [(np.abs(by_row - candidates[:, k, None]).max(-1) <= 12).sum(1) for k in range(4)], 1
    )  # (H, 4)
    return candidates[np.arange(h), support.argmax(axis=1)]


def _refine(by_row: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """The mean of each row's pixels within 1.5 coarse bins of a centre (H, 3)."""
    near = (np.abs(by_row - centre[:, None]).max(axis=-1) <= 1.5 * 256 / LEVELS)[..., None]
    return (by_row * near).sum(axis=1) / np.maximum(near.sum(axis=1), 1)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _gain(raw: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Per-frame brightness relative to the background: ratio of luma sums over the pixels
    that look like background (within 30% of it)."""
    frame_luma = _luma(raw)  # (T, H, W)
    model_luma = np.broadcast_to(_luma(rows)[None, :, None], frame_luma.shape)
    near = np.abs(frame_luma - model_luma) < 0.3 * model_luma + 15
    num = (frame_luma * near).sum(axis=(1, 2))
    den = (model_luma * near).sum(axis=(1, 2))
    gain = np.where(den > 0, num / np.maximum(den, 1e-6), 1.0)
    return gain.astype(np.float32)


def _floor_rows(height: int, short_side: int, floor: float | None) -> np.ndarray | None:
    """Rows safely inside a tiled floor, below its line; None if there is no such floor."""
    if floor is None:
        return None
    first = int(np.ceil(floor * height + vocab.FLOOR_LINE_WIDTH * short_side + 1.5))
    if first >= height - 1:
        return None
    return np.arange(first, height)


def _floor_profile(norm: np.ndarray, rows: np.ndarray, floor_rows: np.ndarray | None) -> np.ndarray:
    """Per frame and column, the floor's departure from its row colour (T, W, 3): the tiles."""
    t, _, w, _ = norm.shape
    if floor_rows is None:
        return np.zeros((t, w, 3), dtype=np.float32)
    return np.median(norm[:, floor_rows] - rows[None, floor_rows, None], axis=1)


def _camera_from_profile(profile: np.ndarray, short_side: int) -> np.ndarray:
    """Camera x per frame (pixels) from the phase of the floor tiles' fundamental frequency.

    The tiles repeat every two tile widths; a pan by d pixels turns the phase of that
    frequency by 2 pi d / period, so unwrapping the phase over time gives the camera path
    without accumulating per-frame errors (pans under half a period per frame are unambiguous).
    """
    signal = _luma(profile)  # (T, W)
    w = signal.shape[1]
    period = 2 * vocab.FLOOR_TILE_WIDTH * short_side
    x = np.arange(w) + 0.5
    window = np.hanning(w + 2)[1:-1]  # tapers the ends: W need not hold whole periods
    centred = (signal - signal.mean(axis=1, keepdims=True)) * window
    phase = np.angle(centred @ np.exp(-2j * np.pi * x / period))  # (T,)
    return np.unwrap(phase - phase[0]) * period / (2 * np.pi)


def _background_residual(norm: np.ndarray, model: np.ndarray, foreground: np.ndarray) -> np.ndarray:
    """Mean distance from the model of pixels well away from any foreground, per frame."""
    near_objects = ndimage.binary_dilation(foreground, structure=_EIGHT[None], iterations=2)
    away = ~near_objects
    distance = np.abs(norm - model).mean(axis=-1)
    return (distance * away).sum(axis=(1, 2)) / np.maximum(away.sum(axis=(1, 2)), 1)


# ---- objects ---------------------------------------------------------------------------------


def _min_area(short_side: int) -> float:
    """The smallest area (pixels) that counts as an object: a fifth of the smallest size."""
    return 0.2 * np.pi * (vocab.SIZES["small"] * short_side) ** 2


def _core(foreground: np.ndarray, blurred: np.ndarray) -> np.ndarray:
    """Foreground pixels inside an object, whose blurred colour is the object's own and not a
    mix with its surroundings: one pixel in from the mask's edge, where the blurred image is
    locally flat (a 3x3 range under FLAT_RANGE levels; noise survives the blur far below it,
    outlines and compression ringing do not)."""
    inner = ndimage.binary_erosion(foreground, structure=_EIGHT[None])
    spread = ndimage.maximum_filter(blurred, size=(1, 3, 3, 1)) - ndimage.minimum_filter(
        blurred, size=(1, 3, 3, 1)
    )
    return inner & (spread.max(axis=-1) < FLAT_RANGE)


def _cluster_colors(samples: np.ndarray, min_mass: float) -> list[np.ndarray]:
    """Distinct object colours among core foreground pixels (N, 3), most common first.

    Greedy: take the fullest histogram bin, refine its centre to the mean of nearby samples,
    claim every sample within CLUSTER_RADIUS, repeat while enough samples remain.
    """
    step = 256 // LEVELS
    colors: list[np.ndarray] = []
    remaining = samples
    while len(remaining) >= max(min_mass, 1):
        q = (remaining // step).astype(np.int64)
        key = (q[:, 0] * LEVELS + q[:, 1]) * LEVELS + q[:, 2]
        best = np.bincount(key, minlength=LEVELS**3).argmax()
        centre = (
            np.array(
                [best // (LEVELS * LEVELS), (best // LEVELS) % LEVELS, best % LEVELS], np.float32
            )
            * step
            + step / 2
        )
        for _ in range(3):
            near = np.linalg.norm(remaining - centre, axis=1) < CLUSTER_RADIUS / 2
            centre = remaining[near].mean(axis=0) if near.any() else centre
        claimed = np.linalg.norm(remaining - centre, axis=1) < CLUSTER_RADIUS
        if claimed.sum() < min_mass:
            break
        colors.append(centre)
        remaining = remaining[~claimed]
    return _merge_close(colors)


def _merge_close(colors: list[np.ndarray]) -> list[np.ndarray]:
    kept: list[np.ndarray] = []
    for color in colors:
        if all(np.linalg.norm(color - other) >= CLUSTER_RADIUS for other in kept):
            kept.append(color)
    return kept


def _assign(
    blurred: np.ndarray, model: np.ndarray, foreground: np.ndarray, colors: list[np.ndarray]
) -> np.ndarray:
    """Label each foreground pixel with the cluster that best explains it as
    background + a (colour - background), a in (0.2, 1.2]; -1 elsewhere."""
    labels = np.full(foreground.shape, -1, dtype=np.int16)
    if not colors:
        return labels
    pixel, back = blurred[foreground], model[foreground]  # (P, 3)
    diff = pixel - back
    costs = []
    for color in colors:
        u = color[None] - back  # (P, 3)
        a = (diff * u).sum(-1) / np.maximum((u * u).sum(-1), 1e-6)
        miss = np.linalg.norm(diff - a[:, None] * u, axis=-1)
        costs.append(np.where((a > 0.2) & (a < 1.2), miss, np.inf))
    costs = np.stack(costs, axis=1)  # (P, K)
    best = costs.argmin(axis=1)
    ok = np.take_along_axis(costs, best[:, None], axis=1)[:, 0] < CLUSTER_RADIUS
    labels[foreground] = np.where(ok, best, -1)
    return labels


def _track(
    k: int,
    color: np.ndarray,
    labels: np.ndarray,
    norm: np.ndarray,
    model: np.ndarray,
    raw: np.ndarray,
    core: np.ndarray,
    short_side: int,
) -> Track:
    track = _empty_track(color, labels.shape[0])
    t = labels.shape[0]
    min_area = _min_area(short_side)
    others = (labels >= 0) & (labels != k)
    previous: tuple[float, float] | None = None
    for i in range(t):
        mine = labels[i] == k
        if not mine.any():
            continue
        components, count = ndimage.label(mine, structure=_EIGHT)
        sizes = np.bincount(components.ravel(), minlength=count + 1)[1:]
        large = np.flatnonzero(sizes >= min_area)
        if len(large) == 0:
            continue
        chosen = _follow(components, large, sizes, previous)
        main = components == chosen + 1
        alpha = _coverage(main, others[i], norm[i], model[i], color)
        _measure_frame(track, i, alpha, main, others[i], raw[i], core[i])
        rivals = sizes[large[large != chosen]]
        track.duplicated[i] = bool((rivals >= 0.5 * sizes[chosen]).any())
        track.isolated[i] &= not track.duplicated[i]
        track.outline[i] = _outline(alpha, track.x[i], track.y[i], track.area[i])
        previous = (track.x[i], track.y[i])
    return track


def _follow(
    components: np.ndarray,
    candidates: np.ndarray,
    sizes: np.ndarray,
    previous: tuple[float, float] | None,
) -> int:
    """The component that continues the track: nearest the last centroid, else the largest."""
    if previous is None or len(candidates) == 1:
        return int(candidates[np.argmax(sizes[candidates])])
    centres = ndimage.center_of_mass(components > 0, components, candidates + 1)
    distance = [np.hypot(cx + 0.5 - previous[0], cy + 0.5 - previous[1]) for cy, cx in centres]
    return int(candidates[int(np.argmin(distance))])


def _empty_track(color: np.ndarray, t: int) -> Track:
    nan = np.full(t, np.nan)
    size = DESCRIPTOR_SIZE
    return Track(
        color=color,
        present=np.zeros(t, bool),
        area=nan.copy(),
        x=nan.copy(),
        y=nan.copy(),
        left=nan.copy(),
        right=nan.copy(),
        top=nan.copy(),
        bottom=nan.copy(),
        isolated=np.zeros(t, bool),
        at_edge=np.zeros(t, bool),
        duplicated=np.zeros(t, bool),
        frame_color=np.full((t, 3), np.nan),
        outline=np.zeros((t, size, size), np.float32),
    )


def _coverage(
    main: np.ndarray, others: np.ndarray, norm: np.ndarray, model: np.ndarray, color: np.ndarray
) -> np.ndarray:
    """How much of each pixel (H, W) the object covers, 0-1, around its main component:
    the pixel's position between the background and the object's colour."""
    region = ndimage.binary_dilation(main, structure=_EIGHT) & ~others
    u = color[None, None] - model  # (H, W, 3)
    a = ((norm - model) * u).sum(-1) / np.maximum((u * u).sum(-1), 1e-6)
    return np.where(region, np.clip(a, 0.0, 1.0), 0.0)


def _measure_frame(
    track: Track,
    i: int,
    alpha: np.ndarray,
    main: np.ndarray,
    others: np.ndarray,
    raw: np.ndarray,
    core: np.ndarray,
) -> None:
    h, w = alpha.shape
    area = float(alpha.sum())
    ys, xs = np.nonzero(main)
    grid_y, grid_x = np.mgrid[0:h, 0:w]
    track.present[i] = True
    track.area[i] = area
    track.x[i] = float((alpha * (grid_x + 0.5)).sum() / max(area, 1e-6))
    track.y[i] = float((alpha * (grid_y + 0.5)).sum() / max(area, 1e-6))
    track.left[i], track.right[i] = xs.min(), xs.max() + 1
    track.top[i], track.bottom[i] = ys.min(), ys.max() + 1
    inner = main & core
    pick = inner if inner.sum() >= 4 else main
    track.frame_color[i] = raw[pick].mean(axis=0)
    near_others = ndimage.binary_dilation(main, structure=_EIGHT, iterations=2) & others
    track.at_edge[i] = xs.min() == 0 or ys.min() == 0 or xs.max() == w - 1 or ys.max() == h - 1
    track.isolated[i] = not track.at_edge[i] and not near_others.any()


def _outline(alpha: np.ndarray, x: float, y: float, area: float) -> np.ndarray:
    """Coverage resampled on a grid of +-DESCRIPTOR_EXTENT radii around the centroid, where the
    radius is that of a circle of the same area: the same object at any size looks the same."""
    h, w = alpha.shape
    radius = np.sqrt(max(area, 1e-6) / np.pi)
    steps = np.linspace(-DESCRIPTOR_EXTENT, DESCRIPTOR_EXTENT, DESCRIPTOR_SIZE) * radius
    gx = (x + steps) / w * 2 - 1  # grid_sample's normalised coordinates, pixel edges at +-1
    gy = (y + steps) / h * 2 - 1
    grid = torch.stack(torch.meshgrid(torch.tensor(gy), torch.tensor(gx), indexing="ij")[::-1], -1)
    picture = torch.tensor(alpha, dtype=torch.float32)[None, None]
    sampled = F.grid_sample(picture, grid[None].float(), align_corners=False, padding_mode="zeros")
    return sampled[0, 0].numpy()
