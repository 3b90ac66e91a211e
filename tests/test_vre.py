"""The Visual Representation Embedder: the released layout, the input quirk, attention numerics, batching."""

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from osdface.configs import get_preset
from osdface.models import AttnBlock, VisualRepresentationEmbedder

from .conftest import TINY

LAYOUT = json.loads((Path(__file__).parent / "data" / "official_checkpoint_layout.json").read_text())


def tiny_vre(**kw):
    torch.manual_seed(0)
    return VisualRepresentationEmbedder(**{**TINY["vre"], **kw}).eval()


def test_sd21_vre_has_the_released_layout_key_for_key():
    with torch.device("meta"):
        vre = VisualRepresentationEmbedder(**get_preset("sd21").vre)
    ours = {k: list(v.shape) for k, v in vre.state_dict().items()}
    released = dict(LAYOUT["vre_state_dict"]["keys_after_stripping_prefix"])
    released.update({f"projector.{k}": v for k, v in LAYOUT["prompt_projector_state_dict"]["keys"].items()})
    assert set(ours) - set(released) == set(), "keys we have that the release lacks"
    assert set(released) - set(ours) == set(), "keys of the release we lack"
    assert {k: v for k, v in ours.items() if released[k] != v} == {}
    n = sum(v.numel() for v in vre.state_dict().values())
    assert 29.0e6 < n < 30.0e6  # spec: ≈ 29.6 M with the projector


def test_prompt_shape_dtype_and_grid():
    vre = tiny_vre()
    x = torch.rand(2, 3, 48, 40) * 2 - 1  # any size: resized to resolution²
    with torch.no_grad():
        feats = vre.features(x)
        out = vre(x)
    assert feats.shape == (2, 32, 8, 8)
    assert out.shape == (2, 77, 64) and out.dtype == torch.float32
    tok = vre.tokens(x)
    assert tok.valid.sum(1).max() <= 40  # only 40 codes exist: rows past them are padding
    assert torch.all(tok.embeddings[~tok.valid] == 0)


def test_batch_equals_single_calls():
    vre = tiny_vre()
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        batched = vre(x)
        singles = torch.cat([vre(x[i : i + 1]) for i in range(3)])
    assert torch.allclose(batched, singles, atol=1e-6)


def test_double_normalize_quirk_is_what_the_flag_says():
    plain, quirk = tiny_vre(), tiny_vre(double_normalize_input=True)
    quirk.load_state_dict(plain.state_dict())
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert torch.allclose(quirk.preprocess(x), (x - 0.5) / 0.5)
    assert quirk.preprocess(x).min() >= -3 and quirk.preprocess(x).max() <= 1
    with torch.no_grad():
        assert torch.allclose(quirk.features(x), plain.features((x - 0.5) / 0.5), atol=1e-6)


def test_preprocess_resizes_bilinear_without_corner_alignment():
    vre = tiny_vre()
    x = torch.rand(1, 3, 64, 64)
    assert torch.equal(vre.preprocess(x), F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False))


def test_attention_equals_the_explicit_single_head_formula():
    torch.manual_seed(0)
    block = AttnBlock(64).eval()
    x = torch.randn(2, 64, 5, 7)
    with torch.no_grad():
        h = block.norm1(x)
        q, k, v = (m(h).flatten(2) for m in (block.q, block.k, block.v))  # (B, C, N)
        w = torch.softmax(torch.einsum("bci,bcj->bij", q * 64 ** -0.5, k), dim=-1)
        ref = x + block.proj_out(torch.einsum("bij,bcj->bci", w, v).view(2, 64, 5, 7))
        assert torch.allclose(block(x), ref, atol=1e-5)


def test_save_load_round_trip(tmp_path):
    vre = tiny_vre(double_normalize_input=True)
    vre.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").is_file()
    again = VisualRepresentationEmbedder.from_pretrained(tmp_path)
    assert again.config.double_normalize_input is True
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(vre(x), again(x))


def test_bf16_keeps_code_selection_in_float32():
    vre = tiny_vre()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        out = vre.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert out.dtype == torch.bfloat16 and out.shape == (2, 77, 64) and torch.isfinite(out).all()
