"""Heads from ONNX classifiers: the final MatMul/Gemm weight initializer and its bias.

Without a key the head is the weight initializer of the last ``MatMul`` or ``Gemm`` node (in the
graph's topological order) that has one; ``key`` names an initializer instead. The class axis
follows the node: ``MatMul(x, W)`` stores ``W`` as ``(d, K)`` (transposed here), ``Gemm`` stores
``B`` as ``(K, d)`` when ``transB = 1``. The bias is Gemm's ``C`` or the initializer added right
after a MatMul by an ``Add`` node. Initializer sizes are checked against their declared shapes
before any array is built.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gnc.pretrained._deps import require
from gnc.pretrained.record import Head

__all__ = ["read_onnx_head"]

_FLOAT_TYPES = {1: 4, 10: 2, 11: 8, 16: 2}  # FLOAT, FLOAT16, DOUBLE, BFLOAT16 -> item size


def _array(init: Any, path: Path) -> np.ndarray:
    from onnx import numpy_helper

    dims = [int(x) for x in init.dims]
    if any(x < 0 for x in dims) or int(np.prod(dims, dtype=np.float64)) > 2**40:
        raise ValueError(f"Expected a sane shape for `{init.name}` in {path}, but got {dims}.")
    if init.data_type not in _FLOAT_TYPES:
        raise ValueError(
            f"Expected a floating initializer `{init.name}` in {path}, but its ONNX data type is "
            f"{init.data_type} (quantized heads are not supported)."
        )
    if init.data_location == 1:
        raise ValueError(f"Expected `{init.name}` stored inside {path}, but it is external data.")
    count = int(np.prod(dims, dtype=np.int64))
    if init.raw_data:
        expected = count * _FLOAT_TYPES[init.data_type]
        if len(init.raw_data) != expected:
            raise ValueError(
                f"Expected {expected} bytes for `{init.name}` of shape {dims} in {path}, but it "
                f"holds {len(init.raw_data)}."
            )
    try:
        out = np.asarray(numpy_helper.to_array(init))
    except Exception as err:
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"Expected to decode `{init.name}` in {path}, but: {msg}") from None
    if out.size != count:
        raise ValueError(f"Expected {count} values for `{init.name}` in {path}, got {out.size}.")
    return out.astype(np.float64 if out.dtype == np.float64 else np.float32)


def read_onnx_head(path: str | os.PathLike[str], *, key: str | None = None) -> Head:
    """Read the classifier head of an ONNX model.

    Args:
        path: The ``.onnx`` file.
        key: Initializer name of the head (default: the last MatMul/Gemm weight).

    Returns:
        A :class:`~gnc.pretrained.Head` with ``K`` rows (no token strings).

    Raises:
        ValueError: On a malformed file, no MatMul/Gemm initializer, a non-floating head or a
            missing ``onnx`` package (the message names ``pip install 'gnc[heads]'``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No such file: {path} (expected an ONNX file).")
    require("onnx", what="ONNX files")
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as err:
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"Expected an ONNX model, but {path} is malformed: {msg}") from None
    graph = proto.graph
    inits = {t.name: t for t in graph.initializer}
    if not graph.node and not inits:
        raise ValueError(f"Expected an ONNX model with nodes, but {path} has an empty graph.")
    nodes = list(graph.node)

    def _weight_input(node: Any) -> str | None:
        if node.op_type not in ("MatMul", "Gemm") or len(node.input) < 2:
            return None
        name = str(node.input[1])
        return name if name in inits and len(inits[name].dims) == 2 else None

    node = None
    if key is not None:
        if key not in inits:
            raise ValueError(f"Expected an initializer `{key}` in {path}, but it has none.")
        chosen = key
        node = next((n for n in nodes if _weight_input(n) == key), None)
    else:
        found = [n for n in nodes if _weight_input(n) is not None]
        if not found:
            raise ValueError(
                f"Expected a MatMul or Gemm node with a weight initializer in {path}, but it has "
                "none; name the head with `key=`."
            )
        node = found[-1]
        chosen = str(_weight_input(node))
    stored = _array(inits[chosen], path)
    if stored.ndim != 2:
        raise ValueError(f"Expected `{chosen}` in {path} to be 2-D, but got {list(stored.shape)}.")
    transposed = False
    bias_name = None
    if node is not None and node.op_type == "MatMul":
        transposed = True
        out = node.output[0]
        add = next((n for n in nodes if n.op_type == "Add" and out in n.input), None)
        if add is not None:
            other = [str(i) for i in add.input if i != out and i in inits]
            bias_name = other[0] if other else None
    elif node is not None:  # Gemm: Y = alpha A B' + beta C, B' = B^T when transB
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        transposed = not bool(attrs.get("transB", 0))
        if attrs.get("transA", 0):
            raise ValueError(f"Expected Gemm without transA for the head in {path}.")
        alpha = float(attrs.get("alpha", 1.0))
        if alpha != 1.0:
            stored = stored * alpha
        if len(node.input) > 2 and node.input[2] in inits:
            bias_name = str(node.input[2])
    W = stored.T if transposed else stored
    K = W.shape[0]
    bias = None
    if bias_name is not None:
        b = _array(inits[bias_name], path).reshape(-1)
        if node is not None and node.op_type == "Gemm":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            b = b * float(attrs.get("beta", 1.0))
        if b.shape == (K,):
            bias = torch.from_numpy(np.ascontiguousarray(b))
        else:
            bias_name = None
    prov: dict[str, Any] = {
        "file": str(path.resolve()),
        "format": "onnx",
        "tensor": chosen,
        "node": None if node is None else f"{node.op_type} {node.name}".strip(),
        "stored_shape": list(stored.shape),
        "transposed": transposed,
        "bias_tensor": bias_name,
    }
    return Head(
        torch.from_numpy(np.ascontiguousarray(W)),
        None,
        path.stem,
        prov,
        "index",
        bias,
        str(path),
        False,
    )
