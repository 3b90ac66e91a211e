"""Visual Representation Embedder (VRE): a low-quality face → a (B, 77, 1024) prompt for the UNet (OSDFace §3.2).

    image ──resize──► VQEncoder ──quant_conv──► 16×16 grid of 512-d features
          ──prompt rule (Codebook.prompt_tokens)──► (B, 77, 512) code vectors ──PromptProjector──► (B, 77, 1024)

State-dict keys: ``encoder.*``, ``quant_conv.*``, ``quantize.embedding.weight`` (the release's names after the
``vqvae_LQ.`` prefix) and ``projector.conv1/conv2.*`` (the release's ``embedding_change_weights.pth``).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from .codebook import Codebook, PromptTokens
from .prompt_projector import PromptProjector
from .vq_encoder import VQEncoder


class VisualRepresentationEmbedder(ModelMixin, ConfigMixin):
    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        ch: int = 64,
        ch_mult: Sequence[int] = (1, 2, 2, 2, 4, 8),
        num_res_blocks: int = 2,
        attn_resolutions: Sequence[int] = (16,),
        resolution: int = 512,  # the VRE resizes every input to resolution² (bilinear, align_corners=False)
        z_channels: int = 512,
        n_codes: int = 1024,  # the VQ dictionary: 1024 codes
        code_dim: int = 512,  # … of 512 dims
        num_tokens: int = 77,  # prompt length, as an SD text prompt
        prompt_dim: int = 1024,  # UNet cross-attention width (SD 2.1: 1024)
        projector_hidden_dim: int | None = None,  # release: code_dim // 2
        # The released weights were trained on inputs that went through (x - 0.5) / 0.5 *after* the pipeline had
        # already mapped [0, 1] → [-1, 1], so the tokenizer really saw values in [-3, 1]. True reproduces that
        # (required for the authors' converted weights); models trained by osdface use False ([-1, 1] input).
        double_normalize_input: bool = False,
    ):
        super().__init__()
        self.encoder = VQEncoder(in_channels, ch, ch_mult, num_res_blocks, attn_resolutions, resolution, z_channels)
        self.quant_conv = nn.Conv2d(z_channels, code_dim, 1)
        self.quantize = Codebook(n_codes, code_dim)
        self.projector = PromptProjector(code_dim, prompt_dim, projector_hidden_dim)

    # -- the three steps, usable one by one (training, notebooks, visualisation) ------------------------------------
    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        """``image`` in [-1, 1], any size → the tensor the encoder sees (resized; [-3, 1] with the quirk)."""
        size = self.config.resolution
        if image.shape[-2:] != (size, size):
            image = F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False)
        if self.config.double_normalize_input:
            image = (image - 0.5) / 0.5
        return image

    def features(self, image: torch.Tensor) -> torch.Tensor:
        """``image`` in [-1, 1] → (B, code_dim, h, w) pre-quantisation features."""
        return self.quant_conv(self.encoder(self.preprocess(image)))

    def tokens(self, image: torch.Tensor) -> PromptTokens:
        """``image`` in [-1, 1] → the selected codes (embeddings (B, 77, code_dim), indices, valid mask)."""
        return self.quantize.prompt_tokens(self.features(image), self.config.num_tokens)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``image`` (B, 3, H, W) in [-1, 1] → prompt embeddings (B, num_tokens, prompt_dim)."""
        return self.projector(self.tokens(image).embeddings)
