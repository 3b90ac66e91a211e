"""Whole-photo throughput: detection, alignment, restoration and paste-back timed separately.

    python benchmarks/photo_speed.py                              # nano, bf16, a 4-face photo, dlib detector
    python benchmarks/photo_speed.py --faces-per-photo 8 --dtype fp32 --repeats 3
    python benchmarks/photo_speed.py --model ./osdface-sd21 --dtype bf16

The photo is synthetic: ``--faces-per-photo`` aligned face crops from ``--faces`` (default ../shared/data/faces),
each resized to ``--face-px`` and placed on a grey, softly textured background, so the count and size of faces are
known. ``osdface.faces.photo.restore_photo`` runs unchanged; its steps are timed by wrapping the detector, the
alignment and paste-back functions it calls and ``pipe.model`` (the restoration itself). Two runs per repeat, in
turn: all faces of the photo in one batch (what ``restore_photo`` does) and one face per forward pass
(``batch_size=1``), to show what batching buys. One JSON line per run, then a table of medians.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from osdface import OSDFacePipeline  # noqa: E402
from osdface.faces import photo as photo_module  # noqa: E402
from osdface.faces.detection import get_detector  # noqa: E402

DEFAULT_FACES = Path(os.environ.get("OSDFACE_FACES", REPO.parent / "shared" / "data" / "faces"))
STEPS = ("detect", "align", "restore", "paste", "other")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group()
    src.add_argument("--preset", default="nano", choices=["tiny", "nano", "sd21"])
    src.add_argument("--model", default=None, help="a model folder or Hub id instead of random weights")
    p.add_argument("--dtype", default="bf16", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--faces", type=Path, default=DEFAULT_FACES)
    p.add_argument("--faces-per-photo", type=int, default=4)
    p.add_argument("--face-px", type=int, default=300, help="side of each face crop in the photo")
    p.add_argument("--detector", default="dlib", choices=["dlib", "retinaface", "auto"])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json-out", type=Path, default=None)
    args = p.parse_args(argv)
    if not args.faces.is_dir():
        p.error(f"no face folder at {args.faces} (pass --faces or set OSDFACE_FACES)")
    if args.faces_per_photo < 1 or args.repeats < 1:
        p.error("--faces-per-photo and --repeats must be >= 1")
    return args


def synthetic_photo(folder: Path, n: int, face_px: int) -> Image.Image:
    """n face crops in a grid with margins, on a blurred grey noise background."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))[:n]
    if len(files) < n:
        raise SystemExit(f"{folder} has only {len(files)} faces, {n} asked")
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    gap = face_px // 3
    w, h = cols * (face_px + gap) + gap, rows * (face_px + gap) + gap
    rng = np.random.default_rng(0)
    bg = Image.fromarray((110 + 30 * rng.standard_normal((h, w, 3))).clip(0, 255).astype(np.uint8))
    bg = bg.filter(ImageFilter.GaussianBlur(4))
    for i, f in enumerate(files):
        face = Image.open(f).convert("RGB").resize((face_px, face_px), Image.BICUBIC)
        r, c = divmod(i, cols)
        bg.paste(face, (gap + c * (face_px + gap), gap + r * (face_px + gap)))
    return bg


class StepTimer:
    """Accumulates seconds per step while patched into restore_photo's collaborators."""

    def __init__(self, device: torch.device):
        self.device, self.seconds, self.model_batches = device, dict.fromkeys(STEPS, 0.0), []

    def wrap(self, step: str, fn):
        def timed(*a, **kw):
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            start = time.perf_counter()
            out = fn(*a, **kw)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.seconds[step] += time.perf_counter() - start
            return out
        return timed

    @contextlib.contextmanager
    def patched(self, pipe, detector):
        model_forward = pipe.model.forward
        originals = {"align_face": photo_module.align_face, "paste_face": photo_module.paste_face}
        detect = detector.detect

        def forward(x, *a, **kw):
            self.model_batches.append(int(x.shape[0]))
            return model_forward(x, *a, **kw)

        pipe.model.forward = self.wrap("restore", forward)
        photo_module.align_face = self.wrap("align", originals["align_face"])
        photo_module.paste_face = self.wrap("paste", originals["paste_face"])
        detector.detect = self.wrap("detect", detect)
        try:
            yield
        finally:
            del pipe.model.forward
            photo_module.align_face, photo_module.paste_face = originals["align_face"], originals["paste_face"]
            del detector.detect


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    if args.model:
        pipe = OSDFacePipeline.from_pretrained(args.model, torch_dtype=args.dtype, device=device, fuse_lora=True)
    else:
        pipe = OSDFacePipeline.from_preset(args.preset, seed=0).to(device=device, dtype=args.dtype).fuse_lora()
        if device.type == "cpu" and pipe.dtype == torch.bfloat16:
            pipe.enable_channels_last()  # what from_pretrained does by default here
    detector = get_detector(args.detector)
    photo = synthetic_photo(args.faces, args.faces_per_photo, args.face_px)
    n = args.faces_per_photo
    records = []
    for round_ in range(args.repeats + 1):  # round 0: warm-up
        for label, batch_size in (("one batch", max(n, 1)), ("one face per pass", 1)):
            timer = StepTimer(device)
            with timer.patched(pipe, detector):
                start = time.perf_counter()
                result = pipe.restore_photo(photo, detector=detector, batch_size=batch_size)
                total = time.perf_counter() - start
            timer.seconds["other"] = total - sum(timer.seconds[s] for s in STEPS if s != "other")
            if round_ == 0:
                continue
            rec = {"mode": label, "faces_found": len(result.faces), "faces_in_photo": n,
                   "photo_size": list(photo.size), "model_batches": timer.model_batches, "total_seconds": total,
                   "seconds": timer.seconds, "seconds_per_face": total / max(len(result.faces), 1),
                   "model": args.model or f"random {args.preset}", "dtype": args.dtype, "device": device.type,
                   "detector": type(detector).__name__, "threads": torch.get_num_threads()}
            line = json.dumps(rec, default=float)
            print(line, flush=True)
            if args.json_out:
                with args.json_out.open("a") as f:
                    f.write(line + "\n")
            records.append(rec)
    print()
    print("| mode | faces | forward passes | detect s | align s | restore s | paste s | other s | total s | s/face |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label in ("one batch", "one face per pass"):
        rs = [r for r in records if r["mode"] == label]
        med = {s: statistics.median(r["seconds"][s] for r in rs) for s in STEPS}
        total = statistics.median(r["total_seconds"] for r in rs)
        print(f"| {label} | {rs[0]['faces_found']} | {rs[0]['model_batches']} | "
              + " | ".join(f"{med[s]:.3f}" for s in STEPS)
              + f" | {total:.3f} | {total / max(rs[0]['faces_found'], 1):.3f} |")
    return records


if __name__ == "__main__":
    main()
