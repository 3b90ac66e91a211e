"""``osdface degrade``: a fixed synthetic (LQ, HQ) benchmark set from a folder of HQ face crops
(:func:`osdface.data.benchmark_set.build_benchmark_set`; its docstring has the layout and the seeding)."""

from __future__ import annotations

from .common import err, positive_int


def add_parsers(sub) -> None:
    d = sub.add_parser("degrade", help="build a fixed synthetic (LQ, HQ) benchmark set from HQ faces",
                       description="Degrade HQ face crops with the paper's degradation model (docs/ARCHITECTURE.md "
                                   "§4) into DIR/hq, DIR/lq and DIR/params.jsonl; the same command gives identical "
                                   "bytes.")
    d.add_argument("-i", "--input", required=True, help="a folder of HQ face crops (or one image file)")
    d.add_argument("-o", "--output", required=True, help="the folder to write: hq/, lq/, params.jsonl (new or empty)")
    d.add_argument("--seed", type=int, required=True, help="run seed (each image's seed derives from it and its name)")
    d.add_argument("--size", type=positive_int, default=512, help="HQ and LQ size in pixels (default 512)")
    d.add_argument("--limit", type=positive_int, default=None, help="only the first N images (by name)")
    d.add_argument("--workers", type=positive_int, default=1, help="worker processes (default 1)")
    d.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty --output")
    d.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    d.set_defaults(func=cmd_degrade)


def cmd_degrade(args) -> int:
    from ..data.benchmark_set import BenchmarkSetError, build_benchmark_set

    try:
        result = build_benchmark_set(args.input, args.output, args.seed, size=args.size, limit=args.limit,
                                     workers=args.workers, overwrite=args.overwrite, progress=not args.quiet)
    except BenchmarkSetError as e:
        err(str(e))
        return 2
    total = len(result.written) + len(result.failed)
    print(f"wrote {len(result.written)} of {total} pair(s) into {result.output} (hq/, lq/, params.jsonl)"
          + (f"; {len(result.failed)} failed" if result.failed else ""))
    return 1 if result.failed else 0
