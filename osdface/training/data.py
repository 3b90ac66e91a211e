"""Training data: a folder of HQ faces (degraded on the fly) or a prepared pairs folder, split deterministically,
served in an order that depends only on (seed, epoch), so that a resumed run sees exactly the batches it would have.

Sharding for several processes is done here (each process takes every ``world``-th index of the epoch's
permutation), so the same code runs on one CPU and on eight GPUs.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..data.dataset import PairedFaceDataset, PreparedPairsDataset, split_files
from ..data.degradations import DegradationConfig
from ..image_io import list_images
from .config import TrainConfig


def is_pairs_folder(path: str | Path) -> bool:
    return (Path(path) / "lq").is_dir() and (Path(path) / "hq").is_dir()


def build_datasets(cfg: TrainConfig) -> tuple[Dataset, Dataset]:
    """(train, validation) datasets from ``cfg.data``; validation uses a fixed degradation seed (epoch 0)."""
    if not cfg.data:
        raise ValueError("no training data: set data (a folder of HQ face images, or a prepared pairs folder with "
                         "lq/ and hq/, e.g. from `osdface degrade`)")
    root = Path(cfg.data)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: training data folder not found")
    if is_pairs_folder(root):
        full = PreparedPairsDataset(root)
        train_idx, val_idx = _split_indices([Path(f).name for f in full.hq_files], cfg)
        return torch.utils.data.Subset(full, train_idx), torch.utils.data.Subset(full, val_idx)
    files, _ = list_images(root)
    if not files:
        raise ValueError(f"{root}: no images found")
    train_files, val_files = split_files(files, cfg.val_fraction, cfg.split_seed)
    if not train_files:
        raise ValueError(f"{root}: the split left no training images ({len(files)} images, "
                         f"val_fraction {cfg.val_fraction})")
    deg = DegradationConfig(**cfg.degradation) if cfg.degradation else DegradationConfig()
    train = PairedFaceDataset(train_files, cfg.resolution, deg, flip=cfg.hflip, seed=cfg.seed,
                              color_jitter=cfg.color_jitter)
    val = PairedFaceDataset(val_files or train_files[:1], cfg.resolution, deg, flip=False, seed=10_000 + cfg.seed)
    return train, val


def _split_indices(names: list[str], cfg: TrainConfig) -> tuple[list[int], list[int]]:
    pairs = list(enumerate(names))
    train, val = split_files([n for _, n in pairs], cfg.val_fraction, cfg.split_seed)
    val_set = set(val)
    return [i for i, n in pairs if n not in val_set], [i for i, n in pairs if n in val_set]


class EpochSampler(Sampler):
    """This process's indices of epoch ``epoch``: a permutation seeded by (seed, epoch), sharded by rank (every
    ``world``-th index from ``rank``: disjoint shards), starting after ``skip`` of this process's samples (exact resume
    without loading the skipped items)."""

    def __init__(self, n: int, seed: int, epoch: int, rank: int = 0, world: int = 1, skip: int = 0):
        self.n, self.seed, self.epoch, self.rank, self.world, self.skip = n, seed, epoch, rank, world, skip

    def indices(self) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        perm = torch.randperm(self.n, generator=g).tolist()
        per_rank = self.n // self.world  # drop the tail so every process sees the same number of samples
        # interleaved: step k of N processes with batch b covers the samples one process with batch N·b would see
        return perm[self.rank::self.world][:per_rank][self.skip:]

    def __iter__(self):
        return iter(self.indices())

    def __len__(self) -> int:
        return max(0, self.n // self.world - self.skip)


def batches_per_epoch(n: int, batch_size: int, world: int) -> int:
    return (n // world) // batch_size


def epoch_loader(dataset: Dataset, cfg: TrainConfig, epoch: int, rank: int, world: int, skip_batches: int = 0
                 ) -> DataLoader:
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)
    sampler = EpochSampler(len(dataset), cfg.seed, epoch, rank, world, skip_batches * cfg.batch_size)
    return DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, drop_last=True,
                      num_workers=cfg.num_workers, persistent_workers=False)


def random_crop_pair(lq: torch.Tensor, hq: torch.Tensor, size: int | None, generator: torch.Generator,
                     multiple: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """The same random ``size``² window of every (LQ, HQ) pair of a batch (offsets multiples of ``multiple``, so that
    latent grids line up). ``size`` None or ≥ the image: unchanged."""
    h, w = hq.shape[-2:]
    if size is None or (size >= h and size >= w):
        return lq, hq
    ys = torch.randint(0, (h - size) // multiple + 1, (hq.shape[0],), generator=generator) * multiple
    xs = torch.randint(0, (w - size) // multiple + 1, (hq.shape[0],), generator=generator) * multiple
    lq_c = torch.stack([lq[i, :, y:y + size, x:x + size] for i, (y, x) in enumerate(zip(ys.tolist(), xs.tolist()))])
    hq_c = torch.stack([hq[i, :, y:y + size, x:x + size] for i, (y, x) in enumerate(zip(ys.tolist(), xs.tolist()))])
    return lq_c, hq_c
