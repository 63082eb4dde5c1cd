"""Render physics-world scenes to uint8 frames, batched and vectorised in torch (CPU or CUDA).

Each frame is the background (solid, gradient, or sky over a tiled floor) with the objects
composited back to front. An object is drawn only inside a square window around it, sized for
that object: its signed distance gives each pixel's coverage (a one-pixel ramp, so edges are
anti-aliased), and the covered pixels are blended into the canvas through flat indices
(`index_add_` of each pixel's change, which is deterministic on CPU and CUDA because every
pixel gets at most one change per object). Scenes are independent: a scene renders to the same
bytes alone or in any batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from kinetoscope.io.video import Video
from kinetoscope.world import physics, vocab
from kinetoscope.world.shapes import coverage, geometry
from kinetoscope.world.spec import SceneSpec

_BACKGROUND_CODE = {name: i for i, name in enumerate(vocab.BACKGROUNDS)}
# Bytes of float canvas rendered at once, per device type: a CPU wants it to stay in cache.
CANVAS_BYTES = {"cpu": 32 << 20, "cuda": 4 << 30}


def render(scene: SceneSpec, width: int, height: int, fps: float, device: str = "cpu") -> Video:
    """Render one scene to a Video of `scene.seconds` at the given size and fps."""
    frames = render_batch([scene], width, height, fps, device=device)[0]
    return Video(frames=frames.cpu(), fps=float(fps))


def render_batch(
    scenes: Sequence[SceneSpec],
    width: int,
    height: int,
    fps: float,
    num_frames: int | None = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Render scenes that share a size and frame count. Returns uint8 (B, T, H, W, 3).

    num_frames defaults to the first scene's `frame_count(fps)`.
    """
    _check_size(width, height, fps)
    frames = num_frames if num_frames is not None else scenes[0].frame_count(fps)
    for scene in scenes:
        scene.validate()
    times = torch.arange(frames, dtype=torch.float64, device=device) / fps

    # a few scenes at a time through one float canvas, reused: on a CPU this is several times
    # faster than one canvas for the whole batch. Scenes never interact, so the chunks change
    # nothing in the output.
    pixels = frames * height * width
    budget = CANVAS_BYTES.get(torch.device(device).type, CANVAS_BYTES["cpu"])
    chunk = max(1, budget // (pixels * 3 * 4))
    canvas = torch.empty((min(chunk, len(scenes)) * pixels, 3), device=device)
    out = torch.empty((len(scenes), frames, height, width, 3), dtype=torch.uint8, device=device)
    for start in range(0, len(scenes), chunk):
        part = scenes[start : start + chunk]
        image = canvas[: len(part) * pixels].view(len(part), frames, height, width, 3)
        _render_into(image, part, times)
        out[start : start + len(part)].copy_(image.round_().clamp_(0, 255))
    return out


def _render_into(image: Tensor, scenes: Sequence[SceneSpec], times: Tensor) -> None:
    """Draw scenes into `image`, float (B, T, H, W, 3) in 0-255."""
    height, width = image.shape[2:4]
    packed = physics.pack(scenes, width / height, device=image.device)
    tracks = physics.simulate(packed, times)
    pixels_per_unit = float(min(width, height))
    _background(image, scenes, packed, tracks.camera, pixels_per_unit)
    canvas = image.view(-1, 3)
    for rank in range(packed.slots):  # back to front
        _draw_objects(canvas, image.shape, packed, tracks, rank, pixels_per_unit)


def _check_size(width: int, height: int, fps: float) -> None:
    from kinetoscope.errors import SpecError

    for name, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or not 2 <= value <= 8192:
            raise SpecError(f"{name} must be a whole number of pixels from 2 to 8192, got {value}")
    if not (isinstance(fps, int | float) and math.isfinite(fps) and 0 < fps <= 240):
        raise SpecError(f"fps must be a number above 0 and at most 240, got {fps}")


# ---- background ------------------------------------------------------------------------------


def _background(
    image: Tensor,
    scenes: Sequence[SceneSpec],
    packed: physics.PackedScenes,
    camera: Tensor,
    pixels_per_unit: float,
) -> None:
    """Write the background of every frame into `image`, float (B, T, H, W, 3) in 0-255."""
    height = image.shape[2]
    device = camera.device
    first = torch.tensor([_rgb(s.background.color) for s in scenes], device=device)  # (B, 3)
    second = torch.tensor(
        [_rgb(s.background.color2 or s.background.color) for s in scenes], device=device
    )
    kind = torch.tensor([_BACKGROUND_CODE[s.background.kind] for s in scenes], device=device)
    row_y = (torch.arange(height, device=device) + 0.5) / pixels_per_unit  # (H,) short sides
    pixel = 1.0 / pixels_per_unit

    # gradient: top colour to bottom colour, row by row
    mix = (row_y / packed.height)[None, :, None]  # (1, H, 1)
    gradient_rows = first[:, None] * (1 - mix) + second[:, None] * mix  # (B, H, 3)
    solid_rows = first[:, None].expand_as(gradient_rows)

    # sky over floor: how much of each pixel row lies below the floor surface and the line
    floor = packed.floor.float()[:, None]  # (B, 1)
    below_surface = ((row_y[None] - floor) / pixel + 0.5).clamp(0, 1)  # (B, H)
    below_line = ((row_y[None] - floor - vocab.FLOOR_LINE_WIDTH) / pixel + 0.5).clamp(0, 1)
    line_color = second * vocab.FLOOR_LINE_DARKEN
    sky_rows = (
        first[:, None] * (1 - below_surface[..., None])
        + line_color[:, None] * (below_surface - below_line)[..., None]
    )  # (B, H, 3): everything but the floor itself

    rows = torch.where((kind == 0)[:, None, None], solid_rows, gradient_rows)
    rows = torch.where((kind == 1)[:, None, None], sky_rows, rows)
    # one contiguous frame per scene, copied to every frame (a fast, contiguous copy)
    frame = rows[:, :, None, :].expand(-1, -1, image.shape[3], -1).contiguous()  # (B, H, W, 3)
    image.copy_(frame[:, None].expand_as(image))
    is_floor = kind == 1
    if not bool(is_floor.any()):
        return
    # only rows at or below the highest floor surface hold any floor
    first_row = int(((floor.min() - vocab.FLOOR_LINE_WIDTH) * pixels_per_unit).floor().clamp(min=0))
    weight = (below_line * is_floor[:, None])[:, None, first_row:, None, None]  # (B, 1, h, 1, 1)
    tiles = _floor_tiles(camera, second, image.shape[3], pixels_per_unit)  # (B, T, W, 3)
    image[:, :, first_row:] += weight * tiles[:, :, None]


def _floor_tiles(camera: Tensor, floor_color: Tensor, width: int, pixels_per_unit: float) -> Tensor:
    """The floor's colour along x: tiles alternately a little lighter and darker.

    The square wave is box-filtered over each pixel (the difference of its integral, a triangle
    wave, across the pixel), so the tile edges are anti-aliased and move smoothly in a pan.
    """
    column_x = (torch.arange(width, device=camera.device) + 0.5) / pixels_per_unit  # (W,)
    world_x = column_x[None, None, :] + camera[..., None].float()  # (B, T, W)
    u = world_x / vocab.FLOOR_TILE_WIDTH
    half = 0.5 / pixels_per_unit / vocab.FLOOR_TILE_WIDTH

    def integral(v: Tensor) -> Tensor:
        return 1 - (torch.remainder(v, 2.0) - 1).abs()

    square = (integral(u + half) - integral(u - half)) / (2 * half)  # (B, T, W) in [-1, 1]
    return floor_color[:, None, None, :] + vocab.FLOOR_TILE_CONTRAST * square[..., None]


def _rgb(name: str) -> list[float]:
    return [float(c) for c in vocab.COLORS[name]]


# ---- objects ---------------------------------------------------------------------------------


def _draw_objects(
    canvas: Tensor,
    shape: torch.Size,
    packed: physics.PackedScenes,
    tracks: physics.Tracks,
    rank: int,
    pixels_per_unit: float,
) -> None:
    """Blend, in every scene, the object that is `rank`-th from the back into the canvas."""
    batch = shape[0]
    # per scene, which slot is drawn at this rank: higher layers first, then spec order
    key = -packed.layer * packed.slots + torch.arange(packed.slots, device=packed.layer.device)
    key = torch.where(packed.active, key, key.min() - packed.slots - 1)  # empty slots first
    slot = key.argsort(dim=1)[:, rank]  # (B,)
    scenes = torch.arange(batch, device=slot.device)
    active = packed.active[scenes, slot]
    if not bool(active.any()):
        return
    radius_px = (packed.radius[scenes, slot] * pixels_per_unit).float()  # (B,)
    scale = tracks.scale[scenes, slot].float()  # (B, T)
    shape_code = packed.shape[scenes, slot]

    # each scene's object is drawn in a square window of 2 * reach + 1 pixels around it, where
    # reach clears its outline by a pixel in every frame; reaches are rounded up to a multiple
    # of 4 so that objects of similar sizes share a window and are drawn together
    outer = torch.tensor([geometry(n).outer for n in vocab.SHAPES], device=slot.device)
    extent = (outer[shape_code][:, None] * radius_px[:, None] * scale).amax(dim=1)  # (B,)
    reach = (torch.ceil(extent).long() + 1 + 3) // 4 * 4
    for size in sorted(set(reach[active].tolist())):
        group = scenes[active & (reach == size)]  # (G,) scenes whose windows have this reach
        _blend(
            canvas,
            shape,
            group,
            x_px=(tracks.x[group, slot[group]] * pixels_per_unit).float(),  # (G, T)
            y_px=(tracks.y[group, slot[group]] * pixels_per_unit).float(),
            radius_px=radius_px[group][:, None] * scale[group],
            angle=tracks.angle[group, slot[group]].float(),
            shape_code=shape_code[group],
            color=packed.color[group, slot[group]],  # (G, 3)
            reach=size,
        )


def _blend(
    canvas: Tensor,
    shape: torch.Size,
    group: Tensor,
    x_px: Tensor,
    y_px: Tensor,
    radius_px: Tensor,
    angle: Tensor,
    shape_code: Tensor,
    color: Tensor,
    reach: int,
) -> None:
    """Blend one object per scene of `group` (G,) into the canvas, each through a window of
    2 * reach + 1 pixels around its centre. Positions, radii and angles are (G, T)."""
    _, frames, height, width, _ = shape
    device = group.device
    offsets = torch.arange(-reach, reach + 1, device=device)  # (S,)
    cols = torch.floor(x_px).long()[..., None] + offsets  # (G, T, S)
    rows = torch.floor(y_px).long()[..., None] + offsets
    dx = cols.float() + 0.5 - x_px[..., None]  # (G, T, S) pixel centre minus object centre
    dy = rows.float() + 0.5 - y_px[..., None]

    window = len(offsets)
    alpha = torch.zeros((len(group), frames, window, window), device=device)
    for code, name in enumerate(vocab.SHAPES):
        chosen = shape_code == code
        if not bool(chosen.any()):
            continue
        alpha[chosen] = coverage(
            name,
            dx[chosen][:, :, None, :],  # (g, T, 1, S)
            dy[chosen][:, :, :, None],  # (g, T, S, 1)
            radius_px[chosen][..., None, None],
            angle[chosen][..., None, None],
        )

    # only covered pixels inside the frame change: each gets exactly one addition, so
    # `index_add_` is deterministic on CPU and CUDA
    row_inside = (rows >= 0) & (rows < height)  # (G, T, S)
    col_inside = (cols >= 0) & (cols < width)
    covered = (alpha > 0) & row_inside[..., :, None] & col_inside[..., None, :]  # (G, T, S, S)
    g, t, i, j = covered.nonzero(as_tuple=True)
    frame_index = group[g] * frames + t
    flat = (frame_index * height + rows[g, t, i]) * width + cols[g, t, j]  # (K,)
    under = canvas.index_select(0, flat)  # (K, 3)
    change = (color[g] - under) * alpha[g, t, i, j][:, None]
    canvas.index_add_(0, flat, change)
