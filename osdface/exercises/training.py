"""Exercises of notebook 05 (training on a CPU).

``check_lr_warmup(fn)``: ``fn(step, warmup_steps) -> float``, the learning-rate multiplier of a linear warm-up:
``min(1, (step + 1) / warmup_steps)``, and 1 without warm-up (``warmup_steps`` 0) — graded against
:meth:`osdface.training.trainer.Trainer.lr_lambda`.

``check_epoch_indices(fn)``: ``fn(n, seed, epoch, rank, world) -> list[int]``, the samples one process sees in one
epoch: a permutation of ``range(n)`` from ``torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003
+ epoch))``, dealt out like cards: process ``rank`` takes every ``world``-th entry starting at position ``rank``,
``n // world`` of them (the tail dropped) — graded against :class:`osdface.training.data.EpochSampler` (what makes
multi-process runs and exact resumes reproducible: step k of N processes then covers the samples that one process
with an N times larger batch would see).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from ._grading import Case, Hints, grade


def _warmup_ref():
    from ..training.trainer import Trainer

    return (Trainer.lr_lambda,)


def _epoch_ref():
    from ..training.data import EpochSampler

    return (EpochSampler.indices,)


#: the library functions each exercise grades against (an answer must not call them)
REFERENCES = {"lr_warmup": _warmup_ref, "epoch_indices": _epoch_ref}

WARMUP_HINTS = Hints(
    concept=("the multiplier rises in equal steps and reaches exactly 1 on the last warm-up step (step warmup_steps − "
             "1), then stays at 1. Steps count from 0, and step 0 must already learn a little (its multiplier is not "
             "0). warmup_steps = 0 means no warm-up."),
    step=("first the case without warm-up (warmup_steps ≤ 0); otherwise the fraction ___ / warmup_steps, never "
          "above ___."),
    solution="return 1.0 if warmup_steps <= 0 else min(1.0, (step + 1) / warmup_steps)")
EPOCH_HINTS = Hints(
    concept=("every process draws the same permutation of range(n) (one generator seeded with seed · 100003 + "
             "epoch) and the processes take turns, like dealing cards: process `rank` gets the entries at positions "
             "rank, rank + world, rank + 2·world, … and keeps n // world of them, so that all processes do the same "
             "number of steps."),
    step=("g = torch.Generator().manual_seed(___); perm = torch.randperm(n, generator=g).tolist(); then this "
          "process's share: a slice of perm with a start and a step (which?), cut to ___ entries."),
    solution=("g = torch.Generator().manual_seed(seed * 100_003 + epoch); perm = torch.randperm(n, "
              "generator=g).tolist(); return perm[rank::world][:n // world]."))


def warmup_cases() -> list[Case]:
    from ..training.trainer import Trainer

    cases = []
    for step, warm in [(0, 0), (5, 0), (0, 10), (4, 10), (9, 10), (10, 10), (250, 100), (0, 1)]:
        cfg = SimpleNamespace(warmup_steps=warm, lr_schedule="constant")  # the warm-up alone (no decay)
        expected = Trainer.lr_lambda(SimpleNamespace(cfg=cfg), step)
        cases.append(Case((step, warm), np.float64(expected), f"step {step}, warmup_steps {warm}"))
    return cases


def diagnose_warmup(got, case: Case) -> str | None:
    step, warm = case.args
    got = float(got)
    if warm == 0:
        return "wrong without warm-up (warmup_steps = 0): look at how your function handles that case."
    if abs(got - min(1.0, step / warm)) < 1e-12:
        return ("off by one step: look at the multiplier of step 0 (the first step must already learn a little, "
                "and the last warm-up step reaches 1).")
    if got > 1.0:
        return "the multiplier goes above 1: look at what happens after the warm-up."
    return None


def check_lr_warmup(fn, *, hint_level: int | None = None, quiet: bool = False):
    """Grade ``fn(step, warmup_steps)`` against the trainer's warm-up schedule (8 cases)."""
    return grade("lr_warmup", fn, warmup_cases(), WARMUP_HINTS, hint_level=hint_level, quiet=quiet,
                 diagnose=diagnose_warmup, references=_warmup_ref(), rtol=1e-9, atol=1e-12)


def epoch_cases() -> list[Case]:
    from ..training.data import EpochSampler

    cases = []
    for n, seed, epoch, rank, world in [(10, 0, 0, 0, 1), (10, 0, 1, 0, 1), (11, 3, 2, 1, 2), (100, 7, 5, 3, 4),
                                        (7, 1, 0, 2, 3)]:
        expected = np.array(EpochSampler(n, seed, epoch, rank, world).indices(), dtype=np.int64)
        cases.append(Case((n, seed, epoch, rank, world), expected,
                          f"n={n}, seed={seed}, epoch={epoch}, rank {rank} of {world}"))
    return cases


def diagnose_epoch(got, case: Case) -> str | None:
    n, seed, epoch, rank, world = case.args
    got = [int(i) for i in got]
    if len(got) != n // world:
        return (f"each process gets {n // world} samples here, you returned {len(got)}: look at how many entries "
                "you keep (all processes must do the same number of steps).")
    import torch

    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch)).tolist()
    per = n // world
    if got == perm[rank * per:(rank + 1) * per]:
        return ("contiguous shards (one block of the permutation per process): look at how the entries are dealt "
                "out (the processes take turns, like dealing cards).")
    if sorted(got) == sorted(case.expected.tolist()):
        return "the right samples in the wrong order: look at whether you reorder the shard."
    if len(set(got)) != len(got):
        return "a sample appears twice: look at how you draw the order (a permutation never repeats an index)."
    return None


def check_epoch_indices(fn, *, hint_level: int | None = None, quiet: bool = False):
    """Grade ``fn(n, seed, epoch, rank, world)`` against the trainer's epoch sampler (5 cases, exact)."""
    return grade("epoch_indices", fn, epoch_cases(), EPOCH_HINTS, hint_level=hint_level, quiet=quiet,
                 diagnose=diagnose_epoch, references=_epoch_ref(), exact=True)
