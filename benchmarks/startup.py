"""Start-up and per-face cost of the command line, as a user meets it: wall time of whole commands in fresh processes.

    python benchmarks/startup.py                              # this checkout
    python benchmarks/startup.py --checkout ../old-checkout   # another checkout of osdface (e.g. before a change)
    osdface export-onnx --model osdface/assets/osdface-nano --out nano-onnx && python benchmarks/startup.py --onnx nano-onnx
    python benchmarks/startup.py --backend torch --label "torch"  # the torch backend's rows

Figures are added to benchmarks/results/startup.json under ``--label`` with the date, the machine, the versions and
the load average before and after (timings on a busy machine are noisy: the CPU seconds less so).

Rows: ``import osdface``; ``osdface --help``; ``osdface restore --help``; an argument error; a one-face
``osdface restore --has_aligned`` (the bundled model, default dtype) end to end; the marginal time per face (restoring
``--faces`` copies of the example crop minus restoring one, divided by the extra faces). Each command runs
``--repeats`` times; the median is printed (wall seconds, and the process's user+system CPU seconds, which depend
less on what else the machine is doing). Commands run as ``python -m osdface`` from the checkout, so that
checkout's package is the one imported.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(cmd: list[str], cwd: Path) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of the child, return code)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.returncode


def median_of(cmd, cwd, repeats):
    runs = [run(cmd, cwd) for _ in range(repeats)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs), runs[-1][2]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkout", default=str(REPO), help="the osdface checkout to time (default: this one)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--faces", type=int, default=8, help="faces for the marginal-cost row")
    p.add_argument("--extra", nargs="*", default=[], help="extra options for the restore rows (e.g. --dtype fp32)")
    p.add_argument("--backend", default=None, choices=("auto", "torch", "onnx"),
                   help="restore rows with this --backend (default: the command's default, auto)")
    p.add_argument("--label", default=None, help="name of this measurement in the result file (default: the options)")
    p.add_argument("--results", default=str(REPO / "benchmarks" / "results" / "startup.json"),
                   help="JSON file the figures are added to (one entry per --label; written atomically)")
    p.add_argument("--onnx", default=None, metavar="DIR",
                   help="time the restore rows on the ONNX backend with this `osdface export-onnx` folder")
    args = p.parse_args(argv)
    if args.backend:
        args.extra += ["--backend", args.backend]
    if args.onnx:
        args.extra += ["--backend", "onnx", "--model", str(Path(args.onnx).resolve())]
    root = Path(args.checkout).resolve()
    py = [sys.executable]
    face = REPO / "examples" / "astronaut_face_lq.png"
    tmp = Path(tempfile.mkdtemp(prefix="osdface-startup-"))
    many = tmp / "many"
    many.mkdir()
    for i in range(args.faces):
        shutil.copy(face, many / f"face_{i:02d}.png")
    rows = [
        ("import osdface", py + ["-c", "import osdface"]),
        ("osdface --help", py + ["-m", "osdface", "--help"]),
        ("osdface restore --help", py + ["-m", "osdface", "restore", "--help"]),
        ("argument error", py + ["-m", "osdface", "restore", "-i", str(face)]),
        ("restore 1 face", py + ["-m", "osdface", "restore", "-i", str(face), "-o", str(tmp / "o1"), "--has_aligned",
                                 "-q", *args.extra]),
        (f"restore {args.faces} faces", py + ["-m", "osdface", "restore", "-i", str(many), "-o", str(tmp / "o8"),
                                              "--has_aligned", "-q", *args.extra]),
    ]
    load_before = os.getloadavg()
    print(f"checkout {root}; median of {args.repeats}; {os.cpu_count()} CPUs; {' '.join(args.extra) or 'defaults'}; "
          f"load average {load_before[0]:.2f}")
    print("| command | wall s | CPU s |\n|---|---|---|")
    results = {}
    for name, cmd in rows:
        wall, cpu, rc = median_of(cmd, root, args.repeats)
        results[name] = (wall, cpu)
        print(f"| {name} | {wall:.2f} | {cpu:.2f} |" + ("" if rc in (0, 2) else f" (exit {rc})"), flush=True)
    one, many_ = results["restore 1 face"], results[f"restore {args.faces} faces"]
    k = args.faces - 1
    marginal = ((many_[0] - one[0]) / k, (many_[1] - one[1]) / k)
    print(f"| marginal per face | {marginal[0]:.3f} | {marginal[1]:.3f} |")
    shutil.rmtree(tmp, ignore_errors=True)
    write_result(Path(args.results), args.label or (" ".join(args.extra) or "defaults"), {
        "checkout": str(root), "options": args.extra, "repeats": args.repeats, "faces": args.faces,
        "rows": {name: {"wall_s": round(w, 3), "cpu_s": round(c, 3)} for name, (w, c) in results.items()},
        "marginal_per_face": {"wall_s": round(marginal[0], 3), "cpu_s": round(marginal[1], 3)},
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
    })
    return 0


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for dist in ("torch", "diffusers", "peft", "transformers", "onnxruntime", "numpy"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    return out


def write_result(path: Path, label: str, entry: dict) -> None:
    """Add (or replace) ``label``'s entry in the JSON result file, with the machine, the date and the versions."""
    data = json.loads(path.read_text()) if path.is_file() else {"runs": {}}
    entry = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
             "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                         "platform": platform.platform()},
             "versions": _versions(), **entry}
    data.setdefault("runs", {})[label] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
    print(f"written to {path} ({label!r})")


if __name__ == "__main__":
    sys.exit(main())
