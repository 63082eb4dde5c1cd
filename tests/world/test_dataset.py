"""Datasets on disk: complete, captioned, and resumable after an interruption."""

import json

import pytest

from kinetoscope.cli import main
from kinetoscope.errors import KinetoscopeError
from kinetoscope.io.video import read_metadata, read_video
from kinetoscope.world.dataset import CAPTIONS_FILE, DatasetConfig, build_dataset, read_records
from kinetoscope.world.sampler import sample_scene
from kinetoscope.world.spec import SceneSpec

SMALL = DatasetConfig(count=6, width=48, height=48, fps=8.0, batch=4)


def test_every_clip_has_its_caption_spec_and_file(tmp_path):
    assert build_dataset(SMALL, tmp_path) == 6
    records = list(read_records(tmp_path))
    assert sorted(r["index"] for r in records) == list(range(6))
    for record in records:
        scene = SceneSpec.from_dict(record["spec"])
        assert scene == sample_scene(record["seed"], 1.0)
        video = read_video(tmp_path / record["file"])
        assert video.num_frames == scene.frame_count(8.0)
        assert (video.width, video.height) == (48, 48)
        assert record["caption"] and record["caption_short"]
        assert read_metadata(tmp_path / record["file"])["comment"] == record["caption"]


def test_a_second_run_makes_nothing_and_a_larger_count_only_the_rest(tmp_path):
    build_dataset(SMALL, tmp_path)
    assert build_dataset(SMALL, tmp_path) == 0
    larger = DatasetConfig(**{**SMALL.__dict__, "count": 8})
    assert build_dataset(larger, tmp_path) == 2
    assert len(list(read_records(tmp_path))) == 8


def test_an_interrupted_run_resumes_without_keeping_broken_clips(tmp_path):
    build_dataset(SMALL, tmp_path)
    captions = tmp_path / CAPTIONS_FILE
    lines = captions.read_text().splitlines()
    # the run died while writing its last line, and before the clip of the one before
    lost = json.loads(lines[-2])
    (tmp_path / lost["file"]).unlink()
    captions.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][: len(lines[-1]) // 2])
    assert build_dataset(SMALL, tmp_path) == 2
    indices = [r["index"] for r in read_records(tmp_path)]
    assert sorted(set(indices)) == list(range(6))
    assert (tmp_path / lost["file"]).exists()


def test_resuming_with_other_settings_is_refused(tmp_path):
    build_dataset(SMALL, tmp_path)
    other = DatasetConfig(**{**SMALL.__dict__, "width": 64})
    with pytest.raises(KinetoscopeError, match="width"):
        build_dataset(other, tmp_path)


def test_bad_settings_are_refused_before_any_work(tmp_path):
    with pytest.raises(KinetoscopeError, match="count"):
        build_dataset(DatasetConfig(count=0), tmp_path / "none")
    assert not (tmp_path / "none").exists()


def test_the_dataset_command(tmp_path, capsys):
    out = tmp_path / "data"
    argv = [
        "world",
        "dataset",
        "--count",
        "3",
        "--out",
        str(out),
        "--size",
        "32x32",
        "--seconds",
        "1",
    ]
    assert main(argv) == 0
    assert len(list(read_records(out))) == 3
    assert main(argv) == 0
    assert "0 clips made, 3 were already there" in capsys.readouterr().err
    assert main([*argv[:3], "4", *argv[4:]]) == 0
    assert "1 clip made, 3 were already there" in capsys.readouterr().err
