"""End to end against the authors' inference code: the VRE's codes and prompts, and the one step's output.

The reference below is this project's own transcription of the release's computation (``lq_embed/vqvae.py``'s
encoder and ``VectorQuantizer.inference``, ``lq_embed/inference.py``'s resize and input scaling and its
``TwoLayerConv1x1``, ``infer.py``'s forward), written as plain functions over an official-format state dict so that
nothing in ``osdface.models`` is reused. The facts it follows: swish as ``x * sigmoid(x)``; GroupNorm(32, eps 1e-6);
3×3 convs with padding 1; downsampling by a (0, 1, 0, 1) zero pad and a stride-2 3×3 conv; the residual as
``skip + h``; single-head attention as ``q`` reshaped to (B, 1, C, HW), permuted to (B, HW, 1, C) and transposed to
(B, 1, HW, C), scaled in place by ``int(C) ** -0.5``, ``matmul`` with k as (B, 1, C, HW), softmax over the last axis,
``matmul`` with v, back through ``transpose(1, 2).contiguous().view(B, H, W, C).permute(0, 3, 1, 2)``.

The fixture makes the prompt rule sensitive to the last bit of a feature: a codebook of perturbed copies of the
image's own features (see tests/test_codebook.py::near_tie_case), so that many positions sit at almost the same
tiny distance, computed with cancellation, from their nearest code.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from PIL import Image

from osdface import OSDFacePipeline
from osdface.configs import SD21_SCHEDULER, get_preset
from osdface.models import VisualRepresentationEmbedder
from osdface.models.vq_encoder import set_fused_attention

from .conftest import TINY
from .test_codebook import release_selection

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


# ----------------------------------------------------------------------------- the release, transcribed
def _swish(x):
    return x * torch.sigmoid(x)


def _norm(sd, name, x):
    return F.group_norm(x, 32, sd[f"{name}.weight"], sd[f"{name}.bias"], eps=1e-6)


def _conv(sd, name, x, stride=1):
    w = sd[f"{name}.weight"]
    return F.conv2d(x, w, sd[f"{name}.bias"], stride=stride, padding=w.shape[-1] // 2 if stride == 1 else 0)


def _resnet(sd, name, x):
    h = _conv(sd, f"{name}.conv1", _swish(_norm(sd, f"{name}.norm1", x)))
    h = _conv(sd, f"{name}.conv2", _swish(_norm(sd, f"{name}.norm2", h)))  # dropout 0 in eval
    if f"{name}.nin_shortcut.weight" in sd:
        x = _conv(sd, f"{name}.nin_shortcut", x)
    return x + h


def _attention(sd, name, x):
    h_ = _norm(sd, f"{name}.norm1", x)
    q, k, v = (_conv(sd, f"{name}.{p}", h_) for p in "qkv")
    b, c, h, w = q.shape
    q = q.reshape(b, 1, c, h * w).permute(0, 3, 1, 2).transpose(1, 2)
    k = k.reshape(b, 1, c, h * w).permute(0, 3, 1, 2).transpose(1, 2).transpose(2, 3)
    v = v.reshape(b, 1, c, h * w).permute(0, 3, 1, 2).transpose(1, 2)
    q.mul_(int(c) ** (-0.5))
    w_ = F.softmax(torch.matmul(q, k), dim=3).matmul(v)
    w_ = w_.transpose(1, 2).contiguous().view(b, h, w, -1).permute(0, 3, 1, 2)
    return x + _conv(sd, f"{name}.proj_out", w_)


def release_features(sd, img):
    """The release VRE's encoder + quant_conv on ``img`` in [-1, 1] (its resize and (x - 0.5) / 0.5 included)."""
    x = F.interpolate(img, size=(512, 512), mode="bilinear", align_corners=False)
    h = _conv(sd, "encoder.conv_in", (x - 0.5) / 0.5)
    levels = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("encoder.down."))
    for level in range(levels):
        for i in range(2):
            h = _resnet(sd, f"encoder.down.{level}.block.{i}", h)
            if f"encoder.down.{level}.attn.{i}.q.weight" in sd:
                h = _attention(sd, f"encoder.down.{level}.attn.{i}", h)
        if level != levels - 1:
            h = _conv(sd, f"encoder.down.{level}.downsample.conv", F.pad(h, (0, 1, 0, 1), value=0), stride=2)
    h = _resnet(sd, "encoder.mid.block_2", _attention(sd, "encoder.mid.attn_1",
                                                       _resnet(sd, "encoder.mid.block_1", h)))
    h = _conv(sd, "encoder.conv_out", _swish(_norm(sd, "encoder.norm_out", h)))
    return _conv(sd, "quant_conv", h)


def release_prompt(sd, img, z=None):
    """(codes kept, prompt (1, 77, 1024)) of one image, as the release computes them (``z``: its features, when
    already computed: they do not depend on the codebook)."""
    z = release_features(sd, img) if z is None else z
    codebook = sd["quantize.embedding.weight"]
    codes = release_selection(z, codebook, 77)
    one_hot = torch.zeros(1, 77, codebook.shape[0])
    one_hot[0, : len(codes)].scatter_(1, torch.tensor(codes).unsqueeze(1), 1)
    tokens = torch.matmul(one_hot.view(-1, codebook.shape[0]), codebook).view(1, -1, codebook.shape[1])
    x = tokens.permute(0, 2, 1)
    x = F.silu(F.conv1d(x, sd["projector.conv1.weight"], sd["projector.conv1.bias"]))
    x = F.silu(F.conv1d(x, sd["projector.conv2.weight"], sd["projector.conv2.bias"]))
    return codes, x.permute(0, 2, 1)


def release_one_step(sd, vae, unet, alphas_cumprod, lq01, seed=114):
    """infer.py's forward for one 512² image in [0, 1]: lq → prompt, sampled VAE latent, UNet at t = 399, x0 in
    float64, decode, clamp, to [0, 1]."""
    lq = lq01 * 2 - 1
    lq = F.interpolate(lq, (512, 512), mode="bilinear", align_corners=True)  # square inputs, as infer.py does
    _, prompt = release_prompt(sd, lq)
    torch.manual_seed(seed)
    latent = vae.encode(lq).latent_dist.sample() * vae.config.scaling_factor
    pred = unet(latent, 399, encoder_hidden_states=prompt).sample
    a = alphas_cumprod.double()[399].reshape(-1, 1, 1, 1)
    x0 = ((latent.double() - (1 - a) ** 0.5 * pred.double()) / a ** 0.5).float()
    out = vae.decode(x0 / vae.config.scaling_factor).sample.clamp(-1, 1)
    return (out * 0.5 + 0.5).clamp(0, 1)


# ----------------------------------------------------------------------------- the near-tie fixture
def _faces():
    face = np.array(Image.open(EXAMPLES / "astronaut_face_lq.png").convert("RGB"))
    hq = np.array(Image.open(EXAMPLES / "astronaut_face.png").convert("RGB").resize((512, 512), Image.BICUBIC))
    imgs = [face, face[:, ::-1], hq]
    return [torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float() / 255 for a in imgs]


def near_tie_codebook(z, seed):
    """Four perturbed copies of each of the image's 256 feature vectors: 1024 codes, most nearest distances tiny
    and computed with cancellation, so that ties are common and the last bits decide."""
    flat = z.flatten(2)[0].t()  # (256, 512)
    g = torch.Generator().manual_seed(seed)
    return flat.repeat(4, 1) + 1e-3 * flat.std() * torch.randn(4 * flat.shape[0], flat.shape[1], generator=g)


@pytest.fixture(scope="module")
def case():
    """Official-format random weights of the full-size VRE (sd21 preset, the release's [-3, 1] input quirk), three
    512² faces, the release's features of each (computed once: 512² through the full encoder is the cost here)."""
    torch.manual_seed(0)
    vre = VisualRepresentationEmbedder(**{**get_preset("sd21").vre, "double_normalize_input": True}).eval()
    faces = _faces()
    sd = {k: v.clone() for k, v in vre.state_dict().items()}
    with torch.no_grad():
        feats = [release_features(sd, img * 2 - 1) for img in faces]
    return vre, faces, feats


def _with_codebook(vre, codebook):
    with torch.no_grad():
        vre.quantize.embedding.weight.copy_(codebook)
    return {k: v.clone() for k, v in vre.state_dict().items()}


def test_codes_and_prompts_equal_the_releases_on_near_ties(case):
    vre, faces, feats = case
    fused_differs = False
    for i, (img01, z) in enumerate(zip(faces, feats)):
        x = img01 * 2 - 1
        sd = _with_codebook(vre, near_tie_codebook(z, seed=i))
        with torch.no_grad():
            codes, prompt = release_prompt(sd, x, z)
            tokens = vre.tokens(x)
            ours = vre.projector(tokens.embeddings)
        kept = tokens.indices[0][tokens.valid[0]].tolist()
        assert len(codes) == 77
        assert kept == codes, f"image {i}: {sum(a != b for a, b in zip(kept, codes))} of 77 codes differ"
        assert torch.equal(ours, prompt), f"image {i}: prompts differ by {(ours - prompt).abs().max():.3g}"
        if not fused_differs:  # the fixture discriminates: fused attention's other last bits keep other codes
            set_fused_attention(vre, True)
            with torch.no_grad():
                fused = vre.tokens(x)
            set_fused_attention(vre, False)
            fused_differs = fused.indices[0][fused.valid[0]].tolist() != codes
    assert fused_differs


def test_one_step_output_equals_the_releases_forward(case):
    """The whole pipeline (CPU fp32, latent sampled like the release) against infer.py's forward, one image."""
    vre, faces, feats = case
    torch.manual_seed(1)
    # a tiny VAE with SD's 8x downsampling, so that 512² (the release's size) stays cheap for the tiny UNet
    vae = AutoencoderKL(**{**TINY["vae"], "block_out_channels": (32,) * 4, "down_block_types": ("DownEncoderBlock2D",) * 4,
                           "up_block_types": ("UpDecoderBlock2D",) * 4}).eval()
    unet = UNet2DConditionModel(**{**TINY["unet"], "cross_attention_dim": 1024}).eval()
    scheduler = DDIMScheduler(**SD21_SCHEDULER)
    config = get_preset("sd21", process_size=512, latent_mode="sample")
    pipe = OSDFacePipeline(vae, unet, vre, scheduler, config)
    img01 = faces[0]
    sd = _with_codebook(vre, near_tie_codebook(feats[0], seed=0))
    with torch.no_grad():
        expected = release_one_step(sd, vae, unet, scheduler.alphas_cumprod, img01)
    torch.manual_seed(114)
    ours = pipe(img01, output_type="pt", latent_mode="sample")
    assert ours.shape == expected.shape == (1, 3, 512, 512)
    assert (ours - expected).abs().max() <= 1e-4
