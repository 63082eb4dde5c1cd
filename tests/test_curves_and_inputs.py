"""Blend curves, and fitting input images and videos to a clip."""

import pytest
import torch

from kinetoscope.curves import CURVES, CurveError, check_curve, curve_weights
from kinetoscope.inputs import (
    InputAdjustedWarning,
    InputError,
    fit_frames,
    load_input,
    nearest_aspect,
)
from kinetoscope.io.video import Video, write_video


@pytest.mark.parametrize("name", list(CURVES))
def test_named_curves_stay_in_0_1(name):
    weights = curve_weights(name, 33)
    assert weights.shape == (33,) and float(weights.min()) >= 0 and float(weights.max()) <= 1


def test_rising_curves_go_from_a_to_b():
    for name in ("linear", "ease-in-out", "ease-in", "ease-out"):
        weights = curve_weights(name, 17)
        assert weights[0] == 0 and weights[-1] == 1
        assert bool((weights[1:] >= weights[:-1]).all())
    assert curve_weights("ease-in", 3)[1] < 0.5 < curve_weights("ease-out", 3)[1]


def test_points_are_joined_by_lines_and_held_flat():
    weights = curve_weights([[0.25, 0.0], [0.75, 1.0]], 5)  # at 0, .25, .5, .75, 1
    assert torch.allclose(weights, torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]))


@pytest.mark.parametrize(
    ("curve", "message"),
    [
        ("wobbly", "unknown curve 'wobbly'"),
        ([], "a curve is a name or a list"),
        ([[0, 0], [0.5]], r"each curve point is \[time, weight\]"),
        ([[0, 2]], r"lie in \[0, 1\]"),
        ([[0.5, 0], [0.2, 1]], "times must increase"),
        ([[0, float("nan")]], "two numbers"),
    ],
)
def test_bad_curves_are_named(curve, message):
    with pytest.raises(CurveError, match=message):
        check_curve(curve)


def test_nearest_aspect():
    assert nearest_aspect(128, 128) == "1:1"
    assert nearest_aspect(720, 1280) == "16:9"
    assert nearest_aspect(1024, 1280) == "1:1"  # 5:4 is closer to square than to 16:9
    assert nearest_aspect(1920, 1080) == "9:16"


def test_fit_crops_the_centre_and_resamples_time():
    frames = torch.zeros(32, 40, 80, 3, dtype=torch.uint8)  # 2:1 at 32 fps
    frames[:, :, 20:60] = 255  # a white centre square, black sides
    with pytest.warns(InputAdjustedWarning, match="resampled from 32 to 16 fps and resized"):
        fitted = fit_frames(Video(frames, 32), 16, 16, 16, "video")
    assert tuple(fitted.shape) == (16, 16, 16, 3)  # 1 s at 16 fps
    assert int(fitted.min()) == 255  # the sides were cropped away, not squeezed in


def test_inputs_that_cannot_be_used(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_input(tmp_path / "missing.png", "image", True)
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(InputError, match="cannot be read"):
        load_input(tmp_path / "text.png", "image", True)
    write_video(tmp_path / "tiny.mp4", Video(torch.zeros(5, 8, 8, 3, dtype=torch.uint8), 16))
    with pytest.raises(InputError, match="at least 16 pixels"):
        load_input(tmp_path / "tiny.mp4", "video", True)


def test_a_file_input_is_recorded_with_its_hash(tmp_path):
    path = tmp_path / "clip.mp4"
    write_video(path, Video(torch.zeros(5, 32, 32, 3, dtype=torch.uint8), 16))
    loaded = load_input(path, "video", True)
    record = loaded.to_record()
    assert record["path"] == str(path.resolve()) and len(record["sha256"]) == 64
    assert record["rights_attested"] is True and record["frames"] == 5
