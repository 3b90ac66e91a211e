"""The demo's server-side state, without any UI: the models it serves (loaded once, cached), upload checks, the
output folder, and one line describing what was done. The restoration itself is :func:`osdface.restore.restore_image`
(one request) or :func:`osdface.restore.restore_many` (requests that queued up together, on a GPU).

    restorer = DemoRestorer()                           # OSDFACE_MODEL or the bundled nano model, loaded now
    result = restorer.restore("photo.jpg")              # mode="auto": aligned crop or whole photo
    result.after.save("out.png"); print(result.info)
    results = restorer.restore_batch([restorer.request("a.jpg"), restorer.request("b.png", fidelity=0.7)])

``osdface.app.ui`` puts a Gradio page on top of this; tests call it directly as well.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from .. import image_io
from ..devices import pick_device, resolve_dtype
from ..faces.color import COLOR_FIX_METHODS
from ..faces.detection import FaceDetector, get_detector
from ..restore import MODES, choose_mode, is_square, load_pipeline, restore_image, restore_many
from ..weights import BUNDLED_NANO, MissingWeightsError, default_model
from .defaults import DEFAULT_MAX_PIXELS, DTYPES, LATENT_MODES

if TYPE_CHECKING:  # pragma: no cover
    import torch

logger = logging.getLogger("osdface.app")

#: the whole-photo background upsamplers the demo can offer, with their labels on the page (``bg_upsamplers`` of
#: :class:`DemoRestorer`: Lanczos always; Real-ESRGAN x4plus on a GPU, or where the server asks for it)
BG_LABELS = {"lanczos": "Lanczos (fast)", "realesrgan": "Real-ESRGAN x4plus (learned)"}
#: the whole-photo rescale factor the demo accepts (any value in between, e.g. 1.5)
UPSCALE_RANGE = (1.0, 4.0)
UPSCALES = (1, 2, 3, 4)  # the whole factors (kept for callers that list choices)
#: plain names of the face detectors, for the page
DETECTOR_LABELS = {"centerface": "CenterFace", "retinaface": "RetinaFace", "dlib": "dlib's HOG face detector"}
#: the enlarged whole-photo result may not exceed this many pixels
MAX_OUTPUT_PIXELS = 64_000_000
#: results older than this are deleted from the demo's output folder
KEEP_RESULTS_S = 3600
#: the demo restores at most this many seconds of an uploaded video (the rest is cut; $OSDFACE_VIDEO_SECONDS)
def _video_seconds(text: str | None) -> float:
    try:
        value = float(text) if text else 10.0
    except ValueError:
        value = -1.0
    if not value > 0:
        logger.warning("OSDFACE_VIDEO_SECONDS=%r is not a positive number of seconds; using 10", text)
        return 10.0
    return value


VIDEO_SECONDS = _video_seconds(os.environ.get("OSDFACE_VIDEO_SECONDS"))
#: largest accepted video frame (a 1080p frame is 2.1 MP)
VIDEO_MAX_PIXELS = 1920 * 1088

__all__ = ["DemoRestorer", "DemoResult", "DemoRequest", "DemoInputError", "DemoVideoResult", "VIDEO_SECONDS", "BG_LABELS", "choose_mode", "default_model",
           "BUNDLED_NANO", "MODES", "DTYPES", "LATENT_MODES", "UPSCALES", "UPSCALE_RANGE", "DEFAULT_MAX_PIXELS"]


def _realesrgan_available() -> bool:
    from ..networks.rrdbnet import realesrgan_available

    return realesrgan_available()


def reporter(progress):
    """``progress(fraction, desc=...)`` as a callable, a no-op when None. Tested against None, not for truth:
    a ``gr.Progress`` defines ``__len__`` and is falsy, so a truth test would drop every report."""
    if progress is None:
        return lambda *a, **k: None
    return progress


class _FaceCounter:
    """The pipeline, called on ``batch_size`` crops at a time with a "face k of n" report before each call, so that
    the page counts faces while a whole photo is restored. The same batches as the pipeline's own loop, so the
    results (and a seeded sampled latent) are the same as one call's."""

    def __init__(self, pipe, report, start: float, end: float):
        self._pipe, self._report, self._span = pipe, report, (start, end)

    def __getattr__(self, name):
        return getattr(self._pipe, name)

    def __call__(self, images, *, output_type: str = "pil", batch_size: int = 4, progress: bool = False, **kwargs):
        images = list(images)
        n, (start, end) = len(images), self._span
        outs = []
        for i in range(0, n, batch_size):
            last = min(i + batch_size, n)
            which = f"face {last} of {n}" if last == i + 1 else f"faces {i + 1}–{last} of {n}"
            self._report(start + (end - start) * i / max(n, 1), desc=f"restoring {which}")
            outs.append(self._pipe(images[i:last], output_type=output_type, batch_size=batch_size, **kwargs))
        if output_type == "pil":
            return [img for out in outs for img in out]
        if output_type == "pt":
            import torch

            return torch.cat(outs)
        return np.concatenate(outs)


class DemoInputError(ValueError):
    """A request the demo refuses (bad image, option or model); ``str(err)`` is one line for the user."""


@dataclass
class DemoResult:
    """``before`` / ``after``: the same size (the input enlarged like the result), for a before/after slider.
    ``faces``: (restored crop, caption) pairs. ``png``: the final image written as a lossless PNG."""

    before: Image.Image
    after: Image.Image
    faces: list[tuple[Image.Image, str]] = field(default_factory=list)
    png: Path | None = None
    mode: str = "aligned"
    info: str = ""
    faces_found: int = 0
    seconds_per_face: float | None = None


@dataclass
class DemoVideoResult:
    """``video``: the restored MP4 (H.264, the input's size and frame rate, audio copied); ``info``: one line."""

    video: Path
    info: str
    frames: int = 0
    trimmed: bool = False


@dataclass
class DemoRequest:
    """One checked request (:meth:`DemoRestorer.request`): the decoded image and normalised options."""

    rgb: Image.Image
    name: str
    mode: str = "auto"
    upscale: float = 1
    color_fix: str = "none"
    fidelity: float = 1.0
    only_center_face: bool = False
    model: str = ""
    dtype: str = "fp32"
    latent_mode: str = "mode"
    seed: int = 114
    bg_upsampler: str = "lanczos"

    def group(self) -> tuple:
        """Requests with the same group can share one model call."""
        return (self.model, self.dtype, self.latent_mode, self.seed if self.latent_mode == "sample" else None)


class DemoRestorer:
    """Serves one default model (loaded at construction) and optionally others, cached by (model, dtype).

    ``models``: extra model folders / Hub ids offered next to the default (the bundled nano is always offered).
    ``allow_custom_models``: also accept any other folder or Hub id typed by the user (off for public servers:
    it reads the server's disk and downloads arbitrary repos). ``cache_size``: how many non-default
    (model, dtype) pipelines stay loaded. ``bg_upsamplers``: the background upsamplers offered for enlarged whole
    photos (names of :data:`BG_LABELS`); None: Lanczos, plus Real-ESRGAN x4plus when the device is a GPU and its
    weights are installed (on a CPU it takes minutes per megapixel: a server opts in by naming it).
    ``bg_tile``: Real-ESRGAN's tile size in input pixels (bounded memory).
    """

    def __init__(self, model: str | os.PathLike | None = None, *, device: str | torch.device | None = "auto",
                 dtype: str = "auto", detector: str | FaceDetector = "auto", models: tuple[str, ...] = (),
                 allow_custom_models: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS,
                 output_dir: str | os.PathLike | None = None, cache_size: int = 1, backend: str = "torch",
                 bg_upsamplers: tuple[str, ...] | None = None, bg_tile: int = 192):
        # backend "onnx": the models are `osdface export-onnx` folders run by ONNX Runtime (no torch needed)
        self.backend = backend
        try:
            self.device = device if backend == "onnx" else pick_device(device)
        except ValueError as err:
            raise DemoInputError(str(err)) from None
        self.default_model = default_model(model)
        self.default_dtype = self._resolve_dtype(dtype)
        self.allow_custom_models = bool(allow_custom_models)
        self.max_pixels = int(max_pixels)
        self.cache_size = int(cache_size)
        bundled = [str(BUNDLED_NANO)] if backend != "onnx" else []  # (the bundled nano is a torch model folder)
        offered = [self.default_model, *bundled, *[str(m) for m in models]]
        self.models = list(dict.fromkeys(offered))  # unique, in order
        self._lock = threading.RLock()
        self._pipes: OrderedDict[tuple[str, str], object] = OrderedDict()
        self._default_pipe = self._load(self.default_model, self.default_dtype)  # once, at start-up
        if backend == "onnx":
            self.device = self._default_pipe.device  # where ONNX Runtime runs ("cpu"/"cuda", with .type)
        self.detector = detector if isinstance(detector, FaceDetector) else get_detector(detector)
        self.bg_tile = int(bg_tile)
        self.bg_upsamplers = self._offered_bg_upsamplers(bg_upsamplers)
        self._detect_lock = threading.Lock()
        self._own_output = output_dir is None
        self.output_dir = Path(output_dir or tempfile.mkdtemp(prefix="osdface-app-"))
        self.output_dir.mkdir(parents=True, exist_ok=True)

    # ----------------------------------------------------------------------------------------------- models
    def _offered_bg_upsamplers(self, names) -> list[str]:
        if names is None:
            auto = self.backend == "torch" and self.device.type == "cuda" and _realesrgan_available()
            return ["lanczos", "realesrgan"] if auto else ["lanczos"]
        names = list(dict.fromkeys(str(n) for n in names)) or ["lanczos"]
        for name in names:
            if name not in BG_LABELS:
                raise DemoInputError(f"unknown background upsampler {name!r}; use one of {', '.join(BG_LABELS)}")
        if "realesrgan" in names:
            if self.backend != "torch":
                raise DemoInputError("the Real-ESRGAN background needs the torch backend")
            if not _realesrgan_available():
                from ..networks.rrdbnet import INSTALL_HINT

                raise DemoInputError(f"the Real-ESRGAN background's weights are missing: {INSTALL_HINT}")
        return names

    def bg_upsampler(self, name: str, report=None, span: tuple[float, float] = (0.5, 0.9)):
        """The background upsampler ``name`` as ``restore_image`` takes it; Real-ESRGAN is loaded once (on first
        use) and reports "background tile k of n" through ``report(fraction, desc=...)`` when given, its fraction
        moving across ``span``."""
        if name != "realesrgan":
            return None  # Lanczos, restore_image's default
        from ..faces.photo import get_bg_upsampler

        try:
            up = get_bg_upsampler("realesrgan", device=str(self.device), tile=self.bg_tile)
        except (MissingWeightsError, ValueError, OSError) as err:
            raise DemoInputError(f"Real-ESRGAN background: {str(err).splitlines()[0]}") from None
        if report is None:
            return up

        def with_progress(img, scale):
            return up(img, scale, progress=lambda done, total: report(
                span[0] + (span[1] - span[0]) * done / max(total, 1),
                desc=f"enlarging the background: tile {min(done + 1, total)} of {total}"))
        return with_progress

    def _resolve_dtype(self, dtype: str | None) -> str:
        dtype = dtype or "auto"
        if dtype not in DTYPES:
            raise DemoInputError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}")
        if self.backend == "onnx":
            if dtype not in ("auto", "fp32"):
                raise DemoInputError("the ONNX backend runs the precision its folder was exported with; dtype "
                                     "choices are for the torch backend")
            return "fp32"
        try:
            return resolve_dtype(dtype, self.device, cpu_bf16=False)
        except ValueError as err:
            raise DemoInputError(str(err)) from None

    def model_label(self, model: str) -> str:
        if Path(model) == BUNDLED_NANO:
            return "osdface-nano (bundled)"
        return Path(model).name if Path(model).is_dir() else model

    def _load(self, model: str, dtype: str):
        logger.info("loading model %s (%s, %s)", model, self.device, dtype)
        t0 = time.perf_counter()
        pipe = load_pipeline(model, device=self.device, dtype=dtype, fuse_lora=True, backend=self.backend)
        logger.info("model %s loaded in %.1f s", model, time.perf_counter() - t0)
        return pipe

    def pipeline(self, model: str | None = None, dtype: str | None = None):
        """The pipeline for (model, dtype); the default one is never reloaded, others are loaded on first use."""
        model = str(model) if model else self.default_model
        dtype = self._resolve_dtype(dtype or self.default_dtype)
        if model not in self.models and not self.allow_custom_models:
            raise DemoInputError(f"model {model!r} is not offered by this demo; choose one of: "
                                 + ", ".join(self.model_label(m) for m in self.models))
        key = (model, dtype)
        if key == (self.default_model, self.default_dtype):
            return self._default_pipe
        with self._lock:
            if key in self._pipes:
                self._pipes.move_to_end(key)
                return self._pipes[key]
            try:
                pipe = self._load(model, dtype)
            except (MissingWeightsError, ValueError, ImportError) as err:
                raise DemoInputError(str(err)) from None
            self._pipes[key] = pipe
            while len(self._pipes) > self.cache_size:
                self._pipes.popitem(last=False)
            return pipe

    def describe(self) -> str:
        pipe = self._default_pipe
        return (f"{self.model_label(self.default_model)} ({pipe.config.preset}, {pipe.config.process_size}² faces) on "
                f"{self.device.type} {self.default_dtype}; detector: {self.detector.describe()}")

    def is_small_model(self, model: str | None = None) -> bool:
        """Whether ``model`` (default: the served one) is a small demo preset (nano, tiny), not the paper's."""
        pipe = self._default_pipe if model in (None, self.default_model) else self.pipeline(model)
        return pipe.config.preset in ("nano", "tiny")

    def parameters_m(self) -> float:
        """The served model's size in millions of parameters (UNet, VAE, VRE)."""
        pipe = self._default_pipe
        return sum(p.numel() for m in (pipe.unet, pipe.vae, pipe.vre) for p in m.parameters()) / 1e6

    def detector_label(self) -> str:
        return DETECTOR_LABELS.get(getattr(self.detector, "name", ""), getattr(self.detector, "name", "a detector"))

    # ------------------------------------------------------------------------------------------------ input
    def load(self, image) -> tuple[Image.Image, str]:
        """An upload (file path, PIL image or array) → (RGB image, display name); EXIF orientation applied,
        size limits checked before decoding. Raises :class:`DemoInputError` with one line."""
        if image is None:
            raise DemoInputError("no image: upload a photo or a face crop, or pick an example")
        try:
            if isinstance(image, (str, os.PathLike)):
                name = Path(image).name
                try:
                    return image_io.load_image(image, max_pixels=self.max_pixels), name
                except image_io.ImageInputError as err:
                    raise image_io.ImageInputError(err.reason, name) from None
            if isinstance(image, Image.Image):
                rgb = image_io.to_rgb(image)
            else:
                chw = image_io.to_model_arrays(np.asarray(image), max_pixels=self.max_pixels)[0]
                rgb = Image.fromarray(image_io.to_uint8(chw.transpose(1, 2, 0)))
            image_io.check_size(rgb.width, rgb.height, max_pixels=self.max_pixels)
            return rgb, "image"
        except image_io.ImageInputError as err:
            raise DemoInputError(str(err)) from None

    # ------------------------------------------------------------------------------------------------ run
    def request(self, image, *, mode: str = "auto", upscale: float = 1, color_fix_method: str = "none",
                fidelity: float = 1.0, only_center_face: bool = False, model: str | None = None,
                dtype: str | None = None, latent_mode: str = "mode", seed: int = 114,
                bg_upsampler: str = "lanczos") -> DemoRequest:
        """Check an upload and the options (everything that can be checked before the model runs) and decode the
        image: a :class:`DemoRequest`, or :class:`DemoInputError` with one line for the user."""
        if mode not in MODES:
            raise DemoInputError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
        if color_fix_method not in COLOR_FIX_METHODS:
            raise DemoInputError(f"unknown colour fix {color_fix_method!r}; use one of {', '.join(COLOR_FIX_METHODS)}")
        if latent_mode not in LATENT_MODES:
            raise DemoInputError(f"unknown latent mode {latent_mode!r}; use one of {', '.join(LATENT_MODES)}")
        bg_upsampler = bg_upsampler or "lanczos"
        if bg_upsampler not in self.bg_upsamplers:
            raise DemoInputError(f"background upsampler {bg_upsampler!r} is not offered by this demo; choose one of: "
                                 + ", ".join(self.bg_upsamplers))
        if latent_mode == "sample" and self.backend == "onnx":
            raise DemoInputError("a sampled latent needs the torch backend (the ONNX graphs compute its mode)")
        try:
            upscale, fidelity = float(upscale), float(fidelity)
            seed = int(seed)
        except (TypeError, ValueError):
            raise DemoInputError("upscale and fidelity must be numbers, the seed a whole number") from None
        lo, hi = UPSCALE_RANGE
        if not lo <= upscale <= hi:
            raise DemoInputError(f"upscale must be between {lo:g} and {hi:g}, not {upscale:g}")
        if not 0.0 <= fidelity <= 1.0:
            raise DemoInputError(f"fidelity must be between 0 and 1, not {fidelity:g}")
        rgb, name = self.load(image)
        model_name = str(model) if model else self.default_model
        self.pipeline(model_name, dtype)  # refuses a model that is not offered; loads it now (once) otherwise
        dtype_name = self._resolve_dtype(dtype or self.default_dtype)
        w, h = rgb.size
        if mode != "aligned" and not (mode == "auto" and is_square(w, h)):  # it will be a whole photo
            self._check_output_size(name, w, h, upscale)
        return DemoRequest(rgb=rgb, name=name, mode=mode, upscale=int(upscale) if upscale.is_integer() else upscale,
                           color_fix=color_fix_method, fidelity=fidelity, only_center_face=bool(only_center_face),
                           model=model_name, dtype=dtype_name, latent_mode=latent_mode, seed=seed,
                           bg_upsampler=bg_upsampler)

    @staticmethod
    def _check_output_size(name: str, w: int, h: int, upscale: float) -> None:
        if w * h * upscale * upscale > MAX_OUTPUT_PIXELS:
            raise DemoInputError(f"{name}: {w}x{h} enlarged {upscale:g}x would be {w * h * upscale ** 2 / 1e6:.1f} MP; "
                                 f"the limit is {MAX_OUTPUT_PIXELS / 1e6:.0f} MP (choose a smaller upscale)")

    def describe_upload(self, image, mode: str = "auto") -> str:
        """The info line for a fresh upload: what was received and what will happen; DemoInputError if unusable."""
        rgb, name = self.load(image)
        w, h = rgb.size
        size = self._default_pipe.config.process_size
        if mode == "aligned":
            what = f"an aligned face crop (you chose it): restored at {size}²"
        elif mode == "photo":
            what = "a whole photo (you chose it): every face will be found, restored and put back"
        elif is_square(w, h):
            what = (f"square: treated as an aligned face crop if its face fills the frame (restored at {size}²), "
                    "else as a whole photo")
        else:
            what = "a whole photo: every face will be found, restored and put back"
        return f"{name}: {w}×{h}, {what}. Press Restore."

    def restore(self, image, *, mode: str = "auto", upscale: float = 1, color_fix_method: str = "none",
                fidelity: float = 1.0, only_center_face: bool = False, model: str | None = None,
                dtype: str | None = None, latent_mode: str = "mode", seed: int = 114,
                bg_upsampler: str = "lanczos", progress=None) -> DemoResult:
        """Restore an upload. ``progress(fraction, desc)`` is called between steps when given."""
        report = reporter(progress)
        report(0.0, desc="checking the image")
        req = self.request(image, mode=mode, upscale=upscale, color_fix_method=color_fix_method, fidelity=fidelity,
                           only_center_face=only_center_face, model=model, dtype=dtype, latent_mode=latent_mode,
                           seed=seed, bg_upsampler=bg_upsampler)
        return self.restore_batch([req], progress=progress)[0]

    def restore_batch(self, requests: list[DemoRequest], progress=None) -> list[DemoResult]:
        """Restore checked requests; those that share a model, dtype and latent setting (:meth:`DemoRequest.group`)
        go through the model together, all their faces in one call (a GPU's batch). One request alone takes
        :func:`~osdface.restore.restore_image`'s path, with a "face k of n" report per model call (one face per
        call on a CPU, where batching saves nothing)."""
        report = reporter(progress)
        t_start = time.perf_counter()
        detected: list[list | None] = []
        detect_s: list[float] = []
        report(0.1, desc="detecting faces")
        for req in requests:
            faces, t0 = None, time.perf_counter()
            if req.mode != "aligned":
                with self._detect_lock:
                    faces = self.detector.detect(np.asarray(req.rgb))
                chosen, _ = choose_mode(req.mode, faces, *req.rgb.size)
                if chosen == "photo":
                    self._check_output_size(req.name, *req.rgb.size, req.upscale)
            detected.append(faces)
            detect_s.append(time.perf_counter() - t0)

        report(0.3, desc="restoring")
        results: list = [None] * len(requests)
        run_s = [0.0] * len(requests)
        bg_s = [0.0] * len(requests)  # time spent enlarging each request's background (not the faces' time)

        def timed(i, upsampler):
            if upsampler is None:
                return None

            def run(img, scale):
                t = time.perf_counter()
                try:
                    return upsampler(img, scale)
                finally:
                    bg_s[i] += time.perf_counter() - t
            return run

        shared = [1] * len(requests)  # how many requests shared each one's model call
        groups: dict[tuple, list[int]] = {}
        for i, req in enumerate(requests):
            groups.setdefault(req.group(), []).append(i)
        for (model, dtype, latent_mode, seed), members in groups.items():
            pipe = self.pipeline(model, dtype)
            generator = None
            if latent_mode == "sample":  # (the torch backend: request() refuses it for ONNX)
                import torch

                generator = torch.Generator(device=pipe.device).manual_seed(seed)
            t0 = time.perf_counter()
            if len(members) == 1:
                req = requests[members[0]]
                # a learned background takes most of the time: it gets most of the bar
                faces_end = 0.5 if req.bg_upsampler != "lanczos" and req.upscale != 1 else 0.85
                counted = _FaceCounter(pipe, report, 0.3, faces_end) if progress is not None else pipe
                out = [restore_image(counted, req.rgb, mode=req.mode, faces=detected[members[0]],
                                     upscale=req.upscale, only_center_face=req.only_center_face,
                                     color_fix=req.color_fix, fidelity=req.fidelity, latent_mode=latent_mode,
                                     generator=generator, batch_size=1 if pipe.device.type == "cpu" else 4,
                                     bg_upsampler=timed(members[0], self.bg_upsampler(
                                         req.bg_upsampler, report if progress is not None else None,
                                         (faces_end, 0.9))))]
            else:
                out = restore_many(pipe, [dict(image=requests[i].rgb, mode=requests[i].mode, faces=detected[i],
                                               upscale=requests[i].upscale, color_fix=requests[i].color_fix,
                                               fidelity=requests[i].fidelity,
                                               only_center_face=requests[i].only_center_face,
                                               bg_upsampler=timed(i, self.bg_upsampler(requests[i].bg_upsampler)))
                                          for i in members],
                                   latent_mode=latent_mode, generator=generator)
            elapsed = time.perf_counter() - t0 - sum(bg_s[i] for i in members)
            n_faces = sum(len(r.faces) for r in out) or 1
            for i, r in zip(members, out):
                results[i], shared[i] = r, len(members)
                run_s[i] = elapsed * len(r.faces) / n_faces  # this request's share of the shared call

        report(0.9, desc="saving the PNG")
        total_s = time.perf_counter() - t_start
        return [self._demo_result(req, res, detected[i], detect_s[i], run_s[i], total_s, shared[i], bg_s[i])
                for i, (req, res) in enumerate(zip(requests, results))]

    def _demo_result(self, req: DemoRequest, result, faces, detect_s: float, run_s: float, total_s: float,
                     batch: int, bg_s: float = 0.0) -> DemoResult:
        pipe = self.pipeline(req.model, req.dtype)
        w, h = req.rgb.size
        notes = []
        if result.mode == "aligned":
            restored_faces = []  # the slider shows the one face already: no gallery
            if not is_square(w, h):
                notes.append(f"{w}x{h} is not square: stretched to {pipe.config.process_size}²")
            if req.upscale != 1:
                notes.append("rescale applies to whole photos only")
        else:
            restored_faces = []
            for i, f in enumerate(result.faces, 1):
                restored_faces += [(f["cropped"], f"face {i}: input"), (f["restored"], f"face {i}: restored")]
            if not faces:
                notes.append("no face found: the photo is returned" + (" enlarged only" if req.upscale != 1 else
                                                                         " unchanged"))
        if req.rgb.info.get("frames", 1) > 1:
            notes.append(f"an animation of {req.rgb.info['frames']} frames: only the first frame was restored")
        n_faces = len(result.faces)
        per_face = run_s / n_faces if n_faces else None
        png = self._save(result.image, req.name)
        out_w, out_h = result.image.size
        size_part = f"{w}×{h} → {out_w}×{out_h}"
        if result.mode == "photo":
            if req.upscale == 1:
                size_part += " (not rescaled" + (", so Real-ESRGAN had nothing to enlarge)"
                                                 if req.bg_upsampler == "realesrgan" else ")")
            else:
                size_part += f" (rescaled ×{req.upscale:g}, {BG_LABELS[req.bg_upsampler].split(' (')[0]} background)"
        parts = [result.reason,
                 (f"{len(faces)} face(s) found by {self.detector_label()}, {n_faces} restored" if faces is not None
                  else "1 face restored"),
                 size_part,
                 f"colour fix: {req.color_fix}",
                 f"fidelity {req.fidelity:g}" + (" (the restored face, as the paper)" if req.fidelity == 1 else
                                                 " (blended with the input)"),
                 f"model {self.model_label(req.model)}"
                 + ("" if pipe.config.preset in self.model_label(req.model) else f" ({pipe.config.preset})")
                 + f" on {pipe.device.type} {req.dtype}",
                 (f"{per_face:.2f} s/face, " if per_face is not None else "")
                 + f"{total_s:.1f} s in all" + (f" (detection {detect_s:.2f} s)" if detect_s >= 0.005 else "")
                 + (f", background {bg_s:.1f} s" if req.bg_upsampler != "lanczos" and req.upscale != 1 else "")
                 + (f", {batch} requests batched" if batch > 1 else "")]
        if req.latent_mode == "sample":
            parts.append(f"sampled latent, seed {req.seed}")
        info = " · ".join(parts + notes)
        logger.info("%s: %s", req.name, info)
        return DemoResult(before=result.before, after=result.image, faces=restored_faces, png=png, mode=result.mode,
                          info=info, faces_found=len(faces) if faces is not None else 1, seconds_per_face=per_face)

    # ------------------------------------------------------------------------------------------------ videos
    def restore_video(self, video, *, color_fix_method: str = "none", model: str | None = None,
                      dtype: str | None = None, max_seconds: float | None = None, progress=None) -> DemoVideoResult:
        """Restore the first ``max_seconds`` (default :data:`VIDEO_SECONDS`) of an uploaded video with
        :func:`osdface.restore.restore_video` (tracked, smoothed faces; audio copied). ``progress(fraction, desc)``
        is called as frames are done."""
        from ..restore import restore_video
        from ..video.io import VideoInputError, probe

        if video is None:
            raise DemoInputError("no video: upload a short clip first")
        path = Path(str(video))
        if not path.is_file():
            raise DemoInputError(f"{path.name}: the upload is missing; upload it again")
        info = probe(path)
        if info is None:
            raise DemoInputError(f"{path.name}: not a video FFmpeg can read")
        if info.width * info.height > VIDEO_MAX_PIXELS:
            raise DemoInputError(f"{path.name}: {info.width}x{info.height} is larger than the demo takes "
                                 f"(1080p at most); scale it down or use `osdface restore` on your machine")
        if color_fix_method not in COLOR_FIX_METHODS:
            raise DemoInputError(f"colour fix {color_fix_method!r}: use one of {', '.join(COLOR_FIX_METHODS)}")
        limit = VIDEO_SECONDS if max_seconds is None else float(max_seconds)
        pipe = self.pipeline(model, dtype)
        report = reporter(progress)
        report(0.0, desc="decoding")

        def frames_done(done, total):
            if total:
                report(min(1.0, done / total), desc=f"frame {done} of {total}")
            else:
                report(None, desc=f"frame {done}")

        self._prune()
        folder = Path(tempfile.mkdtemp(prefix="result-", dir=self.output_dir))
        stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in path.stem)[:80] or "video"
        target = {"final": folder / f"{stem}_restored.mp4", "frames": folder / "frames"}
        try:
            with self._detect_lock:  # the detector is shared with photo requests
                summary = restore_video(pipe, path, folder, detector=self.detector, target=target,
                                        max_seconds=limit, trim=True, color_fix=color_fix_method,
                                        progress=frames_done)
        except VideoInputError as err:
            raise DemoInputError(str(err).splitlines()[0]) from None
        line = summary.line().replace(f"{path.name}: ", "", 1)
        note = f" · only the first {limit:g} s were restored (the demo's limit)" if summary.trimmed else ""
        logger.info("%s: %s", path.name, line)
        return DemoVideoResult(video=summary.output, info=f"{line}{note}", frames=summary.frames,
                               trimmed=summary.trimmed)

    # ------------------------------------------------------------------------------------------------ output
    def _save(self, img: Image.Image, name: str) -> Path:
        self._prune()
        stem = Path(name).stem or "image"
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)[:80] or "image"
        folder = Path(tempfile.mkdtemp(prefix="result-", dir=self.output_dir))
        path = folder / f"{safe}_restored.png"
        image_io.save_png(img, path)
        return path

    def _prune(self) -> None:
        """Delete results older than KEEP_RESULTS_S (only inside the demo's own output folder)."""
        cutoff = time.time() - KEEP_RESULTS_S
        for folder in self.output_dir.glob("result-*"):
            try:
                if folder.is_dir() and folder.stat().st_mtime < cutoff:
                    for f in folder.iterdir():
                        f.unlink()
                    folder.rmdir()
            except OSError:
                pass

    def close(self) -> None:
        """Remove the output folder when the restorer created it."""
        if self._own_output:
            import shutil

            shutil.rmtree(self.output_dir, ignore_errors=True)
