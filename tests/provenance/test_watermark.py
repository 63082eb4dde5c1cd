"""The invisible watermark: round trips, quality, the attacks it must survive, what it must not
detect, the visible badge, and every bad input."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kinetoscope.errors import KinetoscopeError
from kinetoscope.io.video import Video, read_video, write_video
from kinetoscope.provenance import watermark as wm
from kinetoscope.provenance.watermark import (
    FALSE_ALARM_BOUND,
    PAYLOAD_BITS,
    THRESHOLDS,
    WatermarkError,
    add_visible_mark,
    detect_watermark,
    embed_watermark,
    payload_for,
)
from kinetoscope.world.render import render
from kinetoscope.world.sampler import sample_scene

PAYLOAD = payload_for("generation 0001")

# ---------------------------------------------------------------------------------------------
# Helpers


@pytest.fixture(scope="module")
def clip() -> torch.Tensor:
    """A physics-world clip, 2 s at 16 fps, 224x128 (16:9): flat backgrounds, moving shapes."""
    scene = sample_scene(4, aspect=16 / 9, seconds=2.0)
    return render(scene, 224, 128, 16).frames  # (33, 128, 224, 3) uint8


@pytest.fixture(scope="module")
def marked(clip: torch.Tensor) -> torch.Tensor:
    return embed_watermark(clip, PAYLOAD)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.float() - b.float()).square().mean().item()
    return 10 * math.log10(255**2 / mse)


def resize(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(T, H, W, 3) uint8 resized with bilinear antialiasing, as video tools do."""
    pixels = frames.permute(0, 3, 1, 2).float()
    resized = F.interpolate(pixels, size=(height, width), mode="bilinear", antialias=True)
    return resized.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def assert_reads(frames: torch.Tensor, payload: int = PAYLOAD) -> wm.WatermarkReading:
    reading = detect_watermark(frames)
    assert reading.detected, f"not detected: score {reading.score:.2f} ({reading.search})"
    assert reading.payload == payload
    return reading


# ---------------------------------------------------------------------------------------------
# Round trip and quality


def test_round_trip_recovers_the_payload(marked):
    reading = assert_reads(marked)
    assert reading.scale == 1.0
    assert reading.bit_accuracy == 1.0
    assert reading.confidence >= 1 - FALSE_ALARM_BOUND
    assert reading.best_payload == PAYLOAD


def test_every_frame_keeps_a_psnr_of_40_db(clip, marked):
    assert marked.shape == clip.shape and marked.dtype == torch.uint8
    worst = min(psnr(m, c) for m, c in zip(marked, clip, strict=True))
    assert worst >= 40.0


def test_only_luma_changes(clip, marked):
    """The same change is added to R, G and B (away from clipping), so chroma stays put."""
    change = marked.int() - clip.int()  # (T, H, W, 3)
    inside = ((clip > 20) & (clip < 235)).all(-1)  # pixels no channel could clip at
    assert torch.equal(change[..., 0][inside], change[..., 1][inside])
    assert torch.equal(change[..., 0][inside], change[..., 2][inside])
    assert change.abs().sum() > 0


def test_flat_areas_get_less_than_textured_ones():
    """Left half flat grey, right half noise: the mark is weaker on the flat half."""
    generator = torch.Generator().manual_seed(0)
    frames = torch.full((4, 128, 256, 3), 128, dtype=torch.uint8)
    noise = torch.randint(60, 196, (4, 128, 128, 1), generator=generator, dtype=torch.uint8)
    frames[:, :, 128:] = noise.expand(-1, -1, -1, 3)
    change = embed_watermark(frames, PAYLOAD).float() - frames.float()
    flat = change[:, 8:-8, 8:120].square().mean().sqrt()
    textured = change[:, 8:-8, 136:-8].square().mean().sqrt()
    assert flat < 0.5 * textured


def test_strength_sets_the_size_of_the_change(clip):
    weak = embed_watermark(clip, PAYLOAD, strength=1.0).float() - clip.float()
    strong = embed_watermark(clip, PAYLOAD, strength=4.0).float() - clip.float()
    assert weak.square().mean((1, 2, 3)).sqrt().max() <= 1.0 + 0.3  # rounding adds a little
    assert strong.square().mean() > 4 * weak.square().mean()


def test_saturated_pixels_are_clipped_not_wrapped():
    """White and black frames can only move one way: no value wraps around 0..255."""
    frames = torch.zeros((2, 64, 64, 3), dtype=torch.uint8)
    frames[:, :, 32:] = 255
    marked = embed_watermark(frames, PAYLOAD, strength=4.0).int()
    assert (marked[:, :, :32] >= 0).all() and (marked[:, :, :32] <= 40).all()
    assert (marked[:, :, 32:] >= 215).all()
    assert (marked[:, :, :32] > 0).any() and (marked[:, :, 32:] < 255).any()


def test_the_mark_depends_on_key_and_payload(clip):
    a = embed_watermark(clip, PAYLOAD)
    assert torch.equal(a, embed_watermark(clip, PAYLOAD))  # deterministic
    assert not torch.equal(a, embed_watermark(clip, PAYLOAD ^ 1))
    assert not torch.equal(a, embed_watermark(clip, PAYLOAD, key="another key"))


# ---------------------------------------------------------------------------------------------
# Attacks it survives


def test_survives_h264_at_crf_28(marked, tmp_path):
    path = write_video(tmp_path / "marked.mp4", Video(marked, 16.0), crf=28)
    assert_reads(read_video(path).frames)


def test_survives_a_half_downscale(marked):
    reading = assert_reads(resize(marked, 64, 112))
    assert reading.scale == pytest.approx(0.5, abs=0.02)


def test_survives_a_ten_percent_crop_at_any_offset(marked):
    for top, left in ((0, 0), (7, 19), (13, 22)):
        assert_reads(marked[:, top : top + 115, left : left + 202])


def test_survives_a_crop_resized_back(marked):
    cropped = marked[:, 6 : 6 + 115, 11 : 11 + 202]
    reading = assert_reads(resize(cropped, 128, 224))
    assert reading.scale == pytest.approx(224 / 202, abs=0.02)


def test_survives_an_excerpt(marked):
    assert_reads(marked[5:21])  # 1 s from frame 5
    assert_reads(marked[17:18])  # a single frame


# ---------------------------------------------------------------------------------------------
# What it must not detect


def test_unmarked_videos_are_not_detected(clip):
    generator = torch.Generator().manual_seed(1)
    noise = torch.randint(0, 256, (8, 96, 96, 3), generator=generator, dtype=torch.uint8)
    flat = torch.full((4, 64, 64, 3), 90, dtype=torch.uint8)
    for frames in (clip, noise, flat):
        reading = detect_watermark(frames)
        assert not reading.detected and reading.payload is None
        assert reading.score < THRESHOLDS["in place"]
        assert 0.0 <= reading.confidence < 0.5


def test_a_wrong_key_does_not_detect(marked):
    for key in ("a deployment's secret", "kinetoscope/public-watermark/v2"):
        reading = detect_watermark(marked, key=key)
        assert not reading.detected and reading.payload is None


def test_a_secret_key_round_trips(clip):
    marked = embed_watermark(clip, PAYLOAD, key="a deployment's secret")
    reading = detect_watermark(marked, key="a deployment's secret")
    assert reading.detected and reading.payload == PAYLOAD
    assert not detect_watermark(marked).detected  # the public key does not see it


def test_the_thresholds_share_the_false_alarm_bound():
    """Each search's hypotheses times the Gaussian tail at its threshold, summed: the bound."""
    shifts, payloads = (2 * wm.TILE) ** 2, 2**PAYLOAD_BITS
    sizes = {"in place": 1, "cropped": shifts, "rescaled": len(wm.SCALES) * shifts}
    total = sum(sizes[name] * payloads * math.exp(-(t**2) / 2) for name, t in THRESHOLDS.items())
    assert total == pytest.approx(FALSE_ALARM_BOUND)
    assert THRESHOLDS["in place"] < THRESHOLDS["cropped"] < THRESHOLDS["rescaled"]


def test_the_search_says_what_happened_to_the_video(marked):
    assert detect_watermark(marked).search == "in place"
    assert detect_watermark(marked[:, 5:, 9:]).search == "cropped"
    assert detect_watermark(resize(marked, 64, 112)).search == "rescaled"


# ---------------------------------------------------------------------------------------------
# Payloads and the error-correcting code


def test_payload_for_is_a_stable_hash_of_the_id():
    assert payload_for("abc") == payload_for("abc")
    assert payload_for("abc") != payload_for("abd")
    values = [payload_for(f"id {i}") for i in range(200)]
    assert all(0 <= v < 2**PAYLOAD_BITS for v in values)
    assert max(values) >= 2 ** (PAYLOAD_BITS - 1)  # the top bit is used


def test_the_code_corrects_channel_errors():
    codeword = wm._encode(PAYLOAD)  # (76,) of 0 / 1
    soft = 1.0 - 2.0 * codeword
    soft[[3, 20, 41, 60]] *= -1  # four flipped channel bits, well apart
    assert wm._viterbi(soft) == PAYLOAD
    assert wm._viterbi(1.0 - 2.0 * wm._encode(0)) == 0
    assert wm._viterbi(1.0 - 2.0 * wm._encode(2**PAYLOAD_BITS - 1)) == 2**PAYLOAD_BITS - 1


# ---------------------------------------------------------------------------------------------
# The visible badge


@pytest.mark.parametrize("corner", ["top-left", "top-right", "bottom-left", "bottom-right"])
def test_visible_mark_sits_in_its_corner(clip, corner):
    badged = add_visible_mark(clip, corner=corner)
    changed = (badged != clip).any(-1).any(0)  # (H, W): pixels changed in some frame
    rows, cols = torch.nonzero(changed, as_tuple=True)
    height, width = clip.shape[1:3]
    assert len(rows) > 0
    assert (rows.max() < height // 3) if corner.startswith("top") else (rows.min() > height // 2)
    assert (cols.max() < width // 3) if corner.endswith("left") else (cols.min() > width // 2)


def test_visible_mark_opacity_blends():
    frames = torch.full((1, 64, 64, 3), 128, dtype=torch.uint8)
    faint = add_visible_mark(frames, opacity=0.2).int() - 128
    solid = add_visible_mark(frames, opacity=1.0).int()
    assert set(solid.unique().tolist()) == {0, 128, 255}  # black box, white letters, untouched
    assert faint.abs().max() < 0.3 * 128
    assert torch.equal(add_visible_mark(frames), add_visible_mark(frames))


def test_visible_mark_leaves_the_invisible_one_readable(marked):
    assert_reads(add_visible_mark(marked))


# ---------------------------------------------------------------------------------------------
# Bad input


def bad_frames() -> list[tuple[object, str]]:
    return [
        (np.zeros((2, 64, 64, 3), dtype=np.uint8), "torch.Tensor"),
        (torch.zeros((2, 64, 64, 3)), "uint8"),
        (torch.zeros((64, 64, 3), dtype=torch.uint8), "shape"),
        (torch.zeros((2, 64, 64, 4), dtype=torch.uint8), "shape"),
        (torch.zeros((0, 64, 64, 3), dtype=torch.uint8), "no frames"),
        (torch.zeros((2, 16, 64, 3), dtype=torch.uint8), "at least 32"),
    ]


@pytest.mark.parametrize(("frames", "message"), bad_frames())
def test_bad_frames_raise(frames, message):
    for call in (
        lambda: embed_watermark(frames, PAYLOAD),
        lambda: detect_watermark(frames),
        lambda: add_visible_mark(frames),
    ):
        with pytest.raises(WatermarkError, match=message):
            call()


@pytest.mark.parametrize(
    ("payload", "message"),
    [(-1, "0..2"), (2**PAYLOAD_BITS, "0..2"), (True, "int"), (1.0, "int"), ("7", "int")],
)
def test_bad_payloads_raise(payload, message):
    frames = torch.zeros((1, 64, 64, 3), dtype=torch.uint8)
    with pytest.raises(WatermarkError, match=message):
        embed_watermark(frames, payload)


@pytest.mark.parametrize("key", ["", None, 7, b"bytes"])
def test_bad_keys_raise(key):
    frames = torch.zeros((1, 64, 64, 3), dtype=torch.uint8)
    with pytest.raises(WatermarkError, match="key"):
        embed_watermark(frames, PAYLOAD, key=key)
    with pytest.raises(WatermarkError, match="key"):
        detect_watermark(frames, key=key)


@pytest.mark.parametrize("strength", [0, -1.0, float("nan"), float("inf"), 100.0, True, "2"])
def test_bad_strengths_raise(strength):
    frames = torch.zeros((1, 64, 64, 3), dtype=torch.uint8)
    with pytest.raises(WatermarkError, match="strength"):
        embed_watermark(frames, PAYLOAD, strength=strength)


def test_bad_badge_arguments_raise():
    frames = torch.zeros((1, 64, 64, 3), dtype=torch.uint8)
    with pytest.raises(WatermarkError, match="corner"):
        add_visible_mark(frames, corner="centre")
    for opacity in (0, -0.5, 1.5, float("nan"), True):
        with pytest.raises(WatermarkError, match="opacity"):
            add_visible_mark(frames, opacity=opacity)


def test_bad_ids_raise():
    for generation_id in ("", None, 12):
        with pytest.raises(WatermarkError, match="generation_id"):
            payload_for(generation_id)


def test_errors_are_value_errors_and_kinetoscope_errors():
    assert issubclass(WatermarkError, ValueError)
    assert issubclass(WatermarkError, KinetoscopeError)
