"""Run the metrics over one or more restored sets (optionally against a ground-truth set) and build the report.

    from osdface.eval import evaluate_folders
    report = evaluate_folders({"ours": "out/restored_faces"}, gt="bench/hq", weights_dir="weights")

Each metric is built once; one whose weights or package are missing is recorded as unavailable (with its
"needs <file>, get it from <where>" line) and the others still run. Images are read in batches (uint8) and moved
to ``device``; PSNR/SSIM, LPIPS, DISTS, Deg and the FID features run batched there; the dlib metrics (LMD,
Deg-dlib) run on the CPU image by image. The ground truth's Inception features are computed once and shared by
every method. ``seconds`` / ``cpu_seconds`` in the report's settings hold each metric's total wall / process CPU
time (building included).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

import torch

from ..weights import MissingWeightsError
from .image_sets import EvalInputError, iter_batches, list_set, pair_sets
from .metrics import ALIASES, DEFAULT_FR_METRICS, DEFAULT_NR_METRICS, METRICS, NO_REFERENCE
from .report import EvalReport, MethodResult

__all__ = ["EvalInputError", "ALIASES", "DEFAULT_FR_METRICS", "DEFAULT_NR_METRICS", "parse_metrics", "Evaluator",
           "evaluate_folders"]

FID_REF_HINT = ("needs --fid-ref: Inception statistics of the reference set (.npz with mu and sigma; for the "
                "paper's FID(FFHQ), FFHQ's statistics, e.g. written by `osdface eval --pred FFHQ_DIR "
                "--save-fid-stats ffhq.npz`)")


def parse_metrics(items, has_gt: bool) -> list[str]:
    """Metric names from the command line (any case, comma- or space-separated; ``all``) → canonical names."""
    if not items:
        return list(DEFAULT_FR_METRICS if has_gt else DEFAULT_NR_METRICS)
    names = []
    for item in items:
        for part in str(item).split(","):
            part = part.strip()
            if not part:
                continue
            if part.lower() == "all":
                names += DEFAULT_FR_METRICS if has_gt else DEFAULT_NR_METRICS
                continue
            if part.lower() == "fid":
                names += ["FID(ref)", "FID(HQ)"] if has_gt else ["FID(ref)"]
                continue
            canonical = ALIASES.get(part.lower())
            if canonical is None:
                raise ValueError(f"unknown metric {part!r}; choose from {', '.join(METRICS)} (or 'all', 'fid')")
            if not has_gt and METRICS[canonical].needs_gt:
                raise ValueError(f"{canonical} compares with the ground truth: pass --gt DIR (without it only "
                                 f"{', '.join(DEFAULT_NR_METRICS)} can be computed)")
            names.append(canonical)
    return list(dict.fromkeys(names))


class Evaluator:
    """Builds the requested metrics once (each by its factory in :data:`osdface.eval.metrics.METRICS`).
    ``factories`` may override how a metric is built (tests pass random-weight stand-ins): metric name (``"FID"``
    for the shared FID features) → a callable without arguments returning the metric object."""

    def __init__(self, metrics: list[str], *, weights_dir=None, device="cpu", lpips_net: str = "alex",
                 fid_ref=None, batch_size: int = 8, factories: dict[str, Callable] | None = None,
                 log: Callable[[str], None] | None = None):
        self.metrics = list(metrics)
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        self.weights_dir = Path(weights_dir) if weights_dir is not None else None
        self.lpips_net = lpips_net
        self.log = log or (lambda line: None)
        self.unavailable: dict[str, str] = {}
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}  # process CPU time: the cost on an idle machine (1 thread)
        self.objects: dict[str, object] = {}
        self.fid_ref_stats = None
        factories = dict(factories or {})
        for name in self.metrics:
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                if name == "FID(ref)":
                    if fid_ref is None:
                        raise MissingWeightsError(FID_REF_HINT)
                    from .fid import load_stats

                    try:
                        self.fid_ref_stats = load_stats(fid_ref)
                    except (OSError, ValueError) as err:
                        raise MissingWeightsError(f"needs readable --fid-ref statistics: {err}") from None
                info = METRICS[name]
                key = info.shared or name
                if key not in self.objects:
                    override = factories.get(key)
                    self.objects[key] = override() if override else info.factory(self)
            except MissingWeightsError as err:
                self.unavailable[name] = str(err)  # listed under the table
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0
                self.cpu_seconds[name] = self.cpu_seconds.get(name, 0.0) + time.process_time() - c0

    def _timed(self, name: str, fn, *args):
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            return fn(*args)
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0
            self.cpu_seconds[name] = self.cpu_seconds.get(name, 0.0) + time.process_time() - c0

    def _fail(self, name: str, err: Exception) -> None:
        self.unavailable[name] = f"failed while running: {type(err).__name__}: {str(err).splitlines()[0][:200]}"
        self.log(f"{name}: {self.unavailable[name]}")
        self.objects.pop(name, None)

    def evaluate(self, sets: dict[str, dict[str, Path]], gt: dict[str, Path] | None,
                 progress: Callable[[int], None] | None = None) -> EvalReport:
        """``sets``: method name → (stem → file); ``gt``: stem → file or None (no-reference evaluation)."""
        has_gt = gt is not None
        fid = self.objects.get("FID")
        want_fid_hq = "FID(HQ)" in self.metrics and fid is not None and has_gt
        methods = []
        gt_features_done = False
        for method, pred in sets.items():
            names = pair_sets(pred, gt) if has_gt else sorted(pred)
            result = MethodResult(method, per_image={n: {} for n in names}, n_images=len(names))
            for batch_names, p, g in iter_batches(names, pred, gt, self.batch_size):
                p_dev = p.to(self.device)
                g_dev = g.to(self.device) if g is not None else None
                for name in self.metrics:
                    obj = self.objects.get(name)
                    if obj is None or name not in METRICS or not METRICS[name].per_image:
                        continue
                    try:
                        args = (p_dev,) if name in NO_REFERENCE else (p_dev, g_dev)
                        values = self._timed(name, obj, *args)
                    except Exception as err:  # noqa: BLE001 - one metric failing must not stop the others
                        self._fail(name, err)
                        continue
                    for n, v in zip(batch_names, values.tolist()):
                        result.per_image[n][name] = float(v)
                if fid is not None:
                    self._timed("FID", fid.update, method, p_dev)
                    if want_fid_hq and not gt_features_done:
                        self._timed("FID", fid.update, "__gt__", g_dev)
                if progress:
                    progress(len(batch_names))
            gt_features_done = True
            for name in self.metrics:
                if name in self.unavailable or not METRICS.get(name, METRICS["PSNR"]).per_image:
                    continue
                vals = [result.per_image[n].get(name) for n in names]
                vals = [v for v in vals if v is not None]
                if vals:
                    result.summary[name] = math.fsum(vals) / len(vals) if all(map(math.isfinite, vals)) else \
                        (math.inf if any(v == math.inf for v in vals) else math.nan)
            if fid is not None:
                try:
                    if "FID(ref)" in self.metrics and self.fid_ref_stats is not None:
                        result.summary["FID(ref)"] = self._timed("FID(ref)", fid.fid, method, self.fid_ref_stats)
                    if want_fid_hq:
                        result.summary["FID(HQ)"] = self._timed("FID(HQ)", fid.fid, method, "__gt__")
                except ValueError as err:  # e.g. a set of one image
                    for k in ("FID(ref)", "FID(HQ)"):
                        if k in self.metrics and k not in self.unavailable:
                            self.unavailable[k] = f"failed: {err}"
            methods.append(result)
        n_total = sum(m.n_images or 0 for m in methods)
        settings = {"device": str(self.device), "batch_size": self.batch_size, "lpips_net": self.lpips_net,
                    "weights_dir": str(self.weights_dir) if self.weights_dir else None,
                    "psnr_ssim": "Y = BT.601 luma (PSNR, SSIM) and RGB (PSNR-RGB, SSIM-RGB), 0-255 scale, "
                                 "SSIM 11x11 Gaussian sigma 1.5, no border crop",
                    "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
                    "cpu_seconds": {k: round(v, 3) for k, v in self.cpu_seconds.items()},
                    "images_evaluated": n_total}
        report = EvalReport(methods=methods, metrics=self.metrics, unavailable=dict(self.unavailable),
                            has_gt=has_gt, settings=settings)
        for name, obj in self.objects.items():
            if getattr(obj, "fallback_boxes", 0):
                report.notes.append(f"{name}: HOG found no face on {obj.fallback_boxes} ground-truth image(s); "
                                    "the fixed FFHQ-aligned box was used there")
        return report


def evaluate_folders(preds: dict[str, str | Path], gt: str | Path | None = None, metrics=None, **kwargs) -> EvalReport:
    """Evaluate folders: ``preds`` method name → folder; ``gt`` the ground-truth folder (None: no-reference)."""
    gt_set = list_set(gt, "--gt") if gt is not None else None
    sets = {name: list_set(folder, "--pred") for name, folder in preds.items()}
    metric_names = parse_metrics(metrics, gt is not None)
    evaluator = Evaluator(metric_names, **kwargs)
    return evaluator.evaluate(sets, gt_set)

