"""``osdface deploy-space``: assemble the demo's Hugging Face Space folder (:mod:`osdface.app.space`) and upload it."""

from __future__ import annotations

import sys
from pathlib import Path

from .common import err


def add_parsers(sub) -> None:
    p = sub.add_parser("deploy-space", help="assemble the demo as a Hugging Face Space and upload it",
                       description="Assemble the demo's Space folder (app.py, the osdface package with the bundled "
                                   "nano model, examples, spaces/README.md and requirements) and upload it.")
    p.add_argument("--repo-id", default=None, help="the Space, USER/NAME (needed to upload; optional with --dry-run)")
    p.add_argument("--dry-run", action="store_true", help="write the folder and list the files; upload nothing")
    p.add_argument("--out", default=None,
                   help="where to assemble the folder (default: build/space in the checkout for --dry-run, "
                        "a temporary folder otherwise)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier build in --out")
    p.add_argument("--model", default=None, help="Hub id of the model the Space serves (Space variable OSDFACE_MODEL)")
    p.add_argument("--hardware", default=None,
                   help="suggested_hardware in the header, e.g. cpu-basic, zero-a10g, t4-small")
    p.add_argument("--title", default=None, help="the Space's title")
    p.add_argument("--private", action="store_true", default=None, help="create the Space as private")
    p.add_argument("--token", default=None, help="a Hub token with write access (default: the login / $HF_TOKEN)")
    p.set_defaults(func=cmd_deploy_space)


def cmd_deploy_space(args) -> int:
    import tempfile

    from ..app.space import REPO_ROOT, DeployError, assemble_space, check_repo_id, deploy

    tmp = None
    try:
        if args.repo_id is None and not args.dry_run:
            raise DeployError("--repo-id USER/NAME is needed to upload (or pass --dry-run)")
        repo_id = check_repo_id(args.repo_id) if args.repo_id is not None else None
        if args.out:
            out = Path(args.out)
        elif args.dry_run:
            out = REPO_ROOT / "build" / "space"
        else:
            tmp = tempfile.TemporaryDirectory(prefix="osdface-space-")
            out = Path(tmp.name) / "space"
        overwrite = args.overwrite or (args.dry_run and args.out is None)  # the default build folder is ours
        files = assemble_space(out, model=args.model, hardware=args.hardware, title=args.title, overwrite=overwrite)
    except DeployError as e:
        err(str(e))
        return 2
    size = sum((out / f).stat().st_size for f in files)
    print(f"Space folder {out} ({len(files)} files, {size / 1e6:.1f} MB):")
    for f in files:
        print(f"  {f}")
    if args.dry_run:
        where = f"https://huggingface.co/spaces/{repo_id}" if repo_id else "a Space (--repo-id USER/NAME)"
        print(f"dry run: nothing uploaded; would upload these files to {where}"
              + (f" and set OSDFACE_MODEL={args.model}" if args.model else ""))
        return 0
    try:
        deploy(repo_id, out, model=args.model, private=args.private, token=args.token)
    except Exception as e:  # network, authentication, permissions: one line
        first = str(e).splitlines()[0] if str(e) else ""
        print(f"error: upload to {repo_id} failed: {type(e).__name__}: {first}", file=sys.stderr)
        return 1
    finally:
        if tmp is not None:
            tmp.cleanup()
    print(f"uploaded: https://huggingface.co/spaces/{repo_id}")
    return 0
