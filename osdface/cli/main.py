"""The ``osdface`` command: one sub-command per task, each in its own module of this package.

    osdface restore -i face.png -o out --has_aligned           restore aligned face crops (or whole photos without
                                                               --has_aligned); the bundled nano model by default
    osdface convert ...                                        the authors' released weights → a model folder
    osdface convert-dists / convert-dlib / convert-realesrgan  helper networks' weights → safetensors
    osdface export-onnx --out DIR                              the model as ONNX graphs (restore --backend onnx)
    osdface degrade / eval / evaluate-model                    benchmark sets and the paper's metrics
    osdface train-vae / train-vre / train                      the three training stages
    osdface deploy-space                                       the demo as a Hugging Face Space

Parsers import only the standard library and this package's light modules, so ``--help`` and argument errors are
answered before torch or diffusers load; each command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import os
import sys

from . import convert, data, eval as eval_cmds, export, restore, space, train

COMMAND_MODULES = (restore, convert, export, data, eval_cmds, train, space)


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="osdface", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="OSDFace: one-step diffusion face restoration (Wang et al., CVPR 2025).",
        epilog="Run `osdface COMMAND --help` for a command's options. Docs: docs/getting-started.md, docs/ARCHITECTURE.md.")
    parser.add_argument("--version", action="version", version=f"osdface {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
