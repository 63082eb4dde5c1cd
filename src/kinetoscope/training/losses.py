"""The video autoencoder's training loss: reconstruction, perceptual, KL and (optionally) an
adversarial term from a patch discriminator, in one module with one config.

Every term is a mean, so weights do not depend on the batch, clip length or frame size:

- ``reconstruction``: mean |x - x̂| (L1), mean (x - x̂)^2 (L2), or their sum, on [-1, 1] pixels.
- ``perceptual``: mean over frames of `PerceptualDistance` (LPIPS-like, frozen
  EfficientNet-Lite0), optionally on a random subset of each clip's frames to save compute.
- ``kl``: KL(q(z|x) || N(0, 1)) averaged over latent elements (not summed): a weight of 1e-6
  here is about 50 times the pull of the 1e-6 that latent-diffusion VAEs put on a sum.
- ``generator_adversarial``: hinge generator loss -mean D(x̂), scaled by the adaptive weight of
  Esser et al. 2021 (taming transformers): the ratio of the gradient norms of the
  reconstruction-plus-perceptual loss and of the adversarial loss at the decoder's last layer,
  so neither swamps the other. Only from ``discriminator_start`` on.
- `VAELoss.discriminator_loss`: hinge loss mean relu(1 - D(x)) + mean relu(1 + D(x̂)).

The discriminator is off by default (``discriminator_weight = 0``): then none is built.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kinetoscope.errors import KinetoscopeError
from kinetoscope.training.perceptual import PerceptualDistance

RECONSTRUCTION_KINDS = ("l1", "l2", "l1+l2")
DISCRIMINATOR_KINDS = ("3d", "2d")


@dataclass(frozen=True)
class VAELossConfig:
    """Which terms the loss has and how much each counts."""

    reconstruction: str = "l1"  # one of RECONSTRUCTION_KINDS
    reconstruction_weight: float = 1.0
    perceptual_weight: float = 0.1  # 0 turns the perceptual network off (and it is not loaded)
    perceptual_frames: int | None = None  # frames per clip the perceptual term sees; None: all
    kl_weight: float = 1e-6
    discriminator_weight: float = 0.0  # 0: no discriminator
    discriminator_kind: str = "3d"  # one of DISCRIMINATOR_KINDS: 3D patches or per-frame 2D
    discriminator_channels: int = 64
    discriminator_layers: int = 3
    discriminator_start: int = 0  # training step from which the adversarial term counts
    adaptive_weight_max: float = 1e4

    def validate(self) -> VAELossConfig:
        """Raise KinetoscopeError naming the first bad field; return self."""
        if self.reconstruction not in RECONSTRUCTION_KINDS:
            raise KinetoscopeError(
                f"reconstruction loss must be one of {RECONSTRUCTION_KINDS}, "
                f"got {self.reconstruction!r}"
            )
        if self.discriminator_kind not in DISCRIMINATOR_KINDS:
            raise KinetoscopeError(
                f"discriminator kind must be one of {DISCRIMINATOR_KINDS}, "
                f"got {self.discriminator_kind!r}"
            )
        for name in ("reconstruction_weight", "perceptual_weight", "kl_weight"):
            if getattr(self, name) < 0:
                raise KinetoscopeError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.discriminator_weight < 0:
            raise KinetoscopeError(
                f"discriminator_weight must be >= 0, got {self.discriminator_weight}"
            )
        if self.perceptual_frames is not None and self.perceptual_frames < 1:
            raise KinetoscopeError(
                f"perceptual_frames must be at least 1 or None, got {self.perceptual_frames}"
            )
        if self.discriminator_layers < 1 or self.discriminator_channels < 1:
            raise KinetoscopeError("the discriminator needs at least 1 layer and 1 channel")
        return self

    @property
    def uses_discriminator(self) -> bool:
        return self.discriminator_weight > 0


# ---- discriminator ---------------------------------------------------------------------------


class PatchDiscriminator(nn.Module):
    """PatchGAN (Isola et al. 2017): strided convolutions to a map of real/fake logits, one per
    overlapping patch. ``kind="3d"`` convolves space and time (kernels 3x4x4, time kept);
    ``kind="2d"`` judges every frame on its own. GroupNorm, not BatchNorm, so a sample's
    logits never depend on the rest of the batch."""

    def __init__(self, kind: str = "3d", channels: int = 64, layers: int = 3) -> None:
        super().__init__()
        self.kind = kind
        conv = nn.Conv3d if kind == "3d" else nn.Conv2d
        kernel = (3, 4, 4) if kind == "3d" else 4
        stride = (1, 2, 2) if kind == "3d" else 2
        padding = (1, 1, 1) if kind == "3d" else 1
        blocks: list[nn.Module] = [conv(3, channels, kernel, stride, padding), nn.LeakyReLU(0.2)]
        width = channels
        for layer in range(1, layers + 1):
            out = channels * min(2**layer, 8)
            last = layer == layers
            blocks += [
                conv(width, out, kernel, 1 if last else stride, padding, bias=False),
                nn.GroupNorm(math.gcd(32, out), out),
                nn.LeakyReLU(0.2),
            ]
            width = out
        blocks.append(conv(width, 1, kernel, 1, padding))
        self.layers = nn.Sequential(*blocks)

    def forward(self, video: Tensor) -> Tensor:
        """Logits per patch for video (B, 3, T, H, W)."""
        if self.kind == "2d":
            video = video.transpose(1, 2).flatten(0, 1)  # (B*T, 3, H, W)
        return self.layers(video)


# ---- the loss --------------------------------------------------------------------------------


class VAELoss(nn.Module):
    """All the terms. ``loss(x, x̂, posterior, step)`` returns named scalars, with "total" the
    one to minimise; `discriminator_loss` trains the discriminator, when there is one."""

    def __init__(self, config: VAELossConfig, perceptual: PerceptualDistance | None = None) -> None:
        super().__init__()
        self.config = config.validate()
        self.perceptual = None
        if config.perceptual_weight > 0:
            self.perceptual = perceptual if perceptual is not None else PerceptualDistance()
        self.discriminator = None
        if config.uses_discriminator:
            self.discriminator = PatchDiscriminator(
                config.discriminator_kind,
                config.discriminator_channels,
                config.discriminator_layers,
            )

    def forward(
        self,
        inputs: Tensor,
        reconstruction: Tensor,
        posterior: object,
        step: int = 0,
        last_layer: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """The autoencoder's loss terms for inputs and reconstructions (B, 3, T, H, W).

        ``posterior`` has ``kl()``; ``last_layer`` is the decoder's last weight, needed for
        the adaptive adversarial weight; ``generator`` picks the perceptual frames.
        """
        config = self.config
        terms: dict[str, Tensor] = {}
        # 1. pixels
        difference = reconstruction.float() - inputs.float()
        if config.reconstruction in ("l1", "l1+l2"):
            terms["l1"] = difference.abs().mean()
        if config.reconstruction in ("l2", "l1+l2"):
            terms["l2"] = difference.pow(2).mean()
        reconstruction_loss = sum(terms.values()) * config.reconstruction_weight
        # 2. features
        if self.perceptual is not None:
            chosen, wanted = _pick_frames(
                reconstruction, inputs, config.perceptual_frames, generator
            )
            terms["perceptual"] = self.perceptual(chosen, wanted).float().mean()
            reconstruction_loss = (
                reconstruction_loss + config.perceptual_weight * terms["perceptual"]
            )
        # 3. latent prior
        terms["kl"] = posterior.kl().mean()  # type: ignore[attr-defined]
        total = reconstruction_loss + config.kl_weight * terms["kl"]
        # 4. adversarial, once the discriminator has had its head start
        if self.discriminator is not None and step >= config.discriminator_start:
            adversarial = -self.discriminator(reconstruction).float().mean()
            weight = self.adaptive_weight(reconstruction_loss, adversarial, last_layer)
            terms["generator_adversarial"] = adversarial
            terms["adaptive_weight"] = weight
            total = total + config.discriminator_weight * weight * adversarial
        terms["total"] = total
        return terms

    def adaptive_weight(
        self, reconstruction_loss: Tensor, adversarial: Tensor, last_layer: Tensor | None
    ) -> Tensor:
        """||grad rec|| / ||grad adv|| at the decoder's last layer, clamped; detached.

        Falls back to 1 where no gradient is available (no last layer given, or no graph)."""
        if last_layer is None or not (
            reconstruction_loss.requires_grad and adversarial.requires_grad
        ):
            return torch.ones((), device=adversarial.device)
        (rec_grad,) = torch.autograd.grad(reconstruction_loss, last_layer, retain_graph=True)
        (adv_grad,) = torch.autograd.grad(adversarial, last_layer, retain_graph=True)
        weight = rec_grad.norm() / (adv_grad.norm() + 1e-4)
        return weight.clamp(0.0, self.config.adaptive_weight_max).detach()

    def discriminator_loss(self, inputs: Tensor, reconstruction: Tensor) -> dict[str, Tensor]:
        """Hinge loss of the discriminator on real inputs and detached reconstructions."""
        if self.discriminator is None:
            raise KinetoscopeError("this loss has no discriminator (discriminator_weight is 0)")
        real = self.discriminator(inputs.detach()).float()
        fake = self.discriminator(reconstruction.detach()).float()
        loss = F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
        return {
            "discriminator": loss,
            "logits_real": real.mean().detach(),
            "logits_fake": fake.mean().detach(),
        }


def _pick_frames(
    reconstruction: Tensor, inputs: Tensor, count: int | None, generator: torch.Generator | None
) -> tuple[Tensor, Tensor]:
    """The same random ``count`` frames of every clip of both videos (all when None or when
    the clips are no longer)."""
    frames = inputs.shape[2]
    if count is None or count >= frames:
        return reconstruction, inputs
    chosen = torch.randperm(frames, generator=generator)[:count].sort().values.to(inputs.device)
    return reconstruction.index_select(2, chosen), inputs.index_select(2, chosen)
