"""The OSDFace demo: restoration logic (:mod:`.restorer`, no UI), the Gradio page (:mod:`.ui`), start-up
(:mod:`.launch`). ``app.py`` at the repository root and the Hugging Face Space both call :func:`main`.

Gradio is imported only by :mod:`.ui` / :func:`main`, so ``DemoRestorer`` works without it; names load on first use.
"""

from ..lazy import lazy_names

_NAMES = {"DemoRestorer": "restorer", "DemoResult": "restorer", "DemoInputError": "restorer"}
__all__ = [*_NAMES, "main"]


def main(argv=None) -> int:
    from .launch import main as run

    return run(argv)


__getattr__, __dir__ = lazy_names(__name__, _NAMES)
