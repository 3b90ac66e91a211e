"""ONNX Runtime vs eager PyTorch on the CPU, seconds per 512² face (the whole one step: VRE, prompt rule, VAE
encoder, UNet, x0, VAE decoder, 8-bit output).

    python benchmarks/onnx_speed.py                      # the bundled nano: ORT fp32 / fp16 set vs torch fp32 / bf16
    python benchmarks/onnx_speed.py --sd21 --faces 2     # SD 2.1 shapes, random weights: one run of 2 faces each

How the numbers are made. Every engine gets the same faces (the example face, copies), runs once untimed, then
``--repeats`` rounds in which the engines take turns (the order rotates each round), so that a slow spell of a shared
machine hits them alike; the table shows the median and the best round per face. Both libraries get ``--threads``
threads (ONNX Runtime: ``intra_op_num_threads``; torch: ``set_num_threads``). torch runs with the library's
defaults: LoRA fused, channels-last for bf16 on a CPU, ``inference_mode``. ONNX Runtime: the CPU provider, graph
optimisation level "all" (its default). With ``--sd21`` the random-weight pipeline is exported first (the
UNet's 3.5 GB go to ``unet.onnx.data``) and every engine restores ``--faces`` faces once, one at a time (peak memory
≈ 10 GB with ONNX Runtime).

Prints one JSON line per engine and batch, then a markdown table.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's osdface, even beside an installed one
from osdface import OSDFacePipeline  # noqa: E402
from osdface.onnx_export import FP16_STABLE, export_onnx  # noqa: E402
from osdface.onnx_pipeline import OSDFaceONNXPipeline  # noqa: E402
from osdface.weights import BUNDLED_NANO  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def faces(n: int, size: int) -> list[Image.Image]:
    face = Image.open(REPO / "examples" / "astronaut_face_lq.png").convert("RGB").resize((size, size))
    return [face if i % 2 == 0 else face.transpose(Image.FLIP_LEFT_RIGHT) for i in range(n)]


def time_engines(engines: dict, images, batch: int, repeats: int) -> dict[str, list[float]]:
    for run in engines.values():  # warm-up
        run(images[:batch], batch)
    times = {name: [] for name in engines}
    names = list(engines)
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            t0 = time.perf_counter()
            engines[name](images[:batch], batch)
            times[name].append((time.perf_counter() - t0) / batch)
    return times


def nano(args) -> list[dict]:
    work = Path(args.export_dir or tempfile.mkdtemp(prefix="osdface-onnx-speed-"))
    pipe32 = OSDFacePipeline.from_pretrained(BUNDLED_NANO, torch_dtype="fp32", fuse_lora=True)
    for folder, half in ((work / "fp32", False), (work / "fp16", True)):
        if not (folder / "osdface_onnx.json").is_file():
            export_onnx(pipe32, folder, fp16=half, source="bundled nano")
    pipe16 = OSDFacePipeline.from_pretrained(BUNDLED_NANO, torch_dtype="bf16", fuse_lora=True)
    ort32 = OSDFaceONNXPipeline(work / "fp32", device="cpu", threads=args.threads)
    ort16 = OSDFaceONNXPipeline(work / "fp16", device="cpu", threads=args.threads)
    engines = {
        "onnxruntime fp32": lambda x, b: ort32(x, output_type="pil", batch_size=b),
        f"onnxruntime fp16 ({'+'.join(FP16_STABLE)}), else fp32": lambda x, b: ort16(x, output_type="pil", batch_size=b),
        "torch fp32": lambda x, b: pipe32(x, output_type="pil", batch_size=b),
        "torch bf16 (channels-last)": lambda x, b: pipe16(x, output_type="pil", batch_size=b),
    }
    records = []
    images = faces(max(args.batches), 512)
    for batch in args.batches:
        for name, ts in time_engines(engines, images, batch, args.repeats).items():
            records.append(emit({"model": "nano (bundled)", "engine": name, "batch": batch,
                                 "seconds_per_face_median": statistics.median(ts), "seconds_per_face_best": min(ts),
                                 "repeats": len(ts), "threads": args.threads}))
    return records


def sd21(args) -> list[dict]:
    """One run of ``--faces`` faces per engine, face by face (batch 1: the activations of a 512² sd21 step take GBs);
    the torch pipeline is not kept in memory while ONNX Runtime runs (it is rebuilt: same seed, same weights)."""
    work = Path(args.export_dir or tempfile.mkdtemp(prefix="osdface-onnx-sd21-"))

    def build():
        pipe = OSDFacePipeline.from_preset("sd21", seed=0)
        pipe.fuse_lora()  # in place: no copy of the 3.5 GB UNet for the export
        return pipe

    if not (work / "osdface_onnx.json").is_file():
        pipe = build()
        t0 = time.perf_counter()
        export_onnx(pipe, work, source="sd21 shapes, random weights")
        emit({"model": "sd21 shapes", "export_seconds": time.perf_counter() - t0})
        del pipe
        gc.collect()
    images = faces(args.faces, 512)
    records, outputs = [], {}

    def once(name, run):
        run(images[:1], 1)  # warm-up (one face)
        t0 = time.perf_counter()
        outputs[name] = run(images, 1)
        records.append(emit({"model": "sd21 shapes (random weights)", "engine": name, "batch": 1,
                             "seconds_per_face": (time.perf_counter() - t0) / len(images), "faces": len(images),
                             "runs": 1, "threads": args.threads}))

    ort = OSDFaceONNXPipeline(work, device="cpu", threads=args.threads)
    once("onnxruntime fp32", lambda x, b: ort(x, output_type="np", batch_size=b))
    x = ort.preprocess(images)
    ort_codes = ort.prompt_codes(x)[0]
    del ort
    gc.collect()
    pipe = build()
    once("torch fp32", lambda x, b: pipe(x, output_type="np", batch_size=b))
    with torch.inference_mode():
        tokens = pipe.vre.tokens(torch.from_numpy(x))
    pipe.to(dtype="bf16")
    pipe.enable_channels_last()
    once("torch bf16 (channels-last)", lambda x, b: pipe(x, output_type="np", batch_size=b))
    emit({"model": "sd21 shapes (random weights)", "parity": "onnxruntime fp32 vs torch fp32",
          "max_abs_diff": float(np.abs(outputs["onnxruntime fp32"] - outputs["torch fp32"]).max()),
          "codes_equal": bool(np.array_equal(ort_codes, tokens.indices.numpy())),
          "bf16_vs_fp32_max_abs_diff": float(np.abs(outputs["torch bf16 (channels-last)"]
                                                    - outputs["torch fp32"]).max())})
    return records


def emit(record: dict) -> dict:
    print(json.dumps(record), flush=True)
    return record


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sd21", action="store_true", help="SD 2.1 shapes with random weights instead of the nano")
    p.add_argument("--faces", type=int, default=2, help="--sd21: faces per engine (one run, one face at a time)")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--export-dir", default=None, help="where the export goes (reused when present)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    records = sd21(args) if args.sd21 else nano(args)
    print("\n| model | engine | batch | s/face (median) | s/face (best) |\n| --- | --- | --- | --- | --- |")
    for r in records:
        if "engine" not in r:
            continue
        med = r.get("seconds_per_face_median", r.get("seconds_per_face"))
        best = r.get("seconds_per_face_best", med)
        print(f"| {r['model']} | {r['engine']} | {r['batch']} | {med:.3f} | {best:.3f} |")


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
