"""Training losses of OSDFace stage 2 (OSDFACE.md §3) and stage 1.

Perceptual and identity terms: :func:`sobel_magnitude`, :class:`DISTS` (+ :func:`load_dists`), :class:`EADISTS`,
:class:`IdentityLoss` (+ :func:`load_identity_network`).
Adversarial and association terms: :func:`discriminator_loss`, :func:`generator_gan_loss`, :class:`LatentDiscriminator`
(stage 2), :class:`PatchDiscriminator` (stage 1), :func:`association_loss` / :class:`AssociationLoss` (stage 1).
"""

from .association import AssociationLoss, association_loss
from .dists import DISTS, load_dists
from .ea_dists import EADISTS
from .gan import discriminator_loss, generator_gan_loss
from .identity import IdentityLoss, load_identity_network
from .latent_discriminator import LatentDiscriminator, LatentDiscriminatorOutput
from .patch_discriminator import PatchDiscriminator
from .sobel import sobel_magnitude

__all__ = ["sobel_magnitude", "DISTS", "load_dists", "EADISTS", "IdentityLoss", "load_identity_network"]
__all__ += ["discriminator_loss", "generator_gan_loss", "LatentDiscriminator", "LatentDiscriminatorOutput",
            "PatchDiscriminator", "association_loss", "AssociationLoss"]
