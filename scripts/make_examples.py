"""Write the demo's generated example inputs into ``examples/`` (run once; the files are committed).

Every picture is made from scikit-image's ``astronaut.png`` (NASA portrait of Eileen Collins, public domain), read
from an installed scikit-image (``skimage.data.astronaut()``; scikit-image is not a dependency of osdface) — no other
photo is used. See ``examples/README.md`` for what each file is.

    python scripts/make_examples.py            # writes examples/{group_photo,old_photo_gray,compressed_face}.jpg,
                                               # examples/{tiny_face,astronaut_face}.png
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: the face box of astronaut.png used for examples/astronaut_face_lq.png (examples/README.md)
FACE_BOX = (137, 18, 313, 194)


def astronaut() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[..., :3])


def face_crop(img: np.ndarray, size: int = 512) -> np.ndarray:
    x0, y0, x1, y1 = FACE_BOX
    return np.asarray(Image.fromarray(img[y0:y1, x0:x1]).resize((size, size), Image.LANCZOS))


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert(img.ndim == 2 and "L" or "RGB"))


def tinted(crop: np.ndarray, gains: tuple[float, float, float], brightness: float = 1.0) -> np.ndarray:
    out = crop.astype(np.float32) * np.array(gains, np.float32) * brightness
    return np.clip(out, 0, 255).astype(np.uint8)


def group_photo(img: np.ndarray) -> np.ndarray:
    """Six copies of the one astronaut face, at several sizes, tilts, mirrored or not, under different colour
    casts, on a generated background; then blurred, shrunk 2.5x, JPEG-compressed and enlarged back."""
    from osdface.faces.synthetic_group import group_photo as compose

    crop = face_crop(img)
    sources = [("plain", crop), ("mirrored", crop[:, ::-1].copy()), ("warm", tinted(crop, (1.12, 1.0, 0.85))),
               ("cool", tinted(crop, (0.88, 0.97, 1.12))), ("dim", tinted(crop, (1.0, 1.0, 1.0), 0.7)),
               ("mirrored warm", tinted(crop[:, ::-1].copy(), (1.08, 0.95, 0.86), 0.9))]
    scene = compose(sources, size=(640, 960), n=6, min_face=70, max_face=190, max_angle=12, seed=3)
    photo = cv2.GaussianBlur(scene.image, (0, 0), 1.0)
    h, w = photo.shape[:2]
    small = cv2.resize(photo, (round(w / 2.5), round(h / 2.5)), interpolation=cv2.INTER_AREA)
    small = jpeg(small, 55)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def old_photo(img: np.ndarray) -> np.ndarray:
    """The whole astronaut photo as an old, faded, grainy, scratched greyscale print (8-bit grey)."""
    from osdface.faces.synthetic_group import Scene, old_photo as age

    small = cv2.resize(img, (384, 384), interpolation=cv2.INTER_AREA)
    aged = age(Scene("astronaut", small, []), seed=1).image
    grey = cv2.cvtColor(aged, cv2.COLOR_RGB2GRAY)
    return jpeg(grey, 60)


def tiny_face(img: np.ndarray) -> np.ndarray:
    """The aligned face at 64x64: a thumbnail-sized face."""
    return np.asarray(Image.fromarray(face_crop(img)).resize((64, 64), Image.LANCZOS))


def compressed_face(img: np.ndarray) -> np.ndarray:
    """The aligned face at 256x256 through JPEG quality 8: heavy blocking and ringing."""
    return jpeg(face_crop(img, 256), 8)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=REPO / "examples")
    args = p.parse_args(argv)
    img = astronaut()
    args.out.mkdir(parents=True, exist_ok=True)
    files = {"astronaut_face.png": (face_crop(img), {}),
             "group_photo.jpg": (group_photo(img), dict(quality=92)),
             "old_photo_gray.jpg": (old_photo(img), dict(quality=92)),
             "tiny_face.png": (tiny_face(img), {}),
             "compressed_face.jpg": (compressed_face(img), dict(quality=95))}
    for name, (arr, kw) in files.items():
        Image.fromarray(arr).save(args.out / name, **kw)
        print(f"wrote {args.out / name} {arr.shape[1]}x{arr.shape[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
