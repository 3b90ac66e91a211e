"""Exercises of notebook 07 (whole photos: align to the FFHQ template, paste back).

``check_similarity_transform(fn)``: ``fn(src (N, 2), dst (N, 2)) -> (2, 3)`` least-squares similarity (rotation,
uniform scale, translation, no reflection) mapping ``src`` onto ``dst`` (Umeyama 1991) — graded against
:func:`osdface.faces.alignment.similarity_transform`.

``check_invert_affine(fn)``: ``fn(M (2, 3)) -> (2, 3)`` the affine that undoes ``M`` (crop → photo for pasting
back) — graded against :func:`osdface.faces.alignment.invert_affine`.
"""

from __future__ import annotations

import numpy as np

from ..faces.alignment import FFHQ_TEMPLATE_512, invert_affine, similarity_transform
from ._grading import Case, grade

SIM_HINT = ("centre both point sets (subtract their means); var_s = (src_c ** 2).sum() / N; "
            "cov = dst_c.T @ src_c / N; U, D, Vt = np.linalg.svd(cov); if det(U)·det(Vt) < 0 flip the sign of the "
            "last singular direction (S = diag(1, -1)); R = U @ S @ Vt; scale = (D * diag(S)).sum() / var_s; "
            "t = mean_dst - scale * R @ mean_src; return np.hstack([scale * R, t[:, None]]).")
INV_HINT = ("append the row [0, 0, 1] to get a 3x3 matrix, invert it with np.linalg.inv, keep the first two rows "
            "(or: A⁻¹ = inv(M[:, :2]), t' = -A⁻¹ @ M[:, 2]).")


def similarity_cases(seed: int = 0, n: int = 6) -> list[Case]:
    g = np.random.default_rng(seed)
    cases = []
    for i in range(n):
        scale, angle = g.uniform(0.2, 3.0), g.uniform(-np.pi, np.pi)
        c, s = np.cos(angle), np.sin(angle)
        src = g.uniform(0, 800, size=(5, 2))
        if i == 0:  # the real task: detected landmarks → the FFHQ template
            dst = FFHQ_TEMPLATE_512.copy()
            what = "5 landmarks → the FFHQ 512 template"
        else:
            dst = src @ (scale * np.array([[c, -s], [s, c]])).T + g.uniform(-200, 200, size=2)
            dst = dst + g.normal(0, 2.0, size=dst.shape)  # noisy landmarks: a least-squares fit, not exact
            what = f"noisy similarity, scale {scale:.2f}, angle {angle:.2f}"
        if i == n - 1:  # a mirrored point set: the best similarity must not reflect
            dst = dst * np.array([-1.0, 1.0])
            what = "mirrored points (no reflection allowed)"
        cases.append(Case((src, dst), similarity_transform(src, dst), what))
    return cases


def check_similarity_transform(fn, *, quiet: bool = False) -> bool:
    """Grade ``fn(src, dst)`` against the library's Umeyama fit (6 seeded cases)."""
    return grade("similarity_transform", fn, similarity_cases(), SIM_HINT, quiet=quiet, rtol=1e-6, atol=1e-6)


def invert_cases(seed: int = 0, n: int = 4) -> list[Case]:
    g = np.random.default_rng(seed)
    cases = []
    for _ in range(n):
        m = np.hstack([g.normal(0, 1.5, size=(2, 2)) + np.eye(2), g.uniform(-300, 300, size=(2, 1))])
        cases.append(Case((m,), invert_affine(m), "a random affine"))
    return cases


def check_invert_affine(fn, *, quiet: bool = False) -> bool:
    """Grade ``fn(M)`` against :func:`~osdface.faces.alignment.invert_affine` (4 seeded cases)."""
    return grade("invert_affine", fn, invert_cases(), INV_HINT, quiet=quiet, rtol=1e-7, atol=1e-7)
