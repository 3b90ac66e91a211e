"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1``) in PyTorch, read from dlib's own file.

    net = load_dlib_face_resnet()                # safetensors only; converts the installed .dat once if needed
    emb = net(chips)                             # (B, 3, 150, 150) RGB in [0, 1] -> (B, 128), exactly dlib's
    emb = dlib_embed(ffhq_faces)                 # (B, 3, S, S) FFHQ-aligned in [-1, 1] -> (B, 128), differentiable

The network (dlib's ``examples/dnn_face_recognition_ex.cpp``, ``anet_type``), bottom to top::

    input_rgb_image_sized<150>           (pixel - mean[c]) / 256, means stored in the file (122.782, 117.001, 104.298)
    con 32 7x7 /2  -> affine -> relu -> max_pool 3x3 /2            150 -> 72 -> 35
    ares 32 x3                                                      35
    ares_down 64,  ares 64 x3                                       17
    ares_down 128, ares 128 x2                                      8
    ares_down 256, ares 256 x2                                      4  (the conv branch gives 3: see below)
    ares_down 256                                                   2  (conv branch 1)
    avg_pool_everything -> fc_no_bias 128                           loss_metric: the raw fc output, NOT normalised

    ares      = relu(x + affine(con3x3(relu(affine(con3x3(x))))))
    ares_down = relu(avg_pool<2,2,2,2>(x) + affine(con3x3(relu(affine(con3x3/2(x))))))

Facts about dlib that this port reproduces (read in dlib's ``dnn/layers.h``, ``dnn/input.h``, ``dnn/core.h``; the
paddings and pool sizes are also stored in the file and checked when it is read):

* padding: ``con_`` and the pooling layers default to ``stride != 1 ? 0 : k // 2``; every size is
  ``1 + (n + 2 p - k) // stride`` (floor), as in PyTorch.
* ``add_prev`` adds two tensors of different shapes by giving the result the element-wise maximum of the two shapes
  and treating missing entries as 0 (``tt::add``): the shortcut's channels are zero-extended (32 -> 64, ...), and
  where the stride-2 branch is smaller than the 2x2-average-pooled shortcut (8 -> 3 vs 4; 4 -> 1 vs 2) the branch
  is zero-extended at the bottom/right.
* ``affine_`` is a per-channel ``x * gamma + beta`` (batch norm folded, CONV mode); ``fc_no_bias`` is
  ``x @ W`` with W stored (inputs, outputs); convolutions are cross-correlations (filters (out, in, kh, kw)).
* the input layer divides by 256, not 255.
* ``loss_metric``'s output (what ``compute_face_descriptor`` returns) is the fc output as is.

File format (dlib ``serialize.h``): integers are one control byte (bit 7: negative, low 4 bits: number of bytes)
then that many little-endian bytes; strings are an integer length then the bytes; ``bool`` is the character
'0' or '1'; a float is a ``float_details`` (an int64 mantissa, then an int16 exponent: m * 2**e); a tensor is
version, (n, k, nr, nc), then the values (version 1: float_details each; version 2: raw little-endian float32).
A network is nested: each ``add_layer`` writes its version, then its whole sub-network, then its own layer
("details"), then its state (3 bools and cached tensors); tag and skip layers write only a version and their
sub-network; the loss layer writes its version, its details, then the network. So the file starts with the
versions of all layers top-down and then lists the layers bottom-up. Tags carry no id in the file: the reader
walks the known layer sequence of this network and checks every version, name and shape on the way.

Measured (dlib 20.0.1, CPU, ``tests/test_dlib_resnet.py``): on the same 150² chips the port and
``compute_face_descriptor`` differ by at most 4e-7 per component. :func:`dlib_embed`'s fixed chip against dlib's
landmark-aligned chip, on the 329 shared FFHQ-aligned faces: cosine mean 0.9964, min 0.9823 (4.6 degrees mean,
10.8 worst; Euclidean distance mean 0.12, max 0.28, where dlib's same-person threshold is 0.6); for comparison an
ArcFace-style fixed centre crop resized to 150² gives cosine 0.908 (24.6 degrees).
"""

from __future__ import annotations

import math
import os
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..weights import MissingWeightsError, cache_dir, face_recognition_models_dir, sha256_file

__all__ = ["DlibFaceResNet", "read_dlib_face_resnet", "convert_dlib_face_resnet",
           "load_dlib_face_resnet", "default_dlib_resnet_path", "find_dlib_face_resnet_dat", "ffhq_to_dlib_chip",
           "dlib_embed", "DLIB_CHIP_IN_FFHQ", "measure_dlib_chip_geometry", "dlib_face_shape", "dlib_chip_models",
           "CHIP_SIZE", "DAT_FILE", "SAFETENSORS_FILE", "LICENSE", "INSTALL_HINT"]

DAT_FILE = "dlib_face_recognition_resnet_model_v1.dat"
SAFETENSORS_FILE = "dlib_face_recognition_resnet_model_v1.safetensors"
LICENSE = "CC0-1.0 (face-recognition-models; dlib model by Davis King)"
INSTALL_HINT = "pip install face-recognition-models==0.3.0"
FORMAT = "osdface.dlib_face_resnet.v1"
CHIP_SIZE = 150

# (channels, downsample) of the 14 residual blocks, input to output (alevel4 ... alevel0)
BLOCKS = ((32, False),) * 3 + ((64, True),) + ((64, False),) * 3 + ((128, True),) + ((128, False),) * 2 \
    + ((256, True),) + ((256, False),) * 2 + ((256, True),)
EMBED_DIM = 128
STEM_CHANNELS = 32


# ----------------------------------------------------------------------------------------------------------------
# reading dlib's serialization format (pure Python + numpy; no dlib)


class _Reader:
    def __init__(self, data: bytes, path: str):
        self.buf = memoryview(data)
        self.pos = 0
        self.path = path

    def fail(self, expected: str, found: str | None = None):
        where = f"at byte {self.pos} of {len(self.buf)}"
        got = f", found {found}" if found is not None else ""
        raise ValueError(f"{self.path} is not dlib's face-recognition ResNet ({DAT_FILE}) or is damaged: expected "
                         f"{expected} {where}{got}")

    def _take(self, n: int, what: str) -> memoryview:
        if self.pos + n > len(self.buf):
            self.fail(what, "the end of the file (truncated)")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def int(self, what: str = "an integer", *, signed: bool = True) -> int:
        ctrl = self._take(1, what)[0]
        size = ctrl & 0x0F
        if ctrl & 0x70 or size > 8 or (ctrl & 0x80 and not signed):
            self.pos -= 1
            self.fail(what, f"control byte 0x{ctrl:02x}")
        value = int.from_bytes(bytes(self._take(size, what)), "little") if size else 0
        return -value if ctrl & 0x80 else value

    def uint(self, what: str = "an unsigned integer") -> int:
        return self.int(what, signed=False)

    def string(self, what: str = "a string") -> str:
        n = self.uint(f"the length of {what}")
        if n > 256:
            self.pos -= 1
            self.fail(what, f"a length of {n}")
        raw = bytes(self._take(n, what))
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            self.pos -= n
            self.fail(what, "non-text bytes")

    def name(self, allowed: tuple[str, ...], what: str) -> str:
        start = self.pos
        ctrl = self.buf[self.pos] if self.pos < len(self.buf) else None
        if ctrl is None or ctrl & 0xF0:
            self.fail(f"{what} ({' or '.join(repr(a) for a in allowed)})", "no string")
        s = self.string(what)
        if s not in allowed:
            self.pos = start
            self.fail(f"{what} ({' or '.join(repr(a) for a in allowed)})", repr(s))
        return s

    def boolean(self, what: str = "a bool") -> bool:
        ch = self._take(1, what)[0]
        if ch not in (0x30, 0x31):
            self.pos -= 1
            self.fail(what, f"byte 0x{ch:02x}")
        return ch == 0x31

    def float(self, what: str = "a float") -> float:
        mantissa = self.int(f"the mantissa of {what}")
        exponent = self.int(f"the exponent of {what}")
        if exponent == 32000:
            return math.inf
        if exponent == 32001:
            return -math.inf
        if exponent >= 32002:
            return math.nan
        return math.ldexp(float(mantissa), exponent)

    def version(self, allowed: tuple[int, ...], what: str) -> int:
        start = self.pos
        v = self.int(f"the version of {what}")
        if v not in allowed:
            self.pos = start
            self.fail(f"the version of {what} ({' or '.join(map(str, allowed))})", str(v))
        return v

    def tensor(self, what: str) -> np.ndarray:
        version = self.version((1, 2), f"tensor {what}")
        dims = [self.int(f"a dimension of tensor {what}") for _ in range(4)]
        if min(dims) < 0:
            self.fail(f"non-negative dimensions of tensor {what}", str(dims))
        count = int(np.prod(dims))
        if version == 2:
            raw = self._take(4 * count, f"{count} float32 values of tensor {what}")
            values = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        else:  # dlib's portable float encoding, one value at a time (older files; slow but rare)
            values = np.array([self.float(f"a value of tensor {what}") for _ in range(count)], dtype=np.float32)
        return values.reshape(dims)

    def alias(self, what: str) -> tuple[int, int, int, int]:
        self.version((1,), f"alias_tensor {what}")
        return tuple(self.int(f"a dimension of alias_tensor {what}") for _ in range(4))


def _layer_sequence() -> list[tuple[str, str, dict]]:
    """The add_layer sequence of ``anet_type`` from the input up: (kind, state-dict prefix, expected settings)."""
    seq = [("con", "stem.conv", dict(out=STEM_CHANNELS, k=7, stride=2)), ("affine", "stem.affine", {}),
           ("relu", "", {}), ("max_pool", "", dict(k=3, stride=2))]
    for i, (ch, down) in enumerate(BLOCKS):
        p = f"blocks.{i}"
        seq += [("tag", "", {}),
                ("con", f"{p}.conv1", dict(out=ch, k=3, stride=2 if down else 1)), ("affine", f"{p}.affine1", {}),
                ("relu", "", {}), ("con", f"{p}.conv2", dict(out=ch, k=3, stride=1)), ("affine", f"{p}.affine2", {})]
        if down:
            seq += [("tag", "", {}), ("skip", "", {}), ("avg_pool", "", dict(k=2, stride=2))]
        seq += [("add_prev", "", {}), ("relu", "", {})]
    seq += [("avg_pool", "", dict(k=0, stride=1)), ("fc", "fc", dict(out=EMBED_DIM))]
    return seq


def _dlib_padding(k: int, stride: int) -> int:
    return 0 if stride != 1 else k // 2


def _read_details(r: _Reader, kind: str, prefix: str, cfg: dict, in_ch: int, out: dict) -> int:
    """Read one layer's details; store its parameters in ``out``; return its number of output channels."""
    label = f"layer {prefix or kind}"
    if kind == "con":
        name = r.name(("con_4", "con_5", "con_6"), f"the name of {label}")
        params = r.tensor(f"{label} params").reshape(-1)
        n = r.int(f"{label} num_filters")
        kh, kw = r.int(f"{label} nr"), r.int(f"{label} nc")
        sy, sx = r.int(f"{label} stride_y"), r.int(f"{label} stride_x")
        py, px = r.int(f"{label} padding_y"), r.int(f"{label} padding_x")
        fshape = r.alias(f"{label} filters")
        bshape = r.alias(f"{label} biases")
        for what in ("learning_rate_mult", "weight_decay_mult", "bias_learning_rate_mult", "bias_weight_decay_mult"):
            r.float(f"{label} {what}")
        use_bias = r.boolean(f"{label} use_bias") if name in ("con_5", "con_6") else True
        if name == "con_6" and r.boolean(f"{label} use_relu"):
            r.fail(f"{label} without a fused relu", "use_relu=true")
        k, s = cfg["k"], cfg["stride"]
        pad = _dlib_padding(k, s)
        want = (cfg["out"], k, k, s, s, pad, pad, (cfg["out"], in_ch, k, k))
        got = (n, kh, kw, sy, sx, py, px, fshape)
        if got != want:
            r.fail(f"{label} = con(num_filters, nr, nc, stride_y, stride_x, padding_y, padding_x, filter shape) "
                   f"{want}", str(got))
        nw = int(np.prod(fshape))
        nb = n if use_bias else 0
        if params.size != nw + nb or (use_bias and int(np.prod(bshape)) != n):
            r.fail(f"{label} params of {nw} + {nb} values", f"{params.size}")
        out[f"{prefix}.weight"] = params[:nw].reshape(fshape)
        out[f"{prefix}.bias"] = params[nw:nw + nb] if use_bias else np.zeros(n, np.float32)
        return n
    if kind == "affine":
        name = r.name(("affine_", "affine_2"), f"the name of {label}")
        params = r.tensor(f"{label} params").reshape(-1)
        gshape, bshape = r.alias(f"{label} gamma"), r.alias(f"{label} beta")
        mode = r.int(f"{label} mode")
        if name == "affine_2" and r.boolean(f"{label} disabled"):
            r.fail(f"an enabled {label}", "disabled=true")
        want = (1, in_ch, 1, 1)
        if mode != 0 or gshape != want or bshape != want or params.size != 2 * in_ch:
            r.fail(f"{label} in CONV mode (0) with gamma and beta of shape {want}",
                   f"mode {mode}, shapes {gshape} {bshape}, {params.size} params")
        out[f"{prefix}.scale"] = params[:in_ch].copy()
        out[f"{prefix}.shift"] = params[in_ch:].copy()
        return in_ch
    if kind == "relu":
        r.name(("relu_",), f"the name of {label}")
        return in_ch
    if kind == "add_prev":
        r.name(("add_prev_",), f"the name of {label}")
        return in_ch  # the caller sets the channels after the addition
    if kind in ("max_pool", "avg_pool"):
        r.name((f"{kind}_2",), f"the name of {label}")
        got = tuple(r.int(f"{label} {w}") for w in ("nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x"))
        k, s = cfg["k"], cfg["stride"]
        pad = 0 if k == 0 else _dlib_padding(k, s)
        want = (k, k, s, s, pad, pad)
        if got != want:
            r.fail(f"{label} = {kind}(nr, nc, stride_y, stride_x, padding_y, padding_x) {want}", str(got))
        return in_ch
    if kind == "fc":
        r.name(("fc_2",), f"the name of {label}")
        n_out, n_in = r.uint(f"{label} num_outputs"), r.uint(f"{label} num_inputs")
        params = r.tensor(f"{label} params").reshape(-1)
        wshape, _ = r.alias(f"{label} weights"), r.alias(f"{label} biases")
        bias_mode = r.int(f"{label} bias_mode")
        for what in ("learning_rate_mult", "weight_decay_mult", "bias_learning_rate_mult", "bias_weight_decay_mult"):
            r.float(f"{label} {what}")
        want = (cfg["out"], in_ch, (in_ch, cfg["out"], 1, 1), 1, in_ch * cfg["out"])
        got = (n_out, n_in, wshape, bias_mode, params.size)
        if got != want:
            r.fail(f"{label} = fc_no_bias(num_outputs, num_inputs, weight shape, bias_mode FC_NO_BIAS=1, "
                   f"#params) {want}", str(got))
        out[f"{prefix}.weight"] = np.ascontiguousarray(params.reshape(in_ch, cfg["out"]).T)
        return n_out
    raise AssertionError(kind)


def _parse_dat(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ValueError(f"cannot read {path}: {err.strerror or err}") from None
    r = _Reader(data, str(path))
    seq = _layer_sequence()
    # 1. the loss layer, then the versions of every layer, top-down
    r.version((1,), "add_loss_layer")
    r.name(("loss_metric_2",), "the loss layer's name")
    margin = r.float("loss_metric margin")
    dist_thresh = r.float("loss_metric distance threshold")
    for i, (kind, prefix, _) in reversed(list(enumerate(seq))):
        label = f"layer {prefix or kind} (#{i} from the input)"
        if kind in ("tag", "skip"):
            r.version((1,), f"add_{kind}_layer {label}")
        elif i == 0:
            bottom_version = r.version((2, 3), f"the bottom add_layer {label}")
        else:
            seq[i] = (kind, prefix, dict(seq[i][2], _version=r.version((1, 2), f"add_layer {label}")))
    # 2. the input layer
    r.name(("input_rgb_image_sized",), "the input layer's name")
    mean = np.array([r.float("the input layer's red mean"), r.float("the input layer's green mean"),
                     r.float("the input layer's blue mean")], dtype=np.float32)
    size = (r.uint("the input layer's rows"), r.uint("the input layer's columns"))
    if size != (CHIP_SIZE, CHIP_SIZE):
        r.fail(f"a {CHIP_SIZE}x{CHIP_SIZE} input", f"{size[0]}x{size[1]}")
    # 3. the layers, bottom-up, each followed by its add_layer state
    out: dict[str, np.ndarray] = {"input_mean": mean}
    ch, tags = 3, []
    for i, (kind, prefix, cfg) in enumerate(seq):
        if kind == "tag":
            tags.append(ch)
            continue
        if kind == "skip":
            ch = tags[-2]  # skip1: back to the block input (tag1)
            continue
        new_ch = _read_details(r, kind, prefix, cfg, ch, out)
        if kind == "add_prev":  # add_prev1 (plain block: adds tag1) or add_prev2 (down block: adds tag2)
            new_ch = max(ch, tags.pop())  # zero-extension to the larger channel count
            if seq[i - 1][0] == "avg_pool":
                tags.pop()  # the down block's tag1, used by its skip1
        ch = new_ch
        for what in ("this_layer_setup_called", "gradient_input_is_stale", "get_output_and_gradient_input_disabled"):
            r.boolean(f"layer {prefix or kind}: add_layer's {what}")
        r.tensor(f"x_grad of layer {prefix or kind}")
        r.tensor(f"cached_output of layer {prefix or kind}")
        if i == 0:
            r.tensor(f"grad_final of layer {prefix or kind}")
            if bottom_version >= 3:
                r.uint("the bottom layer's sample_expansion_factor")
        elif cfg.get("_version") == 2:
            r.tensor(f"params_grad of layer {prefix or kind}")
    if r.pos != len(r.buf):
        r.fail("the end of the file", f"{len(r.buf) - r.pos} more bytes")
    meta = {"loss_margin": repr(margin), "loss_distance_threshold": repr(dist_thresh)}
    return out, meta


def read_dlib_face_resnet(path: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """Parse dlib's ``dlib_face_recognition_resnet_model_v1.dat`` (no dlib needed) into a state dict for
    :class:`DlibFaceResNet` (float32 CPU tensors, plus ``input_mean``). ``None``: the file of the installed
    face-recognition-models package. A wrong or truncated file raises a one-line ``ValueError`` naming the file,
    the byte position and what was expected there."""
    path = find_dlib_face_resnet_dat() if path is None else Path(path)
    arrays, _ = _parse_dat(path)
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}


# ----------------------------------------------------------------------------------------------------------------
# the network


class _Affine(nn.Module):
    """dlib's ``affine_`` in CONV mode: ``x * scale[c] + shift[c]`` (a batch norm with its statistics folded in)."""

    def __init__(self, channels: int):
        super().__init__()
        self.register_buffer("scale", torch.ones(channels))
        self.register_buffer("shift", torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.shift.view(1, -1, 1, 1), x, self.scale.view(1, -1, 1, 1))


def _add_zero_extended(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev``: the sum over the element-wise maximum shape, missing entries counting as 0."""
    c, h, w = (max(a.shape[i], b.shape[i]) for i in (1, 2, 3))

    def grow(t):
        dc, dh, dw = c - t.shape[1], h - t.shape[2], w - t.shape[3]
        return F.pad(t, (0, dw, 0, dh, 0, dc)) if dc or dh or dw else t

    return grow(a) + grow(b)


class _Block(nn.Module):
    def __init__(self, in_ch: int, ch: int, down: bool):
        super().__init__()
        s = 2 if down else 1
        self.down = down
        self.conv1 = nn.Conv2d(in_ch, ch, 3, stride=s, padding=_dlib_padding(3, s))
        self.affine1 = _Affine(ch)
        self.conv2 = nn.Conv2d(ch, ch, 3, stride=1, padding=_dlib_padding(3, 1))
        self.affine2 = _Affine(ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)))))
        shortcut = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(_add_zero_extended(shortcut, y))


class DlibFaceResNet(nn.Module):
    """dlib's ``dlib_face_recognition_resnet_model_v1`` (a 29-conv ResNet, 5.6 M parameters), a plain ``nn.Module``.

    ``forward(x)``: ``x`` (B, 3, 150, 150) RGB in [0, 1], a face chip aligned the way ``dlib.get_face_chip(img,
    shape_5pt, size=150, padding=0.25)`` aligns it → (B, 128), the same vector as dlib's
    ``face_recognition_model_v1.compute_face_descriptor(chip)`` (not L2-normalised; two faces are "the same person"
    for dlib when the Euclidean distance is below 0.6). Internally ``255 * x`` goes through dlib's input
    normalisation ``(v - mean[c]) / 256``. Other spatial sizes run too (global average pool), but dlib's is 150.

    Weights: :func:`load_dlib_face_resnet` (safetensors) or ``load_state_dict(read_dlib_face_resnet(dat))``.
    """

    def __init__(self):
        super().__init__()
        self.register_buffer("input_mean", torch.tensor([122.782, 117.001, 104.298]))
        self.stem = nn.Module()
        self.stem.conv = nn.Conv2d(3, STEM_CHANNELS, 7, stride=2, padding=_dlib_padding(7, 2))
        self.stem.affine = _Affine(STEM_CHANNELS)
        blocks, ch = [], STEM_CHANNELS
        for out, down in BLOCKS:
            blocks.append(_Block(ch, out, down))
            ch = out
        self.blocks = nn.ModuleList(blocks)
        self.fc = nn.Linear(ch, EMBED_DIM, bias=False)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """[0, 1] RGB → dlib's network input ``(255 x - mean) / 256``."""
        return (x * 255.0 - self.input_mean.view(1, 3, 1, 1).to(x.dtype)) / 256.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected (B, 3, {CHIP_SIZE}, {CHIP_SIZE}) RGB chips in [0, 1], got {tuple(x.shape)}")
        h = F.relu(self.stem.affine(self.stem.conv(self.normalize(x))))
        h = F.max_pool2d(h, 3, 2, padding=_dlib_padding(3, 2))
        for block in self.blocks:
            h = block(h)
        return self.fc(h.mean(dim=(2, 3)))

    @staticmethod
    def chips_to_tensor(chips) -> torch.Tensor:
        """(H, W, 3) or (B, H, W, 3) uint8 RGB chips (numpy) → (B, 3, H, W) float32 in [0, 1]."""
        arr = np.asarray(chips)
        if arr.ndim == 3:
            arr = arr[None]
        if arr.ndim != 4 or arr.shape[-1] != 3:
            raise ValueError(f"expected (B, H, W, 3) RGB chips, got shape {arr.shape}")
        return torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float() / 255.0


# ----------------------------------------------------------------------------------------------------------------
# safetensors: convert once, load without dlib and without pickle


def default_dlib_resnet_path() -> Path:
    """Where :func:`load_dlib_face_resnet` keeps the converted weights: ``$OSDFACE_HOME/<file>``, else
    ``$XDG_CACHE_HOME/osdface/<file>`` (``~/.cache/osdface/dlib_face_recognition_resnet_model_v1.safetensors``)."""
    return cache_dir() / SAFETENSORS_FILE


def find_dlib_face_resnet_dat() -> Path:
    """dlib's ``.dat`` inside the installed face-recognition-models package, located without importing it (its
    ``__init__`` needs pkg_resources); :class:`~osdface.weights.MissingWeightsError` when absent."""
    path = face_recognition_models_dir() / DAT_FILE
    if not path.is_file():
        raise MissingWeightsError(f"{path} is missing; reinstall face-recognition-models ({INSTALL_HINT})")
    return path


def convert_dlib_face_resnet(dat_path: str | os.PathLike | None = None,
                             out_path: str | os.PathLike | None = None) -> Path:
    """Convert dlib's ``dlib_face_recognition_resnet_model_v1.dat`` to ``.safetensors`` (22.5 MB, float32) and return
    the path written. ``dat_path`` None: the installed face-recognition-models file; ``out_path`` None:
    :func:`default_dlib_resnet_path`; a folder (any path not ending in ``.safetensors``):
    ``<folder>/dlib_face_recognition_resnet_model_v1.safetensors``.
    Written atomically (a temporary file in the same folder, then ``os.replace``). The metadata names the source
    file, its sha256 and its licence. Reads the ``.dat`` in pure Python (dlib is not needed)."""
    from safetensors.numpy import save_file

    dat = find_dlib_face_resnet_dat() if dat_path is None else Path(dat_path)
    out = default_dlib_resnet_path() if out_path is None else Path(out_path)
    if out.is_dir() or out.suffix != ".safetensors":  # a folder, existing or to be made
        out = out / SAFETENSORS_FILE
    arrays, meta = _parse_dat(dat)
    meta = {"format": FORMAT, "source_file": dat.name, "source_sha256": sha256_file(dat), "license": LICENSE,
            "input": "(B, 3, 150, 150) RGB in [0, 1]; dlib normalisation (255 x - input_mean) / 256 inside",
            "output": "(B, 128) raw fc output, as dlib's compute_face_descriptor", **meta}
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, tmp, metadata=meta)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def load_dlib_face_resnet(path: str | os.PathLike | None = None, device=None,
                          dtype: torch.dtype | None = None) -> DlibFaceResNet:
    """The converted network, frozen, in eval mode. Reads ONLY ``.safetensors`` (never a pickle, never dlib).

    ``path``: a ``.safetensors`` file or a folder holding ``dlib_face_recognition_resnet_model_v1.safetensors``.
    ``None``: :func:`default_dlib_resnet_path`; when that file does not exist yet it is converted once from the
    installed face-recognition-models package (pure Python). Missing weights raise
    :class:`~osdface.weights.MissingWeightsError` with a one-line message; a file of another network raises ``ValueError``.
    """
    from safetensors import safe_open

    if path is None:
        file = default_dlib_resnet_path()
        if not file.is_file():
            try:
                dat = find_dlib_face_resnet_dat()
            except MissingWeightsError as err:
                raise MissingWeightsError(f"no converted weights at {file} and {err}") from None
            try:
                file = convert_dlib_face_resnet(dat, file)
            except OSError:  # read-only cache: convert in memory instead (still no dlib, no pickle)
                return _finish(_from_arrays(_parse_dat(dat)[0]), device, dtype)
    else:
        file = Path(path).expanduser()
        if file.is_dir():
            file = file / SAFETENSORS_FILE
        if file.suffix != ".safetensors":
            raise ValueError(f"{file}: load_dlib_face_resnet reads .safetensors only; convert dlib's .dat first with "
                             f"convert_dlib_face_resnet (osdface convert-dlib)")
        if not file.is_file():
            raise MissingWeightsError(f"{file} not found; make it with convert_dlib_face_resnet (osdface "
                                        f"convert-dlib) from face-recognition-models ({INSTALL_HINT})")
    try:
        with safe_open(str(file), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:  # noqa: BLE001 - damaged / non-safetensors file
        first = (str(err).splitlines() or [""])[0][:160]
        raise ValueError(f"{file} is not a readable safetensors file ({type(err).__name__}: {first})") from None
    if meta.get("format") not in (None, FORMAT):
        raise ValueError(f"{file} holds {meta.get('format')!r}, not dlib's face-recognition ResNet ({FORMAT})")
    return _finish(_from_state(state, file), device, dtype)


def _from_arrays(arrays: dict[str, np.ndarray]) -> DlibFaceResNet:
    return _from_state({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}, "<converted>")


def _from_state(state: dict[str, torch.Tensor], where) -> DlibFaceResNet:
    net = DlibFaceResNet()
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    bad = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or extra or bad:
        parts = [f"missing {missing[:3]}" if missing else "", f"unexpected {extra[:3]}" if extra else "",
                 f"wrong shape {bad[:3]}" if bad else ""]
        raise ValueError(f"{where} does not hold dlib's face-recognition ResNet: "
                         + "; ".join(p for p in parts if p))
    net.load_state_dict({k: v.float() for k, v in state.items()})
    return net


def _finish(net: DlibFaceResNet, device, dtype) -> DlibFaceResNet:
    net.requires_grad_(False).eval()
    if device is not None or dtype is not None:
        net.to(device=device, dtype=dtype)
    return net


@lru_cache(maxsize=4)
def _default_net(device: str, dtype: torch.dtype) -> DlibFaceResNet:
    return load_dlib_face_resnet(None, device=device, dtype=dtype)


# ----------------------------------------------------------------------------------------------------------------
# a fixed, differentiable dlib chip from FFHQ-aligned faces

#: Where ``dlib.get_face_chip(img, shape5, size=150, padding=0.25)`` takes its chip from in an FFHQ-aligned face:
#: (centre x, centre y, side, angle in radians). Centre and side are fractions of the face's side S, in continuous
#: coordinates (0 = the left/top edge of the image, 1 = the right/bottom edge); the chip's first and last pixel
#: centres lie on the square's edges (dlib's ``get_mapping_to_chip``: chip pixel (0, 0) is the rectangle's
#: top-left corner, (N-1, N-1) its bottom-right corner), rotated by ``angle`` about the centre.
#: Measured by :func:`measure_dlib_chip_geometry` (``python scripts/derive_dlib_chip.py``): dlib's HOG face box
#: (1x upsampled; the median HOG box of FFHQ-aligned faces, ``osdface.faces.alignment.ALIGNED_BOX``, where HOG finds
#: none) -> dlib's 5-point landmarks -> ``dlib.get_face_chip_details(shape, 150, 0.25)``, on the 329 FFHQ-aligned
#: faces of the project's shared data (311 at 512², 18 at 256²); each value is the median over the faces
#: (spread, std: 0.0062, 0.0073, 0.025, 0.030 rad; the angle is 0.2 degrees, i.e. upright).
DLIB_CHIP_IN_FFHQ = (0.504113, 0.609390, 0.695179, 0.003445)


def measure_dlib_chip_geometry(image: np.ndarray, shape=None, *, size: int = CHIP_SIZE, padding: float = 0.25,
                               models=None) -> tuple[float, float, float, float]:
    """Where dlib's own chip lies in one FFHQ-aligned ``image`` (S, S, 3 uint8 RGB), as (centre x, centre y, side,
    angle) in the units of :data:`DLIB_CHIP_IN_FFHQ`. ``shape``: dlib's 5-point landmarks of the face (a
    ``dlib.full_object_detection``), else found with :func:`dlib_face_shape`. ``models``: (HOG detector, 5-point
    predictor) to reuse. Needs dlib (imported here only); used to derive the constants and in the tests."""
    import dlib

    s = image.shape[0]
    if image.ndim != 3 or image.shape[1] != s:
        raise ValueError(f"expected a square (S, S, 3) face, got shape {image.shape}")
    if shape is None:
        shape = dlib_face_shape(image, models)
    chip = dlib.get_face_chip_details(shape, size, padding)
    r = chip.rect
    cx, cy = (r.left() + r.right()) / 2.0, (r.top() + r.bottom()) / 2.0
    # the chip's first/last pixel centres lie on left/right (dlib's drectangle.width() is right - left + 1)
    return ((cx + 0.5) / s, (cy + 0.5) / s, (r.right() - r.left()) / s, float(chip.angle))


def dlib_face_shape(image: np.ndarray, models=None):
    """dlib's 5-point landmarks (``full_object_detection``) of the face in an FFHQ-aligned ``image``: the largest box
    of dlib's HOG detector (1x upsampled), or where it finds none, ``osdface.faces.alignment.ALIGNED_BOX`` (the
    median HOG box of FFHQ-aligned faces). ``models``: (HOG detector, 5-point predictor). Needs dlib."""
    import dlib

    from ..faces.alignment import ALIGNED_BOX

    hog, sp5 = models or dlib_chip_models()
    rects = hog(image, 1)
    if len(rects):
        rect = max(rects, key=lambda r: r.area())
    else:
        h, w = image.shape[:2]
        l, t, r_, b = ALIGNED_BOX
        rect = dlib.rectangle(round(l * w), round(t * h), round(r_ * w), round(b * h))
    return sp5(image, rect)


def dlib_chip_models():
    """(dlib's HOG face detector, dlib's 5-point shape predictor from face-recognition-models). Needs dlib."""
    import dlib

    folder = find_dlib_face_resnet_dat().parent
    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(folder / "shape_predictor_5_face_landmarks.dat"))


def _chip_points(geometry, size: int, side_px: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Source pixel coordinates (pixel centres at integers) of the ``size`` x ``size`` chip's pixel centres, for a
    source of side ``side_px``: two (size, size) float64 tensors (x, y)."""
    cx, cy, side, angle = (float(v) for v in geometry)
    t = torch.linspace(-0.5, 0.5, size, dtype=torch.float64) * side if size > 1 else torch.zeros(1, dtype=torch.float64)
    v, u = torch.meshgrid(t, t, indexing="ij")  # rows, columns
    c, s = math.cos(angle), math.sin(angle)
    x = (cx + c * u - s * v) * side_px - 0.5
    y = (cy + s * u + c * v) * side_px - 0.5
    return x, y


def _pyramid_down(x: torch.Tensor) -> torch.Tensor:
    """dlib's ``pyramid_down<2>``: the separable 5-tap filter [1 4 6 4 1]/16 on each axis, then every other pixel;
    output pixel (c, r) is centred on input pixel (2c + 2, 2r + 2); size (n - 3) // 2."""
    k1 = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=x.dtype, device=x.device) / 16.0
    k = (k1[:, None] * k1[None, :]).expand(x.shape[1], 1, 5, 5)
    return F.conv2d(x, k, stride=2, groups=x.shape[1])


def ffhq_to_dlib_chip(x: torch.Tensor, size: int = CHIP_SIZE, geometry=None, *, fill: float = 0.0) -> torch.Tensor:
    """(B, C, S, S) FFHQ-aligned faces → (B, C, size, size) dlib face chips, differentiably, with one FIXED
    similarity transform (:data:`DLIB_CHIP_IN_FFHQ`, or ``geometry``) instead of per-face landmarks.

    Any value range (the warp is linear: [-1, 1] stays [-1, 1], [0, 1] stays [0, 1]); any float dtype and device.
    Sampling follows dlib's ``extract_image_chip`` step by step, so that the chip matches dlib's own chip, not just
    its geometry: while the chip's square would still cover more than ``size`` pixels per side after halving, the
    source goes one level down dlib's image pyramid (``pyramid_down<2>``: a 5x5 binomial filter, then every other
    pixel; a strided depthwise convolution here); then the chip is read bilinearly from that level
    (``grid_sample``; points outside the image read ``fill``: dlib's border is black, so pass the value of black
    in your range, e.g. -1 for [-1, 1]; on FFHQ-aligned faces the fixed square lies inside the image). For 512²
    faces that is one pyramid level (the square is ~356 px for 150 px), for 1024² two, for 256² none.
    Points are mapped into a pyramid level the way dlib maps them (``pyramid_down<2>::point_down``:
    ``p / 2 - (1.25, 0.75)``), which is half a source pixel off the filter's centre (``2 c + 2``) in x and in y;
    reproduced on purpose. Measured against ``dlib.get_face_chip`` on the same rectangle (uint8 input): dlib
    truncates to integers after each resampling step, so dlib's chip is darker by ~0.5 grey level per step (0.48,
    0.97, 1.45 at 256², 512², 1024²); beyond that the two differ by 0.26-0.40 grey levels on average (~2 at 512²
    without dlib's pyramid offset).
    """
    if x.ndim != 4 or not x.is_floating_point():
        raise ValueError(f"expected float (B, C, S, S) FFHQ-aligned faces, got {tuple(x.shape)} {x.dtype}")
    h, w = x.shape[-2:]
    if h != w:
        raise ValueError(f"expected square FFHQ-aligned faces, got {h}x{w}")
    geometry = DLIB_CHIP_IN_FFHQ if geometry is None else geometry
    px, py = _chip_points(geometry, size, float(h))
    side = float(geometry[2]) * h
    # dlib: go down while the next level's rectangle has more pixels than the chip (its drectangle width is r - l + 1)
    while (side / 2 + 1) ** 2 > size * size and min(x.shape[-2:]) > 8:
        x = _pyramid_down(x)
        px, py, side = px / 2 - 1.25, py / 2 - 0.75, side / 2  # dlib's point_down (see above)
    n = x.shape[-1]
    grid = torch.stack([(2 * px + 1) / n - 1, (2 * py + 1) / n - 1], dim=-1)[None]
    grid = grid.to(device=x.device, dtype=x.dtype).expand(x.shape[0], -1, -1, -1)
    if fill:
        return F.grid_sample(x - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def dlib_embed(x: torch.Tensor, net: DlibFaceResNet | None = None, *, value_range=(-1.0, 1.0)) -> torch.Tensor:
    """(B, 3, S, S) FFHQ-aligned RGB faces in ``value_range`` (default [-1, 1]) → (B, 128) dlib embeddings
    (unnormalised, as dlib's), differentiable with respect to ``x``: :func:`ffhq_to_dlib_chip` then the network.
    ``net`` None: :func:`load_dlib_face_resnet` (cached per device and dtype)."""
    lo, hi = (float(v) for v in value_range)
    if net is None:
        net = _default_net(str(x.device), x.dtype)
    chip = ffhq_to_dlib_chip(x, CHIP_SIZE, fill=lo)  # outside the image: black, like dlib
    return net((chip - lo) / (hi - lo))
