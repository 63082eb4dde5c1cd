"""Render physics-world scenes to uint8 frames, batched and vectorised in torch (CPU or CUDA).

Each frame is the background (solid, gradient, or sky over a tiled floor) with the objects
composited back to front. An object is drawn only inside a square window around it: its
signed distance gives each pixel's coverage (a one-pixel ramp, so edges are anti-aliased), and
the window's pixels are blended into the canvas through flat indices (`index_add_` of each
pixel's change, which is deterministic on CPU and CUDA because every pixel gets at most one
non-zero change per object).
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
    packed = physics.pack(scenes, width / height, device=device)
    tracks = physics.simulate(packed, times)
    pixels_per_unit = float(min(width, height))

    canvas = torch.empty((len(scenes) * frames * height * width, 3), device=device)
    image = canvas.view(len(scenes), frames, height, width, 3)
    _background(image, scenes, packed, tracks.camera, pixels_per_unit)
    for rank in range(packed.slots):  # back to front
        _draw_objects(canvas, image.shape, packed, tracks, rank, pixels_per_unit)
    return image.round_().clamp_(0, 255).to(torch.uint8)


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
    image.copy_(rows[:, None, :, None, :].expand_as(image))
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
    batch, frames, height, width, _ = shape
    # per scene, which slot is drawn at this rank: higher layers first, then spec order
    key = -packed.layer * packed.slots + torch.arange(packed.slots, device=packed.layer.device)
    key = torch.where(packed.active, key, key.min() - packed.slots - 1)  # empty slots first
    slot = key.argsort(dim=1)[:, rank]  # (B,)
    scenes = torch.arange(batch, device=slot.device)
    active = packed.active[scenes, slot]
    if not bool(active.any()):
        return
    radius_px = (packed.radius[scenes, slot] * pixels_per_unit).float()  # (B,)
    x_px = (tracks.x[scenes, slot] * pixels_per_unit).float()  # (B, T)
    y_px = (tracks.y[scenes, slot] * pixels_per_unit).float()
    angle = tracks.angle[scenes, slot].float()
    scale = tracks.scale[scenes, slot].float()
    color = packed.color[scenes, slot]  # (B, 3)
    shape_code = packed.shape[scenes, slot]

    outer = torch.tensor([geometry(n).outer for n in vocab.SHAPES], device=slot.device)
    extent = (outer[shape_code][:, None] * radius_px[:, None] * scale).max()
    window = 2 * math.ceil(float(extent)) + 3
    offsets = torch.arange(window, device=slot.device) - window // 2  # (S,)
    origin_x = torch.floor(x_px).long()  # (B, T)
    origin_y = torch.floor(y_px).long()
    cols = origin_x[..., None] + offsets  # (B, T, S)
    rows = origin_y[..., None] + offsets
    dx = cols.float() + 0.5 - x_px[..., None]  # (B, T, S) pixel centre minus object centre
    dy = rows.float() + 0.5 - y_px[..., None]

    alpha = torch.zeros((batch, frames, window, window), device=slot.device)
    for code, name in enumerate(vocab.SHAPES):
        chosen = (shape_code == code) & active
        if not bool(chosen.any()):
            continue
        alpha[chosen] = coverage(
            name,
            dx[chosen][:, :, None, :],  # (b, T, 1, S)
            dy[chosen][:, :, :, None],  # (b, T, S, 1)
            (radius_px[chosen][:, None] * scale[chosen])[..., None, None],
            angle[chosen][..., None, None],
        )

    # window pixels outside the frame get zero weight and a clamped (valid) index, so that
    # adding their zero changes nothing; each pixel inside gets exactly one non-zero addition
    row_inside = ((rows >= 0) & (rows < height)).float()  # (B, T, S)
    col_inside = ((cols >= 0) & (cols < width)).float()
    alpha = alpha * row_inside[..., :, None] * col_inside[..., None, :]  # (B, T, S, S)
    frame_index = scenes[:, None] * frames + torch.arange(frames, device=slot.device)  # (B, T)
    row_start = (frame_index[..., None] * height + rows.clamp(0, height - 1)) * width  # (B, T, S)
    flat = (row_start[..., :, None] + cols.clamp(0, width - 1)[..., None, :]).view(-1)
    under = canvas.index_select(0, flat)  # (B*T*S*S, 3)
    change = (color[:, None, None, None, :] - under.view(*alpha.shape, 3)) * alpha[..., None]
    canvas.index_add_(0, flat, change.view(-1, 3))
