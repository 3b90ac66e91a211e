"""Whole-photo face restoration: detection, FFHQ alignment, paste-back, colour correction.

    from osdface.faces import restore_photo, get_detector
    result = restore_photo(pipe, photo, upscale=2, color_fix="adain")

Names are imported lazily (OpenCV / dlib load only when used).
"""

from ..lazy import lazy_names

_NAMES = {
    "FFHQ_TEMPLATE_512": "alignment", "template": "alignment", "similarity_transform": "alignment",
    "align_face": "alignment", "invert_affine": "alignment",
    "COLOR_FIX_METHODS": "color", "color_fix": "color",
    "Face": "detection", "FaceDetector": "detection", "DlibDetector": "detection", "RetinaFaceDetector": "detection",
    "DETECTORS": "detection", "get_detector": "detection",
    "feather_mask": "paste", "paste_face": "paste",
    "PhotoResult": "photo", "restore_photo": "photo",
}
__all__ = sorted(_NAMES)

__getattr__, __dir__ = lazy_names(__name__, _NAMES)
