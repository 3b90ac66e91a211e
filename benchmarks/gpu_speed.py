"""The GPU speed run, prepared as one script: fp16 / bf16, fused LoRA, channels-last, torch.compile,
batch 1 / 4 / 8, seconds per 512² face, against the target of 15 ms per face at batch 8 on an H100.

    python benchmarks/gpu_speed.py                          # on a GPU (≈ 5 min on an H100/H200, one compile)
    python benchmarks/gpu_speed.py --dtypes fp16 --batches 1 8 --compile-layouts nchw channels_last   # ≈ 6 min
    python benchmarks/gpu_speed.py --no-compile             # eager only (≈ 2 min)
    python benchmarks/gpu_speed.py --device cpu --quick     # smoke run of every code path: tiny model, seconds

What it does, in order, one JSON line per result (``--json-out`` also appends them to a file):

1. parity on the device: fused vs unfused LoRA (fp32), bf16 vs fp32 (PSNR), on the tiny preset (and on the
   sd21 shapes in fp16 for the fused check unless ``--quick``);
2. timing of ``pipe.model(x)`` (VRE + VAE encode + UNet + VAE decode; the device is synchronised around each call)
   for every dtype x layout (default NCHW / channels-last) x batch, LoRA fused; median of ``--repeats`` after one
   warm-up call, with cuDNN autotuning (plus one baseline row without it); then the same with ``pipe.compile()``
   (UNet, VAE encoder/decoder, VRE encoder) for ``--compile-dtypes`` x ``--compile-layouts`` x
   ``--compile-batches`` (each new setting compiles once; the compile time is reported);
3. end to end: ``pipe(8 PIL images)`` -> PIL (8-bit I/O) and ``pipe(float tensors, output_type="pt")``, host
   conversion and copies included, next to the model-only time;
4. a markdown table. Random weights of the preset's shapes: speed does not depend on the weights' values.
   Results of 2026-11-27 (H100, H200): ``benchmarks/results/*.jsonl`` and the README's speed section.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from osdface import OSDFacePipeline  # noqa: E402
from osdface.models.lora import randomize_lora_  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
TARGET_SECONDS_PER_FACE = 0.015  # batch 8, 512², one H100 (the paper: ≈ 0.1 s on an A6000)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--preset", default="sd21", choices=["tiny", "nano", "sd21"])
    p.add_argument("--dtypes", nargs="+", default=["fp16", "bf16"], choices=list(DTYPES))
    p.add_argument("--batches", nargs="+", type=int, default=[1, 4, 8])
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--compile-batches", nargs="+", type=int, default=[8])
    p.add_argument("--compile-mode", default=None, help="torch.compile mode (default: torch's default)")
    p.add_argument("--compile-dtypes", nargs="+", default=None, choices=list(DTYPES),
                   help="dtypes timed compiled (default: the first of --dtypes; each dtype recompiles)")
    p.add_argument("--compile-layouts", nargs="+", default=None, choices=["nchw", "channels_last"],
                   help="layouts timed compiled (default: the faster in eager mode at the largest batch)")
    p.add_argument("--cudnn-benchmark", action=argparse.BooleanOptionalAction, default=True,
                   help="cuDNN autotuning for the fixed 512² shapes (one eager row is also timed without it)")
    p.add_argument("--end-to-end", action=argparse.BooleanOptionalAction, default=True,
                   help="also time pipe(images) on PIL images: host conversion and copies included")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: tiny preset at 64², batches 1 2, 1 repeat, compile off, fp16 dropped on a CPU")
    p.add_argument("--json-out", type=Path, default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.preset, args.batches, args.repeats, args.compile = "tiny", [1, 2], 1, False
        args.compile_batches = [2]
    if args.device.startswith("cpu"):
        args.dtypes = [d for d in args.dtypes if d != "fp16"] or ["fp32"]
    args.compile_dtypes = [d for d in (args.compile_dtypes or args.dtypes[:1]) if d in args.dtypes] or args.dtypes[:1]
    if min(args.batches + [args.repeats]) < 1:
        p.error("--batches and --repeats must be >= 1")
    return args


class Reporter:
    def __init__(self, json_out: Path | None):
        self.records, self.json_out = [], json_out

    def __call__(self, **record):
        record = {k: (float(f"{v:.6g}") if isinstance(v, float) and math.isfinite(v) else v)
                  for k, v in record.items()}
        self.records.append(record)
        line = json.dumps(record)
        print(line, flush=True)
        if self.json_out is not None:
            with self.json_out.open("a") as f:
                f.write(line + "\n")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Between two outputs in [-1, 1] (peak-to-peak 2)."""
    mse = (a.double() - b.double()).pow(2).mean().item()
    return math.inf if mse == 0 else 10 * math.log10(4.0 / mse)


def seconds_per_call(fn, device: torch.device, repeats: int) -> tuple[float, float]:
    """(first call's seconds, median seconds of ``repeats`` later calls)."""
    sync(device)
    t = time.perf_counter()
    fn()
    sync(device)
    first = time.perf_counter() - t
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return first, statistics.median(times)


def parity_checks(report, device: torch.device, args) -> None:
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)).to(device) * 2 - 1
    tiny = OSDFacePipeline.from_preset("tiny", seed=0).to(device=device)
    randomize_lora_(tiny.unet)
    unfused = tiny.model(x)
    tiny.fuse_lora()
    fused = tiny.model(x)
    report(check="fused vs unfused", preset="tiny", dtype="fp32", max_abs=(fused - unfused).abs().max().item(),
           psnr_db=psnr(fused, unfused))
    low = "bf16" if device.type == "cpu" else args.dtypes[0]
    tiny.to(dtype=DTYPES[low])
    y = tiny.model(x).float()
    report(check=f"{low} vs fp32", preset="tiny", max_abs=(y - fused).abs().max().item(),
           mean_abs=(y - fused).abs().mean().item(), psnr_db=psnr(y, fused))
    if low != "bf16":  # the name the smoke test reads on a CPU; on a GPU both low dtypes are checked
        tiny.to(dtype=torch.float32).to(dtype=torch.bfloat16)
        y = tiny.model(x).float()
        report(check="bf16 vs fp32", preset="tiny", max_abs=(y - fused).abs().max().item(),
               mean_abs=(y - fused).abs().mean().item(), psnr_db=psnr(y, fused))


def build(args, device: torch.device) -> OSDFacePipeline:
    pipe = OSDFacePipeline.from_preset(args.preset, seed=0, lora=True).to(device=device, dtype=DTYPES[args.dtypes[0]])
    randomize_lora_(pipe.unet, scale=0.005 if args.preset == "sd21" else 0.02)
    return pipe


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run on a GPU machine, or pass --device cpu --quick for the smoke path")
    report = Reporter(args.json_out)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    report(check="device", name=name, torch=torch.__version__, preset=args.preset)
    rows = []
    with torch.inference_mode():
        parity_checks(report, device, args)
        pipe = build(args, device)
        size = pipe.config.process_size
        gen = torch.Generator().manual_seed(1)
        inputs = {b: (torch.rand(b, 3, size, size, generator=gen) * 2 - 1).to(device) for b in args.batches}
        if not args.quick and args.preset == "sd21":  # fusing at full size, in the first low-precision dtype
            unfused = pipe.model(inputs[args.batches[0]])
            pipe.fuse_lora()
            fused = pipe.model(inputs[args.batches[0]])
            report(check="fused vs unfused", preset=args.preset, dtype=args.dtypes[0],
                   max_abs=(fused - unfused).abs().max().item(), psnr_db=psnr(fused, unfused))
            del unfused, fused
        else:
            pipe.fuse_lora()

        def time_case(dtype: str, layout: str, compiled: bool, batch: int, first_extra: str, note: str = ""):
            x = inputs[batch].to(DTYPES[dtype])
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            first, med = seconds_per_call(lambda: pipe.model(x), device, args.repeats)
            peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
            rec = dict(check="speed", preset=args.preset, device=device.type, dtype=dtype, layout=layout,
                       compiled=compiled, batch=batch, size=size, seconds_per_face=med / batch,
                       first_call_seconds=first, peak_memory_mb=peak, repeats=args.repeats,
                       cudnn_benchmark=torch.backends.cudnn.benchmark, note=note)
            if compiled:
                rec[first_extra] = first - med
            report(**rec)
            rows.append(rec)

        if device.type == "cuda" and args.cudnn_benchmark:  # the baseline: no autotuning, NCHW
            torch.backends.cudnn.benchmark = False
            time_case(args.dtypes[0], "nchw", False, max(args.batches), "", note="baseline: no cuDNN autotune")
            torch.backends.cudnn.benchmark = True
        for dtype in args.dtypes:
            pipe.to(dtype=DTYPES[dtype])
            for layout in ("nchw", "channels_last"):
                pipe.enable_channels_last(layout == "channels_last")
                for batch in args.batches:
                    time_case(dtype, layout, False, batch, "")
        def end_to_end(dtype: str, layout: str, compiled: bool) -> None:
            """pipe(8 PIL images) -> PIL (8-bit I/O: uint8 host<->device copies) and pipe(float tensors) -> "pt"
            (float32 copies), in the pipe's current setting, against its model-only time."""
            from PIL import Image
            batch = max(args.batches)
            model_only = next(r["seconds_per_face"] for r in reversed(rows) if r["batch"] == batch
                              and r["dtype"] == dtype and r["layout"] == layout and r["compiled"] == compiled)
            floats = [(inputs[batch][i].float().cpu() * 0.5 + 0.5).clamp(0, 1) for i in range(batch)]
            images = [Image.fromarray((f.permute(1, 2, 0) * 255).round().byte().numpy()) for f in floats]
            for io, call in (("PIL -> PIL", lambda: pipe(images, batch_size=batch)),
                             ("float tensors -> pt", lambda: pipe(floats, output_type="pt", batch_size=batch))):
                first, med = seconds_per_call(call, device, max(1, args.repeats // 2))
                report(check="end to end", io=io, preset=args.preset, dtype=dtype, layout=layout, compiled=compiled,
                       batch=batch, seconds_per_face=med / batch, first_call_seconds=first,
                       model_only_seconds_per_face=model_only)

        if args.compile:
            # each layout compiles anew (default: the one that won in eager mode at the largest batch)
            eager = [r for r in rows if r["batch"] == max(args.batches)]
            layouts = args.compile_layouts or [min(eager, key=lambda r: r["seconds_per_face"])["layout"]]
            pipe.compile(**({"mode": args.compile_mode} if args.compile_mode else {}))
            for layout in layouts:
                pipe.enable_channels_last(layout == "channels_last")
                for dtype in args.compile_dtypes:
                    pipe.to(dtype=DTYPES[dtype])
                    for batch in args.compile_batches:
                        if batch not in inputs:
                            inputs[batch] = (torch.rand(batch, 3, size, size, generator=gen) * 2 - 1).to(device)
                        time_case(dtype, layout, True, batch, "compile_seconds")
                if args.end_to_end and max(args.batches) in args.compile_batches:
                    end_to_end(args.compile_dtypes[-1], layout, True)
        elif args.end_to_end:
            best = min((r for r in rows if r["batch"] == max(args.batches)), key=lambda r: r["seconds_per_face"])
            pipe.to(dtype=DTYPES[best["dtype"]])
            pipe.enable_channels_last(best["layout"] == "channels_last")
            end_to_end(best["dtype"], best["layout"], False)

    print()
    print(f"| device | preset | dtype | layout | compiled | batch | s/face | ≤ {TARGET_SECONDS_PER_FACE * 1e3:.0f} ms |")
    print("| --- | --- | --- | --- | --- | ---: | ---: | --- |")
    for r in rows:
        ok = "yes" if r["seconds_per_face"] <= TARGET_SECONDS_PER_FACE else "no"
        print(f"| {name} | {r['preset']} | {r['dtype']} | {r['layout']} | {r['compiled']} | {r['batch']} | "
              f"{r['seconds_per_face'] * 1e3:.2f} ms | {ok} |")
    return report.records


if __name__ == "__main__":
    main()
