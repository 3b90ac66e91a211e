"""Training and benchmark data: the synthetic degradation model (docs/ARCHITECTURE.md §4), paired datasets, the
benchmark-set builder (``osdface degrade``).

Names are imported on first use.
"""

from __future__ import annotations

from ..lazy import lazy_names

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

__getattr__, __dir__ = lazy_names(__name__, _EXPORTS)
