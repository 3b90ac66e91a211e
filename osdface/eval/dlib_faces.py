"""dlib's offline face models for metrics on FFHQ-aligned faces: one face box per ground-truth image.

The models ship (CC0) in the ``face-recognition-models`` package: ``shape_predictor_68_face_landmarks.dat``,
``shape_predictor_5_face_landmarks.dat``, ``dlib_face_recognition_resnet_model_v1.dat``. The box is found on the
ground truth with dlib's HOG detector (the largest face); when it finds none, the box that HOG gives on typical
FFHQ-aligned crops is used (:data:`osdface.faces.alignment.ALIGNED_BOX`). The same box is then used for the prediction, so that a metric compares landmark
positions, not detector jitter.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from functools import lru_cache

import numpy as np

from ..faces.alignment import ALIGNED_BOX
from ..weights import MissingWeightsError, face_recognition_models_dir

__all__ = ["dlib_models", "face_box", "to_rgb_uint8"]

_BOXES: OrderedDict = OrderedDict()  # image digest → (l, t, r, b, detected): LMD and Deg-dlib share one detection
_BOXES_MAX = 256


@lru_cache(maxsize=1)
def dlib_models():
    """(dlib module, HOG detector, 68-point predictor, 5-point predictor, recognition ResNet), loaded once."""
    try:
        import dlib
    except ImportError as err:
        raise MissingWeightsError(f"needs dlib (pip install dlib-bin==20.0.1.post1): {err}") from None
    folder = face_recognition_models_dir()
    files = ["shape_predictor_68_face_landmarks.dat", "shape_predictor_5_face_landmarks.dat",
             "dlib_face_recognition_resnet_model_v1.dat"]
    for name in files:
        if not (folder / name).is_file():
            raise MissingWeightsError(f"needs {name} from the package face-recognition-models==0.3.0 (reinstall it)")
    return (dlib, dlib.get_frontal_face_detector(), dlib.shape_predictor(str(folder / files[0])),
            dlib.shape_predictor(str(folder / files[1])), dlib.face_recognition_model_v1(str(folder / files[2])))


def to_rgb_uint8(x) -> np.ndarray:
    """(3, H, W) uint8 / [0, 1] tensor or (H, W, 3) array → contiguous (H, W, 3) uint8."""
    import torch

    if torch.is_tensor(x):
        x = x.detach().cpu()
        x = x if x.dtype == torch.uint8 else (x.float().clamp(0, 1) * 255).round().to(torch.uint8)
        x = x.permute(1, 2, 0).numpy()
    return np.ascontiguousarray(x, dtype=np.uint8)


def face_box(img_rgb: np.ndarray):
    """The largest HOG face box of ``img_rgb`` (a ``dlib.rectangle``), else :data:`ALIGNED_BOX` scaled to it;
    returns (rectangle, detected: bool). Results are cached by the image's content (the last 256 images)."""
    dlib, hog = dlib_models()[:2]
    key = hashlib.blake2b(img_rgb.tobytes(), digest_size=16).hexdigest() + str(img_rgb.shape)
    if key in _BOXES:
        _BOXES.move_to_end(key)
        *ltrb, found = _BOXES[key]
        return dlib.rectangle(*ltrb), found
    rects = hog(img_rgb, 0)
    if len(rects):
        r, found = max(rects, key=lambda r: r.area()), True
        ltrb = (r.left(), r.top(), r.right(), r.bottom())
    else:
        h, w = img_rgb.shape[:2]
        l, t, r, b = ALIGNED_BOX
        ltrb, found = (round(l * w), round(t * h), round(r * w), round(b * h)), False
    _BOXES[key] = (*ltrb, found)
    if len(_BOXES) > _BOXES_MAX:
        _BOXES.popitem(last=False)
    return dlib.rectangle(*ltrb), found
