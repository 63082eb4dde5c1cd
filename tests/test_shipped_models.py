"""The models that ship inside the package: present, within the size rule, and working."""

import json

import torch
from safetensors import safe_open

from kinetoscope.models.vae import VideoVAE, decode_video, encode_video
from kinetoscope.pipeline import has_default_model, load_default
from kinetoscope.weights import DEFAULT_MODEL_DIR, SHIPPED_VAE_DIR
from kinetoscope.world.render import render
from kinetoscope.world.sampler import sample_scene

MAX_FILE_BYTES = 15 * 2**20


def test_every_shipped_file_is_under_15_mib_and_weights_are_bf16():
    files = [path for path in DEFAULT_MODEL_DIR.rglob("*") if path.is_file()]
    weights = [path for path in files if path.suffix == ".safetensors"]
    assert {path.parent.name for path in weights} == {"vae", "transformer"}
    assert all(path.stat().st_size < MAX_FILE_BYTES for path in files)
    for path in weights:
        with safe_open(path, framework="pt") as tensors:
            dtypes = {tensors.get_slice(name).get_dtype() for name in tensors.keys()}  # noqa: SIM118
        assert dtypes == {"BF16"}, path


def test_the_shipped_vae_reconstructs_a_physics_world_clip():
    vae = VideoVAE.from_pretrained(SHIPPED_VAE_DIR, dtype=torch.float32)
    clip = render(sample_scene(7, seconds=1.0), width=64, height=64, fps=16).frames  # (17, ...)
    latents, layout = encode_video(vae, clip)
    assert tuple(latents.shape) == (1, 16, 5, 8, 8)
    restored = decode_video(vae, latents, layout)
    assert restored.shape == clip.shape
    error = (restored.float() - clip.float()).abs().mean().item()
    assert error < 12.0  # levels of 255; an untrained VAE is off by about 100


def test_the_default_model_ships_and_generates():
    assert has_default_model()
    index = json.loads((DEFAULT_MODEL_DIR / "model_index.json").read_text())
    assert index["fps"] == 16 and index["trained_steps"] > 0
    pipeline = load_default()
    video = pipeline.generate("A red circle falls.", 1.0, steps=4).video
    side = pipeline.index.short_side
    assert tuple(video.frames.shape[:2]) == (17, side)  # 16:9 by default: the height is short
    assert video.frames.float().std() > 1.0  # not a flat frame
