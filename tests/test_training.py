"""The training stages on tiny models and a synthetic face-like folder (no shared data needed).

Each stage: one step changes exactly the parameters it should; a fixed batch is overfit; a run stopped at a
checkpoint and resumed gives bit-identical parameters to an uninterrupted run; configs round-trip through YAML;
the command line trains and writes a loadable model folder.
"""

from __future__ import annotations


import math

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL
from PIL import Image

from osdface import OSDFacePipeline
from osdface.configs import TINY_VAE, TINY_VRE
from osdface.models import VisualRepresentationEmbedder
from osdface.training import GeneratorTrainConfig, get_train_config, make_trainer
from osdface.training.config import VRETrainConfig
from osdface.training.data import EpochSampler, random_crop_pair
from osdface.training.logger import read_log


@pytest.fixture(scope="module")
def face_folder(tmp_path_factory):
    """12 synthetic 64² 'faces' (a skin-coloured ellipse, two eyes, a mouth, random colours and positions)."""
    folder = tmp_path_factory.mktemp("faces")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:64]
    for i in range(12):
        img = np.zeros((64, 64, 3), np.float32) + rng.uniform(0, 255, 3)
        cy, cx = 32 + rng.normal(0, 2, 2)
        face = ((yy - cy) / 22) ** 2 + ((xx - cx) / 16) ** 2 < 1
        img[face] = rng.uniform(120, 230, 3)
        for ex in (-7, 7):
            img[((yy - cy + 5) ** 2 + (xx - cx - ex) ** 2) < 6] = 20
        img[(np.abs(yy - cy - 9) < 2) & (np.abs(xx - cx) < 6)] = (170, 40, 50)
        img += rng.normal(0, 6, img.shape)
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(folder / f"face_{i:02d}.png")
    return folder


def _cfg(stage: str, folder, out, **kw):
    return get_train_config(stage, "tiny", data=str(folder), output_dir=str(out), **kw)


@pytest.fixture(scope="module")
def stage_inputs(tmp_path_factory):
    """A tiny 'base' (vae/) and a tiny VRE folder, as train-vae and train-vre would write them."""
    root = tmp_path_factory.mktemp("stage_inputs")
    torch.manual_seed(0)
    AutoencoderKL(**TINY_VAE).save_pretrained(root / "base" / "vae")
    VisualRepresentationEmbedder(**TINY_VRE).save_pretrained(root / "vre")
    return root


def _snapshot(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _changed(before, after) -> set[str]:
    return {k for k in before if not torch.equal(before[k], after[k])}


def _batch(trainer, n=2):
    items = [trainer.train_set[i] for i in range(n)]
    return trainer.to_device({k: torch.stack([it[k] for it in items]) for k in ("lq", "hq")})


# --------------------------------------------------------------------------------------------------- data & config
def test_epoch_sampler_is_a_seeded_sharded_permutation():
    a = EpochSampler(10, seed=3, epoch=1).indices()
    assert sorted(a) == list(range(10)) and a == EpochSampler(10, seed=3, epoch=1).indices()
    assert a != EpochSampler(10, seed=3, epoch=2).indices()
    shards = [EpochSampler(10, 3, 1, rank=r, world=2).indices() for r in range(2)]
    assert shards[0] == a[0::2] and shards[1] == a[1::2]  # disjoint; step k of 2 processes = batch k of one
    assert EpochSampler(10, 3, 1, skip=4).indices() == a[4:]


def test_random_crop_pair_takes_the_same_window_of_lq_and_hq():
    hq = torch.arange(2 * 3 * 16 * 16, dtype=torch.float32).reshape(2, 3, 16, 16)
    lq_c, hq_c = random_crop_pair(hq + 1, hq, 8, torch.Generator().manual_seed(0), multiple=4)
    assert hq_c.shape == (2, 3, 8, 8) and torch.equal(lq_c, hq_c + 1)
    # offsets are multiples of 4: the first pixel's column index in the 16-wide image
    assert all(int(hq_c[i, 0, 0, 0]) % 16 % 4 == 0 for i in range(2))


def test_a_second_trainer_in_the_process_may_use_another_precision():
    """Stage 0 in fp32, then stage 2 in bf16, in one process (a notebook, scripts/ablation.py)."""
    from osdface.training.trainer import make_accelerator

    assert make_accelerator("no").mixed_precision == "no"
    assert make_accelerator("bf16").mixed_precision == "bf16"
    assert make_accelerator("no").mixed_precision == "no"


def test_yaml_round_trip_and_unknown_keys(tmp_path):
    cfg = get_train_config("generator", "nano", data="x", output_dir="y", gan_weight=0.5)
    cfg.save_yaml(tmp_path / "g.yaml")
    again = get_train_config("generator", str(tmp_path / "g.yaml"))
    assert again == cfg and isinstance(again, GeneratorTrainConfig)
    with pytest.raises(ValueError, match="unknown"):
        get_train_config("generator", "nano", not_an_option=1)
    with pytest.raises(ValueError, match="is a 'generator' config"):
        get_train_config("vre", str(tmp_path / "g.yaml"))
    vre = get_train_config("vre", "nano", hq_steps=5, lq_steps=6, assoc_steps=7)
    assert isinstance(vre, VRETrainConfig) and vre.max_steps == 18


def test_numbers_written_without_a_dot_are_numbers(tmp_path):
    # YAML 1.1 reads 1e-3 as a string; --set learning_rate=1e-3 and YAML files must still give a float
    (tmp_path / "v.yaml").write_text("stage: vae\nlearning_rate: 1e-3\nmax_steps: '20'\n")
    cfg = get_train_config("vae", str(tmp_path / "v.yaml"), kl_weight="2e-6")
    assert cfg.learning_rate == 1e-3 and cfg.max_steps == 20 and cfg.kl_weight == 2e-6
    with pytest.raises(ValueError, match="learning_rate: 'fast' is not a number"):
        get_train_config("vae", "nano", learning_rate="fast")


# --------------------------------------------------------------------------------------------------- stage 0
def test_vae_stage_trains_and_exports_a_scaled_vae(face_folder, tmp_path):
    trainer = make_trainer(_cfg("vae", face_folder, tmp_path, max_steps=2, log_every=1))
    before = _snapshot(trainer.vae)
    final = trainer.train()
    changed = _changed(before, _snapshot(trainer.vae))
    assert len(changed) > 0.9 * len(before)  # every weight of the autoencoder trains
    vae = AutoencoderKL.from_pretrained(final / "vae")
    assert vae.config.scaling_factor == pytest.approx(trainer.measure_scaling_factor(), rel=1e-5)
    logs = read_log(tmp_path / "logs.csv")
    assert logs["step"][:2] == [1.0, 2.0] and np.isfinite(logs["l1"][:2]).all()


def test_nano_vae_stage_is_the_closed_form_pca_fit(face_folder, tmp_path):
    from osdface.models import PatchVAE
    cfg = get_train_config("vae", "nano", data=str(face_folder), output_dir=str(tmp_path), resolution=64,
                           crop_size=None, num_workers=0, val_every=0, save_every=0, scaling_samples=8)
    assert cfg.max_steps == 0  # nano: the fit is the whole stage
    trainer = make_trainer(cfg)
    vae = PatchVAE.from_pretrained(trainer.train() / "vae")
    hq = torch.stack([trainer.train_set[i]["hq"] for i in range(8)]) * 2 - 1
    with torch.no_grad():
        recon = vae(hq).sample
    mse = float(((recon - hq) ** 2).mean())
    assert 10 * math.log10(4 / mse) > 28  # sharp-edged synthetic faces; real faces: ≈ 44 dB
    assert vae.config.scaling_factor == pytest.approx(1.0, abs=1e-3)  # whitened
    # gradient steps after the fit train the residual decoder (zero at the start)
    trainer = make_trainer(cfg.replace(max_steps=1, output_dir=str(tmp_path / "steps")))
    assert trainer.vae.decoder.conv_out.weight.abs().sum() == 0
    trainer.train()
    assert trainer.vae.decoder.conv_out.weight.abs().sum() > 0


def test_vae_stage_hq_only_reconstructs_only_hq(face_folder, tmp_path):
    trainer = make_trainer(_cfg("vae", face_folder, tmp_path, max_steps=1, train_on_lq=False))
    seen = []
    encode = trainer.vae.encode
    trainer.vae.encode = lambda x: (seen.append(x.shape[0]), encode(x))[1]
    trainer.train()
    assert seen[0] == trainer.cfg.batch_size  # HQ only; with train_on_lq (the default) it is 2 × batch


def test_cosine_lr_schedule_warms_up_then_decays_to_the_floor(face_folder, tmp_path):
    cfg = _cfg("vae", face_folder, tmp_path, max_steps=10, warmup_steps=2, lr_schedule="cosine", min_lr_ratio=0.1)
    trainer = make_trainer(cfg)
    lam = [trainer.lr_lambda(s) for s in range(12)]
    assert lam[0] == pytest.approx(0.5) and lam[1] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lam[1:], lam[2:]))  # never rises after the warm-up
    assert lam[6] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 4 / 8)))
    assert lam[10] == pytest.approx(0.1) and lam[11] == pytest.approx(0.1)
    trainer.train()
    assert trainer.sched.get_last_lr()[0] == pytest.approx(cfg.learning_rate * 0.1)
    assert make_trainer(cfg.replace(lr_schedule="constant")).lr_lambda(9) == 1.0
    with pytest.raises(ValueError, match="lr_schedule"):
        make_trainer(cfg.replace(lr_schedule="linear"))


# --------------------------------------------------------------------------------------------------- stage 1
def test_vre_phases_train_only_their_autoencoder(face_folder, tmp_path):
    trainer = make_trainer(_cfg("vre", face_folder, tmp_path, hq_steps=1, lq_steps=1, assoc_steps=1))
    batch = _batch(trainer)
    for expect in (["hq"], ["lq"], ["hq", "lq"]):
        before = {k: _snapshot(trainer.ae[k]) for k in ("hq", "lq")}
        trainer.training_step(batch)
        trainer.micro_step += 1
        for k in ("hq", "lq"):
            changed = _changed(before[k], _snapshot(trainer.ae[k]))
            if k in expect:
                assert any(n.startswith("encoder.") for n in changed) and any(n.startswith("decoder.") for n in changed)
            else:
                assert not changed, f"{k} autoencoder changed during phase {expect}"


def test_vre_export_is_the_lq_encoder_and_dictionary(face_folder, tmp_path):
    trainer = make_trainer(_cfg("vre", face_folder, tmp_path, hq_steps=1, lq_steps=1, assoc_steps=1))
    final = trainer.train()
    vre = VisualRepresentationEmbedder.from_pretrained(final)
    lq_ae = trainer.accelerator.unwrap_model(trainer.ae["lq"])
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    torch.testing.assert_close(vre.features(x), lq_ae.features(x))
    assert torch.equal(vre.quantize.weight, lq_ae.quantize.weight)


def test_vre_association_phase_overfits(face_folder, tmp_path):
    trainer = make_trainer(_cfg("vre", face_folder, tmp_path, hq_steps=0, lq_steps=0, assoc_steps=40,
                                learning_rate=1e-3, adversarial_weight=0.0, restart_dead_codes_every=0))
    batch = _batch(trainer, 4)
    first = trainer.training_step(batch)
    for _ in range(30):
        trainer.micro_step += 1
        last = trainer.training_step(batch)
    drops = {k: (first[k], last[k]) for k in ("l1", "association")}
    assert last["l1"] < 0.8 * first["l1"], drops
    assert last["association"] < 0.8 * first["association"], drops  # random start ≈ ln 4 (4 pairs)


# --------------------------------------------------------------------------------------------------- stage 2
def _gen_cfg(face_folder, stage_inputs, out, **kw):
    kw.setdefault("base", str(stage_inputs / "base"))
    return _cfg("generator", face_folder, out, vre=str(stage_inputs / "vre"), **kw)


def test_generator_lora_step_changes_only_lora_and_projector(face_folder, stage_inputs, tmp_path):
    # a base with a UNet: the LoRA path of the paper
    base = tmp_path / "base"
    pipe = OSDFacePipeline.from_preset("tiny", lora=False)
    pipe.vae.save_pretrained(base / "vae")
    pipe.unet.save_pretrained(base / "unet")
    trainer = make_trainer(_gen_cfg(face_folder, stage_inputs, tmp_path / "run", base=str(base),
                                    unet_training="lora", gan_weight=0.1))
    unet = trainer.accelerator.unwrap_model(trainer.unet)
    modules = {"unet": unet, "vae": trainer.vae, "vre": trainer.vre, "disc": trainer.disc}
    before = {k: _snapshot(m) for k, m in modules.items()}
    trainer.training_step(_batch(trainer))
    changed = {k: _changed(before[k], _snapshot(m)) for k, m in modules.items()}
    assert changed["unet"] and all("lora_" in n for n in changed["unet"])
    assert changed["vre"] and all(n.startswith("projector.") for n in changed["vre"])
    assert not changed["vae"]
    assert changed["disc"]  # the discriminator step ran (gan_start 0)


def test_generator_full_with_decoder_keeps_the_encoder_frozen(face_folder, stage_inputs, tmp_path):
    trainer = make_trainer(_gen_cfg(face_folder, stage_inputs, tmp_path, train_vae_decoder=True, gan_weight=0.0))
    before = _snapshot(trainer.vae)
    trainer.training_step(_batch(trainer))
    changed = _changed(before, _snapshot(trainer.vae))
    assert any(n.startswith("decoder.") for n in changed)
    assert not any(n.startswith(("encoder.", "quant_conv.")) for n in changed)


def test_generator_overfits_a_fixed_batch(face_folder, stage_inputs, tmp_path):
    trainer = make_trainer(_gen_cfg(face_folder, stage_inputs, tmp_path, learning_rate=1e-3, gan_weight=0.0,
                                    train_vae_decoder=True))
    batch = _batch(trainer)
    first = trainer.training_step(batch)["l2"]
    for _ in range(40):
        trainer.micro_step += 1
        last = trainer.training_step(batch)["l2"]
    assert last < first / 5, (first, last)


def test_generator_resume_reproduces_the_run_exactly(face_folder, stage_inputs, tmp_path):
    kw = dict(max_steps=3, save_every=2, gan_weight=0.1, train_vae_decoder=True, log_every=1)
    straight = make_trainer(_gen_cfg(face_folder, stage_inputs, tmp_path / "a", **kw))
    straight.train()
    first = make_trainer(_gen_cfg(face_folder, stage_inputs, tmp_path / "b", **kw))
    first.train(max_steps=2)  # stops with a checkpoint at step 2
    resumed = make_trainer(_gen_cfg(face_folder, stage_inputs, tmp_path / "b", **kw))
    resumed.train(resume="latest")
    assert resumed.step == 3
    for name in ("unet", "projector", "disc"):
        a = _snapshot(straight.accelerator.unwrap_model(getattr(straight, name)))
        b = _snapshot(resumed.accelerator.unwrap_model(getattr(resumed, name)))
        assert not _changed(a, b), f"{name} differs after resume"
    assert not _changed(_snapshot(straight.vae), _snapshot(resumed.vae))
    log_a, log_b = read_log(tmp_path / "a" / "logs.csv"), read_log(tmp_path / "b" / "logs.csv")
    assert log_a["l2"] == log_b["l2"]  # the resumed log continues the same curve


def test_generator_export_loads_as_a_pipeline(face_folder, stage_inputs, tmp_path):
    trainer = make_trainer(_gen_cfg(face_folder, stage_inputs, tmp_path, max_steps=1, gan_weight=0.0))
    final = trainer.train()
    pipe = OSDFacePipeline.from_pretrained(final)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expect = trainer.predict(x * 2 - 1)
    torch.testing.assert_close(pipe(x, output_type="pt") * 2 - 1, expect.clamp(-1, 1), atol=2e-5, rtol=0)


def test_missing_inputs_give_one_clear_error(face_folder, stage_inputs, tmp_path):
    with pytest.raises(FileNotFoundError, match="train-vre"):
        make_trainer(_cfg("generator", face_folder, tmp_path, vre=str(tmp_path / "nope"),
                          base=str(stage_inputs / "base")))
    with pytest.raises(ValueError, match="crop_size"):
        make_trainer(_gen_cfg(face_folder, stage_inputs, tmp_path, identity_weight=0.1, crop_size=32))


def test_cli_trains_each_stage(face_folder, tmp_path, capsys):
    from osdface.cli import main

    common = ["--config", "tiny", "--data", str(face_folder), "--max-steps", "1"]
    assert main(["train-vae", *common, "--output-dir", str(tmp_path / "vae")]) == 0
    assert main(["train-vre", *common, "--output-dir", str(tmp_path / "vre"), "--set", "hq_steps=1",
                 "--set", "lq_steps=0", "--set", "assoc_steps=0"]) == 0
    assert main(["train", *common, "--output-dir", str(tmp_path / "gen"), "--vre", str(tmp_path / "vre/final"),
                 "--base", str(tmp_path / "vae/final")]) == 0
    assert (tmp_path / "gen/final/osdface_config.json").is_file()
    capsys.readouterr()
    assert main(["train", "--config", "tiny", "--print-config", "--set", "gan_weight=0.3"]) == 0
    assert "gan_weight: 0.3" in capsys.readouterr().out
    assert main(["train", "--config", "nope"]) == 2


# ------------------------------------------------------------------------------ the full objective (offline parts)
def test_offline_identity_and_edge_terms_train_the_generator(face_folder, stage_inputs, tmp_path, monkeypatch):
    """λ_ID on dlib's face network (converted once, no download) and the Sobel edge term: both are logged, finite,
    and their gradients reach the UNet (a step with only them changes it)."""
    monkeypatch.setenv("OSDFACE_HOME", str(tmp_path / "cache"))
    trainer = make_trainer(_gen_cfg(face_folder, stage_inputs, tmp_path, identity_network="dlib", identity_weight=1.0,
                                    edge_weight=1.0, l2_weight=0.0, gan_weight=0.0))
    assert [t.name for t in trainer.loss_terms] == ["l2", "identity", "edge"]
    unet = trainer.accelerator.unwrap_model(trainer.unet)
    before = _snapshot(unet)
    logs = trainer.training_step(_batch(trainer))
    assert math.isfinite(logs["identity"]) and logs["identity"] > 0 and math.isfinite(logs["edge"])
    assert _changed(before, _snapshot(unet))


def test_gan_weight_ramps_up_after_its_start():
    from osdface.training.generator_trainer import LossTerm

    term = LossTerm("gan_g", lambda o: None, 0.4, start=10, ramp=4)
    assert [term.weight_at(s) for s in (0, 9, 10, 11, 13, 50)] == [0.0, 0.0, 0.1, 0.2, 0.4, 0.4]
    every = LossTerm("gan_g", lambda o: None, 0.4, start=10, every=4)
    assert [every.weight_at(s) for s in (8, 12, 13, 14, 16)] == [0.0, 1.6, 0.0, 0.0, 1.6]


def test_gan_every_k_steps_runs_the_discriminator_on_those_steps_only(face_folder, stage_inputs, tmp_path):
    trainer = make_trainer(_gen_cfg(face_folder, stage_inputs, tmp_path, gan_weight=0.1, gan_every=2))
    logs = [trainer.training_step(_batch(trainer)) for trainer.micro_step in range(3)][-3:]
    assert ["gan_d" in row for row in logs] == [True, False, True]


def test_hinge_loss_with_lazy_r1_and_ema_export(face_folder, stage_inputs, tmp_path):
    trainer = make_trainer(_gen_cfg(face_folder, stage_inputs, tmp_path, max_steps=2, gan_weight=0.1,
                                    gan_loss="hinge", r1_weight=1.0, r1_every=1, ema_decay=0.5, log_every=1))
    logs = trainer.training_step(_batch(trainer))
    assert math.isfinite(logs["r1"]) and logs["r1"] >= 0 and "r1" in trainer.log_columns
    trainer.micro_step += 1
    trainer.training_step(_batch(trainer))
    unet = trainer.accelerator.unwrap_model(trainer.unet)
    raw = _snapshot(unet)
    final = trainer.export(tmp_path / "final")
    assert not _changed(raw, _snapshot(unet))  # export swaps the averages in and back out
    exported = OSDFacePipeline.from_pretrained(final).unet.state_dict()
    shadow = dict(zip([n for n, p in unet.named_parameters() if p.requires_grad], trainer.ema.shadow))
    name = next(iter(shadow))
    torch.testing.assert_close(exported[name], shadow[name])
    assert not torch.equal(exported[name], raw[name])


def test_without_vre_prompts_the_output_ignores_the_vre(face_folder, stage_inputs, tmp_path):
    trainer = make_trainer(_gen_cfg(face_folder, stage_inputs, tmp_path, max_steps=1, gan_weight=0.0,
                                    use_vre_prompt=False))
    final = trainer.train()
    pipe = OSDFacePipeline.from_pretrained(final)
    assert pipe.config.vre_prompt is False
    x = torch.rand(1, 3, 64, 64)
    before = pipe(x, output_type="pt")
    with torch.no_grad():
        for p in pipe.vre.parameters():
            p.add_(torch.randn_like(p))
    torch.testing.assert_close(pipe(x, output_type="pt"), before, atol=0, rtol=0)


def test_color_jitter_changes_faces_not_their_degradations(face_folder):
    from osdface.data.dataset import PairedFaceDataset

    files = sorted(face_folder.glob("*.png"))
    plain = PairedFaceDataset(files, 64, seed=3)
    jittered = PairedFaceDataset(files, 64, seed=3, color_jitter=0.2)
    a, b = plain[0], jittered[0]
    assert not torch.equal(a["hq"], b["hq"])
    # the same flip and degradation draws: the LQ of the jittered face is the jittered face degraded alike, so the
    # two LQs differ about as much as the two HQs do
    assert (a["lq"] - b["lq"]).abs().mean() < 2 * (a["hq"] - b["hq"]).abs().mean()


def test_validation_logs_train_and_val_psnr(face_folder, stage_inputs, tmp_path):
    trainer = make_trainer(_gen_cfg(face_folder, stage_inputs, tmp_path, max_steps=2, val_every=2, gan_weight=0.0))
    trainer.train()
    log = read_log(tmp_path / "logs.csv")
    assert any(math.isfinite(v) for v in log["train_psnr"]) and any(math.isfinite(v) for v in log["val_psnr"])


def test_teacher_term_reads_the_pool_and_trains_the_generator(face_folder, stage_inputs, tmp_path):
    """A pairs folder with teacher/ feeds the teacher term (high band only): logged, finite, its gradient reaches
    the UNet; without teacher images it is one clear error."""
    from PIL import Image

    pool = tmp_path / "pool"
    for sub in ("hq", "lq", "teacher"):
        (pool / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, f in enumerate(sorted(face_folder.iterdir())):
        hq = np.asarray(Image.open(f).convert("RGB"))
        Image.fromarray(hq).save(pool / "hq" / f"{i}.png")
        Image.fromarray(hq[::2, ::2].repeat(2, 0).repeat(2, 1)).save(pool / "lq" / f"{i}.png")
        grain = np.clip(hq.astype(int) + rng.integers(-20, 21, hq.shape), 0, 255).astype(np.uint8)
        Image.fromarray(grain).save(pool / "teacher" / f"{i}.png")
    trainer = make_trainer(_gen_cfg(pool, stage_inputs, tmp_path / "run", teacher_weight=1.0, l2_weight=0.0,
                                    gan_weight=0.0))
    assert [t.name for t in trainer.loss_terms] == ["l2", "teacher"]
    items = [trainer.train_set[i] for i in range(2)]
    assert all("teacher" in it for it in items)
    batch = trainer.to_device({k: torch.stack([it[k] for it in items]) for k in ("lq", "hq", "teacher")})
    unet = trainer.accelerator.unwrap_model(trainer.unet)
    before = _snapshot(unet)
    logs = trainer.training_step(batch)
    assert math.isfinite(logs["teacher"]) and logs["teacher"] > 0 and _changed(before, _snapshot(unet))
    trainer.micro_step += 1
    with pytest.raises(ValueError, match="teacher/"):
        trainer.training_step({k: batch[k] for k in ("lq", "hq")})


def test_teacher_loss_ignores_low_frequencies():
    from osdface.losses.teacher import high_pass, teacher_hf_loss

    torch.manual_seed(0)
    x = torch.rand(1, 3, 32, 32)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    smooth = (0.3 * torch.sin(2 * math.pi * 0.5 * xx) + 0.2 * yy)[None, None]  # a slow change of light
    assert teacher_hf_loss(x + smooth, x) < 0.02 * teacher_hf_loss(x, torch.rand(1, 3, 32, 32))
    assert high_pass(torch.full((1, 3, 16, 16), 0.7)).abs().max() < 1e-6
    # descending the term copies the teacher's fine grain onto a smooth image
    target = x.clone()
    y = torch.full_like(x, 0.5, requires_grad=True)
    first = float(teacher_hf_loss(y.detach(), target))
    opt = torch.optim.Adam([y], lr=0.05)
    for _ in range(60):
        opt.zero_grad()
        teacher_hf_loss(y, target).backward()
        opt.step()
    assert float(teacher_hf_loss(y.detach(), target)) < 0.3 * first
