"""LPIPS and DISTS as metrics, with random-backbone stand-ins: 0 for identical images, larger for more noise;
the torchvision backbone file is mapped into lpips' layout; missing weights give the 'needs ...' message."""

import pytest
import torch

from osdface.eval.perceptual import LPIPS_BACKBONES, DISTSMetric, LPIPSMetric
from osdface.weights import MissingWeightsError

pytest.importorskip("lpips")


def _pair(seed=0, size=64):
    g = torch.Generator().manual_seed(seed)
    base = torch.nn.functional.interpolate(torch.rand(2, 3, 8, 8, generator=g), size=(size, size), mode="bilinear")
    return base, g


def _noisy(x, sigma, g):
    return (x + torch.randn(x.shape, generator=g) * sigma).clamp(0, 1)


def test_lpips_random_backbone_zero_for_identical_and_monotonic():
    torch.manual_seed(0)
    metric = LPIPSMetric("alex", random_backbone=True)
    x, g = _pair()
    assert torch.equal(metric(x, x), torch.zeros(2, dtype=torch.float64))
    d = [metric(_noisy(x, s, g), x).mean().item() for s in (0.02, 0.1, 0.3)]
    assert 0 < d[0] < d[1] < d[2]
    as_uint8 = (x * 255).round().to(torch.uint8)
    assert torch.allclose(metric(as_uint8, as_uint8), torch.zeros(2, dtype=torch.float64))


def test_lpips_backbone_file_is_loaded_into_the_slices(tmp_path):
    tv = pytest.importorskip("torchvision")
    torch.manual_seed(1)
    state = tv.models.alexnet(weights=None).state_dict()
    torch.save(state, tmp_path / LPIPS_BACKBONES["alex"][0])
    metric = LPIPSMetric.from_weights_dir(tmp_path, "alex")
    net = metric.model.net
    assert torch.equal(net.slice1[0].weight, state["features.0.weight"])
    assert torch.equal(getattr(net.slice5, "10").bias, state["features.10.bias"])
    # a different backbone gives different distances (the weights are really used)
    x, g = _pair(seed=2)
    y = _noisy(x, 0.1, g)
    torch.manual_seed(5)
    other = LPIPSMetric("alex", random_backbone=True)
    assert not torch.allclose(metric(y, x), other(y, x))


def test_lpips_unavailable_and_wrong_file(tmp_path):
    with pytest.raises(MissingWeightsError, match=r"needs alexnet-owt-7be5be79\.pth .*get it from https://download"):
        LPIPSMetric.from_weights_dir(tmp_path, "alex")
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "vgg16-397923af.pth")
    with pytest.raises(MissingWeightsError, match="lacks features"):
        LPIPSMetric.from_weights_dir(tmp_path, "vgg")


def test_dists_with_a_random_stand_in():
    from osdface.networks.dists import DISTS

    metric = DISTSMetric(DISTS.random(seed=0, widths=(4, 8, 8, 8, 8)))
    x, g = _pair(seed=3)
    assert torch.allclose(metric(x, x), torch.zeros(2, dtype=torch.float64), atol=1e-6)
    d = [metric(_noisy(x, s, g), x).mean().item() for s in (0.02, 0.1, 0.3)]
    assert 0 < d[0] < d[1] < d[2]


def test_dists_unavailable_names_the_converter(tmp_path):
    with pytest.raises(MissingWeightsError, match="convert-dists"):
        DISTSMetric.from_weights_dir(tmp_path)
    with pytest.raises(MissingWeightsError, match="none given"):
        DISTSMetric.from_weights_dir(None)
