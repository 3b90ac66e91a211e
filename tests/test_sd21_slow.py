"""Full-size SD-2.1 shapes with random weights. Slow on a CPU (minutes): `python -m pytest -m slow`."""

import pytest
import torch

from osdface import OSDFacePipeline

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sd21():
    return OSDFacePipeline.from_preset("sd21", seed=0)


def test_parameter_counts_match_the_paper(sd21):
    count = lambda m: sum(p.numel() for n, p in m.named_parameters() if "lora_" not in n) / 1e6  # noqa: E731
    assert abs(count(sd21.unet) - 865.9) < 0.5  # docs/ARCHITECTURE.md §1
    assert abs(count(sd21.vae) - 83.7) < 0.5
    assert abs(count(sd21.vre) - 29.6) < 0.1


def test_one_step_at_512_in_bf16(sd21):
    sd21.fuse_lora().to(dtype=torch.bfloat16)
    out = sd21(torch.rand(1, 3, 512, 512), output_type="pt")
    assert out.shape == (1, 3, 512, 512) and torch.isfinite(out).all()
    assert sd21.encode_prompt(torch.rand(2, 3, 512, 512)).shape == (2, 77, 1024)
