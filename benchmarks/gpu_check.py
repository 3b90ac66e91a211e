"""GPU checks that CI cannot run (no GPU there): CUDA vs CPU parity, fp16/bf16 vs fp32, fused vs unfused LoRA.

    python benchmarks/gpu_check.py            # prints one JSON line per check

Random weights of the tiny test shapes and of the full sd21 shapes; the figures compare paths, not quality.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from osdface import OSDFacePipeline  # noqa: E402
from osdface.models.lora import randomize_lora_  # noqa: E402

def psnr(a, b):
    mse = (a.float() - b.float()).pow(2).mean().item()
    return float("inf") if mse == 0 else 10 * math.log10(1 / mse)


def report(**kw):
    print(json.dumps(kw), flush=True)


def main():
    assert torch.cuda.is_available(), "no CUDA device"
    report(check="device", name=torch.cuda.get_device_name(0), torch=torch.__version__)
    x = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))

    tiny = OSDFacePipeline.from_preset("tiny", seed=0)
    randomize_lora_(tiny.unet)
    cpu = tiny(x, output_type="pt")
    tiny.to(device="cuda")
    cuda32 = tiny(x, output_type="pt")
    report(check="tiny cuda fp32 vs cpu fp32", max_abs=(cuda32 - cpu).abs().max().item(), psnr_db=psnr(cuda32, cpu))
    for name, dt in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
        tiny.to(dtype=torch.float32)
        tiny.to(dtype=dt)
        y = tiny(x, output_type="pt")
        report(check=f"tiny cuda {name} vs fp32", max_abs=(y - cuda32).abs().max().item(),
               mean_abs=(y - cuda32).abs().mean().item(), psnr_db=psnr(y, cuda32))

    sd = OSDFacePipeline.from_preset("sd21", seed=0).to(device="cuda", dtype=torch.float16)
    randomize_lora_(sd.unet, scale=0.005)
    xs = torch.rand(2, 3, 512, 512, generator=torch.Generator().manual_seed(1))
    unfused = sd(xs, output_type="pt")
    sd.fuse_lora()
    fused = sd(xs, output_type="pt")
    report(check="sd21 fp16 fused vs unfused", max_abs=(fused - unfused).abs().max().item(),
           psnr_db=psnr(fused, unfused))
    single = torch.cat([sd(xs[i:i + 1], output_type="pt") for i in range(2)])
    report(check="sd21 fp16 batch 2 vs single", max_abs=(single - fused).abs().max().item(),
           psnr_db=psnr(single, fused))
    torch.cuda.synchronize()
    t = time.perf_counter()
    sd(torch.rand(8, 3, 512, 512), output_type="pt", batch_size=8)
    torch.cuda.synchronize()
    report(check="sd21 fp16 fused, 8 faces through pipe() incl. host I/O", seconds_per_face=(time.perf_counter() - t) / 8)


if __name__ == "__main__":
    main()
