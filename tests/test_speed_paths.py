"""The speed paths give the same results as the plain ones: bf16 vs fp32 on real faces, channels-last,
the cached x0 constants, SDPA attention, tiled VAE encode/decode, the batched input copy, the GPU script's smoke run."""

import json
import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from diffusers.models.attention_processor import AttnProcessor2_0
from PIL import Image

from osdface import OSDFacePipeline
from osdface.configs import TINY_VAE
from osdface.models import x0_from_eps
from osdface.models.tiled_vae import TileConfig, blend_tiles, tile_starts, tiled_decode, tiled_encode
from osdface.pipeline import default_channels_last

REPO = Path(__file__).resolve().parents[1]


def psnr(a: torch.Tensor, b: torch.Tensor, peak: float = 1.0) -> float:
    mse = (a.double() - b.double()).pow(2).mean().item()
    return math.inf if mse == 0 else 10 * math.log10(peak ** 2 / mse)


def load_faces(folder: Path, n: int) -> list[Image.Image]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))[:n]
    return [Image.open(p).convert("RGB") for p in files]


# ------------------------------------------------------------------------------------------------ numerics
def test_bf16_matches_fp32_on_real_faces(tiny_pipe, faces_dir):
    """The bf16 path (weights and activations), fused and channels-last as the CLI runs it on a CPU, against
    fp32 on 4 real faces. Measured: PSNR ≈ 37-38 dB, mean |Δ| ≈ 0.007 (of [0, 1])."""
    faces = load_faces(faces_dir, 4)
    tiny_pipe.fuse_lora()
    ref = tiny_pipe(faces, output_type="pt")
    tiny_pipe.to(dtype=torch.bfloat16).enable_channels_last()
    out = tiny_pipe(faces, output_type="pt")
    assert out.dtype == torch.float32 and out.shape == ref.shape == (4, 3, 64, 64)
    diff = (out - ref).abs()
    assert psnr(out, ref) > 33.0
    assert diff.mean().item() < 0.015
    assert diff.max().item() < 0.4
    # and the difference is rounding, not a different image: far below the spread between faces
    assert diff.mean().item() < 0.2 * (ref[0] - ref[1]).abs().mean().item()


def test_channels_last_gives_the_same_output(tiny_pipe):
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    ref = tiny_pipe(x, output_type="pt")
    tiny_pipe.enable_channels_last()
    conv = tiny_pipe.vae.encoder.conv_in.weight
    assert tiny_pipe.channels_last and conv.is_contiguous(memory_format=torch.channels_last)
    assert not conv.is_contiguous()
    torch.testing.assert_close(tiny_pipe(x, output_type="pt"), ref, atol=1e-4, rtol=0)  # fp32 rounding
    tiny_pipe.enable_channels_last(False)
    assert not tiny_pipe.channels_last and tiny_pipe.vae.encoder.conv_in.weight.is_contiguous()


def test_channels_last_default_only_where_it_measured_faster(tiny_pipe, tmp_path):
    assert default_channels_last("cpu", torch.bfloat16)
    assert not default_channels_last("cpu", torch.float32)
    assert not default_channels_last("cuda", torch.float16)  # H100 fp16: slower eager, equal compiled
    tiny_pipe.save_pretrained(tmp_path / "m")
    assert OSDFacePipeline.from_pretrained(tmp_path / "m", torch_dtype="bf16").channels_last
    assert not OSDFacePipeline.from_pretrained(tmp_path / "m").channels_last
    assert not OSDFacePipeline.from_pretrained(tmp_path / "m", torch_dtype="bf16", channels_last=False).channels_last


def test_x0_constants_are_the_float64_formula_bit_for_bit_and_differentiable():
    g = torch.Generator().manual_seed(0)
    z, eps = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 4, 8, 8, generator=g)
    a = torch.tensor(0.42606157, dtype=torch.float64)
    expected = ((z.double() - torch.sqrt(1 - a) * eps.double()) / torch.sqrt(a)).float()
    assert torch.equal(x0_from_eps(z, eps, 0.42606157), expected)
    eps.requires_grad_(True)
    x0_from_eps(z, eps, 0.42606157).sum().backward()  # the trainer differentiates through it
    torch.testing.assert_close(eps.grad, torch.full_like(eps, -math.sqrt(1 - 0.42606157) / math.sqrt(0.42606157)))


def test_every_attention_runs_pytorch_sdpa(tiny_pipe):
    """UNet and VAE attention use diffusers' SDPA processor (the VRE's block calls SDPA itself; test_vre checks
    it equals the explicit formula)."""
    procs = {**tiny_pipe.unet.attn_processors, **tiny_pipe.vae.attn_processors}
    assert procs and all(isinstance(p, AttnProcessor2_0) for p in procs.values())


def test_model_input_is_one_batch_with_the_same_values(tiny_pipe):
    items = [torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    x = tiny_pipe._model_input(items)
    torch.testing.assert_close(x, torch.stack(items) * 2 - 1, atol=0, rtol=0)
    mixed = tiny_pipe._model_input(items[:2] + [torch.rand(3, 80, 80)])  # a resized one takes the slow path
    torch.testing.assert_close(mixed[:2], x[:2], atol=0, rtol=0)


# ------------------------------------------------------------------------------------------------ tiled VAE
def test_tile_grid_covers_every_pixel_with_full_tiles():
    for length, tile, overlap in [(160, 64, 16), (96, 64, 16), (64, 64, 16), (40, 64, 16), (1000, 512, 64)]:
        starts = tile_starts(length, tile, overlap)
        covered = torch.zeros(length, dtype=torch.bool)
        for s in starts:
            covered[s:s + tile] = True
            assert s + min(tile, length) <= length
        assert covered.all() and starts[0] == 0
        assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))  # neighbours overlap enough


def test_blending_is_exact_for_pointwise_maps():
    """With a map that does not look at neighbours, tiles agree everywhere, so the blend must return it exactly:
    this checks the weights (they sum to one) and the placement of every tile, including scale changes."""
    x = torch.randn(2, 3, 96, 160, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(blend_tiles(x, lambda t: t * 3 - 1, 40, 8, 1), x * 3 - 1)
    up = lambda t: F.interpolate(t, scale_factor=2, mode="nearest")  # noqa: E731  (a "decoder")
    torch.testing.assert_close(blend_tiles(x, up, 40, 8, 2), up(x))
    down = lambda t: F.avg_pool2d(t, 4)  # noqa: E731  (an "encoder")
    torch.testing.assert_close(blend_tiles(x, down, 40, 8, 0.25), down(x))


def _tiny_vae():
    torch.manual_seed(0)
    return AutoencoderKL(**TINY_VAE).eval()


def test_tiled_vae_never_sees_more_than_a_tile():
    vae, seen = _tiny_vae(), []
    for part in (vae.encoder, vae.decoder):
        part.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape[-2:])))
    x = torch.rand(1, 3, 64, 128) * 2 - 1
    with torch.no_grad():
        z = tiled_encode(vae, x, TileConfig(48, 16)).mode()
        y = tiled_decode(vae, z, TileConfig(48, 16))
    assert z.shape == (1, 4, 32, 64) and y.shape == (1, 3, 64, 128)
    assert len(seen) == 2 * 2 * 4  # 2 rows x 4 columns of tiles, encoder then decoder
    assert seen[:8] == [(48, 48)] * 8 and seen[8:] == [(24, 24)] * 8  # every tile full size, pixels then latents


def test_tiled_vae_is_close_to_untiled_and_exact_for_one_tile():
    """Tiles see only their own GroupNorm statistics (and attention context), so tiled != untiled; the
    difference is largest for a random-weight VAE on an image whose tiles differ (a face, 256x192, tiles 128:
    ≈ 21 dB) and small where every tile looks alike. Stated tolerance, tiny random VAE, 128x192 uniform noise,
    tiles 96 / overlap 32: latent mean |Δ| < 5 % of mean |z| (measured 3.1-3.3 %), decoded PSNR > 31 dB
    (measured 33.6-33.7 dB)."""
    vae = _tiny_vae()
    x = torch.rand(1, 3, 128, 192, generator=torch.Generator().manual_seed(0)) * 2 - 1
    cfg = TileConfig(96, 32)
    with torch.no_grad():
        z = vae.encode(x).latent_dist.mode()
        y = vae.decode(z).sample
        zt = tiled_encode(vae, x, cfg).mode()
        yt = tiled_decode(vae, z, cfg)
        assert ((zt - z).abs().mean() / z.abs().mean()).item() < 0.05
        assert psnr(yt, y, peak=2.0) > 31.0
        # smaller tiles → further off (measured 6.3 %); a tile as large as the input → the untiled result
        zt_small = tiled_encode(vae, x, TileConfig(64, 16)).mode()
        assert (zt_small - z).abs().mean() > 1.5 * (zt - z).abs().mean()
        torch.testing.assert_close(tiled_encode(vae, x, TileConfig(192, 32)).mode(), z, atol=1e-5, rtol=0)


def test_pipeline_tiling_switch_and_validation(tiny_pipe):
    x = torch.rand(1, 3, 64, 128, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        ref, small_ref = tiny_pipe.model(x), tiny_pipe.model(x[..., :64])
        tiny_pipe.enable_vae_tiling(64, 16)
        tiled = tiny_pipe.model(x)
        assert torch.equal(tiny_pipe.model(x[..., :64]), small_ref)  # fits one tile: the untiled path
        tiny_pipe.disable_vae_tiling()
        assert torch.equal(tiny_pipe.model(x), ref)
    assert tiled.shape == ref.shape and not torch.equal(tiled, ref)
    assert psnr(tiled, ref, peak=2.0) > 15  # random weights: loose (see the test above for the stated tolerance)
    for bad in [(63, 16), (64, 15), (64, 64), (64, -2)]:
        with pytest.raises(ValueError):
            tiny_pipe.enable_vae_tiling(*bad)


# ------------------------------------------------------------------------------------------------ benchmark scripts
def test_gpu_speed_script_has_a_cpu_smoke_path(tmp_path, capsys):
    sys.path.insert(0, str(REPO))
    from benchmarks import gpu_speed

    records = gpu_speed.main(["--device", "cpu", "--quick", "--json-out", str(tmp_path / "r.jsonl")])
    lines = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert lines == json.loads(json.dumps(records))
    timing = [r for r in lines if r["check"] == "speed"]
    assert {r["batch"] for r in timing} == {1, 2}
    assert all(r["seconds_per_face"] > 0 and r["preset"] == "tiny" for r in timing)
    parity = {r["check"]: r for r in lines if r["check"] != "speed"}
    assert parity["fused vs unfused"]["max_abs"] < 1e-4
    assert parity["bf16 vs fp32"]["psnr_db"] > 25
    assert "| batch |" in capsys.readouterr().out


def test_changing_a_compiled_pipe_recompiles(monkeypatch):
    """After compile(), a new layout / dtype / device drops the compiled graphs (their guards can miss a weight's
    new strides: an inductor stride assertion on CUDA); unchanged settings keep them."""
    import torch._dynamo

    resets = []
    monkeypatch.setattr(torch._dynamo, "reset", lambda: resets.append(1))
    pipe = OSDFacePipeline.from_preset("tiny", seed=0)
    pipe.enable_channels_last(True).to(dtype=torch.bfloat16)
    assert resets == [] and not pipe.compiled  # nothing compiled: nothing to drop
    pipe.enable_channels_last(False).to(dtype=torch.float32)
    pipe.compile()  # lazy: nothing compiles until a call
    assert pipe.compiled
    pipe.enable_channels_last(False).to(dtype=torch.float32).to(device="cpu")
    assert resets == []
    pipe.enable_channels_last(True)
    assert len(resets) == 1
    pipe.to(dtype="bf16")
    assert len(resets) == 2
    pipe.to(dtype=torch.bfloat16)
    assert len(resets) == 2
