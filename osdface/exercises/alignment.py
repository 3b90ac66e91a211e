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
from ._grading import Case, Hints, grade

#: the library functions each exercise grades against (an answer must not call them)
REFERENCES = {"similarity_transform": lambda: (similarity_transform,), "invert_affine": lambda: (invert_affine,)}

SIM_HINTS = Hints(
    concept=("a similarity is dst ≈ s·R·src + t: rotation, one scale, shift, and no mirror image. The least-squares "
             "fit centres both point sets, finds the rotation from their cross-covariance (Umeyama 1991, with a sign "
             "fix when the best orthogonal matrix would reflect), then the scale and the shift. Or: as complex "
             "numbers a similarity is w·z + b, a linear least-squares problem in w and b."),
    step=("the complex route: zs = src[:, 0] + 1j * src[:, 1] (and zd from dst); centre both (subtract ___); "
          "w = (least-squares ratio of the centred points: np.vdot(___, ___) / np.vdot(___, ___)); b from the means; "
          "then write w·z + b as the 2×3 matrix [[Re w, ___, Re b], [Im w, ___, Im b]]."),
    solution=("zs = src[:, 0] + 1j * src[:, 1]; zd = dst[:, 0] + 1j * dst[:, 1]; centre both; "
              "w = np.vdot(zs_c, zd_c) / np.vdot(zs_c, zs_c); b = zd.mean() - w * zs.mean(); "
              "return np.array([[w.real, -w.imag, b.real], [w.imag, w.real, b.imag]])."))
INV_HINTS = Hints(
    concept=("an affine map x ↦ A x + t is undone by x ↦ A⁻¹ (x − t): invert the 2×2 part and transform the shift. "
             "A transpose is only an inverse for pure rotations."),
    step=("a_inv = np.linalg.inv(m[:, :2]); the new shift is ___ (what does x ↦ A⁻¹(x − t) add to A⁻¹ x?); "
          "stack them side by side into a 2×3 matrix."),
    solution=("a_inv = np.linalg.inv(m[:, :2]); return np.hstack([a_inv, (-a_inv @ m[:, 2])[:, None]]) "
              "(or: add the row [0, 0, 1], np.linalg.inv, keep two rows)."))


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


def diagnose_similarity(got, case: Case) -> str | None:
    m = np.asarray(got, dtype=np.float64)
    if m.shape != (2, 3):
        return None
    a = m[:, :2]
    if np.linalg.det(a) < 0:
        return ("your matrix mirrors the points (negative determinant): look at how your fit handles the case "
                "where the best orthogonal matrix would reflect.")
    if not (np.isclose(a[0, 0], a[1, 1], atol=1e-6) and np.isclose(a[0, 1], -a[1, 0], atol=1e-6)):
        return ("the 2×2 part is not a scaled rotation [[a, −b], [b, a]]: look at how many free parameters your "
                "fit has (a similarity has four).")
    return None


def check_similarity_transform(fn, *, hint_level: int | None = None, quiet: bool = False):
    """Grade ``fn(src, dst)`` against the library's Umeyama fit (6 seeded cases)."""
    return grade("similarity_transform", fn, similarity_cases(), SIM_HINTS, hint_level=hint_level, quiet=quiet,
                 diagnose=diagnose_similarity, references=REFERENCES["similarity_transform"](), rtol=1e-6, atol=1e-6)


def invert_cases(seed: int = 0, n: int = 4) -> list[Case]:
    g = np.random.default_rng(seed)
    cases = []
    for _ in range(n):
        m = np.hstack([g.normal(0, 1.5, size=(2, 2)) + np.eye(2), g.uniform(-300, 300, size=(2, 1))])
        cases.append(Case((m,), invert_affine(m), "a random affine"))
    return cases


def diagnose_invert(got, case: Case) -> str | None:
    (m,) = case.args
    inv = np.asarray(got, dtype=np.float64)
    if inv.shape != (2, 3):
        return None
    full = lambda x: np.vstack([x, [0.0, 0.0, 1.0]])  # noqa: E731
    if np.allclose(inv[:, :2], m[:, :2].T):
        return "the 2×2 part is a transpose, which undoes only pure rotations: look at how you invert it."
    if np.allclose((full(m) @ full(inv))[:2, :2], np.eye(2), atol=1e-6):
        return "the 2×2 part is right; the shift is not: look at what the inverse map does to the old shift t."
    return None


def check_invert_affine(fn, *, hint_level: int | None = None, quiet: bool = False):
    """Grade ``fn(M)`` against :func:`~osdface.faces.alignment.invert_affine` (4 seeded cases)."""
    return grade("invert_affine", fn, invert_cases(), INV_HINTS, hint_level=hint_level, quiet=quiet,
                 diagnose=diagnose_invert, references=REFERENCES["invert_affine"](), rtol=1e-7, atol=1e-7)
