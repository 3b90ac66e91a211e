"""Sharpness: how much fine detail a restoration has compared with the ground truth.

``HF-ratio = E_hf(pred) / E_hf(gt)``, per image, with ``E_hf`` the mean squared response of the 3×3 Laplacian on the
BT.601 luma (0–255 scale). 1 means as much high-frequency energy as the ground truth; below 1 is smoother (blur,
the "waxy" look of an L2-trained model), above 1 has more edges or noise than the ground truth. It says nothing
about whether the detail is right (PSNR, LPIPS and the identity angle do): read it beside them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .psnr_ssim import rgb_to_y, to_255

__all__ = ["high_frequency_energy", "hf_ratio"]

_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def high_frequency_energy(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) uint8 or [0, 1] images → (N,) mean squared Laplacian of the luma (0–255 scale), float64."""
    y = rgb_to_y(to_255(x).to(torch.float64))  # (N, 1, H, W) on the 0–255 scale
    lap = F.conv2d(y, _LAPLACIAN.to(y).view(1, 1, 3, 3))  # valid: no border effects
    return lap.square().flatten(1).mean(1)


def hf_ratio(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """(N,) ratio of the predictions' high-frequency energy to the ground truth's."""
    return (high_frequency_energy(pred) / high_frequency_energy(gt).clamp_min(1e-12)).cpu()
