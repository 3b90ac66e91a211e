"""DISTS: Deep Image Structure and Texture Similarity (Ding, Ma, Wang, Simoncelli, TPAMI 2020, arXiv:2004.07728).

The image and the outputs of the five VGG16 stages (relu1_2, relu2_2, relu3_3, relu4_3, relu5_3) are compared channel
by channel with a texture term (global means) and a structure term (global (co)variances)::

    l(x̃, ỹ) = (2 μx μy + c1) / (μx² + μy² + c1)          s(x̃, ỹ) = (2 σxy + c2) / (σx² + σy² + c2)
    D(x, y) = 1 − Σ_ij (α_ij l + β_ij s) / Σ_ij (α_ij + β_ij),     c1 = c2 = 1e-6 (as published)

VGG16's max pooling is replaced by L2 pooling (a 3×3 Hanning window [.5, 1, .5]ᵀ[.5, 1, .5] / 4, stride 2, on the
squared features, then a square root). The 0-th "stage" is the input image itself, in [0, 1]; the VGG stages see it
after ImageNet normalisation. α, β (1475 = 3 + 64 + 128 + 256 + 512 + 512 weights each) are the published, learned
weights; the VGG convolutions are torchvision's ImageNet VGG16 weights.

The parameter names follow torchvision: ``features.{i}.weight/bias`` for VGG16's conv layers
(i = 0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28; the L2-pooling layers sit at i = 4, 9, 16, 23 where VGG16 has
max pooling), plus ``alpha`` and ``beta``. ``osdface convert-dists`` (:mod:`osdface.losses.convert_dists`) builds such
a folder from the two public files; :func:`load_dists` reads it.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import ModelMixin
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import nn

__all__ = ["DISTS", "L2Pooling", "load_dists", "convert_dists", "check_image_pair", "VGG16_URL", "DISTS_WEIGHTS_URL",
           "DISTS_HINT"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CONVS_PER_STAGE = (2, 2, 3, 3, 3)  # VGG16
VGG16_WIDTHS = (64, 128, 256, 512, 512)
DISTS_C1 = DISTS_C2 = 1e-6

VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
DISTS_WEIGHTS_URL = "https://github.com/dingkeyan93/DISTS/raw/master/DISTS_pytorch/weights.pt"
DISTS_HINT = (f"download torchvision's ImageNet VGG16 weights vgg16-397923af.pth ({VGG16_URL}) and the DISTS "
              f"authors' alpha/beta file weights.pt ({DISTS_WEIGHTS_URL}; also inside the PyPI wheel dists-pytorch "
              "0.1 as DISTS_pytorch/weights.pt), then run `osdface convert-dists --vgg vgg16-397923af.pth "
              "--dists weights.pt --out ./dists` and pass that folder")


class L2Pooling(nn.Module):
    """sqrt(Hanning-weighted 3×3 average of x², stride 2, zero padding 1 + 1e-12): DISTS's anti-aliased pooling."""

    def __init__(self, channels: int):
        super().__init__()
        window = torch.tensor([0.5, 1.0, 0.5])
        kernel = window[:, None] * window[None, :]
        kernel = kernel / kernel.sum()
        self.channels = channels
        self.register_buffer("kernel", kernel.expand(channels, 1, 3, 3).clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.conv2d(x.square(), self.kernel.to(x.dtype), stride=2, padding=1, groups=self.channels)
        return torch.sqrt(pooled + 1e-12)


class DISTS(ModelMixin, ConfigMixin):
    """DISTS distance. ``forward(x, y)``: two (B, 3, H, W) RGB images in [0, 1] → (B,) distances (0 for x == y).

    A fresh ``DISTS()`` has random VGG weights (He initialisation, as torchvision initialises VGG) and α, β drawn
    from N(0.1, 0.01²) as the DISTS authors initialise them before training, so it is a well-defined, positive
    stand-in for tests; :meth:`random` seeds it. Real weights: :func:`load_dists`.

    ``widths`` (the five stages' channel counts) exists for small stand-ins in fast tests; the published model and
    the converter use VGG16's ``(64, 128, 256, 512, 512)``. Statistics are computed in float32 whatever the dtype
    of the network, so bf16 / fp16 features do not break the 1e-6 constants.
    """

    @register_to_config
    def __init__(self, widths: tuple[int, ...] = VGG16_WIDTHS):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if len(widths) != len(CONVS_PER_STAGE) or min(widths) < 1:
            raise ValueError(f"widths must be 5 positive channel counts (VGG16: {VGG16_WIDTHS}), got {widths}")
        layers: list[nn.Module] = []
        self.taps: list[int] = []  # indices of the layers whose outputs are compared (relu1_2 … relu5_3)
        in_ch = 3
        for stage, (n_convs, width) in enumerate(zip(CONVS_PER_STAGE, widths)):
            if stage > 0:
                layers.append(L2Pooling(in_ch))
            for _ in range(n_convs):
                layers += [nn.Conv2d(in_ch, width, 3, padding=1), nn.ReLU(inplace=False)]
                in_ch = width
            self.taps.append(len(layers) - 1)
        self.features = nn.Sequential(*layers)
        self.channels = (3, *widths)
        n = sum(self.channels)
        self.alpha = nn.Parameter(torch.empty(1, n, 1, 1))
        self.beta = nn.Parameter(torch.empty(1, n, 1, 1))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.features:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
        with torch.no_grad():
            self.alpha.normal_(0.1, 0.01)
            self.beta.normal_(0.1, 0.01)

    def to(self, *args, **kwargs):
        # plain nn.Module.to: diffusers' ModelMixin.to warns on every dtype cast about fp32 modules this model lacks
        return nn.Module.to(self, *args, **kwargs)

    @classmethod
    def random(cls, seed: int = 0, **config) -> "DISTS":
        """A randomly initialised stand-in, the same for the same seed (tests, benchmarks)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return cls(**config)

    def features_of(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[x, relu1_2, relu2_2, relu3_3, relu4_3, relu5_3] for an image ``x`` in [0, 1]."""
        param = self.alpha
        h = (x.to(param.dtype) - self.mean.to(param.dtype)) / self.std.to(param.dtype)
        feats = [x]
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in self.taps:
                feats.append(h)
        return feats

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        check_image_pair(x, y)
        fx, fy = self.features_of(x), self.features_of(y)
        alpha, beta = self.alpha.float(), self.beta.float()
        total = alpha.sum() + beta.sum()
        alphas = torch.split(alpha / total, self.channels, dim=1)
        betas = torch.split(beta / total, self.channels, dim=1)
        similarity = 0.0
        for a, b, u, v in zip(alphas, betas, fx, fy):
            u, v = u.float(), v.float()
            mu_u, mu_v = u.mean(dim=(2, 3), keepdim=True), v.mean(dim=(2, 3), keepdim=True)
            texture = (2 * mu_u * mu_v + DISTS_C1) / (mu_u.square() + mu_v.square() + DISTS_C1)
            var_u = (u - mu_u).square().mean(dim=(2, 3), keepdim=True)
            var_v = (v - mu_v).square().mean(dim=(2, 3), keepdim=True)
            cov = ((u - mu_u) * (v - mu_v)).mean(dim=(2, 3), keepdim=True)
            structure = (2 * cov + DISTS_C2) / (var_u + var_v + DISTS_C2)
            similarity = similarity + (a * texture + b * structure).sum(dim=(1, 2, 3))
        return 1 - similarity


def check_image_pair(x: torch.Tensor, y: torch.Tensor) -> None:
    for name, t in (("x", x), ("y", y)):
        if not isinstance(t, torch.Tensor) or t.ndim != 4 or t.shape[1] != 3 or not t.is_floating_point():
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"DISTS expects float (B, 3, H, W) images in [0, 1]; {name} is {shape}")
    if x.shape != y.shape:
        raise ValueError(f"DISTS compares images of one shape; got {tuple(x.shape)} and {tuple(y.shape)}")


def load_dists(path: str | os.PathLike | None = None, *, device=None, dtype=None) -> DISTS:
    """The published DISTS from an osdface DISTS folder (:func:`convert_dists`) or a Hub repo holding one,
    frozen and in eval mode.

    ``path`` defaults to ``$OSDFACE_DISTS``. Missing weights → :class:`osdface.weights.MissingWeightsError`, one line
    naming the two source files and where to get them."""
    from ..weights import MissingWeightsError, first_line, looks_like_path, offline

    name = path if path is not None else os.environ.get("OSDFACE_DISTS")
    if not name:
        raise MissingWeightsError(f"No DISTS weights given (path or $OSDFACE_DISTS): {DISTS_HINT}.")
    folder = Path(name).expanduser()
    kwargs = {"torch_dtype": dtype} if dtype is not None else {}
    if folder.is_dir():
        if not (folder / "config.json").is_file() or not any(folder.glob("diffusion_pytorch_model*.safetensors")):
            raise MissingWeightsError(f"{folder} is not a DISTS weights folder (config.json + safetensors): "
                                      f"{DISTS_HINT}.")
        model = DISTS.from_pretrained(folder, **kwargs)
    elif looks_like_path(str(name)):
        raise MissingWeightsError(f"{name}: no such DISTS weights folder; {DISTS_HINT}.")
    else:  # a Hub repo holding such a folder
        try:
            model = DISTS.from_pretrained(str(name), local_files_only=offline(None), **kwargs)
        except (OSError, ValueError) as err:
            raise MissingWeightsError(f"Could not get DISTS weights '{name}' from the Hugging Face Hub "
                                      f"({first_line(err)}); {DISTS_HINT}.") from None
    if tuple(model.config.widths) != VGG16_WIDTHS:
        raise MissingWeightsError(f"{name} holds a small DISTS stand-in (widths {tuple(model.config.widths)}), "
                                  f"not the published VGG16 DISTS: {DISTS_HINT}.")
    model.requires_grad_(False).eval()
    return model.to(device) if device is not None else model


# ---------------------------------------------------------------------------------------------------- converting
VGG_HEAD_PREFIX = "classifier."


def convert_dists(vgg: str | os.PathLike, dists: str | os.PathLike, out: str | os.PathLike, *,
                  overwrite: bool = False) -> Path:
    """The published DISTS weights as an osdface safetensors folder (``osdface convert-dists``); returns ``out``.

    Inputs (both plain pickled state dicts, read with ``torch.load(weights_only=True)`` only):

    - ``vgg16-397923af.pth``: torchvision's ImageNet VGG16 (:data:`VGG16_URL`); keys
      ``features.{0,2,5,7,10,12,14,17,19,21,24,26,28}.weight/bias`` (the 13 convolutions) and ``classifier.*``
      (the fully connected head, not used by DISTS and dropped).
    - ``weights.pt``: the DISTS authors' learned weights ``{"alpha": (1, 1475, 1, 1), "beta": (1, 1475, 1, 1)}``
      (:data:`DISTS_WEIGHTS_URL`).

    Every key and shape is checked. The folder (``config.json``, ``diffusion_pytorch_model.safetensors``,
    ``sources.json`` with the inputs' SHA-256) loads with :func:`load_dists`. ``out`` must be new or empty unless
    ``overwrite``; nothing is written outside it. Missing or unreadable files → MissingWeightsError; a wrong layout →
    :class:`osdface.convert.ConversionError` listing every problem.
    """
    import json

    from ..convert import ConversionError, check_layout
    from ..weights import MissingWeightsError, load_state_dict_file, sha256_file

    vgg, dists, out = Path(vgg).expanduser(), Path(dists).expanduser(), Path(out).expanduser()
    absent = [str(p) for p in (vgg, dists) if not p.is_file()]
    if absent:
        raise MissingWeightsError(f"not found: {', '.join(absent)}; {DISTS_HINT}.")
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise ConversionError(f"{out} exists and is not an empty folder; choose a new folder (or pass --overwrite).")

    model = DISTS()
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    vgg_state = {k: v for k, v in load_state_dict_file(vgg).items() if not k.startswith(VGG_HEAD_PREFIX)}
    if any(k.endswith("running_mean") for k in vgg_state):
        raise ConversionError(f"{vgg.name} is a VGG16 with batch norm (vgg16_bn); DISTS uses the plain VGG16 "
                              "(vgg16-397923af.pth).")
    check_layout(vgg_state, {k: s for k, s in expected.items() if k.startswith("features.")},
                 f"{vgg.name} (torchvision VGG16)")
    dists_state = load_state_dict_file(dists)
    check_layout(dists_state, {k: s for k, s in expected.items() if k in ("alpha", "beta")}, f"{dists.name} (DISTS)")
    weights = {**vgg_state, **dists_state}
    bad = [k for k, v in weights.items() if not torch.isfinite(v).all()]
    if bad:
        raise ConversionError(f"non-finite values in {', '.join(bad[:5])}")
    if (dists_state["alpha"] < 0).any() or (dists_state["beta"] < 0).any():
        raise ConversionError(f"{dists.name}: alpha/beta must be non-negative (DISTS's weights are)")
    model.load_state_dict({k: v.float() for k, v in weights.items()}, strict=True)

    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    sources = {"vgg16": {"file": vgg.name, "sha256": sha256_file(vgg)},
               "dists": {"file": dists.name, "sha256": sha256_file(dists)},
               "paper": "Ding et al., Image Quality Assessment: Unifying Structure and Texture Similarity, "
                        "TPAMI 2020 (arXiv:2004.07728)"}
    (out / "sources.json").write_text(json.dumps(sources, indent=2) + "\n", encoding="utf-8")
    return out
