"""``osdface convert-dists``: the published DISTS weights as an osdface safetensors folder.

    osdface convert-dists --vgg vgg16-397923af.pth --dists weights.pt --out ./dists

Inputs (both plain pickled state dicts, read with ``torch.load(weights_only=True)`` only):

- ``vgg16-397923af.pth``: torchvision's ImageNet VGG16 (:data:`osdface.losses.dists.VGG16_URL`); keys
  ``features.{0,2,5,7,10,12,14,17,19,21,24,26,28}.weight/bias`` (the 13 convolutions) and ``classifier.{0,3,6}.*``
  (the fully connected head, not used by DISTS and dropped).
- ``weights.pt``: the DISTS authors' learned weights, a dict ``{"alpha": (1, 1475, 1, 1), "beta": (1, 1475, 1, 1)}``
  (:data:`osdface.losses.dists.DISTS_WEIGHTS_URL`).

Every key and shape is checked. The folder (``config.json``, ``diffusion_pytorch_model.safetensors``,
``sources.json`` with the inputs' SHA-256) loads with :func:`osdface.losses.load_dists`. ``--out`` must be new or
empty unless ``--overwrite``; nothing is written outside it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from .dists import DISTS, DISTS_HINT

__all__ = ["convert_dists", "add_convert_dists_parser", "cmd_convert_dists"]

VGG_HEAD_PREFIX = "classifier."


def _read(path: Path) -> dict[str, torch.Tensor]:
    from ..convert import load_state_dict_file

    tensors = load_state_dict_file(path)
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in tensors.items()}


def convert_dists(vgg: str | Path, dists: str | Path, out: str | Path, *, overwrite: bool = False) -> Path:
    """Check both files and write the DISTS folder ``out``; returns it. Missing files → MissingWeightsError,
    a wrong layout → ConversionError (listing every problem)."""
    from ..convert import ConversionError, _sha256, check_layout
    from ..hub import MissingWeightsError

    vgg, dists, out = Path(vgg).expanduser(), Path(dists).expanduser(), Path(out).expanduser()
    absent = [str(p) for p in (vgg, dists) if not p.is_file()]
    if absent:
        raise MissingWeightsError(f"not found: {', '.join(absent)}; {DISTS_HINT}.")
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise ConversionError(f"{out} exists and is not an empty folder; choose a new folder (or pass --overwrite).")

    model = DISTS()
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    vgg_state = {k: v for k, v in _read(vgg).items() if not k.startswith(VGG_HEAD_PREFIX)}
    if any(k.endswith("running_mean") for k in vgg_state):
        raise ConversionError(f"{vgg.name} is a VGG16 with batch norm (vgg16_bn); DISTS uses the plain VGG16 "
                              "(vgg16-397923af.pth).")
    check_layout(vgg_state, {k: s for k, s in expected.items() if k.startswith("features.")},
                 f"{vgg.name} (torchvision VGG16)")
    dists_state = _read(dists)
    check_layout(dists_state, {k: s for k, s in expected.items() if k in ("alpha", "beta")}, f"{dists.name} (DISTS)")
    weights = {**vgg_state, **dists_state}
    bad = [k for k, v in weights.items() if not torch.isfinite(v).all()]
    if bad:
        raise ConversionError(f"non-finite values in {', '.join(bad[:5])}")
    if (dists_state["alpha"] < 0).any() or (dists_state["beta"] < 0).any():
        raise ConversionError(f"{dists.name}: alpha/beta must be non-negative (DISTS's weights are)")
    model.load_state_dict({k: v.float() for k, v in weights.items()}, strict=True)

    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    sources = {"vgg16": {"file": vgg.name, "sha256": _sha256(vgg)},
               "dists": {"file": dists.name, "sha256": _sha256(dists)},
               "paper": "Ding et al., Image Quality Assessment: Unifying Structure and Texture Similarity, "
                        "TPAMI 2020 (arXiv:2004.07728)"}
    (out / "sources.json").write_text(json.dumps(sources, indent=2) + "\n", encoding="utf-8")
    return out


def cmd_convert_dists(args) -> int:
    from ..convert import ConversionError
    from ..hub import MissingWeightsError

    try:
        out = convert_dists(args.vgg, args.dists, args.out, overwrite=args.overwrite)
    except (MissingWeightsError, ConversionError) as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 2
    print(f"wrote DISTS into {out}; load it with osdface.losses.load_dists({str(out)!r})")
    return 0


def add_convert_dists_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``osdface convert-dists`` on the CLI's sub-parsers."""
    c = subparsers.add_parser("convert-dists", help="convert VGG16 + DISTS weights into a safetensors folder "
                              "(the EA-DISTS training loss)", description=__doc__.split("\n")[0])
    c.add_argument("--vgg", required=True, help="torchvision's vgg16-397923af.pth")
    c.add_argument("--dists", required=True, help="the DISTS authors' weights.pt (alpha, beta)")
    c.add_argument("--out", required=True, help="the folder to write (new or empty)")
    c.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty --out")
    c.set_defaults(func=cmd_convert_dists)
    return c
