"""The synthetic degradation x_L = JPEG_q((x_H ⊛ k_σ)↓_r + n_δ)↑_r (docs/ARCHITECTURE.md §4): determinism, ranges, each
parameter's measured effect, exact replay of recorded params."""

import json
import math

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2", reason="opencv-python is required by osdface.data (see requirements.txt)")

from osdface.data.degradations import (  # noqa: E402
    DegradationConfig,
    Degrader,
    apply_params,
    degrade,
    gaussian_kernel,
    sample_params,
)


def textured(h=96, w=96, seed=0):
    """Edges, gradients and fine texture: something every degradation step visibly changes."""
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([xx / w, yy / h, 0.5 + 0.5 * np.sin(xx / 3.0 + yy / 5.0)], axis=-1)
    base += (((xx // 8) + (yy // 8)) % 2)[..., None] * 0.3
    base += g.normal(0, 0.08, base.shape)
    return np.clip(base / base.max() * 255, 0, 255).astype(np.uint8)


def fixed(**over):
    """Params of a 'neutral' degradation (tiny blur, no resize, no noise, no JPEG) with some values overridden."""
    p = dict(kernel_type="iso", kernel_radius=19, kernel_size=39, sigma_x=0.1, sigma_y=0.1, angle=0.0, scale=1.0,
             noise_sigma=0.0, noise_seed=0, jpeg_quality=None, downsample_interp="bilinear",
             upsample_interp="bilinear", resize_back=True)
    p.update(over)
    return p


def laplacian_energy(img):
    g = img.astype(np.float32).mean(axis=2) if img.ndim == 3 else img.astype(np.float32)
    return float(np.mean(cv2.Laplacian(g, cv2.CV_32F) ** 2))


IMG = textured()


# ------------------------------------------------------------------------------------------------ determinism
def test_same_seed_same_bytes_different_seed_differs():
    a, pa = degrade(IMG, 7)
    b, pb = degrade(IMG, 7)
    c, pc = degrade(IMG, 8)
    assert a.tobytes() == b.tobytes() and pa == pb
    assert pa != pc and a.tobytes() != c.tobytes()
    # an int seed and a Generator seeded with it give the same result
    d, pd = degrade(IMG, np.random.default_rng(7))
    assert d.tobytes() == a.tobytes() and pd == pa


def test_degrader_matches_degrade():
    cfg = DegradationConfig(scale_range=(2.0, 3.0))
    lq, p = Degrader(cfg)(IMG, 3)
    lq2, p2 = degrade(IMG, 3, cfg)
    assert p == p2 and lq.tobytes() == lq2.tobytes()
    assert 2.0 <= p["scale"] <= 3.0


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_apply_params_replays_exactly_after_json(seed):
    lq, params = degrade(IMG, seed)
    line = json.dumps(params)  # JSON-serialisable as it is
    replay = apply_params(IMG, json.loads(line))
    assert replay.tobytes() == lq.tobytes()
    # sample_params draws the same values degrade used
    assert sample_params(seed) == params


def test_params_hold_every_sampled_value():
    _, p = degrade(IMG, 11)
    for key in ("kernel_type", "kernel_radius", "kernel_size", "sigma_x", "sigma_y", "angle", "scale",
                "noise_sigma", "noise_seed", "jpeg_quality"):
        assert key in p, key
    assert p["kernel_size"] == 2 * p["kernel_radius"] + 1


@pytest.mark.parametrize("shape", [(96, 96, 3), (80, 112, 3), (64, 64), (64, 72, 1)])
def test_output_shape_and_dtype_equal_input(shape):
    img = textured(shape[0], shape[1])
    if len(shape) == 2:
        img = img[:, :, 0].copy()
    elif shape[2] == 1:
        img = img[:, :, :1].copy()
    for seed in range(3):
        lq, _ = degrade(img, seed)
        assert lq.shape == img.shape and lq.dtype == np.uint8


def test_bad_input_rejected():
    with pytest.raises(TypeError):
        degrade(IMG.astype(np.float32), 0)
    with pytest.raises(ValueError):
        degrade(np.zeros((8, 8, 4), np.uint8), 0)
    with pytest.raises(TypeError):
        degrade(IMG, "seed")


# ------------------------------------------------------------------------------------------------------ ranges
def test_defaults_are_the_spec():
    c = DegradationConfig()
    assert c.kernel_radii == (19, 20) and c.iso_prob == 0.5
    assert c.sigma_range == (0.1, 10.0) and c.scale_range == (0.8, 8.0)
    assert c.noise_range == (0.0, 20.0) and c.jpeg_range == (60, 100) and c.resize_back


def test_ranges_respected_and_iso_aniso_half_half():
    rng = np.random.default_rng(123)
    samples = [sample_params(rng) for _ in range(2000)]
    assert {p["kernel_radius"] for p in samples} == {19, 20}
    assert {p["kernel_size"] for p in samples} == {39, 41}
    for key, lo, hi in (("sigma_x", 0.1, 10), ("sigma_y", 0.1, 10), ("scale", 0.8, 8), ("noise_sigma", 0, 20),
                        ("angle", -math.pi, math.pi)):
        vals = np.array([p[key] for p in samples])
        assert vals.min() >= lo and vals.max() <= hi, key
        assert vals.max() - vals.min() > 0.9 * (hi - lo), key  # the whole range is used
    qs = [p["jpeg_quality"] for p in samples]
    assert all(isinstance(q, int) for q in qs) and min(qs) == 60 and max(qs) == 100
    iso = [p for p in samples if p["kernel_type"] == "iso"]
    aniso = [p for p in samples if p["kernel_type"] == "aniso"]
    assert 0.45 < len(iso) / len(samples) < 0.55  # 2000 draws: ±4.5 standard deviations
    assert all(p["sigma_x"] == p["sigma_y"] and p["angle"] == 0.0 for p in iso)
    assert all(p["sigma_x"] != p["sigma_y"] for p in aniso)
    assert len({p["noise_seed"] for p in samples}) > 1990


def test_custom_ranges_and_switches():
    cfg = DegradationConfig(kernel_radii=(3,), iso_prob=1.0, sigma_range=(2, 2), scale_range=(4, 4),
                            noise_range=None, jpeg_range=None, resize_back=False)
    lq, p = degrade(IMG, 0, cfg)
    assert p["kernel_size"] == 7 and p["kernel_type"] == "iso" and p["sigma_x"] == 2
    assert p["noise_sigma"] == 0.0 and p["jpeg_quality"] is None
    assert lq.shape == (24, 24, 3)


@pytest.mark.parametrize("bad", [dict(sigma_range=(0, 1)), dict(sigma_range=(3, 1)), dict(scale_range=(0, 2)),
                                 dict(jpeg_range=(0, 100)), dict(jpeg_range=(60, 101)), dict(jpeg_range=(60.5, 90)),
                                 dict(noise_range=(-1, 5)), dict(iso_prob=1.5), dict(kernel_radii=()),
                                 dict(downsample_interp="cubic")])
def test_config_validation(bad):
    with pytest.raises(ValueError):
        DegradationConfig(**bad)


# ------------------------------------------------------------------------------------------ parameter effects
def test_kernel_is_normalised_and_oriented():
    k = gaussian_kernel(41, 4.0, 1.0, 0.0)
    assert k.shape == (41, 41) and k.dtype == np.float32 and abs(float(k.sum()) - 1) < 1e-5
    ax = np.arange(41) - 20
    var_x = float((k.sum(axis=0) * ax**2).sum())
    var_y = float((k.sum(axis=1) * ax**2).sum())
    assert var_x == pytest.approx(16.0, rel=0.02) and var_y == pytest.approx(1.0, rel=0.02)
    k90 = gaussian_kernel(41, 4.0, 1.0, math.pi / 2)  # rotated by 90°: the long axis becomes y
    assert np.allclose(k90, k.T, atol=1e-6)


def test_more_blur_lowers_high_frequency_energy():
    energies = [laplacian_energy(apply_params(IMG, fixed(sigma_x=s, sigma_y=s))) for s in (0.1, 1.0, 2.0, 4.0, 8.0)]
    assert all(a > b for a, b in zip(energies, energies[1:])), energies
    assert energies[-1] < 0.02 * energies[0]
    aniso = laplacian_energy(apply_params(IMG, fixed(kernel_type="aniso", sigma_x=4.0, sigma_y=0.5, angle=0.7)))
    assert energies[3] < aniso < energies[0]


def test_lower_jpeg_quality_larger_error():
    def mse(q):
        return float(np.mean((apply_params(IMG, fixed(jpeg_quality=q)).astype(np.float64) - IMG) ** 2))

    errors = [mse(q) for q in (100, 90, 75, 60, 30)]
    assert all(a < b for a, b in zip(errors, errors[1:])), errors


@pytest.mark.parametrize("delta", [5.0, 10.0, 20.0])
def test_noise_std_matches_delta(delta):
    flat = np.full((128, 128, 3), 128, np.uint8)
    lq = apply_params(flat, fixed(noise_sigma=delta, noise_seed=4))
    resid = lq.astype(np.float64) - 128
    assert abs(resid.mean()) < 0.3
    assert resid.std() == pytest.approx(delta, rel=0.05)  # on the 0–255 scale (δ/255 on [0, 1])
    assert apply_params(flat, fixed(noise_sigma=0.0)).tobytes() == flat.tobytes()


@pytest.mark.parametrize("scale", [0.8, 1.5, 2.0, 4.0, 7.9])
def test_scale_sets_the_downsampled_size(scale):
    img = textured(96, 80)
    small = apply_params(img, fixed(scale=scale, resize_back=False))
    assert small.shape == (int(96 / scale), int(80 / scale), 3)
    back = apply_params(img, fixed(scale=scale))
    assert back.shape == img.shape
    if scale >= 2:  # information lost at the small size: the resized-back image is smoother
        assert laplacian_energy(back) < 0.7 * laplacian_energy(img)


def test_bench_entry_point_runs(capsys):
    from benchmarks.degradations import main

    assert main(["--bench", "--n", "2", "--size", "64"]) == 0
    assert "images/s" in capsys.readouterr().out
