"""GNC of next-word features over the classes that occur, and the references a run is compared to.

:func:`subsample_gnc_metrics` measures the features of a fixed random subsample of training
positions, labelled by their true next word, features L2-normalized (the paper's convention):

- Only the ``K'`` classes that occur in the subsample enter GNC1, GNC3 and NCC: their labels are
  remapped to ``0..K'-1`` and ``W`` is restricted to their rows. GNC1 needs a mean for every
  class in the accumulator, and in a Zipfian vocabulary many rare words never occur in a sample
  of ``10^4`` positions; dropping them explicitly is the honest alternative to empty classes
  (which :class:`~gnc.metrics.GNCAccumulator` rejects). ``metric_classes`` records ``K'``.
- ``gnc2`` is the exact ``rho`` of *all* ``K`` normalized head rows (independent of the
  subsample), via :func:`gnc.geometry.one_vs_rest_distances`, which also gives the median
  one-vs-rest distance ``gnc2_median_distance``: ``rho`` is a minimum over ``K`` rows and in a
  Zipfian vocabulary it is decided by a rare word, the median describes the bulk.
  ``gnc2_present`` is ``rho`` of the ``K'`` rows that GNC1/GNC3 use.
- NCC test accuracy classifies test features whose next word is among the ``K'`` classes
  (``ncc_test_coverage``: their fraction).

(:func:`gnc.analysis.feature_gnc.measure_head_features` does the same restriction for features
grouped by the class a pretrained head *predicts*, with a minimum count per class.)

:func:`distance_by_frequency` summarizes the final ``D_k`` per frequency band of the vocabulary;
:func:`reduced_code_value` solves a softmax code at a reduced size with the same ``K / d``.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from typing import Any

import numpy as np
import torch

from gnc._checks import check_int, check_labels, check_matrix, check_positive
from gnc.codes import softmax_code
from gnc.geometry import one_vs_rest_distances
from gnc.lm.vocab import Vocabulary
from gnc.metrics import (
    ClassStatistics,
    gnc1,
    gnc2,
    gnc3,
    ncc_predict,
    subset_statistics,
)

__all__ = [
    "FrequencyBand",
    "PresentClassGNC",
    "ReducedCode",
    "distance_by_frequency",
    "reduced_code_value",
    "subsample_gnc_metrics",
]


@dataclasses.dataclass(frozen=True, kw_only=True)
class PresentClassGNC:
    """GNC metrics of next-word features over the ``K'`` classes present in the subsample.

    Attributes:
        metric_samples: Samples measured.
        metric_classes: ``K'``, the distinct targets among them.
        gnc1: :func:`gnc.metrics.gnc1` over the ``K'`` classes.
        nc1_trace_ratio: ``tr(Sigma_W) / tr(Sigma_B)`` (``None`` if ``tr(Sigma_B) = 0``).
        gnc2: Exact ``rho`` of all ``K`` normalized head rows.
        gnc2_median_distance: Median one-vs-rest distance ``D_k`` of all rows.
        gnc2_argmin: The class attaining ``gnc2``.
        gnc2_certified: Whether ``gnc2`` is certified.
        gnc2_present: ``rho`` of the ``K'`` present rows.
        gnc3: :func:`gnc.metrics.gnc3` with the present rows.
        ncc_train_accuracy: Nearest-class-mean accuracy among the ``K'`` means.
        nc4_agreement: Model prediction equals the NCC prediction (``None`` without predictions).
        ncc_test_accuracy: NCC accuracy on test samples of present classes (``None`` without
            test features, or when none is present).
        ncc_test_coverage: Fraction of test samples whose target is present.
    """

    metric_samples: int
    metric_classes: int
    gnc1: float
    nc1_trace_ratio: float | None
    gnc2: float
    gnc2_median_distance: float
    gnc2_argmin: int
    gnc2_certified: bool
    gnc2_present: float
    gnc3: float
    ncc_train_accuracy: float
    nc4_agreement: float | None
    ncc_test_accuracy: float | None
    ncc_test_coverage: float | None

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict, in declaration order."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(PresentClassGNC)}


@dataclasses.dataclass(frozen=True)
class FrequencyBand:
    """Final ``D_k`` over one band of frequency ranks of the vocabulary.

    Attributes:
        ranks: ``(first, last)`` class ids of the band (ids are frequency ranks).
        median: Median ``D_k`` over the band.
        min: Smallest ``D_k`` in the band.
        word_at_min: The word attaining it.
    """

    ranks: tuple[int, int]
    median: float
    min: float
    word_at_min: str

    def to_dict(self) -> dict[str, Any]:
        """``{"ranks": [first, last], "median", "min", "word_at_min"}``."""
        return {
            "ranks": list(self.ranks),
            "median": self.median,
            "min": self.min,
            "word_at_min": self.word_at_min,
        }


@dataclasses.dataclass(frozen=True)
class ReducedCode:
    """A softmax code at a reduced size with the same ``K / d`` (see :func:`reduced_code_value`).

    Attributes:
        classes: ``K_r``.
        dim: ``d_r``.
        rho: ``rho`` of the code found.
        method: How :func:`gnc.codes.softmax_code` found it.
        seconds: Wall time.
    """

    classes: int
    dim: int
    rho: float
    method: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return dataclasses.asdict(self)


def subsample_gnc_metrics(
    features: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor,
    *,
    predictions: torch.Tensor | None = None,
    test_features: torch.Tensor | None = None,
    test_targets: torch.Tensor | None = None,
    max_memory_mib: float = 512.0,
) -> tuple[PresentClassGNC, torch.Tensor]:
    """GNC metrics of next-word features, restricted to the classes that occur.

    With ``P`` the sorted distinct targets (``K' = |P|`` classes), labels are remapped to
    ``0..K'-1`` and the head to its rows ``W[P]``; a :class:`~gnc.metrics.GNCAccumulator` over
    ``K'`` classes then has no empty class. Computed:

    - ``gnc1``: :func:`gnc.metrics.gnc1` over the ``K'`` classes (normalized features). When
      ``K' >> d``, ``Sigma_B`` has rank ``<= d`` and the ``1/K'`` makes GNC1 small even without
      any collapse (``gnc1 * K' / d`` is the within/between ratio per direction), so
      ``nc1_trace_ratio = tr(Sigma_W) / tr(Sigma_B)`` is recorded as a scale-free companion.
    - ``gnc3``: :func:`gnc.metrics.gnc3` with ``W[P]``.
    - ``gnc2``: exact ``rho`` of all ``K`` normalized rows of ``weights``
      (:func:`gnc.geometry.one_vs_rest_distances`), ``gnc2_median_distance`` the median ``D_k``,
      ``gnc2_argmin`` the class attaining ``rho``; ``gnc2_present``: ``rho(W[P])``.
    - ``ncc_train_accuracy``: nearest-class-mean accuracy among the ``K'`` class means;
      ``nc4_agreement`` (with ``predictions``): fraction of samples whose model prediction
      (``argmax`` over all ``K`` logits, so a prediction outside ``P`` counts as disagreement)
      equals the NCC prediction.
    - ``ncc_test_accuracy`` (with test features): over test samples whose target is in ``P``
      (``ncc_test_coverage``: their fraction).

    Args:
        features: ``(N, d)`` penultimate features.
        targets: ``(N,)`` next-word class ids in ``[0, K)``.
        weights: ``(K, d)`` head rows (``Head.classifier_weights()``).
        predictions: ``(N,)`` the model's predicted class ids in ``[0, K)``, for NC4 (optional).
        test_features: ``(M, d)`` test features (optional).
        test_targets: ``(M,)`` their class ids.
        max_memory_mib: Memory budget of the solvers.

    Returns:
        ``(metrics, distances)``: a :class:`PresentClassGNC` and the ``(K,)`` float64
        one-vs-rest distances ``D_k`` of all rows.

    Raises:
        ValueError: If fewer than 2 classes occur in ``targets``, shapes disagree or labels are
            outside ``[0, K)``.

    Example:
        >>> W = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
        >>> h = torch.tensor([[2.0, 0.0], [1.0, 0.0], [-1.0, 0.0]])
        >>> m, D = subsample_gnc_metrics(h, torch.tensor([0, 0, 2]), W)
        >>> m.metric_classes, m.gnc1, m.gnc3, m.gnc2, m.gnc2_present
        (2, 0.0, 0.0, 1.0, 2.0)
    """
    W = check_matrix("weights", weights, min_rows=2, nonzero_rows=True).detach()
    K, d = int(W.shape[0]), int(W.shape[1])
    features = check_matrix("features", features, cols=d).detach()
    y = check_labels("targets", targets, num_samples=int(features.shape[0]), num_classes=K)
    y = y.to(features.device)
    if predictions is not None:
        predictions = check_labels(
            "predictions", predictions, num_samples=int(features.shape[0]), num_classes=K
        )
    if test_features is not None or test_targets is not None:
        if test_features is None or test_targets is None:
            raise ValueError("Expected both `test_features` and `test_targets`, but got one.")
        test_features = check_matrix("test_features", test_features, min_rows=0, cols=d)
        test_targets = check_labels(
            "test_targets", test_targets, num_samples=int(test_features.shape[0]), num_classes=K
        )
    present = torch.unique(y)  # sorted
    Kp = int(present.numel())
    if Kp < 2:
        raise ValueError(f"Expected at least 2 distinct targets in the subsample, but got {Kp}.")
    W = W.to(torch.float64)
    # One chunk: the statistics of every sample at once (all targets are in ``present``).
    stats, local = subset_statistics(features, y, present, chunk_size=max(1, int(y.numel())))
    Wp = W[present.to(W.device)]
    ovr = one_vs_rest_distances(W, normalize=True, max_memory_mib=max_memory_mib)
    distances = ovr.distances.to(torch.float64)
    means = stats.means
    pred = ncc_predict(features, means, max_memory_mib=max_memory_mib)
    nc4 = None
    if predictions is not None:
        model_pred = predictions.to(device=pred.device, dtype=torch.long)
        agree = present.to(pred.device)[pred] == model_pred
        nc4 = float(agree.double().mean())
    ncc_test = coverage = None
    if test_features is not None and test_targets is not None:
        ty = test_targets.to(device=present.device, dtype=torch.long)
        idx = torch.searchsorted(present, ty).clamp_max(Kp - 1)
        keep = present[idx] == ty
        coverage = float(keep.to(torch.float64).mean()) if ty.numel() else 0.0
        if bool(keep.any()):
            tpred = ncc_predict(test_features[keep.to(test_features.device)], means)
            hit = tpred == idx[keep].to(tpred.device)
            ncc_test = float(hit.double().mean())
    metrics = PresentClassGNC(
        metric_samples=int(y.numel()),
        metric_classes=Kp,
        gnc1=gnc1(stats),
        nc1_trace_ratio=_trace_ratio(stats),
        gnc2=float(ovr.rho),
        gnc2_median_distance=float(distances.median()),
        gnc2_argmin=int(ovr.argmin),
        gnc2_certified=bool(ovr.certified),
        gnc2_present=gnc2(Wp, max_memory_mib=max_memory_mib),
        gnc3=gnc3(stats, Wp),
        ncc_train_accuracy=float((pred == local.to(pred.device)).double().mean()),
        nc4_agreement=nc4,
        ncc_test_accuracy=ncc_test,
        ncc_test_coverage=coverage,
    )
    return metrics, distances


def _trace_ratio(stats: ClassStatistics) -> float | None:
    """``tr(Sigma_W) / tr(Sigma_B)`` with ``Sigma_W = scatter / N``, ``Sigma_B = M^T M / K``.

    ``None`` when every class mean is the global mean (``tr(Sigma_B) = 0``).
    """
    within = float(stats.within_scatter.trace()) / stats.num_samples
    M = stats.centred_means
    between = float((M * M).sum()) / stats.num_classes
    return within / between if between > 0 else None


def reduced_code_value(
    num_classes: int,
    feature_dim: int,
    reduced_dim: int,
    *,
    time_limit: float = 30.0,
    seed: int = 0,
) -> ReducedCode:
    """``rho`` of a softmax code for a *reduced* problem with the same ratio ``K / d``.

    A softmax code for ``(K, d) = (2048, 32)`` is out of reach on a CPU budget; this solves
    ``(round(K * d_r / d), d_r)`` with :func:`gnc.codes.softmax_code` instead. It is a
    reference for the scale of ``rho`` at that ratio, *not* the code value of ``(K, d)``.

    Returns:
        A :class:`ReducedCode`.
    """
    K = check_int("num_classes", num_classes, minimum=2)
    d = check_int("feature_dim", feature_dim, minimum=1)
    dr = check_int("reduced_dim", reduced_dim, minimum=2)
    Kr = max(2, round(K * dr / d))
    t0 = time.time()
    res = softmax_code(Kr, dr, seed=seed, time_limit=check_positive("time_limit", time_limit))
    return ReducedCode(
        classes=Kr,
        dim=dr,
        rho=float(res.rho),
        method=str(res.method),
        seconds=time.time() - t0,
    )


def distance_by_frequency(
    distances: torch.Tensor, vocab: Vocabulary, groups: int = 4
) -> tuple[FrequencyBand, ...]:
    """Median / min ``D_k`` per frequency-rank group of the kept words (class ids 1..K-1).

    Example:
        >>> from gnc.lm.vocab import build_vocabulary
        >>> vocab = build_vocabulary(list("aaabbc"), 4)
        >>> distance_by_frequency(torch.tensor([0.0, 1.0, 2.0, 3.0]), vocab, groups=1)[0]
        FrequencyBand(ranks=(1, 3), median=2.0, min=1.0, word_at_min='a')
    """
    D = distances.detach().cpu()
    K = vocab.num_classes
    edges = np.linspace(1, K, groups + 1).round().astype(int)
    out = []
    for a, b in itertools.pairwise(edges.tolist()):
        if b <= a:
            continue
        part = D[a:b]
        k = int(part.argmin()) + int(a)
        out.append(
            FrequencyBand(
                ranks=(int(a), int(b) - 1),
                median=float(part.median()),
                min=float(part.min()),
                word_at_min=vocab.words[k],
            )
        )
    return tuple(out)
