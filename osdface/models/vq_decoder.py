"""The decoder of the stage-1 VQ autoencoders (docs/ARCHITECTURE.md §2): the VRE encoder's layout mirrored.

Only needed to *train* a VRE (self-reconstruction of HQ and LQ faces, OSDFace §3.2); the VRE itself keeps only the
LQ encoder and the dictionary. Layout (mirror of :class:`~osdface.models.vq_encoder.VQEncoder`):

    conv_in z_channels → ch·ch_mult[-1]
    mid.block_1 / mid.attn_1 / mid.block_2
    up[i].block[0..num_res_blocks]  (one more block per level than the encoder, as in taming's decoder)
    up[i].attn                       at the levels whose resolution is in ``attn_resolutions``
    up[i].upsample                   nearest 2× + 3×3 conv, every level but the first (finest)
    norm_out, swish, conv_out → 3 channels
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .vq_encoder import AttnBlock, ResnetBlock, group_norm


class Upsample(nn.Module):
    """Nearest-neighbour 2× then a 3×3 conv."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class VQDecoder(nn.Module):
    def __init__(
        self,
        out_channels: int = 3,
        ch: int = 64,
        ch_mult: Sequence[int] = (1, 2, 2, 2, 4, 8),
        num_res_blocks: int = 2,
        attn_resolutions: Sequence[int] = (16,),
        resolution: int = 512,
        z_channels: int = 512,
        dropout: float = 0.0,
    ):
        super().__init__()
        c = ch * ch_mult[-1]
        res = resolution // 2 ** (len(ch_mult) - 1)
        self.conv_in = nn.Conv2d(z_channels, c, 3, padding=1)
        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock(c, c, dropout)
        self.mid.attn_1 = AttnBlock(c)
        self.mid.block_2 = ResnetBlock(c, c, dropout)

        self.up = nn.ModuleList()  # up[i] works at the resolution of encoder level i (built coarse → fine)
        stages = []
        for level in reversed(range(len(ch_mult))):
            stage = nn.Module()
            stage.block = nn.ModuleList()
            stage.attn = nn.ModuleList()
            c_out = ch * ch_mult[level]
            for _ in range(num_res_blocks + 1):
                stage.block.append(ResnetBlock(c, c_out, dropout))
                c = c_out
                if res in attn_resolutions:
                    stage.attn.append(AttnBlock(c))
            if level != 0:
                stage.upsample = Upsample(c)
                res *= 2
            stages.insert(0, stage)
        self.up.extend(stages)
        self.norm_out = group_norm(c)
        self.conv_out = nn.Conv2d(c, out_channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(z)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        for stage in reversed(self.up):
            for i, block in enumerate(stage.block):
                h = block(h)
                if len(stage.attn) > 0:
                    h = stage.attn[i](h)
            if hasattr(stage, "upsample"):
                h = stage.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))
