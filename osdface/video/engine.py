"""The streaming loop: decode → track → smooth → restore a batch of frames in one model call → paste → encode.

Three threads share the work: a reader decodes frames into a queue of ``queue_frames``; the caller's thread
tracks faces, smooths their landmarks and restores; a writer encodes (and saves PNG frames) from a second queue of
``queue_frames``. Between them the caller's thread holds the frames whose smoothed landmarks still wait for
``lookahead`` later frames (Savitzky–Golay's half window) and the frames of the batch being gathered
(``batch_frames``). So at most ``frame_bound = 2 · queue_frames + lookahead + batch_frames + 3`` frames are alive at
once, whatever the video's length; :class:`VideoSummary` reports the largest number seen (``max_frames_held``).

Per batch, the faces of every frame are aligned to the FFHQ template with their smoothed landmarks
(:func:`osdface.faces.alignment.align_face`), restored in ONE pipeline call (``batch_size`` faces per forward pass),
colour-corrected (``color_fix``) and pasted back with feathered masks (:func:`osdface.faces.paste.paste_face`). The
model's latent is deterministic (its mode), so the same crop gives the same face: what flicker remains comes from
the crops, which tracking and smoothing keep steady.

Any error or interruption (KeyboardInterrupt included) stops the threads and removes the temporary output file: no
half-written file ever has the final name.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

from ..faces import color
from ..faces.alignment import affine_scale, align_face, invert_affine
from ..faces.color import COLOR_FIX_METHODS
from ..faces.paste import paste_face
from . import (DEFAULT_BATCH_FRAMES, DEFAULT_CRF, DEFAULT_DETECT_EVERY, DEFAULT_PRESET, DEFAULT_SMOOTHING,
               DEFAULT_TEMPORAL, SMOOTHING_METHODS)
from .io import VideoInfo, VideoInputError, VideoWriter, iter_frames, probe
from .smoothing import make_smoother
from .tracking import FaceTracker

__all__ = ["VideoSummary", "TemporalBlend", "restore_video_file", "savgol_half", "DEFAULT_QUEUE_FRAMES"]

DEFAULT_QUEUE_FRAMES = 4
#: Savitzky–Golay's half window in seconds (6 frames at 25 fps; benchmarks/video_flicker.py measures it)
SAVGOL_HALF_SECONDS = 0.24


def savgol_half(fps: float) -> int:
    """Savitzky–Golay's half window in frames for a frame rate: :data:`SAVGOL_HALF_SECONDS`, at least 2."""
    return max(2, int(round(SAVGOL_HALF_SECONDS * float(fps))))


@dataclass
class VideoSummary:
    """What :func:`restore_video_file` did. ``frames`` written; ``faces``: face crops restored (a face on 10
    frames counts 10); ``tracks``: face tracks started; ``detections``: detector runs; ``audio``: per audio stream,
    "aac copied" or "re-encoded (… → aac)"; ``seconds`` in all, of which ``model_seconds`` restoring and
    ``detect_seconds`` detecting; ``max_frames_held`` / ``frame_bound``: frames alive at once, largest seen and
    the bound; ``trimmed``: the video was cut at ``max_seconds``."""

    input: Path
    output: Path | None
    frames: int = 0
    fps: Fraction = Fraction(0)
    width: int = 0
    height: int = 0
    faces: int = 0
    tracks: int = 0
    detections: int = 0
    scene_cuts: int = 0
    audio: list[str] = field(default_factory=list)
    seconds: float = 0.0
    model_seconds: float = 0.0
    detect_seconds: float = 0.0
    max_frames_held: int = 0
    frame_bound: int = 0
    trimmed: bool = False
    frames_dir: Path | None = None

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        """One line for logs and the demo."""
        audio = ", audio " + "; ".join(self.audio) if self.audio else ", no audio"
        return (f"{self.input.name}: {self.frames} frames {self.width}x{self.height} at {float(self.fps):.3g} fps, "
                f"{self.faces} face crops in {self.tracks} track(s), {self.detections} detections"
                f"{audio}; {self.seconds:.1f} s ({self.frames_per_second:.2f} frames/s)"
                + (" (trimmed)" if self.trimmed else ""))


class _Held:
    """Counts the frames alive in the pipeline (decoded, not yet encoded) and the largest count."""

    def __init__(self):
        self._lock = threading.Lock()
        self.now = self.peak = 0

    def add(self):
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def release(self):
        with self._lock:
            self.now -= 1


class TemporalBlend:
    """Motion-free temporal filtering of each track's restored crops: with tracked, smoothed landmarks consecutive crops
    of a face are registered to a fraction of a pixel, so the restored crop can be blended with the previous
    (blended) one, ``out = r + w · (out_prev − r)``, without warping. The weight ``w = strength · exp(−(d /
    tau)²)`` falls where the input itself changed (``d``: the difference of the two input crops after a Gaussian
    blur of ``sigma`` frame pixels, i.e. ``sigma`` times the crop's scale; 0–255 scale, the largest channel), so
    blinks, speech and turns are not smeared while the restoration's response to per-frame noise and compression
    is averaged away. The state of a track is dropped as soon as it misses a frame (a cut starts new tracks)."""

    def __init__(self, strength: float, tau: float = 6.0, sigma: float = 2.0):
        self.strength, self.tau, self.sigma = float(strength), float(tau), float(sigma)
        self._state: dict[int, tuple[int, np.ndarray, np.ndarray]] = {}  # track → (frame index, input, output)

    def __call__(self, track: int, index: int, restored: np.ndarray, crop: np.ndarray, scale: float) -> np.ndarray:
        """``scale``: crop pixels per frame pixel (the input's grain, noise and blocks, is that many crop pixels)."""
        import cv2

        low = cv2.GaussianBlur(crop.astype(np.float32), (0, 0), max(1.0, self.sigma * scale))
        prev = self._state.get(track)
        out = restored
        if prev is not None and prev[0] == index - 1 and prev[1].shape == low.shape:
            d = np.abs(low - prev[1]).max(axis=2, keepdims=True)
            w = self.strength * np.exp(-np.square(d / self.tau))
            out = restored + w * (prev[2] - restored)
        self._state[track] = (index, low, out)
        return out

    def prune(self, index: int) -> None:
        """Forget tracks that have no face on frame ``index``."""
        for track in [t for t, (i, _, _) in self._state.items() if i < index]:
            del self._state[track]


class _Timed:
    """A detector wrapper that adds up the time spent detecting."""

    def __init__(self, detector):
        self.detector, self.seconds = detector, 0.0

    def detect(self, img):
        t0 = time.perf_counter()
        try:
            return self.detector.detect(img)
        finally:
            self.seconds += time.perf_counter() - t0


_END = object()


def _put(q: queue.Queue, item, alive: Callable[[], bool]) -> bool:
    """Put ``item``, waiting while ``alive()``; False when the other side has gone."""
    while True:
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            if not alive():
                return False


def _reader(path, max_seconds, q: queue.Queue, stop: threading.Event, held: _Held) -> None:
    try:
        for frame in iter_frames(path, max_seconds=max_seconds, stop=stop):
            held.add()
            if not _put(q, frame, lambda: not stop.is_set()):
                held.release()
                return
    except BaseException as err:  # noqa: BLE001 - handed to the caller's thread
        _put(q, err, lambda: not stop.is_set())
        return
    _put(q, _END, lambda: not stop.is_set())


class _Writer(threading.Thread):
    def __init__(self, writer: VideoWriter, frames_dir: Path | None, held: _Held, size: int):
        super().__init__(name="osdface-video-writer", daemon=True)
        self.writer, self.frames_dir, self.held = writer, frames_dir, held
        self.q: queue.Queue = queue.Queue(maxsize=size)
        self.error: BaseException | None = None
        self.written = 0

    def run(self):
        from PIL import Image

        from ..image_io import save_png

        while True:
            item = self.q.get()
            if item is _END:
                return
            try:
                if self.error is None:
                    self.writer.write(item.rgb, item.pts)
                    if self.frames_dir is not None:
                        save_png(Image.fromarray(item.rgb), self.frames_dir / f"{item.index:06d}.png")
                    self.written += 1
            except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread
                self.error = err
            finally:
                self.held.release()

    def send(self, item) -> None:
        if self.error is not None:
            raise self.error
        if not _put(self.q, item, self.is_alive):
            raise self.error or RuntimeError("the video writer stopped")

    def finish(self) -> None:
        _put(self.q, _END, self.is_alive)
        self.join()
        if self.error is not None:
            raise self.error


def restore_video_file(pipe, src: str | os.PathLike, dst: str | os.PathLike, *, detector,
                       detect_every: int = DEFAULT_DETECT_EVERY, smoothing: str = DEFAULT_SMOOTHING,
                       smoothing_options: dict | None = None, tracker_options: dict | None = None,
                       batch_frames: int = DEFAULT_BATCH_FRAMES, batch_size: int = 8, color_fix: str = "none",
                       only_center_face: bool = False, max_faces: int | None = None,
                       frames_dir: str | os.PathLike | None = None, max_seconds: float | None = None,
                       trim: bool = False, crf: int = DEFAULT_CRF, preset: str = DEFAULT_PRESET, audio: bool = True,
                       latent_mode: str | None = None, generator=None, queue_frames: int = DEFAULT_QUEUE_FRAMES,
                       temporal: float = DEFAULT_TEMPORAL, info: VideoInfo | None = None,
                       face_log: list | None = None,
                       progress: Callable[[int, int | None], None] | None = None) -> VideoSummary:
    """Restore every face of the video ``src`` into the MP4 ``dst`` (see the module docstring).

    ``detector``: a :class:`~osdface.faces.detection.FaceDetector`; ``detect_every``, ``tracker_options``:
    :class:`~osdface.video.tracking.FaceTracker`; ``smoothing`` (savgol | one_euro | none) and its options
    (:mod:`osdface.video.smoothing`; Savitzky–Golay's half window defaults to :func:`savgol_half` of the frame
    rate). ``frames_dir``: also save every output frame there as ``000000.png``, ... ``max_seconds``: a video longer
    than this is refused with :class:`~osdface.video.io.VideoInputError` before any work, or with ``trim`` cut to its
    first ``max_seconds``. ``temporal``: the strength (0–1; 0: off) of the temporal blend of each face's restored
    crops (:class:`TemporalBlend`). ``crf`` / ``preset``: libx264's. ``progress(done, total)`` is called as frames
    are done (``total``: the header's frame count, or None). ``face_log``: a list to which ``(frame index, track id,
    landmarks)`` of every restored face is appended (the landmarks the crop was aligned with; for benchmarks)."""
    if color_fix not in COLOR_FIX_METHODS:
        raise ValueError(f"unknown colour fix {color_fix!r}; use one of {', '.join(COLOR_FIX_METHODS)}")
    if smoothing not in SMOOTHING_METHODS:
        raise ValueError(f"unknown smoothing {smoothing!r}; use one of {', '.join(SMOOTHING_METHODS)}")
    if batch_frames < 1 or batch_size < 1 or queue_frames < 1:
        raise ValueError("batch_frames, batch_size and queue_frames must be >= 1")
    if not 0.0 <= temporal < 1.0:
        raise ValueError(f"temporal must be in [0, 1), got {temporal}")
    t_start = time.perf_counter()
    src, dst = Path(src), Path(dst)
    info = info or probe(src)
    if info is None:
        raise VideoInputError("not a video (no video stream FFmpeg can read)", src)
    trimmed = False
    if max_seconds is not None and info.duration is not None and info.duration > max_seconds + 1e-3:
        if not trim:
            raise VideoInputError(f"{info.duration:.1f} s long; the limit is {max_seconds:g} s", src)
        trimmed = True
    total = info.estimated_frames
    if trimmed:
        total = min(total or 10**9, int(np.ceil(max_seconds * float(info.fps))))
    options = {"half": savgol_half(info.fps)} if smoothing == "savgol" else {}
    smoother = make_smoother(smoothing, **{**options, **(smoothing_options or {})})
    timed = _Timed(detector)
    tracker = FaceTracker(timed, detect_every=detect_every, only_center_face=only_center_face, max_faces=max_faces,
                          **(tracker_options or {}))
    lookahead = smoother.lookahead
    size = int(pipe.config.process_size)
    frames_dir = Path(frames_dir) if frames_dir is not None else None
    summary = VideoSummary(src, dst, fps=Fraction(info.fps), frames_dir=frames_dir, trimmed=trimmed,
                           frame_bound=2 * queue_frames + lookahead + batch_frames + 3)
    held = _Held()
    stop = threading.Event()
    frames_q: queue.Queue = queue.Queue(maxsize=queue_frames)
    reader = threading.Thread(target=_reader, args=(src, max_seconds if trim else None, frames_q, stop, held),
                              name="osdface-video-reader", daemon=True)
    writer: VideoWriter | None = None
    out: _Writer | None = None
    pending: deque = deque()  # (frame, [track ids]) waiting for their smoothed landmarks
    ready: list = []  # (frame, [(track, landmarks)]) of the batch being gathered
    blend = TemporalBlend(temporal) if temporal > 0 else None
    ended: set[int] = set()
    done = 0

    def restore_batch() -> None:
        nonlocal done
        crops, where = [], []
        for k, (frame, faces) in enumerate(ready):
            for track, lm in faces:
                crop, m = align_face(frame.rgb, lm, size)
                crops.append(crop)
                where.append((k, track, m))
        if crops:
            t0 = time.perf_counter()
            restored = pipe(crops, output_type="np", batch_size=batch_size, latent_mode=latent_mode,
                            generator=generator)
            summary.model_seconds += time.perf_counter() - t0
            for (k, track, m), r, crop in zip(where, restored, crops):
                if r.shape[0] != size:  # a pipeline working at another size
                    import cv2

                    r = cv2.resize(r, (size, size), interpolation=cv2.INTER_CUBIC)
                r = color.color_fix(r, crop, color_fix)
                if blend is not None:
                    r = blend(track, ready[k][0].index, r, crop, affine_scale(m))
                paste_face(ready[k][0].rgb, r, invert_affine(m))
            if blend is not None:
                blend.prune(ready[-1][0].index)
            summary.faces += len(crops)
        for frame, _ in ready:
            out.send(frame)
        done += len(ready)
        ready.clear()
        if progress is not None:
            progress(done, total)

    def finalize(flush: bool) -> None:
        latest = pending[-1][0].index if pending else -1
        while pending:
            frame, tracks = pending[0]
            if not (flush or frame.index <= latest - lookahead or all(t in ended for t in tracks)):
                break
            pending.popleft()
            landmarks = [smoother.value(t, frame.index) for t in tracks]
            if face_log is not None:
                face_log.extend((frame.index, t, lm) for t, lm in zip(tracks, landmarks))
            ready.append((frame, list(zip(tracks, landmarks))))
            smoother.forget(frame.index)
            if len(ready) >= batch_frames:
                restore_batch()

    try:
        reader.start()
        while True:
            item = frames_q.get()
            if item is _END:
                break
            if isinstance(item, BaseException):
                raise item
            frame = item
            if not frame.rgb.flags.writeable:
                frame.rgb = frame.rgb.copy()
            if writer is None:
                summary.height, summary.width = frame.rgb.shape[:2]
                end_time = None
                if trimmed and frame.pts is not None:
                    end_time = float(frame.pts * info.time_base) + float(max_seconds)
                writer = VideoWriter(dst, info, rotation=frame.rotation, colorspace=frame.colorspace,
                                     color_range=frame.color_range, crf=crf, preset=preset, audio=audio,
                                     end_time=end_time)
                summary.audio = writer.audio_modes
                out = _Writer(writer, frames_dir, held, queue_frames)
                out.start()
            elif max_seconds is not None and not trim and frame.time >= max_seconds:
                raise VideoInputError(f"longer than the limit of {max_seconds:g} s", src)
            faces = tracker.update(frame.rgb)
            for t in tracker.ended:
                smoother.end(t)
                ended.add(t)
            for f in faces:
                smoother.add(f.track, frame.index, frame.time, f.landmarks)
            pending.append((frame, [f.track for f in faces]))
            finalize(flush=False)
        if writer is None:
            raise VideoInputError("no frame could be decoded", src)
        for t in [t.id for t in tracker.tracks]:
            smoother.end(t)
        finalize(flush=True)
        if ready:
            restore_batch()
        out.finish()
        writer.close()
    except BaseException:
        stop.set()
        if out is not None:
            out.error = out.error or RuntimeError("stopped")
            _put(out.q, _END, out.is_alive)
            out.join(timeout=10)
        if writer is not None:
            writer.abort()
        raise
    finally:
        stop.set()
        while True:  # unblock the reader if it waits on a full queue
            try:
                frames_q.get_nowait()
            except queue.Empty:
                break
        reader.join(timeout=10)
    summary.frames = out.written
    summary.tracks, summary.detections, summary.scene_cuts = tracker.tracks_made, tracker.detections, tracker.cuts
    summary.detect_seconds = timed.seconds
    summary.max_frames_held = held.peak
    summary.seconds = time.perf_counter() - t_start
    return summary
