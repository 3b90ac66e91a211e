"""The README and the documentation keep their promises: the README is short and gives CI's commands word for word,
every command block of the getting-started page runs as written (or says what it needs that a test machine lacks),
and the user pages carry no project-internal words. (``mkdocs build --strict`` itself runs in ``.ci/run`` part 2.)"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
GETTING_STARTED = REPO / "docs" / "getting-started.md"

# "<!-- command: KIND -->" then a fenced block; KIND says what the test does with it
BLOCK = re.compile(r"<!-- command: ([^>]*?) -->\n```[a-z]*\n(.*?)\n```", re.S)
RUN = ("run", "run (with a generated clip.mp4)")
NOT_RUN = ("setup", "tests", "needs network (PyTorch's own package index)", "needs the authors' files and a GPU")


def ci_part1() -> dict[str, str]:
    """The set-up, restore and test lines of ``.ci/run``'s part 1."""
    text = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    part1 = text.split('echo "== 1.', 1)[1].split('echo "== part 1', 1)[0]
    lines = [line.strip() for line in part1.splitlines()]
    found = {"setup": [x for x in lines if x.startswith("python3 -m venv")],
             "restore": [x for x in lines if x.startswith("osdface restore")],
             "tests": [x for x in lines if x.startswith("python -m pytest")]}
    assert all(len(v) == 1 for v in found.values()), found
    return {k: v[0] for k, v in found.items()}


def code_lines(text: str) -> set[str]:
    blocks = re.findall(r"```[a-z]*\n(.*?)\n```", text, re.S)
    return {line.strip() for b in blocks for line in b.splitlines()}


def blocks() -> list[tuple[str, str]]:
    return BLOCK.findall(GETTING_STARTED.read_text(encoding="utf-8"))


def test_readme_is_short_and_gives_ci_commands_word_for_word():
    text = README.read_text(encoding="utf-8")
    assert len(text) <= 10_000, f"README.md has {len(text)} characters; the details belong in docs/"
    lines = code_lines(text)
    for name, command in ci_part1().items():
        assert command in lines, f"README.md lacks .ci/run's {name} line: {command}"


def test_getting_started_gives_ci_commands_and_marks_every_command_block():
    found = blocks()
    kinds = [k for k, _ in found]
    unknown = [k for k in kinds if k not in RUN + NOT_RUN]
    assert not unknown, f"unknown command kinds {unknown}: use one of {RUN + NOT_RUN}"
    ci = ci_part1()
    assert [b for k, b in found if k == "setup"] == [ci["setup"]]
    assert [b for k, b in found if k == "tests"] == [ci["tests"]]
    assert ci["restore"] in [b for k, b in found if k in RUN]
    # every bash block on the page is marked (a new command cannot slip in untested)
    text = GETTING_STARTED.read_text(encoding="utf-8")
    assert text.count("```bash") == len(found)


def _clip(path: Path) -> None:
    import numpy as np
    from PIL import Image

    from osdface.video.synthetic import synthetic_clip, write_clip

    face = np.asarray(Image.open(REPO / "examples" / "astronaut_face.png").convert("RGB"))
    write_clip(path, (f.lq for f in synthetic_clip(face, (128, 160), 6, seed=1)), audio=True)


@pytest.mark.parametrize("index", [i for i, (k, _) in enumerate(blocks()) if k in RUN])
def test_getting_started_command_runs_as_written(index, tmp_path):
    """Run in a scratch folder holding a link to ``examples/`` (and a generated clip where the block says so), with
    this checkout's package and the bundled model; the command must succeed and write its results under ``out/``."""
    kind, command = blocks()[index]
    os.symlink(REPO / "examples", tmp_path / "examples")
    if "clip.mp4" in kind:
        _clip(tmp_path / "clip.mp4")
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    env.pop("OSDFACE_MODEL", None)
    if shutil.which("osdface", path=env["PATH"]) is None:
        pytest.skip("the osdface command is not installed (pip install -e .)")
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, f"{command}\n{out.stderr[-2000:]}"
    written = [p for p in (tmp_path / "out").rglob("*") if p.is_file() and p.stat().st_size > 0]
    assert written, f"{command} wrote nothing under out/"
    expected = re.findall(r"`(out/[^`]+\.(?:png|mp4))`", GETTING_STARTED.read_text(encoding="utf-8"))
    named = [e for e in expected if Path(e).stem in command]
    for rel in named:
        assert (tmp_path / rel).is_file(), f"{command}: the page promises {rel}"


INTERNAL = [(re.compile(r"\bissues? \d+", re.I), "an issue number"),
            (re.compile(r"(?<![-\w])v[0-9]\b|nano v\d"), "an internal version name"),
            (re.compile(r"(?<![\w/.-])[0-9a-f]{7,40}(?![\w.-])"), "a commit id")]


def user_pages() -> list[Path]:
    pages = [README] + sorted((REPO / "docs").rglob("*.md"))
    # the changelog is the one page that names history; the course notebooks are checked by tests/test_notebooks.py
    return [p for p in pages if p.name != "changelog.md" and "notebooks" not in p.relative_to(REPO).parts]


@pytest.mark.parametrize("page", user_pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_user_pages_carry_no_internal_words(page):
    text = page.read_text(encoding="utf-8")
    text = re.sub(r"https?://\S+", "", text)  # addresses may hold hashes and versions of other projects
    for pattern, what in INTERNAL:
        hits = pattern.findall(text)
        assert not hits, f"{page.relative_to(REPO)} has {what}: {hits[:3]}"


def _hooks(results: Path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("docs_hooks", REPO / "docs" / "hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    hooks.RESULTS = results
    return hooks


def test_benchmark_pages_print_numbers_only_from_files_and_say_when_they_are_older_than_the_pins(tmp_path):
    hooks = _hooks(tmp_path)
    for kind in ("gpu", "detectors", "ablation"):
        text = hooks.RENDERERS[kind]()
        assert "nothing is printed" in text and not re.search(r"\d+\.\d", text), text
    pin = hooks.pinned("torch")
    rows = [{"check": "device", "name": "GPU X", "torch": "2.0.1+cu118", "preset": "sd21"},
            {"check": "speed", "preset": "sd21", "device": "cuda", "dtype": "fp16", "layout": "nchw", "compiled": False,
             "batch": 8, "size": 512, "seconds_per_face": 0.0123456, "peak_memory_mb": 100.0}]
    (tmp_path / "x.jsonl").write_text("\n".join(__import__("json").dumps(r) for r in rows) + "\n")
    text = hooks.RENDERERS["gpu"]()
    assert "GPU X" in text and "12.3" in text and "Older than the pins" in text and pin in text
    rows[0]["torch"] = pin
    (tmp_path / "x.jsonl").write_text("\n".join(__import__("json").dumps(r) for r in rows) + "\n")
    assert "Older than the pins" not in hooks.RENDERERS["gpu"]()
    # a file no page knows yet still appears, with what it records about where and when it was measured
    (tmp_path / "unknown.json").write_text('{"machine": "CPU Y", "date": "2027-01-02", "versions": {"torch": "1.0"},'
                                           ' "rows": [{"command": "osdface --help", "seconds": 0.5}]}')
    (tmp_path / "notes.md").write_text("# Notes\n\nMeasured with onnxruntime 1.0.0 and numpy 99.0.\n")
    text = hooks.RENDERERS["other"]()
    assert "onnxruntime 1.0.0 (pinned now" in text and "numpy 99.0 (pinned" not in text  # newer is not older
    assert "CPU Y" in text and "2027-01-02" in text and "osdface --help" in text and "Older than the pins" in text


def test_startup_page_prints_each_measurement_with_its_load(tmp_path):
    hooks = _hooks(tmp_path)
    assert "No `benchmarks/results/startup.json`" in hooks.RENDERERS["startup"]()
    (tmp_path / "startup.json").write_text(
        '{"runs": {"quiet": {"date": "2027-01-02", "machine": {"cpus": 2}, "versions": {"torch": "1.0"}, "repeats": 5,'
        ' "load_average_before": [0.4, 0.5, 0.6], "rows": {"restore 1 face": {"wall_s": 1.01, "cpu_s": 1.68}},'
        ' "marginal_per_face": {"wall_s": 0.305, "cpu_s": 0.6}}}}')
    text = hooks.RENDERERS["startup"]()
    assert "**quiet**" in text and "load average 0.4" in text and "| restore 1 face | 1.01 |" in text
    assert "marginal per extra face" in text and "Older than the pins" in text


def test_peers_page_calls_a_difference_only_when_its_interval_leaves_out_zero(tmp_path):
    import json

    hooks = _hooks(tmp_path)
    assert "No `benchmarks/results/peers.json`" in hooks.RENDERERS["peers"]()

    def diff(mean, lo, hi):
        return {"mean": mean, "ci95": [lo, hi]}

    rows = {"nano": {"faces": 36, "mean": {"PSNR": 29.0, "Deg-dlib": 14.0},
                     "minus_realesrgan": {"PSNR": diff(1.2, 0.8, 1.6), "Deg-dlib": diff(0.5, 0.1, 0.9)}},
            "cand": {"faces": 36, "mean": {"PSNR": 28.5, "Deg-dlib": 13.0},
                     "minus_realesrgan": {"PSNR": diff(0.1, -0.2, 0.4), "Deg-dlib": diff(-1.0, -1.5, -0.5)}},
            "Real-ESRGAN x4plus": {"faces": 36, "mean": {"PSNR": 27.8, "Deg-dlib": 13.5}}}
    (tmp_path / "peers.json").write_text(json.dumps({
        "date": "2027-01-02", "machine": {"cpu": "CPU Z", "cores": 2, "torch": "1.0"}, "metrics": ["PSNR", "Deg-dlib"],
        "load_average": [0.3], "results": {"mild": {**rows, "_gt_grid": 0.25}},
        "rule": [{"candidate": "cand", "baseline": "nano", "meets": False, "lines": ["mild: identity WORSE"]}]}))
    text = hooks.RENDERERS["peers"]()
    assert "CPU Z" in text and "2027-01-02" in text and "(36 validation faces;" in text and "Older than the pins" in text
    assert "| nano | PSNR | 1.2 | [0.8, 1.6] | better |" in text
    assert "| nano | Deg-dlib | 0.5 | [0.1, 0.9] | worse |" in text  # a larger identity angle is worse
    assert "| cand | PSNR | 0.1 | [-0.2, 0.4] | not different |" in text
    assert "| cand | Deg-dlib | -1 | [-1.5, -0.5] | better |" in text
    assert "the ground truth's Grid: 0.25" in text and "**cand against nano**" in text
    assert "does not meet the rule" in text and "- mild: identity WORSE" in text
