"""MkDocs hook: the benchmark pages' numbers and charts, rendered from ``benchmarks/results/`` at build time.

A page asks for a result with a marker line ``<!-- results: KIND -->`` (KIND: gpu, detectors, ablation, startup, peers, other,
screenshots);
the marker is replaced by tables (and charts, written as generated SVG files) made from the result files, with the
machine, the date (the file's own, else the date git last changed it) and the library versions that produced
them. A number whose file records a torch older than the one ``requirements.txt`` pins is marked as such. A
marker whose files are missing prints that no result file exists, never a number. The demo's screenshots are
taken from ``$OSDFACE_ARTIFACTS`` (default ``artifacts/``) when the browser test has made them.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
MARKER = re.compile(r"^<!-- results: ([a-z_]+) -->$", re.M)
HANDLED = {"ablation.json", "ablation.md", "detectors.md", "startup.json", "peers.json"}  # + every GPU-speed .jsonl (see _gpu_files)
_charts: dict[str, bytes] = {}


# ------------------------------------------------------------------------------------------------ facts
def pinned(package: str) -> str | None:
    text = (REPO / "requirements.txt").read_text(encoding="utf-8")
    m = re.search(rf"^{re.escape(package)}==([^\s#]+)", text, re.M | re.I)
    return m.group(1) if m else None


def file_date(path: Path) -> str:
    """The date git last changed ``path`` (YYYY-MM-DD), else "not recorded"."""
    try:
        out = subprocess.run(["git", "log", "-1", "--format=%cs", "--", str(path.relative_to(REPO))], cwd=REPO,
                             capture_output=True, text=True, timeout=30)
        return out.stdout.strip() or "not recorded"
    except (OSError, ValueError, subprocess.SubprocessError):  # no git, or a file outside the repository
        return "not recorded"


def _base_version(v: str) -> tuple:
    return tuple(int(x) for x in re.findall(r"\d+", v.split("+")[0])[:3])


def staleness(torch_version: str | None) -> str:
    pin = pinned("torch")
    if not torch_version:
        return ('!!! note "Versions not recorded"\n    This file does not record the torch version that produced '
                f"it; the pins now say torch {pin}.\n")
    if pin and _base_version(torch_version) < _base_version(pin):
        return (f'!!! warning "Older than the pins"\n    Measured with torch {torch_version}; `requirements.txt` '
                f"now pins torch {pin}. Rerun the command to refresh these numbers.\n")
    return ""


# how a result file written as prose names a package (as "name 1.2.3"), and the requirement that pins it
PROSE_NAMES = {"torch": "torch", "onnxruntime": "onnxruntime", "dlib": "dlib-bin", "OpenCV": "opencv-python",
               "numpy": "numpy", "diffusers": "diffusers"}


def older_than_pins(text: str) -> str:
    """A warning naming every "package X.Y.Z" in ``text`` older than ``requirements.txt``'s pin; "" when none is."""
    old = []
    for name, requirement in PROSE_NAMES.items():
        pin = pinned(requirement)
        for v in re.findall(rf"\b{re.escape(name)} (\d+\.\d+(?:\.\d+)?)", text):
            if pin and _base_version(v) < _base_version(pin):
                old.append(f"{name} {v} (pinned now: {pin})")
    if not old:
        return ""
    return ('!!! warning "Older than the pins"\n    Measured with ' + ", ".join(sorted(set(old)))
            + ". Rerun the command to refresh these numbers.\n")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("{")]


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _num(v, digits=3):
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 1000 else f"{v:,.0f}"
    return "—" if v is None else str(v)


# ------------------------------------------------------------------------------------------------ charts
def _svg(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def _gpu_files() -> list[Path]:
    out = []
    for p in sorted(RESULTS.glob("*.jsonl")):
        rows = read_jsonl(p)
        if rows and rows[0].get("check") == "device":
            out.append(p)
    return out


def gpu_chart() -> bytes | None:
    bars = []
    for p in _gpu_files():
        rows = read_jsonl(p)
        device = rows[0].get("name", p.stem)
        for r in rows:
            if r.get("check") == "speed" and r.get("batch") == 8 and r.get("cudnn_benchmark", True):
                label = (f"{device.replace('NVIDIA ', '').replace(' 80GB HBM3', '')} {r['preset']} {r['dtype']} "
                         f"{'CL' if r['layout'] == 'channels_last' else 'NCHW'}{' compiled' if r['compiled'] else ''}")
                bars.append((label, 1000 * r["seconds_per_face"], p.stem))
    if not bars:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [b[0] for b in bars]
    bars = sorted(((f"{lab} ({stem})" if labels.count(lab) > 1 else lab, v) for lab, v, stem in bars),
                  key=lambda kv: kv[1])
    fig, ax = plt.subplots(figsize=(7, 0.32 * len(bars) + 1))
    ax.barh([b[0] for b in bars], [b[1] for b in bars], color="#3f51b5")
    for i, (_, v) in enumerate(bars):
        ax.text(v, i, f" {v:.1f}", va="center", fontsize=8)
    ax.set_xlabel("milliseconds per 512² face, batch 8 (lower is faster)")
    ax.tick_params(axis="y", labelsize=8)
    return _svg(fig)


def ablation_chart() -> bytes | None:
    path = RESULTS / "ablation.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    arms = list(data["arms"]) + ["LQ input"]
    metrics = [("PSNR", "PSNR (dB, higher is better)"), ("Deg-dlib", "identity angle (°, lower is closer)"),
               ("HF-ratio", "HF-ratio (sharpness, 1 = as the ground truth)")]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    x = np.arange(len(arms))
    for ax, (key, title) in zip(axes, metrics):
        for k, (deg, colour) in enumerate((("spec", "#3f51b5"), ("mild", "#ff9800"))):
            vals = [(data["arms"][a] if a in data["arms"] else data["lq"])[deg][key] for a in arms]
            ax.bar(x + (k - 0.5) * 0.38, vals, 0.38, label=deg, color=colour)
        ax.set_title(title, fontsize=9)
        ax.set_xticks(x, arms, rotation=35, ha="right", fontsize=8)
        if key == "PSNR":
            lo = min(min(v[key] for v in d.values()) for d in [*data["arms"].values(), data["lq"]] for _ in [0])
            ax.set_ylim(lo - 1.5, None)
    axes[0].legend(fontsize=8, title="degradation", title_fontsize=8)
    return _svg(fig)


# ------------------------------------------------------------------------------------------------ renderers
def render_gpu() -> str:
    files = _gpu_files()
    if not files:
        return "No GPU result file is in `benchmarks/results/`; nothing is printed.\n"
    parts = []
    if "gpu_speed.svg" in _charts:
        parts.append("![Milliseconds per face at batch 8, every GPU result file](../assets/generated/gpu_speed.svg)\n")
    for p in files:
        rows = read_jsonl(p)
        dev = rows[0]
        parts.append(f"### {dev.get('name', '?')}: {dev.get('preset', '')} (`benchmarks/results/{p.name}`)\n")
        parts.append(f"Machine: {dev.get('name', 'not recorded')}. Date: {dev.get('date') or file_date(p)}. "
                     f"Versions: torch {dev.get('torch', 'not recorded')}.\n")
        parts.append(staleness(dev.get("torch")))
        speed = [r for r in rows if r.get("check") == "speed"]
        if speed:
            parts.append(table(
                ["preset", "dtype", "layout", "compiled", "batch", "ms per face", "peak MiB", "cuDNN autotune"],
                [[r["preset"], r["dtype"], r["layout"], "yes" if r["compiled"] else "no", r["batch"],
                  f"{1000 * r['seconds_per_face']:.1f}", _num(r.get("peak_memory_mb")),
                  "yes" if r.get("cudnn_benchmark") else "no"] for r in speed]))
        e2e = [r for r in rows if r.get("check") == "end to end"]
        if e2e:
            parts.append("End to end, `pipe(PIL images)` → PIL images:\n")
            parts.append(table(["preset", "dtype", "layout", "compiled", "batch", "ms per face", "model only ms"],
                               [[r["preset"], r["dtype"], r["layout"], "yes" if r["compiled"] else "no", r["batch"],
                                 f"{1000 * r['seconds_per_face']:.1f}",
                                 f"{1000 * r['model_only_seconds_per_face']:.1f}"] for r in e2e]))
        parity = [r for r in rows if r.get("check") not in ("speed", "end to end", "device")]
        if parity:
            parts.append("Parity checks (the same inputs through two paths):\n")
            parts.append(table(["check", "preset", "max abs", "PSNR dB"],
                               [[r["check"], r.get("preset", ""), _num(r.get("max_abs")), _num(r.get("psnr_db"))]
                                for r in parity]))
    return "\n".join(parts)


def _include_md(path: Path) -> str:
    """A result file written as markdown, its title dropped and its headings moved two levels down."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    return "\n".join(("##" + line) if line.startswith("#") else line for line in lines) + "\n"


def render_detectors() -> str:
    path = RESULTS / "detectors.md"
    if not path.is_file():
        return "No result file `benchmarks/results/detectors.md`; nothing is printed.\n"
    text = path.read_text(encoding="utf-8")
    return (f"From `benchmarks/results/{path.name}` (last changed {file_date(path)}; the machine and versions are "
            f"in its text).\n\n{older_than_pins(text)}\n" + _include_md(path))


def render_ablation() -> str:
    path = RESULTS / "ablation.json"
    if not path.is_file():
        return "No result file `benchmarks/results/ablation.json`; nothing is printed.\n"
    data = json.loads(path.read_text(encoding="utf-8"))
    parts = [f"From `benchmarks/results/{path.name}` (last changed {file_date(path)}): {data.get('steps')} steps "
             f"at {data.get('resolution')}², seed {data.get('seed')}.\n"]
    if "ablation.svg" in _charts:
        parts.append("![PSNR, identity angle and sharpness of each arm](../assets/generated/ablation.svg)\n")
    metrics = list(next(iter(data["arms"].values()))["spec"])
    for deg in ("spec", "mild"):
        rows = [[arm] + [_num(v[deg][m], 4) for m in metrics] for arm, v in data["arms"].items()]
        rows.append(["LQ input"] + [_num(data["lq"][deg][m], 4) for m in metrics])
        parts.append(f"**Degradation: {deg}**\n\n" + table(["arm"] + metrics, rows))
    if data.get("notes"):
        parts.append(f"How it was made: {data['notes']}\n")
    md = RESULTS / "ablation.md"
    if md.is_file():
        paragraphs = [p for p in md.read_text(encoding="utf-8").split("\n\n") if p and not p.startswith("#")]
        if paragraphs:
            parts.append("What the arms are (from `benchmarks/results/ablation.md`):\n\n" + paragraphs[0] + "\n")
    return "\n".join(parts)


def render_other() -> str:
    """Every result file no other marker renders: its machine / date / versions fields and its rows."""
    handled = HANDLED | {p.name for p in _gpu_files()}
    files = [p for p in sorted(RESULTS.glob("*")) if p.is_file() and p.name not in handled
             and p.suffix in (".json", ".jsonl", ".md")]
    if not files:
        return "No other result file.\n"
    parts = []
    for p in files:
        parts.append(f"### `benchmarks/results/{p.name}`\n")
        if p.suffix == ".md":
            parts.append(f"Last changed {file_date(p)}.\n\n{older_than_pins(p.read_text(encoding='utf-8'))}\n"
                         + _include_md(p))
            continue
        try:
            if p.suffix == ".jsonl":
                rows, meta = read_jsonl(p), {}
            else:
                data = json.loads(p.read_text(encoding="utf-8"))
                rows = data if isinstance(data, list) else data.get("rows") or data.get("results") or []
                meta = data if isinstance(data, dict) else {}
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            parts.append(f"Unreadable ({err.__class__.__name__}); nothing is printed.\n")
            continue
        first = rows[0] if rows and isinstance(rows[0], dict) else {}
        facts = {k: meta.get(k, first.get(k)) for k in ("machine", "device_name", "device", "cpu", "date", "versions",
                                                         "torch")}
        versions = facts["versions"] if isinstance(facts["versions"], dict) else {}
        torch_v = versions.get("torch") or facts["torch"]
        machine = facts["machine"] or facts["device_name"] or facts["cpu"] or facts["device"] or "not recorded"
        parts.append(f"Machine: {machine}. "
                     f"Date: {facts['date'] or file_date(p)}. Versions: "
                     f"{', '.join(f'{k} {v}' for k, v in versions.items()) or (f'torch {torch_v}' if torch_v else 'not recorded')}.\n")
        parts.append(staleness(torch_v))
        dict_rows = [r for r in rows if isinstance(r, dict)]
        if dict_rows:
            cols = [k for k in dict_rows[0] if all(not isinstance(r.get(k), (dict, list)) for r in dict_rows)
                    and k not in ("machine", "versions", "date")][:10]
            parts.append(table(cols, [[_num(r.get(c)) for c in cols] for r in dict_rows[:60]]))
            if len(dict_rows) > 60:
                parts.append(f"(first 60 of {len(dict_rows)} rows)\n")
    return "\n".join(parts)


def render_startup() -> str:
    """benchmarks/results/startup.json (``benchmarks/startup.py``): one table per measurement, with its load."""
    p = RESULTS / "startup.json"
    if not p.is_file():
        return "*(No `benchmarks/results/startup.json` yet: `python benchmarks/startup.py` writes it.)*\n"
    runs = json.loads(p.read_text(encoding="utf-8")).get("runs", {})
    parts = []
    for label, run in runs.items():
        versions = run.get("versions") or {}
        machine = run.get("machine") or {}
        load = (run.get("load_average_before") or [None])[0]
        parts.append(f"**{label}**: {machine.get('cpus', '?')} CPUs, load average {load} before the run, "
                     f"median of {run.get('repeats', '?')}; {run.get('date', file_date(p))}; "
                     + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".\n")
        parts.append(staleness(versions.get("torch")))
        rows = [[name, _num(r.get("wall_s")), _num(r.get("cpu_s"))] for name, r in (run.get("rows") or {}).items()]
        marginal = run.get("marginal_per_face") or {}
        if marginal:
            rows.append(["marginal per extra face", _num(marginal.get("wall_s")), _num(marginal.get("cpu_s"))])
        parts.append(table(["command", "wall s", "CPU s"], rows))
    return "\n".join(parts) or "No measurement in the file.\n"


def render_peers() -> str:
    """benchmarks/results/peers.json (``benchmarks/peers.py``): per degradation, every method's means and each model's
    difference from Real-ESRGAN with its bootstrap interval; "better"/"worse" only where the interval excludes 0."""
    p = RESULTS / "peers.json"
    if not p.is_file():
        return "*(No `benchmarks/results/peers.json` yet: `python benchmarks/peers.py --faces DIR` writes it.)*\n"
    data = json.loads(p.read_text(encoding="utf-8"))
    m = data.get("machine") or {}
    parts = [f"From `benchmarks/results/{p.name}` ({data.get('date', file_date(p))}; {m.get('cpu', '?')}, "
             f"{m.get('cores', '?')} cores, torch {m.get('torch', '?')}, osdface {data.get('osdface', '?')}; load "
             f"average {data.get('load_average', ['?'])[0]} at the start). Command: `{data.get('command', '')}`.\n",
             staleness(m.get("torch"))]
    metrics = data.get("metrics") or []
    lower_better = {"LMD", "Deg-dlib"}
    for deg, every in (data.get("results") or {}).items():
        rows = {k: v for k, v in every.items() if not k.startswith("_")}
        n = next(iter(rows.values())).get("faces", "?")
        body = [[name] + [_num(r["mean"].get(x), 4) for x in metrics] for name, r in rows.items()]
        gt = every.get("_gt_grid")
        parts.append(f"**Degradation: {deg}** ({n} validation faces"
                     + (f"; the ground truth's Grid: {_num(gt, 3)}" if gt is not None else "") + ")\n\n"
                     + table(["method"] + metrics, body))
        diffs = []
        for name, r in rows.items():
            for x, d in (r.get("minus_realesrgan") or {}).items():
                lo, hi = d["ci95"]
                if x == "HF-ratio" or x == "Grid":
                    verdict = "higher" if lo > 0 else "lower" if hi < 0 else "not different"
                elif lo > 0 or hi < 0:
                    verdict = "better" if (lo > 0) != (x in lower_better) else "worse"
                else:
                    verdict = "not different"
                diffs.append([name, x, _num(d["mean"], 3), f"[{_num(lo, 3)}, {_num(hi, 3)}]", verdict])
        if diffs:
            parts.append(table(["model", "metric", "minus Real-ESRGAN", "95 % interval", "reading"], diffs))
    for v in data.get("rule") or []:
        parts.append(f"**{v['candidate']} against {v['baseline']}** (to replace it: identity not worse, HF-ratio up, "
                     f"PSNR at most 0.3 dB lower, no latent grid, on both degradations): "
                     f"{'meets the rule' if v['meets'] else 'does not meet the rule'}.\n\n"
                     + "\n".join(f"- {line}" for line in v["lines"]) + "\n")
    return "\n".join(parts)


SCREENSHOTS = {"app_initial.png": "The page as it opens", "app_photo.png": "A group photo restored",
               "app_aligned.png": "An aligned 64 px face at strength 0.5", "app_error.png": "An oversize upload refused",
               "app_mobile.png": "On a phone", "app_phone_first_screen.png": "A phone's first screen: upload and button",
               "app_photo_progress.png": "During a run: face k of n",
               "app_video_progress.png": "During a video run: frame k of n"}


def artifacts_dir() -> Path:
    return Path(os.environ.get("OSDFACE_ARTIFACTS") or REPO / "artifacts")


def render_screenshots() -> str:
    found = [n for n in SCREENSHOTS if f"screenshot_{n}" in _charts]
    if not found:
        return ("*(No screenshots in this build: they are made by `tests/test_app.py`'s browser test, which `.ci/run` "
                "runs before building the site.)*\n")
    # the page that asks for them (demo.md) is at the top of docs/
    return "\n".join(f"![{SCREENSHOTS[n]}](assets/generated/{n}){{ width=\"{320 if 'mobile' in n or 'phone' in n else 640}\" }}"
                      f"\n\n*{SCREENSHOTS[n]}.*\n" for n in found)


RENDERERS = {"screenshots": render_screenshots, "gpu": render_gpu, "detectors": render_detectors,
             "ablation": render_ablation, "other": render_other, "startup": render_startup, "peers": render_peers}


# ------------------------------------------------------------------------------------------------ MkDocs events
def on_files(files, config, **kwargs):
    from mkdocs.structure.files import File

    _charts.clear()
    for name, make in (("gpu_speed.svg", gpu_chart), ("ablation.svg", ablation_chart)):
        svg = make()
        if svg is not None:
            _charts[name] = svg
            files.append(File.generated(config, f"assets/generated/{name}", content=svg))
    for name in SCREENSHOTS:
        shot = artifacts_dir() / name
        if shot.is_file():
            _charts[f"screenshot_{name}"] = b""
            files.append(File.generated(config, f"assets/generated/{name}", abs_src_path=str(shot)))
    return files


def on_page_markdown(markdown, page, config, files, **kwargs):
    def replace(m):
        kind = m.group(1)
        if kind not in RENDERERS:
            raise ValueError(f"{page.file.src_uri}: unknown results marker {kind!r}; use one of {sorted(RENDERERS)}")
        return RENDERERS[kind]()

    return MARKER.sub(replace, markdown)
