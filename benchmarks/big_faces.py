"""Big faces in whole photos: a phone selfie and a huge face, end to end, with the paste-back mask timed apart.

    python benchmarks/big_faces.py                         # both cases, this checkout's paste-back
    python benchmarks/big_faces.py --full-resolution-mask  # "before": every mask made at full resolution
    python benchmarks/big_faces.py --cases selfie --json-out benchmarks/results/big_faces.json

The photos are built in a temporary folder (never committed) from ``examples/astronaut_face.png`` (the
public-domain aligned face, 512²) enlarged with Lanczos and pasted onto a soft generated background:

- ``selfie``: 3024x4032 as displayed, stored 4032x3024 sideways with EXIF orientation 6 (as a phone writes it),
  JPEG quality 90; the face square is 2,600 px.
- ``huge``: 6000x6000 PNG-free (in memory), the face square 4,000 px.

Each case runs :func:`osdface.restore.restore_image` in photo mode with the bundled nano model on the CPU and the
default detector (``auto``), after loading the file through :mod:`osdface.image_io` (EXIF applied). Reported: the
whole restore, the time spent in ``feather_mask``, faces found. ``--full-resolution-mask`` sets
``osdface.faces.paste.FEATHER_MAX`` so high that every mask is made at full resolution: the code path before the
reduced-scale mask. Results are appended as JSON lines (machine, date, versions, load average).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CASES = {"selfie": dict(size=(3024, 4032), face=2600, exif=True), "huge": dict(size=(6000, 6000), face=4000,
                                                                                exif=False)}


def build_photo(size: tuple[int, int], face_px: int) -> Image.Image:
    """A background gradient with the example face (its aligned square enlarged to ``face_px``) in the middle."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    bg = np.stack([120 + 60 * xx / w, 110 + 50 * yy / h, 140 - 40 * xx / w], -1).astype(np.uint8)
    canvas = Image.fromarray(bg)
    face = Image.open(REPO / "examples" / "astronaut_face.png").convert("RGB").resize((face_px, face_px),
                                                                                     Image.LANCZOS)
    canvas.paste(face, ((w - face_px) // 2, (h - face_px) // 2))
    return canvas


def run_case(name: str, pipe, tmp: Path) -> dict:
    from osdface import image_io
    from osdface.faces import paste
    from osdface.restore import restore_image

    spec = CASES[name]
    photo = build_photo(spec["size"], spec["face"])
    if spec["exif"]:
        path = tmp / f"{name}.jpg"
        exif = Image.Exif()
        exif[0x0112] = 6  # "rotate 90° clockwise to display"
        photo.transpose(Image.Transpose.ROTATE_90).save(path, quality=90, exif=exif.tobytes())
        t0 = time.perf_counter()
        photo = image_io.load_image(path, max_pixels=10**9)
        load_s = time.perf_counter() - t0
    else:
        load_s = 0.0
    mask_s = [0.0]
    original = paste.feather_mask

    def timed(*a, **k):
        t = time.perf_counter()
        try:
            return original(*a, **k)
        finally:
            mask_s[0] += time.perf_counter() - t

    paste.feather_mask = timed
    try:
        t0 = time.perf_counter()
        result = restore_image(pipe, photo, mode="photo")
        total = time.perf_counter() - t0
    finally:
        paste.feather_mask = original
    return dict(case=name, photo=list(photo.size), face_px=spec["face"], faces=len(result.faces),
                load_s=round(load_s, 2), restore_s=round(total, 2), feather_mask_s=round(mask_s[0], 2),
                feather_max=paste.FEATHER_MAX)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", nargs="+", choices=sorted(CASES), default=["selfie", "huge"])
    p.add_argument("--full-resolution-mask", action="store_true",
                   help="make every feather mask at full resolution (the code path before the reduced mask)")
    p.add_argument("--json-out", type=Path, default=None, help="append one JSON line per case here")
    args = p.parse_args(argv)

    import torch

    from osdface import OSDFacePipeline
    from osdface.faces import paste
    from osdface.weights import BUNDLED_NANO

    if args.full_resolution_mask:
        paste.FEATHER_MAX = 10**9
    pipe = OSDFacePipeline.from_pretrained(BUNDLED_NANO, device="cpu")
    import cv2

    common = dict(date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                  machine=f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
                  torch_threads=torch.get_num_threads(), torch=torch.__version__, opencv=cv2.__version__,
                  python=platform.python_version(), mask="full resolution" if args.full_resolution_mask else
                  "reduced above FEATHER_MAX")
    with tempfile.TemporaryDirectory(prefix="osdface-bigfaces-") as tmp:
        for name in args.cases:
            load_before = os.getloadavg()[0]
            rec = {**run_case(name, pipe, Path(tmp)), **common, "load_avg_1min_before": round(load_before, 2)}
            line = json.dumps(rec)
            print(line, flush=True)
            if args.json_out:
                args.json_out.parent.mkdir(parents=True, exist_ok=True)
                with args.json_out.open("a") as f:
                    f.write(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
