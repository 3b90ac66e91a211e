"""Finding, checking and loading every weight file this library reads: model folders, SD base components,
helper networks (ArcFace, DISTS, dlib's face ResNet, detectors) and metric weights.

One error type, :class:`MissingWeightsError`: its message is one line that says what is missing or unusable,
where it was looked for, and what to download or run. Nothing here silently falls back to other weights, and
nothing is downloaded unless a Hub id was given and the machine is online (``HF_HUB_OFFLINE=1`` forbids it).

Pickled files are only ever read with ``torch.load(weights_only=True)`` (:func:`load_state_dict_file`); a file
that references anything but tensors and plain containers is refused with the name of what it references, and
nothing in it is run.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path

CONFIG_NAME = "osdface_config.json"  # (configs.CONFIG_NAME; repeated here so this module imports nothing heavy)
BUNDLED_NANO = Path(__file__).resolve().parent / "assets" / "osdface-nano"
_OFFLINE_VALUES = {"1", "true", "yes", "on"}

__all__ = ["MissingWeightsError", "BUNDLED_NANO", "default_model", "offline", "looks_like_path", "first_line",
           "resolve_model_folder", "load_base_component", "find_weight", "locate_weight", "package_dir",
           "resolve_weight_file",
           "load_state_dict_file", "blocked_globals", "cache_dir", "unreadable_reason", "face_recognition_models_dir",
           "sha256_file"]


class MissingWeightsError(OSError):
    """Weights that are not on this machine, or a file that cannot be used; ``str(err)`` is one line naming
    what and where, and what to download or run."""


# ----------------------------------------------------------------------------------------------------- helpers
def offline(local_files_only: bool | None = None) -> bool:
    """``local_files_only`` when given, else whether ``$HF_HUB_OFFLINE`` is set."""
    if local_files_only is not None:
        return bool(local_files_only)
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _OFFLINE_VALUES


def looks_like_path(name: str) -> bool:
    """A Hub id is ``name`` or ``owner/name``; anything else (``./x``, ``/a/b``, ``a/b/c``, an existing file) is a
    path."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name or Path(name).expanduser().exists()


def first_line(err: BaseException, limit: int = 200) -> str:
    """``Type: first line of the message`` (for one-line error reports)."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:limit]}" if text else type(err).__name__


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def default_model(model: str | os.PathLike | None = None) -> str:
    """The model to use: ``model``, else ``$OSDFACE_MODEL``, else the bundled nano model folder."""
    return str(model or os.environ.get("OSDFACE_MODEL", "").strip() or BUNDLED_NANO)


# ------------------------------------------------------------------------------------------------ model folders
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
    if looks_like_path(name):
        raise MissingWeightsError(f"{name}: no such model folder.")
    from huggingface_hub import snapshot_download

    try:
        snapshot = snapshot_download(name, revision=revision, token=token, local_files_only=offline(local_files_only))
    except (OSError, ValueError) as err:
        raise MissingWeightsError(
            f"Could not get the OSDFace model '{name}' from the Hugging Face Hub ({first_line(err)}). On a machine "
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
    if looks_like_path(base_model):
        raise MissingWeightsError(f"Base model folder {base_model} does not exist. " + hint)
    try:
        return load(base_model, subfolder=subfolder, local_files_only=offline(local_files_only), token=token,
                    revision=revision, **kwargs)
    except (OSError, ValueError) as err:
        raise MissingWeightsError(
            f"Could not load {subfolder}/ of the base model '{base_model}' ({first_line(err)}). " + hint) from None


# ------------------------------------------------------------------------------------------ single weight files
def find_weight(weights_dir: str | os.PathLike | None, filename: str, url: str, *, what: str = "") -> Path:
    """``weights_dir/filename`` (also ``weights_dir/*/filename``, one level down), or :class:`MissingWeightsError`
    saying ``needs <filename> (<what>) in <weights_dir>, get it from <url>``."""
    label = f"{filename}" + (f" ({what})" if what else "")
    if weights_dir is None:
        raise MissingWeightsError(f"needs {label} in --weights-dir (none given), get it from {url}")
    folder = Path(weights_dir).expanduser()
    candidates = [folder / filename]
    if folder.is_dir():
        candidates += sorted(p / filename for p in folder.iterdir() if p.is_dir())
    for path in candidates:
        if path.is_file():
            return path
    raise MissingWeightsError(f"needs {label} in {folder}, get it from {url}")


def locate_weight(filename: str, weights_dir: str | os.PathLike | None = None,
                  extra_dirs: tuple[str | os.PathLike, ...] = ()) -> Path | None:
    """The first ``filename`` found in ``weights_dir``, ``$OSDFACE_WEIGHTS``, then ``extra_dirs`` (each folder
    itself, then its sub-folders one level down); None when there is none."""
    folders = [Path(d).expanduser() for d in (weights_dir, os.environ.get("OSDFACE_WEIGHTS"), *extra_dirs) if d]
    for folder in folders:
        if (folder / filename).is_file():
            return folder / filename
        if folder.is_dir():
            for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
                if (sub / filename).is_file():
                    return sub / filename
    return None


def package_dir(name: str) -> Path | None:
    """The folder of an installed package, found without importing it (None when it is not installed)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def resolve_weight_file(path_or_dir_or_repo: str | os.PathLike, names: tuple[str, ...], hint: str,
                        what: str = "weight") -> Path:
    """A weight file given as a file, a folder holding one of ``names`` (or a single weight file), or a Hub repo id
    holding one. ``hint`` (what to download) ends every error line."""
    name = str(path_or_dir_or_repo)
    path = Path(name).expanduser()

    def pick(folder: Path) -> Path | None:
        for n in names:
            if (folder / n).is_file():
                return folder / n
        found = sorted([*folder.glob("*.safetensors"), *folder.glob("*.pth"), *folder.glob("*.pt")])
        return found[0] if len(found) == 1 else None

    if path.is_file():
        return path
    if path.is_dir():
        found = pick(path)
        if found is None:
            raise MissingWeightsError(f"{path} holds no single {what} file ({', '.join(names)}): {hint}.")
        return found
    if looks_like_path(name):
        raise MissingWeightsError(f"{name}: no such file or folder; {hint}.")
    from huggingface_hub import snapshot_download

    try:
        snapshot = snapshot_download(name, allow_patterns=["*.pth", "*.pt", "*.safetensors"],
                                     local_files_only=offline(None))
    except (OSError, ValueError) as err:
        raise MissingWeightsError(f"Could not get {what} '{name}' from the Hugging Face Hub ({first_line(err)}); "
                                  f"{hint}.") from None
    found = pick(Path(snapshot))
    if found is None:
        raise MissingWeightsError(f"The Hub repo '{name}' holds no single {what} file; {hint}.")
    return found


def blocked_globals(path: Path) -> list[str]:
    """``module.name`` of every global a pickle file references that ``weights_only`` loading refuses."""
    import torch

    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:  # noqa: BLE001 - a legacy (non-zip) pickle cannot be inspected without unpickling
        return []


def unreadable_reason(path: Path, err: BaseException) -> str:
    """One line on why ``torch.load(weights_only=True)`` refused ``path``; for a blocked global, which one, and
    that nothing was run (the weights-only unpickler stops before calling anything)."""
    text = str(err)
    not_a_pickle = any(k in text.lower() for k in ("invalid load key", "truncated", "could not find mark", "eof",
                                                   "unsupported operand"))
    if (isinstance(err, pickle.UnpicklingError) or "weights_only" in text) and not not_a_pickle:
        blocked = blocked_globals(path) or re.findall(r"GLOBAL ([\w.]+)", text)[:1]
        if blocked:
            return (f"refused: the pickle references {', '.join(blocked[:4])} (not a tensor or a plain container); "
                    "nothing in the file was run")
        return "refused: not a pickle of tensors that PyTorch reads safely (weights_only); nothing in it was run"
    return f"truncated, or not a PyTorch / pickle file ({first_line(err, 100)})"


def load_state_dict_file(path: str | os.PathLike, *, hint: str = "") -> dict:
    """A state dict (name → tensor) from a ``.safetensors`` file, or a PyTorch/pickle file read with
    ``torch.load(weights_only=True)`` only. Weights wrapped in ``state_dict`` / ``params`` / ``model`` are unwrapped,
    a ``module.`` prefix on every key (DataParallel) is dropped, non-tensor entries are left out.

    Any problem (missing, empty, truncated, a blocked global, no tensors) → :class:`MissingWeightsError`, one line
    naming the file and the reason, followed by ``hint`` when given."""
    import torch

    path = Path(path).expanduser()
    tail = f"; {hint}" if hint else ""
    if not path.is_file():
        raise MissingWeightsError(f"{path}: no such file{tail}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path)))
        except Exception as err:  # noqa: BLE001 - a damaged header or data
            raise MissingWeightsError(f"{path}: not a readable safetensors file ({first_line(err, 120)}){tail}") \
                from None
    if path.stat().st_size == 0:
        raise MissingWeightsError(f"{path}: empty file{tail}")
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - pickles with code, damaged or foreign files
        raise MissingWeightsError(f"{path}: {unreadable_reason(path, err)}{tail}") from None
    for key in ("state_dict", "params", "model"):
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping):
        raise MissingWeightsError(f"{path}: holds a {type(obj).__name__}, not a state dict{tail}")
    state = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise MissingWeightsError(f"{path}: holds no tensors{tail}")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def cache_dir() -> Path:
    """Where converted weights are kept: ``$OSDFACE_HOME``, else ``$XDG_CACHE_HOME/osdface`` (``~/.cache/osdface``)."""
    if os.environ.get("OSDFACE_HOME"):
        return Path(os.environ["OSDFACE_HOME"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "osdface"


# --------------------------------------------------------------------------------------- packaged model files
def face_recognition_models_dir() -> Path:
    """The ``models/`` folder of the installed ``face-recognition-models`` package (dlib's CC0 model files),
    located without importing the package (its ``__init__`` needs pkg_resources, gone from recent setuptools)."""
    folder = package_dir("face_recognition_models")
    if folder is None:
        raise MissingWeightsError("dlib's face models are missing: pip install face-recognition-models==0.3.0")
    return folder / "models"
