"""Speed of the synthetic degradation (images per second, one process): ``python benchmarks/degradations.py --bench``.

The degradation is :func:`osdface.data.degradations.degrade` (docs/ARCHITECTURE.md §4) on a deterministic textured
512² test image, seeds 0..n-1.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from osdface.data.degradations import degrade


def bench_image(size: int = 512) -> np.ndarray:
    """A deterministic textured test image (smooth gradients + edges + fine noise), uint8 (size, size, 3)."""
    g = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = np.stack([xx, yy, 0.5 + 0.5 * np.sin(12 * xx + 7 * yy)], axis=-1)
    base += ((xx * 16).astype(int) % 2 ^ (yy * 16).astype(int) % 2)[..., None] * 0.2
    base += g.normal(0, 0.05, base.shape).astype(np.float32)
    return np.clip(base / base.max() * 255, 0, 255).astype(np.uint8)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/degradations.py",
                                description="Benchmark the synthetic degradation (images/s, one process).")
    p.add_argument("--bench", action="store_true", help="run the benchmark")
    p.add_argument("--n", type=int, default=100, help="number of images (seeds 0..n-1)")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--threads", type=int, default=None, help="cv2.setNumThreads (default: OpenCV's default)")
    args = p.parse_args(argv)
    if not args.bench:
        p.print_help()
        return 0
    if args.threads is not None:
        cv2.setNumThreads(args.threads)
    img = bench_image(args.size)
    degrade(img, 0)  # warm-up
    times = []
    for seed in range(args.n):
        t0 = time.perf_counter()
        degrade(img, seed)
        times.append(time.perf_counter() - t0)
    total = sum(times)
    print(f"degrade {args.size}x{args.size} RGB, {args.n} images, cv2 {cv2.__version__}, "
          f"{cv2.getNumThreads()} OpenCV thread(s): {args.n / total:.1f} images/s "
          f"(mean {1000 * total / args.n:.1f} ms, median {1000 * sorted(times)[len(times) // 2]:.1f} ms, "
          f"max {1000 * max(times):.1f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
