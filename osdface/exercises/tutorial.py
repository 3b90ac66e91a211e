"""Small helpers the tutorial notebooks share: pick face images, damage them in a fixed way, show a row of pictures,
show an evaluation report compactly.

Face photos are never part of the repository: :func:`tutorial_faces` reads a folder given by the notebook's
parameter or ``$OSDFACE_FACES``, and falls back to the public-domain example ``examples/astronaut_face.png`` (a
clean crop; the notebooks damage it themselves, so that a restoration can be compared with the original).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
from PIL import Image

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE_FACE = EXAMPLES / "astronaut_face.png"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}

#: fixed degradations for demonstrations (docs/ARCHITECTURE.md §4 parameters; see notebook 01)
DAMAGE = {
    "light": dict(kernel_radius=20, kernel_size=41, sigma_x=1.0, sigma_y=1.0, angle=0.0, scale=1.5, noise_sigma=3.0,
                  noise_seed=0, jpeg_quality=90),
    "medium": dict(kernel_radius=20, kernel_size=41, sigma_x=2.0, sigma_y=2.0, angle=0.0, scale=3.0,
                   noise_sigma=8.0, noise_seed=0, jpeg_quality=70),
    "heavy": dict(kernel_radius=20, kernel_size=41, sigma_x=3.5, sigma_y=3.5, angle=0.0, scale=6.0,
                  noise_sigma=15.0, noise_seed=0, jpeg_quality=60),
}


def _example_dir_candidates() -> list[Path]:
    """Where the example face may be: the source checkout, or an ``examples/`` folder next to the notebooks (the
    student download written by ``notebooks/make_students.py --out``)."""
    return [EXAMPLES, Path.cwd() / "examples", Path.cwd().parent / "examples"]


def example_face() -> Path:
    for folder in _example_dir_candidates():
        if (folder / EXAMPLE_FACE.name).is_file():
            return folder / EXAMPLE_FACE.name
    raise FileNotFoundError(f"the example face {EXAMPLE_FACE.name} is missing; pass a folder of face images")


def face_files(folder: str | os.PathLike, split: str | None = None) -> list[Path]:
    """The images of ``folder`` sorted by name; ``split`` "train" / "val": that side of the split the bundled nano
    model was trained with (:func:`osdface.data.dataset.split_files`: 10 % validation by file-name hash, seed 0)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"face folder {folder} does not exist (set FACES / $OSDFACE_FACES to a folder "
                                "of aligned face crops, or to None for the bundled example)")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    if split is None:
        return files
    if split not in ("train", "val"):
        raise ValueError(f"split must be None, 'train' or 'val', not {split!r}")
    from ..data.dataset import split_files

    train, val = split_files(files)
    return val if split == "val" else train


def tutorial_faces(n: int = 1, size: int = 512, folder: str | os.PathLike | None = None,
                   split: str | None = None) -> list[Image.Image]:
    """``n`` RGB faces of ``size``² from ``folder`` (else ``$OSDFACE_FACES``), sorted by name (``split`` "val":
    only faces the bundled model never trained on); without a folder, the bundled example face (``n`` > 1: it and
    its mirror image, alternating). A folder that is given but missing raises a clear error."""
    if n < 1 or size < 8:
        raise ValueError(f"need n >= 1 and size >= 8, got n={n}, size={size}")
    folder = folder if folder is not None else os.environ.get("OSDFACE_FACES") or None
    out = []
    if folder is None:
        with Image.open(example_face()) as im:
            face = im.convert("RGB").resize((size, size), Image.BICUBIC)
        for i in range(n):
            out.append(face.copy() if i % 2 == 0 else face.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
        return out
    for p in face_files(folder, split)[:n]:
        with Image.open(p) as im:
            out.append(im.convert("RGB").resize((size, size), Image.BICUBIC))
    return out


def damage(img, level: str = "medium") -> np.ndarray:
    """``img`` (PIL or uint8 array) with one of the fixed :data:`DAMAGE` degradations (blur, shrink, noise, JPEG,
    enlarge back): the same damage on every run, unlike the random ones of training."""
    from ..data.degradations import apply_params

    if level not in DAMAGE:
        raise ValueError(f"level must be one of {', '.join(DAMAGE)}, not {level!r}")
    return apply_params(np.asarray(img.convert("RGB") if isinstance(img, Image.Image) else img), DAMAGE[level])


def psnr_db(a, b) -> float:
    """PSNR in dB between two 8-bit RGB images (PIL or arrays) of the same size, on RGB."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mse = float(((a - b) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def show_row(images, titles=None, *, size: float = 3.0, cmap=None, suptitle: str | None = None, colorbar=None):
    """Show images (PIL, (H, W[, 3]) arrays, or (3, H, W) / (1, 3, H, W) tensors in [0, 1]) side by side.
    ``colorbar``: a label, to add a colour bar to every single-channel image."""
    import matplotlib.pyplot as plt

    images = list(images)
    fig, axes = plt.subplots(1, len(images), figsize=(size * len(images), size), squeeze=False)
    for i, (ax, img) in enumerate(zip(axes[0], images)):
        if hasattr(img, "detach"):
            img = img.detach().float().cpu()
            img = img[0] if img.ndim == 4 else img
            img = img.permute(1, 2, 0).numpy() if img.ndim == 3 else img.numpy()
        arr = np.asarray(img)
        if arr.dtype != np.uint8 and arr.ndim == 3:
            arr = np.clip(arr, 0, 1)
        shown = ax.imshow(arr, cmap=cmap)
        if colorbar and arr.ndim == 2:
            fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04, label=colorbar)
        ax.set_axis_off()
        if titles is not None:
            ax.set_title(titles[i], fontsize=10)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    plt.show()
    return fig


def _short_need(message: str, limit: int = 110) -> str:
    """The first clause of an "unavailable: needs ..." message, without URLs."""
    text = re.sub(r"\(?https?://\S+\)?", "", message)
    text = re.sub(r",?\s*get it from\s*$", "", text.split(";")[0]).strip(" ,(")
    text = re.sub(r"\s+", " ", text)
    if text.count("(") > text.count(")"):  # the clause ended inside a parenthesis: drop it
        text = text[: text.rfind("(")].strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def report_markdown(report, paper=None) -> str:
    """An evaluation report, compactly: the measured rows with only the columns that have a value, the paper's rows
    (``paper``: :func:`osdface.eval.report.paper_rows`) with theirs, and one folded line per metric that could not
    run (what it needs; ``osdface eval --help`` and docs/evaluation.md have the downloads)."""
    from ..eval.report import EvalReport, ordered_columns, to_markdown

    cols = ordered_columns(report.metrics, report.has_gt)
    measured = [c for c in cols if any(m.summary.get(c) is not None and m.summary.get(c) == m.summary.get(c)
                                       for m in report.methods)]
    ours = EvalReport(report.methods, measured, has_gt=report.has_gt)
    parts = ["**Measured here**", "", to_markdown(ours).strip()]
    if paper:
        paper_cols = [c for c in cols if any(m.summary.get(c) is not None for m in paper)]
        parts += ["", "**The paper's rows** (CelebA-Test, 3,000 faces; for the columns, not for comparison)", "",
                  to_markdown(EvalReport(paper, paper_cols, has_gt=True)).strip()]
    missing = [c for c in cols if c in report.unavailable]
    if missing:
        lines = "\n".join(f"<li><b>{c}</b>: {_short_need(report.unavailable[c])}</li>" for c in missing)
        parts += ["", f"<details><summary>{len(missing)} metrics did not run here (no weights offline): "
                      f"{', '.join(missing)}</summary><ul>{lines}</ul></details>"]
    return "\n".join(parts) + "\n"
