"""The identity loss of OSDFace stage 2 (docs/ARCHITECTURE.md §3): L_ID = 1 − cos(emb(x̂), emb(x_GT)).

The paper does not say which face-recognition network it used. We use the ArcFace IR-SE-50
(:class:`osdface.losses.arcface.ArcFaceIRSE`) because its weights can be downloaded by anyone and load safely:
facexlib's ``recognition_arcface_ir_se50.pth`` (:data:`ARCFACE_URL`) or TreB1eN's ``model_ir_se50.pth`` (same
layout). Both are plain pickled state dicts, read with ``torch.load(weights_only=True)``; a safetensors copy works too.

From an FFHQ-aligned face to the network's 112² input (:meth:`IdentityLoss.embed`): FFHQ crops are much looser
than ArcFace's 112² alignment (they include hair, ears, neck and background), so we take the fixed centre region
rows 35/256 … 223/256, columns 32/256 … 220/256 of the side (for 512²: rows 70:446, columns 64:440, a 376² square
that holds the face from brows to chin), as pSp / e4e's ID loss does on FFHQ-aligned images, and area-average it
to 112² (bilinear when the region is smaller than 112²). Fixed crop + resize keep the loss differentiable and
cheap; no landmark detection runs during training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["IdentityLoss", "FFHQ_ARCFACE_CROP", "crop_for_arcface"]

# (top, bottom, left, right) as fractions of the side of an FFHQ-aligned face
FFHQ_ARCFACE_CROP = (35 / 256, 223 / 256, 32 / 256, 220 / 256)


def crop_for_arcface(x: torch.Tensor, size: int = 112, crop=FFHQ_ARCFACE_CROP) -> torch.Tensor:
    """(B, 3, S, S) FFHQ-aligned faces → (B, 3, size, size): the fixed face region, resized (differentiable)."""
    if x.ndim != 4 or x.shape[1] != 3 or not x.is_floating_point():
        raise ValueError(f"expected float (B, 3, S, S) face images in [-1, 1], got {tuple(x.shape)} {x.dtype}")
    h, w = x.shape[-2:]
    if h != w:
        raise ValueError(f"the identity loss expects square FFHQ-aligned faces, got {h}x{w}")
    top, bottom, left, right = (round(f * h) for f in crop)
    region = x[:, :, top:bottom, left:right]
    if region.shape[-1] >= size:
        return F.interpolate(region, size=(size, size), mode="area")
    return F.interpolate(region, size=(size, size), mode="bilinear", align_corners=False)


class IdentityLoss(nn.Module):
    """``forward(x, y)``: FFHQ-aligned faces in [-1, 1] (B, 3, S, S; S = 512 in training) → (B,) 1 − cos similarity.

    The network is frozen and kept in eval mode (``.train()`` does not switch it); gradients flow to the images.
    :meth:`embed` gives the L2-normalised embeddings, e.g. for the evaluation's identity angle (Deg).
    """

    def __init__(self, network: nn.Module, crop=FFHQ_ARCFACE_CROP):
        super().__init__()
        self.network = network.requires_grad_(False).eval()
        self.crop = tuple(float(c) for c in crop)
        self.input_size = int(getattr(getattr(network, "config", None), "input_size", 112))

    def train(self, mode: bool = True) -> "IdentityLoss":
        super().train(mode)
        self.network.eval()
        return self

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) faces in [-1, 1] → (B, D) float32 unit vectors."""
        face = crop_for_arcface(x, self.input_size, self.crop)
        param = next(self.network.parameters())
        emb = self.network(face.to(param.dtype))
        return F.normalize(emb.float(), dim=1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape:
            raise ValueError(f"identity loss compares images of one shape; got {tuple(x.shape)} and {tuple(y.shape)}")
        batch = x.shape[0]
        emb = self.embed(torch.cat([x, y]))  # one pass over both
        return 1 - (emb[:batch] * emb[batch:]).sum(dim=1)
