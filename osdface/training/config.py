"""Training configurations: small dataclasses and YAML files; the named recipes (``"nano"``, ``"sd21"``, ``"tiny"``)
live with the model presets in :data:`osdface.configs.PRESETS`.

    cfg = get_train_config("generator", "nano", data="../shared/data/faces", output_dir="runs/nano-gen")
    cfg.save_yaml("gen.yaml");  cfg = GeneratorTrainConfig.from_yaml("gen.yaml")

Three stages, three config classes sharing :class:`TrainConfig`:

- :class:`VAETrainConfig` (stage 0, only for presets without a pretrained SD base, i.e. nano/tiny): the VAE as a
  plain autoencoder, the stand-in for SD's pretrained VAE.
- :class:`VRETrainConfig` (stage 1, docs/ARCHITECTURE.md §2): HQ and LQ VQ autoencoders, then the association loss.
- :class:`GeneratorTrainConfig` (stage 2, docs/ARCHITECTURE.md §3): UNet LoRA (or the whole UNet when there is no pretrained base) +
  prompt projector with L2 + λ_per·EA-DISTS + λ_ID·identity + λ_G·latent GAN.

Loss weights the paper does not publish carry a comment with where the default comes from.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


def _coerce_numbers(cls, data: dict[str, Any]) -> dict[str, Any]:
    """YAML 1.1 reads ``1e-4`` (no dot) as a string: turn strings into numbers for float/int fields, or say which
    option has a value that is not a number."""
    out = dict(data)
    for f in dataclasses.fields(cls):
        kind = str(f.type).split("|")[0].strip()
        if f.name in out and isinstance(out[f.name], str) and kind in ("float", "int"):
            try:
                out[f.name] = float(out[f.name]) if kind == "float" else int(out[f.name])
            except ValueError:
                raise ValueError(f"{f.name}: {out[f.name]!r} is not a number") from None
    return out


@dataclass
class TrainConfig:
    preset: str = "nano"  # model preset (osdface.configs.PRESETS): architecture of what is trained
    data: str = ""  # a folder of HQ faces (degraded on the fly) or a prepared pairs folder (lq/ + hq/)
    output_dir: str = "runs/osdface"
    resolution: int = 512  # HQ faces are resized to resolution² before degrading (the paper: 512)
    crop_size: int | None = None  # train on random crops of each pair (CPU-friendly); None: whole faces
    val_fraction: float = 0.1  # osdface.data.dataset.split_files (hash of the file name, seed 0)
    split_seed: int = 0
    num_val_images: int = 4  # images in the validation grid
    degradation: dict = field(default_factory=dict)  # DegradationConfig overrides (default: docs/ARCHITECTURE.md §4)
    hflip: bool = True  # random horizontal flip of training faces (keeps the FFHQ alignment)
    # brightness/contrast/saturation jitter of training faces, each factor drawn from [1 - j, 1 + j] (0: off)
    color_jitter: float = 0.0
    max_steps: int = 1000
    batch_size: int = 4  # per process
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    adam_betas: tuple = (0.9, 0.999)
    warmup_steps: int = 0
    lr_schedule: str = "constant"  # "constant" | "cosine" (after the warm-up, down to min_lr_ratio·lr at max_steps)
    min_lr_ratio: float = 0.1
    max_grad_norm: float | None = 1.0
    mixed_precision: str = "no"  # "no" | "fp16" | "bf16" (accelerate)
    seed: int = 0
    num_workers: int = 1  # DataLoader workers (degradation runs in them)
    log_every: int = 10
    val_every: int = 200
    save_every: int = 500
    keep_checkpoints: int = 2
    log_with: str = "csv"  # "csv" | "tensorboard" (CSV is always written)

    # -- YAML --------------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    def save_yaml(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(yaml.safe_dump({"stage": self.stage, **self.to_dict()}, sort_keys=False))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        data = {k: v for k, v in data.items() if k != "stage"}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} option(s): {', '.join(unknown)}")
        for f in dataclasses.fields(cls):  # YAML has no tuples: restore the fields whose default is one
            if f.name in data and isinstance(data[f.name], list) and isinstance(f.default, tuple):
                data[f.name] = tuple(data[f.name])
        return cls(**_coerce_numbers(cls, data))

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TrainConfig":
        return cls.from_dict(yaml.safe_load(Path(path).read_text()) or {})

    def replace(self, **changes) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown {type(self).__name__} option(s): {', '.join(unknown)}")
        return dataclasses.replace(copy.deepcopy(self), **_coerce_numbers(type(self), changes))

    stage = "base"


@dataclass
class VAETrainConfig(TrainConfig):
    """Stage 0 (nano/tiny only): AutoencoderKL trained on HQ faces: L1 + λ_kl·KL (+ λ_per·DISTS when weights exist).
    At the end ``scaling_factor`` is set to 1 / std of the training latents (how SD chose 0.18215)."""

    kl_weight: float = 1e-6  # LDM's KL-f autoencoders use 1e-6: the latent stays nearly deterministic
    perceptual_weight: float = 0.0  # DISTS on the reconstruction; needs --dists-weights
    dists_weights: str | None = None
    scaling_samples: int = 64  # HQ images used to measure the latent std
    # also reconstruct the degraded LQ crops, so the encoder sees what stage 2 feeds it. False: HQ only, as SD's VAE
    # was trained (on clean images); the decoder's capacity then goes to faces, not to reproducing noise and JPEG blocks
    train_on_lq: bool = True
    stage = "vae"


@dataclass
class VRETrainConfig(TrainConfig):
    """Stage 1 (docs/ARCHITECTURE.md §2): HQ autoencoder self-reconstruction, then LQ, then both with the association loss."""

    hq_steps: int = 600  # phase 1: HQ autoencoder (paper: 50 epochs)
    lq_steps: int = 400  # phase 2: LQ autoencoder (paper: 10 epochs)
    assoc_steps: int = 400  # phase 3: both, + association (paper: 10 epochs)
    l1_weight: float = 1.0
    perceptual_weight: float = 0.0  # DISTS; the paper uses "perceptual" (weights unpublished); needs dists_weights
    dists_weights: str | None = None
    adversarial_weight: float = 0.1  # PatchGAN (taming's VQGAN uses an adaptive weight; 0.1 is a fixed stand-in)
    adversarial_start: int = 200  # steps of each phase before the adversarial term switches on (VQGAN: disc_start)
    vq_weight: float = 1.0  # codebook + 0.25·commitment (taming/RestoreFormer)
    association_weight: float = 1.0  # CLIP-style symmetric CE (docs/ARCHITECTURE.md §2); weight unpublished
    association_temperature: float = 0.07  # CLIP's initial temperature
    restart_dead_codes_every: int = 100  # 0: never (engineering choice against codebook collapse, not in the paper)
    disc_learning_rate: float = 1e-4
    disc_ndf: int = 64  # PatchGAN width (taming: 64)
    disc_layers: int = 3  # PatchGAN depth (taming: 3)

    stage = "vre"

    def __post_init__(self):
        self.max_steps = self.hq_steps + self.lq_steps + self.assoc_steps


@dataclass
class GeneratorTrainConfig(TrainConfig):
    """Stage 2 (docs/ARCHITECTURE.md §3). λ defaults: λ_per = 1, λ_ID = 0.1, λ_G = 0.8 from the one public third-party reproduction
    (the paper does not publish them); presets that run without pretrained perceptual/identity weights set those
    λ to 0 and say so in the log."""

    vre: str = ""  # stage-1 output folder (VisualRepresentationEmbedder.save_pretrained)
    base: str | None = None  # SD base (Hub id/folder with vae/ unet/ scheduler/) or a stage-0 VAE folder (nano)
    unet_training: str = "lora"  # "lora" (pretrained base, the paper) | "full" (no pretrained base: nano)
    lora_rank: int | None = None  # default: the preset's
    lora_alpha: float | None = None
    l2_weight: float = 1.0
    ea_dists_weight: float = 1.0  # λ_per
    dists_weights: str | None = None
    identity_weight: float = 0.1  # λ_ID
    identity_network: str = "arcface"  # "arcface" (needs downloaded weights) | "dlib" (offline, face-recognition-models)
    identity_weights: str | None = None  # ArcFace: file/folder/Hub id; dlib: a converted .safetensors (default: cache)
    # the edge-aware half of EA-DISTS without a network: mean |S(x̂) − S(x)| of the Sobel magnitude maps (§3's S)
    edge_weight: float = 0.0
    # a teacher in a high-frequency band only (osdface.losses.teacher): mean |band(x̂) − band(t)|, band = x − G_σ ⊛ x,
    # t a precomputed restoration of the same LQ (data: a pairs folder with teacher/, scripts/teacher_pool.py)
    teacher_weight: float = 0.0
    teacher_sigma: float = 1.5
    gan_weight: float = 0.8  # λ_G
    gan_start: int = 0  # generator steps before the GAN terms switch on
    gan_ramp: int = 0  # steps over which λ_G then rises linearly from 0 (a warm-up for the discriminator)
    # the GAN terms (generator and discriminator steps) every k-th step only, the generator's weighted by k: the same
    # average guidance for 1/k of the discriminator's cost (on a CPU it costs more than the nano generator itself)
    gan_every: int = 1
    gan_loss: str = "softplus"  # "softplus" (non-saturating, the paper's DMD2 loss) | "hinge"
    r1_weight: float = 0.0  # R1 penalty on real latents (γ/2 · |∇D|²), every r1_every discriminator steps (lazy R1)
    r1_every: int = 4
    disc_learning_rate: float = 1e-5
    disc_t_range: tuple = (10, 990)  # timesteps at which the discriminator sees noised latents
    ema_decay: float = 0.0  # EMA of the generator's trainable weights, used for validation and export (0: off)
    use_vre_prompt: bool = True  # False: an empty (zero) prompt instead of the VRE's (the ablation without prompts)
    train_projector: bool = True  # the prompt projector trains with the LoRA (the VRE encoder/dictionary are frozen)
    # Train the VAE decoder as well (not in the paper, whose SD VAE is frozen): for presets whose VAE was only
    # briefly trained by train-vae (nano), the decoder would otherwise cap the output quality. The encoder stays
    # frozen, so the latent space the UNet works in does not move.
    train_vae_decoder: bool = False
    stage = "generator"


STAGES = {"vae": VAETrainConfig, "vre": VRETrainConfig, "generator": GeneratorTrainConfig}

def get_train_config(stage: str, preset_or_yaml: str = "nano", **overrides) -> TrainConfig:
    """A stage's config from a preset name (its recipe in :data:`osdface.configs.PRESETS`) or a YAML file, with
    keyword overrides (None values are ignored)."""
    if stage not in STAGES:
        raise KeyError(f"unknown stage {stage!r}; choose one of {sorted(STAGES)}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    path = Path(preset_or_yaml)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such config file")
        data = yaml.safe_load(path.read_text()) or {}
        if data.get("stage", stage) != stage:
            raise ValueError(f"{path} is a {data['stage']!r} config, not {stage!r}")
        cfg = STAGES[stage].from_dict(data)
    else:
        from ..configs import PRESETS

        if preset_or_yaml not in PRESETS or stage not in PRESETS[preset_or_yaml].training:
            have = sorted(p for p, preset in PRESETS.items() if stage in preset.training)
            raise KeyError(f"no {stage!r} training preset {preset_or_yaml!r}; presets: {have}, or a YAML file")
        cfg = STAGES[stage](preset=preset_or_yaml, **PRESETS[preset_or_yaml].training[stage])
    cfg = cfg.replace(**overrides)
    if isinstance(cfg, VRETrainConfig):
        cfg.__post_init__()
    return cfg
