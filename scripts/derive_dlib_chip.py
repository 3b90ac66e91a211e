"""Re-derive ``osdface.networks.dlib_resnet.DLIB_CHIP_IN_FFHQ``: where dlib's own face chip lies in FFHQ-aligned faces.

    python scripts/derive_dlib_chip.py [--faces ../shared/data/faces] [--limit N]

For every face: dlib's HOG box (fallback: the median aligned box) -> 5-point landmarks ->
``dlib.get_face_chip_details(shape, 150, 0.25)`` -> (centre x, centre y, side, angle) in fractions of the side.
Prints the median (the constants), the mean, the spread and the 5/95 % quantiles. Needs dlib.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None):
    import numpy as np
    from PIL import Image

    from osdface.networks.dlib_resnet import DLIB_CHIP_IN_FFHQ, dlib_chip_models, measure_dlib_chip_geometry

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", default=os.environ.get("OSDFACE_FACES", str(ROOT.parent / "shared" / "data" / "faces")))
    ap.add_argument("--limit", type=int, default=0)
    args = ap.parse_args(argv)
    files = sorted(Path(args.faces).glob("*.png"))[: args.limit or None]
    if not files:
        sys.exit(f"no .png faces in {args.faces}")
    models = dlib_chip_models()
    rows = []
    for f in files:
        img = np.asarray(Image.open(f).convert("RGB"))
        if img.shape[0] != img.shape[1]:
            continue
        rows.append(measure_dlib_chip_geometry(img, models=models))
    g = np.array(rows)
    names = ["centre_x", "centre_y", "side", "angle"]
    print(f"{len(g)} faces from {args.faces}")
    for i, n in enumerate(names):
        q5, q95 = np.quantile(g[:, i], [0.05, 0.95])
        print(f"{n:9s} median {np.median(g[:, i]):.6f}  mean {g[:, i].mean():.6f}  std {g[:, i].std():.6f}  "
              f"5-95% {q5:.6f} .. {q95:.6f}  (in the code: {DLIB_CHIP_IN_FFHQ[i]:.6f})")
    print("DLIB_CHIP_IN_FFHQ = (" + ", ".join(f"{v:.6f}" for v in np.median(g, axis=0)) + ")")


if __name__ == "__main__":
    main()
