"""The kinetoscope command, used the way a person would use it."""

import json
import subprocess
import sys

import pytest

from kinetoscope import __version__
from kinetoscope.cli import main
from kinetoscope.io.video import Video, read_metadata, read_video, write_video
from kinetoscope.world.judge import DIMENSIONS
from kinetoscope.world.spec import SceneSpec


def test_version_from_the_installed_command():
    result = subprocess.run(
        [sys.executable, "-m", "kinetoscope", "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert result.stdout.strip() == f"kinetoscope {__version__}"


def test_render_writes_the_clip_its_spec_and_its_caption(tmp_path):
    clip, spec = tmp_path / "clip.mp4", tmp_path / "spec.json"
    code = main(
        [
            "world",
            "render",
            "--seed",
            "3",
            "--size",
            "96x64",
            "--fps",
            "8",
            "--seconds",
            "1",
            "--out",
            str(clip),
            "--spec-out",
            str(spec),
        ]
    )
    assert code == 0
    video = read_video(clip)
    assert (video.num_frames, video.width, video.height, video.fps) == (9, 96, 64, 8.0)
    scene = SceneSpec.from_json(spec.read_text())
    assert scene.seconds == 1.0
    metadata = read_metadata(clip)
    assert SceneSpec.from_json(metadata["description"]) == scene
    assert metadata["comment"].endswith(".")


def test_render_a_given_spec_with_a_new_duration(tmp_path):
    spec = tmp_path / "spec.json"
    main(
        [
            "world",
            "render",
            "--seed",
            "5",
            "--seconds",
            "2",
            "--size",
            "64x64",
            "--out",
            str(tmp_path / "a.mp4"),
            "--spec-out",
            str(spec),
        ]
    )
    code = main(
        [
            "world",
            "render",
            "--spec",
            str(spec),
            "--seconds",
            "1",
            "--size",
            "48x48",
            "--fps",
            "10",
            "--out",
            str(tmp_path / "b.webm"),
        ]
    )
    assert code == 0
    assert read_video(tmp_path / "b.webm").num_frames == 11


def test_score_prints_one_json_object_using_the_spec_inside_the_clip(tmp_path, capsys):
    clip = tmp_path / "clip.mp4"
    main(["world", "render", "--seed", "11", "--seconds", "2", "--out", str(clip)])
    capsys.readouterr()
    assert main(["world", "score", str(clip), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert list(scores) == ["overall", *DIMENSIONS]
    assert scores["overall"] >= 0.9


def test_score_without_a_spec_anywhere_says_what_to_do(tmp_path, capsys):
    import torch

    clip = tmp_path / "plain.mp4"
    write_video(clip, Video(frames=torch.zeros(5, 32, 32, 3, dtype=torch.uint8), fps=8))
    assert main(["world", "score", str(clip)]) == 2
    assert "--spec" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["world", "render", "--out", "clip.avi"], ".avi"),
        (["world", "render", "--out", "no/such/folder/clip.mp4"], "does not exist"),
        (["world", "render", "--spec", "missing.json", "--out", "clip.mp4"], "missing.json"),
        (["world", "score", "missing.mp4"], "missing.mp4"),
    ],
)
def test_bad_input_is_one_clear_line_and_status_2(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "error:" in err and message in err
    assert not list(tmp_path.glob("*.mp4"))


def test_a_malformed_spec_names_the_field(tmp_path, capsys):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"objects": [{"shape": "hexagn", "color": "red"}]}))
    assert main(["world", "render", "--spec", str(spec), "--out", str(tmp_path / "c.mp4")]) == 2
    err = capsys.readouterr().err
    assert "objects[0].shape" in err and "hexagon" in err


def test_bad_size_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["world", "render", "--size", "wide", "--out", "x.mp4"])
    assert stop.value.code == 2
    assert "128x128" in capsys.readouterr().err


def test_demo_generates_with_the_shipped_model_and_judges_the_clip(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    scene = SceneSpec.from_json((out / "spec.json").read_text())
    assert read_video(out / "clip.mp4").num_frames == scene.frame_count(16)
    assert "AI-generated" in read_metadata(out / "clip.mp4")["comment"]
    scores = json.loads((out / "scores.json").read_text())
    assert set(scores) == {"overall", *DIMENSIONS}
    assert all(0.0 <= value <= 1.0 for value in scores.values())
    assert "prompt:" in capsys.readouterr().err


def test_demo_without_a_model_renders_a_clip_and_judges_it(tmp_path, monkeypatch):
    import kinetoscope.pipeline

    monkeypatch.setattr(kinetoscope.pipeline, "DEFAULT_MODEL_DIR", tmp_path / "no-model")
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    scores = json.loads((out / "scores.json").read_text())
    assert scores["overall"] >= 0.9  # a true render: the judge agrees with its spec
    scene = SceneSpec.from_json((out / "spec.json").read_text())
    assert read_video(out / "clip.mp4").num_frames == scene.frame_count(16)
