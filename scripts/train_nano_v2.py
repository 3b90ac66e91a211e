"""Nano v2: the bundled nano v1 (L2 only) fine-tuned with the offline objective (issue 16; the model card has the why).

    git archive 1a2f108 osdface/assets/osdface-nano | tar -x -C runs/v1 --strip-components=2   # nano v1 (L2 only)
    python scripts/train_nano_v2.py --start runs/v1/osdface-nano --data ../shared/data/faces --out runs/nano-v2
    python scripts/finalize_nano.py --model runs/nano-v2/final --baseline runs/v1/osdface-nano \
        --faces ../shared/data/faces --work runs/nano-v2-eval

The run resumes from its checkpoints when restarted. With ``--teacher-pool`` (a 512² pool of
``scripts/teacher_pool.py``) the same recipe adds the Real-ESRGAN teacher term (``--teacher-weight``, high band only)
and trains on that fixed pool instead of fresh degradations: the bundled model fine-tuned toward Real-ESRGAN's detail,
a candidate for ``scripts/finalize_nano.py``:

    python scripts/teacher_pool.py --data ../shared/data/faces --out ~/.cache/osdface/teacher_pool_512 --resolution 512
    python scripts/train_nano_v2.py --start osdface/assets/osdface-nano --data ../shared/data/faces \
        --teacher-pool ~/.cache/osdface/teacher_pool_512 --steps 600 --out runs/nano-teacher
800 steps from v1 at 512², batch 1, lr 5e-5 (20 warm-up steps, cosine), seed 1, bf16 autocast: L2 + 0.2 identity (dlib)
+ 0.1 Sobel edge + 0.01 latent GAN (from step 100, ramped over 200 steps, every 4th step, discriminator lr 1e-4). The
VAE decoder stays v1's (``--train-decoder`` trains its residual branch too: that run learned a 4-px pattern).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RECIPE = dict(resolution=512, learning_rate=5e-5, warmup_steps=20, lr_schedule="cosine", save_every=100,
              val_every=100, log_every=10, identity_weight=0.2, identity_network="dlib", edge_weight=0.1,
              gan_weight=0.01, gan_start=100, gan_ramp=200, gan_every=4, disc_learning_rate=1e-4,
              mixed_precision="bf16", seed=1)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="folder of HQ faces (e.g. ../shared/data/faces)")
    p.add_argument("--out", default="runs/nano-v2")
    p.add_argument("--start", required=True,
                   help="the model to fine-tune: nano v1 (the bundled model up to commit 1a2f108; see above)")
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--train-decoder", action="store_true", help="also train the VAE decoder's residual branch")
    p.add_argument("--teacher-pool", default=None, help="train on this pool (scripts/teacher_pool.py, 512²) with "
                                                         "the teacher term")
    p.add_argument("--teacher-weight", type=float, default=1.0, help="λ of the teacher term (with --teacher-pool)")
    args = p.parse_args(argv)

    from osdface.training import get_train_config, make_trainer
    start = Path(args.start)
    teacher = dict(teacher_weight=args.teacher_weight) if args.teacher_pool else {}
    cfg = get_train_config("generator", "nano", data=args.teacher_pool or args.data, output_dir=args.out,
                           base=str(start), vre=str(start / "vre"), max_steps=args.steps,
                           train_vae_decoder=args.train_decoder, **RECIPE, **teacher)
    resume = "latest" if list((Path(args.out) / "checkpoints").glob("step_*")) else None
    make_trainer(cfg).train(resume=resume)
    return 0


if __name__ == "__main__":
    sys.exit(main())
