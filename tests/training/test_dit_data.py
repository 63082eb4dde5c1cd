"""DiT training data: plans shared out over ranks, world and video-folder clips, latents and
text from the encoders or the cache, all a pure function of (seed, step)."""

import dataclasses
import json

import pytest
import torch

from kinetoscope.errors import KinetoscopeError
from kinetoscope.io.video import Video, write_video
from kinetoscope.models.vae import VAE_PRESETS, VideoVAE
from kinetoscope.training.buckets import bucket
from kinetoscope.training.dit_data import (
    DiTBatchStream,
    DiTDataConfig,
    VideoFolder,
    fit_frames,
    plan_batch,
    training_scene,
)
from kinetoscope.training.vae_data import HELD_OUT_SEED_START
from kinetoscope.world.captions import caption

CONFIG = DiTDataConfig(
    batch_size=4,
    short_side=16,
    aspects=("1:1", "16:9"),
    durations=(0.5,),
    world_scenes=4,
    caption_wordings=1,
)


@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(0)
    return VideoVAE(VAE_PRESETS["tiny"])


def _stream(vae, folder=None, config=CONFIG, **options):
    return DiTBatchStream(config, vae, torch.device("cpu"), cache_folder=folder, **options)


def test_rank_plans_split_the_one_process_batch_between_them():
    whole = plan_batch(CONFIG, step=5)
    halves = [plan_batch(CONFIG, step=5, rank=rank, world_size=2) for rank in (0, 1)]
    assert halves[0].bucket == halves[1].bucket == whole.bucket
    assert halves[0].draws + halves[1].draws == whole.draws
    assert [d.index for d in halves[1].draws] == [2, 3]
    assert plan_batch(CONFIG, step=5) == whole  # a pure function of the step
    seeds = {d.scene_seed for step in range(20) for d in plan_batch(CONFIG, step).draws}
    assert seeds <= set(range(4))  # the finite scene pool


def test_a_batch_holds_one_bucket_of_latents_and_captions_of_its_scenes(vae):
    batch = _stream(vae).batch(3)
    shape = batch.bucket
    assert batch.latents.shape == (4, *shape.latent_shape)
    assert batch.text.tokens.shape[0] == 4 and batch.text.mask[:, 0].all()
    draws = plan_batch(CONFIG, 3).draws
    aspect = shape.width / shape.height
    for draw, key, text in zip(draws, batch.keys, batch.captions, strict=True):
        scene = training_scene(draw.scene_seed, shape)
        assert key == f"world-{draw.scene_seed:010d}"
        assert text == caption(scene, draw.caption_style, draw.caption_seed, aspect)


def test_training_scenes_stay_below_the_held_out_seeds():
    shape = bucket(16, "1:1", 0.5, 16.0)
    assert training_scene(HELD_OUT_SEED_START - 1, shape) == training_scene(
        HELD_OUT_SEED_START - 1, shape
    )


def test_the_cache_returns_exactly_what_the_encoders_made(vae, tmp_path):
    fresh = _stream(vae, tmp_path / "cache")
    made = [fresh.batch(step) for step in range(3)]
    again = _stream(vae, tmp_path / "cache")
    for step, first in enumerate(made):
        pixels = again.pixels(step)
        assert pixels.pixels is None and pixels.missing == ()  # nothing left to render
        cached = again.encode(pixels)
        assert torch.equal(cached.latents, first.latents)
        assert torch.equal(cached.text.tokens, first.text.tokens)
        assert torch.equal(cached.text.mask, first.text.mask)
        assert cached.captions == first.captions
    uncached = _stream(vae, config=dataclasses.replace(CONFIG, cache=False))
    assert torch.equal(uncached.batch(1).latents, made[1].latents)


def test_the_stream_resumes_at_its_saved_step(vae):
    stream = _stream(vae)
    next(stream)
    state = stream.state_dict()
    expected = next(stream)
    resumed = _stream(vae)
    resumed.load_state_dict(state)
    batch = next(resumed)
    assert batch.step == expected.step == 1 and torch.equal(batch.latents, expected.latents)
    with pytest.raises(KinetoscopeError, match="seed"):
        resumed.load_state_dict({"step": 0, "seed": 7})


def _write_clip(path, frames, fps, value=None):
    video = torch.zeros(frames, 24, 40, 3, dtype=torch.uint8)
    video[..., 0] = value if value is not None else torch.arange(frames)[:, None, None] * 9
    write_video(path, Video(video, fps))


def _video_folder(tmp_path, lines=None):
    folder = tmp_path / "videos"
    folder.mkdir()
    _write_clip(folder / "long.mp4", frames=20, fps=24)
    _write_clip(folder / "short.mp4", frames=4, fps=24)
    lines = lines or [
        {"video": "long.mp4", "caption": "a red ramp"},
        {"video": "short.mp4", "caption": "too short"},
    ]
    (folder / "captions.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return folder


def test_video_clips_are_first_frames_at_the_bucket_fps_cropped_to_its_size(vae, tmp_path):
    folder = _video_folder(tmp_path)
    config = dataclasses.replace(
        CONFIG, world_weight=0.0, video_folder=str(folder), video_weight=1.0
    )
    stream = _stream(vae, config=config)
    for step in range(3):
        pixels = stream.pixels(step)
        shape = pixels.plan.bucket
        assert pixels.keys == ("video-long.mp4",) * 4  # the 4-frame clip never lasts 0.5 s
        assert pixels.captions == ("a red ramp",) * 4
        assert pixels.pixels.shape == (4, 3, 9, shape.height, shape.width)
    # 24 fps read at 16 fps: output frame i is source frame round(1.5 i), red = 9 x index
    red = pixels.pixels[0, 0, :, 8, 8].float()
    expected = torch.tensor([round(1.5 * i) * 9 for i in range(9)], dtype=torch.float32)
    assert (red - expected).abs().max() <= 6  # H.264 rounding
    assert stream.encode(pixels).latents.shape == (4, *shape.latent_shape)


def test_fit_frames_centre_crops_and_scales_to_cover():
    frames = torch.randint(0, 256, (3, 16, 32, 3), dtype=torch.uint8)
    assert torch.equal(fit_frames(frames, 16, 16), frames[:, :, 8:24].permute(3, 0, 1, 2))
    flat = torch.full((2, 30, 50, 3), 77, dtype=torch.uint8)
    assert torch.equal(fit_frames(flat, 16, 32), torch.full((3, 2, 16, 32), 77, dtype=torch.uint8))


@pytest.mark.parametrize(
    ("lines", "extra_file", "message"),
    [
        ([{"video": "gone.mp4", "caption": "x"}], None, "no video file"),
        ([{"video": "long.mp4"}], None, "non-empty caption"),
        (
            [{"video": "long.mp4", "caption": "a"}, {"video": "short.mp4", "caption": "b"}],
            "extra.mp4",
            "no caption",
        ),
    ],
)
def test_bad_video_folders_are_named_before_training(tmp_path, lines, extra_file, message):
    folder = _video_folder(tmp_path, lines)
    if extra_file:
        _write_clip(folder / extra_file, frames=3, fps=24)
    with pytest.raises(KinetoscopeError, match=message):
        VideoFolder.open(str(folder))


def test_missing_folders_and_captions_files_are_named(tmp_path):
    with pytest.raises(KinetoscopeError, match="does not exist"):
        VideoFolder.open(str(tmp_path / "none"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(KinetoscopeError, match=r"captions\.jsonl"):
        VideoFolder.open(str(tmp_path / "empty"))
    with pytest.raises(KinetoscopeError, match="needs a video_folder"):
        dataclasses.replace(CONFIG, video_weight=1.0).validate()
    with pytest.raises(KinetoscopeError, match="multiple of 16"):
        dataclasses.replace(CONFIG, short_side=20).validate()


def test_worker_processes_make_the_same_batches(vae):
    expected = [_stream(vae).batch(step) for step in range(3)]
    stream = _stream(vae, workers=1)
    for batch in expected:
        made = next(stream)
        assert made.keys == batch.keys and made.captions == batch.captions
        assert torch.equal(made.latents, batch.latents)
