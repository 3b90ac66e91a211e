"""Colour correction of a restored face toward its input crop.

* ``"none"``: unchanged.
* ``"adain"``: per-channel mean and standard deviation of the restored face set to the input's.
* ``"wavelet"``: the restored face's low-frequency band replaced by the input's: a 5-level à-trous
  decomposition with a dilated 3x3 binomial blur (dilation 1, 2, 4, 8, 16); detail bands come from the
  restored face, the residual (coarsest) band from the input.

Arrays are float32 (H, W, 3) in [0, 1] (uint8 is accepted and converted); the result is float32 in [0, 1].
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["COLOR_FIX_METHODS", "color_fix", "adain_color_fix", "wavelet_color_fix", "wavelet_low_pass"]

COLOR_FIX_METHODS = ("none", "adain", "wavelet")


def _f32(x) -> np.ndarray:
    x = np.asarray(x)
    return x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)


def adain_color_fix(restored, reference) -> np.ndarray:
    r, ref = _f32(restored), _f32(reference)
    if ref.shape[:2] != r.shape[:2]:
        ref = cv2.resize(ref, (r.shape[1], r.shape[0]), interpolation=cv2.INTER_AREA)
    mu_r, sd_r = r.mean((0, 1)), r.std((0, 1))
    mu_f, sd_f = ref.mean((0, 1)), ref.std((0, 1))
    out = (r - mu_r) / np.maximum(sd_r, 1e-6) * sd_f + mu_f
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _dilated_blur(x: np.ndarray, dilation: int) -> np.ndarray:
    k = np.zeros(2 * dilation + 1, np.float32)
    k[0], k[dilation], k[-1] = 0.25, 0.5, 0.25
    return cv2.sepFilter2D(x, -1, k, k, borderType=cv2.BORDER_REFLECT_101)


def wavelet_low_pass(x: np.ndarray, levels: int = 5) -> np.ndarray:
    """The coarsest band after ``levels`` à-trous blurs (dilations 1, 2, 4, ...)."""
    low = x
    for i in range(levels):
        d = 2 ** i
        if 2 * d + 1 > 2 * min(x.shape[:2]) - 1:  # reflect border needs the kernel to fit
            break
        low = _dilated_blur(low, d)
    return low


def wavelet_color_fix(restored, reference, levels: int = 5) -> np.ndarray:
    r, ref = _f32(restored), _f32(reference)
    if ref.shape[:2] != r.shape[:2]:
        ref = cv2.resize(ref, (r.shape[1], r.shape[0]), interpolation=cv2.INTER_AREA)
    out = r - wavelet_low_pass(r, levels) + wavelet_low_pass(ref, levels)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def color_fix(restored, reference, method: str = "none") -> np.ndarray:
    """Apply ``method`` ("none", "adain", "wavelet"); returns float32 (H, W, 3) in [0, 1]."""
    if method in (None, "none"):
        return _f32(restored)
    if method == "adain":
        return adain_color_fix(restored, reference)
    if method == "wavelet":
        return wavelet_color_fix(restored, reference)
    raise ValueError(f"unknown colour fix {method!r}; use one of {', '.join(COLOR_FIX_METHODS)}")
