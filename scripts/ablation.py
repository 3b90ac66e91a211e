"""The paper's ablation in miniature (OSDFace Tables 3–4, our numbers): nano generators trained from the same start
with the same budget, seed and split, each with one part of the objective on or off, then evaluated alike.

    python scripts/ablation.py --data ../shared/data/faces --out runs/ablation --steps 1500       # train + evaluate
    python scripts/ablation.py --data ../shared/data/faces --out runs/ablation --arms l2 full      # some arms only
    python scripts/ablation.py ... --evaluate-only                                                # re-evaluate

Arms (``ARMS``): ``l2`` (L2 only: the recipe of the first bundled nano), ``l2+id`` (+ the identity loss on dlib's
face network), ``l2+gan`` (+ the latent discriminator's GAN guidance), ``full`` (+ identity + GAN + the Sobel edge
term), ``full-no-vre`` (``full`` with an empty prompt instead of the VRE's: what the visual prompt brings), ``teacher``
(L2 + a term pulling the output's high frequencies toward Real-ESRGAN x4plus's output on the same LQ) and
``teacher+id`` (+ identity). The teacher arms train on a fixed pool of degraded training faces with precomputed
Real-ESRGAN outputs (``--teacher-pool``, made by ``scripts/teacher_pool.py``: Real-ESRGAN costs seconds per face on
a CPU), not on fresh degradations each step as the other arms do; ``pool-l2`` is ``l2`` on that same pool, so that
the teacher term's effect is read against an arm that differs from it in that term only.

The start (``OUT/start``): nano's stage-0 PatchVAE fitted here (closed form, seconds) and the bundled nano's stage-1
VRE (encoder and dictionary; its prompt projector re-initialised, as stage 1 leaves it), so every arm trains its
UNet, projector and VAE decoder from scratch. Training runs resume from their last checkpoint (``OUT/ARM/``).

Evaluation (``OUT/report.md``, ``OUT/report.json``; the JSON also holds every metric per validation face under
``per_face``, paired across arms, for an uncertainty on a difference): the validation split (never trained on),
degraded twice at a fixed seed: with docs/ARCHITECTURE.md §4's ranges ("spec") and a milder set (blur σ 1–3, down-sampling 2–4×,
noise ≤ 10, JPEG 60–90); PSNR, SSIM, LMD, Deg-dlib (identity angle, dlib's network), HF-ratio (sharpness: 1 =
the ground truth's), with the LQ input as the baseline row; a picture grid per arm and degradation
(LQ | output | GT), written under OUT (not committed: the faces' terms keep them out of the repository).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# λ values: see the README's training section for how they were chosen (a pilot of a few hundred steps)
FULL = dict(identity_weight=0.5, identity_network="dlib", gan_weight=0.05, gan_start=100, gan_ramp=200, gan_every=4,
            edge_weight=0.2)
ARMS = {
    "l2": dict(identity_weight=0.0, gan_weight=0.0, edge_weight=0.0),
    "l2+id": dict(identity_weight=FULL["identity_weight"], identity_network="dlib", gan_weight=0.0, edge_weight=0.0),
    "l2+gan": dict(identity_weight=0.0, gan_weight=FULL["gan_weight"], gan_start=FULL["gan_start"],
                   gan_ramp=FULL["gan_ramp"], gan_every=FULL["gan_every"], edge_weight=0.0),
    "full": dict(FULL),
    "full-no-vre": dict(FULL, use_vre_prompt=False),
    # Real-ESRGAN as a teacher in the high band only (osdface.losses.teacher), on the fixed pool of
    # scripts/teacher_pool.py (--teacher-pool); λ 1.0 was not piloted
    "teacher": dict(identity_weight=0.0, gan_weight=0.0, edge_weight=0.0, teacher_weight=1.0),
    "teacher+id": dict(identity_weight=FULL["identity_weight"], identity_network="dlib", gan_weight=0.0,
                       edge_weight=0.0, teacher_weight=1.0),
    # l2 on the teacher arms' fixed pool: their control (the pool, not the term, may explain a difference from l2)
    "pool-l2": dict(identity_weight=0.0, gan_weight=0.0, edge_weight=0.0),
}
TEACHER_ARMS = ("teacher", "teacher+id")
POOL_ARMS = (*TEACHER_ARMS, "pool-l2")  # the arms trained on --teacher-pool
from osdface.data.degradations import MILD  # noqa: E402
DEGRADATIONS = {"spec": None, "mild": MILD}
METRICS = ["PSNR", "SSIM", "LMD", "Deg-dlib", "HF-ratio", "Grid"]


def prepare_start(data: str, out: Path, resolution: int, seed: int) -> tuple[Path, Path]:
    """(stage-0 VAE folder, stage-1 VRE folder) shared by every arm."""
    import torch

    from osdface.models import VisualRepresentationEmbedder
    from osdface.training import get_train_config, make_trainer
    from osdface.weights import BUNDLED_NANO

    start = out / "start"
    vae_run = start / "vae"
    if not (vae_run / "final" / "vae").is_dir():
        cfg = get_train_config("vae", "nano", data=data, output_dir=str(vae_run), resolution=resolution, seed=seed)
        make_trainer(cfg).train()
    vre_dir = start / "vre"
    if not (vre_dir / "config.json").is_file():
        vre = VisualRepresentationEmbedder.from_pretrained(BUNDLED_NANO, subfolder="vre")
        torch.manual_seed(seed)
        for m in vre.projector.modules():  # stage 1 leaves a fresh projector; stage 2 trains it
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
        vre.save_pretrained(vre_dir)
    return vae_run / "final", vre_dir


def train_arm(name: str, data: str, out: Path, base: Path, vre: Path, steps: int, resolution: int, seed: int,
              extra: dict) -> Path:
    from osdface.training import get_train_config, make_trainer

    run = out / name
    final = run / "final"
    if (final / "osdface_config.json").is_file():
        return final
    cfg = get_train_config("generator", "nano", data=data, output_dir=str(run), base=str(base), vre=str(vre),
                           resolution=resolution, max_steps=steps, seed=seed, save_every=max(100, steps // 10),
                           val_every=max(50, steps // 20), warmup_steps=50, **{**ARMS[name], **extra})
    resume = "latest" if list((run / "checkpoints").glob("step_*")) else None
    t0 = time.perf_counter()
    trainer = make_trainer(cfg)
    trainer.train(resume=resume)
    (run / "time.json").write_text(json.dumps({"seconds": time.perf_counter() - t0, "steps": steps,
                                               "resumed": resume is not None}) + "\n")
    return final


def evaluate_arm(name: str, model: Path, data: str, out: Path, seed: int) -> dict:
    from osdface.eval.evaluate_model import evaluate_model

    rows = {}
    for deg, config in DEGRADATIONS.items():
        folder = out / "eval" / f"{name}-{deg}"
        report, _ = evaluate_model(str(model), data, folder, split="val", seed=seed, metrics=METRICS,
                                   degradation=config, overwrite=True, grid=6, log=lambda line: None)
        for m in report.methods:
            rows[(deg, m.name)] = {k: m.summary.get(k) for k in METRICS}
            # one value per validation face, in file-name order (the same faces in every arm: paired), so that a
            # reader can put an uncertainty on a difference (notebook 08 bootstraps over them)
            names = sorted(m.per_image)
            rows[(deg, m.name)]["_per_face"] = {k: [m.per_image[n].get(k) for n in names] for k in METRICS
                                                if any(m.per_image[n].get(k) is not None for n in names)}
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="folder of HQ faces (e.g. ../shared/data/faces)")
    p.add_argument("--out", default="runs/ablation")
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    p.add_argument("--steps", type=int, default=1500, help="optimizer steps per arm (the same for every arm)")
    p.add_argument("--resolution", type=int, default=256, help="face size in training and evaluation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="an override for every arm (YAML value), e.g. --set batch_size=2")
    p.add_argument("--evaluate-only", action="store_true")
    p.add_argument("--teacher-pool", default=None,
                   help="the teacher arms' data: a folder made by scripts/teacher_pool.py (hq/, lq/, teacher/)")
    p.add_argument("--merge-into", type=Path, default=None, metavar="JSON",
                   help="also add this run's arms to an earlier report.json (e.g. benchmarks/results/ablation.json; "
                        "same steps, resolution and seed), keeping its other arms)")
    args = p.parse_args(argv)
    if set(args.arms) & set(POOL_ARMS) and not args.evaluate_only and not args.teacher_pool:
        p.error("the teacher arms and pool-l2 need --teacher-pool (make it with scripts/teacher_pool.py)")
    import yaml

    extra = {k.strip(): yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base, vre = prepare_start(args.data, out, args.resolution, args.seed)
    results = {}
    for name in args.arms:
        if not args.evaluate_only:
            print(f"== {name}: training {args.steps} steps", flush=True)
            data = args.teacher_pool if name in POOL_ARMS else args.data
            train_arm(name, data, out, base, vre, args.steps, args.resolution, args.seed, extra)
        print(f"== {name}: evaluating", flush=True)
        results[name] = evaluate_arm(name, out / name / "final", args.data, out, args.seed)
    payload = write_table(results, out, args)
    if args.merge_into is not None:
        merge_into(args.merge_into, payload, args)
    return 0


def merge_into(path: Path, payload: dict, args) -> None:
    """Add ``payload``'s arms (and per-face values) to the report at ``path``; refuse another budget or seed."""
    old = json.loads(path.read_text())
    for key in ("steps", "resolution", "seed"):
        if old.get(key) != payload[key]:
            raise SystemExit(f"error: {path} has {key} {old.get(key)}, this run {payload[key]}: not comparable")
    for name, rows in payload["arms"].items():
        old["arms"][name] = rows
        if name in payload.get("per_face", {}):
            old.setdefault("per_face", {})[name] = payload["per_face"][name]
    if "lq" in payload.get("per_face", {}) and "lq" not in old.get("per_face", {}):
        old.setdefault("per_face", {})["lq"] = payload["per_face"]["lq"]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(old, indent=1) + "\n")
    tmp.replace(path)
    print(f"merged {', '.join(payload['arms'])} into {path}")


def write_table(results: dict, out: Path, args) -> None:
    lines = [f"Nano ablation: {args.steps} steps per arm at {args.resolution}², seed {args.seed}, validation split.",
             ""]
    payload = {"steps": args.steps, "resolution": args.resolution, "seed": args.seed, "arms": {}}
    for deg in DEGRADATIONS:
        lines += [f"Degradation: {deg}", "", "| arm | " + " | ".join(METRICS) + " | s/step |",
                  "|---|" + "---|" * (len(METRICS) + 1)]
        lq = None
        for name, rows in results.items():
            for (d, method), values in rows.items():
                if d != deg:
                    continue
                values = dict(values)
                per_face = values.pop("_per_face", None)
                if per_face:
                    payload.setdefault("per_face", {}).setdefault("lq" if method == "LQ input" else name, {})[deg] = \
                        per_face
                if method == "LQ input":
                    lq = values
                    continue
                timing = json.loads((out / name / "time.json").read_text()) if (out / name / "time.json").is_file() \
                    else {}
                per_step = f"{timing['seconds'] / timing['steps']:.2f}" if timing and not timing.get("resumed") \
                    else "n/a"
                lines.append(f"| {name} | " + " | ".join(_fmt(values[m]) for m in METRICS) + f" | {per_step} |")
                payload["arms"].setdefault(name, {})[deg] = values
        if lq is not None:
            lines.append("| LQ input | " + " | ".join(_fmt(lq[m]) for m in METRICS) + " | |")
            payload.setdefault("lq", {})[deg] = lq
        lines.append("")
    (out / "report.md").write_text("\n".join(lines))
    (out / "report.json").write_text(json.dumps(payload, indent=1) + "\n")
    print("\n".join(lines))
    return payload


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.4f}" if abs(v) < 1 else f"{v:.2f}"


if __name__ == "__main__":
    sys.exit(main())
