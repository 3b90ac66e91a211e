"""A fixed pool of degraded training faces with Real-ESRGAN's restorations: the teacher term's data (the ablation's
``teacher`` arms, ``teacher_weight`` in stage 2).

    nice -n 10 python scripts/teacher_pool.py --data ../shared/data/faces --out ~/.cache/osdface/teacher_pool \\
        --resolution 256 --per-face 2

Writes a pairs folder (``PreparedPairsDataset``'s layout plus ``teacher/``)::

    OUT/hq/NAME_K.png        the HQ face, resized to --resolution² (Lanczos)
    OUT/lq/NAME_K.png        its K-th degradation (docs/ARCHITECTURE.md §4, resized back), seeded by (seed, name, K)
    OUT/teacher/NAME_K.png   Real-ESRGAN x4plus on the SMALL degraded face (before the resize back), x4, resized to
                             --resolution² (area): what the teacher term pulls the high frequencies toward
    OUT/params.jsonl         each pool item's degradation parameters

With ``--degradation spec`` (the paper's ranges) many faces are shrunk 5–8×: Real-ESRGAN's x4 output of such a face is
smaller than the training size, so the teacher is smooth after the resize, and on faces of 30–60 px it invents
features that are not there (melted eyes and mouths). ``--degradation mild`` keeps the teacher where it is good.

Only the training side of the split (``split_files`` defaults, the split the training uses) is read, so the
validation faces stay unseen. Real-ESRGAN costs seconds per face on a CPU (run it once, in the background, with
``nice``); an item whose three files exist is skipped, so an interrupted run resumes. Keep the pool outside the
repository: it holds the data photos.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="folder of HQ faces (e.g. ../shared/data/faces)")
    p.add_argument("--out", required=True, help="the pool folder (outside the repository)")
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--per-face", type=int, default=1, help="degradations per training face")
    p.add_argument("--limit", type=int, default=None, help="only the first N training faces")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--degradation", choices=("spec", "mild"), default="spec",
                   help="spec: docs/ARCHITECTURE.md §4's ranges; mild: blur σ 1–3, down-sampling 2–4×, noise ≤ 10, "
                        "JPEG 60–90 (osdface.data.degradations.MILD), where the small face has a quarter of the "
                        "size or more, so that Real-ESRGAN's x4 output is as large as the face")
    p.add_argument("--tile", type=int, default=192)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--weights", default=None, help="a folder from osdface convert-realesrgan (default: the cache)")
    args = p.parse_args(argv)

    import cv2
    import numpy as np
    import torch
    from PIL import Image

    from osdface.data.benchmark_set import image_seed
    from osdface.data.dataset import resize_square, split_files
    from osdface.data.degradations import MILD, DegradationConfig, apply_params, sample_params
    from osdface.image_io import list_images, load_image, save_png
    from osdface.networks.rrdbnet import RealESRGANUpsampler

    torch.set_num_threads(args.threads)
    files, _ = list_images(args.data)
    train, _ = split_files(files)
    train = train[:args.limit] if args.limit else train
    out = Path(args.out).expanduser()
    for sub in ("hq", "lq", "teacher"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    up = RealESRGANUpsampler(weights=args.weights, device="cpu", tile=args.tile)
    cfg = DegradationConfig(**MILD) if args.degradation == "mild" else DegradationConfig()
    lines, t0, done = [], time.perf_counter(), 0
    for f in train:
        hq = resize_square(load_image(f), args.resolution)
        for k in range(args.per_face):
            name = f"{f.stem}_{k}.png"
            params = sample_params(image_seed(args.seed + 1000 * k, f.name), cfg)
            lines.append({"name": name, "source": f.name, **params})
            if all((out / sub / name).is_file() for sub in ("hq", "lq", "teacher")):
                continue
            small = apply_params(hq, {**params, "resize_back": False})
            lq = apply_params(hq, params)
            big = up.enhance(np.ascontiguousarray(small))
            s = args.resolution
            teacher = cv2.resize(big, (s, s), interpolation=cv2.INTER_AREA if big.shape[0] > s else cv2.INTER_CUBIC)
            save_png(Image.fromarray(hq), out / "hq" / name)
            save_png(Image.fromarray(lq), out / "lq" / name)
            save_png(Image.fromarray(teacher), out / "teacher" / name)  # last: the item is complete
            done += 1
            print(f"{name}: {small.shape[1]}x{small.shape[0]} -> teacher in "
                  f"{(time.perf_counter() - t0) / done:.1f} s/item on average", flush=True)
    tmp = out / ".params.jsonl.tmp"
    tmp.write_text("".join(json.dumps(line) + "\n" for line in lines))
    tmp.replace(out / "params.jsonl")
    print(f"{len(lines)} item(s) in {out} ({done} made now)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
