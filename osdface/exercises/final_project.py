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
    step=("if step < start or ___: return 0.0; w = weight * ___; without a ramp return w; otherwise scale w by "
          "a factor min(1.0, ___ / ramp) that counts the steps since start (the first one included)."),
    solution=("if step < start or step % every: return 0.0; w = weight * every; return w if ramp <= 0 else "
              "w * min(1.0, (step - start + 1) / ramp)"))
HF_HINTS = Hints(
    concept=("per image: turn RGB into BT.601 luma (Y = 16 + 65.481 R + 128.553 G + 24.966 B for RGB in [0, 1]), "
             "filter it with the 3×3 Laplacian (0 1 0 / 1 −4 1 / 0 1 0) only where the whole window fits inside "
             "the image (no padding: a padded border invents edges), square the responses and average them: that "
             "is the high-frequency energy. The statistic is the prediction's energy divided by the ground truth's, "
             "one value per image (1: as sharp as the ground truth)."),
    step=("w = torch.tensor([65.481, 128.553, 24.966], dtype=torch.float64).view(1, 3, 1, 1); "
          "k = torch.tensor([[0., 1, 0], [1, -4, 1], [0, 1, 0]], dtype=torch.float64).view(1, 1, 3, 3); "
          "def energy(x): y = 16 + (x.double() * w).sum(1, keepdim=True); lap = F.conv2d(y, k, padding=___); "
          "return the mean of ___ per image; then the ratio of the two energies (which one on top?)."),
    solution=("w = torch.tensor([65.481, 128.553, 24.966], dtype=torch.float64).view(1, 3, 1, 1); "
              "k = torch.tensor([[0., 1, 0], [1, -4, 1], [0, 1, 0]], dtype=torch.float64).view(1, 1, 3, 3); "
              "energy = lambda x: F.conv2d(16 + (x.double() * w).sum(1, keepdim=True), k).square().flatten(1)"
              ".mean(1); return energy(pred) / energy(gt)"))


def _gan_ref():
    from ..training.generator_trainer import LossTerm

    return (LossTerm.weight_at,)


def _hf_ref():
    from ..eval.sharpness import hf_ratio

    return (hf_ratio,)


#: the library functions each exercise grades against (an answer must not call them)
REFERENCES = {"gan_weight_at": _gan_ref, "hf_ratio": _hf_ref}


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
        return f"step {step} comes before gan_start = {start}: look at your first rule (is the GAN on yet?)."
    if step >= start and step % every and got != 0:
        return (f"step {step} is not a multiple of every = {every}: look at what happens on a step that skips the "
                "GAN terms.")
    if expected and abs(got - expected / every) < 1e-12 and every > 1:
        return ("the weight of a step that runs the GAN is too small: look at where the skipped steps' share goes "
                "(the average over every steps must stay weight).")
    if expected and ramp > 0 and abs(got - weight * every * max(0.0, min(1.0, (step - start) / ramp))) < 1e-12:
        return ("off by one step in the ramp: look at the factor of step gan_start itself (it must already "
                "count).")
    if expected and ramp > 0 and abs(got - weight * every * min(1.0, (step + 1) / ramp)) < 1e-12:
        return "the ramp counts from the wrong step: look at where your ramp factor starts counting."
    if step >= start and not step % every and got == 0 and expected:
        return f"step {step} runs the GAN (from gan_start on, a multiple of every): look at why you return 0 there."
    if expected and abs(got - expected / ramp_factor) < 1e-12 and ramp_factor < 1:
        return f"step {step} is inside the ramp: look at whether your ramp factor is applied."
    return None


def check_gan_weight_at(fn, *, hint_level: int | None = None, quiet: bool = False):
    """Grade ``fn(step, weight, start, ramp, every)`` against the trainer's :class:`LossTerm` rule (14 cases)."""
    return grade("gan_weight_at", fn, gan_cases(), GAN_HINTS, hint_level=hint_level, quiet=quiet,
                 diagnose=diagnose_gan, references=_gan_ref(), rtol=1e-9, atol=1e-12)


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
        return "one value for the whole batch: look at the axes you average the energies over."
    if values.shape != expected.shape:
        return f"the result's shape is not (N,) = {tuple(expected.shape)}: look at how each image's energy is reduced."
    if close(values, 1 / expected):
        return "the ratio is upside down: look at which energy is on top (below 1 should mean smoother)."
    for pad, offset in (("zeros", 16.0), ("zeros", 0.0)):
        if close(values, _energy(pred, pad=pad, offset=offset) / _energy(gt, pad=pad, offset=offset)):
            return ("the Laplacian ran over a zero-padded border, where the jump to the zeros counts as an edge: "
                    "look at how your filter treats the border.")
    if close(values, _energy(pred, pad="replicate") / _energy(gt, pad="replicate")):
        return ("a padded border (repeated edge pixels): look at how your filter treats the border (which positions "
                "count?).")
    if close(values, _energy(pred, gray="mean") / _energy(gt, gray="mean")):
        return "the plain mean of R, G and B: look at how you turn the colour image into one channel."
    if close(values, _energy(pred, gray="rgb") / _energy(gt, gray="rgb")):
        return "the Laplacian on each colour channel: look at which channel(s) the statistic is computed on."
    if close(values, _energy(pred, stat="abs") / _energy(gt, stat="abs")):
        return "the mean absolute response: look at how you turn the responses into an energy."
    if close(values, expected.sqrt()):
        return "the square root of the expected ratio (an RMS ratio): look at the last step of your energy."
    return None


def check_hf_ratio(fn, *, hint_level: int | None = None, quiet: bool = False):
    """Grade ``fn(pred, gt)`` against :func:`osdface.eval.sharpness.hf_ratio` (4 seeded cases, float64)."""
    return grade("hf_ratio", fn, hf_cases(), HF_HINTS, hint_level=hint_level, quiet=quiet, diagnose=diagnose_hf,
                 references=_hf_ref(), rtol=1e-7, atol=1e-9)
