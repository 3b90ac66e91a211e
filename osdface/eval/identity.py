"""Deg: the identity distance, the angle in degrees between face-recognition embeddings of output and ground truth.

    Deg = arccos(⟨e(x̂), e(x)⟩ / (|e(x̂)| |e(x)|)) · 180 / π,   averaged over images

* **Deg** (the paper's column, docs/ARCHITECTURE.md §5: ArcFace embeddings): the ArcFace IR-SE-50 of the identity loss
  (:mod:`osdface.losses.identity`: FFHQ-aligned face → fixed centre crop → 112² → embedding), with weights from
  ``--weights-dir``: one of ``recognition_arcface_ir_se50.pth`` (facexlib), ``model_ir_se50.pth`` (same layout) or
  ``arcface_ir_se50.safetensors``. Which ArcFace the paper used is not stated, so values are close to, not
  identical with, the paper's.
* **Deg-dlib** (an extra, offline, never reported under the paper's name): dlib's face-recognition ResNet ported to
  PyTorch (:mod:`osdface.networks.dlib_resnet`, weights from ``face-recognition-models``), 128-d embeddings of the
  fixed 150² dlib chip of an FFHQ-aligned face: exactly the embedding of the offline identity loss
  (``IdentityLoss.from_name("dlib")``), so this column is the training loss's differentiable twin, batched on any
  device. dlib's embedding is trained for Euclidean distances (same person below ≈ 0.6), so its angles are on
  another scale than ArcFace's.
"""

from __future__ import annotations

import torch

from ..weights import MissingWeightsError

__all__ = ["ArcFaceDeg", "DlibDeg", "angle_degrees"]


def angle_degrees(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise angle in degrees between (N, D) embeddings (normalised here), float64."""
    a = torch.nn.functional.normalize(a.double(), dim=1)
    b = torch.nn.functional.normalize(b.double(), dim=1)
    cos = (a * b).sum(dim=1).clamp(-1.0, 1.0)
    return torch.rad2deg(torch.arccos(cos))


class ArcFaceDeg:
    """``__call__(pred, gt)`` → (N,) Deg; inputs (N, 3, S, S) FFHQ-aligned faces, uint8 or [0, 1]."""

    name = "Deg"

    def __init__(self, network: torch.nn.Module, device="cpu"):
        from ..losses.identity import IdentityLoss

        self.loss = IdentityLoss(network.to(device))
        self.device = torch.device(device)

    @classmethod
    def from_weights_dir(cls, weights_dir, device="cpu") -> "ArcFaceDeg":
        from ..networks.arcface import ARCFACE_FILES, ARCFACE_URL, load_arcface

        where = f"get it from {ARCFACE_URL}"
        if weights_dir is None:
            raise MissingWeightsError(f"needs {ARCFACE_FILES[0]} (ArcFace IR-SE-50) in --weights-dir (none given), "
                                    f"{where}")
        from pathlib import Path

        found = [Path(weights_dir) / n for n in ARCFACE_FILES if (Path(weights_dir) / n).is_file()]
        if not found:
            raise MissingWeightsError(f"needs {ARCFACE_FILES[0]} (ArcFace IR-SE-50; or {' / '.join(ARCFACE_FILES[1:])}"
                                    f") in {weights_dir}, {where}")
        try:
            return cls(load_arcface(found[0]), device=device)
        except MissingWeightsError as err:
            raise MissingWeightsError(f"needs a usable ArcFace IR-SE-50 file: {err}") from None

    @torch.no_grad()
    def __call__(self, pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        def prep(x):
            x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
            return x.to(self.device) * 2 - 1

        n = pred.shape[0]
        emb = self.loss.embed(torch.cat([prep(pred), prep(gt)]))
        return angle_degrees(emb[:n], emb[n:]).cpu()


class DlibDeg(ArcFaceDeg):
    """``__call__(pred, gt)`` → (N,) Deg-dlib; inputs (N, 3, S, S) FFHQ-aligned faces, uint8 or [0, 1]."""

    name = "Deg-dlib"

    def __init__(self, device="cpu", network: torch.nn.Module | None = None):
        from ..losses.identity import IdentityLoss

        self.loss = IdentityLoss.from_name("dlib") if network is None else IdentityLoss(network)
        self.loss.to(device)
        self.device = torch.device(device)
