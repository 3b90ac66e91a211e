"""Convert the authors' released OSDFace files into an osdface model folder (safetensors, Hub-ready).

The release has three files:

- ``associate_2.ckpt``: a PyTorch-Lightning pickle; ``state_dict`` holds the HQ branch (``vqvae.``) and the LQ branch
  (``vqvae_LQ.``). Only the LQ encoder, ``quant_conv`` and the codebook are used at inference.
- ``embedding_change_weights.pth``: a pickled state dict of the prompt projector (``conv1``, ``conv2``).
- ``pytorch_lora_weights.safetensors``: the UNet LoRA (PEFT or older diffusers naming, linear and conv).

Pickles are read with ``torch.load(weights_only=True)`` only. A Lightning checkpoint that also holds other objects
(hyper-parameters as ``argparse.Namespace``, callbacks, …) is read with those classes replaced by inert stand-ins
that store their arguments and run no code, so nothing in the file is ever executed. Every key and shape is checked
against the released layout; any mismatch fails with the list of problems.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping

import torch
from diffusers import DDIMScheduler, UNet2DConditionModel

from .configs import DEFAULT_SD21_BASE, SD21_SCHEDULER, SD21_UNET, SD21_VAE, get_preset
from .model_card import make_model_card
from .models import VisualRepresentationEmbedder
from .models import lora as lora_utils
from .models.lora import write_lora_folder
from .remote_code import write_remote_code
from .weights import (MissingWeightsError, blocked_globals, load_base_component, load_state_dict_file,
                      sha256_file, unreadable_reason)

log = logging.getLogger("osdface.convert")

LQ_PREFIX = "vqvae_LQ."
UNUSED_LQ_PREFIXES = ("decoder.", "post_quant_conv.")  # the LQ branch's decoder side: not used at inference
OFFICIAL_LICENSE = dict(license_name="osdface-authors-terms", license_link="https://github.com/jkwang28/OSDFace")


class ConversionError(ValueError):
    """The input files do not match the released layout; the message lists every problem."""


# ------------------------------------------------------------------------------------------------ safe loading
# Modules whose classes a training checkpoint stores beside its weights (hyper-parameters, callbacks, loop state).
# Only classes from these become inert stand-ins; any other global (os.system, builtins.eval, ...) is refused.
CHECKPOINT_EXTRA_MODULES = ("argparse", "pytorch_lightning", "lightning", "lightning_fabric", "omegaconf",
                            "collections", "typing", "pathlib", "numpy", "torch", "datetime", "enum")
_INERT_BUILTINS = ("set", "frozenset", "slice", "complex", "range", "bytearray")


class _InertObject:
    """Stand-in for a non-tensor class in a checkpoint: keeps its arguments and state, executes nothing."""

    def __init__(self, *args, **kwargs):
        self._args, self._kwargs = args, kwargs

    def __setstate__(self, state):
        self._state = state

    def __repr__(self):
        return f"<skipped {type(self).__qualname__}>"


def _is_checkpoint_extra(name: str) -> bool:
    module, _, attr = name.rpartition(".")
    if module == "builtins":
        return attr in _INERT_BUILTINS
    return module.split(".")[0] in CHECKPOINT_EXTRA_MODULES and attr[:1].isupper()  # a class, not a function


def load_pickle_safely(path: str | Path) -> object:
    """``torch.load(weights_only=True)``. Classes of training frameworks stored beside the weights (Lightning's
    hyper-parameters, ``argparse.Namespace``, ...) become inert stand-ins; any other global is refused with one
    line (:class:`~osdface.weights.MissingWeightsError`) and nothing in the file is run."""
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise MissingWeightsError(f"{path}: no such file") from None
    except Exception as first_error:  # noqa: BLE001 - blocked globals, truncated or foreign files
        names = blocked_globals(path)
        if not names or not all(_is_checkpoint_extra(n) for n in names):
            raise MissingWeightsError(f"{path}: {unreadable_reason(path, first_error)}") from None
    stand_ins = [(type(name.rsplit(".", 1)[-1], (_InertObject,), {"__module__": "osdface.convert.skipped"}), name)
                 for name in names]
    with torch.serialization.safe_globals(stand_ins):
        obj = torch.load(path, map_location="cpu", weights_only=True)
    log.info("%s: skipped non-tensor objects without running them: %s", path.name, ", ".join(names))
    return obj


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a released file: safetensors, a pickled state dict, or a Lightning checkpoint's
    ``state_dict`` (read with :func:`load_pickle_safely`)."""
    path = Path(path)
    if path.suffix == ".safetensors" or not path.is_file():
        return load_state_dict_file(path)
    obj = load_pickle_safely(path)
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise MissingWeightsError(f"{path}: holds a {type(obj).__name__}, not a state dict")
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise MissingWeightsError(f"{path}: holds no tensors")
    return tensors


# ----------------------------------------------------------------------------------------------------- checking
def expected_vre_layout() -> dict[str, tuple[int, ...]]:
    """Key → shape of the released VRE (encoder, quant_conv, codebook) and projector (``projector.conv1`` …)."""
    with torch.device("meta"):
        model = VisualRepresentationEmbedder(**get_preset("sd21").vre)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def check_layout(state: Mapping[str, torch.Tensor], expected: Mapping[str, tuple], what: str) -> None:
    problems = [f"missing key {k} {tuple(s)}" for k, s in expected.items() if k not in state]
    problems += [f"unexpected key {k} {tuple(v.shape)}" for k, v in state.items() if k not in expected]
    problems += [f"wrong shape for {k}: {tuple(v.shape)}, expected {tuple(expected[k])}"
                 for k, v in state.items() if k in expected and tuple(v.shape) != tuple(expected[k])]
    if problems:
        shown = "\n  ".join(problems[:40]) + (f"\n  … and {len(problems) - 40} more" if len(problems) > 40 else "")
        raise ConversionError(f"{what} does not match the released layout ({len(problems)} problem(s)):\n  {shown}")


def extract_lq_branch(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The LQ encoder + quant_conv + codebook, prefix stripped (a checkpoint without prefixes is taken as is)."""
    if not any(k.startswith(LQ_PREFIX) for k in state):
        return dict(state)
    out = {}
    for key, value in state.items():
        if key.startswith(LQ_PREFIX):
            name = key[len(LQ_PREFIX):]
            if not name.startswith(UNUSED_LQ_PREFIXES):
                out[name] = value
    return out


def _base_unet_skeleton(base: str, local_files_only: bool | None) -> torch.nn.Module:
    """The base UNet's architecture (meta tensors, no weights) to check the LoRA's module names and shapes."""
    try:
        unet_config = load_base_component(UNet2DConditionModel, base, "unet", local_files_only=local_files_only,
                                          method="load_config")
    except MissingWeightsError as err:
        log.warning("%s\nChecking the LoRA against the built-in SD 2.1-base UNet architecture instead.", err)
        unet_config = dict(SD21_UNET)
    with torch.device("meta"):
        return UNet2DConditionModel.from_config(unet_config)


# ------------------------------------------------------------------------------------------------- the base's id
def recognise_base_id(folder: str | Path) -> tuple[str | None, str]:
    """The Hub id of a local SD base folder, and how it was found: a Hugging Face cache snapshot
    (``.../models--OWNER--NAME/snapshots/REV``) names its repo; a folder whose UNet and VAE have SD 2.1-base's
    architecture is taken for the default SD 2.1-base mirror. ``(None, reason)`` otherwise."""
    import json

    folder = Path(folder).resolve()
    for parent in (folder, *folder.parents):
        if parent.name.startswith("models--") and (parent / "snapshots").is_dir():
            owner_name = parent.name[len("models--"):].split("--", 1)
            if len(owner_name) == 2:
                return "/".join(owner_name), "a Hugging Face cache snapshot of that repo"
    try:
        unet = json.loads((folder / "unet" / "config.json").read_text())
        vae = json.loads((folder / "vae" / "config.json").read_text())
    except (OSError, ValueError):
        return None, "no unet/config.json and vae/config.json to recognise"
    same = all(json.dumps(unet.get(k)) == json.dumps(list(v) if isinstance(v, tuple) else v)
               for k, v in SD21_UNET.items()) and \
        all(json.dumps(vae.get(k)) == json.dumps(list(v) if isinstance(v, tuple) else v) for k, v in SD21_VAE.items())
    if same:
        return DEFAULT_SD21_BASE, "its UNet and VAE have SD 2.1-base's architecture"
    return None, "its architecture is not SD 2.1-base's"


# ---------------------------------------------------------------------------------------------------- converting
def convert_official(vre_ckpt: str | Path, projector: str | Path, lora: str | Path, out: str | Path, *,
                     base_model: str = DEFAULT_SD21_BASE, base_model_id: str | None = None,
                     lora_alpha: float | None = None, local_files_only: bool | None = None,
                     overwrite: bool = False) -> Path:
    """Write an osdface model folder from the authors' three files; returns the folder.

    ``base_model``: SD 2.1-base as a Hub id or a local folder. A local folder is used to check and load the model
    on this machine; the folder records the base by its Hub id (``base_model_id``, else :func:`recognise_base_id`),
    so that a copy pushed to the Hub loads anywhere. An unrecognised folder without ``base_model_id`` is recorded as
    it is, and publishing it is refused until its Hub id is set."""
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ConversionError(f"{out} exists and is not empty; choose a new folder (or pass --overwrite).")

    vre_state = extract_lq_branch(read_state_dict(vre_ckpt))
    proj_state = {f"projector.{k}": v for k, v in read_state_dict(projector).items()}
    expected = expected_vre_layout()
    check_layout(vre_state, {k: s for k, s in expected.items() if not k.startswith("projector.")},
                 f"{Path(vre_ckpt).name} (LQ branch)")
    check_layout(proj_state, {k: s for k, s in expected.items() if k.startswith("projector.")}, Path(projector).name)

    lora_weights, lora_alphas = lora_utils.normalize_lora_state_dict(read_state_dict(lora))
    lora_config = lora_utils.lora_config_for(lora_weights, lora_alpha, lora_alphas)
    problems = lora_utils.check_against_unet(_base_unet_skeleton(base_model, local_files_only), lora_weights)
    if problems:
        raise ConversionError(f"{Path(lora).name} does not fit the base UNet ({len(problems)} problem(s)):\n  "
                              + "\n  ".join(problems[:40]))

    base_id, base_local = base_model, None
    if Path(base_model).expanduser().is_dir():
        base_local = str(Path(base_model).expanduser().resolve())
        base_id, how = (base_model_id, "given") if base_model_id else recognise_base_id(base_local)
        if base_id is None:
            log.warning("recorded the base as the local folder %s (%s): pass --base-id OWNER/NAME to name its Hub "
                        "repo, or the model cannot be pushed to the Hub without include_base", base_local, how)
            base_id, base_local = base_local, None
        else:
            log.info("base model recorded as %s (%s); loaded from %s on this machine", base_id, how, base_local)
    elif base_model_id:
        base_id = base_model_id
    config = get_preset("sd21", base_model=base_id, base_model_local=base_local, lora_rank=lora_config.r,
                        lora_alpha=lora_config.lora_alpha, **OFFICIAL_LICENSE)
    config.vre["double_normalize_input"] = True  # the released weights expect the [-3, 1] input quirk
    config.unet = config.vae = None  # real weights come from the base model
    config.extra = {
        "title": "OSDFace (the authors' weights, converted)",
        "source": {Path(p).name: sha256_file(p) for p in (vre_ckpt, projector, lora)},
        "card": {"Weights": "Converted from the authors' release (associate_2.ckpt, embedding_change_weights.pth, "
                            "pytorch_lora_weights.safetensors) with `osdface convert`; the authors' terms apply."},
    }
    vre = VisualRepresentationEmbedder(**config.vre)
    vre.load_state_dict({**vre_state, **proj_state}, strict=True)
    try:
        scheduler = load_base_component(DDIMScheduler, base_model, "scheduler", local_files_only=local_files_only)
    except MissingWeightsError:
        log.warning("base scheduler config not reachable; writing SD 2.1-base's DDIM config (the same numbers)")
        scheduler = DDIMScheduler(**SD21_SCHEDULER)

    out.mkdir(parents=True, exist_ok=True)
    config.save(out)
    vre.save_pretrained(out / "vre")
    scheduler.save_pretrained(out / "scheduler")
    write_lora_folder(out / "unet_lora", lora_weights, lora_config)
    plain_diffusers = write_remote_code(out, config)  # model_index.json + code: DiffusionPipeline loads it too
    make_model_card(config, unet_stored="lora", base_stored=False, repo_or_folder=str(out),
                    license_name=config.license_name, license_link=config.license_link,
                    plain_diffusers=plain_diffusers).save(out / "README.md")
    log.info("wrote %s (VRE %d tensors, projector %d, LoRA %d modules, rank %d, alpha %g)", out, len(vre_state),
             len(proj_state), len(lora_utils.lora_modules(lora_weights)), lora_config.r, lora_config.lora_alpha)
    return out
