"""``osdface eval`` / ``evaluate-model``: exit codes, the table, unavailable metrics, pairing errors, the split,
and the whole degrade → restore → evaluate → report path with the tiny model."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from osdface.cli import main
from osdface.eval.psnr_ssim import psnr


def _write_set(folder, n=3, size=48, seed=0, ext="png"):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        small = rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8)
        Image.fromarray(small).resize((size, size), Image.Resampling.BILINEAR).save(folder / f"img{i}.{ext}")
    return folder


def test_eval_identical_sets_psnr_inf(tmp_path, capsys):
    gt = _write_set(tmp_path / "gt")
    rc = main(["eval", "--pred", str(gt), "--gt", str(gt), "--metrics", "psnr,ssim", "psnr-rgb", "ssim-rgb",
               "--out", str(tmp_path / "rep" / "r.json")])
    out = capsys.readouterr().out
    assert rc == 0
    assert "| gt | 3 | inf | 1.0000 | inf | 1.0000 |" in out
    data = json.loads((tmp_path / "rep" / "r.json").read_text())
    assert data["methods"][0]["summary"]["PSNR"] == "inf"
    assert (tmp_path / "rep" / "r.csv").read_text().count("\n") == 4  # header + 3 images


def test_eval_unavailable_metric_is_listed_and_the_rest_computed(tmp_path, capsys):
    gt = _write_set(tmp_path / "gt", seed=0)
    pred = _write_set(tmp_path / "pred", seed=1, ext="jpg")  # pairs by stem across extensions
    rc = main(["eval", "--pred", str(pred), "--gt", str(gt), "--metrics", "psnr", "lpips", "--weights-dir",
               str(tmp_path / "weights")])
    out = capsys.readouterr().out
    assert rc == 1
    assert "- LPIPS: unavailable: needs alexnet-owt-7be5be79.pth" in out
    row = [line for line in out.splitlines() if line.startswith("| pred |")][0]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2] == "n/a" and float(cells[3]) > 0  # LPIPS n/a, PSNR a number


def test_eval_input_errors(tmp_path, capsys):
    gt = _write_set(tmp_path / "gt", n=3)
    pred = _write_set(tmp_path / "pred", n=2)
    assert main(["eval", "--pred", str(pred), "--gt", str(gt), "--metrics", "psnr"]) == 2
    assert "1 ground-truth image(s) without prediction (e.g. img2.png)" in capsys.readouterr().err
    assert main(["eval", "--pred", str(pred), "--metrics", "psnr"]) == 2
    assert "compares with the ground truth" in capsys.readouterr().err
    assert main(["eval", "--pred", str(gt), "--gt", str(gt), "--metrics", "brisque"]) == 2
    assert "unknown metric 'brisque'" in capsys.readouterr().err
    small = _write_set(tmp_path / "small", n=3, size=40)
    assert main(["eval", "--pred", str(small), "--gt", str(gt), "--metrics", "psnr"]) == 2
    assert "paired images must have one size" in capsys.readouterr().err


def test_val_split_is_the_training_split(tmp_path):
    from osdface.data.dataset import split_files
    from osdface.eval.evaluate_model import select_files
    from osdface.image_io import list_images

    _write_set(tmp_path / "hq", n=40, size=8)
    files = list_images(tmp_path / "hq")[0]
    train, val = split_files(files)
    assert select_files(tmp_path / "hq", "val") == val and val
    assert select_files(tmp_path / "hq", "train", limit=5) == train[:5]


def test_evaluate_model_end_to_end_with_the_tiny_model(tmp_path, tiny_pipe):
    from osdface.eval.evaluate_model import LQ_ROW, evaluate_model

    hq = _write_set(tmp_path / "faces", n=3, size=80)
    out = tmp_path / "run"
    report, paths = evaluate_model("tiny", hq, out, seed=0, metrics=["psnr", "ssim"], pipe=tiny_pipe, batch_size=2,
                                   grid=2, log=lambda line: None)
    names = [m.name for m in report.methods]
    assert names == ["tiny (tiny)", LQ_ROW] and all(m.n_images == 3 for m in report.methods)
    for f in ("report.md", "report.json", "report.csv", "grid.png", "bench/params.jsonl"):
        assert (out / f).is_file(), f
    assert sorted(p.name for p in (out / "restored").iterdir()) == ["img0.png", "img1.png", "img2.png"]
    assert Image.open(out / "bench" / "hq" / "img0.png").size == (64, 64)  # the tiny model's process size
    # the LQ row's PSNR is the PSNR of the written LQ against the written HQ
    load = lambda p: torch.from_numpy(np.array(Image.open(p).convert("RGB"))).permute(2, 0, 1)[None]  # noqa: E731
    direct = [psnr(load(out / "bench" / "lq" / f"img{i}.png"), load(out / "bench" / "hq" / f"img{i}.png")).item()
              for i in range(3)]
    assert report.methods[1].summary["PSNR"] == pytest.approx(np.mean(direct))
    # the same seed gives the same degradation as `osdface degrade` on the same files
    assert main(["degrade", "-i", str(hq), "-o", str(tmp_path / "deg"), "--seed", "0", "--size", "64", "-q"]) == 0
    for i in range(3):
        name = f"img{i}.png"
        assert (tmp_path / "deg" / "lq" / name).read_bytes() == (out / "bench" / "lq" / name).read_bytes()
    # a non-empty output folder is refused without --overwrite
    from osdface.eval.image_sets import EvalInputError

    with pytest.raises(EvalInputError, match="not empty"):
        evaluate_model("tiny", hq, out, pipe=tiny_pipe, metrics=["psnr"])
