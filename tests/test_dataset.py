"""Paired datasets, the deterministic split, and ``osdface degrade`` (the fixed benchmark set)."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("cv2", reason="opencv-python is required by osdface.data (see requirements.txt)")

from osdface.cli import main  # noqa: E402
from osdface.data.benchmark_set import BenchmarkSetError, build_benchmark_set, image_seed  # noqa: E402
from osdface.data.dataset import PairedFaceDataset, PreparedPairsDataset, resize_square, split_files  # noqa: E402
from osdface.data.degradations import DegradationConfig, apply_params, degrade  # noqa: E402


def make_image(h, w, seed):
    """An image that is clearly not left-right symmetric (bright left third), with texture."""
    g = np.random.default_rng(seed)
    img = g.integers(40, 200, (h, w, 3)).astype(np.float32)
    img = (img + np.roll(img, 1, 0) + np.roll(img, 1, 1)) / 3
    img[:, : w // 3] += 50
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture
def hq_dir(tmp_path):
    d = tmp_path / "hq_in"
    d.mkdir()
    for i in range(5):
        Image.fromarray(make_image(64, 64, i)).save(d / f"img_{i}.png")
    Image.fromarray(make_image(60, 80, 9)).save(d / "wide.png")  # not square: centre-cropped
    return d


def read(path):
    return np.asarray(Image.open(path).convert("RGB"))


# --------------------------------------------------------------------------------------------- PairedFaceDataset
def test_items_shapes_range_and_collation(hq_dir):
    ds = PairedFaceDataset(hq_dir, resolution=32, seed=0)
    assert len(ds) == 6
    item = ds[0]
    assert set(item) == {"lq", "hq", "path"}
    for key in ("lq", "hq"):
        t = item[key]
        assert t.shape == (3, 32, 32) and t.dtype == torch.float32
        assert float(t.min()) >= 0.0 and float(t.max()) <= 1.0
    assert isinstance(item["path"], str) and item["path"].endswith("img_0.png")
    assert not torch.equal(item["lq"], item["hq"])
    assert ds[5]["hq"].shape == (3, 32, 32)  # the 80x60 image
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3)))
    assert batch["lq"].shape == (3, 3, 32, 32) and len(batch["path"]) == 3


def test_deterministic_and_set_epoch_changes_degradation(hq_dir):
    a, b = PairedFaceDataset(hq_dir, resolution=32, seed=3), PairedFaceDataset(hq_dir, resolution=32, seed=3)
    for i in range(len(a)):
        assert torch.equal(a[i]["lq"], b[i]["lq"]) and torch.equal(a[i]["hq"], b[i]["hq"])
    epoch0 = [a[i]["lq"] for i in range(len(a))]
    a.set_epoch(1)
    assert a.epoch == 1
    assert all(not torch.equal(a[i]["lq"], epoch0[i]) for i in range(len(a)))
    a.set_epoch(0)
    assert all(torch.equal(a[i]["lq"], epoch0[i]) for i in range(len(a)))
    c = PairedFaceDataset(hq_dir, resolution=32, seed=4)
    assert not torch.equal(c[0]["lq"], epoch0[0])


def test_flip_applied_to_both_lq_and_hq(hq_dir):
    ds = PairedFaceDataset(hq_dir, resolution=32, flip=True, seed=0)
    flips = set()
    for epoch in range(4):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            item = ds[i]
            base = resize_square(Image.open(ds.files[i]).convert("RGB"), 32)
            rng = ds.rng_for(i)
            flipped = bool(rng.random() < 0.5)
            flips.add(flipped)
            hq = np.ascontiguousarray(base[:, ::-1]) if flipped else base
            lq, _ = degrade(hq, rng, ds.degradation)  # the LQ is made from the flipped HQ
            assert torch.equal(item["hq"], torch.from_numpy(hq).permute(2, 0, 1).float() / 255)
            assert torch.equal(item["lq"], torch.from_numpy(lq).permute(2, 0, 1).float() / 255)
            # bright left third of the source: after a flip it is on the right, in both LQ and HQ
            for t in (item["hq"], item["lq"]):
                left, right = float(t[:, :, :8].mean()), float(t[:, :, -8:].mean())
                assert (right > left) == flipped
    assert flips == {True, False}
    no_flip = PairedFaceDataset(hq_dir, resolution=32, flip=False, seed=0)
    for i in range(len(no_flip)):
        assert torch.equal(no_flip[i]["hq"], torch.from_numpy(
            resize_square(Image.open(no_flip.files[i]).convert("RGB"), 32)).permute(2, 0, 1).float() / 255)


def test_dataset_accepts_a_file_list_and_config(hq_dir):
    files = sorted(hq_dir.glob("img_*.png"))[:2]
    cfg = DegradationConfig(scale_range=(4, 4), noise_range=None, jpeg_range=None)
    ds = PairedFaceDataset(files, resolution=48, degradation=cfg)
    assert len(ds) == 2 and ds[1]["lq"].shape == (3, 48, 48)
    empty = hq_dir.parent / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no images"):
        PairedFaceDataset(empty, resolution=32)
    with pytest.raises(IndexError):
        ds[2]


# -------------------------------------------------------------------------------------------------- split_files
def test_split_is_deterministic_disjoint_and_stable():
    names = [f"face_{i:04d}.png" for i in range(1000)]
    train, val = split_files(names, val_fraction=0.1, seed=0)
    assert (train, val) == split_files(names, val_fraction=0.1, seed=0)
    assert not set(train) & set(val) and sorted(train + val) == names
    assert 60 < len(val) < 140
    # stable when files are added (and independent of order and folder)
    more = names + [f"new_{i}.png" for i in range(200)]
    train2, val2 = split_files(list(reversed(more)), val_fraction=0.1, seed=0)
    assert set(val) == set(val2) & set(names) and set(train) == set(train2) & set(names)
    _, val_paths = split_files([f"/a/b/{n}" for n in names], val_fraction=0.1, seed=0)
    assert [p.rsplit("/", 1)[1] for p in val_paths] == val
    assert split_files(names, val_fraction=0.1, seed=1)[1] != val
    assert split_files(names, val_fraction=0.0)[1] == [] and split_files(names, val_fraction=1.0)[0] == []
    with pytest.raises(ValueError):
        split_files(names, val_fraction=1.5)


# ------------------------------------------------------------------------------------------- osdface degrade
def test_degrade_command_builds_a_replayable_set(hq_dir, tmp_path, capsys):
    (hq_dir / "broken.png").write_bytes(b"not a png")
    (hq_dir / "notes.txt").write_text("skip me")
    out = tmp_path / "bench"
    rc = main(["degrade", "--input", str(hq_dir), "--output", str(out), "--seed", "5", "--size", "48", "-q"])
    err = capsys.readouterr().err
    assert rc == 1  # one bad input: reported, the rest written
    assert sum(line.startswith("error:") and "broken.png" in line for line in err.splitlines()) == 1
    lines = (out / "params.jsonl").read_text().splitlines()
    assert len(lines) == 6
    records = [json.loads(line) for line in lines]
    assert [r["name"] for r in records] == sorted(f"{p.stem}.png" for p in hq_dir.glob("*.png")
                                                 if p.name != "broken.png")
    assert sorted(p.name for p in out.iterdir()) == ["hq", "lq", "params.jsonl"]
    for r in records:
        hq, lq = read(out / "hq" / r["name"]), read(out / "lq" / r["name"])
        assert hq.shape == lq.shape == (48, 48, 3)
        assert r["seed"] == image_seed(5, r["source"]) and r["run_seed"] == 5 and r["size"] == 48
        for key in ("kernel_type", "kernel_size", "sigma_x", "sigma_y", "angle", "scale", "noise_sigma",
                    "jpeg_quality"):
            assert key in r
        assert apply_params(hq, r).tobytes() == lq.tobytes()  # a params line replays exactly
        assert degrade(hq, r["seed"])[0].tobytes() == lq.tobytes()

    # the same seed again: identical bytes (with 2 worker processes too)
    out2 = tmp_path / "bench2"
    assert main(["degrade", "-i", str(hq_dir), "-o", str(out2), "--seed", "5", "--size", "48", "-q",
                 "--workers", "2"]) == 1
    assert (out2 / "params.jsonl").read_bytes() == (out / "params.jsonl").read_bytes()
    for r in records:
        for sub in ("hq", "lq"):
            assert (out2 / sub / r["name"]).read_bytes() == (out / sub / r["name"]).read_bytes()

    # a non-empty output folder is refused, unless --overwrite
    capsys.readouterr()
    before = (out / "lq" / "img_0.png").read_bytes()
    assert main(["degrade", "-i", str(hq_dir), "-o", str(out), "--seed", "6", "--size", "48", "-q"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (out / "lq" / "img_0.png").read_bytes() == before
    assert main(["degrade", "-i", str(hq_dir), "-o", str(out), "--seed", "6", "--size", "48", "-q",
                 "--overwrite"]) == 1
    assert (out / "lq" / "img_0.png").read_bytes() != before

    # --limit takes the first N by name; each image keeps its own seed
    (hq_dir / "broken.png").unlink()
    out3 = tmp_path / "bench3"
    assert main(["degrade", "-i", str(hq_dir), "-o", str(out3), "--seed", "5", "--size", "48", "--limit", "2",
                 "-q"]) == 0
    assert (out3 / "params.jsonl").read_text().splitlines() == lines[:2]

    # the prepared set loads as a paired dataset
    ds = PreparedPairsDataset(out3)
    assert len(ds) == 2 and ds[0]["lq"].shape == ds[0]["hq"].shape == (3, 48, 48)


def test_degrade_refuses_unsafe_outputs(hq_dir, tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    assert main(["degrade", "-i", str(hq_dir), "-o", str(out), "--seed", "0", "-q"]) == 2
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    # writing hq/ over the input folder is refused even with --overwrite
    src = tmp_path / "set" / "hq"
    src.mkdir(parents=True)
    Image.fromarray(make_image(40, 40, 0)).save(src / "a.png")
    original = (src / "a.png").read_bytes()
    with pytest.raises(BenchmarkSetError, match="input folder"):
        build_benchmark_set(src, tmp_path / "set", 0, size=32, overwrite=True)
    assert (src / "a.png").read_bytes() == original
    assert main(["degrade", "-i", str(tmp_path / "missing"), "-o", str(tmp_path / "x"), "--seed", "0"]) == 2
    assert not (tmp_path / "x").exists()
    assert "no such file" in capsys.readouterr().err


def test_prepared_pairs_requires_matching_names(tmp_path):
    root = tmp_path / "set"
    (root / "lq").mkdir(parents=True)
    with pytest.raises(ValueError, match="hq/"):
        PreparedPairsDataset(root)
    (root / "hq").mkdir()
    Image.fromarray(make_image(32, 32, 0)).save(root / "hq" / "a.png")
    Image.fromarray(make_image(32, 32, 1)).save(root / "lq" / "b.png")
    with pytest.raises(ValueError, match="differ"):
        PreparedPairsDataset(root)


# ------------------------------------------------------------------------------------------------ real photos
def test_real_faces(faces_dir):
    train, val = split_files(sorted(faces_dir.glob("*.png")), val_fraction=0.1, seed=0)
    assert 0.03 < len(val) / (len(train) + len(val)) < 0.2
    ds = PairedFaceDataset(val[:4], resolution=512, seed=0)
    for i in range(len(ds)):
        item = ds[i]
        assert item["lq"].shape == item["hq"].shape == (3, 512, 512)
        mse = float(((item["lq"] - item["hq"]) ** 2).mean())
        psnr = 10 * np.log10(1 / mse)
        assert 12 < psnr < 45, (item["path"], psnr)  # degraded, but still the same picture
