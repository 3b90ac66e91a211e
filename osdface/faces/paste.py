"""Paste a restored face crop back into a photo with a feathered mask.

The crop's square is warped into the photo with the inverse alignment affine; its support is eroded and
Gaussian-blurred into a smooth 0..1 mask, and ``out = mask * face + (1 - mask) * photo``. Only pixels where the
mask is > 0 are written, so everything outside the mask keeps its exact value. Work is limited to the face's
bounding box, so a huge photo costs no more than a small one; and the mask of a big face (feather radius above
:data:`FEATHER_MAX`) is made on a reduced copy of its box and enlarged bilinearly, so a big face costs about its
box's area, not its box's area times the erosion kernel's (which grows with the face's side squared).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ..image_io import to_uint8
from .alignment import affine_scale, apply_affine, compose_affine

__all__ = ["feather_mask", "paste_face", "face_bbox", "FEATHER_MAX"]

#: the largest feather radius (px) whose mask is made at full resolution: faces up to about 330 px wide. A larger
#: radius is worked at FEATHER_MAX on a copy reduced by FEATHER_MAX / radius: the mask is a blur of that radius,
#: so the bilinear enlargement loses nothing visible, while an elliptical erosion's cost grows with its kernel's
#: area (a 2,600 px face: a 2,095 px kernel, over a minute of cv2.erode)
FEATHER_MAX = 16


def face_bbox(affine_inv: np.ndarray, crop_size: int, shape: tuple[int, int], margin: int = 2):
    """Integer box (x0, y0, x1, y1), clipped to a photo of ``shape`` (H, W), covering the warped crop square."""
    s = crop_size
    corners = apply_affine(affine_inv, np.array([[-0.5, -0.5], [s - 0.5, -0.5], [-0.5, s - 0.5], [s - 0.5, s - 0.5]]))
    h, w = shape[:2]
    x0 = max(0, math.floor(corners[:, 0].min()) - margin)
    y0 = max(0, math.floor(corners[:, 1].min()) - margin)
    x1 = min(w, math.ceil(corners[:, 0].max()) + margin + 1)
    y1 = min(h, math.ceil(corners[:, 1].max()) + margin + 1)
    return int(x0), int(y0), int(x1), int(y1)


def _feather_radius(affine_inv: np.ndarray, crop_size: int) -> int:
    width = crop_size * affine_scale(affine_inv)  # the face square's side in photo pixels
    return max(1, int(round(width / 20.0)))


def feather_mask(affine_inv: np.ndarray, crop_size: int, shape: tuple[int, int], *, box=None,
                 feather: int | None = None) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The blending mask (float32, 0..1) of a crop warped by ``affine_inv`` into a photo of ``shape`` (H, W).

    Returns ``(mask, box)`` with the mask covering only ``box`` = (x0, y0, x1, y1) of the photo. The warped square
    is eroded by ``2 * feather + 1`` px and blurred with a Gaussian of radius ``feather`` (sigma = feather / 2), so
    the mask is 0 on and outside the square's edge and its gradient is bounded (about 1.6 / feather per px).
    ``feather`` defaults to 1/20 of the face square's side in photo pixels.
    """
    if box is None:
        box = face_bbox(affine_inv, crop_size, shape)
    x0, y0, x1, y1 = box
    if x1 <= x0 or y1 <= y0:
        return np.zeros((max(0, y1 - y0), max(0, x1 - x0)), np.float32), box
    f = _feather_radius(affine_inv, crop_size) if feather is None else max(1, int(feather))
    a_roi = compose_affine(np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0]]), affine_inv)
    bw, bh = x1 - x0, y1 - y0
    if f <= FEATHER_MAX:
        m = _square_mask(a_roi, crop_size, (bw, bh), f)
    else:  # on a copy reduced by FEATHER_MAX / f (pixel centres kept aligned), then enlarged to the box
        sw, sh = max(1, round(bw * FEATHER_MAX / f)), max(1, round(bh * FEATHER_MAX / f))
        sx, sy = sw / bw, sh / bh
        a_small = compose_affine(np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5]]), a_roi)
        # the full-resolution square keeps pixels >= 0.999 covered, its edge ~0.5 px in; the same 0.5 px here
        inside = 0.5 + 0.5 * min(sx, sy)
        m = cv2.resize(_square_mask(a_small, crop_size, (sw, sh), FEATHER_MAX, inside), (bw, bh),
                       interpolation=cv2.INTER_LINEAR)
    m[m < 1e-4] = 0.0
    m[m > 1 - 1e-4] = 1.0
    return np.clip(m, 0.0, 1.0), box


def _square_mask(a_roi: np.ndarray, crop_size: int, size: tuple[int, int], f: int,
                 inside: float = 0.999) -> np.ndarray:
    """The crop square warped by ``a_roi`` into a ``size`` = (w, h) grid (pixels whose bilinear coverage is at least
    ``inside``), eroded by ``2 * f + 1`` px and blurred with a Gaussian of radius ``f``."""
    square = np.ones((crop_size, crop_size), np.float32)
    m = cv2.warpAffine(square, a_roi, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    m = (m >= inside).astype(np.float32)  # only pixels (fully) inside the square
    k = 2 * (2 * f + 1) + 1
    # erode with the default border (= no erosion from the photo's edge: a face cut by the edge stays restored)
    m = cv2.erode(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    return cv2.GaussianBlur(m, (2 * f + 1, 2 * f + 1), sigmaX=f / 2.0, sigmaY=f / 2.0,
                            borderType=cv2.BORDER_REPLICATE)


def paste_face(photo: np.ndarray, face: np.ndarray, affine_inv: np.ndarray, *, feather: int | None = None,
               inplace: bool = True) -> np.ndarray:
    """Blend ``face`` (S, S, 3; uint8 or float in [0, 1]) into ``photo`` (H, W, 3 uint8) through ``affine_inv``
    (crop coordinates → photo coordinates). Returns the photo (modified in place unless ``inplace=False``)."""
    out = photo if inplace else photo.copy()
    face = np.asarray(face)
    if face.dtype != np.uint8:
        face = np.clip(face.astype(np.float32) * 255.0, 0, 255)
    face = face.astype(np.float32)
    size = face.shape[0]
    if face.shape[1] != size:
        raise ValueError(f"the face crop must be square, got {face.shape}")
    mask, (x0, y0, x1, y1) = feather_mask(affine_inv, size, out.shape, feather=feather)
    if mask.size == 0 or not mask.any():
        return out
    a = np.asarray(affine_inv, dtype=np.float64)
    if affine_scale(a) < 0.5:  # the face gets much smaller: reduce it first to avoid aliasing
        n = max(2, round(size * affine_scale(a)))
        face = cv2.resize(face, (n, n), interpolation=cv2.INTER_AREA)
        r = size / n
        a = compose_affine(a, np.array([[r, 0.0, 0.5 * r - 0.5], [0.0, r, 0.5 * r - 0.5]]))
    a_roi = compose_affine(np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0]]), a)
    interp = cv2.INTER_CUBIC if affine_scale(a) > 1.01 else cv2.INTER_LINEAR
    warped = cv2.warpAffine(face, a_roi, (x1 - x0, y1 - y0), flags=interp, borderMode=cv2.BORDER_REPLICATE)
    roi = out[y0:y1, x0:x1]
    full = mask >= 1.0  # most of a face: the restored pixels as they are (what the blend gives there)
    roi[full] = to_uint8(warped[full], scale=1)
    sel = (mask > 0) & ~full  # the feathered ring: blended
    mk = mask[sel][:, None]
    blended = roi[sel].astype(np.float32) * (1.0 - mk) + warped[sel] * mk
    roi[sel] = to_uint8(blended, scale=1)
    return out
