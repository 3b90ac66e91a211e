"""Model folders load with plain diffusers (``trust_remote_code=True``) in a process where ``osdface`` cannot be
imported, and give OSDFacePipeline's output; the code they carry is the package's own, byte for byte."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from osdface import OSDFacePipeline
from osdface.models.lora import randomize_lora_
from osdface.remote_code import MODELS, PATCH_VAE_FILE, REMOTE_FILES
from osdface.weights import BUNDLED_NANO

# the child process: an import blocker for osdface, the repository off sys.path, diffusers alone
CHILD = textwrap.dedent("""
    import importlib.abc, sys
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "osdface" or name.startswith("osdface."):
                raise ImportError("osdface is blocked in this process")
    sys.meta_path.insert(0, Block())
    sys.path = [p for p in sys.path if p not in ("", ".") and not p.startswith(sys.argv[3])]
    try:
        import osdface
        raise SystemExit("osdface was importable")
    except ImportError:
        pass
    import numpy as np, torch
    from diffusers import DiffusionPipeline
    torch.set_num_threads(2)
    pipe = DiffusionPipeline.from_pretrained(sys.argv[1], trust_remote_code=True)
    x = torch.from_numpy(np.load(sys.argv[2]))
    out = pipe(x, output_type="pt").images
    pil = pipe(x, output_type="pil").images
    assert type(pipe).__name__ == "OSDFaceDiffusersPipeline" and len(pil) == len(x)
    assert not any(m == "osdface" or m.startswith("osdface.") for m in sys.modules)
    np.save(sys.argv[2] + ".out.npy", out.numpy())
    np.save(sys.argv[2] + ".pil.npy", np.stack([np.asarray(p) for p in pil]))
""")

REPO = Path(__file__).resolve().parents[1]


def run_plain_diffusers(folder: Path, x: torch.Tensor, tmp_path: Path) -> torch.Tensor:
    inp = tmp_path / "x.npy"
    np.save(inp, x.numpy())
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-c", CHILD, str(folder), str(inp), str(REPO)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return torch.from_numpy(np.load(str(inp) + ".out.npy")), np.load(str(inp) + ".pil.npy")


def copies_equal_sources(folder: Path, patch_vae: bool) -> None:
    files = {**REMOTE_FILES, **(PATCH_VAE_FILE if patch_vae else {})}
    for name, source in files.items():
        assert (folder / name).read_bytes() == (MODELS / source).read_bytes(), f"{folder / name} is stale"


def test_saved_tiny_folder_loads_in_plain_diffusers_with_the_same_output(tmp_path):
    pipe = OSDFacePipeline.from_preset("tiny", seed=0)
    randomize_lora_(pipe.unet)
    pipe.fuse_lora()  # a fused UNet is stored whole: the folder stands alone
    folder = pipe.save_pretrained(tmp_path / "model")
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == ["pipeline_osdface", "OSDFaceDiffusersPipeline"]
    assert index["vre"] == ["osdface_vre", "VisualRepresentationEmbedder"] and index["process_size"] == 64
    copies_equal_sources(folder, patch_vae=False)
    assert "trust_remote_code=True" in (folder / "README.md").read_text()

    torch.manual_seed(0)
    x = torch.rand(2, 3, 64, 64)
    plain, plain_pil = run_plain_diffusers(folder, x, tmp_path)
    loaded = OSDFacePipeline.from_pretrained(folder, local_files_only=True)
    ours = loaded(x, output_type="pt")
    assert plain.shape == ours.shape == (2, 3, 64, 64)
    assert (plain - ours).abs().max() <= 1e-6
    assert np.array_equal(plain_pil, np.stack([np.asarray(p) for p in loaded(x)]))

    # a folder written before (no model_index.json, no code) still loads in OSDFacePipeline, same output
    for name in [*REMOTE_FILES, "model_index.json"]:
        (folder / name).unlink()
    again = OSDFacePipeline.from_pretrained(folder, local_files_only=True)(x, output_type="pt")
    assert torch.equal(again, ours)


def test_a_lora_folder_gets_no_model_index(tmp_path):
    pipe = OSDFacePipeline.from_preset("tiny", seed=0)
    folder = pipe.save_pretrained(tmp_path / "m")
    assert (folder / "unet_lora").is_dir() and not (folder / "model_index.json").exists()
    assert "trust_remote_code" not in (folder / "README.md").read_text()


def test_bundled_nano_loads_in_plain_diffusers(tmp_path):
    copies_equal_sources(BUNDLED_NANO, patch_vae=True)
    from PIL import Image

    face = np.asarray(Image.open(REPO / "examples" / "astronaut_face_lq.png").convert("RGB"))
    x = torch.from_numpy(face.copy()).permute(2, 0, 1)[None].float() / 255
    plain, _ = run_plain_diffusers(BUNDLED_NANO, x, tmp_path)
    ours = OSDFacePipeline.from_pretrained(BUNDLED_NANO, torch_dtype="fp32", local_files_only=True)(x, output_type="pt")
    assert (plain - ours).abs().max() <= 1e-6
