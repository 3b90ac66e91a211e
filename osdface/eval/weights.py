"""Finding a metric's weight files in ``--weights-dir``, and the one-line "unavailable" message when they are absent.

Every network metric reads its weights from a local folder (nothing is downloaded by this package). A metric whose
file is missing raises :class:`MetricUnavailable`; the evaluation lists it as ``unavailable: needs <file>, get it
from <where>`` and computes all the other metrics.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["MetricUnavailable", "find_weight", "load_state_dict_file"]


class MetricUnavailable(RuntimeError):
    """A metric cannot run here (missing weight file or package); ``str(err)`` is one line starting 'needs'."""


def find_weight(weights_dir: str | os.PathLike | None, filename: str, url: str, *, what: str = "") -> Path:
    """``weights_dir/filename`` (also ``weights_dir/*/filename``, one level down), or :class:`MetricUnavailable`
    saying ``needs <filename> (<what>) in <weights_dir>, get it from <url>``."""
    label = f"{filename}" + (f" ({what})" if what else "")
    if weights_dir is None:
        raise MetricUnavailable(f"needs {label} in --weights-dir (none given), get it from {url}")
    folder = Path(weights_dir).expanduser()
    candidates = [folder / filename]
    if folder.is_dir():
        candidates += sorted(p / filename for p in folder.iterdir() if p.is_dir())
    for path in candidates:
        if path.is_file():
            return path
    raise MetricUnavailable(f"needs {label} in {folder}, get it from {url}")


def load_state_dict_file(path: str | os.PathLike) -> dict:
    """A state dict from ``.safetensors`` or a PyTorch file read with ``torch.load(weights_only=True)`` (never a
    full unpickle). A checkpoint that wraps its weights in ``state_dict`` / ``params`` / ``model`` is unwrapped."""
    import torch

    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return dict(load_file(str(path)))
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - pickles with code, damaged files
        first = str(err).splitlines()[0][:160] if str(err) else ""
        raise MetricUnavailable(f"needs a readable weight file; {path} could not be read safely "
                                f"({type(err).__name__}: {first})") from None
    for key in ("state_dict", "params", "model"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise MetricUnavailable(f"needs a state dict; {path} holds a {type(obj).__name__}")
    return obj
