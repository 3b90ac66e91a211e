"""Small helpers the tutorial notebooks share: pick face images, show a row of pictures.

Face photos are never part of the repository: :func:`tutorial_faces` reads a folder given by the notebook's
parameter or ``$OSDFACE_FACES``, and falls back to the public-domain example ``examples/astronaut_face_lq.png``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

EXAMPLE_FACE = Path(__file__).resolve().parents[2] / "examples" / "astronaut_face_lq.png"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


def tutorial_faces(n: int = 1, size: int = 512, folder: str | os.PathLike | None = None) -> list[Image.Image]:
    """``n`` RGB faces of ``size``² from ``folder`` (else ``$OSDFACE_FACES``), sorted by name; without a folder,
    the bundled example face (repeated if ``n`` > 1). A folder that is given but missing raises a clear error."""
    if n < 1 or size < 8:
        raise ValueError(f"need n >= 1 and size >= 8, got n={n}, size={size}")
    folder = folder if folder is not None else os.environ.get("OSDFACE_FACES") or None
    if folder is None:
        if not EXAMPLE_FACE.is_file():
            raise FileNotFoundError(f"the example face {EXAMPLE_FACE} is missing; pass a folder of face images")
        files = [EXAMPLE_FACE] * n
    else:
        folder = Path(folder).expanduser()
        if not folder.is_dir():
            raise FileNotFoundError(f"face folder {folder} does not exist (set FACES / $OSDFACE_FACES to a folder "
                                    "of aligned face crops, or to None for the bundled example)")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:n]
        if not files:
            raise FileNotFoundError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    out = []
    for p in files:
        with Image.open(p) as im:
            out.append(im.convert("RGB").resize((size, size), Image.BICUBIC))
    return out


def show_row(images, titles=None, *, size: float = 3.0, cmap=None, suptitle: str | None = None):
    """Show images (PIL, (H, W[, 3]) arrays, or (3, H, W) / (1, 3, H, W) tensors in [0, 1]) side by side."""
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
        ax.imshow(arr, cmap=cmap)
        ax.set_axis_off()
        if titles is not None:
            ax.set_title(titles[i], fontsize=10)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    plt.show()
    return fig
