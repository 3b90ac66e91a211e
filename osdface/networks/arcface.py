"""IR-SE-50, the ArcFace face-recognition network whose public weights the identity loss loads.

Architecture (Deng et al., ArcFace, CVPR 2019; the "improved residual" unit BN → conv3×3 → PReLU → conv3×3(stride)
→ BN → squeeze-excitation, with an identity or 1×1-conv+BN shortcut): a 3×3 stem (64 channels, BN, PReLU), four
stages of 3, 4, 14, 3 units with 64, 128, 256, 512 channels (the first unit of each stage has stride 2), then BN →
dropout → flatten → Linear(512·7·7, 512) → BN1d, and an L2 normalisation. Input: 112×112 RGB in [-1, 1].

The module and parameter names reproduce the layout of the publicly downloadable weight files of this network:
facexlib's ``recognition_arcface_ir_se50.pth`` (its ``facexlib.recognition.Backbone(50, 0.6, 'ir_se')``) and, in
the same layout, ``model_ir_se50.pth`` of TreB1eN's InsightFace_Pytorch (the file pSp / e4e use for their ID loss).
So those files load here without facexlib (an optional dependency of osdface) and without renaming.
``units`` / ``widths`` exist for small random stand-ins in fast tests.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import ModelMixin
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import nn

__all__ = ["ArcFaceIRSE", "IRSE50_UNITS", "IRSE50_WIDTHS", "load_arcface", "ARCFACE_URL", "ARCFACE_FILES",
           "ARCFACE_HINT"]

IRSE50_UNITS = (3, 4, 14, 3)
IRSE50_WIDTHS = (64, 128, 256, 512)

ARCFACE_URL = "https://github.com/xinntao/facexlib/releases/download/v0.1.0/recognition_arcface_ir_se50.pth"
ARCFACE_FILES = ("recognition_arcface_ir_se50.pth", "model_ir_se50.pth", "arcface_ir_se50.safetensors")
ARCFACE_HINT = (f"download facexlib's ArcFace IR-SE-50 weights recognition_arcface_ir_se50.pth ({ARCFACE_URL}; "
                "TreB1eN/InsightFace_Pytorch's model_ir_se50.pth has the same layout) and pass its path or folder "
                "(or set $OSDFACE_ARCFACE); to train without the identity loss set its weight λ_ID to 0")


class SqueezeExcite(nn.Module):
    """x · sigmoid(W2 relu(W1 avgpool(x))), 1×1 convolutions without bias (names ``fc1``, ``fc2``)."""

    def __init__(self, channels: int, reduction: int):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, max(1, channels // reduction), 1, bias=False)
        self.fc2 = nn.Conv2d(max(1, channels // reduction), channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = F.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(w))))


class Subsample(nn.Module):
    """Every ``stride``-th pixel (the identity for stride 1): the same as a 1×1 max pool with that stride, cheaper."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.stride == 1 else x[:, :, :: self.stride, :: self.stride]


class IRSEUnit(nn.Module):
    """One improved-residual unit with squeeze-excitation (``shortcut_layer`` + ``res_layer``)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, se_reduction: int):
        super().__init__()
        if in_ch == out_ch:  # identity, subsampled when stride 2 (the reference code's 1×1 max pool)
            self.shortcut_layer = Subsample(stride)
        else:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_ch),
            nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=False),
            nn.PReLU(out_ch),
            nn.Conv2d(out_ch, out_ch, 3, stride, 1, bias=False),
            nn.BatchNorm2d(out_ch),
            SqueezeExcite(out_ch, se_reduction),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class ArcFaceIRSE(ModelMixin, ConfigMixin):
    """``forward(x)``: (B, 3, 112, 112) RGB in [-1, 1] → (B, ``embedding_dim``) L2-normalised identity embeddings.

    Use it in eval mode (BatchNorm running statistics, no dropout); :class:`osdface.losses.IdentityLoss` keeps it so.
    """

    @register_to_config
    def __init__(self, units: tuple[int, ...] = IRSE50_UNITS, widths: tuple[int, ...] = IRSE50_WIDTHS,
                 embedding_dim: int = 512, se_reduction: int = 16, input_size: int = 112, dropout: float = 0.6):
        super().__init__()
        units, widths = tuple(int(u) for u in units), tuple(int(w) for w in widths)
        if len(units) != len(widths) or min(units) < 1 or min(widths) < 1:
            raise ValueError(f"units and widths must be equally long lists of positive ints, got {units}, {widths}")
        if input_size % (2 ** len(units)):
            raise ValueError(f"input_size {input_size} must be divisible by 2**{len(units)}")
        stem = widths[0]
        self.input_layer = nn.Sequential(nn.Conv2d(3, stem, 3, 1, 1, bias=False), nn.BatchNorm2d(stem), nn.PReLU(stem))
        blocks, in_ch = [], stem
        for n, width in zip(units, widths):
            for i in range(n):
                blocks.append(IRSEUnit(in_ch, width, 2 if i == 0 else 1, se_reduction))
                in_ch = width
        self.body = nn.Sequential(*blocks)
        side = input_size // 2 ** len(units)
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(in_ch), nn.Dropout(dropout), nn.Flatten(),
            nn.Linear(in_ch * side * side, embedding_dim), nn.BatchNorm1d(embedding_dim))

    def to(self, *args, **kwargs):
        # plain nn.Module.to: diffusers' ModelMixin.to warns on every dtype cast about fp32 modules this model lacks
        return nn.Module.to(self, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = self.config.input_size
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[-2:] != (size, size):
            raise ValueError(f"ArcFaceIRSE expects (B, 3, {size}, {size}) images, got {tuple(x.shape)}")
        h = self.output_layer(self.body(self.input_layer(x)))
        return F.normalize(h.float(), dim=1)


def load_arcface(path_or_dir=None, *, device=None, dtype=None) -> ArcFaceIRSE:
    """The ArcFace IR-SE-50 with public weights, frozen, in eval mode.

    ``path_or_dir``: a ``.pth`` / ``.safetensors`` file, a folder holding one (:data:`ARCFACE_FILES` or a single
    weight file), or a Hub repo id holding one; default ``$OSDFACE_ARCFACE``. Missing or unusable →
    :class:`osdface.weights.MissingWeightsError` (one line)."""
    import os

    from ..weights import MissingWeightsError, load_state_dict_file, resolve_weight_file

    name = path_or_dir if path_or_dir is not None else os.environ.get("OSDFACE_ARCFACE")
    if not name:
        raise MissingWeightsError(f"No ArcFace weights given (path or $OSDFACE_ARCFACE): {ARCFACE_HINT}.")
    path = resolve_weight_file(name, ARCFACE_FILES, ARCFACE_HINT, what="ArcFace weight")
    state = load_state_dict_file(path, hint=ARCFACE_HINT)
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
        raise MissingWeightsError(f"{path} is not an ArcFace IR-SE-50 state dict ({details}); {ARCFACE_HINT}.")
    model.load_state_dict(state, strict=False)
    model.requires_grad_(False).eval()
    return model.to(device=device, dtype=dtype) if device is not None or dtype is not None else model
