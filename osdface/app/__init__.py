"""The OSDFace demo: restoration logic (:mod:`.restorer`, no UI), the Gradio page (:mod:`.ui`), start-up
(:mod:`.launch`). ``app.py`` at the repository root and the Hugging Face Space both call :func:`main`.

Gradio is imported only by :mod:`.ui` / :func:`main`, so ``DemoRestorer`` works without it; names load on first use.
"""

import importlib

_NAMES = {"DemoRestorer": "restorer", "DemoResult": "restorer", "DemoInputError": "restorer"}
__all__ = [*_NAMES, "main"]


def main(argv=None) -> int:
    from .launch import main as run

    return run(argv)


def __getattr__(name):
    if name in _NAMES:
        return getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
