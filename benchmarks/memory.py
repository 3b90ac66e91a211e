"""Peak memory (and time) of the VAE encode / decode vs image size, untiled vs tiled.

    python benchmarks/memory.py                                   # nano, 512² ... 2048² and 512x1536, fp32
    python benchmarks/memory.py --preset sd21 --dtype bf16 --sizes 512x512 1024x1024 --max-untiled-mpix 1.1
    python benchmarks/memory.py --device cuda --preset sd21 --dtype fp16 --sizes 512x512 1024x1024 2048x2048

Input: the bundled example face (``examples/astronaut_face_lq.png``) resized to each size, so that tiles differ
as in a real photo. For every size the VAE encodes it and decodes its latent, once untiled (skipped above
``--max-untiled-mpix`` megapixels, to stay clear of an out-of-memory kill on a shared machine) and once tiled
(``pipe.enable_vae_tiling(tile, overlap)``). Reported per step: seconds and peak memory *added* by the call over
what was allocated before it (weights excluded), and, when both ran, how far the tiled result is from the untiled
one (PSNR of the decoded image, relative mean |Δ| of the latent). Random weights of the preset's shapes: the
memory and time figures hold for trained weights; the tiled-vs-untiled gap of a trained VAE is smaller than a
random one's (tiles change the GroupNorm statistics; trained features vary less between tiles).

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` (reset before each call); on Linux CPUs the process's
peak resident set (``VmHWM``, reset before each call by writing 5 to ``/proc/self/clear_refs``) minus the
resident set before the call, with glibc told to hand large blocks back to the system when they are freed
(otherwise a later call reuses freed memory without growing the resident set and seems to need none).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from osdface import OSDFacePipeline  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"sizes look like 1024x768 (width x height), not {text!r}") from None
    return w, h


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="nano", choices=["tiny", "nano", "sd21"])
    p.add_argument("--dtype", default="fp32", choices=list(DTYPES))
    p.add_argument("--device", default="cpu")
    p.add_argument("--sizes", nargs="+", type=parse_size,
                   default=[(512, 512), (1024, 1024), (2048, 2048), (1536, 512)], metavar="WxH")
    p.add_argument("--tile", type=int, nargs=2, default=(512, 64), metavar=("TILE", "OVERLAP"))
    p.add_argument("--max-untiled-mpix", type=float, default=4.5,
                   help="skip the untiled run above this many megapixels")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json-out", type=Path, default=None)
    return p.parse_args(argv)


class PeakMemory:
    """Peak memory added by a block of code, in MiB (see the module docstring for how)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.cpu_ok = Path("/proc/self/clear_refs").exists()
        self.libc = None
        if device.type == "cpu" and self.cpu_ok:
            # glibc keeps freed blocks for reuse, so a later call would grow the resident set less than it uses:
            # serve every block >= 64 KiB by mmap (returned to the system on free) and trim before each call.
            try:
                self.libc = ctypes.CDLL("libc.so.6")
                self.libc.mallopt(-3, 64 * 1024)  # M_MMAP_THRESHOLD (fixed: no dynamic raise)
            except OSError:
                self.libc = None

    @staticmethod
    def _status_kb(key: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        raise KeyError(key)

    def run(self, fn):
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            before = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        elif self.cpu_ok:
            if self.libc is not None:
                self.libc.malloc_trim(0)
            Path("/proc/self/clear_refs").write_text("5")
            before = self._status_kb("VmRSS")
        start = time.perf_counter()
        out = fn()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - start
        if self.device.type == "cuda":
            peak = (torch.cuda.max_memory_allocated(self.device) - before) / 2**20
        elif self.cpu_ok:
            peak = (self._status_kb("VmHWM") - before) / 1024
        else:
            peak = None
        return out, seconds, peak


def example_image(width: int, height: int) -> torch.Tensor:
    img = Image.open(REPO / "examples" / "astronaut_face_lq.png").convert("RGB").resize((width, height),
                                                                                        Image.BICUBIC)
    return torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float() / 127.5 - 1


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.double() - b.double()).pow(2).mean().item()
    return math.inf if mse == 0 else 10 * math.log10(4.0 / mse)  # images in [-1, 1]


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    pipe = OSDFacePipeline.from_preset(args.preset, seed=0, lora=False).to(device=device, dtype=DTYPES[args.dtype])
    model, meter = pipe.model, PeakMemory(device)
    records = []
    with torch.inference_mode():
        for w, h in args.sizes:
            x = example_image(w, h).to(device=device, dtype=pipe.dtype)
            results = {}
            modes = (["untiled"] if w * h / 1e6 <= args.max_untiled_mpix else []) + ["tiled"]
            for mode in modes:
                if mode == "tiled":
                    pipe.enable_vae_tiling(*args.tile)
                z, enc_s, enc_mb = meter.run(lambda: model.encode(x))
                y, dec_s, dec_mb = meter.run(lambda: model.decode(z))
                pipe.disable_vae_tiling()
                results[mode] = (z, y)
                rec = {"preset": args.preset, "dtype": args.dtype, "device": device.type, "width": w, "height": h,
                       "megapixels": round(w * h / 1e6, 3), "mode": mode,
                       "tile": list(args.tile) if mode == "tiled" else None,
                       "encode_seconds": round(enc_s, 3), "decode_seconds": round(dec_s, 3),
                       "encode_peak_mb": None if enc_mb is None else round(enc_mb, 1),
                       "decode_peak_mb": None if dec_mb is None else round(dec_mb, 1)}
                if mode == "tiled" and "untiled" in results:
                    (z0, y0), (z1, y1) = results["untiled"], results["tiled"]
                    rec["decode_psnr_vs_untiled_db"] = round(psnr(y1, y0), 2)
                    rec["latent_rel_mean_abs_diff"] = round(((z1 - z0).abs().mean() / z0.abs().mean()).item(), 4)
                print(json.dumps(rec), flush=True)
                if args.json_out:
                    with args.json_out.open("a") as f:
                        f.write(json.dumps(rec) + "\n")
                records.append(rec)
            del results
    print()
    print("| size | mode | encode peak MB | decode peak MB | encode s | decode s | tiled vs untiled |")
    print("| --- | --- | ---: | ---: | ---: | ---: | --- |")
    for r in records:
        gap = (f"{r['decode_psnr_vs_untiled_db']} dB, latent {100 * r['latent_rel_mean_abs_diff']:.1f} %"
               if "decode_psnr_vs_untiled_db" in r else "")
        print(f"| {r['width']}x{r['height']} | {r['mode']} | {r['encode_peak_mb']} | {r['decode_peak_mb']} | "
              f"{r['encode_seconds']} | {r['decode_seconds']} | {gap} |")
    return records


if __name__ == "__main__":
    main()
