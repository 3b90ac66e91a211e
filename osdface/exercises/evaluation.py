"""Exercises of notebook 06 (evaluation, docs/ARCHITECTURE.md §5).

``check_psnr(fn)``: ``fn(pred, gt) -> (N,)`` PSNR in dB per image of (N, 3, H, W) float images in [0, 1], on the
**Y channel** (BT.601 luma ``16 + 65.481 R + 128.553 G + 24.966 B`` on the 0–255 scale), the face-restoration
convention — graded against :func:`osdface.eval.psnr_ssim.psnr`.

``check_frechet_distance(fn)``: ``fn(mu1, sigma1, mu2, sigma2) -> float``, the Fréchet distance between two
Gaussians, ``|μ₁ − μ₂|² + tr(Σ₁ + Σ₂ − 2 (Σ₁Σ₂)^½)`` (FID on Inception features) — graded against
:func:`osdface.eval.fid.frechet_distance`.
"""

from __future__ import annotations

import numpy as np
import torch

from ._grading import Case, grade

PSNR_HINT = ("to 0–255: y = 16 + (65.481 R + 128.553 G + 24.966 B) for RGB in [0, 1] (do not round); "
             "mse = ((y_pred - y_gt) ** 2).mean over (C, H, W) per image; psnr = 10 · log10(255² / mse). "
             "Work in float64; return a (N,) tensor.")
FID_HINT = ("diff = mu1 - mu2; tr((Σ₁Σ₂)^½) is the sum of the square roots of the eigenvalues of sigma1 @ sigma2 "
            "(real and >= 0 up to round-off: np.linalg.eigvals(...).real, clipped at 0), or the trace of "
            "scipy.linalg.sqrtm(sigma1 @ sigma2).real; fid = diff @ diff + trace(sigma1) + trace(sigma2) - 2 · that. "
            "Return a float.")


def psnr_cases(seed: int = 0) -> list[Case]:
    from ..eval.psnr_ssim import psnr

    g = torch.Generator().manual_seed(seed)
    cases = []
    for n, h, w, noise in [(1, 16, 16, 0.1), (3, 24, 17, 0.02), (2, 32, 32, 0.3)]:
        gt = torch.rand(n, 3, h, w, generator=g, dtype=torch.float64)
        pred = (gt + noise * torch.randn(gt.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
        cases.append(Case((pred, gt), psnr(pred, gt), f"{n} images {h}x{w}, noise {noise}"))
    gt = torch.rand(2, 3, 12, 12, generator=g, dtype=torch.float64)
    pred = gt.clone()
    pred[:, 0] += 0.2 * (pred[:, 0] < 0.8)  # a colour shift: on Y it counts with weight 65.481 / 255
    cases.append(Case((pred, gt), psnr(pred, gt), "a shift of the red channel only"))
    return cases


def check_psnr(fn, *, quiet: bool = False) -> bool:
    """Grade ``fn(pred, gt)`` against the library's Y-channel PSNR (4 seeded cases, float64)."""
    return grade("psnr", fn, psnr_cases(), PSNR_HINT, quiet=quiet, rtol=1e-6, atol=1e-6)


def fid_cases(seed: int = 0) -> list[Case]:
    from ..eval.fid import frechet_distance

    g = np.random.default_rng(seed)
    cases = []
    for d, n in [(2, 50), (8, 200), (32, 100)]:
        a = g.normal(size=(n, d))
        b = g.normal(size=(n, d)) @ g.normal(scale=0.6, size=(d, d)) + g.normal(size=d)
        mu1, s1, mu2, s2 = a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)
        cases.append(Case((mu1, s1, mu2, s2), frechet_distance(mu1, s1, mu2, s2), f"{d}-d features of {n} images"))
    mu, s = g.normal(size=4), np.cov(g.normal(size=(30, 4)), rowvar=False)
    cases.append(Case((mu, s, mu, s), frechet_distance(mu, s, mu, s), "identical statistics (FID 0)"))
    return cases


def check_frechet_distance(fn, *, quiet: bool = False) -> bool:
    """Grade ``fn(mu1, sigma1, mu2, sigma2)`` against the library's Fréchet distance (4 seeded cases)."""
    return grade("frechet_distance", fn, fid_cases(), FID_HINT, quiet=quiet, rtol=1e-5, atol=1e-5)
