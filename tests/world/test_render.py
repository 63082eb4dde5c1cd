"""The renderer: shapes and dtypes, determinism, anti-aliasing, layers, exact colours, the
floor's tiles under a camera pan, clipping at the frame's edges, and argument checks."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from kinetoscope.errors import SpecError
from kinetoscope.io.video import Video
from kinetoscope.world import vocab
from kinetoscope.world.render import render, render_batch
from kinetoscope.world.spec import Background, ObjectSpec, SceneSpec

BLACK = Background(kind="solid", color="black")


def _rgb(name: str) -> torch.Tensor:
    return torch.tensor(vocab.COLORS[name], dtype=torch.uint8)


def _scene(*objects: ObjectSpec, seconds: float = 0.5, **fields: object) -> SceneSpec:
    return SceneSpec(objects=objects, seconds=seconds, **fields)


def _varied() -> list[SceneSpec]:
    """Scenes that use every shape, motion, background and a spin, growth, pan and collision."""
    floor = Background(kind="sky_floor", color="lavender", color2="dark green", floor=0.75)
    gradient = Background(kind="gradient", color="navy", color2="purple")
    return [
        _scene(
            ObjectSpec(shape="star", color="yellow", motion="orbit", orbit_radius=0.2, spin=2.0),
            ObjectSpec(shape="heart", color="red", x=0.3, motion="fall", velocity=(0.4, 0.0)),
            background=floor,
            camera_pan=0.3,
            seconds=1.0,
        ),
        _scene(
            ObjectSpec(
                shape="hexagon",
                color="cyan",
                size="large",
                x=0.2,
                motion="linear",
                velocity=(0.6, 0.0),
            ),
            ObjectSpec(shape="cross", color="white", x=0.8, motion="linear", velocity=(-0.5, 0.0)),
            ObjectSpec(shape="triangle", color="orange", y=0.2, motion="bounce", velocity=(1, 1)),
            ObjectSpec(shape="diamond", color="pink", size="small", growth=0.8, layer=1),
            background=gradient,
            collision=(0, 1),
            seconds=1.0,
        ),
        _scene(
            ObjectSpec(
                shape="square", color="brown", x=0.7, y=0.7, motion="throw", velocity=(-0.5, -1.0)
            ),
            ObjectSpec(shape="circle", color="green", size="small", x=0.1, y=0.1, spin=-3.0),
            background=Background(kind="solid", color="beige"),
            seconds=1.0,
        ),
    ]


# ---- output format ---------------------------------------------------------------------------


@pytest.mark.parametrize(("width", "height"), [(32, 32), (64, 36), (36, 64), (33, 17), (2, 3)])
def test_output_is_uint8_batch_time_height_width_rgb(width, height):
    scenes = _varied()
    frames = render_batch(scenes, width, height, fps=8)
    assert frames.dtype == torch.uint8
    assert frames.shape == (3, 9, height, width, 3)  # 1 s at 8 fps: 9 frames
    assert frames.is_contiguous()


def test_num_frames_overrides_the_duration():
    frames = render_batch(_varied(), 16, 16, fps=8, num_frames=4)
    assert frames.shape == (3, 4, 16, 16, 3)
    longer = render_batch(_varied()[:1], 16, 16, fps=8, num_frames=20)  # past its 1 s
    assert longer.shape == (1, 20, 16, 16, 3)
    assert torch.equal(longer[:, :4], frames[:1])


def test_render_returns_a_video():
    video = render(_varied()[0], 24, 16, fps=12)
    assert isinstance(video, Video)
    assert video.fps == 12.0 and video.num_frames == 13  # 1 s at 12 fps
    assert video.frames.shape == (13, 16, 24, 3) and video.frames.dtype == torch.uint8
    assert torch.equal(video.frames, render_batch(_varied()[:1], 24, 16, 12)[0])


@pytest.mark.parametrize(
    ("width", "height", "fps", "names"),
    [
        (0, 16, 8, "width"),
        (16, 1, 8, "height"),
        (16.0, 16, 8, "width"),
        (16, 9000, 8, "height"),
        (16, 16, 0, "fps"),
        (16, 16, -4, "fps"),
        (16, 16, math.nan, "fps"),
        (16, 16, 1000, "fps"),
    ],
)
def test_invalid_size_or_fps_raises_spec_error(width, height, fps, names):
    with pytest.raises(SpecError, match=names):
        render_batch(_varied()[:1], width, height, fps)


def test_an_invalid_scene_raises_before_rendering():
    bad = _scene(ObjectSpec(shape="circle", color="red", motion="orbit"))  # no radius
    with pytest.raises(SpecError, match="orbit_radius"):
        render_batch([_varied()[0], bad], 16, 16, 8)


# ---- determinism ------------------------------------------------------------------------------


def test_rendering_is_deterministic_and_independent_of_the_batch():
    scenes = _varied()
    once = render_batch(scenes, 48, 27, fps=10)
    assert torch.equal(once, render_batch(scenes, 48, 27, fps=10))
    for i, scene in enumerate(scenes):
        assert torch.equal(render_batch([scene], 48, 27, fps=10)[0], once[i])
    # in another order, next to other company
    swapped = render_batch([scenes[2], scenes[0]], 48, 27, fps=10)
    assert torch.equal(swapped[0], once[2]) and torch.equal(swapped[1], once[0])


# ---- pixels: anti-aliasing, area, colours --------------------------------------------------


def test_a_still_circle_covers_pi_r_squared_pixels_with_soft_edges():
    width, height = 96, 54  # the radius is in short sides: 54 px here
    circle = ObjectSpec(shape="circle", color="white", size="large", x=0.47, y=0.52)
    frame = render_batch([_scene(circle, background=BLACK)], width, height, 4)[0, 0]
    black, white = vocab.COLORS["black"][1], vocab.COLORS["white"][1]
    covered = (frame[..., 1].double() - black) / (white - black)  # green: 0 outside, 1 inside
    radius = vocab.SIZES["large"] * height
    assert float(covered.sum()) == pytest.approx(math.pi * radius**2, rel=0.01)
    # edge pixels take values between the two colours; interior and background are exact
    edge = (covered > 0.05) & (covered < 0.95)
    assert int(edge.sum()) > 2 * math.pi * radius * 0.5
    assert int(((covered > 0) & (covered < 1)).sum()) < 2 * math.pi * radius * 2.5
    assert torch.equal(frame[27, 45], _rgb("white"))
    assert torch.equal(frame[0, 0], _rgb("black"))


@pytest.mark.parametrize("shape", vocab.SHAPES)
def test_every_shape_covers_the_same_area(shape):
    obj = ObjectSpec(shape=shape, color="white", size="large")
    frame = render_batch([_scene(obj, background=BLACK)], 64, 64, 4)[0, 0]
    black, white = vocab.COLORS["black"][1], vocab.COLORS["white"][1]
    covered = (frame[..., 1].double() - black) / (white - black)
    radius = vocab.SIZES["large"] * 64
    assert float(covered.sum()) == pytest.approx(math.pi * radius**2, rel=0.01)


def test_objects_and_backgrounds_have_exact_colours():
    for color in vocab.OBJECT_COLORS:
        for background in ("white", "navy"):
            obj = ObjectSpec(shape="square", color=color, size="large")
            scene = _scene(obj, background=Background(kind="solid", color=background))
            frame = render_batch([scene], 40, 40, 4)[0, 0]
            assert torch.equal(frame[20, 20], _rgb(color))  # the centre of the square
            assert torch.equal(frame[1, 1], _rgb(background))
            assert torch.equal(frame[38, 20], _rgb(background))


def test_the_lower_layer_is_drawn_on_top():
    red = ObjectSpec(shape="circle", color="red", size="large", x=0.45)
    blue = ObjectSpec(shape="square", color="blue", size="medium", x=0.55)

    def centre_colour(*objects: ObjectSpec) -> torch.Tensor:
        return render_batch([_scene(*objects, background=BLACK)], 40, 40, 4)[0, 0, 20, 20]

    # layer 0 is nearest the camera, whatever the order in the spec
    assert torch.equal(centre_colour(red, replace(blue, layer=1)), _rgb("red"))
    front_blue, back_red = blue, replace(red, layer=2)
    assert torch.equal(centre_colour(front_blue, back_red), _rgb("blue"))
    assert torch.equal(centre_colour(back_red, front_blue), _rgb("blue"))
    # on one layer, later objects are drawn over earlier ones
    assert torch.equal(centre_colour(red, blue), _rgb("blue"))
    assert torch.equal(centre_colour(blue, red), _rgb("red"))


def test_gradient_runs_row_by_row_from_top_to_bottom_colour():
    top, bottom = "navy", "purple"
    obj = ObjectSpec(shape="circle", color="red", size="small", x=1.5)  # off screen
    gradient = Background(kind="gradient", color=top, color2=bottom)
    for width, height in ((20, 40), (40, 20)):
        frame = render_batch([_scene(obj, background=gradient)], width, height, 4)[0, 0]
        assert bool((frame == frame[:, :1]).all())  # every row is one colour
        mix = (torch.arange(height, dtype=torch.float64) + 0.5) / height
        a = torch.tensor(vocab.COLORS[top], dtype=torch.float64)
        b = torch.tensor(vocab.COLORS[bottom], dtype=torch.float64)
        expected = a * (1 - mix[:, None]) + b * mix[:, None]  # (H, 3)
        assert float((frame[:, 0].double() - expected).abs().max()) <= 0.5 + 1e-3
        # the end rows are half a row from the pure colours
        assert float((frame[0, 0].double() - a).abs().max()) <= abs(b - a).max() / height


def test_sky_floor_line_and_tiles():
    sky, ground = "pale blue", "tan"
    floor = Background(kind="sky_floor", color=sky, color2=ground, floor=0.75)
    obj = ObjectSpec(shape="circle", color="red", size="small", x=-0.5)  # off screen
    frame = render_batch([_scene(obj, background=floor)], 128, 128, 4)[0, 0]  # floor at row 96
    assert bool((frame[:96] == _rgb(sky)).all())
    line = torch.tensor(vocab.COLORS[ground], dtype=torch.float64) * vocab.FLOOR_LINE_DARKEN
    assert bool((frame[96] == line.round().to(torch.uint8)).all())  # 1.5 px: one full row
    # below the line the floor alternates lighter and darker tiles, a quarter short side wide
    floor_rows = frame[98:].int() - torch.tensor(vocab.COLORS[ground])
    contrast = vocab.FLOOR_TILE_CONTRAST
    assert int(floor_rows.abs().max()) == contrast
    assert bool((floor_rows == floor_rows[:1]).all())  # the same in every row
    light = (floor_rows[0, :, 0] == contrast).nonzero().flatten().tolist()
    dark = (floor_rows[0, :, 0] == -contrast).nonzero().flatten().tolist()
    tile = round(vocab.FLOOR_TILE_WIDTH * 128)  # 32 px
    assert light == list(range(0, tile)) + list(range(2 * tile, 3 * tile))
    assert dark == list(range(tile, 2 * tile)) + list(range(3 * tile, 4 * tile))
    # the line is darker than the floor, which is (on average) the floor colour
    assert float(frame[96].double().mean()) < float(frame[100:].double().mean())


def _edge_positions(row: torch.Tensor, light: float, dark: float) -> torch.Tensor:
    """Sub-pixel x of the light-to-dark tile edges in a floor row (one channel, float).

    Each pixel is the box-filtered tiles, so the light area left of an edge, summed over the
    pixels around it, says exactly where the edge is."""
    level = (light + dark) / 2
    above = row > level
    falls = torch.nonzero(above[:-1] & ~above[1:]).flatten()
    falls = falls[(falls >= 4) & (falls < len(row) - 4)]
    window = falls[:, None] + torch.arange(-4, 4)  # (E, 8): light pixels, edge, dark pixels
    light_area = ((row[window] - dark) / (light - dark)).sum(dim=1)
    return (falls - 4).double() + light_area


@pytest.mark.parametrize("pan", [0.25, -0.1875, 0.05])
def test_camera_pan_moves_the_floor_tiles(pan):
    floor = Background(kind="sky_floor", color="peach", color2="dark gray", floor=0.5)
    obj = ObjectSpec(shape="circle", color="red", size="small", x=2.0)  # off screen
    scene = _scene(obj, background=floor, camera_pan=pan, seconds=1.0)
    frames = render_batch([scene], 128, 64, 16)[0]  # (T, H, W, 3): 64 px to a short side
    rows = frames[:, 60, :, 0].double()  # a floor row in every frame
    light = vocab.COLORS["dark gray"][0] + vocab.FLOOR_TILE_CONTRAST
    dark = vocab.COLORS["dark gray"][0] - vocab.FLOOR_TILE_CONTRAST
    start = _edge_positions(rows[0], light, dark)
    for k in (1, 3, 8, 16):
        shift = pan * (k / 16) * 64  # pixels the camera moved; the floor moves the other way
        moved = _edge_positions(rows[k], light, dark)
        expected = start - shift
        # compare each edge with the moved one nearest its expected position
        nearest = (moved[None, :] - expected[:, None]).abs().min(dim=1).values
        inside = (expected > 5) & (expected < 123)
        assert int(inside.sum()) >= 2
        assert float(nearest[inside].max()) < 0.05, (k, shift)
    if pan == 0.25:  # whole-pixel steps of 1 px per frame: exactly the same pixels, shifted
        assert torch.equal(frames[8, 33:, : 128 - 8], frames[0, 33:, 8:])
        assert not torch.equal(frames[8, 33:], frames[0, 33:])


# ---- clipping at the frame's edges ---------------------------------------------------------


def test_an_object_outside_the_frame_leaves_it_untouched():
    background = Background(kind="solid", color="beige")
    for x, y in ((1.5, 0.5), (-0.4, 0.5), (0.5, 1.9), (0.5, -0.9), (2.0, 2.0)):
        obj = ObjectSpec(shape="star", color="black", size="large", x=x, y=y)
        frames = render_batch([_scene(obj, background=background)], 30, 20, 4)[0]
        assert bool((frames == _rgb("beige")).all()), (x, y)


def test_an_object_across_an_edge_is_clipped_not_wrapped():
    background = Background(kind="solid", color="white")
    obj = ObjectSpec(shape="square", color="black", size="large", x=0.0, y=0.0)
    frame = render_batch([_scene(obj, background=background)], 40, 30, 4)[0, 0]
    half = math.sqrt(math.pi) / 2 * 0.135 * 30  # half the square's side in pixels: 3.6
    inside = math.floor(half - 0.5)  # pixel centres fully inside
    assert bool((frame[:inside, :inside] == _rgb("black")).all())
    assert bool((frame[:, 5:] == _rgb("white")).all())  # nothing reappears on the right ...
    assert bool((frame[5:, :] == _rgb("white")).all())  # ... or at the bottom


def test_a_moving_object_leaves_no_trail():
    obj = ObjectSpec(
        shape="circle", color="red", size="small", x=0.2, motion="linear", velocity=(0.6, 0.0)
    )
    frames = render_batch([_scene(obj, background=BLACK, seconds=1.0)], 40, 40, 4)[0]
    red = frames[..., 0] > 100
    columns = [torch.nonzero(red[k].any(dim=0)).flatten() for k in range(len(frames))]
    for k in range(1, len(frames)):
        shift = 0.6 * (k / 4) * 40
        assert float(columns[k].double().mean() - columns[0].double().mean()) == pytest.approx(
            shift, abs=0.6
        )
        assert int(red[k].sum()) == int(red[0].sum())  # the same size in every frame
