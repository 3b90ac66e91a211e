"""The OSDFace demo: restoration logic (:mod:`.restorer`, no UI), the Gradio page (:mod:`.ui`), start-up
(:mod:`.launch`). ``app.py`` at the repository root and the Hugging Face Space both call :func:`main`.

Gradio is imported only by :mod:`.ui` / :func:`main`, so ``DemoRestorer`` works without it.
"""

from .restorer import DemoInputError, DemoRestorer, DemoResult, choose_mode, default_model


def main(argv=None) -> int:
    from .launch import main as _main

    return _main(argv)


__all__ = ["DemoRestorer", "DemoResult", "DemoInputError", "choose_mode", "default_model", "main"]
