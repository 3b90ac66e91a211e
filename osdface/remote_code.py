"""The files that let plain ``diffusers`` load an osdface model folder (``trust_remote_code=True``).

They are copies, byte for byte, of this package's own modules (listed in :data:`REMOTE_FILES`), written beside the
weights by ``OSDFacePipeline.save_pretrained`` / ``push_to_hub`` and ``osdface convert``: one source for the model's
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
PIPELINE_CLASS = ["pipeline_osdface", "OSDFaceDiffusersPipeline"]


def can_stand_alone(folder: Path) -> bool:
    """diffusers loads the components of a model_index.json from the folder itself: the UNet (without a separate
    LoRA) and the VAE must be stored there."""
    return ((folder / "unet" / "config.json").is_file() and (folder / "vae" / "config.json").is_file()
            and not (folder / "unet_lora").exists())


def write_remote_code(folder: str | Path, config) -> bool:
    """Write model_index.json and the module copies into ``folder`` (an osdface model folder, already saved).
    Returns False (and writes nothing) when the folder cannot stand alone (see :func:`can_stand_alone`)."""
    import diffusers

    folder = Path(folder)
    if not can_stand_alone(folder):
        (folder / "model_index.json").unlink(missing_ok=True)  # a previous save's, now describing other weights
        return False
    vae_config = json.loads((folder / "vae" / "config.json").read_text())
    patch_vae = vae_config.get("_class_name") == "PatchVAE"
    files = {**REMOTE_FILES, **(PATCH_VAE_FILE if patch_vae else {})}
    for name, source in files.items():
        tmp = folder / f"{name}.tmp"
        shutil.copyfile(MODELS / source, tmp)
        tmp.replace(folder / name)
    index = {
        "_class_name": PIPELINE_CLASS,
        "_diffusers_version": diffusers.__version__,
        "scheduler": ["diffusers", "DDIMScheduler"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["patch_vae", "PatchVAE"] if patch_vae else ["diffusers", "AutoencoderKL"],
        "vre": ["osdface_vre", "VisualRepresentationEmbedder"],
        "timestep": int(config.timestep),
        "latent_mode": config.latent_mode,
        "identity_skip": bool(config.identity_skip),
        "vre_prompt": bool(config.vre_prompt),
        "process_size": int(config.process_size),
    }
    tmp = folder / "model_index.json.tmp"
    tmp.write_text(json.dumps(index, indent=2) + "\n")
    tmp.replace(folder / "model_index.json")
    return True
