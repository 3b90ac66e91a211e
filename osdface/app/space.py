"""Assemble the Hugging Face Space of the demo and upload it.

    osdface deploy-space --repo-id USER/NAME --dry-run            # writes build/space/, lists the files
    osdface deploy-space --repo-id USER/NAME                      # creates the Space, uploads the folder
    osdface deploy-space --repo-id USER/NAME --model USER/osdface-sd21 --hardware zero-a10g

The folder is what ``spaces/`` describes: ``README.md`` (the Space's YAML header + description, from
``spaces/README.md``), ``requirements.txt`` (from ``spaces/requirements.txt``), ``app.py``, the ``osdface`` package
(its Python files and the bundled nano model, nothing else), and the example images. ``--model`` sets the Space
variable ``OSDFACE_MODEL`` (the model the app loads at start-up) and lists the id under ``models:``;
``--hardware`` sets ``suggested_hardware``. Run it from a source checkout (it reads ``app.py`` and ``spaces/``).
Authentication: ``hf auth login`` or ``--token`` / ``$HF_TOKEN``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from ..weights import BUNDLED_NANO

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "osdface"
BUNDLED_MODEL = Path(PACKAGE) / BUNDLED_NANO.relative_to(Path(__file__).resolve().parents[1])  # in the checkout
EXAMPLES = ("examples/README.md", "examples/astronaut_face_lq.png", "examples/astronaut_photo_lq.jpg",
            "examples/group_photo.jpg", "examples/old_photo_gray.jpg", "examples/tiny_face.png",
            "examples/compressed_face.jpg")
MARKER = ".osdface-space"  # marks a folder this command wrote (only such a folder is ever emptied)
HEADER_KEYS = ("title", "emoji", "sdk", "sdk_version", "app_file", "python_version", "suggested_hardware",
               "models", "license", "short_description", "tags")

__all__ = ["assemble_space", "read_header", "render_readme", "deploy", "check_repo_id", "DeployError"]


class DeployError(RuntimeError):
    """A problem with the options, the checkout or the output folder; one line."""


def read_header(readme_text: str) -> tuple[dict, str]:
    """Split a Space README into (YAML header as a dict, body). Raises DeployError when there is no header."""
    if not readme_text.startswith("---\n"):
        raise DeployError("the Space README must start with a '---' YAML header")
    end = readme_text.find("\n---\n", 4)
    if end < 0:
        raise DeployError("the Space README's YAML header has no closing '---'")
    header = yaml.safe_load(readme_text[4:end])
    if not isinstance(header, dict):
        raise DeployError("the Space README's YAML header is not a mapping")
    return header, readme_text[end + 5:]


def render_readme(template: str, *, model: str | None = None, hardware: str | None = None,
                  title: str | None = None) -> str:
    header, body = read_header(template)
    if model:
        header["models"] = list(dict.fromkeys([model, *(header.get("models") or [])]))
    if hardware:
        header["suggested_hardware"] = hardware
    if title:
        header["title"] = title
    missing = [k for k in HEADER_KEYS if k not in header]
    if missing:
        raise DeployError(f"the Space header lacks {', '.join(missing)}")
    text = yaml.safe_dump(header, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return f"---\n{text}---\n{body}"


def _package_files(root: Path) -> list[Path]:
    """The package's Python files and the bundled model, relative to ``root``."""
    pkg = root / PACKAGE
    files = [p for p in pkg.rglob("*.py") if "__pycache__" not in p.parts]
    model = root / BUNDLED_MODEL
    files += [p for p in model.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    return sorted(p.relative_to(root) for p in files)


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise DeployError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise DeployError(f"{out} is not empty and was not written by this command; choose another --out")
        if not overwrite:
            raise DeployError(f"{out} holds an earlier build; pass --overwrite to replace it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by osdface deploy-space; not uploaded\n")


def assemble_space(out: str | Path, *, model: str | None = None, hardware: str | None = None,
                   title: str | None = None, overwrite: bool = False, root: Path = REPO_ROOT) -> list[Path]:
    """Write the Space folder into ``out`` (new, empty, or an earlier build with ``overwrite``); return its files
    (relative paths, sorted, the marker excluded)."""
    root = Path(root)
    spaces = root / "spaces"
    needed = [root / "app.py", spaces / "README.md", spaces / "requirements.txt", root / BUNDLED_MODEL]
    absent = [str(p.relative_to(root)) for p in needed if not p.exists()]
    if absent:
        raise DeployError(f"run this from a source checkout of osdface: missing {', '.join(absent)} under {root}")
    out = Path(out)
    readme = render_readme((spaces / "README.md").read_text(encoding="utf-8"), model=model, hardware=hardware,
                           title=title)
    _prepare_out(out, overwrite)
    (out / "README.md").write_text(readme, encoding="utf-8")
    shutil.copyfile(spaces / "requirements.txt", out / "requirements.txt")
    copies = [Path("app.py"), *_package_files(root), *[Path(e) for e in EXAMPLES if (root / e).is_file()]]
    if (root / "LICENSE").is_file():
        copies.append(Path("LICENSE"))
    for rel in copies:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / rel, out / rel)
    return sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file() and p.name != MARKER)


def deploy(repo_id: str, folder: str | Path, *, model: str | None = None, private: bool | None = None,
           token: str | None = None, commit_message: str = "Deploy the OSDFace demo"):
    """Create the Space (if needed), upload ``folder`` in one commit, set ``OSDFACE_MODEL`` when ``model``."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
    info = api.upload_folder(repo_id=repo_id, repo_type="space", folder_path=str(folder),
                             commit_message=commit_message, ignore_patterns=[MARKER, "**/__pycache__/**"])
    if model:
        api.add_space_variable(repo_id, "OSDFACE_MODEL", model, description="model loaded by app.py at start-up")
    return info


def check_repo_id(repo_id: str) -> str:
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(parts) or any(c.isspace() for c in repo_id):
        raise DeployError(f"--repo-id must look like USER/NAME, not {repo_id!r}")
    return repo_id
