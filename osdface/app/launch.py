"""Start the demo: ``python app.py [--port N] [--model FOLDER_OR_HUB_ID] ...`` (also ``python -m osdface.app``).

Defaults: 127.0.0.1 on a free port (printed), the model from ``--model``, else ``$OSDFACE_MODEL``, else the bundled
nano model, loaded once before the server starts. On a Hugging Face Space (``SPACE_ID`` is set) it listens where
the Space expects it (``$GRADIO_SERVER_NAME`` / ``$GRADIO_SERVER_PORT``, i.e. 0.0.0.0:7860).
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys

from ..faces.detection import DETECTOR_NAMES
from .defaults import DEFAULT_MAX_PIXELS, DTYPES, LOOPBACK


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _env_flag(name: str) -> bool | None:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return None
    return value in ("1", "true", "yes", "on")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="app.py", description="OSDFace demo (Gradio)")
    p.add_argument("--model", default=None,
                   help="model folder or Hub id (default: $OSDFACE_MODEL, else the bundled nano model)")
    p.add_argument("--extra-model", action="append", default=[], dest="extra_models",
                   help="another model offered in the page's Advanced section (repeatable; also $OSDFACE_MODELS, "
                        "comma-separated)")
    p.add_argument("--allow-custom-models", action=argparse.BooleanOptionalAction, default=None,
                   help="let users type any model folder / Hub id (default: on for 127.0.0.1, off otherwise; "
                        "$OSDFACE_ALLOW_CUSTOM_MODELS)")
    p.add_argument("--device", default="auto", help="auto (CUDA when visible), cpu, cuda, mps")
    p.add_argument("--backend", choices=("torch", "onnx"), default="torch",
                   help="torch (default), or onnx: --model is an `osdface export-onnx` folder, run by ONNX Runtime "
                        "(torch not needed, e.g. on a CPU Space)")
    p.add_argument("--dtype", default="auto", choices=DTYPES, help="default dtype (auto: fp16 on CUDA, else fp32)")
    p.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1; a Space: 0.0.0.0)")
    p.add_argument("--port", type=int, default=None, help="port (default: a free one; a Space: 7860)")
    p.add_argument("--concurrency", type=int, default=1, help="restorations run at the same time (default 1)")
    p.add_argument("--max-queue", type=int, default=16, help="requests waiting at most (default 16)")
    p.add_argument("--batch", choices=("auto", "on", "off"), default="auto",
                   help="hand requests that queued up together to one model call (auto: on a CUDA device only)")
    p.add_argument("--max-batch-size", type=int, default=8, help="requests per batched call at most (default 8)")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                   help=f"largest accepted upload in pixels (default {DEFAULT_MAX_PIXELS:,})")
    p.add_argument("--max-file-size", default="50mb", help="largest accepted upload file (default 50mb)")
    p.add_argument("--bg-upsampler", action="append", default=None, dest="bg_upsamplers",
                   choices=("lanczos", "realesrgan"),
                   help="a background upsampler to offer for enlarged photos (repeat for several; default: lanczos, "
                        "plus realesrgan on a GPU when its weights are installed: on a CPU it takes minutes per "
                        "megapixel)")
    p.add_argument("--detector", default="auto", choices=DETECTOR_NAMES,
                   help="face detector for whole photos (auto: the best one that runs here without a download)")
    p.add_argument("--share", action="store_true", help="also open a public gradio.live link (needs internet)")
    return p


def prepare(argv: list[str] | None = None):
    """Parse the options, load the model (once) and build the page: ``(demo, restorer, launch_kwargs)``, or an
    exit status (2) after one ``error:`` line. ``demo.launch(**launch_kwargs)`` serves it."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    on_space = bool(os.environ.get("SPACE_ID"))
    host = args.host or os.environ.get("GRADIO_SERVER_NAME") or ("0.0.0.0" if on_space else "127.0.0.1")
    port = args.port or (int(os.environ["GRADIO_SERVER_PORT"]) if os.environ.get("GRADIO_SERVER_PORT") else None)
    port = port or (7860 if on_space else free_port(host if host != "0.0.0.0" else "127.0.0.1"))
    if args.concurrency < 1 or args.max_queue < 1 or args.max_pixels < 1 or args.max_batch_size < 1:
        print("error: --concurrency, --max-queue, --max-pixels and --max-batch-size must be at least 1",
              file=sys.stderr)
        return 2
    allow_custom = args.allow_custom_models
    if allow_custom is None:
        allow_custom = _env_flag("OSDFACE_ALLOW_CUSTOM_MODELS")
    if allow_custom is None:
        allow_custom = host in LOOPBACK and not on_space
    extra = [*args.extra_models, *[m.strip() for m in os.environ.get("OSDFACE_MODELS", "").split(",") if m.strip()]]

    if os.environ.get("SPACES_ZERO_GPU"):  # ZeroGPU: `spaces` must be imported before the model goes to CUDA
        try:
            import spaces  # noqa: F401
        except ImportError:
            print("warning: SPACES_ZERO_GPU is set but the 'spaces' package is missing", file=sys.stderr)

    try:
        import gradio  # noqa: F401
    except ImportError:
        print("error: the demo needs gradio: pip install -r requirements-app.txt (see "
              "docs/demo.md)", file=sys.stderr)
        return 2
    from ..weights import MissingWeightsError
    from .restorer import DemoInputError, DemoRestorer
    from .ui import build_demo, launch_options

    try:
        restorer = DemoRestorer(args.model, device=args.device, dtype=args.dtype, detector=args.detector,
                                models=tuple(extra), allow_custom_models=allow_custom, max_pixels=args.max_pixels,
                                backend=args.backend, bg_upsamplers=args.bg_upsamplers)
    except (MissingWeightsError, DemoInputError, ValueError, RuntimeError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    batch = {"auto": None, "on": True, "off": False}[args.batch]
    demo = build_demo(restorer, concurrency_limit=args.concurrency, max_queue=args.max_queue, batch=batch,
                      max_batch_size=args.max_batch_size)
    launch_kwargs = dict(server_name=host, server_port=port, show_error=True, share=args.share,
                         max_file_size=args.max_file_size, footer_links=["api", "gradio"], **launch_options())
    return demo, restorer, launch_kwargs


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    prepared = prepare(argv)
    if isinstance(prepared, int):
        return prepared
    demo, restorer, launch_kwargs = prepared
    print(f"OSDFace demo: {restorer.describe()}", flush=True)
    try:
        demo.launch(**launch_kwargs)
    finally:
        restorer.close()
    return 0
