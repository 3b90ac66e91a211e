"""The restore workflow: images in, restored images out. The command line, the demo and the evaluation all call
this module; nothing else decides how a face is restored or where a restored file goes.

    pipe = load_pipeline()                                        # the bundled nano model (or any model folder / Hub id)
    pipe = load_pipeline("nano-onnx", backend="onnx")             # an `osdface export-onnx` folder, ONNX Runtime
    result = restore_image(pipe, photo, mode="auto")              # one image in memory → RestoreResult
    results = restore_many(pipe, [dict(image=a), dict(image=b)])  # several images, their faces in one model call
    summary = restore_files(pipe, paths, "out", aligned=False)    # image files → the output folders below

Modes
    ``aligned``: the image is an FFHQ-aligned face crop, restored at ``process_size``² in one model call.
    ``photo``: every face is detected, aligned to the FFHQ template, restored in one batch and pasted back
    (:func:`osdface.faces.photo.restore_photo`). ``auto`` (:func:`choose_mode`): an aligned crop when the image is
    square and its best face's 5 landmarks lie where the FFHQ template puts them at that size (mean distance below
    10 % of the side, and the similarity transform between them scales by 0.75–1.33), or when it is square and no
    face is found (a tight or heavily degraded crop often defeats the detector); a whole photo otherwise.

Options shared by every entry point: ``upscale`` (whole photos: the background enlarged by any factor >= 1,
Lanczos; ``bg_upsampler="realesrgan"``: Real-ESRGAN, see :func:`osdface.faces.photo.get_bg_upsampler`), ``color_fix`` (none | adain | wavelet: pull the restored colours toward the input), ``fidelity`` w ∈ [0, 1]
(each restored face blended with its aligned input crop, ``w · restored + (1 − w) · input``, after the colour fix
and before the paste-back; 1, the default, is the model's output as the paper uses it).

Output layout of :func:`restore_files` (CodeFormer's, plus ``cmp/``)::

    OUT/restored_faces/NAME.png         aligned crops: the restored crop (``faces_dir`` renames the folder)
    OUT/cropped_faces/NAME_00.png       whole photos: the aligned input crop of each face (process_size²)
    OUT/restored_faces/NAME_00.png      its restoration
    OUT/final_results/NAME.png          the whole photo, faces pasted back, ``upscale`` times the size
    OUT/cmp/NAME.png                    input (enlarged the same way) | final result, side by side

    OUT/final_results/NAME.mp4          videos (:func:`restore_video`): every frame's faces restored, H.264, audio
                                        copied; same size, frame rate and frame count as the input
    OUT/frames/NAME/000000.png ...      with ``save_frames``: every output frame

Archives (:class:`Shard`, :class:`Manifest`): several processes started by ``torchrun --nproc_per_node N`` (or
``accelerate launch``) each take every N-th input (``RANK``/``WORLD_SIZE`` from the launcher), with output names
computed over the whole input list, so that the outputs are those of one process. ``skip_existing`` leaves an input
whose output is already complete (the final file is written last, under its name only once complete) to an earlier
run. ``OUT/manifest.jsonl`` gets one line per input (input, output, faces, status ok/failed/skipped, seconds, rank),
appended by each process with one ``write`` (``O_APPEND``).

Every file is written atomically (:func:`osdface.image_io.save_png`; videos through a temporary name renamed at the
end), never over an input, and only under ``OUT``. Files are decoded and encoded in a background thread while the
model works on the previous batch. :func:`classify_inputs` tells images from videos by their content.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from . import image_io
from .faces.color import COLOR_FIX_METHODS

MODES = ("auto", "aligned", "photo")
BACKENDS = ("torch", "onnx")
# --backend auto on a CPU: ONNX Runtime starts at once but runs fp32; torch first pays seconds of imports (torch,
# diffusers), then runs bf16 where the CPU has it. The cut-off is where torch's start is paid back;
# benchmarks/startup.py measures both backends (benchmarks/results/startup.json)
AUTO_ONNX_MAX_CROPS = 32
AUTO_ONNX_MAX_PHOTOS = 4  # a photo may hold several faces

__all__ = ["MODES", "BACKENDS", "choose_backend", "RestoreResult", "RestoreSummary", "load_pipeline", "choose_mode", "fills_template",
           "restore_aligned", "restore_image", "restore_many", "restore_files", "output_names", "photo_output_paths",
           "is_square", "classify_inputs", "video_output_paths", "restore_video", "VIDEO_SUFFIX", "Shard", "Manifest"]


# ----------------------------------------------------------------------------------------------------- the model
def load_pipeline(model: str | os.PathLike | None = None, *, device="auto", dtype="auto",
                  base_model: str | None = None, local_files_only: bool | None = None, fuse_lora: bool = True,
                  backend: str = "torch"):
    """The model to restore with: ``model`` (folder or Hub id), else ``$OSDFACE_MODEL``, else the bundled nano;
    ``device`` / ``dtype`` as :func:`osdface.devices.pick_device` / :func:`~osdface.devices.resolve_dtype` take
    them. Raises :class:`~osdface.weights.MissingWeightsError` with one line when the model cannot be loaded, and
    ``ValueError`` for an unusable device or dtype.

    ``backend="onnx"``: ``model`` is a folder written by ``osdface export-onnx``, run by
    :class:`~osdface.onnx_pipeline.OSDFaceONNXPipeline` (ONNX Runtime; torch is not imported). ``device``: auto,
    cpu, cuda, coreml/mps or dml; ``dtype`` must be auto or fp32 (the export fixes the precision);
    ``ImportError`` (one line) when ONNX Runtime is not installed."""
    if backend == "onnx":
        return _load_onnx_pipeline(model, device=device, dtype=dtype)
    if backend != "torch":
        raise ValueError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    from .configs import OSDFaceConfig
    from .devices import pick_device, resolve_dtype
    from .pipeline import OSDFacePipeline
    from .weights import MissingWeightsError, default_model, first_line, resolve_model_folder

    name = default_model(model)
    device = pick_device(device)
    folder = resolve_model_folder(name, local_files_only=local_files_only)
    try:
        config = OSDFaceConfig.load(folder)
        dtype = resolve_dtype(dtype, device, cpu_bf16=config.cpu_bf16)
        pipe = OSDFacePipeline.from_pretrained(folder, torch_dtype=dtype, device=device, base_model=base_model,
                                               local_files_only=local_files_only, fuse_lora=fuse_lora)
    except MissingWeightsError:
        raise
    except (OSError, KeyError, ValueError) as err:  # a damaged folder: unreadable config, missing part
        if isinstance(err, ValueError) and "fp16 needs a GPU" in str(err):
            raise
        raise MissingWeightsError(f"cannot load the model {name}: {first_line(err)}") from None
    pipe.name = name
    return pipe


def choose_backend(model: str | os.PathLike | None = None, *, device: str = "auto", n_images: int = 0,
                   aligned: bool = True, n_videos: int = 0, torch_options: tuple = ()) -> tuple[str, str]:
    """What ``--backend auto`` runs: ``("onnx", why)`` when the model folder carries fresh ONNX graphs (the bundled
    nano does), the work is a few images on a CPU and no torch-only option is asked for; else ``("torch", why)``.
    Decided without importing torch (that import is most of a short run's time)."""
    import importlib.util

    from .weights import default_model

    def gpu_visible() -> bool:  # without importing torch: the NVIDIA driver (unless hidden), or a Mac (MPS)
        if sys.platform == "darwin":
            return True
        hidden = os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1")
        return Path("/proc/driver/nvidia/version").exists() and not hidden

    if torch_options:
        return "torch", f"{', '.join(torch_options)} {'is' if len(torch_options) == 1 else 'are'} torch options"
    if str(device or "auto") not in ("auto", "cpu") or (str(device or "auto") == "auto" and gpu_visible()):
        return "torch", "a GPU"
    if n_videos:
        return "torch", "videos are restored in large batches"
    limit = AUTO_ONNX_MAX_CROPS if aligned else AUTO_ONNX_MAX_PHOTOS
    if n_images > limit:
        return "torch", f"{n_images} {'images' if aligned else 'photos'}: torch's per-face speed pays for its start"
    folder = Path(default_model(model)).expanduser()
    from .onnx_pipeline import is_onnx_folder, stale_sources

    if not is_onnx_folder(folder):
        return "torch", "the model has no ONNX graphs"
    if importlib.util.find_spec("onnxruntime") is None:
        return "torch", "ONNX Runtime is not installed"
    if stale_sources(folder):
        return "torch", "the model's ONNX graphs are older than its weights"
    what = f"{n_images} {'image' if aligned else 'photo'}{'s' if n_images != 1 else ''}"
    return "onnx", f"the model's ONNX graphs on the CPU, quicker to start than torch for {what}; --backend torch " \
                   f"to change"


def _load_onnx_pipeline(model, *, device, dtype):
    from .onnx_pipeline import OSDFaceONNXPipeline, import_onnxruntime, is_onnx_folder
    from .weights import MissingWeightsError, default_model, first_line

    if str(dtype or "auto") not in ("auto", "fp32", "float32"):
        raise ValueError(f"dtype {dtype}: the ONNX backend runs the precision the folder was exported with (fp32, or "
                         "the fp16 graphs of `osdface export-onnx --fp16`); --dtype is for the torch backend")
    name = default_model(model)
    if not is_onnx_folder(Path(name).expanduser()):
        raise MissingWeightsError(f"{name} is not an ONNX export (it has no osdface_onnx.json): make one with "
                                  f"`osdface export-onnx --model {model or 'MODEL'} --out DIR` and pass --model DIR")
    import_onnxruntime()  # ImportError with the install line
    try:
        pipe = OSDFaceONNXPipeline(Path(name).expanduser(), device="auto" if device is None else str(device))
    except ValueError as err:
        if str(err).startswith(("device", "unknown device")):
            raise
        raise MissingWeightsError(f"cannot load the ONNX export {name}: {first_line(err)}") from None
    except Exception as err:  # unreadable JSON, a missing or damaged graph (ONNX Runtime's own error types)
        raise MissingWeightsError(f"cannot load the ONNX export {name}: {first_line(err)}") from None
    pipe.name = name
    return pipe


# ----------------------------------------------------------------------------------------------------- the mode
def is_square(w: int, h: int, tolerance: float = 0.02) -> bool:
    return abs(w - h) <= tolerance * max(w, h)


def fills_template(face, width: int, height: int) -> bool:
    """Whether ``face`` (a :class:`~osdface.faces.detection.Face`) sits where an FFHQ-aligned crop of this size
    puts a face (see the module docstring)."""
    from .faces.alignment import affine_scale, similarity_transform, template

    if not is_square(width, height):
        return False
    size = (width + height) / 2.0
    target = template(size)
    error = float(np.linalg.norm(face.landmarks - target, axis=1).mean()) / size
    scale = affine_scale(similarity_transform(face.landmarks, target))
    return error < 0.10 and 0.75 <= scale <= 1.0 / 0.75


def choose_mode(mode: str, faces: list, width: int, height: int) -> tuple[str, str]:
    """``(mode, reason)`` with mode ``"aligned"`` or ``"photo"``; ``mode`` is what the user asked for."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    if mode == "aligned":
        return "aligned", "aligned crop (chosen)"
    if mode == "photo":
        return "photo", "whole photo (chosen)"
    if faces and fills_template(faces[0], width, height):
        return "aligned", "aligned crop (auto: the face fills the FFHQ template)"
    if not faces and is_square(width, height):
        return "aligned", "aligned crop (auto: square image, no face detected)"
    return "photo", "whole photo (auto)"


# ------------------------------------------------------------------------------------------------- in memory
@dataclass
class RestoreResult:
    """``image``: the result (an aligned crop at ``process_size``², or the whole photo ``upscale`` times the size).
    ``faces``: one dict per restored face: ``restored`` and ``cropped`` (PIL), and for photos ``box``,
    ``landmarks`` (in input pixels), ``score``, ``affine`` (photo → crop). ``mode``: aligned | photo, ``reason``
    why; ``detected``: faces the detector found (None when it did not run). :attr:`before`: the input at the size
    of the result, for a before/after view."""

    image: Image.Image
    input: Image.Image
    faces: list[dict] = field(default_factory=list)
    mode: str = "aligned"
    reason: str = ""
    detected: int | None = None
    upscale: float = 1

    @property
    def before(self) -> Image.Image:
        if self.mode == "aligned":
            return self.input.resize(self.image.size, Image.BICUBIC)
        from .faces.photo import lanczos_upsample

        return lanczos_upsample(self.input, self.upscale)


def restore_aligned(pipe, images: list, *, color_fix: str = "none", fidelity: float = 1.0,
                    latent_mode: str | None = None, generator=None, batch_size: int = 4,
                    progress: bool = False) -> list[Image.Image]:
    """Aligned face crops (PIL images or arrays) → restored crops (PIL, ``process_size``²), ``batch_size`` per
    model call. ``color_fix`` (none | adain | wavelet) pulls each result's colours toward its input; ``fidelity``
    blends each result with its input (1: the result alone)."""
    if color_fix not in COLOR_FIX_METHODS:
        raise ValueError(f"unknown colour fix {color_fix!r}; use one of {', '.join(COLOR_FIX_METHODS)}")
    from .faces.photo import check_fidelity

    fidelity = check_fidelity(fidelity)
    kwargs = dict(batch_size=batch_size, latent_mode=latent_mode, generator=generator, progress=progress)
    if color_fix == "none" and fidelity == 1.0:
        return pipe(images, output_type="pil", **kwargs)
    out = pipe(images, output_type="np", **kwargs)
    return [_finish_aligned(img, restored, color_fix, fidelity) for img, restored in zip(images, out)]


def _finish_aligned(image, restored: np.ndarray, color_fix: str, fidelity: float) -> Image.Image:
    """One restored crop (float (S, S, 3) in [0, 1]) → PIL, after the colour fix and the fidelity blend with its
    input (resized to S² bilinearly)."""
    from .faces import color
    from .faces.photo import blend_fidelity

    size = restored.shape[0]
    if color_fix == "none" and fidelity == 1.0:
        return Image.fromarray(image_io.to_uint8(restored))
    reference = np.asarray(Image.fromarray(image_io.as_rgb_uint8(image)).resize((size, size), Image.BILINEAR))
    fixed = color.color_fix(restored, reference, color_fix) if color_fix != "none" else restored
    return Image.fromarray(image_io.to_uint8(blend_fidelity(fixed, reference, fidelity)))


class _KnownFaces:
    """A detector that returns faces found before (so that detection runs once per image)."""

    name = "known"

    def __init__(self, faces: list):
        self._faces = faces

    def detect(self, img) -> list:
        return list(self._faces)


def restore_image(pipe, image, *, mode: str = "auto", detector=None, faces: list | None = None,
                  upscale: float = 1, color_fix: str = "none", fidelity: float = 1.0,
                  only_center_face: bool = False, draw_box: bool = False, latent_mode: str | None = None,
                  generator=None, batch_size: int = 4, progress: bool = False, bg_upsampler=None) -> RestoreResult:
    """Restore one image (PIL, or an RGB array) in ``mode`` (auto | aligned | photo; see the module docstring).

    ``detector``: a :class:`~osdface.faces.detection.FaceDetector` (default: ``get_detector("auto")``, built
    once per pipeline); ``faces``: detections made before (then the detector does not run). ``upscale`` enlarges
    whole photos (Lanczos background, any factor >= 1; ``bg_upsampler``: a name, lanczos | realesrgan | none, or
    a callable of :func:`osdface.faces.photo.get_bg_upsampler`); ``color_fix``, ``fidelity``, ``only_center_face``
    and ``draw_box`` as in :func:`osdface.faces.photo.restore_photo`."""
    from .faces.photo import check_fidelity, check_upscale

    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    upscale, fidelity = check_upscale(upscale), check_fidelity(fidelity)
    rgb = image if isinstance(image, Image.Image) and image.mode == "RGB" else \
        Image.fromarray(image_io.as_rgb_uint8(image))
    w, h = rgb.size
    if mode != "aligned" and faces is None:
        faces = _detector_for(pipe, detector).detect(np.asarray(rgb))
    chosen, reason = choose_mode(mode, faces or [], w, h)
    detected = None if faces is None else len(faces)
    run = dict(latent_mode=latent_mode, generator=generator)
    if chosen == "aligned":
        out = restore_aligned(pipe, [rgb], color_fix=color_fix, fidelity=fidelity, batch_size=1, progress=progress,
                              **run)[0]
        return RestoreResult(out, rgb, [{"restored": out, "cropped": rgb}], "aligned", reason, detected)
    from .faces.photo import restore_photo

    result = restore_photo(pipe, np.asarray(rgb), detector=_KnownFaces(faces or []), upscale=upscale,
                           only_center_face=only_center_face, color_fix=color_fix, draw_box=draw_box,
                           batch_size=batch_size, pipe_kwargs={**run, "progress": progress}, fidelity=fidelity,
                           bg_upsampler=bg_upsampler)
    return RestoreResult(result.image, rgb, result.faces, "photo", reason, detected, upscale)


def restore_many(pipe, requests: list[dict], *, detector=None, latent_mode: str | None = None, generator=None,
                 batch_size: int = 8) -> list[RestoreResult]:
    """Several images, each with its own options, restored with **one** model call for all their faces (batches
    of ``batch_size``): what a server does with requests that queued up together.

    Each request is a dict with ``image`` and optionally ``mode``, ``faces``, ``upscale``, ``color_fix``,
    ``fidelity``, ``only_center_face``, ``draw_box``, ``bg_upsampler`` (as :func:`restore_image` takes them). The model options
    (``latent_mode``, ``generator``) are shared. Each result is what :func:`restore_image` gives for that request,
    up to the floating-point differences of another batch size."""
    from .faces.photo import check_fidelity, check_upscale, finish_photo, get_bg_upsampler, prepare_photo

    size = int(pipe.config.process_size)
    plans = []
    for req in requests:
        unknown = set(req) - {"image", "mode", "faces", "upscale", "color_fix", "fidelity", "only_center_face",
                              "draw_box", "bg_upsampler"}
        if unknown:
            raise ValueError(f"unknown request options: {', '.join(sorted(unknown))}")
        mode = req.get("mode", "auto")
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
        color_fix = req.get("color_fix", "none")
        if color_fix not in COLOR_FIX_METHODS:
            raise ValueError(f"unknown colour fix {color_fix!r}; use one of {', '.join(COLOR_FIX_METHODS)}")
        image = req["image"]
        rgb = image if isinstance(image, Image.Image) and image.mode == "RGB" else \
            Image.fromarray(image_io.as_rgb_uint8(image))
        faces = req.get("faces")
        if mode != "aligned" and faces is None:
            faces = _detector_for(pipe, detector).detect(np.asarray(rgb))
        chosen, reason = choose_mode(mode, faces or [], *rgb.size)
        plan = dict(rgb=rgb, mode=chosen, reason=reason, detected=None if faces is None else len(faces),
                    upscale=check_upscale(req.get("upscale", 1)), color_fix=color_fix,
                    fidelity=check_fidelity(req.get("fidelity", 1.0)), draw_box=bool(req.get("draw_box", False)),
                    bg_upsampler=get_bg_upsampler(req.get("bg_upsampler")))
        if chosen == "aligned":
            plan["crops"] = [rgb]
        else:
            arr, found, crops, affines = prepare_photo(np.asarray(rgb), size, detector=_KnownFaces(faces or []),
                                                       only_center_face=bool(req.get("only_center_face", False)))
            plan.update(array=arr, faces=found, crops=crops, affines=affines)
        plans.append(plan)

    inputs = [c if isinstance(c, Image.Image) else Image.fromarray(c) for plan in plans for c in plan["crops"]]
    out = pipe(inputs, output_type="np", batch_size=batch_size, latent_mode=latent_mode,
               generator=generator) if inputs else []
    results, at = [], 0
    for plan in plans:
        n = len(plan["crops"])
        restored = [np.asarray(out[at + i], dtype=np.float32) for i in range(n)]
        at += n
        if plan["mode"] == "aligned":
            img = _finish_aligned(plan["rgb"], restored[0], plan["color_fix"], plan["fidelity"])
            results.append(RestoreResult(img, plan["rgb"], [{"restored": img, "cropped": plan["rgb"]}], "aligned",
                                         plan["reason"], plan["detected"]))
        else:
            photo = finish_photo(plan["array"], plan["faces"], plan["crops"], plan["affines"], restored,
                                 upscale=plan["upscale"], color_fix=plan["color_fix"], fidelity=plan["fidelity"],
                                 draw_box=plan["draw_box"], bg_upsampler=plan["bg_upsampler"])
            results.append(RestoreResult(photo.image, plan["rgb"], photo.faces, "photo", plan["reason"],
                                         plan["detected"], plan["upscale"]))
    return results


def _detector_for(pipe, detector):
    """``detector``, else the pipeline's default detector (built on first use, then kept)."""
    if detector is not None:
        return detector
    if getattr(pipe, "_detector", None) is None:
        from .faces.detection import get_detector

        pipe._detector = get_detector("auto", device=pipe.device)
    return pipe._detector


# ----------------------------------------------------------------------------------------------------- files
def _key(p: Path) -> str:
    return os.path.normcase(str(Path(p).resolve())).casefold()


def output_names(inputs: list[Path], out_dir: Path, suffix: str = "", ext: str = ".png") -> dict[Path, Path]:
    """Input file → a distinct output path: ``<stem><suffix><ext>`` (PNG by default); stems shared by several inputs
    keep their extension (``a_jpg.png``); a name already taken (by an input file or an earlier output, compared
    case-insensitively) gets ``_restored``, ``_restored2``, … so that no input and no other output is overwritten."""
    stems = Counter(p.stem for p in inputs)
    taken = {_key(p) for p in inputs}
    names = {}
    for p in inputs:
        stem = (p.stem if stems[p.stem] == 1 else f"{p.stem}_{p.suffix.lstrip('.')}") + suffix
        for extra in ["", "_restored", *(f"_restored{n}" for n in range(2, 10_000))]:
            target = out_dir / f"{stem}{extra}{ext}"
            key = _key(target)
            if key not in taken:
                break
        taken.add(key)
        names[p] = target
    return names


def photo_output_paths(inputs: list[Path], out_root: Path, suffix: str = "") -> dict[Path, dict]:
    """Per input photo: ``final`` and ``cmp`` paths and a ``face_name(i)`` function for cropped/restored faces."""
    finals = output_names(inputs, out_root / "final_results", suffix)
    paths = {}
    for p in inputs:
        final = finals[p]
        stem = final.stem
        core = stem[:-len(suffix)] if suffix and stem.endswith(suffix) else stem
        tail = suffix if suffix and stem.endswith(suffix) else ""
        paths[p] = {"final": final, "cmp": out_root / "cmp" / final.name,
                    "face_name": (lambda i, core=core, tail=tail: f"{core}_{i:02d}{tail}.png")}
    return paths


def _side_by_side(left: Image.Image, right: Image.Image) -> Image.Image:
    canvas = Image.new("RGB", (left.width + right.width, max(left.height, right.height)))
    canvas.paste(left, (0, 0))
    canvas.paste(right, (left.width, 0))
    return canvas


@dataclass
class RestoreSummary:
    """What :func:`restore_files` did: of its ``total`` inputs (this process's share), ``done`` fully written,
    ``skipped`` already complete (``skip_existing``), ``failed``; ``faces`` restored, ``model_seconds`` spent
    restoring (decoding and writing files excluded)."""

    total: int
    done: int = 0
    failed: list[Path] = field(default_factory=list)
    faces: int = 0
    model_seconds: float = 0.0
    skipped: int = 0


@dataclass(frozen=True)
class Shard:
    """This process's share of an input list: every ``world``-th item from ``rank`` (interleaved, so that each
    process gets a similar mix of a folder sorted by name)."""

    rank: int = 0
    world: int = 1

    def __post_init__(self):
        if not (self.world >= 1 and 0 <= self.rank < self.world):
            raise ValueError(f"shard {self.rank} of {self.world}: need 0 <= rank < world")

    @classmethod
    def from_env(cls) -> "Shard":
        """``RANK`` / ``WORLD_SIZE`` as ``torchrun`` and ``accelerate launch`` set them (one process: 0 of 1)."""
        rank, world = os.environ.get("RANK"), os.environ.get("WORLD_SIZE")
        if (rank is None) != (world is None):
            raise ValueError(f"RANK={rank!r} WORLD_SIZE={world!r}: a multi-process launch sets both (torchrun, "
                             f"accelerate launch); set both or neither")
        try:
            return cls(int(rank or 0), int(world or 1))
        except ValueError:
            raise ValueError(f"RANK={os.environ.get('RANK')!r} WORLD_SIZE={os.environ.get('WORLD_SIZE')!r}: "
                             f"not a process rank and count") from None

    def take(self, items: list) -> list:
        return list(items[self.rank::self.world])


class Manifest:
    """``OUT/manifest.jsonl``: one JSON object per input and run (``input``, ``output``, ``faces``, ``status`` =
    ok | failed | skipped, ``seconds`` of model time, ``rank``, ``error`` when failed). Each line is written with a
    single ``os.write`` on an ``O_APPEND`` descriptor, which keeps the lines of concurrent processes whole."""

    def __init__(self, path: str | os.PathLike, rank: int = 0, log: Callable[[str], None] | None = None):
        self.path, self.rank, self.log, self.broken = Path(path), rank, log or _stderr, False

    def record(self, input, output, status: str, *, faces: int = 0, seconds: float = 0.0, error: str | None = None
               ) -> None:
        """Append one line; a manifest that cannot be written is reported once and the restoration goes on."""
        import json

        row = {"input": str(input), "output": str(output) if output is not None else None, "faces": faces,
               "status": status, "seconds": round(seconds, 4), "rank": self.rank}
        if error:
            row["error"] = error
        line = (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError as err:
            if not self.broken:
                self.broken = True
                self.log(f"warning: cannot write the manifest {self.path}: {err.strerror or err}; restoring on")

    def rows(self) -> list[dict]:
        """Every line recorded so far (all runs and processes), oldest first."""
        import json

        if not self.path.is_file():
            return []
        return [json.loads(x) for x in self.path.read_text(encoding="utf-8").splitlines() if x.strip()]


class _NoManifest(Manifest):
    def __init__(self):
        super().__init__(os.devnull)

    def record(self, *args, **kwargs) -> None:
        pass


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def restore_files(pipe, inputs: list[str | os.PathLike], output: str | os.PathLike, *, aligned: bool = True,
                  faces_dir: str = "restored_faces", suffix: str = "", batch_size: int = 4, color_fix: str = "none",
                  fidelity: float = 1.0, detector=None, upscale: float = 1, only_center_face: bool = False,
                  draw_box: bool = False, bg_upsampler=None,
                  latent_mode: str | None = None, generator=None, log: Callable[[str], None] = _stderr,
                  on_done: Callable[[int], None] | None = None, shard: Shard | None = None,
                  skip_existing: bool = False, manifest: str | None = "manifest.jsonl") -> RestoreSummary:
    """Restore image files into ``output`` (layout in the module docstring); one input's failure is reported with
    one ``error: <file>: <reason>`` line through ``log`` and the others go on. ``on_done(n)`` is called as inputs
    finish (a progress bar's ``update``). ``aligned=False``: whole photos, with ``detector`` (default: auto) and
    ``bg_upsampler`` (as :func:`restore_image` takes it).

    ``shard``: restore only this process's share (output names still come from the whole list); ``skip_existing``:
    leave inputs whose output (a photo's final result) exists; ``manifest``: the file under ``output`` that gets a
    line per input (None: none)."""
    inputs = [Path(p) for p in inputs]
    out = Path(output)
    shard = shard or Shard()
    tick = on_done or (lambda n: None)
    from .faces.photo import check_fidelity, check_upscale

    run = dict(latent_mode=latent_mode, generator=generator, fidelity=check_fidelity(fidelity))
    if not aligned:
        upscale = check_upscale(upscale)
    record = Manifest(out / manifest, shard.rank, log) if manifest else _NoManifest()
    if aligned:  # names over the whole list: every process agrees on them
        targets = output_names(inputs, out / faces_dir, suffix)
        final = targets
    else:
        targets = photo_output_paths(inputs, out, suffix)
        final = {p: t["final"] for p, t in targets.items()}
    mine = shard.take(inputs)
    summary = RestoreSummary(total=len(mine))
    if shard.world == 1:  # (with several processes another one may be writing its temporary files now)
        folders = {out / faces_dir} if aligned else \
            {out / d for d in ("final_results", "cmp", "cropped_faces", "restored_faces")}
        remove_unfinished(folders, log)
    if skip_existing:
        todo = []
        for p in mine:
            if final[p].is_file():
                summary.skipped += 1
                record.record(p, final[p], "skipped")
                tick(1)
            else:
                todo.append(p)
        mine = todo
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="osdface-io") as io:
        if aligned:
            _aligned_files(pipe, mine, targets, summary, io, log, tick, record, batch_size=batch_size,
                           color_fix=color_fix, **run)
        else:
            _photo_files(pipe, mine, inputs, out, targets, summary, io, log, tick, record,
                         detector=_detector_for(pipe, detector), batch_size=batch_size, color_fix=color_fix,
                         upscale=upscale, only_center_face=only_center_face, draw_box=draw_box,
                         bg_upsampler=bg_upsampler, **run)
    return summary


def remove_unfinished(folders, log: Callable[[str], None] = _stderr) -> int:
    """Delete the hidden temporary files (``.NAME.<hex>.tmp``) an interrupted run left in our output ``folders``,
    with one line saying so; returns how many."""
    removed = [p for folder in sorted(folders) for p in image_io.remove_stale_tmp(folder)]
    if removed:
        where = ", ".join(sorted({str(p.parent) for p in removed}))
        log(f"removed {len(removed)} unfinished temporary file(s) an interrupted run left in {where}")
    return len(removed)


def _note_frames(path: Path, img, log) -> None:
    frames = img.info.get("frames", 1)
    if frames > 1:
        log(f"note: {path}: an animation of {frames} frames; only the first frame is restored")


def _load(path: Path):
    """(path, RGB image) or (path, ImageInputError)."""
    try:
        return path, image_io.load_image(path)
    except image_io.ImageInputError as err:
        return path, err


def _loaded(io: ThreadPoolExecutor, paths: list[Path], chunk: int):
    """Chunks of ``(path, image or error)``, decoded one chunk ahead in the background."""
    chunks = [paths[i:i + chunk] for i in range(0, len(paths), chunk)]
    pending = io.submit(lambda c: [_load(p) for p in c], chunks[0]) if chunks else None
    for i in range(len(chunks)):
        current = pending.result()
        pending = io.submit(lambda c: [_load(p) for p in c], chunks[i + 1]) if i + 1 < len(chunks) else None
        yield current


def _save_and_record(img, path, target, record, seconds) -> None:
    """Write a restored crop, then its manifest line (in the I/O thread: the line follows the file at once)."""
    image_io.save_png(img, target)
    record.record(path, target, "ok", faces=1, seconds=seconds)


def _unreadable(path, err, summary, log, tick, record) -> None:
    """An input that could not be loaded: one error line, a manifest line, counted as failed."""
    summary.failed.append(path)
    log(f"error: {err}")
    record.record(path, None, "failed", error=str(err))
    tick(1)


def _aligned_files(pipe, inputs, targets, summary, io, log, tick, record, *, batch_size, color_fix, **run) -> None:
    size = pipe.config.process_size
    writes = []
    for chunk in _loaded(io, inputs, batch_size):
        images = []
        for path, img in chunk:
            if isinstance(img, Exception):
                _unreadable(path, img, summary, log, tick, record)
                continue
            _note_frames(path, img, log)
            if img.width != img.height:
                log(f"warning: {path}: {img.width}x{img.height} is not square; aligned mode expects FFHQ-aligned "
                    f"square crops, so it is stretched to {size}x{size}")
            images.append((path, img))
        if not images:
            continue
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            restored = restore_aligned(pipe, [img for _, img in images], color_fix=color_fix,
                                       batch_size=len(images), **run)
        seconds = time.perf_counter() - t0
        summary.model_seconds += seconds
        for w in caught:
            if "not square" not in str(w.message):  # already reported above, with the file name
                log(f"warning: {w.message}")
        for (path, _), result in zip(images, restored):
            writes.append((path, io.submit(_save_and_record, result, path, targets[path], record,
                                           seconds / len(images)), seconds / len(images)))
        writes = _collect(writes, summary, log, tick, targets, record, wait=False)
    _collect(writes, summary, log, tick, targets, record, wait=True)


def _collect(writes, summary, log, tick, targets, record, *, wait: bool):
    """Account for finished writes (all of them with ``wait``); returns those still running."""
    running = []
    for path, future, seconds in writes:
        if not wait and not future.done():
            running.append((path, future, seconds))
            continue
        try:
            future.result()
            summary.done += 1
            summary.faces += 1
        except OSError as err:
            summary.failed.append(path)
            msg = f"cannot write {targets[path]}: {err.strerror or err}"
            log(f"error: {path}: {msg}")
            record.record(path, targets[path], "failed", seconds=seconds, error=msg)
        tick(1)
    return running


def _photo_files(pipe, inputs, all_inputs, out, paths, summary, io, log, tick, record, *, detector, batch_size,
                 color_fix, upscale, only_center_face, draw_box, bg_upsampler=None, **run) -> None:
    from .faces.photo import lanczos_upsample

    input_keys = {_key(p) for p in all_inputs}
    for chunk in _loaded(io, inputs, 1):
        path, img = chunk[0]
        if isinstance(img, Exception):
            _unreadable(path, img, summary, log, tick, record)
            continue
        _note_frames(path, img, log)
        try:
            t0 = time.perf_counter()
            result = restore_image(pipe, img, mode="photo", detector=detector, upscale=upscale,
                                   only_center_face=only_center_face, color_fix=color_fix, draw_box=draw_box,
                                   batch_size=batch_size, bg_upsampler=bg_upsampler, **run)
            seconds = time.perf_counter() - t0
            summary.model_seconds += seconds
        except (ValueError, RuntimeError, MemoryError, OSError) as err:
            summary.failed.append(path)
            msg = str(err).splitlines()[0] if str(err) else type(err).__name__
            log(f"error: {path}: {msg}")
            record.record(path, None, "failed", error=msg)
            tick(1)
            continue
        p = paths[path]
        writes = []
        for i, face in enumerate(result.faces):
            name = p["face_name"](i)
            writes.append((face["cropped"], out / "cropped_faces" / name))
            writes.append((face["restored"], out / "restored_faces" / name))
        up = lanczos_upsample(img, upscale) if upscale != 1 else img
        writes.append((_side_by_side(up, result.image), p["cmp"]))
        writes.append((result.image, p["final"]))  # last: its presence means the photo is complete (skip_existing)
        problems = []
        for im, target in writes:
            if problems and target == p["final"]:  # an incomplete photo gets no final result: a rerun redoes it
                log(f"error: {path}: not writing {target}: the photo's other files are incomplete")
                break
            if _key(target) in input_keys:
                problems.append(f"not writing {target}: it is one of the inputs")
            else:
                try:
                    image_io.save_png(im, target)
                    continue
                except OSError as err:
                    problems.append(f"cannot write {target}: {err.strerror or err}")
            log(f"error: {path}: {problems[-1]}")
        if not result.faces and not problems:
            log(f"{path}: no face detected; wrote the {'enlarged ' if upscale != 1 else ''}photo to {p['final']}")
        if not problems:
            summary.done += 1
        else:
            summary.failed.append(path)
        summary.faces += len(result.faces)
        record.record(path, p["final"], "failed" if problems else "ok", faces=len(result.faces), seconds=seconds,
                      error=problems[0] if problems else None)
        tick(1)


# ----------------------------------------------------------------------------------------------------- videos
#: the container of restored videos (H.264 in MP4, whatever the input's container)
VIDEO_SUFFIX = ".mp4"


def classify_inputs(path: str | os.PathLike) -> tuple[list[Path], list[Path], list[Path]]:
    """``(images, videos, skipped)`` of an input file or folder (listed as :func:`osdface.image_io.list_images`
    lists it), told apart by content (:func:`osdface.video.io.media_kind`): a video named ``.png`` is a video, an
    image named ``.mp4`` an image. Files with an image extension that are neither stay images, and a single file
    that is neither is an image too, so that loading reports why it cannot be used; other files of a folder that
    are neither are ``skipped``. PyAV is imported only for files Pillow cannot identify. Raises
    :class:`~osdface.image_io.ImageInputError` when the path cannot be listed."""
    from .video.io import media_kind

    files, others = image_io.list_images(path)
    images, videos, skipped = [], [], []
    for p in files:
        (videos if media_kind(p) == "video" else images).append(p)
    for p in others:
        kind = media_kind(p)
        {"image": images, "video": videos}.get(kind, skipped).append(p)
    return sorted(images), sorted(videos), skipped


def video_output_paths(inputs: list[Path], out_root: Path, suffix: str = "") -> dict[Path, dict]:
    """Per input video: ``final`` (``OUT/final_results/NAME.mp4``) and ``frames`` (``OUT/frames/NAME/``), distinct
    for every input and never an input's own path (:func:`output_names`)."""
    finals = output_names(inputs, Path(out_root) / "final_results", suffix, ext=VIDEO_SUFFIX)
    return {p: {"final": f, "frames": Path(out_root) / "frames" / f.stem} for p, f in finals.items()}


def restore_video(pipe, src: str | os.PathLike, output: str | os.PathLike, *, detector=None,
                  target: dict | None = None, suffix: str = "", save_frames: bool = False,
                  max_seconds: float | None = None, trim: bool = False, color_fix: str = "none",
                  only_center_face: bool = False, detect_every: int | None = None, smoothing: str | None = None,
                  batch_frames: int | None = None, batch_size: int = 8, temporal: float | None = None,
                  crf: int | None = None,
                  preset: str | None = None, audio: bool = True, latent_mode: str | None = None, generator=None,
                  progress: Callable[[int, int | None], None] | None = None, **options):
    """Restore every face of a video file (any container and codec FFmpeg reads) into
    ``OUTPUT/final_results/NAME.mp4`` (and, with ``save_frames``, ``OUTPUT/frames/NAME/000000.png`` ...); returns a
    :class:`~osdface.video.engine.VideoSummary` (``.output``, ``.frames``, ``.line()``, ...).

    How (:mod:`osdface.video`): frames are decoded in a stream (memory bounded by a window of frames, whatever the
    length), faces detected every ``detect_every`` frames and followed by optical flow in between (a scene cut
    forces a detection), each track's 5 landmarks smoothed over time (``smoothing``: savgol, the default, | one_euro
    | none), the crops of ``batch_frames`` frames restored in one model call (``temporal``: blended with the same
    face's previous restored crop where the input did not change), pasted back, and the frames encoded as H.264
    (``crf``, ``preset``) with the input's size, frame rate and timestamps, the audio copied.

    ``max_seconds``: a longer video raises :class:`~osdface.video.io.VideoInputError` (one line) before any work,
    or with ``trim`` only its first ``max_seconds`` are restored. ``progress(done, total)``: frames done and the
    expected count (None when unknown). ``detector``: default ``get_detector("auto")``, built once per pipeline.
    ``target``: the paths from :func:`video_output_paths` (when a caller restores several videos). Other
    ``options`` go to :func:`osdface.video.engine.restore_video_file`. A failure removes the partial output: no
    half-written file has the final name."""
    from .video import engine

    src = Path(src)
    out = Path(output)
    target = target or video_output_paths([src], out, suffix)[src]
    kwargs = {k: v for k, v in dict(detect_every=detect_every, smoothing=smoothing, batch_frames=batch_frames,
                                    temporal=temporal, crf=crf, preset=preset).items() if v is not None}
    return engine.restore_video_file(
        pipe, src, target["final"], detector=_detector_for(pipe, detector),
        frames_dir=target["frames"] if save_frames else None, max_seconds=max_seconds, trim=trim,
        color_fix=color_fix, only_center_face=only_center_face, batch_size=batch_size, audio=audio,
        latent_mode=latent_mode, generator=generator, progress=progress, **kwargs, **options)
