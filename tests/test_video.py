"""Video restoration (osdface/video/, osdface.restore.restore_video, ``osdface restore -i clip.mp4``).

Clips are generated here (osdface/video/synthetic.py: the public-domain astronaut face moving on a generated
background, with an AAC sine track), small and short. The end-to-end run goes through the command line with a tiny
random model and the real detector; the streaming tests (memory, interruption, trimming, rotation, audio) use an
identity "model" and a detector that returns the known face, so they test the machinery in a second or two.
"""

from __future__ import annotations

import threading
import tracemalloc
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from osdface.cli import main
from osdface.faces.detection import Face
from osdface.faces.synthetic_group import face_sources
from osdface.restore import classify_inputs, restore_video
from osdface.video.io import VideoInputError, media_kind, probe
from osdface.video.smoothing import OneEuroSmoother, SavgolSmoother, make_smoother
from osdface.video.synthetic import motion_at, synthetic_clip, write_clip
from osdface.video.tracking import FaceTracker


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One intra-op thread: tiny models on a small shared CPU run faster so (see tests/test_cli.py)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def astronaut():
    return face_sources(n=0)[0][1]  # the public-domain face of examples/ (always present)


@pytest.fixture(scope="module")
def clip240(astronaut, tmp_path_factory) -> Path:
    """2 s of 426x240 at 25 fps (50 frames), a moving degraded face, an AAC track."""
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    return write_clip(path, (f.lq for f in synthetic_clip(astronaut, (240, 426), 50, fps=25)), fps=25)


@pytest.fixture(scope="module")
def still_clip(astronaut, tmp_path_factory) -> Path:
    """1.2 s of 128x160 at 25 fps, the face still (its landmarks are known: see _KnownFace)."""
    path = tmp_path_factory.mktemp("still") / "still.mp4"
    frames = synthetic_clip(astronaut, (128, 160), 30, motion="still", degradation={})
    return write_clip(path, (f.lq for f in frames), fps=25)


class _IdentityPipe:
    """A stand-in model: returns the aligned crops as they are (tests the streaming, not the network)."""

    class config:
        process_size = 64

    device = torch.device("cpu")

    def __init__(self, fail_at: int | None = None):
        self.calls, self.fail_at = 0, fail_at

    def __call__(self, images, output_type="np", **kwargs):
        self.calls += 1
        if self.fail_at is not None and self.calls >= self.fail_at:
            raise RuntimeError("model failed")
        return np.stack([np.asarray(i, dtype=np.float32) / 255.0 for i in images])


class _KnownFace:
    """A detector returning the still clip's face (the truth from the generator); counts its calls and the frame
    shapes it saw."""

    def __init__(self, size):
        self.size = size
        self.calls, self.shapes = 0, []

    def detect(self, img):
        self.calls += 1
        self.shapes.append(img.shape[:2])
        h, w = img.shape[:2]
        frame = next(synthetic_clip(face_sources(n=0)[0][1], (h, w), 1, motion="still", degradation={}))
        lm = frame.landmarks
        box = np.array([lm[:, 0].min() - 10, lm[:, 1].min() - 15, lm[:, 0].max() + 10, lm[:, 1].max() + 10])
        return [Face(box=box, score=0.99, landmarks=lm.copy())]


def _packets(path, kind):
    with av.open(str(path)) as c:
        s = c.streams.audio[0] if kind == "audio" else c.streams.video[0]
        return [(p.pts, bytes(p)) for p in c.demux(s) if p.size]


def _frames(path):
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


# -------------------------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    from osdface import OSDFacePipeline

    folder = tmp_path_factory.mktemp("tiny_model")
    OSDFacePipeline.from_preset("tiny", seed=0).save_pretrained(folder)
    return folder


def test_cli_restores_a_clip_end_to_end(clip240, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["restore", "-i", str(clip240), "-o", str(out), "--model", str(tiny_model_dir), "--save-frames"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "Traceback" not in captured.err
    result = out / "final_results" / "clip.mp4"
    a, b = probe(clip240), probe(result)
    assert (b.width, b.height, b.fps, b.frames) == (a.width, a.height, a.fps, a.frames) == (426, 240, 25, 50)
    assert b.codec == "h264" and b.pix_fmt == "yuv420p"
    assert b.audio == a.audio == ["aac"]
    # the audio stream is copied: the same packets, byte for byte, at the same times
    assert _packets(result, "audio") == _packets(clip240, "audio")
    # every frame decodes; faces were restored (the tiny random model changes them), the rest is kept
    src, res = _frames(clip240), _frames(result)
    assert len(res) == 50
    frame0 = next(synthetic_clip(face_sources(n=0)[0][1], (240, 426), 1, fps=25))
    cx, cy, width, _ = motion_at(0.0, (240, 426))
    x0, x1 = int(cx - width / 2), int(cx + width / 2)
    face_diff = np.abs(res[0][int(cy - 20):int(cy + 20), x0:x1].astype(int) - src[0][int(cy - 20):int(cy + 20), x0:x1])
    assert face_diff.mean() > 5
    corner = (slice(0, 40), slice(0, 60))  # background: re-encoded only (crf 17)
    assert np.abs(res[0][corner].astype(int) - src[0][corner]).mean() < 2.5
    assert frame0.lq.shape == res[0].shape
    frames = sorted((out / "frames" / "clip").iterdir())
    assert [p.name for p in frames[:2]] == ["000000.png", "000001.png"] and len(frames) == 50
    assert "frame" in captured.err  # the progress bar counts frames
    assert "restored clip.mp4: 50 frames 426x240" in captured.out
    assert not list((out / "final_results").glob(".*.tmp"))


# ------------------------------------------------------------------------------------------------------ memory
def test_memory_is_bounded_by_a_window_of_frames(astronaut, tmp_path):
    n, size = 300, (160, 240)
    clip = write_clip(tmp_path / "long.mp4", (f.lq for f in synthetic_clip(astronaut, size, n, motion="still",
                                                                             degradation={})), fps=25, audio=False)
    frame_bytes = size[0] * size[1] * 3
    tracemalloc.start()
    try:
        s = restore_video(_IdentityPipe(), clip, tmp_path / "out", detector=_KnownFace(size), batch_frames=8)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert s.frames == n and s.faces == n
    assert s.max_frames_held <= s.frame_bound <= 30  # frames alive at once: a window, not the video
    assert peak < 40 * frame_bytes, (peak, frame_bytes)  # all frames would be n * frame_bytes = 34.6 MB


# -------------------------------------------------------------------------------------------------- interrupts
@pytest.mark.parametrize("where", ["progress", "model"])
def test_an_interrupted_run_leaves_no_file_under_the_final_name(still_clip, tmp_path, where):
    threads = threading.active_count()

    def progress(done, total):
        if done >= 8:
            raise KeyboardInterrupt

    pipe = _IdentityPipe(fail_at=2 if where == "model" else None)
    with pytest.raises(KeyboardInterrupt if where == "progress" else RuntimeError):
        restore_video(pipe, still_clip, tmp_path / "out", detector=_KnownFace((128, 160)),
                      progress=progress if where == "progress" else None)
    final_dir = tmp_path / "out" / "final_results"
    assert not (final_dir / "still.mp4").exists()
    assert not final_dir.exists() or not list(final_dir.iterdir())  # no temporary file left either
    assert threading.active_count() <= threads  # reader and writer threads have ended


def test_max_seconds_refuses_or_trims(clip240, tmp_path):
    with pytest.raises(VideoInputError, match="2.0 s long; the limit is 1 s"):
        restore_video(_IdentityPipe(), clip240, tmp_path / "a", detector=_KnownFace((240, 426)), max_seconds=1)
    assert not (tmp_path / "a").exists()
    s = restore_video(_IdentityPipe(), clip240, tmp_path / "b", detector=_KnownFace((240, 426)), max_seconds=1,
                      trim=True)
    info = probe(s.output)
    assert s.trimmed and s.frames == info.frames == 25
    with av.open(str(s.output)) as c:
        audio = c.streams.audio[0]
        assert abs(float(audio.duration * audio.time_base) - 1.0) < 0.05


# ------------------------------------------------------------------------------------------ containers, audio
def test_rotation_and_pcm_audio_in_a_mov(astronaut, tmp_path):
    """A phone-style clip: stored 160x128 with a 90° display rotation, PCM audio in a .mov. Faces are detected
    upright; the output keeps the stored size and the rotation; PCM (not an MP4 audio codec) becomes AAC."""
    src = tmp_path / "phone.mov"
    upright = [f.lq for f in synthetic_clip(astronaut, (160, 128), 12, motion="still", degradation={})]
    with av.open(str(src), "w") as c:
        v = c.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 160, 128, "yuv420p"
        v.set_display_rotation(90)
        a = c.add_stream("pcm_s16le", rate=16000)
        a.layout = "mono"
        for i, img in enumerate(upright):
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(np.rot90(img, -1)), format="rgb24")  # stored
            f.pts = i
            c.mux(v.encode(f))
        c.mux(v.encode(None))
        pcm = (3000 * np.sin(np.arange(7680) / 8)).astype(np.int16)[None]
        fr = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        fr.sample_rate, fr.pts = 16000, 0
        c.mux(a.encode(fr))
        c.mux(a.encode(None))
    det = _KnownFace((160, 128))
    s = restore_video(_IdentityPipe(), src, tmp_path / "out", detector=det)
    assert set(det.shapes) == {(160, 128)}  # upright frames
    assert s.audio == ["re-encoded (pcm_s16le → aac)"]
    info = probe(s.output)
    assert (info.width, info.height, info.frames, info.audio) == (160, 128, 12, ["aac"])
    with av.open(str(s.output)) as c:
        assert next(c.decode(video=0)).rotation == 90


# ------------------------------------------------------------------------------------------- input by content
def test_inputs_are_told_apart_by_content(still_clip, tmp_path, tiny_model_dir, capsys):
    from PIL import Image

    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "video_named.png").write_bytes(still_clip.read_bytes())
    Image.fromarray(np.zeros((48, 48, 3), np.uint8)).save(folder / "image_named.mp4", format="PNG")
    (folder / "notes.mp4").write_text("not a video\n")
    assert media_kind(folder / "video_named.png") == "video"
    assert media_kind(folder / "image_named.mp4") == "image"
    assert media_kind(folder / "notes.mp4") is None
    images, videos, skipped = classify_inputs(folder)
    assert [p.name for p in images] == ["image_named.mp4"]
    assert [p.name for p in videos] == ["video_named.png"]
    assert [p.name for p in skipped] == ["notes.mp4"]
    # a single file that is neither gets one error line
    rc = main(["restore", "-i", str(folder / "notes.mp4"), "-o", str(tmp_path / "out"), "--has_aligned",
               "--model", str(tiny_model_dir), "-q"])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1


# ------------------------------------------------------------------------------------ tracking and smoothing
def _jitter(estimates, truth):
    e = np.asarray(estimates) - np.asarray(truth)
    return float(np.linalg.norm(np.diff(e, axis=0), axis=-1).mean())


@pytest.mark.parametrize("method", ["savgol", "one_euro"])
def test_smoothing_reduces_jitter(method):
    """A face seen through a detector with 2 px of noise: smoothing cuts the frame-to-frame landmark error at least
    in half; Savitzky–Golay does it on a face moving along the generator's path, without lag; the one-euro filter
    (which lets motion through by design) on a still face."""
    rng = np.random.default_rng(0)
    motion = "moving" if method == "savgol" else "still"
    truth = np.array([motion_at(i / 25, (480, 854), motion)[:2] for i in range(100)])[:, None, :] + \
        np.array([[-35, 0], [35, 0], [0, 30], [-28, 60], [28, 60]], float)
    raw = truth + rng.normal(0, 2.0, truth.shape)
    sm = make_smoother(method, **({"half": 6} if method == "savgol" else {}))
    for i, lm in enumerate(raw):
        sm.add(0, i, i / 25, lm)
    sm.end(0)
    out = np.array([sm.value(0, i) for i in range(100)])
    assert _jitter(out, truth) < 0.5 * _jitter(raw, truth)
    if method == "savgol":  # centred: no lag, the error's mean stays near 0
        assert np.abs((out - truth).mean(axis=(0, 1))).max() < 0.3
        ramp = np.arange(20, dtype=float)[:, None, None] * np.ones((1, 5, 2))
        s = SavgolSmoother(half=4)
        for i, lm in enumerate(ramp):
            s.add(1, i, float(i), lm)
        s.end(1)
        assert np.allclose([s.value(1, i) for i in range(20)], ramp)  # exact on polynomial motion, ends included
    else:
        assert isinstance(sm, OneEuroSmoother)


def test_tracker_follows_the_face_by_flow_and_restarts_on_a_cut(astronaut):
    """Detections every 5 frames; between them optical flow carries the landmarks (within 1.5 px of the truth
    on a clean moving face); a cut to another scene forces a detection and starts a new track."""
    size = (240, 426)
    frames = list(synthetic_clip(astronaut, size, 20, degradation={}))

    class Truth:
        calls = []

        def detect(self, img):
            i = next(k for k, f in enumerate(frames) if f.hq is img or np.array_equal(f.hq, img))
            self.calls.append(i)
            lm = frames[i].landmarks
            return [Face(box=np.r_[lm.min(0) - 20, lm.max(0) + 20], score=1.0, landmarks=lm.copy())]

    det = Truth()
    tracker = FaceTracker(det, detect_every=5)
    errors = []
    for f in frames[:12]:
        faces = tracker.update(f.hq)
        assert len(faces) == 1 and faces[0].track == 0
        errors.append(np.linalg.norm(faces[0].landmarks - f.landmarks, axis=1).mean())
    assert det.calls == [0, 5, 10]
    assert max(errors) < 1.5, errors
    other = list(synthetic_clip(astronaut[:, ::-1].copy(), size, 1, degradation={}, seed=5))[0]
    frames.append(other)
    faces = tracker.update(other.hq)
    assert tracker.cuts == 1 and det.calls[-1] == len(frames) - 1 and tracker.ended == [0]
    assert faces[0].track == 1


def test_temporal_blend_averages_noise_but_not_changes():
    """Registered crops with fresh noise each frame: the blend halves the frame-to-frame change; where the input
    changes (another face), the restored crop is taken as it is; a missed frame starts afresh."""
    from osdface.video.engine import TemporalBlend

    rng = np.random.default_rng(0)
    base = rng.integers(40, 200, (64, 64, 3)).astype(np.float32)
    blend = TemporalBlend(0.5)
    raw, out = [], []
    for i in range(12):
        crop = np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
        r = crop.astype(np.float32) / 255  # an identity "model": its output carries the input's noise
        raw.append(r)
        out.append(blend(7, i, r, crop, 1.0))
    change = lambda xs: np.mean([np.abs(a - b).mean() for a, b in zip(xs[1:], xs[:-1])])  # noqa: E731
    assert change(out) < 0.7 * change(raw)
    other = np.clip(base + 50, 0, 255).astype(np.uint8)  # the input changed (a blink, a turn: here, brighter)
    r = other.astype(np.float32) / 255
    assert np.abs(blend(7, 12, r, other, 1.0) - r).max() < 0.05
    crop = base.astype(np.uint8)
    assert np.array_equal(blend(7, 14, crop / 255.0, crop, 1.0), crop / 255.0)  # frame 13 missing: no blend
