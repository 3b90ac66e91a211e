"""The pictures of the README and the documentation that the bundled model makes, from ``examples/`` only.

    python scripts/make_figures.py            # writes docs/assets/*.jpg and docs/assets/figures.json

Every input is public domain or generated from a public-domain photo (``examples/README.md``); no data-set photo
is read. The pictures are restored on the CPU in fp32 (bf16 depends on the CPU's instruction set), with the
default face detector. ``docs/assets/figures.json`` records the SHA-256 of every input (the bundled model's files,
the example images, this script) and of every picture written; ``tests/test_figures.py`` fails when an input has
changed since, i.e. when the pictures are stale and this script must be run again.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "docs" / "assets"
MODEL = REPO / "osdface" / "assets" / "osdface-nano"
MANIFEST = ASSETS / "figures.json"
SIDECAR_VERSION = 1

PHOTO = "examples/group_photo.jpg"
CROPS = {"examples/astronaut_face_lq.png": "96 px, JPEG", "examples/compressed_face.jpg": "JPEG q8",
         "examples/tiny_face.png": "64 px"}
PHOTOS = ["examples/group_photo.jpg", "examples/old_photo_gray.jpg", "examples/astronaut_photo_lq.jpg"]
CLEAN_FACE = "examples/astronaut_face.png"  # the video strip's face (the clip is generated from it)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def inputs() -> dict[str, str]:
    """Relative path → SHA-256 of everything the pictures depend on: the model's weights and configs (not its model
    card, its ONNX graphs or the code copies that plain diffusers reads), the examples and this script."""
    files = sorted(p for p in MODEL.rglob("*") if p.is_file() and p.name not in ("osdface_onnx.json", "model_index.json")
                   and (p.suffix == ".safetensors" or p.name.endswith("config.json")))
    files += [REPO / p for p in sorted(set([PHOTO, *CROPS, *PHOTOS, CLEAN_FACE]))]
    files.append(Path(__file__).resolve())
    return {p.relative_to(REPO).as_posix(): sha256(p) for p in files}


# ------------------------------------------------------------------------------------------------ drawing
def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # a Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def labelled(img: Image.Image, text: str, size: int = 14) -> Image.Image:
    """``img`` with ``text`` in a dark band at its top-left corner (after scaling, so every label reads the same)."""
    out = img.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    font = _font(size)
    x0, y0, x1, y1 = draw.textbbox((6, 4), text, font=font)
    draw.rectangle((0, 0, x1 + 6, y1 + 4), fill=(0, 0, 0))
    draw.text((6, 4), text, fill=(255, 255, 255), font=font)
    return out


def row(images: list[tuple[Image.Image, str]], height: int, gap: int = 4) -> Image.Image:
    """(image, label) pairs scaled to ``height``, labelled, side by side."""
    scaled = [labelled(im.resize((max(1, round(im.width * height / im.height)), height), Image.LANCZOS), text)
              for im, text in images]
    out = Image.new("RGB", (sum(im.width for im in scaled) + gap * (len(scaled) - 1), height), (255, 255, 255))
    x = 0
    for im in scaled:
        out.paste(im, (x, 0))
        x += im.width + gap
    return out


def stack(rows: list[Image.Image], gap: int = 4) -> Image.Image:
    width = max(r.width for r in rows)
    out = Image.new("RGB", (width, sum(r.height for r in rows) + gap * (len(rows) - 1)), (255, 255, 255))
    y = 0
    for r in rows:
        out.paste(r, ((width - r.width) // 2, y))
        y += r.height + gap
    return out


def save_jpeg(img: Image.Image, path: Path, quality: int = 82) -> None:
    """Written under a temporary name in the same folder, then renamed: never a half-written picture."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp_", suffix=".jpg", dir=path.parent)
    os.close(fd)
    try:
        img.save(tmp, "JPEG", quality=quality, optimize=True, progressive=True)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# ------------------------------------------------------------------------------------------------ pictures
def readme_figure(pipe) -> tuple[Image.Image, Image.Image]:
    """The README's picture: a whole photo (input | restored) above three face crops (input | restored each); and
    the crops' row alone."""
    from osdface.restore import restore_aligned, restore_image

    photo = Image.open(REPO / PHOTO).convert("RGB")
    result = restore_image(pipe, photo, mode="photo")
    top = row([(photo, "input"), (result.image, "restored")], 300)
    crops = [Image.open(REPO / p).convert("RGB") for p in CROPS]
    restored = restore_aligned(pipe, crops, batch_size=len(crops))
    pairs = []
    for what, lq, out in zip(CROPS.values(), crops, restored):
        pairs += [(lq.resize((512, 512), Image.BICUBIC), f"input: {what}"), (out, "restored")]
    bottom = row(pairs, 160)
    return stack([top, bottom]), bottom


def photos_figure(pipe) -> dict[str, Image.Image]:
    """One input | restored picture per example photo (the restored photo's faces only; the background is the
    input's, enlarged by Lanczos when asked)."""
    from osdface.restore import restore_image

    out = {}
    for p in PHOTOS:
        img = Image.open(REPO / p).convert("RGB")
        result = restore_image(pipe, img, mode="photo")
        out[f"photo_{Path(p).stem}.jpg"] = row([(img, "input"), (result.image, "restored")], 320)
    return out


def video_strip(pipe, frames: int = 24, shown=(0, 8, 16, 23)) -> Image.Image:
    """Frames of a generated clip (the example face moving, turning and zooming on a generated background, each
    frame degraded with fresh noise) above the same frames restored by the video path."""
    import av

    from osdface.restore import restore_video
    from osdface.video.synthetic import synthetic_clip, write_clip

    face = np.asarray(Image.open(REPO / CLEAN_FACE).convert("RGB"))
    with tempfile.TemporaryDirectory(prefix="osdface_fig_") as tmp:
        clip = write_clip(Path(tmp) / "clip.mp4", (f.lq for f in synthetic_clip(face, (240, 426), frames, seed=1)),
                          audio=False)
        summary = restore_video(pipe, clip, Path(tmp) / "out")

        def decode(path):
            with av.open(str(path)) as c:
                return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]

        lq, restored = decode(clip), decode(summary.output)
    top = row([(Image.fromarray(lq[i]), f"input, frame {i}") for i in shown], 180)
    bottom = row([(Image.fromarray(restored[i]), f"restored, frame {i}") for i in shown], 180)
    return stack([top, bottom])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO))
    import torch

    from osdface.restore import load_pipeline

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    pipe = load_pipeline(str(MODEL), device="cpu", dtype="fp32")
    ASSETS.mkdir(parents=True, exist_ok=True)
    readme, crops = readme_figure(pipe)
    pictures = {"readme_figure.jpg": readme, "crops.jpg": crops, **photos_figure(pipe),
                "video_strip.jpg": video_strip(pipe)}
    written = {}
    for name, img in pictures.items():
        save_jpeg(img, ASSETS / name)
        written[f"docs/assets/{name}"] = sha256(ASSETS / name)
        print(f"{name}: {img.width}x{img.height}, {(ASSETS / name).stat().st_size // 1024} KB")
    record = {"version": SIDECAR_VERSION, "command": "python scripts/make_figures.py", "device": "cpu",
              "dtype": "fp32", "torch": torch.__version__, "inputs": inputs(), "outputs": written}
    tmp = MANIFEST.with_name(".tmp_figures.json")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, MANIFEST)
    return 0


if __name__ == "__main__":
    sys.exit(main())
