"""Restore options added for the demo and the course: ``fidelity`` (blend the restored face with its input crop),
a rescale factor that is not an integer, several requests in one model call (``restore_many``), and model cards
that keep their licence terms when a loaded model is saved again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from osdface.faces.photo import blend_fidelity, check_fidelity, check_upscale, lanczos_upsample, scaled_size
from osdface.restore import restore_image, restore_many

REPO = Path(__file__).resolve().parents[1]
FACE = REPO / "examples" / "astronaut_face_lq.png"
PHOTO = REPO / "examples" / "astronaut_photo_lq.jpg"


class CountingPipe:
    def __init__(self, pipe):
        self.pipe, self.calls = pipe, []
        self.config, self.device = pipe.config, pipe.device

    def __call__(self, images, **kw):
        self.calls.append(len(images))
        return self.pipe(images, **kw)


@pytest.fixture(scope="module")
def dlib():
    from osdface.faces.detection import get_detector

    return get_detector("dlib")


@pytest.fixture(scope="module")
def pipe():
    from osdface import OSDFacePipeline
    from osdface.models.lora import randomize_lora_

    p = OSDFacePipeline.from_preset("tiny", seed=0)
    randomize_lora_(p.unet)
    return p


def test_option_checks():
    assert check_upscale(2) == 2 and isinstance(check_upscale(2.0), int) and check_upscale("1.5") == 1.5
    for bad in (0.5, 0, -1, float("nan"), "x", None):
        with pytest.raises(ValueError, match="upscale"):
            check_upscale(bad)
    assert check_fidelity(0) == 0.0 and check_fidelity(1) == 1.0
    for bad in (-0.1, 1.01, "x"):
        with pytest.raises(ValueError, match="fidelity"):
            check_fidelity(bad)
    assert scaled_size(100, 60, 2) == (200, 120) and scaled_size(101, 61, 1.5) == (152, 92)
    assert lanczos_upsample(Image.new("RGB", (101, 61)), 2.5).size == (252, 152)


def test_blend_fidelity_endpoints():
    restored = np.full((4, 4, 3), 0.8, np.float32)
    crop = np.full((4, 4, 3), 51, np.uint8)  # 0.2
    assert blend_fidelity(restored, crop, 1.0) is restored
    np.testing.assert_allclose(blend_fidelity(restored, crop, 0.0), 0.2, atol=1e-6)
    np.testing.assert_allclose(blend_fidelity(restored, crop, 0.25), 0.35, atol=1e-6)


def test_fidelity_on_an_aligned_crop(pipe):
    face = Image.open(FACE).convert("RGB")
    full = np.asarray(restore_image(pipe, face, mode="aligned").image, np.float64)
    none = np.asarray(restore_image(pipe, face, mode="aligned", fidelity=0.0).image, np.float64)
    half = np.asarray(restore_image(pipe, face, mode="aligned", fidelity=0.5).image, np.float64)
    size = pipe.config.process_size
    inp = np.asarray(face.resize((size, size), Image.BILINEAR), np.float64)
    assert np.abs(none - inp).max() <= 1  # 0: the input itself (resized to the model's size)
    assert np.abs(half - (full + inp) / 2).max() <= 1.01  # halfway, up to the rounding of each
    assert np.abs(full - inp).mean() > 5  # the random tiny model does change the face


def test_fidelity_and_float_upscale_on_a_photo(pipe, dlib):
    photo = Image.open(PHOTO).convert("RGB")
    zero = restore_image(pipe, photo, mode="photo", detector=dlib, fidelity=0.0, upscale=1.5)
    one = restore_image(pipe, photo, mode="photo", detector=dlib, upscale=1.5)
    assert zero.image.size == one.image.size == (768, 576) == zero.before.size
    assert zero.upscale == 1.5 and len(zero.faces) == len(one.faces) >= 1
    before, z, o = (np.asarray(im, np.float64) for im in (zero.before, zero.image, one.image))
    # fidelity 0 pastes the input crop back: the photo hardly changes; fidelity 1 changes the face
    assert np.abs(z - before).mean() < 1.0 < np.abs(o - before).mean()


def test_restore_many_shares_one_model_call(pipe, dlib):
    face, photo = Image.open(FACE).convert("RGB"), Image.open(PHOTO).convert("RGB")
    counting = CountingPipe(pipe)
    counting._detector = dlib
    requests = [dict(image=face, mode="aligned"), dict(image=photo, upscale=2, color_fix="wavelet"),
                dict(image=photo, mode="photo", fidelity=0.5, upscale=1.25), dict(image=face, color_fix="adain")]
    results = restore_many(counting, requests, batch_size=8)
    n_faces = sum(len(r.faces) for r in results)
    assert counting.calls == [n_faces]  # every face of every request in one call
    for req, got in zip(requests, results):
        alone = restore_image(pipe, req["image"], detector=dlib, **{k: v for k, v in req.items() if k != "image"})
        assert (got.mode, got.image.size, len(got.faces)) == (alone.mode, alone.image.size, len(alone.faces))
        diff = np.abs(np.asarray(got.image, np.int16) - np.asarray(alone.image, np.int16))
        assert diff.max() <= 2, diff.max()  # the same result, up to another batch size's float rounding
    with pytest.raises(ValueError, match="unknown request options"):
        restore_many(pipe, [dict(image=face, colour="x")])
    assert restore_many(pipe, []) == []


def test_saving_a_loaded_model_keeps_the_cards_licence_terms(tmp_path):
    from osdface import OSDFacePipeline
    from osdface.pipeline import read_card_license
    from osdface.weights import BUNDLED_NANO

    terms = read_card_license(BUNDLED_NANO)
    assert terms.get("license_name") and terms.get("license_link")
    nano = OSDFacePipeline.from_pretrained(BUNDLED_NANO)
    again = nano.save_pretrained(tmp_path / "again")
    assert read_card_license(again) == terms
    mine = nano.save_pretrained(tmp_path / "mine", license_name="my-terms", license_link="https://example.org/t")
    assert read_card_license(mine) == {"license_name": "my-terms", "license_link": "https://example.org/t"}
    assert read_card_license(tmp_path) == {}
    torch.testing.assert_close(OSDFacePipeline.from_pretrained(again).unet.conv_in.weight, nano.unet.conv_in.weight)
