"""Face tracks across frames: detection every ``detect_every`` frames, optical flow in between, scene cuts.

Per frame (:meth:`FaceTracker.update`):

1. **Scene cut** (:func:`scene_cut_score`): the mean absolute difference (MAD, 0–255 scale) of 64-px-wide grey
   thumbnails of this frame and the previous one, against an adaptive threshold: above ``cut_mad`` (12) and above
   ``cut_ratio`` (3) times the median MAD of the last 12 frames, so that steady camera motion is not a cut (a pan of
   10–40 px per frame across a generated 854-px background: MAD 2.8–8.8) while a cut between two generated scenes is
   (MAD 17–26; a face moving on a still background: 3). A cut ends every track and forces a detection (new tracks,
   and no smoothing across the cut).
2. **Propagation**: each track's landmarks follow the face by optical flow: corners inside the face (Shi–Tomasi),
   pyramidal Lucas–Kanade to this frame and back (points that do not return within ``fb_max`` px are dropped),
   then a RANSAC similarity transform of the surviving points (:func:`cv2.estimateAffinePartial2D`), applied to
   the 5 landmarks. It costs a few milliseconds per face, against a full-frame detection's hundreds (CenterFace on
   a 480p frame: ~0.4 s on 2 CPU cores), and moves the points smoothly, with no detector jitter. A track whose flow
   fails (too few points, occlusion) asks for a detection on this frame.
3. **Detection** every ``detect_every`` frames, after a cut, when a flow fails, while there is no track yet (also
   every ``detect_every`` frames): detections are matched to tracks greedily by the mean distance of their 5
   points to the track's propagated points, in inter-ocular distances (below ``match``); a matched track moves
   ``gain`` of the way from its propagated points to the detection (1: trust the detector; lower values average
   the detector's noise over several detections, with the flow as the motion model, so no lag); unmatched
   detections start tracks; a track unmatched more than ``max_missed`` detections in a row ends, and so does one
   unmatched on a frame where its flow failed too (nothing left to place it: a missed cut, an occlusion).

``FaceTracker(detector, detect_every=1, flow=False, gain=1)`` is per-frame independent detection (how CodeFormer
treats a video): the flicker benchmark's baseline.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..faces.alignment import apply_affine, compose_affine
from . import DEFAULT_DETECT_EVERY

__all__ = ["TrackedFace", "Track", "FaceTracker", "scene_cut_score", "thumbnail", "DEFAULT_DETECT_EVERY"]



def thumbnail(rgb: np.ndarray, width: int = 64) -> np.ndarray:
    """A small grey float32 copy of the frame for scene-cut tests."""
    h, w = rgb.shape[:2]
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA).astype(np.float32)


def scene_cut_score(a: np.ndarray, b: np.ndarray) -> float:
    """The mean absolute difference of two thumbnails (:func:`thumbnail`), on the 0–255 scale."""
    return float(np.abs(a - b).mean())


@dataclass
class TrackedFace:
    """A face on one frame: its ``track`` id, the tracker's ``landmarks`` (5, 2) and ``box`` in frame pixels, the
    last detection ``score``, and whether a detection was matched to it on this frame."""

    track: int
    landmarks: np.ndarray
    box: np.ndarray
    score: float
    detected: bool


@dataclass
class Track:
    id: int
    landmarks: np.ndarray
    box: np.ndarray
    score: float
    missed: int = 0
    age: int = 0
    extra: dict = field(default_factory=dict)


def _iod(lm: np.ndarray) -> float:
    return max(1.0, float(np.linalg.norm(lm[1] - lm[0])))


def _box_after(m: np.ndarray, box: np.ndarray) -> np.ndarray:
    x0, y0, x1, y1 = box
    c = apply_affine(m, np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], dtype=np.float64))
    return np.array([c[:, 0].min(), c[:, 1].min(), c[:, 0].max(), c[:, 1].max()])


class FaceTracker:
    """See the module docstring. ``detector``: a :class:`~osdface.faces.detection.FaceDetector`. ``cut_mad`` /
    ``cut_ratio``: the scene-cut thresholds (both must be exceeded); ``flow_side``: optical flow runs on a grey copy
    whose long side is at most this; ``max_faces``: keep at most this many detections per frame (best first);
    ``only_center_face``: keep only the detection nearest the frame's centre."""

    def __init__(self, detector, *, detect_every: int = DEFAULT_DETECT_EVERY, flow: bool = True, gain: float = 0.3,
                 match: float = 0.5, max_missed: int = 1, cut_mad: float = 12.0, cut_ratio: float = 3.0,
                 flow_side: int = 960, max_faces: int | None = None, only_center_face: bool = False,
                 fb_max: float = 1.0):
        if detect_every < 1:
            raise ValueError("detect_every must be >= 1")
        if not 0.0 < gain <= 1.0:
            raise ValueError("gain must be in (0, 1]")
        self.detector = detector
        self.detect_every, self.flow, self.gain, self.match = int(detect_every), bool(flow), float(gain), float(match)
        self.max_missed, self.cut_mad, self.cut_ratio = int(max_missed), float(cut_mad), float(cut_ratio)
        self._mads: deque = deque(maxlen=12)
        self.flow_side, self.max_faces, self.only_center_face = int(flow_side), max_faces, bool(only_center_face)
        self.fb_max = float(fb_max)
        self.tracks: list[Track] = []
        self.ended: list[int] = []  # tracks ended by the last update (the caller's smoother closes them)
        self.detections = 0  # detector runs
        self.cuts = 0
        self.flow_failures = 0
        self.tracks_made = 0
        self._next_id = 0
        self._since_detect = None
        self._prev_thumb = None
        self._prev_grey = None
        self._grey_scale = 1.0

    # ------------------------------------------------------------------------------------------------ frames
    def _grey(self, rgb: np.ndarray) -> tuple[np.ndarray, float]:
        h, w = rgb.shape[:2]
        grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
        s = min(1.0, self.flow_side / max(h, w))
        if s < 1.0:
            grey = cv2.resize(grey, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        return grey, s

    def update(self, rgb: np.ndarray) -> list[TrackedFace]:
        """Advance to the next frame (RGB uint8); returns its faces."""
        self.ended = []
        h, w = rgb.shape[:2]
        thumb = thumbnail(rgb)
        cut = False
        if self._prev_thumb is not None and self._prev_thumb.shape == thumb.shape:
            mad = scene_cut_score(self._prev_thumb, thumb)
            usual = float(np.median(self._mads)) if self._mads else 0.0
            cut = mad > self.cut_mad and mad > self.cut_ratio * usual
            self._mads.append(mad)
        self._prev_thumb = thumb
        grey, gs = self._grey(rgb) if self.flow else (None, 1.0)
        force = cut or self._since_detect is None
        if cut:
            self.cuts += 1
            self._end([t.id for t in self.tracks])
        predicted = {}
        if self.flow and self.tracks and self._prev_grey is not None and self._prev_grey.shape == grey.shape:
            for t in self.tracks:
                m = self._flow(self._prev_grey, grey, t.landmarks, gs)
                if m is None:
                    self.flow_failures += 1
                    force = True
                    continue
                t.landmarks = apply_affine(m, t.landmarks)
                t.box = _box_after(m, t.box)
                predicted[t.id] = True
        self._prev_grey = grey
        due = self._since_detect is not None and self._since_detect + 1 >= self.detect_every
        detected_ids: set[int] = set()
        if force or due or (not self.flow):
            detected_ids = self._detect(rgb, predicted)
            self._since_detect = 0
        else:
            self._since_detect += 1
        # faces that left the frame end their tracks
        gone = [t.id for t in self.tracks
                if not (0 <= t.landmarks[:, 0].mean() < w and 0 <= t.landmarks[:, 1].mean() < h)]
        self._end(gone)
        for t in self.tracks:
            t.age += 1
        return [TrackedFace(t.id, t.landmarks.copy(), t.box.copy(), t.score, t.id in detected_ids)
                for t in self.tracks]

    def _end(self, ids: list[int]) -> None:
        if not ids:
            return
        ids = set(ids)
        self.ended.extend(t.id for t in self.tracks if t.id in ids)
        self.tracks = [t for t in self.tracks if t.id not in ids]

    # ------------------------------------------------------------------------------------------------ flow
    def _flow(self, prev: np.ndarray, cur: np.ndarray, landmarks: np.ndarray, s: float):
        """The similarity (full-frame pixels) moving the face from the previous frame to this one, or None."""
        lm = landmarks * s + (0.5 * s - 0.5)  # pixel centres: full → grey copy
        iod = _iod(lm)
        c = lm.mean(0) + np.array([0.0, 0.25 * iod])
        half = 1.3 * iod
        h, w = prev.shape[:2]
        x0, y0 = int(max(0, c[0] - half)), int(max(0, c[1] - half))
        x1, y1 = int(min(w, c[0] + half + 1)), int(min(h, c[1] + 1.2 * half + 1))
        if x1 - x0 < 8 or y1 - y0 < 8:
            return None
        mask = np.zeros_like(prev)
        mask[y0:y1, x0:x1] = 255
        p0 = cv2.goodFeaturesToTrack(prev, maxCorners=80, qualityLevel=0.01, minDistance=max(2.0, iod / 12),
                                     mask=mask, blockSize=5)
        if p0 is None or len(p0) < 6:
            return None
        win = int(np.clip(round(iod / 3) | 1, 9, 31))
        lk = dict(winSize=(win, win), maxLevel=3,
                  criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01))
        p1, st1, _ = cv2.calcOpticalFlowPyrLK(prev, cur, p0, None, **lk)
        if p1 is None:
            return None
        pb, st2, _ = cv2.calcOpticalFlowPyrLK(cur, prev, p1, None, **lk)
        fb = np.linalg.norm((pb - p0).reshape(-1, 2), axis=1)
        ok = (st1.reshape(-1) == 1) & (st2.reshape(-1) == 1) & (fb < self.fb_max)
        if ok.sum() < 6:
            return None
        m, inliers = cv2.estimateAffinePartial2D(p0[ok].reshape(-1, 2), p1[ok].reshape(-1, 2), method=cv2.RANSAC,
                                                 ransacReprojThreshold=1.0, maxIters=500, refineIters=10)
        if m is None or inliers is None or int(inliers.sum()) < 6:
            return None
        to_small = np.array([[s, 0.0, 0.5 * s - 0.5], [0.0, s, 0.5 * s - 0.5]])
        return compose_affine(np.linalg.inv(np.vstack([to_small, [0, 0, 1]]))[:2], m, to_small)

    # ------------------------------------------------------------------------------------------------ detection
    def _detect(self, rgb: np.ndarray, predicted: dict) -> set[int]:
        self.detections += 1
        faces = list(self.detector.detect(rgb))
        h, w = rgb.shape[:2]
        if self.only_center_face and faces:
            c = np.array([w / 2.0, h / 2.0])
            faces = [min(faces, key=lambda f: float(np.linalg.norm(f.center - c)))]
        if self.max_faces is not None:
            faces = faces[: self.max_faces]
        pairs = []
        for ti, t in enumerate(self.tracks):
            for di, f in enumerate(faces):
                cost = float(np.linalg.norm(np.asarray(f.landmarks) - t.landmarks, axis=1).mean()) / _iod(t.landmarks)
                if cost < self.match:
                    pairs.append((cost, ti, di))
        used_t, used_d, matched = set(), set(), set()
        for _, ti, di in sorted(pairs):
            if ti in used_t or di in used_d:
                continue
            used_t.add(ti)
            used_d.add(di)
            t, f = self.tracks[ti], faces[di]
            det = np.asarray(f.landmarks, dtype=np.float64)
            g = self.gain if t.id in predicted else 1.0  # without a flow prediction, the detection is all we have
            t.landmarks = t.landmarks + g * (det - t.landmarks)
            t.box = np.asarray(f.box, dtype=np.float64).copy()
            t.score, t.missed = float(f.score), 0
            matched.add(t.id)
        lost = []
        for ti, t in enumerate(self.tracks):
            if ti not in used_t:
                t.missed += 1
                if t.missed > self.max_missed or not self.flow or t.id not in predicted:
                    lost.append(t.id)
        self._end(lost)
        for di, f in enumerate(faces):
            if di in used_d:
                continue
            t = Track(self._next_id, np.asarray(f.landmarks, dtype=np.float64).copy(),
                      np.asarray(f.box, dtype=np.float64).copy(), float(f.score))
            self._next_id += 1
            self.tracks_made += 1
            self.tracks.append(t)
            matched.add(t.id)
        return matched
