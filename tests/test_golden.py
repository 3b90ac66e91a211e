"""Golden outputs: the bundled nano model on the two bundled examples, exact bytes of every PNG written.

These pin the whole restore workflow (loading, the model, rounding, alignment, paste-back, file naming) so that a
refactor that is meant to change nothing changes nothing. The reference hashes were taken on a CPU whose PyTorch
capability is recorded beside them; on another kind of CPU (other SIMD kernels, other float rounding) the bytes are
compared only when the capability matches, and otherwise the pixels must agree with the stored reference PNGs to
within one 8-bit level.

Regenerate (only for a change that is meant to change outputs, in a commit that says why):

    OSDFACE_UPDATE_GOLDEN=1 python -m pytest -q tests/test_golden.py
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "data" / "golden"
CASES = {
    "crop": ["-i", str(REPO / "examples" / "astronaut_face_lq.png"), "--has_aligned"],
    "photo": ["-i", str(REPO / "examples" / "astronaut_photo_lq.jpg"), "--detection_model", "dlib"],
}
# the images kept as reference pictures (the others are pinned by their hashes only)
KEEP = {"crop": "restored_faces/astronaut_face_lq.png", "photo": "final_results/astronaut_photo_lq.png"}
UPDATE = os.environ.get("OSDFACE_UPDATE_GOLDEN") == "1"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _capability() -> str:
    return f"{torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads"


@pytest.mark.parametrize("case", sorted(CASES))
def test_bundled_model_outputs_are_unchanged(case, tmp_path):
    from osdface.cli import main

    out = tmp_path / "out"
    # fp32 pinned: the default dtype may depend on the CPU
    assert main(["restore", *CASES[case], "-o", str(out), "--dtype", "fp32", "-q"]) == 0
    written = {str(p.relative_to(out)): _sha(p) for p in sorted(out.rglob("*.png"))}
    record = GOLDEN / f"{case}.json"
    if UPDATE:
        GOLDEN.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps({"capability": _capability(), "files": written}, indent=2) + "\n")
        Image.open(out / KEEP[case]).save(GOLDEN / f"{case}.png")
        pytest.skip(f"golden outputs of {case!r} written to {GOLDEN}")
    expected = json.loads(record.read_text())
    assert sorted(written) == sorted(expected["files"]), "a different set of files was written"
    if expected["capability"] == _capability():
        changed = [name for name, digest in written.items() if expected["files"][name] != digest]
        assert not changed, f"bytes changed: {changed}"
    else:  # another CPU kind: the same picture to within one level
        got = np.asarray(Image.open(out / KEEP[case]), dtype=np.int16)
        ref = np.asarray(Image.open(GOLDEN / f"{case}.png"), dtype=np.int16)
        assert got.shape == ref.shape
        assert np.abs(got - ref).max() <= 1, (f"recorded on {expected['capability']}, running on {_capability()}: "
                                              f"max |Δ| {np.abs(got - ref).max()} levels")
