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

from ._grading import Case, Hints, close, grade


def _psnr_ref():
    from ..eval.psnr_ssim import psnr

    return (psnr,)


def _fid_ref():
    from ..eval.fid import frechet_distance

    return (frechet_distance,)


#: the library functions each exercise grades against (an answer must not call them)
REFERENCES = {"psnr": _psnr_ref, "frechet_distance": _fid_ref}

PSNR_HINTS = Hints(
    concept=("face-restoration PSNR is measured on the luma (Y) channel only: turn each RGB image in [0, 1] into Y on "
             "the 0–255 scale (BT.601: 16 + 65.481 R + 128.553 G + 24.966 B, not rounded), take the mean squared "
             "error per image, then PSNR = 10 · log10(255² / MSE). One value per image, in float64."),
    step=("w = torch.tensor([65.481, 128.553, 24.966], dtype=torch.float64).view(1, 3, 1, 1); "
          "y = 16 + (x.double() * w).sum(___) for pred and for gt; mse: the mean of the squared difference over "
          "each image's pixels (one value per image); then PSNR from the peak ___ and the MSE."),
    solution=("w = torch.tensor([65.481, 128.553, 24.966], dtype=torch.float64).view(1, 3, 1, 1); "
              "y = 16 + (x.double() * w).sum(1) for pred and gt; mse = (y_pred - y_gt).pow(2).flatten(1).mean(1); "
              "return 10 * torch.log10(255.0 ** 2 / mse)."))
FID_HINTS = Hints(
    concept=("the Fréchet distance between two Gaussians is ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁Σ₂)^½). The matrix "
             "square root is the hard part, but only its trace is needed: it is the sum of the square roots of the "
             "eigenvalues of Σ₁Σ₂ (real and ≥ 0 up to round-off). Identical statistics give 0."),
    step=("diff = mu1 - mu2; eig = np.linalg.eigvals(___).real  (the eigenvalues of which matrix?); "
          "tr_sqrt = ___ (from eig, clipped at 0); then put the four terms together as one float."),
    solution=("diff = mu1 - mu2; eig = np.linalg.eigvals(sigma1 @ sigma2).real; "
              "tr = np.sqrt(np.clip(eig, 0, None)).sum(); "
              "return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr)."))


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


def diagnose_psnr(got, case: Case) -> str | None:
    pred, gt = case.args
    rgb = 10 * torch.log10(1 / (pred - gt).pow(2).flatten(1).mean(1))
    if close(got, rgb):
        return "that is PSNR on RGB: look at which channel(s) the error is measured on."
    y = lambda x: 16 + (x * torch.tensor([65.481, 128.553, 24.966], dtype=x.dtype).view(1, 3, 1, 1)).sum(1)  # noqa
    if close(got, 10 * torch.log10(1 / (y(pred) - y(gt)).pow(2).flatten(1).mean(1))):
        return "the Y channel is right, the peak value is not: look at the scale Y is on."
    if torch.as_tensor(got).numel() == 1 and pred.shape[0] > 1:
        return "one value for the whole batch: look at the axes you average the squared error over."
    return None


def check_psnr(fn, *, hint_level: int | None = None, quiet: bool = False):
    """Grade ``fn(pred, gt)`` against the library's Y-channel PSNR (4 seeded cases, float64)."""
    return grade("psnr", fn, psnr_cases(), PSNR_HINTS, hint_level=hint_level, quiet=quiet, diagnose=diagnose_psnr,
                 references=_psnr_ref(), rtol=1e-6, atol=1e-6)


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


def diagnose_fid(got, case: Case) -> str | None:
    mu1, s1, mu2, s2 = case.args
    got = complex(np.asarray(got).reshape(-1)[0]) if np.size(got) == 1 else None
    if got is None:
        return "the distance is one number: look at what your function returns."
    if got.imag != 0:
        return "the result is complex: look at the eigenvalues (or the matrix square root) before you sum them."
    d = mu1 - mu2
    if close(got.real, float(d @ d + np.trace(s1) + np.trace(s2) - 2 * np.trace(s1 @ s2) ** 0.5)):
        return "the square root is taken at the wrong place: look at what it is applied to (the trace or the matrix)."
    if close(got.real, float(d @ d)):
        return "only the means are compared: look at the formula again, a whole term is missing."
    return None


def check_frechet_distance(fn, *, hint_level: int | None = None, quiet: bool = False):
    """Grade ``fn(mu1, sigma1, mu2, sigma2)`` against the library's Fréchet distance (4 seeded cases)."""
    return grade("frechet_distance", fn, fid_cases(), FID_HINTS, hint_level=hint_level, quiet=quiet,
                 diagnose=diagnose_fid, references=_fid_ref(), rtol=1e-5, atol=1e-5)
