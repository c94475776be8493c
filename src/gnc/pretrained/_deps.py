"""Optional dependencies of the head readers (the ``gnc[heads]`` extra)."""

from __future__ import annotations

import importlib.util

__all__ = ["HEADS_EXTRA", "require"]

#: How to install the readers' packages.
HEADS_EXTRA = "pip install 'gnc[heads]'"


def require(module: str, what: str) -> None:
    """Raise one line naming the extra if ``module`` is not importable.

    Raises:
        ValueError: If the module is missing.
    """
    if importlib.util.find_spec(module) is None:
        raise ValueError(
            f"Expected the package `{module}` to be installed to read {what}, but it is not; "
            f"install the head readers with `{HEADS_EXTRA}`."
        )
