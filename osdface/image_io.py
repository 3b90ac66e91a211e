"""Image input/output for OSDFace: loading, validation, conversion, saving.

Everything that turns a user's file, PIL image, NumPy array or torch tensor
into the model's input format lives here, so that bad input fails early with
one readable line (:class:`ImageInputError`) instead of a stack trace from
deep inside PIL or the network.

Model input format
    A ``torch.Tensor`` of shape ``(3, H, W)``, dtype ``float32``, RGB, values
    in ``[0, 1]``.  :func:`to_float_tensor` / :func:`to_float_batch` produce it.

Limits
    * :data:`MIN_SIDE` (32 px): the shortest side of an image must be at least
      this long.  Smaller images carry too little information for a face
      model and break the 8x down-sampling of the encoders.  The check is made
      on the image as displayed, i.e. *after* the EXIF orientation is applied.
    * :data:`MAX_PIXELS` (64,000,000 = width * height): larger images are
      refused.  This admits an 8000x8000 photograph while keeping a single
      decoded image well below a few GiB of memory.  For files the limit is
      checked from the header, *before* the pixels are decoded, so a
      "decompression bomb" costs nothing.  Both limits can be changed per call
      (``min_side=`` / ``max_pixels=``).

Pixel conversions (:func:`to_rgb`)
    Any PIL mode becomes 8-bit RGB: 16-bit and 32-bit integer greyscale is
    rescaled (never clipped at 255), float greyscale is read as ``[0, 1]`` or
    ``[0, 255]``, CMYK is converted, and anything with transparency is
    composited over a white background.  EXIF orientation is applied first.

Saving
    :func:`save_png` writes lossless PNG atomically (temporary file in the
    same folder, then :func:`os.replace`), so an interrupted run never leaves
    a half-written output file.

This module depends on NumPy and Pillow; torch is imported only by the functions that make or read tensors (a
tensor given as input means torch is already loaded), so the ONNX Runtime pipeline uses it without torch
(:func:`to_model_arrays`, :func:`to_uint8`).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
import secrets
import sys
import threading
import time
import warnings
from typing import TYPE_CHECKING, Iterator, Sequence, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "TMP_NAME",
    "remove_stale_tmp",
    "MIN_SIDE",
    "MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "ImageInputError",
    "to_rgb",
    "load_image",
    "check_size",
    "list_images",
    "to_float_tensor",
    "to_float_batch",
    "to_model_arrays",
    "tensor_to_pil",
    "tensor_to_numpy",
    "save_png",
    "to_uint8",
    "as_rgb_uint8",
    "to_uint8_hwc",
]

#: Shortest accepted image side, in pixels (checked after EXIF rotation).
MIN_SIDE: int = 32

#: Largest accepted image area, width * height in pixels (64 MP; 8000x8000 passes).
MAX_PIXELS: int = 64_000_000

#: File extensions (lower case, with the dot) that :func:`list_images` treats as
#: images when scanning a folder.  The comparison is case-insensitive.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
)

PathLike = Union[str, "os.PathLike[str]"]
ImageLike = Union[Image.Image, np.ndarray, "torch.Tensor"]


def _is_tensor(x) -> bool:
    """Whether ``x`` is a torch tensor, without importing torch (a tensor exists only once torch is loaded)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _torch():
    import torch

    return torch


class ImageInputError(ValueError):
    """An input image cannot be used; ``str(err)`` is one human-readable line.

    The line names the file (or ``image`` for in-memory input) and the reason,
    e.g. ``face.png: not an image (cannot identify the file format)``.

    Attributes:
        reason: the reason alone, e.g. ``"empty file (0 bytes)"``.
        name: the file name / label, or ``None``.
    """

    def __init__(self, reason: str, name: str | None = None) -> None:
        self.reason = reason
        self.name = name
        super().__init__(f"{name}: {reason}" if name else reason)


# --------------------------------------------------------------------------- #
# Size checks
# --------------------------------------------------------------------------- #


def _fmt_area(pixels: int) -> str:
    """Human-readable area: '81.0 MP' for large values, '1,600 pixels' otherwise."""
    if pixels >= 100_000:
        return f"{pixels / 1e6:.1f} MP"
    return f"{pixels:,} pixels"


def _too_large_reason(width: int | None, height: int | None, pixels: int, max_pixels: int) -> str:
    have, limit = _fmt_area(pixels), _fmt_area(max_pixels)
    if have == limit:  # e.g. 64.0 MP vs 64.0 MP: show exact counts instead
        have, limit = f"{pixels:,} pixels", f"{max_pixels:,} pixels"
    dims = f"{width}x{height} = " if width is not None and height is not None else ""
    return f"too large ({dims}{have}; the limit is {limit})"


def check_size(
    width: int,
    height: int,
    *,
    name: str = "image",
    min_side: int = MIN_SIDE,
    max_pixels: int = MAX_PIXELS,
) -> None:
    """Raise :class:`ImageInputError` unless a ``width`` x ``height`` image is acceptable.

    Too large: ``width * height > max_pixels``.  Too small: ``min(width, height) < min_side``.
    Use this for in-memory images; :func:`load_image` calls it for files.
    """
    width, height = int(width), int(height)
    pixels = width * height
    if pixels > max_pixels:
        raise ImageInputError(_too_large_reason(width, height, pixels, max_pixels), name)
    if min(width, height) < min_side:
        raise ImageInputError(
            f"too small ({width}x{height} px; the shortest side must be at least {min_side} px)",
            name,
        )


# --------------------------------------------------------------------------- #
# Mode conversion
# --------------------------------------------------------------------------- #


def _white_composite(rgba: Image.Image) -> Image.Image:
    """Composite an RGBA image over an opaque white background; returns RGB."""
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _gray_array_to_rgb(gray: np.ndarray) -> Image.Image:
    """uint8 HxW array -> RGB image."""
    return Image.fromarray(np.ascontiguousarray(gray, dtype=np.uint8), mode="L").convert("RGB")


def _int_gray_to_uint8(img: Image.Image) -> np.ndarray:
    """16-bit ("I;16*") or 32-bit ("I") greyscale -> uint8 array, rounded, not clipped at 255.

    16-bit modes map 0..65535 to 0..255.  Mode "I" is read as 16-bit data when its
    maximum exceeds 255 (values outside 0..65535 are clipped to that range), and as
    8-bit values otherwise.
    """
    arr = np.asarray(img)
    if img.mode == "I" and (arr.size == 0 or int(arr.max()) <= 255):
        return np.clip(arr, 0, 255).astype(np.uint8)
    v = np.clip(arr.astype(np.int64), 0, 65535).astype(np.uint32)
    # Exact integer rounding of v * 255 / 65535.
    return ((v * 255 + 32767) // 65535).astype(np.uint8)


def _float_gray_to_uint8(img: Image.Image) -> np.ndarray:
    """Mode "F": [0, 1] if the maximum is <= 1, otherwise [0, 255]; NaN -> 0."""
    arr = np.nan_to_num(np.asarray(img, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    scale = 255.0 if (arr.size == 0 or float(arr.max()) <= 1.0) else 1.0
    return np.clip(np.floor(arr * scale + 0.5), 0, 255).astype(np.uint8)


def to_rgb(img: Image.Image) -> Image.Image:
    """Return an 8-bit RGB copy of ``img`` with its pixels loaded.

    Steps, in order:

    1. EXIF orientation is applied (:func:`PIL.ImageOps.exif_transpose`).
    2. Mode conversion:

       * ``"I;16"``, ``"I;16B"``, ``"I;16L"`` (16-bit): ``value / 65535 * 255``, rounded.
       * ``"I"`` (32-bit int): as 16-bit when the maximum is > 255 (values clipped to
         0..65535 first), else as 8-bit values.
       * ``"F"`` (float): ``[0, 1]`` when the maximum is <= 1, else ``[0, 255]``.
       * ``"CMYK"``, ``"YCbCr"``, ``"1"``, ``"L"``, ``"P"``: standard conversion.
       * Transparency (``RGBA``, ``LA``, ``PA``, ``RGBa``, ``La``, and any image with
         ``info["transparency"]`` such as palette or ``tRNS`` PNGs) is composited
         over white: a fully transparent pixel becomes (255, 255, 255).

    Raises:
        ImageInputError: the mode cannot be converted to RGB.
    """
    if not isinstance(img, Image.Image):
        raise TypeError(f"to_rgb expects a PIL.Image.Image, got {type(img).__name__}")
    img.load()
    try:
        oriented = ImageOps.exif_transpose(img)
    except Exception:  # malformed EXIF must not make a readable image unusable
        oriented = img
    if oriented is None:  # very old Pillow with in-place semantics
        oriented = img
    img = oriented
    mode = img.mode
    transparency = img.info.get("transparency")

    if mode.startswith("I;16") or mode == "I":
        gray = _int_gray_to_uint8(img)
        rgb = _gray_array_to_rgb(gray)
        if isinstance(transparency, int):  # 16-bit greyscale PNG with a tRNS key value
            mask = np.asarray(img) == transparency
            if mask.any():
                arr = np.array(rgb)
                arr[mask] = 255
                rgb = Image.fromarray(arr, mode="RGB")
        return rgb
    if mode == "F":
        return _gray_array_to_rgb(_float_gray_to_uint8(img))

    if mode == "La":  # premultiplied L + alpha (PIL cannot convert it to RGBA)
        la = np.asarray(img).astype(np.int16)
        gray = np.clip(la[..., 0] + 255 - la[..., 1], 0, 255).astype(np.uint8)
        return _gray_array_to_rgb(gray)
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa") or transparency is not None
    try:
        if has_alpha:
            return _white_composite(img.convert("RGBA"))
        if mode == "RGB":
            return img.copy()
        return img.convert("RGB")
    except (ValueError, OSError) as exc:
        raise ImageInputError(f"unsupported colour mode {mode!r} ({exc})", "image") from exc


# --------------------------------------------------------------------------- #
# Loading files
# --------------------------------------------------------------------------- #

_PIL_LIMIT_LOCK = threading.Lock()
_PIL_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")


@contextlib.contextmanager
def _pil_limit_for(max_pixels: int) -> Iterator[None]:
    """Keep PIL's own decompression-bomb check from interfering with ``max_pixels``.

    PIL warns above ``Image.MAX_IMAGE_PIXELS`` and raises above twice that.  When
    our limit is not above PIL's, nothing is changed: an image under our limit
    never triggers PIL.  When our limit is higher (a caller raised it), PIL's check
    is disabled for the duration of the block only, under a lock, and restored
    afterwards; :func:`load_image` then compares the header size itself before
    decoding.  DecompressionBombWarning is silenced inside the block.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        current = Image.MAX_IMAGE_PIXELS
        if current is None or max_pixels <= current:
            yield
            return
        with _PIL_LIMIT_LOCK:
            saved = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None
            try:
                yield
            finally:
                if Image.MAX_IMAGE_PIXELS is None:
                    Image.MAX_IMAGE_PIXELS = saved


def load_image(
    path: PathLike,
    *,
    min_side: int = MIN_SIDE,
    max_pixels: int = MAX_PIXELS,
) -> Image.Image:
    """Load an image file as 8-bit RGB (EXIF orientation applied), fully decoded.

    Checks, in order: the path exists, is not a directory, is not empty; PIL can
    identify it; its area from the header is at most ``max_pixels`` (before any
    decoding); the pixel data decodes completely; after :func:`to_rgb` (which
    applies EXIF rotation) the shortest side is at least ``min_side``.  The file
    is closed before returning.

    Raises:
        ImageInputError: with a one-line message naming ``path`` and the reason.
    """
    p = pathlib.Path(path)
    name = os.fspath(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise ImageInputError("no such file", name) from None
    except PermissionError:
        raise ImageInputError("cannot read (permission denied)", name) from None
    except OSError as exc:
        raise ImageInputError(f"cannot read ({exc.strerror or exc})", name) from None
    if p.is_dir():
        raise ImageInputError("is a directory", name)
    if not p.is_file():
        raise ImageInputError("not a regular file", name)
    if st.st_size == 0:
        raise ImageInputError("empty file (0 bytes)", name)

    try:
        with _pil_limit_for(max_pixels):
            try:
                with Image.open(p) as im:
                    w, h = im.size
                    if w * h > max_pixels:
                        raise ImageInputError(_too_large_reason(w, h, w * h, max_pixels), name)
                    try:
                        im.load()
                    except (OSError, SyntaxError, ValueError, EOFError, IndexError):
                        raise ImageInputError("truncated or corrupt image data", name) from None
                    # to_rgb returns a new, fully loaded image independent of the file.
                    rgb = to_rgb(im)
                    frames = getattr(im, "n_frames", 1)  # an animation (GIF, APNG, WebP): its first frame is used
                    if frames > 1:
                        rgb.info["frames"] = frames
            except UnidentifiedImageError:
                raise ImageInputError("not an image (cannot identify the file format)", name) from None
            except PermissionError:
                raise ImageInputError("cannot read (permission denied)", name) from None
            except Image.DecompressionBombError as exc:
                m = _PIL_BOMB_PIXELS.search(str(exc))
                pixels = int(m.group(1)) if m else max_pixels + 1
                raise ImageInputError(_too_large_reason(None, None, pixels, max_pixels), name) from None
            except (OSError, SyntaxError, EOFError):
                # Header parsed by a plugin but malformed.
                raise ImageInputError("truncated or corrupt image data", name) from None
    except ImageInputError as exc:
        if exc.name is None or exc.name == "image":  # e.g. from to_rgb: attach the file name
            raise ImageInputError(exc.reason, name) from None
        raise

    check_size(*rgb.size, name=name, min_side=min_side, max_pixels=max_pixels)
    return rgb


def list_images(path: PathLike) -> tuple[list[pathlib.Path], list[pathlib.Path]]:
    """Split an input path into (images, skipped).

    * A file: ``([file], [])`` whatever its extension (loading it reports a clear
      error if it is not an image).
    * A folder (not recursive): the regular files whose extension is in
      :data:`IMAGE_EXTENSIONS` (case-insensitive), sorted by name, and the other
      regular files, sorted, which the caller should report as skipped.  Hidden
      files (name starting with ``.``) and sub-folders are ignored.

    Raises:
        ImageInputError: the path does not exist or cannot be listed.
    """
    p = pathlib.Path(path)
    name = os.fspath(path)
    if not p.exists():
        raise ImageInputError("no such file or folder", name)
    if not p.is_dir():
        return [p], []
    try:
        entries = list(p.iterdir())
    except PermissionError:
        raise ImageInputError("cannot list folder (permission denied)", name) from None
    except OSError as exc:
        raise ImageInputError(f"cannot list folder ({exc.strerror or exc})", name) from None
    images: list[pathlib.Path] = []
    others: list[pathlib.Path] = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            if not entry.is_file():
                continue
        except OSError:
            continue
        (images if entry.suffix.lower() in IMAGE_EXTENSIONS else others).append(entry)
    return sorted(images), sorted(others)


# --------------------------------------------------------------------------- #
# Tensors
# --------------------------------------------------------------------------- #

_FLOAT_NP = (np.float16, np.float32, np.float64)


def _check_float_range_np(arr: np.ndarray, name: str) -> None:
    if arr.size == 0:
        return
    if not np.isfinite(arr).all():
        raise ImageInputError("float image contains NaN or infinite values", name)
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0.0 or hi > 1.0:
        raise ImageInputError(
            f"float image values must be in [0, 1], got [{lo:.4g}, {hi:.4g}] "
            "(divide 8-bit data by 255, or pass a uint8 array)",
            name,
        )


def _numpy_to_float(arr: np.ndarray, name: str, min_side: int, max_pixels: int) -> np.ndarray:
    """A checked numpy image -> (3, H, W) float32 array in [0, 1] (its own memory)."""
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ImageInputError(
            f"unsupported array shape {tuple(arr.shape)}; expected HxW, HxWx1, HxWx3 or HxWx4 "
            "(channels last)",
            name,
        )
    # Size first: a huge array is rejected before any conversion work.
    check_size(arr.shape[1], arr.shape[0], name=name, min_side=min_side, max_pixels=max_pixels)
    dt = arr.dtype
    if dt == np.uint8:
        f = arr.astype(np.float32) / 255.0
    elif dt == np.uint16:
        f = arr.astype(np.float32) / 65535.0
    elif dt == np.bool_:
        f = arr.astype(np.float32)
    elif dt.type in _FLOAT_NP:
        _check_float_range_np(arr, name)
        f = arr.astype(np.float32)
    else:
        raise ImageInputError(
            f"unsupported array dtype {dt}; expected uint8, uint16, bool or float in [0, 1]",
            name,
        )
    c = f.shape[2]
    if c == 1:
        f = np.repeat(f, 3, axis=2)
    elif c == 4:
        alpha = f[:, :, 3:4]
        f = f[:, :, :3] * alpha + (1.0 - alpha)  # composite over white
    return np.clip(np.ascontiguousarray(f.transpose(2, 0, 1), dtype=np.float32), 0.0, 1.0)


def _numpy_to_tensor(arr: np.ndarray, name: str, min_side: int, max_pixels: int) -> "torch.Tensor":
    return _torch().from_numpy(_numpy_to_float(arr, name, min_side, max_pixels))


def _torch_to_tensor(t: "torch.Tensor", name: str) -> "torch.Tensor":
    torch = _torch()
    shape = tuple(t.shape)
    if t.dim() == 4:
        if shape[0] != 1:
            raise ImageInputError(
                f"a 4-D tensor {shape} holds {shape[0]} images; pass it to to_float_batch, "
                "or give one image as (3, H, W)",
                name,
            )
        t = t[0]
    if t.dim() == 2:
        t = t.unsqueeze(0)
    if t.dim() != 3 or t.shape[0] not in (1, 3):
        raise ImageInputError(
            f"unsupported tensor shape {shape}; expected (3, H, W), (1, H, W), (H, W) "
            "or (1, 3, H, W) (channels first)",
            name,
        )
    t = t.detach()
    if t.dtype == torch.uint8:
        f = t.to(torch.float32) / 255.0
    elif t.dtype == torch.bool:
        f = t.to(torch.float32)
    elif t.is_floating_point():
        f = t.to(torch.float32)
        if f.numel():
            if not bool(torch.isfinite(f).all()):
                raise ImageInputError("float image contains NaN or infinite values", name)
            lo, hi = float(f.min()), float(f.max())
            if lo < 0.0 or hi > 1.0:
                raise ImageInputError(
                    f"float image values must be in [0, 1], got [{lo:.4g}, {hi:.4g}]", name
                )
    else:
        raise ImageInputError(
            f"unsupported tensor dtype {t.dtype}; expected float in [0, 1], uint8 or bool", name
        )
    if f.shape[0] == 1:
        f = f.expand(3, -1, -1)
    f = f.contiguous()
    if f.data_ptr() == t.data_ptr():  # never alias the caller's tensor
        f = f.clone()
    return f


def to_float_tensor(
    image: ImageLike,
    *,
    name: str = "image",
    min_side: int = MIN_SIDE,
    max_pixels: int = MAX_PIXELS,
) -> "torch.Tensor":
    """Convert one image to a ``(3, H, W)`` float32 tensor with values in ``[0, 1]``.

    Accepted inputs:

    * ``PIL.Image.Image``: any mode, through :func:`to_rgb`.
    * ``numpy.ndarray``, channels last: HxW, HxWx1, HxWx3, HxWx4 (alpha composited
      over white); dtype uint8 (/255), uint16 (/65535), bool, or float in [0, 1].
    * ``torch.Tensor``, channels first: (3, H, W), (1, H, W), (H, W) or (1, 3, H, W);
      dtype float in [0, 1], uint8 (/255) or bool.  The result stays on the input's
      device and never shares memory with the input.

    Raises:
        ImageInputError: wrong type, shape or dtype, float values outside [0, 1] or
            NaN, or a size rejected by :func:`check_size`.
    """
    if isinstance(image, Image.Image):
        return unit_float(_pil_to_uint8(image, name, min_side, max_pixels))
    if isinstance(image, np.ndarray):
        t = _numpy_to_tensor(image, name, min_side, max_pixels)
    elif _is_tensor(image):
        t = _torch_to_tensor(image, name)
    else:
        raise ImageInputError(
            f"unsupported input type {type(image).__name__}; expected a PIL image, "
            "a numpy array or a torch tensor",
            name,
        )
    check_size(t.shape[2], t.shape[1], name=name, min_side=min_side, max_pixels=max_pixels)
    return t


def to_float_batch(
    images: ImageLike | Sequence[ImageLike],
    *,
    min_side: int = MIN_SIDE,
    max_pixels: int = MAX_PIXELS,
) -> list["torch.Tensor"]:
    """Convert one image or several to a list of ``(3, H, W)`` float32 tensors in [0, 1].

    ``images`` may be a single image (anything :func:`to_float_tensor` accepts), a
    list/tuple of them, a 4-D tensor ``(N, C, H, W)`` (N images), or a 4-D numpy
    array ``(N, H, W, C)`` (N images).  An empty list gives an empty list.  Errors
    name the offending item as ``images[i]``.
    """
    kw = dict(min_side=min_side, max_pixels=max_pixels)
    if _is_tensor(images) and images.dim() == 4:
        return [to_float_tensor(images[i], name=f"images[{i}]", **kw) for i in range(images.shape[0])]
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return [to_float_tensor(images[i], name=f"images[{i}]", **kw) for i in range(images.shape[0])]
    if isinstance(images, (list, tuple)):
        return [to_float_tensor(im, name=f"images[{i}]", **kw) for i, im in enumerate(images)]
    return [to_float_tensor(images, **kw)]


def to_model_items(
    images: ImageLike | Sequence[ImageLike],
    *,
    min_side: int = MIN_SIDE,
    max_pixels: int = MAX_PIXELS,
) -> list["torch.Tensor"]:
    """Like :func:`to_float_batch`, but 8-bit RGB content (PIL images, uint8 HxWx3 arrays) stays a ``(3, H, W)``
    uint8 tensor: the host->device copy then moves a quarter of the bytes, and the device divides by 255 (the
    same float32 numbers as :func:`to_float_tensor`). Other inputs come back as its float32 tensors; the same
    checks apply to all, with the same messages."""
    return [_to_model_item(im, name, min_side, max_pixels) for name, im in _named_items(images)]


def to_model_arrays(
    images: ImageLike | Sequence[ImageLike],
    *,
    min_side: int = MIN_SIDE,
    max_pixels: int = MAX_PIXELS,
) -> list[np.ndarray]:
    """:func:`to_model_items` without torch, for the ONNX Runtime pipeline: ``(3, H, W)`` numpy arrays, uint8 for
    8-bit RGB content (PIL images, uint8 HxWx3 arrays), float32 in [0, 1] otherwise (the same values as
    :func:`to_float_tensor`); the same checks and messages. A torch tensor is accepted (torch is loaded then)."""
    out = []
    for name, im in _named_items(images):
        if isinstance(im, Image.Image):
            out.append(np.ascontiguousarray(_pil_to_uint8_hwc(im, name, min_side, max_pixels).transpose(2, 0, 1)))
        elif isinstance(im, np.ndarray):
            if im.dtype == np.uint8 and im.ndim == 3 and im.shape[2] == 3:
                check_size(im.shape[1], im.shape[0], name=name, min_side=min_side, max_pixels=max_pixels)
                out.append(np.ascontiguousarray(im.transpose(2, 0, 1)))
            else:
                out.append(_numpy_to_float(im, name, min_side, max_pixels))
        elif _is_tensor(im):
            out.append(to_float_tensor(im, name=name, min_side=min_side, max_pixels=max_pixels).cpu().numpy())
        else:
            raise ImageInputError(f"unsupported input type {type(im).__name__}; expected a PIL image, "
                                  "a numpy array or a torch tensor", name)
    return out


def _named_items(images) -> list[tuple[str, object]]:
    """One image or several (a list/tuple, an (N, C, H, W) tensor, an (N, H, W, C) array) -> (label, image)."""
    if _is_tensor(images) and images.dim() == 4:
        images = [images[i] for i in range(images.shape[0])]
    elif isinstance(images, np.ndarray) and images.ndim == 4:
        images = [images[i] for i in range(images.shape[0])]
    elif not isinstance(images, (list, tuple)):
        return [("image", images)]
    return [(f"images[{i}]", im) for i, im in enumerate(images)]


def _pil_to_uint8_hwc(image: Image.Image, name: str, min_side: int, max_pixels: int) -> np.ndarray:
    """A PIL image (any mode, through :func:`to_rgb`) -> checked ``(H, W, 3)`` uint8 array (its own memory)."""
    try:
        rgb = to_rgb(image)
    except ImageInputError as exc:
        raise ImageInputError(exc.reason, name) from None
    arr = np.array(rgb, dtype=np.uint8)  # a writable copy of one byte per value
    check_size(arr.shape[1], arr.shape[0], name=name, min_side=min_side, max_pixels=max_pixels)
    return arr


def _pil_to_uint8(image: Image.Image, name: str, min_side: int, max_pixels: int) -> "torch.Tensor":
    """A PIL image (any mode, through :func:`to_rgb`) -> checked ``(3, H, W)`` uint8 tensor (its own memory)."""
    return _torch().from_numpy(_pil_to_uint8_hwc(image, name, min_side, max_pixels)).permute(2, 0, 1)


def _to_model_item(image, name: str, min_side: int, max_pixels: int) -> "torch.Tensor":
    if isinstance(image, Image.Image):
        return _pil_to_uint8(image, name, min_side, max_pixels)
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
        check_size(image.shape[1], image.shape[0], name=name, min_side=min_side, max_pixels=max_pixels)
        return _torch().from_numpy(image.copy()).permute(2, 0, 1)
    return to_float_tensor(image, name=name, min_side=min_side, max_pixels=max_pixels)


def unit_float(t: "torch.Tensor") -> "torch.Tensor":
    """An item of :func:`to_model_items` (or a batch of them) -> float32 in [0, 1], on its device."""
    return t.float() / 255.0 if t.dtype == _torch().uint8 else t.float()


def _as_chw(t: "torch.Tensor") -> "torch.Tensor":
    torch = _torch()
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor, got {type(t).__name__}")
    if t.dim() == 4 and t.shape[0] == 1:
        t = t[0]
    if t.dim() != 3 or t.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) tensor, got shape {tuple(t.shape)}")
    t = t.detach().to("cpu", torch.float32)
    return torch.nan_to_num(t, nan=0.0, posinf=1.0, neginf=0.0).clamp(0.0, 1.0)


def tensor_to_pil(t: "torch.Tensor") -> Image.Image:
    """``(3, H, W)`` (or ``(1, 3, H, W)``) float tensor in [0, 1] -> 8-bit RGB PIL image.

    Values are clamped to [0, 1] (NaN -> 0) and rounded to the nearest level
    (``floor(x * 255 + 0.5)``), so ``tensor_to_pil(to_float_tensor(img))`` is exact
    for 8-bit content.
    """
    return Image.fromarray(to_uint8_hwc(_as_chw(t)[None])[0].numpy())


def to_uint8_hwc(t: "torch.Tensor") -> "torch.Tensor":
    """``(N, 3, H, W)`` float tensor in [0, 1] -> ``(N, H, W, 3)`` uint8, on the tensor's own device.

    The one rounding rule of this module: NaN -> 0, clamp to [0, 1], ``floor(x * 255 + 0.5)``. The pipeline
    quantises on the GPU with it, so that the device->host copy moves a quarter of the bytes of float32.
    """
    torch = _torch()
    f = torch.nan_to_num(t.float(), nan=0.0, posinf=1.0, neginf=0.0).clamp(0.0, 1.0)
    return torch.floor(f * 255.0 + 0.5).clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def to_uint8(x: np.ndarray, scale: float = 255.0) -> np.ndarray:
    """Float image data → uint8 with this module's one rounding rule (the same as :func:`to_uint8_hwc`): NaN → 0,
    ``v = x · scale`` in float32, clamped to [0, 255], ``floor(v + 0.5)``. ``scale`` is 255 for data in [0, 1] and 1
    for data already on the 0–255 scale. uint8 input is returned unchanged (as a contiguous array)."""
    x = np.asarray(x)
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    v = np.nan_to_num(x.astype(np.float32, copy=False), nan=0.0, posinf=np.inf, neginf=-np.inf)
    v = np.clip(v * np.float32(scale) if scale != 1 else v, 0.0, 255.0)
    return np.floor(v + np.float32(0.5)).astype(np.uint8)


def as_rgb_uint8(image) -> np.ndarray:
    """A PIL image, an (H, W) / (H, W, 3|4) array, or a (3, H, W) array or tensor, uint8 or float in [0, 1], as a
    contiguous (H, W, 3) uint8 RGB array (alpha dropped, grey repeated); :func:`to_uint8` rounds floats."""
    if isinstance(image, Image.Image):
        return np.asarray(to_rgb(image))
    if _is_tensor(image):
        t = image.detach().cpu()
        image = t.numpy() if t.dtype == _torch().uint8 else t.float().numpy()
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[2] not in (1, 3, 4):  # channels first
        arr = arr.transpose(1, 2, 0)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ImageInputError(f"expected an RGB image (H, W, 3), got an array of shape {arr.shape}", "image")
    return np.ascontiguousarray(to_uint8(arr[..., :3]))


def uint8_batch_to_pil(u8) -> list[Image.Image]:
    """``(N, H, W, 3)`` uint8 CPU tensor (from :func:`to_uint8_hwc`) or array -> N RGB PIL images."""
    return [Image.fromarray(a) for a in (u8 if isinstance(u8, np.ndarray) else u8.numpy())]


def tensor_to_numpy(t: "torch.Tensor") -> np.ndarray:
    """``(3, H, W)`` (or ``(1, 3, H, W)``) tensor -> HxWx3 float32 array, clamped to [0, 1]."""
    return np.ascontiguousarray(_as_chw(t).permute(1, 2, 0).numpy(), dtype=np.float32)


# --------------------------------------------------------------------------- #
# Saving
# --------------------------------------------------------------------------- #


#: the hidden temporary files :func:`save_png` and the video writer create next to their final file,
#: ``.NAME.<12 hex digits>.tmp``, renamed over NAME when complete
TMP_NAME = re.compile(r"^\..+\.[0-9a-f]{12}\.tmp$")


#: a temporary file untouched this long was left by a run that stopped: a live writer touches its file far more often
#: (a PNG is written in well under a second; a video's file grows with every frame)
STALE_TMP_SECONDS = 600.0


def remove_stale_tmp(folder: PathLike, *, older_than: float = STALE_TMP_SECONDS) -> list[pathlib.Path]:
    """Delete the temporary files (:data:`TMP_NAME`, plain files directly in ``folder``) that an interrupted run
    left there: truncated or empty, never renamed into place. Only those not modified for ``older_than`` seconds,
    so that another run writing into the same folder now keeps its files. Returns what was removed."""
    removed = []
    cutoff = time.time() - older_than
    try:
        entries = list(os.scandir(folder))
    except OSError:  # absent, or not a folder: nothing was left there
        return removed
    for entry in entries:
        if TMP_NAME.match(entry.name) and entry.is_file(follow_symlinks=False):
            try:
                if entry.stat(follow_symlinks=False).st_mtime > cutoff:
                    continue
                os.unlink(entry.path)
                removed.append(pathlib.Path(entry.path))
            except OSError:
                pass
    return removed


def save_png(img: Image.Image, path: PathLike) -> None:
    """Write ``img`` losslessly as PNG at ``path`` (format is PNG whatever the suffix).

    The parent folder is created if needed.  The data goes to a hidden temporary
    file in the same folder, is flushed to disk, then moved over ``path`` with
    :func:`os.replace`, so readers never see a partial file; on failure the
    temporary file is removed.  The file gets the usual permissions (umask).
    """
    if not isinstance(img, Image.Image):
        raise TypeError(f"save_png expects a PIL.Image.Image, got {type(img).__name__}")
    final = pathlib.Path(path)
    parent = final.parent
    parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = parent / f".{final.name}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover - astronomically unlikely
        raise FileExistsError(f"cannot create a temporary file in {parent}")
    try:
        with os.fdopen(fd, "wb") as fh:
            img.save(fh, format="PNG")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
