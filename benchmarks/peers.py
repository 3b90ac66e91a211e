"""OSDFace beside what users would pick instead: Real-ESRGAN x4plus (GFPGAN's and CodeFormer's background upsampler,
the common "make it sharper" tool), and the damaged input enlarged with bicubic, on the validation faces.

    python benchmarks/peers.py --faces ../shared/data/faces                          # the bundled nano
    python benchmarks/peers.py --faces ../shared/data/faces --models osdface/assets/osdface-nano runs/cand/final

For each degradation (``spec``: docs/ARCHITECTURE.md §4's ranges; ``mild``: blur σ 1–3, down-sampling 2–4×,
noise ≤ 10, JPEG 60–90, as ``scripts/ablation.py``), the validation split of ``osdface.data.split_files`` (never
trained on) is degraded at seed 0 and restored by every model (:func:`osdface.eval.evaluate_model.evaluate_model`).
Real-ESRGAN x4plus runs on each small degraded face (x4, then resized to the HQ size), as its users run it. Metrics:
PSNR and SSIM (Y), LMD (dlib's 68 points, px), Deg-dlib (identity angle between dlib face embeddings, degrees;
lower is closer), HF-ratio (the output's high-frequency energy over the ground truth's: 1 = as sharp), Grid (a
pattern locked to the latent grid). Each model is compared with Real-ESRGAN face by face: the mean difference
with a 95 % bootstrap interval over faces (paired), so that "better" is said only when the interval excludes 0.

With two or more models, each later one is held to the rule for replacing the bundled model with a teacher-trained
one, against the first: on both degradations the identity angle is not worse, HF-ratio rises, PSNR drops by at most
0.3 dB and Grid stays at the ground truth's (at most its value + 0.1); the verdict is written under ``rule``.

Writes ``benchmarks/results/peers.json`` (machine, date, versions, load; every value per face). Picture grids
(LQ | model | Real-ESRGAN | GT) stay under ``--work``: they show data photos, which never enter the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from osdface.data.degradations import MILD  # noqa: E402
DEGRADATIONS = {"spec": None, "mild": MILD}
METRICS = ["PSNR", "SSIM", "LMD", "Deg-dlib", "HF-ratio", "Grid"]
LQ_ROW = "LQ input"
MAX_PSNR_LOSS = 0.3  # dB (the rule above)


def label_of(model: str) -> str:
    """A model's row name: the bundled nano by that name, a training run's ``final/`` by its run's folder."""
    from osdface.weights import BUNDLED_NANO

    path = Path(model)
    if path.resolve() == Path(BUNDLED_NANO).resolve():
        return "osdface-nano (bundled)"
    return path.resolve().parent.name if path.name == "final" else path.name


def rule(results: dict, base: str, cand: str) -> dict:
    """Whether ``cand`` may replace ``base`` (the rule above), with one line per degradation."""
    ok, lines = True, []
    for deg, rows in results.items():
        a, b, gt = rows[cand]["mean"], rows[base]["mean"], rows["_gt_grid"]
        ident = a["Deg-dlib"] <= b["Deg-dlib"]
        sharp = a["HF-ratio"] > b["HF-ratio"]
        psnr = a["PSNR"] >= b["PSNR"] - MAX_PSNR_LOSS
        clean = a["Grid"] <= gt + 0.1
        ok &= ident and sharp and psnr and clean
        lines.append(f"{deg}: identity {b['Deg-dlib']:.2f}° → {a['Deg-dlib']:.2f}° ({'not worse' if ident else 'WORSE'}), "
                     f"HF-ratio {b['HF-ratio']:.3f} → {a['HF-ratio']:.3f} ({'up' if sharp else 'NOT up'}), "
                     f"PSNR {b['PSNR']:.2f} → {a['PSNR']:.2f} dB ({'within' if psnr else 'MORE than'} "
                     f"{MAX_PSNR_LOSS} dB), Grid {a['Grid']:.3f} (ground truth {gt:.3f}: "
                     f"{'clean' if clean else 'A LATENT GRID'})")
    return {"candidate": cand, "baseline": base, "meets": bool(ok), "lines": lines}


def bootstrap(diff: np.ndarray, *, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """A 95 % percentile interval of the mean of ``diff`` (one value per face), resampling faces."""
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(n, len(diff)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def machine() -> dict:
    import torch

    cpu = platform.processor()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--faces", required=True, help="folder of HQ faces (its validation split is used)")
    p.add_argument("--models", nargs="+", default=None, help="model folders (default: the bundled nano)")
    p.add_argument("--limit", type=int, default=None, help="only the first N validation faces")
    p.add_argument("--work", type=Path, default=REPO / "runs" / "peers", help="restored images and grids")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json-out", type=Path, default=REPO / "benchmarks" / "results" / "peers.json")
    args = p.parse_args(argv)
    if not Path(args.faces).is_dir():
        print(f"error: {args.faces} is not a folder of faces (the data is not here: nothing measured)",
              file=sys.stderr)
        return 2
    import torch

    from osdface import __version__
    from osdface.eval.evaluate_model import evaluate_model
    from osdface.eval.sharpness import folder_grid
    from osdface.weights import BUNDLED_NANO

    torch.set_num_threads(args.threads)
    models = args.models or [str(BUNDLED_NANO)]
    load = [os.getloadavg()[0]]
    t0 = time.time()
    results: dict = {}
    for deg, config in DEGRADATIONS.items():
        rows: dict = {}
        for k, model in enumerate(models):
            first = k == 0
            name = label_of(model)
            report, _ = evaluate_model(model, args.faces, args.work / f"{deg}-{k}", split="val", limit=args.limit,
                                       seed=0, metrics=METRICS, degradation=config, overwrite=True, grid=8,
                                       baselines=("realesrgan",) if first else (), log=lambda line: None)
            for m in report.methods:
                label = name if m.name not in (LQ_ROW,) and not m.name.startswith("Real-ESRGAN") else m.name
                if not first and label in rows:
                    continue  # the LQ row: the same degraded set (same seed) as the first model's
                faces = sorted(m.per_image)
                rows[label] = {"mean": {x: m.summary.get(x) for x in METRICS},
                               "per_face": {x: [m.per_image[f].get(x) for f in faces] for x in METRICS},
                               "faces": len(faces)}
            load.append(os.getloadavg()[0])
        peer = next(r for r in rows if r.startswith("Real-ESRGAN"))
        for label, row in rows.items():
            if label == peer or label.startswith("_"):
                continue
            row["minus_realesrgan"] = {}
            for x in METRICS:
                a, b = row["per_face"][x], rows[peer]["per_face"][x]
                pairs = np.array([(u, v) for u, v in zip(a, b) if u is not None and v is not None], dtype=float)
                if len(pairs):
                    d = pairs[:, 0] - pairs[:, 1]
                    lo, hi = bootstrap(d)
                    row["minus_realesrgan"][x] = {"mean": float(d.mean()), "ci95": [lo, hi]}
        rows["_gt_grid"] = folder_grid(args.work / f"{deg}-0" / "bench" / "hq")
        results[deg] = rows
        print(f"== {deg}", flush=True)
        for label, row in rows.items():
            if label.startswith("_"):
                continue
            print(f"{label:32s} " + "  ".join(f"{x} {row['mean'][x]:.4g}" for x in METRICS
                                              if row["mean"][x] is not None), flush=True)
    names = [label_of(m) for m in models]
    verdicts = [rule(results, names[0], cand) for cand in names[1:]]
    for v in verdicts:
        print(f"rule: {v['candidate']} {'MEETS' if v['meets'] else 'does not meet'} the rule against {v['baseline']}")
        print("\n".join("  " + line for line in v["lines"]))
    payload = {"what": "OSDFace models beside Real-ESRGAN x4plus and the bicubic input on the validation faces "
                       "(benchmarks/peers.py)",
               "command": "python benchmarks/peers.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               "date": time.strftime("%Y-%m-%d"), "osdface": __version__, "machine": machine(),
               "load_average": [round(x, 2) for x in load], "seconds": round(time.time() - t0, 1),
               "metrics": METRICS, "degradations": {"spec": "docs/ARCHITECTURE.md §4", "mild": MILD},
               "results": results, "rule": verdicts}
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.json_out.with_name(f".{args.json_out.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=1) + "\n")
    tmp.replace(args.json_out)
    print(f"wrote {args.json_out}; grids under {args.work}/*/grid.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
