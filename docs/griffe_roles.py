"""Griffe extension for the API reference: the docstrings' Sphinx roles (``:func:`~osdface.x.y```) shown as code
(`y`), since MkDocs' Markdown does not read reStructuredText roles."""

from __future__ import annotations

import re

import griffe

ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|exc|obj):`(~?)([^`]+)`")


def _plain(m: re.Match) -> str:
    target = m.group(2).lstrip(".")
    return f"``{target.rsplit('.', 1)[-1] if m.group(1) else target}``"


class SphinxRolesAsCode(griffe.Extension):
    def on_object(self, *, obj, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(_plain, obj.docstring.value)
