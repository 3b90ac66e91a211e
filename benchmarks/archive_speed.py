"""Restoring an archive with 1 and N processes: images per second, end to end (process start and model load included).

    python benchmarks/archive_speed.py                                     # 1 and 2 CPU processes, 24 crops
    python benchmarks/archive_speed.py --faces ../shared/data/faces --count 48 --processes 1 2 4
    python benchmarks/archive_speed.py --processes 1 8 -- --device cuda --dtype fp16 --model ./osdface-sd21

Each run is the documented command, ``osdface restore -i IN -o OUT --has_aligned`` (``torchrun --standalone
--nproc_per_node N -m osdface restore ...`` for N > 1) on the same folder into a fresh output folder. Printed per N:
wall seconds, images/s end to end, and images/s in the model (the manifest's per-image seconds, summed per process,
the slowest process counted), which leaves out the start-up that a long archive amortises. Threads: torchrun gives
each process ``OMP_NUM_THREADS=1``; the one-process run keeps torch's default (every core), as a user would run it.
Extra arguments after ``--`` go to ``osdface restore``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def make_inputs(folder: Path, count: int, faces: str | None) -> None:
    from PIL import Image, ImageOps

    folder.mkdir(parents=True, exist_ok=True)
    sources = sorted(Path(faces).iterdir())[:count] if faces else [REPO / "examples" / "astronaut_face_lq.png"]
    for i in range(count):
        im = Image.open(sources[i % len(sources)]).convert("RGB")
        im = ImageOps.mirror(im) if (i // len(sources)) % 2 else im
        im.resize((512, 512), Image.BICUBIC).save(folder / f"face{i:04d}.png")


def run(inputs: Path, out: Path, processes: int, extra: list[str]) -> dict:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)] \
        if processes > 1 else [sys.executable]
    cmd = [*launcher, "-m", "osdface", "restore", "-i", str(inputs), "-o", str(out), "--has_aligned", "-q", *extra]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stderr[-2000:]}")
    rows = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    per_rank: dict[int, float] = {}
    for r in rows:
        per_rank[r["rank"]] = per_rank.get(r["rank"], 0.0) + r["seconds"]
    ok = sum(r["status"] == "ok" for r in rows)
    return {"processes": processes, "images": ok, "wall_s": wall, "images_per_s": ok / wall,
            "model_images_per_s": ok / max(per_rank.values())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=24, help="aligned crops in the archive (default 24)")
    ap.add_argument("--faces", default=None, help="a folder of faces to use (default: the example face, varied)")
    ap.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    args, extra = ap.parse_known_args(argv)
    extra = [a for a in extra if a != "--"]
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "in"
        make_inputs(inputs, args.count, args.faces)
        print(f"{args.count} aligned 512² crops; {platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} cores; extra: {' '.join(extra) or '(none)'}")
        print("| processes | wall s | images/s end to end | images/s in the model |")
        print("|---|---|---|---|")
        for n in args.processes:
            r = run(inputs, Path(tmp) / f"out{n}", n, extra)
            print(f"| {n} | {r['wall_s']:.1f} | {r['images_per_s']:.2f} | {r['model_images_per_s']:.2f} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
