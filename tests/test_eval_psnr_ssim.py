"""PSNR / SSIM: identical images, monotonic in noise, and parity with an independent numpy / scipy computation."""

import math

import numpy as np
import pytest
import torch

from osdface.eval.psnr_ssim import psnr, rgb_to_y, ssim

scipy_ndimage = pytest.importorskip("scipy.ndimage")


def _images(n=2, size=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    # smooth-ish content (a blurred random field), so that SSIM is far from 0 and from 1
    base = torch.rand(n, 3, size // 4, size // 4, generator=g)
    img = torch.nn.functional.interpolate(base, size=(size, size), mode="bilinear", align_corners=False)
    return (img * 255).round().to(torch.uint8), g


def _noisy(img, sigma, g):
    return (img.float() + torch.randn(img.shape, generator=g) * sigma).clamp(0, 255).round().to(torch.uint8)


# ---------------------------------------------------------------- independent reference (numpy + scipy, float64)
def _ref_y(rgb_uint8_hwc):
    x = rgb_uint8_hwc.astype(np.float64) / 255.0
    return 16.0 + x @ np.array([65.481, 128.553, 24.966])  # BT.601 luma, 0-255 scale


def _ref_psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def _ref_ssim_channel(a, b):
    # scipy's gaussian_filter with sigma 1.5 and truncate 3.5 has an 11-tap window (radius 5); the 'valid' part is
    # the filtered map without its 5-pixel border
    f = lambda z: scipy_ndimage.gaussian_filter(z, 1.5, truncate=3.5, mode="constant")[5:-5, 5:-5]  # noqa: E731
    a, b = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    ma, mb = f(a), f(b)
    va, vb, cov = f(a * a) - ma**2, f(b * b) - mb**2, f(a * b) - ma * mb
    return np.mean((2 * ma * mb + c1) * (2 * cov + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))


def _hwc(t):
    return t.permute(1, 2, 0).numpy()


def test_identical_images_give_inf_psnr_and_ssim_one():
    img, _ = _images()
    for y in (True, False):
        assert torch.isinf(psnr(img, img, y_channel=y)).all()
        assert torch.equal(ssim(img, img, y_channel=y), torch.ones(2, dtype=torch.float64))


def test_more_noise_is_worse():
    img, g = _images(n=1, size=64)
    noisy = [_noisy(img, s, g) for s in (2, 8, 32)]
    for y in (True, False):
        p = [psnr(n, img, y_channel=y).item() for n in noisy]
        s = [ssim(n, img, y_channel=y).item() for n in noisy]
        assert p[0] > p[1] > p[2]
        assert s[0] > s[1] > s[2]
        assert 0 < s[2] < 1


def test_parity_with_an_independent_computation():
    img, g = _images(n=2, size=40, seed=3)
    noisy = _noisy(img, 12, g)
    got_py, got_sy = psnr(noisy, img), ssim(noisy, img)
    got_prgb, got_srgb = psnr(noisy, img, y_channel=False), ssim(noisy, img, y_channel=False)
    for i in range(2):
        a, b = _hwc(noisy[i]), _hwc(img[i])
        assert got_py[i].item() == pytest.approx(_ref_psnr(_ref_y(a), _ref_y(b)), abs=1e-9)
        assert got_prgb[i].item() == pytest.approx(_ref_psnr(a, b), abs=1e-9)
        assert got_sy[i].item() == pytest.approx(_ref_ssim_channel(_ref_y(a), _ref_y(b)), abs=1e-9)
        ref_rgb = np.mean([_ref_ssim_channel(a[..., c], b[..., c]) for c in range(3)])
        assert got_srgb[i].item() == pytest.approx(ref_rgb, abs=1e-9)


def test_float_inputs_in_unit_range_match_uint8():
    img, g = _images(n=1)
    noisy = _noisy(img, 10, g)
    assert psnr(noisy.float() / 255, img.float() / 255).item() == pytest.approx(psnr(noisy, img).item(), abs=1e-4)
    assert ssim(noisy.float() / 255, img.float() / 255).item() == pytest.approx(ssim(noisy, img).item(), abs=1e-6)


def test_y_of_white_and_black():
    x = torch.tensor([0.0, 255.0], dtype=torch.float64).view(2, 1, 1, 1).expand(2, 3, 1, 1)
    assert rgb_to_y(x).flatten().tolist() == pytest.approx([16.0, 235.0])


def test_shape_mismatch_and_tiny_images_are_refused():
    a = torch.zeros(1, 3, 16, 16, dtype=torch.uint8)
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(a, torch.zeros(1, 3, 16, 17, dtype=torch.uint8))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(a[..., :8, :8], a[..., :8, :8])
