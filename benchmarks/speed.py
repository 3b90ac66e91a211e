"""How much faster is ONE UNet step than a 50-step DDIM sampler with the same UNet?

OSDFace restores a face with one UNet evaluation (VRE + VAE encode + 1 UNet + VAE decode). The baseline it
replaces is a multi-step diffusion sampler: VRE + ``--steps`` UNet evaluations from noise + VAE decode. This
script times both on random-weight models of a preset's shapes (speed does not depend on the weights' values)
and prints one JSON line per case (preset, dtype, batch), then a markdown table.

    python benchmarks/speed.py                                   # nano and sd21, fp32 and bf16, batch 1 and 4
    python benchmarks/speed.py --presets nano --size 128 --steps 10          # a quick look (seconds on a CPU)
    python benchmarks/speed.py --presets sd21 --dtypes bf16 --batches 1 --json-out speed.jsonl

How the numbers are made:

- Every case runs once untimed (warm-up: memory allocation, kernel selection, torch.compile), then
  ``--repeats`` timed runs; the reported time is the median of the repeats, divided by the batch size.
- Timers are ``time.perf_counter``; on CUDA/MPS the device is synchronised before each timer is read, because
  GPU work runs asynchronously and the Python call returns before the GPU is done.
- Everything runs under ``torch.inference_mode()`` (no autograd bookkeeping) with the LoRA fused into the UNet
  (``--no-fuse`` keeps the adapter layers, which costs extra small matmuls per layer) and the library's default
  layout for the device and dtype (channels-last for bf16 on a CPU; ``--channels-last on|off`` overrides).
- A full multi-step run can take many minutes on a CPU (sd21 at 512: ~10 s per UNet step, times 50, times the
  repeats; nano at 512 also runs its UNet on a 128x128 latent). So on a CPU, when ``steps x (one UNet step)``
  would exceed ``CPU_FULL_MULTISTEP_SECONDS``, only 3 UNet steps (``--multistep-timed-steps``) are timed by
  default and the multi-step time is reported as ``VRE + steps x (seconds per UNet step) + VAE decode``; the JSON
  line then says ``"extrapolated_from_steps": 3``. The cost of one UNet step does not depend on the timestep, so
  this is a fair estimate, but it is an estimate: with ``extrapolated_from_steps: null`` the full sampler ran.
- ``peak_memory_mb``: on CUDA the peak of ``torch.cuda.max_memory_allocated`` during the case (weights included);
  on a CPU the peak resident set size of the whole process since it started (``resource.getrusage``), so it
  never goes down from one case to the next. ``memory_kind`` says which one you are reading.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

try:
    from osdface import OSDFacePipeline
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from osdface import OSDFacePipeline
from osdface.models.tiled_vae import vae_factor
from osdface.pipeline import default_channels_last

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
CPU_FULL_MULTISTEP_SECONDS = 60.0  # on a CPU, a longer multi-step run is extrapolated from a few steps
CPU_TIMED_STEPS = 3  # ... from this many


# ------------------------------------------------------------------------------------------------ command line
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="+", default=["nano", "sd21"], choices=["nano", "sd21"])
    p.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=list(DTYPES))
    p.add_argument("--batches", nargs="+", type=int, default=[1, 4], help="faces per forward pass")
    p.add_argument("--device", default=None, choices=["cpu", "cuda", "mps"],
                   help="default: cuda if available, else cpu")
    p.add_argument("--size", type=int, default=None,
                   help="face crop side in pixels (default: the preset's process_size, 512)")
    p.add_argument("--steps", type=int, default=50, help="steps of the multi-step DDIM baseline")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed runs after one warm-up (default: 3; 1 for sd21 on a CPU)")
    p.add_argument("--multistep-timed-steps", type=int, default=None, metavar="K",
                   help="time only K UNet steps of the baseline and extrapolate to --steps (default: all "
                        f"steps; on a CPU {CPU_TIMED_STEPS} when a full run would take over "
                        f"{CPU_FULL_MULTISTEP_SECONDS:.0f} s, e.g. sd21 at 512)")
    p.add_argument("--fuse", action=argparse.BooleanOptionalAction, default=True,
                   help="merge the LoRA into the UNet weights before timing (default: on)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch.set_num_threads (default: 2 on a CPU, torch's choice elsewhere)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the UNet, VAE and VRE encoder (OSDFacePipeline.compile); the extra warm-up "
                        "time is reported as compile_seconds")
    p.add_argument("--channels-last", choices=["auto", "on", "off"], default="auto",
                   help="conv weights channels-last (NHWC); auto: the library's default for the device and dtype "
                        "(on for bf16 on a CPU, where it measured faster)")
    p.add_argument("--vae-tiling", type=int, nargs=2, default=None, metavar=("TILE", "OVERLAP"),
                   help="tiled VAE encode/decode (pixels) for inputs larger than TILE")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json-out", type=Path, default=None, help="also append the JSON lines to this file")
    args = p.parse_args(argv)
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if min(args.batches) < 1 or args.steps < 1:
        p.error("--batches and --steps must be >= 1")
    if args.repeats is not None and args.repeats < 1:
        p.error("--repeats must be >= 1")
    if args.multistep_timed_steps is not None and args.multistep_timed_steps < 1:
        p.error("--multistep-timed-steps must be >= 1")
    return args


def repeats_for(preset: str, args) -> int:
    if args.repeats is not None:
        return args.repeats
    return 1 if (preset == "sd21" and args.device == "cpu") else 3


def timed_steps_for(args, unet_seconds: float) -> int:
    """How many of the baseline's UNet steps to run; fewer than --steps means the time is extrapolated.

    ``unet_seconds`` is the measured time of the one step's UNet call, which costs the same as one DDIM step.
    """
    if args.multistep_timed_steps is not None:
        return min(args.multistep_timed_steps, args.steps)
    if args.device == "cpu" and args.steps * unet_seconds > CPU_FULL_MULTISTEP_SECONDS:
        return min(CPU_TIMED_STEPS, args.steps)
    return args.steps


# ------------------------------------------------------------------------------------------------ timing helpers
def synchronize(device: torch.device) -> None:
    """Wait until the device has finished the queued work (GPU kernels run asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def timed(fn, device: torch.device):
    """Run fn() and return (its result, wall-clock seconds), with the device synchronised on both sides."""
    synchronize(device)
    start = time.perf_counter()
    out = fn()
    synchronize(device)
    return out, time.perf_counter() - start


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds CUDA


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> tuple[float | None, str]:
    """(megabytes, what kind of number it is)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_memory_allocated"
    if device.type == "mps":  # MPS has no peak counter: what the driver holds at the end of the case
        return torch.mps.driver_allocated_memory() / 2**20, "mps_driver_allocated_at_end"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux, bytes on macOS
    mb = rss / 2**20 if sys.platform == "darwin" else rss / 2**10
    return mb, "cpu_peak_rss_of_process_so_far"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu" and Path("/proc/cpuinfo").is_file():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


# ------------------------------------------------------------------------------------------------ building
def build_pipeline(preset: str, dtype: str, device: torch.device, args) -> tuple[OSDFacePipeline, float]:
    """Random-weight model of the preset's shapes, on the device, in the dtype; returns (pipe, seconds to build)."""
    start = time.perf_counter()
    pipe = OSDFacePipeline.from_preset(preset, seed=args.seed, lora=True)
    pipe.to(device=device, dtype=DTYPES[dtype])
    if args.fuse:
        pipe.fuse_lora()
    if channels_last_for(args, device, DTYPES[dtype]):
        pipe.enable_channels_last()
    if args.vae_tiling:
        pipe.enable_vae_tiling(*args.vae_tiling)
    if args.compile:
        pipe.compile()  # in place: pipe.model calls the same module objects, now compiled
    return pipe, time.perf_counter() - start


def channels_last_for(args, device: torch.device, dtype: torch.dtype) -> bool:
    if args.channels_last == "auto":
        return default_channels_last(device, dtype)
    return args.channels_last == "on"


def size_multiple(pipe: OSDFacePipeline) -> int:
    """Input sides must be multiples of this: the VAE downsamples by 2^(levels-1), the UNet by 2^(levels-1) more."""
    return vae_factor(pipe.vae) * 2 ** (len(pipe.unet.config.block_out_channels) - 1)


# ------------------------------------------------------------------------------------------------ the measurements
def one_step_parts(model, x: torch.Tensor, device: torch.device) -> tuple[dict[str, float], torch.Tensor,
                                                                         torch.Tensor]:
    """The one step split into its four parts, each timed on its own (the same calls OneStepGenerator.forward
    makes). Returns ({part: seconds}, the prompt embeddings, the low-quality latent)."""
    prompt, t_vre = timed(lambda: model.vre(x.to(model.vre.dtype)), device)
    z_lq, t_enc = timed(lambda: model.encode(x), device)
    z_hq, t_unet = timed(lambda: model.restore_latent(z_lq, prompt), device)  # UNet + the x0 formula
    _, t_dec = timed(lambda: model.decode(z_hq), device)
    return {"vre": t_vre, "vae_encode": t_enc, "unet": t_unet, "vae_decode": t_dec}, prompt, z_lq


def multistep_unet_steps(model, scheduler, prompt, z_lq, total_steps: int, timed_steps: int, seed: int,
                         device: torch.device) -> list[float]:
    """Seconds for each of the first `timed_steps` steps of a `total_steps` DDIM run (UNet + scheduler update),
    walking OneStepGenerator.ddim_steps, the loop that ddim_sample runs, and stopping after `timed_steps`."""
    gen = torch.Generator(device=device).manual_seed(seed)
    z = torch.randn(z_lq.shape, generator=gen, device=device, dtype=z_lq.dtype)
    steps = model.ddim_steps(z, prompt, scheduler, total_steps)
    seconds = []
    for _ in range(timed_steps):
        synchronize(device)
        start = time.perf_counter()
        next(steps)
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    return seconds


def run_case(pipe: OSDFacePipeline, preset: str, dtype: str, batch: int, size: int, device: torch.device,
             args) -> dict:
    model, scheduler = pipe.model, pipe.scheduler
    repeats = repeats_for(preset, args)

    seed_everything(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    x = (torch.rand(batch, 3, size, size, generator=gen) * 2 - 1).to(device=device, dtype=pipe.dtype)
    reset_peak_memory(device)

    # --- the one step: the real forward for the headline number, then its four parts one by one
    _, warmup_one = timed(lambda: model(x), device)
    whole, parts = [], []
    for _ in range(repeats):
        whole.append(timed(lambda: model(x), device)[1])
        part_seconds, prompt, z_lq = one_step_parts(model, x, device)
        parts.append(part_seconds)
    one_step = statistics.median(whole)
    part_median = {name: statistics.median(p[name] for p in parts) for name in parts[0]}

    # --- the multi-step baseline
    k = timed_steps_for(args, part_median["unet"])
    extrapolate = k < args.steps
    if not extrapolate:  # the real sampler, every step
        def sample():
            gen = torch.Generator(device=device).manual_seed(args.seed)
            return model.ddim_sample(x, scheduler, num_steps=args.steps, generator=gen)
        _, warmup_multi = timed(sample, device)
        multistep = statistics.median(timed(sample, device)[1] for _ in range(repeats))
        warmup_extra_multi = warmup_multi - multistep
    else:  # VRE + steps x (one timed UNet step) + VAE decode, the VRE and decode times taken from above
        warmup_step = multistep_unet_steps(model, scheduler, prompt, z_lq, args.steps, 1, args.seed, device)[0]
        step_seconds = []
        for _ in range(repeats):
            step_seconds += multistep_unet_steps(model, scheduler, prompt, z_lq, args.steps, k, args.seed, device)
        per_step = statistics.median(step_seconds)
        multistep = part_median["vre"] + args.steps * per_step + part_median["vae_decode"]
        warmup_extra_multi = warmup_step - per_step

    memory_mb, memory_kind = peak_memory(device)
    return {
        "preset": preset,
        "device": device.type,
        "device_name": device_name(device),
        "dtype": dtype,
        "batch": batch,
        "size": size,
        "seconds_per_face_one_step": one_step / batch,
        "seconds_per_face_multistep": multistep / batch,
        "multistep_steps": args.steps,
        "extrapolated_from_steps": k if extrapolate else None,
        "ratio_multistep_over_one_step": multistep / one_step,
        "one_step_parts_seconds_per_face": {name: s / batch for name, s in part_median.items()},
        "peak_memory_mb": round(memory_mb, 1) if memory_mb is not None else None,
        "memory_kind": memory_kind,
        "repeats": repeats,
        "warmup_seconds_one_step": warmup_one,
        # With --compile the first calls also compile: their extra time over a steady call, both paths together.
        "compile_seconds": (warmup_one - one_step) + warmup_extra_multi if args.compile else None,
        "fused_lora": args.fuse,
        "channels_last": pipe.channels_last,
        "vae_tiling": list(args.vae_tiling) if args.vae_tiling else None,
        "compiled": args.compile,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


# ------------------------------------------------------------------------------------------------ output
def rounded(value):
    """Floats to 6 significant digits (timers are not more precise than that), inside dicts too."""
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    return value


def emit(record: dict, json_out: Path | None) -> None:
    line = json.dumps(rounded(record))
    print(line, flush=True)
    if json_out is not None:
        with json_out.open("a") as f:
            f.write(line + "\n")


def markdown_table(records: list[dict]) -> str:
    def seconds(s: float) -> str:
        return f"{s:.3g}" if s < 100 else f"{s:.0f}"

    rows = ["| device | preset | dtype | batch | s/face one-step | s/face multi-step | ratio |",
            "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
    estimated = False
    for r in records:
        multi = seconds(r["seconds_per_face_multistep"])
        if r["extrapolated_from_steps"] is not None:
            multi, estimated = multi + "*", True
        rows.append(f"| {r['device']} | {r['preset']} | {r['dtype']} | {r['batch']} | "
                    f"{seconds(r['seconds_per_face_one_step'])} | {multi} | "
                    f"{r['ratio_multistep_over_one_step']:.1f}x |")
    steps = {r["multistep_steps"] for r in records}
    rows.append("")
    rows.append(f"Multi-step = {'/'.join(map(str, sorted(steps)))}-step DDIM with the same UNet.")
    if estimated:
        rows.append("* extrapolated from a few timed UNet steps (see `extrapolated_from_steps` in the JSON).")
    return "\n".join(rows)


def main(argv=None) -> None:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cpu" or args.threads is not None:
        torch.set_num_threads(args.threads or 2)

    records = []
    with torch.inference_mode():
        for preset in args.presets:
            for dtype in args.dtypes:
                if dtype == "fp16" and device.type == "cpu":
                    for batch in args.batches:
                        emit({"preset": preset, "dtype": dtype, "batch": batch, "device": device.type,
                              "skipped": "fp16 needs a GPU"}, args.json_out)
                    continue
                pipe, build_seconds = build_pipeline(preset, dtype, device, args)  # once per (preset, dtype)
                size = args.size or pipe.config.process_size
                if size % size_multiple(pipe):
                    emit({"preset": preset, "dtype": dtype, "size": size,
                          "skipped": f"--size must be a multiple of {size_multiple(pipe)} for {preset}"},
                         args.json_out)
                else:
                    for batch in args.batches:
                        record = run_case(pipe, preset, dtype, batch, size, device, args)
                        record["build_seconds"] = build_seconds
                        records.append(record)
                        emit(record, args.json_out)
                del pipe  # free this model before building the next one
                gc.collect()
                if device.type == "cuda":
                    torch.cuda.empty_cache()

    if records:
        print()
        print(markdown_table(records))


if __name__ == "__main__":
    main()
