"""Reference values of ``rho`` for a shape ``(K, d)``: the bound on ``rho*``, random rows, a code.

A real head's ``rho`` means little alone. For its shape ``(K, d)`` this module gives

- ``rho_star_upper``: the upper bound on the best possible ``rho*(K, d)`` of a softmax code
  (:func:`gnc.geometry.bounds.rho_star_upper`);
- the exact ``rho`` of ``K`` uniformly random unit rows (:func:`random_rho`), or for large ``K`` a
  certified bracket on it (:func:`random_rho_bracket`);
- a numerical softmax code's ``rho`` (a lower bound on ``rho*``; :func:`gnc.codes.softmax_code`),
  sensible only for small ``K``, hence also at a reduced ``(K', d')`` with about the same ratio
  ``K / d`` (:func:`reduced_shape`).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import torch

from gnc._checks import check_int
from gnc._runtime import make_generator, resolve_budget, resolve_device
from gnc.codes import softmax_code
from gnc.geometry import min_one_vs_rest_distance, one_vs_rest_distances
from gnc.geometry._row_maxima import row_bar, row_maxima
from gnc.geometry.bounds import rho_star_upper

__all__ = [
    "ReferenceValues",
    "random_rho",
    "random_rho_bracket",
    "reduced_shape",
    "reference_values",
]


@dataclass(frozen=True)
class ReferenceValues:
    """Reference values of ``rho`` for a shape ``(K, d)``.

    Attributes:
        num_classes: ``K``.
        feature_dim: ``d``.
        rho_star_upper: Upper bound on the best possible ``rho*(K, d)``.
        random_rho: ``rho`` of ``K`` uniformly random unit rows (``None`` if skipped): exact,
            or the certified upper end of a bracket (then ``random_lower`` is its lower end).
        random_lower: Certified lower bound on the random rows' ``rho`` (``None`` if skipped).
        random_certified: Whether ``random_rho`` is certified exact (gap <= tol; ``None`` if
            skipped).
        code_rho: ``rho`` of a numerical softmax code (a lower bound on ``rho*``), or ``None``.
        seconds: Wall time.
        notes: What was skipped, and why.
    """

    num_classes: int
    feature_dim: int
    rho_star_upper: float
    random_rho: float | None
    random_lower: float | None
    random_certified: bool | None
    code_rho: float | None
    seconds: float
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        """The fields as JSON-ready values (``notes`` as a list)."""
        out = asdict(self)
        out["notes"] = list(self.notes)
        return out


def reduced_shape(num_classes: int, feature_dim: int, max_classes: int) -> tuple[int, int]:
    """A smaller ``(K', d')`` with about the same ratio ``K / d`` and ``K' <= max_classes``.

    ``(K, d)`` itself when ``K <= max_classes``; otherwise ``d' = max(2, floor(max_classes d / K))``
    and ``K' = min(max_classes, max(d' + 1, round(d' K / d)))`` (the ratio is only approximate
    when ``K / d > max_classes / 2``).

    Example:
        >>> reduced_shape(49152, 576, 512), reduced_shape(100, 10, 512)
        ((512, 6), (100, 10))
    """
    K = check_int("num_classes", num_classes, minimum=2)
    d = check_int("feature_dim", feature_dim, minimum=1)
    cap = check_int("max_classes", max_classes, minimum=3)
    if cap >= K:
        return K, d
    ratio = K / d
    d_red = max(2, min(d, math.floor(cap / ratio)))
    K_red = min(cap, max(d_red + 1, round(d_red * ratio)))
    return int(K_red), int(d_red)


def _random_rows(K: int, d: int, seed: int, device: torch.device | str | None) -> torch.Tensor:
    """``K`` Gaussian rows drawn on the CPU from ``seed`` (the same on every device), then moved."""
    W = torch.randn(K, d, generator=make_generator(int(seed)), dtype=torch.float64)
    return W.to(resolve_device(device)) if device is not None else W


def random_rho(
    num_classes: int,
    feature_dim: int,
    *,
    seed: int = 0,
    max_memory_mib: float | None = None,
    tol: float = 1e-9,
    progress: bool = False,
    device: torch.device | str | None = None,
) -> tuple[float, bool, float]:
    """Exact ``rho`` of ``K`` uniformly random unit rows in ``R^d`` (normalized Gaussians).

    The rows are drawn on the CPU from ``seed`` and solved on ``device`` (default: the CPU), so
    every device measures the same rows.

    Returns:
        ``(rho, certified, seconds)``.

    Example:
        >>> rho, certified, _ = random_rho(6, 2, seed=0)
        >>> 0.0 < rho <= 1.0 - math.cos(2 * math.pi / 6) + 1e-12, certified
        (True, True)
    """
    K = check_int("num_classes", num_classes, minimum=2)
    d = check_int("feature_dim", feature_dim, minimum=1)
    W = _random_rows(K, d, seed, device)
    budget = resolve_budget(max_memory_mib)
    res = min_one_vs_rest_distance(W, max_memory_mib=budget, tol=tol, progress=progress)
    return float(res.rho), bool(res.certified), float(res.seconds)


def random_rho_bracket(
    num_classes: int,
    feature_dim: int,
    *,
    num_solved: int = 256,
    seed: int = 0,
    max_memory_mib: float | None = None,
    tol: float = 1e-9,
    progress: bool = False,
    device: torch.device | str | None = None,
) -> tuple[float, float, float]:
    """Certified bracket ``[lower, upper]`` on ``rho`` of ``K`` random unit rows, for large ``K``.

    Solves exactly only the ``num_solved`` classes with the smallest lower bounds
    ``1 - s_k``: ``upper`` is the least ``D_k`` among them, ``lower`` the least of their dual
    bounds and the next unsolved ``1 - s_k`` (the rows are the same as :func:`random_rho`'s,
    solved on ``device``).

    Returns:
        ``(lower, upper, seconds)``.

    Example:
        >>> lower, upper, _ = random_rho_bracket(50, 3, num_solved=50)
        >>> exact, _, _ = random_rho(50, 3)
        >>> abs(upper - exact) < 1e-9, upper - lower < 1e-9
        (True, True)
    """
    start = time.perf_counter()
    K = check_int("num_classes", num_classes, minimum=3)
    d = check_int("feature_dim", feature_dim, minimum=1)
    m = min(K, check_int("num_solved", num_solved, minimum=1))
    W = _random_rows(K, d, seed, device)
    W = W / W.norm(dim=1, keepdim=True)
    budget = resolve_budget(max_memory_mib)
    with row_bar(K, f"random rows K={K}", progress) as bar:
        s = row_maxima(W, max_memory_mib=budget, bar=bar).max_cosine
    # s_k is exact up to the float64 rounding of a d-term dot product.
    lb = 1.0 - s - 2 * d * torch.finfo(torch.float64).eps
    order = torch.argsort(lb)
    res = one_vs_rest_distances(
        W, classes=order[:m], max_memory_mib=budget, tol=tol, progress=progress
    )
    upper = float(res.rho)
    lower = float(res.lower_bounds.min())
    if m < K:
        lower = min(lower, max(0.0, float(lb[order[m]])))
    return min(lower, upper), upper, time.perf_counter() - start


def reference_values(
    num_classes: int,
    feature_dim: int,
    *,
    random_baseline: bool = True,
    code_baseline: bool = False,
    seed: int = 0,
    max_memory_mib: float | None = None,
    tol: float = 1e-9,
    code_time_limit: float = 60.0,
    random_exact_max_classes: int = 4096,
    random_solved_classes: int = 256,
    progress: bool = False,
    device: torch.device | str | None = None,
) -> ReferenceValues:
    """Upper bound, random value and (optionally) a softmax code's value for ``(K, d)``.

    Args:
        num_classes: ``K``.
        feature_dim: ``d``.
        random_baseline: Compute the exact ``rho`` of random unit rows.
        code_baseline: Run the softmax-code solver (only sensible for small ``K``).
        seed: Seed of the random rows.
        max_memory_mib: Memory budget of the exact solver (``None``: the working-memory
            setting).
        tol: Certificate tolerance of the exact solver.
        code_time_limit: Seconds given to the code solver.
        random_exact_max_classes: Above this ``K`` the random value is a certified bracket.
        random_solved_classes: Classes solved exactly for the bracket.
        progress: Show tqdm bars of the exact solves on stderr.
        device: Where the random rows and the code are solved (default: the CPU); the rows
            themselves are drawn on the CPU, the same on every device.

    Returns:
        A :class:`ReferenceValues`.
    """
    start = time.perf_counter()
    notes: list[str] = []
    rnd: float | None = None
    rnd_cert: bool | None = None
    rnd_lower: float | None = None
    if random_baseline and num_classes > random_exact_max_classes:
        rnd_lower, rnd, _ = random_rho_bracket(
            num_classes,
            feature_dim,
            num_solved=random_solved_classes,
            seed=seed,
            max_memory_mib=max_memory_mib,
            tol=tol,
            progress=progress,
            device=device,
        )
        rnd_cert = rnd - rnd_lower <= tol
        notes.append(
            f"random rows: certified bracket [{rnd_lower:.6f}, {rnd:.6f}] from the "
            f"{random_solved_classes} classes with the smallest 1 - max cosine"
        )
    elif random_baseline:
        rnd, rnd_cert, _ = random_rho(
            num_classes,
            feature_dim,
            seed=seed,
            max_memory_mib=max_memory_mib,
            tol=tol,
            progress=progress,
            device=device,
        )
        rnd_lower = rnd
    else:
        notes.append("random baseline skipped")
    code: float | None = None
    if code_baseline:
        result = softmax_code(
            num_classes, feature_dim, time_limit=code_time_limit, progress=progress, device=device
        )
        code = float(result.rho)
    return ReferenceValues(
        num_classes=num_classes,
        feature_dim=feature_dim,
        rho_star_upper=float(rho_star_upper(num_classes, feature_dim)),
        random_rho=rnd,
        random_lower=rnd_lower,
        random_certified=rnd_cert,
        code_rho=code,
        seconds=time.perf_counter() - start,
        notes=tuple(notes),
    )
