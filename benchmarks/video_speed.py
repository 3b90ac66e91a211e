"""Speed of video restoration: frames per second for a 480p clip with one face, end to end.

    python benchmarks/video_speed.py                          # CPU, the bundled nano, fp32 then bf16
    python benchmarks/video_speed.py --device cuda --dtypes fp16 bf16 --model ./osdface-sd21

The clip (osdface/video/synthetic.py): 854x480, one moving face (~145 px wide), degraded per frame, H.264 with an
AAC track. Each run: ``restore_video`` with the defaults (detection every 5 frames, flow, Savitzky–Golay, batches of
8 frames, H.264 crf 17 preset medium, audio copied), after one warm-up model call. Printed per dtype: frames/s end
to end, and seconds per frame spent in the model, in detection, and in the rest (decode, flow tracking, alignment,
paste, encode; overlapped with the model where threads allow).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="480x854", help="HxW (default 480x854)")
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--model", default=None, help="model folder (default: the bundled nano)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"])
    ap.add_argument("--detector", default="auto")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    from osdface.faces.detection import get_detector
    from osdface.faces.synthetic_group import face_sources
    from osdface.restore import load_pipeline, restore_video
    from osdface.video.synthetic import synthetic_clip, write_clip

    if args.threads:
        torch.set_num_threads(args.threads)
    h, w = (int(v) for v in args.size.lower().split("x"))
    work = Path(tempfile.mkdtemp(prefix="osdface_vspeed_"))
    face = face_sources(n=1, seed=3)[-1][1]
    clip = write_clip(work / "clip.mp4", (f.lq for f in synthetic_clip(face, (h, w), args.frames, seed=1)), fps=25)
    detector = get_detector(args.detector, device=args.device)
    rows = []
    for dtype in args.dtypes:
        pipe = load_pipeline(args.model, device=args.device, dtype=dtype)
        size = pipe.config.process_size
        pipe([np.zeros((size, size, 3), np.uint8)] * 2, output_type="np")  # warm-up
        t0 = time.perf_counter()
        s = restore_video(pipe, clip, work / f"out_{dtype}", detector=detector)
        seconds = time.perf_counter() - t0
        rows.append({"device": args.device, "dtype": dtype, "size": f"{w}x{h}", "frames": s.frames,
                     "faces": s.faces, "fps": s.frames / seconds, "model_s_per_frame": s.model_seconds / s.frames,
                     "detect_s_per_frame": s.detect_seconds / s.frames,
                     "other_s_per_frame": (seconds - s.model_seconds - s.detect_seconds) / s.frames,
                     "detections": s.detections, "torch_threads": torch.get_num_threads(),
                     "cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                     "load": os.getloadavg()[0] if hasattr(os, "getloadavg") else None})
        print(json.dumps(rows[-1]), flush=True)
    print("\n| device | dtype | clip | frames/s | model s/frame | detection s/frame | rest s/frame |")
    print("|---|---|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['device']} | {r['dtype']} | {r['size']}, 1 face, {r['frames']} frames | {r['fps']:.2f} | "
              f"{r['model_s_per_frame']:.3f} | {r['detect_s_per_frame']:.3f} | {r['other_s_per_frame']:.3f} |")
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
