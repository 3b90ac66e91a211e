"""FID machinery: the Fréchet distance against independent formulas, statistics files, the Inception loader."""

import numpy as np
import pytest
import torch

from osdface.eval.fid import (INCEPTION_FILE, FIDAccumulator, InceptionFeatures, feature_stats, frechet_distance,
                              load_stats, save_stats)
from osdface.weights import MissingWeightsError


def _scipy_fid(f1, f2):
    """The textbook formula with a general matrix square root (as pytorch-fid computes it)."""
    linalg = pytest.importorskip("scipy.linalg")
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2)
    covmean = np.real(covmean)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_frechet_distance_matches_scipy_sqrtm_on_random_features():
    rng = np.random.default_rng(0)
    f1 = rng.normal(size=(200, 16))
    f2 = rng.normal(loc=0.3, scale=1.5, size=(150, 16)) @ rng.normal(size=(16, 16)) * 0.5
    ours = frechet_distance(*feature_stats(f1), *feature_stats(f2))
    assert ours == pytest.approx(_scipy_fid(f1, f2), rel=1e-8)


def test_frechet_distance_closed_forms():
    # same Gaussian → 0; shifted mean only → |Δμ|²; diagonal covariances → Σ (√a − √b)²
    mu, sigma = np.zeros(4), np.diag([1.0, 2.0, 3.0, 4.0])
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-10)
    assert frechet_distance(mu, sigma, mu + 2.0, sigma) == pytest.approx(16.0)
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 16.0])
    assert frechet_distance(np.zeros(3), np.diag(a), np.zeros(3), np.diag(b)) == pytest.approx(
        np.sum((np.sqrt(a) - np.sqrt(b)) ** 2))


def test_fid_grows_with_the_shift_and_is_symmetric():
    rng = np.random.default_rng(1)
    base = rng.normal(size=(300, 8))
    stats = feature_stats(base)
    d = [frechet_distance(*stats, *feature_stats(rng.normal(loc=s, size=(300, 8)))) for s in (0.0, 0.5, 1.0)]
    assert d[0] < d[1] < d[2]
    other = feature_stats(rng.normal(loc=0.5, size=(300, 8)))
    assert frechet_distance(*stats, *other) == pytest.approx(frechet_distance(*other, *stats), rel=1e-9)


def test_stats_files_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    mu, sigma = feature_stats(rng.normal(size=(20, 5)))
    path = save_stats(tmp_path / "ref.npz", mu, sigma)
    mu2, sigma2 = load_stats(path)
    assert np.array_equal(mu, mu2) and np.array_equal(sigma, sigma2)
    # BasicSR's layout: a torch file with 'mean' / 'cov', read with weights_only=True
    torch.save({"mean": torch.from_numpy(mu), "cov": torch.from_numpy(sigma)}, tmp_path / "ref.pth")
    mu3, sigma3 = load_stats(tmp_path / "ref.pth")
    assert np.allclose(mu, mu3) and np.allclose(sigma, sigma3)
    np.savez(tmp_path / "bad.npz", something=mu)
    with pytest.raises(ValueError, match="mu/sigma or mean/cov"):
        load_stats(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="at least 2"):
        feature_stats(np.zeros((1, 5)))


def test_missing_inception_weights_say_what_and_where(tmp_path):
    with pytest.raises(MissingWeightsError, match=f"needs {INCEPTION_FILE}.*get it from https://"):
        InceptionFeatures.from_weights_dir(tmp_path)


def test_inception_loads_a_weight_file_and_gives_2048_features(tmp_path, monkeypatch):
    pytest.importorskip("torch_fidelity")
    from torch_fidelity import feature_extractor_inceptionv3 as fe

    # a random-init network of the real layout (its own loader bypassed once), saved as a weights file
    with monkeypatch.context() as m:
        m.setattr(fe.torch, "load", lambda *a, **k: {})
        m.setattr(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd, strict=True: None)
        torch.manual_seed(0)
        net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path="x")
    torch.save(net.state_dict(), tmp_path / INCEPTION_FILE)

    ext = InceptionFeatures.from_weights_dir(tmp_path)
    imgs = (torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    feats = ext(imgs)
    assert feats.shape == (2, 2048) and feats.dtype == torch.float64
    assert torch.allclose(feats[:1], ext(imgs[:1]), atol=1e-5)  # batch-independent (eval mode)
    with pytest.raises(TypeError, match="uint8"):
        ext(imgs.float())


def test_accumulator_compares_sets_and_reference_stats():
    rng = np.random.default_rng(3)
    table = {0: rng.normal(size=(40, 6)), 1: rng.normal(loc=1.0, size=(40, 6))}
    acc = FIDAccumulator(lambda images: torch.from_numpy(table[int(images[0, 0, 0, 0])]))  # a stub extractor
    acc.update("a", torch.zeros(1, 3, 2, 2, dtype=torch.uint8))
    acc.update("b", torch.ones(1, 3, 2, 2, dtype=torch.uint8))
    expected = frechet_distance(*feature_stats(table[0]), *feature_stats(table[1]))
    assert acc.fid("a", "b") == pytest.approx(expected)
    assert acc.fid("a", feature_stats(table[0])) == pytest.approx(0.0, abs=1e-9)
