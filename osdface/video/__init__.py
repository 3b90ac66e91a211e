"""Video restoration without flicker: decode in a stream, track faces, smooth their landmarks, restore the crops of
a batch of frames in one model call, paste back, encode H.264 with the audio copied.

    from osdface.restore import load_pipeline, restore_video
    summary = restore_video(load_pipeline(), "clip.mp4", "out")     # → out/final_results/clip.mp4

Modules: :mod:`~osdface.video.io` (probing by content, decoding, the atomic H.264 writer with audio copy),
:mod:`~osdface.video.tracking` (scene cuts, optical-flow propagation, detection-to-track association),
:mod:`~osdface.video.smoothing` (one-euro and Savitzky–Golay landmark filters), :mod:`~osdface.video.engine` (the
streaming loop), :mod:`~osdface.video.synthetic` (clips with known face motion for tests and benchmarks).
Names are imported lazily (PyAV loads only when a video is touched).
"""

import importlib

# defaults shared by the library and the command line (kept here so that the parser imports nothing heavy);
# benchmarks/video_flicker.py and benchmarks/video_speed.py measure them
#: frames between full-frame detections; optical flow carries the tracks in between
DEFAULT_DETECT_EVERY = 5
#: landmark smoothing methods (osdface.video.smoothing) and the default
SMOOTHING_METHODS = ("savgol", "one_euro", "none")
DEFAULT_SMOOTHING = "savgol"
#: strength of the temporal blend of each face's restored crops (osdface.video.engine; 0: off)
DEFAULT_TEMPORAL = 0.5
#: frames whose faces are restored in one model call
DEFAULT_BATCH_FRAMES = 8
#: x264's constant rate factor: 17-18 is the usual "visually lossless" setting (0 lossless, 23 x264's default)
DEFAULT_CRF = 17
DEFAULT_PRESET = "medium"

_NAMES = {
    "VideoInfo": "io", "VideoInputError": "io", "probe": "io", "is_video": "io", "media_kind": "io",
    "iter_frames": "io", "VideoWriter": "io",
    "OneEuroSmoother": "smoothing", "SavgolSmoother": "smoothing", "make_smoother": "smoothing",
    "FaceTracker": "tracking", "TrackedFace": "tracking", "scene_cut_score": "tracking",
    "VideoSummary": "engine", "restore_video_file": "engine",
}
__all__ = sorted(_NAMES) + ["DEFAULT_DETECT_EVERY", "SMOOTHING_METHODS", "DEFAULT_SMOOTHING",
                              "DEFAULT_TEMPORAL", "DEFAULT_BATCH_FRAMES", "DEFAULT_CRF", "DEFAULT_PRESET"]


def __getattr__(name):
    if name in _NAMES:
        return getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
