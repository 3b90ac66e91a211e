"""Golden outputs: the bundled nano model on the two bundled examples, against stored reference pictures.

These pin the whole restore workflow (loading, the model, rounding, alignment, paste-back, file naming) so that a
refactor that is meant to change nothing changes nothing. The same files must be written, and each reference
picture must be matched within a stated tolerance: at most 1 level of difference in at most 1e-4 of the values,
or else a PSNR of at least 60 dB. (Two machines with the same CPU flags and thread count can differ by one level
in a few values: float reductions run in another order.) The exact bytes of every PNG, as hashed on the machine
recorded beside them, are compared only on request: ``OSDFACE_GOLDEN_EXACT=1``.

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
EXACT = os.environ.get("OSDFACE_GOLDEN_EXACT") == "1"
#: the tolerance: at most MAX_LEVELS of difference in at most MAX_FRACTION of the values, else PSNR >= MIN_PSNR
MAX_LEVELS, MAX_FRACTION, MIN_PSNR = 1, 1e-4, 60.0


def within_tolerance(got: np.ndarray, ref: np.ndarray) -> tuple[bool, str]:
    """Whether two 8-bit pictures match within the tolerance, and a line saying how far apart they are."""
    diff = np.abs(got.astype(np.int16) - ref.astype(np.int16))
    fraction = float((diff > 0).mean())
    mse = float((diff.astype(np.float64) ** 2).mean())
    psnr = float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)
    ok = (diff.max() <= MAX_LEVELS and fraction <= MAX_FRACTION) or psnr >= MIN_PSNR
    return ok, f"max |Δ| {diff.max()} levels in {fraction:.2e} of the values, PSNR {psnr:.1f} dB"


def test_the_tolerance_tells_one_level_noise_from_a_change():
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)
    few = ref.copy()
    few.reshape(-1)[[5, 70_000]] ^= 1  # 2 of 786,432 values one level apart: the other machine's result
    assert within_tolerance(few, ref)[0]
    shifted = np.clip(ref.astype(np.int16) + 1, 0, 255).astype(np.uint8)  # every value one level: 48 dB
    assert not within_tolerance(shifted, ref)[0]
    patch = ref.copy()
    patch[200:230, 200:230] = 0  # a changed face region
    assert not within_tolerance(patch, ref)[0]


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
    got = np.asarray(Image.open(out / KEEP[case]))
    ref = np.asarray(Image.open(GOLDEN / f"{case}.png"))
    assert got.shape == ref.shape
    ok, how_far = within_tolerance(got, ref)
    assert ok, f"{KEEP[case]}: {how_far} (recorded on {expected['capability']}, running on {_capability()})"
    if EXACT:
        changed = [name for name, digest in written.items() if expected["files"][name] != digest]
        assert not changed, f"bytes changed: {changed} (recorded on {expected['capability']}, running on " \
                            f"{_capability()}; within tolerance: {how_far})"
