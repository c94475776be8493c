"""``gnc measure``: GNC / NC metrics of saved features (``.npz``).

The file holds ``features`` ``(N, d)`` and ``labels`` ``(N,)``, optionally ``weights`` ``(K, d)``
(the classifier), ``logits`` ``(N, K)`` (for NC4), ``test_features`` and ``test_labels``.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gnc._checks import check_int, check_labels, check_matrix
from gnc.cli._common import atomic_write_text, dump_json
from gnc.metrics import GNCAccumulator, NCCAccumulator, NCCMetrics
from gnc.readers import FileFormatError, read_npz

__all__ = ["measure_arrays", "register", "run"]

_KEYS = ("features", "labels", "weights", "logits", "test_features", "test_labels")


def register(subparsers: Any) -> None:
    """Add the ``measure`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "measure",
        help="GNC1/2/3 and NC metrics of saved features (.npz)",
        description=(
            "Measure generalized neural collapse of features saved in an .npz file with arrays "
            "`features` (N, d) and `labels` (N,), optionally `weights` (K, d), `logits` (N, K), "
            "`test_features` and `test_labels`."
        ),
    )
    parser.add_argument("--features", required=True, type=Path, help="input .npz file")
    parser.add_argument("--json", action="store_true", help="print JSON on stdout")
    parser.add_argument(
        "--num-classes",
        type=int,
        default=None,
        help="K (default: rows of weights, else max label + 1)",
    )
    parser.add_argument(
        "--raw", action="store_true", help="do not L2-normalize features (paper: normalized)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=65536, help="rows per streamed batch (default 65536)"
    )
    parser.add_argument(
        "--no-class-means-rho",
        action="store_true",
        help="skip the exact rho of the centred class means (one fewer one-vs-rest solve)",
    )
    parser.add_argument(
        "--output", type=Path, default=None, help="also write the JSON result to this file"
    )
    parser.set_defaults(func=run)


def _load(path: Path) -> dict[str, np.ndarray]:
    """Read the feature archive's known arrays (safely: see :func:`gnc.readers.read_npz`)."""
    arrays = read_npz(path, keys=_KEYS, required=("features", "labels"))
    for name, value in arrays.items():
        problem = None
        if name.endswith("labels"):
            if value.dtype.kind not in "iu":
                problem = f"expected integer class labels, but got dtype {value.dtype}"
        elif value.dtype.kind != "f":
            problem = f"expected floating-point numbers, but got dtype {value.dtype}"
        if problem is not None:
            raise FileFormatError(path, f"array `{name}`: {problem}")
    return arrays


def measure_arrays(
    arrays: dict[str, np.ndarray],
    *,
    num_classes: int | None = None,
    normalize: bool = True,
    batch_size: int = 65536,
    class_means_rho: bool = True,
) -> dict[str, Any]:
    """Validate ``arrays`` and measure them by streaming; returns a JSON-ready ``dict``.

    Example:
        >>> h = np.array([[1.0, 0.0], [0.9, 0.1], [-1.0, 0.0], [-0.9, 0.1]])
        >>> out = measure_arrays({"features": h, "labels": np.array([0, 0, 1, 1])})
        >>> out["num_classes"], out["ncc_train_accuracy"]
        (2, 1.0)
    """
    batch_size = check_int("batch_size", batch_size, minimum=1)
    H = check_matrix("features", arrays["features"], nonzero_rows=normalize)
    N, d = H.shape
    W = None
    if "weights" in arrays:
        W = check_matrix("weights", arrays["weights"], min_rows=2, cols=d, nonzero_rows=True)
    if num_classes is None:
        if W is not None:
            num_classes = int(W.shape[0])
        else:
            raw = arrays["labels"]
            if raw.size == 0 or not np.issubdtype(raw.dtype, np.integer):
                check_labels("labels", raw, num_samples=N)
            num_classes = int(raw.max()) + 1
    K = check_int("num_classes", num_classes, minimum=2)
    if W is not None and W.shape[0] != K:
        raise ValueError(
            f"Expected `weights` of shape ({K}, {d}) for {K} classes, but got {tuple(W.shape)}."
        )
    y = check_labels("labels", arrays["labels"], num_samples=N, num_classes=K)
    Z = None
    if "logits" in arrays:
        Z = check_matrix("logits", arrays["logits"], min_rows=0, cols=K, finite=False)
        if Z.shape[0] != N:
            raise ValueError(f"Expected `logits` of shape ({N}, {K}), but got {tuple(Z.shape)}.")
    test = None
    if ("test_features" in arrays) != ("test_labels" in arrays):
        raise ValueError("Expected both `test_features` and `test_labels`, but got only one.")
    if "test_features" in arrays:
        Ht = check_matrix("test_features", arrays["test_features"], cols=d, nonzero_rows=normalize)
        yt = check_labels(
            "test_labels", arrays["test_labels"], num_samples=Ht.shape[0], num_classes=K
        )
        test = (Ht, yt)

    started = time.perf_counter()
    acc = GNCAccumulator(K, d, normalize=normalize)
    for start in range(0, N, batch_size):
        acc.update(H[start : start + batch_size], y[start : start + batch_size])
    stats = acc.statistics()
    metrics = acc.compute(W, class_means_rho=class_means_rho)

    def ncc_pass(
        feats: torch.Tensor, labels: torch.Tensor, logits: torch.Tensor | None
    ) -> NCCMetrics:
        ncc = NCCAccumulator(stats.means, normalize=normalize)
        for start in range(0, feats.shape[0], batch_size):
            part = slice(start, start + batch_size)
            ncc.update(feats[part], labels[part], None if logits is None else logits[part])
        return ncc.compute()

    train = ncc_pass(H, y, Z)
    updates: dict[str, Any] = {"ncc_train_accuracy": train.ncc_accuracy}
    if Z is not None:
        updates["nc4_agreement"] = train.nc4_agreement
    if test is not None:
        updates["ncc_test_accuracy"] = ncc_pass(test[0], test[1], None).ncc_accuracy
    metrics = dataclasses.replace(metrics, **updates)
    out: dict[str, Any] = {"num_classes": K, "dim": d, "num_samples": N}
    out.update(metrics.to_dict())
    out["test_samples"] = None if test is None else int(test[0].shape[0])
    out["seconds"] = time.perf_counter() - started
    return out


def _format_table(out: dict[str, Any]) -> str:
    width = max(len(k) for k in out)
    lines = []
    for key, value in out.items():
        if value is None:
            text = "-"
        elif isinstance(value, bool):
            text = str(value)
        elif isinstance(value, float):
            text = f"{value:.6g}"
        else:
            text = str(value)
        lines.append(f"{key:<{width}}  {text}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run ``gnc measure``; raises ``ValueError`` on bad input (exit status 2)."""
    arrays = _load(Path(args.features))
    try:
        out = measure_arrays(
            arrays,
            num_classes=args.num_classes,
            normalize=not args.raw,
            batch_size=args.batch_size,
            class_means_rho=not args.no_class_means_rho,
        )
    except ValueError as err:  # name the file the bad values came from
        raise ValueError(f"{args.features}: {err}") from None
    out = {"file": str(args.features), **out}
    if args.output is not None:
        atomic_write_text(args.output, dump_json(out) + "\n")
    if args.json:
        print(dump_json(out))
    else:
        print(_format_table(out))
    return 0
