"""LoRA: namings, configs from files, strict loading, and fusing (W + α/r·B·A) that matches the unfused output."""

import pytest
import torch
from diffusers import UNet2DConditionModel
from peft import LoraConfig

from osdface.models import lora as L

from osdface.models.lora import randomize_lora_

from .conftest import TINY


def tiny_unet():
    torch.manual_seed(0)
    return UNet2DConditionModel(**TINY["unet"]).eval()


def unet_inputs():
    g = torch.Generator().manual_seed(1)
    return torch.randn(2, 4, 16, 16, generator=g), torch.randn(2, 77, 64, generator=g)


def run(unet):
    z, c = unet_inputs()
    with torch.no_grad():
        return unet(z, 399, encoder_hidden_states=c).sample


def lora_unet(targets=("to_q", "to_v", "conv1", "proj_in"), r=4, alpha=8.0):
    unet = tiny_unet()
    L.add_lora(unet, LoraConfig(r=r, lora_alpha=alpha, target_modules=list(targets)))
    randomize_lora_(unet)
    return unet


def test_fused_equals_unfused_and_is_plain_layers():
    unet = lora_unet()
    unfused = run(unet)
    assert not torch.allclose(unfused, run(tiny_unet()), atol=1e-4), "the LoRA must change the output"
    L.fuse_lora(unet)
    assert not L.has_lora(unet)
    assert not any("lora_" in n for n, _ in unet.named_parameters())
    assert torch.allclose(run(unet), unfused, atol=1e-5)


def test_fuse_adds_scaled_product_for_linear_and_conv():
    unet = lora_unet(r=4, alpha=8.0)
    mods = dict(unet.named_modules())
    lin = next(n for n in mods if n.endswith("attn1.to_q"))
    conv = next(n for n in mods if n.endswith("resnets.0.conv1"))
    before = {n: mods[n].base_layer.weight.detach().clone() for n in (lin, conv)}
    a_l, b_l = mods[lin].lora_A["default"].weight.detach().clone(), mods[lin].lora_B["default"].weight.detach().clone()
    a_c, b_c = mods[conv].lora_A["default"].weight.detach().clone(), mods[conv].lora_B["default"].weight.detach().clone()
    assert a_c.ndim == 4 and b_c.shape[2:] == (1, 1)
    L.fuse_lora(unet)
    mods = dict(unet.named_modules())
    assert torch.allclose(mods[lin].weight, before[lin] + 2.0 * b_l @ a_l, atol=1e-6)
    delta_c = (b_c.flatten(1) @ a_c.flatten(1)).view_as(before[conv])
    assert torch.allclose(mods[conv].weight, before[conv] + 2.0 * delta_c, atol=1e-6)


@pytest.mark.parametrize("naming", ["peft", "old", "prefixless"])
def test_namings_load_to_the_same_model(naming):
    src = lora_unet()
    weights = L.lora_state_dict(src)
    if naming == "peft":
        file_dict = {f"unet.{k}": v for k, v in weights.items()}
    elif naming == "old":
        file_dict = {f"unet.{k}".replace(".lora_A.weight", ".lora.down.weight").replace(".lora_B.weight",
                                                                                       ".lora.up.weight"): v
                     for k, v in weights.items()}
    else:
        file_dict = dict(weights)
    norm, alphas = L.normalize_lora_state_dict(file_dict)
    assert norm.keys() == weights.keys() and alphas == {}
    dst = tiny_unet()
    L.add_lora(dst, L.lora_config_for(norm, alpha=8.0), norm)
    assert torch.allclose(run(dst), run(src), atol=1e-6)


def test_attention_processor_naming_and_alpha_keys():
    a, b = torch.randn(4, 32), torch.randn(32, 4)
    norm, alphas = L.normalize_lora_state_dict({
        "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.processor.to_out_lora.down.weight": a,
        "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.processor.to_out_lora.up.weight": b,
        "unet.mid.x.lora.down.alpha": torch.tensor(4.0),
    })
    assert set(norm) == {"down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_out.0.lora_A.weight",
                         "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_out.0.lora_B.weight"}
    assert alphas == {"mid.x": 4.0}


def test_config_inference_ranks_and_targets():
    src = lora_unet(r=4)
    weights = L.lora_state_dict(src)
    cfg = L.lora_config_for(weights, alpha=16.0)
    assert cfg.r == 4 and cfg.lora_alpha == 16.0
    assert set(cfg.target_modules) == {k[: -len(".lora_A.weight")] for k in weights if k.endswith("lora_A.weight")}


def test_rejects_broken_and_misfitting_files():
    with pytest.raises(L.LoraFormatError, match="not LoRA weights"):
        L.normalize_lora_state_dict({"unet.conv_in.weight": torch.zeros(1)})
    weights = L.lora_state_dict(lora_unet())
    one = next(k for k in weights if k.endswith("lora_B.weight"))
    with pytest.raises(L.LoraFormatError, match="without lora_B"):
        L.lora_modules({k: v for k, v in weights.items() if k != one})
    bad = dict(weights)
    a_key = one.replace("lora_B", "lora_A")
    bad[a_key] = torch.zeros(bad[a_key].shape[0], bad[a_key].shape[1] + 1, *bad[a_key].shape[2:])
    problems = L.check_against_unet(tiny_unet(), bad)
    assert len(problems) == 1 and a_key.rsplit(".lora_A", 1)[0] in problems[0]
    assert L.check_against_unet(tiny_unet(), {"no.such.layer.lora_A.weight": torch.zeros(4, 3),
                                              "no.such.layer.lora_B.weight": torch.zeros(3, 4)}) == [
        "no.such.layer: no such layer in the UNet"]


def test_write_read_folder_round_trip(tmp_path):
    src = lora_unet()
    L.write_lora_folder(tmp_path, L.lora_state_dict(src), src.peft_config["default"])
    weights, cfg = L.read_lora_folder(tmp_path, default_alpha=1.0)
    assert cfg.lora_alpha == 8.0  # from adapter_config.json, not the default
    dst = tiny_unet()
    L.add_lora(dst, cfg, weights)
    assert torch.equal(run(dst), run(src))


def test_mixed_ranks_default_to_scale_one_like_the_release_loaders():
    """No alphas in the file: alpha = rank per module (diffusers' load_lora_weights and the release's merge: ×1)."""
    src = tiny_unet()
    L.add_lora(src, LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v"],
                               rank_pattern={"to_k": 2}, alpha_pattern={"to_k": 2}))
    randomize_lora_(src)
    weights = L.lora_state_dict(src)
    cfg = L.lora_config_for(weights)
    assert cfg.r == 4 and cfg.lora_alpha == 4.0
    assert set(cfg.rank_pattern.values()) == {2} and set(cfg.alpha_pattern.values()) == {2.0}
    dst = tiny_unet()
    L.add_lora(dst, cfg, weights)
    assert torch.allclose(run(dst), run(src), atol=1e-6)
    # an explicit alpha, and the file's own alphas, win over the default
    assert L.lora_config_for(weights, alpha=16.0).lora_alpha == 16.0
    some = next(k for k in weights if k.endswith("to_q.lora_A.weight"))[: -len(".lora_A.weight")]
    cfg = L.lora_config_for(weights, alphas={some: 1.0})
    assert list(cfg.alpha_pattern.values()).count(1.0) == 1
