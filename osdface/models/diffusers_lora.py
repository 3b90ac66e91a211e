"""The UNet's LoRA adapter (``unet_lora/``) as a plain ``diffusers`` component, without peft.

A model folder that stores its UNet as a LoRA on a referenced SD base (``osdface convert``'s output, or
``save_pretrained`` of a pipeline with a LoRA) carries a copy of this module as ``unet_lora/osdface_lora.py``; the
remote pipeline (``diffusers_pipeline.py``) loads the base UNet and calls :meth:`UNetLoRA.apply_to`. The adapter is
applied as ``OSDFacePipeline`` runs it (peft, unfused): each targeted layer computes ``base(x) + B(A(x)) · scale``
with ``scale = alpha / r`` (``alpha / √r`` for rsLoRA), A built like the base layer (same kernel, stride, padding for
a conv) and B a 1x1 conv / linear layer, in that order of operations, so the outputs agree to the last bit
(docs/ARCHITECTURE.md §1). Per-module rank and alpha follow the adapter_config.json's ``rank_pattern`` /
``alpha_pattern`` with peft's matching rule (the pattern matches the module path's end at a ``.`` boundary).
This module imports only torch, safetensors and diffusers (it travels without the osdface package).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import torch
from diffusers import ModelMixin
from safetensors.torch import load_file
from torch import nn

WEIGHTS_NAME = "pytorch_lora_weights.safetensors"
CONFIG_NAME = "adapter_config.json"


def _pattern_value(patterns: dict, module: str, default):
    """peft's rule for rank_pattern / alpha_pattern: the first pattern that matches the end of the module path."""
    for pattern, value in patterns.items():
        if re.match(rf"(.*\.)?({pattern})$", module):
            return value
    return default


def _fetch_from_hub(folder: Path) -> None:
    """diffusers downloads a Hub repo's component folders but, of their weights, only files it knows by name
    (``diffusion_pytorch_model.safetensors`` …): ``unet_lora/`` arrives with its code only. Fetch the adapter's two
    files into the same snapshot: the folder is ``<cache>/models--OWNER--NAME/snapshots/<commit>/unet_lora`` (the
    Hub forbids ``--`` in names, so the id reads back unambiguously)."""
    snapshot = folder.parent
    repo = snapshot.parent.parent
    if snapshot.parent.name != "snapshots" or not repo.name.startswith("models--"):
        raise FileNotFoundError(f"{folder / WEIGHTS_NAME} does not exist")
    from huggingface_hub import hf_hub_download

    repo_id = repo.name[len("models--"):].replace("--", "/")
    for name in (WEIGHTS_NAME, CONFIG_NAME):
        hf_hub_download(repo_id, name, subfolder=folder.name, revision=snapshot.name, cache_dir=str(repo.parent))


class LoRALayer(nn.Module):
    """A Linear / Conv2d layer with its LoRA beside it: ``base(x) + lora_B(lora_A(x)) * scaling``."""

    def __init__(self, base: nn.Module, lora_A: nn.Module, lora_B: nn.Module, scaling: float):
        super().__init__()
        self.base_layer, self.lora_A, self.lora_B, self.scaling = base, lora_A, lora_B, float(scaling)

    def forward(self, x, *args, **kwargs):
        result = self.base_layer(x, *args, **kwargs)
        dtype = result.dtype
        result = result + self.lora_B(self.lora_A(x.to(self.lora_A.weight.dtype))) * self.scaling
        return result.to(dtype)

    @torch.no_grad()
    def merged(self) -> nn.Module:
        """The base layer with ``scaling · B·A`` added to its weight (faster; equal up to rounding)."""
        w = self.base_layer.weight
        a, b = self.lora_A.weight, self.lora_B.weight
        delta = (b.flatten(1).float() @ a.flatten(1).float()).view(w.shape) * self.scaling
        w.copy_((w.float() + delta).to(w.dtype))
        return self.base_layer


class UNetLoRA(ModelMixin):
    """The adapter's weights (``unet_lora/``: peft naming ``unet.<module>.lora_A/B.weight`` + adapter_config.json)."""

    def __init__(self, modules: dict[str, tuple[torch.Tensor, torch.Tensor, float]] | None = None):
        super().__init__()
        self.names = sorted(modules or {})
        self.scalings = [float(modules[m][2]) for m in self.names]
        self.lora_A = nn.ParameterList([nn.Parameter(modules[m][0]) for m in self.names])
        self.lora_B = nn.ParameterList([nn.Parameter(modules[m][1]) for m in self.names])

    @classmethod
    def from_pretrained(cls, folder, subfolder: str | None = None, torch_dtype=None, **kwargs) -> "UNetLoRA":
        """Read ``folder`` (``unet_lora/``); diffusers' other loader arguments do not apply and are ignored."""
        folder = Path(folder) / subfolder if subfolder else Path(folder)
        if not (folder / WEIGHTS_NAME).is_file():
            _fetch_from_hub(folder)
        state = load_file(str(folder / WEIGHTS_NAME))
        config = json.loads((folder / CONFIG_NAME).read_text()) if (folder / CONFIG_NAME).is_file() else {}
        if config.get("use_dora"):
            raise ValueError(f"{folder}: DoRA adapters are not supported by this loader")
        weights, alphas = {}, {}
        for key, value in state.items():
            name = key[len("unet."):] if key.startswith("unet.") else key
            if name.endswith(".alpha"):
                alphas[name[: -len(".alpha")]] = float(value)
            elif name.endswith((".lora_A.weight", ".lora_B.weight")):
                weights[name] = value
            else:
                raise ValueError(f"{folder / WEIGHTS_NAME}: {key!r} is not a LoRA weight in peft naming")
        modules = {}
        for key, a in weights.items():
            if not key.endswith(".lora_A.weight"):
                continue
            module = key[: -len(".lora_A.weight")]
            b = weights.get(module + ".lora_B.weight")
            if b is None or b.shape[1] != a.shape[0]:
                raise ValueError(f"{folder / WEIGHTS_NAME}: {module} has no lora_B of rank {a.shape[0]}")
            r = a.shape[0]
            alpha = alphas.get(module, _pattern_value(config.get("alpha_pattern") or {}, module,
                                                      config.get("lora_alpha", r)))
            scaling = alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r
            if torch_dtype is not None:
                a, b = a.to(torch_dtype), b.to(torch_dtype)
            modules[module] = (a, b, scaling)
        if len(modules) * 2 != len(weights):
            raise ValueError(f"{folder / WEIGHTS_NAME}: every lora_B needs its lora_A")
        return cls(modules)

    def apply_to(self, unet: nn.Module) -> nn.Module:
        """Wrap each targeted layer of ``unet`` in a :class:`LoRALayer` (in place); returns ``unet``."""
        # the requires_grad flags as peft leaves them (base frozen, adapter trainable): a CPU matmul of a batched
        # input picks its kernel by them (folding the batch or not), which changes the last bits of the output
        unet.requires_grad_(False)
        layers = dict(unet.named_modules())
        for name, a, b, scaling in zip(self.names, self.lora_A, self.lora_B, self.scalings):
            base = layers.get(name)
            if isinstance(base, nn.Linear) and a.dim() == 2:
                lora_A = nn.Linear(a.shape[1], a.shape[0], bias=False)
                lora_B = nn.Linear(b.shape[1], b.shape[0], bias=False)
            elif isinstance(base, nn.Conv2d) and a.dim() == 4:
                lora_A = nn.Conv2d(a.shape[1], a.shape[0], base.kernel_size, base.stride, base.padding, bias=False)
                lora_B = nn.Conv2d(b.shape[1], b.shape[0], (1, 1), (1, 1), groups=base.groups, bias=False)
            else:
                raise ValueError(f"LoRA module {name}: no Linear / Conv2d layer of that name in the UNet")
            if lora_A.weight.shape != a.shape or lora_B.weight.shape != b.shape or \
                    b.shape[0] != base.weight.shape[0] or a.shape[1] != base.weight.shape[1]:
                raise ValueError(f"LoRA module {name}: A {tuple(a.shape)} / B {tuple(b.shape)} do not fit the "
                                 f"layer's weight {tuple(base.weight.shape)}")
            lora_A.weight, lora_B.weight = a, b  # shared with this component: moved and cast together
            parent_name, _, child = name.rpartition(".")
            parent = unet.get_submodule(parent_name) if parent_name else unet
            setattr(parent, child, LoRALayer(base, lora_A, lora_B, scaling).to(base.weight.device))
        return unet

    @staticmethod
    def fuse(unet: nn.Module) -> nn.Module:
        """Replace every :class:`LoRALayer` of ``unet`` by its base layer with the adapter merged into the weight."""
        for name, module in list(unet.named_modules()):
            if isinstance(module, LoRALayer):
                parent_name, _, child = name.rpartition(".")
                parent = unet.get_submodule(parent_name) if parent_name else unet
                setattr(parent, child, module.merged())
        return unet
