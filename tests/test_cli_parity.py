"""``osdface restore`` has the demo's controls with the same defaults; it refuses an output that is a file before
the model loads; a rerun removes the temporary files a killed run left; an animation says only its first frame is
restored."""

from __future__ import annotations

import contextlib
import io
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from osdface.cli import main
from osdface.cli.main import build_parser

from .app_server import write_tiny_model

REPO = Path(__file__).resolve().parents[1]
FACE = REPO / "examples" / "astronaut_face_lq.png"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("cli_model") / "tiny")


def _restore(argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["restore", *argv])
    return code, out.getvalue(), err.getvalue()


def test_the_command_line_has_every_control_of_the_demo_with_its_default():
    """The demo's options (osdface.app.restorer.DemoRestorer.request's keywords and defaults) as restore flags."""
    import inspect

    from osdface.app.restorer import DemoRestorer

    demo = {k: v.default for k, v in inspect.signature(DemoRestorer.request).parameters.items()
            if k not in ("self", "image", "mode")}  # mode: --has_aligned (aligned) or not (whole photo)
    parser = build_parser()
    args = parser.parse_args(["restore", "-i", "x", "-o", "y"])
    cli = {"upscale": args.upscale, "color_fix_method": args.color_fix, "fidelity": args.fidelity,
           "only_center_face": args.only_center_face, "model": args.model, "dtype": args.dtype,
           "latent_mode": args.latent_mode or "mode", "seed": args.seed, "bg_upsampler": args.bg_upsampler}
    demo["dtype"] = demo["dtype"] or "auto"  # (the demo's None: its default dtype, "auto")
    assert cli == demo
    short = parser.parse_args(["restore", "-i", "x", "-o", "y", "--fidelity", "0.7", "-s", "1.5"])
    assert (short.fidelity, short.upscale) == (0.7, 1.5)
    for bad in (["--fidelity", "1.2"], ["--fidelity", "x"], ["-s", "0.5"]):
        with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
            parser.parse_args(["restore", "-i", "x", "-o", "y", *bad])


def test_fidelity_zero_gives_back_the_input(tiny, tmp_path):
    code, _, err = _restore(["-i", str(FACE), "-o", str(tmp_path), "--has_aligned", "--model", str(tiny), "-q",
                             "--fidelity", "0"])
    assert code == 0, err
    got = np.asarray(Image.open(tmp_path / "restored_faces" / FACE.name), dtype=np.int16)
    size = got.shape[0]
    want = np.asarray(Image.open(FACE).convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.int16)
    assert np.abs(got - want).max() <= 1


def test_an_output_that_is_a_file_is_refused_before_the_model_loads(tmp_path):
    target = tmp_path / "result.png"
    target.write_bytes(b"mine")
    # a model that does not exist: had it been loaded first, the error would be about the model
    code, _, err = _restore(["-i", str(FACE), "-o", str(target), "--has_aligned", "--model", str(tmp_path / "none")])
    assert code == 2 and "is a file, not a folder" in err and "model" not in err.split("is a file")[0], err
    assert target.read_bytes() == b"mine"


def test_a_rerun_removes_what_a_killed_run_left(tiny, tmp_path):
    faces = tmp_path / "restored_faces"
    faces.mkdir(parents=True)
    left = [faces / ".astronaut_face_lq.png.0123456789ab.tmp", faces / ".x.png.ba9876543210.tmp"]
    left[0].write_bytes(b"\x89PNG\r\n\x1a\n")  # a truncated PNG
    left[1].write_bytes(b"")
    kept = [faces / ".notes.tmp", faces / "draft.0123456789ab.tmp", tmp_path / ".y.png.0123456789ab.tmp"]
    for p in kept:  # not our pattern, or not in one of our output folders: never touched
        p.write_bytes(b"user")
    live = faces / ".z.png.00112233aabb.tmp"  # another run writing into the same folder right now: kept
    live.write_bytes(b"")
    old = time.time() - 3600
    for p in left:
        os.utime(p, (old, old))
    code, _, err = _restore(["-i", str(FACE), "-o", str(tmp_path), "--has_aligned", "--model", str(tiny), "-q",
                             "--skip-existing"])
    assert code == 0, err
    assert not any(p.exists() for p in left) and all(p.read_bytes() == b"user" for p in kept)
    assert "removed 2 unfinished temporary file(s)" in err and (faces / FACE.name).is_file() and live.exists()
    left[0].write_bytes(b"")
    os.utime(left[0], (old, old))
    code, out, err = _restore(["-i", str(FACE), "-o", str(tmp_path), "--has_aligned", "--model", str(tiny), "-q",
                               "--skip-existing"])  # nothing to restore: the leftover goes all the same
    assert code == 0 and "1 already done" in out and not left[0].exists(), (out, err)


def test_an_animation_says_only_its_first_frame_is_restored(tiny, tmp_path):
    face = Image.open(FACE).convert("RGB").resize((128, 128))
    gif = tmp_path / "in" / "anim.gif"
    gif.parent.mkdir()
    face.save(gif, save_all=True, append_images=[face.rotate(10), face.rotate(20)], duration=100)
    code, _, err = _restore(["-i", str(gif), "-o", str(tmp_path / "out"), "--has_aligned", "--model", str(tiny),
                             "-q"])
    assert code == 0, err
    notes = [line for line in err.splitlines() if "frames" in line]
    assert notes == [f"note: {gif}: an animation of 3 frames; only the first frame is restored"], err
    code, _, err = _restore(["-i", str(FACE), "-o", str(tmp_path / "out2"), "--has_aligned", "--model", str(tiny),
                             "-q"])
    assert code == 0 and "frames" not in err
