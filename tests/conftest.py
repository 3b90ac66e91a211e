"""Shared test set-up: offline, two threads, tiny seeded components (the diffusers get_dummy_components pattern)."""

import os
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # never wait on the network in tests
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))

REPO = Path(__file__).resolve().parents[1]
SHARED_FACES = Path(os.environ.get("OSDFACE_FACES", REPO.parent / "shared" / "data" / "faces"))

# A tiny model of the OSDFace design: VRE 32² → 4×4 grid, 40 codes (< 77: the prompt gets zero rows), UNet (32, 64),
# VAE (32, 64): everything runs in well under a second at 64².
TINY = dict(
    vre=dict(ch=32, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(8,), resolution=32, z_channels=32,
             n_codes=40, code_dim=32, num_tokens=77, prompt_dim=64),
    unet=dict(sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
              down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
              up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=64, attention_head_dim=8,
              norm_num_groups=32),
    vae=dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 64), layers_per_block=1,
             down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
             norm_num_groups=32, sample_size=64),
    process_size=64, lora_rank=4, lora_alpha=8.0, base_model=None,
)


def randomize_lora(unet, seed=0, scale=0.02):
    """PEFT initialises lora_B to zero (LoRA = identity); tests need a LoRA that changes the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=g) * scale)


@pytest.fixture
def tiny_pipe():
    from osdface import OSDFacePipeline

    pipe = OSDFacePipeline.from_preset("nano", seed=0, **TINY)
    randomize_lora(pipe.unet)
    return pipe


@pytest.fixture
def faces_dir():
    if not SHARED_FACES.is_dir():
        pytest.skip(f"real face photos not found at {SHARED_FACES} (set OSDFACE_FACES to a folder of face crops)")
    return SHARED_FACES
