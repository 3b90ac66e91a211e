"""OSDFacePipeline: inputs and outputs, save → load, base models from folders, Hub metadata, clear missing-weight errors."""

import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from osdface import MissingWeightsError, OSDFacePipeline
from osdface.configs import CONFIG_NAME


def face(seed=0, size=64):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def test_accepts_every_input_kind_and_returns_the_same_count(tiny_pipe):
    pil = face(0)
    arr = np.asarray(face(1))
    ten = torch.rand(3, 64, 64)
    out = tiny_pipe([pil, arr, ten], output_type="pil", batch_size=2)
    assert len(out) == 3 and all(isinstance(o, Image.Image) and o.size == (64, 64) and o.mode == "RGB" for o in out)
    single = tiny_pipe(pil, output_type="np")
    assert single.shape == (1, 64, 64, 3) and single.dtype == np.float32 and 0 <= single.min() <= single.max() <= 1
    batch = tiny_pipe(torch.rand(5, 3, 64, 64), output_type="pt", batch_size=2)
    assert batch.shape == (5, 3, 64, 64) and batch.device.type == "cpu"
    assert tiny_pipe.encode_prompt([pil, arr]).shape == (2, 77, 64)


def test_8bit_inputs_travel_as_uint8_with_the_same_numbers(tiny_pipe):
    """PIL / uint8 arrays reach the device as uint8 and are divided there: bit-identical to the float path."""
    from osdface import image_io

    imgs = [face(0), np.asarray(face(1)), face(2)]
    items = image_io.to_model_items(imgs)
    assert [t.dtype for t in items] == [torch.uint8] * 3 and items[0].shape == (3, 64, 64)
    fast = tiny_pipe._model_input(items)
    slow = tiny_pipe._model_input(image_io.to_float_batch(imgs))
    assert fast.dtype == slow.dtype and torch.equal(fast, slow)
    mixed = image_io.to_model_items([face(0), torch.from_numpy(np.array(face(1))).permute(2, 0, 1).float() / 255])
    assert [t.dtype for t in mixed] == [torch.uint8, torch.float32]
    assert torch.equal(tiny_pipe._model_input(mixed), slow[:2])
    # the same validation and messages as the float path
    with pytest.raises(image_io.ImageInputError, match=r"images\[1\].*too small"):
        image_io.to_model_items([face(0), Image.new("RGB", (8, 8))])
    arr = np.array(face(1))
    image_io.to_model_items([arr])[0].fill_(7)  # an item never shares memory with the caller's array
    assert np.array_equal(arr, np.asarray(face(1)))


def test_pil_output_is_the_rounded_tensor_output(tiny_pipe):
    """The PIL path quantises on the device; it must equal rounding the float output on the host."""
    from osdface import image_io

    imgs = [face(i) for i in range(3)]
    pt = tiny_pipe(imgs, output_type="pt", batch_size=3)
    pil = tiny_pipe(imgs, output_type="pil", batch_size=3)
    for t, im in zip(pt, pil):
        assert np.array_equal(np.asarray(im), np.asarray(image_io.tensor_to_pil(t)))
    u8 = image_io.to_uint8_hwc(torch.tensor([[[[float("nan"), -0.2, 0.5 / 255, 1.5 / 255, 1.3]]]]).expand(1, 3, 1, 5))
    assert u8.dtype == torch.uint8 and u8.shape == (1, 1, 5, 3) and u8[0, 0, :, 0].tolist() == [0, 0, 1, 2, 255]


def test_batch_size_does_not_change_results(tiny_pipe):
    imgs = [face(i) for i in range(3)]
    a = tiny_pipe(imgs, output_type="pt", batch_size=1)
    b = tiny_pipe(imgs, output_type="pt", batch_size=3)
    assert (a - b).abs().max() < 1e-2 and (a - b).abs().mean() < 1e-4  # kernel rounding only


def test_resizes_other_sizes_like_the_release(tiny_pipe):
    x = tiny_pipe.preprocess(face(0, size=96))
    ref = torch.nn.functional.interpolate(
        torch.from_numpy(np.array(face(0, size=96))).permute(2, 0, 1)[None].float() / 255 * 2 - 1,
        size=(64, 64), mode="bilinear", align_corners=True)
    assert torch.allclose(x, ref, atol=1e-6)
    with pytest.warns(UserWarning, match="not square"):
        tiny_pipe.preprocess(Image.new("RGB", (80, 64)))


def test_rejects_bad_arguments(tiny_pipe):
    with pytest.raises(ValueError, match="output_type"):
        tiny_pipe(face(), output_type="jpg")
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        tiny_pipe(torch.full((3, 64, 64), 2.0))


def test_save_load_round_trip_is_identical(tiny_pipe, tmp_path):
    imgs = [face(0), face(1)]
    before = tiny_pipe(imgs, output_type="pt")
    tiny_pipe.save_pretrained(tmp_path)
    for name in [CONFIG_NAME, "README.md", "vre/config.json", "vre/diffusion_pytorch_model.safetensors",
                 "unet_lora/pytorch_lora_weights.safetensors", "unet_lora/adapter_config.json",
                 "unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors",
                 "scheduler/scheduler_config.json"]:
        assert (tmp_path / name).is_file(), name
    assert not list(tmp_path.rglob("*.bin")) and not list(tmp_path.rglob("*.pt*"))
    loaded = OSDFacePipeline.from_pretrained(tmp_path)
    assert loaded.has_lora and loaded.config.to_dict() == tiny_pipe.config.to_dict()
    assert torch.equal(loaded(imgs, output_type="pt"), before)
    fused = OSDFacePipeline.from_pretrained(tmp_path, fuse_lora=True)
    assert not fused.has_lora  # fused ≡ unfused (1e-5 at the UNet output, test_lora); the image after x0 and decode:
    diff = (fused(imgs, output_type="pt") - before).abs()
    assert diff.max() < 1e-4 and diff.mean() < 1e-5


def test_fused_model_saves_a_full_unet(tiny_pipe, tmp_path):
    before = tiny_pipe(face(), output_type="pt")
    tiny_pipe.fuse_lora().save_pretrained(tmp_path)
    assert not (tmp_path / "unet_lora").exists() and (tmp_path / "unet").is_dir()
    assert (OSDFacePipeline.from_pretrained(tmp_path)(face(), output_type="pt") - before).abs().max() < 1e-4


def test_base_model_from_a_local_folder_offline(tiny_pipe, tmp_path):
    base = tmp_path / "base"
    tiny_pipe.vae.save_pretrained(base / "vae")
    base_unet = OSDFacePipeline.from_preset(tiny_pipe.config, seed=0, lora=False).unet
    base_unet.load_state_dict({k.replace(".base_layer", ""): v for k, v in tiny_pipe.unet.state_dict().items()
                               if "lora_" not in k})
    base_unet.save_pretrained(base / "unet")
    tiny_pipe.scheduler.save_pretrained(base / "scheduler")
    tiny_pipe.config.base_model = str(base)
    model = tmp_path / "model"
    tiny_pipe.save_pretrained(model)
    assert not (model / "vae").exists() and not (model / "unet").exists()  # only the adapter + VRE
    card = (model / "README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["base_model"] == str(base) and meta["base_model_relation"] == "adapter"
    loaded = OSDFacePipeline.from_pretrained(model, local_files_only=True)
    assert torch.equal(loaded(face(), output_type="pt"), tiny_pipe(face(), output_type="pt"))
    # include_base makes a folder that stands alone
    alone = tmp_path / "alone"
    tiny_pipe.save_pretrained(alone, include_base=True)
    assert (alone / "vae").is_dir() and (alone / "unet").is_dir() and (alone / "unet_lora").is_dir()
    assert torch.equal(OSDFacePipeline.from_pretrained(alone, base_model="/nonexistent")(face(), output_type="pt"),
                       tiny_pipe(face(), output_type="pt"))


def test_missing_weights_give_one_clear_error(tiny_pipe, tmp_path):
    tiny_pipe.config.base_model = "someone/not-downloaded-sd21"
    tiny_pipe.save_pretrained(tmp_path / "m")
    assert not (tmp_path / "m" / "vae").exists()  # to be loaded from the (absent) base model
    with pytest.raises(MissingWeightsError, match="hf download someone/not-downloaded-sd21") as err:
        OSDFacePipeline.from_pretrained(tmp_path / "m")
    assert "\n" not in str(err.value)
    with pytest.raises(MissingWeightsError, match="does not exist"):
        OSDFacePipeline.from_pretrained(tmp_path / "m", base_model="./no/such/base")
    with pytest.raises(MissingWeightsError, match="hf download me/osdface"):
        OSDFacePipeline.from_pretrained("me/osdface")
    with pytest.raises(MissingWeightsError, match="not an OSDFace model folder"):
        OSDFacePipeline.from_pretrained(tmp_path)
    with pytest.raises(MissingWeightsError, match="no such model folder"):
        OSDFacePipeline.from_pretrained(tmp_path / "nope")


def test_model_card_metadata(tiny_pipe, tmp_path):
    tiny_pipe.save_pretrained(tmp_path)
    text = (tmp_path / "README.md").read_text()
    meta = yaml.safe_load(text.split("---")[1])
    assert meta["library_name"] == "osdface" and meta["pipeline_tag"] == "image-to-image"
    assert meta["license"] == "apache-2.0" and "face-restoration" in meta["tags"]
    assert "arxiv:2411.17163" in meta["tags"] and "https://arxiv.org/abs/2411.17163" in text
    cfg = json.loads((tmp_path / CONFIG_NAME).read_text())
    assert cfg["preset"] == "tiny" and cfg["timestep"] == 399


def test_push_to_hub_uploads_the_saved_folder(tiny_pipe, monkeypatch):
    import huggingface_hub

    seen = {}

    def create_repo(self, repo_id, **kw):
        seen["created"] = repo_id

    def upload_folder(self, repo_id, folder_path, **kw):
        from pathlib import Path
        seen["files"] = sorted(str(p.relative_to(folder_path)) for p in Path(folder_path).rglob("*") if p.is_file())
        seen["card"] = (Path(folder_path) / "README.md").read_text()
        return "commit-url"

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    assert tiny_pipe.push_to_hub("me/osdface-nano") == "commit-url"
    assert seen["created"] == "me/osdface-nano"
    assert "vre/diffusion_pytorch_model.safetensors" in seen["files"] and CONFIG_NAME in seen["files"]
    assert 'from_pretrained("me/osdface-nano")' in seen["card"]


def test_bf16_path(tiny_pipe):
    fp32 = tiny_pipe(face(), output_type="pt")
    tiny_pipe.to(dtype="bf16")
    assert tiny_pipe.dtype == torch.bfloat16 and tiny_pipe.vre.dtype == torch.bfloat16
    bf16 = tiny_pipe(face(), output_type="pt")
    assert bf16.dtype == torch.float32 and (bf16 - fp32).abs().mean() < 0.05


def test_real_face_restores_to_a_valid_image(tiny_pipe, faces_dir):
    img = Image.open(sorted(faces_dir.glob("*.png"))[0])
    out = tiny_pipe(img, output_type="np")
    assert out.shape == (1, 64, 64, 3) and np.isfinite(out).all()
