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

import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from kinetoscope.world import vocab

LEVELS = 16  # colour quantisation per channel for histogram modes
SATURATED = 254.0  # channel values this high may have been clipped at 255
DETECT = 30.0  # minimum background distance (sRGB levels, after blur) of a foreground pixel
MAX_STEP = 0.08  # short sides an object may move between frames and still be followed
FLAT_RANGE = 24.0  # core pixels vary less than this (sRGB levels) over their 3x3 neighbourhood
CLUSTER_RADIUS = 60.0  # colours within this distance of a cluster centre belong to it
DESCRIPTOR_SIZE = 33  # outline pictures are DESCRIPTOR_SIZE^2 samples ...
DESCRIPTOR_EXTENT = 1.8  # ... spanning +-this many radii around the centroid
_EIGHT = np.ones((3, 3), dtype=bool)
_FRAMEWISE = np.zeros((3, 3, 3), dtype=bool)  # 8-connected within a frame, never across frames
_FRAMEWISE[1] = True


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
    jumped: np.ndarray  # (T,) bool: something of its colour was there, but out of its reach
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
    gain = _gain(raw)  # (T,)
    norm = raw / gain[:, None, None, None]
    rows = _row_background(norm, unsaturated=raw.max(axis=-1) < SATURATED)  # (H, 3)
    floor_rows = _floor_rows(h, min(h, w), floor)
    profile = _floor_profile(norm, rows, floor_rows)  # (T, W, 3)
    model = np.broadcast_to(rows[None, :, None, :], raw.shape).copy()
    if floor_rows is not None:
        model[:, floor_rows] += profile[:, None]
    # a brighter frame clips at 255: predict that, so a white background stays background
    scale = gain[:, None, None, None]
    model = np.minimum(model * scale, 255.0) / scale
    camera = _camera_from_profile(profile, min(h, w)) if floor_rows is not None else np.zeros(t)
    # 2. foreground
    # the blur tames noise; the model is blurred alike, or sharp background edges (the floor
    # line) would differ from their blurred selves and pass for objects
    blurred = ndimage.uniform_filter(norm, size=(1, 3, 3, 1), mode="nearest")
    blurred_model = ndimage.uniform_filter(model, size=(1, 3, 3, 1), mode="nearest")
    distance = np.sqrt(_dot(blurred - blurred_model, blurred - blurred_model))  # (T, H, W)
    foreground = distance > DETECT
    residual = _background_residual(norm, model, foreground)
    # 3. objects
    core = _core(foreground, blurred)
    colors = _cluster_colors(blurred[core], min_mass=_min_area(min(h, w)) * max(2, t // 8))
    labels = _assign(blurred, blurred_model, foreground, colors)  # (T, H, W) int, -1 background
    # 4. tracks
    tracks = [
        _track(k, color, labels, norm, model, blurred, blurred_model, raw, core, min(h, w))
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


def _row_background(norm: np.ndarray, unsaturated: np.ndarray) -> np.ndarray:
    """Each row's background colour over the clip (H, 3): of a few candidates (the row's
    median and the centres of its fullest coarse-histogram bins), the one with the most
    pixels near it. Counting support, not bin height, matters: compression spreads a row's
    colour over neighbouring bins, and a large object's one colour could win a plain mode.
    Up to 16 frames spread over the clip are enough to see it. Clipped pixels (`unsaturated`
    false, (T, H, W)) are left out while a row has enough others."""
    t, h, _, _ = norm.shape
    chosen = np.unique(np.linspace(0, t - 1, min(t, 16)).round().astype(int))
    by_row = np.ascontiguousarray(norm[chosen].transpose(1, 0, 2, 3)).reshape(h, -1, 3)
    usable = np.ascontiguousarray(unsaturated[chosen].transpose(1, 0, 2)).reshape(h, -1)
    usable |= usable.sum(axis=1, keepdims=True) < usable.shape[1] // 8
    weight = usable.astype(np.float32)
    step = 256 // LEVELS
    q = np.clip(by_row // step, 0, LEVELS - 1).astype(np.int64)
    key = (q[..., 0] * LEVELS + q[..., 1]) * LEVELS + q[..., 2]  # (H, n)
    bins = LEVELS**3
    flat = (np.arange(h)[:, None] * bins + key).ravel()
    hist = np.bincount(flat, weights=weight.ravel(), minlength=h * bins)
    hist = hist.reshape(h, bins)
    top = np.empty((h, 3), dtype=np.int64)
    for k in range(3):  # the three fullest bins of each row
        top[:, k] = hist.argmax(axis=1)
        hist[np.arange(h), top[:, k]] = -1
    centres = (
        np.stack([top // (LEVELS * LEVELS), (top // LEVELS) % LEVELS, top % LEVELS], axis=-1) * step
        + step / 2
    )  # (H, 3, 3)
    median = np.stack(
        [_nanmedian_rows(np.where(usable, by_row[..., c], np.nan)) for c in range(3)], axis=-1
    )
    candidates = np.concatenate([median[:, None], centres], axis=1)
    candidates = np.stack([_refine(by_row, weight, candidates[:, k]) for k in range(4)], axis=1)
    support = np.stack(
        [((_max_abs(by_row, candidates[:, k, None]) <= 12) * weight).sum(1) for k in range(4)],
        axis=1,
    )  # (H, 4)
    return candidates[np.arange(h), support.argmax(axis=1)]


def _max_abs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """max over the colour channels of |a - b| (faster than reducing a length-3 axis)."""
    d = np.abs(a - b)
    return np.maximum(np.maximum(d[..., 0], d[..., 1]), d[..., 2])


def _grow(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Dilate a (T, H, W) mask by `pixels` within each frame (8-connected: a square)."""
    size = 2 * pixels + 1
    return ndimage.maximum_filter(mask, size=(1, size, size))


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dot product over the colour channels (the last axis, of length 3)."""
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]


def _refine(by_row: np.ndarray, weight: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """The mean of each row's usable pixels within 1.5 coarse bins of a centre (H, 3)."""
    near = ((_max_abs(by_row, centre[:, None]) <= 1.5 * 256 / LEVELS) * weight)[..., None]
    return (by_row * near).sum(axis=1) / np.maximum(near.sum(axis=1), 1)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _gain(raw: np.ndarray) -> np.ndarray:
    """Per-frame brightness relative to the clip's median frame (T,): the median ratio of
    channel values over those that are neither dark (noisy ratios) nor saturated (clipped).
    A global brightness change scales every pixel alike, objects included, so moving objects
    are the only outliers and the median ignores them."""
    frames = raw[np.unique(np.linspace(0, len(raw) - 1, min(len(raw), 16)).round().astype(int))]
    reference = np.median(frames, axis=0)  # (H, W, 3)
    usable = (reference > 20) & (raw < SATURATED) & (raw > 5)  # (T, H, W, 3)
    ratio = np.where(usable, raw / np.maximum(reference, 1e-6), np.nan).reshape(len(raw), -1)
    gain = _nanmedian_rows(ratio)
    # a frame bright enough to clip nearly everything: clipped values say only that the gain
    # is at least 255 / reference, and that bound predicts them exactly
    clipped = ((raw >= SATURATED) & (reference > 20)).reshape(len(raw), -1)
    bound = _nanmedian_rows(np.where(clipped, 255.0 / np.maximum(reference, 1e-6).ravel(), np.nan))
    mostly_clipped = usable.reshape(len(raw), -1).mean(axis=1) < 0.1
    gain = np.where(mostly_clipped & np.isfinite(bound), bound, gain)
    return np.where(np.isfinite(gain), gain, 1.0).astype(np.float32)


def _nanmedian_rows(values: np.ndarray) -> np.ndarray:
    """Median of each row ignoring NaN; NaN (without a warning) for a row of NaN only."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(values, axis=1)


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
    near_objects = _grow(foreground, 2)
    away = ~near_objects
    difference = np.abs(norm - model)
    distance = _dot(difference, np.ones(3, np.float32)) / 3
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
    return inner & (_max_abs(spread, np.zeros(3, np.float32)) < FLAT_RANGE)


def _cluster_colors(samples: np.ndarray, min_mass: float) -> list[np.ndarray]:
    """Distinct object colours among core foreground pixels (N, 3), most common first.

    Greedy: take the fullest histogram bin, refine its centre to the mean of nearby samples,
    claim every sample within CLUSTER_RADIUS, repeat while enough samples remain.
    """
    step = 256 // LEVELS
    colors: list[np.ndarray] = []
    remaining = samples
    while len(remaining) >= max(min_mass, 1):
        q = np.clip(remaining // step, 0, LEVELS - 1).astype(np.int64)
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
        a = _dot(diff, u) / np.maximum(_dot(u, u), 1e-6)
        off = diff - a[:, None] * u
        miss = np.sqrt(_dot(off, off))
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
    blurred: np.ndarray,
    blurred_model: np.ndarray,
    raw: np.ndarray,
    core: np.ndarray,
    short_side: int,
) -> Track:
    """Follow cluster k through the clip, all frames at once."""
    t, h, w = labels.shape
    track = _empty_track(color, t)
    mine = labels == k
    others = (labels >= 0) & ~mine
    components, count = ndimage.label(mine, structure=_FRAMEWISE)
    if count == 0:
        return track
    main, duplicated, jumped = _main_components(
        components, count, _min_area(short_side), short_side
    )
    present = main.any(axis=(1, 2))
    # coverage around the main component: the pixel's place between background and colour.
    # Area and centroid come from the blurred frame (a box blur keeps both, within the region
    # grown to hold its spread, and averages noise away); the outline from the sharp one.
    region = _grow(main, 2) & ~others
    alpha = _alpha(blurred, blurred_model, color, region)  # (T, H, W)
    sharp = _alpha(norm, model, color, _grow(main, 1) & ~others)
    area = alpha.sum(axis=(1, 2))
    safe = np.maximum(area, 1e-6)
    track.present = present
    track.area = np.where(present, area, np.nan)
    track.x = np.where(present, (alpha.sum(axis=1) * (np.arange(w) + 0.5)).sum(1) / safe, np.nan)
    track.y = np.where(present, (alpha.sum(axis=2) * (np.arange(h) + 0.5)).sum(1) / safe, np.nan)
    cols, rows = main.any(axis=1), main.any(axis=2)  # (T, W), (T, H)
    track.left = np.where(present, cols.argmax(1), np.nan)
    track.right = np.where(present, w - cols[:, ::-1].argmax(1), np.nan)
    track.top = np.where(present, rows.argmax(1), np.nan)
    track.bottom = np.where(present, h - rows[:, ::-1].argmax(1), np.nan)
    track.at_edge = present & (cols[:, 0] | cols[:, -1] | rows[:, 0] | rows[:, -1])
    near = _grow(main, 2) & others
    track.duplicated = duplicated
    track.jumped = jumped
    track.isolated = present & ~track.at_edge & ~near.any(axis=(1, 2)) & ~duplicated
    track.frame_color = _frame_colors(main, core, raw, present)
    track.outline = _outlines(sharp, track.x, track.y, track.area, present)
    return track


def _alpha(
    frames: np.ndarray, model: np.ndarray, color: np.ndarray, region: np.ndarray
) -> np.ndarray:
    """Coverage (T, H, W) in [0, 1] within `region`: how far each pixel lies from the
    background towards the object's colour."""
    u = color - model  # (T, H, W, 3)
    a = _dot(frames - model, u) / np.maximum(_dot(u, u), 1e-6)
    return np.where(region, np.clip(a, 0.0, 1.0), 0.0)


def _main_components(
    components: np.ndarray, count: int, min_area: float, short_side: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame, the component that continues the track among those of at least min_area:
    the largest at first, then the one nearest where the track was last seen, if it is within
    reach (MAX_STEP short sides, or twice the recent step if that is more, per frame since);
    none otherwise, so that an object hidden for a while is not swapped for a look-alike.
    Also whether a rival at least half its size is there too. Returns the main mask
    (T, H, W), duplicated (T,) and jumped (T,): frames with candidates all out of reach."""
    t = components.shape[0]
    ids = np.arange(1, count + 1)
    flat = components.ravel()
    sizes = np.bincount(flat, minlength=count + 1)[1:]
    index = np.indices(components.shape).reshape(3, -1)  # frame, row, column of each pixel
    centres = (
        np.stack(
            [np.bincount(flat, weights=axis, minlength=count + 1)[1:] for axis in index], axis=1
        )
        / np.maximum(sizes, 1)[:, None]
    )  # (n, 3): frame, y, x
    frame_of = centres[:, 0].round().astype(int)
    chosen = np.zeros(t, dtype=np.int64)
    duplicated = np.zeros(t, dtype=bool)
    jumped = np.zeros(t, dtype=bool)
    previous: np.ndarray | None = None
    rivals_seen = np.zeros((0, 2))  # where other components of this colour were last seen
    last_seen, step = -1, 0.0
    for i in range(t):
        candidates = np.flatnonzero((frame_of == i) & (sizes >= min_area))
        if len(candidates) == 0:
            continue
        if previous is None:
            pick = candidates[np.argmax(sizes[candidates])]
        else:
            distance = np.hypot(*(centres[candidates, 1:] - previous).T)
            # a candidate nearer where a rival was than where the track was is that rival
            if len(rivals_seen):
                to_rival = np.hypot(
                    *(centres[candidates, None, 1:] - rivals_seen).transpose(2, 0, 1)
                )
                distance = np.where(to_rival.min(axis=1) < distance, np.inf, distance)
            reach = 3.0 + (i - last_seen) * max(MAX_STEP * short_side, 2 * step)
            if distance.min() > reach:
                jumped[i] = bool(np.isfinite(distance).any())
                continue
            pick = candidates[np.argmin(distance)]
            step = float(distance.min()) / (i - last_seen)
        rivals = candidates[candidates != pick]
        duplicated[i] = bool((sizes[rivals] >= 0.5 * sizes[pick]).any())
        rivals_seen = centres[rivals, 1:] if len(rivals) else rivals_seen
        chosen[i] = ids[pick]
        previous, last_seen = centres[pick, 1:], i
    return np.isin(components, chosen[chosen > 0]), duplicated, jumped


def _frame_colors(
    main: np.ndarray, core: np.ndarray, raw: np.ndarray, present: np.ndarray
) -> np.ndarray:
    """Mean raw colour per frame of the main component's core pixels (all its pixels where
    it has fewer than 4 core pixels); NaN where absent. (T, 3)"""
    inner = main & core
    pick = np.where((inner.sum(axis=(1, 2)) >= 4)[:, None, None], inner, main)
    counts = pick.sum(axis=(1, 2))
    sums = np.einsum("thw,thwc->tc", pick.astype(np.float32), raw)
    colors = sums / np.maximum(counts, 1)[:, None]
    return np.where(present[:, None], colors, np.nan)


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
        jumped=np.zeros(t, bool),
        frame_color=np.full((t, 3), np.nan),
        outline=np.zeros((t, size, size), np.float32),
    )


def _outlines(
    alpha: np.ndarray, x: np.ndarray, y: np.ndarray, area: np.ndarray, present: np.ndarray
) -> np.ndarray:
    """Coverage resampled on a grid of +-DESCRIPTOR_EXTENT radii around the centroid, where
    the radius is that of a circle of the same area, so the same object at any size looks the
    same. (T, S, S), zero where absent."""
    t, h, w = alpha.shape
    out = np.zeros((t, DESCRIPTOR_SIZE, DESCRIPTOR_SIZE), np.float32)
    frames = np.flatnonzero(present)
    if len(frames) == 0:
        return out
    radius = np.sqrt(np.maximum(area[frames], 1e-6) / np.pi)  # (F,)
    steps = np.linspace(-DESCRIPTOR_EXTENT, DESCRIPTOR_EXTENT, DESCRIPTOR_SIZE)
    gx = (x[frames, None] + steps * radius[:, None]) / w * 2 - 1  # (F, S) normalised coords
    gy = (y[frames, None] + steps * radius[:, None]) / h * 2 - 1
    grid = np.stack(np.broadcast_arrays(gx[:, None, :], gy[:, :, None]), axis=-1)  # (F, S, S, 2)
    pictures = torch.from_numpy(alpha[frames, None].astype(np.float32))
    sampled = F.grid_sample(
        pictures, torch.from_numpy(grid.astype(np.float32)), align_corners=False
    )
    out[frames] = sampled[:, 0].numpy()
    return out
