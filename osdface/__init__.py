"""osdface: OSDFace one-step diffusion face restoration (Wang et al., CVPR 2025), open and complete."""

__version__ = "0.1.0"

from .configs import PRESETS, OSDFaceConfig, get_preset  # noqa: E402
from .hub import MissingWeightsError  # noqa: E402
from .models import OneStepGenerator, VisualRepresentationEmbedder  # noqa: E402
from .pipeline import OSDFacePipeline  # noqa: E402

__all__ = ["OSDFaceConfig", "OSDFacePipeline", "OneStepGenerator", "PRESETS", "MissingWeightsError",
           "VisualRepresentationEmbedder", "get_preset", "__version__"]
