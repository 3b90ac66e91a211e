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
from ._grading import Case, Hints, close, grade

ALPHA_HINTS = Hints(
    concept=("two steps: the betas of a \"scaled linear\" schedule are evenly spaced in √β (from √0.00085 to √0.012, "
             "1000 of them) and then squared; ᾱ_t is the running product of (1 − β_s) for s = 0 … t, with t counting "
             "from 0. Work in float64."),
    step=("betas = torch.linspace(___, ___, 1000, dtype=torch.float64) ** 2  (the ends are square roots); then the "
          "running product of (1 − betas) (torch has a cumulative product) and pick entry ___."),
    solution=("betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2; "
              "return float(torch.cumprod(1 - betas, 0)[t])."))
X0_HINTS = Hints(
    concept=("the forward process says z_t = √ᾱ · z_0 + √(1 − ᾱ) · ε. You know z_t, ε and ᾱ: solve that one line "
             "for z_0 (mind the square roots). The result has the shape of z_t; no clamping."),
    step=("start from z_t = ___ · z_0 + ___ · ε; move the noise term to the other side, then divide by the "
          "factor in front of z_0."),
    solution="return (z_t - (1 - alpha_bar) ** 0.5 * eps) / alpha_bar ** 0.5")


def _alphas_cumprod() -> torch.Tensor:
    from diffusers import DDIMScheduler

    return DDIMScheduler(**SD21_SCHEDULER).alphas_cumprod.to(torch.float64)


def _scheduler_init():
    from diffusers import DDIMScheduler

    return DDIMScheduler.__init__


def _code_names(code) -> set[str]:
    names, stack = set(), [code]
    while stack:
        c = stack.pop()
        names.update(c.co_names)
        stack.extend(k for k in c.co_consts if hasattr(k, "co_names"))
    return names


def delegates_alpha(fn) -> str | None:
    """The table itself is the reference: an answer that reads a scheduler's ``alphas_cumprod`` (or holds the table
    in a variable it uses) looks the answer up instead of computing it."""
    code = getattr(getattr(fn, "__func__", fn), "__code__", None)
    if code is None:
        return None
    if "alphas_cumprod" in _code_names(code):
        return "reads a scheduler's alphas_cumprod table"
    table = _alphas_cumprod()
    seen = [getattr(fn, "__globals__", {}).get(n) for n in _code_names(code)]
    seen += [c.cell_contents for c in (getattr(fn, "__closure__", None) or ()) if c.cell_contents is not None]
    seen += list(getattr(fn, "__defaults__", None) or ())
    for v in seen:
        if hasattr(v, "alphas_cumprod") or hasattr(getattr(v, "scheduler", None), "alphas_cumprod"):
            return "uses a scheduler (its alphas_cumprod table)"
        if isinstance(v, torch.Tensor) and v.numel() == 1000 and close(v.reshape(-1), table, rtol=1e-4):
            return "looks ᾱ_t up in a copy of the scheduler's alphas_cumprod table"
    return None


#: the library code each exercise grades against (an answer must not call it)
REFERENCES = {"alpha_bar": lambda: (_scheduler_init(),), "x0_formula": lambda: (x0_from_eps,)}


def alpha_cases(seed: int = 0) -> list[Case]:
    table = _alphas_cumprod()
    g = torch.Generator().manual_seed(seed)
    ts = [0, 399, 999] + [int(t) for t in torch.randint(0, 1000, (5,), generator=g)]
    return [Case((t,), float(table[t]), f"t = {t}") for t in ts]


def diagnose_alpha(got, case: Case) -> str | None:
    (t,) = case.args
    table = _alphas_cumprod()
    got = float(got)
    near = lambda v: abs(got - float(v)) <= 1e-5 * abs(float(v)) + 1e-7  # noqa: E731
    if (t > 0 and near(table[t - 1])) or (t < 999 and near(table[t + 1])):
        return f"off by one step at t = {t}: look at where the product starts and whether it includes step t itself."
    linear = torch.cumprod(1 - torch.linspace(0.00085, 0.012, 1000, dtype=torch.float64), 0)
    if near(linear[t]):
        return "that is the plain linear schedule: look at what is evenly spaced in a \"scaled linear\" schedule."
    if not 0.0 < got <= 1.0:
        return (f"ᾱ_t is a product of numbers in (0, 1), so it lies in (0, 1]; you returned {got:.4g}: look at "
                "the factors you multiply.")
    return None


def check_alpha_bar(fn, *, hint_level: int | None = None, quiet: bool = False):
    """Grade ``fn(t)`` against the SD 2.1 scheduler's ᾱ_t (8 timesteps; the table is float32, so rtol 1e-5)."""
    return grade("alpha_bar", fn, alpha_cases(), ALPHA_HINTS, hint_level=hint_level, quiet=quiet,
                 diagnose=diagnose_alpha, references=REFERENCES["alpha_bar"](), delegates=delegates_alpha,
                 rtol=1e-5, atol=1e-7)


def x0_cases(seed: int = 0) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    cases = []
    for shape, a in [((1, 4, 8, 8), 0.4261), ((2, 4, 16, 16), 0.9), ((3, 4, 5, 7), 0.05), ((1, 4, 64, 64), 0.5)]:
        z, eps = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
        cases.append(Case((z, eps, a), x0_from_eps(z, eps, a), f"shape {shape}, alpha_bar {a}"))
    return cases


def diagnose_x0(got, case: Case) -> str | None:
    z, eps, a = case.args
    if close(got, (z - (1 - a) * eps) / a):
        return "the square roots are missing: look at the factors in front of z_0 and of ε in the forward process."
    if close(got, (z + (1 - a) ** 0.5 * eps) / a ** 0.5):
        return "the noise term has the wrong sign: look at the step where you move it to the other side."
    if close(got, z - (1 - a) ** 0.5 * eps):
        return "the noise is removed, but z_0 is not isolated yet: look at the factor still in front of it."
    return None


def check_x0_formula(fn, *, hint_level: int | None = None, quiet: bool = False):
    """Grade ``fn(z_t, eps, alpha_bar)`` against :func:`~osdface.models.one_step.x0_from_eps` (4 seeded cases)."""
    return grade("x0_formula", fn, x0_cases(), X0_HINTS, hint_level=hint_level, quiet=quiet,
                 diagnose=diagnose_x0, references=REFERENCES["x0_formula"](), rtol=1e-5, atol=1e-5)
