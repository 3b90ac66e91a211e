"""The latent discriminator of stage 2's GAN guidance (docs/ARCHITECTURE.md §3).

It judges latents, the restored ``ẑ_H`` against the ground truth ``z_H``, as DMD2's guidance discriminator does:

1. noise the (clean, scaled) latents with the DDPM forward process at a random timestep,
   ``z_t = sqrt(ᾱ_t) z + sqrt(1 − ᾱ_t) n`` with ``t ~ U{t_min, …, t_max}`` and ``n ~ N(0, I)``;
2. run the *encoder half* of a diffusers ``UNet2DConditionModel`` on ``z_t``: ``conv_in``, the time embedding of
   ``t``, the down blocks and the mid block (1280 channels at 1/8 of the latent size for SD 2.1). Its cross-attention
   reads the VRE prompt, as the paper feeds the discriminator the prompt as well;
3. a small conv head on the bottleneck features gives a map of logits; the logit of an image is the mean of its map.

Head (the design beyond "a small conv head" is unpublished; this one follows the shape of DMD2's): GroupNorm, SiLU,
conv 4×4 stride 2 (C → ``head_channels``), GroupNorm, SiLU, conv 1×1 (→ 1). The bottleneck must be at least 2×2
(latents of at least 2·2^(levels−1) pixels).

Timesteps: by default ``t ~ U{0, …, T−1}`` over the whole schedule, DMD2's setting for SD (its "diffusion GAN"
classifier draws ``t`` below a maximum of 1000). Narrow ``[t_min, t_max]`` to make the discriminator look at finer
detail (small ``t`` keeps more of the latent). The same ``t`` and noise should be used for the real and the fake
batch of one step, so that both are judged under the same corruption: :meth:`LatentDiscriminator.forward` returns
the ``timesteps`` and ``noise`` it drew and accepts them back::

    real = disc(z_hq, prompt)                                        # draws t and n
    fake = disc(z_fake.detach(), prompt, timesteps=real.timesteps, noise=real.noise)
    loss_d = discriminator_loss(real.logits, fake.logits)
    real, fake = disc.compare(z_hq, z_fake.detach(), prompt)         # the same, in one pass of 2B latents

Backbone initialisation: :meth:`LatentDiscriminator.from_unet` copies the encoder weights of a (base) UNet, as DMD2
initialises its discriminator from the teacher. LoRA layers on the source are skipped: the copy holds the base
weights. (A LoRA that was *fused* into the weights and unloaded leaves no trace and cannot be told apart: pass the
base UNet.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import DDIMScheduler, UNet2DConditionModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor
from torch import nn

from ..configs import SD21_SCHEDULER

ENCODER_PREFIXES = ("conv_in.", "time_embedding.", "down_blocks.", "mid_block.")


@dataclass
class LatentDiscriminatorOutput(BaseOutput):
    """``logits`` (B,): one per latent; ``logits_map`` (B, h, w): the head's map before the mean; ``timesteps`` (B,)
    and ``noise`` (like the latents): what was used, to be passed back for the other half of the comparison.
    (Fields default to None, as diffusers outputs do, so that accelerate's mixed-precision wrapper can rebuild it.)"""

    logits: torch.Tensor = None
    logits_map: torch.Tensor = None
    timesteps: torch.Tensor = None
    noise: torch.Tensor = None


def default_alphas_cumprod() -> torch.Tensor:
    """ᾱ of SD 2.1's scheduler (scaled-linear betas 0.00085 → 0.012, 1000 steps), used when none is given."""
    return DDIMScheduler(**SD21_SCHEDULER).alphas_cumprod.clone()


def base_unet_state_dict(unet: nn.Module) -> dict[str, torch.Tensor]:
    """The UNet's weights without any PEFT LoRA: ``lora_*`` entries dropped, ``base_layer`` names unwrapped.

    Raises if an adapter is merged into its base layer (the base weights are then not recoverable from the names).
    """
    from peft.tuners.tuners_utils import BaseTunerLayer

    for name, module in unet.named_modules():
        if isinstance(module, BaseTunerLayer) and module.merged:
            raise ValueError(f"the UNet has a LoRA merged into {name!r}: call unet.unmerge_adapter() first, or pass "
                             "the base UNet")
    state = {}
    for key, value in unet.state_dict().items():
        parts = key.split(".")
        if any(p.startswith("lora_") for p in parts):
            continue
        state[".".join(p for p in parts if p != "base_layer")] = value
    return state


class LatentDiscriminator(ModelMixin, ConfigMixin):
    """UNet-encoder discriminator on noised latents, conditioned on the prompt (docs/ARCHITECTURE.md §3; see the module docstring).

    Args:
        unet_config: a ``UNet2DConditionModel`` config (the encoder part is built from it; the up blocks are not).
        head_channels: width of the head's 4×4 conv; default: the bottleneck width.
        t_min, t_max: the range of the noising timestep (inclusive); default the whole schedule ``[0, T − 1]``.
        alphas_cumprod: the scheduler's ᾱ table (stored as a buffer, saved with the weights, not in the config);
            default SD 2.1's.
        num_train_timesteps: length of the table (set from ``alphas_cumprod`` when that is given).
    """

    ignore_for_config = ["alphas_cumprod"]
    _supports_gradient_checkpointing = True  # enable_gradient_checkpointing() reaches the UNet's blocks

    @register_to_config
    def __init__(self, unet_config: dict, head_channels: int | None = None, t_min: int = 0, t_max: int | None = None,
                 num_train_timesteps: int = 1000, alphas_cumprod: torch.Tensor | None = None):
        super().__init__()
        if not isinstance(unet_config, dict) or not unet_config:
            raise ValueError("unet_config must be a non-empty UNet2DConditionModel config dict")
        unet_config = {k: v for k, v in unet_config.items() if not k.startswith("_")}
        unet = UNet2DConditionModel(**unet_config)
        for unsupported in ("class_embedding", "add_embedding", "encoder_hid_proj"):
            if getattr(unet, unsupported, None) is not None:
                raise ValueError(f"LatentDiscriminator does not support UNets with a {unsupported} (class/extra "
                                 "conditioning); use a plain text-conditioned UNet config")
        # the encoder half of the UNet, under the UNet's own parameter names (so from_unet is a plain key match)
        self.conv_in, self.time_proj, self.time_embedding = unet.conv_in, unet.time_proj, unet.time_embedding
        self.time_embed_act = unet.time_embed_act
        self.down_blocks, self.mid_block = unet.down_blocks, unet.mid_block
        del unet

        if alphas_cumprod is None:
            alphas_cumprod = default_alphas_cumprod()
            if len(alphas_cumprod) != num_train_timesteps:
                alphas_cumprod = torch.ones(num_train_timesteps)  # placeholder: from_pretrained loads the real table
        alphas_cumprod = torch.as_tensor(alphas_cumprod, dtype=torch.float32).flatten()
        if alphas_cumprod.numel() < 1 or not bool(((alphas_cumprod > 0) & (alphas_cumprod <= 1)).all()):
            raise ValueError("alphas_cumprod must be a non-empty table of values in (0, 1]")
        if alphas_cumprod.numel() != num_train_timesteps:
            self.register_to_config(num_train_timesteps=alphas_cumprod.numel())
        self.register_buffer("alphas_cumprod", alphas_cumprod.clone())
        t_max = self.num_timesteps - 1 if t_max is None else int(t_max)
        if not 0 <= int(t_min) <= t_max < self.num_timesteps:
            raise ValueError(f"need 0 <= t_min <= t_max < {self.num_timesteps}, got t_min={t_min}, t_max={t_max}")
        self.t_range = (int(t_min), t_max)
        self.head = self._build_head()

    # --- structure -------------------------------------------------------------------------------------------------
    @property
    def num_timesteps(self) -> int:
        return self.alphas_cumprod.numel()

    @property
    def bottleneck_channels(self) -> int:
        return int(self.config.unet_config["block_out_channels"][-1])

    def _build_head(self) -> nn.Sequential:
        c = self.bottleneck_channels
        h = int(self.config.head_channels or c)
        groups = int(self.config.unet_config.get("norm_num_groups") or 32)
        eps = float(self.config.unet_config.get("norm_eps", 1e-5))
        if c % groups or h % groups:
            raise ValueError(f"head widths ({c}, {h}) must be multiples of norm_num_groups={groups}")
        return nn.Sequential(
            nn.GroupNorm(groups, c, eps=eps), nn.SiLU(), nn.Conv2d(c, h, kernel_size=4, stride=2, padding=1),
            nn.GroupNorm(groups, h, eps=eps), nn.SiLU(), nn.Conv2d(h, 1, kernel_size=1),
        )

    @classmethod
    def from_unet(cls, unet: UNet2DConditionModel, alphas_cumprod: torch.Tensor | None = None,
                  dtype: torch.dtype = torch.float32, **kwargs) -> "LatentDiscriminator":
        """A discriminator whose encoder is a copy of ``unet``'s base weights (LoRA skipped); a fresh head.

        ``kwargs`` go to the constructor (``head_channels``, ``t_min``, ``t_max``). The copy is in ``dtype`` (float32
        by default, for training) on the UNet's device.
        """
        from accelerate import init_empty_weights

        config = {k: v for k, v in dict(unet.config).items() if not k.startswith("_")}
        state = {k: v.detach().to(dtype=dtype, copy=True) for k, v in base_unet_state_dict(unet).items()
                 if k.startswith(ENCODER_PREFIXES)}
        with init_empty_weights(include_buffers=False):  # no throw-away random init of a large backbone
            disc = cls(unet_config=config, alphas_cumprod=alphas_cumprod, **kwargs)
        disc.head = disc._build_head()
        result = disc.load_state_dict(state, strict=False, assign=True)
        missing = [k for k in result.missing_keys if not k.startswith("head.") and k != "alphas_cumprod"]
        if missing or result.unexpected_keys:
            raise ValueError(f"UNet weights do not fit the discriminator: missing {missing[:5]}, "
                             f"unexpected {result.unexpected_keys[:5]}")
        device = next(iter(state.values())).device if state else torch.device("cpu")
        disc.head.to(dtype=dtype)  # the copied weights are already in dtype; the ᾱ table stays float32
        return nn.Module.to(disc, device=device)  # plain .to: ModelMixin.to logs a spurious fp32-modules warning

    # --- noising ---------------------------------------------------------------------------------------------------
    def sample_timesteps(self, batch_size: int, generator: torch.Generator | None = None,
                         device: torch.device | str | None = None) -> torch.Tensor:
        """``t ~ U{t_min, …, t_max}``, one per latent (int64)."""
        lo, hi = self.t_range
        gen_device = generator.device if generator is not None else (device or self.alphas_cumprod.device)
        t = torch.randint(lo, hi + 1, (batch_size,), generator=generator, device=gen_device)
        return t.to(device or self.alphas_cumprod.device)

    def add_noise(self, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """DDPM forward process ``sqrt(ᾱ_t) z + sqrt(1 − ᾱ_t) n`` (computed in float32)."""
        a = self.alphas_cumprod.float().to(latents.device)[timesteps.to(latents.device)].view(-1, 1, 1, 1)
        noisy = a.sqrt() * latents.float() + (1 - a).sqrt() * noise.float()
        return noisy.to(latents.dtype)

    # --- forward ---------------------------------------------------------------------------------------------------
    def encode(self, sample: torch.Tensor, timesteps: torch.Tensor, prompt_embeds: torch.Tensor) -> torch.Tensor:
        """The UNet's encoder on (already noised) latents → bottleneck features (B, C, h, w)."""
        if self.config.unet_config.get("center_input_sample"):
            sample = 2 * sample - 1.0
        emb = self.time_embedding(self.time_proj(timesteps).to(dtype=sample.dtype))
        if self.time_embed_act is not None:
            emb = self.time_embed_act(emb)
        h = self.conv_in(sample)
        for block in self.down_blocks:
            if getattr(block, "has_cross_attention", False):
                h, _ = block(hidden_states=h, temb=emb, encoder_hidden_states=prompt_embeds)
            else:
                h, _ = block(hidden_states=h, temb=emb)
        if self.mid_block is not None:
            if getattr(self.mid_block, "has_cross_attention", False):
                h = self.mid_block(h, emb, encoder_hidden_states=prompt_embeds)
            else:
                h = self.mid_block(h, emb)
        return h

    def _check_inputs(self, latents, prompt_embeds, timesteps, noise) -> torch.Tensor:
        cfg = self.config.unet_config
        if not torch.is_tensor(latents) or latents.ndim != 4 or latents.shape[1] != cfg.get("in_channels", 4):
            raise ValueError(f"latents must be a (B, {cfg.get('in_channels', 4)}, H, W) tensor, got "
                             f"{tuple(latents.shape) if torch.is_tensor(latents) else type(latents).__name__}")
        b = latents.shape[0]
        dim = cfg.get("cross_attention_dim", 1280)
        if (not torch.is_tensor(prompt_embeds) or prompt_embeds.ndim != 3 or prompt_embeds.shape[0] != b
                or prompt_embeds.shape[2] != dim):
            got = tuple(prompt_embeds.shape) if torch.is_tensor(prompt_embeds) else type(prompt_embeds).__name__
            raise ValueError(f"prompt_embeds must be ({b}, tokens, {dim}) for {b} latents, got {got}")
        if noise is not None and (not torch.is_tensor(noise) or noise.shape != latents.shape):
            raise ValueError(f"noise must have the latents' shape {tuple(latents.shape)}")
        if timesteps is None:
            return None
        t = torch.as_tensor(timesteps, device=latents.device)
        if t.is_floating_point():
            if not bool((t == t.round()).all()):
                raise ValueError("timesteps must be integers (indices into alphas_cumprod)")
        t = t.long()
        if t.ndim == 0:
            t = t.expand(b)
        if t.shape != (b,):
            raise ValueError(f"timesteps must be a scalar or of shape ({b},), got {tuple(t.shape)}")
        if bool((t < 0).any()) or bool((t >= self.num_timesteps).any()):
            raise ValueError(f"timesteps must lie in [0, {self.num_timesteps - 1}]")
        return t

    def forward(self, latents: torch.Tensor, prompt_embeds: torch.Tensor, timesteps: torch.Tensor | int | None = None,
                noise: torch.Tensor | None = None, generator: torch.Generator | None = None, return_dict: bool = True):
        """Judge clean (VAE-scaled) latents: noise them at ``timesteps`` (drawn when None) with ``noise`` (drawn
        when None) → :class:`LatentDiscriminatorOutput` (or a tuple ``(logits, logits_map, timesteps, noise)``).
        Pass the returned ``timesteps`` and ``noise`` to the call on the other batch for a fair comparison."""
        t = self._check_inputs(latents, prompt_embeds, timesteps, noise)
        if t is None:
            t = self.sample_timesteps(latents.shape[0], generator, latents.device)
        if noise is None:
            noise = randn_tensor(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
        feats = self.encode(self.add_noise(latents, noise, t), t, prompt_embeds)
        if min(feats.shape[-2:]) < 2:
            raise ValueError(f"latents of {tuple(latents.shape[-2:])} give a {tuple(feats.shape[-2:])} bottleneck; "
                             "the head needs at least 2x2: use larger latents")
        logits_map = self.head(feats)[:, 0]
        logits = logits_map.flatten(1).mean(dim=1)
        if not return_dict:
            return logits, logits_map, t, noise
        return LatentDiscriminatorOutput(logits=logits, logits_map=logits_map, timesteps=t, noise=noise)

    def compare(self, real_latents: torch.Tensor, fake_latents: torch.Tensor, prompt_embeds: torch.Tensor,
                generator: torch.Generator | None = None, forward=None
                ) -> tuple[LatentDiscriminatorOutput, LatentDiscriminatorOutput]:
        """Judge a real and a fake batch under the same timesteps and noise, in one forward pass of 2B latents
        (the discriminator step: pass ``fake_latents.detach()``). Both batches are read with the same prompts.
        ``forward``: the module to call instead of ``self`` (a distributed wrapper of it, so that gradients are
        synchronised); the timesteps and noise are drawn here either way, so one and several processes agree."""
        if not torch.is_tensor(real_latents) or not torch.is_tensor(fake_latents) or \
                real_latents.shape != fake_latents.shape:
            raise ValueError("real and fake latents must be tensors of the same shape")
        b = real_latents.shape[0]
        self._check_inputs(real_latents, prompt_embeds, None, None)
        t = self.sample_timesteps(b, generator, real_latents.device)
        noise = randn_tensor(real_latents.shape, generator=generator, device=real_latents.device,
                             dtype=real_latents.dtype)
        out = (forward or self)(torch.cat([real_latents, fake_latents.to(real_latents.dtype)]),
                                prompt_embeds.repeat(2, 1, 1), timesteps=t.repeat(2), noise=noise.repeat(2, 1, 1, 1))
        halves = [LatentDiscriminatorOutput(logits=out.logits[s], logits_map=out.logits_map[s], timesteps=t,
                                            noise=noise) for s in (slice(0, b), slice(b, 2 * b))]
        return halves[0], halves[1]
