"""What a new user meets first: ``import osdface`` and ``--help`` load no heavy package, ``python app.py`` without
Gradio says what to install in one line, and the README's set-up installs what the default test run needs.
(Start-up times are measured by ``benchmarks/startup.py``, not asserted here.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "diffusers", "transformers", "gradio", "dlib", "lpips", "torch_fidelity", "cv2", "onnxruntime")


def _loaded_after(code: str) -> set[str]:
    probe = code + "\nimport json, sys\nprint(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))\n"
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_import_osdface_loads_no_heavy_package():
    loaded = _loaded_after("import osdface; osdface.__version__")
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


@pytest.mark.parametrize("argv", [["--help"], ["restore", "--help"], ["train", "--help"], ["eval", "--help"],
                                  ["restore", "-i", "x.png"]])  # the last: an argument error (no -o)
def test_the_command_line_answers_help_and_argument_errors_without_heavy_packages(argv):
    code = ("import sys\nfrom osdface.cli import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n")
    loaded = _loaded_after(code)
    assert not loaded & {"torch", "diffusers", "transformers", "gradio", "dlib"}, sorted(loaded & set(HEAVY))


def test_every_option_has_help_text():
    import argparse

    from osdface.cli import build_parser

    parser = build_parser()
    missing = []
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        for action in sub._actions:
            if action.option_strings and action.help in (None, "") and action.dest != "help":
                missing.append(f"{name} {action.option_strings[0]}")
    assert not missing, missing


def test_app_without_gradio_is_one_line():
    code = ("import sys\nsys.modules['gradio'] = None  # as if it were not installed\n"
            "from osdface.app import main\nsys.exit(main(['--device', 'cpu']))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install -r requirements-app.txt" in lines[0], out.stderr
