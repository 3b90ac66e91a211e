"""Finding weights: a local folder or a Hugging Face Hub id, with one clear error when they are not to be had.

Nothing here silently falls back to other weights. When a model or base model is missing, :class:`MissingWeightsError`
says what to download and where to put it.
"""

from __future__ import annotations

import os
from pathlib import Path

from huggingface_hub import snapshot_download

from .configs import CONFIG_NAME

_OFFLINE_VALUES = {"1", "true", "yes", "on"}


class MissingWeightsError(OSError):
    """Weights that are not on this machine; the message names what to download and where."""


def offline(local_files_only: bool | None) -> bool:
    if local_files_only is not None:
        return bool(local_files_only)
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _OFFLINE_VALUES


def _looks_like_path(name: str) -> bool:
    """A Hub id is ``name`` or ``owner/name``; anything else (``./x``, ``/a/b``, ``a/b/c``, an existing file) is a path."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name or Path(name).expanduser().exists()


def _reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:200]}" if text else type(err).__name__


def resolve_model_folder(path_or_repo_id: str | os.PathLike, *, revision: str | None = None, token=None,
                         local_files_only: bool | None = None) -> Path:
    """A local OSDFace model folder, or the local snapshot of a Hub repo holding one."""
    name = str(path_or_repo_id)
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / CONFIG_NAME).is_file():
            raise MissingWeightsError(
                f"{path} is not an OSDFace model folder (it has no {CONFIG_NAME}). Make one with "
                "`osdface convert ...` from the authors' files, or pass a Hub id such as USER/osdface-sd21.")
        return path
    if _looks_like_path(name):
        raise MissingWeightsError(f"{name}: no such model folder.")
    try:
        snapshot = snapshot_download(name, revision=revision, token=token, local_files_only=offline(local_files_only))
    except (OSError, ValueError) as err:
        raise MissingWeightsError(
            f"Could not get the OSDFace model '{name}' from the Hugging Face Hub ({_reason(err)}). On a machine "
            f"with internet run `hf download {name} --local-dir ./{name.split('/')[-1]}` and pass that folder "
            "instead of the id.") from None
    if not (Path(snapshot) / CONFIG_NAME).is_file():
        raise MissingWeightsError(f"The Hub repo '{name}' holds no {CONFIG_NAME}: it is not an OSDFace model.")
    return Path(snapshot)


def load_base_component(cls, base_model: str, subfolder: str, *, local_files_only: bool | None = None,
                        token=None, revision: str | None = None, method: str = "from_pretrained", **kwargs):
    """``cls.from_pretrained(base_model, subfolder=...)`` for the SD base (vae/unet/scheduler), clear when missing.

    ``method="load_config"`` reads only the component's config (no weights)."""
    load = getattr(cls, method)
    hint = (f"Download the base model once on a machine with internet: `hf download {base_model} --include "
            "'vae/*' 'unet/*' 'scheduler/*' --local-dir ./sd21-base`, then pass it as a folder (CLI: --base-model "
            "./sd21-base; Python: base_model='./sd21-base').")
    local = Path(base_model).expanduser()
    if local.is_dir():
        if not (local / subfolder).is_dir():
            raise MissingWeightsError(f"The base model folder {local} has no {subfolder}/ (it needs vae/, unet/ "
                                      "and scheduler/ as in SD 2.1-base).")
        return load(local, subfolder=subfolder, **kwargs)
    if _looks_like_path(base_model):
        raise MissingWeightsError(f"Base model folder {base_model} does not exist. " + hint)
    try:
        return load(base_model, subfolder=subfolder, local_files_only=offline(local_files_only), token=token,
                    revision=revision, **kwargs)
    except (OSError, ValueError) as err:
        raise MissingWeightsError(
            f"Could not load {subfolder}/ of the base model '{base_model}' ({_reason(err)}). " + hint) from None
