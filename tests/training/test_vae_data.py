"""The VAE's training batches: shapes, ranges, determinism, resumption, real camera motion."""

import numpy as np
import pytest
import torch

from kinetoscope.errors import KinetoscopeError
from kinetoscope.training.vae_data import (
    SKIMAGE_IMAGES,
    VAEBatchStream,
    VAEDataConfig,
    camera_clip,
    image_bank,
    make_batch,
)

FEW_IMAGES = ("chelsea", "coffee", "astronaut")
SMALL = VAEDataConfig(batch_size=3, size=32, frames=9, skimage_images=FEW_IMAGES)


def test_batches_are_float_video_in_the_model_range():
    stream = VAEBatchStream(SMALL)
    shapes = set()
    for _ in range(6):
        batch = next(stream)
        assert batch.dtype == torch.float32
        assert batch.shape[:2] == (3, 3) and batch.shape[3:] == (32, 32)
        assert batch.min() >= -1.0 and batch.max() <= 1.0
        shapes.add(batch.shape[2])
    assert shapes <= {1, 9}


def test_a_seed_gives_the_same_batches_and_another_seed_others():
    first = [make_batch(SMALL, step) for step in range(3)]
    again = [make_batch(SMALL, step) for step in range(3)]
    other = VAEDataConfig(**{**SMALL.to_dict(), "seed": 1})
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0], make_batch(other, 0))


def test_the_stream_resumes_exactly_from_its_state():
    stream = VAEBatchStream(SMALL)
    for _ in range(2):
        next(stream)
    state = stream.state_dict()
    expected = [next(stream) for _ in range(2)]
    resumed = VAEBatchStream(SMALL)
    resumed.load_state_dict(state)
    assert state == {"step": 2, "seed": 0}
    assert all(torch.equal(a, next(resumed)) for a in expected)


def test_worker_processes_make_the_same_batches():
    config = VAEDataConfig(batch_size=2, size=16, frames=5, skimage_images=FEW_IMAGES)
    in_process = VAEBatchStream(config, step=1)
    in_workers = VAEBatchStream(config, step=1, workers=1)
    for _ in range(2):
        assert torch.equal(next(in_process), next(in_workers))


def test_all_three_kinds_and_image_batches_appear():
    config = VAEDataConfig(
        batch_size=4, size=16, frames=5, skimage_images=FEW_IMAGES, image_batch_probability=0.3
    )
    frames = [make_batch(config, step).shape[2] for step in range(12)]
    assert 1 in frames and 5 in frames
    world_only = VAEDataConfig(**{**config.to_dict(), "camera_weight": 0, "still_weight": 0})
    batch = make_batch(world_only, 1)
    assert batch.shape[0] == 4


def test_world_clips_move_and_are_not_photographs():
    config = VAEDataConfig(
        batch_size=4,
        size=32,
        frames=17,
        camera_weight=0,
        still_weight=0,
        image_batch_probability=0,
        skimage_images=FEW_IMAGES,
    )
    batch = make_batch(config, 0)  # (4, 3, 17, 32, 32) uint8
    moving = [(clip[:, 1:].int() - clip[:, :-1].int()).abs().sum() > 0 for clip in batch]
    assert sum(bool(m) for m in moving) >= 2  # most scenes move (a "still" scene may not)


def _clip(moving, frames=9, seed=0):
    image = image_bank(("astronaut",), ())[0]
    rng = np.random.default_rng(seed)
    return camera_clip(image, SMALL, rng, frames, moving)


def test_camera_clips_move_every_frame_and_stills_do_not():
    for seed in range(4):
        moving = _clip(True, seed=seed).float()  # (3, T, S, S)
        steps = (moving[:, 1:] - moving[:, :-1]).abs().mean(dim=(0, 2, 3))  # (T-1,)
        assert (steps > 0).all(), seed
        still = _clip(False, seed=seed)
        assert torch.equal(still[:, 1:], still[:, :-1].clone())


def test_camera_clips_show_the_photograph():
    clip = _clip(True)
    assert clip.dtype == torch.uint8 and clip.shape == (3, 9, 32, 32)
    assert clip.float().std() > 10  # a textured view, not a blank edge of the canvas


def test_every_bundled_image_loads_as_rgb():
    for image in image_bank(SKIMAGE_IMAGES, ()):
        assert image.dtype == torch.uint8 and image.shape[0] == 3 and min(image.shape[1:]) >= 128


def test_images_from_a_folder_are_used(tmp_path):
    from PIL import Image

    pixels = np.zeros((40, 48, 3), dtype=np.uint8)
    pixels[..., 0] = 200
    Image.fromarray(pixels).save(tmp_path / "red.png")
    bank = image_bank((), (str(tmp_path),))
    assert len(bank) == 1 and bank[0].shape == (3, 40, 48)
    assert torch.equal(bank[0].permute(1, 2, 0), torch.from_numpy(pixels))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"frames": 8}, r"1 \+ 4k"),
        ({"size": 20}, "multiple of 8"),
        ({"batch_size": 0}, "batch size"),
        ({"world_weight": 0, "camera_weight": 0, "still_weight": 0}, "weights"),
        ({"skimage_images": ("nope",)}, "unknown scikit-image"),
        ({"image_folders": ("/usr/share/doc/opencv-doc/examples/data",)}, "held-out"),
    ],
)
def test_bad_configs_are_refused_with_a_reason(changes, message):
    with pytest.raises(KinetoscopeError, match=message):
        VAEDataConfig(**{**SMALL.to_dict(), **changes}).validate()
