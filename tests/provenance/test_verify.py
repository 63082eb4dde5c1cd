"""`verify_file` and `kinetoscope verify`: the manifest and the watermark of a real video."""

import hashlib
import json
from pathlib import Path

import torch

from kinetoscope.cli import main
from kinetoscope.io.video import Video, write_video
from kinetoscope.provenance.c2pa import ProvenanceRecord, sidecar_path, sign_video
from kinetoscope.provenance.identity import (
    load_identity,
)
from kinetoscope.provenance.verify import verify_file
from kinetoscope.provenance.watermark import PAYLOAD_BITS, embed_watermark


def make_video(path: Path) -> Path:
    """A small real video: 9 frames of 64x48 noise at 8 fps."""
    generator = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (9, 48, 64, 3), dtype=torch.uint8, generator=generator)
    return write_video(path, Video(frames=frames, fps=8))


def signed_video(path: Path) -> Path:
    record = ProvenanceRecord(
        model_name="kinetoscope-test",
        model_sha256=hashlib.sha256(b"weights").hexdigest(),
        parameters={"prompt": "A red circle falls.", "seed": 7},
    )
    sign_video(make_video(path), record)
    return path


def verify_json(path: Path, capsys, *options: str) -> dict:
    assert main(["verify", str(path), "--json", *options]) == 0
    return json.loads(capsys.readouterr().out)


def assert_watermark_shape(watermark: dict) -> None:
    assert set(watermark) == {"checked", "detected", "payload", "confidence"}
    assert watermark["checked"] is True
    assert isinstance(watermark["detected"], bool)
    assert isinstance(watermark["confidence"], float)
    if watermark["payload"] is not None:
        int(watermark["payload"], 16)  # a hex string


def test_verify_file_reports_the_manifest_and_the_watermark(tmp_path):
    clip = signed_video(tmp_path / "clip.mp4")
    report = verify_file(clip)
    assert (report.manifest.state, report.manifest.trusted) == ("valid", True)
    as_dict = report.to_dict()
    assert as_dict["file"] == str(clip)
    assert as_dict["summary"]["model"] == "kinetoscope-test"
    assert_watermark_shape(as_dict["watermark"])


def test_a_watermarked_signed_video_shows_both_marks(tmp_path, capsys):
    generator = torch.Generator().manual_seed(1)
    frames = torch.randint(0, 256, (9, 128, 128, 3), dtype=torch.uint8, generator=generator)
    payload = 0x2F5A11C3
    clip = write_video(tmp_path / "clip.mp4", Video(embed_watermark(frames, payload), fps=8))
    sign_video(clip, ProvenanceRecord(model_name="m", model_sha256="0" * 64))
    report = verify_json(clip, capsys)
    assert (report["manifest"], report["trusted"]) == ("valid", True)
    assert report["watermark"]["detected"] is True
    assert report["watermark"]["payload"] == f"{payload:0{PAYLOAD_BITS // 4}x}"
    assert verify_json(make_video(tmp_path / "plain.mp4"), capsys)["watermark"]["payload"] is None


def test_frames_too_small_for_a_watermark_are_not_searched(tmp_path, capsys):
    tiny = write_video(
        tmp_path / "tiny.mp4", Video(torch.zeros(5, 16, 16, 3, dtype=torch.uint8), 8)
    )
    report = verify_json(tiny, capsys)
    assert report["manifest"] == "missing"
    assert report["watermark"] == {
        "checked": False,
        "detected": False,
        "payload": None,
        "confidence": 0.0,
    }
    assert main(["verify", str(tiny)]) == 0
    assert "not checked" in capsys.readouterr().out


def test_verify_json_has_the_documented_keys(tmp_path, capsys):
    report = verify_json(signed_video(tmp_path / "clip.mp4"), capsys)
    assert {"manifest", "trusted", "watermark", "reason", "summary"} <= set(report)
    assert (report["manifest"], report["trusted"], report["reason"]) == ("valid", True, None)
    assert report["summary"]["parameters"] == {"prompt": "A red circle falls.", "seed": 7}
    assert_watermark_shape(report["watermark"])


def test_verify_reports_missing_and_invalid_manifests_with_status_zero(tmp_path, capsys):
    assert verify_json(make_video(tmp_path / "plain.mp4"), capsys)["manifest"] == "missing"
    clip = make_video(tmp_path / "clip.webm")
    sidecar_path(clip).write_bytes(b"not a manifest store")
    report = verify_json(clip, capsys)
    assert (report["manifest"], report["trusted"]) == ("invalid", False)
    assert report["reason"]
    assert_watermark_shape(report["watermark"])


def test_verify_trusts_only_the_given_roots(tmp_path, capsys):
    clip = signed_video(tmp_path / "clip.mp4")
    other_root = load_identity(tmp_path / "other").root_ca_path
    report = verify_json(clip, capsys, "--trust", str(other_root))
    assert (report["manifest"], report["trusted"]) == ("valid", False)


def test_verify_prints_a_readable_summary(tmp_path, capsys):
    assert main(["verify", str(signed_video(tmp_path / "clip.mp4"))]) == 0
    out = capsys.readouterr().out
    for expected in ("manifest", "valid", "trusted", "kinetoscope-test", "watermark"):
        assert expected in out


def test_an_unreadable_file_is_an_error_with_status_two(tmp_path, capsys):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video")
    assert main(["verify", str(text), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "notes.mp4" in captured.err and "error" in captured.err
    assert main(["verify", str(tmp_path / "absent.mp4")]) == 2
    assert "no such file" in capsys.readouterr().err
