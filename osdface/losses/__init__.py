"""Training losses of OSDFace stage 2 (docs/ARCHITECTURE.md §3) and stage 1.

Perceptual and identity terms: :func:`sobel_magnitude`, :class:`EADISTS`, :class:`IdentityLoss` (the networks they
use, DISTS and ArcFace, are in :mod:`osdface.networks`: the evaluation uses them as metrics too).
Adversarial and association terms: :func:`discriminator_loss`, :func:`generator_gan_loss`, :class:`LatentDiscriminator`
(stage 2), :class:`PatchDiscriminator` (stage 1), :func:`association_loss` / :class:`AssociationLoss` (stage 1).
"""

from .association import AssociationLoss, association_loss
from .ea_dists import EADISTS
from .gan import discriminator_loss, generator_gan_loss
from .identity import IdentityLoss
from .latent_discriminator import LatentDiscriminator, LatentDiscriminatorOutput
from .patch_discriminator import PatchDiscriminator
from .sobel import sobel_magnitude

__all__ = ["sobel_magnitude", "EADISTS", "IdentityLoss"]
__all__ += ["discriminator_loss", "generator_gan_loss", "LatentDiscriminator", "LatentDiscriminatorOutput",
            "PatchDiscriminator", "association_loss", "AssociationLoss"]
