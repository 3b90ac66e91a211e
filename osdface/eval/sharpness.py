"""Sharpness: how much fine detail a restoration has compared with the ground truth.

``HF-ratio = E_hf(pred) / E_hf(gt)``, per image, with ``E_hf`` the mean squared response of the 3×3 Laplacian on the
BT.601 luma (0–255 scale). 1 means as much high-frequency energy as the ground truth; below 1 is smoother (blur,
the "waxy" look of an L2-trained model), above 1 has more edges or noise than the ground truth. It says nothing
about whether the detail is right (PSNR, LPIPS and the identity angle do): read it beside them.

``Grid`` (no ground truth needed): the RMS, on the 0–255 luma scale, of the image's mean 8×8 tile (each pixel
position within the tile averaged over the whole image, minus the overall mean). Photographs have no preferred
position within an 8-px tile, so the figure is small (0.2–0.3 on the 512² faces here, a trace of their JPEG
history); a pattern locked to a latent grid of period 1, 2, 4 or 8 px (the patches of nano's PatchVAE, the 8× VAE
of SD, transposed convolutions) raises it. It is what showed that training nano's PatchVAE decoder against the
identity loss had taught it a faint 4-px pattern (docs/training.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .psnr_ssim import rgb_to_y, to_255

__all__ = ["high_frequency_energy", "hf_ratio", "grid_pattern", "folder_grid", "TILE"]

#: the tile of :func:`grid_pattern`: 8 covers latent grids of period 1, 2, 4 and 8 px
TILE = 8

_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def high_frequency_energy(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) uint8 or [0, 1] images → (N,) mean squared Laplacian of the luma (0–255 scale), float64."""
    y = rgb_to_y(to_255(x).to(torch.float64))  # (N, 1, H, W) on the 0–255 scale
    lap = F.conv2d(y, _LAPLACIAN.to(y).view(1, 1, 3, 3))  # valid: no border effects
    return lap.square().flatten(1).mean(1)


def hf_ratio(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """(N,) ratio of the predictions' high-frequency energy to the ground truth's."""
    return (high_frequency_energy(pred) / high_frequency_energy(gt).clamp_min(1e-12)).cpu()


def grid_pattern(pred: torch.Tensor, gt: torch.Tensor | None = None) -> torch.Tensor:
    """(N,) RMS (0–255 luma) of each image's mean ``TILE``×``TILE`` tile, its overall mean removed (``gt`` unused:
    a no-reference figure)."""
    y = rgb_to_y(to_255(pred).to(torch.float64))[:, 0]  # (N, H, W)
    h, w = (y.shape[-2] // TILE) * TILE, (y.shape[-1] // TILE) * TILE
    tile = y[:, :h, :w].reshape(y.shape[0], h // TILE, TILE, w // TILE, TILE).mean(dim=(1, 3))
    tile = tile - tile.mean(dim=(1, 2), keepdim=True)
    return tile.square().mean(dim=(1, 2)).sqrt().cpu()


def folder_grid(folder) -> float:
    """The mean :func:`grid_pattern` of a folder's PNG images (the ground truth's level, which a restoration should
    not exceed by much)."""
    from pathlib import Path

    import numpy as np
    from PIL import Image

    values = [float(grid_pattern(torch.from_numpy(np.array(Image.open(f).convert("RGB"))).permute(2, 0, 1)[None]))
              for f in sorted(Path(folder).glob("*.png"))]
    if not values:
        raise ValueError(f"{folder}: no PNG image to measure")
    return sum(values) / len(values)
