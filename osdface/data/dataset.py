"""Paired (LQ, HQ) face datasets for training and validation.

* :class:`PairedFaceDataset`: HQ face crops from a folder (or a list of files), resized to ``resolution``², degraded on
  the fly with :func:`osdface.data.degradations.degrade`; every item's randomness (flip + degradation) comes from a
  generator seeded by ``(seed, epoch, index)``, so an epoch replays exactly, and :meth:`~PairedFaceDataset.set_epoch`
  gives new degradations each epoch.
* :class:`PreparedPairsDataset`: a fixed set written by ``osdface degrade``
  (``ROOT/lq/NAME.png`` + ``ROOT/hq/NAME.png``).
* :func:`split_files`: a deterministic train / validation split by a hash of the file name, stable when files are
  added or removed (each file's side depends only on its own name and the seed).

Items are dicts ``{"lq": (3, R, R) float32 in [0, 1], "hq": (3, R, R) float32 in [0, 1], "path": str}``, so the
default ``torch.utils.data.DataLoader`` collation batches them.

With a ``DataLoader``, call ``dataset.set_epoch(epoch)`` before iterating each epoch; with ``persistent_workers=True``
the workers keep the copy they were started with, so leave ``persistent_workers`` off when relying on ``set_epoch``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Sequence, TypeVar, Union

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..image_io import list_images, load_image
from .degradations import DegradationConfig, degrade

__all__ = ["PairedFaceDataset", "PreparedPairsDataset", "split_files", "resize_square"]

PathLike = Union[str, os.PathLike]
T = TypeVar("T")


def resize_square(img: Image.Image, size: int) -> np.ndarray:
    """An RGB PIL image → uint8 ``(size, size, 3)``: centre-cropped to a square when it is not one (FFHQ-aligned
    crops are square; cropping keeps the face's aspect), then resized with Lanczos (PIL's Lanczos filter scales its
    support when reducing, so down-scaling is anti-aliased). Same size: returned unchanged."""
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    img = img.convert("RGB") if img.mode != "RGB" else img
    w, h = img.size
    if w != h:
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        img = img.crop((left, top, left + s, top + s))
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(img, dtype=np.uint8).copy()


def _to_tensor(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).to(torch.float32).div_(255.0)


def jitter_colors(img: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """Scale a uint8 RGB image's brightness, contrast (around its mean grey) and saturation (around each pixel's
    grey) by factors drawn uniformly from [1 − amount, 1 + amount], in that order; rounded back to uint8."""
    from ..image_io import to_uint8

    b, c, s = rng.uniform(1 - amount, 1 + amount, size=3).astype(np.float32)
    x = img.astype(np.float32) * b
    grey = x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    x = (x - grey.mean()) * c + grey.mean()
    grey = (x @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
    x = (x - grey) * s + grey
    return to_uint8(x, scale=1)


def _resolve_files(source: PathLike | Sequence[PathLike]) -> list[Path]:
    if isinstance(source, (str, os.PathLike)):
        files, _skipped = list_images(source)
        return files
    return [Path(p) for p in source]


class PairedFaceDataset(Dataset):
    """HQ face images → on-the-fly synthetic (LQ, HQ) pairs (docs/ARCHITECTURE.md §4 degradation).

    Args:
        hq_dir: a folder of HQ images (non-recursive; image extensions only, sorted by name) or a list of files
            (e.g. one side of :func:`split_files`).
        resolution: HQ images are centre-cropped to a square if needed and resized to ``resolution``² (Lanczos).
        degradation: the :class:`DegradationConfig` (default: the spec's ranges).
        flip: random horizontal flip (p = 1/2), applied to the HQ before degrading, so LQ and HQ agree.
        seed: base seed; item ``index`` in epoch ``e`` uses ``np.random.default_rng([seed, e, index])``.
        color_jitter: j > 0 scales the HQ's brightness, contrast and saturation by factors drawn from [1 − j, 1 + j]
            (from a generator of its own, so the degradations stay those of ``color_jitter=0``); geometry is
            untouched, so the FFHQ alignment holds.
    """

    def __init__(self, hq_dir: PathLike | Sequence[PathLike], resolution: int = 512,
                 degradation: DegradationConfig | None = None, flip: bool = True, seed: int = 0,
                 color_jitter: float = 0.0):
        if int(resolution) < 1:
            raise ValueError(f"resolution must be positive, got {resolution}")
        if int(seed) < 0:
            raise ValueError(f"seed must be non-negative, got {seed}")
        self.files = _resolve_files(hq_dir)
        if not self.files:
            raise ValueError(f"{hq_dir}: no images found")
        self.resolution = int(resolution)
        self.degradation = degradation if degradation is not None else DegradationConfig()
        self.flip = bool(flip)
        if not 0.0 <= float(color_jitter) < 1.0:
            raise ValueError(f"color_jitter must be in [0, 1), got {color_jitter}")
        self.color_jitter = float(color_jitter)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose degradations (and flips) ``__getitem__`` draws."""
        if int(epoch) < 0:
            raise ValueError(f"epoch must be non-negative, got {epoch}")
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.files)

    def rng_for(self, index: int) -> np.random.Generator:
        """The generator item ``index`` of the current epoch draws from (flip first, then the degradation)."""
        return np.random.default_rng([self.seed, self.epoch, int(index)])

    def load_hq(self, index: int) -> np.ndarray:
        return resize_square(load_image(self.files[index]), self.resolution)

    def __getitem__(self, index: int) -> dict:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        hq = self.load_hq(index)
        rng = self.rng_for(index)
        do_flip = bool(rng.random() < 0.5)  # always drawn, so flip=False sees the same degradations
        if self.flip and do_flip:
            hq = np.ascontiguousarray(hq[:, ::-1])
        if self.color_jitter:
            hq = jitter_colors(hq, np.random.default_rng([self.seed, self.epoch, int(index), 1]), self.color_jitter)
        lq, _params = degrade(hq, rng, self.degradation)
        return {"lq": _to_tensor(lq), "hq": _to_tensor(hq), "path": str(self.files[index])}


class PreparedPairsDataset(Dataset):
    """A fixed paired set: ``root/lq/NAME`` and ``root/hq/NAME`` with the same file names (``osdface degrade``'s
    output). Items: ``{"lq", "hq": (3, H, W) float32 in [0, 1], "path": str (the HQ file)}``, plus ``"teacher"``
    when ``root/teacher/NAME`` exists for every name (another restorer's output on the LQ: the teacher term's
    target, ``scripts/teacher_pool.py``)."""

    def __init__(self, root: PathLike):
        self.root = Path(root)
        lq_dir, hq_dir = self.root / "lq", self.root / "hq"
        for d in (lq_dir, hq_dir):
            if not d.is_dir():
                raise ValueError(f"{self.root}: expected sub-folders lq/ and hq/; {d.name}/ is missing")
        lq = {p.name: p for p in list_images(lq_dir)[0]}
        hq = {p.name: p for p in list_images(hq_dir)[0]}
        only_lq, only_hq = sorted(set(lq) - set(hq)), sorted(set(hq) - set(lq))
        if only_lq or only_hq:
            parts = []
            if only_lq:
                parts.append(f"{len(only_lq)} in lq/ only (e.g. {only_lq[0]})")
            if only_hq:
                parts.append(f"{len(only_hq)} in hq/ only (e.g. {only_hq[0]})")
            raise ValueError(f"{self.root}: lq/ and hq/ file names differ: " + "; ".join(parts))
        if not hq:
            raise ValueError(f"{self.root}: no images in hq/")
        self.names = sorted(hq)
        self.lq_files = [lq[n] for n in self.names]
        self.hq_files = [hq[n] for n in self.names]
        teacher = {p.name: p for p in list_images(self.root / "teacher")[0]} if (self.root / "teacher").is_dir() \
            else {}
        if teacher and set(teacher) != set(hq):
            raise ValueError(f"{self.root}: teacher/ must hold one file per hq/ file (same names)")
        self.teacher_files = [teacher[n] for n in self.names] if teacher else None

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> dict:
        lq = np.asarray(load_image(self.lq_files[index]), dtype=np.uint8)
        hq = np.asarray(load_image(self.hq_files[index]), dtype=np.uint8)
        item = {"lq": _to_tensor(lq), "hq": _to_tensor(hq), "path": str(self.hq_files[index])}
        if self.teacher_files is not None:
            item["teacher"] = _to_tensor(np.asarray(load_image(self.teacher_files[index]), dtype=np.uint8))
        return item


def _unit_hash(name: str, seed: int) -> float:
    digest = hashlib.sha256(f"{seed}\0{name}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_files(files: Sequence[T], val_fraction: float = 0.1, seed: int = 0) -> tuple[list[T], list[T]]:
    """Deterministic ``(train, val)`` split by a SHA-256 hash of each file's *name* (not its folder) and ``seed``.

    A file goes to validation when its hash, read as a number in [0, 1), is below ``val_fraction``, so the split is
    independent of the order and of the other files: adding or removing files never moves an existing one. The
    validation share is ``val_fraction`` on average, not exactly. Input order is kept on both sides. Note: this
    splits by file, not by identity (the shared faces repeat identities).
    """
    if not 0.0 <= float(val_fraction) <= 1.0:
        raise ValueError(f"val_fraction must be in [0, 1], got {val_fraction}")
    train: list[T] = []
    val: list[T] = []
    for f in files:
        (val if _unit_hash(Path(f).name, int(seed)) < val_fraction else train).append(f)
    return train, val

