"""A picture grid for a report: one row per image, columns LQ | output | GT (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

__all__ = ["save_grid"]


def save_grid(rows: Sequence[tuple[str, Sequence[Path]]], out_path: str | Path, titles=("LQ", "output", "GT"),
              cell_inches: float = 2.6, dpi: int = 110) -> Path:
    """``rows``: (image name, [file per column]) → a PNG at ``out_path`` with the column titles on top and the
    image name at the left of each row."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np
    from PIL import Image

    if not rows:
        raise ValueError("save_grid needs at least one row")
    n_rows, n_cols = len(rows), len(titles)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(cell_inches * n_cols, cell_inches * n_rows), squeeze=False)
    for r, (name, files) in enumerate(rows):
        if len(files) != n_cols:
            raise ValueError(f"row {name!r} has {len(files)} images for {n_cols} columns")
        for c, f in enumerate(files):
            ax = axes[r][c]
            with Image.open(f) as im:
                ax.imshow(np.asarray(im.convert("RGB")))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c], fontsize=11)
            if c == 0:
                ax.set_ylabel(name, fontsize=8)
    fig.tight_layout()
    out_path = Path(out_path)
    fig.savefig(out_path, dpi=dpi)
    plt.close(fig)
    return out_path
