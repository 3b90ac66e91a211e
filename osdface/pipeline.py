"""``OSDFacePipeline``: load, run, save and share an OSDFace model in the diffusers style.

    pipe = OSDFacePipeline.from_pretrained("path/or/hub-id", torch_dtype=torch.bfloat16, device="cuda")
    faces = pipe([img1, img2], output_type="pil", batch_size=8)      # aligned 512² face crops
    prompts = pipe.encode_prompt(img1)                                 # (1, 77, 1024)
    pipe.save_pretrained("my-model"); pipe.push_to_hub("me/osdface")

A model folder (local or on the Hub)::

    osdface_config.json       preset, base model reference, timestep, LoRA rank/alpha, VRE flags (OSDFaceConfig)
    vre/                      VisualRepresentationEmbedder: config.json + diffusion_pytorch_model.safetensors
    unet_lora/                pytorch_lora_weights.safetensors ("unet.<path>.lora_A/B.weight") + adapter_config.json
    unet/  vae/               optional full copies (always present for a preset without a base model, e.g. nano)
    scheduler/                scheduler_config.json (only ᾱ_399 is used)
    README.md                 model card with Hub metadata
    model_index.json, *.py    what plain diffusers loads (``trust_remote_code=True``): see osdface/remote_code.py
"""

from __future__ import annotations

import copy
import os
import tempfile
import warnings
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from peft import LoraConfig

from . import image_io
from .configs import OSDFaceConfig, get_preset
from . import devices
from .weights import MissingWeightsError, load_base_component, resolve_model_folder
from .model_card import make_model_card
from .models import OneStepGenerator, VisualRepresentationEmbedder, build_vae, vae_class_of
from .models import lora as lora_utils

OutputType = Literal["pil", "np", "pt"]


def default_channels_last(device, dtype) -> bool:
    """Where channels-last is on by default (``from_pretrained(channels_last=None)``): where it measured faster.

    CPU bf16 (oneDNN): ≈ 2x faster for the sd21 shapes and 1.3x for nano (benchmarks/variants.py). On a GPU it
    stays off: on an H100 (fp16, sd21 shapes, batch 8, ``benchmarks/gpu_speed.py``) it was slower in eager mode
    (33.8 vs 28.0 ms per face) and the same once compiled (17.1 vs 17.3 ms)."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    return device.type == "cpu" and devices.torch_dtype(dtype) == torch.bfloat16


class OSDFacePipeline:
    """Runs :class:`~osdface.models.OneStepGenerator` on images; handles I/O, batching, devices and dtypes."""

    def __init__(self, vae: AutoencoderKL, unet: UNet2DConditionModel, vre: VisualRepresentationEmbedder,
                 scheduler: DDIMScheduler, config: OSDFaceConfig):
        self.vae, self.unet, self.vre, self.scheduler, self.config = vae, unet, vre, scheduler, config
        self.model = OneStepGenerator(vae, unet, vre, scheduler.alphas_cumprod, config.timestep, config.latent_mode,
                                      identity_skip=config.identity_skip, vre_prompt=config.vre_prompt)
        self.model.eval()

    # ------------------------------------------------------------------------------------------------------ building
    @classmethod
    def from_preset(cls, preset: str | OSDFaceConfig = "nano", *, seed: int = 0, lora: bool = True,
                    **overrides) -> "OSDFacePipeline":
        """Randomly initialised components of a preset's shapes (tests, benchmarks, a start for training)."""
        config = preset if isinstance(preset, OSDFaceConfig) else get_preset(preset, **overrides)
        torch.manual_seed(seed)
        vre = VisualRepresentationEmbedder(**config.vre)
        vae = build_vae(config.vae)
        unet = UNet2DConditionModel(**config.unet)
        if lora:
            lora_utils.add_lora(unet, LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha,
                                                 target_modules=list(lora_utils.DEFAULT_TARGET_MODULES),
                                                 init_lora_weights="gaussian"))
        return cls(vae, unet, vre, DDIMScheduler(**config.scheduler), config)

    @classmethod
    def from_pretrained(cls, path_or_repo_id: str | os.PathLike, *, torch_dtype=None, device=None,
                        local_files_only: bool | None = None, base_model: str | None = None,
                        revision: str | None = None, token=None, fuse_lora: bool = False,
                        channels_last: bool | None = None) -> "OSDFacePipeline":
        """Load a model folder or Hub repo. ``base_model`` overrides the stored SD base (Hub id or local folder).
        ``channels_last``: NHWC conv weights; ``None`` picks :func:`default_channels_last` (on for bf16 on a CPU).

        Raises :class:`~osdface.weights.MissingWeightsError` (one line: what to download, where) when weights are missing.
        """
        folder = resolve_model_folder(path_or_repo_id, revision=revision, token=token,
                                      local_files_only=local_files_only)
        config = OSDFaceConfig.load(folder)
        if base_model is not None:
            config = config.replace(base_model=str(base_model), base_model_local=None)
        base = config.base_model
        if config.base_model_local and Path(config.base_model_local).is_dir():
            base = config.base_model_local  # the converting machine's copy of the base, where it still exists
        dtype = devices.torch_dtype(torch_dtype)
        kw = {"torch_dtype": dtype} if dtype is not None else {}

        def component(cls_, sub):
            if (folder / sub).is_dir():
                return cls_.from_pretrained(folder, subfolder=sub, **kw)
            if base is None:
                raise MissingWeightsError(f"{folder} has no {sub}/ and names no base model to load it from.")
            return load_base_component(cls_, base, sub, local_files_only=local_files_only,
                                       token=token, **kw)

        vae = component(vae_class_of(folder if (folder / "vae").is_dir() else base or folder), "vae")
        unet = component(UNet2DConditionModel, "unet")
        scheduler = (DDIMScheduler.from_pretrained(folder, subfolder="scheduler")
                     if (folder / "scheduler").is_dir() else component(DDIMScheduler, "scheduler"))
        vre = VisualRepresentationEmbedder.from_pretrained(folder, subfolder="vre", **kw)
        if (folder / "unet_lora").is_dir():
            weights, lora_config = lora_utils.read_lora_folder(folder / "unet_lora")
            lora_utils.add_lora(unet, lora_config, weights)
        pipe = cls(vae, unet, vre, scheduler, config)
        # the card's terms, kept when the model is saved again even if its config predates license_name/link
        # (the bundled nano's does)
        pipe.card_license = read_card_license(folder)
        pipe.to(device=device, dtype=dtype)
        if fuse_lora:
            pipe.fuse_lora()
        if channels_last if channels_last is not None else default_channels_last(pipe.device, pipe.dtype):
            pipe.enable_channels_last()
        return pipe

    # -------------------------------------------------------------------------------------------- device and dtype
    @property
    def device(self) -> torch.device:
        return self.unet.device

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    def to(self, device=None, dtype=None) -> "OSDFacePipeline":
        """Move / cast every part, LoRA layers included (a no-op for tensors already there)."""
        kwargs = {k: v for k, v in (("device", device), ("dtype", devices.torch_dtype(dtype))) if v is not None}
        if kwargs:
            moves = device is not None and torch.device(device) != self.device
            if moves or kwargs.get("dtype", self.dtype) != self.dtype:
                self._invalidate_compiled()
            for module in (self.vae, self.unet, self.vre):
                # plain nn.Module.to: diffusers' ModelMixin.to logs a warning about fp32 modules that these lack
                torch.nn.Module.to(module, **kwargs)
        return self

    def fuse_lora(self) -> "OSDFacePipeline":
        """Merge the LoRA into the UNet weights (W + α/r·B·A) and drop the adapter layers: same output, faster."""
        lora_utils.fuse_lora(self.unet)
        return self

    @property
    def has_lora(self) -> bool:
        return lora_utils.has_lora(self.unet)

    # ------------------------------------------------------------------------------------------- speed options
    def enable_channels_last(self, enabled: bool = True) -> "OSDFacePipeline":
        """Store every conv weight channels-last (NHWC); activations follow. Same results to rounding. On this
        project's CPUs (oneDNN, AVX-512 bf16) it makes the bf16 one step about 2x faster; ``benchmarks/speed.py
        --channels-last on|off`` measures it on yours. ``enabled=False`` goes back to the default layout."""
        fmt = torch.channels_last if enabled else torch.contiguous_format
        if enabled != self.channels_last:
            self._invalidate_compiled()
        for module in (self.vae, self.unet, self.vre):
            module.to(memory_format=fmt)
        self._channels_last = enabled
        return self

    @property
    def channels_last(self) -> bool:
        return getattr(self, "_channels_last", False)

    def enable_vae_tiling(self, tile_size: int = 512, overlap: int = 64) -> "OSDFacePipeline":
        """VAE encode / decode of inputs larger than ``tile_size`` pixels in overlapping, blended tiles (bounded
        memory for large or non-square inputs to ``pipe.model``; see :mod:`osdface.models.tiled_vae`)."""
        self.model.enable_vae_tiling(tile_size, overlap)
        return self

    def disable_vae_tiling(self) -> "OSDFacePipeline":
        self.model.disable_vae_tiling()
        return self

    def compile(self, **compile_kwargs) -> "OSDFacePipeline":
        """``torch.compile`` the heavy modules in place: the UNet, the VAE's encoder and decoder, the VRE's
        convolutional encoder (the prompt rule stays eager). The first call per input shape compiles (tens of
        seconds to minutes); later calls reuse it. ``compile_kwargs`` go to ``torch.compile`` (e.g. ``mode``).
        Changing dtype, device or layout afterwards recompiles (see :meth:`_invalidate_compiled`)."""
        for module in (self.unet, self.vae.encoder, self.vae.decoder, self.vre.encoder):
            module.compile(**compile_kwargs)
        self._compiled = True
        return self

    @property
    def compiled(self) -> bool:
        return getattr(self, "_compiled", False)

    def _invalidate_compiled(self) -> None:
        """A compiled pipe whose weights change layout, dtype or device must recompile: its guards do not always
        see a weight's new strides (inductor then fails a stride assertion: seen with ``enable_channels_last``
        on a compiled CUDA pipe). ``torch._dynamo.reset()`` drops every compiled graph of the process; the next call
        compiles again."""
        if self.compiled:
            torch._dynamo.reset()

    # ---------------------------------------------------------------------------------------------------- running
    def preprocess(self, images) -> torch.Tensor:
        """Images (PIL / numpy / tensor in [0, 1], one or a list) → (N, 3, S, S) in [-1, 1] on the model's device.

        Like the release: scale to [-1, 1], then resize to process_size² bilinearly with align_corners=True.
        """
        return self._model_input(image_io.to_model_items(images))

    def _model_input(self, items: list[torch.Tensor], first_index: int = 0) -> torch.Tensor:
        """Validated (3, H, W) tensors (uint8, or float in [0, 1]) → the model's (N, 3, S, S) batch in [-1, 1]."""
        size = self.config.process_size
        if all(img.shape == (3, size, size) for img in items):  # the common case: one host→device copy per batch
            if len({img.dtype for img in items}) > 1:
                items = [image_io.unit_float(img) for img in items]
            # 8-bit inputs travel as uint8 and become float on the device (same numbers as /255 on the host)
            return (image_io.unit_float(torch.stack(items).to(self.device)) * 2 - 1).to(self.dtype)
        batch = []
        for i, img in enumerate(items):
            x = image_io.unit_float(img.to(self.device)).unsqueeze(0) * 2 - 1
            if x.shape[-2:] != (size, size):
                if x.shape[-1] != x.shape[-2]:
                    warnings.warn(f"image {first_index + i} is {x.shape[-1]}x{x.shape[-2]}, not square: aligned mode expects "
                                  f"FFHQ-aligned square crops; it is stretched to {size}x{size}.", stacklevel=3)
                x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=True)
            batch.append(x)
        return torch.cat(batch).to(self.dtype)

    @torch.inference_mode()
    def encode_prompt(self, images) -> torch.Tensor:
        """The VRE's prompt embeddings (N, 77, prompt_dim) for the given images."""
        return self.vre(self.preprocess(images).to(self.vre.dtype))

    @torch.inference_mode()
    def __call__(self, images, output_type: OutputType = "pil", batch_size: int = 4,
                 generator: torch.Generator | None = None, latent_mode: str | None = None, progress: bool = False):
        """Restore aligned face crops. Returns, for N inputs: a list of N PIL images (``"pil"``), an (N, S, S, 3)
        float32 array in [0, 1] (``"np"``) or an (N, 3, S, S) float tensor in [0, 1] on the CPU (``"pt"``).

        ``latent_mode="sample"`` draws the VAE latent from its posterior like the release (``generator``, or the
        global RNG after ``torch.manual_seed(114)`` as the release seeds it); the default is the config's
        (``"mode"``: deterministic)."""
        if output_type not in ("pil", "np", "pt"):
            raise ValueError(f"output_type must be 'pil', 'np' or 'pt', not {output_type!r}")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        items = image_io.to_model_items(images)
        outputs = []
        starts = range(0, len(items), batch_size)
        if progress:
            from tqdm.auto import tqdm
            starts = tqdm(starts, unit="batch")
        for start in starts:
            x = self._model_input(items[start:start + batch_size], first_index=start)
            y = self.model(x, generator=generator, latent_mode=latent_mode).float() * 0.5 + 0.5
            if output_type == "pil":  # rounded to 8 bits on the device: a quarter of the bytes come back
                outputs.append(image_io.to_uint8_hwc(y).cpu())
            else:
                outputs.append(y.clamp(0, 1).cpu())
        out = torch.cat(outputs)
        if output_type == "pt":
            return out
        if output_type == "np":
            return out.permute(0, 2, 3, 1).numpy()
        return image_io.uint8_batch_to_pil(out)

    def restore_photo(self, image, **kwargs):
        """A whole photo: detect faces, align each to the FFHQ template, restore all crops in one batch, paste them
        back with feathered masks. Returns a ``PhotoResult`` (final image + per-face crops, boxes, landmarks);
        options in :func:`osdface.faces.photo.restore_photo` (detector, upscale, only_center_face, color_fix, …)."""
        from .faces.detection import get_detector
        from .faces.photo import restore_photo

        if kwargs.get("detector") is None:  # build the default detector once, not per photo
            if getattr(self, "_detector", None) is None:
                self._detector = get_detector("auto")
            kwargs["detector"] = self._detector
        return restore_photo(self, image, **kwargs)

    # ------------------------------------------------------------------------------------------------ saving
    def save_pretrained(self, save_directory: str | os.PathLike, *, include_base: bool = False,
                        repo_id: str | None = None, license_name: str | None = None,
                        license_link: str | None = None) -> Path:
        """Write the model folder. ``include_base=True`` also copies the base VAE/UNet so the folder stands alone.

        ``repo_id`` (a folder to publish, as :meth:`push_to_hub` writes it): the base must be named by a Hub id (or
        copied with ``include_base``); the local copy's path (``base_model_local``) is left out."""
        out = Path(save_directory)
        full_base = include_base or self.config.base_model is None
        config = self.config
        if repo_id is not None:
            from .weights import looks_like_path

            if not full_base and looks_like_path(str(config.base_model)):
                raise ValueError(f"the base model is only a local folder ({config.base_model}), which others cannot "
                                 "load: set its Hub id (pipe.config.base_model = 'OWNER/NAME', or convert with "
                                 "--base-id) or publish with include_base=True")
            config = config.replace(base_model_local=None)
        out.mkdir(parents=True, exist_ok=True)
        config.save(out)
        self.vre.save_pretrained(out / "vre")
        self.scheduler.save_pretrained(out / "scheduler")
        if self.has_lora:
            lora_utils.write_lora_folder(out / "unet_lora", lora_utils.lora_state_dict(self.unet),
                                         self.unet.peft_config["default"])
            if full_base:  # the base UNet without the adapter, so that unet/ + unet_lora/ rebuild the model
                base_unet = copy.deepcopy(self.unet)
                base_unet.unload_lora()
                base_unet.save_pretrained(out / "unet")
                del base_unet
        else:  # a fused or fully trained UNet cannot be described as base + LoRA
            self.unet.save_pretrained(out / "unet")
        if full_base:
            self.vae.save_pretrained(out / "vae")
        from .remote_code import write_remote_code

        plain_diffusers = write_remote_code(out, config)  # model_index.json + code: DiffusionPipeline loads it too
        kept = getattr(self, "card_license", None) or {}  # a loaded folder's card, for configs without the fields
        card = make_model_card(config, unet_stored="lora" if self.has_lora else "full",
                               base_stored=full_base, repo_or_folder=repo_id or str(out),
                               plain_diffusers=plain_diffusers,
                               license_name=license_name or config.license_name or kept.get("license_name"),
                               license_link=license_link or config.license_link or kept.get("license_link"))
        card.save(out / "README.md")
        return out

    def push_to_hub(self, repo_id: str, *, private: bool | None = None, token=None, include_base: bool = False,
                    commit_message: str = "Upload OSDFace model", create_pr: bool = False):
        """Create (if needed) the Hub model repo and upload the saved folder in one commit."""
        from huggingface_hub import HfApi

        api = HfApi(token=token)
        with tempfile.TemporaryDirectory() as tmp:
            self.save_pretrained(tmp, include_base=include_base, repo_id=repo_id)  # refuses a local-only base
            api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            return api.upload_folder(repo_id=repo_id, folder_path=tmp, commit_message=commit_message,
                                     repo_type="model", create_pr=create_pr)


def read_card_license(folder: str | os.PathLike) -> dict:
    """``license_name`` / ``license_link`` from a model folder's card (README.md YAML header); {} when absent."""
    path = Path(folder) / "README.md"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return {}
    if not text.startswith("---\n") or text.find("\n---", 4) < 0:
        return {}
    import yaml

    try:
        header = yaml.safe_load(text[4:text.find("\n---", 4)])
    except yaml.YAMLError:
        return {}
    if not isinstance(header, dict):
        return {}
    return {k: str(header[k]) for k in ("license_name", "license_link") if header.get(k)}


__all__ = ["OSDFacePipeline", "MissingWeightsError"]
