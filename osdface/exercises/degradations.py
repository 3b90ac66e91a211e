"""Exercises of notebook 01 (degradations, docs/ARCHITECTURE.md §4): the blur kernel and the noise step.

``check_gaussian_kernel(fn)``: ``fn(size, sigma_x, sigma_y, angle) -> (size, size)`` normalised Gaussian kernel with
covariance ``R(θ) diag(σx², σy²) R(θ)ᵀ`` — graded against :func:`osdface.data.degradations.gaussian_kernel`.

``check_add_noise(fn)``: ``fn(img_uint8, sigma, seed) -> uint8`` adds ``N(0, (σ/255)²)`` noise drawn with
``np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)`` to the image scaled to [0, 1], then rounds
back to 8 bits (half up) — graded against :func:`osdface.data.degradations.apply_params` with every other step switched off
(a 1-tap blur, r = 1, no JPEG).
"""

from __future__ import annotations

import math

import numpy as np

from ..data.degradations import apply_params, gaussian_kernel
from ._grading import Case, grade

KERNEL_HINT = ("build offsets ax = arange(size) - size // 2 and a grid xx, yy = meshgrid(ax, ax) (xx: columns); "
               "cov = R @ diag(sx², sy²) @ R.T with R = [[cos θ, -sin θ], [sin θ, cos θ]]; "
               "k = exp(-0.5 · [x y] cov⁻¹ [x y]ᵀ) at every offset; divide by k.sum(); return float32.")
NOISE_HINT = ("x = img / 255 as float32; noise = np.random.default_rng(seed).standard_normal(img.shape, "
              "dtype=np.float32); y = x + noise * (sigma / 255); return np.floor(np.clip(y * 255, 0, 255) + 0.5) as uint8 "
              "(round half up, the library's rule: osdface.image_io.to_uint8).")


def kernel_cases(seed: int = 0, n: int = 6) -> list[Case]:
    g = np.random.default_rng(seed)
    cases = [Case((5, 1.0, 1.0, 0.0), gaussian_kernel(5, 1.0, 1.0, 0.0), "isotropic 5x5, sigma 1")]
    for _ in range(n - 1):
        size = int(g.choice([3, 7, 11, 21, 41]))
        sx, sy = float(g.uniform(0.3, 6)), float(g.uniform(0.3, 6))
        angle = float(g.uniform(-math.pi, math.pi))
        cases.append(Case((size, sx, sy, angle), gaussian_kernel(size, sx, sy, angle),
                          f"{size}x{size}, sigma ({sx:.2f}, {sy:.2f}), angle {angle:.2f}"))
    return cases


def check_gaussian_kernel(fn, *, quiet: bool = False) -> bool:
    """Grade ``fn(size, sigma_x, sigma_y, angle)`` against the library's blur kernel (6 seeded cases)."""
    return grade("gaussian_kernel", fn, kernel_cases(), KERNEL_HINT, quiet=quiet, rtol=1e-4, atol=1e-7)


def _noise_only(img: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    params = dict(kernel_radius=0, kernel_size=1, sigma_x=0.1, sigma_y=0.1, angle=0.0, scale=1.0, noise_sigma=sigma,
                  noise_seed=seed, jpeg_quality=None)
    return apply_params(img, params)


def noise_cases(seed: int = 0, n: int = 5) -> list[Case]:
    g = np.random.default_rng(seed)
    cases = []
    for _ in range(n):
        h, w = int(g.integers(8, 40)), int(g.integers(8, 40))
        img = g.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        sigma, s = float(g.uniform(1, 20)), int(g.integers(0, 2**31))
        cases.append(Case((img, sigma, s), _noise_only(img, sigma, s), f"{h}x{w} RGB, sigma {sigma:.1f}, seed {s}"))
    return cases


def check_add_noise(fn, *, quiet: bool = False) -> bool:
    """Grade ``fn(img_uint8, sigma, seed)`` against the library's noise step (5 seeded cases, exact 8-bit match)."""
    return grade("add_noise", fn, noise_cases(), NOISE_HINT, quiet=quiet, exact=True)
