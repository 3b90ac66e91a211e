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
from ._grading import Case, Hints, close, grade

KERNEL_HINTS = Hints(
    concept=("an anisotropic Gaussian has covariance Σ = R(θ) diag(σx², σy²) R(θ)ᵀ; its value at the offset d = (x, y) "
             "is proportional to exp(−½ dᵀ Σ⁻¹ d). Evaluate it at every integer offset from −size//2 to size//2, with "
             "x running along the columns and y along the rows, then make the kernel sum to 1."),
    step=("first the grids of offsets and the inverse covariance: ax = np.arange(size) - ___; "
          "xx, yy = np.meshgrid(ax, ax)  (which one varies along the columns?); rot = np.array([[c, -s], [s, c]]) "
          "with c, s the cosine and sine of the angle; inv = np.linalg.inv(rot @ np.diag([___, ___]) @ rot.T). Then "
          "the quadratic form q = dᵀ·inv·d at every offset, the Gaussian of q, and one last step."),
    solution=("ax = np.arange(size) - size // 2; xx, yy = np.meshgrid(ax, ax); "
              "R = [[cos θ, −sin θ], [sin θ, cos θ]]; inv = np.linalg.inv(R @ np.diag([sx², sy²]) @ R.T); "
              "q = inv[0,0]·xx² + (inv[0,1] + inv[1,0])·xx·yy + inv[1,1]·yy²; k = exp(−q / 2); "
              "return (k / k.sum()).astype(np.float32)."))
NOISE_HINTS = Hints(
    concept=("the noise must be the very same random numbers as the library's: the same generator, seed, shape and "
             "dtype, added on the [0, 1] scale with standard deviation σ / 255; going back to 8 bits uses the "
             "library's one rounding rule (clip to 0…255, then round half up)."),
    step=("x = img.astype(np.float32) / 255; noise = np.random.default_rng(___).standard_normal(___, "
          "dtype=np.float32); y = x + noise * ___; then back to 8 bits: scale, clip to 0…255, round half up "
          "(which numpy rounding does that?), uint8."),
    solution=("x = img.astype(np.float32) / 255; noise = np.random.default_rng(seed).standard_normal(img.shape, "
              "dtype=np.float32); y = x + noise * (sigma / 255); "
              "return np.floor(np.clip(y * 255, 0, 255) + 0.5).astype(np.uint8)."))


#: the library functions each exercise grades against (an answer must not call them)
REFERENCES = {"gaussian_kernel": lambda: (gaussian_kernel,), "add_noise": lambda: (apply_params,)}


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


def diagnose_kernel(got, case: Case) -> str | None:
    size, sx, sy, angle = case.args
    k = np.asarray(got, dtype=np.float64)
    if k.shape != (size, size):
        return None
    if abs(k.sum() - 1) > 1e-3:
        return (f"your kernel sums to {k.sum():.4g}, not 1, so blurring would change the image's brightness: look at "
                "the last step, after the Gaussian is evaluated.")
    if close(k, case.expected.T):
        return ("your kernel is the transpose of the expected one: look at which offset grid you treat as x "
                "(it should vary along the columns).")
    if close(k, gaussian_kernel(size, sx, sy, -angle)):
        return ("your ellipse is turned the other way (the mirror angle): look at the signs in your rotation "
                "matrix (on screen, with the y axis pointing down, a positive angle looks clockwise).")
    if close(k, gaussian_kernel(size, sy, sx, angle)):
        return "σx and σy play each other's parts: look at which axis of the ellipse each one belongs to."
    if sx != sy and (close(k, gaussian_kernel(size, sx, sx, 0.0)) or close(k, gaussian_kernel(size, sy, sy, 0.0))):
        return "your kernel is round where it should be an ellipse: look at where σx and σy enter the covariance."
    return None


def check_gaussian_kernel(fn, *, hint_level: int | None = None, quiet: bool = False):
    """Grade ``fn(size, sigma_x, sigma_y, angle)`` against the library's blur kernel (6 seeded cases)."""
    return grade("gaussian_kernel", fn, kernel_cases(), KERNEL_HINTS, hint_level=hint_level, quiet=quiet,
                 diagnose=diagnose_kernel, references=REFERENCES["gaussian_kernel"](), rtol=1e-4, atol=1e-7)


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


def diagnose_noise(got, case: Case) -> str | None:
    img, sigma, _ = case.args
    g = np.asarray(got)
    if g.shape != img.shape:
        return None
    if g.dtype != np.uint8:
        return f"the result is {g.dtype}, not uint8: look at the very end of your function."
    diff = np.abs(g.astype(int) - case.expected.astype(int))
    if diff.max() <= 1:
        return ("every value is within one level of the expected one: look at how you go back to 8 bits (the "
                "order of clipping and rounding, and which rule rounds the halves).")
    added, wanted = (g.astype(float) - img).std(), (case.expected.astype(float) - img).std()
    if not 0.7 < added / max(wanted, 1e-9) < 1.4:
        return (f"your noise has a standard deviation of about {added:.1f} levels where {wanted:.1f} are expected: "
                f"look at the scale the noise is added on (σ = {sigma:.1f} is given on the 0–255 scale).")
    return ("the noise has the right strength but different values: look at how you draw it (which generator, "
            "seed, shape and dtype, and whether you draw once for the whole image).")


def check_add_noise(fn, *, hint_level: int | None = None, quiet: bool = False):
    """Grade ``fn(img_uint8, sigma, seed)`` against the library's noise step (5 seeded cases, exact 8-bit match)."""
    return grade("add_noise", fn, noise_cases(), NOISE_HINTS, hint_level=hint_level, quiet=quiet,
                 diagnose=diagnose_noise, references=REFERENCES["add_noise"](), exact=True)
