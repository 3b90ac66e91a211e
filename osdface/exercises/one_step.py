"""Exercises of notebook 03 (one step instead of many, OSDFace §3.1, docs/ARCHITECTURE.md §1).

``check_alpha_bar(fn)``: ``fn(t) -> ᾱ_t`` of SD 2.1's "scaled_linear" schedule (β from 0.00085 to 0.012 over 1000
steps, linear in √β; ᾱ_t = ∏_{s ≤ t} (1 − β_s)) — graded against the library's scheduler table
(``OSDFacePipeline.scheduler.alphas_cumprod``, a diffusers ``DDIMScheduler`` built from the preset's config).

``check_x0_formula(fn)``: ``fn(z_t, eps, alpha_bar) -> ẑ_0`` with ẑ_0 = (z_t − √(1 − ᾱ) ε) / √ᾱ — graded against
:func:`osdface.models.one_step.x0_from_eps`.
"""

from __future__ import annotations

import torch

from ..configs import SD21_SCHEDULER
from ..models.one_step import x0_from_eps
from ._grading import Case, grade

ALPHA_HINT = ("betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2; "
              "alphas_cumprod = torch.cumprod(1 - betas, 0); return float(alphas_cumprod[t]). "
              "(t counts from 0; ᾱ_399 ≈ 0.4261.)")
X0_HINT = ("solve z_t = √ᾱ · z_0 + √(1 − ᾱ) · ε for z_0: (z_t - (1 - alpha_bar) ** 0.5 * eps) / alpha_bar ** 0.5. "
           "Keep the tensor's shape; no clamping.")


def _alphas_cumprod() -> torch.Tensor:
    from diffusers import DDIMScheduler

    return DDIMScheduler(**SD21_SCHEDULER).alphas_cumprod.to(torch.float64)


def alpha_cases(seed: int = 0) -> list[Case]:
    table = _alphas_cumprod()
    g = torch.Generator().manual_seed(seed)
    ts = [0, 399, 999] + [int(t) for t in torch.randint(0, 1000, (5,), generator=g)]
    return [Case((t,), float(table[t]), f"t = {t}") for t in ts]


def check_alpha_bar(fn, *, quiet: bool = False) -> bool:
    """Grade ``fn(t)`` against the SD 2.1 scheduler's ᾱ_t (8 timesteps; the table is float32, so rtol 1e-5)."""
    return grade("alpha_bar", fn, alpha_cases(), ALPHA_HINT, quiet=quiet, rtol=1e-5, atol=1e-7)


def x0_cases(seed: int = 0) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    cases = []
    for shape, a in [((1, 4, 8, 8), 0.4261), ((2, 4, 16, 16), 0.9), ((3, 4, 5, 7), 0.05), ((1, 4, 64, 64), 0.5)]:
        z, eps = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
        cases.append(Case((z, eps, a), x0_from_eps(z, eps, a), f"shape {shape}, alpha_bar {a}"))
    return cases


def check_x0_formula(fn, *, quiet: bool = False) -> bool:
    """Grade ``fn(z_t, eps, alpha_bar)`` against :func:`~osdface.models.one_step.x0_from_eps` (4 seeded cases)."""
    return grade("x0_formula", fn, x0_cases(), X0_HINT, quiet=quiet, rtol=1e-5, atol=1e-5)
