"""Tiled VAE encode / decode: large or non-square inputs in bounded memory.

The VAE's activations grow with the image (SD's decoder holds 128–512 channels at up to full resolution: about
2 GB per fp32 activation for a 2048² image), so an untiled pass over a large input can run out of memory. Here the
input is cut into overlapping tiles of at most ``tile_size`` pixels, each tile goes through the encoder (or the
decoder) on its own, and the tile outputs are blended with weights that ramp linearly across each overlap, so there
are no seams: ``out = Σ w_t · f(tile_t) / Σ w_t``. Only one tile's activations exist at a time; the peak memory is
that of a ``tile_size``² pass plus the blended output.

Tiles see less context than the whole image (the VAE's GroupNorm statistics and, in SD's VAE, the mid-block
self-attention are computed per tile), so tiled results differ slightly from untiled ones; the overlap keeps the
difference small and smooth (tests/test_speed_paths.py states the tolerance measured on a small VAE).

The tile grid: along each axis, tiles start every ``tile - overlap`` pixels and the last tile is moved back to end
flush with the edge, so every tile has the full size (an axis shorter than a tile is one tile of that length).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution


@dataclass(frozen=True)
class TileConfig:
    """``tile_size`` and ``overlap`` in image pixels; both multiples of the VAE's downsampling factor."""

    tile_size: int = 512
    overlap: int = 64

    def validate(self, factor: int) -> None:
        if self.tile_size < 1 or self.overlap < 0:
            raise ValueError(f"tile_size must be >= 1 and overlap >= 0, got {self.tile_size}, {self.overlap}")
        if self.tile_size % factor or self.overlap % factor:
            raise ValueError(f"tile_size ({self.tile_size}) and overlap ({self.overlap}) must be multiples of the "
                             f"VAE's downsampling factor {factor}")
        if self.overlap >= self.tile_size:
            raise ValueError(f"overlap ({self.overlap}) must be smaller than tile_size ({self.tile_size})")


def vae_factor(vae) -> int:
    """Pixels per latent cell: a PatchVAE's patch size; an AutoencoderKL downsamples by 2 at every level but the
    last."""
    patch = getattr(vae.config, "patch_size", None)
    return int(patch) if patch else 2 ** (len(vae.config.block_out_channels) - 1)


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of the tiles along one axis (last tile flush with the edge; one tile if length <= tile)."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile + 1, tile - overlap))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts


def _ramp(length: int, overlap: int, ramp_start: bool, ramp_end: bool, device, dtype) -> torch.Tensor:
    """1-D blending weight of one tile: rises linearly over ``overlap`` cells on a side with a neighbour, else 1.
    Values lie in (0, 1] (never 0), so every output cell has a positive total weight."""
    w = torch.ones(length, device=device, dtype=dtype)
    n = min(overlap, length)
    if n > 0:
        ramp = (torch.arange(n, device=device, dtype=dtype) + 0.5) / n
        if ramp_start:
            w[:n] = torch.minimum(w[:n], ramp)
        if ramp_end:
            w[length - n:] = torch.minimum(w[length - n:], ramp.flip(0))
    return w


def blend_tiles(x: torch.Tensor, fn, tile: int, overlap: int, scale: float) -> torch.Tensor:
    """Apply ``fn`` to overlapping ``tile``² tiles of ``x`` (B, C, H, W) and blend the results.

    ``fn`` maps a (B, C, h, w) tile to (B, C', h·scale, w·scale) (scale 1/f for an encoder, f for a decoder);
    ``tile`` and ``overlap`` are in ``x``'s cells. The blend is accumulated in float32.
    """
    b, _, h, w = x.shape
    ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    out = weight = None
    for y0 in ys:
        for x0 in xs:
            th, tw = min(tile, h), min(tile, w)
            y = fn(x[:, :, y0:y0 + th, x0:x0 + tw])
            if out is None:
                out = torch.zeros(b, y.shape[1], round(h * scale), round(w * scale), device=y.device,
                                  dtype=torch.float32)
                weight = torch.zeros(1, 1, out.shape[2], out.shape[3], device=y.device, dtype=torch.float32)
            oy, ox, oh, ow = round(y0 * scale), round(x0 * scale), y.shape[2], y.shape[3]
            ov = round(overlap * scale)
            wy = _ramp(oh, ov, y0 > 0, y0 + th < h, y.device, torch.float32)
            wx = _ramp(ow, ov, x0 > 0, x0 + tw < w, y.device, torch.float32)
            wt = (wy[:, None] * wx[None, :])[None, None]
            out[:, :, oy:oy + oh, ox:ox + ow] += y.float() * wt
            weight[:, :, oy:oy + oh, ox:ox + ow] += wt
            del y
    return (out / weight).to(x.dtype)


def tiled_encode(vae, x: torch.Tensor, config: TileConfig) -> DiagonalGaussianDistribution:
    """Like ``vae.encode(x).latent_dist``, computed tile by tile (the encoder + quant_conv moments are blended)."""
    f = vae_factor(vae)
    config.validate(f)
    if x.shape[-2] % f or x.shape[-1] % f:
        raise ValueError(f"tiled encoding needs sides that are multiples of {f}, got {tuple(x.shape[-2:])}")

    def encode_tile(t):
        h = vae.encoder(t)
        return vae.quant_conv(h) if vae.quant_conv is not None else h

    return DiagonalGaussianDistribution(blend_tiles(x, encode_tile, config.tile_size, config.overlap, 1 / f))


class VAEDecoder(torch.nn.Module):
    """The decoding half of a VAE (``post_quant_conv`` + ``decoder``, sharing the VAE's weights): ``forward(z)`` is
    ``vae.decode(z).sample``. A module of its own so that it can be trained and wrapped for distributed training
    while the encoder stays frozen."""

    def __init__(self, vae):
        super().__init__()
        self.post_quant_conv = vae.post_quant_conv
        self.decoder = vae.decoder

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(z) if self.post_quant_conv is not None else z)


def tiled_decode(vae, z: torch.Tensor, config: TileConfig, decoder: torch.nn.Module | None = None) -> torch.Tensor:
    """Like ``vae.decode(z).sample``, computed tile by tile (``config`` in image pixels); ``decoder``: the
    :class:`VAEDecoder` to run (default: the VAE's own)."""
    f = vae_factor(vae)
    config.validate(f)
    return blend_tiles(z, decoder or VAEDecoder(vae), config.tile_size // f, config.overlap // f, f)
