"""Stage 1 (docs/ARCHITECTURE.md §2): the Visual Representation Embedder, trained as DAEFR trains its dual encoders.

Two VQ autoencoders of the preset's VRE shape (:class:`~osdface.models.vq_autoencoder.VQAutoencoder`), each with an
image-space PatchGAN (:class:`~osdface.losses.PatchDiscriminator`, hinge loss):

    phase "hq"     (hq_steps)     HQ autoencoder reconstructs HQ faces     L1 + λ_per·DISTS + λ_adv·GAN + VQ
    phase "lq"     (lq_steps)     LQ autoencoder reconstructs LQ faces     (same terms)
    phase "assoc"  (assoc_steps)  both, + λ_assoc · CLIP-style association loss between their features of the same
                                  face (osdface.losses.association; B×B similarity matrix of the batch)

Codes that no feature picked during ``restart_dead_codes_every`` steps are moved onto current features, and each
autoencoder's dictionary starts from its first batch's features (an engineering choice against codebook collapse,
not in the paper). Output: ``output_dir/final/`` = the VRE (LQ encoder + quant_conv + dictionary + a fresh prompt
projector, trained in stage 2); the two autoencoders are kept in ``output_dir/autoencoders/``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..configs import get_preset
from ..losses.association import association_logits, association_loss
from ..losses.gan import discriminator_loss, generator_gan_loss
from ..losses.patch_discriminator import PatchDiscriminator
from ..models.vq_autoencoder import VQAutoencoder
from .config import VRETrainConfig
from .trainer import Trainer, finite, image_grid, psnr


class CodeUsage(nn.Module):
    """How often each code was picked since the last restart (a buffer, so checkpoints carry it)."""

    def __init__(self, n_codes: int):
        super().__init__()
        self.register_buffer("counts", torch.zeros(n_codes, dtype=torch.long))

    def add(self, indices: torch.Tensor) -> None:
        self.counts += torch.bincount(indices.flatten(), minlength=self.counts.numel()).to(self.counts.device)


class VRETrainer(Trainer):
    cfg: VRETrainConfig
    log_columns = ["loss", "l1", "perceptual", "vq", "adv_g", "adv_d", "association", "codes_used", "lr",
                   "images_per_s", "val_psnr_hq", "val_psnr_lq", "val_codes_lq", "val_assoc_acc"]

    def build(self) -> None:
        cfg = self.cfg
        vre_cfg = dict(get_preset(cfg.preset).vre)
        vre_cfg.pop("double_normalize_input", None)
        self.ae = {"hq": VQAutoencoder(**vre_cfg), "lq": VQAutoencoder(**vre_cfg)}
        self.disc = {k: PatchDiscriminator(ndf=cfg.disc_ndf, n_layers=cfg.disc_layers) for k in ("hq", "lq")}
        self.usage = {k: CodeUsage(vre_cfg["n_codes"]) for k in ("hq", "lq")}
        self.dists = None
        if cfg.perceptual_weight > 0:
            from ..networks.dists import load_dists
            self.dists = load_dists(cfg.dists_weights).to(self.device).eval().requires_grad_(False)
        acc = self.accelerator
        self.opt, self.sched, self.d_opt, self.d_sched = {}, {}, {}, {}
        for k in ("hq", "lq"):
            opt, sched = self.make_optimizer(self.ae[k].parameters(), cfg.learning_rate)
            d_opt, d_sched = self.make_optimizer(self.disc[k].parameters(), cfg.disc_learning_rate)
            self.ae[k], self.disc[k], self.opt[k], self.sched[k], self.d_opt[k], self.d_sched[k] = acc.prepare(
                self.ae[k], self.disc[k], opt, sched, d_opt, d_sched)
            self.usage[k].to(self.device)
            acc.register_for_checkpointing(self.usage[k])

    # -- phases -----------------------------------------------------------------------------------------------------
    def phase(self, step: int | None = None) -> tuple[str, int]:
        """(phase name, steps since the phase began) at optimizer step ``step``."""
        step = self.step if step is None else step
        c = self.cfg
        if step < c.hq_steps:
            return "hq", step
        if step < c.hq_steps + c.lq_steps:
            return "lq", step - c.hq_steps
        return "assoc", step - c.hq_steps - c.lq_steps

    def _recon_terms(self, k: str, x: torch.Tensor, adversarial: bool):
        ae = self.ae[k]
        out = ae(x)
        target = self.accelerator.unwrap_model(ae).preprocess(x)
        l1 = F.l1_loss(out.reconstruction.float(), target.float())
        per = torch.zeros((), device=x.device)
        if self.dists is not None:
            per = self.dists((out.reconstruction.float().clamp(-1, 1) + 1) / 2, (target.float() + 1) / 2).mean()
        adv = torch.zeros((), device=x.device)
        if adversarial:
            self.disc[k].requires_grad_(False)
            adv = generator_gan_loss(self.disc[k](out.reconstruction), kind="hinge")
            self.disc[k].requires_grad_(True)
        c = self.cfg
        loss = c.l1_weight * l1 + c.perceptual_weight * per + c.vq_weight * out.vq_loss + c.adversarial_weight * adv
        return loss, out, target, {"l1": l1, "perceptual": per, "vq": out.vq_loss, "adv_g": adv}

    def training_step(self, batch: dict) -> dict[str, float]:
        c, acc = self.cfg, self.accelerator
        name, in_phase = self.phase()
        keys = ["hq", "lq"] if name == "assoc" else [name]
        adversarial = c.adversarial_weight > 0 and in_phase >= c.adversarial_start
        models = [self.ae[k] for k in keys] + [self.disc[k] for k in keys]
        logs: dict[str, torch.Tensor] = {}
        with acc.accumulate(*models):
            if in_phase == 0 and name != "assoc" and self.micro_step % c.gradient_accumulation_steps == 0:
                self._init_codes(name, batch[name])
            with acc.autocast():
                total, outs, targets = 0.0, {}, {}
                for k in keys:
                    loss, outs[k], targets[k], terms = self._recon_terms(k, batch[k], adversarial)
                    total = total + loss
                    for t, v in terms.items():
                        logs[t] = logs.get(t, 0.0) + v.detach()
                assoc = torch.zeros((), device=self.device)
                if name == "assoc" and c.association_weight > 0:
                    assoc = association_loss(outs["hq"].features, outs["lq"].features, c.association_temperature)
                    total = total + c.association_weight * assoc
            acc.backward(total)
            for k in keys:
                self.clip(self.ae[k].parameters())
                self.opt[k].step()
                self.sched[k].step()
                self.opt[k].zero_grad(set_to_none=True)
                self.usage[k].add(outs[k].indices)
            d_total = torch.zeros((), device=self.device)
            if adversarial:
                for k in keys:
                    with acc.autocast():
                        d_loss = discriminator_loss(self.disc[k](targets[k]),
                                                    self.disc[k](outs[k].reconstruction.detach()), kind="hinge")
                    acc.backward(d_loss)
                    self.d_opt[k].step()
                    self.d_sched[k].step()
                    self.d_opt[k].zero_grad(set_to_none=True)
                    d_total = d_total + d_loss.detach()
        used = int((self.usage[keys[-1]].counts > 0).sum())  # codes picked since the last restart
        if acc.sync_gradients and c.restart_dead_codes_every and (in_phase + 1) % c.restart_dead_codes_every == 0:
            for k in keys:
                self._restart(k, outs[k].features)
        return {"loss": finite(total), **{t: float(v) for t, v in logs.items()}, "adv_d": float(d_total),
                "association": float(assoc.detach()), "codes_used": float(used),
                "lr": self.sched[keys[0]].get_last_lr()[0]}

    @torch.no_grad()
    def _init_codes(self, k: str, x: torch.Tensor) -> None:
        ae = self.accelerator.unwrap_model(self.ae[k])
        ae.quantize.restart_dead_codes(ae.features(x), torch.zeros_like(self.usage[k].counts),
                                       generator=self.generator(11))
        self.usage[k].counts.zero_()

    @torch.no_grad()
    def _restart(self, k: str, feats: torch.Tensor) -> None:
        ae = self.accelerator.unwrap_model(self.ae[k])
        counts = self.accelerator.reduce(self.usage[k].counts.clone(), reduction="sum")
        ae.quantize.restart_dead_codes(feats, counts, generator=self.generator(12))
        self.usage[k].counts.zero_()

    # -- validation and export --------------------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        batch = self.validation_batch()
        ae = {k: self.accelerator.unwrap_model(self.ae[k]).eval() for k in ("hq", "lq")}
        outs = {k: ae[k](batch[k]) for k in ("hq", "lq")}
        targets = {k: ae[k].preprocess(batch[k]) for k in ("hq", "lq")}
        for m in ae.values():
            m.train()
        rec = {k: outs[k].reconstruction.clamp(-1, 1) for k in ("hq", "lq")}
        logits = association_logits(outs["hq"].features, outs["lq"].features, 1.0)
        n = logits.shape[0]
        scores = {"val_psnr_hq": float(psnr(rec["hq"], targets["hq"]).mean()),
                  "val_psnr_lq": float(psnr(rec["lq"], targets["lq"]).mean()),
                  "val_codes_lq": float(outs["lq"].indices.unique().numel()),
                  "val_assoc_acc": float((logits.argmax(1) == torch.arange(n, device=logits.device)).float().mean())}
        if self.is_main:
            folder = self.out / "val"
            folder.mkdir(parents=True, exist_ok=True)
            rows = [[targets["lq"][i], rec["lq"][i], rec["hq"][i], targets["hq"][i]] for i in range(n)]
            image_grid(rows).save(folder / f"step_{self.step:07d}.png")  # LQ | LQ recon | HQ recon | HQ
        return scores

    def export(self, folder: Path) -> Path:
        folder = Path(folder)
        lq = self.accelerator.unwrap_model(self.ae["lq"])
        lq.to_vre().save_pretrained(folder)
        for k in ("hq", "lq"):
            self.accelerator.unwrap_model(self.ae[k]).save_pretrained(self.out / "autoencoders" / k)
        return folder
