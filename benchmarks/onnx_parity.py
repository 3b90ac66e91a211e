"""ONNX Runtime vs PyTorch on real faces: outputs, kept prompt codes, near ties, and fp16 per graph.

    python benchmarks/onnx_parity.py                               # the bundled nano, the shared faces, everything
    python benchmarks/onnx_parity.py --faces 64 --skip near-tie    # fewer faces, no near-tie exports
    python benchmarks/onnx_parity.py --export-dir /tmp/nano-onnx   # reuse (or keep) the exports

What it measures (CPU, fp32 torch pipeline as the reference, LoRA fused):

- ``parity``: restored images of the first ``--output-faces`` faces (HQ as stored, and degraded: bicubic down 4x
  and up, JPEG 60), max |Δ| ORT vs torch at batch 1 and 4; the prompt codes kept for every face: the same list
  (same order), the same set.
- ``near-tie``: the near-tie fixture of tests/test_codebook.py (the nano VRE with a dictionary of slightly
  perturbed copies of the example face's own features): the VRE graph exported with that dictionary, ORT's kept
  codes against the release's selection loop run on torch's features; and, to separate the two causes, the share
  of ORT's distances that are bit-identical to torch's on the same features.
- ``fp16``: each graph exported in fp16 on its own (the others fp32), and the default ``--fp16`` set, and all four:
  PSNR of the restored faces against the all-fp32 ONNX output, worst and mean, and whether the kept codes change.

Prints one JSON line per measurement and a markdown summary.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's osdface, even beside an installed one
REPO = Path(__file__).resolve().parents[1]  # (also where tests.test_codebook's near-tie fixture is imported from)

from osdface import OSDFacePipeline  # noqa: E402
from osdface.onnx_export import FP16_STABLE, GRAPHS, export_onnx  # noqa: E402
from osdface.onnx_pipeline import OSDFaceONNXPipeline  # noqa: E402
from osdface.weights import BUNDLED_NANO  # noqa: E402


def degrade(img: Image.Image) -> Image.Image:
    small = img.resize((img.width // 4, img.height // 4), Image.BICUBIC).resize(img.size, Image.BICUBIC)
    buf = io.BytesIO()
    small.save(buf, format="JPEG", quality=60)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def load_faces(folder: Path, n: int, size: int) -> list[Image.Image]:
    files = sorted(folder.glob("*.png"))[:n] if folder.is_dir() else []
    faces = [Image.open(REPO / "examples" / "astronaut_face_lq.png").convert("RGB")]
    faces += [Image.open(f).convert("RGB").resize((size, size), Image.BICUBIC) for f in files]
    return faces


def emit(record: dict) -> dict:
    print(json.dumps(record), flush=True)
    return record


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def parity(pipe, ort, faces, label: str, output_faces: int) -> dict:
    """Restored images of the first ``output_faces`` faces (batch 1 and 4); the kept codes of every face."""
    worst = {1: 0.0, 4: 0.0}
    for start in range(0, min(output_faces, len(faces)), 4):
        chunk = faces[start:start + 4]
        for batch in (1, 4):
            a = pipe(chunk, output_type="np", batch_size=batch)
            b = ort(chunk, output_type="np", batch_size=batch)
            worst[batch] = max(worst[batch], float(np.abs(a - b).max()))
    same_order = same_set = cut = 0
    for start in range(0, len(faces), 8):
        chunk = faces[start:start + 8]
        x = pipe.preprocess(chunk)
        with torch.no_grad():
            tokens = pipe.vre.tokens(x)
        codes, valid = ort.prompt_codes(x.numpy())
        for i in range(len(chunk)):
            t = tokens.indices[i][tokens.valid[i]].tolist()
            o = codes[i][valid[i]].tolist()
            same_order += t == o
            same_set += set(t) == set(o)
            cut += len(t) == pipe.vre.config.num_tokens
    return emit({"measure": "parity", "inputs": label, "faces": len(faces),
                 "faces_compared_output": min(output_faces, len(faces)), "max_abs_diff_batch1": worst[1],
                 "max_abs_diff_batch4": worst[4], "codes_same_order": same_order, "codes_same_set": same_set,
                 "faces_with_77_codes": cut})


def near_tie(work: Path) -> list[dict]:
    from osdface.models import VisualRepresentationEmbedder
    from osdface.onnx_export import VREGraph
    from osdface.prompt_rule import select_codes
    from tests.test_codebook import near_tie_case, release_selection
    import onnxruntime

    face = REPO / "examples" / "astronaut_face_lq.png"
    x = torch.from_numpy(np.array(Image.open(face).convert("RGB"))).permute(2, 0, 1)[None].float() / 127.5 - 1
    out = []
    for seed in range(3):
        z, codes = near_tie_case(seed)
        release = release_selection(z, codes)
        vre = VisualRepresentationEmbedder.from_pretrained(BUNDLED_NANO, subfolder="vre").eval()
        with torch.no_grad():
            vre.quantize.embedding.weight.copy_(codes)
            torch_min = vre.quantize.distances(z).min(dim=-1)[0].numpy()
        path = work / f"near_tie_{seed}" / "vre.onnx"
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.onnx.export(VREGraph(vre).eval(), (x,), str(path), dynamo=True, opset_version=18, verbose=False,
                          input_names=["image"])
        sess = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        min_d, nearest = sess.run(None, {"image": x.numpy()})
        kept, valid = select_codes(min_d, nearest, 77)
        kept = kept[0][valid[0]].tolist()
        # the distances alone: ONNX Runtime's MatMul on torch's own features
        feats = z.permute(0, 2, 3, 1).contiguous().view(1, -1, z.shape[1])

        class Dist(torch.nn.Module):
            def forward(self, f):
                from osdface.models import squared_distances
                return squared_distances(f, codes).min(dim=-1)

        dpath = path.parent / "dist.onnx"
        torch.onnx.export(Dist().eval(), (feats,), str(dpath), dynamo=True, opset_version=18, verbose=False)
        dsess = onnxruntime.InferenceSession(str(dpath), providers=["CPUExecutionProvider"])
        ort_min_on_torch_feats = dsess.run(None, {dsess.get_inputs()[0].name: feats.numpy()})[0]
        out.append(emit({"measure": "near_tie", "seed": seed, "codes_identical": kept == release,
                         "codes_differing_of_77": sum(a != b for a, b in zip(kept, release)),
                         "same_set": set(kept) == set(release),
                         "end_to_end_min_distance_bits_equal": float((min_d[0] == torch_min[0]).mean()),
                         "ort_distances_on_torch_features_bits_equal":
                             float((ort_min_on_torch_feats[0] == torch_min[0]).mean())}))
    return out


def fp16(pipe, fp32_dir: Path, fp16_dir: Path, faces) -> list[dict]:
    import onnxruntime

    ref_pipe = OSDFaceONNXPipeline(fp32_dir, device="cpu")
    ref = ref_pipe(faces, output_type="np", batch_size=4)
    x = ref_pipe.preprocess(faces)
    ref_codes = ref_pipe.prompt_codes(x)[0]
    sets = {**{(g,): (g,) for g in GRAPHS}, "default (--fp16)": FP16_STABLE, "all four": GRAPHS}
    out = []
    for label, graphs in sets.items():
        mixed = OSDFaceONNXPipeline(fp32_dir, device="cpu")
        for g in graphs:  # swap in the fp16 session of each listed graph
            mixed.sessions[g] = onnxruntime.InferenceSession(str(fp16_dir / f"{g}.onnx"),
                                                             providers=["CPUExecutionProvider"])
        got = mixed(faces, output_type="np", batch_size=4)
        per_face = [psnr(got[i], ref[i]) for i in range(len(faces))]
        codes = mixed.prompt_codes(x)[0]
        out.append(emit({"measure": "fp16", "graphs": list(graphs), "label": label if isinstance(label, str) else
                         label[0], "psnr_min_db": min(per_face), "psnr_mean_db": float(np.mean(per_face)),
                         "max_abs_diff": float(np.abs(got - ref).max()), "finite": bool(np.isfinite(got).all()),
                         "codes_identical_faces": int(sum(np.array_equal(codes[i], ref_codes[i])
                                                          for i in range(len(faces)))),
                         "codes_same_set_faces": int(sum(set(codes[i].tolist()) == set(ref_codes[i].tolist())
                                                         for i in range(len(faces)))), "faces": len(faces)}))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--faces-dir", default=str(REPO.parent / "shared" / "data" / "faces"))
    p.add_argument("--faces", type=int, default=1000, help="at most this many faces (plus the example)")
    p.add_argument("--output-faces", type=int, default=32, help="faces whose restored images are compared")
    p.add_argument("--fp16-faces", type=int, default=32)
    p.add_argument("--skip", nargs="*", default=[], choices=["parity", "near-tie", "fp16"])
    p.add_argument("--export-dir", default=None, help="where the exports go (kept; reused when present)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    pipe = OSDFacePipeline.from_pretrained(BUNDLED_NANO, torch_dtype="fp32", fuse_lora=True)
    work = Path(args.export_dir) if args.export_dir else Path(tempfile.mkdtemp(prefix="osdface-onnx-parity-"))
    fp32_dir, fp16_dir = work / "fp32", work / "fp16-all"
    for folder, half in ((fp32_dir, False), (fp16_dir, GRAPHS)):
        if not (folder / "osdface_onnx.json").is_file():
            t0 = time.perf_counter()
            export_onnx(pipe, folder, fp16=half, source="bundled nano")
            print(f"exported {folder} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    faces = load_faces(Path(args.faces_dir), args.faces, pipe.config.process_size)
    records = []
    if "parity" not in args.skip:
        ort = OSDFaceONNXPipeline(fp32_dir, device="cpu", threads=args.threads)
        records.append(parity(pipe, ort, faces, "as stored", args.output_faces))
        records.append(parity(pipe, ort, [degrade(f) for f in faces], "degraded (bicubic 4x down/up, JPEG 60)",
                              args.output_faces))
    if "near-tie" not in args.skip:
        records += near_tie(work)
    if "fp16" not in args.skip:
        records += fp16(pipe, fp32_dir, fp16_dir, [degrade(f) for f in faces[: args.fp16_faces]])
    print("\n| measure | result |\n| --- | --- |")
    for r in records:
        if r["measure"] == "parity":
            print(f"| parity, {r['inputs']} | max abs diff {r['max_abs_diff_batch1']:.1e} (batch 1), "
                  f"{r['max_abs_diff_batch4']:.1e} (batch 4) on {r['faces_compared_output']} faces; prompt codes "
                  f"same order {r['codes_same_order']}/{r['faces']}, same set {r['codes_same_set']}/{r['faces']} |")
        elif r["measure"] == "near_tie":
            print(f"| near-tie fixture, seed {r['seed']} | codes identical: {r['codes_identical']} "
                  f"({r['codes_differing_of_77']} of 77 positions differ, same set: {r['same_set']}); distances "
                  f"bit-equal {r['end_to_end_min_distance_bits_equal']:.0%} end to end, "
                  f"{r['ort_distances_on_torch_features_bits_equal']:.0%} on torch's features |")
        else:
            print(f"| fp16: {r['label']} | PSNR min {r['psnr_min_db']:.1f} dB, mean {r['psnr_mean_db']:.1f} dB; "
                  f"codes identical {r['codes_identical_faces']}/{r['faces']} (same set "
                  f"{r['codes_same_set_faces']}/{r['faces']}); finite {r['finite']} |")


if __name__ == "__main__":
    main()
