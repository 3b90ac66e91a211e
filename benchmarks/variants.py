"""Which speed options pay off on this machine? The one step's parts, timed per variant, interleaved.

    python benchmarks/variants.py --presets nano --dtypes fp32 bf16 --repeats 5
    python benchmarks/variants.py --presets sd21 --dtypes bf16 --repeats 3
    python benchmarks/variants.py --presets nano --dtypes bf16 --compile      # adds a torch.compile variant

Variants (same random weights, 512² face, batch 1 unless ``--batch``):

- ``naive``: LoRA as adapter layers, default (NCHW) layout: what a straight port runs;
- ``fused``: LoRA merged into the UNet weights (``pipe.fuse_lora()``);
- ``fused+cl``: fused, and every conv weight channels-last (``pipe.enable_channels_last()``);
- ``fused+cl+compile`` (``--compile``): the same, ``torch.compile``-d (``pipe.compile()``; compile time reported).

The variants run round-robin inside each repeat (naive, fused, fused+cl, naive, ...) so that a burst of load from
other processes on a shared machine hits all of them alike; the table reports medians and the speed-up over
``naive``. A variant's time is the sum of its four parts (VRE, VAE encode, UNet incl. the x0 formula, VAE decode),
each timed on its own. Output: one JSON line per (preset, dtype, variant), then a markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.speed import DTYPES, device_name, one_step_parts, rounded, synchronize  # noqa: E402
from osdface import OSDFacePipeline  # noqa: E402

PARTS = ("vre", "vae_encode", "unet", "vae_decode")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--presets", nargs="+", default=["nano"], choices=["tiny", "nano", "sd21"])
    p.add_argument("--dtypes", nargs="+", default=["bf16"], choices=list(DTYPES))
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--size", type=int, default=None, help="default: the preset's process_size")
    p.add_argument("--repeats", type=int, default=3, help="timed rounds after one warm-up round")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--compile", action="store_true", help="add a torch.compile variant")
    p.add_argument("--json-out", type=Path, default=None)
    args = p.parse_args(argv)
    if args.batch < 1 or args.repeats < 1:
        p.error("--batch and --repeats must be >= 1")
    return args


def build(preset: str, dtype: torch.dtype, device: torch.device, fuse: bool) -> OSDFacePipeline:
    pipe = OSDFacePipeline.from_preset(preset, seed=0, lora=True).to(device=device, dtype=dtype)
    return pipe.fuse_lora() if fuse else pipe


def variants_for(preset: str, dtype: torch.dtype, device: torch.device, compile_: bool):
    """[(name, pipe, channels_last)]; ``fused`` and ``fused+cl`` share one pipe whose layout is switched."""
    naive, fused = build(preset, dtype, device, False), build(preset, dtype, device, True)
    out = [("naive", naive, False), ("fused", fused, False), ("fused+cl", fused, True)]
    if compile_:
        out.append(("fused+cl+compile", build(preset, dtype, device, True).enable_channels_last().compile(), True))
    return out


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    records = []
    with torch.inference_mode():
        for preset in args.presets:
            for dname in args.dtypes:
                dtype = DTYPES[dname]
                variants = variants_for(preset, dtype, device, args.compile)
                size = args.size or variants[0][1].config.process_size
                x = (torch.rand(args.batch, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1)
                x = x.to(device=device, dtype=dtype)
                times = {name: [] for name, _, _ in variants}
                warmup = {}
                for round_ in range(args.repeats + 1):  # round 0 is the warm-up (and compiles)
                    for name, pipe, cl in variants:
                        if pipe.channels_last != cl:
                            pipe.enable_channels_last(cl)
                        synchronize(device)
                        start = time.perf_counter()
                        parts, _, _ = one_step_parts(pipe.model, x, device)
                        if round_ == 0:
                            warmup[name] = time.perf_counter() - start
                        else:
                            times[name].append(parts)
                base = None
                for name, _, cl in variants:
                    med = {k: statistics.median(t[k] for t in times[name]) / args.batch for k in PARTS}
                    total = sum(med.values())
                    base = base or total
                    rec = {"preset": preset, "dtype": dname, "variant": name, "batch": args.batch, "size": size,
                           "device": device.type, "device_name": device_name(device),
                           "seconds_per_face": total, "speedup_vs_naive": base / total,
                           "parts_seconds_per_face": med, "warmup_seconds": warmup[name] / args.batch,
                           "repeats": args.repeats, "threads": torch.get_num_threads(), "torch": torch.__version__}
                    line = json.dumps(rounded(rec))
                    print(line, flush=True)
                    if args.json_out:
                        with args.json_out.open("a") as f:
                            f.write(line + "\n")
                    records.append(rec)
                del variants
    print()
    print("| preset | dtype | variant | s/face | VRE | VAE enc | UNet | VAE dec | vs naive |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in records:
        p = r["parts_seconds_per_face"]
        print(f"| {r['preset']} | {r['dtype']} | {r['variant']} | {r['seconds_per_face']:.3g} | "
              + " | ".join(f"{p[k]:.3g}" for k in PARTS) + f" | {r['speedup_vs_naive']:.2f}x |")
    return records


if __name__ == "__main__":
    main()
