"""Devices and dtypes: the one place that turns a user's ``--device`` / ``--dtype`` into torch objects.

Names are plain strings so that the command line can offer them without importing torch:
``DEVICES`` = auto, cpu, cuda, mps; ``DTYPES`` = fp32, bf16, fp16 (plus ``auto`` where a caller allows it).

- :func:`pick_device`: ``auto`` is CUDA when PyTorch sees a GPU (or a ZeroGPU Space will attach one), else the
  CPU; an explicit device that is not there is one ``ValueError`` line.
- :func:`resolve_dtype`: ``auto`` is fp16 on CUDA, bf16 on a CPU with native bf16 arithmetic (AMX or AVX-512
  BF16) when the model allows it, fp32 otherwise; fp16 on a CPU is refused (PyTorch's CPU kernels are slow
  and partly missing for it).
- :func:`torch_dtype`: the name → ``torch.dtype`` table (also accepts ``float32``-style names and dtypes).
"""

from __future__ import annotations

import os

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("fp32", "bf16", "fp16")
_ALIASES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16", "half": "fp16", "float": "fp32"}

__all__ = ["DEVICES", "DTYPES", "pick_device", "resolve_dtype", "torch_dtype", "dtype_name", "cpu_has_native_bf16"]


def pick_device(name=None):
    """``name`` (``auto``/None, ``cpu``, ``cuda``, ``cuda:1``, ``mps`` or a ``torch.device``) → a ``torch.device``
    that exists here; otherwise ``ValueError`` with one line saying what to use instead."""
    import torch

    if name is None or str(name) == "auto":
        if torch.cuda.is_available() or os.environ.get("SPACES_ZERO_GPU"):
            return torch.device("cuda")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; use one of {', '.join(DEVICES)}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda: no CUDA GPU is visible to PyTorch here; use cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device mps: Apple-silicon MPS is not available here; use cpu")
    return device


def torch_dtype(dtype):
    """``"fp32"`` / ``"bf16"`` / ``"fp16"`` (or ``float32``-style names, or a ``torch.dtype``; None stays None)."""
    import torch

    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    name = _ALIASES.get(str(dtype), str(dtype))
    table = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if name not in table:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}")
    return table[name]


def dtype_name(dtype) -> str:
    """The short name (fp32, bf16, fp16) of a dtype or dtype name."""
    import torch

    return {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[torch_dtype(dtype)]


def cpu_has_native_bf16() -> bool:
    """Whether this CPU does bf16 matrix arithmetic in hardware (AMX tiles or AVX-512 BF16), where oneDNN runs bf16
    convolutions about twice as fast as fp32; elsewhere bf16 is emulated and slower than fp32."""
    import torch

    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # private but stable since torch 2.3
    return any(bool(getattr(torch.cpu, c, lambda: False)()) for c in checks)


def resolve_dtype(dtype, device, *, cpu_bf16: bool = True) -> str:
    """The dtype name to run with on ``device``. ``auto``/None: fp16 on CUDA; bf16 on a CPU with native bf16 when
    ``cpu_bf16`` (a model whose bf16 output was measured to match fp32, see ``OSDFaceConfig.cpu_bf16``); fp32
    otherwise. An explicit fp16 on a CPU raises ``ValueError`` with one line."""
    import torch

    device = torch.device(device)
    if dtype is None or str(dtype) == "auto":
        if device.type == "cuda":
            return "fp16"
        if device.type == "cpu" and cpu_bf16 and cpu_has_native_bf16():
            return "bf16"
        return "fp32"
    name = dtype_name(dtype)
    if name == "fp16" and device.type == "cpu":
        raise ValueError("fp16 needs a GPU; on a CPU use bf16 (or fp32)")
    return name
