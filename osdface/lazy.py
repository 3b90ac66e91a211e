"""Lazy package attributes: a package lists its public names and the submodule of each; a name's module is
imported on first use (PEP 562), so that importing the package (and the command line's ``--help``) stays cheap."""

from __future__ import annotations

import importlib
import sys

__all__ = ["lazy_names"]


def lazy_names(package: str, names: dict[str, str]):
    """``(__getattr__, __dir__)`` for ``package``: ``names`` maps each public name to its submodule (relative)."""

    def __getattr__(name: str):
        if name in names:
            value = getattr(importlib.import_module(f".{names[name]}", package), name)
            setattr(sys.modules[package], name, value)  # later lookups skip this function
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(vars(sys.modules[package])) | set(names))

    return __getattr__, __dir__
