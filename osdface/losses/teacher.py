"""A teacher term in a high-frequency band only: pull the generator's detail toward another restorer's output on
the same LQ (Real-ESRGAN's, precomputed: ``scripts/teacher_pool.py``) while the ground truth keeps the low
frequencies (the L2 term).

    band(x) = x − G_σ ⊛ x            (G_σ: a normalised Gaussian, σ in pixels; reflect padding)
    L_teacher = mean |band(x̂) − band(t)|

Real-ESRGAN draws hair strands, eyelashes and teeth where nano's outputs are smooth, but it also shifts shapes and
identity a little; its low frequencies are left out on purpose, so the term can only add texture at the scale of
``σ`` and finer, not move the face.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["high_pass", "teacher_hf_loss"]


def _gaussian_1d(sigma: float, device, dtype) -> torch.Tensor:
    radius = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, device=device, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return (k / k.sum()).to(dtype)


def high_pass(x: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
    """``x − G_σ ⊛ x`` per channel of a (B, C, H, W) batch (separable Gaussian, reflect padding)."""
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, not {sigma}")
    k = _gaussian_1d(sigma, x.device, x.dtype)
    r, c = k.numel() // 2, x.shape[1]
    pad_mode = "reflect" if min(x.shape[-2:]) > r else "replicate"
    low = F.conv2d(F.pad(x, (r, r, 0, 0), mode=pad_mode), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    low = F.conv2d(F.pad(low, (0, 0, r, r), mode=pad_mode), k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return x - low


def teacher_hf_loss(x_hat: torch.Tensor, teacher: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
    """Mean absolute difference of the high-frequency bands of ``x_hat`` and ``teacher`` (same range and shape)."""
    if x_hat.shape != teacher.shape:
        raise ValueError(f"teacher {tuple(teacher.shape)} and output {tuple(x_hat.shape)} differ in shape")
    return (high_pass(x_hat.float(), sigma) - high_pass(teacher.float(), sigma)).abs().mean()
