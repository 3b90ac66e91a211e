"""The one-step generator: ᾱ_399, x0 from epsilon, encode modes, shapes, batching, and the DDIM baseline."""

import math
from types import SimpleNamespace

import pytest
import torch
from diffusers import DDIMScheduler

from osdface.configs import SD21_SCHEDULER
from osdface.models import x0_from_eps


def test_alpha_bar_399_of_sd21_schedule():
    a = DDIMScheduler(**SD21_SCHEDULER).alphas_cumprod[399].item()
    assert abs(a - 0.4261) < 1e-4  # docs/ARCHITECTURE.md §1
    # the scaled-linear schedule, recomputed independently
    betas = [(math.sqrt(0.00085) + (math.sqrt(0.012) - math.sqrt(0.00085)) * i / 999) ** 2 for i in range(1000)]
    prod = 1.0
    for b in betas[:400]:
        prod *= 1 - b
    assert abs(a - prod) < 1e-5


def test_x0_formula():
    torch.manual_seed(0)
    z, eps, a = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8), 0.4260861277580261
    expected = (z.double() - math.sqrt(1 - a) * eps.double()) / math.sqrt(a)
    out = x0_from_eps(z, eps, a)
    assert out.dtype == torch.float32
    assert torch.allclose(out.double(), expected, atol=1e-6)
    # the inverse: noising x0 back with the same eps gives z
    assert torch.allclose(math.sqrt(a) * out + math.sqrt(1 - a) * eps, z, atol=1e-5)


def test_generator_constants_and_forward(tiny_pipe):
    gen = tiny_pipe.model
    assert gen.timestep == 399
    assert abs(gen.alpha_bar - DDIMScheduler(**SD21_SCHEDULER).alphas_cumprod.double()[399].item()) < 1e-12
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        y = gen(x)
        # the same computation, step by step
        z = gen.vae.encode(x).latent_dist.mode() * gen.vae.config.scaling_factor
        c = gen.vre(x)
        eps = gen.unet(z, 399, encoder_hidden_states=c).sample
        z0 = (z.double() - math.sqrt(1 - gen.alpha_bar) * eps.double()) / math.sqrt(gen.alpha_bar)
        ref = gen.vae.decode(z0.float() / gen.vae.config.scaling_factor).sample.clamp(-1, 1)
    assert y.shape == (2, 3, 64, 64) and y.min() >= -1 and y.max() <= 1
    assert torch.allclose(y, ref, atol=1e-5)


def test_encode_mode_is_deterministic_and_sample_follows_the_generator(tiny_pipe):
    gen = tiny_pipe.model
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.equal(gen.encode(x), gen.encode(x))
        s1 = gen.encode(x, mode="sample", generator=torch.Generator().manual_seed(114))
        s2 = gen.encode(x, mode="sample", generator=torch.Generator().manual_seed(114))
        s3 = gen.encode(x, mode="sample", generator=torch.Generator().manual_seed(115))
    assert torch.equal(s1, s2) and not torch.equal(s1, s3)


def test_batch_equals_single(tiny_pipe):
    x = torch.rand(3, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        batched = tiny_pipe.model(x)
        singles = torch.cat([tiny_pipe.model(x[i : i + 1]) for i in range(3)])
    # float32 kernels differ with the batch size (oneDNN picks other algorithms): rounding-level differences
    # (a mixed-up batch would differ by ~0.1 on average)
    assert torch.allclose(batched, singles, atol=1e-2)
    assert (batched - singles).abs().mean() < 1e-4


def test_gradients_reach_lora_and_projector_only_when_others_frozen(tiny_pipe):
    gen = tiny_pipe.model
    for p in gen.parameters():
        p.requires_grad_(False)
    for n, p in gen.unet.named_parameters():
        p.requires_grad_("lora_" in n)
    for p in gen.vre.projector.parameters():
        p.requires_grad_(True)
    gen(torch.rand(1, 3, 64, 64) * 2 - 1).square().mean().backward()
    lora_grads = [p.grad for n, p in gen.unet.named_parameters() if "lora_" in n]
    assert lora_grads and all(g is not None for g in lora_grads)
    assert all(p.grad is not None for p in gen.vre.projector.parameters())
    assert all(p.grad is None for p in gen.vae.parameters())


def test_ddim_baseline_runs_the_unet_num_steps_times(tiny_pipe):
    calls = []
    handle = tiny_pipe.unet.register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        y = tiny_pipe.model.ddim_sample(torch.rand(1, 3, 64, 64) * 2 - 1, tiny_pipe.scheduler, num_steps=7,
                                        generator=torch.Generator().manual_seed(0))
    handle.remove()
    assert len(calls) == 7 and y.shape == (1, 3, 64, 64)


def test_ddim_steps_leave_the_callers_scheduler_alone(tiny_pipe):
    sched = tiny_pipe.scheduler
    before = None if sched.num_inference_steps is None else list(sched.timesteps)
    z, c = torch.randn(1, 4, 32, 32), torch.randn(1, 77, 64)
    with torch.no_grad():
        first_two = [s for s, _ in zip(tiny_pipe.model.ddim_steps(z, c, sched, 10), range(2))]
    assert len(first_two) == 2 and first_two[0].shape == z.shape
    assert (None if sched.num_inference_steps is None else list(sched.timesteps)) == before


def test_identity_skip_gain_makes_eps_of_k_z_return_z():
    from osdface.models.one_step import identity_skip_gain
    a = 0.4260861277580261
    k = identity_skip_gain(a)
    assert k == pytest.approx(0.4584, abs=1e-4)
    z = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(x0_from_eps(z, k * z, a), z, atol=1e-6)


class ZeroUNet(torch.nn.Module):
    def forward(self, z, t, encoder_hidden_states):
        return SimpleNamespace(sample=torch.zeros_like(z))


def test_identity_skip_with_a_zero_unet_output_returns_the_input_and_round_trips(tiny_pipe, tmp_path):
    from osdface import OSDFacePipeline
    pipe = OSDFacePipeline(tiny_pipe.vae, tiny_pipe.unet, tiny_pipe.vre, tiny_pipe.scheduler,
                           tiny_pipe.config.replace(identity_skip=True))
    gen = pipe.model
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        z = gen.encode(x)
        c = gen.vre(x)
        eps = gen.unet(z, 399, encoder_hidden_states=c).sample
        # ε̂ = UNet + k·z, then the paper's x0 formula
        expected = x0_from_eps(z, eps + gen.skip_gain * z, gen.alpha_bar)
        assert torch.allclose(gen.restore_latent(z, c), expected, atol=1e-6)
        assert not torch.allclose(tiny_pipe.model.restore_latent(z, c), expected, atol=1e-3)  # the paper's: no skip
        unet = gen.unet
        gen.unet = ZeroUNet()
        assert torch.allclose(gen.restore_latent(z, c), z, atol=1e-6)  # zero UNet output: the input latent
        gen.unet = unet
    pipe.save_pretrained(tmp_path / "m")
    assert OSDFacePipeline.from_pretrained(tmp_path / "m").model.identity_skip
    assert not tiny_pipe.model.identity_skip
