"""``osdface train-vae``, ``osdface train-vre``, ``osdface train``: the three training stages from the command line.

    osdface train-vae --config nano --data ../shared/data/faces --output-dir runs/nano-vae     # nano only (stage 0)
    osdface train-vre --config nano --data ../shared/data/faces --output-dir runs/nano-vre     # stage 1
    osdface train     --config nano --data ../shared/data/faces --output-dir runs/nano \\
                      --vre runs/nano-vre/final --base runs/nano-vae/final                      # stage 2
    accelerate launch -m osdface train --config my.yaml ...                                     # several GPUs

``--config`` is a preset name (nano, sd21, tiny) or a YAML file (``--print-config`` writes one to start from);
``--set key=value`` overrides any option (YAML syntax for the value).
"""

from __future__ import annotations

from .common import err, positive_int

_COMMANDS = {"train-vae": "vae", "train-vre": "vre", "train": "generator"}
_HELP = {"vae": "stage 0 (nano/tiny only): train the VAE that stands in for SD's pretrained one",
         "vre": "stage 1: train the VRE (HQ/LQ VQ autoencoders + association loss)",
         "generator": "stage 2: train the one-step generator (UNet LoRA/full + prompt projector)"}


def add_parsers(sub) -> None:
    for name, stage in _COMMANDS.items():
        p = sub.add_parser(name, help=_HELP[stage], description=_HELP[stage])
        p.add_argument("--config", default="nano", help="preset name (nano, sd21, tiny) or a YAML file")
        p.add_argument("--data", default=None, help="folder of HQ faces, or a prepared pairs folder (lq/ + hq/)")
        p.add_argument("--output-dir", default=None, help="where checkpoints, logs, grids and final/ go")
        p.add_argument("--max-steps", type=int, default=None, help="optimizer steps in all (default: the preset's)")
        p.add_argument("--batch-size", type=positive_int, default=None, help="images per step and process "
                       "(default: the preset's)")
        p.add_argument("--resume", default=None, help="a checkpoint folder, or 'latest' (in --output-dir)")
        p.add_argument("--stop-after", type=int, default=None,
                       help="stop (with a checkpoint) after this many steps, to resume later")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override any option")
        p.add_argument("--print-config", action="store_true", help="print the resolved YAML config and exit")
        if stage == "generator":
            p.add_argument("--vre", default=None, help="stage-1 VRE folder (train-vre's output_dir/final)")
            p.add_argument("--base", default=None,
                           help="SD base (Hub id / folder with vae/ unet/ scheduler/) or train-vae's output_dir/final")
        p.set_defaults(func=cmd_train, stage=stage)


def _overrides(args) -> dict:
    import yaml

    out = {"data": args.data, "output_dir": args.output_dir, "max_steps": args.max_steps,
           "batch_size": args.batch_size}
    for key in ("vre", "base"):
        if getattr(args, key, None) is not None:
            out[key] = getattr(args, key)
    for item in args.set:
        if "=" not in item:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE")
        k, v = item.split("=", 1)
        out[k.strip().replace("-", "_")] = yaml.safe_load(v)
    return out


def cmd_train(args) -> int:
    import yaml

    from ..training.config import get_train_config
    from ..weights import MissingWeightsError

    try:
        cfg = get_train_config(args.stage, args.config, **_overrides(args))
    except (KeyError, ValueError, FileNotFoundError) as e:
        err(str(e).strip("'\""))
        return 2
    if args.print_config:
        print(yaml.safe_dump({"stage": cfg.stage, **cfg.to_dict()}, sort_keys=False), end="")
        return 0
    from ..training import make_trainer

    try:
        trainer = make_trainer(cfg)
        final = trainer.train(resume=args.resume, max_steps=args.stop_after)
    except (MissingWeightsError, FileNotFoundError, ValueError, RuntimeError) as e:
        err(str(e))
        return 1
    if trainer.is_main:
        done = final.exists()
        print(f"{'done' if done else 'stopped'} at step {trainer.step}: "
              f"{final if done else trainer.checkpoint_dir(trainer.step)}")
    return 0
