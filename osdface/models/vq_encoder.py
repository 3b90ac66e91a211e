"""The VQ tokenizer encoder of the Visual Representation Embedder (OSDFace §3.2).

It belongs to the taming-transformers / RestoreFormer family of convolutional encoders. The parameter names are
chosen so that the authors' released state dict (``associate_2.ckpt``, LQ branch, prefix stripped) loads into
:class:`VQEncoder` with zero missing and zero unexpected keys; ``tests/data/official_checkpoint_layout.json``
lists every key.

Layout (full size, ``ch=64, ch_mult=(1, 2, 2, 2, 4, 8)``, 512² in → 16² out):

    conv_in 3→64
    down[i].block[0..1]   ResnetBlock   (GroupNorm(32, eps=1e-6), swish, 3×3 convs, 1×1 nin_shortcut if C changes)
    down[i].attn[0..1]    AttnBlock     only at the level whose resolution is in ``attn_resolutions`` (16)
    down[i].downsample    zero pad (0, 1, 0, 1) + 3×3 stride-2 conv, every level but the last
    mid.block_1 / mid.attn_1 / mid.block_2
    norm_out, swish, conv_out → z_channels

Numerics (docs/ARCHITECTURE.md §2): the prompt keeps the first 77 distinct nearest codes in order of distance, so
on near ties the last bit of a feature decides which code is kept. In inference the blocks therefore compute what
the release computes, op for op: swish as ``x * sigmoid(x)`` (not the fused SiLU kernel), attention as ``q`` scaled
in place by ``C ** -0.5``, ``matmul(q, kᵀ)``, softmax, ``matmul(·, v)`` on the release's tensor layout, and the
residual as ``skip + h``. Fused scaled-dot-product attention (less memory, different last bits) is used in training
mode, where no code is chosen for a prompt, or when asked for with :func:`set_fused_attention`.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def swish(x: torch.Tensor) -> torch.Tensor:
    # x·sigmoid(x) as two ops, as the release writes it: the fused F.silu kernel can differ in the last bit
    return x * torch.sigmoid(x)


def group_norm(channels: int) -> nn.GroupNorm:
    # 32 groups, eps 1e-6, affine: the taming/RestoreFormer normalisation.
    return nn.GroupNorm(num_groups=32, num_channels=channels, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    """norm → swish → 3×3 conv → norm → swish → 3×3 conv, plus a (1×1 projected) skip. No time embedding."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = group_norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        if in_channels != out_channels:
            self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(swish(self.norm1(x)))
        h = self.conv2(self.dropout(swish(self.norm2(h))))
        skip = self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x
        return skip + h  # in this order (skip first), as the release adds them


class AttnBlock(nn.Module):
    """Single-head spatial self-attention with a residual (RestoreFormer's block with ``head_size=1``).

    ``norm2`` exists in the released weights (RestoreFormer uses it for cross-attention in its decoder); in the
    encoder's self-attention it is unused, but it is kept so that the state dict matches key for key.

    Outside training it computes exactly the release's operations (see the module docstring); ``fused=True`` or
    training mode uses PyTorch's scaled-dot-product attention (same formula, other rounding, less memory).
    """

    fused: bool = False

    def __init__(self, channels: int):
        super().__init__()
        self.norm1 = group_norm(channels)
        self.norm2 = group_norm(channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        hn = self.norm1(x)
        if self.fused or self.training:
            # (B, C, H, W) → (B, 1 head, HW, C)
            q, k, v = (proj(hn).flatten(2).transpose(1, 2).unsqueeze(1) for proj in (self.q, self.k, self.v))
            out = F.scaled_dot_product_attention(q, k, v)
            out = out.squeeze(1).transpose(1, 2).reshape(b, c, h, w)
            return x + self.proj_out(out)
        return x + self.proj_out(self._exact_attention(self.q(hn), self.k(hn), self.v(hn)))

    @staticmethod
    def _exact_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The release's single-head attention, with its views (the strides decide the BLAS path, hence the bits):
        (B, C, H, W) → (B, C, HW) viewed as (B, head 1, HW, C) for q and v and (B, 1, C, HW) for k."""
        b, c, h, w = q.shape
        q, k, v = (t.reshape(b, 1, c, h * w).permute(0, 3, 1, 2).transpose(1, 2) for t in (q, k, v))
        k = k.transpose(2, 3)
        q = q.mul_(int(c) ** -0.5)  # in place, a Python-float scale, before the product
        attn = torch.softmax(torch.matmul(q, k), dim=3)
        out = attn.matmul(v)  # (B, 1, HW, C)
        return out.transpose(1, 2).contiguous().view(b, h, w, -1).permute(0, 3, 1, 2)


class Downsample(nn.Module):
    """Asymmetric zero pad (left 0, right 1, top 0, bottom 1), then a 3×3 stride-2 conv."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1), mode="constant", value=0.0))


class VQEncoder(nn.Module):
    """The convolutional encoder (everything under the ``encoder.`` prefix of the released VRE)."""

    def __init__(
        self,
        in_channels: int = 3,
        ch: int = 64,  # base width (paper/release: 64)
        ch_mult: Sequence[int] = (1, 2, 2, 2, 4, 8),  # six levels → five 2× downsamples: 512² → 16²
        num_res_blocks: int = 2,
        attn_resolutions: Sequence[int] = (16,),  # attention after each ResNet block of the 16² level
        resolution: int = 512,  # input size the level resolutions are counted from
        z_channels: int = 512,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.num_res_blocks = num_res_blocks
        self.conv_in = nn.Conv2d(in_channels, ch, 3, padding=1)

        in_mult = (1,) + tuple(ch_mult)
        self.down = nn.ModuleList()
        res = resolution
        c_in = ch
        for level, mult in enumerate(ch_mult):
            stage = nn.Module()
            stage.block = nn.ModuleList()
            stage.attn = nn.ModuleList()
            c_in = ch * in_mult[level]
            c_out = ch * mult
            for _ in range(num_res_blocks):
                stage.block.append(ResnetBlock(c_in, c_out, dropout))
                c_in = c_out
                if res in attn_resolutions:
                    stage.attn.append(AttnBlock(c_in))
            if level != len(ch_mult) - 1:
                stage.downsample = Downsample(c_in)
                res //= 2
            self.down.append(stage)

        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock(c_in, c_in, dropout)
        self.mid.attn_1 = AttnBlock(c_in)
        self.mid.block_2 = ResnetBlock(c_in, c_in, dropout)

        self.norm_out = group_norm(c_in)
        self.conv_out = nn.Conv2d(c_in, z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for stage in self.down:
            for i, block in enumerate(stage.block):
                h = block(h)
                if len(stage.attn) > 0:
                    h = stage.attn[i](h)
            if hasattr(stage, "downsample"):
                h = stage.downsample(h)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        return self.conv_out(swish(self.norm_out(h)))


def set_fused_attention(module: nn.Module, fused: bool = True) -> None:
    """Switch every :class:`AttnBlock` under ``module`` to fused scaled-dot-product attention (``True``: less
    memory, faster on a GPU, may keep another code on a near tie) or back to the release's exact operations."""
    for m in module.modules():
        if isinstance(m, AttnBlock):
            m.fused = fused
