"""The Gradio page of the demo (``app.py``, the Hugging Face Space): see :mod:`osdface.app.restorer` for the logic.

Layout: an input image (upload, paste or webcam) with examples; options (aligned crop / whole photo / auto,
background upscale, colour fix, only the centre face) and advanced ones (model, dtype, latent, seed); outputs: a
before/after slider, a gallery of the restored face crops, the final image as a lossless PNG file, an info line.

The API endpoint is ``/restore`` (Gradio 6 names it after the function)::

    from gradio_client import Client, handle_file
    Client("http://127.0.0.1:7860").predict(handle_file("face.png"), "auto", 1, "none", False,
                                            MODEL, "auto", "mode", 114, api_name="/restore")

On a ZeroGPU Space the restore function runs under ``@spaces.GPU``; elsewhere the ``spaces`` package is optional
and the decorator is not applied.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import gradio as gr

from ..faces.color import COLOR_FIX_METHODS
from .restorer import DTYPES, LATENT_MODES, MODES, UPSCALES, DemoInputError, DemoRestorer

logger = logging.getLogger("osdface.app")

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
#: examples shipped with the repository and the Space (public domain; see examples/README.md)
EXAMPLE_FILES = ("astronaut_face_lq.png", "astronaut_photo_lq.jpg")
MODE_LABELS = {"auto": "Auto-detect", "aligned": "Aligned face crop", "photo": "Whole photo"}
GPU_SECONDS = int(os.environ.get("OSDFACE_GPU_SECONDS", "60"))


def gpu(fn):
    """``spaces.GPU`` on a ZeroGPU Space, the function unchanged elsewhere (the package is optional)."""
    if not os.environ.get("SPACES_ZERO_GPU"):
        return fn
    try:
        import spaces
    except ImportError:
        logger.warning("SPACES_ZERO_GPU is set but the 'spaces' package is missing; running without @spaces.GPU")
        return fn
    return spaces.GPU(duration=GPU_SECONDS)(fn)


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


def build_demo(restorer: DemoRestorer, *, concurrency_limit: int = 1, max_queue: int = 16) -> gr.Blocks:
    """The Blocks app for ``restorer``; queued with ``concurrency_limit`` restorations at a time."""

    @gpu
    def restore(image, mode, upscale, color_fix, only_center_face, model, dtype, latent_mode, seed,
                progress=gr.Progress(track_tqdm=True)):
        """Restore the faces of an image (an aligned 512² crop or a whole photo)."""
        try:
            result = restorer.restore(image, mode=mode, upscale=upscale, color_fix_method=color_fix,
                                      only_center_face=bool(only_center_face), model=model or None,
                                      dtype=dtype or None, latent_mode=latent_mode, seed=seed, progress=progress)
        except DemoInputError as err:
            raise gr.Error(str(err), print_exception=False) from None
        except Exception as err:  # never a stack trace in the page; the server log keeps it
            logger.exception("restoration failed")
            first = str(err).splitlines()[0][:300] if str(err) else ""
            raise gr.Error(f"restoration failed: {type(err).__name__}: {first}", print_exception=False) from None
        return (result.before, result.after), result.faces, str(result.png), result.info

    with gr.Blocks(title="OSDFace: one-step diffusion face restoration", analytics_enabled=False,
                   delete_cache=(1800, 3600)) as demo:
        gr.Markdown(
            "## OSDFace — one-step diffusion face restoration\n"
            "Open implementation of *OSDFace* (Wang et al., CVPR 2025, "
            "[arXiv:2411.17163](https://arxiv.org/abs/2411.17163)): one UNet evaluation restores a 512² face. "
            "Upload an FFHQ-aligned face crop or a whole photo (every face is detected, restored and pasted back).\n\n"
            f"Serving **{restorer.describe()}**.")
        with gr.Row():
            with gr.Column():
                image = UploadImage(type="filepath", label="Photo or face crop",
                                    sources=["upload", "clipboard", "webcam"], height=400, elem_id="input-image")
                with gr.Row():
                    mode = gr.Radio([(MODE_LABELS[m], m) for m in MODES], value="auto", label="Input is")
                    upscale = gr.Dropdown(list(UPSCALES), value=1, label="Background upscale (whole photos)")
                with gr.Row():
                    color_fix = gr.Dropdown(list(COLOR_FIX_METHODS), value="none", label="Colour fix")
                    only_center = gr.Checkbox(False, label="Only the centre face")
                with gr.Accordion("Advanced", open=False):
                    model = gr.Dropdown([(restorer.model_label(m), m) for m in restorer.models],
                                        value=restorer.default_model, label="Model",
                                        allow_custom_value=restorer.allow_custom_models,
                                        info="a model folder or Hub id" if restorer.allow_custom_models else None)
                    dtype = gr.Dropdown(list(DTYPES), value="auto", label="dtype (fp16 needs a GPU)")
                    latent_mode = gr.Radio(list(LATENT_MODES), value="mode",
                                           label="VAE latent: mode (deterministic) or sample (as the release)")
                    seed = gr.Number(114, precision=0, label="Seed (for the sampled latent)")
                run = gr.Button("Restore", variant="primary", elem_id="restore-button")
                gr.Examples(example_paths(), inputs=[image], label="Examples (public domain)", cache_examples=False)
            with gr.Column():
                slider = gr.ImageSlider(label="Before / after", format="png", type="pil", elem_id="result-slider")
                info = gr.Textbox(label="Info", interactive=False, elem_id="result-info")
                png = gr.File(label="Restored image (lossless PNG)", elem_id="result-png")
                gallery = gr.Gallery(label="Restored faces", format="png", columns=4, height=220,
                                     object_fit="contain", preview=False, elem_id="result-faces")
        run.click(restore, inputs=[image, mode, upscale, color_fix, only_center, model, dtype, latent_mode, seed],
                  outputs=[slider, gallery, png, info], api_name="restore",
                  concurrency_limit=concurrency_limit)
    demo.queue(max_size=max_queue, default_concurrency_limit=concurrency_limit)
    return demo
