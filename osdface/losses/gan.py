"""Adversarial losses for both training stages (docs/ARCHITECTURE.md §2 and §3).

- ``kind="softplus"`` (default): the non-saturating logistic GAN loss, as DMD2's guidance discriminator uses it
  (stage 2's latent discriminator, docs/ARCHITECTURE.md §3):
  ``L_D = mean softplus(-D(real)) + mean softplus(D(fake))``, ``L_G = mean softplus(-D(fake))``.
- ``kind="hinge"``: the hinge loss of the taming / VQGAN family (stage 1's image PatchGAN):
  ``L_D = mean relu(1 - D(real)) + mean relu(1 + D(fake))``, ``L_G = -mean D(fake)``.

Logits may have any shape (one per image, or a patch map); every loss is the mean over all elements. Neither
discriminator loss carries taming's extra factor 1/2 (it would only rescale the discriminator's learning rate).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

GAN_LOSS_KINDS = ("softplus", "hinge")


def _check(kind: str, *logits: torch.Tensor) -> None:
    if kind not in GAN_LOSS_KINDS:
        raise ValueError(f"unknown GAN loss kind {kind!r}; choose one of {GAN_LOSS_KINDS}")
    for x in logits:
        if not torch.is_tensor(x) or x.numel() == 0:
            raise ValueError("GAN logits must be non-empty tensors")


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str = "softplus") -> torch.Tensor:
    """The discriminator's loss: low when real logits are high and fake logits are low.

    Call it with ``fake_logits`` computed from detached fakes (the generator must not be updated by this loss).
    """
    _check(kind, real_logits, fake_logits)
    real, fake = real_logits.float(), fake_logits.float()
    if kind == "softplus":
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def generator_gan_loss(fake_logits: torch.Tensor, kind: str = "softplus") -> torch.Tensor:
    """The generator's adversarial loss: low when the discriminator calls its outputs real.

    Freeze the discriminator (``requires_grad_(False)``) while this loss is back-propagated, so that only the
    generator receives gradients.
    """
    _check(kind, fake_logits)
    fake = fake_logits.float()
    if kind == "softplus":
        return F.softplus(-fake).mean()
    return -fake.mean()
