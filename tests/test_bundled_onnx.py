"""The ONNX graphs shipped inside the bundled nano (scripts/export_bundled_onnx.py) and ``--backend auto``.

If a test here says the graphs are stale, the bundled weights changed after the export: run
``python scripts/export_bundled_onnx.py`` and commit the .onnx files and osdface_onnx.json it rewrites.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from osdface.onnx_pipeline import ONNX_CONFIG_NAME, stale_sources
from osdface.restore import choose_backend
from osdface.weights import BUNDLED_NANO

REPO = Path(__file__).resolve().parents[1]
FACE = REPO / "examples" / "astronaut_face_lq.png"
REGENERATE = "run `python scripts/export_bundled_onnx.py` and commit what it writes"


def _spec():
    return json.loads((BUNDLED_NANO / ONNX_CONFIG_NAME).read_text())


def test_shipped_graphs_are_not_stale():
    spec = _spec()
    assert stale_sources(BUNDLED_NANO) == [], f"the bundled weights changed after the ONNX export: {REGENERATE}"
    for graph in spec["graphs"].values():
        for file, digest in graph["sha256"].items():
            assert hashlib.sha256((BUNDLED_NANO / file).read_bytes()).hexdigest() == digest, f"{file}: {REGENERATE}"
    # the graphs describe the bundled model's current config
    config = json.loads((BUNDLED_NANO / "osdface_config.json").read_text())
    assert spec["model"]["config"]["timestep"] == config["timestep"]


def test_graphs_read_the_weights_from_the_safetensors_files():
    import onnx

    spec = _spec()
    external = set()
    for graph in spec["graphs"].values():
        model = onnx.load(str(BUNDLED_NANO / graph["file"]), load_external_data=False)
        for init in model.graph.initializer:
            if init.data_location == onnx.TensorProto.EXTERNAL:
                entry = {e.key: e.value for e in init.external_data}
                assert entry["location"] in spec["external_data"]
                assert int(entry["offset"]) + int(entry["length"]) <= (BUNDLED_NANO / entry["location"]).stat().st_size
                external.add(entry["location"])
    assert external == set(spec["external_data"])
    graphs = sum((BUNDLED_NANO / g["file"]).stat().st_size for g in spec["graphs"].values())
    weights = sum(p.stat().st_size for p in BUNDLED_NANO.rglob("*.safetensors"))
    assert graphs < 0.1 * weights, f"the graphs hold {graphs / 1e6:.1f} MB of their own"


def _face():
    return np.asarray(Image.open(FACE).convert("RGB"))


def test_shipped_graphs_restore_like_the_torch_pipeline():
    from osdface import OSDFacePipeline
    from osdface.onnx_pipeline import OSDFaceONNXPipeline

    onnx_out = OSDFaceONNXPipeline(BUNDLED_NANO, device="cpu")([_face()], output_type="np")
    torch_out = OSDFacePipeline.from_pretrained(BUNDLED_NANO, torch_dtype="fp32", local_files_only=True)(
        [_face()], output_type="np")
    assert onnx_out.shape == torch_out.shape == (1, 512, 512, 3)
    assert np.abs(onnx_out - torch_out).max() < 2e-3


def test_changed_weights_make_the_graphs_stale(tmp_path):
    from osdface.onnx_pipeline import OSDFaceONNXPipeline

    folder = tmp_path / "nano"
    shutil.copytree(BUNDLED_NANO, folder)
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x10  # one bit of the last tensor: retrained weights, same layout
    weights.write_bytes(bytes(data))
    assert stale_sources(folder) == ["unet/diffusion_pytorch_model.safetensors"]
    with pytest.raises(ValueError, match="older than"):
        OSDFaceONNXPipeline(folder, device="cpu")
    assert choose_backend(str(folder), device="cpu", n_images=1) == (
        "torch", "the model's ONNX graphs are older than its weights")


def test_auto_backend_rules(tmp_path):
    assert choose_backend(None, device="cpu", n_images=1)[0] == "onnx"
    assert choose_backend(None, device="cpu", n_images=32)[0] == "onnx"
    assert choose_backend(None, device="cpu", n_images=33)[0] == "torch"
    assert choose_backend(None, device="cpu", n_images=5, aligned=False)[0] == "torch"
    assert choose_backend(None, device="cpu", n_images=1, n_videos=1)[0] == "torch"
    assert choose_backend(None, device="cuda", n_images=1) == ("torch", "a GPU")
    assert choose_backend(None, device="cpu", n_images=1, torch_options=("--dtype",))[0] == "torch"
    (tmp_path / "osdface_config.json").write_text("{}")
    assert choose_backend(str(tmp_path), device="cpu", n_images=1) == ("torch", "the model has no ONNX graphs")


def test_default_one_face_command_runs_without_torch(tmp_path):
    """The README's one-face command on the default backend: ONNX Runtime, and torch is never imported (a
    process where importing torch fails). Where a GPU is visible the default is torch, as it should be."""
    if choose_backend(None, device="auto", n_images=1)[0] != "onnx":
        pytest.skip(f"the default backend here is {choose_backend(None, device='auto', n_images=1)}")
    code = ("import sys; sys.modules['torch'] = None; from osdface.cli import main; "
            f"sys.exit(main(['restore', '-i', {str(FACE)!r}, '-o', {str(tmp_path / 'out')!r}, '--has_aligned']))")
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "OSDFACE_MODEL": ""}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "backend: onnx" in proc.stderr
    out = np.asarray(Image.open(tmp_path / "out" / "restored_faces" / "astronaut_face_lq.png"))
    assert out.shape == (512, 512, 3) and out.std() > 10
