"""``osdface restore``: aligned face crops (``--has_aligned``) or whole photos → restored images.

    osdface restore -i face.png -o out --has_aligned                     # the bundled nano model
    osdface restore -i photos/ -o out --upscale 2 --color_fix wavelet    # whole photos
    osdface restore -i faces/ -o out --has_aligned --model ./osdface-sd21 --device cuda --dtype fp16
    osdface restore -i faces/ -o out --has_aligned --backend onnx --model ./nano-onnx   # ONNX Runtime, no torch

The work is :func:`osdface.restore.restore_files`; its docstring has the output layout. Whole-photo defaults:
``--upscale 1`` (CodeFormer's is 2; without a learned background upsampler the photo is only Lanczos-enlarged, so
by default the output keeps the input's size), ``--color_fix none`` (as the OSDFace release),
``--detection_model auto``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .common import add_device_options, err, pick_device_or_report, positive_int


def add_parsers(sub) -> None:
    from ..faces.color import COLOR_FIX_METHODS
    from ..faces.detection import DETECTOR_NAMES

    r = sub.add_parser("restore", help="restore face crops or whole photos",
                       description="Restore face images with OSDFace (one UNet step per face).",
                       epilog="Outputs: OUTPUT/restored_faces/ (and for whole photos cropped_faces/, final_results/, "
                              "cmp/).")
    r.add_argument("-i", "--input", required=True, help="an image file or a folder of images")
    r.add_argument("-o", "--output", required=True,
                   help="output folder (OUTPUT/restored_faces/; whole photos also cropped_faces/, final_results/, cmp/)")
    r.add_argument("--has_aligned", "--has-aligned", dest="has_aligned", action="store_true",
                   help="inputs are FFHQ-aligned face crops (restored at 512x512); without it: whole photos")
    r.add_argument("--model", default=None,
                   help="model folder or Hub id (default: $OSDFACE_MODEL, else the bundled nano model); with "
                        "--backend onnx: a folder written by `osdface export-onnx`")
    r.add_argument("--backend", choices=("torch", "onnx"), default="torch",
                   help="torch (default), or onnx: an exported folder run by ONNX Runtime (fp32 or the export's "
                        "fp16 graphs; --device auto/cpu/cuda/mps(CoreML); torch is not needed)")
    r.add_argument("--base-model", "--base_model", dest="base_model", default=None,
                   help="override the model's SD 2.1-base (Hub id or local folder with vae/ unet/ scheduler/)")
    add_device_options(r)
    r.add_argument("-b", "--batch-size", "--batch_size", dest="batch_size", type=positive_int, default=4,
                   help="faces per model call (default 4)")
    r.add_argument("--suffix", default="", help="added to every output name")
    r.add_argument("--color_fix", "--color-fix", dest="color_fix", default="none", choices=COLOR_FIX_METHODS,
                   help="colour correction of restored faces toward the input (default none, as the release)")
    r.add_argument("--latent-mode", choices=["mode", "sample"], default=None,
                   help="VAE latent: the posterior's mode (default, deterministic) or a sample as the release draws")
    r.add_argument("--seed", type=int, default=114, help="seed for --latent-mode sample (the release uses 114)")
    r.add_argument("--no-fuse", action="store_true", help="keep the LoRA unfused (slower; for debugging)")
    r.add_argument("--local-files-only", action="store_true", default=None,
                   help="never contact the Hub (also: HF_HUB_OFFLINE=1)")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    g = r.add_argument_group("whole photos (without --has_aligned)")
    g.add_argument("--only_center_face", "--only-center-face", dest="only_center_face", action="store_true",
                   help="restore only the face nearest the photo's centre")
    g.add_argument("-s", "--upscale", type=positive_int, default=1,
                   help="enlarge the whole photo this many times (Lanczos background; default 1; CodeFormer's is 2)")
    g.add_argument("--draw_box", "--draw-box", dest="draw_box", action="store_true",
                   help="outline the detected faces in the final image")
    g.add_argument("--detection_model", "--detection-model", dest="detection_model", default="auto",
                   choices=DETECTOR_NAMES,
                   help="face detector (auto: the best one that runs here without a download; see the README's "
                        "detector table)")
    g.add_argument("--weights-dir", "--weights_dir", dest="weights_dir", default=None,
                   help="folder with detector weights (e.g. detection_Resnet50_Final.pth); default $OSDFACE_WEIGHTS")
    r.set_defaults(func=cmd_restore)


def cmd_restore(args) -> int:
    from .. import image_io

    onnx = args.backend == "onnx"
    device = args.device if onnx else pick_device_or_report(args.device)
    if device is None:
        return 2
    if onnx and args.latent_mode == "sample":
        err("--latent-mode sample needs the torch backend (the ONNX graphs compute the latent's mode)")
        return 2
    try:
        inputs, skipped = image_io.list_images(args.input)
    except image_io.ImageInputError as e:
        err(str(e))
        return 2
    for p in skipped:
        print(f"skipping {p}: not an image file type ({p.suffix or 'no extension'})", file=sys.stderr)
    if not inputs:
        err(f"{args.input}: no images to restore")
        return 2

    from tqdm.auto import tqdm

    from ..restore import load_pipeline, restore_files
    from ..weights import MissingWeightsError

    try:
        t0 = time.perf_counter()
        pipe = load_pipeline(args.model, device=device, dtype=args.dtype, base_model=args.base_model,
                             local_files_only=args.local_files_only, fuse_lora=not args.no_fuse,
                             backend=args.backend)
        load_s = time.perf_counter() - t0
    except (MissingWeightsError, ValueError, ImportError) as e:
        err(str(e))
        return 2
    if onnx:
        print(f"model {pipe.name}: {pipe.describe()}, loaded in {load_s:.1f} s", file=sys.stderr)
    else:
        from ..devices import dtype_name

        print(f"model {pipe.name} ({pipe.config.preset}) on {device} {dtype_name(pipe.dtype)}, loaded in "
              f"{load_s:.1f} s", file=sys.stderr)
    detector = None
    if not args.has_aligned:
        from ..faces.detection import get_detector

        try:
            detector = get_detector(args.detection_model, args.weights_dir, device=pipe.device)
        except (MissingWeightsError, ValueError) as e:
            err(str(e))
            return 2
        print(f"face detector: {detector.describe()}", file=sys.stderr)
    generator = None
    if args.latent_mode == "sample":  # one generator for the run: results depend on the seed and batch order
        import torch

        generator = torch.Generator(device=pipe.device).manual_seed(args.seed)
    out = Path(args.output)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        err(f"cannot create the output folder {out}: {e.strerror or e}")
        return 2
    bar = tqdm(total=len(inputs), unit="photo" if detector else "img", file=sys.stderr, disable=args.quiet)
    summary = restore_files(pipe, inputs, out, aligned=args.has_aligned, suffix=args.suffix or "",
                            batch_size=args.batch_size, color_fix=args.color_fix, detector=detector,
                            upscale=args.upscale, only_center_face=args.only_center_face, draw_box=args.draw_box,
                            latent_mode=args.latent_mode, generator=generator,
                            log=lambda line: tqdm.write(line, file=sys.stderr), on_done=bar.update)
    bar.close()
    s = summary
    if args.has_aligned:
        rate = f", {s.model_seconds / s.done:.2f} s/face" if s.done else ""
        print(f"restored {s.done} of {s.total} image(s) into {out / 'restored_faces'}{rate}"
              + (f"; {len(s.failed)} failed" if s.failed else ""))
    else:
        rate = f", {s.model_seconds / s.done:.2f} s/photo" if s.done else ""
        print(f"restored {s.faces} face(s) in {s.done} of {s.total} photo(s) into {out}{rate}"
              + (f"; {len(s.failed)} failed" if s.failed else ""))
    return 1 if s.failed else 0

