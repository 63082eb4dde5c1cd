"""The perceptual distance: the shipped ImageNet weights load into our network and classify a
photograph correctly (which proves every tensor went to its place), and the distance behaves."""

import pytest
import torch
import torch.nn.functional as F

from kinetoscope.training.perceptual import (
    EfficientNetLite0,
    PerceptualDistance,
    imagenet_normalize,
    load_efficientnet_lite0,
)
from kinetoscope.training.vae_data import image_bank

DOMESTIC_CATS = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967


@pytest.fixture(scope="module")
def network():
    return load_efficientnet_lite0()


@pytest.fixture(scope="module")
def distance(network):
    return PerceptualDistance(network)


def _photo(name, size=224):
    """A scikit-image photograph, centre-cropped and resized, in [-1, 1], (1, 3, S, S)."""
    image = image_bank((name,), ())[0].float()[None] / 127.5 - 1  # (1, 3, H, W)
    height, width = image.shape[-2:]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = image[..., top : top + side, left : left + side]
    return F.interpolate(square, size=(size, size), mode="bilinear", antialias=True)


def test_the_shipped_weights_load_strictly_and_classify_a_cat_and_a_coffee(network):
    with torch.no_grad():
        cat = network(imagenet_normalize(_photo("chelsea"))).topk(5).indices[0].tolist()
        coffee = network(imagenet_normalize(_photo("coffee"))).topk(5).indices[0].tolist()
    assert cat[0] in DOMESTIC_CATS and len(DOMESTIC_CATS & set(cat)) >= 2
    assert coffee[0] == ESPRESSO


def test_the_network_is_frozen_and_stays_in_eval_mode(distance):
    distance.train()
    assert not distance.network.training
    assert not any(p.requires_grad for p in distance.parameters())


def test_parameter_names_match_the_state_dict_exactly(network):
    assert set(EfficientNetLite0().state_dict()) == set(network.state_dict())


def test_distance_is_zero_for_identical_inputs_and_grows_with_change(distance):
    image = _photo("astronaut", size=64)
    noise = torch.randn(image.shape, generator=torch.Generator().manual_seed(0))
    slightly = (image + 0.05 * noise).clamp(-1, 1)
    badly = (image + 0.5 * noise).clamp(-1, 1)
    with torch.no_grad():
        same, near, far = (distance(x, image).item() for x in (image, slightly, badly))
    assert same == 0.0
    assert 0 < near < far


def test_videos_are_scored_per_frame_and_gradients_reach_the_input_only(distance):
    target = torch.rand(2, 3, 5, 32, 32) * 2 - 1
    prediction = (target + 0.1 * torch.randn_like(target)).requires_grad_(True)
    per_frame = distance(prediction, target)  # (B, T)
    assert per_frame.shape == (2, 5)
    per_frame.mean().backward()
    assert prediction.grad is not None and prediction.grad.abs().sum() > 0
    assert all(p.grad is None for p in distance.parameters())


def test_batch_norm_statistics_do_not_move(distance):
    before = distance.network._bn0.running_mean.clone()
    distance.train()
    distance(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32))
    assert torch.equal(before, distance.network._bn0.running_mean)
