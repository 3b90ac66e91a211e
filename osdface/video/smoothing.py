"""Temporal smoothing of each face track's 5 landmarks, before alignment.

A smoother receives every track's raw landmarks frame by frame (:meth:`add`) and answers the smoothed landmarks of
a frame (:meth:`value`) once it has seen ``lookahead`` frames after it; :meth:`end` says a track has ended (a cut,
or the face left), after which its last frames are final without waiting.

* ``savgol`` (:class:`SavgolSmoother`): Savitzky–Golay, i.e. a least-squares polynomial (degree ``order``) through
  the track's samples within ``±half`` frames, evaluated at the frame (timestamps, so variable frame rates work;
  shorter, one-sided windows at a track's ends). Centred, it follows smooth motion (pan, zoom, turn: locally
  polynomial) without lag and removes jitter in proportion to the window; it needs ``half`` frames of lookahead,
  which the stream holds anyway to batch frames.
* ``one_euro`` (:class:`OneEuroSmoother`): Casiez et al.'s 1€ filter, causal: an exponential low-pass whose cut-off
  rises with the speed, ``fc = min_cutoff + beta · speed`` (speed in inter-ocular distances per second, so that the
  parameters do not depend on the face's size; one cut-off per face, so the 5 points move together). No lookahead,
  but it lags at speed and smooths little while the face moves.
* ``none``: the raw landmarks.

Which and why: ``benchmarks/video_flicker.py`` measures the landmark error frame to frame against the known motion
of generated clips; its table is the measurement behind the default (:data:`DEFAULT_SMOOTHING`).
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from . import DEFAULT_SMOOTHING, SMOOTHING_METHODS

__all__ = ["SMOOTHING_METHODS", "DEFAULT_SMOOTHING", "LandmarkSmoother", "NoSmoother", "OneEuroSmoother",
           "SavgolSmoother", "make_smoother"]



def _iod(lm: np.ndarray) -> float:
    return max(1.0, float(np.linalg.norm(lm[1] - lm[0])))


class LandmarkSmoother:
    """Interface (see the module docstring). ``lookahead``: frames after a frame needed before its value is final."""

    lookahead = 0

    def add(self, track: int, index: int, time: float, landmarks: np.ndarray) -> None:
        raise NotImplementedError

    def end(self, track: int) -> None:
        """No more samples for ``track``."""

    def value(self, track: int, index: int) -> np.ndarray:
        raise NotImplementedError

    def forget(self, before: int) -> None:
        """Drop what is only needed for frames before ``before`` (all of them are done)."""


class NoSmoother(LandmarkSmoother):
    def __init__(self):
        self._values: dict[tuple[int, int], np.ndarray] = {}

    def add(self, track, index, time, landmarks):
        self._values[(track, index)] = np.asarray(landmarks, dtype=np.float64).copy()

    def value(self, track, index):
        return self._values[(track, index)]

    def forget(self, before):
        for key in [k for k in self._values if k[1] < before]:
            del self._values[key]


class OneEuroSmoother(NoSmoother):
    """1€ filter per track. ``min_cutoff`` (Hz): the cut-off at rest (lower: smoother, more lag at slow speeds);
    ``beta`` (per inter-ocular distance per second): how fast the cut-off rises with speed (higher: less lag when
    moving; 10 measured best of 0.5–40 on the generated moving clip, where 0.5 lagged 7.7 px); ``d_cutoff`` (Hz): the
    low-pass on the speed estimate."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 10.0, d_cutoff: float = 1.0):
        super().__init__()
        self.min_cutoff, self.beta, self.d_cutoff = float(min_cutoff), float(beta), float(d_cutoff)
        self._state: dict[int, tuple[float, np.ndarray, np.ndarray]] = {}  # track → (time, x̂, dx̂)

    @staticmethod
    def _alpha(cutoff: float, dt: float) -> float:
        tau = 1.0 / (2.0 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def add(self, track, index, time, landmarks):
        x = np.asarray(landmarks, dtype=np.float64)
        state = self._state.get(track)
        if state is None:
            x_hat, dx_hat = x.copy(), np.zeros_like(x)
        else:
            t0, prev, dprev = state
            dt = max(1e-6, float(time) - t0)
            dx = (x - prev) / dt
            dx_hat = dprev + self._alpha(self.d_cutoff, dt) * (dx - dprev)
            speed = float(np.linalg.norm(dx_hat, axis=1).mean()) / _iod(prev)
            a = self._alpha(self.min_cutoff + self.beta * speed, dt)
            x_hat = prev + a * (x - prev)
        self._state[track] = (float(time), x_hat, dx_hat)
        self._values[(track, index)] = x_hat.copy()

    def end(self, track):
        self._state.pop(track, None)


class SavgolSmoother(LandmarkSmoother):
    """Savitzky–Golay per track: degree ``order`` through the samples within ``half`` frames on each side."""

    def __init__(self, half: int = 6, order: int = 2):
        if half < 0 or order < 0:
            raise ValueError("half and order must be >= 0")
        self.half, self.order = int(half), int(order)
        self.lookahead = self.half
        self._samples: dict[int, deque] = {}  # track → (index, time, landmarks), in frame order
        self._ended: set[int] = set()

    def add(self, track, index, time, landmarks):
        self._samples.setdefault(track, deque()).append(
            (int(index), float(time), np.asarray(landmarks, dtype=np.float64).copy()))

    def end(self, track):
        self._ended.add(track)

    def value(self, track, index):
        samples = [s for s in self._samples[track] if abs(s[0] - index) <= self.half]
        centre = next(s for s in samples if s[0] == index)
        if len(samples) == 1 or self.order == 0:
            return np.mean([s[2] for s in samples], axis=0) if self.order == 0 else centre[2].copy()
        t = np.array([s[1] for s in samples]) - centre[1]
        scale = max(1e-6, float(np.abs(t).max()))
        order = min(self.order, len(samples) - 1)
        vander = np.vander(t / scale, order + 1, increasing=True)  # columns 1, t, t², ...: the value at t=0 is c0
        y = np.stack([s[2].reshape(-1) for s in samples])
        coef, *_ = np.linalg.lstsq(vander, y, rcond=None)
        return coef[0].reshape(centre[2].shape)

    def forget(self, before):
        for track in list(self._samples):
            q = self._samples[track]
            while q and q[0][0] < before - self.half:
                q.popleft()
            if not q and track in self._ended:
                del self._samples[track]
                self._ended.discard(track)


def make_smoother(method: str = DEFAULT_SMOOTHING, **params) -> LandmarkSmoother:
    """A smoother by name (:data:`SMOOTHING_METHODS`); ``params`` go to its class."""
    if method == "savgol":
        return SavgolSmoother(**params)
    if method == "one_euro":
        return OneEuroSmoother(**params)
    if method == "none":
        return NoSmoother()
    raise ValueError(f"unknown smoothing {method!r}; use one of {', '.join(SMOOTHING_METHODS)}")
