"""Background upsamplers of whole-photo mode: time and peak memory to enlarge one photo (faces are not restored here;
their cost does not depend on the background upsampler).

    python benchmarks/bg_upsampler.py                                  # 1 MP photo, x2, CPU: lanczos, realesrgan
    python benchmarks/bg_upsampler.py --methods realesrgan realesr-animevideov3 --tile 256 --device cuda

The photo is ``examples/group_photo.jpg`` resized (Lanczos) to ``--megapixels`` (4:3). ``realesrgan`` is the
x4plus RRDBNet (osdface.faces.photo.get_bg_upsampler: tiles of ``--tile`` input px with 16 px overlap, then area
resize to the scale); ``realesr-animevideov3`` the compact network (same tiling). Peak memory is what the call adds
to the process (benchmarks/memory.py's PeakMemory: resident set on a CPU, allocator peak on CUDA). Writes
``benchmarks/results/bg_upsampler.json`` (machine, date, versions, the load average before and after each run:
timings taken while other jobs share the CPU are slower).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from memory import PeakMemory  # noqa: E402

from osdface import __version__  # noqa: E402
from osdface.faces.photo import get_bg_upsampler  # noqa: E402

METHODS = ("lanczos", "realesrgan", "realesr-animevideov3")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--methods", nargs="+", default=["lanczos", "realesrgan"], choices=METHODS)
    p.add_argument("--megapixels", type=float, default=1.0)
    p.add_argument("--scale", type=float, default=2)
    p.add_argument("--tile", type=int, default=192)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default=None, help="fp32 / bf16 / fp16 (default: fp16 on CUDA, else fp32)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json-out", type=Path, default=REPO / "benchmarks" / "results" / "bg_upsampler.json")
    return p.parse_args(argv)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    src = Image.open(REPO / "examples" / "group_photo.jpg").convert("RGB")
    w = int(round((args.megapixels * 1e6 * 4 / 3) ** 0.5))
    h = int(round(w * 3 / 4))
    photo = src.resize((w, h), Image.LANCZOS)
    device = torch.device(args.device)
    meter = PeakMemory(device)
    rows = []
    for method in args.methods:
        if method == "lanczos":
            up = get_bg_upsampler("lanczos")
        else:
            model = "realesr-animevideov3" if method == "realesr-animevideov3" else None
            up = get_bg_upsampler("realesrgan", model=model, device=args.device, dtype=args.dtype, tile=args.tile)
        load0 = os.getloadavg()[0]
        out, seconds, peak = meter.run(lambda: up(photo, args.scale))
        row = {"method": method, "input": [w, h], "output": list(out.size), "scale": args.scale,
               "seconds": round(seconds, 2), "peak_mib_added": None if peak is None else round(peak, 1),
               "tile": None if method == "lanczos" else args.tile, "device": str(device),
               "dtype": None if method == "lanczos" else str(up.dtype).replace("torch.", ""),
               "threads": args.threads, "loadavg_1min_before_after": [round(load0, 2), round(os.getloadavg()[0], 2)]}
        print(json.dumps(row), flush=True)
        rows.append(row)
        del out
    record = {"benchmark": "bg_upsampler", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "machine": {"cpu": cpu_name(), "cores": os.cpu_count(),
                          "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None},
              "versions": {"osdface": __version__, "torch": torch.__version__, "python": platform.python_version()},
              "note": "background only (no face restoration); the machine was shared with other jobs when the "
                      "load average exceeds the thread count",
              "rows": rows}
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.json_out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, args.json_out)
    return rows


if __name__ == "__main__":
    main()
