"""``osdface evaluate-model``: degrade a set of HQ faces (fixed seed), restore it with a model, evaluate, report.

    osdface evaluate-model --hq ../shared/data/faces --split val --out eval_nano [--model ID_OR_FOLDER]

writes into ``--out`` (new or empty unless ``--overwrite``; nothing is written outside it)::

    bench/hq/NAME.png, bench/lq/NAME.png, bench/params.jsonl   the synthetic set (``osdface degrade``'s layout)
    restored/NAME.png                                          the model's outputs
    realesrgan/NAME.png                                        with ``--realesrgan``: Real-ESRGAN x4plus's outputs
    report.md, report.json, report.csv                         two rows: the model, and the LQ input itself (three
                                                               with ``--realesrgan``)
    grid.png                                                   LQ | output [| Real-ESRGAN] | GT, the first ``--grid``

The degraded set is built by :func:`osdface.data.benchmark_set.build_benchmark_set`, so each image's degradation
depends only on ``--seed`` and its file name: the same as ``osdface degrade --seed S`` gives for that file.
``--split val`` / ``train`` keeps the side of :func:`osdface.data.dataset.split_files` with its defaults (10 %
validation, split seed 0), the split the training uses. ``--hq`` may also be a set built by ``osdface degrade``
(a folder with ``hq/``, ``lq/`` and ``params.jsonl``): it is then used as it is. The "LQ input" row is the degraded
image itself (resized back to the HQ size with the interpolation recorded in ``params.jsonl``: bilinear by default),
the baseline a model must beat. ``--realesrgan`` adds Real-ESRGAN x4plus, what GFPGAN's and CodeFormer's users
enlarge with, run on each image's small degraded input (:mod:`osdface.eval.baselines`).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Callable

from .baselines import BASELINES, realesrgan_label, realesrgan_outputs
from .image_sets import EvalInputError, list_set

__all__ = ["evaluate_model", "select_files", "LQ_ROW"]

LQ_ROW = "LQ input"
SPLITS = ("all", "val", "train")


def select_files(hq_dir: str | os.PathLike, split: str = "all", limit: int | None = None) -> list[Path]:
    """The HQ images of ``hq_dir`` (sorted by name), the ``split`` side of :func:`split_files` (defaults), first
    ``limit``."""
    from ..data.dataset import split_files
    from ..image_io import ImageInputError, list_images

    if split not in SPLITS:
        raise EvalInputError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    if limit is not None and limit < 1:
        raise EvalInputError(f"--limit must be at least 1, got {limit}")
    try:
        files, _ = list_images(hq_dir)
    except ImageInputError as err:
        raise EvalInputError(f"--hq {err}") from None
    if split != "all":
        train, val = split_files(files)
        files = val if split == "val" else train
    files = files[:limit] if limit is not None else files
    if not files:
        raise EvalInputError(f"--hq {hq_dir}: no images in the {split!r} split")
    return files


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise EvalInputError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise EvalInputError(f"--out {out}: the folder is not empty; choose a new folder or pass --overwrite")


def _is_prepared(folder: Path) -> bool:
    return (folder / "hq").is_dir() and (folder / "lq").is_dir() and (folder / "params.jsonl").is_file()


def _build_set(files: list[Path], bench: Path, seed: int, size: int, workers: int, log, degradation=None) -> None:
    """Degrade ``files`` into ``bench`` with the benchmark-set builder, through a folder of links to them."""
    from ..data.benchmark_set import BenchmarkSetError, build_benchmark_set

    selection = bench.parent / ".selection"
    if selection.exists():
        shutil.rmtree(selection)
    selection.mkdir(parents=True)
    try:
        for f in files:
            try:
                (selection / f.name).symlink_to(f.resolve())
            except OSError:  # no symlinks here (some file systems): copy
                shutil.copy2(f, selection / f.name)
        result = build_benchmark_set(selection, bench, seed, size=size, workers=workers, overwrite=True, log=log,
                                     config=degradation)
    except BenchmarkSetError as err:
        raise EvalInputError(str(err)) from None
    finally:
        shutil.rmtree(selection, ignore_errors=True)
    if result.failed:
        log(f"{len(result.failed)} image(s) could not be degraded and are left out")


def _progress(total: int, every: int, log) -> Callable[[int], None]:
    """A counter that logs ``restored k/total`` every ``every`` images and at the end."""
    done = [0]

    def tick(n: int) -> None:
        done[0] += n
        if done[0] % every == 0 or done[0] == total:
            log(f"restored {done[0]}/{total}")
    return tick


def evaluate_model(model: str | None, hq: str | os.PathLike, out: str | os.PathLike, *, split: str = "all",
                   limit: int | None = None, seed: int = 0, size: int | None = None, device="cpu", dtype: str = "fp32",
                   batch_size: int = 4, metrics=None, weights_dir=None, fid_ref=None, lpips_net: str = "alex",
                   grid: int = 6, workers: int = 1, overwrite: bool = False, pipe=None, evaluator_kwargs=None,
                   degradation=None, log: Callable[[str], None] | None = None, baselines=(),
                   realesrgan_weights=None):
    """The whole command as a function; returns ``(report, paths)`` (``paths``: report files and the grid).
    ``model``: a folder or Hub id (None: the bundled nano model); ``pipe``: an already loaded
    :class:`OSDFacePipeline` (then ``model`` is only its label). ``size``: the HQ size (default: the model's
    ``process_size``, the size of its outputs, 512 for nano and sd21). ``degradation``: a ``DegradationConfig`` (or
    a dict of its fields) for the synthetic set (default: docs/ARCHITECTURE.md §4's ranges). ``baselines``:
    reference methods to report beside the model (``("realesrgan",)``: Real-ESRGAN x4plus from
    ``realesrgan_weights``, a converted folder, or the converted cache)."""
    from ..devices import dtype_name
    from ..restore import restore_files
    from .evaluate import Evaluator, parse_metrics
    from .grid import save_grid
    from .report import write_report

    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    out, hq = Path(out), Path(hq)
    _check_out(out, overwrite)
    metric_names = parse_metrics(metrics, has_gt=True)
    for sub in ("bench", "restored"):  # with --overwrite, this command's own sub-folders start empty
        if overwrite and (out / sub).is_dir() and (out / sub).resolve() != hq.resolve():
            shutil.rmtree(out / sub)
    t0 = time.perf_counter()
    if pipe is None:
        from ..restore import load_pipeline

        pipe = load_pipeline(model, device=device, dtype=dtype, fuse_lora=False)
        model = pipe.name
    load_s = time.perf_counter() - t0
    dtype = dtype_name(pipe.dtype)
    size = int(size) if size is not None else int(pipe.config.process_size)
    if _is_prepared(hq):
        bench = hq
        keep = {p.stem for p in select_files(bench / "hq", split, limit)}
        log(f"using the prepared set {bench} ({len(keep)} image(s))")
    else:
        files = select_files(hq, split, limit)
        bench = out / "bench"
        log(f"degrading {len(files)} image(s) ({split} split, seed {seed}) into {bench}")
        if isinstance(degradation, dict):
            from ..data.degradations import DegradationConfig

            degradation = DegradationConfig(**degradation)
        _build_set(files, bench, seed, size, workers, log, degradation)
        keep = None
    gt, lq = list_set(bench / "hq", "--hq"), list_set(bench / "lq", "--hq (lq/)")
    if keep is not None:
        gt = {k: v for k, v in gt.items() if k in keep}
        lq = {k: v for k, v in lq.items() if k in keep}

    names = sorted(lq)
    summary = restore_files(pipe, [lq[n] for n in names], out, faces_dir="restored", manifest=None,
                            batch_size=batch_size,
                            log=log, on_done=_progress(len(names), batch_size, log))
    if summary.failed:
        raise EvalInputError(f"{len(summary.failed)} degraded image(s) could not be restored, e.g. {summary.failed[0]}")
    restore_s = summary.model_seconds
    restored = list_set(out / "restored", "restored")
    unknown = set(baselines) - set(BASELINES)
    if unknown:
        raise EvalInputError(f"unknown baseline(s) {sorted(unknown)}; choose from {', '.join(BASELINES)}")
    extra, baseline_s = {}, {}
    if "realesrgan" in baselines:
        t2 = time.perf_counter()
        from ..networks.rrdbnet import RealESRGANUpsampler

        up = RealESRGANUpsampler(weights=realesrgan_weights, device=device)
        row = realesrgan_label(up)
        realesrgan_outputs(bench, out / "realesrgan", sorted(gt), upsampler=up, log=log)
        extra[row] = list_set(out / "realesrgan", "realesrgan")
        baseline_s[row] = round((time.perf_counter() - t2) / max(len(gt), 1), 3)

    label = f"{Path(model).name if Path(model).exists() else model} ({pipe.config.preset})"
    evaluator = Evaluator(metric_names, weights_dir=weights_dir, device=device, fid_ref=fid_ref,
                          lpips_net=lpips_net, batch_size=batch_size, log=log, **(evaluator_kwargs or {}))
    t1 = time.perf_counter()
    report = evaluator.evaluate({label: restored, **extra, LQ_ROW: lq}, gt)
    eval_s = time.perf_counter() - t1
    n = len(gt)
    report.settings.update({"model": str(model), "preset": pipe.config.preset, "hq": str(hq), "split": split,
                            "limit": limit, "seed": seed, "size": size, "dtype": dtype,
                            "model_load_seconds": round(load_s, 2),
                            "restore_seconds_per_image": round(restore_s / max(n, 1), 3),
                            "metric_seconds_per_100_images": round(eval_s / max((2 + len(extra)) * n, 1) * 100, 1)})
    if baseline_s:
        report.settings["baseline_seconds_per_image"] = baseline_s
    report.notes.append(f"{n} image(s), {split} split, degradation seed {seed}; '{LQ_ROW}' is the degraded input "
                        f"(resized back as recorded in params.jsonl); restoration {restore_s / max(n, 1):.2f} s/image "
                        f"on {device} {dtype}")
    paths = write_report(report, out)
    names = sorted(gt)[:max(0, grid)]
    if names:
        columns = [("LQ", lq), ("output", restored), *((k.split(" (")[0], v) for k, v in extra.items()), ("GT", gt)]
        paths["grid"] = save_grid([(nm, [col[nm] for _, col in columns]) for nm in names], out / "grid.png",
                                  titles=tuple(t for t, _ in columns))
    return report, paths
