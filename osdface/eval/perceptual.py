"""Full-reference perceptual distances: LPIPS (Zhang et al., CVPR 2018) and DISTS (Ding et al., TPAMI 2020).

LPIPS uses the maintained ``lpips`` package (0.1.4): its learned linear heads ship inside the package; the backbone
is torchvision's ImageNet network, read from ``--weights-dir``:

=========== ============================ ============================================================
net         file in --weights-dir         get it from
=========== ============================ ============================================================
``alex``    ``alexnet-owt-7be5be79.pth``  https://download.pytorch.org/models/alexnet-owt-7be5be79.pth
``vgg``     ``vgg16-397923af.pth``        https://download.pytorch.org/models/vgg16-397923af.pth
=========== ============================ ============================================================

The default is ``alex`` (LPIPS v0.1, the package's and pyiqa's default "lpips"; the paper does not name the
backbone). Inputs in [0, 1] are mapped to [-1, 1] as LPIPS expects.

DISTS reuses :class:`osdface.losses.DISTS` (the training loss's module; inputs in [0, 1]) loaded from the folder
``--weights-dir/dists`` that ``osdface convert-dists --vgg vgg16-397923af.pth --dists weights.pt --out
WEIGHTS/dists`` writes from the two public files.
"""

from __future__ import annotations

import os
import warnings

import torch

from ..weights import MissingWeightsError, find_weight, load_state_dict_file

__all__ = ["LPIPSMetric", "DISTSMetric", "LPIPS_BACKBONES", "DISTS_FOLDER"]

LPIPS_BACKBONES = {
    "alex": ("alexnet-owt-7be5be79.pth", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"),
    "vgg": ("vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth"),
}
DISTS_FOLDER = "dists"


def _to_float01(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


class LPIPSMetric:
    """``__call__(pred, gt)`` → (N,) LPIPS distances (float64, on the CPU); inputs (N, 3, H, W) uint8 or [0, 1].

    ``backbone_state_dict``: torchvision's ``features.*`` weights of the chosen net (None with
    ``random_backbone=True``: a randomly initialised backbone, for tests only)."""

    name = "LPIPS"

    def __init__(self, net: str = "alex", backbone_state_dict: dict | None = None, device="cpu",
                 random_backbone: bool = False):
        if net not in LPIPS_BACKBONES:
            raise ValueError(f"LPIPS net must be one of {sorted(LPIPS_BACKBONES)}, got {net!r}")
        if backbone_state_dict is None and not random_backbone:
            raise ValueError("LPIPSMetric needs the backbone's weights (or random_backbone=True for tests)")
        try:
            import lpips
        except ImportError as err:
            raise MissingWeightsError(f"needs the package lpips (pip install lpips==0.1.4): {err}") from None
        # pnet_rand: no torchvision download; the backbone is filled from the given weights below
        with warnings.catch_warnings():  # lpips passes torchvision's deprecated pretrained=False
            warnings.simplefilter("ignore", UserWarning)
            model = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
        if backbone_state_dict is not None:
            _load_backbone(model.net, backbone_state_dict, net)
        self.model = model.to(device).eval().requires_grad_(False)
        self.device = torch.device(device)

    @classmethod
    def from_weights_dir(cls, weights_dir, net: str = "alex", device="cpu") -> "LPIPSMetric":
        filename, url = LPIPS_BACKBONES.get(net, (None, None))
        if filename is None:
            raise ValueError(f"LPIPS net must be one of {sorted(LPIPS_BACKBONES)}, got {net!r}")
        path = find_weight(weights_dir, filename, url, what=f"torchvision ImageNet {net} for LPIPS")
        return cls(net, load_state_dict_file(path), device=device)

    @torch.no_grad()
    def __call__(self, pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        p = _to_float01(pred).to(self.device) * 2 - 1
        g = _to_float01(gt).to(self.device) * 2 - 1
        return self.model(p, g).flatten().double().cpu()


def _load_backbone(net: torch.nn.Module, state_dict: dict, name: str) -> None:
    """Copy torchvision's ``features.{i}.weight/bias`` into lpips' ``slice{k}.{i}`` modules (strict)."""
    mapped = {}
    for key in net.state_dict():  # slice1.0.weight → features.0.weight
        _, idx, param = key.split(".")
        src = f"features.{idx}.{param}"
        if src not in state_dict:
            raise MissingWeightsError(f"needs torchvision's {name} weights ({LPIPS_BACKBONES[name][0]}); the given "
                                    f"file lacks {src}")
        mapped[key] = state_dict[src]
    try:
        net.load_state_dict(mapped, strict=True)
    except RuntimeError as err:
        raise MissingWeightsError(f"needs torchvision's {name} weights ({LPIPS_BACKBONES[name][0]}); the given file "
                                f"does not fit: {str(err).splitlines()[0][:160]}") from None


class DISTSMetric:
    """``__call__(pred, gt)`` → (N,) DISTS distances; wraps an :class:`osdface.losses.DISTS` module."""

    name = "DISTS"

    def __init__(self, module: torch.nn.Module, device="cpu"):
        self.model = module.to(device).eval().requires_grad_(False)
        self.device = torch.device(device)

    @classmethod
    def from_weights_dir(cls, weights_dir, device="cpu") -> "DISTSMetric":
        from ..weights import MissingWeightsError
        from ..networks.dists import DISTS_WEIGHTS_URL, VGG16_URL, load_dists

        how = (f"get vgg16-397923af.pth ({VGG16_URL}) and weights.pt ({DISTS_WEIGHTS_URL}), then run `osdface "
               f"convert-dists --vgg vgg16-397923af.pth --dists weights.pt --out WEIGHTS_DIR/{DISTS_FOLDER}`")
        if weights_dir is None:
            raise MissingWeightsError(f"needs the folder {DISTS_FOLDER}/ in --weights-dir (none given); {how}")
        folder = os.path.join(str(weights_dir), DISTS_FOLDER)
        try:
            return cls(load_dists(folder), device=device)
        except MissingWeightsError:
            raise MissingWeightsError(f"needs the folder {folder} (config.json + safetensors); {how}") from None

    @torch.no_grad()
    def __call__(self, pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        return self.model(_to_float01(pred).to(self.device), _to_float01(gt).to(self.device)).flatten().double().cpu()
