"""Helpers for the demo tests (not a test module): a tiny model folder, and the app served on loopback."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def write_tiny_model(folder: Path) -> Path:
    """The "tiny" preset with random weights and a random LoRA (64² faces, a few ms per face)."""
    from osdface import OSDFacePipeline
    from osdface.models.lora import randomize_lora_

    pipe = OSDFacePipeline.from_preset("tiny", seed=0)
    randomize_lora_(pipe.unet)
    pipe.save_pretrained(folder)
    return folder


def serve(argv: list[str]):
    """What ``python app.py ARGV`` does (same options, model loading and page), served from a thread of this
    process on 127.0.0.1 and a free port. Returns (base URL, restorer, close)."""
    from osdface.app.launch import prepare

    prepared = prepare(argv)
    assert not isinstance(prepared, int), f"app.py {' '.join(argv)} exited with {prepared}"
    demo, restorer, launch_kwargs = prepared
    assert launch_kwargs["server_name"] == "127.0.0.1"
    demo.launch(**launch_kwargs, prevent_thread_lock=True, quiet=True)

    def close():
        demo.close()
        restorer.close()

    return f"http://127.0.0.1:{launch_kwargs['server_port']}", restorer, close
