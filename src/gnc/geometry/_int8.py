"""Int8 screening GEMMs with rigorous error bounds (internal).

On a CPU with int8 dot-product instructions (AVX-512 VNNI, AMX) an int8 GEMM with int32
accumulation runs several times faster than the float32 one (measured on this project's 2-core
machines, ``(T, 640) x (640, 65,536)`` tiles, one thread: 4.8x), and its integer sum is exact. Each
row ``w_j`` is stored as ``s_j q_j + e_j`` (``q_j`` int8, ``s_j`` a float64 scale, ``e_j`` the exact
remainder, of which only a rigorous bound on ``|e_j|`` is kept); a query ``x`` likewise as
``s_x q_x + e_x``. Then

    <w_j, x> = s_j s_x <q_j, q_x> + r,   |r| <= |w_j| |e_x| + |e_j| (|x| + |e_x|),

where ``<q_j, q_x>`` is the exact int32 GEMM entry. The entries this bound does not decide are
recomputed in float64 by the callers, as for the float32 screen of :mod:`gnc.geometry._screening`.
A row's scale is the one of a few clipping levels (``max |w_j| / 127`` times 1, 3/4, 1/2, 3/8)
that leaves the smallest remainder: on the Gemma 3 head's unit rows the remainders are about 1 %
of a row's norm.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gnc._runtime import rows_per_budget
from gnc.geometry.pairwise import iter_blocks

__all__: list[str] = []

#: Use the int8 screen where it is available (tests switch it off to compare the two screens).
ENABLED = True
#: Fewest rows for which the int8 screen is used. Below it the float64 rechecks of the entries
#: the looser bound leaves open (about 150-300 per class on the Gemma 3 head, whatever ``K``)
#: cost as much as the float32 GEMM saves (measured on Gemma slices, one thread: 8,192 rows
#: 21.4 s against 21.7 s, 16,384 rows 60.0 s against 57.7 s).
MIN_ROWS = 32768
#: Whether this CPU has int8 dot-product instructions (``None``: ask PyTorch, see
#: :func:`int8_instructions`; tests set it to force either screen).
INSTRUCTIONS: bool | None = None

_CLIPS = (1.0, 0.75, 0.5, 0.375)
_U32 = 2.0**-24


def int8_instructions() -> bool:
    """Whether this CPU runs int8 GEMMs fast: AVX-512 VNNI or AMX, as PyTorch reports them.

    Without them ``torch._int_mm`` takes a slow fallback: on an AVX2-only CPU (AMD EPYC, torch
    2.13, one thread) a ``(128, 640) x (640, 65,536)`` tile took 28.4 s against 0.27 s in
    float32, 105x slower, where AVX-512 VNNI made it 4.8x faster. Other CPUs (AVX2 only, Arm)
    keep the float32 screen, which is never slow. :data:`INSTRUCTIONS` overrides the answer.
    """
    if INSTRUCTIONS is not None:
        return INSTRUCTIONS
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_vnni_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def int8_screen(device: torch.device, num_rows: int, d: int) -> bool:
    """Whether the int8 screen serves a ``(num_rows, d)`` problem on ``device``.

    CPU only (``torch._int_mm``; on CUDA the float32 GEMM is fast and ``_int_mm`` has shape
    constraints) with int8 dot-product instructions (:func:`int8_instructions`), at least
    :data:`MIN_ROWS` rows, and ``d * 127^2`` must fit an int32 accumulator.
    """
    return (
        ENABLED
        and device.type == "cpu"
        and num_rows >= MIN_ROWS
        and hasattr(torch, "_int_mm")
        and d * 127**2 < 2**31
        and int8_instructions()
    )


@dataclass
class Int8Rows:
    """Rows ``w_j = scale_j q_j + e_j`` with ``|e_j| <= err_j``.

    Attributes:
        qt: ``(d, K)`` int8, the ``q_j`` as columns (the layout ``torch._int_mm`` reads fastest).
        scale: ``(K,)`` float64 ``s_j``.
        scale32: ``(K,)`` float32 ``s_j`` (rounded; the bounds allow for it).
        err: ``(K,)`` float64 rigorous bounds on ``|e_j|``.
        max_norm: ``max_j |w_j|``.
        max_err: ``max_j err_j``.
    """

    qt: torch.Tensor
    scale: torch.Tensor
    scale32: torch.Tensor
    err: torch.Tensor
    max_norm: float
    max_err: float


def quantize(X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``X = s q + e`` row by row: ``(q int8, s float64, bound on |e| float64)``.

    Each row takes the clipping level with the smallest remainder; zero rows get ``s = 1``,
    ``q = 0``, ``e = 0``. The bound covers the float64 rounding of ``|X - s q|`` generously.
    """
    X = X.to(torch.float64)
    amax = X.abs().amax(dim=1)
    norm = X.norm(dim=1)
    best_q = torch.zeros(X.shape, dtype=torch.int8, device=X.device)
    best_s = torch.ones_like(amax)
    best_e = torch.full_like(amax, torch.inf)
    for c in _CLIPS:
        s = torch.where(amax > 0, c * amax / 127.0, 1.0)
        q = torch.round(X / s[:, None]).clamp_(-127, 127)
        e = (X - s[:, None] * q).norm(dim=1)
        better = e < best_e
        best_e = torch.where(better, e, best_e)
        best_s = torch.where(better, s, best_s)
        best_q[better] = q[better].to(torch.int8)
    return best_q, best_s, best_e * (1.0 + 1e-10) + 1e-14 * norm


def quantize_rows(W: torch.Tensor, max_memory_mib: float) -> Int8Rows:
    """:class:`Int8Rows` of the float64 rows ``W``, quantized in blocks within the budget."""
    K, d = W.shape
    qt = torch.empty(d, K, dtype=torch.int8, device=W.device)
    scale = torch.empty(K, dtype=torch.float64, device=W.device)
    err = torch.empty(K, dtype=torch.float64, device=W.device)
    for a, b in iter_blocks(K, rows_per_budget(40 * d, max_memory_mib, num_rows=K)):
        q, scale[a:b], err[a:b] = quantize(W[a:b])
        qt[:, a:b] = q.T
    return Int8Rows(
        qt,
        scale,
        scale.to(torch.float32),
        err,
        float(W.norm(dim=1).max()),
        float(err.max()),
    )


def scores(q8: Int8Rows, qx: torch.Tensor) -> torch.Tensor:
    """``(T, K)`` float32 ``<q_x, q_j> s_j`` (the exact int32 GEMM, scaled by the rows' scales).

    ``s_x`` times an entry is within ``3 u32 (|x| + |e_x|)(max |w_j| + max err_j)`` of
    ``s_x s_j <q_x, q_j>`` (the int32 to float32 conversion, the rounding of ``s_j`` and of the
    product).
    """
    G = torch._int_mm(_row_major(qx), q8.qt)
    return torch.mul(G, q8.scale32[None, :])


def _row_major(q: torch.Tensor) -> torch.Tensor:
    """``q`` with strides ``(columns, 1)`` (copied if need be).

    ``torch._int_mm`` reads a single row's transposed view (strides ``(1, 1)``, which PyTorch
    calls contiguous) as garbage (measured with torch 2.13 on a CPU).
    """
    if q.stride() == (q.shape[1], 1):
        return q
    return torch.empty(q.shape, dtype=q.dtype, device=q.device).copy_(q)


def rounding_slack(q8: Int8Rows, xnorm: torch.Tensor, xerr: torch.Tensor) -> torch.Tensor:
    """The float32 part of the error of ``s_x * scores`` (see :func:`scores`), per query."""
    return 4 * _U32 * (xnorm + xerr) * (q8.max_norm + q8.max_err)
