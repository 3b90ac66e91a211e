"""OSDFace's models, one concept per file (see each file's docstring)."""

from .codebook import Codebook, PromptTokens, select_unique_codes, squared_distances
from .one_step import OneStepGenerator, x0_from_eps
from .patch_vae import PatchVAE, build_vae, vae_class_of
from .prompt_projector import PromptProjector
from .vq_encoder import AttnBlock, Downsample, ResnetBlock, VQEncoder
from .vre import VisualRepresentationEmbedder

__all__ = [
    "AttnBlock", "Codebook", "Downsample", "OneStepGenerator", "PatchVAE", "PromptProjector", "PromptTokens",
    "ResnetBlock", "VQEncoder", "VisualRepresentationEmbedder", "build_vae", "select_unique_codes",
    "squared_distances", "vae_class_of", "x0_from_eps",
]
