"""Stage 2 (docs/ARCHITECTURE.md §3): the one-step generator.

    z_L = E(x_L)  (frozen VAE, no gradient)        c = projector(codes(VRE(x_L)))  (VRE encoder + dictionary frozen)
    ẑ_H = (z_L − √(1−ᾱ_t)·UNet(z_L, t=399, c)) / √ᾱ_t                x̂_H = D(ẑ_H)  (frozen decoder, gradient flows)
    L_G = ‖x̂_H − x_H‖² + λ_per·EA-DISTS(x̂_H, x_H) + λ_ID·(1 − cos(e(x̂_H), e(x_H))) + λ_edge·|S(x̂_H) − S(x_H)|
          + λ_G·softplus(−D_lat(ẑ_H, c))          (e: ArcFace, or dlib's face ResNet offline; S: Sobel magnitude)
    L_D = softplus(−D_lat(z_H, c)) + softplus(D_lat(sg(ẑ_H), c))          (same t and noise for both; alternately)

Trainable: the UNet's LoRA (``unet_training="lora"``, the paper: SD 2.1 is frozen) or the whole UNet
(``"full"``: presets without a pretrained UNet, e.g. nano), the VRE's prompt projector, and, with
``train_vae_decoder`` (nano; not in the paper), the VAE decoder. The latent discriminator
(:class:`~osdface.losses.LatentDiscriminator`) starts from the base UNet's encoder, as DMD2's does.

``crop_size``: the UNet/VAE see a random window of each pair while the VRE sees the whole LQ face, as at inference
(the prompt describes the face). The identity loss needs whole faces, so it requires ``crop_size`` None.
Output: ``output_dir/final/``, a complete model folder (``OSDFacePipeline.from_pretrained`` loads it).

GAN stabilisers (options): λ_G rises linearly over ``gan_ramp`` steps after ``gan_start`` (the discriminator
warms up first); a hinge loss instead of the softplus one; a lazy R1 penalty on real latents (``r1_weight`` every
``r1_every`` steps); an EMA of the generator's weights (``ema_decay``) used for validation and export.

The forward pass is the model's own (:class:`~osdface.models.OneStepGenerator` built on the trainable, possibly
distributed, UNet and decoder); the loss is a list of weighted terms (:class:`LossTerm`, made in
:meth:`GeneratorTrainer.build_losses`): a new term is one entry there and its weight in the config.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, UNet2DConditionModel
from peft import LoraConfig

from ..configs import get_preset
from ..models import OneStepGenerator, VisualRepresentationEmbedder
from ..models import lora as lora_utils
from ..models.patch_vae import vae_class_of
from ..models.tiled_vae import VAEDecoder, vae_factor
from ..weights import MissingWeightsError, load_base_component
from .config import GeneratorTrainConfig
from .data import random_crop_pair
from .trainer import Trainer, finite


class EMA:
    """An exponential moving average of parameters (``decay`` per optimizer step), kept on their device, with
    :meth:`swap` to run with the averaged weights (validation, export) and put the trained ones back."""

    def __init__(self, params: list[torch.nn.Parameter], decay: float):
        self.params, self.decay = list(params), float(decay)
        self.shadow = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self) -> None:
        for s, p in zip(self.shadow, self.params):
            s.lerp_(p.detach(), 1.0 - self.decay)

    @torch.no_grad()
    def swap(self) -> None:
        for s, p in zip(self.shadow, self.params):
            tmp = p.detach().clone()
            p.copy_(s)
            s.copy_(tmp)

    def state_dict(self) -> dict:
        return {"shadow": [s.cpu() for s in self.shadow], "decay": self.decay}

    def load_state_dict(self, state: dict) -> None:
        for s, t in zip(self.shadow, state["shadow"]):
            s.copy_(t.to(s.device))


def _component(cls, base: str, sub: str):
    """``base``/``sub`` from a local folder or Hub id; None when a local folder lacks it."""
    if Path(base).is_dir() and not (Path(base) / sub).is_dir():
        return None
    return load_base_component(cls, base, sub)


@dataclass
class GeneratorOutputs:
    """What one generator step produced, for the loss terms: the restored image ``x_hat`` (unclamped, in [-1, 1]
    nominally) and latent ``z_hat``, the targets ``hq`` / ``z_hq`` (``z_hq`` only when the GAN is on), the prompt."""

    x_hat: torch.Tensor
    hq: torch.Tensor
    z_hat: torch.Tensor
    prompt: torch.Tensor
    z_hq: torch.Tensor | None = None
    teacher: torch.Tensor | None = None  # another restorer's output on the same LQ, in [-1, 1] (teacher term)


@dataclass
class LossTerm:
    """One weighted term of the generator's loss: ``weight_at(step) · fn(outputs)``, logged as ``name``. The weight
    is 0 before ``start`` and rises linearly to ``weight`` over the ``ramp`` steps after it; with ``every`` = k the
    term counts on every k-th step only, k times as much."""

    name: str
    fn: Callable[[GeneratorOutputs], torch.Tensor]
    weight: float
    start: int = 0
    ramp: int = 0
    every: int = 1  # on every k-th step only, with k times the weight (the same average)

    def weight_at(self, step: int) -> float:
        if step < self.start or step % self.every:
            return 0.0
        weight = self.weight * self.every
        if self.ramp <= 0:
            return weight
        return weight * min(1.0, (step - self.start + 1) / self.ramp)


class GeneratorTrainer(Trainer):
    cfg: GeneratorTrainConfig

    @property
    def log_columns(self) -> list[str]:
        disc = ["gan_d", "d_real", "d_fake"] + (["r1"] if self.cfg.r1_weight > 0 else []) if self.disc is not None \
            else []
        return ["loss", *(t.name for t in self.loss_terms), *disc, "lr", "images_per_s"]

    # -- building ----------------------------------------------------------------------------------------------------
    def build_models(self) -> None:
        """The frozen VAE encoder and VRE, the trainable UNet (LoRA or whole), the latent discriminator."""
        cfg = self.cfg
        preset = get_preset(cfg.preset)
        self.model_config = preset
        if cfg.unet_training not in ("lora", "full"):
            raise ValueError(f"unet_training must be 'lora' or 'full', not {cfg.unet_training!r}")
        if cfg.teacher_weight > 0 and cfg.crop_size is not None:
            raise ValueError("teacher_weight > 0 needs whole faces: set crop_size to null (the teacher images are "
                             "not cropped)")
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
        vae.to(self.device)
        vre.to(self.device)
        self.vae, self.vre, self.unet = vae, vre, unet
        self.decoder = VAEDecoder(vae).requires_grad_(cfg.train_vae_decoder)
        self.multiple = vae_factor(vae) * 2 ** (len(unet.config.block_out_channels) - 1)

    def build_losses(self) -> None:
        """The weighted terms of the generator's loss (docs/ARCHITECTURE.md §3); a term with weight 0 is left out
        and the log says why."""
        cfg = self.cfg
        self.loss_terms: list[LossTerm] = [LossTerm("l2", lambda o: F.mse_loss(o.x_hat, o.hq), cfg.l2_weight)]
        notes = []
        if cfg.ea_dists_weight > 0:
            from ..losses.ea_dists import EADISTS
            from ..networks.dists import load_dists

            ea_dists = EADISTS(load_dists(cfg.dists_weights)).to(self.device).eval().requires_grad_(False)
            self.loss_terms.append(LossTerm("ea_dists", lambda o: ea_dists(o.x_hat.clamp(-1, 1), o.hq).mean(),
                                            cfg.ea_dists_weight))
        else:
            notes.append("λ_per = 0: no EA-DISTS term (needs DISTS/VGG16 weights: --set dists_weights=DIR)")
        if cfg.identity_weight > 0:
            from ..losses.identity import IdentityLoss

            identity = IdentityLoss.from_name(cfg.identity_network, cfg.identity_weights, device=self.device)
            identity.eval().requires_grad_(False)
            self.loss_terms.append(LossTerm("identity", lambda o: identity(o.x_hat.clamp(-1, 1), o.hq).mean(),
                                            cfg.identity_weight))
        else:
            notes.append("λ_ID = 0: no identity term (identity_network=dlib works offline)")
        if cfg.edge_weight > 0:
            from ..losses.sobel import sobel_magnitude

            self.loss_terms.append(LossTerm("edge", lambda o: (sobel_magnitude((o.x_hat + 1) / 2)
                                                               - sobel_magnitude((o.hq + 1) / 2)).abs().mean(),
                                            cfg.edge_weight))
        if cfg.teacher_weight > 0:
            from ..losses.teacher import teacher_hf_loss

            def teacher_term(o: GeneratorOutputs) -> torch.Tensor:
                if o.teacher is None:
                    raise ValueError("teacher_weight > 0 needs a pairs folder with teacher/ as data "
                                     "(scripts/teacher_pool.py)")
                return teacher_hf_loss(o.x_hat, o.teacher, cfg.teacher_sigma)

            self.loss_terms.append(LossTerm("teacher", teacher_term, cfg.teacher_weight))
        if self.disc is not None:
            self.loss_terms.append(LossTerm("gan_g", self._gan_generator_loss, cfg.gan_weight, start=cfg.gan_start,
                                            ramp=cfg.gan_ramp, every=max(1, cfg.gan_every)))
        else:
            notes.append("λ_G = 0: no GAN guidance")
        if self.is_main:
            for n in notes:
                print(f"note: {n}", flush=True)

    def build_optimizers(self) -> None:
        """One AdamW over the UNet's trainable weights, the prompt projector and (``train_vae_decoder``) the VAE
        decoder; one for the discriminator; everything prepared by accelerate. The model's own forward pass
        (:class:`OneStepGenerator`) runs on the prepared modules."""
        cfg, acc = self.cfg, self.accelerator
        params = [p for p in self.unet.parameters() if p.requires_grad] + list(self.vre.projector.parameters()) + \
            [p for p in self.decoder.parameters() if p.requires_grad]
        opt, sched_lr = self.make_optimizer(params, cfg.learning_rate)
        self.unet, self.projector, self.opt, self.sched = acc.prepare(self.unet, self.vre.projector, opt, sched_lr)
        if cfg.train_vae_decoder:
            self.decoder = acc.prepare(self.decoder)
        if self.disc is not None:
            d_opt, d_sched = self.make_optimizer(self.disc.parameters(), cfg.disc_learning_rate)
            self.disc, self.d_opt, self.d_sched = acc.prepare(self.disc, d_opt, d_sched)
        self.ema = EMA(params, cfg.ema_decay) if cfg.ema_decay > 0 else None
        if self.ema is not None:
            acc.register_for_checkpointing(self.ema)
        self.model_config = self.model_config.replace(vre_prompt=cfg.use_vre_prompt)
        self.one_step = OneStepGenerator(self.vae, self.unet, self.vre, self.base_scheduler.alphas_cumprod,
                                         self.model_config.timestep, "mode", identity_skip=self.model_config.identity_skip,
                                         decoder=self.decoder, vre_prompt=cfg.use_vre_prompt)

    # -- the two steps ----------------------------------------------------------------------------------------------
    def gan_active(self) -> bool:
        """Whether this step runs the GAN terms (after ``gan_start``, on every ``gan_every``-th step)."""
        return self.disc is not None and self.step >= self.cfg.gan_start and self.step % max(1, self.cfg.gan_every) == 0

    def _gan_generator_loss(self, out: GeneratorOutputs) -> torch.Tensor:
        from ..losses.gan import generator_gan_loss

        self.disc.requires_grad_(False)
        fake = self.disc(out.z_hat, out.prompt, generator=self.generator(21))
        self.disc.requires_grad_(True)
        return generator_gan_loss(fake.logits, kind=self.cfg.gan_loss)

    def generator_step(self, batch: dict) -> dict[str, torch.Tensor]:
        """Restore the batch with the model's one step, add up the loss terms, update the generator."""
        cfg = self.cfg
        lq, hq = random_crop_pair(batch["lq"], batch["hq"], cfg.crop_size, self.generator(), self.multiple)
        with torch.no_grad():
            z_lq = self.one_step.encode(lq)
            codes = self.vre.tokens(batch["lq"]).embeddings if cfg.use_vre_prompt else None  # the whole LQ face
            z_hq = self.one_step.encode(hq) if self.gan_active() else None
        prompt = self.projector(codes) if codes is not None else self.one_step.prompt(lq)
        z_hat = self.one_step.restore_latent(z_lq, prompt)
        x_hat = self.one_step.decode(z_hat, clamp=False).float()  # unclamped: saturated pixels keep their gradient
        teacher = batch.get("teacher")
        teacher = teacher.float() if teacher is not None else None  # (to_device mapped it to [-1, 1])
        out = GeneratorOutputs(x_hat=x_hat, hq=hq.float(), z_hat=z_hat, prompt=prompt, z_hq=z_hq, teacher=teacher)
        terms, loss = {}, 0.0
        for term in self.loss_terms:
            weight = term.weight_at(self.step)
            if weight == 0 and term.name != "l2":
                continue
            terms[term.name] = term.fn(out)
            loss = loss + weight * terms[term.name]
        self.accelerator.backward(loss)
        self.clip(list(self.unet.parameters()) + list(self.projector.parameters()) + list(self.decoder.parameters()))
        self.opt.step()
        self.sched.step()
        self.opt.zero_grad(set_to_none=True)
        if self.ema is not None and self.accelerator.sync_gradients:
            self.ema.update()
        terms["loss"] = loss
        self._for_disc = (z_hq, z_hat.detach(), prompt.detach())
        return terms

    def discriminator_step(self) -> dict[str, torch.Tensor]:
        """One update of the latent discriminator on (real z_H, fake sg(ẑ_H)), same timesteps and noise for both."""
        from ..losses.gan import discriminator_loss

        cfg = self.cfg
        z_hq, z_fake, prompt = self._for_disc
        real, fake = self.accelerator.unwrap_model(self.disc).compare(z_hq, z_fake, prompt,
                                                                       generator=self.generator(22), forward=self.disc)
        loss = discriminator_loss(real.logits, fake.logits, kind=cfg.gan_loss)
        logs = {}
        if cfg.r1_weight > 0 and self.step % max(1, cfg.r1_every) == 0:
            # lazy R1 (StyleGAN2): γ/2 · E|∇_z D(z)|² on real latents, scaled by the interval it stands for
            from torch.nn.attention import SDPBackend, sdpa_kernel

            z_real = z_hq.detach().requires_grad_(True)
            with sdpa_kernel(SDPBackend.MATH):  # the fused CPU attention kernels have no double backward
                out = self.disc(z_real, prompt, timesteps=real.timesteps, noise=real.noise)
                grad, = torch.autograd.grad(out.logits.sum(), z_real, create_graph=True)
            r1 = grad.float().square().flatten(1).sum(1).mean()
            loss = loss + 0.5 * cfg.r1_weight * max(1, cfg.r1_every) * r1
            logs["r1"] = r1
        self.accelerator.backward(loss)
        self.clip(self.disc.parameters())
        self.d_opt.step()
        self.d_sched.step()
        self.d_opt.zero_grad(set_to_none=True)
        return {"gan_d": loss, "d_real": real.logits.mean(), "d_fake": fake.logits.mean(), **logs}

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
        """The current model (its EMA weights when ``ema_decay`` is set) on an LQ batch."""
        unet = self.accelerator.unwrap_model(self.unet)
        unet.eval()
        if self.ema is not None:
            self.ema.swap()
        try:
            out = self.one_step(lq)
        finally:
            if self.ema is not None:
                self.ema.swap()
            unet.train()
        return out

    def pipeline(self):
        """The current model as an :class:`~osdface.pipeline.OSDFacePipeline` (shares the trained modules)."""
        from ..pipeline import OSDFacePipeline

        cfg = self.cfg
        unet = self.accelerator.unwrap_model(self.unet)
        config = self.model_config.replace(
            base_model=(cfg.base or self.model_config.base_model) if cfg.unet_training == "lora" else None,
            process_size=cfg.resolution,  # the face size it was trained at (whole faces: crop_size is None)
            lora_rank=cfg.lora_rank or self.model_config.lora_rank,
            lora_alpha=cfg.lora_alpha or self.model_config.lora_alpha,
            extra={**self.model_config.extra, "training": {"stage2_steps": self.step, "config": cfg.to_dict()}})
        vre = copy.deepcopy(self.vre)
        vre.projector.load_state_dict(self.accelerator.unwrap_model(self.projector).state_dict())
        return OSDFacePipeline(self.vae, unet, vre, self.base_scheduler, config)

    def export(self, folder: Path) -> Path:
        """The model folder, with the EMA weights when ``ema_decay`` is set."""
        if self.ema is not None:
            self.ema.swap()
        try:
            pipe = self.pipeline()
            pipe.unet.eval()
            t0 = time.perf_counter()
            pipe.save_pretrained(folder)
            pipe.unet.train()
        finally:
            if self.ema is not None:
                self.ema.swap()
        if self.is_main:
            print(f"saved the model folder {folder} ({time.perf_counter() - t0:.1f} s)", flush=True)
        return Path(folder)
