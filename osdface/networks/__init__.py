"""Pretrained helper networks used by the training losses AND the evaluation metrics.

- :mod:`~osdface.networks.arcface`: ArcFace IR-SE-50 (identity loss, the paper's Deg column).
- :mod:`~osdface.networks.dists`: DISTS on VGG16 (EA-DISTS loss, the DISTS column) and its converter.
- :mod:`~osdface.networks.dlib_resnet`: dlib's face-recognition ResNet ported to PyTorch (the offline identity loss,
  the Deg-dlib column), read from dlib's own file and converted once to safetensors.

Their weights are found and checked by :mod:`osdface.weights`. Names are imported on first use.
"""

from ..lazy import lazy_names

_NAMES = {
    "ArcFaceIRSE": "arcface", "load_arcface": "arcface",
    "DISTS": "dists", "load_dists": "dists", "convert_dists": "dists",
    "DlibFaceResNet": "dlib_resnet", "read_dlib_face_resnet": "dlib_resnet", "convert_dlib_face_resnet": "dlib_resnet",
    "load_dlib_face_resnet": "dlib_resnet", "ffhq_to_dlib_chip": "dlib_resnet", "dlib_embed": "dlib_resnet",
    "DLIB_CHIP_IN_FFHQ": "dlib_resnet",
}
__all__ = sorted(_NAMES)

__getattr__, __dir__ = lazy_names(__name__, _NAMES)
