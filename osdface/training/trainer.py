"""The base trainer: the loop, accelerate, checkpoints with exact resume, logs, validation grids, progress bar.

A stage subclasses :class:`Trainer` and fills in small methods (HYPIR-style):

    build_models()            the networks, what is frozen and what trains
    build_losses()            the loss terms (stage 2: a list of weighted terms; a new loss is one entry)
    build_optimizers()        optimizers and LR schedules, everything prepared with accelerate
    training_step(batch)      one micro-batch: forward, losses, backward, optimizer steps → dict of floats to log
                              (stage 2 splits it into generator_step and discriminator_step)
    predict(lq)               LQ batch in [-1, 1] → output in [-1, 1], for validation
    validate()                scores on the fixed validation batch (+ a grid image)
    export(folder)            the stage's artefact (a VAE, a VRE or a whole pipeline folder)

(``build()`` runs the three ``build_*`` hooks in order; the small stages 0 and 1 override ``build()`` at once.)

The same code runs on one CPU and, through ``accelerate launch``, on several GPUs: each process takes its shard of
every epoch's permutation (:mod:`osdface.training.data`), gradients are synchronised by accelerate, only the main
process logs and writes files. ``mixed_precision`` and ``gradient_accumulation_steps`` come from the config.

Exactness of resume: every random choice of a step (crops, discriminator noise, code restarts) draws from a generator
seeded by (seed, step), the data order from (seed, epoch), the degradations from (seed, epoch, index); accelerate's
``save_state`` stores the models, optimizers and LR schedulers. So stopping at step k and resuming reproduces step
k + 1 exactly (tests/test_training.py checks it).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from PIL import Image

from .config import TrainConfig
from .data import batches_per_epoch, build_datasets, epoch_loader
from .logger import MetricLogger

STATE_NAME = "trainer_state.json"


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (dB) of images in [-1, 1], computed on [0, 1]."""
    mse = ((x.float() - y.float()) / 2).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-12))


def image_grid(rows: list[list[torch.Tensor]]) -> Image.Image:
    """rows of (3, H, W) images in [-1, 1] (each row: LQ | output | HQ) → one PIL image, columns resized to the
    row's first image's height."""
    lines = []
    for row in rows:
        h = row[-1].shape[-1]
        cells = [torch.nn.functional.interpolate(im[None].float(), size=(h, h), mode="bilinear",
                                                 align_corners=False)[0] if im.shape[-1] != h else im.float()
                 for im in row]
        lines.append(torch.cat(cells, dim=-1))
    grid = (torch.cat(lines, dim=-2).clamp(-1, 1) * 127.5 + 127.5).round().to(torch.uint8)
    return Image.fromarray(grid.permute(1, 2, 0).cpu().numpy())


def cpu_processes() -> bool:
    """Whether this is one of several processes (``torchrun``, ``accelerate launch``) on a machine without a GPU:
    accelerate must then be told ``cpu=True`` to join them (gloo), or every process trains alone."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()


def step_generator(seed: int, step: int, salt: int = 0) -> torch.Generator:
    """A CPU generator for the random choices of one step (crops, noise): depends only on (seed, step, salt)."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step * 7919 + salt) % (2 ** 63))


def make_accelerator(mixed_precision: str = "no", gradient_accumulation_steps: int = 1) -> Accelerator:
    """An ``Accelerator`` with this precision, also when an earlier one in the same process had another: accelerate
    keeps one process-wide state and refuses a second precision, which would stop a notebook or script that trains
    stage 0 in fp32 and then stage 2 in bf16. In a single process that state is dropped and made anew; in a
    distributed run the refusal stands (every process must agree)."""
    from accelerate.state import AcceleratorState

    kwargs = dict(mixed_precision=mixed_precision, gradient_accumulation_steps=gradient_accumulation_steps,
                  cpu=cpu_processes())
    try:
        return Accelerator(**kwargs)
    except ValueError as err:
        if "already been initialized" not in str(err) or int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise
    AcceleratorState._reset_state()  # (the process-wide PartialState, devices and ranks, is kept)
    return Accelerator(**kwargs)


class Trainer:
    log_columns: list[str] = ["loss", "lr", "images_per_s"]

    def __init__(self, cfg: TrainConfig, accelerator: Accelerator | None = None):
        self.cfg = cfg
        self.accelerator = accelerator or make_accelerator(cfg.mixed_precision, cfg.gradient_accumulation_steps)
        set_seed(cfg.seed)  # model initialisation; per-step randomness uses step_generator
        if cfg.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"lr_schedule must be 'constant' or 'cosine', not {cfg.lr_schedule!r}")
        self.out = Path(cfg.output_dir)
        self.device = self.accelerator.device
        self.train_set, self.val_set = build_datasets(cfg)
        self.micro_step = 0  # micro-batches seen; the optimizer step is micro_step // gradient_accumulation_steps
        self.build()
        self._val_batch = self._train_batch = None

    # ------------------------------------------------------------------------------------------------ to override
    def build(self) -> None:
        self.build_models()
        self.build_losses()
        self.build_optimizers()

    def build_models(self) -> None:
        raise NotImplementedError

    def build_losses(self) -> None:
        """Nothing by default (a stage whose losses need no set-up)."""

    def build_optimizers(self) -> None:
        raise NotImplementedError

    def training_step(self, batch: dict) -> dict[str, float]:
        raise NotImplementedError

    def predict(self, lq: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def export(self, folder: Path) -> Path:
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------------ helpers
    @property
    def step(self) -> int:
        """Optimizer steps done."""
        return self.micro_step // self.cfg.gradient_accumulation_steps

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    def generator(self, salt: int = 0) -> torch.Generator:
        return step_generator(self.cfg.seed + self.accelerator.process_index * 7, self.micro_step, salt)

    def lr_lambda(self, step: int) -> float:
        """LR multiplier at ``step``: linear warm-up, then constant or a cosine down to ``min_lr_ratio`` at
        ``max_steps`` (a decaying LR settles an L2-trained model onto a lower loss at the end of a short run)."""
        cfg = self.cfg
        warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps > 0 else 1.0
        if cfg.lr_schedule == "constant":
            return warm
        progress = min(1.0, max(0.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)))
        return warm * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))

    def make_optimizer(self, params, lr: float):
        params = [p for p in params if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=lr, betas=tuple(self.cfg.adam_betas), weight_decay=self.cfg.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, self.lr_lambda)
        return opt, sched

    def clip(self, params) -> None:
        if self.cfg.max_grad_norm and self.accelerator.sync_gradients:
            self.accelerator.clip_grad_norm_([p for p in params if p.requires_grad], self.cfg.max_grad_norm)

    def to_device(self, batch: dict) -> dict:
        return {k: (v.to(self.device, non_blocking=True) * 2 - 1 if torch.is_tensor(v) else v)
                for k, v in batch.items()}  # images → [-1, 1]

    # ------------------------------------------------------------------------------------------------ checkpoints
    def checkpoint_dir(self, step: int) -> Path:
        return self.out / "checkpoints" / f"step_{step:07d}"

    def save_checkpoint(self) -> Path:
        folder = self.checkpoint_dir(self.step)
        self.accelerator.wait_for_everyone()
        self.accelerator.save_state(str(folder))
        if self.is_main:
            (folder / STATE_NAME).write_text(json.dumps({"micro_step": self.micro_step, "step": self.step,
                                                         "stage": self.cfg.stage}, indent=2))
            self.cfg.save_yaml(folder / "config.yaml")
            keep = self.cfg.keep_checkpoints
            old = sorted((self.out / "checkpoints").glob("step_*"))
            for stale in (old[:-keep] if keep and keep > 0 else []):
                shutil.rmtree(stale, ignore_errors=True)
        return folder

    def load_checkpoint(self, path: str | Path) -> None:
        path = Path(path)
        if str(path) == "latest":
            found = sorted((self.out / "checkpoints").glob("step_*"))
            if not found:
                raise FileNotFoundError(f"--resume latest: no checkpoint under {self.out / 'checkpoints'}")
            path = found[-1]
        if not (path / STATE_NAME).is_file():
            raise FileNotFoundError(f"{path}: not a training checkpoint (no {STATE_NAME})")
        state = json.loads((path / STATE_NAME).read_text())
        if state.get("stage") != self.cfg.stage:
            raise ValueError(f"{path} is a {state.get('stage')!r} checkpoint, not {self.cfg.stage!r}")
        self.accelerator.load_state(str(path))
        self.micro_step = int(state["micro_step"])
        self.on_resume()

    def on_resume(self) -> None:
        """Hook: re-derive anything that depends on the step (e.g. a training phase)."""

    # ------------------------------------------------------------------------------------------------ validation
    def validation_batch(self) -> dict:
        if self._val_batch is None:
            self._val_batch = self._fixed_batch(self.val_set)
        return self.to_device(self._val_batch)

    def training_batch(self) -> dict:
        """A fixed batch of training faces (their epoch-0 degradations): its PSNR beside the validation PSNR shows
        over-fitting (train rising while validation stalls or falls)."""
        if self._train_batch is None:
            self._train_batch = self._fixed_batch(self.train_set)
        return self.to_device(self._train_batch)

    def _fixed_batch(self, dataset) -> dict:
        """The first ``num_val_images`` items with their epoch-0 degradations (the dataset's epoch is restored)."""
        epoch = getattr(dataset, "epoch", None)
        if epoch is not None:
            dataset.set_epoch(0)
        try:
            n = min(self.cfg.num_val_images, len(dataset))
            items = [dataset[i] for i in range(n)]
        finally:
            if epoch is not None:
                dataset.set_epoch(epoch)
        return {k: torch.stack([it[k] for it in items]) for k in ("lq", "hq")}

    def _psnr_of(self, batch: dict) -> tuple[float, torch.Tensor]:
        out = self.predict(batch["lq"])
        hq = batch["hq"]
        if out.shape[-2:] != hq.shape[-2:]:  # a model working at its own resolution (the VRE autoencoders)
            hq = torch.nn.functional.interpolate(hq, size=out.shape[-2:], mode="bilinear", align_corners=False)
        return float(psnr(out, hq).mean()), out

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        batch = self.validation_batch()
        val_psnr, out = self._psnr_of(batch)
        scores = {"val_psnr": val_psnr, "train_psnr": self._psnr_of(self.training_batch())[0]}
        if self.is_main:
            folder = self.out / "val"
            folder.mkdir(parents=True, exist_ok=True)
            rows = [[batch["lq"][i], out[i], batch["hq"][i]] for i in range(out.shape[0])]
            image_grid(rows).save(folder / f"step_{self.step:07d}.png")
        return scores

    # ------------------------------------------------------------------------------------------------ the loop
    def train(self, resume: str | Path | None = None, max_steps: int | None = None) -> Path:
        """Train to ``cfg.max_steps`` (or stop early at ``max_steps``), checkpointing and validating as configured;
        then export the artefact to ``output_dir/final``. Returns that folder."""
        cfg, acc = self.cfg, self.accelerator
        if resume:
            self.load_checkpoint(resume)
        stop = min(cfg.max_steps, max_steps) if max_steps is not None else cfg.max_steps
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            cfg.save_yaml(self.out / "config.yaml")
        logger = MetricLogger(self.out, self.log_columns + ["val_psnr", "train_psnr"], cfg.log_with, self.is_main,
                              resume_step=self.step if resume else None)
        accum = cfg.gradient_accumulation_steps
        n_batches = batches_per_epoch(len(self.train_set), cfg.batch_size, acc.num_processes)
        if n_batches == 0:
            raise ValueError(f"{len(self.train_set)} training images are fewer than one batch "
                             f"({cfg.batch_size} x {acc.num_processes} processes)")
        from tqdm.auto import tqdm

        bar = tqdm(total=stop, initial=self.step, disable=not self.is_main, unit="step", dynamic_ncols=True)
        window, t0, seen = {}, time.perf_counter(), 0
        while self.step < stop:
            epoch, offset = divmod(self.micro_step, n_batches)
            for batch in epoch_loader(self.train_set, cfg, epoch, acc.process_index, acc.num_processes, offset):
                logs = self.training_step(self.to_device(batch))
                self.micro_step += 1
                seen += batch["hq"].shape[0] * acc.num_processes
                for k, v in logs.items():
                    window.setdefault(k, []).append(v)
                if self.micro_step % accum:
                    continue
                bar.update(1)
                step = self.step
                if cfg.log_every and step % cfg.log_every == 0:
                    dt = time.perf_counter() - t0
                    values = {k: sum(v) / len(v) for k, v in window.items()}
                    values["images_per_s"] = seen / dt if dt > 0 else float("nan")
                    logger.log(step, values)
                    bar.set_postfix({k: f"{v:.4g}" for k, v in values.items() if k in ("loss", "images_per_s")})
                    window, t0, seen = {}, time.perf_counter(), 0
                if cfg.val_every and step % cfg.val_every == 0:
                    scores = self.validate()
                    logger.log(step, scores)
                    bar.write(f"step {step}: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()))
                if cfg.save_every and step % cfg.save_every == 0:
                    self.save_checkpoint()
                if self.step >= stop:
                    break
        bar.close()
        final = self.out / "final"
        acc.wait_for_everyone()
        if self.step >= cfg.max_steps:
            if cfg.val_every and (self.step % cfg.val_every or self.step == 0):  # (step 0: a closed-form stage)
                logger.log(self.step, self.validate())
            if self.is_main:
                self.export(final)
        else:  # stopped early: a checkpoint to resume from
            self.save_checkpoint()
        logger.close()
        return final


def finite(x: torch.Tensor) -> float:
    v = float(x.detach())
    if not math.isfinite(v):
        raise FloatingPointError(f"non-finite loss ({v}); lower the learning rate or check the data")
    return v
