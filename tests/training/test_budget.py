"""Time-budgeted runs (--minutes) and runs that start from an earlier model (--init)."""

import dataclasses
import functools
import json

import pytest
import torch

from kinetoscope import cli
from kinetoscope.errors import KinetoscopeError
from kinetoscope.models.dit import DIT_PRESETS, DiffusionTransformer
from kinetoscope.models.vae import VAE_PRESETS, VideoVAE
from kinetoscope.training import train_vae as train_vae_module
from kinetoscope.training.budget import CLOCK_BOUND_STEPS, PACE_STEPS, SETTLE_STEPS, TimeBudget
from kinetoscope.training.checkpoint import load_checkpoint
from kinetoscope.training.metrics import read_metrics
from kinetoscope.training.train_dit import TRAIN_PRESETS as DIT_TRAIN_PRESETS
from kinetoscope.training.train_dit import init_trained_steps, train_dit
from kinetoscope.training.train_dit import with_overrides as dit_overrides
from kinetoscope.training.train_vae import TRAIN_PRESETS as VAE_TRAIN_PRESETS
from kinetoscope.training.train_vae import train_vae
from kinetoscope.training.train_vae import with_overrides as vae_overrides


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _walk(budget: TimeBudget, clock: FakeClock, steps: range, seconds_per_step: float):
    plans = []
    for step in steps:
        clock.now += seconds_per_step
        plans.append(budget.plan(step))
    return plans


def test_a_budget_waits_for_its_pace_then_fits_the_steps_to_the_minutes():
    clock = FakeClock()
    budget = TimeBudget(minutes=1.0, step=0, max_steps=10_000, clock=clock)
    plans = _walk(budget, clock, range(1, SETTLE_STEPS + PACE_STEPS), 0.5)
    assert plans == [None] * len(plans)  # settling, then timing
    clock.now += 0.5
    step = SETTLE_STEPS + PACE_STEPS
    # 0.5 s a step, 6.5 s gone of 60: 107 more steps fit
    assert budget.plan(step) == step + 107


def test_a_budget_never_exceeds_the_steps_nor_goes_back_past_the_current_step():
    clock = FakeClock()
    short = TimeBudget(minutes=10.0, step=0, max_steps=50, clock=clock)
    assert _walk(short, clock, range(1, 30), 0.1)[-1] == 50  # time for far more than 50
    clock = FakeClock()
    late = TimeBudget(minutes=0.1, step=40, max_steps=1000, clock=clock)  # resumed at 40
    plans = _walk(late, clock, range(41, 70), 1.0)  # 1 s a step: the 6 s are gone by 47
    assert plans[-1] == 69  # out of time: the run ends at the current step


@pytest.mark.parametrize(
    ("presets", "overrides"),
    [(VAE_TRAIN_PRESETS, vae_overrides), (DIT_TRAIN_PRESETS, dit_overrides)],
    ids=["vae", "dit"],
)
def test_minutes_alone_are_not_cut_short_by_the_presets_step_count(presets, overrides):
    preset = presets["cpu"]
    clocked = overrides(preset, minutes=90.0)
    assert clocked.minutes == 90.0 and clocked.steps == CLOCK_BOUND_STEPS  # the clock decides
    assert overrides(preset, minutes=90.0, steps=500).steps == 500  # --steps still bounds it
    assert overrides(preset, steps=500).steps == 500
    assert overrides(preset, lr=1e-4).steps == preset.steps


@pytest.mark.parametrize("minutes", [0, -1.0, float("nan"), float("inf")])
def test_bad_minutes_are_refused(minutes):
    with pytest.raises(KinetoscopeError, match="minutes must be a positive number"):
        TimeBudget(minutes=minutes, step=0, max_steps=10)
    config = dataclasses.replace(VAE_TRAIN_PRESETS["tiny-cpu"], minutes=minutes)
    with pytest.raises(KinetoscopeError, match="minutes"):
        config.validate()


class TickingClock(FakeClock):
    """A clock that moves one second each time it is read: a run's pace, whatever the machine."""

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def test_a_budgeted_vae_run_plans_its_steps_and_still_exports(tmp_path, monkeypatch):
    run = tmp_path / "run"
    clock = TickingClock()  # read once per logged step (every step in tiny-cpu)
    monkeypatch.setattr(train_vae_module, "TimeBudget", functools.partial(TimeBudget, clock=clock))
    # 30 s at 1 s a step: the first plan (after 13 steps) leaves about 16 more
    config = dataclasses.replace(VAE_TRAIN_PRESETS["tiny-cpu"], steps=100_000, minutes=0.5)
    totals = []
    result = train_vae(config, run, on_step=lambda step, numbers: totals.append(numbers["steps"]))
    assert result.finished and result.model_folder is not None
    assert SETTLE_STEPS + PACE_STEPS <= result.step < 100_000
    assert totals[0] == 100_000 and totals[-1] == result.step  # the plan replaced the bound
    state = load_checkpoint(run / "checkpoint.pt")
    assert state["config"]["steps"] == result.step  # a resumed run knows the planned total
    records = read_metrics(run / "metrics.jsonl")
    assert records[-1]["lr"] < 0.5 * config.lr  # the cosine ran down to the planned end
    VideoVAE.from_pretrained(result.model_folder)


def test_a_vae_run_can_start_from_a_saved_model(tmp_path):
    torch.manual_seed(3)
    start = VideoVAE(VAE_PRESETS["tiny"])
    start.save_pretrained(tmp_path / "start")
    config = dataclasses.replace(
        VAE_TRAIN_PRESETS["tiny-cpu"], steps=1, lr=1e-12, init=str(tmp_path / "start")
    )
    result = train_vae(config, tmp_path / "run")
    trained = VideoVAE.from_pretrained(result.model_folder).state_dict()
    for name, tensor in start.state_dict().items():
        torch.testing.assert_close(trained[name], tensor, atol=1e-6, rtol=0)
    fresh = train_vae(dataclasses.replace(config, init=None, seed=1), tmp_path / "fresh")
    fresh_weights = VideoVAE.from_pretrained(fresh.model_folder).state_dict()
    assert not torch.allclose(
        fresh_weights["encoder.conv_in.conv.weight"], trained["encoder.conv_in.conv.weight"]
    )


def test_an_init_model_of_another_size_or_no_model_is_refused(tmp_path):
    VideoVAE(VAE_PRESETS["small"]).save_pretrained(tmp_path / "small")
    config = dataclasses.replace(VAE_TRAIN_PRESETS["tiny-cpu"], init=str(tmp_path / "small"))
    with pytest.raises(KinetoscopeError, match="different architecture"):
        train_vae(config, tmp_path / "run")
    missing = dataclasses.replace(config, init=str(tmp_path / "nothing"))
    with pytest.raises(KinetoscopeError, match=r"no config\.json"):
        missing.validate()


@pytest.fixture(scope="module")
def vae_folder(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("vae") / "vae"
    VideoVAE(VAE_PRESETS["tiny"]).save_pretrained(folder)
    return folder


def test_a_dit_run_starts_from_a_pipeline_and_fits_its_minutes(vae_folder, tmp_path):
    tiny = dataclasses.replace(DIT_TRAIN_PRESETS["tiny-cpu"], vae=str(vae_folder))
    first = train_dit(dataclasses.replace(tiny, steps=2), tmp_path / "first")
    start = DiffusionTransformer.from_pretrained(tmp_path / "first" / "transformer")
    # the pipeline folder itself is accepted: its transformer/ is the one loaded
    config = dataclasses.replace(
        tiny, init=str(first.pipeline_folder), lr=1e-12, ema_decay=None, steps=10_000, minutes=0.04
    )
    result = train_dit(config, tmp_path / "second")
    assert result.finished and SETTLE_STEPS + PACE_STEPS <= result.step < 10_000
    # the continued model counts the steps of the one it started from
    index = json.loads((tmp_path / "second" / "model_index.json").read_text())
    assert index["trained_steps"] == 2 + result.step
    assert init_trained_steps(str(tmp_path / "first" / "transformer")) == 0  # no index there
    trained = DiffusionTransformer.from_pretrained(tmp_path / "second" / "transformer")
    for name, tensor in start.state_dict().items():
        torch.testing.assert_close(trained.state_dict()[name], tensor, atol=1e-6, rtol=0)
    other = dataclasses.replace(tiny, model="S", init=str(first.pipeline_folder))
    assert DIT_PRESETS["S"].width != DIT_PRESETS["tiny"].width
    with pytest.raises(KinetoscopeError, match=r"different architecture .*: width 32 != 384"):
        train_dit(other, tmp_path / "third")


def test_the_command_line_trains_for_minutes_from_an_init_model(tmp_path):
    VideoVAE(VAE_PRESETS["tiny"]).save_pretrained(tmp_path / "start")
    run = tmp_path / "run"
    arguments = ["train", "vae", "--preset", "tiny-cpu", "--out", str(run), "--steps", "100000"]
    code = cli.main([*arguments, "--minutes", "0.02", "--init", str(tmp_path / "start")])
    assert code == 0 and (run / "vae" / "config.json").is_file()
    saved = json.loads((run / "config.json").read_text())
    assert saved["minutes"] == 0.02 and saved["init"] == str(tmp_path / "start")
    assert load_checkpoint(run / "checkpoint.pt")["step"] < 100_000


def test_a_decoder_only_run_keeps_the_encoder_and_the_latent_normalisation(tmp_path):
    torch.manual_seed(4)
    start = VideoVAE(VAE_PRESETS["tiny"])
    start.config = dataclasses.replace(start.config, shift_factor=0.25, scaling_factor=2.5)
    start.save_pretrained(tmp_path / "start")
    start = VideoVAE.from_pretrained(tmp_path / "start")
    arguments = ["train", "vae", "--preset", "tiny-cpu", "--out", str(tmp_path / "run")]
    code = cli.main(
        [*arguments, "--steps", "3", "--init", str(tmp_path / "start"), "--decoder-only"]
    )
    assert code == 0
    tuned = VideoVAE.from_pretrained(tmp_path / "run" / "vae")
    assert tuned.config.shift_factor == 0.25 and tuned.config.scaling_factor == 2.5
    before, after = start.state_dict(), tuned.state_dict()
    encoder = [name for name in before if name.startswith("encoder.")]
    decoder = [name for name in before if name.startswith("decoder.")]
    assert encoder and decoder
    for name in encoder:
        torch.testing.assert_close(after[name], before[name], atol=0, rtol=0)
    assert any(not torch.equal(after[name], before[name]) for name in decoder)


def test_a_decoder_only_run_needs_a_vae_to_start_from():
    config = dataclasses.replace(VAE_TRAIN_PRESETS["tiny-cpu"], decoder_only=True)
    with pytest.raises(KinetoscopeError, match=r"decoder_only .* --init"):
        config.validate()
