"""The generation pipeline and `kinetoscope generate`, with tiny random models."""

import json
import warnings

import pytest
import torch

from kinetoscope.cli import main
from kinetoscope.io.video import read_metadata, read_video
from kinetoscope.models.dit import DIT_PRESETS, DiffusionTransformer
from kinetoscope.models.vae import VAE_PRESETS, VideoVAE
from kinetoscope.pipeline import GenerationConfig, GenerationError, ModelIndex, Pipeline


def _perturbed(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Zero-initialised outputs would make every clip the same: give all weights noise."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    return model


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    torch.manual_seed(0)
    vae = VideoVAE(VAE_PRESETS["tiny"])
    transformer = _perturbed(DiffusionTransformer(DIT_PRESETS["tiny"]), seed=1)
    index = ModelIndex(short_side=64, steps=3, guidance=3.0)
    return Pipeline(vae, transformer, index)


@pytest.fixture(scope="module")
def folder(pipeline, tmp_path_factory):
    return pipeline.save_pretrained(tmp_path_factory.mktemp("pipeline") / "model")


def request(**changes) -> dict:
    """Keyword arguments of a small `generate` call, with ``changes``."""
    options = {"prompt": "A red circle falls and bounces.", "seconds": 1.0, "aspect": "1:1"}
    return options | changes


def test_clip_shape_follows_aspect_and_duration(pipeline):
    video = pipeline.generate(**request(aspect="16:9", seconds=2.0))
    assert video.fps == 16
    assert tuple(video.frames.shape) == (33, 64, 112, 3)  # 2 s at 16 fps; 64 x 112 is 16:9
    assert video.frames.dtype == torch.uint8
    tall = pipeline.generate(**request(aspect="9:16"))
    assert tuple(tall.frames.shape) == (17, 112, 64, 3)


def test_defaults_come_from_the_model_index(pipeline):
    plan = pipeline.plan(GenerationConfig("A red circle falls."))
    assert plan.bucket.seconds == pipeline.index.max_seconds == 4.0
    assert (plan.bucket.height, plan.bucket.width) == (64, 112)  # 16:9 at the short side
    assert (plan.steps, plan.guidance, plan.fps) == (3, 3.0, 16)


def test_same_seed_same_clip_and_seeds_differ(pipeline):
    first = pipeline.generate(**request(seed=5))
    again = pipeline.generate(**request(seed=5))
    other = pipeline.generate(**request(seed=6))
    assert torch.equal(first.frames, again.frames)
    assert not torch.equal(first.frames, other.frames)


def test_prompt_and_guidance_change_the_clip(pipeline):
    base = pipeline.generate(**request())
    reworded = pipeline.generate(**request(prompt="A blue star spins in place."))
    unguided = pipeline.generate(**request(guidance=1.0))
    assert not torch.equal(base.frames, reworded.frames)
    assert not torch.equal(base.frames, unguided.frames)


def test_progress_reports_every_step(pipeline):
    seen = []
    pipeline.generate(**request(steps=4), progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_empty_prompt_warns_and_generates_unconditionally(pipeline):
    with pytest.warns(UserWarning, match="empty prompt"):
        video = pipeline.generate(**request(prompt="  "))
    assert video.frames.shape[0] == 17


def test_known_frames_are_kept(pipeline):
    shape = (16, 5, 8, 8)
    known = torch.randn(1, *shape)
    mask = torch.tensor([[True, False, False, False, True]])
    text = pipeline.encode_prompt("A green square slides to the left.")
    latents = pipeline.sample_latents(
        shape, text, None, seed=0, steps=2, guidance=2.0, known_latents=known, known_mask=mask
    )
    assert torch.equal(latents[:, :, 0], known[:, :, 0])
    assert torch.equal(latents[:, :, 4], known[:, :, 4])
    assert not torch.equal(latents[:, :, 2], known[:, :, 2])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"aspect": "4:3"}, r"unsupported aspect '4:3'.*\['1:1', '16:9', '9:16'\]"),
        ({"seconds": 9.0}, "unsupported duration 9.0 s; this model makes 1 to 4 s"),
        ({"seconds": 1.1}, "1 \\+ 4k frames"),
        ({"size": 72}, "short side must be a multiple of 16"),
        ({"fps": 24}, "makes 16 fps video"),
        ({"steps": 0}, "steps must be an integer from 1"),
        ({"guidance": -1.0}, "guidance must be a number from 0"),
        ({"sampler": "ddim"}, "unknown sampler 'ddim'"),
        ({"seed": -3}, "seed must be a non-negative integer"),
    ],
)
def test_bad_requests_name_what_is_supported(pipeline, changes, message):
    with pytest.raises(GenerationError, match=message):
        pipeline.plan(GenerationConfig(**request(**changes)))


def test_saved_pipeline_generates_the_same_clip(pipeline, folder):
    loaded = Pipeline.from_pretrained(folder)
    assert loaded.index == pipeline.index
    assert torch.equal(loaded.generate(**request()).frames, pipeline.generate(**request()).frames)


def test_from_pretrained_names_a_folder_without_index(tmp_path):
    from kinetoscope.errors import KinetoscopeError

    with pytest.raises(KinetoscopeError, match="not a pipeline folder"):
        Pipeline.from_pretrained(tmp_path)


def test_generate_command_writes_a_labelled_clip(folder, tmp_path, capsys):
    out = tmp_path / "clip.mp4"
    argv = ["generate", "A red circle falls.", "--model", str(folder), "--out", str(out)]
    status = main([*argv, "--seconds", "1", "--aspect", "1:1", "--steps", "2", "--seed", "3"])
    assert status == 0, capsys.readouterr().err
    video = read_video(out)
    assert tuple(video.frames.shape[:3]) == (17, 64, 64)
    metadata = read_metadata(out)
    assert "AI-generated" in metadata["comment"]
    record = json.loads((tmp_path / "clip.mp4.json").read_text())
    assert metadata["description"] == record["id"]
    assert record["tool"] == "generate"
    assert record["arguments"]["prompt"] == "A red circle falls."
    assert record["arguments"]["seed"] == 3


def test_generate_command_rejects_a_bad_request_before_writing(folder, tmp_path, capsys):
    out = tmp_path / "clip.mp4"
    argv = ["generate", "x", "--model", str(folder), "--out", str(out), "--aspect", "2:1"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(argv) == 2
    err = capsys.readouterr().err
    assert "unsupported aspect" in err
    assert "generate" not in err  # the error prints alone: no progress bar drawn before it
    assert not out.exists()


def test_generate_command_without_a_model_says_none_ships(tmp_path, capsys, monkeypatch):
    import kinetoscope.pipeline as pipeline_module

    monkeypatch.setattr(pipeline_module, "DEFAULT_MODEL_DIR", tmp_path / "missing")
    assert main(["generate", "x", "--out", str(tmp_path / "clip.mp4")]) == 2
    assert "no default model" in capsys.readouterr().err


def test_generate_command_says_what_a_model_marked_interim_is(pipeline, tmp_path, capsys):
    marked = Pipeline(
        pipeline.vae,
        pipeline.transformer,
        ModelIndex(short_side=64, steps=1, extra={"status": "interim: a test model"}),
    ).save_pretrained(tmp_path / "marked")
    argv = ["generate", "x", "--model", str(marked), "--out", str(tmp_path / "c.mp4")]
    assert main([*argv, "--seconds", "1"]) == 0
    assert "interim: a test model" in capsys.readouterr().err
