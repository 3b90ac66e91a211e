"""Evaluation: the paper's metrics (OSDFACE.md §5) for restored faces, a report in the paper's column order, and
``osdface eval`` / ``osdface evaluate-model``.

One concept per module: :mod:`~osdface.eval.psnr_ssim`, :mod:`~osdface.eval.perceptual` (LPIPS, DISTS),
:mod:`~osdface.eval.identity` (Deg, Deg-dlib), :mod:`~osdface.eval.landmarks` (LMD), :mod:`~osdface.eval.fid`,
:mod:`~osdface.eval.no_reference` (MUSIQ, NIQE, CLIPIQA, MANIQA via pyiqa), :mod:`~osdface.eval.report`,
:mod:`~osdface.eval.evaluate` (the runner), :mod:`~osdface.eval.evaluate_model`, :mod:`~osdface.eval.cli`.
Weight files are read from ``--weights-dir`` only (:mod:`~osdface.eval.weights`).
"""

from .evaluate import Evaluator, evaluate_folders, parse_metrics
from .fid import frechet_distance
from .psnr_ssim import psnr, ssim
from .report import EvalReport, MethodResult, to_markdown, write_report
from .weights import MetricUnavailable

__all__ = ["Evaluator", "evaluate_folders", "parse_metrics", "frechet_distance", "psnr", "ssim", "EvalReport",
           "MethodResult", "to_markdown", "write_report", "MetricUnavailable"]
