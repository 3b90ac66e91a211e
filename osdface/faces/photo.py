"""Whole-photo restoration: detect → align → restore (one batched pipeline call) → colour fix → paste back.

    result = restore_photo(pipe, Image.open("group.jpg"), upscale=2, color_fix="wavelet")
    result.image.save("out.png"); [f["restored"] for f in result.faces]

The background is enlarged with Lanczos (``bg_upsampler`` is the hook for a learned upsampler: a callable
``(PIL.Image, scale) -> PIL.Image`` of exactly ``scale`` times the size). Faces are detected on a reduced copy of a
large photo and cropped from the full-resolution photo; pasting only touches each face's bounding box.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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

__all__ = ["PhotoResult", "restore_photo", "lanczos_upsample", "upscale_affine"]


@dataclass
class PhotoResult:
    """``image``: the final photo (PIL RGB, ``upscale`` x the input). ``faces``: one dict per restored face with
    ``box`` (x0, y0, x1, y1) and ``landmarks`` (5, 2) in input-photo pixels, ``score``, ``affine`` (photo → crop,
    2x3), ``cropped`` and ``restored`` (PIL, the aligned crop and its restoration after the colour fix)."""

    image: Image.Image
    faces: list[dict] = field(default_factory=list)


def lanczos_upsample(img: Image.Image, scale: int) -> Image.Image:
    """The default background upsampler: PIL Lanczos to exactly ``scale`` x the size."""
    if scale == 1:
        return img.copy()
    return img.resize((img.width * scale, img.height * scale), Image.LANCZOS)


def upscale_affine(scale: float) -> np.ndarray:
    """Input-photo pixel coordinates → coordinates in the photo enlarged ``scale`` times (pixel centres)."""
    return np.array([[scale, 0.0, 0.5 * scale - 0.5], [0.0, scale, 0.5 * scale - 0.5]])


def _center_face(faces: list[Face], h: int, w: int) -> list[Face]:
    if not faces:
        return faces
    c = np.array([w / 2.0, h / 2.0])
    return [min(faces, key=lambda f: float(np.linalg.norm(f.center - c)))]


def restore_photo(pipe, image, *, detector: FaceDetector | None = None, upscale: int = 1,
                  only_center_face: bool = False, color_fix: str = "none", draw_box: bool = False,
                  batch_size: int = 8, bg_upsampler: Callable[[Image.Image, int], Image.Image] | None = None,
                  max_faces: int | None = None, pipe_kwargs: dict | None = None) -> PhotoResult:
    """Restore every face of a whole photo (PIL image, or (H, W, 3) uint8 / float array) with ``pipe``.

    Faces (best detection score first; ``only_center_face``: the one nearest the photo's centre) are aligned to
    ``pipe.config.process_size``², restored in one ``pipe(...)`` call (``batch_size`` per forward pass), colour
    corrected toward their crops (``color_fix``: none | adain | wavelet) and pasted into the background enlarged
    ``upscale`` times. ``draw_box`` outlines each detected box in the final image. With no face the enlarged photo
    is returned and ``faces`` is empty.
    """
    if color_fix not in COLOR_FIX_METHODS:
        raise ValueError(f"unknown colour fix {color_fix!r}; use one of {', '.join(COLOR_FIX_METHODS)}")
    upscale = int(upscale)
    if upscale < 1:
        raise ValueError("upscale must be an integer >= 1")
    rgb = as_rgb_uint8(image)
    h, w = rgb.shape[:2]
    size = int(pipe.config.process_size)
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

    restored = []
    if crops:
        out = pipe([Image.fromarray(c) for c in crops], output_type="np", batch_size=batch_size,
                   **(pipe_kwargs or {}))
        restored = [np.asarray(out[i], dtype=np.float32) for i in range(len(crops))]
        if restored and restored[0].shape[:2] != (size, size):  # a pipe working at another size
            restored = [cv2.resize(r, (size, size), interpolation=cv2.INTER_CUBIC) for r in restored]
        restored = [color.color_fix(r, c, color_fix) for r, c in zip(restored, crops)]

    background = (bg_upsampler or lanczos_upsample)(Image.fromarray(rgb), upscale)
    if background.size != (w * upscale, h * upscale):
        raise ValueError(f"the background upsampler returned {background.size}, expected "
                         f"{(w * upscale, h * upscale)}")
    final = np.array(background.convert("RGB"))
    del background
    up = upscale_affine(upscale)
    results = []
    for face, crop, m, r in zip(faces, crops, affines, restored):
        paste_face(final, r, compose_affine(up, invert_affine(m)))
        results.append({"box": face.box.copy(), "landmarks": face.landmarks.copy(), "score": face.score,
                        "affine": m, "cropped": Image.fromarray(crop), "restored": Image.fromarray(to_uint8(r))})
    if draw_box:
        thickness = max(1, round(max(h, w) * upscale / 500))
        for face in faces:
            x0, y0, x1, y1 = (float(v) * upscale for v in face.box)
            cv2.rectangle(final, (int(round(x0)), int(round(y0))), (int(round(x1)), int(round(y1))),
                          (0, 255, 0), thickness)
    return PhotoResult(Image.fromarray(final), results)
