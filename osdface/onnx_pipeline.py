"""``OSDFaceONNXPipeline``: an exported model (``osdface export-onnx``) run by ONNX Runtime, without torch.

    pipe = OSDFaceONNXPipeline.from_pretrained("nano-onnx")            # providers: the best installed
    faces = pipe([img1, img2], output_type="pil", batch_size=4)        # like OSDFacePipeline.__call__

This module imports only NumPy, Pillow, ONNX Runtime and the package's torch-free helpers (``image_io``,
``prompt_rule``): a CPU server or a Space can restore faces without installing torch. The folder is described by
its ``osdface_onnx.json`` (written by :func:`osdface.onnx_export.export_onnx`): the graphs and their inputs and
outputs, the prompt rule's and the x0 step's constants. The steps are those of the torch pipeline
(``OSDFacePipeline.__call__``): the same preprocessing, the prompt rule in NumPy (:mod:`osdface.prompt_rule`), x0
in float64, the same 8-bit rounding (:func:`osdface.image_io.to_uint8`).

Providers: ``device="auto"`` takes the first installed of CUDA, CoreML, DirectML, then the CPU; ``"cpu"``,
``"cuda"``, ``"coreml"`` (also ``"mps"``), ``"dml"`` ask for one. Precision is the export's (fp32 by default;
``export-onnx --fp16`` makes the graphs measured stable in fp16 half precision).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from . import image_io
from .prompt_rule import select_codes

ONNX_CONFIG_NAME = "osdface_onnx.json"
FORMAT = "osdface-onnx"
PROVIDERS = {  # device name → ONNX Runtime execution provider
    "cuda": "CUDAExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "dml": "DmlExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
PROVIDER_PREFERENCE = ("cuda", "coreml", "dml", "cpu")  # what device="auto" tries, in order
_DEVICE_ALIASES = {"mps": "coreml", "directml": "dml"}

__all__ = ["OSDFaceONNXPipeline", "ONNXDevice", "is_onnx_folder", "stale_sources", "choose_providers", "import_onnxruntime",
           "resize_align_corners", "ONNX_CONFIG_NAME", "PROVIDERS"]


def import_onnxruntime():
    """``onnxruntime``, or an ImportError with one line saying how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise ImportError("the ONNX backend needs ONNX Runtime: pip install onnxruntime (or onnxruntime-gpu, "
                          "onnxruntime-directml); or pip install 'osdface[onnx]'") from None
    return onnxruntime


def is_onnx_folder(path: str | os.PathLike) -> bool:
    return (Path(path) / ONNX_CONFIG_NAME).is_file()


def stale_sources(folder: str | os.PathLike, spec: dict | None = None) -> list[str]:
    """Files the graphs of ``folder`` read as external data (graphs written into a model folder, pointing into its
    safetensors files: ``osdface.onnx_export.export_into_model_folder``) that changed since the export: such graphs
    would read other weights at the recorded offsets. [] when none (or when the graphs hold their own weights)."""
    import hashlib

    folder = Path(folder)
    if spec is None:
        spec = json.loads((folder / ONNX_CONFIG_NAME).read_text())
    stale = []
    for name, digest in spec.get("external_data", {}).items():
        h = hashlib.sha256()
        try:
            with open(folder / name, "rb") as f:
                for block in iter(lambda: f.read(1 << 22), b""):
                    h.update(block)
        except OSError:
            stale.append(name)
            continue
        if h.hexdigest() != digest:
            stale.append(name)
    return stale


class ONNXDevice(str):
    """Where the sessions run, as a string (``"cpu"``, ``"cuda"``) with ``torch.device``'s ``type`` attribute, so
    that the restore workflow and the face detectors can read it like a torch pipeline's device."""

    @property
    def type(self) -> str:
        return self.split(":")[0]


def choose_providers(device: str | None = "auto", available: list[str] | None = None) -> list[str]:
    """Execution providers for ``device`` (see the module docstring), the CPU always last as a fallback. Raises
    ``ValueError`` with one line when the asked-for provider is not installed."""
    if available is None:
        available = import_onnxruntime().get_available_providers()
    name = _DEVICE_ALIASES.get(str(device or "auto").lower(), str(device or "auto").lower()).split(":")[0]
    if name == "auto":
        chosen = [PROVIDERS[d] for d in PROVIDER_PREFERENCE if PROVIDERS[d] in available]
    elif name in PROVIDERS:
        if PROVIDERS[name] not in available:
            raise ValueError(f"device {device}: ONNX Runtime here has no {PROVIDERS[name]} (installed: "
                             f"{', '.join(available)}); use cpu, or install the onnxruntime build for it")
        chosen = [PROVIDERS[name]]
    else:
        raise ValueError(f"unknown device {device!r} for the ONNX backend; use auto, cpu, cuda, coreml (mps) or dml")
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    return chosen


def resize_align_corners(x: np.ndarray, size: int) -> np.ndarray:
    """(N, C, H, W) float32 → (N, C, size, size): bilinear with ``align_corners=True``, as
    ``torch.nn.functional.interpolate`` computes it on a CPU for outputs whose height + width exceed 128 (its
    generic kernel; every real process_size): float32 source positions and weights, each output row interpolated
    along the width, then the two rows blended, each blend ``fma(a, w0, b · w1)`` (the fused multiply-add emulated
    with an exact float64 product). Bit-identical to torch on this project's x86 CPUs for 512² outputs; torch's
    kernel for smaller outputs (the 64² test model) rounds differently, by at most one unit in the last place."""

    def axis(n_in: int):
        scale = np.float32((n_in - 1) / (size - 1)) if size > 1 else np.float32(0.0)
        src = scale * np.arange(size, dtype=np.float32)
        i0 = src.astype(np.int64)
        i1 = i0 + (i0 < n_in - 1)
        w1 = np.clip(src - i0.astype(np.float32), np.float32(0), np.float32(1))
        return i0, i1, np.float32(1) - w1, w1

    def blend(a, b, w0, w1):  # fma(a, w0, b·w1): a·w0 is exact in float64, one rounding to float32
        return (a.astype(np.float64) * w0 + (b * w1).astype(np.float64)).astype(np.float32)

    h0, h1, wh0, wh1 = axis(x.shape[-2])
    c0, c1, ww0, ww1 = axis(x.shape[-1])
    top, bottom = x[..., h0, :], x[..., h1, :]
    row0 = blend(top[..., c0], top[..., c1], ww0, ww1)
    row1 = blend(bottom[..., c0], bottom[..., c1], ww0, ww1)
    return blend(row0, row1, wh0[:, None], wh1[:, None])


class OSDFaceONNXPipeline:
    """Runs an export folder's four graphs with ONNX Runtime; handles I/O and batching like ``OSDFacePipeline``.

    Attributes the restore workflow reads: ``config`` (``process_size``, ``preset`` and the rest of the source
    model's config), ``device`` (:class:`ONNXDevice`), ``dtype`` (``"fp32"``, or ``"fp16"`` when any graph is
    half precision), ``name``. Also ``providers`` (the sessions' execution providers) and ``spec`` (the JSON)."""

    backend = "onnx"

    def __init__(self, folder: str | os.PathLike, *, device: str | None = "auto", providers: list | None = None,
                 threads: int | None = None, session_options=None):
        ort = import_onnxruntime()
        self.folder = Path(folder)
        path = self.folder / ONNX_CONFIG_NAME
        try:
            spec = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.folder} is not an ONNX export (no {ONNX_CONFIG_NAME}); make one with "
                                    f"`osdface export-onnx --model MODEL --out {self.folder}`") from None
        if spec.get("format") != FORMAT:
            raise ValueError(f"{path}: not an osdface ONNX description (format {spec.get('format')!r})")
        stale = stale_sources(self.folder, spec)
        if stale:
            raise ValueError(f"{self.folder}: the ONNX graphs are older than {', '.join(stale)} (the weights changed "
                             f"after the export); export them again (scripts/export_bundled_onnx.py for the bundled "
                             f"model) or use the torch backend")
        self.spec = spec
        self.config = SimpleNamespace(**{**spec["model"]["config"], "process_size": int(spec["process_size"])})
        self.name = str(self.folder)
        self.providers = list(providers) if providers is not None else choose_providers(device)
        self.device = ONNXDevice("cuda" if self.providers[0] == PROVIDERS["cuda"] else "cpu")
        precisions = {g["precision"] for g in spec["graphs"].values()}
        self.dtype = "fp16" if "fp16" in precisions else "fp32"
        self.batch = spec["batch"]
        if session_options is None:
            session_options = ort.SessionOptions()
            if threads:
                session_options.intra_op_num_threads = int(threads)
            if PROVIDERS["dml"] in self.providers:  # DirectML: no memory patterns, sequential execution
                session_options.enable_mem_pattern = False
                session_options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.sessions = {}
        for name, graph in spec["graphs"].items():
            file = self.folder / graph["file"]
            if not file.is_file():
                raise FileNotFoundError(f"{self.folder}: {graph['file']} is missing (the export is incomplete)")
            self.sessions[name] = ort.InferenceSession(str(file), sess_options=session_options,
                                                       providers=self.providers)
        rule = spec["prompt_rule"]
        self.num_tokens = int(rule["num_tokens"])
        x0 = spec["x0"]
        self._x0 = (float(x0["sqrt_one_minus_alpha_bar"]), float(x0["sqrt_alpha_bar"]))

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, **kwargs) -> "OSDFaceONNXPipeline":
        """Load an export folder (see :class:`OSDFaceONNXPipeline` for the keyword arguments)."""
        return cls(folder, **kwargs)

    def describe(self) -> str:
        graphs = self.spec["graphs"]
        half = [n for n, g in graphs.items() if g["precision"] == "fp16"]
        precision = f"fp16 ({', '.join(half)}), else fp32" if half else "fp32"
        return (f"ONNX {self.config.preset} ({self.config.process_size}² faces), {precision}, on "
                f"{', '.join(p.replace('ExecutionProvider', '') for p in self.sessions['unet'].get_providers())}")

    # ---------------------------------------------------------------------------------------------- steps
    def preprocess(self, images) -> np.ndarray:
        """Images (PIL / numpy / tensor in [0, 1], one or a list) → (N, 3, S, S) float32 in [-1, 1], as
        ``OSDFacePipeline.preprocess``: scale to [-1, 1], then resize to process_size² (bilinear,
        align_corners=True) when the image has another size."""
        return self._model_input(image_io.to_model_arrays(images))

    def _model_input(self, items: list[np.ndarray], first_index: int = 0) -> np.ndarray:
        size = self.config.process_size
        batch = []
        for i, item in enumerate(items):
            x = item.astype(np.float32) / np.float32(255.0) if item.dtype == np.uint8 else item.astype(np.float32)
            x = x * np.float32(2) - np.float32(1)
            if x.shape[-2:] != (size, size):
                if x.shape[-1] != x.shape[-2]:
                    warnings.warn(f"image {first_index + i} is {x.shape[-1]}x{x.shape[-2]}, not square: aligned mode "
                                  f"expects FFHQ-aligned square crops; it is stretched to {size}x{size}.",
                                  stacklevel=3)
                x = resize_align_corners(x[None], size)[0]
            batch.append(x)
        return np.ascontiguousarray(np.stack(batch))

    def prompt_codes(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 3, S, S) model input → the prompt rule's (code indices (N, 77), -1 for padding; valid mask)."""
        min_dist, nearest = self.sessions["vre"].run(None, {"image": x})
        return select_codes(min_dist, nearest, self.num_tokens)

    def restore_batch(self, x: np.ndarray) -> np.ndarray:
        """(N, 3, S, S) model input in [-1, 1] → restored (N, 3, S, S) in [-1, 1] (one batch, as the graphs allow)."""
        codes, _ = self.prompt_codes(x)
        latent = self.sessions["vae_encoder"].run(None, {"image": x})[0]
        eps = self.sessions["unet"].run(None, {"latent": latent, "code_indices": codes})[0]
        c_eps, c_div = self._x0  # x0 = (z − √(1−ᾱ)·ε) / √ᾱ in float64, as models/one_step.py:x0_from_eps
        x0 = ((latent.astype(np.float64) - c_eps * eps.astype(np.float64)) / c_div).astype(np.float32)
        return self.sessions["vae_decoder"].run(None, {"latent": x0})[0]

    def _run(self, x: np.ndarray) -> np.ndarray:
        if self.batch == "dynamic" or len(x) == int(self.batch):
            return self.restore_batch(x)
        fixed = int(self.batch)  # a fixed-batch export: pad with copies of the last image, drop their results
        outs = []
        for start in range(0, len(x), fixed):
            part = x[start:start + fixed]
            n = len(part)
            if n < fixed:
                part = np.concatenate([part, np.repeat(part[-1:], fixed - n, axis=0)])
            outs.append(self.restore_batch(part)[:n])
        return np.concatenate(outs)

    def __call__(self, images, output_type: str = "pil", batch_size: int = 4, generator=None,
                 latent_mode: str | None = None, progress: bool = False):
        """Restore aligned face crops. Returns, for N inputs: a list of N PIL images (``"pil"``), an (N, S, S, 3)
        float32 array in [0, 1] (``"np"``), or (``"pt"``, when torch is installed) an (N, 3, S, S) tensor.

        ``latent_mode``: only ``"mode"`` (the deterministic posterior mode the graphs compute); ``generator`` is
        accepted for the torch pipeline's signature and not used."""
        if output_type not in ("pil", "np", "pt"):
            raise ValueError(f"output_type must be 'pil', 'np' or 'pt', not {output_type!r}")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if (latent_mode or "mode") != "mode":
            raise ValueError("the ONNX pipeline computes the VAE latent's mode only; latent_mode='sample' needs the "
                             "torch backend")
        items = image_io.to_model_arrays(images)
        outputs = []
        starts = range(0, len(items), batch_size)
        if progress:
            from tqdm.auto import tqdm
            starts = tqdm(starts, unit="batch")
        for start in starts:
            x = self._model_input(items[start:start + batch_size], first_index=start)
            y = self._run(x) * np.float32(0.5) + np.float32(0.5)
            y = y.transpose(0, 2, 3, 1)
            outputs.append(image_io.to_uint8(y) if output_type == "pil" else np.clip(y, 0.0, 1.0))
        out = np.concatenate(outputs) if outputs else np.zeros((0, self.config.process_size,
                                                                 self.config.process_size, 3), np.float32)
        if output_type == "np":
            return out
        if output_type == "pt":
            import torch

            return torch.from_numpy(np.ascontiguousarray(out.transpose(0, 3, 1, 2)))
        return image_io.uint8_batch_to_pil(out)

    def restore_photo(self, image, **kwargs):
        """A whole photo, as :meth:`osdface.OSDFacePipeline.restore_photo` (detect, align, restore, paste back)."""
        from .faces.detection import get_detector
        from .faces.photo import restore_photo

        if kwargs.get("detector") is None:
            if getattr(self, "_detector", None) is None:
                self._detector = get_detector("auto")
            kwargs["detector"] = self._detector
        return restore_photo(self, image, **kwargs)

