"""The one-step generator (OSDFace §3.1, docs/ARCHITECTURE.md §1): a low-quality face → a restored face with ONE UNet evaluation.

    x_L ∈ [-1, 1] ──VAE.encode──► z_L = mode (or sample) · scaling_factor
    x_L ──VRE──► c ∈ (B, 77, 1024)
    ε = UNet(z_L, t = 399, c)                          # no noise is added: z_L is treated as x_t at t = 399
    ẑ_H = (z_L − √(1 − ᾱ_t) · ε) / √ᾱ_t                 # x0 from epsilon, ᾱ_t in float64 (≈ 0.4261 for SD 2.1)
    x_H = VAE.decode(ẑ_H / scaling_factor).clamp(-1, 1)

The module is differentiable end to end (the trainer uses it) and batched.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from .tiled_vae import TileConfig, VAEDecoder, tiled_decode, tiled_encode, vae_factor


def x0_from_eps(z_t: torch.Tensor, eps: torch.Tensor, alpha_bar: float) -> torch.Tensor:
    """ẑ_0 = (z_t − √(1 − ᾱ) ε) / √ᾱ, computed in float64 where the device has it (not MPS), cast back.

    The two constants are Python floats (double precision, the same values as ``torch.sqrt`` of a float64
    tensor): no tensor is made on the host and copied to the device per call."""
    work = torch.float32 if z_t.device.type == "mps" else torch.float64
    out = (z_t.to(work) - math.sqrt(1.0 - alpha_bar) * eps.to(work)) / math.sqrt(alpha_bar)
    return out.to(z_t.dtype)


def identity_skip_gain(alpha_bar: float) -> float:
    """k with x0_from_eps(z, k·z, ᾱ) = z: k = (1 − √ᾱ) / √(1 − ᾱ) (0.458 at t = 399)."""
    return (1.0 - math.sqrt(alpha_bar)) / math.sqrt(1.0 - alpha_bar)


class OneStepGenerator(nn.Module):
    """Holds the VAE, the UNet (with its LoRA, fused or not) and the VRE, and runs the one step.

    ``alphas_cumprod`` is the scheduler's table (float32 in diffusers, as the release used it); ᾱ_t is read from
    it once and kept as a Python float64, so nothing is recomputed per call.

    ``identity_skip`` (not in the paper; presets trained from scratch, e.g. nano): ε̂ = UNet(z) + k·z with
    k = (1 − √ᾱ)/√(1 − ᾱ), so that a UNet output of 0 returns the input latent (ẑ_0 = z_L) and the UNet learns the
    correction (global residual learning, as in VDSR). The paper's formula is ``identity_skip=False``.
    """

    def __init__(self, vae, unet, vre, alphas_cumprod: torch.Tensor, timestep: int = 399,
                 latent_mode: Literal["mode", "sample"] = "mode", identity_skip: bool = False,
                 decoder: nn.Module | None = None, vre_prompt: bool = True):
        super().__init__()
        self.vae, self.unet, self.vre = vae, unet, vre
        # the decoding half as a module (a trainer passes its own, possibly wrapped for distributed training)
        self.decoder = decoder if decoder is not None else VAEDecoder(vae)
        self.timestep = int(timestep)
        self.alpha_bar = float(alphas_cumprod.to(torch.float64)[self.timestep])
        self.latent_mode = latent_mode
        self.identity_skip = bool(identity_skip)
        self.vre_prompt = bool(vre_prompt)
        self.skip_gain = identity_skip_gain(self.alpha_bar) if identity_skip else 0.0
        self.scaling_factor = float(vae.config.scaling_factor)
        self.shift_factor = float(getattr(vae.config, "shift_factor", None) or 0.0)
        self.vae_tiling: TileConfig | None = None  # set by enable_vae_tiling: large inputs in bounded memory

    def enable_vae_tiling(self, tile_size: int = 512, overlap: int = 64) -> None:
        """Encode / decode inputs larger than ``tile_size`` pixels (either side) in overlapping, blended tiles
        (:mod:`osdface.models.tiled_vae`). Inputs that fit one tile take the untiled path unchanged."""
        config = TileConfig(int(tile_size), int(overlap))
        config.validate(vae_factor(self.vae))
        self.vae_tiling = config

    def disable_vae_tiling(self) -> None:
        self.vae_tiling = None

    def _tiles(self, height: int, width: int) -> bool:
        return self.vae_tiling is not None and max(height, width) > self.vae_tiling.tile_size

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype  # (also through a distributed wrapper, which has no .dtype)

    # -- the steps ----------------------------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor, mode: str | None = None, generator: torch.Generator | None = None
               ) -> torch.Tensor:
        """x in [-1, 1] → scaled latent. ``mode="sample"`` draws from the posterior (the release samples)."""
        if self._tiles(*x.shape[-2:]):
            dist = tiled_encode(self.vae, x, self.vae_tiling)
        else:
            dist = self.vae.encode(x).latent_dist
        z = dist.sample(generator=generator) if (mode or self.latent_mode) == "sample" else dist.mode()
        return (z - self.shift_factor) * self.scaling_factor

    def decode(self, z: torch.Tensor, clamp: bool = True) -> torch.Tensor:
        """Scaled latent → image in [-1, 1]. ``clamp=False`` (training) keeps the gradient of saturated pixels."""
        z = z / self.scaling_factor + self.shift_factor
        f = vae_factor(self.vae)
        if self._tiles(z.shape[-2] * f, z.shape[-1] * f):
            x = tiled_decode(self.vae, z, self.vae_tiling, self.decoder)
        else:
            x = self.decoder(z)
        return x.clamp(-1, 1) if clamp else x

    def predict_eps(self, z: torch.Tensor, prompt_embeds: torch.Tensor) -> torch.Tensor:
        t = torch.full((z.shape[0],), self.timestep, device=z.device, dtype=torch.long)
        return self.add_skip(self.unet(z, t, encoder_hidden_states=prompt_embeds.to(z.dtype)).sample, z)

    def add_skip(self, eps: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """ε̂ + k·z with ``identity_skip`` (see the class), else ε̂ unchanged."""
        return eps + self.skip_gain * z if self.skip_gain else eps

    def restore_latent(self, z_lq: torch.Tensor, prompt_embeds: torch.Tensor) -> torch.Tensor:
        return x0_from_eps(z_lq, self.predict_eps(z_lq, prompt_embeds), self.alpha_bar)

    def prompt(self, x: torch.Tensor) -> torch.Tensor:
        """The prompt for images ``x`` in [-1, 1]: the VRE's, or zeros of its shape without ``vre_prompt``."""
        if self.vre_prompt:
            return self.vre(x.to(self.vre.dtype))
        cfg = self.vre.config
        return torch.zeros(x.shape[0], cfg.num_tokens, cfg.prompt_dim, device=x.device, dtype=self.dtype)

    def forward(self, x: torch.Tensor, prompt_embeds: torch.Tensor | None = None,
                generator: torch.Generator | None = None, latent_mode: str | None = None) -> torch.Tensor:
        """x (B, 3, H, W) in [-1, 1] (H, W multiples of 8 · 2^(UNet levels − 1)) → restored, in [-1, 1]."""
        x = x.to(self.dtype)
        if prompt_embeds is None:
            prompt_embeds = self.prompt(x)
        z = self.encode(x, mode=latent_mode, generator=generator)
        return self.decode(self.restore_latent(z, prompt_embeds))

    def ddim_steps(self, z: torch.Tensor, prompt_embeds: torch.Tensor, scheduler, num_steps: int = 50):
        """Yield the latent after each step of a ``num_steps`` DDIM run from ``z`` (a copy of ``scheduler`` is used,
        so the caller's stays untouched). Stop early to time a few steps, or loop through for the whole run."""
        scheduler = type(scheduler).from_config(scheduler.config)
        scheduler.set_timesteps(num_steps, device=z.device)
        for t in scheduler.timesteps:
            eps = self.unet(z, t, encoder_hidden_states=prompt_embeds.to(z.dtype)).sample
            z = scheduler.step(eps, t, z).prev_sample
            yield z

    def ddim_sample(self, x: torch.Tensor, scheduler, num_steps: int = 50, prompt_embeds: torch.Tensor | None = None,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        """The same UNet as a multi-step DDIM sampler from pure noise (the baseline OSDFace's one step replaces).

        Only for speed comparisons: the LoRA was trained for one step, so the images are not meaningful.
        """
        x = x.to(self.dtype)
        if prompt_embeds is None:
            prompt_embeds = self.prompt(x)
        b, _, h, w = x.shape
        f = vae_factor(self.vae)
        z = torch.randn((b, self.unet.config.in_channels, h // f, w // f), generator=generator,
                        device=x.device if generator is None else generator.device, dtype=self.dtype).to(x.device)
        for z in self.ddim_steps(z, prompt_embeds, scheduler, num_steps):
            pass
        return self.decode(z)
