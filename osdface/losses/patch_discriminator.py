"""Image-space PatchGAN discriminator for stage 1's adversarial term (docs/ARCHITECTURE.md §2; the taming / VQGAN family).

Layout (pix2pix's N-layer PatchGAN as VQGAN uses it): conv 4×4 stride 2 (3 → ndf) + LeakyReLU(0.2); then
``n_layers − 1`` blocks conv 4×4 stride 2 (width ×2 each time, capped at 8·ndf) + norm + LeakyReLU(0.2); one conv
4×4 stride 1 + norm + LeakyReLU(0.2); a final conv 4×4 stride 1 → 1 channel. All convs pad by 1, so an H×W image
gives an (H / 2^n_layers − 2) × (W / 2^n_layers − 2) map of logits (e.g. 30×30 for 256², n_layers = 3), one per
overlapping patch. Convs followed by a norm have no bias. Initialisation as in taming: conv weights N(0, 0.02),
norm weights N(1, 0.02), norm biases 0.

``norm``: ``"batch"`` (taming's default), ``"group"`` (32 groups or fewer; batch-size independent, safer with
gradient accumulation and tiny batches), ``"instance"`` or ``"none"``.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

NORMS = ("batch", "group", "instance", "none")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        groups = next(g for g in (32, 16, 8, 4, 2, 1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    return nn.Identity()


class PatchDiscriminator(ModelMixin, ConfigMixin):
    """N-layer PatchGAN: (B, in_channels, H, W) images in [-1, 1] → (B, 1, h, w) logits (see the module docstring)."""

    @register_to_config
    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "batch"):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; choose one of {NORMS}")
        if in_channels < 1 or ndf < 1 or n_layers < 1:
            raise ValueError("in_channels, ndf and n_layers must be positive")
        use_bias = norm == "none"
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        width = ndf
        for n in range(1, n_layers + 1):
            out = ndf * min(2 ** n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(width, out, 4, stride=stride, padding=1, bias=use_bias), _norm(norm, out),
                       nn.LeakyReLU(0.2, True)]
            width = out
        layers.append(nn.Conv2d(width, 1, 4, stride=1, padding=1))
        self.main = nn.Sequential(*layers)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d)) and m.weight is not None:
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    @property
    def min_size(self) -> int:
        """Smallest input side that still gives a 1×1 logit map."""
        return 3 * 2 ** self.config.n_layers

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(images) or images.ndim != 4 or images.shape[1] != self.config.in_channels:
            got = tuple(images.shape) if torch.is_tensor(images) else type(images).__name__
            raise ValueError(f"images must be (B, {self.config.in_channels}, H, W), got {got}")
        if min(images.shape[-2:]) < self.min_size:
            raise ValueError(f"images must be at least {self.min_size}x{self.min_size} for n_layers="
                             f"{self.config.n_layers}, got {tuple(images.shape[-2:])}")
        return self.main(images)
