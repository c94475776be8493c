"""GNC of a real network's penultimate features, grouped by the class its head predicts.

A pretrained ``K >> d`` head (a language model's unembedding, an OCR classifier) is measured on
the features the network actually produces: each feature vector is assigned to the class the
head predicts for it (``argmax`` of its logits), and only classes predicted at least
``min_samples`` times are kept (most of a 49,152-token vocabulary is never predicted on a
corpus of a few thousand tokens, and GNC1 needs every class to have samples). On those ``m``
classes:

- GNC1 ``tr(Sigma_W Sigma_B^+) / m`` of the (L2-normalized) features,
- GNC3 ``mean_k (1 - cos(w_k, hbar_k - h_G))`` against the head's rows, with a baseline in which
  each class mean is paired with another measured class's row (a random derangement),
- the nearest-class-mean agreement: the fraction of samples whose nearest class mean is the class
  the head predicted,
- exact GNC2 of the measured classes' rows and of their centred class means (certified).

Statistics stream through :class:`gnc.metrics.GNCAccumulator` in chunks; the features
themselves must fit in memory (the class selection needs the counts first).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch

from gnc._checks import check_int, check_labels, check_matrix
from gnc._runtime import make_generator
from gnc.geometry import min_one_vs_rest_distance
from gnc.metrics import gnc1, ncc_predict, subset_statistics

__all__ = [
    "ClassRow",
    "HeadFeatureMetrics",
    "measure_head_features",
    "predict_classes",
]

_F64 = torch.float64


@dataclass(frozen=True)
class ClassRow:
    """One measured class: index in the head, decoded label, samples and alignment."""

    index: int
    label: str
    count: int
    cosine: float  # cos(w_k, hbar_k - h_G)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class HeadFeatureMetrics:
    """GNC metrics of features grouped by predicted class (see the module docstring).

    Attributes:
        head: Name of the head.
        head_classes: ``K`` of the head.
        feature_dim: ``d``.
        num_samples: All feature vectors given.
        min_samples: Samples a class needs to be measured.
        num_classes: ``m``, the classes measured.
        num_samples_measured: Samples of those classes.
        classes: ``(m,)`` head indices of the measured classes, most predicted first.
        counts: ``(m,)`` samples per measured class.
        cosines: ``(m,)`` ``cos(w_k, hbar_k - h_G)`` per measured class.
        cosines_shuffled: ``(m,)`` the same with another class's row (the GNC3 baseline).
        gnc1: GNC1 over the measured classes.
        gnc3: GNC3 against the head's rows.
        gnc3_shuffled: GNC3 with each class mean paired with another class's row (baseline:
            how much of the alignment is class-specific).
        ncc_agreement: Fraction of measured samples whose nearest class mean is their class.
        gnc2_rows: Exact rho of the measured classes' normalized head rows.
        gnc2_class_means: Exact rho of their normalized centred class means.
        certified: Both GNC2 values carry certificates (gap within tolerance).
        label_accuracy: ``argmax`` prediction equals the true label (e.g. the next token), over
            the samples with a known label, when labels were given.
        top: The most predicted classes (up to 12) with decoded labels.
        normalized: Features were L2-normalized first (the paper's convention).
        seconds: Wall time.
    """

    head: str
    head_classes: int
    feature_dim: int
    num_samples: int
    min_samples: int
    num_classes: int
    num_samples_measured: int
    classes: torch.Tensor
    counts: torch.Tensor
    cosines: torch.Tensor
    cosines_shuffled: torch.Tensor
    gnc1: float
    gnc3: float
    gnc3_shuffled: float
    ncc_agreement: float
    gnc2_rows: float
    gnc2_class_means: float
    certified: bool
    label_accuracy: float | None
    top: tuple[ClassRow, ...]
    normalized: bool
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready scalars and the top classes (the per-class tensors are left out)."""
        return {
            "head": self.head,
            "head_classes": self.head_classes,
            "feature_dim": self.feature_dim,
            "num_samples": self.num_samples,
            "min_samples": self.min_samples,
            "num_classes_measured": self.num_classes,
            "num_samples_measured": self.num_samples_measured,
            "gnc1": self.gnc1,
            "gnc3": self.gnc3,
            "gnc3_shuffled": self.gnc3_shuffled,
            "ncc_agreement": self.ncc_agreement,
            "gnc2_rows": self.gnc2_rows,
            "gnc2_class_means": self.gnc2_class_means,
            "certified": self.certified,
            "label_accuracy": self.label_accuracy,
            "normalized": self.normalized,
            "seconds": self.seconds,
            "top": [row.to_dict() for row in self.top],
        }


def _chunks(n: int, size: int) -> range:
    return range(0, n, size)


def predict_classes(
    features: Any, weights: Any, bias: Any = None, *, chunk_size: int = 8192
) -> torch.Tensor:
    """``argmax_k (h W^T + b)_k`` per row, in chunks (never an ``(N, K)`` matrix at once).

    Args:
        features: ``(N, d)``.
        weights: ``(K, d)`` head rows.
        bias: Optional ``(K,)`` bias.
        chunk_size: Rows per chunk.

    Returns:
        ``(N,)`` long tensor on the features' device.

    Example:
        >>> predict_classes(torch.tensor([[1.0, 0.0], [0.0, -2.0]]), torch.eye(2), torch.tensor([0.0, 1.0]))
        tensor([0, 0])
    """  # noqa: E501
    H = check_matrix("features", features, min_rows=0)
    W = check_matrix("weights", weights, cols=H.shape[1]).to(device=H.device, dtype=H.dtype)
    b = None
    if bias is not None:
        b = torch.as_tensor(bias).to(device=H.device, dtype=H.dtype).flatten()
        if b.shape[0] != W.shape[0]:
            raise ValueError(f"Expected `bias` of shape ({W.shape[0]},), but got {tuple(b.shape)}.")
    step = check_int("chunk_size", chunk_size, minimum=1)
    out = torch.empty(H.shape[0], dtype=torch.long, device=H.device)
    for s in _chunks(H.shape[0], step):
        logits = H[s : s + step] @ W.T
        if b is not None:
            logits += b
        out[s : s + step] = logits.argmax(dim=1)
    return out


def _derangement(m: int, generator: torch.Generator) -> torch.Tensor:
    """A random permutation of ``range(m)`` without fixed points (``m >= 2``)."""
    perm = torch.randperm(m, generator=generator)
    other = torch.empty_like(perm)
    other[perm] = torch.roll(perm, -1)  # one m-cycle through a random order
    return other


def measure_head_features(
    features: Any,
    weights: Any,
    *,
    predicted: Any = None,
    bias: Any = None,
    labels: Any = None,
    min_samples: int = 10,
    max_classes: int | None = None,
    normalize: bool = True,
    head: str = "head",
    decode: Callable[[int], str] | None = None,
    chunk_size: int = 8192,
    seed: int = 0,
) -> HeadFeatureMetrics:
    """GNC1, GNC3, NCC agreement and GNC2 of features grouped by the head's predicted class.

    Args:
        features: ``(N, d)`` penultimate features (the head's input), any real dtype.
        weights: ``(K, d)`` head rows.
        predicted: ``(N,)`` predicted classes; default ``argmax(h W^T + bias)``.
        bias: Optional ``(K,)`` head bias (used only to predict).
        labels: Optional ``(N,)`` true classes, for the head's accuracy (``-1``: unknown, left
            out of the accuracy).
        min_samples: A class is measured when predicted at least this often.
        max_classes: Keep at most this many classes (the most predicted).
        normalize: L2-normalize the features first (the paper's convention).
        head: Name for the record.
        decode: Maps a head index to a readable label (for :attr:`HeadFeatureMetrics.top`).
        chunk_size: Rows per chunk of streaming work.
        seed: Seed of the derangement of the GNC3 baseline.

    Returns:
        A :class:`HeadFeatureMetrics`.

    Raises:
        ValueError: For bad shapes, non-finite features or weights, labels out of range, or
            fewer than two classes with ``min_samples`` samples.

    Example:
        >>> W = torch.tensor([[1.0, 0.0], [-0.5, 0.8], [-0.5, -0.8]])
        >>> H = W.repeat(4, 1) + 0.01 * torch.randn(12, 2, generator=torch.Generator().manual_seed(0))
        >>> r = measure_head_features(H, W, min_samples=2)
        >>> r.num_classes, r.ncc_agreement, r.gnc3 < 1e-3
        (3, 1.0, True)
    """  # noqa: E501
    t0 = time.perf_counter()
    H = check_matrix("features", features, min_rows=1, finite=True)
    W = check_matrix("weights", weights, min_rows=2, cols=H.shape[1], finite=True)
    W = W.to(device=H.device)
    K, d = W.shape
    N = H.shape[0]
    min_n = check_int("min_samples", min_samples, minimum=1)
    step = check_int("chunk_size", chunk_size, minimum=1)
    if max_classes is not None:
        check_int("max_classes", max_classes, minimum=2)
    if predicted is None:
        pred = predict_classes(H, W, bias, chunk_size=step)
    else:
        pred = check_labels("predicted", predicted, num_samples=N, num_classes=K).to(H.device)
    label_acc = None
    if labels is not None:
        raw = check_labels("labels", labels, num_samples=N)
        known = raw >= 0  # -1: no true label for this sample
        true = check_labels("labels", raw[known], num_samples=int(known.sum()), num_classes=K)
        true = true.to(H.device)
        if true.numel():
            label_acc = float((true == pred[known.to(H.device)]).to(_F64).mean())

    counts_all = torch.bincount(pred, minlength=K)
    eligible = (counts_all >= min_n).nonzero().flatten()
    # most predicted first; ties by index (stable sort of the eligible indices)
    order = torch.sort(counts_all[eligible], descending=True, stable=True).indices
    classes = eligible[order]
    if max_classes is not None:
        classes = classes[:max_classes]
    m = int(classes.numel())
    if m < 2:
        raise ValueError(
            f"Expected at least 2 classes predicted >= {min_n} times (`min_samples`), but got "
            f"{m} among {N} samples; give more samples or lower `min_samples`."
        )
    stats, y_all = subset_statistics(H, pred, classes, normalize=normalize, chunk_size=step)
    W_sub = W.index_select(0, classes).to(_F64)
    M = stats.centred_means
    cos = (W_sub * M).sum(dim=1) / (
        torch.linalg.vector_norm(W_sub, dim=1) * torch.linalg.vector_norm(M, dim=1)
    )
    if not bool(torch.isfinite(cos).all()):
        raise ValueError(
            "Expected nonzero head rows and class means distinct from the global mean."
        )
    gen = make_generator(seed)
    other = _derangement(m, gen).to(H.device)
    cos_shuffled = (W_sub.index_select(0, other) * M).sum(dim=1) / (
        torch.linalg.vector_norm(W_sub.index_select(0, other), dim=1)
        * torch.linalg.vector_norm(M, dim=1)
    )

    hits = torch.zeros((), dtype=_F64, device=H.device)
    for s in _chunks(N, step):
        y = y_all[s : s + step]
        keep = y >= 0
        near = ncc_predict(H[s : s + step][keep], stats.means, normalize=normalize)
        hits += (near == y[keep]).sum()
    n_measured = int(stats.counts.sum())

    rows = min_one_vs_rest_distance(W_sub)
    means = min_one_vs_rest_distance(M)
    counts = stats.counts.to(torch.long)
    top = tuple(
        ClassRow(
            index=int(classes[i]),
            label=decode(int(classes[i])) if decode is not None else f"#{int(classes[i])}",
            count=int(counts[i]),
            cosine=float(cos[i]),
        )
        for i in range(min(12, m))
    )
    return HeadFeatureMetrics(
        head=head,
        head_classes=int(K),
        feature_dim=int(d),
        num_samples=int(N),
        min_samples=min_n,
        num_classes=m,
        num_samples_measured=n_measured,
        classes=classes.cpu(),
        counts=counts.cpu(),
        cosines=cos.cpu(),
        cosines_shuffled=cos_shuffled.cpu(),
        gnc1=gnc1(stats),
        gnc3=float((1.0 - cos).mean()),
        gnc3_shuffled=float((1.0 - cos_shuffled).mean()),
        ncc_agreement=float(hits) / n_measured,
        gnc2_rows=rows.rho,
        gnc2_class_means=means.rho,
        certified=bool(rows.certified and means.certified),
        label_accuracy=label_acc,
        top=top,
        normalized=bool(normalize),
        seconds=time.perf_counter() - t0,
    )
