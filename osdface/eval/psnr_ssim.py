"""PSNR and SSIM, batched on the device, on the Y channel (the face-restoration convention) or on RGB.

Conventions (those of BasicSR's ``calculate_psnr`` / ``calculate_ssim``, which CodeFormer, VQFR, DAEFR and DifFace
report; the OSDFace paper's table has no PSNR/SSIM and the spec states no convention, so both are offered):

* images are compared on the 0–255 scale, in float64 where the device has it (float32 on MPS);
* **Y channel**: ITU-R BT.601 luma of RGB in [0, 1], ``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` (in [16, 235]),
  not rounded; **RGB**: the three channels, averaged;
* PSNR = ``10 log10(255² / MSE)`` per image (MSE over all pixels and channels); identical images give ``inf``;
* SSIM (Wang et al. 2004): 11×11 Gaussian window, σ = 1.5, ``C1 = (0.01·255)²``, ``C2 = (0.03·255)²``, "valid"
  filtering (no padding: the map is 10 pixels smaller per side pair), the map's mean per channel, then the mean
  over channels. No crop border.
"""

from __future__ import annotations


import torch

__all__ = ["rgb_to_y", "to_255", "psnr", "ssim", "gaussian_window"]

_Y_WEIGHTS = (65.481, 128.553, 24.966)


def _work_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64


def _check_pair(pred: torch.Tensor, gt: torch.Tensor) -> None:
    if pred.shape != gt.shape:
        raise ValueError(f"prediction and ground truth differ in shape: {tuple(pred.shape)} vs {tuple(gt.shape)}")
    if pred.ndim != 4 or pred.shape[1] != 3:
        raise ValueError(f"expected (N, 3, H, W) RGB batches, got {tuple(pred.shape)}")


def to_255(x: torch.Tensor) -> torch.Tensor:
    """uint8 (0–255) or float in [0, 1] → float (work dtype) on the 0–255 scale."""
    dtype = _work_dtype(x.device)
    return x.to(dtype) if x.dtype == torch.uint8 else x.to(dtype) * 255.0


def rgb_to_y(x255: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB on the 0–255 scale → (N, 1, H, W) BT.601 luma on the 0–255 scale (16–235)."""
    w = torch.tensor(_Y_WEIGHTS, dtype=x255.dtype, device=x255.device).view(1, 3, 1, 1)
    return (x255 / 255.0 * w).sum(dim=1, keepdim=True) + 16.0


def _prepare(pred, gt, y_channel: bool):
    _check_pair(pred, gt)
    p, g = to_255(pred), to_255(gt)
    if y_channel:
        p, g = rgb_to_y(p), rgb_to_y(g)
    return p, g


@torch.no_grad()
def psnr(pred: torch.Tensor, gt: torch.Tensor, y_channel: bool = True) -> torch.Tensor:
    """Per-image PSNR in dB, shape (N,), float64 (``inf`` where the images are identical).

    ``pred``, ``gt``: (N, 3, H, W), uint8 or float in [0, 1], on any device."""
    p, g = _prepare(pred, gt, y_channel)
    mse = (p - g).pow(2).flatten(1).mean(dim=1)
    out = 10.0 * torch.log10(255.0**2 / mse)  # mse 0 → inf
    return out.double().cpu()


def gaussian_window(size: int = 11, sigma: float = 1.5, dtype=torch.float64, device=None) -> torch.Tensor:
    """The normalised 1-D Gaussian (``size`` taps) whose outer product is SSIM's window."""
    x = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _band(n: int, g: torch.Tensor) -> torch.Tensor:
    """(n, n − k + 1) matrix whose column j holds ``g`` at rows j … j + k − 1: ``x @ band`` = valid correlation."""
    k = g.numel()
    m = torch.zeros(n, n - k + 1, dtype=g.dtype, device=g.device)
    idx = torch.arange(n - k + 1, device=g.device)
    for t in range(k):
        m[idx + t, idx] = g[t]
    return m


def _filter_valid(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable 2-D filtering of every channel with ``g ⊗ g``, no padding ('valid'), as two matrix products with
    banded matrices (several times faster than a depthwise convolution on a CPU, and exact in float64)."""
    h, w = x.shape[-2:]
    return _band(h, g).t() @ (x @ _band(w, g))


@torch.no_grad()
def ssim(pred: torch.Tensor, gt: torch.Tensor, y_channel: bool = True) -> torch.Tensor:
    """Per-image SSIM, shape (N,), float64; 1 for identical images. Inputs as for :func:`psnr` (at least 11×11)."""
    p, g = _prepare(pred, gt, y_channel)
    if min(p.shape[-2:]) < 11:
        raise ValueError(f"SSIM needs images of at least 11x11 pixels, got {tuple(p.shape[-2:])}")
    win = gaussian_window(dtype=p.dtype, device=p.device)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_p, mu_g = _filter_valid(p, win), _filter_valid(g, win)
    var_p = _filter_valid(p * p, win) - mu_p**2
    var_g = _filter_valid(g * g, win) - mu_g**2
    cov = _filter_valid(p * g, win) - mu_p * mu_g
    num = (2 * mu_p * mu_g + c1) * (2 * cov + c2)
    den = (mu_p**2 + mu_g**2 + c1) * (var_p + var_g + c2)
    return (num / den).mean(dim=(2, 3)).mean(dim=1).double().cpu()
