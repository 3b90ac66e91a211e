"""Exercises of notebook 04 (the training losses, OSDFace §3, docs/ARCHITECTURE.md §3).

``check_sobel_magnitude(fn)``: ``fn(img (B, 3, H, W)) -> (B, 3, H, W)``: the gray image (BT.601 luma
0.299 R + 0.587 G + 0.114 B), 3×3 Sobel derivatives with replicate padding, ``sqrt(gx² + gy² + 1e-6)`` repeated to 3
channels — graded against :func:`osdface.losses.sobel.sobel_magnitude` (EA-DISTS's edge map).

``check_discriminator_loss(fn)``: ``fn(real_logits, fake_logits) -> scalar``, the non-saturating logistic GAN loss
``mean softplus(−D(real)) + mean softplus(D(fake))`` — graded against
:func:`osdface.losses.gan.discriminator_loss` (``kind="softplus"``, the latent discriminator's loss).
"""

from __future__ import annotations

import torch

from ._grading import Case, grade

SOBEL_HINT = ("gray = 0.299 R + 0.587 G + 0.114 B (keep a channel dim); pad 1 px with F.pad(..., mode='replicate'); "
              "kx = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], ky = kx.T; gx, gy = F.conv2d(padded, k[None, None]); "
              "sqrt(gx² + gy² + 1e-6), then .expand(-1, 3, -1, -1) (or repeat) to 3 channels.")
DISC_HINT = ("the discriminator wants real logits high and fake logits low: "
             "F.softplus(-real).mean() + F.softplus(fake).mean() (softplus(u) = log(1 + e^u)); one scalar.")


def sobel_cases(seed: int = 0) -> list[Case]:
    from ..losses.sobel import sobel_magnitude

    g = torch.Generator().manual_seed(seed)
    step = torch.zeros(1, 3, 12, 12)
    step[..., 6:] = 1.0  # a vertical black-to-white edge: magnitude 4 on the edge, 1e-3 on the flat parts
    imgs = [(step, "a vertical step edge"), (step.transpose(-1, -2).contiguous(), "a horizontal step edge")]
    for b, h, w in [(1, 16, 16), (2, 9, 23), (3, 32, 20)]:
        imgs.append((torch.rand(b, 3, h, w, generator=g), f"random {b}x3x{h}x{w} image in [0, 1]"))
    imgs.append((torch.rand(2, 3, 8, 8, generator=g) * 2 - 1, "an image in [-1, 1]"))
    return [Case((x,), sobel_magnitude(x), what) for x, what in imgs]


def check_sobel_magnitude(fn, *, quiet: bool = False) -> bool:
    """Grade ``fn(img)`` against the library's Sobel magnitude (6 cases: edges and seeded random images)."""
    return grade("sobel_magnitude", fn, sobel_cases(), SOBEL_HINT, quiet=quiet, rtol=1e-4, atol=1e-5)


def disc_cases(seed: int = 0) -> list[Case]:
    from ..losses.gan import discriminator_loss

    g = torch.Generator().manual_seed(seed)
    cases = []
    for shape_r, shape_f, what in [((4,), (4,), "one logit per image"),
                                   ((2, 1, 6, 6), (2, 1, 6, 6), "patch maps of logits"),
                                   ((3,), (5,), "batches of different sizes"),
                                   ((8,), (8,), "large logits (use softplus, not log(1 + exp))")]:
        scale = 60.0 if "large" in what else 3.0
        real, fake = torch.randn(shape_r, generator=g) * scale, torch.randn(shape_f, generator=g) * scale
        cases.append(Case((real, fake), discriminator_loss(real, fake), what))
    return cases


def check_discriminator_loss(fn, *, quiet: bool = False) -> bool:
    """Grade ``fn(real_logits, fake_logits)`` against the library's softplus discriminator loss (4 seeded cases)."""
    return grade("discriminator_loss", fn, disc_cases(), DISC_HINT, quiet=quiet, rtol=1e-5, atol=1e-5)
