"""LoRA on the UNet: names, configs, loading and fusing (OSDFace trains the UNet only through LoRA, rank 16, alpha 16).

Files in the wild name LoRA weights in several ways; :func:`normalize_lora_state_dict` maps them all to PEFT's
``<module path>.lora_A.weight`` / ``.lora_B.weight`` (no ``unet.`` prefix):

- diffusers/PEFT:         ``unet.<path>.lora_A.weight`` / ``unet.<path>.lora_B.weight``
- older diffusers:        ``unet.<path>.lora.down.weight`` / ``unet.<path>.lora.up.weight``
- attention processors:   ``unet.<block>.processor.to_q_lora.down.weight`` (→ ``<block>.to_q``; ``to_out_lora`` →
                          ``to_out.0``)

Conv LoRA: A is (r, in, kh, kw) and B is (out, r, 1, 1); linear LoRA: A is (r, in), B is (out, r). Fusing adds
``(alpha / r) · B·A`` to the base weight (docs/ARCHITECTURE.md §1) and removes the adapter layers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

import torch
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
from safetensors.torch import load_file, save_file

LORA_WEIGHT_NAME = "pytorch_lora_weights.safetensors"

# Default targets when a LoRA is created for training: attention projections, feed-forward and the ResNet convs,
# a common choice for one-step SD restorers (OSEDiff and kin). The authors' exact set is unpublished; a converted
# file brings its own list.
DEFAULT_TARGET_MODULES = (
    "to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2",
    "conv1", "conv2", "conv_shortcut", "conv", "conv_in", "conv_out",
)

_RENAMES = (
    (re.compile(r"\.lora\.down\.weight$"), ".lora_A.weight"),
    (re.compile(r"\.lora\.up\.weight$"), ".lora_B.weight"),
    (re.compile(r"\.lora_down\.weight$"), ".lora_A.weight"),
    (re.compile(r"\.lora_up\.weight$"), ".lora_B.weight"),
    (re.compile(r"\.lora_A\.default\.weight$"), ".lora_A.weight"),
    (re.compile(r"\.lora_B\.default\.weight$"), ".lora_B.weight"),
)
_PROCESSOR = re.compile(r"\.processor\.(to_q|to_k|to_v|to_out)_lora\.(down|up)\.weight$")


class LoraFormatError(ValueError):
    pass


def normalize_lora_state_dict(
    state_dict: Mapping[str, torch.Tensor], prefix: str = "unet."
) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Any supported naming → (PEFT-named weights without prefix, per-module alphas found in the file)."""
    weights: dict[str, torch.Tensor] = {}
    alphas: dict[str, float] = {}
    unknown = []
    for key, value in state_dict.items():
        k = key[len(prefix):] if prefix and key.startswith(prefix) else key
        if k.endswith(".alpha"):
            alphas[k[: -len(".alpha")]] = float(value)
            continue
        m = _PROCESSOR.search(k)
        if m:
            target = "to_out.0" if m.group(1) == "to_out" else m.group(1)
            k = k[: m.start()] + f".{target}.lora_{'A' if m.group(2) == 'down' else 'B'}.weight"
        for pattern, repl in _RENAMES:
            k = pattern.sub(repl, k)
        if not (k.endswith(".lora_A.weight") or k.endswith(".lora_B.weight")):
            unknown.append(key)
            continue
        weights[k] = value
    if unknown:
        raise LoraFormatError(f"{len(unknown)} key(s) are not LoRA weights in a known naming, e.g. {unknown[:3]}")
    # alphas may have been stored under the old module names ("…lora.down" prefix → module path)
    alphas = {re.sub(r"\.(lora\.down|lora\.up|lora_down|lora_up|lora_A|lora_B|lora)$", "", k): v
              for k, v in alphas.items()}
    return weights, alphas


def lora_modules(weights: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """PEFT-named weights → {module path: rank}; checks that every A has its B and that the ranks agree."""
    ranks: dict[str, int] = {}
    problems = []
    for key, a in weights.items():
        if not key.endswith(".lora_A.weight"):
            continue
        module = key[: -len(".lora_A.weight")]
        b = weights.get(module + ".lora_B.weight")
        if b is None:
            problems.append(f"{module}: lora_A without lora_B")
            continue
        if a.shape[0] != b.shape[1]:
            problems.append(f"{module}: rank of A {tuple(a.shape)} does not match B {tuple(b.shape)}")
        ranks[module] = a.shape[0]
    for key in weights:
        if key.endswith(".lora_B.weight") and key[: -len(".lora_B.weight")] not in ranks:
            problems.append(f"{key[: -len('.lora_B.weight')]}: lora_B without lora_A")
    if problems:
        raise LoraFormatError("inconsistent LoRA weights: " + "; ".join(problems[:10]))
    return ranks


def lora_config_for(weights: Mapping[str, torch.Tensor], alpha: float | None = None,
                    alphas: Mapping[str, float] | None = None) -> LoraConfig:
    """A PEFT config that targets exactly the modules present in ``weights`` (rank per module from the shapes).

    Alpha per module: the file's own ``.alpha`` entry if it has one, else ``alpha``, else the module's rank (scale 1,
    which is what diffusers' ``load_lora_weights`` and the release's merge code use for a file without alphas).
    """
    ranks = lora_modules(weights)
    if not ranks:
        raise LoraFormatError("the LoRA file holds no lora_A/lora_B pairs")
    alphas = alphas or {}
    module_alpha = {m: float(alphas.get(m, alpha if alpha is not None else r)) for m, r in ranks.items()}

    def most_common(values):
        values = list(values)
        return max(sorted(set(values)), key=values.count)

    r, a = most_common(ranks.values()), most_common(module_alpha.values())
    return LoraConfig(
        r=r, lora_alpha=a, target_modules=sorted(ranks), init_lora_weights=False,
        rank_pattern={f"^{re.escape(m)}$": v for m, v in ranks.items() if v != r},
        alpha_pattern={f"^{re.escape(m)}$": v for m, v in module_alpha.items() if v != a},
    )


def check_against_unet(unet: torch.nn.Module, weights: Mapping[str, torch.Tensor]) -> list[str]:
    """Every mismatch between the LoRA weights and the UNet's layers (missing module, wrong in/out shape)."""
    modules = dict(unet.named_modules())
    problems = []
    for module, r in lora_modules(weights).items():
        layer = modules.get(module)
        if layer is None or not hasattr(layer, "weight"):
            problems.append(f"{module}: no such layer in the UNet")
            continue
        layer = getattr(layer, "base_layer", layer)
        w = layer.weight
        a, b = weights[module + ".lora_A.weight"], weights[module + ".lora_B.weight"]
        if w.ndim == 4:
            want_a, want_b = (r, w.shape[1], *w.shape[2:]), (w.shape[0], r, 1, 1)
        else:
            want_a, want_b = (r, w.shape[1]), (w.shape[0], r)
        if tuple(a.shape) != want_a or tuple(b.shape) != want_b:
            problems.append(f"{module}: A {tuple(a.shape)} / B {tuple(b.shape)}, expected {want_a} / {want_b}")
    return problems


def add_lora(unet, config: LoraConfig, weights: Mapping[str, torch.Tensor] | None = None,
             adapter_name: str = "default") -> None:
    """Inject the adapter into a diffusers UNet and (optionally) load its weights, strictly."""
    unet.add_adapter(config, adapter_name=adapter_name)
    if weights is not None:
        problems = check_against_unet(unet, weights)
        if problems:
            raise LoraFormatError("LoRA does not fit the UNet: " + "; ".join(problems[:10]))
        result = set_peft_model_state_dict(unet, dict(weights), adapter_name=adapter_name)
        unexpected = [k for k in getattr(result, "unexpected_keys", []) if "lora_" in k]
        if unexpected:
            raise LoraFormatError(f"unexpected LoRA keys: {unexpected[:5]}")


def lora_state_dict(unet, adapter_name: str = "default") -> dict[str, torch.Tensor]:
    """The adapter's weights in PEFT naming, without prefix (what ``unet_lora/`` stores, prefixed by ``unet.``)."""
    return get_peft_model_state_dict(unet, adapter_name=adapter_name)


def has_lora(unet) -> bool:
    return bool(getattr(unet, "_hf_peft_config_loaded", False)) and bool(getattr(unet, "peft_config", None))


def randomize_lora_(unet, scale: float = 0.02, seed: int = 0) -> None:
    """Fill every LoRA weight with N(0, scale²) noise. PEFT starts lora_B at zero (the adapter is then a no-op);
    tests and benchmarks need an adapter that really changes the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=g).to(p.dtype) * scale)


def fuse_lora(unet) -> None:
    """Merge W ← W + (alpha/r)·B·A into the base layers and remove the adapter layers (faster inference)."""
    if not has_lora(unet):
        return
    unet.fuse_lora(lora_scale=1.0)
    unet.unload_lora()


def write_lora_folder(folder: str | Path, weights: Mapping[str, torch.Tensor], config: LoraConfig) -> None:
    """``unet_lora/``: the weights as ``unet.<path>.lora_A/B.weight`` (diffusers naming) + PEFT's adapter_config.json."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({f"unet.{k}": v.detach().contiguous().cpu() for k, v in weights.items()}, folder / LORA_WEIGHT_NAME)
    config.save_pretrained(str(folder))


def read_lora_folder(folder: str | Path, default_alpha: float | None = None
                     ) -> tuple[dict[str, torch.Tensor], LoraConfig]:
    """The inverse of :func:`write_lora_folder`; without adapter_config.json the config is inferred from the file."""
    folder = Path(folder)
    weights, alphas = normalize_lora_state_dict(load_file(folder / LORA_WEIGHT_NAME))
    if (folder / "adapter_config.json").is_file():
        config = LoraConfig.from_pretrained(str(folder))
        config.init_lora_weights = False
    else:
        config = lora_config_for(weights, default_alpha, alphas)
    return weights, config
