"""Whole-photo mode: alignment, paste-back, colour fix, dlib detection, restore_photo, restore_files."""

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from osdface.faces import alignment, color, paste
from osdface.faces.alignment import align_face, apply_affine, invert_affine, similarity_transform, template
from osdface.faces.photo import restore_photo

REPO = Path(__file__).resolve().parents[1]
ASTRONAUT = REPO / "examples" / "astronaut_face_lq.png"


class IdentityPipe:
    """A fake restorer: returns the crops unchanged; counts calls."""

    class config:
        process_size = 256

    def __init__(self, size=256):
        self.config = type("cfg", (), {"process_size": size})()
        self.calls = []

    def __call__(self, images, output_type="pil", batch_size=4, **kw):
        self.calls.append(len(images))
        arr = np.stack([np.asarray(im, dtype=np.float32) / 255.0 for im in images])
        assert output_type == "np"
        return arr


class CountingPipe:
    def __init__(self, pipe):
        self.pipe, self.calls = pipe, []
        self.config = pipe.config
        self.device = pipe.device

    def __call__(self, images, **kw):
        self.calls.append(len(images))
        return self.pipe(images, **kw)


@pytest.fixture(scope="module")
def dlib_detector():
    from osdface.faces.detection import DlibDetector

    return DlibDetector()


def _background(h, w, seed=0):
    rng = np.random.default_rng(seed)
    bg = rng.integers(60, 200, (h, w, 3)).astype(np.uint8)
    return cv2.GaussianBlur(bg, (0, 0), 6)


def _place(photo, face, cx, cy, scale, angle):
    """Paste an aligned face crop into ``photo`` (rotated, scaled, centred at cx, cy); returns its template
    landmarks in photo coordinates."""
    s = face.shape[0]
    m = cv2.getRotationMatrix2D(((s - 1) / 2, (s - 1) / 2), angle, scale)
    m[:, 2] += [cx - (s - 1) / 2, cy - (s - 1) / 2]
    h, w = photo.shape[:2]
    warped = cv2.warpAffine(face, m, (w, h))
    mask = cv2.warpAffine(np.ones((s, s), np.float32), m, (w, h))
    mask = cv2.GaussianBlur(cv2.erode(mask, np.ones((7, 7))), (0, 0), 2)[..., None]
    photo[:] = np.rint(photo * (1 - mask) + warped * mask).astype(np.uint8)
    return apply_affine(m, template(s))


def _load(path):
    return np.asarray(Image.open(path).convert("RGB"))


def _composed(faces_dir, with_boxes=False):
    photo = _background(560, 900)
    spec = [("face_0000.png", 170, 270, 0.9, 8), ("face_0011.png", 460, 250, 1.2, -6),
            ("face_0001.png", 740, 300, 0.75, 0)]
    centres = []
    for name, cx, cy, sc, ang in spec:
        lm = _place(photo, _load(faces_dir / name), cx, cy, sc, ang)
        centres.append(lm.mean(0))
    return photo, np.array(centres)


# ------------------------------------------------------------------------------------------------ alignment
def test_template_scales():
    np.testing.assert_allclose(template(512), alignment.FFHQ_TEMPLATE_512)
    np.testing.assert_allclose(template(256), alignment.FFHQ_TEMPLATE_512 / 2)


def test_similarity_transform_maps_landmarks_onto_template():
    rng = np.random.default_rng(0)
    for size in (64, 256, 512):
        dst = template(size)
        for _ in range(25):
            ang, sc = rng.uniform(-np.pi, np.pi), rng.uniform(0.2, 5.0)
            true = np.array([[sc * np.cos(ang), -sc * np.sin(ang), rng.uniform(-300, 300)],
                             [sc * np.sin(ang), sc * np.cos(ang), rng.uniform(-300, 300)]])
            lm = apply_affine(invert_affine(true), dst)  # the landmarks as seen in a photo
            m = similarity_transform(lm + rng.normal(0, 0.05, lm.shape), dst)
            assert np.abs(apply_affine(m, lm) - dst).max() < 1.0
            assert np.linalg.det(m[:, :2]) > 0
            # a similarity: equal column norms, orthogonal columns
            a = m[:, :2]
            assert abs(np.linalg.norm(a[:, 0]) - np.linalg.norm(a[:, 1])) < 1e-3 * np.linalg.norm(a[:, 0])
            assert abs(a[:, 0] @ a[:, 1]) < 1e-3 * np.linalg.norm(a[:, 0]) ** 2


def test_similarity_transform_never_reflects():
    dst = template(512)
    mirrored = dst.copy()
    mirrored[:, 0] = 512 - mirrored[:, 0]
    assert np.linalg.det(similarity_transform(mirrored, dst)[:, :2]) > 0
    with pytest.raises(ValueError):
        similarity_transform(np.zeros((5, 2)), dst)


def test_inverse_affine():
    m = similarity_transform(template(512) * 0.3 + 17, template(512))
    pts = np.random.default_rng(1).uniform(0, 500, (10, 2))
    np.testing.assert_allclose(apply_affine(invert_affine(m), apply_affine(m, pts)), pts, atol=1e-9)


def _roundtrip_photo():
    face = _load(ASTRONAUT)
    face = cv2.resize(face, (256, 256), interpolation=cv2.INTER_AREA)
    photo = _background(420, 520, seed=3)
    lm = _place(photo, face, 250, 215, 1.1, 12)
    return photo, lm


def test_align_then_identity_paste_back_reproduces_the_photo():
    photo, lm = _roundtrip_photo()
    crop, m = align_face(photo, lm, 256)
    assert crop.shape == (256, 256, 3) and crop.dtype == np.uint8
    inv = invert_affine(m)
    out = paste.paste_face(photo.copy(), crop, inv)
    mask, (x0, y0, x1, y1) = paste.feather_mask(inv, 256, photo.shape)
    full = np.zeros(photo.shape[:2], np.float32)
    full[y0:y1, x0:x1] = mask
    inside = cv2.erode((full > 0.999).astype(np.uint8), np.ones((5, 5))) > 0
    assert inside.sum() > 20000
    diff = np.abs(out.astype(np.float32) - photo.astype(np.float32))
    assert diff[inside].mean() < 2.0, diff[inside].mean()
    outside = full == 0
    assert outside.sum() > 0.5 * outside.size
    assert np.array_equal(out[outside], photo[outside])  # bit-exact outside the mask


def test_paste_changes_only_masked_pixels_and_upscaled_geometry():
    photo, lm = _roundtrip_photo()
    crop, m = align_face(photo, lm, 128)
    # upscale 2: the pasted (identity) face must land where the Lanczos-enlarged photo has it
    from osdface.faces.photo import lanczos_upsample, upscale_affine
    from osdface.faces.alignment import compose_affine

    big = np.asarray(lanczos_upsample(Image.fromarray(photo), 2)).copy()
    before = big.copy()
    inv = compose_affine(upscale_affine(2), invert_affine(m))
    # the crop's template points land on the enlarged photo's landmarks
    np.testing.assert_allclose(apply_affine(inv, template(128)), apply_affine(upscale_affine(2), lm), atol=1e-6)
    paste.paste_face(big, crop, inv)  # identity restorer at upscale 2
    mask, (x0, y0, x1, y1) = paste.feather_mask(inv, 128, big.shape)
    full = np.zeros(big.shape[:2], np.float32)
    full[y0:y1, x0:x1] = mask
    assert np.array_equal(big[full == 0], before[full == 0])
    inside = full > 0.999
    assert inside.sum() > 50000
    # the 128² crop holds less detail than the 2x photo, but the face lands in place (no shift or ghosting)
    assert np.abs(big[inside].astype(np.float32) - before[inside]).mean() < 6.0


def test_feathered_mask_is_smooth():
    m = similarity_transform(template(512) * 0.6 + [100, 80], template(512))
    inv = invert_affine(m)
    mask, box = paste.feather_mask(inv, 512, (600, 700))
    assert mask.dtype == np.float32 and mask.min() >= 0 and mask.max() <= 1
    assert mask.max() == 1.0
    grad = max(np.abs(np.diff(mask, axis=0)).max(), np.abs(np.diff(mask, axis=1)).max())
    assert grad < 0.15, grad  # face square ≈ 307 px → feather 15 px
    # zero on the square's boundary ring
    assert (mask[[0, -1], :] == 0).all() and (mask[:, [0, -1]] == 0).all()


def _full_resolution_mask(inv, crop_size, shape):
    """The mask as it is made for small faces: every step at full resolution, whatever the face's size."""
    f = paste._feather_radius(inv, crop_size)
    x0, y0, x1, y1 = paste.face_bbox(inv, crop_size, shape)
    a_roi = alignment.compose_affine(np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0]]), inv)
    m = paste._square_mask(a_roi, crop_size, (x1 - x0, y1 - y0), f)
    m[m < 1e-4], m[m > 1 - 1e-4] = 0.0, 1.0
    return m


@pytest.mark.parametrize("scale, angle", [(1.3, 0.0), (1.6, 17.0)])  # face squares of 670 and 820 px
def test_big_face_mask_made_reduced_matches_the_full_resolution_one(scale, angle):
    lm = template(512)
    c = lm.mean(0)
    rot = cv2.getRotationMatrix2D((float(c[0]), float(c[1])), angle, scale)
    placed = (lm - c) @ rot[:, :2].T + c + [600.0, 500.0]
    inv = invert_affine(similarity_transform(placed, template(512)))
    shape = (1700, 1900)
    assert paste._feather_radius(inv, 512) > paste.FEATHER_MAX  # the reduced path is the one under test
    mask, box = paste.feather_mask(inv, 512, shape)
    full = _full_resolution_mask(inv, 512, shape)
    assert mask.shape == full.shape and box == paste.face_bbox(inv, 512, shape)
    assert np.abs(mask - full).max() < 0.08, np.abs(mask - full).max()  # an edge shifted by under 1/16 of the feather
    assert np.abs(mask - full).mean() < 0.003, np.abs(mask - full).mean()
    assert mask.max() == 1.0 and (mask[[0, -1], :] == 0).all() and (mask[:, [0, -1]] == 0).all()
    grad = max(np.abs(np.diff(mask, axis=0)).max(), np.abs(np.diff(mask, axis=1)).max())
    assert grad < 2.0 / paste._feather_radius(inv, 512), grad  # as smooth as the docstring says (~1.6 / feather)


@pytest.mark.timeout(120)  # before the mask was made reduced, this erosion alone took many minutes
def test_a_huge_face_in_a_huge_photo_is_restored_and_pasted_quickly():
    """A 6000x6000 photo with one 4,000 px face square, through restore_photo with a model (the tiny preset, 64²
    crops: the model's cost is not what is tested) and the face's landmarks given (a detector's cost depends on the
    photo's size only, capped by its own scales; this is about the per-face steps: alignment, paste-back)."""
    from osdface import OSDFacePipeline
    from osdface.faces.detection import Face

    pipe = OSDFacePipeline.from_preset("tiny", seed=0)
    photo = np.full((6000, 6000, 3), 90, np.uint8)
    face = cv2.resize(_load(ASTRONAUT), (4000, 4000), interpolation=cv2.INTER_LINEAR)
    photo[1000:5000, 1000:5000] = face
    lm = template(512) * (4000 / 512) + 1000.0

    class Known:
        def detect(self, img):
            return [Face(box=np.r_[lm.min(0), lm.max(0)], score=1.0, landmarks=lm)]

    result = restore_photo(pipe, photo, detector=Known())
    out = np.asarray(result.image)
    assert out.shape == photo.shape and len(result.faces) == 1
    assert np.abs(out[2500:3500, 2500:3500].astype(int) - photo[2500:3500, 2500:3500]).mean() > 1  # restored
    assert np.array_equal(out[:900], photo[:900]) and np.array_equal(out[:, 5100:], photo[:, 5100:])


# ------------------------------------------------------------------------------------------------ colour
def test_adain_matches_input_channel_means_and_stds():
    rng = np.random.default_rng(0)
    ref = rng.random((64, 64, 3)).astype(np.float32) * 0.5 + 0.2
    restored = np.clip(ref * 0.6 + 0.3 + rng.normal(0, 0.02, ref.shape), 0, 1).astype(np.float32)
    out = color.color_fix(restored, ref, "adain")
    np.testing.assert_allclose(out.mean((0, 1)), ref.mean((0, 1)), atol=2e-3)
    np.testing.assert_allclose(out.std((0, 1)), ref.std((0, 1)), atol=5e-3)
    np.testing.assert_array_equal(color.color_fix(restored, ref, "none"), restored)
    with pytest.raises(ValueError):
        color.color_fix(restored, ref, "nope")


def test_wavelet_takes_low_frequencies_from_the_input():
    face = _load(ASTRONAUT).astype(np.float32) / 255
    tinted = np.clip(face * [0.8, 1.0, 1.1] + [0.05, 0.0, -0.05], 0, 1).astype(np.float32)
    out = color.color_fix(tinted, face, "wavelet")
    assert out.shape == face.shape and out.min() >= 0 and out.max() <= 1
    np.testing.assert_allclose(out.mean((0, 1)), face.mean((0, 1)), atol=0.01)
    lo = color.wavelet_low_pass
    assert np.abs(lo(out) - lo(face)).mean() < np.abs(lo(tinted) - lo(face)).mean() / 3


# ------------------------------------------------------------------------------------------------ detection
def _plausible(face, box_margin=0.15):
    le, re, nose, lm, rm = face.landmarks
    assert le[0] < re[0] and lm[0] < rm[0]
    assert max(le[1], re[1]) < nose[1] < min(lm[1], rm[1])
    x0, y0, x1, y1 = face.box
    mw, mh = box_margin * (x1 - x0), box_margin * (y1 - y0)
    assert ((face.landmarks[:, 0] > x0 - mw) & (face.landmarks[:, 0] < x1 + mw)).all()
    assert ((face.landmarks[:, 1] > y0 - mh) & (face.landmarks[:, 1] < y1 + mh)).all()


def test_dlib_finds_the_astronaut_near_the_template(dlib_detector):
    img = _load(ASTRONAUT)
    faces = dlib_detector.detect(img)
    assert len(faces) == 1
    _plausible(faces[0])
    assert np.abs(faces[0].landmarks - template(512)).max() < 25


def test_dlib_on_ffhq_aligned_faces(dlib_detector, faces_dir):
    for name in ("face_0012.png", "face_0014.png"):
        img = _load(faces_dir / name)
        faces = dlib_detector.detect(img)
        assert len(faces) == 1, name
        _plausible(faces[0])
        assert np.abs(faces[0].landmarks - template(img.shape[0])).max() < 25, name


def test_detection_on_a_reduced_copy_maps_back(dlib_detector):
    from osdface.faces.detection import DlibDetector

    photo, lm = _roundtrip_photo()
    big = cv2.resize(photo, (photo.shape[1] * 3, photo.shape[0] * 3), interpolation=cv2.INTER_CUBIC)
    small_det = DlibDetector(max_side=600)  # forces detection on a copy reduced 2.6x
    faces = small_det.detect(big)
    assert len(faces) == 1
    truth = apply_affine(np.array([[3.0, 0, 1.0], [0, 3.0, 1.0]]), lm)
    assert np.abs(faces[0].landmarks - truth).max() < 0.1 * 3 * 256 * 1.1


def test_retinaface_without_weights_is_one_clear_error(tmp_path, monkeypatch):
    from osdface.faces.detection import RETINAFACE_FILE, get_detector
    from osdface.weights import MissingWeightsError

    monkeypatch.delenv("OSDFACE_WEIGHTS", raising=False)
    with pytest.raises(MissingWeightsError) as err:
        get_detector("retinaface", weights_dir=tmp_path)
    msg = str(err.value)
    assert RETINAFACE_FILE in msg and "download" in msg and "\n" not in msg
    assert get_detector("auto", weights_dir=tmp_path).name in ("centerface", "dlib")  # without RetinaFace weights
    with pytest.raises(ValueError):
        get_detector("mtcnn")


def test_retinaface_loads_local_weights(tmp_path, monkeypatch):
    """The RetinaFace path with a stand-in checkpoint (random weights, facexlib's key layout with 'module.')."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("facexlib")
    from facexlib.detection.retinaface import RetinaFace

    from osdface.faces.detection import RETINAFACE_FILE, Face, RetinaFaceDetector, get_detector

    monkeypatch.delenv("OSDFACE_WEIGHTS", raising=False)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = RetinaFace(network_name="resnet50", half=False, device=torch.device("cpu"))
    torch.save({"module." + k: v for k, v in net.state_dict().items()}, tmp_path / RETINAFACE_FILE)
    det = get_detector("auto", weights_dir=tmp_path)
    assert isinstance(det, RetinaFaceDetector) and det.weights_path == tmp_path / RETINAFACE_FILE
    faces = det.detect(np.full((48, 64, 3), 128, np.uint8))
    assert all(isinstance(f, Face) and f.landmarks.shape == (5, 2) for f in faces)
    (tmp_path / RETINAFACE_FILE).write_bytes(b"junk")
    from osdface.weights import MissingWeightsError

    with pytest.raises(MissingWeightsError, match="not a PyTorch / pickle file"):
        RetinaFaceDetector(weights_dir=tmp_path)


# ------------------------------------------------------------------------------------------------ restore_photo
def test_restore_photo_multiple_faces_in_one_batch(tiny_pipe, faces_dir, dlib_detector):
    photo, centres = _composed(faces_dir)
    pipe = CountingPipe(tiny_pipe)
    res = restore_photo(pipe, Image.fromarray(photo), detector=dlib_detector, upscale=2, batch_size=8)
    assert res.image.size == (1800, 1120)
    assert len(res.faces) == 3
    assert pipe.calls == [3]  # all crops of the photo in one call
    found = np.array([f["landmarks"].mean(0) for f in res.faces])
    for c in centres:
        assert np.linalg.norm(found - c, axis=1).min() < 20
    for f in res.faces:
        assert f["cropped"].size == (64, 64) and f["restored"].size == (64, 64)
        assert f["box"].shape == (4,) and f["landmarks"].shape == (5, 2)


def test_restore_photo_identity_reproduces_faces(faces_dir, dlib_detector):
    photo, _ = _composed(faces_dir)
    res = restore_photo(IdentityPipe(256), photo, detector=dlib_detector, upscale=1, draw_box=False)
    out = np.asarray(res.image).astype(np.float32)
    assert len(res.faces) == 3
    assert np.abs(out - photo).mean() < 1.0  # identity restorer: the photo comes back (up to resampling)


def test_only_center_face(faces_dir, dlib_detector):
    photo, centres = _composed(faces_dir)
    res = restore_photo(IdentityPipe(128), photo, detector=dlib_detector, only_center_face=True)
    assert len(res.faces) == 1
    assert np.linalg.norm(res.faces[0]["landmarks"].mean(0) - centres[1]) < 20  # the middle face


def test_no_face_returns_the_upscaled_photo(tiny_pipe, dlib_detector):
    noise = np.random.default_rng(0).integers(0, 256, (90, 120, 3)).astype(np.uint8)
    pipe = CountingPipe(tiny_pipe)
    res = restore_photo(pipe, noise, detector=dlib_detector, upscale=3, draw_box=True)
    assert res.faces == [] and pipe.calls == []
    assert res.image.size == (360, 270)
    expected = Image.fromarray(noise).resize((360, 270), Image.LANCZOS)
    assert np.array_equal(np.asarray(res.image), np.asarray(expected))


def test_bg_upsampler_hook(dlib_detector):
    img = _background(60, 80)
    calls = []

    def nearest(im, s):
        calls.append(s)
        return im.resize((im.width * s, im.height * s), Image.NEAREST)

    res = restore_photo(IdentityPipe(64), img, detector=dlib_detector, upscale=2, bg_upsampler=nearest)
    assert calls == [2] and res.image.size == (160, 120)


# ------------------------------------------------------------------------------------------------ CLI
def test_photo_arguments_defaults():
    from osdface.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["restore", "-i", "x", "-o", "y", "-s", "2", "--only_center_face", "--draw_box",
                              "--detection_model", "dlib", "--color_fix", "adain", "--weights-dir", "/w"])
    assert (args.upscale, args.only_center_face, args.draw_box, args.detection_model, args.color_fix,
            args.weights_dir) == (2, True, True, "dlib", "adain", "/w")
    d = parser.parse_args(["restore", "-i", "x", "-o", "y"])
    assert (d.upscale, d.only_center_face, d.draw_box, d.detection_model, d.color_fix) == (1, False, False,
                                                                                          "auto", "none")


def test_restore_files_photo_mode_end_to_end(tiny_pipe, faces_dir, tmp_path, capsys, monkeypatch):
    from osdface.faces.detection import DlibDetector
    from osdface.restore import restore_files

    monkeypatch.delenv("OSDFACE_WEIGHTS", raising=False)
    src = tmp_path / "in"
    src.mkdir()
    photo, _ = _composed(faces_dir)
    Image.fromarray(photo).save(src / "group.jpg", quality=95)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (80, 100, 3)).astype(np.uint8)).save(src / "noise.png")
    (src / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    # an input inside the output tree with the name the result would get: it must not be overwritten
    (out / "final_results").mkdir(parents=True)
    Image.fromarray(photo[:200, :200]).save(out / "final_results" / "noise.png")
    before = (out / "final_results" / "noise.png").read_bytes()
    inputs = [src / "broken.png", src / "group.jpg", out / "final_results" / "noise.png"]
    summary = restore_files(tiny_pipe, inputs, out, aligned=False, upscale=2, detector=DlibDetector(),
                            color_fix="wavelet", suffix="_x")
    err = capsys.readouterr().err
    assert summary.failed == [src / "broken.png"] and summary.done == 2 and summary.faces == 3
    assert sum(line.startswith("error: ") for line in err.splitlines()) == 1 and "broken.png" in err
    assert "no face detected" in err and "noise.png" in err
    for i in range(3):
        assert (out / "cropped_faces" / f"group_{i:02d}_x.png").is_file()
        assert (out / "restored_faces" / f"group_{i:02d}_x.png").is_file()
    final = Image.open(out / "final_results" / "group_x.png")
    assert final.size == (1800, 1120)
    cmp_ = Image.open(out / "cmp" / "group_x.png")
    assert cmp_.size == (3600, 1120)
    assert (out / "final_results" / "noise.png").read_bytes() == before
    assert (out / "final_results" / "noise_x.png").is_file()
    assert sorted(os.listdir(out)) == ["cmp", "cropped_faces", "final_results", "manifest.jsonl", "restored_faces"]
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [(Path(r["input"]).name, r["status"], r["faces"]) for r in rows] == [
        ("broken.png", "failed", 0), ("group.jpg", "ok", 3), ("noise.png", "ok", 0)]
    assert not any(p.name.startswith("broken") for p in out.rglob("*"))


def test_pipeline_restore_photo_builds_the_detector_once(tiny_pipe):
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (80, 120, 3), dtype=np.uint8))
    first = tiny_pipe.restore_photo(noise, upscale=2)
    detector = tiny_pipe._detector
    second = tiny_pipe.restore_photo(noise)
    assert tiny_pipe._detector is detector
    assert first.faces == [] and first.image.size == (240, 160) and second.image.size == (120, 80)
