"""Reconstruction metrics, exactly, and `kinetoscope eval vae` end to end."""

import json
import math

import numpy as np
import pytest
import torch

from kinetoscope.cli import main
from kinetoscope.errors import KinetoscopeError
from kinetoscope.evaluation import (
    flicker,
    prepare_clip,
    psnr,
    ssim,
    usable_frames,
)
from kinetoscope.io.video import Video, write_video
from kinetoscope.models.vae import VAE_PRESETS, VideoVAE


def _clip(seed=0, shape=(5, 24, 24, 3)):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, shape, generator=generator, dtype=torch.uint8)


# ---- PSNR ------------------------------------------------------------------------------------


def test_psnr_of_a_known_mse():
    original = torch.full((3, 8, 8, 3), 100, dtype=torch.uint8)
    off_by_two = original + 2  # MSE 4 everywhere
    assert psnr(original, off_by_two) == pytest.approx(10 * math.log10(255**2 / 4))
    half = original.clone()
    half[:, :4] += 4  # half the pixels off by 4: MSE 8
    assert psnr(original, half) == pytest.approx(10 * math.log10(255**2 / 8))


def test_psnr_of_identical_clips_is_infinite_and_uses_no_uint8_arithmetic():
    clip = _clip()
    assert psnr(clip, clip.clone()) == math.inf
    black, white = torch.zeros_like(clip), torch.full_like(clip, 255)
    assert psnr(black, white) == pytest.approx(0.0)  # no wrap-around of 0 - 255 in uint8


# ---- SSIM ------------------------------------------------------------------------------------


def test_ssim_of_identical_frames_is_one_and_of_noise_lower():
    clip = _clip(0, (2, 32, 32, 3))
    assert ssim(clip, clip.clone()) == pytest.approx(1.0, abs=1e-12)
    noisy = (clip.int() + torch.randint(-40, 41, clip.shape)).clamp(0, 255).to(torch.uint8)
    unrelated = _clip(1, clip.shape)
    assert ssim(clip, unrelated) < ssim(clip, noisy) < 1.0


def test_ssim_matches_scikit_image_on_luma():
    from skimage.metrics import structural_similarity

    original = _clip(0, (1, 40, 48, 3))
    smooth = torch.nn.functional.avg_pool2d(
        original.permute(0, 3, 1, 2).float(), 3, stride=1, padding=1
    )
    changed = smooth.round().to(torch.uint8).permute(0, 2, 3, 1)
    weights = np.array([0.299, 0.587, 0.114])
    expected = structural_similarity(
        original[0].double().numpy() @ weights,
        changed[0].double().numpy() @ weights,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
    )
    assert ssim(original, changed) == pytest.approx(expected, abs=1e-9)


def test_ssim_works_on_frames_smaller_than_its_window():
    clip = _clip(0, (1, 8, 8, 3))
    assert ssim(clip, clip.clone()) == pytest.approx(1.0)


# ---- flicker ---------------------------------------------------------------------------------


def test_flicker_of_a_static_video_reconstructed_statically_is_zero():
    still = _clip(0, (1, 16, 16, 3)).expand(6, -1, -1, -1).contiguous()
    assert flicker(still, still.clone()) == 0.0
    offset = (still.int() + 10).clamp(max=255).to(torch.uint8)  # wrong, but steadily so
    assert flicker(still, offset) == 0.0


def test_flicker_measures_change_that_the_original_does_not_have():
    still = torch.full((3, 4, 4, 3), 100, dtype=torch.uint8)
    shimmer = still.clone()
    shimmer[1] += 6  # frame 1 jumps up by 6 and back: differences +6, -6 vs 0, 0
    assert flicker(still, shimmer) == pytest.approx(6.0)
    assert flicker(still[:1], shimmer[:1]) is None


def test_metrics_refuse_mismatched_or_float_clips():
    with pytest.raises(KinetoscopeError, match="shape"):
        psnr(_clip(0, (2, 8, 8, 3)), _clip(0, (3, 8, 8, 3)))
    with pytest.raises(KinetoscopeError, match="uint8"):
        ssim(_clip().float(), _clip().float())


# ---- clips -----------------------------------------------------------------------------------


def test_frame_counts_become_one_plus_four_k():
    assert [usable_frames(n, 65) for n in (1, 4, 5, 8, 9, 64, 65, 300)] == [
        1, 1, 5, 5, 9, 61, 65, 65,
    ]  # fmt: skip


def test_clips_are_centre_cropped_and_resized():
    frames = torch.zeros(7, 20, 40, 3, dtype=torch.uint8)
    frames[:, :, 10:30] = 200  # the centre square is bright, the sides dark
    clip = prepare_clip(frames, size=16, count=65)
    assert clip.shape == (5, 16, 16, 3) and clip.dtype == torch.uint8
    assert (clip == 200).all()


# ---- the command -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("model") / "vae"
    VideoVAE(VAE_PRESETS["tiny"]).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    still = torch.full((12, 24, 32, 3), 90, dtype=torch.uint8)
    write_video(folder / "still.mp4", Video(still, 8.0))
    write_video(folder / "noise.webm", Video(_clip(3, (6, 16, 16, 3)), 8.0))
    return [folder / "still.mp4", folder / "noise.webm"]


def test_eval_prints_one_json_object_with_every_video_and_the_means(model_folder, videos, capsys):
    argv = ["eval", "vae", "--model", str(model_folder), "--videos", *map(str, videos)]
    assert main([*argv, "--size", "16", "--frames", "9", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["size"] == 16
    assert [v["frames"] for v in report["videos"]] == [9, 5]  # the webm holds only 6 frames
    for video in report["videos"]:
        assert 0 < video["psnr"] < 60 and -1 <= video["ssim"] <= 1 and video["flicker"] >= 0
    mean_psnr = sum(v["psnr"] for v in report["videos"]) / 2
    assert report["mean"]["psnr"] == pytest.approx(mean_psnr)


def test_eval_prints_a_table_by_default(model_folder, videos, capsys):
    assert main(["eval", "vae", "--model", str(model_folder), "--videos", str(videos[0]),
                 "--size", "16", "--frames", "5"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "PSNR" in out and "still.mp4" in out and "mean" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--frames", "8"], "1 + 4k"),
        (["--size", "30"], "multiple of 8"),
        (["--model", "/nonexistent/vae"], "no such folder"),
        (["--device", "cuda:3"], "CUDA"),
    ],
)
def test_eval_bad_options_are_one_error_with_status_2(videos, capsys, extra, message):
    assert main(["eval", "vae", "--videos", str(videos[0]), *extra]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("error:") and message in err


def test_eval_of_a_missing_video_names_it(model_folder, tmp_path, capsys):
    missing = tmp_path / "gone.mp4"
    assert main(["eval", "vae", "--model", str(model_folder), "--videos", str(missing)]) == 2
    assert "gone.mp4" in capsys.readouterr().err


def test_eval_without_a_model_says_when_no_vae_ships(videos, capsys, monkeypatch, tmp_path):
    import kinetoscope.evaluation

    monkeypatch.setattr(kinetoscope.evaluation, "DEFAULT_VAE_FOLDER", tmp_path / "none")
    assert main(["eval", "vae", "--videos", str(videos[0])]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "no shipped VAE yet" in err and "--model" in err
