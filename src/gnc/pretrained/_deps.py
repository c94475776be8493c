"""Optional dependencies of the pretrained readers and models, with the extra that installs them.

- ``gnc[heads]``: ``gguf``, ``onnx``, ``onnxruntime`` (GGUF and ONNX heads, the OCR recognizer);
- ``gnc[hf]``: ``transformers``, ``tokenizers``, ``gguf``, ``accelerate`` (causal language models).
"""

from __future__ import annotations

import importlib.util

__all__ = ["HEADS_EXTRA", "HF_EXTRA", "require"]

#: How to install the head readers' packages.
HEADS_EXTRA = "pip install 'gnc[heads]'"
#: How to install what runs causal language models through ``transformers``.
HF_EXTRA = "pip install 'gnc[hf]'"


def require(*modules: str, what: str, extra: str = HEADS_EXTRA) -> None:
    """Raise one line naming ``extra`` if any of ``modules`` is not importable.

    Example:
        >>> require("json", what="JSON files")
        >>> require("no_such_module_xyz", what="nothing")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ValueError: Expected the package `no_such_module_xyz` to be installed for nothing, ...

    Raises:
        ValueError: If a module is missing (all missing ones are named).
    """
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if not missing:
        return
    names = f"the package `{missing[0]}`" if len(missing) == 1 else f"the packages {missing}"
    verb = "it is" if len(missing) == 1 else "they are"
    raise ValueError(
        f"Expected {names} to be installed for {what}, but {verb} not; install them with `{extra}`."
    )
