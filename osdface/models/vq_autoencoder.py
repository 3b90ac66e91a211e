"""A stage-1 VQ autoencoder (docs/ARCHITECTURE.md §2): encoder → quant_conv → dictionary → post_quant_conv → decoder.

OSDFace trains two of them, one on HQ faces and one on LQ faces, first by self-reconstruction and then jointly with
an association loss between their encoder features (DAEFR's recipe, which the authors confirmed they follow). The
LQ autoencoder's encoder, ``quant_conv`` and dictionary then become the
:class:`~osdface.models.vre.VisualRepresentationEmbedder` (:meth:`VQAutoencoder.to_vre`); the decoders are dropped.

The configuration is the VRE's (same keyword names), so ``VQAutoencoder(**preset.vre)`` builds the autoencoder of a
preset's VRE. Inputs are resized to ``resolution``² like the VRE does.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from .codebook import Codebook
from .vq_decoder import VQDecoder
from .vq_encoder import VQEncoder


class VQOutput(NamedTuple):
    reconstruction: torch.Tensor  # (B, 3, R, R) in [-1, 1] (not clamped)
    features: torch.Tensor  # (B, code_dim, h, w) pre-quantisation features (what the association loss compares)
    vq_loss: torch.Tensor  # codebook + β·commitment
    indices: torch.Tensor  # (B, h, w)


class VQAutoencoder(ModelMixin, ConfigMixin):
    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        ch: int = 64,
        ch_mult: Sequence[int] = (1, 2, 2, 2, 4, 8),
        num_res_blocks: int = 2,
        attn_resolutions: Sequence[int] = (16,),
        resolution: int = 512,
        z_channels: int = 512,
        n_codes: int = 1024,
        code_dim: int = 512,
        beta: float = 0.25,  # commitment weight (VQ-VAE; taming/RestoreFormer use 0.25)
        # VRE-only keywords, accepted so that a preset's ``vre`` dict builds the autoencoder directly
        num_tokens: int = 77,
        prompt_dim: int = 1024,
        projector_hidden_dim: int | None = None,
        double_normalize_input: bool = False,
    ):
        super().__init__()
        self.encoder = VQEncoder(in_channels, ch, ch_mult, num_res_blocks, attn_resolutions, resolution, z_channels)
        self.quant_conv = nn.Conv2d(z_channels, code_dim, 1)
        self.quantize = Codebook(n_codes, code_dim)
        self.post_quant_conv = nn.Conv2d(code_dim, z_channels, 1)
        self.decoder = VQDecoder(in_channels, ch, ch_mult, num_res_blocks, attn_resolutions, resolution, z_channels)

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        size = self.config.resolution
        if image.shape[-2:] != (size, size):
            image = F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False)
        return image

    def features(self, image: torch.Tensor) -> torch.Tensor:
        """``image`` in [-1, 1] → (B, code_dim, h, w), exactly what the VRE computes before the prompt rule."""
        return self.quant_conv(self.encoder(self.preprocess(image)))

    def decode(self, zq: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(zq))

    def forward(self, image: torch.Tensor) -> VQOutput:
        feats = self.features(image)
        zq, vq_loss, idx = self.quantize.quantize(feats, self.config.beta)
        return VQOutput(self.decode(zq), feats, vq_loss, idx)

    def to_vre(self, **vre_overrides):
        """A :class:`VisualRepresentationEmbedder` with this autoencoder's encoder, quant_conv and dictionary (its
        prompt projector is freshly initialised: stage 2 trains it)."""
        from .vre import VisualRepresentationEmbedder

        keys = ("in_channels", "ch", "ch_mult", "num_res_blocks", "attn_resolutions", "resolution", "z_channels",
                "n_codes", "code_dim", "num_tokens", "prompt_dim", "projector_hidden_dim")
        kwargs = {k: self.config[k] for k in keys}
        kwargs.update(vre_overrides)
        vre = VisualRepresentationEmbedder(**kwargs)
        nn.Module.to(vre, self.device, self.dtype)  # plain .to: no ModelMixin fp32-module warning
        state = {k: v for k, v in self.state_dict().items() if k.split(".")[0] in ("encoder", "quant_conv", "quantize")}
        missing, unexpected = vre.load_state_dict(state, strict=False)
        assert not unexpected and all(k.startswith("projector.") for k in missing), (missing, unexpected)
        return vre
