"""The VAE loss: named terms, exact pixel terms, the discriminator and its adaptive weight."""

import pytest
import torch

from kinetoscope.errors import KinetoscopeError
from kinetoscope.models.vae import VAE_PRESETS, VideoVAE
from kinetoscope.training.losses import PatchDiscriminator, VAELoss, VAELossConfig


class _Posterior:
    """Stands in for the encoder's posterior: only kl() is used."""

    def __init__(self, kl):
        self._kl = kl

    def kl(self):
        return self._kl


def _video(seed=0, shape=(2, 3, 5, 16, 16)):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_pixel_terms_are_exact_means():
    x, y = _video(0), _video(1)
    loss = VAELoss(VAELossConfig(reconstruction="l1+l2", perceptual_weight=0, kl_weight=0.5))
    terms = loss(x, y, _Posterior(torch.full((2, 16, 2, 2, 2), 3.0)))
    assert set(terms) == {"l1", "l2", "kl", "total"}
    assert torch.allclose(terms["l1"], (x - y).abs().mean())
    assert torch.allclose(terms["l2"], (x - y).pow(2).mean())
    assert terms["kl"].item() == 3.0
    assert torch.allclose(terms["total"], terms["l1"] + terms["l2"] + 1.5)


def test_the_perceptual_term_is_named_weighted_and_zero_for_a_perfect_copy():
    x = _video(0)
    loss = VAELoss(VAELossConfig(perceptual_weight=0.25, kl_weight=0))
    perfect = loss(x, x.clone(), _Posterior(torch.zeros(1)))
    assert set(perfect) == {"l1", "perceptual", "kl", "total"}
    assert perfect["total"].item() == 0.0
    terms = loss(x, _video(1), _Posterior(torch.zeros(1)))
    assert terms["perceptual"] > 0
    assert torch.allclose(terms["total"], terms["l1"] + 0.25 * terms["perceptual"])


def test_perceptual_frames_subsample_the_same_frames_of_both_clips():
    x = _video(0, (1, 3, 9, 16, 16))
    loss = VAELoss(VAELossConfig(perceptual_frames=2, kl_weight=0))
    picker = torch.Generator().manual_seed(0)
    terms = loss(x, x.clone(), _Posterior(torch.zeros(1)), generator=picker)
    assert terms["perceptual"].item() == 0.0  # the frames chosen are aligned


def test_the_discriminator_gives_patch_logits_and_hinge_losses():
    x = _video(0, (2, 3, 5, 32, 32))
    for kind, frames in (("3d", 5), ("2d", 10)):
        discriminator = PatchDiscriminator(kind, channels=8, layers=2)
        logits = discriminator(x)
        assert logits.shape[0] == (2 if kind == "3d" else frames) and logits.numel() > 1
    config = VAELossConfig(perceptual_weight=0, discriminator_weight=0.5, discriminator_channels=8)
    loss = VAELoss(config)
    terms = loss.discriminator_loss(x, _video(1, x.shape))
    assert set(terms) == {"discriminator", "logits_real", "logits_fake"}
    assert terms["discriminator"] >= 0


def test_the_adversarial_term_uses_the_adaptive_weight_and_starts_late():
    torch.manual_seed(0)
    vae = VideoVAE(VAE_PRESETS["tiny"])
    x = _video(0, (1, 3, 5, 32, 32))
    config = VAELossConfig(
        perceptual_weight=0,
        discriminator_weight=0.5,
        discriminator_channels=8,
        discriminator_layers=2,
        discriminator_start=10,
    )
    loss = VAELoss(config)
    reconstruction, posterior = vae(x)
    last = vae.decoder.conv_out.conv.weight
    early = loss(x, reconstruction, posterior, step=9, last_layer=last)
    assert "generator_adversarial" not in early
    late = loss(x, reconstruction, posterior, step=10, last_layer=last)
    weight = late["adaptive_weight"]
    assert weight > 0 and not weight.requires_grad
    expected = late["l1"] + config.kl_weight * late["kl"]
    expected = expected + 0.5 * weight * late["generator_adversarial"]
    assert torch.allclose(late["total"], expected)
    late["total"].backward()
    assert last.grad is not None


def test_no_discriminator_means_no_discriminator_loss():
    loss = VAELoss(VAELossConfig(perceptual_weight=0))
    assert loss.discriminator is None and loss.perceptual is None
    with pytest.raises(KinetoscopeError, match="no discriminator"):
        loss.discriminator_loss(_video(0), _video(1))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"reconstruction": "l3"}, "reconstruction loss"),
        ({"discriminator_kind": "4d"}, "discriminator kind"),
        ({"kl_weight": -1.0}, "kl_weight"),
        ({"perceptual_frames": 0}, "perceptual_frames"),
    ],
)
def test_bad_loss_configs_are_refused(changes, message):
    with pytest.raises(KinetoscopeError, match=message):
        VAELossConfig(**changes).validate()
