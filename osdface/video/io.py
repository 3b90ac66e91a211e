"""Video files through PyAV (FFmpeg inside its wheel; nothing is downloaded at run time).

* :func:`media_kind` / :func:`is_video`: what a file is, by its content. Pillow is asked first, so an image stays
  an image even when FFmpeg can open it too (a PNG, a JPEG, an animated GIF); anything else is a video when FFmpeg
  finds a video stream (cover art excluded) outside its single-image demuxers, with more than one frame or a
  duration. The extension plays no part.
* :func:`probe`: the facts of a video (:class:`VideoInfo`) from its header, without decoding.
* :func:`iter_frames`: decoded frames, one at a time (a stream: memory does not grow with the video), as upright RGB
  arrays (a display rotation of a multiple of 90° is applied) with their presentation timestamps.
* :class:`VideoWriter`: H.264 (libx264, ``crf`` 17, preset medium, yuv420p; 4:4:4 only for odd sizes, which 4:2:0
  cannot hold) in an MP4 with the input's size, time base, timestamps (so its frame rate, constant or variable),
  display rotation and colour tags; every audio stream is copied packet for packet when MP4 players take its codec
  (:data:`MP4_AUDIO_COPY`), else re-encoded to AAC (the summary says which). It writes to a hidden temporary file
  next to the target and renames it on :meth:`~VideoWriter.close`; :meth:`~VideoWriter.abort` (or leaving its
  ``with`` block by an exception, KeyboardInterrupt included) removes the temporary file, so no half-written file
  ever has the final name.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from . import DEFAULT_CRF, DEFAULT_PRESET

__all__ = ["VideoInfo", "VideoInputError", "DecodedFrame", "probe", "is_video", "media_kind", "iter_frames",
           "VideoWriter", "MP4_AUDIO_COPY", "DEFAULT_CRF", "DEFAULT_PRESET"]

#: audio codecs copied into the MP4 as they are (others are re-encoded to AAC): what MP4 players commonly play
MP4_AUDIO_COPY = frozenset({"aac", "mp3", "ac3", "eac3", "opus", "alac", "flac"})
_IMAGE_DEMUXERS = ("image2", "image2pipe", "tty")  # and every "*_pipe" demuxer (one image per file); tty: text


class VideoInputError(ValueError):
    """A video cannot be used; ``str(err)`` is one line, ``<file>: <reason>``."""

    def __init__(self, reason: str, name: str | os.PathLike | None = None):
        self.reason, self.name = reason, None if name is None else str(name)
        super().__init__(f"{self.name}: {reason}" if self.name else reason)


def _av():
    try:
        import av
    except ImportError as err:  # pragma: no cover - av is in requirements.txt
        raise VideoInputError(f"video needs PyAV (pip install av==18.1.0): {err}") from None
    return av


@dataclass
class VideoInfo:
    """What :func:`probe` reads from a video's header. ``width`` / ``height``: as stored (before the display
    rotation); ``fps``: the average frame rate; ``frames``: the header's count (None when it has none);
    ``duration`` in seconds (None when unknown); ``audio``: the codec of each audio stream."""

    path: Path
    container: str
    codec: str
    width: int
    height: int
    fps: Fraction
    time_base: Fraction
    frames: int | None
    duration: float | None
    pix_fmt: str | None
    audio: list[str] = field(default_factory=list)

    @property
    def estimated_frames(self) -> int | None:
        if self.frames:
            return int(self.frames)
        if self.duration and self.fps:
            return max(1, round(self.duration * float(self.fps)))
        return None


def _video_stream(container):
    av = _av()
    for s in container.streams.video:
        if not (int(s.disposition) & int(av.stream.Disposition.attached_pic)):  # cover art is not a video
            return s
    return None


def probe(path: str | os.PathLike) -> VideoInfo | None:
    """The video's facts, or None when FFmpeg finds no video in it (an image, audio only, not a media file).
    Decodes at most two frames (only when the header tells neither a frame count nor a duration)."""
    av = _av()
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError):
        return None
    with container:
        fmt = container.format.name
        if any(n in _IMAGE_DEMUXERS or n.endswith("_pipe") for n in fmt.split(",")):
            return None
        s = _video_stream(container)
        if s is None:
            return None
        tb = s.time_base or Fraction(1, 1000)
        duration = float(s.duration * tb) if s.duration else (container.duration / 1e6 if container.duration else None)
        frames = int(s.frames) if s.frames else None
        if not frames and not duration:
            try:
                n = 0
                for _ in container.decode(s):
                    n += 1
                    if n > 1:
                        break
            except (av.FFmpegError, ValueError):
                return None
            if n < 2:
                return None
        fps = s.average_rate or s.guessed_rate or s.base_rate
        if not fps and frames and duration:
            fps = Fraction(frames / duration).limit_denominator(1001)
        cc = s.codec_context
        return VideoInfo(Path(path), fmt, cc.name, int(cc.width), int(cc.height), Fraction(fps or 25),
                         Fraction(tb), frames, duration, cc.format.name if cc.format else None,
                         [a.codec_context.name for a in container.streams.audio])


def media_kind(path: str | os.PathLike) -> str | None:
    """``"image"``, ``"video"`` or None (neither), by content (see the module docstring)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            fmt = im.format
        if fmt != "MPEG":  # Pillow only identifies MPEG-1 files; FFmpeg decodes them
            return "image"
    except Image.DecompressionBombError:
        return "image"  # an image, and image_io reports its size
    except Exception:  # noqa: BLE001 - Pillow raises many kinds on non-images
        pass
    return "video" if probe(path) is not None else None


def is_video(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds a video (by content; an image is never a video)."""
    return media_kind(path) == "video"


@dataclass
class DecodedFrame:
    """One decoded frame: ``index`` (0, 1, ...), ``pts`` in the stream's ``time_base`` (None when the file has no
    timestamps), ``time`` in seconds from the first frame, ``rgb`` (H, W, 3) uint8 upright, ``rotation`` the
    display rotation (degrees, counter-clockwise) that was applied."""

    index: int
    pts: int | None
    time: float
    rgb: np.ndarray
    rotation: int = 0
    colorspace: int = 2
    color_range: int = 0
    extra: dict = field(default_factory=dict)


def _quarter_turns(rotation) -> int:
    r = int(round(float(rotation or 0)))
    return (r // 90) % 4 if r % 90 == 0 else 0


def iter_frames(path: str | os.PathLike, *, max_seconds: float | None = None,
                stop: threading.Event | None = None) -> Iterator[DecodedFrame]:
    """Decode the first video stream frame by frame (upright RGB). ``max_seconds``: stop before the first frame at
    or after that time (from the first frame). ``stop``: an event that ends the iteration early."""
    av = _av()
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, OSError, ValueError) as err:
        raise VideoInputError(f"cannot open: {err}", path) from None
    with container:
        s = _video_stream(container)
        if s is None:
            raise VideoInputError("no video stream", path)
        s.thread_type = "AUTO"
        tb = s.time_base or Fraction(1, 1000)
        fps = s.average_rate or s.guessed_rate or Fraction(25)
        first = None
        index = 0
        try:
            for frame in container.decode(s):
                if stop is not None and stop.is_set():
                    return
                t_abs = float(frame.pts * tb) if frame.pts is not None else index / float(fps)
                first = t_abs if first is None else first
                t = t_abs - first
                if max_seconds is not None and t >= max_seconds - 1e-9:
                    return
                kwargs = {"format": "rgb24"}
                if frame.color_range:
                    kwargs["src_color_range"] = int(frame.color_range)
                rgb = frame.to_ndarray(**kwargs)
                turns = _quarter_turns(frame.rotation)
                if turns:
                    rgb = np.ascontiguousarray(np.rot90(rgb, turns))
                yield DecodedFrame(index, frame.pts, t, rgb, 90 * turns, int(frame.colorspace or 2),
                                   int(frame.color_range or 0))
                index += 1
        except av.FFmpegError as err:
            if index == 0:
                raise VideoInputError(f"cannot decode: {err}", path) from None
            raise VideoInputError(f"decoding stopped at frame {index}: {err}", path) from None


# ------------------------------------------------------------------------------------------------------ writing
class _AudioTrack:
    """One audio stream of the input, copied (packets) or re-encoded (AAC) into the output, read on demand."""

    def __init__(self, av, out, path: Path, index: int, end_time: float | None):
        self._av = av
        self._in = av.open(str(path), metadata_errors="ignore")
        self.src = self._in.streams.audio[index]
        self.codec = self.src.codec_context.name
        self.copy = self.codec in MP4_AUDIO_COPY
        if self.copy:
            try:
                self.out = out.add_stream_from_template(self.src)
            except (av.FFmpegError, ValueError, TypeError):  # a variant the muxer refuses: re-encode it
                self.copy = False
        if not self.copy:
            rate = self.src.codec_context.sample_rate or 48000
            self.out = out.add_stream("aac", rate=rate)
            with contextlib.suppress(Exception):
                self.out.layout = self.src.codec_context.layout.name
            self.out.bit_rate = 192_000
        self.mode = "copied" if self.copy else f"re-encoded ({self.codec} → aac)"
        self._tb = self.src.time_base
        self._end = end_time  # stream time (seconds)
        self._packets = self._in.demux(self.src)
        self._next = None
        self._done = False

    def _peek(self):
        while self._next is None and not self._done:
            try:
                p = next(self._packets)
            except (StopIteration, self._av.FFmpegError):
                self._done = True
                break
            if p.dts is None and p.pts is None:
                continue  # the demuxer's final empty packet
            if self._end is not None and p.pts is not None and float(p.pts * self._tb) >= self._end:
                self._done = True
                break
            self._next = p
        return self._next

    def mux_until(self, out, t: float | None) -> None:
        """Mux this track's packets up to time ``t`` (seconds, stream time; None: all)."""
        while True:
            p = self._peek()
            if p is None:
                break
            ts = p.pts if p.pts is not None else p.dts
            if t is not None and float(ts * self._tb) > t:
                break
            self._next = None
            if self.copy:
                p.stream = self.out
                out.mux(p)
            else:
                for frame in self.src.codec_context.decode(p):
                    frame.pts = None
                    out.mux(self.out.encode(frame))
        if t is None and not self.copy:
            out.mux(self.out.encode(None))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._in.close()


class VideoWriter:
    """H.264 MP4 writer for restored frames (see the module docstring). Use as a context manager::

        with VideoWriter(target, info, rotation=frame.rotation) as w:
            w.write(rgb, pts)
        # closed and renamed on success; on an exception the temporary file is removed

    ``info``: the input's :class:`VideoInfo` (size, time base, frame rate, audio source); ``write`` takes upright
    RGB frames of the input's (upright) size and the input frame's pts. ``audio=False`` writes video only;
    ``end_time`` (stream time in seconds, as the input's timestamps count it) trims the audio when the video was
    trimmed."""

    def __init__(self, path: str | os.PathLike, info: VideoInfo, *, rotation: int = 0, colorspace: int = 2,
                 color_range: int = 0, crf: int = DEFAULT_CRF, preset: str = DEFAULT_PRESET, audio: bool = True,
                 end_time: float | None = None):
        av = self._av = _av()
        self.final = Path(path)
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.final.parent / f".{self.final.name}.{secrets.token_hex(6)}.tmp"
        self._turns = _quarter_turns(rotation)
        self._closed = False
        self._tracks: list[_AudioTrack] = []
        self._out = av.open(str(self.tmp), "w", format="mp4", options={"movflags": "+faststart"})
        try:
            w, h = info.width, info.height  # as stored
            odd = w % 2 or h % 2
            self.pix_fmt = "yuv444p" if odd else "yuv420p"
            v = self._out.add_stream("libx264", rate=info.fps, options={"crf": str(int(crf)), "preset": preset})
            v.width, v.height, v.pix_fmt = w, h, self.pix_fmt
            self._tb = info.time_base
            v.codec_context.time_base = info.time_base
            v.time_base = info.time_base
            self._colorspace = int(colorspace) if colorspace not in (None, 0, 2) else None
            self._range = int(color_range) if color_range else None
            if self._colorspace is not None:
                v.codec_context.colorspace = self._colorspace
            if self._range is not None:
                v.codec_context.color_range = self._range
            if self._turns:
                v.set_display_rotation(90 * self._turns)
            self._video = v
            self._fps = Fraction(info.fps)
            self._n = 0
            self._start = None
            if audio:
                for i in range(len(info.audio)):
                    self._tracks.append(_AudioTrack(av, self._out, info.path, i, end_time))
        except BaseException:
            self.abort()
            raise

    @property
    def audio_modes(self) -> list[str]:
        """Per audio stream: ``"copied"`` or ``"re-encoded (codec → aac)"``."""
        return [f"{t.codec} {t.mode}" if t.copy else t.mode for t in self._tracks]

    def write(self, rgb: np.ndarray, pts: int | None = None) -> None:
        av = self._av
        stored = np.ascontiguousarray(np.rot90(rgb, -self._turns)) if self._turns else np.ascontiguousarray(rgb)
        frame = av.VideoFrame.from_ndarray(stored, format="rgb24")
        kwargs = {"format": self.pix_fmt}
        if self._colorspace is not None:
            kwargs["dst_colorspace"] = self._colorspace
        if self._range is not None:
            kwargs["dst_color_range"] = self._range
        frame = frame.reformat(**kwargs)
        if pts is None:  # no timestamps in the input: frame n at n / fps
            pts = round(self._n / (self._fps * self._tb))
        frame.pts = int(pts)
        frame.time_base = self._tb
        if self._start is None:
            self._start = float(pts * self._tb)
        for packet in self._video.encode(frame):
            self._mux_video(packet)
        self._n += 1

    def _mux_video(self, packet) -> None:
        if packet.dts is not None and self._tracks:
            t = float(packet.dts * packet.time_base) if packet.time_base else None
            for track in self._tracks:
                track.mux_until(self._out, t)
        self._out.mux(packet)

    def close(self) -> Path:
        """Flush, add the remaining audio, finish the file and give it its final name."""
        if self._closed:
            return self.final
        try:
            for packet in self._video.encode(None):
                self._mux_video(packet)
            for track in self._tracks:
                track.mux_until(self._out, None)
            self._out.close()
            for track in self._tracks:
                track.close()
            with open(self.tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(self.tmp, self.final)
            self._closed = True
        except BaseException:
            self.abort()
            raise
        return self.final

    def abort(self) -> None:
        """Stop and remove the temporary file (the final name is never created)."""
        self._closed = True
        with contextlib.suppress(Exception):
            self._out.close()
        for track in self._tracks:
            track.close()
        with contextlib.suppress(OSError):
            os.unlink(self.tmp)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False
