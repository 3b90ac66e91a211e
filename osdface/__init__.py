"""osdface: OSDFace one-step diffusion face restoration (Wang et al., CVPR 2025), open and complete.

Names are imported on first use, so ``import osdface`` (and the command line's ``--help``) stay fast: torch,
diffusers and the face-detection packages load only when a feature that needs them is used.
"""

from .lazy import lazy_names

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

__getattr__, __dir__ = lazy_names(__name__, _LAZY)
