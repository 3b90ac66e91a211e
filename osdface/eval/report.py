"""The evaluation report: one row per method, columns in the paper's order, as markdown, JSON and CSV.

* Synthetic sets (with ground truth), the paper's CelebA-Test order (docs/ARCHITECTURE.md §5):
  LPIPS, DISTS, MUSIQ, NIQE, Deg, LMD, FID(FFHQ), FID(HQ); then this project's extras: PSNR, SSIM (Y channel),
  PSNR-RGB, SSIM-RGB, CLIPIQA, MANIQA, Deg-dlib.
* Real-world sets (no ground truth), the paper's order: CLIPIQA, MANIQA, MUSIQ, NIQE, FID.

FID(FFHQ) is shown as ``FID(ref)``: it is computed against whatever statistics ``--fid-ref`` names (the paper: FFHQ).
Values are means over images, except FID (a set statistic). A PSNR of identical images is ``inf`` and so is a mean
that includes one; JSON writes it as the string ``"inf"``. Metrics that could not run are ``n/a`` in the table and
listed under it with their "unavailable: needs ..." line. ``--compare-paper`` adds the paper's rows (§5: OSDFace and
CodeFormer on CelebA-Test; OSDFace on the real-world sets).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from .metrics import METRICS, REAL_ORDER, SYNTHETIC_ORDER

__all__ = ["PAPER_ROWS", "MethodResult", "EvalReport", "format_value", "ordered_columns", "to_markdown",
           "write_report", "paper_rows"]


# docs/ARCHITECTURE.md §5, as printed in the paper
PAPER_ROWS: dict[str, dict[str, dict[str, float]]] = {
    "celeba-test": {
        "CodeFormer": {"LPIPS": .3412, "DISTS": .2151, "MUSIQ": 75.94, "NIQE": 4.516, "Deg": 62.20, "LMD": 5.382,
                       "FID(ref)": 62.03, "FID(HQ)": 26.86},
        "OSDFace": {"LPIPS": .3365, "DISTS": .1773, "MUSIQ": 75.64, "NIQE": 3.884, "Deg": 60.07, "LMD": 5.287,
                    "FID(ref)": 45.42, "FID(HQ)": 17.06},
    },
    "wider-test": {"OSDFace": {"CLIPIQA": .7284, "MANIQA": .5229, "MUSIQ": 74.60, "NIQE": 3.774, "FID(ref)": 34.65}},
    "lfw-test": {"OSDFace": {"CLIPIQA": .7203, "MANIQA": .5493, "MUSIQ": 75.35, "NIQE": 3.871, "FID(ref)": 44.63}},
    "webphoto-test": {"OSDFace": {"CLIPIQA": .7106, "MANIQA": .5162, "MUSIQ": 73.94, "NIQE": 3.986,
                                  "FID(ref)": 84.60}},
}


@dataclass
class MethodResult:
    """One row: ``summary`` metric → value (mean over images, or the set value for FID); ``per_image``
    image name → metric → value; ``source`` where the row comes from (a folder, or "paper")."""

    name: str
    summary: dict[str, float] = field(default_factory=dict)
    per_image: dict[str, dict[str, float]] = field(default_factory=dict)
    n_images: int | None = None
    source: str = ""


@dataclass
class EvalReport:
    methods: list[MethodResult]
    metrics: list[str]  # the requested metrics (available or not), any order
    unavailable: dict[str, str] = field(default_factory=dict)  # metric → "needs ..." message
    has_gt: bool = True
    settings: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def format_value(metric: str, value) -> str:
    """A value as the table prints it: ``inf`` for infinities, ``n/a`` for None/NaN, paper-style digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    value = float(value)
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    info = METRICS.get(metric)
    digits = info.digits if info else 4
    text = f"{value:.{digits}f}"
    if info and info.leading_dot and 0 <= value < 1:
        text = text[1:]
    return text


def ordered_columns(metrics, has_gt: bool) -> list[str]:
    """The requested metrics in the paper's order (synthetic or real-world), unknown names last as given."""
    order = SYNTHETIC_ORDER if has_gt else REAL_ORDER + [m for m in SYNTHETIC_ORDER if m not in REAL_ORDER]
    metrics = list(dict.fromkeys(metrics))
    return [m for m in order if m in metrics] + [m for m in metrics if m not in order]


def paper_rows(benchmark: str | None, has_gt: bool) -> list[MethodResult]:
    """The paper's rows for ``benchmark`` (``celeba-test``, ``wider-test``, ``lfw-test``, ``webphoto-test``);
    None: CelebA-Test for synthetic sets, all three real-world sets otherwise."""
    if benchmark is None:
        keys = ["celeba-test"] if has_gt else ["wider-test", "lfw-test", "webphoto-test"]
    else:
        if benchmark not in PAPER_ROWS:
            raise ValueError(f"--compare-paper {benchmark}: choose one of {', '.join(PAPER_ROWS)}")
        keys = [benchmark]
    rows = []
    for key in keys:
        for method, values in PAPER_ROWS[key].items():
            rows.append(MethodResult(f"{method} (paper, {key})", dict(values), source="paper"))
    return rows


def _arrow(metric: str) -> str:
    info = METRICS.get(metric)
    if info is None:
        return ""
    if info.target is not None:
        return f"→{info.target:g}"
    return "↑" if info.higher_better else "↓"


def to_markdown(report: EvalReport) -> str:
    cols = ordered_columns(report.metrics, report.has_gt)
    head = ["method", "images"] + [f"{c}{_arrow(c)}" for c in cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in report.methods:
        cells = [m.name, "" if m.n_images is None else str(m.n_images)]
        cells += [format_value(c, m.summary.get(c)) for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    extra = []
    for metric in cols:
        if metric in report.unavailable:
            extra.append(f"- {metric}: unavailable: {report.unavailable[metric]}")
    if "FID(ref)" in cols:
        extra.append("- FID(ref): against the --fid-ref statistics (the paper's FID(FFHQ) column: FFHQ)")
    extra += [f"- {n}" for n in report.notes]
    return "\n".join(lines + ([""] + extra if extra else [])) + "\n"


def _json_value(v):
    if isinstance(v, float) and math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def to_json(report: EvalReport) -> dict:
    cols = ordered_columns(report.metrics, report.has_gt)
    return {
        "columns": cols,
        "higher_is_better": {c: METRICS[c].higher_better for c in cols if c in METRICS},
        "methods": [{"name": m.name, "source": m.source, "n_images": m.n_images,
                     "summary": {c: _json_value(m.summary.get(c)) for c in cols},
                     "per_image": {img: {k: _json_value(v) for k, v in vals.items()}
                                   for img, vals in m.per_image.items()}}
                    for m in report.methods],
        "unavailable": {k: f"unavailable: {v}" for k, v in report.unavailable.items()},
        "settings": report.settings,
        "notes": report.notes,
    }


def _csv_rows(report: EvalReport):
    cols = [c for c in ordered_columns(report.metrics, report.has_gt) if c not in METRICS or METRICS[c].per_image]
    yield ["method", "image"] + cols
    for m in report.methods:
        for img, vals in m.per_image.items():
            row = [m.name, img]
            for c in cols:
                v = vals.get(c)
                row.append("" if v is None else ("inf" if math.isinf(v) else repr(float(v))))
            yield row


def write_report(report: EvalReport, out: str | Path) -> dict[str, Path]:
    """Write ``report.md``, ``report.json`` and ``report.csv`` (per-image values). ``out``: a folder (created), or a
    file name ending in ``.json`` whose siblings with the same stem get the ``.md`` and ``.csv``."""
    out = Path(out)
    if out.suffix.lower() == ".json":
        folder, stem = out.parent, out.stem
    else:
        folder, stem = out, "report"
    folder.mkdir(parents=True, exist_ok=True)
    paths = {ext: folder / f"{stem}.{ext}" for ext in ("md", "json", "csv")}
    paths["md"].write_text(to_markdown(report), encoding="utf-8")
    paths["json"].write_text(json.dumps(to_json(report), indent=1) + "\n", encoding="utf-8")
    with open(paths["csv"], "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(_csv_rows(report))
    return paths
