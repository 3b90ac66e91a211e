"""The prompt projector ("embedding_change" in the release): VQ code vectors → UNet cross-attention tokens.

Two 1×1 Conv1d layers over the token axis with SiLU after each: 512 → 256 → 1024 for SD 2.1 (the hidden width
is half the input width in the release). It is the part of the VRE that stage 2 trains together with the LoRA.
Parameter names ``conv1`` / ``conv2`` match ``embedding_change_weights.pth``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PromptProjector(nn.Module):
    def __init__(self, in_dim: int = 512, out_dim: int = 1024, hidden_dim: int | None = None):
        super().__init__()
        hidden_dim = hidden_dim or in_dim // 2
        self.conv1 = nn.Conv1d(in_dim, hidden_dim, kernel_size=1)
        self.conv2 = nn.Conv1d(hidden_dim, out_dim, kernel_size=1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T, in_dim) → (B, T, out_dim). Zero (padding) tokens are projected too, as in the release."""
        x = tokens.transpose(1, 2)
        x = F.silu(self.conv2(F.silu(self.conv1(x))))
        return x.transpose(1, 2)
