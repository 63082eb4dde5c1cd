"""C2PA manifests signed and read with the real C2PA library, on real videos."""

import hashlib
import struct
from pathlib import Path

import pytest
import torch

from kinetoscope import __version__
from kinetoscope.io.video import Video, read_video, write_video
from kinetoscope.provenance.c2pa import (
    DIGITAL_SOURCE_TYPE,
    REDACTED,
    Ingredient,
    ProvenanceError,
    ProvenanceRecord,
    file_sha256,
    read_manifest,
    sidecar_path,
    sign_video,
    weights_sha256,
)
from kinetoscope.provenance.identity import (
    CERT_ENV,
    KEY_ENV,
    TRUST_ENV,
    SigningIdentity,
    load_identity,
)

PROMPT = "A red circle falls and bounces."


def make_video(path: Path, seed: int = 0) -> Path:
    """A small real video: 9 frames of 64x48 noise at 8 fps."""
    generator = torch.Generator().manual_seed(seed)
    frames = torch.randint(0, 256, (9, 48, 64, 3), dtype=torch.uint8, generator=generator)
    return write_video(path, Video(frames=frames, fps=8))


def make_record(**changes: object) -> ProvenanceRecord:
    fields = {
        "model_name": "kinetoscope-test",
        "model_sha256": hashlib.sha256(b"weights").hexdigest(),
        "parameters": {"prompt": PROMPT, "negative_prompt": "blurry", "seed": 7, "steps": 20},
        "creators": ("Ada Lovelace",),
    }
    return ProvenanceRecord(**{**fields, **changes})


def flip_media_byte(path: Path) -> None:
    """Invert one byte in the middle of an mp4's media data (its mdat box)."""
    data = bytearray(path.read_bytes())
    offset = 0
    while offset < len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        header = 8
        if size == 1:  # a 64-bit size follows the type
            size, header = struct.unpack(">Q", data[offset + 8 : offset + 16])[0], 16
        if kind == b"mdat":
            data[offset + header + (size - header) // 2] ^= 0xFF
            path.write_bytes(data)
            return
        offset += size or len(data) - offset
    raise AssertionError(f"{path} has no mdat box")


def test_a_signed_mp4_reads_back_valid_and_trusted(tmp_path):
    clip = make_video(tmp_path / "clip.mp4")
    record = make_record()
    assert sign_video(clip, record) == clip
    report = read_manifest(clip)
    assert (report.state, report.trusted, report.reason) == ("valid", True, None)
    summary = report.summary
    assert (summary["generator"], summary["version"]) == ("Kinetoscope", __version__)
    assert (summary["model"], summary["model_sha256"]) == (record.model_name, record.model_sha256)
    assert summary["created"] == record.created
    assert summary["digital_source_type"] == DIGITAL_SOURCE_TYPE
    assert summary["parameters"] == record.parameters
    assert summary["prompt_redacted"] is False
    assert summary["attribution"] == ["Ada Lovelace"]
    assert summary["ingredients"] == []
    assert summary["signer"].startswith("Kinetoscope local signer")


def test_signing_leaves_the_pictures_as_they_were(tmp_path):
    clip = make_video(tmp_path / "clip.mp4")
    before = read_video(clip)
    sign_video(clip, make_record())
    after = read_video(clip)
    assert torch.equal(after.frames, before.frames)
    assert after.fps == before.fps
    assert [path.name for path in tmp_path.iterdir() if path.name != "config"] == ["clip.mp4"]


def test_a_redacted_prompt_is_not_in_the_file(tmp_path):
    shots = [{"prompt": "A ball rolls.", "seconds": 2}, {"prompt": "It stops.", "seconds": 1}]
    parameters = {"prompt": PROMPT, "negative_prompt": "blurry", "seed": 7, "shots": shots}
    plain, redacted = make_video(tmp_path / "plain.mp4"), make_video(tmp_path / "redacted.mp4")
    sign_video(plain, make_record(parameters=parameters))
    sign_video(redacted, make_record(parameters=parameters, redact_prompt=True))
    assert PROMPT.encode() in plain.read_bytes()
    assert PROMPT.encode() not in redacted.read_bytes()
    assert b"A ball rolls." not in redacted.read_bytes()
    report = read_manifest(redacted)
    assert report.state == "valid"
    assert report.summary["prompt_redacted"] is True
    assert report.summary["parameters"] == {
        "prompt": REDACTED,
        "negative_prompt": REDACTED,
        "seed": 7,
        "shots": [{"prompt": REDACTED, "seconds": 2}, {"prompt": REDACTED, "seconds": 1}],
    }


def test_ingredients_carry_their_hash_relationship_and_rights(tmp_path):
    parent = make_video(tmp_path / "parent.mp4", seed=1)
    guide = make_video(tmp_path / "guide.gif", seed=2)
    ingredients = (
        Ingredient.from_file(parent, relationship="parentOf", rights_attested=True),
        Ingredient.from_file(guide),
    )
    clip = make_video(tmp_path / "clip.mp4")
    sign_video(clip, make_record(ingredients=ingredients))
    report = read_manifest(clip)
    assert report.state == "valid"
    assert report.summary["ingredients"] == [
        {
            "title": "parent.mp4",
            "media_type": "video/mp4",
            "relationship": "parentOf",
            "sha256": hashlib.sha256(parent.read_bytes()).hexdigest(),
            "rights_attested": True,
        },
        {
            "title": "guide.gif",
            "media_type": "image/gif",
            "relationship": "inputTo",
            "sha256": hashlib.sha256(guide.read_bytes()).hexdigest(),
            "rights_attested": False,
        },
    ]


def test_changing_one_byte_of_the_media_makes_the_manifest_invalid(tmp_path):
    clip = make_video(tmp_path / "clip.mp4")
    sign_video(clip, make_record())
    flip_media_byte(clip)
    report = read_manifest(clip)
    assert report.state == "invalid"
    assert not report.trusted
    assert "mismatch" in report.reason
    assert report.summary["model"] == "kinetoscope-test"  # still says what it claimed


def test_an_unsigned_file_has_a_missing_manifest(tmp_path):
    clip = make_video(tmp_path / "clip.mp4")
    report = read_manifest(clip)
    assert (report.state, report.trusted, report.summary) == ("missing", False, {})
    assert "no C2PA manifest" in report.reason


def test_a_chain_to_another_root_is_valid_but_untrusted(tmp_path):
    clip = make_video(tmp_path / "clip.mp4")
    sign_video(clip, make_record())
    other_root = load_identity(tmp_path / "other").root_ca_path
    for anchors in ([other_root], []):
        report = read_manifest(clip, trust_anchors=anchors)
        assert (report.state, report.trusted) == ("valid", False)
        assert "does not chain to a trusted root" in report.reason


def test_a_trust_anchor_that_is_no_certificate_is_refused(tmp_path):
    clip = make_video(tmp_path / "clip.mp4")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(ProvenanceError, match=r"junk\.pem: not a PEM certificate"):
        read_manifest(clip, trust_anchors=[junk])


def test_a_user_configured_chain_signs_and_is_trusted_through_its_anchor(tmp_path, monkeypatch):
    elsewhere = load_identity(tmp_path / "elsewhere")
    monkeypatch.setenv(CERT_ENV, str(tmp_path / "elsewhere" / "c2pa" / "signer-chain.pem"))
    monkeypatch.setenv(KEY_ENV, str(tmp_path / "elsewhere" / "c2pa" / "signer.key"))
    clip = make_video(tmp_path / "clip.mp4")
    sign_video(clip, make_record())
    assert read_manifest(clip).trusted is False  # its root is not yet an anchor
    monkeypatch.setenv(TRUST_ENV, str(elsewhere.root_ca_path))
    report = read_manifest(clip)
    assert (report.state, report.trusted) == ("valid", True)


def test_a_webm_gets_a_sidecar_bound_to_its_bytes(tmp_path):
    clip = make_video(tmp_path / "clip.webm")
    original = clip.read_bytes()
    sidecar = sign_video(clip, make_record())
    assert sidecar == sidecar_path(clip) == tmp_path / "clip.webm.c2pa"
    assert clip.read_bytes() == original
    report = read_manifest(clip)
    assert (report.state, report.trusted) == ("valid", True)
    assert report.summary["parameters"]["prompt"] == PROMPT
    changed = bytearray(original)
    changed[len(changed) // 2] ^= 0x01
    clip.write_bytes(changed)
    report = read_manifest(clip)
    assert report.state == "invalid"
    assert "mismatch" in report.reason
    sidecar.unlink()
    assert read_manifest(clip).state == "missing"


def test_a_damaged_sidecar_is_invalid(tmp_path):
    clip = make_video(tmp_path / "clip.webm")
    sidecar_path(clip).write_bytes(b"not a manifest store")
    report = read_manifest(clip)
    assert report.state == "invalid"
    assert report.reason


def test_a_gif_carries_its_manifest_inside(tmp_path):
    clip = make_video(tmp_path / "clip.gif")
    before = read_video(clip)
    assert sign_video(clip, make_record()) == clip
    assert not sidecar_path(clip).exists()
    assert read_manifest(clip).state == "valid"
    assert torch.equal(read_video(clip).frames, before.frames)


def test_signing_again_replaces_the_manifest(tmp_path):
    clip = make_video(tmp_path / "clip.mp4")
    sign_video(clip, make_record())
    sign_video(clip, make_record(parameters={"prompt": "Second take.", "seed": 8}))
    report = read_manifest(clip)
    assert report.state == "valid"
    assert report.summary["parameters"] == {"prompt": "Second take.", "seed": 8}


def test_a_failed_signing_leaves_the_file_untouched(tmp_path):
    clip = make_video(tmp_path / "clip.mp4")
    original = clip.read_bytes()
    broken = SigningIdentity(certificate_chain_pem=b"junk", private_key_pem=b"junk")
    with pytest.raises(ProvenanceError, match="signing failed"):
        sign_video(clip, make_record(), broken)
    assert clip.read_bytes() == original
    assert sorted(path.name for path in tmp_path.iterdir()) == ["clip.mp4"]


def test_bad_records_and_paths_are_refused_before_signing(tmp_path):
    with pytest.raises(ProvenanceError, match="relationship"):
        Ingredient(title="a.png", sha256="0" * 64, relationship="friendOf")
    with pytest.raises(ProvenanceError, match="sha256"):
        Ingredient(title="a.png", sha256="abc")
    with pytest.raises(ProvenanceError, match="model_sha256"):
        make_record(model_sha256="not a hash")
    with pytest.raises(ProvenanceError, match="JSON"):
        make_record(parameters={"size": {1, 2}})
    with pytest.raises(ProvenanceError, match="ISO 8601"):
        make_record(created="yesterday")
    with pytest.raises(ProvenanceError, match="no such file"):
        sign_video(tmp_path / "absent.mp4", make_record())
    with pytest.raises(ProvenanceError, match="no such file"):
        read_manifest(tmp_path / "absent.mp4")
    assert not (tmp_path / "config").exists()  # refused before an identity was made


def test_weights_hash_covers_weights_and_configs_by_relative_path(tmp_path):
    model = tmp_path / "model"
    (model / "vae").mkdir(parents=True)
    (model / "vae" / "config.json").write_text('{"channels": 16}')
    (model / "vae" / "weights.safetensors").write_bytes(b"\x00" * 64)
    (model / "model_index.json").write_text("{}")
    first = weights_sha256(model)
    (model / "README.md").write_text("not part of the weights")
    assert weights_sha256(model) == first
    (model / "vae" / "weights.safetensors").write_bytes(b"\x00" * 63 + b"\x01")
    changed = weights_sha256(model)
    assert changed != first
    (model / "vae" / "weights.safetensors").rename(model / "vae" / "other.safetensors")
    assert weights_sha256(model) != changed
    assert file_sha256(model / "model_index.json") == hashlib.sha256(b"{}").hexdigest()
    with pytest.raises(ProvenanceError, match="no such model folder"):
        weights_sha256(model / "missing")
    (model / "empty").mkdir()
    with pytest.raises(ProvenanceError, match=r"no \.safetensors or \.json"):
        weights_sha256(model / "empty")
