"""The files that let plain ``diffusers`` load an osdface model folder (``trust_remote_code=True``).

They are copies, byte for byte, of this package's own modules (listed in :data:`REMOTE_FILES`), written beside the
weights by ``OSDFacePipeline.save_pretrained`` / ``push_to_hub`` and ``osdface convert`` (also for a UNet stored as
a LoRA on a referenced SD base: the remote pipeline loads the base itself): one source for the model's
code, whichever library loads it. Those modules import only torch, numpy, PIL, diffusers and each other.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

MODELS = Path(__file__).resolve().parent / "models"

# file in the model folder → the package module it copies. diffusers' loader puts every local module of a model
# into one flat namespace, so the names must differ across folders (the VRE's module is ``osdface_vre``).
REMOTE_FILES = {
    "pipeline_osdface.py": "diffusers_pipeline.py",
    "one_step.py": "one_step.py",
    "tiled_vae.py": "tiled_vae.py",
    "vre/osdface_vre.py": "vre.py",
    "vre/codebook.py": "codebook.py",
    "vre/prompt_projector.py": "prompt_projector.py",
    "vre/vq_encoder.py": "vq_encoder.py",
}
PATCH_VAE_FILE = {"vae/patch_vae.py": "patch_vae.py"}
LORA_FILE = {"unet_lora/osdface_lora.py": "diffusers_lora.py"}
PIPELINE_CLASS = ["pipeline_osdface", "OSDFaceDiffusersPipeline"]


def can_stand_alone(folder: Path, config) -> bool:
    """diffusers loads the components of a model_index.json from the folder; the remote pipeline loads a UNet or
    VAE the folder does not store from the base model the config names. One of the two must be there."""
    stored = (folder / "unet" / "config.json").is_file() and (folder / "vae" / "config.json").is_file()
    return stored or config.base_model is not None


def write_remote_code(folder: str | Path, config) -> bool:
    """Write model_index.json and the module copies into ``folder`` (an osdface model folder, already saved).
    Returns False (and writes nothing) when the folder cannot stand alone (see :func:`can_stand_alone`)."""
    import diffusers

    folder = Path(folder)
    if not can_stand_alone(folder, config):
        (folder / "model_index.json").unlink(missing_ok=True)  # a previous save's, now describing other weights
        return False
    has = {sub: (folder / sub / "config.json").is_file() for sub in ("unet", "vae")}
    lora = (folder / "unet_lora").is_dir()
    vae_config = json.loads((folder / "vae" / "config.json").read_text()) if has["vae"] else {}
    patch_vae = vae_config.get("_class_name") == "PatchVAE"
    files = {**REMOTE_FILES, **(PATCH_VAE_FILE if patch_vae else {}), **(LORA_FILE if lora else {})}
    for name, source in files.items():
        tmp = folder / f"{name}.tmp"
        shutil.copyfile(MODELS / source, tmp)
        tmp.replace(folder / name)
    index = {
        "_class_name": PIPELINE_CLASS,
        "_diffusers_version": diffusers.__version__,
        "scheduler": ["diffusers", "DDIMScheduler"],
        "unet": ["diffusers", "UNet2DConditionModel"] if has["unet"] else [None, None],
        "vae": (["patch_vae", "PatchVAE"] if patch_vae else ["diffusers", "AutoencoderKL"]) if has["vae"]
        else [None, None],
        "unet_lora": ["osdface_lora", "UNetLoRA"] if lora else [None, None],
        "vre": ["osdface_vre", "VisualRepresentationEmbedder"],
        "timestep": int(config.timestep),
        "latent_mode": config.latent_mode,
        "identity_skip": bool(config.identity_skip),
        "vre_prompt": bool(config.vre_prompt),
        "process_size": int(config.process_size),
        # where the remote pipeline finds what the folder does not store (as OSDFacePipeline.from_pretrained does)
        "base_model": None if all(has.values()) else config.base_model,
        "base_model_local": None if all(has.values()) else config.base_model_local,
    }
    tmp = folder / "model_index.json.tmp"
    tmp.write_text(json.dumps(index, indent=2) + "\n")
    tmp.replace(folder / "model_index.json")
    return True
