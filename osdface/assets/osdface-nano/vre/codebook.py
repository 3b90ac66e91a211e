"""The VQ dictionary and OSDFace's prompt rule (§3.2 of the paper).

From a grid of encoder features the VRE builds a "visual prompt": for every grid position find the nearest code and
its distance, order the positions by that distance (closest first), walk them and keep each code the first time it
appears, until ``num_tokens`` (77, the length of an SD text prompt) distinct codes are kept. When an image yields
fewer distinct codes, the remaining rows are zeros.

The official code does this with a Python loop over positions and for batch size 1 only. Here it is batched and
loop-free: the first position at which each code occurs is found with one ``scatter_reduce(amin)``, and the codes
are then ordered by that first position, so the result for image *i* of a batch equals the single-image result.

Numerics follow the release exactly, because real VQ features often have many nearly equal nearest-code distances
and the slightest difference then keeps other codes: the features are laid out as a contiguous (B, H·W, D) tensor
before the distance matmul (as the release's ``permute(0, 2, 3, 1).contiguous()``), the distances are summed in
the release's order, and the positions are sorted with ``torch.sort``'s default (not stable) algorithm, as the
release calls it. ``tests/test_codebook.py`` checks this against a transcription of the release's loop on features
built to nearly tie.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


class PromptTokens(NamedTuple):
    embeddings: torch.Tensor  # (B, num_tokens, dim) code vectors; zero rows where ``valid`` is False
    indices: torch.Tensor  # (B, num_tokens) code indices, -1 where not valid
    valid: torch.Tensor  # (B, num_tokens) bool


def squared_distances(z: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """‖z − e‖² for every (position, code) pair, in the expanded form ‖z‖² + ‖e‖² − 2 z·e the release uses.

    ``z``: (B, N, D) features, ``codes``: (K, D) → (B, N, K).
    """
    return z.pow(2).sum(-1, keepdim=True) + codes.pow(2).sum(-1) - 2.0 * (z @ codes.t())


def select_unique_codes(dist: torch.Tensor, num_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The prompt rule on a (B, N, K) distance tensor → (indices (B, T), valid (B, T)).

    Positions are ordered by their nearest-code distance (ascending, with ``torch.sort``'s default algorithm, as the
    release: equal distances are not kept in position order); each code is kept at its first occurrence in that
    order; the first ``num_tokens`` kept codes form the prompt.
    """
    b, n, k = dist.shape
    min_dist, nearest = dist.min(dim=-1)  # (B, N)
    order = torch.sort(min_dist, dim=-1).indices  # positions, closest first (the release's default sort)
    codes_in_order = nearest.gather(-1, order)  # (B, N)
    rank = torch.arange(n, device=dist.device).expand(b, n)
    # first_rank[b, c] = the earliest rank at which code c occurs (n if it never does)
    first_rank = torch.full((b, k), n, dtype=torch.long, device=dist.device)
    first_rank.scatter_reduce_(-1, codes_in_order, rank, reduce="amin", include_self=True)
    first_sorted, codes_sorted = torch.sort(first_rank, dim=-1, stable=True)
    t = min(num_tokens, k)
    indices, valid = codes_sorted[:, :t], first_sorted[:, :t] < n
    if t < num_tokens:  # a codebook smaller than the prompt: pad
        pad = num_tokens - t
        indices = torch.cat([indices, indices.new_zeros(b, pad)], dim=1)
        valid = torch.cat([valid, valid.new_zeros(b, pad)], dim=1)
    return indices.masked_fill(~valid, -1), valid


class Codebook(nn.Module):
    """``n_codes`` × ``dim`` dictionary (release: 1024 × 512), stored as ``embedding.weight`` like the release."""

    def __init__(self, n_codes: int = 1024, dim: int = 512):
        super().__init__()
        self.embedding = nn.Embedding(n_codes, dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / n_codes, 1.0 / n_codes)

    @property
    def weight(self) -> torch.Tensor:
        return self.embedding.weight

    def nearest(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, D, H, W) features → nearest code indices (B, H, W) and quantised features (B, D, H, W)."""
        b, d, h, w = z.shape
        idx = squared_distances(z.flatten(2).transpose(1, 2), self.weight).argmin(-1)
        zq = self.embedding(idx).transpose(1, 2).reshape(b, d, h, w)
        return idx.reshape(b, h, w), zq

    def distances(self, z: torch.Tensor) -> torch.Tensor:
        """(B, D, H, W) features → (B, H·W, K) float32 squared distances to every code: the prompt rule's input.
        The ONNX export computes exactly this (and its per-position min / argmin) inside its VRE graph."""
        b, d = z.shape[:2]
        # (B, HW, D) contiguous, positions in row-major order: the release's layout, so the matmul rounds alike
        feats = z.permute(0, 2, 3, 1).contiguous().view(b, -1, d)
        # distances in float32 even for a bf16/fp16 model: the ordering decides which codes are kept
        return squared_distances(feats.float(), self.weight.float())

    def embed(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, T) code indices, -1 for padding → (B, T, D) code vectors with zero rows for the padding."""
        valid = indices >= 0
        return self.embedding(indices.clamp(min=0)) * valid.unsqueeze(-1).to(self.weight.dtype)

    def prompt_tokens(self, z: torch.Tensor, num_tokens: int = 77) -> PromptTokens:
        """(B, D, H, W) features → the prompt rule's (B, num_tokens, D) code vectors (zero rows past the last code)."""
        indices, valid = select_unique_codes(self.distances(z), num_tokens)
        return PromptTokens(self.embed(indices), indices, valid)

    # -- training (stage 1): vector quantisation with a straight-through gradient -----------------------------------
    def quantize(self, z: torch.Tensor, beta: float = 0.25) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, D, H, W) features → (quantised features with a straight-through gradient, VQ loss, indices (B, H, W)).

        VQ loss (van den Oord et al. 2017, the taming/RestoreFormer form the spec names):
        ‖sg(z) − e‖² (codebook) + β‖z − sg(e)‖² (commitment, β = 0.25)."""
        idx, zq = self.nearest(z.float())
        zq = zq.to(z.dtype)
        loss = F.mse_loss(zq, z.detach()) + beta * F.mse_loss(z, zq.detach())
        return z + (zq - z).detach(), loss, idx

    @torch.no_grad()
    def restart_dead_codes(self, z: torch.Tensor, usage: torch.Tensor, generator: torch.Generator | None = None
                           ) -> int:
        """Move every code with ``usage == 0`` onto a randomly chosen current feature vector (a common remedy for
        codebook collapse; an engineering choice, not from the paper). Returns how many codes moved."""
        dead = (usage == 0).nonzero().flatten()
        if dead.numel() == 0:
            return 0
        feats = z.detach().flatten(2).transpose(1, 2).reshape(-1, z.shape[1])
        pick = torch.randint(0, feats.shape[0], (dead.numel(),), generator=generator).to(feats.device)
        self.embedding.weight.data[dead] = feats[pick].to(self.embedding.weight.dtype)
        return int(dead.numel())
