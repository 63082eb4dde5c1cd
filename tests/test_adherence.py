"""The prompt-adherence set and its scoring."""

import pytest
import torch

from kinetoscope.adherence import (
    EVAL_SEED_START,
    AdherenceReport,
    gravity_bounce,
    judge_cases,
    native_durations,
    prompt_cases,
)
from kinetoscope.models.dit import DIT_PRESETS, DiffusionTransformer
from kinetoscope.models.vae import VAE_PRESETS, VideoVAE
from kinetoscope.pipeline import GenerationError, ModelIndex, Pipeline, load_default
from kinetoscope.training.vae_data import HELD_OUT_SEED_START
from kinetoscope.world.judge import DIMENSIONS, Scores
from kinetoscope.world.sampler import is_held_out


def test_the_fixed_set_is_fixed_and_never_trained_on():
    cases = prompt_cases(6)
    assert cases == prompt_cases(6)
    assert all(case.seed >= EVAL_SEED_START > HELD_OUT_SEED_START for case in cases)
    assert [case.aspect for case in cases[:3]] == ["1:1", "16:9", "9:16"]
    assert [case.seconds for case in cases] == [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]
    assert all(case.scene.seconds == case.seconds for case in cases)
    assert not any(is_held_out(case.scene) for case in cases)
    assert all(case.prompt for case in cases)


def test_held_out_cases_hold_a_held_out_combination():
    cases = prompt_cases(4, held_out=True)
    assert all(case.held_out and is_held_out(case.scene) for case in cases)


def test_gravity_bounce_averages_only_the_physics_items():
    scores = Scores(
        dimensions=dict.fromkeys(DIMENSIONS, 1.0),
        details={
            "trajectory": {
                "objects[0].gravity": 0.5,
                "objects[0].bounces": 1.0,
                "objects[1].straight": 0.0,
            }
        },
    )
    assert gravity_bounce(scores) == pytest.approx(0.75)
    assert gravity_bounce(Scores(dimensions=dict.fromkeys(DIMENSIONS, 1.0))) is None


def test_judge_cases_reports_every_dimension():
    torch.manual_seed(0)
    pipeline = Pipeline(
        VideoVAE(VAE_PRESETS["tiny"]),
        DiffusionTransformer(DIT_PRESETS["tiny"]),
        ModelIndex(short_side=64, steps=1, guidance=1.0),
    )
    done = []
    report = judge_cases(pipeline, prompt_cases(2), progress=done.append)
    assert isinstance(report, AdherenceReport) and report.cases == 2
    assert done == [1, 2]
    assert set(DIMENSIONS) | {"overall"} <= set(report.means)
    assert all(0.0 <= value <= 1.0 for value in report.means.values())
    # an untrained model draws no objects: the count target is far out of reach
    assert report.meets()["object_count"] is False


def test_judge_cases_samples_with_the_settings_given():
    pipeline = Pipeline(
        VideoVAE(VAE_PRESETS["tiny"]),
        DiffusionTransformer(DIT_PRESETS["tiny"]),
        ModelIndex(short_side=64, steps=1, guidance=1.0),
    )
    cases = prompt_cases(1)
    with pytest.raises(GenerationError, match="unknown sampler 'midpoint'"):
        judge_cases(pipeline, cases, sampler="midpoint")
    with pytest.raises(GenerationError, match="guidance"):
        judge_cases(pipeline, cases, guidance=-1.0)
    assert judge_cases(pipeline, cases, steps=2, guidance=2.0, sampler="heun").cases == 1


def test_native_durations_follow_the_model():
    assert native_durations(ModelIndex(min_seconds=1.0, max_seconds=2.0)) == (1.0, 2.0)
    assert native_durations(ModelIndex()) == (1.0, 2.0, 3.0, 4.0)
    assert native_durations(ModelIndex(min_seconds=0.5, max_seconds=0.5)) == (0.5,)


def test_the_reference_judges_the_scenes_own_clips_through_the_models_vae():
    cases = prompt_cases(6, durations=(1.0,))
    trained = judge_cases(load_default(), cases, reference=True)
    torch.manual_seed(0)
    untrained = Pipeline(
        VideoVAE(VAE_PRESETS["tiny"]),
        DiffusionTransformer(DIT_PRESETS["tiny"]),
        ModelIndex(short_side=64, steps=1, guidance=1.0),
    )
    noise = judge_cases(untrained, cases, reference=True)
    # the shipped VAE keeps objects the judge can find and name; a random one loses them all
    assert trained.means["object_count"] >= noise.means["object_count"] + 0.2
    assert trained.means["color"] >= noise.means["color"] + 0.2
