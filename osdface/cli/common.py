"""What every command shares: the error line, the device and dtype options, positive-integer arguments."""

from __future__ import annotations

import argparse
import sys

from ..devices import DEVICES, DTYPES


def err(message: str) -> None:
    """One ``error: ...`` line on stderr."""
    print(f"error: {message}", file=sys.stderr, flush=True)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (a bad value is an argument error, answered before anything loads)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_device_options(parser: argparse.ArgumentParser, *, dtype: bool = True, default_device: str = "auto",
                       default_dtype: str = "auto") -> None:
    parser.add_argument("--device", choices=DEVICES, default=default_device,
                        help="where the model runs: auto (a CUDA GPU when one is visible, else the CPU), cpu, cuda, "
                             f"mps (default {default_device})")
    if dtype:
        parser.add_argument("--dtype", choices=("auto", *DTYPES), default=default_dtype,
                            help="number format: auto (fp16 on CUDA; bf16 on CPUs with native bf16 for models "
                                 "measured to match fp32; else fp32), fp32, bf16, fp16 (GPU only) "
                                 f"(default {default_dtype})")


def pick_device_or_report(name: str):
    """The torch device, or None after one error line."""
    from ..devices import pick_device

    try:
        return pick_device(name)
    except ValueError as e:
        err(f"--{e}" if str(e).startswith("device") else str(e))
        return None
