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

from ._grading import Case, Hints, close, grade


def _sobel_ref():
    from ..losses.sobel import sobel_magnitude

    return (sobel_magnitude,)


def _disc_ref():
    from ..losses.gan import discriminator_loss

    return (discriminator_loss,)


#: the library functions each exercise grades against (an answer must not call them)
REFERENCES = {"sobel_magnitude": _sobel_ref, "discriminator_loss": _disc_ref}

SOBEL_HINTS = Hints(
    concept=("three steps: the gray image (luma weights 0.299, 0.587, 0.114), the horizontal and vertical Sobel "
             "derivatives gx, gy (3×3 filters; the border pixels repeat the edge, \"replicate\" padding, so the "
             "output keeps the input's size), then the magnitude √(gx² + gy² + 10⁻⁶), the same in all 3 channels."),
    step=("gray = (img * torch.tensor([___, ___, ___]).view(1, 3, 1, 1)).sum(1, keepdim=True); "
          "p = F.pad(gray, (1, 1, 1, 1), mode=___); kx = torch.tensor([[-1., 0, 1], [___], [-1, 0, 1]]); "
          "gx = F.conv2d(p, kx.view(1, 1, 3, 3)); gy: the same filter turned by a quarter; then the magnitude, "
          "and 3 channels."),
    solution=("gray = (img * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True); "
              "p = F.pad(gray, (1, 1, 1, 1), mode='replicate'); kx = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]; "
              "gx = F.conv2d(p, kx.view(1, 1, 3, 3)); gy = F.conv2d(p, kx.T.reshape(1, 1, 3, 3)); "
              "return torch.sqrt(gx**2 + gy**2 + 1e-6).repeat(1, 3, 1, 1)."))
DISC_HINTS = Hints(
    concept=("the discriminator wants high logits for real latents and low ones for fakes; the logistic loss is "
             "softplus(−real) on the reals plus softplus(fake) on the fakes, each averaged over its own tensor. "
             "softplus(u) = log(1 + eᵘ), but e^u overflows for large u: use a numerically stable form."),
    step=("two terms, each averaged over its own tensor: softplus(___) over the real logits plus softplus(___) over "
          "the fake ones (torch.nn.functional has a stable softplus)."),
    solution="return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()")


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


def diagnose_sobel(got, case: Case) -> str | None:
    got, expected = torch.as_tensor(got), case.expected
    if got.shape[-2:] == tuple(d - 2 for d in expected.shape[-2:]):
        return "the result is 2 pixels smaller than the input: look at what happens at the border before filtering."
    if got.shape != expected.shape:
        return None
    if close(got[..., 1:-1, 1:-1], expected[..., 1:-1, 1:-1], atol=1e-4):
        return "right inside, wrong on the border: look at how you pad (which values the border repeats)."
    if close(got.square(), expected.square() - 1e-6, atol=1e-4):
        return "this is the squared magnitude: look at the last step of the formula."
    (img,) = case.args
    if close(got, _sobel_of((img.mean(1, keepdim=True))), atol=1e-4):
        return "a plain mean of R, G, B is not the luma: look at how you turn the colour image into gray."
    return None


def _sobel_of(gray: torch.Tensor) -> torch.Tensor:
    import torch.nn.functional as F

    p = F.pad(gray, (1, 1, 1, 1), mode="replicate")
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=gray.dtype)
    gx, gy = F.conv2d(p, kx.view(1, 1, 3, 3)), F.conv2d(p, kx.t().reshape(1, 1, 3, 3))
    return torch.sqrt(gx**2 + gy**2 + 1e-6).repeat(1, 3, 1, 1)


def check_sobel_magnitude(fn, *, hint_level: int | None = None, quiet: bool = False):
    """Grade ``fn(img)`` against the library's Sobel magnitude (6 cases: edges and seeded random images)."""
    return grade("sobel_magnitude", fn, sobel_cases(), SOBEL_HINTS, hint_level=hint_level, quiet=quiet,
                 diagnose=diagnose_sobel, references=_sobel_ref(), rtol=1e-4, atol=1e-5)


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


def diagnose_disc(got, case: Case) -> str | None:
    import torch.nn.functional as F

    real, fake = case.args
    got = torch.as_tensor(got, dtype=torch.float64)
    if got.numel() != 1:
        return (f"the loss is one number (a scalar); yours has shape {tuple(got.shape)}: look at how each term is "
                "reduced.")
    if not torch.isfinite(got).all():
        return ("the loss overflows for large logits: look at how you compute log(1 + eᵘ) (e^u alone is too large "
                "for a float).")
    swapped = F.softplus(real.double()).mean() + F.softplus(-fake.double()).mean()
    if close(got, swapped):
        return ("real and fake play each other's parts: look at the signs (the loss should be small when real "
                "logits are high and fake ones low).")
    one_mean = F.softplus(torch.cat([-real.flatten(), fake.flatten()]).double()).mean()
    if real.numel() != fake.numel() and close(got, one_mean):
        return "one mean over both tensors together: look at where you average (batches may differ in size)."
    return None


def check_discriminator_loss(fn, *, hint_level: int | None = None, quiet: bool = False):
    """Grade ``fn(real_logits, fake_logits)`` against the library's softplus discriminator loss (4 seeded cases)."""
    return grade("discriminator_loss", fn, disc_cases(), DISC_HINTS, hint_level=hint_level, quiet=quiet,
                 diagnose=diagnose_disc, references=_disc_ref(), rtol=1e-5, atol=1e-5)
