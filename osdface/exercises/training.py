"""Exercises of notebook 05 (training on a CPU).

``check_lr_warmup(fn)``: ``fn(step, warmup_steps) -> float``, the learning-rate multiplier of a linear warm-up:
``min(1, (step + 1) / warmup_steps)``, and 1 without warm-up (``warmup_steps`` 0) — graded against
:meth:`osdface.training.trainer.Trainer.lr_lambda`.

``check_epoch_indices(fn)``: ``fn(n, seed, epoch, rank, world) -> list[int]``, the samples one process sees in one
epoch: a permutation of ``range(n)`` from ``torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003
+ epoch))``, cut into ``world`` equal shards of ``n // world`` (the tail dropped), shard number ``rank`` — graded
against :class:`osdface.training.data.EpochSampler` (what makes multi-GPU runs and exact resumes reproducible).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from ._grading import Case, grade

WARMUP_HINT = ("the multiplier rises linearly and reaches 1 at the end of the warm-up: step 0 gives 1 / "
               "warmup_steps, step warmup_steps - 1 gives 1, later steps stay 1; warmup_steps == 0 means no warm-up "
               "(always 1.0).")
EPOCH_HINT = ("g = torch.Generator().manual_seed(seed * 100_003 + epoch); perm = torch.randperm(n, generator=g)"
              ".tolist(); per = n // world; return perm[rank * per:(rank + 1) * per].")


def warmup_cases() -> list[Case]:
    from ..training.trainer import Trainer

    cases = []
    for step, warm in [(0, 0), (5, 0), (0, 10), (4, 10), (9, 10), (10, 10), (250, 100), (0, 1)]:
        cfg = SimpleNamespace(warmup_steps=warm, lr_schedule="constant")  # the warm-up alone (no decay)
        expected = Trainer.lr_lambda(SimpleNamespace(cfg=cfg), step)
        cases.append(Case((step, warm), np.float64(expected), f"step {step}, warmup_steps {warm}"))
    return cases


def check_lr_warmup(fn, *, quiet: bool = False) -> bool:
    """Grade ``fn(step, warmup_steps)`` against the trainer's warm-up schedule (8 cases)."""
    return grade("lr_warmup", fn, warmup_cases(), WARMUP_HINT, quiet=quiet, rtol=1e-9, atol=1e-12)


def epoch_cases() -> list[Case]:
    from ..training.data import EpochSampler

    cases = []
    for n, seed, epoch, rank, world in [(10, 0, 0, 0, 1), (10, 0, 1, 0, 1), (11, 3, 2, 1, 2), (100, 7, 5, 3, 4),
                                        (7, 1, 0, 2, 3)]:
        expected = np.array(EpochSampler(n, seed, epoch, rank, world).indices(), dtype=np.int64)
        cases.append(Case((n, seed, epoch, rank, world), expected,
                          f"n={n}, seed={seed}, epoch={epoch}, rank {rank} of {world}"))
    return cases


def check_epoch_indices(fn, *, quiet: bool = False) -> bool:
    """Grade ``fn(n, seed, epoch, rank, world)`` against the trainer's epoch sampler (5 cases, exact)."""
    return grade("epoch_indices", fn, epoch_cases(), EPOCH_HINT, quiet=quiet, exact=True)
