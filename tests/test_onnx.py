"""ONNX export and the ONNX Runtime pipeline (osdface/onnx_export.py, osdface/onnx_pipeline.py, osdface/prompt_rule.py).

Three exports per run (each ≈ 25 s on two CPU cores: the dynamo exporter traces the models): the tiny model (fp32,
dynamic batch), the bundled nano (fp32, dynamic batch), and the tiny model through the command line with ``--fp16
--batch 2``. Parity is checked on the CPU in fp32 against the torch pipeline, the prompt rule against the torch
rule (random, tie-heavy and near-tie cases), and the folder is reloaded in a fresh process without torch.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from osdface import OSDFacePipeline
from osdface.models import Codebook, select_unique_codes, squared_distances
from osdface.models.lora import randomize_lora_
from osdface.prompt_rule import select_codes, torch_cpu_sort_order

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "astronaut_face_lq.png"
THREADS = 2


# --------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def tiny():
    pipe = OSDFacePipeline.from_preset("tiny", seed=0)
    randomize_lora_(pipe.unet)  # a LoRA that changes the output, fused by the export
    return pipe


@pytest.fixture(scope="module")
def tiny_export(tiny, tmp_path_factory):
    from osdface.onnx_export import export_onnx

    return export_onnx(tiny, tmp_path_factory.mktemp("tiny-onnx"), source="tiny")


@pytest.fixture(scope="module")
def nano():
    from osdface.weights import BUNDLED_NANO

    return OSDFacePipeline.from_pretrained(BUNDLED_NANO, torch_dtype="fp32", fuse_lora=True)


@pytest.fixture(scope="module")
def nano_export(nano, tmp_path_factory):
    from osdface.onnx_export import export_onnx

    return export_onnx(nano, tmp_path_factory.mktemp("nano-onnx"), source="bundled nano")


def ort_pipe(folder):
    from osdface.onnx_pipeline import OSDFaceONNXPipeline

    return OSDFaceONNXPipeline(folder, device="cpu", threads=THREADS)


def real_faces(size: int, n: int = 4) -> list[Image.Image]:
    """The example LQ face and degraded copies of shared real faces when present (else of the example)."""
    from .conftest import SHARED_FACES

    files = sorted(SHARED_FACES.glob("*.png"))[: n - 1] if SHARED_FACES.is_dir() else []
    base = [Image.open(EXAMPLE).convert("RGB")] + [Image.open(f).convert("RGB") for f in files]
    while len(base) < n:
        base.append(base[0].transpose(Image.FLIP_LEFT_RIGHT).rotate(5 * len(base)))
    out = []
    for i, img in enumerate(base[:n]):
        img = img.resize((size, size), Image.BICUBIC)
        if i:  # blur by down/up-scaling, as a degraded input
            img = img.resize((size // (2 + i), size // (2 + i)), Image.BILINEAR).resize((size, size), Image.BICUBIC)
        out.append(img)
    return out


# ------------------------------------------------------------------------------------------- the prompt rule
def mcilroy_killer(n: int) -> list[int]:
    """Values that drive a quicksort into its worst case (McIlroy's adversary, run against our transcription), so
    that the introsort's depth limit and its heapsort fallback are exercised."""
    gas = n
    val = [gas] * n
    state = {"solid": 0, "candidate": 0}

    class Item:
        __slots__ = ("i",)

        def __init__(self, i):
            self.i = i

        def __eq__(self, other):
            return True

        def __ne__(self, other):
            return False

        def __lt__(self, other):
            x, y = self.i, other.i
            if val[x] == gas and val[y] == gas:
                frozen = x if x == state["candidate"] else y
                val[frozen] = state["solid"]
                state["solid"] += 1
            if val[x] == gas:
                state["candidate"] = x
            elif val[y] == gas:
                state["candidate"] = y
            return val[x] < val[y]

    torch_cpu_sort_order([Item(i) for i in range(n)])
    for i in range(n):
        if val[i] == gas:
            val[i] = state["solid"]
            state["solid"] += 1
    return val


def test_sort_order_is_torch_sorts_on_ties_nan_and_worst_cases():
    g = torch.Generator().manual_seed(0)
    cases = []
    for n in (1, 2, 16, 17, 33, 100, 256, 1024):
        for levels in (2, 5, 1000):
            x = torch.randint(0, levels, (n,), generator=g).float()
            cases.append(x)
            y = x.clone()
            y[torch.randint(0, n, (max(1, n // 8),), generator=g)] = float("nan")
            cases.append(y)
    for n in (64, 256, 1000):
        killer = torch.tensor(mcilroy_killer(n), dtype=torch.float32)
        cases += [killer, torch.floor(killer / 3)]  # the worst case, and with ties
    for x in cases:
        assert torch_cpu_sort_order(x.tolist()) == torch.sort(x).indices.tolist()
    # the default sort is not a stable one: numpy's stable order would differ on ties
    tied = torch.randint(0, 3, (256,), generator=g).float()
    assert np.argsort(tied.numpy(), kind="stable").tolist() != torch.sort(tied).indices.tolist()


def _rule_both(dist: torch.Tensor, num_tokens: int = 77):
    idx, valid = select_unique_codes(dist, num_tokens)
    min_d, nearest = dist.min(dim=-1)
    ours, ours_valid = select_codes(min_d.numpy(), nearest.numpy(), num_tokens)
    return idx.numpy(), valid.numpy(), ours, ours_valid


def test_select_codes_is_the_torch_rule_on_random_and_exact_tie_distances():
    g = torch.Generator().manual_seed(1)
    for k, d, hw in [(1024, 16, 16), (50, 8, 4), (40, 32, 8), (256, 4, 16)]:
        dist = squared_distances(torch.randn(3, hw * hw, d, generator=g), torch.randn(k, d, generator=g))
        idx, valid, ours, ours_valid = _rule_both(dist)
        assert np.array_equal(idx, ours) and np.array_equal(valid, ours_valid)
    # exact ties between positions that map to different codes: integer distances in a few levels
    dist = torch.randint(0, 4, (4, 256, 300), generator=g).float()
    idx, valid, ours, _ = _rule_both(dist)
    assert np.array_equal(idx, ours)
    min_d, nearest = dist.min(dim=-1)  # the tie order matters here: numpy's stable order keeps other codes
    stable = [list(dict.fromkeys(nearest[b, np.argsort(min_d[b].numpy(), kind="stable")].tolist()))[:77]
              for b in range(4)]
    assert any(s != ours[b][ours[b] >= 0].tolist() for b, s in enumerate(stable))


def test_select_codes_is_the_releases_on_near_ties():
    """The near-tie fixture of tests/test_codebook.py (real nano VRE features, a dictionary of slightly perturbed
    copies of them): given the torch rule's distances, the NumPy rule keeps the release's codes."""
    from .test_codebook import near_tie_case, release_selection

    for seed in range(3):
        z, codes = near_tie_case(seed)
        cb = Codebook(codes.shape[0], codes.shape[1])
        with torch.no_grad():
            cb.embedding.weight.copy_(codes)
        with torch.no_grad():
            min_d, nearest = cb.distances(z).min(dim=-1)
        ours, valid = select_codes(min_d.numpy(), nearest.numpy(), 77)
        assert ours[0][valid[0]].tolist() == release_selection(z, codes)


# ---------------------------------------------------------------------------------------------- parity: tiny
def test_tiny_parity_fp32_batch_1_and_4(tiny, tiny_export):
    ort = ort_pipe(tiny_export)
    images = real_faces(64, 4)
    torch_1 = tiny(images, output_type="np", batch_size=1)
    ort_1 = ort(images, output_type="np", batch_size=1)
    ort_4 = ort(images, output_type="np", batch_size=4)
    assert np.abs(ort_1 - torch_1).max() <= 1e-4
    # ONNX Runtime gives each image of a batch what it gives it alone; torch's own batched kernels differ from its
    # single-image ones on this (random, sensitive) tiny model by up to ≈ 3e-4, so batch 4 is compared both ways
    assert np.array_equal(ort_4, ort_1)
    torch_4 = tiny(images, output_type="np", batch_size=4)
    spread = np.abs(torch_4 - torch_1).max()
    assert np.abs(ort_4 - torch_4).max() <= max(1e-4, 1.5 * spread)
    x = tiny.preprocess(images)
    with torch.no_grad():
        tokens = tiny.vre.tokens(x)
    codes, valid = ort.prompt_codes(x.numpy())
    assert np.array_equal(codes, tokens.indices.numpy()) and np.array_equal(valid, tokens.valid.numpy())
    pil_t = tiny(images, output_type="pil", batch_size=1)
    pil_o = ort(images, output_type="pil", batch_size=1)
    assert all(np.abs(np.asarray(a, int) - np.asarray(b, int)).max() <= 1 for a, b in zip(pil_t, pil_o))


def test_tiny_inputs_like_the_torch_pipeline(tiny, tiny_export):
    """The same inputs as OSDFacePipeline.__call__: PIL, uint8 and float arrays, a 4-D array, a tensor, another
    size (resized with align_corners=True), and the same errors."""
    ort = ort_pipe(tiny_export)
    rng = np.random.default_rng(0)
    face = np.asarray(real_faces(64, 1)[0])
    items = [Image.fromarray(face), face, face.astype(np.float32) / 255]
    assert np.array_equal(ort.preprocess(items), tiny.preprocess(items).numpy())
    other = np.asarray(real_faces(80, 1)[0])  # resized to 64²: torch's small-output kernel rounds its own way
    assert np.abs(ort.preprocess(other) - tiny.preprocess(other).numpy()).max() <= 2.4e-7
    tensor = torch.from_numpy(face.copy()).permute(2, 0, 1).float() / 255
    assert np.array_equal(ort.preprocess(tensor), tiny.preprocess(tensor).numpy())
    stack = rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    assert ort(stack, output_type="np").shape == (3, 64, 64, 3)
    assert len(ort(Image.fromarray(face))) == 1
    assert ort(face, output_type="pt").shape == (1, 3, 64, 64)
    with pytest.warns(UserWarning, match="not square"):
        wide = ort.preprocess(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8))
    assert wide.shape == (1, 3, 64, 64)
    from osdface.image_io import ImageInputError

    with pytest.raises(ImageInputError, match="images\\[1\\]: float image values must be in \\[0, 1\\]"):
        ort([face, face.astype(np.float32)])
    with pytest.raises(ValueError, match="output_type"):
        ort(face, output_type="latent")
    with pytest.raises(ValueError, match="latent_mode='sample' needs the torch backend"):
        ort(face, latent_mode="sample")


# ---------------------------------------------------------------------------------------------- parity: nano
def test_nano_parity_fp32_on_real_faces(nano, nano_export):
    ort = ort_pipe(nano_export)
    images = real_faces(512, 4)
    for batch in (1, 4):
        ours = ort(images, output_type="np", batch_size=batch)
        theirs = nano(images, output_type="np", batch_size=batch)
        assert np.abs(ours - theirs).max() <= 1e-3  # measured: 4.5e-7
    x = nano.preprocess(images)
    with torch.no_grad():
        tokens = nano.vre.tokens(x)
    codes, _ = ort.prompt_codes(x.numpy())
    assert np.array_equal(codes, tokens.indices.numpy())  # the same codes, in the same order


# ---------------------------------------------------------------------------------------- the export folder
def test_export_folder_is_checked_and_self_describing(tiny_export, nano_export):
    from osdface.onnx_export import GRAPHS, check_graphs

    for folder in (tiny_export, nano_export):
        assert sorted(check_graphs(folder)) == sorted(f"{g}.onnx" for g in GRAPHS)
        spec = json.loads((folder / "osdface_onnx.json").read_text())
        assert spec["format"] == "osdface-onnx" and spec["batch"] == "dynamic" and spec["opset"] == 18
        assert set(spec["graphs"]) == set(GRAPHS)
        for graph in spec["graphs"].values():
            assert graph["precision"] == "fp32"
            assert all(v["shape"][0] == "batch" for v in [*graph["inputs"].values(), *graph["outputs"].values()])
        assert spec["graphs"]["unet"]["inputs"]["code_indices"] == {"shape": ["batch", 77], "dtype": "int64"}
        x0 = spec["x0"]
        assert abs(x0["alpha_bar"] - 0.4261) < 1e-3 and x0["timestep"] == 399
        assert x0["sqrt_alpha_bar"] ** 2 == pytest.approx(x0["alpha_bar"], rel=1e-15)
        assert spec["prompt_rule"]["num_tokens"] == 77 and spec["prompt_rule"]["padding_index"] == -1
    assert json.loads((nano_export / "osdface_onnx.json").read_text())["prompt_rule"]["positions"] == 256


NO_TORCH = """
import importlib.abc, json, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("torch", "diffusers", "peft", "torchvision", "transformers"):
            raise ImportError(name + " is blocked in this test")
sys.meta_path.insert(0, Block())
sys.path.insert(0, {repo!r})
"""


def test_reloads_in_a_fresh_process_without_torch(tiny_export, tmp_path):
    face = np.asarray(real_faces(64, 1)[0])
    np.save(tmp_path / "face.npy", face)
    script = NO_TORCH.format(repo=str(REPO)) + f"""
import numpy as np
from osdface.onnx_pipeline import OSDFaceONNXPipeline
pipe = OSDFaceONNXPipeline({str(tiny_export)!r}, device="cpu", threads={THREADS})
np.save({str(tmp_path / 'out.npy')!r}, pipe(np.load({str(tmp_path / 'face.npy')!r}), output_type="np"))
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "diffusers", "onnx")
               or m.startswith(("osdface.models", "osdface.pipeline", "osdface.onnx_export")))
print(json.dumps(heavy))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
    here = ort_pipe(tiny_export)(face, output_type="np")
    assert np.array_equal(np.load(tmp_path / "out.npy"), here)


def test_restore_cli_and_demo_run_the_export_without_torch(tiny, tiny_export, tmp_path):
    """``osdface restore --backend onnx`` and the demo's restorer, in a process where torch cannot be imported."""
    Image.fromarray(np.asarray(real_faces(64, 1)[0])).save(tmp_path / "face.png")
    script = NO_TORCH.format(repo=str(REPO)) + f"""
from osdface.cli import main
assert main(["restore", "-i", {str(tmp_path / 'face.png')!r}, "-o", {str(tmp_path / 'out')!r}, "--has_aligned",
             "--backend", "onnx", "--model", {str(tiny_export)!r}, "--device", "cpu", "-q"]) == 0
from osdface.app.restorer import DemoRestorer
r = DemoRestorer({str(tiny_export)!r}, backend="onnx", device="cpu", detector="dlib", output_dir={str(tmp_path / 'app')!r})
result = r.restore({str(tmp_path / 'face.png')!r}, mode="aligned")
result.after.save({str(tmp_path / 'app.png')!r})
print(result.info)
assert "torch" not in sys.modules
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "cpu fp32" in done.stdout
    expected = np.asarray(tiny(Image.open(tmp_path / "face.png"), output_type="pil")[0], int)
    for written in (tmp_path / "out" / "restored_faces" / "face.png", tmp_path / "app.png"):
        assert np.abs(np.asarray(Image.open(written), int) - expected).max() <= 1


def test_onnx_backend_errors_are_one_line(tiny_export, tmp_path, capsys):
    from osdface.cli import main
    from osdface.restore import load_pipeline
    from osdface.weights import MissingWeightsError

    plain = tmp_path / "plain"  # a model folder without graphs (the bundled nano carries its own)
    plain.mkdir()
    (plain / "osdface_config.json").write_text("{}")
    with pytest.raises(MissingWeightsError, match="is not an ONNX export .*osdface export-onnx"):
        load_pipeline(plain, backend="onnx")
    with pytest.raises(ValueError, match="precision the folder was exported with"):
        load_pipeline(tiny_export, backend="onnx", dtype="bf16")
    with pytest.raises(ValueError, match="unknown backend"):
        load_pipeline(tiny_export, backend="tensorrt")
    Image.new("RGB", (64, 64)).save(tmp_path / "f.png")
    assert main(["restore", "-i", str(tmp_path / "f.png"), "-o", str(tmp_path / "o"), "--has_aligned",
                 "--backend", "onnx", "--latent-mode", "sample", "--model", str(tiny_export)]) == 2
    assert main(["restore", "-i", str(tmp_path / "f.png"), "-o", str(tmp_path / "o"), "--has_aligned",
                 "--backend", "onnx", "--model", str(plain)]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(lines) == 2 and "torch backend" in lines[0] and "export-onnx" in lines[1]


def test_without_onnxruntime_one_line_says_what_to_install(tiny_export, tmp_path):
    Image.new("RGB", (64, 64)).save(tmp_path / "f.png")
    script = NO_TORCH.replace('("torch", "diffusers", "peft", "torchvision", "transformers")', '("onnxruntime",)').format(
        repo=str(REPO)) + f"""
from osdface import OSDFaceONNXPipeline
try:
    OSDFaceONNXPipeline({str(tiny_export)!r})
except ImportError as err:
    print("API:", err)
from osdface.cli import main
sys.exit(main(["restore", "-i", {str(tmp_path / 'f.png')!r}, "-o", {str(tmp_path / 'o')!r}, "--has_aligned",
               "--backend", "onnx", "--model", {str(tiny_export)!r}]))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "API: the ONNX backend needs ONNX Runtime: pip install onnxruntime" in done.stdout
    assert done.stderr.strip().splitlines()[-1].startswith("error: the ONNX backend needs ONNX Runtime")


def test_providers_are_chosen_from_what_is_installed():
    from osdface.onnx_pipeline import choose_providers

    cpu, cuda, coreml, dml = (f"{p}ExecutionProvider" for p in ("CPU", "CUDA", "CoreML", "Dml"))
    assert choose_providers("auto", [cpu]) == [cpu]
    assert choose_providers("auto", [dml, cpu, cuda]) == [cuda, dml, cpu]
    assert choose_providers("mps", [coreml, cpu]) == [coreml, cpu]
    assert choose_providers("cpu", [cuda, cpu]) == [cpu]
    with pytest.raises(ValueError, match="no CUDAExecutionProvider"):
        choose_providers("cuda", [cpu])


def test_export_onnx_command_fp16_and_fixed_batch(tiny, tmp_path, capsys):
    """The command line on a model folder: --fp16 (the VRE and VAE encoder in fp16, the UNet and decoder fp32),
    a fixed batch of 2 (a batch of 3 is padded), every graph checked, a parity line printed."""
    from osdface.cli import main
    from osdface.onnx_export import FP16_STABLE, check_graphs

    tiny.save_pretrained(tmp_path / "model")
    out = tmp_path / "onnx16"
    assert main(["export-onnx", "--model", str(tmp_path / "model"), "--out", str(out), "--fp16", "--batch", "2"]) == 0
    assert "prompt codes identical" in capsys.readouterr().err
    spec = json.loads((out / "osdface_onnx.json").read_text())
    assert spec["batch"] == 2
    assert {n for n, g in spec["graphs"].items() if g["precision"] == "fp16"} == set(FP16_STABLE)
    assert spec["graphs"]["vre"]["inputs"]["image"] == {"shape": [2, 3, 64, 64], "dtype": "float32"}
    check_graphs(out)
    assert not list(out.glob(".export-*"))  # the temporary folder is gone
    images = real_faces(64, 3)
    half = ort_pipe(out)(images, output_type="np", batch_size=4)
    full = tiny(images, output_type="np", batch_size=1)
    assert half.shape == (3, 64, 64, 3)
    psnr = 10 * np.log10(1 / np.mean((half - full) ** 2))
    assert psnr > 30, psnr


def test_to_model_arrays_matches_to_model_items():
    from osdface import image_io

    rng = np.random.default_rng(3)
    u8 = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    inputs = [Image.fromarray(u8), u8, u8.astype(np.float64) / 255, rng.integers(0, 65535, (40, 40), dtype=np.uint16),
              np.dstack([u8, np.full((40, 48, 1), 128, np.uint8)]), torch.from_numpy(u8).permute(2, 0, 1)]
    arrays = image_io.to_model_arrays(inputs)
    items = image_io.to_model_items(inputs)
    for a, t in zip(arrays, items):
        assert np.array_equal(a.astype(np.float32) / 255 if a.dtype == np.uint8 else a,
                              image_io.unit_float(t).numpy())
    with pytest.raises(image_io.ImageInputError, match="images\\[0\\]: too small"):
        image_io.to_model_arrays([np.zeros((10, 10, 3), np.uint8)])


@pytest.mark.slow
def test_sd21_shapes_export_and_parity(tmp_path):
    """SD 2.1-sized graphs with random weights (the fp32 UNet is over 2 GB: external data): export, check, one face
    (≈ 15 min and ≈ 13 GB on 2 CPU cores; benchmarks/onnx_speed.py --sd21 measured max |Δ| 5.8e-4, same codes)."""
    from osdface.onnx_export import check_graphs, check_parity, export_onnx

    pipe = OSDFacePipeline.from_preset("sd21", seed=0)
    pipe.fuse_lora()  # in place (no 3.5 GB copy for the export)
    export_onnx(pipe, tmp_path / "sd21")
    assert (tmp_path / "sd21" / "unet.onnx.data").is_file()
    assert not (tmp_path / "sd21" / "vae_decoder.onnx.data").exists()
    check_graphs(tmp_path / "sd21")
    result = check_parity(pipe, tmp_path / "sd21", batch_size=1)
    assert result["codes_equal"] and result["max_abs_diff"] <= 1e-3, result
