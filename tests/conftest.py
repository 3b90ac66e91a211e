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

from osdface.configs import TINY_UNET, TINY_VAE, TINY_VRE  # noqa: E402
from osdface.models.lora import randomize_lora_  # noqa: E402

# the "tiny" preset's parts, for tests that build single modules
TINY = dict(vre=TINY_VRE, unet=TINY_UNET, vae=TINY_VAE)


@pytest.fixture
def tiny_pipe():
    from osdface import OSDFacePipeline

    pipe = OSDFacePipeline.from_preset("tiny", seed=0)
    randomize_lora_(pipe.unet)
    return pipe


@pytest.fixture
def faces_dir():
    if not SHARED_FACES.is_dir():
        pytest.skip(f"real face photos not found at {SHARED_FACES} (set OSDFACE_FACES to a folder of face crops)")
    return SHARED_FACES
