"""Generated group and "old" photos with known faces: a labelled set for face detectors, made at run time.

    from osdface.faces.synthetic_group import face_sources, group_photo, crowd_photo, old_photo, standard_scenes
    scene = group_photo(face_sources(), (1000, 1600), n=10, min_face=40, max_face=300, seed=0)
    scene.image      # (H, W, 3) uint8 RGB
    scene.faces      # [LabelledFace(box, landmarks, width)], the ground truth from the construction

Each face is an FFHQ-aligned crop (512-px convention: its 5 points sit on the FFHQ template) pasted through a known
similarity transform (scale, rotation, position) with a feathered elliptical mask, so its ground-truth landmarks are
the template mapped through that transform (pixel centres at integer coordinates, as in
:mod:`osdface.faces.alignment`), and its box is a WIDER-FACE-like box (:data:`FACE_BOX_512`, forehead to chin,
cheek to cheek) mapped the same way. "Face size" below is that box's width, about 2 inter-ocular distances.

Sources: the public-domain astronaut face shipped in ``examples/`` and, where present, the face crops of
``$OSDFACE_FACES`` / ``<repo>/../shared/data/faces`` (non-commercial terms: read at run time, never copied into the
repository). Nothing generated here is stored in the repository.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .alignment import FFHQ_TEMPLATE_512, apply_affine, compose_affine

__all__ = ["LabelledFace", "Scene", "FACE_BOX_512", "face_sources", "paste_face", "background", "group_photo",
           "crowd_photo", "old_photo", "portrait_photo", "astronaut_photo", "standard_scenes", "Match", "match_faces"]

REPO = Path(__file__).resolve().parents[2]
ASTRONAUT_FACE = REPO / "examples" / "astronaut_face_lq.png"
ASTRONAUT_PHOTO = REPO / "examples" / "astronaut_photo_lq.jpg"
#: where examples/astronaut_face_lq.png was cut from astronaut.png (examples/README.md): a 176-px square at 137,18
ASTRONAUT_CROP_BOX = (137, 18, 313, 194)

#: a WIDER-FACE-like face box in a 512 FFHQ crop (x0, y0, x1, y1): cheek to cheek, mid-forehead to below the chin
FACE_BOX_512 = np.array([128.0, 128.0, 384.0, 448.0])
#: the region pasted (a feathered ellipse around head and chin): centre and semi-axes in the 512 crop
_ELLIPSE_512 = ((256.0, 268.0), (176.0, 218.0))
#: and a bust below it (neck and shoulders): a trapezoid in the 512 crop
_BUST_512 = np.array([[150.0, 390.0], [362.0, 390.0], [470.0, 512.0], [42.0, 512.0]])


@dataclass
class LabelledFace:
    box: np.ndarray  # (4,) x0, y0, x1, y1 (continuous edges)
    landmarks: np.ndarray | None  # (5, 2) left eye, right eye, nose, left / right mouth corner (pixel centres at
    source: str = ""              # integers); None for a label with a box only

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def iod(self) -> float:
        """Inter-ocular distance (eye centre to eye centre) in pixels."""
        return float(np.linalg.norm(self.landmarks[1] - self.landmarks[0]))


@dataclass
class Scene:
    name: str
    image: np.ndarray
    faces: list[LabelledFace]
    note: str = ""
    meta: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------- sources
def _shared_faces_dir() -> Path | None:
    d = Path(os.environ.get("OSDFACE_FACES", REPO.parent / "shared" / "data" / "faces"))
    return d if d.is_dir() else None


def _read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(path)
    return np.ascontiguousarray(bgr[..., ::-1])


def face_sources(faces_dir: str | os.PathLike | None = None, n: int = 24, seed: int = 0,
                 astronaut: bool = True) -> list[tuple[str, np.ndarray]]:
    """``[(name, 512x512 RGB crop)]``: the astronaut (public domain, ``examples/``) and up to ``n`` crops drawn
    (seeded) from ``faces_dir`` (default: ``$OSDFACE_FACES`` or ``<repo>/../shared/data/faces`` when present)."""
    out = []
    if astronaut and ASTRONAUT_FACE.is_file():
        out.append(("astronaut", _read_rgb(ASTRONAUT_FACE)))
    folder = Path(faces_dir) if faces_dir else _shared_faces_dir()
    if folder is not None and folder.is_dir() and n > 0:
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        rng = np.random.default_rng(seed)
        for p in rng.permutation(files)[:n] if files else []:
            img = _read_rgb(Path(p))
            if img.shape[:2] != (512, 512):
                img = cv2.resize(img, (512, 512), interpolation=cv2.INTER_AREA if img.shape[0] > 512
                                 else cv2.INTER_CUBIC)
            out.append((Path(p).stem, img))
    if not out:
        raise FileNotFoundError(f"no face source: {ASTRONAUT_FACE} is missing and no face folder was found")
    return out


# ---------------------------------------------------------------------------------------------------- drawing
def background(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A busy but face-free background: blurred noise, a colour gradient, random rectangles and discs (some in
    skin tones), lines; deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    sh, sw = max(8, h // 8), max(8, w // 8)  # drawn at 1/8 size, then enlarged: fast on huge canvases
    base = rng.integers(40, 215, (sh, sw, 3)).astype(np.float32)
    base = cv2.GaussianBlur(base, (0, 0), 2.0)
    gy, gx = np.mgrid[0:sh, 0:sw].astype(np.float32)
    tint = rng.uniform(-40, 40, 3).astype(np.float32)
    base += (gx / sw - 0.5)[..., None] * tint + (gy / sh - 0.5)[..., None] * tint[::-1]
    skin = np.array([[224, 172, 140], [198, 134, 102], [141, 85, 60], [240, 200, 170]], np.float32)
    for _ in range(int(18 + sh * sw / 4000)):
        colour = skin[rng.integers(len(skin))] if rng.random() < 0.3 else rng.uniform(20, 235, 3)
        colour = tuple(float(c) for c in colour)
        x, y = int(rng.integers(0, sw)), int(rng.integers(0, sh))
        r = int(rng.integers(2, max(3, min(sh, sw) // 5)))
        kind = rng.integers(3)
        if kind == 0:
            cv2.rectangle(base, (x - r, y - r // 2), (x + r, y + r), colour, -1)
        elif kind == 1:
            cv2.circle(base, (x, y), r, colour, -1)
        else:
            cv2.line(base, (x, y), (int(rng.integers(0, sw)), int(rng.integers(0, sh))), colour,
                     int(rng.integers(1, 3)))
    base = cv2.resize(cv2.GaussianBlur(base, (0, 0), 0.7), (w, h), interpolation=cv2.INTER_LINEAR)
    base += rng.normal(0, 6, (h, w, 1)).astype(np.float32)  # fine grain, as in a real photo
    return np.clip(base, 0, 255).astype(np.uint8)


def _ellipse_mask(size: int) -> np.ndarray:
    f = size / 512.0
    (cx, cy), (ax, ay) = _ELLIPSE_512
    mask = np.zeros((size, size), np.float32)
    cv2.ellipse(mask, (round(cx * f * 16), round(cy * f * 16)), (round(ax * f * 16), round(ay * f * 16)), 0, 0, 360,
                1.0, -1, cv2.LINE_AA, 4)
    # neck and shoulders: the crop's lower part, so that the face sits on a body as in a real photo
    bust = _BUST_512 * f
    cv2.fillConvexPoly(mask, np.round(bust * 16).astype(np.int32), 1.0, cv2.LINE_AA, 4)
    return cv2.GaussianBlur(mask, (0, 0), max(0.6, 10 * f))


def paste_face(photo: np.ndarray, crop: np.ndarray, cx: float, cy: float, width: float, angle: float = 0.0,
               source: str = "") -> LabelledFace:
    """Paste the 512 FFHQ-aligned ``crop`` into ``photo`` (in place) so that its face box is ``width`` px wide,
    rotated ``angle`` degrees (counter-clockwise as seen), centred at the box centre (cx, cy); returns its labels."""
    crop = np.asarray(crop)
    if crop.shape[:2] != (512, 512):
        raise ValueError(f"expected a 512x512 FFHQ crop, got {crop.shape}")
    scale = width / float(FACE_BOX_512[2] - FACE_BOX_512[0])
    # resample the crop near the target size first (INTER_AREA: no aliasing), then warp at a scale near 1
    size = int(np.clip(round(512 * scale), 16, 512)) if scale < 1 else 512
    f = size / 512.0
    src = crop if size == 512 else cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    to_small = np.array([[f, 0.0, 0.5 * f - 0.5], [0.0, f, 0.5 * f - 0.5]])  # 512 pixel centres → size
    box_c = np.array([(FACE_BOX_512[0] + FACE_BOX_512[2]) / 2 - 0.5, (FACE_BOX_512[1] + FACE_BOX_512[3]) / 2 - 0.5])
    a = math.radians(angle)
    rot = scale * np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
    m512 = np.hstack([rot, (np.array([cx, cy]) - rot @ box_c)[:, None]])  # 512 crop → photo
    m = compose_affine(m512, np.linalg.inv(np.vstack([to_small, [0, 0, 1]]))[:2])  # small crop → photo
    h, w = photo.shape[:2]
    corners = apply_affine(m, np.array([[-1, -1], [size, -1], [-1, size], [size, size]], dtype=np.float64))
    x0, y0 = max(0, int(math.floor(corners[:, 0].min()))), max(0, int(math.floor(corners[:, 1].min())))
    x1, y1 = min(w, int(math.ceil(corners[:, 0].max())) + 1), min(h, int(math.ceil(corners[:, 1].max())) + 1)
    if x1 > x0 and y1 > y0:
        m_roi = m.copy()
        m_roi[:, 2] -= [x0, y0]
        warped = cv2.warpAffine(src, m_roi, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR)
        mask = cv2.warpAffine(_ellipse_mask(size), m_roi, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR)[..., None]
        roi = photo[y0:y1, x0:x1].astype(np.float32)
        photo[y0:y1, x0:x1] = np.clip(np.rint(roi * (1 - mask) + warped * mask), 0, 255).astype(np.uint8)
    landmarks = apply_affine(m512, FFHQ_TEMPLATE_512)
    bc = apply_affine(m512, np.array([[FACE_BOX_512[0], FACE_BOX_512[1]], [FACE_BOX_512[2], FACE_BOX_512[1]],
                                      [FACE_BOX_512[0], FACE_BOX_512[3]], [FACE_BOX_512[2], FACE_BOX_512[3]]])
                      - 0.5) + 0.5  # edges: continuous coordinates
    box = np.array([bc[:, 0].min(), bc[:, 1].min(), bc[:, 0].max(), bc[:, 1].max()])
    if angle:  # the axis-aligned box of a rotated face: shrink back to the unrotated box's size, same centre
        c = (box[:2] + box[2:]) / 2
        half = np.array([FACE_BOX_512[2] - FACE_BOX_512[0], FACE_BOX_512[3] - FACE_BOX_512[1]]) * scale / 2
        box = np.concatenate([c - half, c + half])
    return LabelledFace(box=box, landmarks=landmarks, source=source)


def _extent(width: float, angle: float = 0.0) -> tuple[float, float, float, float, float]:
    """For a face box ``width`` px wide, rotated ``angle`` degrees: ``(half width, up, down)`` of what is pasted
    (head ellipse and bust) around the box centre, then ``(half width, up)`` of the head ellipse alone (which must
    stay inside the photo; the bust may leave it at the bottom, as in a real photo). Rotation enlarges the first
    three to their axis-aligned bounds."""
    s = width / float(FACE_BOX_512[2] - FACE_BOX_512[0])
    cy = (FACE_BOX_512[1] + FACE_BOX_512[3]) / 2
    (_, ey), (ax, ay) = _ELLIPSE_512
    hw, up, down = max(ax, 256 - _BUST_512[:, 0].min()), cy - (ey - ay), _BUST_512[:, 1].max() - cy
    c, si = abs(math.cos(math.radians(angle))), abs(math.sin(math.radians(angle)))
    hw_r, v_r = hw * c + max(up, down) * si, hw * si
    return (hw_r * s, (up * c + v_r) * s, (down * c + v_r) * s, (ax * c + ay * si) * s, (up * c + ax * si) * s)


def _compose(h, w, placements, sources, seed, name, note="") -> Scene:
    photo = background(h, w, seed)
    faces = []
    for k, (cx, cy, width, angle) in enumerate(placements):
        src_name, crop = sources[k % len(sources)]
        faces.append(paste_face(photo, crop, cx, cy, width, angle, source=src_name))
    return Scene(name, photo, faces, note)


# ---------------------------------------------------------------------------------------------------- scenes
def group_photo(sources, size=(1000, 1600), n: int = 10, min_face: float = 40, max_face: float = 300,
                max_angle: float = 15.0, seed: int = 0, name: str = "group") -> Scene:
    """``n`` faces of widths log-uniform in [min_face, max_face] at random, non-overlapping places; rotations
    uniform in ±max_angle degrees; ``size`` = (height, width)."""
    h, w = size
    rng = np.random.default_rng(seed)
    widths = np.sort(np.exp(rng.uniform(math.log(min_face), math.log(max_face), n)))[::-1]
    widths[0], widths[-1] = max_face, min_face  # both ends present
    angles = rng.uniform(-max_angle, max_angle, n)
    placed = []  # (x0, y0, x1, y1) of what each face covers
    placements = []
    for width, angle in zip(widths, angles):
        hw, up, down, head_hw, head_up = _extent(width, angle)
        for _ in range(2000):
            cx = rng.uniform(head_hw + 2, w - head_hw - 2)
            cy = rng.uniform(head_up + 2, h - max(head_up, 0.8 * down))
            r = (cx - hw, cy - up, cx + hw, cy + down)
            if all(r[2] + 4 < q[0] or q[2] + 4 < r[0] or r[3] + 4 < q[1] or q[3] + 4 < r[1] for q in placed):
                placed.append(r)
                placements.append((cx, cy, float(width), float(angle)))
                break
        else:
            raise ValueError(f"could not place {n} faces of up to {max_face} px on a {w}x{h} canvas")
    srcs = [sources[i] for i in rng.permutation(len(sources))]
    return _compose(h, w, placements, srcs, seed, name,
                    f"{n} faces {min_face:g}-{max_face:g} px, ±{max_angle:g}°, {w}x{h}")


def crowd_photo(sources, size=(3000, 4000), rows: int = 5, cols: int = 6, face: float = 70.0,
                jitter: float = 0.1, max_angle: float = 10.0, seed: int = 0, name: str = "crowd") -> Scene:
    """A grid of ``rows x cols`` small faces (widths ``face`` ± ``jitter``) on a large canvas."""
    h, w = size
    rng = np.random.default_rng(seed)
    placements = []
    for r in range(rows):
        for c in range(cols):
            width = face * (1 + rng.uniform(-jitter, jitter))
            cx = (c + 0.5 + rng.uniform(-0.25, 0.25)) * w / cols
            cy = (r + 0.5 + rng.uniform(-0.25, 0.25)) * h / rows
            placements.append((cx, cy, width, rng.uniform(-max_angle, max_angle)))
    srcs = [sources[i] for i in rng.permutation(len(sources))]
    return _compose(h, w, placements, srcs, seed, name,
                    f"{rows * cols} faces of ~{face:g} px on {w}x{h}")


def portrait_photo(sources, size=(2600, 2000), face: float = 1300.0, seed: int = 0, name: str = "selfie") -> Scene:
    """One large face (a selfie / close portrait)."""
    h, w = size
    return _compose(h, w, [(w / 2, h * 0.52, face, 4.0)], sources[:1], seed, name, f"1 face of {face:g} px, {w}x{h}")


def old_photo(scene: Scene, seed: int = 0, name: str | None = None) -> Scene:
    """An "old photo" version of ``scene``: grey, sepia toned, faded, blurred, grainy, scratched, vignetted, JPEG;
    the labels are unchanged (no geometric change)."""
    rng = np.random.default_rng(seed)
    img = scene.image.astype(np.float32)
    h, w = img.shape[:2]
    grey = img @ np.array([0.299, 0.587, 0.114], np.float32)
    grey = cv2.GaussianBlur(grey, (0, 0), max(0.8, min(h, w) / 900))
    grey = 0.72 * grey + 40  # faded: low contrast, lifted blacks
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    vignette = 1 - 0.35 * (((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2) / 2
    grey = grey * vignette + rng.normal(0, 9, (h, w)).astype(np.float32)
    sepia = np.stack([grey * 1.07, grey * 0.89, grey * 0.66], axis=-1)
    for _ in range(int(6 + 10 * rng.random())):  # scratches and dust
        x = int(rng.integers(0, w))
        cv2.line(sepia, (x, 0), (x + int(rng.integers(-w // 20, w // 20)), h), (235, 225, 205), 1, cv2.LINE_AA)
    for _ in range(int(40 * h * w / 1e6) + 10):
        cv2.circle(sepia, (int(rng.integers(0, w)), int(rng.integers(0, h))), int(rng.integers(1, 3)),
                   (30, 25, 20) if rng.random() < 0.5 else (240, 230, 210), -1)
    out = np.clip(sepia, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 45])
    out = np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
    return Scene(name or f"old_{scene.name}", out, scene.faces, f"old photo of: {scene.note}")


def astronaut_photo() -> Scene | None:
    """The public-domain astronaut photo of ``examples/`` (one real face); its labels are the FFHQ template mapped
    through the documented crop box (approximate: the crop was square-cut, not landmark-aligned)."""
    if not ASTRONAUT_PHOTO.is_file():
        return None
    img = _read_rgb(ASTRONAUT_PHOTO)
    x0, y0, x1, y1 = ASTRONAUT_CROP_BOX
    f = (x1 - x0) / 512.0
    landmarks = (FFHQ_TEMPLATE_512 + 0.5) * f - 0.5 + [x0, y0]
    box = FACE_BOX_512 * f + [x0, y0, x0, y0]
    return Scene("astronaut_photo", img, [LabelledFace(box, landmarks, "astronaut")],
                 "real photo (public domain), 1 face, labels from the documented crop (approximate)")


def standard_scenes(faces_dir=None, large: bool = True) -> list[Scene]:
    """The benchmark set (``benchmarks/detectors.py``): group photos, old photos, a selfie, a tilted group, crowds of
    small faces on large canvases (``large=False`` leaves out the 24-MP one), the real astronaut photo."""
    src = face_sources(faces_dir, n=64)
    scenes = [
        group_photo(src, (1067, 1600), n=10, min_face=40, max_face=300, seed=1, name="group_1600"),
        group_photo(src, (1600, 2400), n=14, min_face=40, max_face=400, seed=2, name="group_2400"),
        old_photo(group_photo(src, (800, 1200), n=8, min_face=40, max_face=200, seed=3), seed=3,
                  name="old_group_1200"),
        old_photo(group_photo(src, (600, 900), n=6, min_face=32, max_face=150, seed=4), seed=4,
                  name="old_group_900"),
        group_photo(src, (1000, 1500), n=8, min_face=60, max_face=200, max_angle=30, seed=5, name="tilted_1500"),
        portrait_photo(src, seed=6),
        crowd_photo(src, (3000, 4000), rows=5, cols=6, face=70, seed=7, name="crowd_4000"),
        old_photo(crowd_photo(src, (1500, 2000), rows=4, cols=6, face=50, seed=8), seed=8, name="old_crowd_2000"),
    ]
    if large:
        scenes.append(crowd_photo(src, (4000, 6000), rows=5, cols=8, face=48, seed=9, name="crowd_6000"))
    real = astronaut_photo()
    if real is not None:
        scenes.append(real)
    return scenes


# ---------------------------------------------------------------------------------------------------- scoring
@dataclass
class Match:
    """The result of matching one photo's detections to its labels (see :func:`match_faces`)."""

    pairs: list[tuple[int, int]]  # (label index, detection index)
    missed: list[int]  # label indices
    false_positives: list[int]  # detection indices matching no label
    duplicates: list[int]  # detection indices on a label already matched

    def landmark_errors(self, labels, detections) -> np.ndarray:
        """Per matched face with labelled landmarks: mean distance of the 5 points to the labels, in inter-ocular
        distances."""
        out = []
        for gi, di in self.pairs:
            g = labels[gi]
            if g.landmarks is None:
                continue
            iod = float(np.linalg.norm(np.asarray(g.landmarks[1]) - np.asarray(g.landmarks[0])))
            d = np.linalg.norm(np.asarray(detections[di].landmarks) - np.asarray(g.landmarks), axis=1)
            out.append(d.mean() / max(iod, 1e-9))
        return np.asarray(out)


def _inside(p, box) -> bool:
    return box[0] <= p[0] <= box[2] and box[1] <= p[1] <= box[3]


def match_faces(labels, detections, size_ratio=(0.4, 2.5)) -> Match:
    """Match detections (best score first) to labelled faces. A detection matches a label when each box holds the
    other's centre and their widths differ by less than ``size_ratio`` (tolerant of the detectors' different box
    conventions: dlib's boxes are tighter than WIDER FACE's). Labels need ``box``; detections ``box`` and ``score``."""
    order = sorted(range(len(detections)), key=lambda i: -float(detections[i].score))
    taken: dict[int, int] = {}
    fps, dups = [], []
    for di in order:
        db = np.asarray(detections[di].box, dtype=np.float64)
        dc = (db[:2] + db[2:]) / 2
        best, best_d = None, np.inf
        for gi, g in enumerate(labels):
            gb = np.asarray(g.box, dtype=np.float64)
            gc = (gb[:2] + gb[2:]) / 2
            ratio = (db[2] - db[0]) / max(gb[2] - gb[0], 1e-9)
            if _inside(gc, db) and _inside(dc, gb) and size_ratio[0] <= ratio <= size_ratio[1]:
                d = float(np.linalg.norm(dc - gc))
                if d < best_d:
                    best, best_d = gi, d
        if best is None:
            fps.append(di)
        elif best in taken:
            dups.append(di)
        else:
            taken[best] = di
    pairs = sorted(taken.items())
    return Match(pairs, [gi for gi in range(len(labels)) if gi not in taken], fps, dups)
