"""Image sets to evaluate: files of a folder, paired with the ground truth by name, loaded in uint8 batches.

A prediction ``NAME.png`` is paired with the ground-truth file of the same stem (``NAME.*``), so restored PNGs pair
with JPEG originals. Every prediction needs its ground truth and every ground truth its prediction: a mismatch is
one :class:`EvalInputError` line naming how many are unpaired and an example. Paired images must have the same size.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

__all__ = ["EvalInputError", "list_set", "pair_sets", "load_uint8", "iter_batches"]


class EvalInputError(ValueError):
    """The inputs cannot be evaluated (missing folder, unpaired files, unreadable image): one readable line."""


def list_set(folder: str | os.PathLike, label: str = "--pred") -> dict[str, Path]:
    """stem → file for the images of ``folder`` (non-recursive, sorted); duplicate stems are an error."""
    from ..image_io import ImageInputError, list_images

    try:
        files, _ = list_images(folder)
    except ImageInputError as err:
        raise EvalInputError(f"{label} {err}") from None
    if not files:
        raise EvalInputError(f"{label} {folder}: no images found")
    out: dict[str, Path] = {}
    for f in files:
        if f.stem in out:
            raise EvalInputError(f"{label} {folder}: two files share the name {f.stem!r} ({out[f.stem].name}, "
                                 f"{f.name}); pairing is by name")
        out[f.stem] = f
    return out


def pair_sets(pred: dict[str, Path], gt: dict[str, Path]) -> list[str]:
    """The common names, sorted; :class:`EvalInputError` when either side has names the other lacks."""
    only_pred, only_gt = sorted(set(pred) - set(gt)), sorted(set(gt) - set(pred))
    if only_pred or only_gt:
        parts = []
        if only_pred:
            parts.append(f"{len(only_pred)} prediction(s) without ground truth (e.g. {pred[only_pred[0]].name})")
        if only_gt:
            parts.append(f"{len(only_gt)} ground-truth image(s) without prediction (e.g. {gt[only_gt[0]].name})")
        raise EvalInputError("prediction and ground-truth names differ: " + "; ".join(parts))
    return sorted(pred)


def load_uint8(path: Path) -> torch.Tensor:
    """(3, H, W) uint8 RGB."""
    from ..image_io import ImageInputError, load_image

    try:
        img = load_image(path)
    except ImageInputError as err:
        raise EvalInputError(str(err)) from None
    return torch.from_numpy(np.ascontiguousarray(np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)))


def iter_batches(names: Sequence[str], pred: dict[str, Path], gt: dict[str, Path] | None,
                 batch_size: int) -> Iterator[tuple[list[str], torch.Tensor, torch.Tensor | None]]:
    """(names, pred (N, 3, H, W) uint8, gt or None) batches; a batch is cut where the image size changes."""
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    buf: list[tuple[str, torch.Tensor, torch.Tensor | None]] = []

    def flush():
        batch = ([n for n, _, _ in buf], torch.stack([p for _, p, _ in buf]),
                 torch.stack([g for _, _, g in buf]) if gt is not None else None)
        buf.clear()
        return batch

    for name in names:
        p = load_uint8(pred[name])
        g = load_uint8(gt[name]) if gt is not None else None
        if g is not None and p.shape != g.shape:
            raise EvalInputError(f"{pred[name].name}: {p.shape[2]}x{p.shape[1]} but its ground truth "
                                 f"{gt[name].name} is {g.shape[2]}x{g.shape[1]}; paired images must have one size")
        if buf and (buf[0][1].shape != p.shape or len(buf) == batch_size):
            yield flush()
        buf.append((name, p, g))
    if buf:
        yield flush()
