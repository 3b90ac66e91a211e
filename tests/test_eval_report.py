"""The report: the paper's column order, number formats, inf, unavailable lines, JSON / CSV, the paper's rows."""

import csv
import json
import math

from osdface.eval.report import (PAPER_ROWS, EvalReport, MethodResult, format_value, ordered_columns, paper_rows,
                                 to_markdown, write_report)


def _report():
    ours = MethodResult("ours", summary={"PSNR": math.inf, "SSIM": 1.0, "LPIPS": 0.33651, "LMD": 5.2871},
                        per_image={"a": {"PSNR": math.inf, "SSIM": 1.0, "LPIPS": 0.3, "LMD": 5.0},
                                   "b": {"PSNR": math.inf, "SSIM": 1.0, "LPIPS": 0.37302, "LMD": 5.5742}},
                        n_images=2)
    return EvalReport(methods=[ours], metrics=["PSNR", "SSIM", "LPIPS", "LMD", "DISTS", "FID(HQ)"],
                      unavailable={"DISTS": "needs dists/ in W, get it from X"}, has_gt=True)


def test_columns_follow_the_paper_then_extras():
    cols = ordered_columns(["SSIM", "PSNR", "FID(HQ)", "LMD", "LPIPS", "MUSIQ", "Deg-dlib", "DISTS"], True)
    assert cols == ["LPIPS", "DISTS", "MUSIQ", "LMD", "FID(HQ)", "PSNR", "SSIM", "Deg-dlib"]
    assert ordered_columns(["NIQE", "FID(ref)", "MUSIQ", "CLIPIQA", "MANIQA"], False) == \
        ["CLIPIQA", "MANIQA", "MUSIQ", "NIQE", "FID(ref)"]


def test_number_formats():
    assert format_value("LPIPS", 0.33651) == ".3365"
    assert format_value("PSNR", math.inf) == "inf"
    assert format_value("PSNR", 27.123) == "27.12"
    assert format_value("NIQE", 3.8841) == "3.884"
    assert format_value("DISTS", None) == "n/a"
    assert format_value("FID(HQ)", float("nan")) == "n/a"


def test_markdown_table_and_unavailable_message():
    md = to_markdown(_report())
    lines = md.splitlines()
    assert lines[0] == "| method | images | LPIPS↓ | DISTS↓ | LMD↓ | FID(HQ)↓ | PSNR↑ | SSIM↑ |"
    assert lines[1] == "|---|---|---|---|---|---|---|---|"
    assert lines[2] == "| ours | 2 | .3365 | n/a | 5.287 | n/a | inf | 1.0000 |"
    assert "- DISTS: unavailable: needs dists/ in W, get it from X" in lines


def test_json_and_csv(tmp_path):
    paths = write_report(_report(), tmp_path / "sub" / "run1.json")
    assert {p.name for p in paths.values()} == {"run1.json", "run1.md", "run1.csv"}
    assert all(p.parent == tmp_path / "sub" for p in paths.values())
    data = json.loads(paths["json"].read_text())
    assert data["methods"][0]["summary"]["PSNR"] == "inf"  # strict JSON has no infinity
    assert data["unavailable"]["DISTS"].startswith("unavailable: needs")
    assert data["higher_is_better"]["PSNR"] is True and data["higher_is_better"]["LPIPS"] is False
    rows = list(csv.reader(paths["csv"].open()))
    assert rows[0] == ["method", "image", "LPIPS", "DISTS", "LMD", "PSNR", "SSIM"]  # FID is per set, not per image
    assert rows[1][:2] == ["ours", "a"] and rows[1][5] == "inf"
    assert float(rows[2][2]) == 0.37302 and rows[2][3] == ""
    folder = write_report(_report(), tmp_path / "folder")
    assert folder["md"] == tmp_path / "folder" / "report.md"


def test_paper_rows_are_the_spec_values():
    rows = {r.name: r.summary for r in paper_rows(None, True)}
    assert rows["OSDFace (paper, celeba-test)"]["LPIPS"] == 0.3365
    assert rows["CodeFormer (paper, celeba-test)"]["FID(HQ)"] == 26.86
    real = paper_rows(None, False)
    assert [r.name for r in real] == [f"OSDFace (paper, {k})" for k in ("wider-test", "lfw-test", "webphoto-test")]
    assert PAPER_ROWS["lfw-test"]["OSDFace"]["MANIQA"] == 0.5493
    report = _report()
    report.methods += paper_rows("celeba-test", True)
    md = to_markdown(report)
    assert "| OSDFace (paper, celeba-test) |  | .3365 | .1773 | 5.287 | 17.06 | n/a | n/a |" in md
