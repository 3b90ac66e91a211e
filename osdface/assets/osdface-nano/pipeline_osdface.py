"""OSDFace as a plain ``diffusers`` pipeline, for people who load models with diffusers alone:

    from diffusers import DiffusionPipeline
    pipe = DiffusionPipeline.from_pretrained("path/or/hub-id", trust_remote_code=True)
    restored = pipe(face_crop_512).images          # PIL images; output_type="pt" / "np" for arrays

Every model folder written by ``OSDFacePipeline.save_pretrained`` / ``push_to_hub`` and ``osdface convert``
carries, beside the osdface files, a ``model_index.json`` and copies of this module (as ``pipeline_osdface.py``),
of ``one_step.py`` and ``tiled_vae.py`` (the one step's arithmetic, shared with :class:`osdface.OSDFacePipeline`),
of the VRE's modules in ``vre/`` (``osdface_vre.py`` = ``vre.py``) and, for a UNet stored as a LoRA
(``unet_lora/``), of ``diffusers_lora.py`` (as ``unet_lora/osdface_lora.py``). The copies are verbatim, so this
module and the ones it imports use only torch, numpy, PIL and diffusers, and relative imports of files that travel
with it (diffusers copies the relative imports of the module it loads, not theirs:
hence the direct import of ``tiled_vae`` below). The one-step arithmetic is docs/ARCHITECTURE.md §1.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DiffusionPipeline
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput
from PIL import Image

from .one_step import OneStepGenerator
from .tiled_vae import vae_factor  # noqa: F401  (copied beside one_step.py by diffusers' loader)


class OSDFaceDiffusersPipeline(DiffusionPipeline):
    """VAE + UNet + Visual Representation Embedder + the DDIM table; one UNet call per face at ``timestep``.

    A folder that stores its UNet as a LoRA (``unet_lora/``, read by ``unet_lora/osdface_lora.py``) on a referenced
    SD base has no ``unet/`` (nor ``vae/``): they come from ``base_model`` (a Hub id or a local folder;
    ``base_model_local``, the converting machine's copy, is used first where it exists, as ``OSDFacePipeline`` does).
    Pass ``base_model="path/or/id"`` to ``from_pretrained`` to load them from elsewhere."""

    model_cpu_offload_seq = "vre->vae->unet"
    _optional_components = ["vae", "unet", "unet_lora"]

    def __init__(self, vre, scheduler, vae=None, unet=None, unet_lora=None, timestep: int = 399,
                 latent_mode: str = "mode", identity_skip: bool = False, vre_prompt: bool = True,
                 process_size: int = 512, base_model: str | None = None, base_model_local: str | None = None):
        super().__init__()
        if vae is None or unet is None:
            vae, unet = self._base_parts(vae, unet, base_model, base_model_local, vre.dtype)
        if unet_lora is not None:
            unet_lora.apply_to(unet)  # unfused, as OSDFacePipeline runs it
        self.register_modules(vae=vae, unet=unet, vre=vre, scheduler=scheduler, unet_lora=unet_lora)
        self.register_to_config(timestep=int(timestep), latent_mode=latent_mode, identity_skip=bool(identity_skip),
                                vre_prompt=bool(vre_prompt), process_size=int(process_size), base_model=base_model,
                                base_model_local=base_model_local)
        self._one_step = OneStepGenerator(vae, unet, vre, scheduler.alphas_cumprod, timestep, latent_mode,
                                          identity_skip=identity_skip, vre_prompt=vre_prompt).eval()

    @staticmethod
    def _base_parts(vae, unet, base_model, base_model_local, dtype):
        """The VAE / UNet the folder does not store, from the SD base it names."""
        from pathlib import Path

        from diffusers import AutoencoderKL, UNet2DConditionModel

        base = base_model
        if base_model_local and Path(base_model_local).is_dir() and not (base and Path(base).is_dir()):
            base = base_model_local
        if base is None:
            raise ValueError("this model folder stores no unet/ or vae/ and names no base model: pass "
                             "base_model='OWNER/NAME' or a local folder to from_pretrained")
        if vae is None:
            vae = AutoencoderKL.from_pretrained(base, subfolder="vae", torch_dtype=dtype)
        if unet is None:
            unet = UNet2DConditionModel.from_pretrained(base, subfolder="unet", torch_dtype=dtype)
        return vae.eval(), unet.eval()

    def fuse_lora(self) -> "OSDFaceDiffusersPipeline":
        """Merge the LoRA into the UNet's weights (W + scale·B·A): faster, equal up to rounding."""
        if self.unet_lora is not None:
            self.unet_lora.fuse(self.unet)
        return self

    def _inputs(self, images) -> torch.Tensor:
        """PIL image(s), uint8 HWC array(s), or a float tensor (N, 3, H, W) / (3, H, W) in [0, 1] → [-1, 1] at
        process_size² (bilinear, corners aligned, as the release resizes)."""
        if isinstance(images, torch.Tensor):
            batch = images[None] if images.dim() == 3 else images
            batch = batch.float() / 255.0 if batch.dtype == torch.uint8 else batch.float()
            items = list(batch)
        else:
            items = []
            for img in images if isinstance(images, (list, tuple)) else [images]:
                if isinstance(img, Image.Image):
                    img = np.asarray(img.convert("RGB"))
                arr = np.asarray(img)
                if arr.ndim != 3 or arr.shape[2] != 3:
                    raise ValueError(f"expected an RGB image (H, W, 3), got an array of shape {arr.shape}")
                t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)
                items.append(t.float() / 255.0 if t.dtype == torch.uint8 else t.float())
        size = self.config.process_size
        out = []
        for t in items:
            x = t.to(self.unet.device)[None] * 2 - 1
            if x.shape[-2:] != (size, size):
                x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=True)
            out.append(x)
        return torch.cat(out).to(self.unet.dtype)

    @torch.inference_mode()
    def __call__(self, images, output_type: str = "pil", batch_size: int = 4,
                 generator: torch.Generator | None = None, return_dict: bool = True):
        """Restore aligned face crops. ``output_type``: "pil" (list of PIL images), "np" ((N, S, S, 3) float32 in
        [0, 1]) or "pt" ((N, 3, S, S) float tensor in [0, 1])."""
        if output_type not in ("pil", "np", "pt"):
            raise ValueError(f"output_type must be 'pil', 'np' or 'pt', not {output_type!r}")
        x = self._inputs(images)
        outs = [(self._one_step(x[i:i + batch_size], generator=generator).float() * 0.5 + 0.5).clamp(0, 1).cpu()
                for i in range(0, len(x), batch_size)]
        y = torch.cat(outs)
        if output_type == "pil":
            arr = torch.floor(y * 255.0 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).numpy()
            y = [Image.fromarray(a) for a in arr]
        elif output_type == "np":
            y = y.permute(0, 2, 3, 1).numpy()
        return ImagePipelineOutput(images=y) if return_dict else (y,)
