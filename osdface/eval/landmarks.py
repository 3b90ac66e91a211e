"""LMD: landmark distance between the restored face and the ground truth.

LMD = the mean, over the 68 facial landmarks, of the Euclidean distance (in pixels of the evaluated resolution,
512² in the paper's setting) between the landmarks of the prediction and those of the ground truth, averaged over
images. The paper does not name its landmark detector; here it is dlib's 68-point predictor (offline, CC0 weights
from ``face-recognition-models``), run on both images inside the same box: the ground truth's HOG face box (or the
fixed FFHQ-aligned box when HOG finds none, see :mod:`osdface.eval.dlib_faces`). Values are therefore comparable
between our own runs, not digit for digit with the paper's column.
"""

from __future__ import annotations

import numpy as np
import torch

from .dlib_faces import dlib_models, face_box, to_rgb_uint8

__all__ = ["LandmarkDistance", "landmarks68"]


def landmarks68(img_rgb: np.ndarray, box) -> np.ndarray:
    """(68, 2) float64 landmark coordinates of ``img_rgb`` inside ``box`` (a dlib rectangle)."""
    shape = dlib_models()[2](img_rgb, box)
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)


class LandmarkDistance:
    """``__call__(pred, gt)`` → (N,) LMD in pixels (float64); inputs (N, 3, H, W) uint8 or [0, 1], on any device.

    ``fallback_boxes`` counts the ground-truth images on which HOG found no face."""

    name = "LMD"

    def __init__(self):
        dlib_models()  # fail early (MissingWeightsError) when dlib or its model files are missing
        self.fallback_boxes = 0

    def __call__(self, pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        out = []
        for p, g in zip(pred, gt):
            p_img, g_img = to_rgb_uint8(p), to_rgb_uint8(g)
            box, found = face_box(g_img)
            self.fallback_boxes += not found
            d = np.linalg.norm(landmarks68(p_img, box) - landmarks68(g_img, box), axis=1)
            out.append(d.mean())
        return torch.tensor(out, dtype=torch.float64)
