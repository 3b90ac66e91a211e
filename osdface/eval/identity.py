"""Deg: the identity distance, the angle in degrees between face-recognition embeddings of output and ground truth.

    Deg = arccos(⟨e(x̂), e(x)⟩ / (|e(x̂)| |e(x)|)) · 180 / π,   averaged over images

* **Deg** (the paper's column, docs/ARCHITECTURE.md §5: ArcFace embeddings): the ArcFace IR-SE-50 of the identity loss
  (:mod:`osdface.losses.identity`: FFHQ-aligned face → fixed centre crop → 112² → embedding), with weights from
  ``--weights-dir``: one of ``recognition_arcface_ir_se50.pth`` (facexlib), ``model_ir_se50.pth`` (same layout) or
  ``arcface_ir_se50.safetensors``. Which ArcFace the paper used is not stated, so values are close to, not
  identical with, the paper's.
* **Deg-dlib** (an extra, offline, never reported under the paper's name): dlib's face-recognition ResNet
  (``dlib_face_recognition_resnet_model_v1.dat`` from ``face-recognition-models``), 128-d descriptors of 150²
  chips aligned by the 5-point predictor inside the ground truth's face box. dlib's embedding is trained for
  Euclidean distances (same person below ≈ 0.6), so its angles are on another scale than ArcFace's.
"""

from __future__ import annotations

import numpy as np
import torch

from .dlib_faces import dlib_models, face_box, to_rgb_uint8
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


class DlibDeg:
    """``__call__(pred, gt)`` → (N,) Deg-dlib (float64); inputs (N, 3, H, W) uint8 or [0, 1]."""

    name = "Deg-dlib"

    def __init__(self):
        dlib_models()
        self.fallback_boxes = 0

    @staticmethod
    def descriptor(img_rgb: np.ndarray, box) -> np.ndarray:
        _, _, _, sp5, rec = dlib_models()
        return np.asarray(rec.compute_face_descriptor(img_rgb, sp5(img_rgb, box)), dtype=np.float64)

    def __call__(self, pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        a, b = [], []
        for p, g in zip(pred, gt):
            p_img, g_img = to_rgb_uint8(p), to_rgb_uint8(g)
            box, found = face_box(g_img)
            self.fallback_boxes += not found
            a.append(self.descriptor(p_img, box))
            b.append(self.descriptor(g_img, box))
        if not a:
            return torch.zeros(0, dtype=torch.float64)
        return angle_degrees(torch.from_numpy(np.stack(a)), torch.from_numpy(np.stack(b)))

