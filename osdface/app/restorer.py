"""The demo's server-side state, without any UI: the models it serves (loaded once, cached), upload checks, the
output folder, and one line describing what was done. The restoration itself is :func:`osdface.restore.restore_image`.

    restorer = DemoRestorer()                           # OSDFACE_MODEL or the bundled nano model, loaded now
    result = restorer.restore("photo.jpg")              # mode="auto": aligned crop or whole photo
    result.after.save("out.png"); print(result.info)

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
from ..restore import MODES, choose_mode, is_square, load_pipeline, restore_image
from ..weights import BUNDLED_NANO, MissingWeightsError, default_model
from .launch import DEFAULT_MAX_PIXELS, DTYPES

if TYPE_CHECKING:  # pragma: no cover
    import torch

logger = logging.getLogger("osdface.app")

LATENT_MODES = ("mode", "sample")
UPSCALES = (1, 2, 3, 4)
#: the enlarged whole-photo result may not exceed this many pixels
MAX_OUTPUT_PIXELS = 64_000_000
#: results older than this are deleted from the demo's output folder
KEEP_RESULTS_S = 3600

__all__ = ["DemoRestorer", "DemoResult", "DemoInputError", "choose_mode", "default_model", "BUNDLED_NANO", "MODES",
           "DTYPES", "LATENT_MODES", "UPSCALES", "DEFAULT_MAX_PIXELS"]


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


class DemoRestorer:
    """Serves one default model (loaded at construction) and optionally others, cached by (model, dtype).

    ``models``: extra model folders / Hub ids offered next to the default (the bundled nano is always offered).
    ``allow_custom_models``: also accept any other folder or Hub id typed by the user (off for public servers:
    it reads the server's disk and downloads arbitrary repos). ``cache_size``: how many non-default
    (model, dtype) pipelines stay loaded.
    """

    def __init__(self, model: str | os.PathLike | None = None, *, device: str | torch.device | None = "auto",
                 dtype: str = "auto", detector: str | FaceDetector = "auto", models: tuple[str, ...] = (),
                 allow_custom_models: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS,
                 output_dir: str | os.PathLike | None = None, cache_size: int = 1, backend: str = "torch"):
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
        self._detect_lock = threading.Lock()
        self._own_output = output_dir is None
        self.output_dir = Path(output_dir or tempfile.mkdtemp(prefix="osdface-app-"))
        self.output_dir.mkdir(parents=True, exist_ok=True)

    # ----------------------------------------------------------------------------------------------- models
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
    def restore(self, image, *, mode: str = "auto", upscale: int = 1, color_fix_method: str = "none",
                only_center_face: bool = False, model: str | None = None, dtype: str | None = None,
                latent_mode: str = "mode", seed: int = 114, progress=None) -> DemoResult:
        """Restore an upload. ``progress(fraction, desc)`` is called between steps when given."""
        report = progress or (lambda *a, **k: None)
        if mode not in MODES:
            raise DemoInputError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
        if color_fix_method not in COLOR_FIX_METHODS:
            raise DemoInputError(f"unknown colour fix {color_fix_method!r}; use one of {', '.join(COLOR_FIX_METHODS)}")
        if latent_mode not in LATENT_MODES:
            raise DemoInputError(f"unknown latent mode {latent_mode!r}; use one of {', '.join(LATENT_MODES)}")
        try:
            upscale = int(upscale)
            seed = int(seed)
        except (TypeError, ValueError):
            raise DemoInputError("upscale and seed must be whole numbers") from None
        if upscale not in UPSCALES:
            raise DemoInputError(f"upscale must be one of {', '.join(map(str, UPSCALES))}")
        t_start = time.perf_counter()
        report(0.0, desc="checking the image")
        rgb, name = self.load(image)
        pipe = self.pipeline(model, dtype)
        model_name, dtype_name = str(model or self.default_model), self._resolve_dtype(dtype or self.default_dtype)
        w, h = rgb.size

        faces: list = []
        detect_s = 0.0
        if mode != "aligned":
            report(0.1, desc="detecting faces")
            t0 = time.perf_counter()
            with self._detect_lock:
                faces = self.detector.detect(np.asarray(rgb))
            detect_s = time.perf_counter() - t0
        chosen, reason = choose_mode(mode, faces, w, h)
        if chosen == "photo" and w * h * upscale * upscale > MAX_OUTPUT_PIXELS:
            raise DemoInputError(f"{name}: {w}x{h} enlarged {upscale}x would be {w * h * upscale ** 2 / 1e6:.1f} MP; "
                                 f"the limit is {MAX_OUTPUT_PIXELS / 1e6:.0f} MP (choose a smaller upscale)")
        generator = None
        if latent_mode == "sample":
            if self.backend == "onnx":
                raise DemoInputError("a sampled latent needs the torch backend (the ONNX graphs compute its mode)")
            import torch

            generator = torch.Generator(device=pipe.device).manual_seed(seed)

        report(0.3, desc="restoring")
        t0 = time.perf_counter()
        notes = []
        if chosen == "aligned" and not is_square(w, h):
            notes.append(f"{w}x{h} is not square: stretched to {pipe.config.process_size}²")
        if chosen == "aligned" and upscale != 1:
            notes.append("upscale applies to whole photos only")
        result = restore_image(pipe, rgb, mode=chosen, faces=faces, upscale=upscale,
                               only_center_face=only_center_face, color_fix=color_fix_method,
                               latent_mode=latent_mode, generator=generator, progress=progress is not None)
        before, after = result.before, result.image
        if chosen == "aligned":
            restored_faces = [(after, "restored face")]
        else:
            restored_faces = [(f["restored"], f"face {i + 1}") for i, f in enumerate(result.faces)]
            if not faces:
                notes.append("no face found: the photo is returned enlarged only")
        n_faces = len(result.faces)
        run_s = time.perf_counter() - t0
        report(0.9, desc="saving the PNG")
        png = self._save(after, name)
        per_face = run_s / n_faces if n_faces else None

        parts = [f"model {self.model_label(model_name)} ({pipe.config.preset})", f"{pipe.device.type} {dtype_name}",
                 reason, f"{len(faces)} face(s) detected" if mode != "aligned" else "no detection",
                 f"{n_faces} restored" + (f", {per_face:.2f} s/face" if per_face is not None else ""),
                 f"{time.perf_counter() - t_start:.1f} s in all"
                 + (f" (detection {detect_s:.2f} s)" if detect_s else "")]
        if latent_mode == "sample":
            parts.append(f"sampled latent, seed {seed}")
        info = " · ".join(parts + notes)
        logger.info("%s: %s", name, info)
        return DemoResult(before=before, after=after, faces=restored_faces, png=png, mode=chosen, info=info,
                          faces_found=len(faces), seconds_per_face=per_face)

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
