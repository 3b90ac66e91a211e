"""Face detectors on labelled group and old photos: recall, false positives, smallest face, time, landmarks.

    python benchmarks/detectors.py                         # the generated set (osdface.faces.synthetic_group)
    python benchmarks/detectors.py --no-large              # without the 24-MP crowd (faster)
    python benchmarks/detectors.py --photos DIR --labels labels.json          # plus a folder of real photos
    python benchmarks/detectors.py --detectors centerface dlib --json-out det.jsonl
    python benchmarks/detectors.py --no-large --save-set /tmp/set  # also write the generated set + labels.json

Detectors: ``dlib-old`` (dlib with the scaling rule osdface used before: the photo reduced to a long side of 2000,
then HOG upsampled 2x if its short side is under 1000 px, 4x under 300), ``dlib`` (the current rule:
:meth:`osdface.faces.detection.DlibDetector.detection_scale`), ``centerface``
(:class:`osdface.faces.centerface.CenterFaceDetector`), ``retinaface`` (only when its weights are on disk).

The generated set (:func:`osdface.faces.synthetic_group.standard_scenes`) is made at run time from the
public-domain astronaut face and, when present, the face crops of ``--faces-dir`` (default ``$OSDFACE_FACES`` or
``<repo>/../shared/data/faces``); its labels come from the construction. ``--labels``: a JSON object
``{"photo.jpg": [{"box": [x0, y0, x1, y1], "landmarks": [[x, y] x 5]}, ...]}`` (landmarks optional, in the order
left eye, right eye, nose tip, left mouth corner, right mouth corner; "left" = the image's left).

Scoring (:func:`osdface.faces.synthetic_group.match_faces`): a detection matches a labelled face when each box holds
the other's centre and their widths are within 0.4-2.5x of each other (the detectors' box conventions differ); best
scores first, one detection per face; further detections of a matched face are duplicates, detections of no face
are false positives. Columns: recall; FP; dup; smallest found (the width of the narrowest labelled face found, px);
s/photo (mean wall time of ``detect``, landmarks included); lm err (mean distance of the 5 points to the labels
over matched faces, in inter-ocular distances: mean / median); tmpl res (median RMS residual, in 512-crop pixels,
of the similarity fit of the 5 points to the FFHQ template: how well a crop aligns); vs dlib (mean distance between
this detector's points and the current dlib's on the faces both found, in inter-ocular distances).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from osdface.faces.alignment import apply_affine, similarity_transform, template  # noqa: E402
from osdface.faces.detection import DlibDetector, Face, find_retinaface_weights  # noqa: E402
from osdface.image_io import as_rgb_uint8  # noqa: E402
from osdface.weights import MissingWeightsError  # noqa: E402
from osdface.faces.synthetic_group import LabelledFace, Scene, match_faces, standard_scenes  # noqa: E402

ALL = ("dlib-old", "dlib", "centerface", "retinaface")


class LegacyDlib(DlibDetector):
    """dlib with osdface's earlier scaling rule (for comparison): long side reduced to 2000, then HOG's own
    upsampling 2 times (4x) for a short side under 300 px, once (2x) under 1000 px."""

    name = "dlib-old"

    def detect(self, img) -> list[Face]:
        import cv2

        img = as_rgb_uint8(img)
        h, w = img.shape[:2]
        factor, small = 1.0, img
        if max(h, w) > 2000:
            factor = 2000 / max(h, w)
            small = cv2.resize(img, (max(1, round(w * factor)), max(1, round(h * factor))),
                               interpolation=cv2.INTER_AREA)
        short = min(small.shape[:2])
        faces = self._detect(small, full=img, factor=factor, upsample_times=2 if short < 300 else 1 if short < 1000
                             else 0)
        faces.sort(key=lambda f: -f.score)
        return faces


def build(name: str, threads: int = 0):
    if name == "dlib-old":
        return LegacyDlib()
    if name == "dlib":
        return DlibDetector()
    if name == "centerface":
        from osdface.faces.centerface import CenterFaceDetector

        return CenterFaceDetector(threads=threads)
    if name == "retinaface":
        from osdface.faces.detection import RetinaFaceDetector

        if find_retinaface_weights() is None:
            raise MissingWeightsError("RetinaFace weights not on disk")
        return RetinaFaceDetector(allow_download=False)
    raise ValueError(name)


def load_labelled_folder(folder: Path, labels_json: Path) -> list[Scene]:
    import cv2

    labels = json.loads(Path(labels_json).read_text())
    scenes = []
    for name, faces in sorted(labels.items()):
        bgr = cv2.imread(str(folder / name), cv2.IMREAD_COLOR)
        if bgr is None:
            print(f"warning: cannot read {folder / name}; skipped", file=sys.stderr)
            continue
        lf = [LabelledFace(np.asarray(f["box"], dtype=np.float64),
                           None if f.get("landmarks") is None else np.asarray(f["landmarks"], dtype=np.float64))
              for f in faces]
        scenes.append(Scene(Path(name).stem, np.ascontiguousarray(bgr[..., ::-1]), lf, f"{folder.name}/{name}"))
    return scenes


def save_set(scenes: list[Scene], folder: Path) -> None:
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    labels = {}
    for s in scenes:
        cv2.imwrite(str(folder / f"{s.name}.png"), s.image[..., ::-1])
        faces = []
        for f in s.faces:
            entry = {"box": [round(float(v), 2) for v in f.box]}
            if f.landmarks is not None:
                entry["landmarks"] = [[round(float(x), 2), round(float(y), 2)] for x, y in f.landmarks]
            faces.append(entry)
        labels[f"{s.name}.png"] = faces
    (folder / "labels.json").write_text(json.dumps(labels, indent=1))
    print(f"wrote {len(scenes)} photos and labels.json to {folder}", file=sys.stderr)


def template_residual(points: np.ndarray) -> float:
    """RMS distance (512-crop px) of the 5 points, after the best similarity fit, to the FFHQ template."""
    t = template(512)
    m = similarity_transform(points, t)
    return float(np.sqrt(((apply_affine(m, points) - t) ** 2).sum(1).mean()))


def evaluate(detectors: dict, scenes: list[Scene], repeats: int = 1):
    """Per detector and scene: detections, time, match; returns a list of records."""
    records = []
    for scene in scenes:
        for name, det in detectors.items():
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                faces = det.detect(scene.image)
                times.append(time.perf_counter() - t0)
            m = match_faces(scene.faces, faces)
            records.append(dict(detector=name, scene=scene.name, faces=faces, match=m, seconds=min(times)))
            print(f"  {scene.name:18s} {name:11s} {len(m.pairs):3d}/{len(scene.faces):<3d} fp {len(m.false_positives)}"
                  f" dup {len(m.duplicates)} {min(times):6.2f} s", file=sys.stderr)
    return records


def summarize(records, scenes, names, ref="dlib"):
    by_scene = {s.name: s for s in scenes}
    rows = []
    for name in names:
        recs = [r for r in records if r["detector"] == name]
        total = sum(len(by_scene[r["scene"]].faces) for r in recs)
        found = sum(len(r["match"].pairs) for r in recs)
        fps = sum(len(r["match"].false_positives) for r in recs)
        dups = sum(len(r["match"].duplicates) for r in recs)
        widths = [by_scene[r["scene"]].faces[g].width for r in recs for g, _ in r["match"].pairs]
        errs = np.concatenate([r["match"].landmark_errors(by_scene[r["scene"]].faces, r["faces"]) for r in recs]
                              or [np.zeros(0)])
        res = [template_residual(r["faces"][d].landmarks) for r in recs for _, d in r["match"].pairs]
        vs = []
        for r in recs:
            other = next((o for o in records if o["detector"] == ref and o["scene"] == r["scene"]), None)
            if other is None or name == ref:
                continue
            mine, theirs = dict(r["match"].pairs), dict(other["match"].pairs)
            for g in set(mine) & set(theirs):
                lab = by_scene[r["scene"]].faces[g]
                if lab.landmarks is None:
                    continue
                d = np.linalg.norm(r["faces"][mine[g]].landmarks - other["faces"][theirs[g]].landmarks, axis=1)
                vs.append(d.mean() / lab.iod)
        rows.append(dict(detector=name, found=found, total=total, recall=found / max(total, 1), fp=fps, dup=dups,
                         smallest_found_px=min(widths) if widths else None,
                         seconds_per_photo=float(np.mean([r["seconds"] for r in recs])),
                         lm_err_mean=float(errs.mean()) if errs.size else None,
                         lm_err_median=float(np.median(errs)) if errs.size else None,
                         template_residual_median=float(np.median(res)) if res else None,
                         vs_ref=float(np.mean(vs)) if vs else None, vs_ref_n=len(vs), ref=ref))
    return rows


def _f(v, fmt):
    return "–" if v is None else format(v, fmt)


def markdown(rows, records, scenes, names) -> str:
    ref = rows[0]["ref"] if rows else "dlib"
    out = ["| detector | recall | FP | dup | smallest found (px) | s/photo | lm err mean / median (IOD) | "
           f"tmpl res (px) | vs {ref} (IOD) |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        vs = "–" if r["vs_ref"] is None else f"{r['vs_ref']:.3f} (n={r['vs_ref_n']})"
        out.append(f"| {r['detector']} | {r['found']}/{r['total']} ({r['recall']:.1%}) | {r['fp']} | {r['dup']} | "
                   f"{_f(r['smallest_found_px'], '.0f')} | {r['seconds_per_photo']:.2f} | "
                   f"{_f(r['lm_err_mean'], '.3f')} / {_f(r['lm_err_median'], '.3f')} | "
                   f"{_f(r['template_residual_median'], '.1f')} | {vs} |")
    out += ["", "| photo | size | faces | " + " | ".join(names) + " |",
            "| --- | --- | --- | " + " | ".join("---:" for _ in names) + " |"]
    for s in scenes:
        cells = []
        for n in names:
            r = next(x for x in records if x["detector"] == n and x["scene"] == s.name)
            extra = len(r["match"].false_positives) + len(r["match"].duplicates)
            cells.append(f"{len(r['match'].pairs)}/{len(s.faces)}{f' +{extra}' if extra else ''}, "
                         f"{r['seconds']:.2f} s")
        h, w = s.image.shape[:2]
        widths = [f.width for f in s.faces]
        out.append(f"| {s.name} | {w}x{h} | {len(s.faces)} ({min(widths):.0f}-{max(widths):.0f} px) | "
                   + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--detectors", nargs="+", default=None, choices=ALL,
                   help="default: all available (retinaface only when its weights are on disk)")
    p.add_argument("--faces-dir", type=Path, default=None, help="face crops for the generated set")
    p.add_argument("--no-generated", action="store_true", help="only the --photos set")
    p.add_argument("--no-large", action="store_true", help="leave out the 24-MP crowd")
    p.add_argument("--photos", type=Path, default=None)
    p.add_argument("--labels", type=Path, default=None)
    p.add_argument("--repeats", type=int, default=1, help="timed runs per photo (the fastest counts)")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: its default)")
    p.add_argument("--json-out", type=Path, default=None)
    p.add_argument("--save-set", type=Path, default=None,
                   help="also write the photos (PNG) and a labels.json in the --labels format into this folder")
    args = p.parse_args(argv)
    if (args.photos is None) != (args.labels is None):
        p.error("--photos and --labels go together")

    scenes = [] if args.no_generated else standard_scenes(args.faces_dir, large=not args.no_large)
    if args.photos is not None:
        scenes += load_labelled_folder(args.photos, args.labels)
    if not scenes:
        p.error("no photos")
    if args.save_set:
        save_set(scenes, args.save_set)

    names = args.detectors or list(ALL)
    detectors = {}
    for n in names:
        try:
            detectors[n] = build(n, args.threads)
        except MissingWeightsError as err:
            if args.detectors:
                p.error(f"{n}: {err}")
            print(f"skipping {n}: {err}", file=sys.stderr)
    names = list(detectors)
    for det in detectors.values():  # warm-up (session start, first allocation)
        det.detect(scenes[-1].image)
    records = evaluate(detectors, scenes, args.repeats)
    rows = summarize(records, scenes, names, ref="dlib" if "dlib" in names else names[0])
    import cv2
    import platform

    env = dict(cpu=platform.processor() or platform.machine(), cores=os.cpu_count(), opencv=cv2.__version__,
               faces_dir=str(args.faces_dir or os.environ.get("OSDFACE_FACES", "../shared/data/faces")))
    if args.json_out:
        with open(args.json_out, "a") as fh:
            for r in rows:
                fh.write(json.dumps({**r, **env}) + "\n")
    for r in rows:
        print(json.dumps(r))
    print()
    print(markdown(rows, records, scenes, names))


if __name__ == "__main__":
    main()
