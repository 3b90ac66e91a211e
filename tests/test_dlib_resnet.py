"""dlib's face-recognition ResNet in PyTorch: parity with dlib itself, the .dat reader, safetensors, the fixed chip.

dlib (``dlib-bin``) and the face-recognition-models package are project dependencies; the tests that compare with
dlib skip when either is missing. Real faces come from the shared folder (``faces_dir``; skipped when absent); the
tests that need no shared data use the repository's public-domain example face and synthetic chips.
"""

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from osdface.networks import dlib_resnet as dr
from osdface.weights import MissingWeightsError

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_FACE = REPO / "examples" / "astronaut_face_lq.png"
N_PARITY_FACES = 6
N_CHIP_FACES = 16
TOL = 1e-4  # per component, port vs dlib on the same chip (measured: <= 1e-6)
# the fixed chip vs dlib's landmark-aligned chip, on FFHQ-aligned faces (measured over these 16 faces:
# cos mean 0.9964, min 0.9914, i.e. 4.5 degrees mean, 7.5 degrees worst; the thresholds leave a margin)
MIN_MEAN_COS, MIN_COS = 0.99, 0.98


@pytest.fixture(scope="module")
def dat_path():
    try:
        return dr.find_dlib_face_resnet_dat()
    except MissingWeightsError as err:
        pytest.skip(str(err))


@pytest.fixture(scope="module")
def converted(dat_path, tmp_path_factory):
    return dr.convert_dlib_face_resnet(dat_path, tmp_path_factory.mktemp("dlib") / dr.SAFETENSORS_FILE)


@pytest.fixture(scope="module")
def net(converted):
    return dr.load_dlib_face_resnet(converted)


@pytest.fixture(scope="module")
def dlib_models(dat_path):
    dlib = pytest.importorskip("dlib")
    hog, sp5 = dr.dlib_chip_models()
    return dlib, hog, sp5, dlib.face_recognition_model_v1(str(dat_path))


def _rgb(path) -> np.ndarray:
    return np.array(Image.open(path).convert("RGB"))


def _dlib_chip(dlib_models, img: np.ndarray):
    """dlib's own 150² chip and the 5 landmarks it came from: HOG box (the median aligned box when HOG finds none),
    5-point landmarks, get_face_chip(150, 0.25)."""
    dlib, hog, sp5, _ = dlib_models
    shape = dr.dlib_face_shape(img, (hog, sp5))
    return dlib.get_face_chip(img, shape, size=150, padding=0.25), shape


def _port(net, chips: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return net(dr.DlibFaceResNet.chips_to_tensor(chips)).double().numpy()


def _faces(faces_dir, n):
    files = sorted(faces_dir.glob("*.png"))
    if len(files) < n:
        pytest.skip(f"need {n} faces in {faces_dir}, found {len(files)}")
    return [files[i] for i in np.linspace(0, len(files) - 1, n).round().astype(int)]


# ---------------------------------------------------------------------------------------------------------------
# parity with dlib


def test_parity_without_shared_data(net, dlib_models):
    """The example face resized to a chip, and two synthetic chips: the port gives dlib's descriptor."""
    import cv2

    rec = dlib_models[3]
    rng = np.random.default_rng(0)
    face = cv2.resize(_rgb(EXAMPLE_FACE), (150, 150), interpolation=cv2.INTER_AREA)
    ramp = np.linspace(0, 255, 150)
    synthetic = np.stack([ramp[None, :].repeat(150, 0), ramp[:, None].repeat(150, 1), 255 - ramp[None, :].repeat(
        150, 0)], axis=-1).round().astype(np.uint8)
    chips = np.stack([face, rng.integers(0, 256, (150, 150, 3), dtype=np.uint8), synthetic])
    ours = _port(net, chips)
    theirs = np.array([np.array(rec.compute_face_descriptor(c)) for c in chips])
    err = np.abs(ours - theirs).max(axis=1)
    print("max |port - dlib| per chip:", " ".join(f"{e:.2e}" for e in err))
    assert err.max() <= TOL
    assert abs(np.linalg.norm(theirs[0]) - 1) > 0.05  # dlib's descriptor is not L2-normalised; nor is ours


def test_parity_on_real_faces(net, dlib_models, faces_dir):
    rec = dlib_models[3]
    files = _faces(faces_dir, N_PARITY_FACES)
    chips = np.stack([_dlib_chip(dlib_models, _rgb(f))[0] for f in files])
    ours = _port(net, chips)
    theirs = np.array([np.array(rec.compute_face_descriptor(c)) for c in chips])
    err = np.abs(ours - theirs).max(axis=1)
    print("max |port - dlib| per face:", " ".join(f"{f.name}={e:.2e}" for f, e in zip(files, err)))
    assert err.max() <= TOL


# ---------------------------------------------------------------------------------------------------------------
# the .dat reader, safetensors


def test_reader_shapes_and_input_constants(dat_path):
    state = dr.read_dlib_face_resnet(dat_path)
    assert state["input_mean"].tolist() == pytest.approx([122.782, 117.001, 104.298], abs=1e-4)
    assert tuple(state["stem.conv.weight"].shape) == (32, 3, 7, 7)
    assert tuple(state["blocks.3.conv1.weight"].shape) == (64, 32, 3, 3)  # the first down block
    assert tuple(state["fc.weight"].shape) == (128, 256)
    assert sum(v.numel() for v in state.values()) == 5_614_595
    assert set(state) == set(dr.DlibFaceResNet().state_dict())


def test_safetensors_round_trip(dat_path, converted, net):
    from safetensors import safe_open

    direct = dr.DlibFaceResNet()
    direct.load_state_dict(dr.read_dlib_face_resnet(dat_path))
    x = torch.rand(2, 3, 150, 150, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(direct.eval()(x), net(x))
    with safe_open(str(converted), framework="pt") as f:
        meta = f.metadata()
    assert meta["source_file"] == dr.DAT_FILE and meta["license"] == dr.LICENSE
    assert len(meta["source_sha256"]) == 64 and meta["format"] == dr.FORMAT
    print(f"{converted.name}: {converted.stat().st_size / 1e6:.2f} MB")
    assert 22_000_000 < converted.stat().st_size < 23_000_000  # 5.6 M float32
    assert not any(p.requires_grad for p in net.parameters()) and not net.training
    # a folder works as the path; a .dat does not (safetensors only)
    assert torch.equal(dr.load_dlib_face_resnet(converted.parent).fc.weight, net.fc.weight)
    with pytest.raises(ValueError, match=r"reads \.safetensors only.*convert_dlib_face_resnet"):
        dr.load_dlib_face_resnet(dat_path)


def test_convert_dlib_command(dat_path, converted, tmp_path, capsys):
    from osdface.cli import main

    assert main(["convert-dlib", "--dat", str(dat_path), "--out", str(tmp_path)]) == 0
    written = tmp_path / dr.SAFETENSORS_FILE
    assert "load_dlib_face_resnet" in capsys.readouterr().out
    from safetensors.torch import load_file

    a, b = load_file(str(written)), load_file(str(converted))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert main(["convert-dlib", "--dat", str(tmp_path / "missing.dat"), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "missing.dat" in err


def test_loading_never_imports_dlib(converted, tmp_path, monkeypatch):
    """The package import is lazy; loading (also the first-use conversion into an empty cache) and running the network
    work with dlib made unimportable, and do not import face_recognition_models (its .dat is found by path)."""
    import importlib

    import osdface

    for name in ("osdface.networks", "osdface.networks.dlib_resnet"):
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(osdface, "networks", None, raising=False)
    nets = importlib.import_module("osdface.networks")  # a fresh import of the package
    assert "osdface.networks.dlib_resnet" not in sys.modules, "the package import is not lazy"
    for name in ("dlib", "_dlib_pybind11"):
        monkeypatch.setitem(sys.modules, name, None)  # `import dlib` now raises ImportError
    frm_before = sys.modules.get("face_recognition_models")
    monkeypatch.setenv("OSDFACE_HOME", str(tmp_path / "home"))
    net = nets.load_dlib_face_resnet(converted)
    cached = nets.load_dlib_face_resnet()  # converts from the package's .dat (found without importing it)
    assert (tmp_path / "home" / dr.SAFETENSORS_FILE).is_file()
    assert not list((tmp_path / "home").glob("*.tmp"))  # the atomic write left no temporary file
    again = nets.load_dlib_face_resnet()  # now read from the cache
    x = torch.rand(1, 3, 150, 150, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(net(x), cached(x)) and torch.equal(net(x), again(x))
    assert sys.modules.get("face_recognition_models") is frm_before


def test_missing_weights_message(tmp_path, monkeypatch):
    with pytest.raises(MissingWeightsError, match=r"not found.*convert_dlib_face_resnet") as err:
        dr.load_dlib_face_resnet(tmp_path / "nothing.safetensors")
    assert "\n" not in str(err.value)
    monkeypatch.setenv("OSDFACE_HOME", str(tmp_path))
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingWeightsError, match=r"face-recognition-models==0\.3\.0") as err:
        dr.load_dlib_face_resnet()
    assert "\n" not in str(err.value) and str(tmp_path) in str(err.value)


def test_corrupt_or_truncated_files_raise_one_line_value_errors(dat_path, tmp_path):
    data = dat_path.read_bytes()
    cases = {
        "empty.dat": b"",
        "head.dat": data[:5000],                                       # truncated in the middle of a tensor
        "tail.dat": data[:-3],                                         # truncated at the very end
        "noise.dat": np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "renamed.dat": data.replace(b"con_4", b"con_9", 1),            # an unknown layer version
        "extra.dat": data + b"\x00",                                   # trailing bytes
    }
    sp5 = dat_path.parent / "shape_predictor_5_face_landmarks.dat"   # another dlib file
    paths = [tmp_path / name for name in cases] + ([sp5] if sp5.is_file() else [])
    for name, raw in cases.items():
        (tmp_path / name).write_bytes(raw)
    for path in paths:
        with pytest.raises(ValueError) as err:
            dr.read_dlib_face_resnet(path)
        msg = str(err.value)
        assert "\n" not in msg and str(path) in msg and "expected" in msg, msg
    with pytest.raises(ValueError, match="cannot read"):
        dr.read_dlib_face_resnet(tmp_path / "missing.dat")
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        dr.load_dlib_face_resnet(tmp_path / "bad.safetensors")


# ---------------------------------------------------------------------------------------------------------------
# the fixed, differentiable chip


def test_identity_loss_low_passes_its_chip_and_the_evaluation_does_not(net):
    """The loss's gradient keeps (almost) nothing finer than the chip can hold; embed() stays dlib's chip."""
    from osdface.losses.identity import IdentityLoss, antialias_for_chip

    loss = IdentityLoss(net)
    face = torch.from_numpy(np.array(Image.open(REPO / "examples" / "astronaut_face.png").convert("RGB")))
    y = face.permute(2, 0, 1)[None].float() / 127.5 - 1
    x0 = torch.nn.functional.avg_pool2d(y, 5, 1, 2, count_include_pad=False)  # a blurred copy: a non-zero loss

    def fine_share(antialias):
        loss.antialias = antialias
        x = x0.clone().requires_grad_(True)
        loss(x, y).sum().backward()
        spectrum = torch.fft.rfft2(x.grad[0]).abs() ** 2
        fy = torch.fft.fftfreq(512).abs()[:, None]
        fx = torch.fft.rfftfreq(512)[None]
        return float(spectrum[:, torch.maximum(fy, fx) > 0.2].sum() / spectrum.sum())

    aliased, low_passed = fine_share(False), fine_share(True)
    print(f"gradient energy above 0.2 cycles/px: {aliased:.5f} without, {low_passed:.5f} with the low-pass")
    assert low_passed < aliased / 5
    with torch.no_grad():  # the evaluation's embedding is dlib's chip, whatever the loss does
        assert torch.allclose(loss.embed(y), torch.nn.functional.normalize(dr.dlib_embed(y, net)), atol=1e-6)
        assert not torch.equal(loss.embed(y, antialias=True), loss.embed(y))
    assert antialias_for_chip(torch.ones(1, 3, 64, 64)).sub(1).abs().max() < 1e-6  # a flat image stays flat


def test_grid_pattern_finds_a_latent_grid():
    from osdface.eval.sharpness import grid_pattern

    face = torch.from_numpy(np.array(Image.open(REPO / "examples" / "astronaut_face.png").convert("RGB")))
    x = face.permute(2, 0, 1)[None].float()
    tile = torch.randn(4, 4, generator=torch.Generator().manual_seed(0))
    tile = tile - tile.mean()
    pattern = (2 * tile / tile.square().mean().sqrt()).repeat(128, 128)  # a 4-px pattern of RMS 2 grey levels
    clean, patterned = float(grid_pattern(x / 255)), float(grid_pattern((x + pattern).clamp(0, 255) / 255))
    assert clean < 0.6 and 1.6 < patterned < 2.4, (clean, patterned)



def test_folder_grid_is_the_mean_over_a_folder(tmp_path):
    from osdface.eval.sharpness import folder_grid, grid_pattern

    with pytest.raises(ValueError, match="no PNG image"):
        folder_grid(tmp_path)
    g = torch.Generator().manual_seed(0)
    images = [(torch.rand(3, 64, 64, generator=g) * 255).round().to(torch.uint8) for _ in range(2)]
    for i, im in enumerate(images):
        Image.fromarray(im.permute(1, 2, 0).numpy()).save(tmp_path / f"{i}.png")
    want = sum(float(grid_pattern(im[None].float() / 255)) for im in images) / 2
    assert abs(folder_grid(tmp_path) - want) < 1e-6


def test_gradient_flows_through_the_fixed_chip(net):
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(2, 3, 512, 512, generator=g) * 2 - 1).requires_grad_(True)  # [-1, 1], one pyramid level
    target = torch.randn(2, 128, generator=g)
    emb = dr.dlib_embed(x, net)
    assert emb.shape == (2, 128)
    loss = (1 - torch.cosine_similarity(emb, target)).sum()
    loss.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    # the chip covers the face, not the whole image: the corners get no gradient
    assert x.grad[..., :20, :20].abs().sum() == 0
    with pytest.raises(ValueError, match="square"):
        dr.ffhq_to_dlib_chip(torch.zeros(1, 3, 64, 32))


@pytest.mark.parametrize("side", [256, 512, 1024])
def test_chip_sampling_matches_dlib_extract(dlib_models, side):
    """With dlib's own rectangle for the example face, ffhq_to_dlib_chip reproduces dlib.get_face_chip (0, 1 and 2
    pyramid levels) up to dlib's rounding: dlib truncates to integers after each resampling step (a bias of about
    +0.5 grey level per step: 0.48, 0.97, 1.45 measured), and what remains is 0.26-0.40 grey levels."""
    import cv2

    img = cv2.resize(_rgb(EXAMPLE_FACE), (side, side), interpolation=cv2.INTER_AREA if side < 512 else
                     cv2.INTER_CUBIC)
    theirs, shape = _dlib_chip(dlib_models, img)
    theirs = theirs.astype(np.float32)
    geometry = dr.measure_dlib_chip_geometry(img, shape)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float()
    ours = dr.ffhq_to_dlib_chip(x, geometry=geometry)[0].permute(1, 2, 0).numpy()
    diff = ours - theirs
    steps = {256: 1, 512: 2, 1024: 3}[side]  # pyramid levels + the bilinear read
    spread = np.abs(diff - diff.mean()).mean()
    print(f"{side}²: ours - dlib chip: bias {diff.mean():.3f}, mean |diff - bias| {spread:.3f}")
    assert 0.3 * steps < diff.mean() < 0.6 * steps
    assert spread < 0.6


_SHARED_CHIP_DATA: dict = {}


@pytest.fixture
def shared_chip_data(dlib_models, faces_dir):
    """Per shared face: dlib's descriptor of its own chip and the chip's geometry (computed once per module)."""
    if faces_dir not in _SHARED_CHIP_DATA:
        _SHARED_CHIP_DATA[faces_dir] = _chip_rows(dlib_models, faces_dir)
    return _SHARED_CHIP_DATA[faces_dir]


def _chip_rows(dlib_models, faces_dir):
    rows = []
    for f in _faces(faces_dir, N_CHIP_FACES):
        img = _rgb(f)
        chip, shape = _dlib_chip(dlib_models, img)
        rows.append(dict(name=f.name, img=img, descriptor=np.array(dlib_models[3].compute_face_descriptor(chip)),
                         geometry=dr.measure_dlib_chip_geometry(img, shape)))
    return rows


def test_fixed_chip_agrees_with_dlibs_own_chip(net, shared_chip_data):
    cos = []
    for row in shared_chip_data:
        x = torch.from_numpy(row["img"]).permute(2, 0, 1)[None].float() / 127.5 - 1  # [-1, 1]
        with torch.no_grad():
            emb = dr.dlib_embed(x, net)[0].double()
        cos.append(torch.cosine_similarity(emb, torch.from_numpy(row["descriptor"]), dim=0).item())
    cos = np.array(cos)
    deg = np.degrees(np.arccos(np.clip(cos, -1, 1)))
    print(f"fixed chip vs dlib chip over {len(cos)} faces: cos mean {cos.mean():.4f} min {cos.min():.4f}; "
          f"angle mean {deg.mean():.1f} deg, max {deg.max():.1f} deg")
    assert cos.mean() >= MIN_MEAN_COS and cos.min() >= MIN_COS


def test_chip_constants_rederive(shared_chip_data):
    """The median geometry of these faces is close to the recorded constants (derived from all 329 faces by
    scripts/derive_dlib_chip.py)."""
    g = np.median(np.array([row["geometry"] for row in shared_chip_data]), axis=0)
    cx, cy, side, angle = dr.DLIB_CHIP_IN_FFHQ
    print("median geometry of the test faces:", np.round(g, 4), "constants:", dr.DLIB_CHIP_IN_FFHQ)
    assert abs(g[0] - cx) < 0.01 and abs(g[1] - cy) < 0.01
    assert abs(g[2] - side) < 0.03 and abs(g[3] - angle) < math.radians(2)
