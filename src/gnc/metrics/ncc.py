"""Nearest class mean: NCC predictions and accuracy, NC4 agreement, and the second-pass accumulator.

NCC needs the final class means, i.e. a second look at the data once
:class:`gnc.metrics.GNCAccumulator` has them: :class:`NCCAccumulator` counts correct NCC
predictions (and, with logits, NC4 agreement) batch by batch and returns an :class:`NCCMetrics`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from gnc._checks import as_float_tensor, check_labels, check_matrix
from gnc._runtime import resolve_budget, rows_per_budget
from gnc.io import Record
from gnc.metrics._batches import check_batch, chunk_rows, invalid_rows_message, prepare_chunk
from gnc.metrics.distributed import all_reduce_sum_, collective_device, is_distributed
from gnc.metrics.statistics import normalize_features

__all__ = ["NCCAccumulator", "NCCMetrics", "nc4_agreement", "ncc_accuracy", "ncc_predict"]

_F64 = torch.float64


@dataclass(frozen=True)
class NCCMetrics(Record):
    """Result of :meth:`NCCAccumulator.compute`.

    Attributes:
        ncc_accuracy: Fraction of samples whose nearest class mean is their class.
        nc4_agreement: Fraction whose ``argmax`` logit is the NCC prediction (``None`` without
            logits).
        num_samples: Valid samples counted.
    """

    ncc_accuracy: float
    nc4_agreement: float | None
    num_samples: int


def ncc_predict(
    features: Any,
    class_means: Any,
    *,
    normalize: bool = True,
    max_memory_mib: float | None = None,
) -> torch.Tensor:
    """Nearest-class-mean predictions ``argmin_k |h - hbar_k|`` (Euclidean).

    Features are L2-normalized first when ``normalize`` (the class means are used as given: in
    :class:`~gnc.metrics.NCCAccumulator` they are the means of normalized features, not
    re-normalized, as in the paper's code). Rows are tiled within ``max_memory_mib``.

    Args:
        features: ``(N, d)``.
        class_means: ``(K, d)``.
        normalize: L2-normalize the features first.
        max_memory_mib: Memory budget for an ``(rows, K)`` tile.

    Returns:
        ``(N,)`` long predictions on the features' device.

    Example:
        >>> ncc_predict(torch.tensor([[0.9, 0.1], [0.0, 2.0]]), torch.eye(2))
        tensor([0, 1])
    """
    H = check_matrix("features", features, min_rows=0).to(torch.float64)
    C = check_matrix("class_means", class_means, cols=H.shape[1]).to(
        device=H.device, dtype=torch.float64
    )
    if normalize:
        H = normalize_features(H, "features")
    return _ncc_predict_unchecked(H, C, max_memory_mib)


def _ncc_predict_unchecked(
    H: torch.Tensor, C: torch.Tensor, max_memory_mib: float | None
) -> torch.Tensor:
    half_sq = 0.5 * (C * C).sum(dim=1)
    out = torch.empty(H.shape[0], dtype=torch.long, device=H.device)
    step = rows_per_budget(8 * 2 * C.shape[0], max_memory_mib)
    for start in range(0, H.shape[0], step):
        block = H[start : start + step] @ C.T - half_sq
        out[start : start + step] = block.argmax(dim=1)
    return out


def ncc_accuracy(
    features: Any,
    labels: Any,
    class_means: Any,
    *,
    normalize: bool = True,
    max_memory_mib: float | None = None,
) -> float:
    """Nearest-class-mean accuracy of labelled features (see :func:`ncc_predict`).

    Example:
        >>> ncc_accuracy(torch.tensor([[1.0, 0.1], [1.0, 0.0]]), torch.tensor([0, 1]), torch.eye(2))
        0.5
    """
    pred = ncc_predict(features, class_means, normalize=normalize, max_memory_mib=max_memory_mib)
    K = as_float_tensor("class_means", class_means).shape[0]
    y = check_labels("labels", labels, num_samples=pred.shape[0], num_classes=K)
    if pred.shape[0] == 0:
        raise ValueError("Expected at least one sample for the NCC accuracy, but got none.")
    return float((pred == y.to(pred.device)).to(torch.float64).mean())


def nc4_agreement(
    features: Any,
    logits: Any,
    class_means: Any,
    *,
    normalize: bool = True,
    max_memory_mib: float | None = None,
) -> float:
    """NC4: fraction of samples whose ``argmax`` logit equals the nearest-class-mean prediction.

    Args:
        features: ``(N, d)``.
        logits: ``(N, K)`` classifier outputs.
        class_means: ``(K, d)``.
        normalize: L2-normalize the features first.
        max_memory_mib: Memory budget for an ``(rows, K)`` tile.

    Returns:
        The agreement in ``[0, 1]``.

    Example:
        >>> nc4_agreement(torch.eye(2), torch.tensor([[5.0, 1.0], [5.0, 1.0]]), torch.eye(2))
        0.5
    """
    pred = ncc_predict(features, class_means, normalize=normalize, max_memory_mib=max_memory_mib)
    K = as_float_tensor("class_means", class_means).shape[0]
    Z = check_matrix("logits", logits, min_rows=0, cols=K, finite=False)
    if Z.shape[0] != pred.shape[0]:
        raise ValueError(
            f"Expected `logits` of shape ({pred.shape[0]}, {K}), but got {tuple(Z.shape)}."
        )
    if pred.shape[0] == 0:
        raise ValueError("Expected at least one sample for NC4, but got none.")
    return float((Z.argmax(dim=1).to(pred.device) == pred).to(torch.float64).mean())


class NCCAccumulator:
    """Second pass: nearest-class-mean accuracy and NC4 agreement with the classifier.

    Predictions are ``argmin_k |h - hbar_k|`` on L2-normalized features ``h`` (when
    ``normalize``) with ``hbar_k`` the class means of the normalized training features as given
    (``ClassStatistics.means``; not re-normalized), as in the paper's code.

    Args:
        class_means: ``(K, d)`` class means (e.g. ``GNCAccumulator.statistics().means``).
        normalize: L2-normalize the features first.
        max_memory_mib: Memory budget of a ``(rows, K)`` distance tile.

    Example:
        >>> acc = NCCAccumulator(torch.eye(2))
        >>> acc.update(torch.tensor([[2.0, 0.1], [0.0, 1.0]]), torch.tensor([0, 0]))
        >>> acc.compute().ncc_accuracy
        0.5
    """

    def __init__(
        self, class_means: Any, *, normalize: bool = True, max_memory_mib: float | None = None
    ) -> None:
        C = check_matrix("class_means", class_means, min_rows=1)
        self.class_means = C.to(_F64)
        self.num_classes = int(C.shape[0])
        self.feature_dim = int(C.shape[1])
        self.normalize = bool(normalize)
        self.max_memory_mib = None if max_memory_mib is None else resolve_budget(max_memory_mib)
        self._state: torch.Tensor | None = None  # [correct, total, agree, with_logits, bad...]
        self._num_updates = 0
        self._synced = False

    def reset(self) -> None:
        """Forget all data."""
        self._state = None
        self._num_updates = 0
        self._synced = False

    def update(self, features: Any, labels: Any, logits: Any = None) -> None:
        """Add a batch; with ``logits`` ``(B, K)`` also count NC4 agreement. No host sync."""
        if self._synced:
            raise RuntimeError("This accumulator was synced; call reset() before update().")
        C = self.class_means
        x, labels_ = check_batch(features, labels, feature_dim=self.feature_dim, device=C.device)
        Z = None
        if logits is not None:
            Z = as_float_tensor("logits", logits)
            if tuple(Z.shape) != (x.shape[0], self.num_classes):
                raise ValueError(
                    f"Expected `logits` of shape ({x.shape[0]}, {self.num_classes}), but got "
                    f"{tuple(Z.shape)}."
                )
            Z = Z.to(C.device, non_blocking=True)
        if self._state is None:
            self._state = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0], dtype=_F64)
            self._state = self._state.to(C.device)
        index = self._num_updates
        self._num_updates += 1
        s = self._state
        step = chunk_rows(x.shape[0], max(self.feature_dim, self.num_classes), x.device)
        for start in range(0, x.shape[0], step):
            part = slice(start, start + step)
            H, y, valid, bad_f, bad_l = prepare_chunk(
                x[part], labels_[part], num_classes=self.num_classes, normalize=self.normalize
            )
            pred = _ncc_predict_unchecked(H, C, self.max_memory_mib)
            s[0] += ((pred == y) & valid).sum()
            s[1] += valid.sum()
            if Z is not None:
                s[2] += ((Z[part].argmax(dim=1) == pred) & valid).sum()
                s[3] += valid.sum()
            s[4] += bad_f.sum()
            s[5] += bad_l.sum()
            s[6] = torch.where((s[6] < 0) & (~valid).any(), float(index), s[6])

    def merge(self, other: NCCAccumulator) -> NCCAccumulator:
        """Add ``other``'s counts (same class means assumed); returns ``self``."""
        if not isinstance(other, NCCAccumulator):
            raise TypeError(
                f"Expected `other` to be an NCCAccumulator, but got {type(other).__name__}."
            )
        if other.class_means.shape != self.class_means.shape:
            raise ValueError(
                f"Expected `other` with class means of shape {tuple(self.class_means.shape)}, "
                f"but got {tuple(other.class_means.shape)}."
            )
        if other._state is None:
            return self
        theirs = other._state.to(self.class_means.device)
        if self._state is None:
            self._state = theirs.clone()
        else:
            first = torch.where(self._state[6] >= 0, self._state[6], theirs[6])
            self._state = torch.cat([self._state[:6] + theirs[:6], first[None]])
        self._num_updates += other._num_updates
        return self

    def sync(self) -> None:
        """All-reduce the counts over ``torch.distributed`` (no-op when not initialized)."""
        if not is_distributed() or self._synced:
            return
        if self._state is None:
            self._state = torch.tensor(
                [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0], dtype=_F64, device=self.class_means.device
            )
        target = collective_device() if collective_device().type == "cuda" else self._state.device
        counts = self._state[:6].to(target).clone()
        all_reduce_sum_([counts])
        self._state = torch.cat([counts.to(self._state.device), self._state[6:]])
        self._synced = True

    def state_dict(self) -> dict[str, Any]:
        """Class means and counters."""
        return {
            "class_means": self.class_means.detach().clone(),
            "normalize": self.normalize,
            "num_updates": self._num_updates,
            "synced": self._synced,
            "state": None if self._state is None else self._state.detach().clone(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`."""
        C = check_matrix("class_means", state_dict["class_means"])
        self.class_means = C.to(_F64)
        self.num_classes, self.feature_dim = int(C.shape[0]), int(C.shape[1])
        self.normalize = bool(state_dict["normalize"])
        saved = state_dict["state"]
        self._state = None if saved is None else saved.to(C.device, _F64).clone()
        self._num_updates = int(state_dict.get("num_updates", 0))
        self._synced = bool(state_dict.get("synced", False))

    def compute(self) -> NCCMetrics:
        """NCC accuracy, NC4 agreement (``None`` without logits) and the samples counted.

        Raises:
            ValueError: If no valid sample was seen or invalid rows were seen.
        """
        if self._state is None:
            raise ValueError("Expected at least one update() before compute(), but got none.")
        correct, total, agree, with_logits, bad_f, bad_l, first = self._state.tolist()
        msg = invalid_rows_message(bad_f, bad_l, first, self.num_classes, self.normalize)
        if msg is not None:
            raise ValueError(msg)
        if total == 0:
            raise ValueError("Expected at least one valid sample, but got none.")
        return NCCMetrics(
            ncc_accuracy=correct / total,
            nc4_agreement=agree / with_logits if with_logits > 0 else None,
            num_samples=round(total),
        )
