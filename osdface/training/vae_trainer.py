"""Stage 0 (only for presets without a pretrained SD base, e.g. nano): train the VAE as an autoencoder.

SD 2.1's VAE is pretrained on billions of images; the nano preset has none, so before the two OSDFace stages its
VAE learns to reconstruct faces. nano's :class:`~osdface.models.PatchVAE` is first fitted in closed form (whitened
PCA of the 4×4 patches of ``scaling_samples`` HQ training faces: ≈ 44 dB on the validation batch, in seconds;
nano's preset stops there (``max_steps`` 0) and lets stage 2 train the decoder's residual branch. Any gradient steps
(and an ``AutoencoderKL`` from scratch, e.g. tiny) minimise L1 + λ_kl·KL (+ λ_per·DISTS when its weights are
available), on HQ crops and, with ``train_on_lq``, degraded LQ crops too (what stage 2 encodes). It decodes the posterior's mode (a
small-KL autoencoder), which is how the pipeline reads latents (``latent_mode="mode"``). At the end the latent scale is measured and
stored as ``scaling_factor`` = 1 / std (how SD's 0.18215 was chosen), so that latents have unit variance as the
diffusion schedule assumes. Output: ``output_dir/final/vae/`` (the ``base`` of stage 2).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ..configs import get_preset
from ..models.patch_vae import PatchVAE, build_vae
from .config import VAETrainConfig
from .data import random_crop_pair
from .trainer import Trainer, finite


class VAETrainer(Trainer):
    cfg: VAETrainConfig
    log_columns = ["loss", "l1", "kl", "perceptual", "lr", "images_per_s", "val_psnr_hq_recon"]

    def build(self) -> None:
        preset = get_preset(self.cfg.preset)
        if preset.vae is None:
            raise ValueError(f"preset {self.cfg.preset!r} has no VAE architecture to train")
        self.vae = build_vae(preset.vae)
        if isinstance(self.vae, PatchVAE):  # closed form first: the whitened PCA of the training faces' patches
            self.eigenvalues = self.vae.fit_pca(self.pca_images())
        self.dists = None
        if self.cfg.perceptual_weight > 0:
            from ..networks.dists import load_dists

            self.dists = load_dists(self.cfg.dists_weights).to(self.device).eval().requires_grad_(False)
        opt, sched = self.make_optimizer(self.vae.parameters(), self.cfg.learning_rate)
        self.vae, self.opt, self.sched = self.accelerator.prepare(self.vae, opt, sched)

    def training_step(self, batch: dict) -> dict[str, float]:
        lq, hq = random_crop_pair(batch["lq"], batch["hq"], self.cfg.crop_size, self.generator(), 8)
        x = torch.cat([hq, lq]) if self.cfg.train_on_lq else hq
        with self.accelerator.accumulate(self.vae):
            with self.accelerator.autocast():
                dist = self.vae.encode(x).latent_dist
                # the posterior's mode, not a sample: from scratch, unit-variance posterior noise swamps the small
                # initial means and a few hundred CPU steps learn nothing; OSDFace reads latents with mode() too
                recon = self.vae.decode(dist.mode()).sample
                l1 = F.l1_loss(recon.float(), x.float())
                kl = dist.kl().mean() / x[0].numel()  # per pixel, as LDM normalises it
                loss = l1 + self.cfg.kl_weight * kl
                per = torch.zeros((), device=x.device)
                if self.dists is not None:
                    per = self.dists((recon.float() + 1) / 2, (x.float() + 1) / 2).mean()
                    loss = loss + self.cfg.perceptual_weight * per
            self.accelerator.backward(loss)
            self.clip(self.vae.parameters())
            self.opt.step()
            self.sched.step()
            self.opt.zero_grad(set_to_none=True)
        return {"loss": finite(loss), "l1": float(l1.detach()), "kl": float(kl.detach()), "perceptual": float(per.detach()),
                "lr": self.sched.get_last_lr()[0]}

    @torch.no_grad()
    def predict(self, lq: torch.Tensor) -> torch.Tensor:
        vae = self.accelerator.unwrap_model(self.vae)
        return vae.decode(vae.encode(lq).latent_dist.mode()).sample.clamp(-1, 1)

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        scores = super().validate()  # LQ → reconstruction of the LQ (shows what the encoder keeps)
        batch = self.validation_batch()
        from .trainer import psnr
        scores["val_psnr_hq_recon"] = float(psnr(self.predict(batch["hq"]), batch["hq"]).mean())
        return scores

    def pca_images(self):
        """Up to ``scaling_samples`` HQ training faces in [-1, 1], one at a time (what fit_pca reads)."""
        for i in range(min(self.cfg.scaling_samples, len(self.train_set))):
            yield self.train_set[i]["hq"][None] * 2 - 1

    @torch.no_grad()
    def measure_scaling_factor(self) -> float:
        """1 / std of the (unscaled) latent means of up to ``scaling_samples`` HQ training faces."""
        vae = self.accelerator.unwrap_model(self.vae).eval()
        zs = []
        n = min(self.cfg.scaling_samples, len(self.train_set))
        for i in range(n):
            hq = self.train_set[i]["hq"][None].to(self.device) * 2 - 1
            zs.append(vae.encode(hq).latent_dist.mode().float().flatten())
        return float(1.0 / torch.cat(zs).std())

    def export(self, folder: Path) -> Path:
        vae = self.accelerator.unwrap_model(self.vae)
        vae.register_to_config(scaling_factor=self.measure_scaling_factor())
        vae.save_pretrained(Path(folder) / "vae")
        return Path(folder)
