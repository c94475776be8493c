"""The architecture as a test: a module of gnc imports only from its own layer or lower ones.

The layers, low to high, are drawn in the README's Layout section. Imports are read from the
source with :mod:`ast` (top-level and inside functions alike), so a lazy import cannot hide an
upward dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import gnc

SRC = Path(gnc.__file__).parent

#: Low to high. A module may import gnc modules of its own layer or of any lower layer.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("_checks", "_runtime", "io", "readers", "sphere"),
    ("geometry",),
    ("metrics",),
    ("codes",),
    ("ufm",),
    ("data",),
    ("train",),
    ("lm",),
    ("pretrained",),
    ("analysis",),
    ("integrations",),
    ("report",),
    ("study",),
    ("cli", "__main__", "__init__"),
)
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}


def _top(module: str) -> str:
    """``gnc.geometry.bounds`` -> ``geometry``; ``gnc`` itself -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py"))


def _owner(path: Path) -> str:
    rel = path.relative_to(SRC).parts
    return rel[0].removesuffix(".py")


def _gnc_imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "gnc"]
        elif (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and node.module
            and node.module.split(".")[0] == "gnc"
        ):
            found.append((node.lineno, node.module))
    return found


def test_every_top_level_module_has_a_layer() -> None:
    tops = {_owner(p) for p in _modules()}
    assert tops <= set(RANK), sorted(tops - set(RANK))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_no_upward_import(path: Path) -> None:
    own = RANK[_owner(path)]
    upward = [
        f"line {line}: {module}"
        for line, module in _gnc_imports(path)
        if _top(module) != "__init__" and RANK[_top(module)] > own
    ]
    assert not upward, f"{path.relative_to(SRC)} imports a higher layer: {upward}"
