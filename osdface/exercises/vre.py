"""Exercises of notebook 02 (the VRE's prompt rule, OSDFace §3.2).

``check_squared_distances(fn)``: ``fn(z (B, N, D), codes (K, D)) -> (B, N, K)`` squared Euclidean distances —
graded against :func:`osdface.models.codebook.squared_distances`.

``check_unique_codes(fn)``: ``fn(dist (B, N, K), num_tokens) -> (indices (B, T), valid (B, T))``: order the positions
by their nearest-code distance (closest first, ties by position), keep each code the first time it appears, take the
first ``num_tokens``; pad with ``-1`` / False — graded against :func:`osdface.models.codebook.select_unique_codes`.
"""

from __future__ import annotations

import torch

from ..models.codebook import select_unique_codes, squared_distances
from ._grading import Case, grade

DIST_HINT = ("‖z − e‖² = ‖z‖² + ‖e‖² − 2 z·e: z.pow(2).sum(-1, keepdim=True) + codes.pow(2).sum(-1) "
             "- 2 * z @ codes.T gives (B, N, K) in one line (or ((z[:, :, None] - codes) ** 2).sum(-1)).")
CODES_HINT = ("per image: min_dist, nearest = dist.min(-1); order = argsort(min_dist, stable=True); walk the "
              "positions in that order and append nearest[p] when not seen yet; stop at num_tokens; pad indices "
              "with -1 and valid with False. Return two (B, num_tokens) tensors: long indices and a bool mask.")


def distance_cases(seed: int = 0, n: int = 4) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    cases = []
    for _ in range(n):
        b, pos, d, k = (int(torch.randint(lo, hi, (1,), generator=g)) for lo, hi in ((1, 4), (4, 65), (2, 33), (3, 50)))
        z = torch.randn(b, pos, d, generator=g, dtype=torch.float64)
        codes = torch.randn(k, d, generator=g, dtype=torch.float64)
        cases.append(Case((z, codes), squared_distances(z, codes), f"B={b}, N={pos}, D={d}, K={k}"))
    return cases


def check_squared_distances(fn, *, quiet: bool = False) -> bool:
    """Grade ``fn(z, codes)`` against the library's distances (4 seeded cases, float64)."""
    return grade("squared_distances", fn, distance_cases(), DIST_HINT, quiet=quiet, rtol=1e-9, atol=1e-9)


def code_cases(seed: int = 0) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    shapes = [(1, 16, 8, 5, "few codes: many repeats, zero-padded prompt"),
              (2, 64, 40, 77, "the tiny preset's 8x8 grid and 40 codes"),
              (2, 256, 1024, 77, "the release's 16x16 grid and 1024 codes"),
              (3, 100, 30, 10, "a short prompt")]
    cases = []
    for b, n, k, t, what in shapes:
        dist = torch.rand(b, n, k, generator=g)
        if n > 16:  # exact ties in the nearest distance: the stable order (by position) decides
            dist[:, 1::7] = dist[:, ::7][:, : dist[:, 1::7].shape[1]]
        cases.append(Case((dist, t), select_unique_codes(dist, t), f"B={b}, N={n} positions, K={k}, {t} tokens: {what}"))
    return cases


def check_unique_codes(fn, *, quiet: bool = False) -> bool:
    """Grade ``fn(dist, num_tokens)`` against the library's prompt rule (4 seeded cases, exact match)."""
    return grade("unique_codes", fn, code_cases(), CODES_HINT, quiet=quiet, exact=True)
