"""Griffe extension for the API reference: gnc's Sphinx-flavoured Google docstrings in Markdown.

Two habits of gnc's docstrings that griffe's Google parser does not read as meant:

- Doctests are headed ``Example:`` (a Google section that ruff's pydocstyle and Sphinx's napoleon
  accept); griffe knows only the plural ``Examples:`` and would show the doctest as plain text.
- Cross-references are Sphinx roles (``:class:`~gnc.io.Record```, ``:func:`load_head```).
  Each becomes a link when the API reference shows its target, and inline code otherwise: a
  relative name is resolved in the scope of the documented object first, and the link is an
  *optional* autorefs reference, so a target that no page shows is not a build warning.

Loaded by ``mkdocs.yml`` and ``tests/test_public_api.py``.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

_SINGULAR = re.compile(r"^(\s*)Example:(\s*)$", flags=re.MULTILINE)
_ROLE = re.compile(r":(?:class|func|meth|attr|mod|data|exc|obj):`(~?)([\w.]+)(\(\))?`")


def _target(obj: griffe.Object, path: str) -> str | None:
    """The full path of ``path`` as written in ``obj``'s docstring, or ``None``."""
    if path.startswith("gnc.") or path == "gnc":
        return path
    head, _, rest = path.partition(".")
    try:
        resolved = obj.resolve(head)
    except griffe.NameResolutionError:
        return None
    return f"{resolved}.{rest}" if rest else resolved


def _rewrite(obj: griffe.Object, text: str) -> str:
    def role(match: re.Match[str]) -> str:
        tilde, path, call = match.group(1), match.group(2), match.group(3) or ""
        title = html.escape((path.rsplit(".", 1)[-1] if tilde else path) + call)
        target = _target(obj, path)
        if target is None:
            return f"`{title}`"
        return f'<autoref identifier="{target}" optional><code>{title}</code></autoref>'

    return _ROLE.sub(role, _SINGULAR.sub(r"\1Examples:\2", text))


class SphinxGoogleDocstrings(griffe.Extension):
    """Rewrite ``Example:`` headers and Sphinx roles in every docstring of a loaded package."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Rewrite the docstrings of ``pkg`` and of everything it defines (not its aliases)."""
        stack: list[griffe.Object] = [pkg]
        while stack:
            obj = stack.pop()
            if obj.docstring is not None:
                obj.docstring.value = _rewrite(obj, obj.docstring.value)
            stack.extend(m for m in obj.members.values() if not m.is_alias)  # type: ignore[misc]
