"""osdface: OSDFace one-step diffusion face restoration (Wang et al., CVPR 2025), open and complete.

Names are imported on first use, so ``import osdface`` (and the command line's ``--help``) stay fast: torch,
diffusers and the face-detection packages load only when a feature that needs them is used.
"""

import importlib

__version__ = "0.1.0"

_LAZY = {
    "OSDFacePipeline": "pipeline",
    "OSDFaceONNXPipeline": "onnx_pipeline",  # ONNX Runtime, no torch (an `osdface export-onnx` folder)
    "OneStepGenerator": "models",
    "VisualRepresentationEmbedder": "models",
    "OSDFaceConfig": "configs",
    "PRESETS": "configs",
    "get_preset": "configs",
    "MissingWeightsError": "weights",
    "restore_image": "restore",
    "restore_files": "restore",
}
__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
