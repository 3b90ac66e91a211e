"""The identity loss of OSDFace stage 2 (docs/ARCHITECTURE.md §3): L_ID = 1 − cos(emb(x̂), emb(x_GT)).

The paper does not say which face-recognition network it used. Two networks, chosen by name
(:meth:`IdentityLoss.from_name`):

- ``"arcface"``: ArcFace IR-SE-50 (:class:`osdface.networks.arcface.ArcFaceIRSE`), whose weights anyone can download:
  facexlib's ``recognition_arcface_ir_se50.pth`` or TreB1eN's ``model_ir_se50.pth`` (same layout), plain pickled
  state dicts read with ``torch.load(weights_only=True)``; a safetensors copy works too.
- ``"dlib"``: dlib's face-recognition ResNet (:mod:`osdface.networks.dlib_resnet`), whose weights ship (CC0) with the
  ``face-recognition-models`` package, so it trains offline. Its input is dlib's own 150² chip, taken from the
  FFHQ-aligned face with one fixed similarity transform (``ffhq_to_dlib_chip``, measured to give embeddings within
  4.6° on average of dlib's landmark-aligned chips). Its embedding is not normalised by dlib; the loss normalises.

From an FFHQ-aligned face to ArcFace's 112² input: FFHQ crops are much looser
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

__all__ = ["IdentityLoss", "FFHQ_ARCFACE_CROP", "crop_for_arcface", "IDENTITY_NETWORKS"]

IDENTITY_NETWORKS = ("arcface", "dlib")

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


def antialias_for_chip(x: torch.Tensor) -> torch.Tensor:
    """A Gaussian low-pass of FFHQ-aligned faces (B, C, S, S) before dlib's 150² chip is sampled from them, with
    σ = half the chip's pixel spacing in source pixels (≈ 1.2 px at 512²).

    Why: dlib samples its chip bilinearly after one pyramid level, which lets detail finer than the chip's pixel
    spacing alias into it; as a loss, that hands the generator a gradient toward patterns the chip cannot resolve.
    Low-passed first, the loss's gradient energy above 0.2 cycles/px falls from 0.2 % to 0.01 % on a real face
    (tests/test_dlib_resnet.py). (It is not what cured the 4-px pattern nano v2 first learned: that came from
    training the PatchVAE decoder against this loss; the v2 fine-tune keeps the decoder frozen.)"""
    from ..networks.dlib_resnet import CHIP_SIZE, DLIB_CHIP_IN_FFHQ

    sigma = 0.5 * float(DLIB_CHIP_IN_FFHQ[2]) * x.shape[-1] / CHIP_SIZE
    radius = max(1, int(round(3 * sigma)))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = (k / k.sum()).to(x.dtype)
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


class IdentityLoss(nn.Module):
    """``forward(x, y)``: FFHQ-aligned faces in [-1, 1] (B, 3, S, S; S = 512 in training) → (B,) 1 − cos similarity.

    The network is frozen and kept in eval mode (``.train()`` does not switch it); gradients flow to the images.
    :meth:`embed` gives the L2-normalised embeddings, e.g. for the evaluation's identity angle (Deg, Deg-dlib).
    ``network``: an ArcFace IR-SE-50 (fixed centre crop, ``crop``) or a dlib face ResNet (fixed dlib chip); the
    kind is recognised from the module.
    """

    def __init__(self, network: nn.Module, crop=FFHQ_ARCFACE_CROP, *, antialias: bool = True):
        super().__init__()
        from ..networks.dlib_resnet import DlibFaceResNet

        self.antialias = bool(antialias)  # the loss (forward) low-passes dlib chips; embed() does as dlib does
        self.network = network.requires_grad_(False).eval()
        self.kind = "dlib" if isinstance(network, DlibFaceResNet) else "arcface"
        self.crop = tuple(float(c) for c in crop)
        self.input_size = int(getattr(getattr(network, "config", None), "input_size", 112))

    @classmethod
    def from_name(cls, name: str = "dlib", weights=None, device=None) -> "IdentityLoss":
        """``"dlib"`` (offline; converted once from face-recognition-models, see ``load_dlib_face_resnet``) or
        ``"arcface"`` (``weights``: a file, folder or Hub id; default ``$OSDFACE_ARCFACE``). Missing weights raise
        :class:`osdface.weights.MissingWeightsError` with one line."""
        if name == "dlib":
            from ..networks.dlib_resnet import load_dlib_face_resnet

            net = load_dlib_face_resnet(weights)
        elif name == "arcface":
            from ..networks.arcface import load_arcface

            net = load_arcface(weights)
        else:
            raise ValueError(f"unknown identity network {name!r}; use one of {', '.join(IDENTITY_NETWORKS)}")
        loss = cls(net)
        return loss.to(device) if device is not None else loss

    def train(self, mode: bool = True) -> "IdentityLoss":
        super().train(mode)
        self.network.eval()
        return self

    def embed(self, x: torch.Tensor, *, antialias: bool = False) -> torch.Tensor:
        """(B, 3, S, S) faces in [-1, 1] → (B, D) float32 unit vectors. ``antialias`` (dlib): low-pass the face
        before the chip is sampled (:func:`antialias_for_chip`); off, the chip is dlib's own (the evaluation)."""
        param = next(self.network.parameters())
        if self.kind == "dlib":
            from ..networks.dlib_resnet import CHIP_SIZE, ffhq_to_dlib_chip

            if antialias:
                x = antialias_for_chip(x)
            chip = ffhq_to_dlib_chip(x, CHIP_SIZE, fill=-1.0)  # outside the face: black, as dlib's chips
            emb = self.network(((chip + 1) / 2).to(param.dtype))
        else:
            emb = self.network(crop_for_arcface(x, self.input_size, self.crop).to(param.dtype))
        return F.normalize(emb.float(), dim=1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape:
            raise ValueError(f"identity loss compares images of one shape; got {tuple(x.shape)} and {tuple(y.shape)}")
        batch = x.shape[0]
        emb = self.embed(torch.cat([x, y]), antialias=self.antialias)  # one pass over both
        return 1 - (emb[:batch] * emb[batch:]).sum(dim=1)
