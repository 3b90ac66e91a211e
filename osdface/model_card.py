"""The model card (``README.md`` with Hub metadata) written into every saved model folder."""

from __future__ import annotations

from huggingface_hub import ModelCard, ModelCardData

from .configs import PAPER_ARXIV, OSDFaceConfig

TAGS = ["face-restoration", "image-restoration", "one-step-diffusion", "osdface", "stable-diffusion", "lora"]

_TEMPLATE = """---
{card_data}
---

# {title}

OSDFace one-step diffusion face restoration ([arXiv:{arxiv}](https://arxiv.org/abs/{arxiv}), Wang et al.,
CVPR 2025), packaged by the `osdface` library (`pip install osdface`): preset `{preset}`.

| part | stored as |
|---|---|
| base model (VAE, UNet, scheduler) | {base_line} |
| UNet | {unet_line} |
| Visual Representation Embedder + prompt projector | `vre/` (safetensors + config) |
| timestep / LoRA rank / alpha | {timestep} / {rank} / {alpha} |

## Use

```python
from osdface import OSDFacePipeline

pipe = OSDFacePipeline.from_pretrained("{repo_or_folder}")
restored = pipe(face_crop_512)  # PIL image(s), numpy array(s) or tensors in [0, 1]; returns PIL images
```

Command line: `osdface restore -i faces/ -o out/ --has_aligned --model {repo_or_folder}`.
{diffusers}{extra}
## Citation

```bibtex
@inproceedings{{wang2025osdface,
  title={{OSDFace: One-Step Diffusion Model for Face Restoration}},
  author={{Wang, Jingkai and Gong, Jue and Zhang, Lin and Chen, Zheng and Liu, Xing and Gu, Hong and Liu, Yutong and Zhang, Yulun and Yang, Xiaokang}},
  booktitle={{CVPR}},
  year={{2025}}
}}
```
"""


_DIFFUSERS = """
With diffusers alone (no `osdface` install; the folder carries `model_index.json` and the model's code):

```python
from diffusers import DiffusionPipeline

pipe = DiffusionPipeline.from_pretrained("{repo_or_folder}", trust_remote_code=True)
restored = pipe(face_crop_512).images  # list of PIL images
```
{base_note}"""


def networks_that_shaped(train_config: dict) -> list[str]:
    """The pretrained networks whose outputs entered a training run's loss (from its ``config.yaml`` as a dict), each
    with its licence, for the card: a loss term with weight 0 names nothing."""
    weight = lambda key: float(train_config.get(key) or 0)  # noqa: E731
    found = []
    if weight("identity_weight") > 0:
        if train_config.get("identity_network") == "dlib":
            found.append("dlib's face-recognition ResNet (identity loss), CC0-1.0 (face-recognition-models, model by "
                         "Davis King), ported to PyTorch")
        else:
            found.append(f"{train_config.get('identity_network', 'arcface')} face-recognition network (identity "
                         f"loss): the licence of the weights used ({train_config.get('identity_weights') or 'default'})")
    if weight("ea_dists_weight") > 0:
        found.append("VGG16 (torchvision, BSD-3-Clause) with DISTS' alpha/beta (EA-DISTS loss)")
    if weight("teacher_weight") > 0:
        from .networks.rrdbnet import LICENSE as REALESRGAN_LICENSE

        found.append(f"Real-ESRGAN x4plus (teacher term, high band only), {REALESRGAN_LICENSE}")
    return found


def make_model_card(config: OSDFaceConfig, *, unet_stored: str, base_stored: bool, repo_or_folder: str = "PATH",
                    license_name: str | None = None, license_link: str | None = None,
                    plain_diffusers: bool = False) -> ModelCard:
    """``unet_stored``: "lora" (unet_lora/) or "full" (unet/); ``base_stored``: the folder has vae/ (and unet/);
    ``plain_diffusers``: the folder has model_index.json and the code for ``DiffusionPipeline.from_pretrained``."""
    has_base_ref = config.base_model is not None and not base_stored
    data = ModelCardData(
        library_name="osdface",
        pipeline_tag="image-to-image",
        license=config.license,
        license_name=license_name if config.license == "other" else None,
        license_link=license_link if config.license == "other" else None,
        base_model=config.base_model if has_base_ref or (config.base_model and unet_stored == "lora") else None,
        tags=TAGS + [f"arxiv:{PAPER_ARXIV}"],
    )
    if data.base_model:
        data.base_model_relation = "adapter"
    extra_lines = []
    for key, value in (config.extra or {}).get("card", {}).items():
        extra_lines.append(f"\n## {key}\n\n{value}\n")
    text = _TEMPLATE.format(
        card_data=data.to_yaml(),
        title=(config.extra or {}).get("title", f"OSDFace ({config.preset})"),
        arxiv=PAPER_ARXIV,
        preset=config.preset,
        base_line=("full copies in `vae/` and `unet/`" if base_stored or config.base_model is None
                   else f"loaded from `{config.base_model}` (Hub id or folder, changeable with `base_model=`)"),
        unet_line="LoRA adapter in `unet_lora/` (PEFT naming)" if unet_stored == "lora" else "full weights in `unet/`",
        timestep=config.timestep, rank=config.lora_rank, alpha=config.lora_alpha,
        repo_or_folder=repo_or_folder,
        diffusers=_DIFFUSERS.format(repo_or_folder=repo_or_folder, base_note=(
            f"\nThe VAE and the base UNet come from `{config.base_model}`, fetched like any diffusers model (pass "
            "`base_model=\"path/or/id\"` to `from_pretrained` to use another copy); the LoRA is applied on top without "
            "peft, as `osdface` applies it.\n"
            if has_base_ref else "")) if plain_diffusers else "",
        extra="".join(extra_lines),
    )
    return ModelCard(text)
