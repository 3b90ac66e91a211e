"""Compare a trained nano model with the bundled one on the validation split, and install it as the bundled default
when it is better.

    python scripts/finalize_nano.py --model runs/nano-v2/final --faces ../shared/data/faces --work runs/nano-eval \
        [--install osdface/assets/osdface-nano] [--training-note "..."] [--ablation benchmarks/results/ablation.md]

1. The validation side of ``osdface.data.split_files`` (never trained on) is degraded twice at seed 0 with
   :func:`osdface.eval.evaluate_model.evaluate_model`: with docs/ARCHITECTURE.md §4's ranges ("spec") and a milder set
   (blur σ 1–3, down-sampling 2–4×, noise ≤ 10, JPEG 60–90; ``scripts/ablation.py``'s ``MILD``).
2. Both models restore both sets; PSNR/SSIM (Y and RGB), LMD, Deg-dlib (identity angle, dlib's network) and HF-ratio
   (sharpness: output high-frequency energy over the ground truth's; 1 = as sharp) are reported with the LQ input as a
   baseline row. Grids stay under ``--work`` (they show data photos: never in the repository).
3. The rule (issue 16): the candidate replaces the bundled model when, on both degradations, its identity angle is
   lower, its HF-ratio is closer to 1, its PSNR is at most 0.5 dB below the bundled model's, and it shows no latent
   grid (``Grid`` at most the ground truth's + 0.1: a 4-px pattern raises HF-ratio without restoring anything). With ``--install``
   and the rule met (or ``--force``), the candidate is written there with a model card: the objective and λs from
   its training config, the ablation table, the comparison, time and the data's terms.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

METRICS = ["PSNR", "SSIM", "PSNR-RGB", "LMD", "Deg-dlib", "HF-ratio", "Grid"]
from osdface.data.degradations import MILD  # noqa: E402
DEGRADATIONS = {"spec": None, "mild": MILD}
MAX_PSNR_LOSS = 0.5


def evaluate(name: str, model: str, faces: str, work: Path) -> dict:
    """{degradation: {"model": row, "lq": row}} for one model."""
    from osdface.eval.evaluate_model import evaluate_model
    from osdface.eval.sharpness import folder_grid

    rows = {}
    for deg, config in DEGRADATIONS.items():
        report, _ = evaluate_model(model, faces, work / f"{name}-{deg}", split="val", seed=0, metrics=METRICS,
                                   degradation=config, overwrite=True, grid=8, log=lambda line: None)
        by_name = {m.name: m.summary for m in report.methods}
        rows[deg] = {"model": next(v for k, v in by_name.items() if k != "LQ input"), "lq": by_name["LQ input"],
                     "gt_grid": folder_grid(work / f"{name}-{deg}" / "bench" / "hq")}
    return rows


def verdict(new: dict, old: dict) -> tuple[bool, list[str]]:
    ok, lines = True, []
    for deg in DEGRADATIONS:
        a, b = new[deg]["model"], old[deg]["model"]
        ident = a["Deg-dlib"] < b["Deg-dlib"]
        sharp = abs(1 - a["HF-ratio"]) < abs(1 - b["HF-ratio"])
        psnr = a["PSNR"] >= b["PSNR"] - MAX_PSNR_LOSS and a["PSNR-RGB"] >= b["PSNR-RGB"] - MAX_PSNR_LOSS
        clean = a["Grid"] <= new[deg]["gt_grid"] + 0.1
        ok &= ident and sharp and psnr and clean
        lines.append(f"{deg}: identity {b['Deg-dlib']:.2f}° → {a['Deg-dlib']:.2f}° ({'better' if ident else 'NOT better'}),"
                     f" HF-ratio {b['HF-ratio']:.3f} → {a['HF-ratio']:.3f} ({'sharper' if sharp else 'NOT sharper'}),"
                     f" PSNR {b['PSNR']:.2f} → {a['PSNR']:.2f} dB, RGB {b['PSNR-RGB']:.2f} → {a['PSNR-RGB']:.2f} dB"
                     f" ({'within' if psnr else 'MORE than'} {MAX_PSNR_LOSS} dB), grid {a['Grid']:.2f} (ground truth "
                     f"{new[deg]['gt_grid']:.2f}: {'none' if clean else 'A LATENT GRID'})")
    return ok, lines


def table(new: dict, old: dict, labels=("candidate", "bundled nano")) -> str:
    fmt = lambda m, v: "n/a" if v is None else f"{v:.4f}" if m.startswith("SSIM") or m == "HF-ratio" else f"{v:.2f}"  # noqa: E731
    out = []
    for deg in DEGRADATIONS:
        out += [f"**{deg}** degradation" + (" (docs/ARCHITECTURE.md §4)" if deg == "spec" else
                                            " (blur σ 1–3, down-sampling 2–4×, noise ≤ 10, JPEG 60–90)"), "",
                "| | " + " | ".join(METRICS) + " |", "|---|" + "---|" * len(METRICS)]
        for label, row in ((f"{labels[0]} (this model)", new[deg]["model"]), (labels[1], old[deg]["model"]),
                           ("LQ input", new[deg]["lq"])):
            out.append(f"| {label} | " + " | ".join(fmt(m, row.get(m)) for m in METRICS) + " |")
        out.append("")
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="the candidate model folder (a training run's final/)")
    p.add_argument("--baseline", default=None, help="the model to beat (default: the bundled nano)")
    p.add_argument("--labels", nargs=2, default=("candidate", "bundled nano"), metavar=("CANDIDATE", "BASELINE"),
                   help="row names in the tables and the card (e.g. 'nano v2' 'nano v1 (L2 only)')")
    p.add_argument("--faces", required=True)
    p.add_argument("--work", required=True, help="scratch folder for the restored sets, reports and grids")
    p.add_argument("--install", default=None, help="write the model folder + card here when it is better")
    p.add_argument("--force", action="store_true", help="install even when the rule is not met")
    p.add_argument("--training-note", default="", help="training facts for the card (steps, wall time, machine)")
    p.add_argument("--cpu-bf16", action="store_true",
                   help="mark the model safe for bf16 on CPUs (measure first: benchmarks/precision.py)")
    p.add_argument("--ablation", default=None, help="a markdown table to include (benchmarks/results/ablation.md)")
    args = p.parse_args(argv)

    from osdface import OSDFacePipeline
    from osdface.weights import BUNDLED_NANO

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    baseline = args.baseline or str(BUNDLED_NANO)
    old = evaluate("baseline", baseline, args.faces, work)
    new = evaluate("candidate", args.model, args.faces, work)
    ok, lines = verdict(new, old)
    text = table(new, old, args.labels)
    print(text)
    print("\n".join(lines))
    print("verdict:", "the candidate is better" if ok else "keep the baseline")
    (work / "comparison.json").write_text(json.dumps({"candidate": new, "baseline": old, "better": ok,
                                                      "lines": lines}, indent=1) + "\n")
    (work / "comparison.md").write_text(text + "\n" + "\n".join(lines) + "\n")
    if not args.install or not (ok or args.force):
        return 0 if ok else 1

    import yaml

    pipe = OSDFacePipeline.from_pretrained(args.model)
    run_cfg = {}
    cfg_file = Path(args.model).parent / "config.yaml"
    if cfg_file.is_file():
        run_cfg = yaml.safe_load(cfg_file.read_text())
    old_card = (OSDFacePipeline.from_pretrained(baseline).config.extra or {}).get("card", {})
    lam = lambda k: run_cfg.get(k, "?")  # noqa: E731
    objective = (f"L = λ_2·L2 + λ_ID·ID + λ_edge·Sobel-L1 + λ_G·GAN with λ_2 = {lam('l2_weight')}, λ_ID = "
                 f"{lam('identity_weight')} (identity network: {lam('identity_network')}'s face-recognition ResNet, "
                 f"ported to PyTorch, CC0), λ_edge = {lam('edge_weight')} (the edge-aware part of EA-DISTS without its "
                 f"VGG network: L1 between Sobel maps), λ_G = {lam('gan_weight')} (the latent discriminator conditioned "
                 f"on the VRE prompt, from step {lam('gan_start')}, ramped over {lam('gan_ramp')} steps, every "
                 f"{lam('gan_every')}th step with weight ×{lam('gan_every')}; discriminator lr "
                 f"{lam('disc_learning_rate')}); λ_per (EA-DISTS) = 0: no VGG weights offline.")
    card = {
        "Weights": ("Trained by osdface's own training code on 2 CPU cores: nano v1 (stages 0, 1, 2 from scratch, L2 "
                    "only) fine-tuned with the paper's objective as far as it exists offline (v2). A small CPU model "
                    "for classrooms, tests and offline demos — not the paper's model: for the paper's quality convert "
                    "the authors' sd21 weights (see the osdface README)."),
        "Training data and its terms": old_card.get("Training data and its terms", ""),
        "Objective (v2)": objective,
        "Training": (("" if "\n\nv2: " in old_card.get("Training", "") else
                      "v1: the three commands of the osdface README's training section (`osdface train-vae`, "
                      "`train-vre`, `train --config nano`). ")
                     + old_card.get("Training", "").split("```")[-1].split("\n\nv2: ")[0].strip()
                     + "\n\nv2: "
                     f"{run_cfg.get('max_steps', '?')} steps from v1 at {run_cfg.get('resolution', '?')}², batch "
                     f"{run_cfg.get('batch_size', '?')}, lr {run_cfg.get('learning_rate', '?')} (cosine), seed "
                     f"{run_cfg.get('seed', '?')}, {run_cfg.get('mixed_precision', 'no')} autocast; "
                     + args.training_note),
        "Evaluation": ("The 36 validation faces (never trained on), degraded at seed 0 twice; `python "
                       "scripts/finalize_nano.py` reproduces it. PSNR/SSIM on Y (BT.601), PSNR-RGB, 0–255, no border "
                       "crop; LMD: dlib 68-point landmark distance (px); Deg-dlib: angle between dlib face-recognition "
                       "embeddings (degrees; not the paper's ArcFace Deg); HF-ratio: high-frequency energy of the "
                       "output over the ground truth's (1 = as sharp as the ground truth; noise raises it too); Grid: "
                       "RMS of the mean 8×8 tile (a pattern locked to the latent grid raises it).\n\n" + text
                       + "\n" + "\n".join(f"- {x}" for x in lines)),
    }
    from osdface.model_card import networks_that_shaped

    shaped = networks_that_shaped(run_cfg)
    card["Networks that shaped the weights"] = ("\n".join(f"- {x}" for x in shaped) if shaped else
                                                "None: only the training data and the L2/edge terms.")
    if args.ablation and Path(args.ablation).is_file():  # its own title line dropped: the card names the section
        card["Ablation (paper Tables 3–4 in miniature)"] = Path(args.ablation).read_text().split("\n", 1)[1].strip()
    card["What it can and cannot do"] = (
        "Trained for about an hour and a half on 2 CPU cores on a few hundred faces: it removes noise, blocking and "
        "some blur, and the identity and edge terms make eyes, mouths and hair edges crisper than v1's L2-only "
        "smoothing, but it does not invent the detail a large model does, and on heavy degradations it stays "
        "blurred. Trained on mostly frontal celebrity faces: expect worse results on other demographics, ages, "
        "poses and lighting than those in the data. Restoration invents plausible detail: never use its output as "
        "evidence or to identify anyone.")
    pipe.config.extra = {"title": "OSDFace nano v2 (trained on CPU)", "card": card,
                         "evaluation": {"split": "val", "n_images": 36, "seed": 0, "candidate": new,
                                        "baseline": old}}
    pipe.config.license = "other"
    pipe.config.cpu_bf16 = bool(args.cpu_bf16)
    install = Path(args.install)
    tmp = install.with_name(install.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    pipe.save_pretrained(tmp, repo_id=args.install,  # the card's usage lines name the final folder, not tmp
                         license_name="non-commercial-research",
                         license_link="https://github.com/NVlabs/ffhq-dataset/blob/master/LICENSE.txt")
    backup = install.with_name(install.name + ".previous")
    shutil.rmtree(backup, ignore_errors=True)
    if install.exists():
        install.rename(backup)  # never lose the previous model before the new one is in place
    try:
        tmp.rename(install)
    except OSError:
        if backup.exists():
            backup.rename(install)
        raise
    shutil.rmtree(backup, ignore_errors=True)
    print(f"installed {install}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
