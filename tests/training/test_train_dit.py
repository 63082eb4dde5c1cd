"""DiT training: a tiny run's outputs, exact resumption, per-sample draws, learning on one
batch, the judge evaluation, the command line and early errors."""

import dataclasses
import json

import pytest
import torch

from kinetoscope import cli
from kinetoscope.errors import KinetoscopeError
from kinetoscope.models.dit import DIT_PRESETS, DiffusionTransformer
from kinetoscope.models.vae import VAE_PRESETS, VideoVAE
from kinetoscope.pipeline import Pipeline
from kinetoscope.training import train_dit as train_dit_module
from kinetoscope.training.checkpoint import load_checkpoint
from kinetoscope.training.dit_data import DiTBatchStream, LatentBatch
from kinetoscope.training.metrics import read_metrics
from kinetoscope.training.train_dit import (
    TRAIN_PRESETS,
    config_from_dict,
    draw_step,
    train_dit,
    train_step,
    with_overrides,
)


@pytest.fixture(scope="module")
def vae_folder(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("vae") / "vae"
    VideoVAE(VAE_PRESETS["tiny"]).save_pretrained(folder)
    return folder


def _tiny(vae_folder, **changes):
    return dataclasses.replace(TRAIN_PRESETS["tiny-cpu"], vae=str(vae_folder), **changes)


def test_a_tiny_run_writes_metrics_a_checkpoint_and_a_pipeline(vae_folder, tmp_path):
    seen = []
    run = tmp_path / "run"
    result = train_dit(_tiny(vae_folder, steps=3), run, on_step=lambda s, n: seen.append(s))
    assert result.finished and result.step == 3 and seen == [1, 2, 3]
    records = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3]
    for key in ("loss", "grad_norm", "lr", "bucket", "tokens_per_second", "known_fraction"):
        assert key in records[-1]
    state = load_checkpoint(run / "checkpoint.pt")
    assert state["step"] == 3
    index = json.loads((run / "model_index.json").read_text())
    assert index["transformer"] == "transformer" and index["vae"] == "vae"
    assert index["short_side"] == 16 and index["aspects"] == ["1:1", "16:9"]
    # the exported transformer holds the EMA weights; the VAE is the one trained on
    transformer = DiffusionTransformer.from_pretrained(run / "transformer")
    exported = transformer.state_dict()
    assert all(torch.equal(exported[name], state["ema"][name]) for name in exported)
    assert not all(torch.equal(exported[name], state["model"][name]) for name in exported)
    assert (run / "vae" / "config.json").read_bytes() == (vae_folder / "config.json").read_bytes()
    pipeline = Pipeline.from_pretrained(run)
    assert pipeline.index.fps == 16


def test_stopping_and_resuming_gives_the_same_weights_as_one_run(vae_folder, tmp_path):
    config = _tiny(vae_folder, steps=5, checkpoint_every=2)
    train_dit(config, tmp_path / "whole")
    stopped = train_dit(config, tmp_path / "split", stop_at=3)
    assert not stopped.finished and stopped.pipeline_folder is None
    assert not (tmp_path / "split" / "transformer").exists()
    train_dit(config, tmp_path / "split", resume=True)
    whole = load_checkpoint(tmp_path / "whole" / "checkpoint.pt")
    split = load_checkpoint(tmp_path / "split" / "checkpoint.pt")
    for part in ("model", "ema"):
        assert all(torch.equal(whole[part][name], split[part][name]) for name in whole[part])
    moments = whole["optimizer"]["state"], split["optimizer"]["state"]
    assert all(torch.equal(moments[0][n]["exp_avg"], moments[1][n]["exp_avg"]) for n in moments[0])
    assert [r["step"] for r in read_metrics(tmp_path / "split" / "metrics.jsonl")] == [
        1,
        2,
        3,
        4,
        5,
    ]
    losses = [(r["step"], r["loss"]) for r in read_metrics(tmp_path / "whole" / "metrics.jsonl")]
    assert losses == [
        (r["step"], r["loss"]) for r in read_metrics(tmp_path / "split" / "metrics.jsonl")
    ]


def _batch(vae_folder, step=0):
    config = _tiny(vae_folder)
    vae = VideoVAE.from_pretrained(vae_folder)
    return config, DiTBatchStream(config.data, vae, torch.device("cpu")).batch(step)


def test_each_sample_draws_the_same_randomness_in_any_batch_split(vae_folder):
    config, batch = _batch(vae_folder)
    whole = draw_step(config, batch)
    for rows in ([0], [1]):
        half = LatentBatch(
            step=batch.step,
            bucket=batch.bucket,
            latents=batch.latents[rows],
            text=batch.text.select(torch.tensor(rows)),
            captions=tuple(batch.captions[i] for i in rows),
            keys=tuple(batch.keys[i] for i in rows),
            indices=tuple(batch.indices[i] for i in rows),
            global_batch=batch.global_batch,
        )
        part = draw_step(config, half)
        assert torch.equal(part.noise, whole.noise[rows])
        assert torch.equal(part.timesteps, whole.timesteps[rows])
        assert torch.equal(part.known_mask, whole.known_mask[rows])
        assert torch.equal(part.drop_text, whole.drop_text[rows])
    assert not torch.equal(whole.noise[0], whole.noise[1])


def test_the_training_step_learns_a_fixed_batch(vae_folder):
    config, batch = _batch(vae_folder)
    config = dataclasses.replace(config, text_dropout=0.0)
    torch.manual_seed(0)
    model = DiffusionTransformer(DIT_PRESETS["tiny"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    # the draws depend on (seed, step) only, so every step sees the same noise and times
    losses = [train_step(model, batch, optimizer, config)["loss"] for _ in range(40)]
    assert losses[-1] < 0.6 * losses[0]


def test_an_evaluation_judges_generated_clips_and_is_logged(vae_folder, tmp_path):
    config = _tiny(vae_folder, steps=2, checkpoint_every=2)
    config = dataclasses.replace(
        config,
        data=dataclasses.replace(
            config.data, short_side=64, aspects=("1:1",), durations=(1.0,), batch_size=1
        ),
        evaluation=dataclasses.replace(config.evaluation, every=2, prompts=1, steps=2),
    )
    result = train_dit(config, tmp_path / "run")
    scores = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "eval_overall" in r]
    assert [r["step"] for r in scores] == [2]
    assert 0 <= scores[0]["eval_overall"] <= 1 and "eval_color" in scores[0]
    assert result.evaluation["eval_overall"] == pytest.approx(scores[0]["eval_overall"], rel=1e-5)
    index = json.loads((tmp_path / "run" / "model_index.json").read_text())
    assert index["eval_overall"] == pytest.approx(scores[0]["eval_overall"])


def test_the_command_trains_stops_and_resumes(vae_folder, tmp_path, capsys):
    run = tmp_path / "run"
    common = ["train", "dit", "--preset", "tiny-cpu", "--out", str(run), "--vae", str(vae_folder)]
    assert cli.main([*common, "--steps", "2", "--stop-at", "1"]) == 0
    assert "--resume" in capsys.readouterr().err
    assert cli.main([*common, "--steps", "2", "--resume"]) == 0
    assert "trained 2 steps" in capsys.readouterr().err
    assert (run / "model_index.json").is_file()


def test_the_command_sets_the_scene_pool_and_the_frame_patterns(vae_folder, tmp_path, capsys):
    run = tmp_path / "run"
    patterns = "none=0.5,first_frames=0.25,random_frames=0"
    common = ["train", "dit", "--preset", "tiny-cpu", "--out", str(run), "--vae", str(vae_folder)]
    extra = ["--scenes", "3", "--patterns", patterns, "--steps", "1"]
    assert cli.main([*common, *extra]) == 0
    assert "trained 1 step:" in capsys.readouterr().err
    saved = json.loads((run / "config.json").read_text())
    assert saved["data"]["world_scenes"] == 3 != TRAIN_PRESETS["tiny-cpu"].data.world_scenes
    preset = TRAIN_PRESETS["tiny-cpu"].conditioning
    expected = preset.to_dict() | {"none": 0.5, "first_frames": 0.25, "random_frames": 0.0}
    assert saved["conditioning"] == expected != preset.to_dict()


@pytest.mark.parametrize(
    ("patterns", "message"),
    [
        ("none", "NAME=WEIGHT"),
        ("none=a", "NAME=WEIGHT"),
        ("first=0.2", "unknown frame patterns ['first']"),
        ("none=0", "none must be > 0"),
        ("last_frame=-1", "last_frame must be >= 0"),
    ],
)
def test_bad_frame_patterns_are_named_before_training(
    vae_folder, tmp_path, capsys, patterns, message
):
    run = tmp_path / "run"
    common = ["train", "dit", "--preset", "tiny-cpu", "--out", str(run), "--vae", str(vae_folder)]
    assert cli.main([*common, "--patterns", patterns]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("error:") and message in err
    assert not run.exists()


def test_overrides_and_the_saved_config_round_trip(vae_folder):
    config = with_overrides(
        TRAIN_PRESETS["cpu"], batch=2, size=32, seed=5, eval_every=0, vae=str(vae_folder)
    )
    assert (config.data.batch_size, config.data.short_side, config.data.seed) == (2, 32, 5)
    assert config.seed == 5 and config.evaluation.every == 0
    assert config_from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(KinetoscopeError, match="unknown training options"):
        with_overrides(config, colour="red")


def test_bad_runs_are_refused_before_any_compute(vae_folder, tmp_path, monkeypatch):
    monkeypatch.setattr(train_dit_module, "SHIPPED_VAE", tmp_path / "nothing")
    with pytest.raises(KinetoscopeError, match="--vae"):
        train_dit(dataclasses.replace(TRAIN_PRESETS["tiny-cpu"], vae=None), tmp_path / "a")
    evaluated = dataclasses.replace(_tiny(vae_folder).evaluation, every=1)
    with pytest.raises(KinetoscopeError, match="short side of at least 64"):
        train_dit(_tiny(vae_folder, evaluation=evaluated), tmp_path / "e")
    with pytest.raises(KinetoscopeError, match="unknown DiT preset"):
        train_dit(_tiny(vae_folder, model="XXL"), tmp_path / "b")
    with pytest.raises(KinetoscopeError, match="nothing to resume"):
        train_dit(_tiny(vae_folder), tmp_path / "c", resume=True)
    train_dit(_tiny(vae_folder, steps=1), tmp_path / "d")
    with pytest.raises(KinetoscopeError, match="already holds"):
        train_dit(_tiny(vae_folder, steps=1), tmp_path / "d")
    with pytest.raises(KinetoscopeError, match="lr differ"):
        train_dit(_tiny(vae_folder, steps=2, lr=0.5), tmp_path / "d", resume=True)
    assert not any((tmp_path / name).exists() for name in ("a", "b", "e"))
