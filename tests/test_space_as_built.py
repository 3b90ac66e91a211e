"""The Space as Hugging Face builds it: the folder `osdface deploy-space --dry-run` assembles, installed the way a
Space installs it (a fresh venv of the header's ``python_version``, ``pip install -r requirements.txt``, then
``gradio[oauth]==<sdk_version>``), started with ``python app.py`` and driven through ``gradio_client``: a whole
photo (restored with the detector the Space README names) and a short video.

It builds a venv of several GB (minutes the first time): it runs when ``OSDFACE_SPACE_BUILD=1`` (CI part 2,
``.ci/run``). The venv is cached under ``~/.cache/osdface/space-venv-<hash>`` (``$OSDFACE_SPACE_VENV_CACHE``), the
hash covering the Space's requirements, its Python and its Gradio, so a rerun with the same pins reuses it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from osdface.app.space import assemble_space, read_header

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(os.environ.get("OSDFACE_SPACE_BUILD") != "1",
                                reason="builds the Space's own venv (minutes): set OSDFACE_SPACE_BUILD=1 (.ci/run does)")
#: the plain detector names the page and the info line use (osdface.app.restorer.DETECTOR_LABELS)
DETECTORS = ("CenterFace", "RetinaFace", "dlib")


def _run(cmd, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


def space_venv(folder: Path, python_version: str, sdk_version: str) -> Path:
    """The Space's venv, built as a Space builds it, or the cached one with the same requirements."""
    requirements = (folder / "requirements.txt").read_bytes()
    key = hashlib.sha256(requirements + f"\npython {python_version}\ngradio[oauth]=={sdk_version}\n".encode())
    cache = Path(os.environ.get("OSDFACE_SPACE_VENV_CACHE", Path.home() / ".cache" / "osdface"))
    venv = cache / f"space-venv-{key.hexdigest()[:16]}"
    python = venv / "bin" / "python"
    if (venv / ".complete").is_file() and python.is_file():
        return venv
    base = shutil.which(f"python{python_version}")
    assert base, f"the Space's header asks for Python {python_version}: python{python_version} is not on PATH"
    building = venv.with_name(venv.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    cache.mkdir(parents=True, exist_ok=True)
    _run([base, "-m", "venv", str(building)])
    pip = [str(building / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    _run([*pip, "-r", str(folder / "requirements.txt")], timeout=1800)
    _run([*pip, f"gradio[oauth]=={sdk_version}"], timeout=900)
    _run([str(building / "bin" / "python"), "-m", "pip", "check"])
    (building / ".complete").write_text(sdk_version + "\n")
    shutil.rmtree(venv, ignore_errors=True)
    building.rename(venv)  # (a venv's scripts hold its path: pip is only called as `python -m pip`)
    return venv


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def space_app(tmp_path_factory):
    folder = tmp_path_factory.mktemp("space") / "space"
    assemble_space(folder)
    header, body = read_header((folder / "README.md").read_text(encoding="utf-8"))
    t0 = time.monotonic()
    venv = space_venv(folder, str(header["python_version"]), str(header["sdk_version"]))
    build_s = time.monotonic() - t0
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "OSDFACE_"))}
    env.update(HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", SPACE_ID="osdface-test/space-as-built",
               GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port), OMP_NUM_THREADS="2")
    log = (folder.parent / "app.log").open("w")
    # (`python app.py` with the venv's interpreter: the venv's bin first on PATH, as on a Space)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.Popen([str(venv / "bin" / "python"), "app.py"], cwd=folder, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    import urllib.request

    while True:
        try:
            urllib.request.urlopen(url + "/config", timeout=5)
            break
        except OSError:
            text = (folder.parent / "app.log").read_text()
            assert proc.poll() is None, f"app.py exited with {proc.returncode}:\n{text[-3000:]}"
            assert time.monotonic() < deadline, f"app.py did not answer within 300 s:\n{text[-3000:]}"
            time.sleep(2)
    print(f"\nSpace venv ready in {build_s:.0f} s ({venv.name}); app.py answered", file=sys.stderr)
    try:
        yield url, body, folder
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_space_restores_a_whole_photo_with_the_detector_its_page_names(space_app):
    from gradio_client import Client, handle_file

    url, body, folder = space_app
    named = [d for d in DETECTORS if d in body]
    assert len(named) == 1, f"the Space README should name one face detector, it names {named}"
    client = Client(url, verbose=False)
    _, gallery, png, info = client.predict(handle_file(str(REPO / "examples" / "group_photo.jpg")), "auto", 1, 1.0,
                                           "none", False, None, "auto", "mode", 114, "lanczos",
                                           api_name="/restore")
    assert "whole photo" in info and f"found by {named[0]}" in info, info
    found = int(info.split(" face(s) found")[0].split("· ")[-1])
    assert found >= 4 and len(gallery) == 2 * found, info
    assert Path(png).stat().st_size > 10_000


def test_space_restores_a_short_video(space_app, tmp_path):
    from gradio_client import Client, handle_file

    from osdface.faces.synthetic_group import face_sources
    from osdface.video.io import probe
    from osdface.video.synthetic import synthetic_clip, write_clip

    url, _, _ = space_app
    face = face_sources(n=0)[0][1]
    clip = write_clip(tmp_path / "clip.mp4", (f.lq for f in synthetic_clip(face, (128, 160), 12, fps=10)), fps=10)
    video, info = Client(url, verbose=False).predict(handle_file(str(clip)), "none", None, "auto",
                                                     api_name="/restore_video")
    path = video["video"] if isinstance(video, dict) else video
    out = probe(path)
    assert (out.width, out.height) == (160, 128) and out.estimated_frames == 12, info
    assert "12 frames" in info, info
