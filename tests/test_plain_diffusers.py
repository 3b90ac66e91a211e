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
from osdface.remote_code import LORA_FILE, MODELS, PATCH_VAE_FILE, REMOTE_FILES
from osdface.weights import BUNDLED_NANO

# the child process: an import blocker for osdface, the repository off sys.path, diffusers alone
CHILD = textwrap.dedent("""
    import importlib.abc, sys
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "osdface" or name.startswith("osdface."):
                raise ImportError("osdface is blocked in this process")
    sys.meta_path.insert(0, Block())
    import os
    # the checkout itself off the path (not what lies inside it: the README's venv is the checkout's .venv)
    sys.path = [p for p in sys.path if p not in ("", ".") and os.path.abspath(p) != sys.argv[3]]
    try:
        import osdface
        raise SystemExit("osdface was importable")
    except ImportError:
        pass
    import numpy as np, torch
    from diffusers import DiffusionPipeline
    torch.set_num_threads(2)
    import json
    pipe = DiffusionPipeline.from_pretrained(sys.argv[1], trust_remote_code=True, **json.loads(sys.argv[4]))
    x = torch.from_numpy(np.load(sys.argv[2]))
    out = pipe(x, output_type="pt").images
    pil = pipe(x, output_type="pil").images if sys.argv[5] == "pil" else []
    assert type(pipe).__name__ == "OSDFaceDiffusersPipeline" and len(pil) in (0, len(x))
    assert not any(m == "osdface" or m.startswith("osdface.") for m in sys.modules)
    np.save(sys.argv[2] + ".out.npy", out.numpy())
    np.save(sys.argv[2] + ".pil.npy", np.stack([np.asarray(p) for p in pil]) if pil else np.zeros(0))
""")

REPO = Path(__file__).resolve().parents[1]


def run_plain_diffusers(folder: Path, x: torch.Tensor, tmp_path: Path, pil: bool = True, **kwargs):
    """diffusers' output for ``x`` in a child process where osdface cannot be imported: ("pt" tensor, "pil" images as
    an array, or an empty one with ``pil=False``). ``kwargs`` go to ``DiffusionPipeline.from_pretrained``."""
    inp = tmp_path / "x.npy"
    np.save(inp, x.numpy())
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-c", CHILD, str(folder), str(inp), str(REPO), json.dumps(kwargs),
                           "pil" if pil else "-"],
                          cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return torch.from_numpy(np.load(str(inp) + ".out.npy")), np.load(str(inp) + ".pil.npy")


def copies_equal_sources(folder: Path, patch_vae: bool, lora: bool = False) -> None:
    files = {**REMOTE_FILES, **(PATCH_VAE_FILE if patch_vae else {}), **(LORA_FILE if lora else {})}
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


def test_a_lora_folder_with_its_base_stored_loads_with_the_same_output(tmp_path):
    pipe = OSDFacePipeline.from_preset("tiny", seed=0)  # rank 4, alpha 8: scale 2
    randomize_lora_(pipe.unet, scale=0.05)
    folder = pipe.save_pretrained(tmp_path / "m")  # unet/ (the base) + unet_lora/ + vae/
    assert (folder / "unet_lora").is_dir() and (folder / "unet").is_dir()
    index = json.loads((folder / "model_index.json").read_text())
    assert index["unet_lora"] == ["osdface_lora", "UNetLoRA"] and index["unet"][0] == "diffusers"
    copies_equal_sources(folder, patch_vae=False, lora=True)
    assert "trust_remote_code=True" in (folder / "README.md").read_text()

    torch.manual_seed(0)
    x = torch.rand(2, 3, 64, 64)
    plain, _ = run_plain_diffusers(folder, x, tmp_path, pil=False)
    ours = OSDFacePipeline.from_pretrained(folder, local_files_only=True)
    assert ours.has_lora
    expected = ours(x, output_type="pt")
    without_lora = OSDFacePipeline.from_pretrained(folder, local_files_only=True)
    without_lora.unet.disable_adapters()
    assert (without_lora(x, output_type="pt") - expected).abs().max() > 1e-3  # the adapter matters here
    assert (plain - expected).abs().max() <= 1e-6


def tiny_base_folder(pipe, root: Path) -> Path:
    """An SD-style base folder (vae/, unet/, scheduler/) holding the pipeline's VAE and its UNet without the LoRA."""
    import copy

    unet = copy.deepcopy(pipe.unet)
    unet.unload_lora()
    unet.save_pretrained(root / "unet")
    pipe.vae.save_pretrained(root / "vae")
    pipe.scheduler.save_pretrained(root / "scheduler")
    return root


def test_a_lora_on_a_referenced_base_loads_with_the_same_output(tmp_path):
    pipe = OSDFacePipeline.from_preset("tiny", seed=1)
    randomize_lora_(pipe.unet, scale=0.05, seed=1)
    base = tiny_base_folder(pipe, tmp_path / "base")
    pipe.config = pipe.config.replace(base_model=str(base))
    folder = pipe.save_pretrained(tmp_path / "m")  # the LoRA only: unet/ and vae/ come from the base
    assert not (folder / "unet").exists() and not (folder / "vae").exists()
    index = json.loads((folder / "model_index.json").read_text())
    assert index["unet"] == index["vae"] == [None, None] and index["base_model"] == str(base)
    copies_equal_sources(folder, patch_vae=False, lora=True)

    torch.manual_seed(2)
    x = torch.rand(2, 3, 64, 64)
    plain, plain_pil = run_plain_diffusers(folder, x, tmp_path)
    loaded = OSDFacePipeline.from_pretrained(folder, local_files_only=True)
    ours = loaded(x, output_type="pt")
    assert (plain - ours).abs().max() <= 1e-6
    assert np.array_equal(plain_pil, np.stack([np.asarray(p) for p in loaded(x)]))

    # the base named at load time (the recorded one gone): base_model= reaches the remote pipeline
    moved = base.rename(tmp_path / "base-moved")
    plain_moved, _ = run_plain_diffusers(folder, x, tmp_path, pil=False, base_model=str(moved))
    assert (plain_moved - ours).abs().max() <= 1e-6


def test_the_remote_lora_fuses_like_peft(tmp_path):
    """The remote pipeline's fuse_lora merges W + alpha/r·B·A as peft does: equal up to rounding."""
    pipe = OSDFacePipeline.from_preset("tiny", seed=0)
    randomize_lora_(pipe.unet, scale=0.05)
    folder = pipe.save_pretrained(tmp_path / "m")
    from diffusers import UNet2DConditionModel

    from osdface.models.diffusers_lora import UNetLoRA  # = unet_lora/osdface_lora.py, byte for byte

    adapter = UNetLoRA.from_pretrained(folder / "unet_lora")
    unet = adapter.apply_to(UNet2DConditionModel.from_pretrained(folder, subfolder="unet").eval())
    torch.manual_seed(0)
    z, t, ctx = torch.randn(1, 4, 8, 8), torch.tensor([399]), torch.randn(1, 77, pipe.unet.config.cross_attention_dim)
    with torch.no_grad():
        ref = pipe.unet.eval()(z, t, encoder_hidden_states=ctx).sample
        unfused = unet(z, t, encoder_hidden_states=ctx).sample
        fused = adapter.fuse(unet)(z, t, encoder_hidden_states=ctx).sample
        pipe.fuse_lora()
        peft_fused = pipe.unet(z, t, encoder_hidden_states=ctx).sample
    assert torch.equal(unfused, ref)
    assert not any(type(m).__name__ == "LoRALayer" for m in unet.modules())
    assert (fused - peft_fused).abs().max() <= 1e-5 and (fused - ref).abs().max() <= 1e-4


def test_bundled_nano_loads_in_plain_diffusers(tmp_path):
    copies_equal_sources(BUNDLED_NANO, patch_vae=True)
    from PIL import Image

    face = np.asarray(Image.open(REPO / "examples" / "astronaut_face_lq.png").convert("RGB"))
    x = torch.from_numpy(face.copy()).permute(2, 0, 1)[None].float() / 255
    plain, _ = run_plain_diffusers(BUNDLED_NANO, x, tmp_path)
    ours = OSDFacePipeline.from_pretrained(BUNDLED_NANO, torch_dtype="fp32", local_files_only=True)(x, output_type="pt")
    assert (plain - ours).abs().max() <= 1e-6


def test_the_lora_files_are_fetched_into_a_hub_snapshot(tmp_path, monkeypatch):
    """From the Hub, diffusers brings ``unet_lora/`` with its code only (it downloads weights it knows by name); the
    component fetches its two files into the same snapshot, by the repo id and commit the cache path holds."""
    import shutil

    import huggingface_hub

    from osdface.models.diffusers_lora import UNetLoRA

    pipe = OSDFacePipeline.from_preset("tiny", seed=0)
    folder = pipe.save_pretrained(tmp_path / "m")
    snapshot = tmp_path / "hub" / "models--me--osdface-tiny" / "snapshots" / ("a" * 40)
    (snapshot / "unet_lora").mkdir(parents=True)
    shutil.copyfile(folder / "unet_lora" / "osdface_lora.py", snapshot / "unet_lora" / "osdface_lora.py")
    calls = []

    def fake_download(repo_id, filename, *, subfolder, revision, cache_dir):
        calls.append((repo_id, filename, subfolder, revision, cache_dir))
        target = Path(cache_dir) / "models--me--osdface-tiny" / "snapshots" / revision / subfolder / filename
        shutil.copyfile(folder / subfolder / filename, target)
        return str(target)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    fetched = UNetLoRA.from_pretrained(snapshot / "unet_lora")
    local = UNetLoRA.from_pretrained(folder / "unet_lora")
    assert {c[:4] for c in calls} == {("me/osdface-tiny", n, "unet_lora", "a" * 40)
                                      for n in ("pytorch_lora_weights.safetensors", "adapter_config.json")}
    assert fetched.names == local.names and fetched.scalings == local.scalings == [2.0] * len(local.names)
    assert all(torch.equal(a, b) for a, b in zip(fetched.lora_A, local.lora_A))
    with pytest.raises(FileNotFoundError):
        UNetLoRA.from_pretrained(tmp_path / "nowhere" / "unet_lora")


def test_bundled_model_index_is_what_the_writer_writes_today(tmp_path):
    """The bundled nano's model_index.json is the writer's current output (a stale index would still load through
    defaults, so compare it): run the writer on a folder holding the bundled configs alone."""
    from osdface.configs import OSDFaceConfig
    from osdface.remote_code import write_remote_code

    (tmp_path / "vre").mkdir()
    for rel in ("osdface_config.json", "unet/config.json", "vae/config.json"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes((BUNDLED_NANO / rel).read_bytes())
    assert write_remote_code(tmp_path, OSDFaceConfig.load(BUNDLED_NANO))
    want = json.loads((tmp_path / "model_index.json").read_text())
    assert json.loads((BUNDLED_NANO / "model_index.json").read_text()) == want, \
        "regenerate: osdface.remote_code.write_remote_code(BUNDLED_NANO, OSDFaceConfig.load(BUNDLED_NANO))"
