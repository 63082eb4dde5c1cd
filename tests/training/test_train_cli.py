"""`kinetoscope train vae`, used the way a person would use it."""

import json

import pytest

from kinetoscope import cli
from kinetoscope.cli import main
from kinetoscope.models.vae import VideoVAE
from kinetoscope.training.metrics import read_metrics
from kinetoscope.training.train_vae import TRAIN_PRESETS


def _train(out, *extra):
    return main(["train", "vae", "--preset", "tiny-cpu", "--out", str(out), "--steps", "3", *extra])


def test_train_writes_a_run_and_a_model_and_stops_and_resumes(tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(run, "--stop-at", "2", "--size", "16", "--frames", "5", "--batch", "1") == 0
    assert "--resume" in capsys.readouterr().err
    assert not (run / "vae").exists()
    assert _train(run, "--resume", "--size", "16", "--frames", "5", "--batch", "1") == 0
    assert "trained 3 steps" in capsys.readouterr().err
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")] == [1, 2, 3]
    assert VideoVAE.from_pretrained(run / "vae").config.base_channels == 4


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--frames", "6"], "1 + 4k"),
        (["--size", "20"], "multiple of 8"),
        (["--batch", "0"], "batch size"),
        (["--lr", "0"], "learning rate"),
        (["--device", "cuda:7"], "CUDA"),
        (["--resume"], "nothing to resume"),
    ],
)
def test_bad_options_are_one_clear_error_with_status_2(tmp_path, capsys, extra, message):
    assert _train(tmp_path / "run", *extra) == 2
    err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines at 80 columns
    assert err.startswith("error:") and message in err
    assert not (tmp_path / "run").exists()


def test_mix_sets_the_data_weights_of_the_run(tmp_path):
    run = tmp_path / "run"
    small = ("--size", "16", "--frames", "5", "--batch", "1")
    assert _train(run, "--mix", "1,0,0.5", *small) == 0
    data = json.loads((run / "config.json").read_text())["data"]
    assert (data["world_weight"], data["camera_weight"], data["still_weight"]) == (1, 0, 0.5)


@pytest.mark.parametrize(
    ("mix", "message"),
    [
        ("1,0", "three numbers"),
        ("a,b,c", "three numbers"),
        ("0,0,0", "not all 0"),
        ("1,nan,0", "finite"),
        ("1,-1,1", ">= 0"),
    ],
)
def test_a_bad_mix_is_named_before_training(tmp_path, capsys, mix, message):
    assert _train(tmp_path / "run", "--mix", mix) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("error:") and message in err
    assert not (tmp_path / "run").exists()


def test_the_help_states_every_presets_data_mix():
    for preset in TRAIN_PRESETS.values():
        assert ",".join(f"{share:g}" for share in preset.data.weights()) == cli.VAE_DATA_MIX


def test_an_unknown_preset_lists_the_known_ones(tmp_path, capsys):
    code = main(["train", "vae", "--preset", "huge", "--out", str(tmp_path / "run")])
    assert code == 2
    assert "tiny-cpu" in capsys.readouterr().err


def test_the_help_names_every_preset():
    assert ", ".join(list(TRAIN_PRESETS)[:-1]) + " or gpu" == cli.TRAIN_PRESET_NAMES


def test_the_dit_preset_strategy_and_pattern_names_match_the_library():
    from kinetoscope.training.conditioning import PATTERNS
    from kinetoscope.training.distributed import STRATEGIES
    from kinetoscope.training.train_dit import TRAIN_PRESETS as DIT_PRESETS

    assert ", ".join(list(DIT_PRESETS)[:-1]) + " or gpu-1b" == cli.TRAIN_DIT_PRESET_NAMES
    assert tuple(STRATEGIES) == cli.PARALLEL_STRATEGIES
    assert PATTERNS == cli.PATTERN_NAMES
