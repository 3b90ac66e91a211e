"""The ``osdface`` command line: ``restore`` (face crops → restored faces) and ``convert`` (the authors' weights).

    osdface restore -i face.png -o out/ --has_aligned                      # bundled nano model, CPU
    osdface restore -i faces/ -o out/ --has_aligned --model ./osdface-sd21 --device cuda --dtype fp16
    osdface convert --vre associate_2.ckpt --projector embedding_change_weights.pth \
                    --lora pytorch_lora_weights.safetensors --base ./sd21-base --out ./osdface-sd21
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

BUNDLED_NANO = Path(__file__).resolve().parent / "assets" / "osdface-nano"


def _err(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------- restore
def _pick_device(name: str):
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA GPU is visible to PyTorch here; use --device cpu")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError("--device mps: Apple-silicon MPS is not available here; use --device cpu")
    return torch.device(name)


def output_names(inputs: list[Path], out_dir: Path, suffix: str = "") -> dict[Path, Path]:
    """Input file → a distinct output PNG path: ``<stem><suffix>.png``; stems shared by several inputs keep their
    extension (``a_jpg.png``); a name already taken (by an input file or an earlier output, compared
    case-insensitively) gets ``_restored``, ``_restored2``, … so that no input and no other output is overwritten."""
    stems = Counter(p.stem for p in inputs)
    taken = {os.path.normcase(str(p.resolve())).casefold() for p in inputs}
    names = {}
    for p in inputs:
        stem = (p.stem if stems[p.stem] == 1 else f"{p.stem}_{p.suffix.lstrip('.')}") + suffix
        for extra in ["", "_restored", *(f"_restored{n}" for n in range(2, 10_000))]:
            target = out_dir / f"{stem}{extra}.png"
            key = os.path.normcase(str(target.resolve())).casefold()
            if key not in taken:
                break
        taken.add(key)
        names[p] = target
    return names


def latent_generator(args, device):
    """One generator for the whole run with ``--latent-mode sample`` (results depend on the seed and batch order)."""
    import torch

    if getattr(args, "latent_mode", None) != "sample":
        return None
    return torch.Generator(device=device).manual_seed(getattr(args, "seed", 114))


def load_or_report(path: Path, bar, failed: list):
    """The image at ``path`` (RGB), or None after one ``error: <file>: <reason>`` line and a tick of the bar."""
    from . import image_io

    try:
        return image_io.load_image(path)
    except image_io.ImageInputError as err:
        failed.append(path)
        bar.write(f"error: {err}", file=sys.stderr)
        bar.update(1)
        return None


def cmd_restore(args) -> int:
    from tqdm.auto import tqdm

    from . import image_io
    from .hub import MissingWeightsError
    from .pipeline import OSDFacePipeline

    try:
        device = _pick_device(args.device)
        if args.dtype == "fp16" and device.type == "cpu":
            raise ValueError("--dtype fp16 needs a GPU; on a CPU use --dtype bf16 (or fp32)")
        inputs, skipped = image_io.list_images(args.input)
    except (ValueError, image_io.ImageInputError) as err:
        _err(str(err))
        return 2
    for p in skipped:
        print(f"skipping {p}: not an image file type ({p.suffix or 'no extension'})", file=sys.stderr)
    if not inputs:
        _err(f"{args.input}: no images to restore")
        return 2

    out_dir = Path(args.output) / "restored_faces"
    targets = output_names(inputs, out_dir, args.suffix or "")
    model = args.model or str(BUNDLED_NANO)
    try:
        t0 = time.perf_counter()
        pipe = OSDFacePipeline.from_pretrained(model, torch_dtype=args.dtype, device=device,
                                               base_model=args.base_model, local_files_only=args.local_files_only,
                                               fuse_lora=not args.no_fuse)
        load_s = time.perf_counter() - t0
    except MissingWeightsError as err:
        _err(str(err))
        return 2
    except (OSError, ValueError, KeyError) as err:  # a damaged folder: unreadable config, missing part
        _err(f"cannot load the model {model}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
        return 2
    print(f"model {model} ({pipe.config.preset}) on {device} {args.dtype}, loaded in {load_s:.1f} s",
          file=sys.stderr)
    if not args.has_aligned:  # whole photos: detect, align, restore, paste back
        from .faces.cli_photo import run_photo_mode

        return run_photo_mode(args, pipe, inputs, Path(args.output))
    size = pipe.config.process_size
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        _err(f"cannot create the output folder {out_dir}: {err.strerror or err}")
        return 2

    generator = latent_generator(args, device)
    failed, done, run_s = [], 0, 0.0
    bar = tqdm(total=len(inputs), unit="img", file=sys.stderr, disable=args.quiet)
    for start in range(0, len(inputs), args.batch_size):
        chunk, images = inputs[start:start + args.batch_size], []
        for path in chunk:
            img = load_or_report(path, bar, failed)
            if img is None:
                continue
            if img.width != img.height:
                bar.write(f"warning: {path}: {img.width}x{img.height} is not square; aligned mode expects "
                          f"FFHQ-aligned square crops, so it is stretched to {size}x{size}", file=sys.stderr)
            images.append((path, img))
        if not images:
            continue
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            restored = pipe([img for _, img in images], output_type="pil", batch_size=len(images),
                            latent_mode=args.latent_mode, generator=generator)
        run_s += time.perf_counter() - t0
        for w in caught:
            if "not square" not in str(w.message):  # already reported above, with the file name
                bar.write(f"warning: {w.message}", file=sys.stderr)
        for (path, _), result in zip(images, restored):
            try:
                image_io.save_png(result, targets[path])
                done += 1
            except OSError as err:
                failed.append(path)
                bar.write(f"error: {path}: cannot write {targets[path]}: {err.strerror or err}", file=sys.stderr)
            bar.update(1)
    bar.close()
    per_face = f", {run_s / done:.2f} s/face" if done else ""
    print(f"restored {done} of {len(inputs)} image(s) into {out_dir}{per_face}"
          + (f"; {len(failed)} failed" if failed else ""))
    return 1 if failed else 0


# ---------------------------------------------------------------------------------------------------- convert
def cmd_convert(args) -> int:
    from .convert import ConversionError, convert_official

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        out = convert_official(args.vre, args.projector, args.lora, args.out, base_model=args.base,
                               lora_alpha=args.lora_alpha, local_files_only=args.local_files_only,
                               overwrite=args.overwrite)
    except ConversionError as err:
        _err(str(err))
        return 2
    print(f"converted into {out}; load it with OSDFacePipeline.from_pretrained({str(out)!r})")
    return 0


# -------------------------------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .configs import DEFAULT_SD21_BASE
    from .data.benchmark_set import add_degrade_parser
    from .eval.cli import add_eval_parsers
    from .faces.cli_photo import add_photo_arguments
    from .losses.convert_dists import add_convert_dists_parser
    from .training.cli import add_train_parsers

    parser = argparse.ArgumentParser(prog="osdface", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"osdface {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    r = sub.add_parser("restore", help="restore face images")
    r.add_argument("-i", "--input", required=True, help="an image file or a folder of images")
    r.add_argument("-o", "--output", required=True,
                   help="output folder (OUTPUT/restored_faces/; whole photos also cropped_faces/, final_results/, cmp/)")
    r.add_argument("--model", default=None,
                   help=f"model folder or Hub id (default: the bundled nano model, {BUNDLED_NANO.name})")
    r.add_argument("--base-model", "--base_model", dest="base_model", default=None,
                   help="override the model's SD 2.1-base (Hub id or local folder with vae/ unet/ scheduler/)")
    r.add_argument("--has_aligned", "--has-aligned", dest="has_aligned", action="store_true",
                   help="inputs are FFHQ-aligned face crops (restored at 512x512); without it: whole photos")
    r.add_argument("--device", choices=["cpu", "cuda", "mps"], default="cpu")
    r.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32")
    r.add_argument("-b", "--batch-size", "--batch_size", dest="batch_size", type=int, default=4)
    r.add_argument("--suffix", default="", help="added to every output name")
    r.add_argument("--latent-mode", choices=["mode", "sample"], default=None,
                   help="VAE latent: the posterior's mode (default, deterministic) or a sample as the release draws")
    r.add_argument("--seed", type=int, default=114, help="seed for --latent-mode sample (the release uses 114)")
    r.add_argument("--no-fuse", action="store_true", help="keep the LoRA unfused (slower; for debugging)")
    r.add_argument("--local-files-only", action="store_true", default=None,
                   help="never contact the Hub (also: HF_HUB_OFFLINE=1)")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_photo_arguments(r)
    r.set_defaults(func=cmd_restore)

    c = sub.add_parser("convert", help="convert the authors' released weights into a model folder")
    c.add_argument("--vre", required=True, help="associate_2.ckpt (Lightning checkpoint of the VQ autoencoders)")
    c.add_argument("--projector", required=True, help="embedding_change_weights.pth")
    c.add_argument("--lora", required=True, help="pytorch_lora_weights.safetensors")
    c.add_argument("--base", default=DEFAULT_SD21_BASE, help="SD 2.1-base: Hub id or local folder")
    c.add_argument("--out", required=True, help="the model folder to write (new or empty)")
    c.add_argument("--lora-alpha", type=float, default=None,
                   help="LoRA alpha (default: the file's own alphas, else alpha = rank, i.e. scale 1, as the "
                        "release's loaders do; the release is rank 16, alpha 16)")
    c.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty --out")
    c.add_argument("--local-files-only", action="store_true", default=None)
    c.set_defaults(func=cmd_convert)
    add_degrade_parser(sub)
    add_eval_parsers(sub)
    add_convert_dists_parser(sub)
    add_train_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "batch_size", None) is not None and args.batch_size < 1:
        _err("--batch-size must be at least 1")
        return 2
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
