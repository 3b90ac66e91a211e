"""Face alignment to the FFHQ 5-point template: similarity transform, crop, inverse.

Conventions
    * Landmarks are ``(5, 2)`` arrays of ``(x, y)`` pixel coordinates in the order *left eye centre, right eye
      centre, nose tip, left mouth corner, right mouth corner*, "left" meaning the image's left.
    * Pixel centres are at integer coordinates (OpenCV's ``warpAffine`` convention).
    * An affine is a ``(2, 3)`` float64 matrix ``M`` mapping ``[x, y, 1]`` to ``M @ [x, y, 1]``.
      :func:`align_face` returns the *forward* affine (photo → crop); :func:`invert_affine` gives crop → photo.

Border: pixels of the crop that fall outside the photo are filled by reflection at the photo's edge
(``cv2.BORDER_REFLECT_101``, the default; FFHQ's own crops were reflect-padded) or with a constant grey
(``border="constant"``, value 135,133,132 like facexlib's crops).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

__all__ = ["FFHQ_TEMPLATE_512", "ALIGNED_BOX", "template", "similarity_transform", "invert_affine", "apply_affine",
           "compose_affine", "align_face"]

#: FFHQ 5-point template for a 512x512 crop: eye centres, nose tip, mouth corners (image left, then right).
FFHQ_TEMPLATE_512 = np.array([[192.98138, 239.94708], [318.90277, 240.1936], [256.63416, 314.01935],
                              [201.26117, 371.41043], [313.08905, 371.15118]], dtype=np.float64)
#: the box dlib's HOG detector gives on FFHQ-aligned faces, (left, top, right, bottom) as fractions of the side: the
#: median over 40 of the shared 512² faces, (95, 164)–(405, 474); used where HOG finds no face on an aligned crop
ALIGNED_BOX = (95 / 512, 164 / 512, 405 / 512, 474 / 512)

_BORDERS = {"reflect": cv2.BORDER_REFLECT_101, "constant": cv2.BORDER_CONSTANT, "replicate": cv2.BORDER_REPLICATE}
DEFAULT_BORDER_VALUE = (135, 133, 132)


def template(size: int = 512) -> np.ndarray:
    """The FFHQ template scaled to a ``size`` x ``size`` crop, shape (5, 2) float64."""
    return FFHQ_TEMPLATE_512 * (float(size) / 512.0)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation; no reflection) mapping ``src`` → ``dst``.

    Closed form (Umeyama 1991). ``src`` and ``dst`` are (N, 2), N >= 2. Returns a (2, 3) float64 affine.
    """
    src = np.asarray(src, dtype=np.float64).reshape(-1, 2)
    dst = np.asarray(dst, dtype=np.float64).reshape(-1, 2)
    if src.shape != dst.shape or len(src) < 2:
        raise ValueError(f"need two (N, 2) point sets of the same shape, N >= 2; got {src.shape} and {dst.shape}")
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise ValueError("landmarks contain NaN or infinite values")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s_c, d_c = src - mu_s, dst - mu_d
    var_s = (s_c ** 2).sum() / len(src)
    if var_s <= 1e-12:
        raise ValueError("degenerate landmarks (all points coincide)")
    cov = d_c.T @ s_c / len(src)
    u, d, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:  # forbid a reflection
        sign[-1] = -1.0
    rot = u @ np.diag(sign) @ vt
    scale = float((d * sign).sum() / var_s)
    trans = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, trans[:, None]])


def _to3(m: np.ndarray) -> np.ndarray:
    return np.vstack([np.asarray(m, dtype=np.float64).reshape(2, 3), [0.0, 0.0, 1.0]])


def compose_affine(*mats: np.ndarray) -> np.ndarray:
    """``compose_affine(A, B)`` applies B first, then A (matrix product order)."""
    out = np.eye(3)
    for m in mats:
        out = out @ _to3(m)
    return out[:2]


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of a (2, 3) affine."""
    return np.linalg.inv(_to3(m))[:2]


def apply_affine(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine to (N, 2) points."""
    pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    m = np.asarray(m, dtype=np.float64)
    return pts @ m[:, :2].T + m[:, 2]


def affine_scale(m: np.ndarray) -> float:
    """The (geometric-mean) scale factor of an affine."""
    return math.sqrt(abs(np.linalg.det(np.asarray(m, dtype=np.float64)[:, :2])))


def align_face(img: np.ndarray, landmarks: np.ndarray, size: int = 512, *, border: str = "reflect",
               border_value=DEFAULT_BORDER_VALUE) -> tuple[np.ndarray, np.ndarray]:
    """Crop an FFHQ-aligned ``size`` x ``size`` face from ``img`` (H, W, C) given its 5 landmarks.

    Returns ``(crop, affine)``: ``affine`` (2, 3) maps photo pixel coordinates to crop coordinates
    (``invert_affine(affine)`` maps the crop back). Only the region around the face is read, so a
    huge photo costs no more than a small one; a face much larger than the crop is first reduced with
    ``cv2.INTER_AREA`` (no aliasing), then warped bilinearly.
    """
    if border not in _BORDERS:
        raise ValueError(f"border must be one of {sorted(_BORDERS)}, not {border!r}")
    img = np.asarray(img)
    h, w = img.shape[:2]
    m = similarity_transform(landmarks, template(size))
    s = affine_scale(m)  # crop pixels per photo pixel
    # the photo region the crop reads from (+ a margin for interpolation)
    corners = np.array([[-0.5, -0.5], [size - 0.5, -0.5], [-0.5, size - 0.5], [size - 0.5, size - 0.5]])
    src_corners = apply_affine(invert_affine(m), corners)
    pad = math.ceil(2.0 / max(s, 1e-6)) + 2
    x0 = int(max(0, math.floor(src_corners[:, 0].min()) - pad))
    y0 = int(max(0, math.floor(src_corners[:, 1].min()) - pad))
    x1 = int(min(w, math.ceil(src_corners[:, 0].max()) + pad + 1))
    y1 = int(min(h, math.ceil(src_corners[:, 1].max()) + pad + 1))
    if x1 - x0 < 2 or y1 - y0 < 2:  # the face lies outside the photo: warp the whole photo (all border)
        x0, y0, x1, y1 = 0, 0, w, h
    sub = img[y0:y1, x0:x1]
    # photo coordinates → sub coordinates
    to_sub = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0]])
    if s < 0.5:  # reduce first, so the bilinear warp below works near scale 1
        rw, rh = sub.shape[1], sub.shape[0]
        nw, nh = max(2, round(rw * s)), max(2, round(rh * s))
        fx, fy = nw / rw, nh / rh
        sub = cv2.resize(np.ascontiguousarray(sub), (nw, nh), interpolation=cv2.INTER_AREA)
        to_sub = compose_affine(np.array([[fx, 0.0, 0.5 * fx - 0.5], [0.0, fy, 0.5 * fy - 0.5]]), to_sub)
    m_sub = compose_affine(m, invert_affine(to_sub))
    value = tuple(float(v) for v in border_value) if border == "constant" else 0
    crop = cv2.warpAffine(np.ascontiguousarray(sub), m_sub, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=_BORDERS[border], borderValue=value)
    return crop, m
