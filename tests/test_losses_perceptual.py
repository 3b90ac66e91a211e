"""Stage-2 perceptual and identity losses: Sobel map, DISTS (+ converter), EA-DISTS, ArcFace identity loss.

Random-init stand-ins only (no downloads). The converter and loader tests write small fake weight files whose keys
are those of the real files: torchvision's vgg16-397923af.pth (``features.{i}.weight/bias``, ``classifier.*``),
the DISTS authors' weights.pt (``alpha``, ``beta``: (1, 1475, 1, 1)), facexlib's recognition_arcface_ir_se50.pth
(the state dict of ``facexlib.recognition.Backbone(50, 0.6, 'ir_se')``).
"""

import math

import pytest
import torch
import torch.nn.functional as F

from osdface.weights import MissingWeightsError
from osdface.losses import EADISTS, IdentityLoss, sobel_magnitude
from osdface.networks import DISTS, load_arcface, load_dists
from osdface.networks.arcface import ArcFaceIRSE
from osdface.losses.identity import crop_for_arcface

SMALL_DISTS = dict(widths=(8, 16, 16, 32, 32))
SMALL_ARCFACE = dict(units=(1, 1, 1, 1), widths=(16, 32, 32, 64))


def structured_image(size=64, seed=0):
    """A face-like test picture in [0, 1]: smooth shading, a dark disc, a few stripes, mild texture."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    base = 0.5 + 0.3 * xx * yy
    disc = ((xx - 0.2) ** 2 + (yy + 0.1) ** 2 < 0.2).float()
    stripes = (torch.sin(12 * xx) > 0.6).float() * (yy > 0.4).float()
    img = torch.stack([base - 0.3 * disc + 0.2 * stripes, base - 0.2 * disc, base + 0.1 * stripes])
    img = img + 0.02 * torch.rand(3, size, size, generator=g)
    return img.clamp(0, 1).unsqueeze(0)


# ----------------------------------------------------------------------------------------------------- Sobel
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_sobel_of_constant_image_is_the_floor(dtype):
    img = torch.full((2, 3, 9, 11), 0.37, dtype=dtype)
    out = sobel_magnitude(img)
    assert out.shape == img.shape and out.dtype == dtype
    tol = {torch.float32: 1e-6, torch.float64: 1e-12, torch.bfloat16: 1e-2}[dtype]
    torch.testing.assert_close(out.double(), torch.full(out.shape, math.sqrt(1e-6), dtype=torch.float64),
                               rtol=tol, atol=tol * 1e-3)


def test_sobel_of_vertical_step_matches_hand_computation():
    left, right = torch.tensor([0.2, 0.4, 0.6]), torch.tensor([1.0, 1.0, 0.0])
    img = torch.empty(1, 3, 6, 8)
    img[..., :4] = left.view(3, 1, 1)
    img[..., 4:] = right.view(3, 1, 1)
    # by hand: luma(left) = .299*.2 + .587*.4 + .114*.6 = 0.363, luma(right) = .299 + .587 = 0.886; columns 3 and 4
    # touch the step: gx = (1 + 2 + 1) * (0.886 - 0.363) = 2.092, gy = 0; all other columns (borders included,
    # thanks to replicate padding) are flat
    step = 4 * (0.886 - 0.363)
    expected = torch.full((6, 8), math.sqrt(1e-6))
    expected[:, 3:5] = math.sqrt(step**2 + 1e-6)
    out = sobel_magnitude(img)
    for c in range(3):
        torch.testing.assert_close(out[0, c], expected, rtol=1e-5, atol=1e-6)
    # the same step turned by 90 degrees gives the same map, transposed (gy path)
    torch.testing.assert_close(sobel_magnitude(img.transpose(2, 3)), out.transpose(2, 3))


def test_sobel_rejects_bad_input_and_passes_gradients():
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        sobel_magnitude(torch.rand(1, 1, 8, 8))
    with pytest.raises(TypeError, match="floating"):
        sobel_magnitude(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    x = structured_image(16).requires_grad_(True)
    sobel_magnitude(x).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------------------------ DISTS
def test_ea_dists_zero_for_identical_images_and_grows_with_noise():
    ea = EADISTS(DISTS.random(seed=0))  # VGG16-sized random stand-in
    x = structured_image(48) * 2 - 1  # the generator's range
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    levels = (0.03, 0.1, 0.3)
    with torch.no_grad():
        d = ea(torch.cat([x, *(x + s * noise for s in levels)]), x.expand(4, -1, -1, -1))
        plain = ea.dists((x + 1) / 2 + 0.05 * noise, (x + 1) / 2).item()  # DISTS alone, same noise as d[2]
    assert d[0].abs() <= 1e-6
    assert 0 < d[1] < d[2] < d[3], d
    assert d[2].item() > plain + 1e-4 and plain > 0  # the edge term adds to plain DISTS


def test_ea_dists_is_the_sum_of_two_dists_terms_per_image_and_passes_gradients():
    dists = DISTS.random(seed=3, **SMALL_DISTS)
    ea = EADISTS(dists)
    x = (structured_image(32, seed=0) * 2 - 1).repeat(2, 1, 1, 1)
    x[1] = x[1].flip(-1)
    y = (structured_image(32, seed=5) * 2 - 1).repeat(2, 1, 1, 1)
    x.requires_grad_(True)
    d = ea(x, y)
    x01, y01 = (x + 1) / 2, (y + 1) / 2
    by_hand = dists(x01, y01) + dists(sobel_magnitude(x01) / 4, sobel_magnitude(y01) / 4)
    torch.testing.assert_close(d, by_hand, rtol=1e-5, atol=1e-6)
    assert d.shape == (2,) and d[0] != d[1]
    d.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in dists.parameters())  # a fixed metric
    with pytest.raises(ValueError, match="one shape"):
        ea(x, y[:, :, :16])


def test_dists_seeded_stand_in_is_reproducible_and_positive():
    a, b = DISTS.random(seed=7, **SMALL_DISTS), DISTS.random(seed=7, **SMALL_DISTS)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
    assert (a.alpha > 0).all() and (a.beta > 0).all()
    assert not torch.equal(a.alpha, DISTS.random(seed=8, **SMALL_DISTS).alpha)
    x, y = structured_image(32, 0), structured_image(32, 9)
    assert 0 < a(x, y).item() < 1


def _reference_dists(vgg_features, alpha, beta, x, y):
    """DISTS written from the paper, on torchvision's own VGG16 modules (max pooling swapped for L2 pooling)."""
    k = torch.tensor([0.5, 1.0, 0.5])
    k = (k[:, None] * k[None, :]) / 4

    def feats(img):
        h = (img - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(
            1, 3, 1, 1)
        out = [img]
        for i, layer in enumerate(vgg_features[:30]):
            if isinstance(layer, torch.nn.MaxPool2d):
                c = h.shape[1]
                h = torch.sqrt(F.conv2d(h * h, k.expand(c, 1, 3, 3), stride=2, padding=1, groups=c) + 1e-12)
            else:
                h = layer(h)
            if i in (3, 8, 15, 22, 29):
                out.append(h)
        return out

    w = alpha.sum() + beta.sum()
    a, b = alpha.flatten() / w, beta.flatten() / w
    total, start = torch.zeros(x.shape[0]), 0
    for u, v in zip(feats(x), feats(y)):
        n = u.shape[1]
        mu, mv = u.mean((2, 3)), v.mean((2, 3))
        su, sv = u.var((2, 3), unbiased=False), v.var((2, 3), unbiased=False)
        cov = (u * v).mean((2, 3)) - mu * mv
        texture = (2 * mu * mv + 1e-6) / (mu**2 + mv**2 + 1e-6)
        structure = (2 * cov + 1e-6) / (su + sv + 1e-6)
        total = total + (texture * a[start:start + n] + structure * b[start:start + n]).sum(1)
        start += n
    return 1 - total


@pytest.fixture(scope="module")
def fake_dists_sources(tmp_path_factory):
    """vgg16-397923af.pth with torchvision's real VGG16 key names (random conv weights; a tiny stand-in for the
    fully connected head, which the converter drops) and a weights.pt with DISTS's alpha/beta keys and shapes."""
    from torchvision.models import vgg16

    folder = tmp_path_factory.mktemp("dists_src")
    torch.manual_seed(0)
    vgg = vgg16(weights=None).eval()
    state = {f"features.{k}": v for k, v in vgg.features.state_dict().items()}
    state.update({f"classifier.{i}.{p}": torch.zeros(2) for i in (0, 3, 6) for p in ("weight", "bias")})
    torch.save(state, folder / "vgg16-397923af.pth")
    g = torch.Generator().manual_seed(1)
    alpha_beta = {"alpha": torch.rand(1, 1475, 1, 1, generator=g) * 0.02,
                  "beta": torch.rand(1, 1475, 1, 1, generator=g) * 0.02}
    torch.save(alpha_beta, folder / "weights.pt")
    return folder, vgg.features, alpha_beta


def test_convert_dists_round_trip_matches_reference_formula(fake_dists_sources, tmp_path):
    from osdface.cli import main

    src, vgg_features, alpha_beta = fake_dists_sources
    out = tmp_path / "dists"
    assert main(["convert-dists", "--vgg", str(src / "vgg16-397923af.pth"), "--dists", str(src / "weights.pt"),
                 "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "diffusion_pytorch_model.safetensors",
                                                     "sources.json"]
    model = load_dists(out)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    torch.testing.assert_close(model.alpha, alpha_beta["alpha"])
    torch.testing.assert_close(model.features[28].weight, vgg_features[28].weight)
    x, y = structured_image(40, 0), structured_image(40, 3).flip(-1)
    with torch.no_grad():
        ours = model(torch.cat([x, x]), torch.cat([y, x]))
        ref = _reference_dists(vgg_features, alpha_beta["alpha"], alpha_beta["beta"], x, y)
    torch.testing.assert_close(ours[0:1], ref, rtol=1e-4, atol=1e-6)
    assert ours[0] > 0 and abs(ours[1]) <= 1e-6
    half = load_dists(out, dtype=torch.bfloat16)  # bf16 network, float32 statistics
    assert half.features[0].weight.dtype == torch.bfloat16
    with torch.no_grad():
        torch.testing.assert_close(half(x, y), ref, rtol=0.1, atol=1e-3)
    # a second conversion into the same (now non-empty) folder needs --overwrite
    assert main(["convert-dists", "--vgg", str(src / "vgg16-397923af.pth"), "--dists", str(src / "weights.pt"),
                 "--out", str(out)]) == 2


def test_convert_dists_rejects_wrong_files(fake_dists_sources, tmp_path, capsys):
    from osdface.convert import ConversionError
    from osdface.networks.dists import convert_dists

    src, _, alpha_beta = fake_dists_sources
    vgg = src / "vgg16-397923af.pth"
    torch.save({"alpha": alpha_beta["alpha"][:, :100], "beta": alpha_beta["beta"]}, tmp_path / "short.pt")
    with pytest.raises(ConversionError, match=r"wrong shape for alpha: \(1, 100, 1, 1\)"):
        convert_dists(vgg, tmp_path / "short.pt", tmp_path / "o1")
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3), "features.1.running_mean": torch.zeros(64)},
               tmp_path / "vgg16_bn.pth")
    with pytest.raises(ConversionError, match="vgg16_bn"):
        convert_dists(tmp_path / "vgg16_bn.pth", src / "weights.pt", tmp_path / "o2")
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


@pytest.mark.filterwarnings("ignore:The `local_dir_use_symlinks` argument is deprecated")  # diffusers → hf_hub
def test_missing_dists_weights_give_one_clear_line(tmp_path, monkeypatch, capsys):
    from osdface.cli import main

    monkeypatch.delenv("OSDFACE_DISTS", raising=False)
    for call in (lambda: load_dists(), lambda: load_dists(tmp_path), lambda: load_dists(tmp_path / "absent"),
                 lambda: load_dists("someone/dists-vgg16")):  # HF_HUB_OFFLINE=1: fails at once
        with pytest.raises(MissingWeightsError) as err:
            call()
        text = str(err.value)
        assert "\n" not in text
        for needle in ("vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth",
                       "weights.pt", "github.com/dingkeyan93/DISTS", "osdface convert-dists"):
            assert needle in text
    assert main(["convert-dists", "--vgg", str(tmp_path / "vgg16-397923af.pth"), "--dists",
                 str(tmp_path / "weights.pt"), "--out", str(tmp_path / "out")]) == 2
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 1 and err_lines[0].startswith("error: not found:") and "weights.pt" in err_lines[0]
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------------- identity
def test_identity_loss_zero_for_same_face_positive_for_other_and_gradients_flow():
    torch.manual_seed(0)
    loss = IdentityLoss(ArcFaceIRSE(**SMALL_ARCFACE))
    a = structured_image(128, 0) * 2 - 1
    b = (structured_image(128, 4) * 2 - 1).flip(-1).roll(20, dims=-2)
    x = torch.cat([a, a]).requires_grad_(True)
    y = torch.cat([a, b])
    d = loss(x, y)
    assert d.shape == (2,)
    assert abs(d[0].item()) <= 1e-6 and d[1].item() > 1e-3
    d.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad[1].abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in loss.network.parameters())
    loss.train()
    assert loss.training and not loss.network.training  # BatchNorm statistics and dropout stay frozen
    emb = loss.embed(y)
    assert emb.shape == (2, 512) and emb.dtype == torch.float32
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(2))
    torch.testing.assert_close(1 - (emb[0] * emb[1]).sum(), d[1].detach())


def test_arcface_crop_is_the_fixed_face_region():
    x = -torch.ones(1, 3, 512, 512)
    x[..., 70:446, 64:440] = 1.0  # the documented region for 512² inputs
    crop = crop_for_arcface(x)
    assert crop.shape == (1, 3, 112, 112)
    torch.testing.assert_close(crop, torch.ones_like(crop))
    x[..., 69, 100] = -1.0  # one row above the region changes nothing, one pixel inside does
    torch.testing.assert_close(crop_for_arcface(x), crop)
    x[..., 70, 100] = -1.0
    assert crop_for_arcface(x).min() < 1
    with pytest.raises(ValueError, match="square"):
        crop_for_arcface(torch.zeros(1, 3, 512, 256))


def test_identity_network_loads_facexlibs_ir_se50_file_and_matches_it(tmp_path):
    arch = pytest.importorskip("facexlib.recognition.arcface_arch")
    torch.manual_seed(0)
    reference = arch.Backbone(num_layers=50, drop_ratio=0.6, mode="ir_se")
    for m in reference.modules():  # non-trivial BatchNorm statistics, so a misplaced layer shows
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
    reference.eval()
    ours = ArcFaceIRSE()
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in reference.state_dict().items()}
    torch.save(reference.state_dict(), tmp_path / "recognition_arcface_ir_se50.pth")
    net = load_arcface(tmp_path)  # a folder holding the file
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    face = torch.rand(1, 3, 112, 112) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(net(face), reference(face), rtol=1e-4, atol=1e-5)


def test_missing_or_wrong_identity_weights_give_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.delenv("OSDFACE_ARCFACE", raising=False)
    torch.save({"input_layer.0.weight": torch.zeros(64, 3, 3, 3)}, tmp_path / "other.pth")
    torch.save({"net": torch.nn.Linear(1, 1)}, tmp_path / "pickled_module.pth")
    cases = [(None, "No ArcFace weights given"), (tmp_path / "nothing.pth", "no such file"),
             (tmp_path / "other.pth", "not an ArcFace IR-SE-50 state dict"),
             (tmp_path / "pickled_module.pth", "refused: the pickle references torch.nn.modules.linear.Linear"),
             (tmp_path, "no single ArcFace weight file")]
    for path, reason in cases:
        with pytest.raises(MissingWeightsError) as err:
            load_arcface(path)
        text = str(err.value)
        assert "\n" not in text and reason in text, text
        assert "recognition_arcface_ir_se50.pth" in text and "λ_ID" in text
        assert "github.com/xinntao/facexlib/releases" in text
