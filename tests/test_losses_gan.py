"""GAN losses, the latent (UNet-encoder) discriminator, the PatchGAN and the association loss (docs/ARCHITECTURE.md §2, §3)."""

import math

import numpy as np
import pytest
import torch
from diffusers import UNet2DConditionModel
from peft import LoraConfig

from osdface.losses.association import AssociationLoss, association_loss
from osdface.losses.gan import discriminator_loss, generator_gan_loss
from osdface.losses.latent_discriminator import LatentDiscriminator, base_unet_state_dict
from osdface.losses.patch_discriminator import PatchDiscriminator
from osdface.models.lora import add_lora, randomize_lora_

from .conftest import TINY


def tiny_unet(seed=0):
    torch.manual_seed(seed)
    return UNet2DConditionModel(**TINY["unet"]).eval()


def tiny_disc(seed=0, **kw):
    torch.manual_seed(seed)
    return LatentDiscriminator(unet_config=dict(TINY["unet"]), **kw)


def latents_and_prompt(b=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 4, 16, 16, generator=g), torch.randn(b, 77, 64, generator=g)


# --- GAN losses -----------------------------------------------------------------------------------------------------
def test_gan_losses_on_known_logits():
    zero = torch.zeros(3)
    assert discriminator_loss(zero, zero).item() == pytest.approx(2 * math.log(2), abs=1e-6)
    assert generator_gan_loss(zero).item() == pytest.approx(math.log(2), abs=1e-6)
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    want_d = np.mean(np.log1p(np.exp([-2.0, 1.0]))) + np.mean(np.log1p(np.exp([0.5, -3.0])))
    assert discriminator_loss(real, fake).item() == pytest.approx(want_d, abs=1e-6)
    assert generator_gan_loss(fake).item() == pytest.approx(np.mean(np.log1p(np.exp([-0.5, 3.0]))), abs=1e-6)
    # hinge: relu(1 - real) = [0, 2], relu(1 + fake) = [1.5, 0]
    assert discriminator_loss(real, fake, kind="hinge").item() == pytest.approx(1.0 + 0.75)
    assert generator_gan_loss(fake, kind="hinge").item() == pytest.approx(1.25)
    # a confident, correct discriminator has (almost) no loss; patch maps are averaged
    assert discriminator_loss(torch.full((2, 1, 3, 3), 20.0), torch.full((2, 1, 3, 3), -20.0)).item() < 1e-8
    with pytest.raises(ValueError, match="kind"):
        discriminator_loss(real, fake, kind="wgan")


# --- latent discriminator -------------------------------------------------------------------------------------------
def test_latent_discriminator_shapes_and_shared_noise():
    disc = tiny_disc(t_max=600)
    z, c = latents_and_prompt()
    out = disc(z, c, generator=torch.Generator().manual_seed(0))
    assert out.logits.shape == (2,) and out.logits_map.shape == (2, 4, 4)  # 16² latent → 8² bottleneck → 4²
    assert torch.allclose(out.logits, out.logits_map.mean(dim=(1, 2)))
    assert out.timesteps.dtype == torch.int64 and bool(((out.timesteps >= 0) & (out.timesteps <= 600)).all())
    assert out.noise.shape == z.shape
    # the same generator draws the same t and noise; passing them back reproduces the call exactly
    again = disc(z, c, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again.timesteps, out.timesteps) and torch.equal(again.noise, out.noise)
    replay = disc(z, c, timesteps=out.timesteps, noise=out.noise)
    assert torch.allclose(replay.logits, out.logits, atol=1e-6)
    other = disc(z, c, generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(other.logits, out.logits, atol=1e-4)
    # the prompt is read (cross-attention)
    assert not torch.allclose(disc(z, -c, timesteps=out.timesteps, noise=out.noise).logits, out.logits, atol=1e-5)


def test_compare_is_two_calls_with_shared_noise():
    disc = tiny_disc()
    z, c = latents_and_prompt()
    fake = 0.5 * torch.randn_like(z)
    with torch.no_grad():
        real_out, fake_out = disc.compare(z, fake, c, generator=torch.Generator().manual_seed(4))
        assert torch.equal(real_out.timesteps, fake_out.timesteps) and torch.equal(real_out.noise, fake_out.noise)
        r = disc(z, c, timesteps=real_out.timesteps, noise=real_out.noise)
        f = disc(fake, c, timesteps=real_out.timesteps, noise=real_out.noise)
    assert torch.allclose(real_out.logits, r.logits, atol=1e-5) and torch.allclose(fake_out.logits, f.logits, atol=1e-5)
    assert real_out.logits_map.shape == (2, 4, 4)


def test_gradient_checkpointing_gives_the_same_gradients():
    disc = tiny_disc().train()
    z, c = latents_and_prompt()
    t, n = torch.tensor([3, 400]), torch.randn_like(z)
    disc(z, c, timesteps=t, noise=n).logits.sum().backward()
    plain = [p.grad.clone() for p in disc.parameters()]
    disc.zero_grad()
    disc.enable_gradient_checkpointing()
    assert all(b.gradient_checkpointing for b in disc.down_blocks)
    disc(z, c, timesteps=t, noise=n).logits.sum().backward()
    assert all(torch.allclose(p.grad, g, atol=1e-6) for p, g in zip(disc.parameters(), plain))


def test_add_noise_is_the_ddpm_forward_process():
    disc = tiny_disc()
    betas = np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=np.float64) ** 2  # SD's scaled-linear schedule
    abar = np.cumprod(1 - betas)
    assert np.allclose(disc.alphas_cumprod.numpy(), abar, atol=1e-6)
    z, _ = latents_and_prompt()
    n = torch.randn_like(z)
    t = torch.tensor([0, 999])
    want = [math.sqrt(abar[k]) * z[i].double() + math.sqrt(1 - abar[k]) * n[i].double() for i, k in enumerate([0, 999])]
    assert torch.allclose(disc.add_noise(z, n, t).double(), torch.stack(want), atol=1e-5)


def test_encoder_matches_the_unet_own_down_path():
    unet = tiny_unet()
    disc = LatentDiscriminator.from_unet(unet)
    z, c = latents_and_prompt()
    t = torch.tensor([5, 700])
    seen = {}
    unet.mid_block.register_forward_hook(lambda m, i, o: seen.setdefault("mid", o))
    with torch.no_grad():
        unet(z, t, encoder_hidden_states=c)
        mine = disc.encode(z, t, c)
    assert torch.allclose(mine, seen["mid"], atol=1e-5)


def test_from_unet_copies_base_weights_not_lora():
    plain = tiny_unet()
    lora = tiny_unet()
    add_lora(lora, LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "conv1", "proj_in"]))
    randomize_lora_(lora, scale=0.2)
    disc = LatentDiscriminator.from_unet(lora, t_min=10, t_max=500)
    assert disc.t_range == (10, 500)
    names = [k for k, _ in disc.named_parameters()]
    assert not any("lora" in k or "base_layer" in k for k in names)
    plain_state = plain.state_dict()
    encoder = [k for k in names if not k.startswith("head.")]
    assert len(encoder) == len([k for k in plain_state if k.startswith(("conv_in.", "time_embedding.", "down_blocks.",
                                                                          "mid_block."))])
    for k in encoder:
        assert torch.equal(disc.state_dict()[k], plain_state[k]), k
    # the copy is independent of the source
    with torch.no_grad():
        disc.conv_in.weight.add_(1.0)
    assert not torch.equal(lora.conv_in.weight, disc.conv_in.weight)
    # features: those of the base UNet, not of the LoRA UNet
    z, c = latents_and_prompt()
    t = torch.tensor([100, 100])
    feats = {}
    for name, u in (("plain", plain), ("lora", lora)):
        u.mid_block.register_forward_hook(lambda m, i, o, name=name: feats.setdefault(name, o))
        with torch.no_grad():
            u(z, t, encoder_hidden_states=c)
    fresh = LatentDiscriminator.from_unet(lora)
    with torch.no_grad():
        mine = fresh.encode(z, t, c)
    assert torch.allclose(mine, feats["plain"], atol=1e-5)
    assert not torch.allclose(mine, feats["lora"], atol=1e-3)


def test_from_unet_refuses_merged_lora():
    unet = tiny_unet()
    add_lora(unet, LoraConfig(r=4, lora_alpha=4, target_modules=["to_q"]))
    randomize_lora_(unet)
    unet.fuse_lora(lora_scale=1.0)
    with pytest.raises(ValueError, match="merged"):
        base_unet_state_dict(unet)


def test_discriminator_steps_move_the_right_way():
    disc = tiny_disc(t_max=50)  # little noise: the two sets stay easy to tell apart
    g = torch.Generator().manual_seed(3)
    real = torch.randn(2, 4, 16, 16, generator=g)
    fake = 0.3 * torch.randn(2, 4, 16, 16, generator=g)  # a different (narrower) distribution
    prompt = torch.randn(2, 77, 64, generator=g)
    opt = torch.optim.SGD(disc.parameters(), lr=0.1)

    def evaluate():
        with torch.no_grad():
            r = disc(real, prompt, generator=torch.Generator().manual_seed(9))
            f = disc(fake, prompt, timesteps=r.timesteps, noise=r.noise)
        return discriminator_loss(r.logits, f.logits).item(), (r.logits.mean() - f.logits.mean()).item()

    loss0, gap0 = evaluate()
    for step in range(4):
        r = disc(real, prompt, generator=torch.Generator().manual_seed(step))
        f = disc(fake, prompt, timesteps=r.timesteps, noise=r.noise)
        loss = discriminator_loss(r.logits, f.logits)
        opt.zero_grad()
        loss.backward()
        opt.step()
    loss1, gap1 = evaluate()
    assert loss1 < 0.5 * loss0, (loss0, loss1)  # measured: 1.43 → 0.31
    assert gap1 > gap0 + 1.0, (gap0, gap1)  # measured: -0.07 → 3.6


def test_generator_loss_reaches_fakes_not_frozen_discriminator():
    disc = tiny_disc()
    disc.requires_grad_(False)
    z, c = latents_and_prompt()
    fake = z.clone().requires_grad_(True)
    generator_gan_loss(disc(fake, c, generator=torch.Generator().manual_seed(0)).logits).backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    assert all(p.grad is None for p in disc.parameters())


def test_latent_discriminator_validates_inputs():
    disc = tiny_disc()
    z, c = latents_and_prompt()
    with pytest.raises(ValueError, match="prompt_embeds"):
        disc(z, torch.randn(2, 77, 32))
    with pytest.raises(ValueError, match="prompt_embeds"):
        disc(z, c[:1])
    with pytest.raises(ValueError, match="latents"):
        disc(z[:, :3], c)
    with pytest.raises(ValueError, match="timesteps"):
        disc(z, c, timesteps=torch.tensor([0, 1000]))
    with pytest.raises(ValueError, match="noise"):
        disc(z, c, noise=torch.randn(2, 4, 8, 8))
    with pytest.raises(ValueError, match="bottleneck"):
        disc(torch.randn(2, 4, 2, 2), c)
    with pytest.raises(ValueError, match="t_min"):
        tiny_disc(t_min=10, t_max=5)


def test_latent_discriminator_save_load_keeps_the_schedule(tmp_path):
    table = torch.linspace(0.999, 0.01, 300)
    disc = tiny_disc(alphas_cumprod=table, t_max=200)
    assert disc.config.num_train_timesteps == 300
    disc.save_pretrained(tmp_path)
    back = LatentDiscriminator.from_pretrained(tmp_path)
    assert torch.equal(back.alphas_cumprod, table) and back.t_range == (0, 200)
    z, c = latents_and_prompt()
    t, n = torch.tensor([3, 250]), torch.randn_like(z)
    with torch.no_grad():
        assert torch.allclose(back(z, c, timesteps=t, noise=n).logits, disc(z, c, timesteps=t, noise=n).logits)


# --- PatchGAN -------------------------------------------------------------------------------------------------------
def conv_out(size, k=4, s=2, p=1):
    return (size + 2 * p - k) // s + 1


@pytest.mark.parametrize("size", [64, 128])
@pytest.mark.parametrize("n_layers,norm", [(3, "batch"), (2, "group")])
def test_patch_discriminator_output_shape(size, n_layers, norm):
    disc = PatchDiscriminator(ndf=8, n_layers=n_layers, norm=norm)
    h = size
    for _ in range(n_layers):
        h = conv_out(h)
    h = conv_out(conv_out(h, s=1), s=1)
    out = disc(torch.randn(2, 3, size, size))
    assert out.shape == (2, 1, h, h) and h == size // 2 ** n_layers - 2


def test_patch_discriminator_rejects_bad_inputs():
    disc = PatchDiscriminator(ndf=8, n_layers=3)
    assert disc(torch.randn(1, 3, 24, 24)).shape == (1, 1, 1, 1)
    with pytest.raises(ValueError, match="at least"):
        disc(torch.randn(1, 3, 23, 23))
    with pytest.raises(ValueError, match="images"):
        disc(torch.randn(1, 1, 64, 64))
    with pytest.raises(ValueError, match="norm"):
        PatchDiscriminator(norm="spectral")


# --- association loss -----------------------------------------------------------------------------------------------
def reference_association(hq, lq, temperature, pool="flatten"):
    """Independent float64 numpy formula: per-image vectors, cosine matrix, CE of rows and of columns."""
    hq, lq = hq.double().numpy(), lq.double().numpy()
    if pool == "flatten":
        hq, lq = hq.reshape(len(hq), -1), lq.reshape(len(lq), -1)
    else:
        hq, lq = hq.mean(axis=(2, 3)), lq.mean(axis=(2, 3))
    hq = hq / np.linalg.norm(hq, axis=1, keepdims=True)
    lq = lq / np.linalg.norm(lq, axis=1, keepdims=True)
    s = hq @ lq.T / temperature
    b = len(s)
    rows = [-(s[i, i] - np.log(np.exp(s[i]).sum())) for i in range(b)]
    cols = [-(s[j, j] - np.log(np.exp(s[:, j]).sum())) for j in range(b)]
    return 0.5 * (np.mean(rows) + np.mean(cols))


def test_association_loss_matches_independent_formula():
    g = torch.Generator().manual_seed(0)
    hq, lq = torch.randn(5, 8, 4, 4, generator=g), torch.randn(5, 8, 4, 4, generator=g)
    lq = hq + 0.5 * lq  # correlated pairs
    for pool in ("flatten", "mean"):
        for tau in (0.07, 0.5):
            got = association_loss(hq, lq, temperature=tau, pool=pool).item()
            assert got == pytest.approx(reference_association(hq, lq, tau, pool), rel=1e-5, abs=1e-6)
    assert association_loss(hq, lq, pool="mean").item() != pytest.approx(association_loss(hq, lq).item(), rel=1e-3)


def test_association_loss_rewards_matched_pairs():
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(6, 16, 4, 4, generator=g)
    assert association_loss(feats, 3.0 * feats, temperature=0.01).item() < 1e-3  # scale does not matter: normalised
    shuffled = feats[torch.tensor([1, 2, 3, 4, 5, 0])]
    assert association_loss(feats, shuffled, temperature=0.01).item() > 10.0
    assert association_loss(feats[:1], feats[:1] * 0 + 1).item() == 0.0  # B = 1: nothing to contrast
    with pytest.raises(ValueError, match="same shape"):
        association_loss(feats, feats[:, :8])
    with pytest.raises(ValueError, match="temperature"):
        association_loss(feats, feats, temperature=0.0)


def test_learnable_association_temperature():
    g = torch.Generator().manual_seed(2)
    hq, lq = torch.randn(4, 8, 2, 2, generator=g), torch.randn(4, 8, 2, 2, generator=g)
    loss_fn = AssociationLoss()
    assert loss_fn.logit_scale.item() == pytest.approx(1 / 0.07, rel=1e-6)
    loss = loss_fn(hq, lq)
    assert loss.item() == pytest.approx(association_loss(hq, lq, temperature=0.07).item(), rel=1e-5)
    loss.backward()
    assert loss_fn.log_logit_scale.grad is not None and loss_fn.log_logit_scale.grad.abs() > 0
    fixed = AssociationLoss(temperature=0.001, learnable=False)
    assert fixed.logit_scale.item() == pytest.approx(100.0)  # CLIP's cap
    assert not fixed.log_logit_scale.requires_grad
