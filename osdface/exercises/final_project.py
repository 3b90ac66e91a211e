"""Exercises of notebook 08 (the final project: the whole offline objective, and how its effect is measured).

``check_gan_weight_at(fn)``: ``fn(step, weight, start, ramp, every) -> float``, the effective λ_G of the trainer's
step ``step`` (counted from 0): 0 before ``start`` and on every step that is not a multiple of ``every`` (the GAN
terms are skipped there); otherwise ``weight · every`` (a skipped step's share comes back on the step that runs),
times ``min(1, (step − start + 1) / ramp)`` while it ramps up (``ramp`` 0: no ramp) — graded against
:meth:`osdface.training.generator_trainer.LossTerm.weight_at`, the rule the generator trainer applies.

``check_hf_ratio(fn)``: ``fn(pred, gt) -> (N,)``, the sharpness statistic of the evaluation: per image, the mean
squared response of the 3×3 Laplacian on the BT.601 luma (no padding: only where the whole window fits) of the
prediction, divided by the ground truth's — graded against :func:`osdface.eval.sharpness.hf_ratio` (a ratio, so
the 0–255 or 0–1 scale and the luma's offset of 16 do not change it).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ._grading import Case, Hints, close, grade

GAN_HINTS = Hints(
    concept=("three rules, in this order. Before gan_start the weight is 0. From then on the GAN terms run only on "
             "the steps that are multiples of every; on the others the weight is 0, and on a step that runs it is "
             "weight × every, so that the average over every steps stays weight. During the ramp that value is "
             "scaled by a factor growing in equal steps: 1/ramp at step gan_start itself (it must already count), "
             "2/ramp one step later, … and 1 from step gan_start + ramp − 1 on; ramp 0 means no ramp. The ramp "
             "counts all steps, not only the ones that run the GAN."),
    code=("if step < start or step % every: return 0.0; w = weight * every; return w if ramp <= 0 else "
          "w * min(1.0, (step - start + 1) / ramp)"))
HF_HINTS = Hints(
    concept=("per image: turn RGB into BT.601 luma (Y = 16 + 65.481 R + 128.553 G + 24.966 B for RGB in [0, 1]), "
             "filter it with the 3×3 Laplacian (0 1 0 / 1 −4 1 / 0 1 0) only where the whole window fits inside "
             "the image (no padding: a padded border invents edges), square the responses and average them: that "
             "is the high-frequency energy. The statistic is the prediction's energy divided by the ground truth's, "
             "one value per image (1: as sharp as the ground truth)."),
    code=("w = torch.tensor([65.481, 128.553, 24.966], dtype=torch.float64).view(1, 3, 1, 1); "
          "k = torch.tensor([[0., 1, 0], [1, -4, 1], [0, 1, 0]], dtype=torch.float64).view(1, 1, 3, 3); "
          "energy = lambda x: F.conv2d(16 + (x.double() * w).sum(1, keepdim=True), k).square().flatten(1).mean(1); "
          "return energy(pred) / energy(gt)"))


# ------------------------------------------------------------------------------------------------ λ_G schedule
def _weight_at(step, weight, start, ramp, every) -> float:
    from ..training.generator_trainer import LossTerm

    return LossTerm("gan_g", lambda o: o, weight, start=start, ramp=ramp, every=every).weight_at(step)


#: (step, weight, start, ramp, every): before the start, skipped steps, the ramp's first / middle / last step and
#: after it, no ramp, every = 1, a start that is not a multiple of every (the run of scripts/ablation.py: 0.05, 100,
#: 200, 4; the notebook's own run; the paper's weight without stabilisers)
GAN_CASES = [(0, 0.05, 100, 200, 4), (99, 0.05, 100, 200, 4), (100, 0.05, 100, 200, 4), (101, 0.05, 100, 200, 4),
             (104, 0.05, 100, 200, 4), (296, 0.05, 100, 200, 4), (300, 0.05, 100, 200, 4), (1000, 0.05, 100, 200, 4),
             (5, 0.8, 0, 0, 1), (3, 0.8, 0, 10, 1), (7, 0.01, 6, 4, 3), (9, 0.01, 6, 4, 3), (6, 0.01, 6, 4, 3),
             (14, 0.01, 6, 4, 3)]


def gan_cases() -> list[Case]:
    return [Case(args, np.float64(_weight_at(*args)),
                 f"step {args[0]}, weight {args[1]}, gan_start {args[2]}, gan_ramp {args[3]}, gan_every {args[4]}")
            for args in GAN_CASES]


def diagnose_gan(got, case: Case) -> str | None:
    step, weight, start, ramp, every = case.args
    got, expected = float(got), float(case.expected)
    ramp_factor = 1.0 if ramp <= 0 else min(1.0, (step - start + 1) / ramp)
    if step < start and got != 0:
        return f"step {step} comes before gan_start = {start}: the GAN is not on yet (weight 0)."
    if step >= start and step % every and got != 0:
        return (f"step {step} is not a multiple of every = {every}: the GAN terms are skipped on that step "
                "(weight 0).")
    if expected and abs(got - expected / every) < 1e-12 and every > 1:
        return ("the weight of a step that runs the GAN is weight × every: the skipped steps' share comes back "
                "there, so that the average over every steps is weight.")
    if expected and ramp > 0 and abs(got - weight * every * max(0.0, min(1.0, (step - start) / ramp))) < 1e-12:
        return ("off by one step in the ramp: step gan_start already gets 1/ramp of the weight (0 would waste it), "
                "and the full weight is reached at step gan_start + ramp − 1.")
    if expected and ramp > 0 and abs(got - weight * every * min(1.0, (step + 1) / ramp)) < 1e-12:
        return "the ramp starts at gan_start, not at step 0: count the steps since gan_start."
    if step >= start and not step % every and got == 0 and expected:
        return f"step {step} runs the GAN (from gan_start on, a multiple of every): its weight is not 0."
    if expected and abs(got - expected / ramp_factor) < 1e-12 and ramp_factor < 1:
        return f"step {step} is inside the ramp: the weight is still rising ({ramp_factor:.3g} of its full value)."
    return None


def check_gan_weight_at(fn, *, hint_level: int | None = None, quiet: bool = False):
    """Grade ``fn(step, weight, start, ramp, every)`` against the trainer's :class:`LossTerm` rule (14 cases)."""
    return grade("gan_weight_at", fn, gan_cases(), GAN_HINTS, hint_level=hint_level, quiet=quiet,
                 diagnose=diagnose_gan, rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------------------------------------ HF-ratio
def _smooth_image(g: torch.Generator, n: int, h: int, w: int) -> torch.Tensor:
    """A face-like test image in [0, 1]: smooth colour blobs (low frequencies) plus fine texture."""
    base = torch.rand(n, 3, max(2, h // 8), max(2, w // 8), generator=g, dtype=torch.float64)
    img = F.interpolate(base, size=(h, w), mode="bilinear", align_corners=False)
    img = img + 0.08 * torch.randn(n, 3, h, w, generator=g, dtype=torch.float64)
    return img.clamp(0, 1)


def hf_cases(seed: int = 0) -> list[Case]:
    from ..eval.sharpness import hf_ratio

    g = torch.Generator().manual_seed(seed)
    cases = []
    blur = torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64)
    blur = (blur[:, None] * blur[None]) / 16
    for n, h, w, kind in [(1, 16, 16, "a blurred prediction (smoother than the ground truth)"),
                          (2, 24, 32, "a noisy prediction (more high frequencies than the ground truth)"),
                          (3, 20, 20, "an unrelated prediction"),
                          (2, 48, 40, "blurred, noisy and identical images in one batch")]:
        gt = _smooth_image(g, n, h, w)
        if kind.startswith("a blurred"):
            pred = F.conv2d(F.pad(gt, (1, 1, 1, 1), mode="replicate"), blur.expand(3, 1, 3, 3), groups=3)
        elif kind.startswith("a noisy"):
            pred = (gt + 0.1 * torch.randn(gt.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
        elif kind.startswith("an unrelated"):
            pred = _smooth_image(g, n, h, w)
        else:
            blurred = F.conv2d(F.pad(gt[:1], (1, 1, 1, 1), mode="replicate"), blur.expand(3, 1, 3, 3), groups=3)
            noisy = (gt[1:] + 0.1 * torch.randn(gt[1:].shape, generator=g, dtype=torch.float64)).clamp(0, 1)
            pred = torch.cat([blurred, noisy])
            gt, pred = torch.cat([gt, gt[:1]]), torch.cat([pred, gt[:1]])  # the last pair: identical (ratio 1)
        cases.append(Case((pred, gt), hf_ratio(pred, gt), f"{pred.shape[0]} image(s) of {h}×{w}: {kind}"))
    return cases


_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype=torch.float64).view(1, 1, 3, 3)
_LUMA = torch.tensor([65.481, 128.553, 24.966], dtype=torch.float64).view(1, 3, 1, 1)


def _energy(x: torch.Tensor, *, gray: str = "luma", pad: str | None = None, offset: float = 16.0,
            stat: str = "square") -> torch.Tensor:
    """Variants of the high-frequency energy, for the diagnoses (the library's: luma, no padding, mean square)."""
    x = x.double()
    if gray == "luma":
        y = offset + (x * _LUMA).sum(1, keepdim=True)
    elif gray == "mean":
        y = x.mean(1, keepdim=True)
    else:  # "rgb": every channel on its own
        y = x.reshape(-1, 1, *x.shape[-2:])
    if pad == "zeros":
        y = F.pad(y, (1, 1, 1, 1))
    elif pad == "replicate":
        y = F.pad(y, (1, 1, 1, 1), mode="replicate")
    lap = F.conv2d(y, _LAPLACIAN)
    e = lap.abs().flatten(1).mean(1) if stat == "abs" else lap.square().flatten(1).mean(1)
    return e.view(x.shape[0], -1).mean(1)


def diagnose_hf(got, case: Case) -> str | None:
    pred, gt = case.args
    expected = case.expected
    try:
        values = torch.as_tensor(np.asarray(got, dtype=np.float64))
    except (TypeError, ValueError):
        return None
    if values.numel() == 1 and expected.numel() > 1:
        return "one value per image: the energies are averaged over each image's pixels, not over the whole batch."
    if values.shape != expected.shape:
        return f"one value per image, in a tensor of shape (N,) = {tuple(expected.shape)} (even for one image)."
    if close(values, 1 / expected):
        return "the ratio is upside down: the prediction's energy divided by the ground truth's (below 1 = smoother)."
    for pad, offset in (("zeros", 16.0), ("zeros", 0.0)):
        if close(values, _energy(pred, pad=pad, offset=offset) / _energy(gt, pad=pad, offset=offset)):
            return ("the Laplacian ran over a zero-padded border: the jump from the image to the zeros counts as an "
                    "edge. Use only the positions where the whole 3×3 window lies inside the image (no padding).")
    if close(values, _energy(pred, pad="replicate") / _energy(gt, pad="replicate")):
        return ("a padded border (replicate): the statistic uses only the positions where the whole 3×3 window lies "
                "inside the image (no padding), so the output is two pixels smaller in each direction.")
    if close(values, _energy(pred, gray="mean") / _energy(gt, gray="mean")):
        return ("the plain mean of R, G and B: the statistic is computed on the BT.601 luma (weights 65.481, 128.553, "
                "24.966).")
    if close(values, _energy(pred, gray="rgb") / _energy(gt, gray="rgb")):
        return "the Laplacian on each colour channel: the statistic uses one channel, the BT.601 luma."
    if close(values, _energy(pred, stat="abs") / _energy(gt, stat="abs")):
        return "the mean absolute response: the energy is the mean of the squared Laplacian responses."
    if close(values, expected.sqrt()):
        return "the square root of the ratio (an RMS ratio): the energy is the mean square itself, with no root."
    return None


def check_hf_ratio(fn, *, hint_level: int | None = None, quiet: bool = False):
    """Grade ``fn(pred, gt)`` against :func:`osdface.eval.sharpness.hf_ratio` (4 seeded cases, float64)."""
    return grade("hf_ratio", fn, hf_cases(), HF_HINTS, hint_level=hint_level, quiet=quiet, diagnose=diagnose_hf,
                 rtol=1e-7, atol=1e-9)
