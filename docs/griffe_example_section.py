"""Griffe extension for the API reference: read ``Example:`` as a Google "Examples" section.

gnc's docstrings head their doctests ``Example:`` (a Google-style section that ruff's pydocstyle
and Sphinx's napoleon accept); griffe's Google parser knows only the plural ``Examples:`` and
would render the doctest as plain text. Loaded by ``mkdocs.yml`` and ``tests/test_public_api.py``.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_SINGULAR = re.compile(r"^(\s*)Example:(\s*)$", flags=re.MULTILINE)


class ExampleSection(griffe.Extension):
    """Rename ``Example:`` section headers to ``Examples:`` before docstrings are parsed."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Rewrite the header in ``obj``'s docstring when griffe creates ``obj``."""
        if obj.docstring is not None:
            obj.docstring.value = _SINGULAR.sub(r"\1Examples:\2", obj.docstring.value)
