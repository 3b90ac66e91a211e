"""Restoring an archive with several processes (``torchrun --nproc_per_node 2 -m osdface restore ...``).

Two CPU processes on a small folder of face crops, the bundled nano model: the outputs are byte for byte those of
one process (same batch size and threads per process, so that the arithmetic is the same), every input is restored
by exactly one process, ``OUT/manifest.jsonl`` has one line per input, and a run killed part-way and started again
with ``--skip-existing`` finishes the rest without redoing what was complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image, ImageOps

from osdface.restore import Manifest, Shard

REPO = Path(__file__).resolve().parents[1]
N = 6


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> Path:
    """Six aligned crops made from the example face (mirrored, rotated, resized)."""
    folder = tmp_path_factory.mktemp("archive") / "in"
    folder.mkdir()
    face = Image.open(REPO / "examples" / "astronaut_face_lq.png").convert("RGB")
    for i in range(N):
        im = face.rotate(3 * i, resample=Image.BICUBIC) if i % 2 else ImageOps.mirror(face)
        im.resize((512 - 64 * (i % 3),) * 2, Image.BICUBIC).save(folder / f"face{i}.png")
    return folder


def _env():
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def _restore(args, processes: int, **popen):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)] \
        if processes > 1 else [sys.executable]
    # torch in both: several processes always run torch, so one process must too for the bytes to compare
    cmd = [*launcher, "-m", "osdface", "restore", "--has_aligned", "--backend", "torch", "-b", "1", "-q",
           *map(str, args)]
    if popen:
        return subprocess.Popen(cmd, env=_env(), start_new_session=True, **popen)
    out = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


def _bytes(folder: Path) -> dict[str, str]:
    """name -> SHA-256 of each result (digests keep a failure's report short)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((folder / "restored_faces").iterdir())
            if not p.name.startswith(".")}


@pytest.fixture(scope="module")
def one_process(crops, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("one") / "out"
    _restore(["-i", crops, "-o", out], 1)
    return out


def test_shard_takes_every_nth():
    items = list(range(7))
    shards = [Shard(r, 3).take(items) for r in range(3)]
    assert shards == [[0, 3, 6], [1, 4], [2, 5]]
    assert Shard().take(items) == items
    with pytest.raises(ValueError, match="rank < world"):
        Shard(2, 2)


def test_shard_from_the_launchers_environment(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert Shard.from_env() == Shard(0, 1)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert Shard.from_env() == Shard(1, 3)
    monkeypatch.delenv("RANK")  # WORLD_SIZE alone: every process would think it is rank 0
    with pytest.raises(ValueError, match="set both or neither"):
        Shard.from_env()


def test_two_processes_restore_as_one(crops, one_process, tmp_path):
    out = tmp_path / "two"
    _restore(["-i", crops, "-o", out], 2)
    assert _bytes(out) == _bytes(one_process) and len(_bytes(out)) == N
    rows = Manifest(out / "manifest.jsonl").rows()
    assert sorted(Path(r["input"]).name for r in rows) == [f"face{i}.png" for i in range(N)]  # each input once
    assert {r["status"] for r in rows} == {"ok"} and {r["rank"] for r in rows} == {0, 1}
    by_rank = {rank: sorted(Path(r["input"]).name for r in rows if r["rank"] == rank) for rank in (0, 1)}
    assert by_rank[0] == ["face0.png", "face2.png", "face4.png"]  # interleaved shards
    for r in rows:
        assert Path(r["output"]).is_file() and r["faces"] == 1 and r["seconds"] > 0


def test_interrupted_run_resumes(crops, one_process, tmp_path):
    out = tmp_path / "killed"
    manifest = out / "manifest.jsonl"
    proc = _restore(["-i", crops, "-o", out], 2, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if manifest.is_file() and '"ok"' in manifest.read_text():
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both workers, mid-run
    proc.wait()
    first = [r for r in Manifest(manifest).rows() if r["status"] == "ok"]
    assert 1 <= len(first) < N, "the run was not interrupted part-way; the test needs it to be"
    for f in (out / "restored_faces").iterdir():  # a write cut short stays under a hidden temporary name
        if not f.name.startswith("."):
            Image.open(f).load()
    res = _restore(["-i", crops, "-o", out, "--skip-existing"], 2)
    assert "already done" in res.stdout
    rows = Manifest(manifest).rows()
    ok = [Path(r["input"]).name for r in rows if r["status"] == "ok"]
    skipped = {Path(r["input"]).name for r in rows if r["status"] == "skipped"}
    assert len(ok) == len(set(ok)), "no input restored twice"
    # a file renamed into place just before the kill, its line not yet written, counts as done: skipped, not redone
    assert set(ok) | skipped == {f"face{i}.png" for i in range(N)}
    assert {Path(r["input"]).name for r in first} <= skipped
    assert _bytes(out) == _bytes(one_process)


def test_a_failed_input_does_not_stop_the_other_processes(crops, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("face0.png", "face1.png"):
        (folder / name).write_bytes((crops / name).read_bytes())
    (folder / "face2.png").write_text("not an image\n")
    out = tmp_path / "out"
    res = _restore(["-i", folder, "-o", out], 2)  # exit status 0: torchrun would stop the others on a failure
    assert "1 input(s) failed" in res.stderr
    rows = Manifest(out / "manifest.jsonl").rows()
    assert sorted((Path(r["input"]).name, r["status"]) for r in rows) == [
        ("face0.png", "ok"), ("face1.png", "ok"), ("face2.png", "failed")]


def test_skip_existing_in_the_library(crops, tmp_path):
    """``restore_files(skip_existing=True)`` leaves a complete output untouched and redoes a missing one."""
    from osdface.restore import load_pipeline, restore_files

    pipe = load_pipeline(device="cpu")
    files = sorted(crops.iterdir())[:2]
    out = tmp_path / "out"
    first = restore_files(pipe, files, out, log=lambda line: None)
    assert first.done == 2
    (out / "restored_faces" / "face1.png").unlink()
    before = (out / "restored_faces" / "face0.png").stat().st_mtime_ns
    second = restore_files(pipe, files, out, skip_existing=True, log=lambda line: None)
    assert (second.done, second.skipped) == (1, 1)
    assert (out / "restored_faces" / "face0.png").stat().st_mtime_ns == before
    rows = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert [r["status"] for r in rows] == ["ok", "ok", "skipped", "ok"]
