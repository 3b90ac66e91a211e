"""The Sobel gradient magnitude that makes DISTS edge-aware (EA-DISTS, docs/ARCHITECTURE.md §3).

``S(x) = sqrt(gx² + gy² + 1e-6)`` of the grayscale image (ITU-R BT.601 luma: 0.299 R + 0.587 G + 0.114 B), with the
3×3 Sobel kernels and replicate padding (so the border of a flat image has no false edge), repeated to 3 channels.

The map is linear in the input up to the ``1e-6`` floor, so the input range only scales it. :class:`EADISTS` feeds
it images in [0, 1]; there a full-contrast straight edge (0 → 1) has magnitude 4 (the Sobel kernel's weights on one
side sum to 4), a flat region ``sqrt(1e-6) = 1e-3``, and the largest possible value is 4·√2.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["sobel_magnitude", "LUMA_BT601", "SOBEL_EPS"]

LUMA_BT601 = (0.299, 0.587, 0.114)
SOBEL_EPS = 1e-6


def sobel_magnitude(img: torch.Tensor, eps: float = SOBEL_EPS) -> torch.Tensor:
    """(B, 3, H, W) float RGB → (B, 3, H, W): the gray image's Sobel magnitude, the same in all three channels.

    Differentiable; computed in ``img``'s dtype and on its device."""
    if not isinstance(img, torch.Tensor) or img.ndim != 4 or img.shape[1] != 3:
        shape = tuple(img.shape) if isinstance(img, torch.Tensor) else type(img).__name__
        raise ValueError(f"sobel_magnitude expects a (B, 3, H, W) tensor, got {shape}")
    if not img.is_floating_point():
        raise TypeError(f"sobel_magnitude expects a floating-point image, got {img.dtype}")
    luma = torch.tensor(LUMA_BT601, dtype=img.dtype, device=img.device).view(1, 3, 1, 1)
    gray = (img * luma).sum(dim=1, keepdim=True)
    gray = F.pad(gray, (1, 1, 1, 1), mode="replicate")
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=img.dtype, device=img.device)
    kernels = torch.stack([kx, kx.t()]).unsqueeze(1)  # (2, 1, 3, 3): d/dx (left → right), d/dy (top → bottom)
    grad = F.conv2d(gray, kernels)
    magnitude = torch.sqrt(grad.square().sum(dim=1, keepdim=True) + eps)
    return magnitude.expand(-1, 3, -1, -1).contiguous()
