"""The converter for the authors' release, on files this test writes with the official key names and shapes."""

import argparse
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from peft import LoraConfig
from safetensors.torch import save_file

from osdface import OSDFacePipeline
from osdface.cli import main
from osdface.configs import SD21_SCHEDULER, get_preset
from osdface.convert import ConversionError, convert_official, load_pickle_safely
from osdface.models import VisualRepresentationEmbedder
from osdface.models import lora as L

from osdface.models.lora import randomize_lora_
from osdface.weights import MissingWeightsError

from .conftest import TINY
from .test_codebook import reference_rule

BASE_UNET = {**TINY["unet"], "cross_attention_dim": 1024}  # the released projector outputs 1024-d tokens


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """A tiny SD base folder plus the three release files (random weights, official names and shapes)."""
    root = tmp_path_factory.mktemp("release")
    torch.manual_seed(0)
    AutoencoderKL(**TINY["vae"]).save_pretrained(root / "base" / "vae")
    base_unet = UNet2DConditionModel(**BASE_UNET)
    base_unet.save_pretrained(root / "base" / "unet")
    DDIMScheduler(**SD21_SCHEDULER).save_pretrained(root / "base" / "scheduler")

    vre = VisualRepresentationEmbedder(**get_preset("sd21").vre)
    with torch.no_grad():  # a spread-out codebook so that many distinct codes are selected
        vre.quantize.embedding.weight.normal_(0, 0.05)
    sd = vre.state_dict()
    lq = {f"vqvae_LQ.{k}": v for k, v in sd.items() if not k.startswith("projector.")}
    hq = {f"vqvae.{k}": torch.zeros(1) for k in list(lq)[:5]}
    decoder = {"vqvae_LQ.decoder.conv_in.weight": torch.zeros(512, 512, 3, 3),
               "vqvae_LQ.post_quant_conv.weight": torch.zeros(512, 512, 1, 1)}
    ckpt = {"state_dict": {**hq, **lq, **decoder}, "epoch": 9, "global_step": 1234,
            "hyper_parameters": {"args": argparse.Namespace(lr=1e-4, name="associate")}}
    torch.save(ckpt, root / "associate_2.ckpt")
    torch.save({k[len("projector."):]: v for k, v in sd.items() if k.startswith("projector.")},
               root / "embedding_change_weights.pth")

    lora_unet = UNet2DConditionModel(**BASE_UNET)
    lora_unet.load_state_dict(base_unet.state_dict())
    L.add_lora(lora_unet, LoraConfig(r=16, lora_alpha=16, target_modules=["to_q", "to_k", "to_v", "to_out.0",
                                                                          "conv1", "conv2"]))
    randomize_lora_(lora_unet, scale=0.02)
    peft_weights = L.lora_state_dict(lora_unet)
    save_file({f"unet.{k}": v.contiguous() for k, v in peft_weights.items()},
              root / "pytorch_lora_weights.safetensors")
    old = {f"unet.{k}".replace("lora_A.weight", "lora.down.weight").replace("lora_B.weight", "lora.up.weight"): v
           for k, v in peft_weights.items()}
    save_file({k: v.contiguous() for k, v in old.items()}, root / "old_naming.safetensors")
    return dict(root=root, base=str(root / "base"), vre_state=sd, lora=peft_weights,
                base_unet_state=base_unet.state_dict())


def convert(release, out, **files):
    r = release["root"]
    return convert_official(files.get("vre", r / "associate_2.ckpt"),
                            files.get("projector", r / "embedding_change_weights.pth"),
                            files.get("lora", r / "pytorch_lora_weights.safetensors"), out,
                            base_model=release["base"], local_files_only=True)


def reference_prompt(state, x):
    """The release's VRE path written out: resize, the [-3, 1] quirk, encoder, loop prompt rule, projector."""
    vre = VisualRepresentationEmbedder(**get_preset("sd21").vre).eval()
    vre.load_state_dict(state)
    with torch.no_grad():
        img = F.interpolate(x, size=(512, 512), mode="bilinear", align_corners=False)
        feats = vre.quant_conv(vre.encoder((img - 0.5) / 0.5)).flatten(2).transpose(1, 2)[0]
        e = state["quantize.embedding.weight"]
        dist = feats.pow(2).sum(1, keepdim=True) + e.pow(2).sum(1) - 2 * feats @ e.t()
        codes = reference_rule(dist, 77)
        tokens = torch.zeros(1, 77, 512)
        tokens[0, : len(codes)] = e[codes]
        h = F.silu(F.conv1d(tokens.transpose(1, 2), state["projector.conv1.weight"], state["projector.conv1.bias"]))
        h = F.silu(F.conv1d(h, state["projector.conv2.weight"], state["projector.conv2.bias"]))
    return h.transpose(1, 2), len(codes)


def test_converted_folder_loads_and_matches_the_release_formulas(release, tmp_path):
    out = convert(release, tmp_path / "osdface-sd21")
    pipe = OSDFacePipeline.from_pretrained(out, local_files_only=True)
    assert pipe.vre.config.double_normalize_input is True and pipe.has_lora
    assert pipe.config.base_model == release["base"] and not (out / "unet").exists()

    # 128² keeps the tiny base cheap on a CPU; the VRE still sees 512² (it resizes, as the release does)
    pipe.config.process_size = 128
    torch.manual_seed(1)
    x01 = torch.rand(1, 3, 128, 128)
    prompts = pipe.encode_prompt(x01)
    ref, n_codes = reference_prompt(release["vre_state"], x01 * 2 - 1)
    assert n_codes > 10
    assert prompts.shape == (1, 77, 1024) and (prompts - ref).abs().max() < 1e-4

    # the whole one step against the release's formulas with its own LoRA merge rule: W + alpha/r · B·A
    unet = UNet2DConditionModel(**BASE_UNET).eval()
    merged = dict(release["base_unet_state"])
    for key, a in release["lora"].items():
        if key.endswith("lora_A.weight"):
            w_key = key.replace(".lora_A.weight", ".weight")
            b = release["lora"][key.replace("lora_A", "lora_B")]
            merged[w_key] = merged[w_key] + (16 / 16) * (b.flatten(1) @ a.flatten(1)).view_as(merged[w_key])
    unet.load_state_dict(merged)
    vae = AutoencoderKL.from_pretrained(release["base"], subfolder="vae").eval()
    a_bar = DDIMScheduler(**SD21_SCHEDULER).alphas_cumprod.double()[399]
    with torch.no_grad():
        lq = x01 * 2 - 1
        z = vae.encode(lq).latent_dist.mode() * vae.config.scaling_factor
        eps = unet(z, 399, encoder_hidden_states=ref).sample
        z0 = ((z.double() - (1 - a_bar).sqrt() * eps.double()) / a_bar.sqrt()).float()
        expected = (vae.decode(z0 / vae.config.scaling_factor).sample.clamp(-1, 1) * 0.5 + 0.5).clamp(0, 1)
    assert (pipe(x01, output_type="pt") - expected).abs().max() < 1e-4
    assert (pipe.fuse_lora()(x01, output_type="pt") - expected).abs().max() < 1e-4


def test_old_lora_naming_converts_to_the_same_adapter(release, tmp_path):
    a = OSDFacePipeline.from_pretrained(convert(release, tmp_path / "a"), local_files_only=True)
    b = OSDFacePipeline.from_pretrained(
        convert(release, tmp_path / "b", lora=release["root"] / "old_naming.safetensors"), local_files_only=True)
    sa, sb = L.lora_state_dict(a.unet), L.lora_state_dict(b.unet)
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(v.ndim == 4 for v in sa.values()), "conv LoRA is part of the test"


def test_lightning_extras_are_never_executed(release):
    obj = load_pickle_safely(release["root"] / "associate_2.ckpt")
    ns = obj["hyper_parameters"]["args"]
    assert not isinstance(ns, argparse.Namespace) and "skipped" in repr(ns)
    assert obj["epoch"] == 9


def test_legacy_pickle_with_objects_fails_with_a_reason(tmp_path):
    path = tmp_path / "legacy.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "args": argparse.Namespace(a=1)}, path,
               _use_new_zipfile_serialization=False)
    with pytest.raises(MissingWeightsError, match="argparse.Namespace .*nothing in the file was run"):
        load_pickle_safely(path)


@pytest.mark.parametrize("change, message", [
    (lambda s: s.pop("vqvae_LQ.encoder.mid.attn_1.q.weight"), "missing key encoder.mid.attn_1.q.weight"),
    (lambda s: s.__setitem__("vqvae_LQ.encoder.extra.weight", torch.zeros(3)), "unexpected key encoder.extra.weight"),
    (lambda s: s.__setitem__("vqvae_LQ.quantize.embedding.weight", torch.zeros(512, 512)),
     "wrong shape for quantize.embedding.weight: \\(512, 512\\), expected \\(1024, 512\\)"),
])
def test_rejects_a_vre_that_does_not_match_the_layout(release, tmp_path, change, message):
    ckpt = torch.load(release["root"] / "associate_2.ckpt", weights_only=False)
    change(ckpt["state_dict"])
    torch.save({"state_dict": ckpt["state_dict"]}, tmp_path / "bad.ckpt")
    with pytest.raises(ConversionError, match=message):
        convert(release, tmp_path / "out", vre=tmp_path / "bad.ckpt")
    assert not (tmp_path / "out").exists()


def test_rejects_bad_projector_and_lora(release, tmp_path):
    torch.save({"conv1.weight": torch.zeros(256, 512, 1), "conv1.bias": torch.zeros(256),
                "conv2.weight": torch.zeros(768, 256, 1), "conv2.bias": torch.zeros(768)}, tmp_path / "p.pth")
    with pytest.raises(ConversionError, match="wrong shape for projector.conv2.weight"):
        convert(release, tmp_path / "o1", projector=tmp_path / "p.pth")
    bad = {f"unet.{k}": v.contiguous() for k, v in release["lora"].items()}
    key = next(k for k in bad if k.endswith("to_q.lora_A.weight"))
    bad[key] = torch.zeros(16, 7)
    save_file(bad, tmp_path / "l.safetensors")
    with pytest.raises(ConversionError, match="does not fit the base UNet"):
        convert(release, tmp_path / "o2", lora=tmp_path / "l.safetensors")


def test_refuses_a_non_empty_output_folder(release, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("user file")
    with pytest.raises(ConversionError, match="not empty"):
        convert(release, tmp_path / "out")
    assert (tmp_path / "out" / "keep.txt").read_text() == "user file"


def test_cli_convert(release, tmp_path, capsys):
    r = release["root"]
    rc = main(["convert", "--vre", str(r / "associate_2.ckpt"), "--projector", str(r / "embedding_change_weights.pth"),
               "--lora", str(r / "pytorch_lora_weights.safetensors"), "--base", release["base"], "--out",
               str(tmp_path / "m"), "--local-files-only"])
    assert rc == 0 and (tmp_path / "m" / "osdface_config.json").is_file()
    # plain diffusers' files: model_index.json naming the base, the code copies (the LoRA's loader included)
    from osdface.remote_code import LORA_FILE, MODELS, REMOTE_FILES

    index = json.loads((tmp_path / "m" / "model_index.json").read_text())
    assert index["unet"] == index["vae"] == [None, None] and index["unet_lora"] == ["osdface_lora", "UNetLoRA"]
    assert index["base_model"] == release["base"] and index["process_size"] == 512
    for name, source in {**REMOTE_FILES, **LORA_FILE}.items():
        assert (tmp_path / "m" / name).read_bytes() == (MODELS / source).read_bytes()
    assert "trust_remote_code=True" in (tmp_path / "m" / "README.md").read_text()
    rc = main(["convert", "--vre", str(tmp_path / "nope.ckpt"), "--projector", "x", "--lora", "y", "--out",
               str(tmp_path / "n")])
    assert rc == 2 and "nope.ckpt: no such file" in capsys.readouterr().err


class _Booby:
    """A pickle that would run a shell command when unpickled without weights_only (the classic trap)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("kind", ["global", "global-legacy", "truncated", "not-a-pickle"])
def test_unsafe_or_damaged_checkpoints_are_one_line_and_write_nothing(tmp_path, capsys, kind):
    marker = tmp_path / "pwned"
    bad = tmp_path / "associate_2.ckpt"
    payload = {"state_dict": {"w": torch.zeros(1)}, "trap": _Booby(marker)}
    if kind == "global":
        torch.save(payload, bad)
    elif kind == "global-legacy":
        torch.save(payload, bad, _use_new_zipfile_serialization=False)
    elif kind == "truncated":
        torch.save({"state_dict": {"w": torch.zeros(1000)}}, bad)
        bad.write_bytes(bad.read_bytes()[:300])
    else:
        bad.write_bytes(b"not a checkpoint at all")
    out = tmp_path / "out"
    rc = main(["convert", "--vre", str(bad), "--projector", str(bad), "--lora", str(bad), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith(f"error: {bad}: "), err
    if kind.startswith("global"):
        assert "posix.system" in err[0] or "os.system" in err[0]
        assert "nothing in the file was run" in err[0]
    else:
        assert "truncated, or not a PyTorch / pickle file" in err[0]
    assert not marker.exists() and not out.exists()


def test_hub_round_trip_names_the_base_by_its_id(release, tmp_path, monkeypatch):
    """Convert with a local base folder and its Hub id; push (a recording stand-in for the Hub); load the pushed
    folder in a fresh process where the local folder is gone and the base exists only under its id in a local
    Hugging Face cache (HF_HUB_OFFLINE=1): same output as before."""
    import shutil
    import subprocess
    import sys

    import huggingface_hub
    import yaml

    base = tmp_path / "sd21-base"
    shutil.copytree(release["base"], base)
    model = tmp_path / "osdface-sd21"
    r = release["root"]
    convert_official(r / "associate_2.ckpt", r / "embedding_change_weights.pth", r / "pytorch_lora_weights.safetensors",
                     model, base_model=str(base), base_model_id="someone/tiny-sd-base", local_files_only=True)
    config = json.loads((model / "osdface_config.json").read_text())
    assert config["base_model"] == "someone/tiny-sd-base" and config["base_model_local"] == str(base.resolve())
    pipe = OSDFacePipeline.from_pretrained(model, local_files_only=True)  # loads the base from the local folder
    x = torch.rand(1, 3, 64, 64)
    expected = pipe(x, output_type="pt")
    torch.save(x, tmp_path / "x.pt")
    torch.save(expected, tmp_path / "expected.pt")

    pushed = tmp_path / "hub" / "me--osdface-sd21"

    class RecordingApi:
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, **kw):
            pass

        def upload_folder(self, repo_id, folder_path, **kw):
            shutil.copytree(folder_path, pushed)

    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingApi)
    pipe.push_to_hub("me/osdface-sd21")
    text = (pushed / "osdface_config.json").read_text() + (pushed / "README.md").read_text()
    assert str(tmp_path) not in text  # no path of this machine is published
    meta = yaml.safe_load((pushed / "README.md").read_text().split("---")[1])
    assert meta["base_model"] == "someone/tiny-sd-base" and meta["license_name"] == "osdface-authors-terms"

    # the base only in a Hugging Face cache, by its id; the converting machine's folder is gone
    rev = "0" * 40
    snapshot = tmp_path / "hf-cache" / "models--someone--tiny-sd-base" / "snapshots" / rev
    shutil.copytree(base, snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text(rev)
    shutil.rmtree(base)
    code = ("import sys, torch\nfrom osdface import OSDFacePipeline\n"
            f"pipe = OSDFacePipeline.from_pretrained({str(pushed)!r})\n"
            f"x, want = torch.load({str(tmp_path / 'x.pt')!r}), torch.load({str(tmp_path / 'expected.pt')!r})\n"
            "print(float((pipe(x, output_type='pt') - want).abs().max()))\n")
    env = {**__import__("os").environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hf-cache")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    assert float(out.stdout.strip().splitlines()[-1]) == 0.0
    index = json.loads((pushed / "model_index.json").read_text())  # what plain diffusers reads
    assert index["base_model"] == "someone/tiny-sd-base" and index["base_model_local"] is None


@pytest.mark.slow  # the converted VRE runs at 512² in a fresh process (≈ 1 min on 2 busy cores)
def test_a_pushed_converted_folder_loads_in_plain_diffusers(release, tmp_path, monkeypatch):
    """The authors' files converted, pushed (a recording stand-in for the Hub), loaded by plain diffusers with
    osdface blocked, the base only under its Hub id in a local cache: OSDFacePipeline's output to 1e-6."""
    import shutil

    import huggingface_hub

    from .test_plain_diffusers import run_plain_diffusers

    base = tmp_path / "sd21-base"
    shutil.copytree(release["base"], base)
    r = release["root"]
    model = convert_official(r / "associate_2.ckpt", r / "embedding_change_weights.pth",
                             r / "pytorch_lora_weights.safetensors", tmp_path / "osdface-sd21", base_model=str(base),
                             base_model_id="someone/tiny-sd-base", local_files_only=True)
    pipe = OSDFacePipeline.from_pretrained(model, local_files_only=True)
    torch.manual_seed(3)
    x = torch.rand(1, 3, 64, 64)
    expected = pipe(x, output_type="pt")
    pushed = tmp_path / "pushed"

    class RecordingApi:
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, **kw):
            pass

        def upload_folder(self, repo_id, folder_path, **kw):
            shutil.copytree(folder_path, pushed)

    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingApi)
    pipe.push_to_hub("me/osdface-sd21")
    snapshot = tmp_path / "hf-cache" / "models--someone--tiny-sd-base" / "snapshots" / ("0" * 40)
    shutil.copytree(base, snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
    shutil.rmtree(base)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    plain, _ = run_plain_diffusers(pushed, x, tmp_path, pil=False)
    assert (plain - expected).abs().max() <= 1e-6


def test_publishing_a_base_that_is_only_a_local_folder_is_refused(release, tmp_path, monkeypatch):
    import huggingface_hub

    model = convert(release, tmp_path / "m")  # the tiny test base is not SD 2.1's architecture: kept as a path
    pipe = OSDFacePipeline.from_pretrained(model, local_files_only=True)
    assert pipe.config.base_model == release["base"] or Path(pipe.config.base_model).is_dir()
    calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda token=None: calls.append("api") or _NoHub())
    with pytest.raises(ValueError, match="only a local folder .*include_base=True"):
        pipe.push_to_hub("me/osdface")
    pipe.save_pretrained(tmp_path / "alone", include_base=True, repo_id="me/osdface")  # a standalone copy is fine


class _NoHub:
    def create_repo(self, *a, **k):
        raise AssertionError("nothing may be created on the Hub")
