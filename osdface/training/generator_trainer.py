"""Stage 2 (spec §3): the one-step generator.

    z_L = E(x_L)  (frozen VAE, no gradient)        c = projector(codes(VRE(x_L)))  (VRE encoder + dictionary frozen)
    ẑ_H = (z_L − √(1−ᾱ_t)·UNet(z_L, t=399, c)) / √ᾱ_t                x̂_H = D(ẑ_H)  (frozen decoder, gradient flows)
    L_G = ‖x̂_H − x_H‖² + λ_per·EA-DISTS(x̂_H, x_H) + λ_ID·(1 − cos(ArcFace(x̂_H), ArcFace(x_H)))
          + λ_G·softplus(−D_lat(ẑ_H, c))
    L_D = softplus(−D_lat(z_H, c)) + softplus(D_lat(sg(ẑ_H), c))          (same t and noise for both; alternately)

Trainable: the UNet's LoRA (``unet_training="lora"``, the paper: SD 2.1 is frozen) or the whole UNet
(``"full"``: presets without a pretrained UNet, e.g. nano), the VRE's prompt projector, and, with
``train_vae_decoder`` (nano; not in the paper), the VAE decoder. The latent discriminator
(:class:`~osdface.losses.LatentDiscriminator`) starts from the base UNet's encoder, as DMD2's does.

``crop_size``: the UNet/VAE see a random window of each pair while the VRE sees the whole LQ face, as at inference
(the prompt describes the face). The identity loss needs whole faces, so it requires ``crop_size`` None.
Output: ``output_dir/final/``, a complete model folder (``OSDFacePipeline.from_pretrained`` loads it).
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from peft import LoraConfig

from ..configs import get_preset
from ..hub import MissingWeightsError, load_base_component
from ..models import OneStepGenerator, VisualRepresentationEmbedder
from ..models import lora as lora_utils
from ..models.one_step import x0_from_eps
from ..models.patch_vae import vae_class_of
from ..models.tiled_vae import vae_factor
from .config import GeneratorTrainConfig
from .data import random_crop_pair
from .trainer import Trainer, finite


class VAEDecoder(torch.nn.Module):
    """The decoding half of an ``AutoencoderKL`` (``post_quant_conv`` + ``decoder``; shares its weights), so that it
    can be trained and wrapped by accelerate on its own while the encoder stays frozen."""

    def __init__(self, vae: AutoencoderKL):
        super().__init__()
        self.post_quant_conv = vae.post_quant_conv
        self.decoder = vae.decoder

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(z) if self.post_quant_conv is not None else z)


def _component(cls, base: str, sub: str):
    """``base``/``sub`` from a local folder or Hub id; None when a local folder lacks it."""
    if Path(base).is_dir() and not (Path(base) / sub).is_dir():
        return None
    return load_base_component(cls, base, sub)


class GeneratorTrainer(Trainer):
    cfg: GeneratorTrainConfig
    log_columns = ["loss", "l2", "ea_dists", "identity", "gan_g", "gan_d", "d_real", "d_fake", "lr", "images_per_s"]

    def build(self) -> None:
        cfg = self.cfg
        preset = get_preset(cfg.preset)
        self.model_config = preset
        if cfg.unet_training not in ("lora", "full"):
            raise ValueError(f"unet_training must be 'lora' or 'full', not {cfg.unet_training!r}")
        if cfg.identity_weight > 0 and cfg.crop_size is not None:
            raise ValueError("identity_weight > 0 needs whole faces: set crop_size to null (the identity network "
                             "reads the whole aligned face)")
        base = cfg.base or preset.base_model
        if not base:
            raise ValueError(f"preset {cfg.preset!r} has no pretrained base: train its VAE first "
                             "(osdface train-vae) and pass that run's final/ folder as --base")
        vae = _component(vae_class_of(base), base, "vae")
        if vae is None:
            raise MissingWeightsError(f"{base} has no vae/: pass an SD base or train-vae's output_dir/final")
        unet = _component(UNet2DConditionModel, base, "unet")
        if unet is None:
            if cfg.unet_training != "full":
                raise MissingWeightsError(f"{base} has no unet/ to put a LoRA on; use an SD base, or "
                                          "unet_training=full to train a UNet from scratch (nano)")
            unet = UNet2DConditionModel(**preset.unet)
            if preset.identity_skip:  # a zero output: the untrained generator returns its input (ẑ_H = z_L)
                torch.nn.init.zeros_(unet.conv_out.weight)
                torch.nn.init.zeros_(unet.conv_out.bias)
        sched = _component(DDIMScheduler, base, "scheduler") or DDIMScheduler(**preset.scheduler)
        if not cfg.vre or not (Path(cfg.vre) / "config.json").is_file():
            raise FileNotFoundError(f"--vre {cfg.vre!r}: not a VRE folder (train one with osdface train-vre; use "
                                    "its output_dir/final)")
        vre = VisualRepresentationEmbedder.from_pretrained(cfg.vre)
        self.base_scheduler = sched
        self.alphas_cumprod = sched.alphas_cumprod

        vae.requires_grad_(False).eval()
        vre.requires_grad_(False).eval()
        vre.projector.requires_grad_(cfg.train_projector)
        self.disc = None
        if cfg.gan_weight > 0:
            from ..losses.latent_discriminator import LatentDiscriminator

            lo, hi = cfg.disc_t_range
            self.disc = LatentDiscriminator.from_unet(unet, alphas_cumprod=sched.alphas_cumprod, t_min=lo, t_max=hi)
        if cfg.unet_training == "lora":
            unet.requires_grad_(False)
            lora_utils.add_lora(unet, LoraConfig(r=cfg.lora_rank or preset.lora_rank,
                                                 lora_alpha=cfg.lora_alpha or preset.lora_alpha,
                                                 target_modules=list(lora_utils.DEFAULT_TARGET_MODULES),
                                                 init_lora_weights=True))  # B = 0: training starts at the base
        else:
            unet.requires_grad_(True)
        unet.train()

        self.ea_dists = self.identity = None
        notes = []
        if cfg.ea_dists_weight > 0:
            from ..losses.dists import load_dists
            from ..losses.ea_dists import EADISTS
            self.ea_dists = EADISTS(load_dists(cfg.dists_weights)).to(self.device).eval().requires_grad_(False)
        else:
            notes.append("λ_per = 0: no EA-DISTS term (needs DISTS/VGG16 weights: --set dists_weights=DIR)")
        if cfg.identity_weight > 0:
            from ..losses.identity import IdentityLoss, load_identity_network
            self.identity = IdentityLoss(load_identity_network(cfg.identity_weights)).to(self.device).eval()
            self.identity.requires_grad_(False)
        else:
            notes.append("λ_ID = 0: no identity term (needs ArcFace weights: --set identity_weights=FILE)")
        if self.disc is None:
            notes.append("λ_G = 0: no GAN guidance")
        if self.is_main:
            for n in notes:
                print(f"note: {n}", flush=True)

        acc = self.accelerator
        vae.to(self.device)
        vre.to(self.device)
        decoder = VAEDecoder(vae)
        decoder.requires_grad_(cfg.train_vae_decoder)
        params = [p for p in unet.parameters() if p.requires_grad] + list(vre.projector.parameters()) + \
            [p for p in decoder.parameters() if p.requires_grad]
        opt, sched_lr = self.make_optimizer(params, cfg.learning_rate)
        self.unet, self.projector, self.opt, self.sched = acc.prepare(unet, vre.projector, opt, sched_lr)
        self.decoder = acc.prepare(decoder) if cfg.train_vae_decoder else decoder
        if self.disc is not None:
            d_opt, d_sched = self.make_optimizer(self.disc.parameters(), cfg.disc_learning_rate)
            self.disc, self.d_opt, self.d_sched = acc.prepare(self.disc, d_opt, d_sched)
        self.vae, self.vre = vae, vre
        self.one_step = OneStepGenerator(vae, acc.unwrap_model(self.unet), vre, sched.alphas_cumprod,
                                         preset.timestep, "mode", identity_skip=preset.identity_skip)
        self.multiple = vae_factor(vae) * 2 ** (len(unet.config.block_out_channels) - 1)

    # -- the two steps ----------------------------------------------------------------------------------------------
    def restore(self, z_lq: torch.Tensor, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(ẑ_H, prompt) through the prepared (possibly distributed) UNet and projector, with gradients."""
        prompt = self.projector(codes)
        t = torch.full((z_lq.shape[0],), self.one_step.timestep, device=z_lq.device, dtype=torch.long)
        eps = self.one_step.add_skip(self.unet(z_lq, t, encoder_hidden_states=prompt.to(z_lq.dtype)).sample, z_lq)
        return x0_from_eps(z_lq, eps, self.one_step.alpha_bar), prompt

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Frozen decoder with gradients, unclamped (clamping would cut the gradient of saturated pixels)."""
        return self.decoder(z / self.one_step.scaling_factor + self.one_step.shift_factor)

    def gan_active(self) -> bool:
        return self.disc is not None and self.step >= self.cfg.gan_start

    def generator_step(self, batch: dict) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        lq, hq = random_crop_pair(batch["lq"], batch["hq"], cfg.crop_size, self.generator(), self.multiple)
        with torch.no_grad():
            z_lq = self.one_step.encode(lq)
            codes = self.vre.tokens(batch["lq"]).embeddings  # the whole LQ face
            z_hq = self.one_step.encode(hq) if self.gan_active() else None
        z_hat, prompt = self.restore(z_lq, codes)
        x_hat = self.decode(z_hat).float()
        terms = {"l2": F.mse_loss(x_hat, hq.float())}
        loss = cfg.l2_weight * terms["l2"]
        if self.ea_dists is not None:
            terms["ea_dists"] = self.ea_dists(x_hat.clamp(-1, 1), hq.float()).mean()
            loss = loss + cfg.ea_dists_weight * terms["ea_dists"]
        if self.identity is not None:
            terms["identity"] = self.identity(x_hat.clamp(-1, 1), hq.float()).mean()
            loss = loss + cfg.identity_weight * terms["identity"]
        if self.gan_active():
            self.disc.requires_grad_(False)
            fake = self.disc(z_hat, prompt, generator=self.generator(21))
            self.disc.requires_grad_(True)
            from ..losses.gan import generator_gan_loss
            terms["gan_g"] = generator_gan_loss(fake.logits)
            loss = loss + cfg.gan_weight * terms["gan_g"]
        self.accelerator.backward(loss)
        self.clip(list(self.unet.parameters()) + list(self.projector.parameters()) + list(self.decoder.parameters()))
        self.opt.step()
        self.sched.step()
        self.opt.zero_grad(set_to_none=True)
        terms["loss"] = loss
        self._for_disc = (z_hq, z_hat.detach(), prompt.detach())
        return terms

    def discriminator_step(self) -> dict[str, torch.Tensor]:
        from ..losses.gan import discriminator_loss

        z_hq, z_fake, prompt = self._for_disc
        real, fake = self.accelerator.unwrap_model(self.disc).compare(z_hq, z_fake, prompt,
                                                                       generator=self.generator(22)) \
            if self.accelerator.num_processes == 1 else self._compare_ddp(z_hq, z_fake, prompt)
        loss = discriminator_loss(real.logits, fake.logits)
        self.accelerator.backward(loss)
        self.clip(self.disc.parameters())
        self.d_opt.step()
        self.d_sched.step()
        self.d_opt.zero_grad(set_to_none=True)
        return {"gan_d": loss, "d_real": real.logits.mean(), "d_fake": fake.logits.mean()}

    def _compare_ddp(self, z_hq, z_fake, prompt):
        """compare() through the DDP wrapper (so gradients are synchronised): one call on 2B latents."""
        unwrapped = self.accelerator.unwrap_model(self.disc)
        b = z_hq.shape[0]
        g = self.generator(22)
        t = unwrapped.sample_timesteps(b, g, z_hq.device)
        noise = torch.randn(z_hq.shape, generator=g).to(z_hq.device, z_hq.dtype)
        out = self.disc(torch.cat([z_hq, z_fake]), prompt.repeat(2, 1, 1), timesteps=t.repeat(2),
                        noise=noise.repeat(2, 1, 1, 1))
        from ..losses.latent_discriminator import LatentDiscriminatorOutput
        return [LatentDiscriminatorOutput(logits=out.logits[s], logits_map=out.logits_map[s], timesteps=t,
                                          noise=noise) for s in (slice(0, b), slice(b, 2 * b))]

    def training_step(self, batch: dict) -> dict[str, float]:
        models = [self.unet, self.projector] + ([self.decoder] if self.cfg.train_vae_decoder else []) + \
            ([self.disc] if self.disc is not None else [])
        with self.accelerator.accumulate(*models):
            with self.accelerator.autocast():
                terms = self.generator_step(batch)
                if self.gan_active():
                    terms.update(self.discriminator_step())
        logs = {k: float(v.detach()) for k, v in terms.items()}
        finite(terms["loss"])
        logs["lr"] = self.sched.get_last_lr()[0]
        return logs

    # -- validation and export --------------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, lq: torch.Tensor) -> torch.Tensor:
        unet = self.accelerator.unwrap_model(self.unet)
        unet.eval()
        out = self.one_step(lq)
        unet.train()
        return out

    def pipeline(self):
        """The current model as an :class:`~osdface.pipeline.OSDFacePipeline` (shares the trained modules)."""
        from ..pipeline import OSDFacePipeline

        cfg = self.cfg
        unet = self.accelerator.unwrap_model(self.unet)
        config = self.model_config.replace(
            base_model=(cfg.base or self.model_config.base_model) if cfg.unet_training == "lora" else None,
            lora_rank=cfg.lora_rank or self.model_config.lora_rank,
            lora_alpha=cfg.lora_alpha or self.model_config.lora_alpha,
            extra={**self.model_config.extra, "training": {"stage2_steps": self.step, "config": cfg.to_dict()}})
        vre = copy.deepcopy(self.vre)
        vre.projector.load_state_dict(self.accelerator.unwrap_model(self.projector).state_dict())
        return OSDFacePipeline(self.vae, unet, vre, self.base_scheduler, config)

    def export(self, folder: Path) -> Path:
        pipe = self.pipeline()
        pipe.unet.eval()
        t0 = time.perf_counter()
        pipe.save_pretrained(folder)
        pipe.unet.train()
        if self.is_main:
            print(f"saved the model folder {folder} ({time.perf_counter() - t0:.1f} s)", flush=True)
        return Path(folder)
