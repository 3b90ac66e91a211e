"""Exercises of notebook 02 (the VRE's prompt rule, OSDFace §3.2).

``check_squared_distances(fn)``: ``fn(z (B, N, D), codes (K, D)) -> (B, N, K)`` squared Euclidean distances —
graded against :func:`osdface.models.codebook.squared_distances`.

``check_unique_codes(fn)``: ``fn(dist (B, N, K), num_tokens) -> (indices (B, T), valid (B, T))``: order the positions
by their nearest-code distance (closest first), keep each code the first time it appears, take the first
``num_tokens``; pad with ``-1`` / False — graded against :func:`osdface.models.codebook.select_unique_codes`.

The library sorts like the release (``torch.sort``'s default algorithm, which does not promise to keep equal
distances in position order), so the graded cases have no ties between positions whose nearest codes differ
(float64 distances); positions that share a code may tie, and their order cannot change the answer.
"""

from __future__ import annotations

import torch

from ..models.codebook import select_unique_codes, squared_distances
from ._grading import Case, Hints, close, grade

#: the library functions each exercise grades against (an answer must not call them)
REFERENCES = {"squared_distances": lambda: (squared_distances,), "unique_codes": lambda: (select_unique_codes,)}

DIST_HINTS = Hints(
    concept=("for every image b, position n and code k you need ‖z[b, n] − codes[k]‖², the sum over the D feature "
             "dimensions of the squared differences; broadcasting (adding size-1 axes) gives all B·N·K of them at "
             "once, or expand the square: ‖z‖² + ‖e‖² − 2 z·e."),
    step=("diff = z[:, :, None, :] - codes[___]  # the codes get size-1 axes so that diff is (B, N, K, D); "
          "then square and sum over ___ (which axis holds the D features?)."),
    solution=("((z[:, :, None, :] - codes[None, None]) ** 2).sum(-1), or z.pow(2).sum(-1, keepdim=True) + "
              "codes.pow(2).sum(-1) - 2 * z @ codes.T."))
CODES_HINTS = Hints(
    concept=("for one image: each position has a nearest code and a distance to it; visit the positions from the "
             "closest to the farthest, and write a code down the first time you meet it; stop after num_tokens codes. "
             "Unused slots are −1 in `indices` and False in `valid`."),
    step=("indices = torch.full((B, num_tokens), -1, dtype=torch.long); per image i: d, nearest = dist[i].min(___) "
          "(each position's distance to its nearest code, and which code); order = ___ (the positions, closest "
          "first); walk through order keeping a list of codes; then fill row i of indices and build `valid`."),
    solution=("per image i: d, nearest = dist[i].min(-1); order = torch.sort(d).indices; kept = []; for p in order: "
              "c = int(nearest[p]); append c when not in kept; break at num_tokens. indices = torch.full((B, T), -1); "
              "indices[i, :len(kept)] = torch.tensor(kept); return indices, indices >= 0."))


def distance_cases(seed: int = 0, n: int = 4) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    cases = []
    for _ in range(n):
        b, pos, d, k = (int(torch.randint(lo, hi, (1,), generator=g)) for lo, hi in ((1, 4), (4, 65), (2, 33), (3, 50)))
        z = torch.randn(b, pos, d, generator=g, dtype=torch.float64)
        codes = torch.randn(k, d, generator=g, dtype=torch.float64)
        cases.append(Case((z, codes), squared_distances(z, codes), f"B={b}, N={pos}, D={d}, K={k}"))
    return cases


def diagnose_distances(got, case: Case) -> str | None:
    expected = case.expected
    if close(got, expected.sqrt()):
        return ("these are the distances, not their squares: look at the last operation you apply (or the library "
                "function you call) after summing.")
    if close(got, expected.transpose(1, 2)):
        return "the last two axes are swapped: look at the order of the axes in your result (B, N, K)."
    if close(got, -expected):
        return "the sign is flipped (a squared distance is never negative): look at the order of your subtraction."
    return None


def check_squared_distances(fn, *, hint_level: int | None = None, quiet: bool = False):
    """Grade ``fn(z, codes)`` against the library's distances (4 seeded cases, float64)."""
    return grade("squared_distances", fn, distance_cases(), DIST_HINTS, hint_level=hint_level, quiet=quiet,
                 diagnose=diagnose_distances, references=REFERENCES["squared_distances"](), rtol=1e-9, atol=1e-9)


def code_cases(seed: int = 0) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    shapes = [(1, 16, 8, 5, "few codes: many repeats, zero-padded prompt"),
              (2, 64, 40, 77, "the tiny preset's 8x8 grid and 40 codes"),
              (2, 256, 1024, 77, "the release's 16x16 grid and 1024 codes"),
              (3, 100, 30, 10, "a short prompt")]
    cases = []
    for b, n, k, t, what in shapes:
        dist = torch.rand(b, n, k, generator=g, dtype=torch.float64)  # float64: no accidental ties
        if n > 16:  # positions with identical distance rows: the same nearest code at the same distance
            dist[:, 1::7] = dist[:, ::7][:, : dist[:, 1::7].shape[1]]
        cases.append(Case((dist, t), select_unique_codes(dist, t), f"B={b}, N={n} positions, K={k}, {t} tokens: {what}"))
    return cases


def diagnose_codes(got, case: Case) -> str | None:
    indices, valid = got
    exp_idx, exp_valid = case.expected
    indices, valid = torch.as_tensor(indices), torch.as_tensor(valid)
    if indices.shape != exp_idx.shape:
        return None
    dist, num_tokens = case.args
    in_grid_order = [list(dict.fromkeys(nearest.tolist()))[:num_tokens] for nearest in dist.argmin(-1)]
    if all([int(c) for c, v in zip(row, vrow) if v] == want for row, vrow, want in zip(indices, valid, in_grid_order)):
        return ("these are the first distinct codes in grid order (top-left first): look at the order in which "
                "you visit the positions.")
    for row, exp_row, vrow, exp_v in zip(indices, exp_idx, valid, exp_valid):
        kept = [int(c) for c, v in zip(row, vrow) if v]
        if len(kept) != len(set(kept)):
            return "a code appears twice in one prompt: look at how you test whether a code was already kept."
        if sorted(kept) == sorted(int(c) for c in exp_row[exp_v]) and kept != [int(c) for c in exp_row[exp_v]]:
            return ("the right codes in the wrong order: look at what decides the order of the slots (it is not "
                    "the place in the grid nor the code number).")
    if torch.equal(indices[exp_valid], exp_idx[exp_valid]):
        return "the kept codes are right; the padding after the last code is not: look at how you fill the rest."
    return None


def check_unique_codes(fn, *, hint_level: int | None = None, quiet: bool = False):
    """Grade ``fn(dist, num_tokens)`` against the library's prompt rule (4 seeded cases, exact match)."""
    return grade("unique_codes", fn, code_cases(), CODES_HINTS, hint_level=hint_level, quiet=quiet,
                 diagnose=diagnose_codes, references=REFERENCES["unique_codes"](), exact=True)
