"""Export a model to ONNX: four graphs and a JSON file that describes them (``osdface export-onnx``).

    from osdface.onnx_export import export_onnx
    export_onnx(pipe, "nano-onnx")                     # fp32, dynamic batch, opset 18
    export_onnx(pipe, "nano-onnx-fp16", fp16=True)     # the graphs measured stable in fp16 become fp16

The one step (docs/ARCHITECTURE.md §1) split where the prompt rule must leave the graph::

    image (B, 3, S, S) in [-1, 1] ── vre.onnx ──► min_distance (B, N) float32, nearest_code (B, N) int64
                                          │   (VQ encoder, quant_conv, ‖z‖² + ‖e‖² − 2 z·e, min / argmin)
                                          ▼
                      osdface.prompt_rule.select_codes (NumPy): order, first 77 distinct → code_indices (B, 77)
    image ── vae_encoder.onnx ──► latent (B, C, h, w)  (posterior mode, minus shift, times scaling_factor)
    latent, code_indices ── unet.onnx ──► eps (B, C, h, w)  (code lookup, prompt projector, UNet at t = 399 with
                                          the LoRA fused, + k·latent for identity_skip models)
    x0 = (latent − √(1−ᾱ)·eps) / √ᾱ in float64 (NumPy; the constants are in the JSON)
    x0 ── vae_decoder.onnx ──► image (B, 3, S, S) in [-1, 1] (clamped)

Why four graphs and not fewer: the prompt rule (a sort and a walk over positions) sits between the VRE and the
UNet; the VAE encoder, UNet and decoder could be one graph, but separate graphs let each keep its own precision
(the UNet and the decoder stay fp32 under ``--fp16``, see :data:`FP16_STABLE`) and let the x0 step run in float64
exactly as the torch pipeline does it (``models/one_step.py:x0_from_eps``).

Every graph has float32 inputs and outputs (an fp16 graph casts inside), a dynamic batch axis (or a fixed batch),
and passes ``onnx.checker``. The exporter is ``torch.onnx.export(dynamo=True)`` (torch.export + onnxscript), which
handles diffusers' UNet, the PatchVAE and the VRE with a dynamic batch; a graph over 2 GB (protobuf's limit: the
SD 2.1 UNet in fp32) stores its weights in a ``<graph>.onnx.data`` file next to it (the exporter's own rule). The folder reloads in :class:`osdface.onnx_pipeline.OSDFaceONNXPipeline`
without torch.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import __version__
from .weights import sha256_file

ONNX_CONFIG_NAME = "osdface_onnx.json"  # (onnx_pipeline.ONNX_CONFIG_NAME: the pipeline module imports no torch)
FORMAT = "osdface-onnx"
FORMAT_VERSION = 1
GRAPHS = ("vre", "vae_encoder", "unet", "vae_decoder")
DEFAULT_OPSET = 18

# Graphs that ``fp16=True`` converts; the UNet and the VAE decoder stay fp32. Measured (benchmarks/onnx_parity.py,
# the bundled nano, 32 degraded real faces, ONNX Runtime CPU): PSNR of the restored face with one graph in fp16
# against all-fp32: VRE ≥ 150 dB (its fp16 features change the kept codes' order on 10 of 32 faces and the set on 2,
# which moved no pixel measurably), VAE encoder ≥ 80.8 dB, UNet ≥ 85.8 dB, VAE decoder ≥ 79.7 dB, all four ≥ 77.0 dB,
# nothing overflowed. So on
# nano none is unstable, and ``fp16=GRAPHS`` is safe for it. The two kept in fp32 are for the SD 2.1 model: desktop
# tools that run OSDFace as ONNX graphs found its UNet and VAE decoder unstable in fp16 (VisoMaster-Fusion #353), and
# that cannot be measured here (no SD 2.1 weights; and ONNX Runtime's CPU provider computes most fp16 nodes in fp32
# between casts, so a CPU check sees fp16 weights and fp16 tensors between nodes, not fp16 arithmetic on a GPU).
FP16_STABLE = ("vre", "vae_encoder")

__all__ = ["export_onnx", "GRAPHS", "FP16_STABLE", "DEFAULT_OPSET", "ONNX_CONFIG_NAME", "check_graphs",
           "VREGraph", "VAEEncoderGraph", "UNetGraph", "VAEDecoderGraph"]


# ------------------------------------------------------------------------------------------------ the graphs
def _dtype(module: nn.Module) -> torch.dtype:
    return next(module.parameters()).dtype


class VREGraph(nn.Module):
    """image (B, 3, S, S) in [-1, 1] → (min_distance (B, N) float32, nearest_code (B, N) int64): the VRE up to the
    prompt rule's input, with the torch rule's own distance code (:meth:`~osdface.models.Codebook.distances`)."""

    def __init__(self, vre):
        super().__init__()
        self.vre = vre

    def forward(self, image):
        dist = self.vre.quantize.distances(self.vre.features(image.to(_dtype(self.vre.encoder))))
        return dist.min(dim=-1)


class VAEEncoderGraph(nn.Module):
    """image (B, 3, S, S) in [-1, 1] → the scaled latent (posterior mode − shift) · scaling_factor, float32."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, image):
        return self.model.encode(image.to(_dtype(self.model.vae)), mode="mode").float()


class UNetGraph(nn.Module):
    """(latent (B, C, h, w), code_indices (B, T) int64, -1 for padding) → ε̂ (B, C, h, w) float32: the codes looked
    up and projected to the prompt, one UNet evaluation at the fixed timestep, plus k·latent with identity_skip."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, latent, code_indices):
        vre = self.model.vre
        prompt = vre.projector(vre.quantize.embed(code_indices))
        return self.model.predict_eps(latent.to(_dtype(self.model.unet)), prompt).float()


class VAEDecoderGraph(nn.Module):
    """The restored latent (B, C, h, w) → image (B, 3, S, S) in [-1, 1] (divided by scaling_factor, shifted, decoded,
    clamped)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, latent):
        return self.model.decode(latent.to(_dtype(self.model.decoder))).float()


# ------------------------------------------------------------------------------------------------- helpers
def _work_model(pipe):
    """The pipeline's OneStepGenerator as the graphs need it (fp32, LoRA fused, contiguous weights, no VAE tiling):
    the pipeline's own when it already is, else a copy (the caller's pipeline is never changed)."""
    from .models import lora as lora_utils

    model = pipe.model
    cl = getattr(pipe, "channels_last", False)
    if lora_utils.has_lora(pipe.unet) or pipe.dtype != torch.float32 or cl or model.vae_tiling is not None:
        model = copy.deepcopy(model)
        lora_utils.fuse_lora(model.unet)
        model.float()
        model.vae_tiling = None
        if cl:
            model.to(memory_format=torch.contiguous_format)
    return model.eval()


def _graph_module(name: str, model) -> nn.Module:
    return {"vre": lambda: VREGraph(model.vre), "vae_encoder": lambda: VAEEncoderGraph(model),
            "unet": lambda: UNetGraph(model), "vae_decoder": lambda: VAEDecoderGraph(model)}[name]()


def _half_copy(name: str, model) -> nn.Module:
    """A float16 copy of just what graph ``name`` uses (the rest of ``model`` is shared, untouched)."""
    if name == "vre":
        return VREGraph(copy.deepcopy(model.vre).half())
    shallow = copy.copy(model)  # a new OneStepGenerator object over the same modules ...
    shallow._modules = dict(model._modules)
    if name == "unet":  # ... with fp16 copies of the parts this graph runs
        shallow._modules["unet"] = copy.deepcopy(model.unet).half()
        vre = copy.copy(model.vre)
        vre._modules = dict(model.vre._modules)
        vre._modules["projector"] = copy.deepcopy(model.vre.projector).half()
        vre._modules["quantize"] = copy.deepcopy(model.vre.quantize).half()
        shallow._modules["vre"] = vre
    else:
        vae = copy.deepcopy(model.vae).half()
        shallow._modules["vae"] = vae
        from .models.tiled_vae import VAEDecoder

        shallow._modules["decoder"] = VAEDecoder(vae)
    return _graph_module(name, shallow)


def _example_inputs(name: str, model, batch: int, size: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    image = torch.rand(batch, 3, size, size, generator=g) * 2 - 1
    if name in ("vre", "vae_encoder"):
        return {"image": image}
    with torch.no_grad():
        latent = model.encode(image)
    if name == "vae_decoder":
        return {"latent": latent}
    n_codes = model.vre.config.n_codes
    codes = torch.randint(-1, n_codes, (batch, model.vre.config.num_tokens), generator=g)
    return {"latent": latent, "code_indices": codes}


OUTPUT_NAMES = {"vre": ["min_distance", "nearest_code"], "vae_encoder": ["latent"], "unet": ["eps"],
                "vae_decoder": ["image"]}


def _export_graph(module: nn.Module, inputs: dict[str, torch.Tensor], path: Path, *, outputs: list[str],
                  opset: int, dynamic: bool) -> None:
    import warnings

    # Dim.DYNAMIC, not a named Dim with a range: diffusers' upsampler branches on batch >= 64 (it only adds a
    # .contiguous(), a no-op in ONNX), which torch.export records as a range guard that a declared range violates
    dynamic_shapes = {k: {0: torch.export.Dim.DYNAMIC} for k in inputs} if dynamic else None
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's notes on deprecations
        torch.onnx.export(module.eval(), (), str(path), kwargs=inputs, dynamo=True, opset_version=opset,
                          input_names=list(inputs), output_names=outputs,
                          dynamic_shapes=dynamic_shapes, external_data=False, verbose=False)  # (> 2 GB: external)
    if dynamic:
        _name_batch_axis(path)


def _name_batch_axis(path: Path) -> None:
    """Call the batch axis "batch" in the graph's inputs and outputs (the exporter names it after its symbol)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)  # external weights stay where they are
    symbol = model.graph.input[0].type.tensor_type.shape.dim[0].dim_param
    if not symbol or symbol == "batch":
        return
    for value in [*model.graph.input, *model.graph.output, *model.graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param == symbol:
                dim.dim_param = "batch"
    onnx.save(model, str(path))


def _io_spec(path: Path) -> tuple[dict, dict]:
    import onnx

    m = onnx.load(str(path), load_external_data=False)

    def spec(values):
        return {v.name: {"shape": [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim],
                         "dtype": onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name}
                for v in values}

    return spec(m.graph.input), spec(m.graph.output)


def check_graphs(folder: str | os.PathLike) -> list[str]:
    """``onnx.checker.check_model`` (full check) on every graph of an export folder; returns the files checked."""
    import onnx

    folder = Path(folder)
    config = json.loads((folder / ONNX_CONFIG_NAME).read_text())
    checked = []
    for name, graph in config["graphs"].items():
        onnx.checker.check_model(str(folder / graph["file"]), full_check=True)
        checked.append(graph["file"])
    return checked


# ------------------------------------------------------------------------------------------------- export
def export_onnx(pipe, out_dir: str | os.PathLike, *, opset: int = DEFAULT_OPSET, fp16: bool | tuple = False,
                batch: str | int = "dynamic", source: str | None = None, log=None) -> Path:
    """Write the four graphs and ``osdface_onnx.json`` of ``pipe`` (an :class:`~osdface.OSDFacePipeline`) into
    ``out_dir``. ``fp16``: False (all fp32), True (the graphs in :data:`FP16_STABLE`), or a tuple of graph names.
    ``batch``: ``"dynamic"`` or a fixed batch size. ``source``: the model's name for the JSON. Files appear in
    ``out_dir`` only when all four graphs are exported (built in a temporary folder beside them; the JSON last)."""
    import onnx

    log = log or (lambda line: None)
    if not getattr(pipe.model, "vre_prompt", True):
        raise ValueError("this model runs without the VRE prompt (vre_prompt=False); the ONNX export does not "
                         "support that yet")
    if fp16 is True:
        fp16_graphs = set(FP16_STABLE)
    elif not fp16:
        fp16_graphs = set()
    else:
        fp16_graphs = set(fp16)
        unknown = fp16_graphs - set(GRAPHS)
        if unknown:
            raise ValueError(f"unknown graph(s) {sorted(unknown)}; the graphs are {', '.join(GRAPHS)}")
    dynamic = batch == "dynamic"
    if not dynamic:
        batch = int(batch)
        if batch < 1:
            raise ValueError("batch must be 'dynamic' or a whole number >= 1")
    if opset < 18:
        raise ValueError(f"opset {opset}: the dynamo exporter writes opset 18 or later")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = _work_model(pipe)
    size = int(pipe.config.process_size)
    example_batch = 2 if dynamic else batch  # a batch of 1 would be specialised as a constant by torch.export
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=out))
    graphs = {}
    try:
        for name in GRAPHS:
            t0 = time.perf_counter()
            half = name in fp16_graphs
            module = _half_copy(name, model) if half else _graph_module(name, model)
            path = tmp / f"{name}.onnx"
            _export_graph(module, _example_inputs(name, model, example_batch, size), path,
                          outputs=OUTPUT_NAMES[name], opset=opset, dynamic=dynamic)
            del module
            onnx.checker.check_model(str(path), full_check=True)
            inputs, outputs = _io_spec(path)
            files = [path.name] + ([path.name + ".data"] if (tmp / (path.name + ".data")).is_file() else [])
            graphs[name] = {"file": path.name, "files": files, "precision": "fp16" if half else "fp32",
                            "inputs": inputs, "outputs": outputs,
                            "bytes": sum((tmp / f).stat().st_size for f in files),
                            "sha256": {f: sha256_file(tmp / f) for f in files}}
            log(f"{name}: {path.name} ({'fp16' if half else 'fp32'}, {graphs[name]['bytes'] / 1e6:.1f} MB) in "
                f"{time.perf_counter() - t0:.1f} s")
        config = describe(pipe, model, graphs, opset=opset, batch="dynamic" if dynamic else batch, source=source)
        for old in out.glob("*.onnx*"):  # a previous export's graphs (this folder's own files only)
            if old.is_file() and old.name.split(".onnx")[0] in GRAPHS:
                old.unlink()
        for graph in graphs.values():
            for f in graph["files"]:
                os.replace(tmp / f, out / f)
        part = out / f".{ONNX_CONFIG_NAME}.tmp"
        part.write_text(json.dumps(config, indent=2) + "\n")
        os.replace(part, out / ONNX_CONFIG_NAME)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def describe(pipe, model, graphs: dict, *, opset: int, batch, source: str | None) -> dict:
    """The export folder's JSON: graphs, their inputs and outputs, and every constant the steps between them use."""
    import onnx

    cfg = pipe.config
    vre_cfg = model.vre.config
    alpha_bar = model.alpha_bar
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created_by": f"osdface {__version__}: torch {torch.__version__} torch.onnx.export(dynamo=True), "
                      f"onnx {onnx.__version__}",
        "model": {"source": source or getattr(pipe, "name", None), "preset": cfg.preset, "config": cfg.to_dict()},
        "process_size": int(cfg.process_size),
        "batch": batch,
        "opset": opset,
        "graphs": graphs,
        "steps": [
            "x = 2·rgb − 1 (rgb in [0, 1], float32; 8-bit input: v / 255); inputs of another size are resized to "
            "process_size² first (bilinear, align_corners=True, after the scaling)",
            "min_distance, nearest_code = vre(x)",
            "code_indices = prompt_rule(min_distance, nearest_code)",
            "latent = vae_encoder(x)",
            "eps = unet(latent, code_indices)",
            "x0 = float32((float64(latent) − x0.sqrt_one_minus_alpha_bar · float64(eps)) / x0.sqrt_alpha_bar)",
            "y = vae_decoder(x0)",
            "rgb = clamp(0.5·y + 0.5, 0, 1); 8-bit: floor(255·rgb + 0.5)",
        ],
        "prompt_rule": {
            "num_tokens": int(vre_cfg.num_tokens),
            "n_codes": int(vre_cfg.n_codes),
            "positions": graphs["vre"]["outputs"]["min_distance"]["shape"][1],
            "distance": "‖z‖² + ‖e‖² − 2 z·e in float32, z the (B, H·W, D) features in row-major position order "
                        "(computed inside vre.onnx; min_distance and nearest_code are its minimum and first argmin "
                        "per position)",
            "order": "positions by min_distance, ascending; equal values in torch.sort's CPU order (libstdc++ "
                     "std::sort of (value, index) pairs), see osdface/prompt_rule.py",
            "selection": "walking that order, each code kept the first time it appears, until num_tokens are "
                         "kept; the remaining slots are -1 (zero prompt rows)",
            "padding_index": -1,
        },
        "x0": {
            "timestep": int(model.timestep),
            "alpha_bar": alpha_bar,
            "sqrt_alpha_bar": math.sqrt(alpha_bar),
            "sqrt_one_minus_alpha_bar": math.sqrt(1.0 - alpha_bar),
            "identity_skip_gain": model.skip_gain,
            "identity_skip": "inside unet.onnx (eps already includes identity_skip_gain · latent)",
            "scaling_factor": model.scaling_factor,
            "shift_factor": model.shift_factor,
            "latent_scaling": "inside vae_encoder.onnx and vae_decoder.onnx",
        },
    }


# ------------------------------------------------------------------------------------------------- checking
def check_parity(pipe, folder: str | os.PathLike, images=None, *, batch_size: int = 2, threads: int | None = None
                 ) -> dict:
    """Run ``pipe`` (torch) and the export in ``folder`` (ONNX Runtime, CPU) on the same images and compare:
    ``max_abs_diff`` of the restored images in [0, 1] (``output_type="np"``) and ``codes_equal`` (the prompt rule
    kept the same codes in the same order for every image). ``images``: default, ``batch_size`` smooth seeded
    random images (any images work; real faces say more)."""
    import numpy as np

    from .onnx_pipeline import OSDFaceONNXPipeline

    size = int(pipe.config.process_size)
    if images is None:
        g = torch.Generator().manual_seed(0)
        small = torch.rand(batch_size, 3, 16, 16, generator=g)
        images = list(torch.nn.functional.interpolate(small, size=(size, size), mode="bilinear",
                                                      align_corners=False))
    ort_pipe = OSDFaceONNXPipeline(folder, device="cpu", threads=threads)
    ours = pipe(images, output_type="np", batch_size=batch_size)
    theirs = ort_pipe(images, output_type="np", batch_size=batch_size)
    x = pipe.preprocess(images)
    with torch.no_grad():
        tokens = pipe.vre.tokens(x.to(pipe.vre.dtype))
    codes, _ = ort_pipe.prompt_codes(x.float().cpu().numpy())
    return {"images": len(images), "max_abs_diff": float(np.abs(ours - theirs).max()),
            "codes_equal": bool(np.array_equal(tokens.indices.cpu().numpy(), codes))}


# ------------------------------------------------------------------------------------- graphs inside a model folder
def safetensors_index(folder: Path) -> dict[bytes, tuple[str, int, int]]:
    """sha256 of each tensor's bytes → (file relative to ``folder``, byte offset, length), for every
    ``*.safetensors`` under ``folder``. A safetensors file is an 8-byte little-endian header length, a JSON header
    (dtype, shape, ``data_offsets`` relative to the data section), then the raw little-endian tensors: the same
    bytes an ONNX initializer holds, so a graph can point at them as external data."""
    index = {}
    for path in sorted(folder.rglob("*.safetensors")):
        data = path.read_bytes()
        n = int.from_bytes(data[:8], "little")
        header = json.loads(data[8:8 + n])
        for name, info in header.items():
            if name == "__metadata__":
                continue
            begin, end = info["data_offsets"]
            start = 8 + n + begin
            index.setdefault(hashlib.sha256(data[start:8 + n + end]).digest(),
                             (path.relative_to(folder).as_posix(), start, end - begin))
    return index


def export_into_model_folder(pipe, folder: str | os.PathLike, *, log=None) -> dict:
    """Export ``pipe``'s four fp32 graphs into its own model ``folder`` (beside ``vre/``, ``unet/``, ...), each
    initializer whose bytes are a tensor of the folder's safetensors files stored as external data pointing into
    that file (no second copy of the weights); the others (tensors the exporter made) stay inside the graph.
    ``osdface_onnx.json`` records the sha256 of every safetensors file the graphs point into, so that stale graphs
    (weights retrained after the export) are found (:func:`osdface.onnx_pipeline.stale_sources`) and not run.
    Returns {"embedded_bytes", "external_bytes"}."""
    import onnx
    from onnx import TensorProto

    folder = Path(folder)
    log = log or (lambda line: None)
    index = safetensors_index(folder)
    tmp = Path(tempfile.mkdtemp(prefix=".onnx-export-", dir=folder))
    embedded = external = 0
    sources = set()
    try:
        export_onnx(pipe, tmp, source=folder.name, log=log)
        config = json.loads((tmp / ONNX_CONFIG_NAME).read_text())
        for name, graph in config["graphs"].items():
            model = onnx.load(str(tmp / graph["file"]))  # weights read in (an export > 2 GB would not fit)
            transposes = []
            for init in model.graph.initializer:
                array = onnx.numpy_helper.to_array(init)
                raw = array.tobytes()
                hit = index.get(hashlib.sha256(raw).digest()) if len(raw) >= 64 else None
                if hit is None and array.ndim == 2 and len(raw) >= 64:
                    # a Linear weight the exporter stored transposed (MatMul with Wᵀ): read W, transpose in the
                    # graph (ONNX Runtime folds the constant Transpose once, when the session is built)
                    hit = index.get(hashlib.sha256(np.ascontiguousarray(array.T).tobytes()).digest())
                    if hit is not None:
                        source = f"{init.name}.source"
                        transposes.append(onnx.helper.make_node("Transpose", [source], [init.name], perm=[1, 0]))
                        init.name = source
                        init.dims[:] = list(array.T.shape)
                if hit is None:
                    embedded += len(raw)
                    continue
                file, offset, length = hit
                init.ClearField("raw_data")
                for field in ("float_data", "int32_data", "int64_data", "double_data"):
                    init.ClearField(field)
                init.data_location = TensorProto.EXTERNAL
                del init.external_data[:]
                for key, value in (("location", file), ("offset", str(offset)), ("length", str(length))):
                    entry = init.external_data.add()
                    entry.key, entry.value = key, value
                external += length
                sources.add(file)
            for node in reversed(transposes):
                model.graph.node.insert(0, node)
            part = tmp / f"{graph['file']}.part"
            onnx.save(model, str(part))
            os.replace(part, tmp / graph["file"])
            graph["files"] = [graph["file"]]
            graph["bytes"] = (tmp / graph["file"]).stat().st_size
            graph["sha256"] = {graph["file"]: sha256_file(tmp / graph["file"])}
        config["external_data"] = {f: sha256_file(folder / f) for f in sorted(sources)}
        for graph in config["graphs"].values():
            os.replace(tmp / graph["file"], folder / graph["file"])
        part = folder / f".{ONNX_CONFIG_NAME}.tmp"
        part.write_text(json.dumps(config, indent=2) + "\n")
        os.replace(part, folder / ONNX_CONFIG_NAME)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"embedded_bytes": embedded, "external_bytes": external}


# --------------------------------------------------------------------------------- the background upsampler
REALESRGAN_ONNX = "realesrgan.onnx"
REALESRGAN_JSON = "realesrgan_onnx.json"


def export_realesrgan_onnx(net: nn.Module, out_dir: str | os.PathLike, *, opset: int = DEFAULT_OPSET,
                           fp16: bool = False) -> Path:
    """Write a Real-ESRGAN network (:func:`osdface.networks.rrdbnet.load_realesrgan`) as ``realesrgan.onnx`` and
    ``realesrgan_onnx.json`` into ``out_dir`` (beside a model's own export, or alone) and return the graph's path.

    ``image`` (B, 3, H, W) float32 RGB in [0, 1] -> ``upscaled`` (B, 3, sH, sW) float32, not clamped; batch, height
    and width are dynamic (tile the photo as :func:`~osdface.networks.rrdbnet.tiled_upscale` does). ``fp16``: the
    weights and arithmetic in half precision (inputs and outputs stay float32). Written in a temporary file, then
    renamed; the JSON last."""
    import onnx

    if opset < 18:
        raise ValueError(f"opset {opset}: the dynamo exporter writes opset 18 or later")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    module = copy.deepcopy(net).float().eval()
    if fp16:
        module = _HalfInside(module.half())
    example = {"image": torch.rand(2, 3, 24, 28)}
    path = out / REALESRGAN_ONNX
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=out))
    try:
        part = tmp / REALESRGAN_ONNX
        dyn = torch.export.Dim.DYNAMIC
        import warnings

        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(_Named(module), (), str(part), kwargs=example, dynamo=True, opset_version=opset,
                              input_names=["image"], output_names=["upscaled"],
                              dynamic_shapes={"image": {0: dyn, 2: dyn, 3: dyn}}, external_data=False,
                              verbose=False)
        onnx.checker.check_model(str(part), full_check=True)
        inputs, outputs = _io_spec(part)
        config = dict(getattr(net, "config", {}))
        meta = {"format": "osdface-realesrgan-onnx", "graph": REALESRGAN_ONNX, "opset": opset,
                "precision": "fp16" if fp16 else "fp32", "scale": int(net.scale), "inputs": inputs,
                "outputs": outputs, "network": config, "license": config.get("license"),
                "created_by": f"osdface {__version__}: torch {torch.__version__} torch.onnx.export(dynamo=True)",
                "sha256": sha256_file(part), "bytes": part.stat().st_size,
                "use": "tile the photo with overlap and cross-fade (osdface.networks.rrdbnet.tiled_upscale); "
                       "clamp the output to [0, 1]"}
        os.replace(part, path)
        jpart = out / f".{REALESRGAN_JSON}.tmp"
        jpart.write_text(json.dumps(meta, indent=2) + "\n")
        os.replace(jpart, out / REALESRGAN_JSON)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


class _Named(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)


class _HalfInside(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.half()).float()
