"""No-reference quality: MUSIQ, NIQE, CLIPIQA, MANIQA, through pyiqa (IQA-PyTorch), the field's maintained toolbox.

pyiqa is **not** a dependency of this project: pyiqa 0.1.16 installs ``opencv-python-headless`` 5.x, which writes the
same ``cv2/`` folder as this project's ``opencv-python`` 4.x (breaking one of them), plus tensorboard, datasets,
pandas, bitsandbytes and more. Use it in an environment of its own (``pip install pyiqa==0.1.16``, then reinstall
``opencv-python==4.14.0.94`` over it). Where pyiqa cannot be imported, these four metrics are listed as unavailable
and everything else is still computed.

Weights are never downloaded here: ``--weights-dir`` is used as pyiqa's cache folder (torch-hub layout), and every
file must be there before a metric is built. Metric (pyiqa name), files in ``--weights-dir``, source:

=========== ============ ========================================== ==============================================
column      pyiqa        file(s)                                     get it from
=========== ============ ========================================== ==============================================
MUSIQ       ``musiq``    ``pyiqa/musiq_koniq_ckpt-e95806b9.pth``     :data:`PYIQA_WEIGHTS_URL` + file name
NIQE        ``niqe``     ``pyiqa/niqe_modelparameters.mat``          :data:`PYIQA_WEIGHTS_URL` + file name
MANIQA      ``maniqa``   ``pyiqa/ckpt_koniq10k.pt`` and timm's        :data:`PYIQA_WEIGHTS_URL` + file name; the ViT
                         ``vit_base_patch8_224`` in the HF cache      with ``hf download timm/vit_base_patch8_224.
                                                                      augreg2_in21k_ft_in1k``
CLIPIQA     ``clipiqa``  ``clip/RN50.pt`` (OpenAI CLIP ResNet-50)     :data:`CLIP_RN50_URL`
=========== ============ ========================================== ==============================================

The column names follow the paper (docs/ARCHITECTURE.md §5); the pyiqa variants are the toolbox's defaults (MUSIQ and MANIQA
trained on KonIQ-10k, CLIPIQA with its fixed prompts, NIQE on the Y channel). MUSIQ, CLIPIQA and MANIQA: higher
is better; NIQE: lower is better. Not exercised by this project's tests (pyiqa cannot be installed beside it).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from ..weights import MissingWeightsError

__all__ = ["PYIQA_METRICS", "PYIQA_WEIGHTS_URL", "CLIP_RN50_URL", "PyiqaMetric", "required_files"]

PYIQA_WEIGHTS_URL = "https://huggingface.co/chaofengc/IQA-PyTorch-Weights/resolve/main/"
CLIP_RN50_URL = ("https://openaipublic.azureedge.net/clip/models/"
                 "afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762/RN50.pt")
# column → (pyiqa metric name, [(relative file, url)])
PYIQA_METRICS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "MUSIQ": ("musiq", [("pyiqa/musiq_koniq_ckpt-e95806b9.pth", PYIQA_WEIGHTS_URL + "musiq_koniq_ckpt-e95806b9.pth")]),
    "NIQE": ("niqe", [("pyiqa/niqe_modelparameters.mat", PYIQA_WEIGHTS_URL + "niqe_modelparameters.mat")]),
    "MANIQA": ("maniqa", [("pyiqa/ckpt_koniq10k.pt", PYIQA_WEIGHTS_URL + "ckpt_koniq10k.pt")]),
    "CLIPIQA": ("clipiqa", [("clip/RN50.pt", CLIP_RN50_URL)]),
}
PYIQA_INSTALL = ("pyiqa==0.1.16 (not a dependency: it clashes with opencv-python; see osdface/eval/no_reference.py"
                 ")")


def required_files(column: str, weights_dir) -> list[tuple[Path, str]]:
    """The (path, url) pairs that ``column`` needs under ``weights_dir``."""
    if column not in PYIQA_METRICS:
        raise ValueError(f"unknown no-reference metric {column!r}; choose from {sorted(PYIQA_METRICS)}")
    base = Path(weights_dir) if weights_dir is not None else Path("WEIGHTS_DIR")
    return [(base / rel, url) for rel, url in PYIQA_METRICS[column][1]]


@contextlib.contextmanager
def _pyiqa_cache(weights_dir: Path):
    """pyiqa (and its CLIP loader) read from torch-hub's folder: point it at ``weights_dir`` for the duration."""
    import pyiqa.utils.download_util as du

    old_hub, old_cache = torch.hub.get_dir(), du.DEFAULT_CACHE_DIR
    torch.hub.set_dir(str(weights_dir))
    du.DEFAULT_CACHE_DIR = str(weights_dir / "pyiqa")
    try:
        yield
    finally:
        torch.hub.set_dir(old_hub)
        du.DEFAULT_CACHE_DIR = old_cache


class PyiqaMetric:
    """``__call__(pred)`` → (N,) scores (float64) of (N, 3, H, W) images (uint8 or [0, 1])."""

    def __init__(self, column: str, weights_dir, device="cpu"):
        files = required_files(column, weights_dir)
        try:
            import pyiqa
        except Exception as err:  # noqa: BLE001 - ImportError, or a broken cv2 / dependency at import
            first = files[0]
            raise MissingWeightsError(f"needs {PYIQA_INSTALL} and {first[0].name}, get it from {first[1]} "
                                    f"(import pyiqa: {type(err).__name__})") from None
        if weights_dir is None:
            raise MissingWeightsError(f"needs {files[0][0].name} in --weights-dir (none given), get it from "
                                    f"{files[0][1]}")
        for path, url in files:
            if not path.is_file():
                raise MissingWeightsError(f"needs {path}, get it from {url}")
        self.name, self.device = column, torch.device(device)
        try:
            with _pyiqa_cache(Path(weights_dir)):
                self.model = pyiqa.create_metric(PYIQA_METRICS[column][0], device=self.device)
        except Exception as err:  # noqa: BLE001 - e.g. MANIQA's timm backbone absent from the HF cache
            raise MissingWeightsError(f"needs every weight file of pyiqa's {PYIQA_METRICS[column][0]} under "
                                    f"{weights_dir} (pyiqa failed: {type(err).__name__}: "
                                    f"{str(err).splitlines()[0][:160] if str(err) else ''})") from None

    @torch.no_grad()
    def __call__(self, pred: torch.Tensor) -> torch.Tensor:
        x = pred.float() / 255.0 if pred.dtype == torch.uint8 else pred.float()
        return self.model(x.to(self.device)).flatten().double().cpu()
