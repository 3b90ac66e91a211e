"""The identity loss of OSDFace stage 2 (OSDFACE.md §3): L_ID = 1 − cos(emb(x̂), emb(x_GT)).

The paper does not say which face-recognition network it used. We use the ArcFace IR-SE-50
(:class:`osdface.losses.arcface.ArcFaceIRSE`) because its weights can be downloaded by anyone and load safely:
facexlib's ``recognition_arcface_ir_se50.pth`` (:data:`ARCFACE_URL`) or TreB1eN's ``model_ir_se50.pth`` (same
layout). Both are plain pickled state dicts, read with ``torch.load(weights_only=True)``; a safetensors copy works too.

From an FFHQ-aligned face to the network's 112² input (:meth:`IdentityLoss.embed`): FFHQ crops are much looser
than ArcFace's 112² alignment (they include hair, ears, neck and background), so we take the fixed centre region
rows 35/256 … 223/256, columns 32/256 … 220/256 of the side (for 512²: rows 70:446, columns 64:440, a 376² square
that holds the face from brows to chin), as pSp / e4e's ID loss does on FFHQ-aligned images, and area-average it
to 112² (bilinear when the region is smaller than 112²). Fixed crop + resize keep the loss differentiable and
cheap; no landmark detection runs during training.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .arcface import ArcFaceIRSE

__all__ = ["IdentityLoss", "load_identity_network", "ARCFACE_URL", "ARCFACE_FILES", "FFHQ_ARCFACE_CROP",
           "crop_for_arcface"]

ARCFACE_URL = "https://github.com/xinntao/facexlib/releases/download/v0.1.0/recognition_arcface_ir_se50.pth"
ARCFACE_FILES = ("recognition_arcface_ir_se50.pth", "model_ir_se50.pth", "arcface_ir_se50.safetensors")
# (top, bottom, left, right) as fractions of the side of an FFHQ-aligned face
FFHQ_ARCFACE_CROP = (35 / 256, 223 / 256, 32 / 256, 220 / 256)
_HINT = (f"download facexlib's ArcFace IR-SE-50 weights recognition_arcface_ir_se50.pth ({ARCFACE_URL}; "
         "TreB1eN/InsightFace_Pytorch's model_ir_se50.pth has the same layout) and pass its path or folder "
         "(or set $OSDFACE_ARCFACE); to train without the identity loss set its weight λ_ID to 0")


def crop_for_arcface(x: torch.Tensor, size: int = 112, crop=FFHQ_ARCFACE_CROP) -> torch.Tensor:
    """(B, 3, S, S) FFHQ-aligned faces → (B, 3, size, size): the fixed face region, resized (differentiable)."""
    if x.ndim != 4 or x.shape[1] != 3 or not x.is_floating_point():
        raise ValueError(f"expected float (B, 3, S, S) face images in [-1, 1], got {tuple(x.shape)} {x.dtype}")
    h, w = x.shape[-2:]
    if h != w:
        raise ValueError(f"the identity loss expects square FFHQ-aligned faces, got {h}x{w}")
    top, bottom, left, right = (round(f * h) for f in crop)
    region = x[:, :, top:bottom, left:right]
    if region.shape[-1] >= size:
        return F.interpolate(region, size=(size, size), mode="area")
    return F.interpolate(region, size=(size, size), mode="bilinear", align_corners=False)


class IdentityLoss(nn.Module):
    """``forward(x, y)``: FFHQ-aligned faces in [-1, 1] (B, 3, S, S; S = 512 in training) → (B,) 1 − cos similarity.

    The network is frozen and kept in eval mode (``.train()`` does not switch it); gradients flow to the images.
    :meth:`embed` gives the L2-normalised embeddings, e.g. for the evaluation's identity angle (Deg).
    """

    def __init__(self, network: nn.Module, crop=FFHQ_ARCFACE_CROP):
        super().__init__()
        self.network = network.requires_grad_(False).eval()
        self.crop = tuple(float(c) for c in crop)
        self.input_size = int(getattr(getattr(network, "config", None), "input_size", 112))

    def train(self, mode: bool = True) -> "IdentityLoss":
        super().train(mode)
        self.network.eval()
        return self

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) faces in [-1, 1] → (B, D) float32 unit vectors."""
        face = crop_for_arcface(x, self.input_size, self.crop)
        param = next(self.network.parameters())
        emb = self.network(face.to(param.dtype))
        return F.normalize(emb.float(), dim=1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape:
            raise ValueError(f"identity loss compares images of one shape; got {tuple(x.shape)} and {tuple(y.shape)}")
        batch = x.shape[0]
        emb = self.embed(torch.cat([x, y]))  # one pass over both
        return 1 - (emb[:batch] * emb[batch:]).sum(dim=1)


# ------------------------------------------------------------------------------------------------------- loading
def _find_weight_file(folder: Path) -> Path | None:
    for name in ARCFACE_FILES:
        if (folder / name).is_file():
            return folder / name
    candidates = sorted([*folder.glob("*.safetensors"), *folder.glob("*.pth"), *folder.glob("*.pt")])
    return candidates[0] if len(candidates) == 1 else None


def _resolve(path_or_dir: str) -> Path:
    from ..hub import MissingWeightsError, _looks_like_path, _reason, offline

    path = Path(path_or_dir).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        found = _find_weight_file(path)
        if found is None:
            raise MissingWeightsError(f"{path} holds no single ArcFace weight file ({', '.join(ARCFACE_FILES)}): "
                                      f"{_HINT}.")
        return found
    if _looks_like_path(path_or_dir):
        raise MissingWeightsError(f"{path_or_dir}: no such file or folder; {_HINT}.")
    from huggingface_hub import snapshot_download

    try:  # a Hub repo id holding one of the files
        snapshot = snapshot_download(path_or_dir, allow_patterns=["*.pth", "*.pt", "*.safetensors"],
                                     local_files_only=offline(None))
    except (OSError, ValueError) as err:
        raise MissingWeightsError(f"Could not get ArcFace weights '{path_or_dir}' from the Hugging Face Hub "
                                  f"({_reason(err)}); {_HINT}.") from None
    found = _find_weight_file(Path(snapshot))
    if found is None:
        raise MissingWeightsError(f"The Hub repo '{path_or_dir}' holds no single ArcFace weight file; {_HINT}.")
    return found


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    from ..hub import MissingWeightsError

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # not a safe pickle of tensors (or not a pickle at all)
        line = str(err).strip().splitlines()
        raise MissingWeightsError(f"{path} cannot be read as a plain state dict with torch.load(weights_only=True) "
                                  f"({type(err).__name__}: {line[-1][:160] if line else ''}); {_HINT}.") from None
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise MissingWeightsError(f"{path} holds a {type(obj).__name__}, not a state dict; {_HINT}.")
    state = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if state and all(k.startswith("module.") for k in state):  # saved from DataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def load_identity_network(path_or_dir: str | os.PathLike | None = None, *, device=None,
                          dtype=None) -> ArcFaceIRSE:
    """The ArcFace IR-SE-50 with public weights, frozen, in eval mode.

    ``path_or_dir``: a ``.pth`` / ``.safetensors`` file, a folder holding one (``recognition_arcface_ir_se50.pth``,
    ``model_ir_se50.pth``, ``arcface_ir_se50.safetensors`` or a single weight file), or a Hub repo id holding one;
    default ``$OSDFACE_ARCFACE``. Missing or unusable → :class:`osdface.hub.MissingWeightsError` (one line)."""
    from ..hub import MissingWeightsError

    name = path_or_dir if path_or_dir is not None else os.environ.get("OSDFACE_ARCFACE")
    if not name:
        raise MissingWeightsError(f"No ArcFace weights given (path or $OSDFACE_ARCFACE): {_HINT}.")
    path = _resolve(str(name))
    state = _read_state_dict(path)
    model = ArcFaceIRSE()
    expected = model.state_dict()
    optional = {k for k in expected if k.endswith("num_batches_tracked")}  # absent from files of old PyTorch
    missing = [k for k in expected if k not in state and k not in optional]
    unexpected = [k for k in state if k not in expected]
    misshaped = [f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})" for k, v in expected.items()
                 if k in state and state[k].shape != v.shape]
    if missing or unexpected or misshaped:
        details = "; ".join(f"{label}: {', '.join(items[:3])}{' …' if len(items) > 3 else ''} ({len(items)})"
                            for label, items in (("missing", missing), ("unexpected", unexpected),
                                                 ("wrong shape", misshaped)) if items)
        raise MissingWeightsError(f"{path} is not an ArcFace IR-SE-50 state dict ({details}); {_HINT}.")
    model.load_state_dict(state, strict=False)
    model.requires_grad_(False).eval()
    return model.to(device=device, dtype=dtype) if device is not None or dtype is not None else model
