"""Deg (ArcFace angle), Deg-dlib and LMD: the angle formula, a random ArcFace stand-in, dlib on real faces."""

import math

import numpy as np
import pytest
import torch

from osdface.eval.identity import ArcFaceDeg, angle_degrees
from osdface.weights import MissingWeightsError

SMALL_ARCFACE = dict(units=(1, 1, 1, 1), widths=(8, 8, 16, 16), embedding_dim=32, se_reduction=4)


def test_angle_matches_an_independent_formula():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 7)), rng.normal(size=(5, 7))
    expected = [math.degrees(math.acos(np.dot(u, v) / np.linalg.norm(u) / np.linalg.norm(v))) for u, v in zip(a, b)]
    got = angle_degrees(torch.from_numpy(a), torch.from_numpy(b))
    assert got.tolist() == pytest.approx(expected, abs=1e-9)
    assert angle_degrees(torch.tensor([[1.0, 0.0]]), torch.tensor([[-2.0, 0.0]])).item() == pytest.approx(180.0)
    assert angle_degrees(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 3.0]])).item() == pytest.approx(90.0)


def test_arcface_deg_with_a_random_stand_in():
    from osdface.networks.arcface import ArcFaceIRSE

    torch.manual_seed(0)
    metric = ArcFaceDeg(ArcFaceIRSE(**SMALL_ARCFACE).eval())
    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.interpolate(torch.rand(2, 3, 16, 16, generator=g), size=(128, 128), mode="bilinear")
    assert metric(x, x).abs().max().item() < 1e-2  # arccos near 1 amplifies float32 round-off to ~1e-3 degrees
    d = [metric((x + torch.randn(x.shape, generator=g) * s).clamp(0, 1), x).mean().item() for s in (0.05, 0.4)]
    assert 0 < d[0] < d[1]


def test_arcface_deg_unavailable_message(tmp_path):
    with pytest.raises(MissingWeightsError, match=r"needs recognition_arcface_ir_se50\.pth.*get it from https://"):
        ArcFaceDeg.from_weights_dir(tmp_path)


@pytest.fixture
def real_faces(faces_dir):
    pytest.importorskip("dlib")
    from PIL import Image

    from osdface.data.dataset import resize_square

    files = sorted(faces_dir.glob("*.png"))[:3]
    arr = np.stack([resize_square(Image.open(f), 256) for f in files])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


def _blur(x, k):
    import cv2

    return torch.from_numpy(np.stack([cv2.GaussianBlur(np.ascontiguousarray(i.permute(1, 2, 0).numpy()), (0, 0), k)
                                      for i in x])).permute(0, 3, 1, 2).contiguous()


def test_lmd_and_deg_dlib_on_real_faces(real_faces):
    from osdface.eval.identity import DlibDeg
    from osdface.eval.landmarks import LandmarkDistance

    lmd, deg = LandmarkDistance(), DlibDeg()
    assert torch.equal(lmd(real_faces, real_faces), torch.zeros(3, dtype=torch.float64))
    assert deg(real_faces, real_faces).abs().max().item() < 1e-3
    light, heavy = _blur(real_faces, 2), _blur(real_faces, 8)
    assert 0 < lmd(light, real_faces).mean() < lmd(heavy, real_faces).mean()
    assert 0 < deg(light, real_faces).mean() < deg(heavy, real_faces).mean()
    # another person's face is further than a blurred copy of the same one
    other = real_faces.roll(1, dims=0)
    assert deg(other, real_faces).mean() > deg(light, real_faces).mean()
