"""Generated clips with a known face motion: the flicker benchmark's and the tests' material, made at run time.

    frames = synthetic_clip(face_512, size=(480, 854), frames=75, motion="moving")
    write_clip("clip.mp4", (f.lq for f in frames), fps=25)          # H.264 + a sine-wave AAC track

A face (an FFHQ-aligned 512² crop: the public-domain astronaut of ``examples/`` or a shared face) is pasted on a
static background (:func:`osdface.faces.synthetic_group.background`) by a similarity transform that moves smoothly
(``"moving"``: a pan of ±18 % of the width, a vertical drift, a zoom of ±15 %, a rotation of ±8°, periods of
3–5 s; ``"still"``: none), and every frame is degraded with the same blur, down-scaling and JPEG quality but fresh
noise (:func:`osdface.data.degradations.apply_params`), as a low-quality video would be. Each
:class:`ClipFrame` carries the ground truth: the clean frame, the 5 landmarks, the crop → frame transform and the
pasted face's mask. Nothing generated here is stored in the repository.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ..faces.alignment import FFHQ_TEMPLATE_512, similarity_transform
from ..faces.synthetic_group import FACE_BOX_512, background, paste_face

__all__ = ["ClipFrame", "VIDEO_DEGRADATION", "motion_at", "synthetic_clip", "write_clip"]

#: the per-frame degradation of the generated clips (fresh noise each frame): a soft, noisy, compressed video
VIDEO_DEGRADATION = {"kernel_type": "iso", "kernel_radius": 7, "kernel_size": 15, "sigma_x": 1.5, "sigma_y": 1.5,
                     "angle": 0.0, "scale": 2.0, "noise_sigma": 6.0, "jpeg_quality": 55}


@dataclass
class ClipFrame:
    """One generated frame: ``lq`` (degraded, what the restorer sees) and ``hq`` (clean) RGB uint8; ``landmarks``
    (5, 2) and ``affine`` (512 crop → frame) the truth; ``mask`` (H, W) float32 in [0, 1]: where the face was pasted
    (only with ``masks=True``)."""

    index: int
    time: float
    lq: np.ndarray
    hq: np.ndarray
    landmarks: np.ndarray
    affine: np.ndarray
    mask: np.ndarray | None = None


def motion_at(t: float, size: tuple[int, int], motion: str = "moving",
              face_width: float | None = None) -> tuple[float, float, float, float]:
    """``(cx, cy, width, angle)`` of the face box at time ``t`` (seconds) in a frame of ``size`` = (H, W)."""
    h, w = size
    w0 = face_width or 0.3 * h
    if motion == "still":
        return w / 2.0, h * 0.5, float(w0), 0.0
    if motion != "moving":
        raise ValueError(f"motion must be 'moving' or 'still', not {motion!r}")
    cx = w / 2.0 + 0.18 * w * math.sin(2 * math.pi * t / 4.0)
    cy = h * 0.5 + 0.06 * h * math.sin(2 * math.pi * t / 3.0 + 1.0)
    width = w0 * (1.0 + 0.15 * math.sin(2 * math.pi * t / 5.0))
    angle = 8.0 * math.sin(2 * math.pi * t / 3.5)
    return cx, cy, width, angle


def synthetic_clip(face: np.ndarray, size: tuple[int, int] = (240, 426), frames: int = 75, fps: float = 25.0, *,
                   motion: str = "moving", face_width: float | None = None, degradation: dict | None = None,
                   seed: int = 0, masks: bool = False) -> Iterator[ClipFrame]:
    """Yield ``frames`` generated frames (see the module docstring); ``degradation``: an
    :func:`~osdface.data.degradations.apply_params` dict (default :data:`VIDEO_DEGRADATION`; its ``noise_seed``
    is replaced per frame); ``{}`` for none."""
    from ..data.degradations import apply_params

    h, w = size
    bg = background(h, w, seed)
    params = dict(VIDEO_DEGRADATION if degradation is None else degradation)
    white = np.full((512, 512, 3), 255, np.uint8)
    rng = np.random.default_rng(seed)
    for i in range(frames):
        t = i / float(fps)
        cx, cy, width, angle = motion_at(t, size, motion, face_width)
        hq = bg.copy()
        label = paste_face(hq, face, cx, cy, width, angle)
        if params:
            lq = apply_params(hq, {**params, "noise_seed": int(rng.integers(0, 2**32))})
        else:
            lq = hq.copy()
        affine = similarity_transform(FFHQ_TEMPLATE_512, label.landmarks)  # exact: the paste is a similarity
        mask = None
        if masks:
            canvas = np.zeros((h, w, 3), np.uint8)
            paste_face(canvas, white, cx, cy, width, angle)
            mask = canvas[..., 0].astype(np.float32) / 255.0
        yield ClipFrame(i, t, lq, hq, label.landmarks, affine, mask)


def write_clip(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float = 25.0, *, audio: bool = True,
               audio_rate: int = 44100, crf: int = 18, preset: str = "veryfast", codec: str = "libx264",
               container_format: str | None = None) -> Path:
    """Encode RGB frames (all of one even size) as a video with, if ``audio``, an AAC sine (440 Hz) as long as the
    video. For tests and benchmarks; ``container_format`` overrides the one FFmpeg picks from the name."""
    import av

    path = Path(path)
    rate = Fraction(fps).limit_denominator(1001)
    out = av.open(str(path), "w", format=container_format)
    try:
        v = out.add_stream(codec, rate=rate, options={"crf": str(crf), "preset": preset} if codec == "libx264" else {})
        a = None
        if audio:
            a = out.add_stream("aac", rate=audio_rate)
            a.layout = "mono"
        n = 0
        for rgb in frames:
            if n == 0:
                v.height, v.width = rgb.shape[:2]
                v.pix_fmt = "yuv420p"
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = n
            frame.time_base = 1 / rate
            out.mux(v.encode(frame))
            n += 1
        out.mux(v.encode(None))
        if a is not None:
            total = int(round(n / float(rate) * audio_rate))
            for start in range(0, total, 1024):
                k = min(1024, total - start)
                s = np.arange(start, start + k) / audio_rate
                chunk = (0.2 * np.sin(2 * math.pi * 440.0 * s)).astype(np.float32)[None]
                fr = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
                fr.sample_rate, fr.pts = audio_rate, start
                out.mux(a.encode(fr))
            out.mux(a.encode(None))
    finally:
        out.close()
    return path


def face_box_width(affine: np.ndarray) -> float:
    """The width of the face box (:data:`~osdface.faces.synthetic_group.FACE_BOX_512`) under ``affine``."""
    return float(np.sqrt(abs(np.linalg.det(np.asarray(affine)[:, :2]))) * (FACE_BOX_512[2] - FACE_BOX_512[0]))
