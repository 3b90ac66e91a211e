"""Synthetic face degradations: the blind face-restoration model of OSDFace's training and CelebA-Test benchmark.

docs/ARCHITECTURE.md §4 (the CelebA-Test protocol inherited from DAEFR / CodeFormer)::

    x_L = JPEG_q( (x_H ⊛ k_σ)↓_r + n_δ )↑_r

* ``k_σ``: a Gaussian blur kernel of size 2k+1 with k ∈ {19, 20} (39 or 41 taps, DAEFR), isotropic or anisotropic
  with probability 1/2 each; σ ∈ [0.1, 10] (anisotropic: two σ drawn independently from that range and a rotation
  angle θ ∈ [-π, π]);
* ``↓_r``: down-sampling by a factor r ∈ [0.8, 8] (r < 1 enlarges);
* ``n_δ``: additive white Gaussian noise, per channel, with standard deviation δ ∈ [0, 20] on the 0–255 scale;
* ``JPEG_q``: JPEG compression with quality q ∈ [60, 100] (integer);
* ``↑_r``: resize back to the input size (512 in the benchmark).

Every range is a field of :class:`DegradationConfig`; the defaults are the spec's values.

Resampling and numerics (our choices, written down so that results can be compared)
    * blur: :func:`cv2.filter2D`, float32 in [0, 1], border ``BORDER_REFLECT_101`` (OpenCV's default; the one the
      CodeFormer / GFPGAN training code gets by calling ``cv2.filter2D`` without a border argument);
    * down-sampling: bilinear (``cv2.INTER_LINEAR``, no anti-aliasing) to ``(int(W / r), int(H / r))`` (at least
      1 px) as in the CodeFormer / GFPGAN dataset code; ``"area"``, ``"bicubic"``, ``"lanczos"`` or ``"nearest"``
      can be configured (``downsample_interp``);
    * noise: ``N(0, (δ/255)²)`` drawn independently for every pixel and channel (colour noise) from a generator
      seeded by ``noise_seed``, added in float, then clipped to [0, 1] and rounded to 8 bits;
    * JPEG: OpenCV's encoder (libjpeg-turbo, 4:2:0 chroma subsampling, the default quantisation tables scaled by
      ``q``) on the RGB image (converted to OpenCV's BGR order so that the chroma planes are the right ones), then
      decoded;
    * up-sampling back to the input size: bilinear (``cv2.INTER_LINEAR``) by default, as in the CodeFormer / GFPGAN
      code; ``upsample_interp="bicubic"`` gives the variant some evaluation scripts use.
    The interpolation modes are recorded in the params, so a params line replays exactly even if the defaults change.

Reproducibility
    :func:`degrade` draws every random value from the generator it is given (:func:`sample_params`), including an
    integer ``noise_seed`` for the noise field, and then applies them deterministically (:func:`apply_params`).
    Same seed + same input → identical bytes on the same platform and OpenCV build. A params dict (for example a
    line of a benchmark set's ``params.jsonl``) replays exactly with ``apply_params(img, params)``.

Speed (``python benchmarks/degradations.py [--threads 1]``; 512×512 RGB, one process, 100–200 seeds,
this project's 2-core AMD EPYC CPU, opencv-python 4.14.0.94, numpy 2.4):
    ≈ 40 images/s with OpenCV's default 2 threads (three runs: 34, 41, 46; mean 22–29 ms per image),
    ≈ 35–42 images/s with ``--threads 1`` (two runs). The time depends on r (r = 0.8 enlarges the image before the noise and
    JPEG steps). End to end, ``PairedFaceDataset`` gives ≈ 14 items/s at 512² (PNG decode + Lanczos resize +
    degrade + tensors) and ``osdface degrade`` writes ≈ 3.5 pairs/s (two PNG encodes + fsync per pair dominate).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping

import numpy as np

from ..image_io import to_uint8

__all__ = [
    "DegradationConfig",
    "Degrader",
    "degrade",
    "sample_params",
    "apply_params",
    "gaussian_kernel",
    "INTERPOLATIONS",
    "MILD",
]

#: Interpolation names accepted by :class:`DegradationConfig` (mapped to OpenCV flags in :func:`_cv2_interp`).
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "area", "lanczos")


#: A milder set of ranges than the paper's (blur σ 1–3, down-sampling 2–4×, noise ≤ 10, JPEG 60–90): the second
#: validation degradation of the ablation, the model comparisons and the teacher pool, where a face keeps enough
#: pixels (a quarter of its size at least) for another restorer to work from. ``DegradationConfig(**MILD)``.
MILD = dict(sigma_range=(1.0, 3.0), scale_range=(2.0, 4.0), noise_range=(0.0, 10.0), jpeg_range=(60, 90))


def _cv2():
    import cv2  # imported lazily: ``osdface --help`` should not pay for it

    return cv2


def _cv2_interp(name: str) -> int:
    cv2 = _cv2()
    return {
        "nearest": cv2.INTER_NEAREST,
        "bilinear": cv2.INTER_LINEAR,
        "bicubic": cv2.INTER_CUBIC,
        "area": cv2.INTER_AREA,
        "lanczos": cv2.INTER_LANCZOS4,
    }[name]


def _check_range(name: str, rng: Any, lo_bound: float, hi_bound: float, *, allow_none: bool = False,
                 lo_open: bool = False) -> None:
    if rng is None:
        if allow_none:
            return
        raise ValueError(f"DegradationConfig.{name} must be a (low, high) pair, not None")
    try:
        lo, hi = (float(v) for v in rng)
    except (TypeError, ValueError):
        raise ValueError(f"DegradationConfig.{name} must be a (low, high) pair, got {rng!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise ValueError(f"DegradationConfig.{name} = {rng!r}: need finite low <= high")
    if lo < lo_bound or hi > hi_bound or (lo_open and lo <= lo_bound):
        op = ">" if lo_open else ">="
        raise ValueError(f"DegradationConfig.{name} = {rng!r}: values must be {op} {lo_bound} and <= {hi_bound}")


@dataclass(frozen=True)
class DegradationConfig:
    """Ranges of the synthetic degradation (defaults: docs/ARCHITECTURE.md §4, the DAEFR / CodeFormer CelebA-Test protocol).

    A range is a ``(low, high)`` pair sampled uniformly (``jpeg_range``: integers, both ends included).
    ``noise_range=None`` / ``jpeg_range=None`` switch that step off.
    """

    #: kernel size is 2k+1; k is drawn uniformly from this tuple (DAEFR: k ∈ {19, 20} → 39 or 41 taps)
    kernel_radii: tuple[int, ...] = (19, 20)
    #: probability of an isotropic kernel (else anisotropic) — spec: 50/50
    iso_prob: float = 0.5
    #: Gaussian σ in pixels, for both axes of an anisotropic kernel (spec: [0.1, 10])
    sigma_range: tuple[float, float] = (0.1, 10.0)
    #: rotation angle of an anisotropic kernel, radians
    angle_range: tuple[float, float] = (-math.pi, math.pi)
    #: down-sampling factor r (spec: [0.8, 8]; r < 1 enlarges)
    scale_range: tuple[float, float] = (0.8, 8.0)
    #: noise standard deviation δ on the 0–255 scale (spec: [0, 20]); None: no noise
    noise_range: tuple[float, float] | None = (0.0, 20.0)
    #: JPEG quality q, integers, both ends included (spec: [60, 100]); None: no JPEG step
    jpeg_range: tuple[int, int] | None = (60, 100)
    #: interpolation of the down-sampling step (one of INTERPOLATIONS)
    downsample_interp: str = "bilinear"
    #: interpolation of the resize back to the input size (one of INTERPOLATIONS)
    upsample_interp: str = "bilinear"
    #: resize the result back to the input size (spec: yes); False returns the small image
    resize_back: bool = True

    def __post_init__(self):
        radii = tuple(int(k) for k in self.kernel_radii)
        if not radii or any(k < 0 for k in radii) or any(int(k) != k for k in self.kernel_radii):
            raise ValueError(f"DegradationConfig.kernel_radii must be non-negative integers, got {self.kernel_radii!r}")
        object.__setattr__(self, "kernel_radii", radii)
        if not 0.0 <= float(self.iso_prob) <= 1.0:
            raise ValueError(f"DegradationConfig.iso_prob must be in [0, 1], got {self.iso_prob!r}")
        _check_range("sigma_range", self.sigma_range, 0.0, math.inf, lo_open=True)
        _check_range("angle_range", self.angle_range, -math.inf, math.inf)
        _check_range("scale_range", self.scale_range, 0.0, math.inf, lo_open=True)
        _check_range("noise_range", self.noise_range, 0.0, 255.0, allow_none=True)
        _check_range("jpeg_range", self.jpeg_range, 1, 100, allow_none=True)
        if self.jpeg_range is not None and any(int(q) != q for q in self.jpeg_range):
            raise ValueError(f"DegradationConfig.jpeg_range must hold integers, got {self.jpeg_range!r}")
        for name in ("downsample_interp", "upsample_interp"):
            if getattr(self, name) not in INTERPOLATIONS:
                raise ValueError(f"DegradationConfig.{name} must be one of {INTERPOLATIONS}, "
                                 f"got {getattr(self, name)!r}")

    def to_dict(self) -> dict:
        return asdict(self)


# ------------------------------------------------------------------------------------------------- sampling
def _as_rng(rng: np.random.Generator | int) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        if rng < 0:
            raise ValueError(f"seed must be non-negative, got {rng}")
        return np.random.default_rng(int(rng))
    raise TypeError(f"rng must be a numpy.random.Generator or an int seed, got {type(rng).__name__}")


def sample_params(rng: np.random.Generator | int, config: DegradationConfig | None = None) -> dict:
    """Draw one set of degradation parameters (JSON-serialisable; :func:`apply_params` applies it).

    Keys: ``kernel_type`` ("iso" | "aniso"), ``kernel_radius`` k, ``kernel_size`` 2k+1, ``sigma_x``, ``sigma_y``
    (pixels; equal for "iso"), ``angle`` (radians; 0 for "iso"), ``scale`` r, ``noise_sigma`` δ (0–255 scale),
    ``noise_seed``, ``jpeg_quality`` (int or None), ``downsample_interp``, ``upsample_interp``, ``resize_back``.
    The draws happen in this fixed order: k, type, σx, σy, θ, r, δ, noise_seed, q.
    """
    cfg = config or DegradationConfig()
    g = _as_rng(rng)
    k = int(cfg.kernel_radii[int(g.integers(len(cfg.kernel_radii)))])
    iso = bool(g.random() < cfg.iso_prob)
    sigma_x = float(g.uniform(*cfg.sigma_range))
    sigma_y = float(g.uniform(*cfg.sigma_range))  # drawn either way so that later draws do not depend on `iso`
    angle = float(g.uniform(*cfg.angle_range))
    if iso:
        sigma_y, angle = sigma_x, 0.0
    scale = float(g.uniform(*cfg.scale_range))
    noise = float(g.uniform(*cfg.noise_range)) if cfg.noise_range is not None else 0.0
    noise_seed = int(g.integers(0, 2**32))
    quality = None
    if cfg.jpeg_range is not None:
        quality = int(g.integers(int(cfg.jpeg_range[0]), int(cfg.jpeg_range[1]) + 1))
    return {
        "kernel_type": "iso" if iso else "aniso",
        "kernel_radius": k,
        "kernel_size": 2 * k + 1,
        "sigma_x": sigma_x,
        "sigma_y": sigma_y,
        "angle": angle,
        "scale": scale,
        "noise_sigma": noise,
        "noise_seed": noise_seed,
        "jpeg_quality": quality,
        "downsample_interp": cfg.downsample_interp,
        "upsample_interp": cfg.upsample_interp,
        "resize_back": bool(cfg.resize_back),
    }


# ------------------------------------------------------------------------------------------------- applying
def gaussian_kernel(size: int, sigma_x: float, sigma_y: float | None = None, angle: float = 0.0) -> np.ndarray:
    """A normalised ``size × size`` (odd) Gaussian kernel, float32, covariance ``R(θ) diag(σx², σy²) R(θ)ᵀ``."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"kernel size must be a positive odd number, got {size}")
    sigma_y = sigma_x if sigma_y is None else sigma_y
    if sigma_x <= 0 or sigma_y <= 0:
        raise ValueError(f"kernel sigmas must be > 0, got {sigma_x}, {sigma_y}")
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    cov = rot @ np.diag([sigma_x**2, sigma_y**2]) @ rot.T
    inv = np.linalg.inv(cov)
    ax = np.arange(size, dtype=np.float64) - size // 2
    xx, yy = np.meshgrid(ax, ax)  # xx: column offset (x), yy: row offset (y)
    q = inv[0, 0] * xx * xx + (inv[0, 1] + inv[1, 0]) * xx * yy + inv[1, 1] * yy * yy
    k = np.exp(-0.5 * q)
    return (k / k.sum()).astype(np.float32)


def _check_image(img: np.ndarray) -> np.ndarray:
    if not isinstance(img, np.ndarray):
        try:  # a PIL image
            img = np.asarray(img)
        except Exception:  # noqa: BLE001
            raise TypeError(f"expected a uint8 numpy array (H, W, 3), got {type(img).__name__}") from None
    if img.dtype != np.uint8:
        raise TypeError(f"expected a uint8 image, got dtype {img.dtype}")
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (1, 3)):
        raise ValueError(f"expected an (H, W), (H, W, 1) or (H, W, 3) image, got shape {img.shape}")
    if img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"empty image, shape {img.shape}")
    return img


def apply_params(image_uint8_hwc: np.ndarray, params: Mapping[str, Any]) -> np.ndarray:
    """Degrade ``image_uint8_hwc`` (uint8, RGB (H, W, 3), or (H, W) / (H, W, 1) grey) with the given params.

    Deterministic: depends only on the image and ``params`` (a :func:`sample_params` dict or a parsed
    ``params.jsonl`` line; extra keys are ignored). Returns uint8 of the input's shape (or the down-sampled size
    when ``resize_back`` is False).
    """
    cv2 = _cv2()
    img = _check_image(image_uint8_hwc)
    shape = img.shape
    h, w = shape[:2]
    x = img.astype(np.float32) * np.float32(1.0 / 255.0)
    if x.ndim == 3 and x.shape[2] == 1:
        x = x[:, :, 0]

    # 1. blur: x_H ⊛ k_σ
    size = int(params.get("kernel_size", 2 * int(params["kernel_radius"]) + 1))
    kernel = gaussian_kernel(size, float(params["sigma_x"]), float(params["sigma_y"]), float(params["angle"]))
    x = cv2.filter2D(x, -1, kernel, borderType=cv2.BORDER_REFLECT_101)

    # 2. down-sample by r (bilinear by default; r < 1 enlarges)
    scale = float(params["scale"])
    dw, dh = max(1, int(w / scale)), max(1, int(h / scale))
    if (dw, dh) != (w, h):
        x = cv2.resize(x, (dw, dh), interpolation=_cv2_interp(params.get("downsample_interp", "bilinear")))

    # 3. additive Gaussian noise n_δ (δ on the 0–255 scale), then back to 8 bits
    sigma = float(params.get("noise_sigma", 0.0))
    if sigma > 0:
        noise = np.random.default_rng(int(params["noise_seed"])).standard_normal(x.shape, dtype=np.float32)
        x = x + noise * np.float32(sigma / 255.0)
    y = to_uint8(x)

    # 4. JPEG_q (OpenCV expects BGR: swap so that the chroma planes are computed from the true colours)
    q = params.get("jpeg_quality")
    if q is not None:
        colour = y.ndim == 3
        buf_in = cv2.cvtColor(y, cv2.COLOR_RGB2BGR) if colour else y
        ok, buf = cv2.imencode(".jpg", buf_in, [int(cv2.IMWRITE_JPEG_QUALITY), int(q)])
        if not ok:  # pragma: no cover - OpenCV only fails here on invalid input
            raise RuntimeError("OpenCV could not JPEG-encode the image")
        dec = cv2.imdecode(buf, cv2.IMREAD_COLOR if colour else cv2.IMREAD_GRAYSCALE)
        y = cv2.cvtColor(dec, cv2.COLOR_BGR2RGB) if colour else dec

    # 5. ↑_r: resize back to the input size
    if params.get("resize_back", True) and (y.shape[1], y.shape[0]) != (w, h):
        y = cv2.resize(y, (w, h), interpolation=_cv2_interp(params.get("upsample_interp", "bilinear")))
    if len(shape) == 3 and y.ndim == 2:
        y = y[:, :, None]
    return np.ascontiguousarray(y)


def degrade(image_uint8_hwc: np.ndarray, rng: np.random.Generator | int,
            config: DegradationConfig | None = None) -> tuple[np.ndarray, dict]:
    """``x_L = JPEG_q((x_H ⊛ k_σ)↓_r + n_δ)↑_r``, parameters drawn from ``rng`` (a Generator or an int seed).

    Returns ``(lq_uint8, params)``; ``lq`` has the input's shape and dtype (unless ``config.resize_back`` is False),
    ``params`` every sampled value (see :func:`sample_params`), JSON-serialisable.
    """
    img = _check_image(image_uint8_hwc)
    params = sample_params(rng, config)
    return apply_params(img, params), params


class Degrader:
    """``Degrader(config)(img, seed) -> (lq, params)``: :func:`degrade` with a fixed config (picklable)."""

    def __init__(self, config: DegradationConfig | None = None):
        self.config = config or DegradationConfig()

    def __call__(self, img: np.ndarray, seed: np.random.Generator | int) -> tuple[np.ndarray, dict]:
        return degrade(img, seed, self.config)

    def __repr__(self) -> str:
        return f"Degrader({self.config!r})"
