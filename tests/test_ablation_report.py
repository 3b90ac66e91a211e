"""The ablation's report carries one value per validation face (paired across arms), and notebook 08's reading of a
report calls a difference better or worse only when a bootstrap over those faces excludes 0 (means alone: "not
tested")."""

import importlib.util
import json
from argparse import Namespace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
METRICS = ["PSNR", "SSIM", "LMD", "Deg-dlib", "HF-ratio", "Grid"]


def _ablation_module():
    spec = importlib.util.spec_from_file_location("ablation_script", REPO / "scripts" / "ablation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(psnr_faces):
    values = {m: 0.5 for m in METRICS}
    values["PSNR"] = float(np.mean(psnr_faces))
    values["_per_face"] = {"PSNR": list(map(float, psnr_faces)), "HF-ratio": [0.5] * len(psnr_faces)}
    return values


def _report(tmp_path, arms):
    ablation = _ablation_module()
    lq = np.array([20.0, 24.0, 28.0, 22.0, 26.0, 30.0])
    results = {name: {("spec", "model"): _row(lq + shift), ("spec", "LQ input"): _row(lq)}
               for name, shift in arms.items()}
    ablation.DEGRADATIONS = {"spec": None}
    ablation.write_table(results, tmp_path, Namespace(steps=1, resolution=64, seed=0))
    return json.loads((tmp_path / "report.json").read_text())


def test_report_holds_per_face_values_paired_across_arms(tmp_path):
    report = _report(tmp_path, {"a": np.array([1.0, 1.1, 0.9, 1.0, 1.2, 0.8]), "b": np.zeros(6)})
    assert set(report["per_face"]) == {"a", "b", "lq"}
    assert report["per_face"]["lq"]["spec"]["PSNR"] == [20.0, 24.0, 28.0, 22.0, 26.0, 30.0]
    assert len(report["per_face"]["a"]["spec"]["PSNR"]) == 6
    assert "_per_face" not in report["arms"]["a"]["spec"]  # the means stay what they were
    assert report["arms"]["a"]["spec"]["PSNR"] == np.mean(report["per_face"]["a"]["spec"]["PSNR"])


def _notebook_reading(report, capsys):
    """Run notebook 08's comparison cell on a report; its printed lines."""
    nb = json.loads((REPO / "notebooks" / "solutions" / "08_final_project.ipynb").read_text(encoding="utf-8"))
    cell = next("".join(c["source"]) for c in nb["cells"] if c["id"] == "c08-08")
    ns = {"np": np, "ablation": report, "ARMS": list(report["arms"]), "DEGS": ["spec"],
          "ARROW": {"PSNR": "↑", "SSIM": "↑", "LMD": "↓", "Deg-dlib": "↓", "HF-ratio": "→1"},
          "PLOTTED": {"PSNR": "", "HF-ratio": ""}}
    exec(compile(cell, "08:c08-08", "exec"), ns)
    return capsys.readouterr().out, ns


def test_notebook_08_calls_a_difference_better_only_beyond_the_noise(tmp_path, capsys):
    # arm "shifted": +1 dB on every face (a real gain); arm "noisy": ±2 dB around 0 (no gain); "same": identical
    report = _report(tmp_path, {"shifted": np.array([1.0, 1.1, 0.9, 1.0, 1.2, 0.8]),
                                "noisy": np.array([2.0, -2.0, 2.1, -1.9, 1.8, -2.0]), "same": np.zeros(6)})
    out, ns = _notebook_reading(report, capsys)
    assert "yes (bootstrap over faces)" in out
    line = lambda a, b: next(x for x in out.splitlines() if f"{a} − {b}" in x and "PSNR" not in x)  # noqa: E731
    assert line("shifted", "LQ input").endswith("better")
    assert line("noisy", "LQ input").endswith("within noise")
    assert line("same", "LQ input").endswith("within noise")
    assert line("noisy", "same").endswith("within noise")
    d, lo, hi = ns["bootstrap_diff"]([3.0, 4.0, 5.0], [2.0, 3.0, 4.0])
    assert d == 1.0 and lo == hi == 1.0
    # the same report without per-face values: every difference is "not tested", none is better or worse
    del report["per_face"]
    out, _ = _notebook_reading(report, capsys)
    assert "means only" in out
    rows = [x for x in out.splitlines() if x.startswith("    ") and " − " in x]
    assert rows and all(x.endswith("not tested") for x in rows)
