"""VAE training: a tiny run's outputs, learning on one batch, exact resumption, early errors."""

import dataclasses
import json

import pytest
import torch

from kinetoscope.errors import KinetoscopeError
from kinetoscope.models.vae import VAE_PRESETS, VideoVAE
from kinetoscope.training.checkpoint import load_checkpoint
from kinetoscope.training.losses import VAELoss, VAELossConfig
from kinetoscope.training.metrics import read_metrics
from kinetoscope.training.train_vae import (
    TRAIN_PRESETS,
    VAETrainConfig,
    WarmupCosine,
    config_from_dict,
    train_step,
    train_vae,
    with_overrides,
)
from kinetoscope.training.vae_data import VAEBatchStream

TINY = TRAIN_PRESETS["tiny-cpu"]


def _tiny(**changes):
    return dataclasses.replace(TINY, **changes)


def test_a_tiny_run_writes_metrics_a_checkpoint_and_a_loadable_model(tmp_path):
    seen = []
    result = train_vae(_tiny(steps=4), tmp_path / "run", on_step=lambda s, t: seen.append(s))
    run = tmp_path / "run"
    assert result.finished and result.step == 4 and seen == [1, 2, 3, 4]
    records = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    for key in ("total", "l1", "perceptual", "kl", "lr", "seconds", "frames_per_second"):
        assert key in records[-1]
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 4
    assert json.loads((run / "config.json").read_text())["model"] == "tiny"
    vae = VideoVAE.from_pretrained(result.model_folder)
    assert isinstance(vae.config.scaling_factor, tuple)  # latent statistics were measured
    with torch.no_grad():
        assert vae(torch.zeros(1, 3, 5, 16, 16), sample=False)[0].shape == (1, 3, 5, 16, 16)


def test_the_training_step_learns_a_fixed_batch():
    torch.manual_seed(0)
    config = _tiny(lr=3e-3, warmup_steps=0, loss=VAELossConfig(perceptual_weight=0))
    vae = VideoVAE(VAE_PRESETS["tiny"])
    loss_fn = VAELoss(config.loss)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=config.lr)
    batch = VAEBatchStream(dataclasses.replace(config.data, image_batch_probability=0)).batch(0)

    def error():
        with torch.no_grad():
            return (vae(batch, sample=False)[0] - batch).abs().mean().item()

    before = error()
    for step in range(30):
        train_step(vae, loss_fn, batch, optimizer, config, step)
    assert error() < 0.6 * before


def _parameters(run):
    return load_checkpoint(run / "checkpoint.pt")["model"]


def test_stopping_and_resuming_gives_the_same_weights_as_one_run(tmp_path):
    config = _tiny(steps=6, checkpoint_every=2, ema_decay=0.9)
    train_vae(config, tmp_path / "whole")
    stopped = train_vae(config, tmp_path / "split", stop_at=3)
    assert not stopped.finished and stopped.model_folder is None
    train_vae(config, tmp_path / "split", resume=True)
    whole, split = _parameters(tmp_path / "whole"), _parameters(tmp_path / "split")
    assert all(torch.equal(whole[name], split[name]) for name in whole)
    ema = load_checkpoint(tmp_path / "split" / "checkpoint.pt")["ema"]
    assert not all(torch.equal(ema[name], split[name]) for name in ema)

    def losses(run):
        return [(r["step"], r["total"]) for r in read_metrics(run / "metrics.jsonl")]

    assert losses(tmp_path / "whole") == losses(tmp_path / "split")


def test_a_discriminator_run_logs_its_terms(tmp_path):
    loss = VAELossConfig(
        perceptual_weight=0,
        discriminator_weight=0.1,
        discriminator_channels=4,
        discriminator_layers=2,
        discriminator_start=1,
    )
    train_vae(_tiny(steps=2, loss=loss), tmp_path / "run")
    first, second = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert "discriminator" in first and "generator_adversarial" not in first
    assert "generator_adversarial" in second and "adaptive_weight" in second


def test_the_schedule_warms_up_then_decays_to_its_floor():
    schedule = WarmupCosine(warmup=2, total=10, floor=0.1)
    assert [schedule(s) for s in (0, 1, 2)] == [0.5, 1.0, 1.0]
    assert schedule(10) == pytest.approx(0.1)
    assert schedule(6) == pytest.approx(0.55)


def test_configs_round_trip_through_their_json_form():
    for config in TRAIN_PRESETS.values():
        assert config_from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_overrides_reach_the_data_and_the_optimiser():
    config = with_overrides(TINY, steps=7, batch=3, size=24, frames=9, lr=0.5, seed=4)
    assert (config.steps, config.lr, config.seed) == (7, 0.5, 4)
    assert (config.data.batch_size, config.data.size, config.data.frames) == (3, 24, 9)
    assert config.data.seed == 4


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model": "huge"}, "unknown VAE preset"),
        ({"steps": 0}, "steps"),
        ({"lr": -1.0}, "learning rate"),
        ({"ema_decay": 1.5}, "ema_decay"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_bad_options_fail_before_any_compute(tmp_path, changes, message):
    with pytest.raises(KinetoscopeError, match=message):
        train_vae(_tiny(**changes), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_run_folder_is_never_overwritten_and_resumes_only_what_exists(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(KinetoscopeError, match="nothing to resume"):
        train_vae(_tiny(steps=2), run, resume=True)
    train_vae(_tiny(steps=2), run)
    with pytest.raises(KinetoscopeError, match="--resume"):
        train_vae(_tiny(steps=2), run)
    with pytest.raises(KinetoscopeError, match="already finished"):
        train_vae(_tiny(steps=2), run, resume=True)
    with pytest.raises(KinetoscopeError, match="lr"):
        train_vae(_tiny(steps=4, lr=0.1), run, resume=True)
    with pytest.raises(KinetoscopeError, match=r"data\.size"):
        train_vae(with_overrides(_tiny(steps=4), size=24), run, resume=True)
    assert train_vae(_tiny(steps=3), run, resume=True).step == 3  # more steps may be added


def test_the_presets_are_valid():
    for config in TRAIN_PRESETS.values():
        assert isinstance(config, VAETrainConfig)
        config.validate()
