"""The association loss of stage 1 (docs/ARCHITECTURE.md §2): CLIP-style contrast between HQ and LQ features.

For a batch of B (HQ, LQ) pairs of the same faces, each image's feature map becomes one L2-normalised vector;
``logits = hq · lqᵀ / τ`` is a B×B similarity matrix whose diagonal holds the true pairs, and the loss is the
symmetric cross-entropy with the diagonal as targets, the mean of both directions (HQ → LQ rows, LQ → HQ columns):

    L = ½ · [ CE(logits, arange(B)) + CE(logitsᵀ, arange(B)) ]

Vector per image (``pool``): ``"flatten"`` (default) keeps the whole (D, h, w) map as one D·h·w vector. The faces are
aligned, so a position holds the same part of the face in both images and flattening asks the LQ encoder to put
every part's features where the HQ encoder puts them, which is what the VRE needs (its prompt is read per position
from the grid). ``"mean"`` averages over positions first (a global, position-free descriptor, as CLIP's image
embedding). Inputs of shape (B, D) are used as they are.

Notes: with B = 1 the loss is 0 (nothing to contrast). The negatives are the other pairs of the local batch; under
multi-process training gather the features of all processes first (with gradients) for more negatives.
Temperature: CLIP's initial τ = 0.07 (logit scale 1/0.07 ≈ 14.3); :class:`AssociationLoss` learns it as CLIP does
(log-parameterised, logit scale capped at 100).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

POOLS = ("flatten", "mean")
CLIP_INIT_TEMPERATURE = 0.07
CLIP_MAX_LOGIT_SCALE = 100.0


def image_vectors(feats: torch.Tensor, pool: str = "flatten") -> torch.Tensor:
    """(B, D, h, w) feature maps (or (B, D) vectors) → (B, N) L2-normalised vectors (float32)."""
    if pool not in POOLS:
        raise ValueError(f"unknown pool {pool!r}; choose one of {POOLS}")
    if not torch.is_tensor(feats) or feats.ndim not in (2, 4):
        got = tuple(feats.shape) if torch.is_tensor(feats) else type(feats).__name__
        raise ValueError(f"features must be (B, D, h, w) maps or (B, D) vectors, got {got}")
    x = feats.float()
    if x.ndim == 4:
        x = x.flatten(1) if pool == "flatten" else x.mean(dim=(2, 3))
    return F.normalize(x, dim=1, eps=1e-8)


def association_logits(hq_feats: torch.Tensor, lq_feats: torch.Tensor, logit_scale: float | torch.Tensor,
                       pool: str = "flatten") -> torch.Tensor:
    """The B×B matrix ``logit_scale · cos(hq_i, lq_j)`` (rows: HQ images, columns: LQ images)."""
    if not torch.is_tensor(hq_feats) or not torch.is_tensor(lq_feats) or hq_feats.shape != lq_feats.shape:
        raise ValueError("HQ and LQ features must be tensors of the same shape, got "
                         f"{getattr(hq_feats, 'shape', None)} and {getattr(lq_feats, 'shape', None)}")
    hq, lq = image_vectors(hq_feats, pool), image_vectors(lq_feats, pool)
    return logit_scale * (hq @ lq.t())


def _symmetric_ce(logits: torch.Tensor) -> torch.Tensor:
    targets = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.t(), targets))


def association_loss(hq_feats: torch.Tensor, lq_feats: torch.Tensor,
                     temperature: float | torch.Tensor = CLIP_INIT_TEMPERATURE, pool: str = "flatten") -> torch.Tensor:
    """Symmetric CLIP loss between the HQ and LQ features of B aligned pairs (see the module docstring)."""
    if torch.is_tensor(temperature):
        if bool((temperature <= 0).any()):
            raise ValueError("temperature must be positive")
    elif not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    return _symmetric_ce(association_logits(hq_feats, lq_feats, 1.0 / temperature, pool))


class AssociationLoss(nn.Module):
    """:func:`association_loss` with a temperature learnt as CLIP's: ``logit_scale = exp(s)``, ``s`` initialised to
    ``log(1 / temperature)`` (CLIP: 1/0.07) and the scale capped at ``max_logit_scale`` (CLIP: 100).

    Put it in the optimiser with the encoders when ``learnable`` (the default); else the temperature is fixed.
    """

    def __init__(self, temperature: float = CLIP_INIT_TEMPERATURE, learnable: bool = True,
                 max_logit_scale: float = CLIP_MAX_LOGIT_SCALE, pool: str = "flatten"):
        super().__init__()
        if not temperature > 0 or not max_logit_scale > 0:
            raise ValueError("temperature and max_logit_scale must be positive")
        if pool not in POOLS:
            raise ValueError(f"unknown pool {pool!r}; choose one of {POOLS}")
        self.log_logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)), requires_grad=learnable)
        self.max_logit_scale = float(max_logit_scale)
        self.pool = pool

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.log_logit_scale.exp().clamp(max=self.max_logit_scale)

    @property
    def temperature(self) -> float:
        return float(1.0 / self.logit_scale)

    def forward(self, hq_feats: torch.Tensor, lq_feats: torch.Tensor) -> torch.Tensor:
        return _symmetric_ce(association_logits(hq_feats, lq_feats, self.logit_scale, self.pool))
