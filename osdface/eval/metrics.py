"""The one registry of evaluation metrics: each entry says its name, how it prints, which way is better, where it
sits in the paper's tables, whether it needs the ground truth, its command-line aliases and how it is built.

Adding a metric is one :class:`MetricInfo` in :data:`METRICS` (plus the module that computes it). Everything else
(the default lists, the column order, the aliases, the report's arrows and digits) is derived from this list.

* Synthetic sets (with ground truth): the columns in the order of :data:`METRICS` — the paper's CelebA-Test order
  (docs/ARCHITECTURE.md §5: LPIPS, DISTS, MUSIQ, NIQE, Deg, LMD, FID(FFHQ), FID(HQ)), then this project's extras.
* Real-world sets (no ground truth): the paper's order CLIPIQA, MANIQA, MUSIQ, NIQE, FID (``real_order``).

A metric object built by ``factory(evaluator)`` is called as ``metric(pred)`` (no reference) or ``metric(pred, gt)``
on (N, 3, H, W) uint8 batches and returns N values; FID(ref) and FID(HQ) share one feature accumulator.
This module imports no network code: factories import their module when they run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

__all__ = ["MetricInfo", "METRICS", "SYNTHETIC_ORDER", "REAL_ORDER", "DEFAULT_FR_METRICS", "DEFAULT_NR_METRICS",
           "ALIASES", "NO_REFERENCE"]


# ------------------------------------------------------------------------------------------------- factories
def _psnr_ssim(name: str) -> Callable:
    def make(ev):
        from . import psnr_ssim

        fn = psnr_ssim.psnr if name.startswith("PSNR") else psnr_ssim.ssim
        y = not name.endswith("-RGB")
        return lambda p, g: fn(p, g, y_channel=y)
    return make


def _lpips(ev):
    from .perceptual import LPIPSMetric

    return LPIPSMetric.from_weights_dir(ev.weights_dir, net=ev.lpips_net, device=ev.device)


def _dists(ev):
    from .perceptual import DISTSMetric

    return DISTSMetric.from_weights_dir(ev.weights_dir, device=ev.device)


def _arcface_deg(ev):
    from .identity import ArcFaceDeg

    return ArcFaceDeg.from_weights_dir(ev.weights_dir, device=ev.device)


def _dlib_deg(ev):
    from .identity import DlibDeg

    return DlibDeg(device=ev.device)


def _lmd(ev):
    from .landmarks import LandmarkDistance

    return LandmarkDistance()


def _fid(ev):
    from .fid import FIDAccumulator, InceptionFeatures

    return FIDAccumulator(InceptionFeatures.from_weights_dir(ev.weights_dir, device=ev.device))


def _hf_ratio(ev):
    from .sharpness import hf_ratio

    return hf_ratio


def _grid(ev):
    from .sharpness import grid_pattern

    return grid_pattern


def _pyiqa(name: str) -> Callable:
    def make(ev):
        from .no_reference import PyiqaMetric

        return PyiqaMetric(name, ev.weights_dir, device=ev.device)
    return make


# --------------------------------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class MetricInfo:
    name: str
    higher_better: bool
    digits: int
    factory: Callable | None = None  # evaluator → metric object (None: only printed, e.g. the paper's rows)
    per_image: bool = True  # a value per image (FID is a set statistic)
    needs_gt: bool = True
    leading_dot: bool = False  # the paper's ".3365" style for scores in [0, 1]
    aliases: tuple[str, ...] = ()
    real_order: int | None = None  # position in the paper's real-world table (None: not a column there)
    shared: str | None = None  # metrics built once under this key and shared (the FID features)
    target: float | None = None  # best value when neither direction is better (the report shows "→target")


METRICS: dict[str, MetricInfo] = {m.name: m for m in [
    MetricInfo("LPIPS", False, 4, _lpips, leading_dot=True),
    MetricInfo("DISTS", False, 4, _dists, leading_dot=True),
    MetricInfo("MUSIQ", True, 2, _pyiqa("MUSIQ"), needs_gt=False, real_order=2),
    MetricInfo("NIQE", False, 3, _pyiqa("NIQE"), needs_gt=False, real_order=3),
    MetricInfo("Deg", False, 2, _arcface_deg, aliases=("deg-arcface",)),
    MetricInfo("LMD", False, 3, _lmd),
    MetricInfo("FID(ref)", False, 2, _fid, per_image=False, needs_gt=False, real_order=4, shared="FID",
               aliases=("fid-ref", "fid-ffhq", "fid(ffhq)")),
    MetricInfo("FID(HQ)", False, 2, _fid, per_image=False, shared="FID", aliases=("fid-hq",)),
    MetricInfo("PSNR", True, 2, _psnr_ssim("PSNR"), aliases=("psnr-y",)),
    MetricInfo("SSIM", True, 4, _psnr_ssim("SSIM"), aliases=("ssim-y",)),
    MetricInfo("PSNR-RGB", True, 2, _psnr_ssim("PSNR-RGB")),
    MetricInfo("SSIM-RGB", True, 4, _psnr_ssim("SSIM-RGB")),
    MetricInfo("CLIPIQA", True, 4, _pyiqa("CLIPIQA"), needs_gt=False, leading_dot=True, aliases=("clip-iqa",),
               real_order=0),
    MetricInfo("MANIQA", True, 4, _pyiqa("MANIQA"), needs_gt=False, leading_dot=True, real_order=1),
    MetricInfo("Deg-dlib", False, 2, _dlib_deg),
    MetricInfo("HF-ratio", True, 3, _hf_ratio, target=1.0, aliases=("sharpness",)),
    MetricInfo("Grid", False, 3, _grid, needs_gt=False, aliases=("grid-pattern",)),
]}

SYNTHETIC_ORDER = list(METRICS)
REAL_ORDER = sorted((m.name for m in METRICS.values() if m.real_order is not None),
                    key=lambda n: METRICS[n].real_order)
#: Grid is a diagnostic (read against the ground truth's level, not "lower is better"): asked for by name only
DEFAULT_FR_METRICS = [m for m in SYNTHETIC_ORDER if m != "Grid"]
DEFAULT_NR_METRICS = list(REAL_ORDER)
NO_REFERENCE = {m.name for m in METRICS.values() if not m.needs_gt and m.per_image}
ALIASES = {alias: m.name for m in METRICS.values() for alias in (m.name.lower(), *m.aliases)}
