"""Whole-photo mode of ``osdface restore`` (inputs that are not aligned face crops).

Output layout (CodeFormer's, plus ``cmp/``)::

    OUTPUT/cropped_faces/NAME_00.png    aligned input crop of each face (process_size²)
    OUTPUT/restored_faces/NAME_00.png   its restoration
    OUTPUT/final_results/NAME.png       the whole photo, faces pasted back, ``--upscale`` times the size
    OUTPUT/cmp/NAME.png                 input (enlarged the same way) | final result, side by side

``--suffix S`` gives ``NAME_00S.png`` and ``NAMES.png``. Defaults: ``--upscale 1`` (CodeFormer's is 2; without a
learned background upsampler the photo is only Lanczos-enlarged, so by default the output keeps the input's size),
``--color_fix none`` (as the OSDFace release), ``--detection_model auto``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

__all__ = ["add_photo_arguments", "run_photo_mode", "photo_output_paths"]


def add_photo_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("whole photos (without --has_aligned)")
    g.add_argument("--only_center_face", "--only-center-face", dest="only_center_face", action="store_true",
                   help="restore only the face nearest the photo's centre")
    g.add_argument("-s", "--upscale", type=int, default=1,
                   help="enlarge the whole photo this many times (Lanczos background; default 1; CodeFormer's is 2)")
    g.add_argument("--draw_box", "--draw-box", dest="draw_box", action="store_true",
                   help="outline the detected faces in the final image")
    g.add_argument("--detection_model", "--detection-model", dest="detection_model", default="auto",
                   choices=["auto", "dlib", "retinaface"],
                   help="face detector: retinaface (facexlib, needs detection_Resnet50_Final.pth), dlib (offline), "
                        "auto = retinaface when its weights are on disk, else dlib")
    g.add_argument("--color_fix", "--color-fix", dest="color_fix", default="none",
                   choices=["none", "adain", "wavelet"],
                   help="colour correction of restored faces toward the input (default none)")
    g.add_argument("--weights-dir", "--weights_dir", dest="weights_dir", default=None,
                   help="folder with detector weights (detection_Resnet50_Final.pth); default $OSDFACE_WEIGHTS")


def _key(p: Path) -> str:
    return os.path.normcase(str(Path(p).resolve())).casefold()


def photo_output_paths(inputs: list[Path], out_root: Path, suffix: str = "") -> dict[Path, dict]:
    """Per input: ``final`` and ``cmp`` paths and a ``face(i)`` name function for cropped/restored faces."""
    from ..cli import output_names

    finals = output_names(inputs, out_root / "final_results", suffix)
    paths = {}
    for p in inputs:
        final = finals[p]
        stem = final.stem
        core = stem[:-len(suffix)] if suffix and stem.endswith(suffix) else stem
        tail = suffix if suffix and stem.endswith(suffix) else ""
        paths[p] = {"final": final, "cmp": out_root / "cmp" / final.name,
                    "face_name": (lambda i, core=core, tail=tail: f"{core}_{i:02d}{tail}.png")}
    return paths


def _side_by_side(left, right):
    from PIL import Image

    canvas = Image.new("RGB", (left.width + right.width, max(left.height, right.height)))
    canvas.paste(left, (0, 0))
    canvas.paste(right, (left.width, 0))
    return canvas


def run_photo_mode(args, pipe, inputs: list[Path], out_root: Path) -> int:
    """Restore whole photos; write the four folders under ``out_root``. Returns 0, or 1 when any input failed,
    or 2 when the face detector cannot be built."""
    from tqdm.auto import tqdm

    from .. import image_io
    from ..cli import latent_generator, load_or_report
    from .detection import DetectorUnavailableError, describe_detector, get_detector
    from .photo import lanczos_upsample, restore_photo

    quiet = getattr(args, "quiet", False)
    if getattr(args, "upscale", 1) < 1:
        print("error: --upscale must be an integer >= 1", file=sys.stderr, flush=True)
        return 2
    try:
        detector = get_detector(getattr(args, "detection_model", "auto"), getattr(args, "weights_dir", None),
                                device=pipe.device)
    except (DetectorUnavailableError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 2
    print(f"face detector: {describe_detector(detector)}", file=sys.stderr)
    out_root = Path(out_root)
    input_keys = {_key(p) for p in inputs}
    paths = photo_output_paths(inputs, out_root, getattr(args, "suffix", "") or "")
    pipe_kwargs = {"latent_mode": getattr(args, "latent_mode", None), "generator": latent_generator(args, pipe.device)}

    failed, n_faces, done, run_s = [], 0, 0, 0.0
    bar = tqdm(total=len(inputs), unit="photo", file=sys.stderr, disable=quiet)
    for path in inputs:
        img = load_or_report(path, bar, failed)
        if img is None:
            continue
        try:
            t0 = time.perf_counter()
            result = restore_photo(pipe, img, detector=detector, upscale=args.upscale,
                                   only_center_face=args.only_center_face, color_fix=args.color_fix,
                                   draw_box=args.draw_box, batch_size=getattr(args, "batch_size", 4),
                                   pipe_kwargs=pipe_kwargs)
            run_s += time.perf_counter() - t0
        except (ValueError, RuntimeError, MemoryError, OSError) as err:
            failed.append(path)
            msg = str(err).splitlines()[0] if str(err) else type(err).__name__
            bar.write(f"error: {path}: {msg}", file=sys.stderr)
            bar.update(1)
            continue
        p = paths[path]
        writes = []
        for i, face in enumerate(result.faces):
            name = p["face_name"](i)
            writes.append((face["cropped"], out_root / "cropped_faces" / name))
            writes.append((face["restored"], out_root / "restored_faces" / name))
        writes.append((result.image, p["final"]))
        up = lanczos_upsample(img, args.upscale) if args.upscale != 1 else img
        writes.append((_side_by_side(up, result.image), p["cmp"]))
        ok = True
        for im, target in writes:
            if _key(target) in input_keys:
                bar.write(f"error: {path}: not writing {target}: it is one of the inputs", file=sys.stderr)
                ok = False
                continue
            try:
                image_io.save_png(im, target)
            except OSError as err:
                bar.write(f"error: {path}: cannot write {target}: {err.strerror or err}", file=sys.stderr)
                ok = False
        if not result.faces:
            bar.write(f"{path}: no face detected; wrote the {'enlarged ' if args.upscale != 1 else ''}photo "
                      f"to {p['final']}", file=sys.stderr)
        if ok:
            done += 1
        else:
            failed.append(path)
        n_faces += len(result.faces)
        bar.update(1)
    bar.close()
    print(f"restored {n_faces} face(s) in {done} of {len(inputs)} photo(s) into {out_root}"
          + (f", {run_s / done:.2f} s/photo" if done else "") + (f"; {len(failed)} failed" if failed else ""))
    return 1 if failed else 0
