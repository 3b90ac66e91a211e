"""Tests for the ``osdface restore --has_aligned`` command line (osdface/cli/restore.py, osdface/restore.py).

Most runs call :func:`osdface.cli.main` in-process with a tiny random nano model (process_size 64) made once per
module, so the whole file stays fast on a CPU.  One end-to-end run starts ``python -m osdface restore`` in a
subprocess with the bundled model (osdface/assets/osdface-nano, 512x512 output).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from osdface.cli import main
from osdface.restore import output_names
from osdface.weights import BUNDLED_NANO
from osdface.pipeline import OSDFacePipeline

from .test_image_io import _png_header_only

SIZE = 64  # process_size of the test model: every restored face is SIZE x SIZE


# --------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module", autouse=True)
def _offline_single_thread():
    """Never contact the Hub from these tests (also inherited by the subprocess run).

    One intra-op thread: on a small, shared CPU machine PyTorch's thread pool makes these tiny models many
    times slower (threads wait for each other at every operator); results do not depend on it.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TOKENIZERS_PARALLELISM", "false")
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A tiny random nano model folder that restores at 64x64 (fast on a CPU)."""
    pipe = OSDFacePipeline.from_preset("nano", seed=0, process_size=SIZE)
    assert pipe.config.process_size == SIZE
    folder = tmp_path_factory.mktemp("nano64")
    pipe.save_pretrained(folder)
    return folder


# ---------------------------------------------------------------------------------------------------- helpers
def _noise(h: int, w: int, seed: int = 0, channels: int = 3) -> np.ndarray:
    shape = (h, w) if channels == 1 else (h, w, channels)
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def _rgb(path: Path, h: int = 48, w: int = 48, seed: int = 0, **save_kw) -> Path:
    Image.fromarray(_noise(h, w, seed)).save(path, **save_kw)
    return path


def _write_valid_inputs(folder: Path) -> dict[str, str]:
    """Every kind of valid input; returns {input file name: expected output file name}."""
    folder.mkdir(parents=True, exist_ok=True)
    _rgb(folder / "rgb.png", 64, 64, seed=1)
    ramp = np.tile(np.linspace(0, 65535, 48).round().astype(np.uint16), (48, 1))
    Image.fromarray(ramp).save(folder / "gray16.png")  # 16-bit greyscale ("I;16")
    Image.fromarray(_noise(48, 48, 2)).convert("CMYK").save(folder / "cmyk.jpg", quality=90)
    Image.fromarray(_noise(48, 48, 3, channels=4), mode="RGBA").save(folder / "rgba.png")
    Image.fromarray(_noise(48, 48, 4)).convert("P", palette=Image.Palette.ADAPTIVE).save(folder / "palette.png")
    Image.fromarray(_noise(48, 48, 5, channels=1), mode="L").save(folder / "gray.png")
    exif_img = Image.fromarray(_noise(48, 48, 6))
    exif = exif_img.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise for display"
    exif_img.save(folder / "exif.jpg", exif=exif, quality=90)
    _rgb(folder / "wide.png", 64, 96, seed=7)  # not square: a warning, still restored
    _rgb(folder / "a.png", seed=8)  # a.png and a.jpg share the stem "a"
    _rgb(folder / "a.jpg", seed=9, quality=90)
    return {"rgb.png": "rgb.png", "gray16.png": "gray16.png", "cmyk.jpg": "cmyk.png", "rgba.png": "rgba.png",
            "palette.png": "palette.png", "gray.png": "gray.png", "exif.jpg": "exif.png", "wide.png": "wide.png",
            "a.png": "a_png.png", "a.jpg": "a_jpg.png"}


def _write_broken_inputs(folder: Path) -> dict[str, str]:
    """Every kind of unusable input; returns {file name: expected reason (a prefix of it)}."""
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.png").write_text("this is not a picture\n")
    full = _rgb(folder / "full.tmpdata", 64, 64, seed=10, format="PNG").read_bytes()
    (folder / "full.tmpdata").unlink()
    (folder / "truncated.png").write_bytes(full[: len(full) // 2])
    _rgb(folder / "tiny.png", 20, 20, seed=11)
    _png_header_only(folder / "huge.png", 9000, 9000)
    return {
        "empty.png": "empty file (0 bytes)",
        "text.png": "not an image",
        "truncated.png": "truncated or corrupt image data",
        "tiny.png": "too small (20x20 px",
        "huge.png": "too large (9000x9000 = 81.0 MP; the limit is 64.0 MP)",
    }


def _run(argv: list[str]) -> tuple[int, str, str]:
    """``main(argv)`` with stdout and stderr captured (usable from module-scoped fixtures, unlike capsys)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def _lines(text: str) -> list[str]:
    """Text lines, also split at the carriage returns a progress bar uses."""
    return [line.strip() for line in re.split(r"[\r\n]+", text) if line.strip()]


def _error_lines(text: str) -> list[str]:
    return [line for line in _lines(text) if line.startswith("error:")]


def _assert_restored_png(path: Path, size: int = SIZE) -> None:
    assert path.is_file(), f"missing output {path}"
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.mode == "RGB"
        assert im.size == (size, size)
        im.load()


def _restore(inp, out, model_dir, *extra) -> list[str]:
    return ["restore", "-i", str(inp), "-o", str(out), "--has_aligned", "--model", str(model_dir), *extra]


# ------------------------------------------------------------------------ one folder of good and broken inputs
@pytest.fixture(scope="module")
def mixed_run(model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("mixed")
    inp, out = root / "in", root / "out"
    valid = _write_valid_inputs(inp)
    broken = _write_broken_inputs(inp)
    (inp / "notes.txt").write_text("not an image\n")
    rc, stdout, stderr = _run(_restore(inp, out, model_dir))  # progress bar on, as a user would run it
    return dict(inp=inp, out=out, valid=valid, broken=broken, rc=rc, stdout=stdout, stderr=stderr)


def test_mixed_folder_exit_status_is_1(mixed_run):
    assert mixed_run["rc"] == 1
    n_valid, n_all = len(mixed_run["valid"]), len(mixed_run["valid"]) + len(mixed_run["broken"])
    assert f"restored {n_valid} of {n_all} image(s)" in mixed_run["stdout"]
    assert f"{len(mixed_run['broken'])} failed" in mixed_run["stdout"]


def test_mixed_folder_every_valid_input_restored(mixed_run):
    faces = mixed_run["out"] / "restored_faces"
    for src, name in mixed_run["valid"].items():
        _assert_restored_png(faces / name)
    # Nothing else: no output for broken inputs, none for the .txt, no temporary files left behind.
    assert sorted(p.name for p in faces.iterdir()) == sorted(mixed_run["valid"].values())


def test_mixed_folder_same_stem_both_restored(mixed_run):
    faces = mixed_run["out"] / "restored_faces"
    a_png = np.asarray(Image.open(faces / "a_png.png"))
    a_jpg = np.asarray(Image.open(faces / "a_jpg.png"))
    assert not np.array_equal(a_png, a_jpg)  # two different inputs, two different results, no overwrite


def test_mixed_folder_one_error_line_per_broken_input(mixed_run):
    errors = _error_lines(mixed_run["stderr"])
    assert len(errors) == len(mixed_run["broken"]), errors
    for name, reason in mixed_run["broken"].items():
        path = mixed_run["inp"] / name
        hits = [e for e in errors if e.startswith(f"error: {path}: ")]
        assert len(hits) == 1, (name, errors)
        assert hits[0].startswith(f"error: {path}: {reason}"), hits[0]
    for name in mixed_run["valid"]:
        assert not any(str(mixed_run["inp"] / name) + ":" in e for e in errors)


def test_mixed_folder_no_traceback(mixed_run):
    assert "Traceback" not in mixed_run["stderr"] + mixed_run["stdout"]


def test_mixed_folder_txt_skipped(mixed_run):
    skipped = [line for line in _lines(mixed_run["stderr"]) if line.startswith("skipping")]
    assert len(skipped) == 1 and str(mixed_run["inp"] / "notes.txt") in skipped[0]
    assert not any("notes.txt" in e for e in _error_lines(mixed_run["stderr"]))


def test_mixed_folder_non_square_warning(mixed_run):
    warnings_ = [line for line in _lines(mixed_run["stderr"]) if line.startswith("warning:")]
    assert len(warnings_) == 1, warnings_
    assert "not square" in warnings_[0] and "96x64" in warnings_[0]


# ------------------------------------------------------------------------------------------- only valid inputs
def test_valid_only_suffix_batches_and_txt(model_dir, tmp_path, capsys, monkeypatch):
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    stems = [f"face{i}" for i in range(5)]
    for i, stem in enumerate(stems):
        _rgb(inp / f"{stem}.png", seed=20 + i)
    (inp / "readme.txt").write_text("hello\n")

    batch_sizes = []
    original_call = OSDFacePipeline.__call__

    def counting_call(self, images, *args, **kwargs):
        batch_sizes.append(len(images))
        return original_call(self, images, *args, **kwargs)

    monkeypatch.setattr(OSDFacePipeline, "__call__", counting_call)
    rc = main(_restore(inp, out, model_dir, "--suffix", "_x", "-b", "3", "-q"))
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert batch_sizes == [3, 2]
    faces = out / "restored_faces"
    assert sorted(p.name for p in faces.iterdir()) == sorted(f"{s}_x.png" for s in stems)
    for stem in stems:
        _assert_restored_png(faces / f"{stem}_x.png")
    assert _error_lines(captured.err) == []
    assert any(line.startswith("skipping") and "readme.txt" in line for line in _lines(captured.err))
    assert "restored 5 of 5 image(s)" in captured.out and "failed" not in captured.out
    assert "Traceback" not in captured.err


def test_inputs_never_overwritten(model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    faces = out / "restored_faces"
    faces.mkdir(parents=True)
    _rgb(faces / "face.png", seed=30)
    _rgb(faces / "other.png", 40, 40, seed=31)
    before = {p.name: p.read_bytes() for p in faces.iterdir()}

    rc = main(_restore(faces, out, model_dir, "-q"))
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    for name, data in before.items():
        assert (faces / name).read_bytes() == data, f"input {name} was overwritten"
    new = sorted(p.name for p in faces.iterdir() if p.name not in before)
    assert len(new) == 2, new
    assert new == ["face_restored.png", "other_restored.png"]
    for name in new:
        _assert_restored_png(faces / name)


def test_single_file_input_given_as_its_own_output(model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    (out / "restored_faces").mkdir(parents=True)
    face = _rgb(out / "restored_faces" / "me.png", seed=32)
    data = face.read_bytes()
    assert main(_restore(face, out, model_dir, "-q")) == 0
    capsys.readouterr()
    assert face.read_bytes() == data
    _assert_restored_png(out / "restored_faces" / "me_restored.png")


def test_bf16_on_cpu(model_dir, tmp_path, capsys):
    inp = _rgb(tmp_path / "face.png", seed=40)
    rc = main(_restore(inp, tmp_path / "out", model_dir, "--dtype", "bf16", "-q"))
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "bf16" in captured.err
    _assert_restored_png(tmp_path / "out" / "restored_faces" / "face.png")


# ------------------------------------------------------------------------------------------ output file names
def test_output_names_basic(tmp_path):
    ins = [tmp_path / "a.png", tmp_path / "a.jpg", tmp_path / "b.webp"]
    names = output_names(ins, tmp_path / "o", "_s")
    assert names == {ins[0]: tmp_path / "o" / "a_png_s.png", ins[1]: tmp_path / "o" / "a_jpg_s.png",
                     ins[2]: tmp_path / "o" / "b_s.png"}


def test_output_names_avoid_inputs(tmp_path):
    ins = [tmp_path / "x.png"]
    assert output_names(ins, tmp_path) == {ins[0]: tmp_path / "x_restored.png"}


_COLLIDING = {
    # Re-running `-i OUT/restored_faces -o OUT`: the first run's x_restored.png is now an input as well.
    "rerun_in_place": ["x.png", "x_restored.png"],
    # a.png -> a_png.png (stem shared with a.jpg) and a_png.jpg -> a_png.png (stem unique).
    "shared_stem_vs_suffixed_stem": ["a.png", "a.jpg", "a_png.jpg"],
    # Extensions are lower-cased after the stem was found to be shared.
    "extension_case": ["a.png", "a.PNG"],
}


@pytest.mark.parametrize("files", list(_COLLIDING.values()), ids=list(_COLLIDING))
def test_output_names_distinct(tmp_path, files):
    ins = [tmp_path / f for f in files]
    names = output_names(ins, tmp_path)
    assert len(set(names.values())) == len(ins), names
    assert not set(names.values()) & set(ins)


# ------------------------------------------------------------------------------------ bad options: rc 2, fast
def _assert_one_error(err: str, *needles: str) -> str:
    assert "Traceback" not in err
    errors = _error_lines(err)
    assert len(errors) == 1, err
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


@pytest.mark.parametrize("option, needles", [
    pytest.param(["--device", "cuda"], ("--device cuda", "cpu"),
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")),
    (["--dtype", "fp16"], ("fp16", "bf16")),
], ids=["cuda_without_gpu", "fp16_on_cpu"])
def test_unusable_device_options(tmp_path, capsys, option, needles):
    face = _rgb(tmp_path / "face.png")
    rc = main(["restore", "-i", str(face), "-o", str(tmp_path / "out"), "--has_aligned", *option])
    captured = capsys.readouterr()
    assert rc == 2
    _assert_one_error(captured.err, *needles)
    assert not (tmp_path / "out").exists()


def test_without_has_aligned_runs_whole_photo_mode(model_dir, tmp_path, capsys):
    photo = _rgb(tmp_path / "noise.png", 96, 128)  # no face in it
    rc = main(["restore", "-i", str(photo), "-o", str(tmp_path / "out"), "--model", str(model_dir), "-q"])
    captured = capsys.readouterr()
    assert rc == 0 and "Traceback" not in captured.err
    assert "no face detected" in captured.err + captured.out
    final = tmp_path / "out" / "final_results" / "noise.png"
    assert final.is_file() and Image.open(final).size == (128, 96)


def test_model_folder_missing(tmp_path, capsys):
    missing = "/nonexistent/folder"
    assert not os.path.exists(missing)
    face = _rgb(tmp_path / "face.png")
    rc = main(["restore", "-i", str(face), "-o", str(tmp_path / "out"), "--has_aligned", "--model", missing])
    captured = capsys.readouterr()
    assert rc == 2
    _assert_one_error(captured.err, missing)
    assert not (tmp_path / "out").exists()


def test_model_folder_without_config(tmp_path, capsys):
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    face = _rgb(tmp_path / "face.png")
    rc = main(["restore", "-i", str(face), "-o", str(tmp_path / "out"), "--has_aligned", "--model", str(folder)])
    captured = capsys.readouterr()
    assert rc == 2
    _assert_one_error(captured.err, str(folder), "osdface_config.json")


def test_hub_id_offline_says_how_to_download(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)  # "some-user/some-repo" must not exist as a relative path
    face = _rgb(tmp_path / "face.png")
    rc = main(["restore", "-i", str(face), "-o", str(tmp_path / "out"), "--has_aligned",
               "--model", "some-user/some-repo"])
    captured = capsys.readouterr()
    assert rc == 2
    _assert_one_error(captured.err, "some-user/some-repo", "hf download some-user/some-repo")


def test_input_does_not_exist(tmp_path, capsys):
    missing = tmp_path / "no-such-face.png"
    rc = main(["restore", "-i", str(missing), "-o", str(tmp_path / "out"), "--has_aligned"])
    captured = capsys.readouterr()
    assert rc == 2
    _assert_one_error(captured.err, str(missing), "no such file")
    assert not (tmp_path / "out").exists()


def test_folder_without_images(tmp_path, capsys):
    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "notes.txt").write_text("x\n")
    rc = main(["restore", "-i", str(inp), "-o", str(tmp_path / "out"), "--has_aligned"])
    captured = capsys.readouterr()
    assert rc == 2
    _assert_one_error(captured.err, str(inp), "no images")
    assert any(line.startswith("skipping") and "notes.txt" in line for line in _lines(captured.err))


def test_batch_size_zero_is_an_argument_error(tmp_path, capsys):
    face = _rgb(tmp_path / "face.png")
    with pytest.raises(SystemExit) as exc:
        main(["restore", "-i", str(face), "-o", str(tmp_path / "out"), "--has_aligned", "-b", "0"])
    assert exc.value.code == 2
    assert "--batch-size" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_unknown_device_is_an_argparse_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["restore", "-i", str(tmp_path), "-o", str(tmp_path / "out"), "--has_aligned", "--device", "tpu"])
    assert exc.value.code == 2
    assert "--device" in capsys.readouterr().err


# ------------------------------------------------------------------------------ unwritable output, damaged model
def test_output_is_an_existing_file(model_dir, tmp_path, capsys):
    face = _rgb(tmp_path / "face.png")
    target = tmp_path / "out.txt"
    target.write_text("keep me\n")
    rc = main(_restore(face, target, model_dir, "-q"))
    captured = capsys.readouterr()
    assert rc in (1, 2)
    _assert_one_error(captured.err, str(target))
    assert target.read_text() == "keep me\n"


@pytest.mark.parametrize("damage", ["no_vre", "bad_json"])
def test_damaged_model_folder(model_dir, tmp_path, capsys, damage):
    folder = tmp_path / "damaged"
    shutil.copytree(model_dir, folder)
    if damage == "no_vre":
        shutil.rmtree(folder / "vre")
    else:
        (folder / "osdface_config.json").write_text("{\n")
    face = _rgb(tmp_path / "face.png")
    rc = main(_restore(face, tmp_path / "out", folder, "-q"))
    captured = capsys.readouterr()
    assert rc == 2
    _assert_one_error(captured.err, str(folder))


# ------------------------------------------------------------------------------ end to end: the bundled model
def test_subprocess_default_bundled_model(tmp_path):
    assert (BUNDLED_NANO / "osdface_config.json").is_file()
    _rgb(tmp_path / "face.png", 48, 48, seed=50)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "osdface", "restore", "-i", "face.png", "-o", "out",
                           "--has_aligned", "-q"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "restored 1 of 1 image(s)" in proc.stdout
    _assert_restored_png(tmp_path / "out" / "restored_faces" / "face.png", size=512)
    assert BUNDLED_NANO.name in proc.stderr  # the model line names the bundled model


def test_latent_sample_mode_is_seeded(model_dir, tmp_path):
    face = _rgb(tmp_path / "face.png")
    outs = []
    for i, seed in enumerate(["114", "114", "115"]):
        assert main(_restore(face, tmp_path / f"o{i}", model_dir, "-q", "--latent-mode", "sample",
                             "--seed", seed)) == 0
        outs.append((tmp_path / f"o{i}" / "restored_faces" / "face.png").read_bytes())
    assert outs[0] == outs[1] and outs[0] != outs[2]
