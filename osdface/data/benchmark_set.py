"""Build a fixed synthetic benchmark set (CelebA-Test style) from a folder of HQ face crops.

    osdface degrade --input ../shared/data/faces --output bench512 --seed 0 [--size 512] [--limit N] [--workers K]

writes::

    DIR/hq/NAME.png     the HQ image, centre-cropped to a square if needed and resized to SIZE² (Lanczos)
    DIR/lq/NAME.png     x_L = JPEG_q((x_H ⊛ k_σ)↓_r + n_δ)↑_r  (docs/ARCHITECTURE.md §4; osdface.data.degradations)
    DIR/params.jsonl    one JSON object per image, in name order: name, source, seed, run_seed, size, and every
                        sampled parameter; ``apply_params(hq, line)`` or ``degrade(hq, line["seed"])`` replays it

Each image's seed is derived from ``--seed`` and the input file's name (SHA-256), so an image's degradation does
not depend on the other files, on ``--limit`` or on ``--workers``; the same command gives identical bytes.
``NAME`` is the input file's stem (``stem_ext`` when two inputs share a stem). The output folder must be new or
empty unless ``--overwrite``; nothing is written outside it. An unreadable input gives one ``error:`` line, the rest
go on, and the exit status is 1. ``params.jsonl`` is written last (atomically): a set without it is incomplete.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

__all__ = ["build_benchmark_set", "BenchmarkSetError", "BenchmarkSetResult", "image_seed"]


class BenchmarkSetError(Exception):
    """The set cannot be built at all (bad arguments, missing input, non-empty output, ...): one readable line."""


@dataclass
class BenchmarkSetResult:
    output: Path
    written: list[str] = field(default_factory=list)  # output names (NAME.png), in order
    failed: list[tuple[str, str]] = field(default_factory=list)  # (input path, one-line reason)
    skipped: list[str] = field(default_factory=list)  # non-image files in the input folder


def image_seed(run_seed: int, name: str) -> int:
    """The per-image seed: the first 63 bits of SHA-256(``"{run_seed}/{name}"``), ``name`` = the input file name."""
    digest = hashlib.sha256(f"{int(run_seed)}/{name}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def _output_stems(inputs: list[Path]) -> list[str]:
    """Distinct output stems (compared case-insensitively): the input's stem, ``stem_ext`` when stems clash."""
    counts: dict[str, int] = {}
    for p in inputs:
        counts[p.stem.casefold()] = counts.get(p.stem.casefold(), 0) + 1
    taken: set[str] = set()
    stems = []
    for p in inputs:
        stem = p.stem if counts[p.stem.casefold()] == 1 else f"{p.stem}_{p.suffix.lstrip('.')}"
        candidate, n = stem, 2
        while candidate.casefold() in taken:
            candidate, n = f"{stem}_{n}", n + 1
        taken.add(candidate.casefold())
        stems.append(candidate)
    return stems


def _process_one(job: tuple) -> tuple[str, object]:
    """Worker: load, resize, degrade, write both PNGs. Returns ("ok", record) or ("error", reason line)."""
    from PIL import Image

    from ..image_io import ImageInputError, load_image, save_png
    from .dataset import resize_square
    from .degradations import degrade

    src, stem, seed, run_seed, size, config, hq_dir, lq_dir = job
    try:
        hq = resize_square(load_image(src), size)
    except ImageInputError as err:
        return "error", str(err)
    except OSError as err:  # pragma: no cover - load_image maps the usual failures to ImageInputError
        return "error", f"{src}: {err.strerror or err}"
    lq, params = degrade(hq, seed, config)
    name = f"{stem}.png"
    try:
        save_png(Image.fromarray(hq), Path(hq_dir) / name)
        save_png(Image.fromarray(lq), Path(lq_dir) / name)
    except OSError as err:
        return "error", f"{src}: cannot write {name}: {err.strerror or err}"
    record = {"name": name, "source": Path(src).name, "seed": seed, "run_seed": run_seed, "size": size, **params}
    return "ok", record


def _init_worker() -> None:
    try:
        import cv2

        cv2.setNumThreads(1)  # K worker processes: one OpenCV thread each
    except Exception:  # noqa: BLE001 - only a speed setting
        pass


def _check_output(out: Path, overwrite: bool, input_dir: Path | None) -> None:
    if out.exists() and not out.is_dir():
        raise BenchmarkSetError(f"--output {out}: exists and is not a folder")
    if out.is_dir():
        try:
            entries = list(out.iterdir())
        except OSError as err:
            raise BenchmarkSetError(f"--output {out}: cannot list it ({err.strerror or err})") from None
        if entries and not overwrite:
            raise BenchmarkSetError(f"--output {out}: the folder is not empty ({len(entries)} entries); "
                                    "choose a new folder or pass --overwrite")
    for sub in ("hq", "lq", "params.jsonl"):
        p = out / sub
        if p.is_symlink():
            raise BenchmarkSetError(f"--output {out}: {sub} is a symbolic link; refusing to write through it")
        if sub != "params.jsonl" and p.exists() and not p.is_dir():
            raise BenchmarkSetError(f"--output {out}: {sub} exists and is not a folder")
    if input_dir is not None:
        src = input_dir.resolve()
        for sub in ("hq", "lq"):
            if (out / sub).resolve() == src:
                raise BenchmarkSetError(f"--output {out}: {sub}/ is the input folder; its files would be replaced")


def build_benchmark_set(input_dir: str | os.PathLike, output_dir: str | os.PathLike, seed: int, size: int = 512,
                        limit: int | None = None, workers: int = 1, overwrite: bool = False, config=None,
                        progress: bool = False, log: Callable[[str], None] | None = None) -> BenchmarkSetResult:
    """Write ``output_dir/{hq,lq}/NAME.png`` and ``output_dir/params.jsonl`` for the images of ``input_dir``.

    ``input_dir``: a folder (non-recursive, image extensions, sorted by name) or one image file. ``limit``: the
    first N images by name. ``workers``: processes (1: in this process). ``config``: a ``DegradationConfig``
    (default: the spec's). ``log``: receives one line per unreadable input (``error: ...``) and per skipped
    non-image file (default: print to stderr).

    Raises:
        BenchmarkSetError: nothing could be done (bad arguments, missing input, output not empty without
            ``overwrite``, no images). Per-image failures are reported in the result instead.
    """
    from ..image_io import ImageInputError, list_images
    from .degradations import DegradationConfig

    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    if int(seed) < 0:
        raise BenchmarkSetError(f"--seed must be non-negative, got {seed}")
    if int(size) < 8:
        raise BenchmarkSetError(f"--size must be at least 8, got {size}")
    if limit is not None and int(limit) < 1:
        raise BenchmarkSetError(f"--limit must be at least 1, got {limit}")
    if int(workers) < 1:
        raise BenchmarkSetError(f"--workers must be at least 1, got {workers}")
    config = config if config is not None else DegradationConfig()
    try:
        inputs, skipped = list_images(input_dir)
    except ImageInputError as err:
        raise BenchmarkSetError(f"--input {err}") from None
    if limit is not None:
        inputs = inputs[: int(limit)]
    if not inputs:
        raise BenchmarkSetError(f"--input {input_dir}: no images found")
    out = Path(output_dir)
    in_path = Path(input_dir)
    _check_output(out, overwrite, in_path if in_path.is_dir() else in_path.parent)

    result = BenchmarkSetResult(output=out, skipped=[str(p) for p in skipped])
    for p in skipped:
        log(f"skipping {p}: not an image file type ({p.suffix or 'no extension'})")
    hq_dir, lq_dir = out / "hq", out / "lq"
    try:
        hq_dir.mkdir(parents=True, exist_ok=True)
        lq_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise BenchmarkSetError(f"--output {out}: cannot create it ({err.strerror or err})") from None
    # nothing is written outside DIR: output names are bare file names inside hq/ and lq/
    stems = _output_stems(inputs)
    for stem in stems:
        if Path(stem).name != stem or stem in ("", ".", ".."):  # pragma: no cover - stems never hold separators
            raise BenchmarkSetError(f"unsafe output name {stem!r}")

    jobs = [(str(p), stem, image_seed(seed, p.name), int(seed), int(size), config, str(hq_dir), str(lq_dir))
            for p, stem in zip(inputs, stems)]
    records = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), unit="img", file=sys.stderr)

    def handle(job, outcome):
        status, value = outcome
        if status == "ok":
            records.append(value)
            result.written.append(value["name"])
        else:
            result.failed.append((job[0], value))
            (bar.write if bar is not None else log)(f"error: {value}")
        if bar is not None:
            bar.update(1)

    try:
        if int(workers) == 1 or len(jobs) == 1:
            for job in jobs:
                handle(job, _process_one(job))
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # "spawn", not fork: forking a process that runs other threads (a web server, torch's pools) can
            # deadlock the children on a lock held at fork time (seen with the Gradio demo's tests in one process)
            with ProcessPoolExecutor(max_workers=min(int(workers), len(jobs)), initializer=_init_worker,
                                     mp_context=multiprocessing.get_context("spawn")) as ex:
                for job, outcome in zip(jobs, ex.map(_process_one, jobs, chunksize=4)):
                    handle(job, outcome)
    finally:
        if bar is not None:
            bar.close()

    # params.jsonl last, atomically, in input (name) order whatever the worker count
    tmp = out / f".params.jsonl.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            for rec in records:
                fh.write(json.dumps(rec) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out / "params.jsonl")
    except OSError as err:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise BenchmarkSetError(f"cannot write {out / 'params.jsonl'}: {err.strerror or err}") from None
    return result
