"""Evaluation: the paper's metrics (docs/ARCHITECTURE.md §5) for restored faces, a report in the paper's column order, and
``osdface eval`` / ``osdface evaluate-model``.

One concept per module: :mod:`~osdface.eval.psnr_ssim`, :mod:`~osdface.eval.perceptual` (LPIPS, DISTS),
:mod:`~osdface.eval.identity` (Deg, Deg-dlib), :mod:`~osdface.eval.landmarks` (LMD), :mod:`~osdface.eval.fid`,
:mod:`~osdface.eval.no_reference` (MUSIQ, NIQE, CLIPIQA, MANIQA via pyiqa), :mod:`~osdface.eval.report`,
:mod:`~osdface.eval.evaluate` (the runner), :mod:`~osdface.eval.evaluate_model`; the registry of metrics is
:mod:`~osdface.eval.metrics`. Names are imported on first use.
Weight files are read from ``--weights-dir`` only (found by :mod:`osdface.weights`).
"""

from ..lazy import lazy_names

_NAMES = {
    "Evaluator": "evaluate", "evaluate_folders": "evaluate", "parse_metrics": "evaluate",
    "frechet_distance": "fid", "psnr": "psnr_ssim", "ssim": "psnr_ssim",
    "EvalReport": "report", "MethodResult": "report", "to_markdown": "report", "write_report": "report",
    "METRICS": "metrics", "MetricInfo": "metrics",
}
__all__ = sorted(_NAMES)

__getattr__, __dir__ = lazy_names(__name__, _NAMES)
