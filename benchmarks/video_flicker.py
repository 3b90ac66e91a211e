"""Flicker of video restoration: per-frame independent detection + alignment (how CodeFormer treats a video)
against this library's tracking + smoothing, on generated clips whose face motion is known.

    python benchmarks/video_flicker.py                         # 480p, 50 frames, the bundled nano model
    python benchmarks/video_flicker.py --ablations             # + tracked without smoothing, one-euro, ...
    python benchmarks/video_flicker.py --size 240x426 --frames 30 --faces 1 --motions moving   # a quick look

Clips (osdface/video/synthetic.py): a face (the public-domain astronaut, then faces of the shared data when
present) pasted on a generated background, moving along a smooth path (``moving``: pan ±18 % of the width, zoom
±15 %, rotation ±8°) or ``still``, each frame degraded with the same blur / down-scaling / JPEG but fresh noise,
encoded as H.264 (crf 18) with an AAC track; then restored by :func:`osdface.restore.restore_video` in each mode.

Figures, per mode (frames t ≥ 1; all on the 0–255 scale or in pixels of the clip):

* **warp error**: mean |O_t − W(O_{t−1})| inside the face's aligned-crop square at t (where a restorer can change
  pixels; the paste seam included), W warping the previous output frame by the KNOWN motion: the face's similarity
  transform between the two frames on the pasted face, identity on the static background around it (the thin ring
  where the generator blends the two is left out). It is what flicker is: change that the scene's motion does not
  explain. The same figure on the clean frames (interpolation floor) and on the degraded input is printed too;
  "Δ vs input" is output minus input (negative: steadier than the input).
* **landmark jitter**: mean over frames and the 5 points of |(l_t − g_t) − (l_{t−1} − g_{t−1})|, l the landmarks
  the crop was aligned with, g the truth: frame-to-frame alignment error (a constant offset between the detector's
  points and the template's is not jitter); also in % of the inter-ocular distance. **landmark error**: mean
  |l_t − g_t − mean offset| (the error left after removing that constant offset).
* **frames/s**: end to end (decode, detection, tracking, restoration, paste, encode) on this machine, model loaded.

Prints one JSON line per run, then a markdown table (the README's video section).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

MODES = {
    "independent (per-frame detection, raw landmarks)": dict(detect_every=1, smoothing="none", temporal=0.0,
                                                            tracker_options=dict(flow=False, gain=1.0)),
    "tracked + smoothed, no temporal blend": dict(temporal=0.0),
    "tracked + smoothed + temporal blend 0.5 (default)": dict(),
}
ABLATIONS = {
    "per-frame detection + Savitzky-Golay": dict(detect_every=1, temporal=0.0,
                                                 tracker_options=dict(flow=False, gain=1.0)),
    "tracked (flow, k=5, gain 0.3), no smoothing": dict(smoothing="none", temporal=0.0),
    "tracked + one-euro": dict(smoothing="one_euro", temporal=0.0),
    "tracked, detection every frame + Savitzky-Golay": dict(detect_every=1, temporal=0.0),
    "tracked + smoothed + temporal blend 0.3": dict(temporal=0.3),
    "tracked + smoothed + temporal blend 0.7": dict(temporal=0.7),
    "independent + temporal blend 0.5": dict(detect_every=1, smoothing="none", temporal=0.5,
                                             tracker_options=dict(flow=False, gain=1.0)),
}


def decode(path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def _square(affine_512: np.ndarray, shape) -> np.ndarray:
    """The aligned crop's square (512 template crop) in frame pixels, as a boolean mask."""
    h, w = shape[:2]
    m = cv2.warpAffine(np.ones((512, 512), np.uint8), affine_512, (w, h), flags=cv2.INTER_NEAREST)
    return m > 0


def warp_error(frames: list[np.ndarray], truth) -> dict:
    """See the module docstring: ``all`` (the face region), ``face`` (on the face only), ``edge`` (the static
    part of the crop square around the face, where the paste seam moves)."""
    errs, face_errs, edge_errs = [], [], []
    for t in range(1, len(frames)):
        a0, a1 = np.vstack([truth[t - 1].affine, [0, 0, 1]]), np.vstack([truth[t].affine, [0, 0, 1]])
        move = (a1 @ np.linalg.inv(a0))[:2]  # frame t-1 → frame t, on the face
        h, w = frames[t].shape[:2]
        warped = cv2.warpAffine(frames[t - 1], move, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        m_prev = cv2.warpAffine(truth[t - 1].mask, move, (w, h), flags=cv2.INTER_LINEAR)
        face = (truth[t].mask > 0.99) & (m_prev > 0.99)
        static = (truth[t].mask < 0.01) & (truth[t - 1].mask < 0.01)
        region = _square(truth[t].affine, frames[t].shape)
        cur, prev = frames[t].astype(np.float32), frames[t - 1].astype(np.float32)
        diff = np.where(face[..., None], np.abs(cur - warped), np.abs(cur - prev))
        sel = region & (face | static)
        errs.append(float(diff[sel].mean()))
        face_errs.append(float(diff[region & face].mean()))
        edge_errs.append(float(diff[region & static].mean()))
    return {"all": float(np.mean(errs)), "face": float(np.mean(face_errs)), "edge": float(np.mean(edge_errs))}


def fidelity(frames: list[np.ndarray], truth) -> float:
    """Mean |O_t − clean_t| on the face (where the generator's mask is 1), 0–255: how far from the truth."""
    errs = []
    for f, t in zip(frames, truth):
        sel = t.mask > 0.99
        errs.append(float(np.abs(f.astype(np.float32) - t.hq.astype(np.float32))[sel].mean()))
    return float(np.mean(errs))


def landmark_stats(face_log, truth) -> dict:
    by_frame = {}
    for index, _, lm in face_log:
        by_frame.setdefault(index, []).append(lm)
    idx = [i for i in range(len(truth)) if len(by_frame.get(i, [])) == 1]
    if len(idx) < 2:
        return {"jitter_px": float("nan"), "jitter_iod": float("nan"), "error_px": float("nan"), "frames": len(idx)}
    e = np.array([by_frame[i][0] - truth[i].landmarks for i in idx])
    g = np.array([truth[i].landmarks for i in idx])
    iod = float(np.linalg.norm(g[:, 1] - g[:, 0], axis=1).mean())
    consecutive = np.diff(idx) == 1
    jit = np.linalg.norm(np.diff(e, axis=0), axis=2).mean(axis=1)[consecutive]
    return {"jitter_px": float(jit.mean()), "jitter_iod": float(jit.mean() / iod),
            "error_px": float(np.linalg.norm(e - e.mean(0), axis=2).mean()), "frames": len(idx)}


def print_table(rows: list[dict]) -> None:
    """The markdown table: means over the faces, per clip motion and mode."""
    print("| clip | mode | warp error, face | warp error, crop square | Δ face vs input | error vs clean "
          "| landmark jitter px (% IOD) | landmark error px | frames/s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for motion in dict.fromkeys(r["motion"] for r in rows):
        mine = [r for r in rows if r["motion"] == motion]
        inp = np.mean([r["warp_face"] for r in mine if r["mode"] == "degraded input"])
        for mode in dict.fromkeys(r["mode"] for r in mine):
            rs = [r for r in mine if r["mode"] == mode]
            mean = lambda key: float(np.mean([r[key] for r in rs]))  # noqa: E731
            cells = [f"{mean('warp_face'):.2f}", f"{mean('warp_error'):.2f}"]
            if "jitter_px" in rs[0]:
                cells += [f"{mean('warp_face') - inp:+.2f}", f"{mean('vs_clean'):.2f}",
                          f"{mean('jitter_px'):.2f} ({100 * mean('jitter_iod'):.2f} %)", f"{mean('error_px'):.2f}",
                          f"{mean('fps'):.2f}"]
            else:
                cells += ["—", f"{mean('vs_clean'):.2f}", "—", "—", "—"]
            print(f"| {motion} | {mode} | " + " | ".join(cells) + " |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="480x854", help="HxW of the clips (default 480x854: 480p)")
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--fps", type=float, default=25.0)
    ap.add_argument("--faces", type=int, default=2, help="face sources: the astronaut, then shared faces")
    ap.add_argument("--motions", nargs="+", default=["moving", "still"], choices=["moving", "still"])
    ap.add_argument("--noise", type=float, default=None,
                    help="noise sigma of the per-frame degradation (0-255; default: VIDEO_DEGRADATION's, 6)")
    ap.add_argument("--model", default=None, help="model folder (default: the bundled nano)")
    ap.add_argument("--dtype", default="fp32")
    ap.add_argument("--detector", default="auto")
    ap.add_argument("--ablations", action="store_true", help="also the ablation rows (on the moving clips)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--keep", default=None, help="keep clips and outputs in this folder")
    ap.add_argument("--table", nargs="+", default=None, metavar="JSONL",
                    help="only print the table of earlier runs (their JSON lines)")
    args = ap.parse_args(argv)
    if args.table:
        rows = [json.loads(line) for f in args.table for line in Path(f).read_text().splitlines()
                if line.startswith("{")]
        print_table(rows)
        return 0

    import torch

    from osdface.faces.detection import get_detector
    from osdface.faces.synthetic_group import face_sources
    from osdface.restore import load_pipeline, restore_video
    from osdface.video.synthetic import VIDEO_DEGRADATION, synthetic_clip, write_clip

    if args.threads:
        torch.set_num_threads(args.threads)
    h, w = (int(v) for v in args.size.lower().split("x"))
    pipe = load_pipeline(args.model, device="cpu", dtype=args.dtype)
    detector = get_detector(args.detector)
    sources = face_sources(n=max(0, args.faces - 1), seed=3)[: args.faces]
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="osdface_flicker_"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for motion in args.motions:
        modes = dict(MODES, **(ABLATIONS if args.ablations and motion == "moving" else {}))
        for name, face in sources:
            degradation = dict(VIDEO_DEGRADATION, **({} if args.noise is None else {"noise_sigma": args.noise}))
            truth = list(synthetic_clip(face, (h, w), args.frames, fps=args.fps, motion=motion, masks=True,
                                        seed=1, degradation=degradation))
            clip = write_clip(work / f"{motion}_{name}.mp4", (f.lq for f in truth), fps=args.fps)
            base = {"motion": motion, "face": name, "size": f"{w}x{h}", "frames": args.frames,
                    "noise": degradation["noise_sigma"]}
            for ref, frames in (("clean frames (floor)", [f.hq for f in truth]), ("degraded input", decode(clip))):
                we = warp_error(frames, truth)
                rows.append({**base, "mode": ref, "warp_error": we["all"], "warp_face": we["face"],
                             "warp_edge": we["edge"], "vs_clean": fidelity(frames, truth)})
                print(json.dumps(rows[-1]), flush=True)
            for mode, options in modes.items():
                log = []
                t0 = time.perf_counter()
                s = restore_video(pipe, clip, work / f"out_{len(rows)}", detector=detector, face_log=log, **options)
                seconds = time.perf_counter() - t0
                frames = decode(s.output)
                we = warp_error(frames, truth)
                row = {**base, "mode": mode, "warp_error": we["all"], "warp_face": we["face"], "warp_edge": we["edge"],
                       "vs_clean": fidelity(frames, truth),
                       **landmark_stats(log, truth), "fps": s.frames / seconds, "detections": s.detections,
                       "tracks": s.tracks, "model_s": s.model_seconds, "detect_s": s.detect_seconds}
                rows.append(row)
                print(json.dumps(row), flush=True)
    print(f"\n{args.size}, {args.frames} frames at {args.fps:g} fps, {len(sources)} face(s), model "
          f"{pipe.name} {args.dtype}, detector {detector.name}, {os.cpu_count()} CPU(s)\n")
    print_table(rows)
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
