"""FID: Inception-v3 pool features, their Gaussian statistics, and the Fréchet distance between two of them.

    FID = |μ₁ − μ₂|² + tr(Σ₁ + Σ₂ − 2 (Σ₁ Σ₂)^½)

The feature extractor is torch-fidelity's TF-compatible Inception-v3 (the 2015-12-05 graph of the original FID,
2048-d pool features, TF-1.x-style bilinear resize to 299²), with its weight file read from ``--weights-dir``:
``weights-inception-2015-12-05-6726825d.pth`` (:data:`INCEPTION_URL`). The paper's two columns are

* **FID(HQ)**: restored outputs against the ground-truth set of the same benchmark;
* **FID(FFHQ)**: restored outputs against reference statistics (``--fid-ref``): an ``.npz`` with ``mu`` and
  ``sigma`` (pytorch-fid / clean-fid layout), or a ``.safetensors`` / ``.pth`` with ``mu``/``sigma`` or
  ``mean``/``cov`` (BasicSR's ``inception_FFHQ_512.pth`` layout); :func:`save_stats` writes the ``.npz`` form.
  Shown as ``FID(ref)`` in the report, since the statistics may be of any set.

The trace term is computed exactly from symmetric eigendecompositions (tr (Σ₁Σ₂)^½ = Σ √λᵢ(√Σ₁ Σ₂ √Σ₁)), without
the complex round-off of a general matrix square root. With fewer images than 2048 the covariances are singular;
the formula is still defined, but small sets give large, biased values (compare FIDs of equal set sizes only).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..weights import MissingWeightsError, find_weight, load_state_dict_file

__all__ = ["INCEPTION_FILE", "INCEPTION_URL", "frechet_distance", "feature_stats", "load_stats", "save_stats",
           "InceptionFeatures", "FIDAccumulator"]

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + INCEPTION_FILE


def feature_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) features → (μ (D,), Σ (D, D)), float64, Σ with the unbiased (N − 1) normaliser."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"FID needs at least 2 feature vectors as an (N, D) array, got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def _psd_sqrt(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """The Fréchet distance between N(μ₁, Σ₁) and N(μ₂, Σ₂) (float64; clipped at 0 against round-off)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"FID statistics do not match: mu {mu1.shape} / {mu2.shape}, sigma {s1.shape} / {s2.shape}")
    r1 = _psd_sqrt(s1)
    eig = np.linalg.eigvalsh(r1 @ s2 @ r1)
    tr_covmean = np.sqrt(np.clip(eig, 0.0, None)).sum()
    diff = mu1 - mu2
    return float(max(0.0, diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean))


def save_stats(path: str | os.PathLike, mu: np.ndarray, sigma: np.ndarray) -> Path:
    """Write ``mu``/``sigma`` as an ``.npz`` (the pytorch-fid / clean-fid layout)."""
    path = Path(path)
    np.savez(path, mu=np.asarray(mu, np.float64), sigma=np.asarray(sigma, np.float64))
    return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")


def load_stats(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Reference statistics from ``.npz`` (``mu``, ``sigma``), ``.safetensors`` or ``.pth`` (``mu``/``sigma`` or
    ``mean``/``cov``; read with ``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--fid-ref {path}: no such file")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            d = {k: data[k] for k in data.files}
    else:
        d = {k: (v.numpy() if torch.is_tensor(v) else np.asarray(v)) for k, v in load_state_dict_file(path).items()}
    for mk, sk in (("mu", "sigma"), ("mean", "cov")):
        if mk in d and sk in d:
            return np.asarray(d[mk], np.float64).reshape(-1), np.asarray(d[sk], np.float64)
    raise ValueError(f"--fid-ref {path}: expected arrays mu/sigma or mean/cov, found {sorted(d)}")


class InceptionFeatures(torch.nn.Module):
    """torch-fidelity's Inception-v3 → (N, 2048) float64 pool features of uint8 (N, 3, H, W) images."""

    def __init__(self, state_dict: dict, device="cpu"):
        super().__init__()
        try:
            from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
        except ImportError as err:
            raise MissingWeightsError(f"needs the package torch-fidelity (pip install torch-fidelity==0.4.0): "
                                    f"{err}") from None
        # torch-fidelity reads weights from a path with a full unpickle; it gets a file of plain tensors written
        # here from a state dict that was itself read with weights_only=True
        with tempfile.TemporaryDirectory() as tmp:
            safe = Path(tmp) / "inception.pth"
            torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, safe)
            self.net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                                   feature_extractor_weights_path=str(safe))
        self.net.to(device)

    @classmethod
    def from_weights_dir(cls, weights_dir, device="cpu") -> "InceptionFeatures":
        path = find_weight(weights_dir, INCEPTION_FILE, INCEPTION_URL, what="FID Inception-v3")
        return cls(load_state_dict_file(path), device=device)

    @torch.no_grad()
    def forward(self, images_uint8: torch.Tensor) -> torch.Tensor:
        if images_uint8.dtype != torch.uint8:
            raise TypeError(f"InceptionFeatures expects uint8 images, got {images_uint8.dtype}")
        (feats,) = self.net(images_uint8)
        return feats.double()


class FIDAccumulator:
    """Collects features of one or more named image sets batch by batch; :meth:`fid` compares two of them or one
    against loaded statistics."""

    def __init__(self, extractor):
        self.extractor = extractor
        self.features: dict[str, list[np.ndarray]] = {}

    def update(self, name: str, images_uint8: torch.Tensor) -> None:
        self.features.setdefault(name, []).append(self.extractor(images_uint8).cpu().numpy())

    def stats(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name not in self.features:
            raise KeyError(f"no features collected for {name!r}")
        return feature_stats(np.concatenate(self.features[name]))

    def fid(self, name: str, other: str | tuple[np.ndarray, np.ndarray]) -> float:
        mu1, s1 = self.stats(name)
        mu2, s2 = self.stats(other) if isinstance(other, str) else other
        return frechet_distance(mu1, s1, mu2, s2)
