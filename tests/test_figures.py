"""The README's and the documentation's pictures (``scripts/make_figures.py``) are made from the current bundled
model, examples and script: their inputs' hashes in ``docs/assets/figures.json`` must be today's."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SIDECAR = REPO / "docs" / "assets" / "figures.json"


def _script():
    spec = importlib.util.spec_from_file_location("make_figures", REPO / "scripts" / "make_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pictures_were_made_from_the_current_model_examples_and_script():
    recorded = json.loads(SIDECAR.read_text())
    now = _script().inputs()
    changed = sorted(k for k in set(now) | set(recorded["inputs"]) if now.get(k) != recorded["inputs"].get(k))
    assert not changed, f"pictures are stale ({', '.join(changed[:5])} changed): run python scripts/make_figures.py"


def test_pictures_are_the_ones_recorded_and_small():
    recorded = json.loads(SIDECAR.read_text())
    script = _script()
    assert "docs/assets/readme_figure.jpg" in recorded["outputs"]
    for rel, digest in recorded["outputs"].items():
        path = REPO / rel
        assert path.is_file(), f"{rel} is missing: run python scripts/make_figures.py"
        assert script.sha256(path) == digest, f"{rel} was changed by hand: run python scripts/make_figures.py"
        assert path.stat().st_size < 300_000, f"{rel} is {path.stat().st_size // 1024} KB"
    assert "docs/assets/readme_figure.jpg" in (REPO / "README.md").read_text(encoding="utf-8")
