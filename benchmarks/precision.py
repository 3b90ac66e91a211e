"""bf16 vs fp32 on real faces: how far is the fast CPU path from the reference one?

    python benchmarks/precision.py                                # nano shapes, 8 faces from ../shared/data/faces
    python benchmarks/precision.py --preset sd21 -n 2             # SD-2.1 shapes (≈ 1 min per face in fp32)
    python benchmarks/precision.py --model ./osdface-sd21 -n 8    # a real model folder

The same weights run twice over the same faces: fp32 (default layout, the reference) and bf16 weights and
activations, channels-last (what ``from_pretrained(torch_dtype="bf16")`` gives on a CPU), LoRA fused in both.
Reported over the restored images in [0, 1]: max and mean |Δ| and PSNR (per face and over all), and how many of
the VRE's 77 prompt codes bf16 selects differently (the prompt rule picks codes by distance, which rounding can
reorder). Without ``--model`` the weights are random (LoRA too, at a realistic scale): the figures then measure
the arithmetic, not a trained model's sensitivity.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from osdface import OSDFacePipeline  # noqa: E402
from osdface.models.lora import randomize_lora_  # noqa: E402

DEFAULT_FACES = Path(os.environ.get("OSDFACE_FACES", REPO.parent / "shared" / "data" / "faces"))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group()
    src.add_argument("--preset", default="nano", choices=["tiny", "nano", "sd21"])
    src.add_argument("--model", default=None, help="a model folder or Hub id instead of random weights")
    p.add_argument("--faces", type=Path, default=DEFAULT_FACES, help="a folder of aligned face crops")
    p.add_argument("-n", "--num-faces", type=int, default=8)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json-out", type=Path, default=None)
    args = p.parse_args(argv)
    if not args.faces.is_dir():
        p.error(f"no face folder at {args.faces} (pass --faces or set OSDFACE_FACES)")
    return args


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.double() - b.double()).pow(2).mean().item()
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    files = sorted(p for p in args.faces.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    files = files[:args.num_faces]
    if not files:
        raise SystemExit(f"no .png/.jpg faces in {args.faces}")
    faces = [Image.open(p).convert("RGB") for p in files]

    if args.model:
        pipe = OSDFacePipeline.from_pretrained(args.model, torch_dtype=torch.float32, channels_last=False)
    else:
        pipe = OSDFacePipeline.from_preset(args.preset, seed=0)
        randomize_lora_(pipe.unet, scale=0.005 if args.preset == "sd21" else 0.02)
    pipe.fuse_lora()

    def run():
        start = time.perf_counter()
        out = pipe(faces, output_type="pt", batch_size=args.batch)
        with torch.inference_mode():
            codes = torch.cat([pipe.vre.tokens(pipe.preprocess(faces[i:i + args.batch]).to(pipe.vre.dtype)).indices
                               for i in range(0, len(faces), args.batch)])
        return out, codes, time.perf_counter() - start

    ref, ref_codes, t32 = run()
    pipe.to(dtype=torch.bfloat16).enable_channels_last()
    out, codes, t16 = run()

    diff = (out - ref).abs()
    per_face = [{"face": f.name, "max_abs": diff[i].max().item(), "mean_abs": diff[i].mean().item(),
                 "psnr_db": psnr(out[i], ref[i]), "prompt_codes_changed": int((codes[i] != ref_codes[i]).sum())}
                for i, f in enumerate(files)]
    summary = {
        "model": args.model or f"random {args.preset}", "faces": len(files), "size": pipe.config.process_size,
        "max_abs": diff.max().item(), "mean_abs": diff.mean().item(), "psnr_db": psnr(out, ref),
        "worst_face_psnr_db": min(f["psnr_db"] for f in per_face),
        "prompt_codes_changed_mean": sum(f["prompt_codes_changed"] for f in per_face) / len(files),
        "seconds_fp32": t32, "seconds_bf16_channels_last": t16, "threads": torch.get_num_threads(),
    }
    for rec in per_face + [summary]:
        line = json.dumps({k: (round(v, 6) if isinstance(v, float) else v) for k, v in rec.items()})
        print(line, flush=True)
        if args.json_out:
            with args.json_out.open("a") as f:
                f.write(line + "\n")
    print(f"\nbf16 vs fp32, {summary['model']}, {len(files)} faces: max |Δ| {summary['max_abs']:.4f}, "
          f"mean |Δ| {summary['mean_abs']:.5f}, PSNR {summary['psnr_db']:.1f} dB "
          f"(worst face {summary['worst_face_psnr_db']:.1f} dB), "
          f"{summary['prompt_codes_changed_mean']:.1f} of 77 prompt codes changed per face")
    return summary


if __name__ == "__main__":
    main()
