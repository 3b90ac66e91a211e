"""PatchVAE: the nano preset's VAE: a whitened PCA codec of p×p pixel patches, plus a learned residual decoder.

OSDFace works in the latent space of SD 2.1's VAE, which was pretrained on billions of images. The nano preset has
no pretrained VAE, and a from-scratch convolutional ``AutoencoderKL`` of nano size learns slowly on 2 CPU cores:
measured on this project's faces, 20–25 dB reconstruction PSNR after 500–1,200 steps (≈ 20 min) — below the
degraded input itself, so no restoration could be better than that. A *linear* code of 4×4 RGB patches (48 values)
kept to its 16 principal components reconstructs the validation faces at ≈ 44 dB (the stage-0 log), and is fitted in seconds in
closed form. So nano's VAE is that code, with the same interface and latent shape (16 × H/4 × W/4):

    encode:  x (B, 3, H, W) ─ pixel_unshuffle(p) → (B, 3p², H/p, W/p) ─ 1×1 conv = whitened PCA → z (B, 16, H/p, W/p)
    decode:  z ─ 1×1 conv = PCA inverse ─┬─ + residual(z) (convs at latent resolution, last layer zero-initialised)
                                        └─ pixel_shuffle(p) → x̂ (B, 3, H, W)

Whitening (each latent channel scaled to unit variance over the fitting faces) puts every channel on the scale the
diffusion schedule assumes, so ``scaling_factor`` is 1. The residual branch starts at zero (the decoder is exactly
the PCA inverse) and learns what a linear code cannot: stage 2 trains it with the UNet (``train_vae_decoder``).

It speaks the parts of diffusers' ``AutoencoderKL`` interface that osdface uses: ``encode(x).latent_dist``
(``mode()``/``sample()``; the posterior's variance is a fixed tiny constant, so both are the code), ``decode(z).sample``,
``encoder``/``decoder`` modules with ``quant_conv``/``post_quant_conv`` = None (tiled VAE, ``torch.compile``,
channels-last), ``config.scaling_factor``/``shift_factor``; :func:`build_vae` and :func:`vae_class_of` pick the
class from a config (``"_class_name": "PatchVAE"``), so model folders stay self-describing.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKLOutput
from diffusers.models.autoencoders.vae import DecoderOutput, DiagonalGaussianDistribution
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


class PatchEncoder(nn.Module):
    """x → moments (mean, log-variance) of the latent: the whitened PCA projection of p×p patches."""

    def __init__(self, in_channels: int, latent_channels: int, patch_size: int, log_variance: float):
        super().__init__()
        self.patch_size = patch_size
        self.log_variance = log_variance
        self.proj = nn.Conv2d(in_channels * patch_size ** 2, latent_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = self.proj(F.pixel_unshuffle(x, self.patch_size))
        return torch.cat([mean, torch.full_like(mean, self.log_variance)], dim=1)


class ResidualBlock(nn.Module):
    """x + conv(silu(conv(silu(x)))): no normalisation, so that absolute colour and brightness pass through."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.silu(self.conv1(F.silu(x))))


class PatchDecoder(nn.Module):
    """z → image: the PCA inverse plus a residual conv branch at latent resolution (zero at initialisation)."""

    def __init__(self, latent_channels: int, out_channels: int, patch_size: int, width: int, num_blocks: int):
        super().__init__()
        self.patch_size = patch_size
        patch_values = out_channels * patch_size ** 2
        self.proj = nn.Conv2d(latent_channels, patch_values, 1)
        self.conv_in = nn.Conv2d(latent_channels, width, 3, padding=1)
        self.blocks = nn.Sequential(*(ResidualBlock(width) for _ in range(num_blocks)))
        self.conv_out = nn.Conv2d(width, patch_values, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        residual = self.conv_out(F.silu(self.blocks(self.conv_in(z))))
        return F.pixel_shuffle(self.proj(z) + residual, self.patch_size)


class PatchVAE(ModelMixin, ConfigMixin):
    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        latent_channels: int = 16,  # nano: 16 of the 48 values of a 4×4 RGB patch (≈ 44 dB on faces, measured)
        patch_size: int = 4,  # pixels per latent cell along a side (SD's VAE: 8; nano's UNet runs at 128² for 512²)
        decoder_width: int = 64,
        decoder_blocks: int = 4,
        log_variance: float = -20.0,  # the posterior's fixed log-variance: sample() ≈ mode() (σ ≈ 5e-5)
        scaling_factor: float = 1.0,  # 1: whitened latents already have unit variance
        shift_factor: float | None = None,
        sample_size: int = 512,
    ):
        super().__init__()
        self.encoder = PatchEncoder(in_channels, latent_channels, patch_size, log_variance)
        self.decoder = PatchDecoder(latent_channels, out_channels, patch_size, decoder_width, decoder_blocks)
        self.quant_conv = None  # AutoencoderKL's names, for code that walks its parts (tiling)
        self.post_quant_conv = None

    def encode(self, x: torch.Tensor, return_dict: bool = True):
        dist = DiagonalGaussianDistribution(self.encoder(x))
        return AutoencoderKLOutput(latent_dist=dist) if return_dict else (dist,)

    def decode(self, z: torch.Tensor, return_dict: bool = True, generator=None):
        x = self.decoder(z)
        return DecoderOutput(sample=x) if return_dict else (x,)

    def forward(self, sample: torch.Tensor, sample_posterior: bool = False, return_dict: bool = True,
                generator: torch.Generator | None = None):
        dist = self.encode(sample).latent_dist
        z = dist.sample(generator) if sample_posterior else dist.mode()
        return self.decode(z, return_dict=return_dict)

    @torch.no_grad()
    def fit_pca(self, images: torch.Tensor | list[torch.Tensor], whiten: bool = True) -> torch.Tensor:
        """Set the linear maps to the (whitened) PCA of the p×p patches of ``images`` (each (B, C, H, W) in
        [-1, 1], sides multiples of p). The residual branch is reset to zero, so decode(encode(x)) is the PCA
        reconstruction. Returns all eigenvalues (descending) of the patch covariance."""
        p, k = self.config.patch_size, self.config.latent_channels
        n, total, outer = 0, None, None
        for batch in ([images] if torch.is_tensor(images) else images):
            patches = F.pixel_unshuffle(batch.double().cpu(), p).permute(0, 2, 3, 1).reshape(-1, batch.shape[1] * p * p)
            total = patches.sum(0) if total is None else total + patches.sum(0)
            outer = patches.T @ patches if outer is None else outer + patches.T @ patches
            n += patches.shape[0]
        if n <= k:
            raise ValueError(f"fit_pca needs more than {k} patches, got {n}")
        mean = total / n
        cov = outer / n - torch.outer(mean, mean)
        eigval, eigvec = torch.linalg.eigh(cov)  # ascending
        eigval, eigvec = eigval.flip(0).clamp_min(0), eigvec.flip(1)
        basis = eigvec[:, :k]  # (d, k)
        scale = eigval[:k].clamp_min(1e-12).sqrt() if whiten else torch.ones(k, dtype=torch.float64)
        enc_w = basis.T / scale[:, None]  # z = diag(1/s) Vᵀ (x − μ)
        dec_w = basis * scale[None, :]  # x̂ = V diag(s) z + μ
        enc, dec = self.encoder.proj, self.decoder.proj
        enc.weight.copy_(enc_w[:, :, None, None].to(enc.weight))
        enc.bias.copy_((-enc_w @ mean).to(enc.bias))
        dec.weight.copy_(dec_w[:, :, None, None].to(dec.weight))
        dec.bias.copy_(mean.to(dec.bias))
        nn.init.zeros_(self.decoder.conv_out.weight)
        nn.init.zeros_(self.decoder.conv_out.bias)
        return eigval.float()


def _is_patch_vae(config: dict) -> bool:
    return config.get("_class_name") == PatchVAE.__name__


def build_vae(config: dict):
    """A randomly initialised VAE from a preset's ``vae`` dict: :class:`PatchVAE` when it says
    ``"_class_name": "PatchVAE"``, else diffusers' ``AutoencoderKL``."""
    kwargs = {k: v for k, v in config.items() if not k.startswith("_")}
    return PatchVAE(**kwargs) if _is_patch_vae(config) else AutoencoderKL(**kwargs)


def vae_class_of(folder: str | Path, subfolder: str | None = "vae"):
    """The class that loads ``folder/subfolder`` (read from its config.json; AutoencoderKL when it names none or
    the folder is not local, e.g. a Hub id of an SD base)."""
    path = Path(folder) / subfolder if subfolder else Path(folder)
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return AutoencoderKL
    return PatchVAE if _is_patch_vae(config) else AutoencoderKL
