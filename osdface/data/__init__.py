"""Training and benchmark data: the synthetic degradation model (docs/ARCHITECTURE.md §4), paired datasets, the
``osdface degrade`` benchmark-set builder.

Names are imported lazily, so ``import osdface.data.benchmark_set`` (the CLI parser) does not load OpenCV or torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "DegradationConfig": "degradations",
    "Degrader": "degradations",
    "degrade": "degradations",
    "sample_params": "degradations",
    "apply_params": "degradations",
    "gaussian_kernel": "degradations",
    "PairedFaceDataset": "dataset",
    "PreparedPairsDataset": "dataset",
    "split_files": "dataset",
    "resize_square": "dataset",
    "build_benchmark_set": "benchmark_set",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
