"""Face detectors returning boxes, scores and 5 landmarks.

    det = get_detector("auto")                  # RetinaFace when its weights are on disk, else dlib (offline)
    faces = det.detect(rgb_uint8)               # list[Face], best first

Backends
    :class:`DlibDetector`
        dlib's HOG frontal-face detector + the 68-point landmark predictor shipped (CC0) in the
        ``face-recognition-models`` package; works offline. 5 points: eye centre = mean of the 6 eye points
        (36-41 / 42-47), nose tip = point 30, mouth corners = points 48 and 54. Small photos are upsampled for
        detection (HOG finds faces from about 80 px); landmarks are predicted on the full-resolution photo.
    :class:`RetinaFaceDetector`
        facexlib's RetinaFace-ResNet50. Its weight file ``detection_Resnet50_Final.pth`` is read from
        ``weights_dir`` / ``$OSDFACE_WEIGHTS`` / facexlib's own weights folder, or downloaded by facexlib where
        the machine has internet.

Every backend detects on a copy whose longer side is at most ``max_side`` (huge photos) and maps the
coordinates back to the input photo.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

logger = logging.getLogger("osdface.faces")

__all__ = ["Face", "FaceDetector", "DlibDetector", "RetinaFaceDetector", "DetectorUnavailableError",
           "get_detector", "RETINAFACE_FILE", "RETINAFACE_URL", "find_retinaface_weights"]

RETINAFACE_FILE = "detection_Resnet50_Final.pth"
RETINAFACE_URL = "https://github.com/xinntao/facexlib/releases/download/v0.1.0/detection_Resnet50_Final.pth"


class DetectorUnavailableError(RuntimeError):
    """A detector cannot be built (missing package or weight file); ``str(err)`` is one line."""


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


def _as_rgb_uint8(img) -> np.ndarray:
    arr = np.asarray(img)
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {arr.shape}")
    arr = arr[..., :3]
    if arr.dtype != np.uint8:
        arr = np.clip(arr * (255.0 if arr.dtype.kind == "f" and arr.max() <= 1.0 else 1.0), 0, 255).round()
        arr = arr.astype(np.uint8)
    return np.ascontiguousarray(arr)


class FaceDetector:
    """Interface: ``detect(img_rgb_uint8) -> list[Face]`` sorted by score, best first."""

    name = "base"
    #: detection runs on a copy whose longer side is at most this (coordinates are mapped back)
    max_side: int = 2000

    def detect(self, img) -> list[Face]:
        img = _as_rgb_uint8(img)
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
def _face_recognition_models_dir() -> Path:
    # located without importing the package: its __init__ needs pkg_resources (gone from recent setuptools)
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise DetectorUnavailableError("the dlib detector needs the package face-recognition-models "
                                       "(pip install face-recognition-models==0.3.0)")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


class DlibDetector(FaceDetector):
    """dlib HOG detector + 68-point landmarks (offline). ``upsample`` None: 2x for photos under 400 px on the short
    side... see :meth:`_upsample_times`; ``threshold``: dlib's adjust_threshold (higher = fewer detections)."""

    name = "dlib"

    def __init__(self, upsample: int | None = None, threshold: float = 0.0, max_side: int = 2000):
        try:
            import dlib
        except ImportError as err:
            raise DetectorUnavailableError(f"the dlib detector needs dlib (pip install dlib-bin==20.0.1.post1): "
                                           f"{err}") from None
        path = _face_recognition_models_dir() / "shape_predictor_68_face_landmarks.dat"
        if not path.is_file():
            raise DetectorUnavailableError(f"{path} is missing; reinstall face-recognition-models==0.3.0")
        self._dlib = dlib
        self._hog = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(path))
        self.upsample, self.threshold, self.max_side = upsample, float(threshold), int(max_side)

    def _upsample_times(self, h: int, w: int) -> int:
        if self.upsample is not None:
            return int(self.upsample)
        short = min(h, w)
        return 2 if short < 300 else 1 if short < 1000 else 0

    def _detect(self, small, *, full, factor):
        dlib = self._dlib
        rects, scores, _ = self._hog.run(small, self._upsample_times(*small.shape[:2]), self.threshold)
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
    """The first existing ``detection_Resnet50_Final.pth`` in ``weights_dir``, ``$OSDFACE_WEIGHTS``, facexlib's
    weights folder (``<facexlib>/weights``); None when there is none."""
    folders = []
    if weights_dir:
        folders.append(Path(weights_dir))
    if os.environ.get("OSDFACE_WEIGHTS"):
        folders.append(Path(os.environ["OSDFACE_WEIGHTS"]))
    spec = importlib.util.find_spec("facexlib")
    if spec is not None and spec.submodule_search_locations:
        folders.append(Path(list(spec.submodule_search_locations)[0]) / "weights")
    for folder in folders:
        for candidate in (folder / RETINAFACE_FILE, folder / "facexlib" / RETINAFACE_FILE):
            if candidate.is_file():
                return candidate
    return None


class RetinaFaceDetector(FaceDetector):
    """facexlib RetinaFace-ResNet50 (needs ``detection_Resnet50_Final.pth``)."""

    name = "retinaface"

    def __init__(self, weights_dir: str | os.PathLike | None = None, device="cpu", conf_threshold: float = 0.8,
                 max_side: int = 1600, allow_download: bool = True):
        try:
            import torch
            from facexlib.detection.retinaface import RetinaFace
        except Exception as err:  # ImportError, or facexlib's own import-time failures
            raise DetectorUnavailableError(f"the RetinaFace detector needs facexlib (pip install facexlib==0.3.0): "
                                           f"{type(err).__name__}: {err}") from None
        path = find_retinaface_weights(weights_dir)
        where = weights_dir or os.environ.get("OSDFACE_WEIGHTS")
        if path is None:
            if where or not allow_download:
                raise DetectorUnavailableError(
                    f"RetinaFace weights {RETINAFACE_FILE} not found in {where or 'the weights folders'}; "
                    f"download it from {RETINAFACE_URL} into that folder (or use --detection_model dlib)")
            try:  # facexlib's own download (needs internet)
                from facexlib.utils import load_file_from_url
                path = Path(load_file_from_url(RETINAFACE_URL, model_dir="facexlib/weights", progress=False))
            except Exception as err:
                raise DetectorUnavailableError(
                    f"RetinaFace weights {RETINAFACE_FILE} are not on disk and could not be downloaded "
                    f"({type(err).__name__}); download {RETINAFACE_URL} into a folder and pass --weights-dir "
                    f"(or set OSDFACE_WEIGHTS), or use --detection_model dlib") from None
        self.device = torch.device(device)
        with warnings.catch_warnings():  # torchvision's "pretrained is deprecated" from inside facexlib
            warnings.simplefilter("ignore")
            model = RetinaFace(network_name="resnet50", half=False, device=self.device)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            state = {k[7:] if k.startswith("module.") else k: v for k, v in state.items()}
            model.load_state_dict(state, strict=True)
        except Exception as err:
            raise DetectorUnavailableError(f"{path}: not a usable RetinaFace-ResNet50 checkpoint "
                                           f"({type(err).__name__}: {str(err).splitlines()[0][:200]})") from None
        self._model = model.eval().to(self.device)
        self.weights_path = path
        self.conf_threshold, self.max_side = float(conf_threshold), int(max_side)

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
def get_detector(name: str = "auto", weights_dir: str | os.PathLike | None = None, device="cpu") -> FaceDetector:
    """``"retinaface"``, ``"dlib"`` or ``"auto"`` (RetinaFace when its weights are on disk, else dlib; logged)."""
    name = (name or "auto").lower()
    if name not in ("auto", "dlib", "retinaface"):
        raise ValueError(f"unknown face detector {name!r}; use auto, dlib or retinaface")
    if name == "retinaface":
        det = RetinaFaceDetector(weights_dir, device=device)
    elif name == "dlib":
        det = DlibDetector()
    else:
        det = None
        if find_retinaface_weights(weights_dir) is not None:
            try:
                det = RetinaFaceDetector(weights_dir, device=device, allow_download=False)
            except DetectorUnavailableError as err:
                logger.warning("RetinaFace unavailable (%s); falling back to dlib", err)
        if det is None:
            det = DlibDetector()
    logger.info("face detector: %s", describe_detector(det))
    return det


def describe_detector(det: FaceDetector) -> str:
    if isinstance(det, RetinaFaceDetector):
        return f"retinaface (facexlib RetinaFace-ResNet50, {det.weights_path})"
    if isinstance(det, DlibDetector):
        return "dlib (HOG detector + 68-point landmarks, offline)"
    return type(det).__name__
