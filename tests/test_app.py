"""The demo: the restoration logic in-process, then ``python app.py`` on loopback through gradio_client.

A tiny random model (64² faces) keeps it fast; outputs are checked for size, format, parity with a direct
pipeline call and untouched background, not for quality.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from osdface.app.restorer import DemoInputError, DemoRestorer
from osdface.restore import choose_mode, fills_template
from osdface.weights import BUNDLED_NANO, default_model
from osdface.faces.alignment import template
from osdface.faces.detection import Face

from .app_server import REPO, serve, write_tiny_model

SIZE = 64  # the tiny preset's process_size
FACE = REPO / "examples" / "astronaut_face_lq.png"  # an aligned 512² crop
PHOTO = REPO / "examples" / "astronaut_photo_lq.jpg"  # a 512x384 photo with one face
OVERSIZE = (4200, 4100)  # 17.2 MP > the demo's default 16.8 MP


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("app_model") / "tiny")


@pytest.fixture(scope="module")
def restorer(tiny_model, tmp_path_factory):
    r = DemoRestorer(tiny_model, device="cpu", detector="dlib", output_dir=tmp_path_factory.mktemp("app_out"))
    yield r
    r.close()


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    (d / "notes.txt").write_text("this is not an image\n")
    Image.new("L", OVERSIZE).save(d / "huge.png")  # a few kB on disk, 17.2 MP in the header
    Image.new("RGB", (20, 20)).save(d / "tiny.png")
    return {"text": d / "notes.txt", "huge": d / "huge.png", "small": d / "tiny.png"}


def _face_at(points: np.ndarray) -> Face:
    lo, hi = points.min(0), points.max(0)
    return Face(box=np.r_[lo, hi], score=1.0, landmarks=points)


# ------------------------------------------------------------------------------------------ mode decision
def test_choose_mode_rules():
    aligned = _face_at(template(512))
    small = _face_at(template(512) * 0.3 + 100.0)  # a face in a corner of a bigger picture
    assert fills_template(aligned, 512, 512) and not fills_template(small, 512, 512)
    assert not fills_template(aligned, 512, 640)  # not square
    assert choose_mode("auto", [aligned], 512, 512)[0] == "aligned"
    assert choose_mode("auto", [small], 512, 512)[0] == "photo"
    assert choose_mode("auto", [], 512, 512)[0] == "aligned"  # square, nothing detected: a tight crop
    assert choose_mode("auto", [], 640, 480)[0] == "photo"
    assert choose_mode("photo", [aligned], 512, 512)[0] == "photo"  # the user's choice wins
    assert choose_mode("aligned", [], 640, 480)[0] == "aligned"


def test_auto_mode_on_the_examples(restorer):
    for path, expected in ((FACE, "aligned"), (PHOTO, "photo")):
        img = Image.open(path).convert("RGB")
        faces = restorer.detector.detect(np.asarray(img))
        assert faces, f"dlib found no face in {path.name}"
        assert choose_mode("auto", faces, *img.size)[0] == expected, path.name


def test_default_model_precedence(monkeypatch):
    monkeypatch.delenv("OSDFACE_MODEL", raising=False)
    assert default_model() == str(BUNDLED_NANO)
    monkeypatch.setenv("OSDFACE_MODEL", "someone/osdface-sd21")
    assert default_model() == "someone/osdface-sd21"
    assert default_model("./mine") == "./mine"


# -------------------------------------------------------------------------------------- restorer in-process
def test_restore_face_crop_matches_the_pipeline(restorer):
    result = restorer.restore(str(FACE))
    assert result.mode == "aligned" and result.faces_found == 1
    assert result.after.size == result.before.size == (SIZE, SIZE)
    direct = restorer.pipeline()([Image.open(FACE).convert("RGB")], output_type="pil")[0]
    assert np.array_equal(np.asarray(result.after), np.asarray(direct))
    with Image.open(result.png) as png:  # the download: lossless PNG of exactly the shown result
        assert png.format == "PNG"
        assert np.array_equal(np.asarray(png.convert("RGB")), np.asarray(result.after))
    assert result.png.name == "astronaut_face_lq_restored.png"
    assert "aligned crop (auto" in result.info and "s/face" in result.info and "cpu fp32" in result.info


def test_restore_whole_photo_upscaled(restorer):
    src = Image.open(PHOTO).convert("RGB")
    result = restorer.restore(str(PHOTO), upscale=2, color_fix_method="wavelet")
    assert result.mode == "photo" and result.faces_found >= 1 and len(result.faces) == result.faces_found
    assert result.after.size == result.before.size == (2 * src.width, 2 * src.height)
    assert all(face.size == (SIZE, SIZE) for face, _ in result.faces)
    before, after = np.asarray(result.before), np.asarray(result.after)
    assert np.array_equal(before, np.asarray(src.resize(result.after.size, Image.LANCZOS)))
    # the face (box 175,76 → 266,167 in the input) was replaced; the bottom-right corner is untouched background
    assert np.abs(after[160:330, 350:530].astype(int) - before[160:330, 350:530]).mean() > 5
    assert np.array_equal(after[-150:, -300:], before[-150:, -300:])


def test_exif_orientation_is_applied(restorer, tmp_path):
    src = Image.open(PHOTO).convert("RGB")
    stored = src.transpose(Image.Transpose.ROTATE_90)  # sideways on disk ...
    exif = Image.Exif()
    exif[0x0112] = 6  # ... and "rotate 90° clockwise to display"
    stored.save(tmp_path / "rotated.jpg", exif=exif.tobytes(), quality=95)
    result = restorer.restore(str(tmp_path / "rotated.jpg"))
    assert result.after.size == src.size  # upright, as displayed
    assert result.faces_found >= 1  # an upright face (HOG does not find sideways ones)


def test_photo_without_faces_comes_back_unchanged(restorer, tmp_path):
    ramp = np.tile(np.linspace(0, 255, 200, dtype=np.uint8)[None, :, None], (120, 1, 3))
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    result = restorer.restore(str(tmp_path / "ramp.png"))
    assert result.mode == "photo" and result.faces_found == 0 and result.faces == []
    assert np.array_equal(np.asarray(result.after), ramp)
    assert "no face found" in result.info


@pytest.mark.parametrize("kind, message", [("text", "notes.txt: not an image"), ("huge", "huge.png: too large"),
                                           ("small", "tiny.png: too small")])
def test_bad_uploads_are_refused_in_one_line(restorer, bad_files, kind, message):
    with pytest.raises(DemoInputError) as err:
        restorer.restore(str(bad_files[kind]))
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


@pytest.mark.parametrize("options, message", [
    (dict(dtype="fp16"), "fp16 needs a GPU"),
    (dict(model="/somewhere/else"), "is not offered by this demo"),
    (dict(upscale=5), "upscale must be one of"),
    (dict(mode="sideways"), "unknown mode"),
    (dict(color_fix_method="sepia"), "unknown colour fix"),
])
def test_bad_options_are_refused(restorer, options, message):
    with pytest.raises(DemoInputError, match=message):
        restorer.restore(str(FACE), **options)


def test_no_image(restorer):
    with pytest.raises(DemoInputError, match="no image"):
        restorer.restore(None)


def test_models_are_loaded_once_and_cached(restorer):
    default = restorer.pipeline()
    assert restorer.pipeline(restorer.default_model, "fp32") is default
    nano = restorer.pipeline(str(BUNDLED_NANO), "fp32")  # offered next to the default, loaded on first use
    assert nano.config.preset == "nano" and restorer.pipeline(str(BUNDLED_NANO)) is nano
    bf16 = restorer.pipeline(None, "bf16")  # another dtype of the default model: a cast copy, cached
    assert bf16 is not default and bf16.dtype == torch.bfloat16 and default.dtype == torch.float32


def test_sampled_latent_depends_on_the_seed(restorer):
    a = restorer.restore(str(FACE), latent_mode="sample", seed=1)
    b = restorer.restore(str(FACE), latent_mode="sample", seed=1)
    c = restorer.restore(str(FACE), latent_mode="sample", seed=2)
    assert np.array_equal(np.asarray(a.after), np.asarray(b.after))
    assert not np.array_equal(np.asarray(a.after), np.asarray(c.after))
    assert "seed 1" in a.info


# --------------------------------------------------------------------------------- app.py via gradio_client
@pytest.fixture(scope="module")
def app_url(tiny_model, monkeypatch_module):
    """app.py's start-up (options, model, page) on 127.0.0.1 and a free port, served from a thread."""
    pytest.importorskip("gradio", reason="the demo's tests need gradio: pip install --no-deps -r requirements-app.txt")
    monkeypatch_module.delenv("SPACE_ID", raising=False)
    monkeypatch_module.delenv("GRADIO_SERVER_NAME", raising=False)
    monkeypatch_module.delenv("GRADIO_SERVER_PORT", raising=False)
    url, _, close = serve(["--model", str(tiny_model), "--detector", "dlib", "--device", "cpu", "--max-queue", "8"])
    yield url
    close()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.fixture(scope="module")
def client(app_url):
    gradio_client = pytest.importorskip("gradio_client")
    return gradio_client.Client(app_url, verbose=False)


def _args(path, *, mode="auto", upscale=1):
    from gradio_client import handle_file

    return (handle_file(str(path)), mode, upscale, "none", False, None, "auto", "mode", 114)


def test_client_restores_a_face_crop_and_a_photo(client):
    assert list(client.view_api(print_info=False, return_format="dict")["named_endpoints"]) == ["/restore"]
    slider, gallery, png, info = client.predict(*_args(FACE), api_name="/restore")
    with Image.open(png) as im:
        assert (im.format, im.size) == ("PNG", (SIZE, SIZE))
    assert [Image.open(p).size for p in slider] == [(SIZE, SIZE)] * 2 and len(gallery) == 1
    assert "aligned crop" in info

    slider, gallery, png, info = client.predict(*_args(PHOTO, upscale=2), api_name="/restore")
    with Image.open(png) as im:
        assert (im.format, im.size) == ("PNG", (1024, 768))
    assert "whole photo" in info and len(gallery) >= 1


@pytest.mark.parametrize("kind, message", [("text", "notes.txt: not an image"), ("huge", "huge.png: too large")])
def test_client_gets_clear_errors(client, bad_files, kind, message):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as err:
        client.predict(*_args(bad_files[kind]), api_name="/restore")
    text = str(err.value)
    assert message in text and "Traceback" not in text and "/tmp/" not in text


def test_client_two_concurrent_requests_finish(client):
    t0 = time.monotonic()
    jobs = [client.submit(*_args(FACE), api_name="/restore"), client.submit(*_args(PHOTO), api_name="/restore")]
    results = [job.result(timeout=120) for job in jobs]
    assert Image.open(results[0][2]).size == (SIZE, SIZE)
    assert Image.open(results[1][2]).size == Image.open(PHOTO).size
    assert time.monotonic() - t0 < 120


# ------------------------------------------------------------------------------------------ headless browser
SCREENSHOT = Path(os.environ.get("OSDFACE_ARTIFACTS", REPO / "artifacts")) / "app_screenshot.png"


def test_browser_upload_restore_screenshot(app_url):
    """Debian's chromium driven by Playwright: load the page, upload the photo, click Restore, wait for the result,
    save a screenshot (a CI artifact: artifacts/app_screenshot.png, or $OSDFACE_ARTIFACTS)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium; .ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(app_url, wait_until="networkidle")
            page.locator("#input-image input[type=file]").set_input_files(str(PHOTO), timeout=60_000)
            page.wait_for_timeout(500)
            page.click("#restore-button")
            page.wait_for_function("() => { const t = document.querySelector('#result-info textarea');"
                                   " return t && t.value.includes('restored'); }", timeout=120_000)
            info = page.locator("#result-info textarea").input_value()
            download = page.locator("#result-png").inner_text().replace("\n", "")  # the name wraps
            page.wait_for_function("() => document.querySelectorAll('#result-slider img').length >= 2",
                                   timeout=30_000)
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()
    assert "whole photo" in info and "1 restored" in info, info
    assert "astronaut_photo_lq_restored.png" in download and not errors, errors
    with Image.open(SCREENSHOT) as im:  # a real capture of the page, not a blank one
        gray = np.asarray(im.convert("L"))
    assert gray.shape[0] > 600 and gray.std() > 20


# ------------------------------------------------------------------------------------------ start-up options
def test_spaces_gpu_only_on_zero_gpu(monkeypatch):
    import sys
    import types

    pytest.importorskip("gradio")
    from osdface.app.ui import gpu

    def fn():
        return "ran"

    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert gpu(fn) is fn  # no Space: the function itself, the `spaces` package not needed
    seen = {}
    fake = types.ModuleType("spaces")

    def fake_gpu(duration):
        def decorate(f):
            seen["duration"] = duration
            return lambda *a, **k: "gpu:" + f(*a, **k)
        return decorate

    fake.GPU = fake_gpu
    monkeypatch.setitem(sys.modules, "spaces", fake)
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    wrapped = gpu(fn)
    assert wrapped is not fn and wrapped() == "gpu:ran" and seen["duration"] > 0


def test_launch_refuses_bad_limits(capsys):
    from osdface.app.launch import free_port, prepare

    assert prepare(["--concurrency", "0"]) == 2 and "at least 1" in capsys.readouterr().err
    port = free_port()
    assert 1024 <= port <= 65535
