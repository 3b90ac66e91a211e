"""EA-DISTS, the edge-aware perceptual loss of OSDFace stage 2 (docs/ARCHITECTURE.md §3).

    EA-DISTS(x, y) = DISTS(x', y') + DISTS(k·S(x'), k·S(y')),    x' = (x + 1) / 2,

with ``S`` the Sobel magnitude of the grayscale image (:func:`osdface.losses.sobel_magnitude`) and x, y the
generator's output and the ground truth in [-1, 1].

How the edge map is put into DISTS's input range (the paper does not say; this is our choice): on x' ∈ [0, 1] a
full-contrast straight edge has Sobel magnitude 4, so the map is multiplied by ``edge_scale`` k = 1/4. A sharp
black-to-white edge then reads 1 (white), flat regions ≈ 0 (black, 2.5e-4), like an ordinary [0, 1] image; only
rare corner pixels exceed 1 (at most √2), and nothing is clipped, so every edge keeps its gradient.
"""

from __future__ import annotations

import torch
from torch import nn

from ..networks.dists import DISTS, check_image_pair
from .sobel import sobel_magnitude

__all__ = ["EADISTS", "EDGE_SCALE"]

EDGE_SCALE = 0.25


class EADISTS(nn.Module):
    """``forward(x, y)``: (B, 3, H, W) images in [-1, 1] → (B,) EA-DISTS distances (0 for x == y).

    The DISTS network is frozen (``requires_grad_(False)``); gradients flow to the images."""

    def __init__(self, dists: DISTS, edge_scale: float = EDGE_SCALE):
        super().__init__()
        if not isinstance(dists, nn.Module):
            raise TypeError(f"EADISTS needs a DISTS module (osdface.losses.load_dists()), got {type(dists).__name__}")
        if not edge_scale > 0:
            raise ValueError(f"edge_scale must be positive, got {edge_scale}")
        self.dists = dists.requires_grad_(False).eval()  # a fixed metric: gradients go to the images only
        self.edge_scale = float(edge_scale)

    def edge_map(self, x01: torch.Tensor) -> torch.Tensor:
        """The Sobel magnitude of a [0, 1] image, scaled into DISTS's range (a unit step edge → 1)."""
        return sobel_magnitude(x01) * self.edge_scale

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        check_image_pair(x, y)
        x01, y01 = (x + 1) / 2, (y + 1) / 2
        batch = x.shape[0]
        # one DISTS pass over [images; edge maps] (the same numbers as two calls, fewer kernel launches)
        d = self.dists(torch.cat([x01, self.edge_map(x01)]), torch.cat([y01, self.edge_map(y01)]))
        return d[:batch] + d[batch:]
