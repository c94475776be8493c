"""Exact ``rho`` of a head's unit rows from their exact max cosines (the pass ``gnc head`` shares).

:func:`rho_search` takes the exact ``s_k = max_{j != k} cos(w_k, w_j)`` that one float32 pass
(:func:`gnc.geometry._row_maxima.row_maxima`) leaves behind, so that ``gnc head`` does not pass
over ``W W^T`` again for ``rho``; :class:`RhoSummary` is its record, with the argmin decoded.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import torch

from gnc._runtime import rows_per_budget
from gnc.geometry._dual_bounds import search_rho
from gnc.geometry._solve import _default_working_set
from gnc.geometry.pairwise import iter_blocks
from gnc.pretrained import Head

__all__ = ["RhoSummary", "rho_search"]

_EPS = torch.finfo(torch.float64).eps


@dataclass(frozen=True)
class RhoSummary:
    """``rho`` of a set of unit rows with its argmin and certificate.

    Attributes:
        rho: The value reported (the solver's primal value, an upper bound within ``gap``).
        lower: Certified lower bound on ``rho``.
        upper: Certified upper bound on ``rho``.
        gap: ``upper - lower``.
        certified: Whether ``gap <= tol``.
        argmin: The class attaining ``rho`` (index into the head's rows).
        label: Its decoded token or character.
        classes_solved: Classes solved exactly (the rest excluded by their lower bound).
        num_classes: Number of rows considered.
        seconds: Wall time.
        method: How it was obtained.
    """

    rho: float
    lower: float
    upper: float
    gap: float
    certified: bool
    argmin: int
    label: str
    classes_solved: int
    num_classes: int
    seconds: float
    method: str

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return asdict(self)


def rho_search(
    head: Head,
    W: torch.Tensor,
    rows: torch.Tensor | None,
    s: torch.Tensor,
    nearest: torch.Tensor,
    *,
    tol: float,
    max_memory_mib: float,
    progress: bool = False,
    bar: Any = None,
) -> RhoSummary:
    """Exact ``rho`` of the unit rows ``W`` from their exact max cosines ``s`` (one shared pass).

    ``D_k >= 1 - s_k`` (the margin of ``h = w_k``, less the float64 rounding of ``s_k``) and
    ``D_k <= |w_k - w_nearest(k)|``; classes are taken in increasing order of that lower bound,
    one first and then in growing chunks, until the next bound is at least the best distance
    found less ``tol``. Each chunk after the first class gets certified dual lower bounds (the
    margins of approximate min-norm points of small working sets, one float32 GEMM per block of
    classes); only the classes whose bound is still below the best are solved exactly (as
    :func:`gnc.geometry.one_vs_rest_distances` does).

    Args:
        head: The head (for the argmin's label).
        W: ``(K, d)`` float64 unit rows, pairwise distinct directions.
        rows: ``(K,)`` the head's row of each row of ``W`` (``None``: the same rows).
        s: ``(K,)`` exact float64 max cosines ``s_k`` among the rows of ``W``.
        nearest: ``(K,)`` a row of ``W`` attaining each ``s_k``.
        tol: Certificate tolerance (gap).
        max_memory_mib: Memory budget (MiB) of every tile.
        progress: Bars of the exact solves on stderr.
        bar: A tqdm bar advanced by the classes settled (or ``None``).

    Returns:
        A :class:`RhoSummary` (certified when its gap is at most ``tol``).

    Example:
        >>> import math
        >>> from gnc.pretrained import Head
        >>> a = torch.arange(8, dtype=torch.float64) * 2 * math.pi / 8
        >>> W = torch.stack([a.cos(), a.sin()], dim=1)
        >>> s = (W @ W.T).fill_diagonal_(-2).max(dim=1)
        >>> res = rho_search(Head(W, None, None, "octagon"), W, None, s.values, s.indices,
        ...                  tol=1e-9, max_memory_mib=64)
        >>> round(res.rho, 9), res.certified  # 1 - cos(2 pi / 8)
        (0.292893219, True)
    """
    t0 = time.perf_counter()
    K, d = W.shape
    lb = (1.0 - s - 2 * d * _EPS).clamp_min(0.0)
    ub = torch.empty(K, dtype=W.dtype, device=W.device)
    for a, b in iter_blocks(K, rows_per_budget(3 * d * 8, max_memory_mib, num_rows=K)):
        ub[a:b] = (W[a:b] - W[nearest[a:b]]).norm(dim=1)
    found = search_rho(
        W,
        W.to(torch.float32),
        lb,
        ub,
        neighbours=None,
        working_set_size=_default_working_set(K, d),
        unit_rows=True,
        tol=tol,
        max_memory_mib=max_memory_mib,
        progress=progress,
        bar=bar,
    )
    best, best_i, lower = found.rho, found.argmin, found.lower
    arg = best_i if rows is None else int(rows[best_i])
    return RhoSummary(
        rho=best,
        lower=lower,
        upper=best,
        gap=best - lower,
        certified=best - lower <= tol,
        argmin=arg,
        label=head.decode(arg),
        classes_solved=found.classes_solved,
        num_classes=K,
        seconds=time.perf_counter() - t0,
        method="exact (lower bounds 1 - s_k of the shared pass, dual bounds, exact solves)",
    )
