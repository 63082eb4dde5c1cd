"""Checkpoint folders: round trips in float32 and bf16, sharding, atomic saves, clear errors
for broken checkpoints, and the shipping rule for every preset."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from kinetoscope.models import pretrained
from kinetoscope.models.pretrained import (
    CONFIG_FILE,
    INDEX_FILE,
    MAX_SHARD_BYTES,
    WEIGHTS_FILE,
    CheckpointError,
    config_from_dict,
    load_pretrained,
    save_pretrained,
)
from kinetoscope.models.vae import VAE_PRESETS, VAEConfig, VideoVAE

TINY = VAE_PRESETS["tiny"]


def scrambled_vae(seed: int = 0) -> VideoVAE:
    torch.manual_seed(seed)
    vae = VideoVAE(TINY)
    with torch.no_grad():
        for parameter in vae.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return vae.eval()


def clip() -> torch.Tensor:
    return torch.rand(1, 3, 5, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1


def reconstruct(vae: VideoVAE) -> torch.Tensor:
    with torch.no_grad():
        return vae(clip().to(next(vae.parameters()).dtype), sample=False)[0].float()


def files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


# ---- round trips -----------------------------------------------------------------------------


def test_float32_round_trip_is_exact(tmp_path):
    vae = scrambled_vae()
    folder = vae.save_pretrained(tmp_path / "vae")
    assert sorted(p.name for p in folder.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]
    config = json.loads((folder / CONFIG_FILE).read_text())
    assert config["model"] == "VideoVAE"
    assert config["channel_multipliers"] == list(TINY.channel_multipliers)
    loaded = VideoVAE.from_pretrained(folder)
    assert loaded.config == vae.config
    assert not loaded.training
    assert torch.equal(reconstruct(loaded), reconstruct(vae))


def test_bf16_save_is_close(tmp_path):
    vae = scrambled_vae()
    folder = vae.save_pretrained(tmp_path / "vae", dtype=torch.bfloat16)
    with safe_open(str(folder / WEIGHTS_FILE), framework="pt") as stored:
        assert {stored.get_tensor(name).dtype for name in stored.keys()} == {torch.bfloat16}  # noqa: SIM118
    loaded = VideoVAE.from_pretrained(folder)
    assert next(loaded.parameters()).dtype == torch.float32
    rounded = scrambled_vae()  # the same weights, rounded to bf16: exactly what was stored
    with torch.no_grad():
        for parameter in rounded.parameters():
            parameter.copy_(parameter.bfloat16().float())
    assert torch.equal(reconstruct(loaded), reconstruct(rounded))
    expected = reconstruct(vae)
    assert (reconstruct(loaded) - expected).abs().mean() < 0.02 * expected.abs().mean()
    as_bf16 = VideoVAE.from_pretrained(folder, dtype=torch.bfloat16)
    assert next(as_bf16.parameters()).dtype == torch.bfloat16
    assert (reconstruct(as_bf16) - expected).abs().mean() < 0.05 * expected.abs().mean()


def test_scaling_factors_round_trip(tmp_path):
    scale = tuple(0.5 + i for i in range(TINY.latent_channels))
    vae = VideoVAE(VAEConfig(**{**TINY.__dict__, "scaling_factor": scale, "shift_factor": -0.25}))
    loaded = VideoVAE.from_pretrained(vae.save_pretrained(tmp_path / "vae"))
    assert loaded.config.scaling_factor == scale
    assert loaded.config.shift_factor == -0.25


def test_sharding_kicks_in_and_loads_back(tmp_path):
    vae = scrambled_vae()
    limit = 40_000
    folder = save_pretrained(vae, vae.config, tmp_path / "vae", max_shard_bytes=limit)
    shards = sorted(folder.glob("model-*.safetensors"))
    assert len(shards) > 2
    assert not (folder / WEIGHTS_FILE).exists()
    assert all(shard.stat().st_size <= limit for shard in shards)
    index = json.loads((folder / INDEX_FILE).read_text())
    assert set(index["weight_map"]) == set(vae.state_dict())
    assert shards[0].name == f"model-00001-of-{len(shards):05d}.safetensors"
    assert torch.equal(reconstruct(VideoVAE.from_pretrained(folder)), reconstruct(vae))


def test_a_tensor_larger_than_a_shard_is_named(tmp_path):
    vae = scrambled_vae()
    with pytest.raises(CheckpointError, match="conv"):
        save_pretrained(vae, vae.config, tmp_path / "vae", max_shard_bytes=2_000)
    assert not (tmp_path / "vae").exists()


@pytest.mark.parametrize("name", list(VAE_PRESETS))
def test_every_preset_fits_the_shipping_rule(tmp_path, name):
    """bf16 weights: every file under 15 MiB, the whole model under 30 MiB."""
    vae = VideoVAE(VAE_PRESETS[name])
    largest = max(p.numel() for p in vae.parameters()) * 2
    assert largest < MAX_SHARD_BYTES < 15 * 2**20
    folder = vae.save_pretrained(tmp_path / name, dtype=torch.bfloat16)
    sizes = [path.stat().st_size for path in folder.glob("*.safetensors")]
    assert max(sizes) < 15 * 2**20
    assert sum(sizes) < 30 * 2**20


# ---- atomic saves ----------------------------------------------------------------------------


def test_a_failed_save_leaves_the_old_checkpoint_intact(tmp_path, monkeypatch):
    folder = scrambled_vae(seed=0).save_pretrained(tmp_path / "vae")
    before = files(folder)

    def full_disk(tensors, metadata=None):  # after config.json is already written
        raise OSError("disk full")

    monkeypatch.setattr(pretrained, "save", full_disk)
    with pytest.raises(CheckpointError, match="disk full"):
        scrambled_vae(seed=1).save_pretrained(folder)
    assert files(folder) == before
    assert [p.name for p in tmp_path.iterdir()] == ["vae"]  # no temporary folder left
    with pytest.raises(CheckpointError):
        scrambled_vae(seed=1).save_pretrained(tmp_path / "fresh")
    assert [p.name for p in tmp_path.iterdir()] == ["vae"]


def test_saved_files_are_readable_like_any_other_file(tmp_path):
    """Weights take the umask's permissions, as config.json does (not a private 0600), so a
    model saved by one user can be served by another."""
    previous = os.umask(0o022)
    try:
        vae = scrambled_vae()
        folder = save_pretrained(vae, vae.config, tmp_path / "vae", max_shard_bytes=40_000)
    finally:
        os.umask(previous)
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in folder.iterdir()}
    assert len(modes) > 3 and set(modes.values()) == {0o644}, modes


def test_resaving_replaces_stale_shards_and_keeps_other_files(tmp_path):
    vae = scrambled_vae()
    folder = save_pretrained(vae, vae.config, tmp_path / "vae", max_shard_bytes=40_000)
    (folder / "README.md").write_text("model card")
    vae.save_pretrained(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", CONFIG_FILE, WEIGHTS_FILE]
    assert (folder / "README.md").read_text() == "model card"
    assert torch.equal(reconstruct(VideoVAE.from_pretrained(folder)), reconstruct(vae))


def test_saving_over_a_file_is_refused(tmp_path):
    target = tmp_path / "vae"
    target.write_text("not a folder")
    with pytest.raises(CheckpointError, match="not a folder"):
        scrambled_vae().save_pretrained(target)
    assert target.read_text() == "not a folder"


# ---- broken checkpoints ----------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path) -> Path:
    return scrambled_vae().save_pretrained(tmp_path / "vae")


def _edit_config(folder: Path, **changes: object) -> None:
    path = folder / CONFIG_FILE
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


def test_missing_folder(tmp_path):
    with pytest.raises(CheckpointError, match="no such folder"):
        VideoVAE.from_pretrained(tmp_path / "nowhere")


def test_missing_config(saved):
    (saved / CONFIG_FILE).unlink()
    with pytest.raises(CheckpointError, match="missing model config"):
        VideoVAE.from_pretrained(saved)


def test_garbled_config(saved):
    (saved / CONFIG_FILE).write_text('{"model": "VideoVAE",\n "latent_channels": }')
    with pytest.raises(CheckpointError, match=r"garbled model config.*line 2"):
        VideoVAE.from_pretrained(saved)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"latent_channels": "sixteen"}, "'latent_channels' must be an integer"),
        ({"attention": 1}, "'attention' must be true or false"),
        ({"channel_multipliers": [1, "x", 1, 1]}, "'channel_multipliers' must be a list"),
        ({"scaling_factor": [1.0, 2.0]}, "scaling_factor must be one number or 16"),
        ({"colour": "blue"}, "unknown field.*'colour'"),
        ({"temporal_downsample": 8}, "temporal_downsample is fixed"),
        ({"model": "DiffusionTransformer"}, "expected a 'VideoVAE'.*'DiffusionTransformer'"),
    ],
)
def test_bad_config_fields_are_named(saved, changes, message):
    _edit_config(saved, **changes)
    with pytest.raises(CheckpointError, match=message):
        VideoVAE.from_pretrained(saved)


def test_missing_fields_take_their_defaults(saved):
    config = json.loads((saved / CONFIG_FILE).read_text())
    del config["norm_eps"]
    (saved / CONFIG_FILE).write_text(json.dumps(config))
    assert VideoVAE.from_pretrained(saved).config == TINY


def test_config_from_dict_needs_fields_without_defaults():
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Needs:
        width: int
        sizes: tuple[int, int] = (1, 2)

    assert config_from_dict(Needs, {"width": 3, "sizes": [4, 5]}, "here") == Needs(3, (4, 5))
    with pytest.raises(CheckpointError, match="here: missing field 'width'"):
        config_from_dict(Needs, {}, "here")
    with pytest.raises(CheckpointError, match="'sizes' must be a list of 2 items"):
        config_from_dict(Needs, {"width": 3, "sizes": [4]}, "here")


def test_missing_weights(saved):
    (saved / WEIGHTS_FILE).unlink()
    with pytest.raises(CheckpointError, match="missing weights"):
        VideoVAE.from_pretrained(saved)


def test_corrupt_weights(saved):
    (saved / WEIGHTS_FILE).write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        VideoVAE.from_pretrained(saved)


def test_missing_shard_is_named(tmp_path):
    vae = scrambled_vae()
    folder = save_pretrained(vae, vae.config, tmp_path / "vae", max_shard_bytes=40_000)
    victim = sorted(folder.glob("model-*.safetensors"))[1]
    victim.unlink()
    with pytest.raises(CheckpointError, match=f"missing shard '{victim.name}'"):
        VideoVAE.from_pretrained(folder)


def test_shape_mismatch_names_the_tensor(saved):
    _edit_config(saved, base_channels=8)
    with pytest.raises(CheckpointError, match=r"tensor 'encoder\.conv_in\.conv\.weight' has shape"):
        VideoVAE.from_pretrained(saved)


def test_missing_and_unexpected_tensors_are_named(saved, tmp_path):
    _edit_config(saved, attention=False)
    with pytest.raises(CheckpointError, match=r"unexpected tensor.*attention"):
        VideoVAE.from_pretrained(saved)
    plain = VideoVAE(VAEConfig(**{**TINY.__dict__, "attention": False}))
    folder = plain.save_pretrained(tmp_path / "plain")
    _edit_config(folder, attention=True)
    with pytest.raises(CheckpointError, match=r"missing tensor.*attention"):
        load_pretrained(VideoVAE, VAEConfig, folder)
