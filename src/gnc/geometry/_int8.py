"""Int8 screening GEMMs with rigorous error bounds (internal).

On a CPU with int8 dot-product instructions (AVX-512 VNNI, AMX) an int8 GEMM with int32
accumulation runs several times faster than the float32 one (measured on this project's 2-core
machines, ``(T, 640) x (640, 65,536)`` tiles, one thread: 4.8x), and its integer sum is exact.
Without them (AVX2 only) ``torch._int_mm`` crawls, but PyTorch's quantized dynamic linear layer
(FBGEMM / oneDNN kernels, weights packed once) multiplies 7-bit queries by int8 rows exactly and
2-2.6x faster than float32 (the *packed* backend, :func:`packed_available`). The all-classes
solver uses it to rank its seeds only: its coarser queries leave ~1,800 entries per class open in
a certification (Gemma 3 head, 65,536 rows), which made that screen slower than float32. Each
row ``w_j`` is stored as ``s_j q_j + e_j`` (``q_j`` int8, ``s_j`` a float64 scale, ``e_j`` the exact
remainder, of which only a rigorous bound on ``|e_j|`` is kept); a query ``x`` likewise as
``s_x q_x + e_x``. Then

    <w_j, x> = s_j s_x <q_j, q_x> + r,   |r| <= |w_j| |e_x| + |e_j| (|x| + |e_x|),

where ``<q_j, q_x>`` is the exact int32 GEMM entry. The entries this bound does not decide are
recomputed in float64 by the callers, as for the float32 screen of :mod:`gnc.geometry._screening`.
A row's scale is the one of a few clipping levels (``max |w_j| / 127`` times 1, 3/4, 1/2, 3/8)
that leaves the smallest remainder: on the Gemma 3 head's unit rows the remainders are about 1 %
of a row's norm; queries of the packed backend use 63 levels instead of 127 (their remainders are
twice as large).

The packed backend is exact by construction: the layer quantizes its input per tensor over
``[min, max]`` to ``0..127``; every query batch is sent with one extra row holding ``-63`` and
``64``, so that range is exactly 127 wide, its scale exactly 1 and its zero point 63, and integer
queries in ``[-63, 63]`` pass through unchanged. The rows are packed with unit scales, so the
layer returns the int32 sums themselves, exactly representable in float32 while
``d * 63 * 127 < 2^24``. :func:`packed_available` checks this against an integer GEMM once per
process and keeps the float32 screen if a PyTorch build ever disagrees.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from gnc._runtime import rows_per_budget
from gnc.geometry import _compiled, _compiled_int8
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
#: Query levels of the packed backend (its input range is 0..127 with zero point 63).
PACKED_LEVELS = 63
#: Quantize CPU rows with the compiled kernel where numba is installed.
COMPILED = True
#: Engines tried for the packed backend, fastest first (measured on an AVX2-only AMD EPYC,
#: ``(128, 640) x (640, 65,536)``, one thread: oneDNN 0.113 s, FBGEMM 0.136 s, x86 0.139 s,
#: float32 0.29 s).
_ENGINES = ("onednn", "fbgemm", "x86")


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


def int8_backend(device: torch.device, num_rows: int, d: int) -> str | None:
    """The int8 screen's backend for a ``(num_rows, d)`` problem: ``"int_mm"``, ``"packed"``, None.

    CPU only (on CUDA the float32 GEMM is fast and ``_int_mm`` has shape constraints), at least
    :data:`MIN_ROWS` rows, and a fast exact backend: ``torch._int_mm`` with int8 dot-product
    instructions (:func:`int8_instructions`; ``d * 127^2`` must fit an int32 accumulator), else
    the packed backend (:func:`packed_available`).
    """
    if not (ENABLED and device.type == "cpu" and num_rows >= MIN_ROWS):
        return None
    if int8_instructions() and hasattr(torch, "_int_mm") and d * 127**2 < 2**31:
        return "int_mm"
    if packed_available(d):
        return "packed"
    return None


def packed_available(d: int) -> bool:
    """Whether PyTorch's quantized dynamic linear layer gives exact int8 sums at width ``d``.

    Needs the quantized ops, ``d * 63 * 127 < 2^24`` (sums exact in float32) and an engine that
    passes :func:`packed_engine`'s check.
    """
    return d * PACKED_LEVELS * 127 < 2**24 and packed_engine() is not None


@contextlib.contextmanager
def _engine(name: str) -> Iterator[None]:
    """PyTorch's quantized engine set to ``name`` for the duration (packing reads it)."""
    old = torch.backends.quantized.engine
    torch.backends.quantized.engine = name
    try:
        yield
    finally:
        torch.backends.quantized.engine = old


@functools.cache
def packed_engine() -> str | None:
    """The first engine of :data:`_ENGINES` whose packed GEMM is exact on a probe, or None.

    The probe holds every extreme (queries at +-63, rows at +-127) at width 640: the layer's
    output must equal the float64 product of the integers exactly.
    """
    ops = getattr(torch.ops, "quantized", None)
    if ops is None:
        return None
    g = torch.Generator().manual_seed(0)
    d, K = 640, 96
    q = torch.randint(-127, 128, (K, d), generator=g, dtype=torch.int8)
    q[0], q[1] = 127, -127
    x = torch.randint(-PACKED_LEVELS, PACKED_LEVELS + 1, (5, d), generator=g, dtype=torch.int8)
    x[0], x[1] = PACKED_LEVELS, -PACKED_LEVELS
    want = x.double() @ q.double().T
    for name in _ENGINES:
        if name not in torch.backends.quantized.supported_engines:
            continue
        try:
            got = _packed_scores(_pack(q, name), x).double()
        except (RuntimeError, AttributeError, NotImplementedError):
            continue
        if torch.equal(got, want):
            return name
    return None


def _pack(q: torch.Tensor, engine: str) -> Any:
    """``q`` ``(K, d)`` int8, packed with unit scales for ``engine``'s quantized linear layer."""
    K = q.shape[0]
    with warnings.catch_warnings(), _engine(engine):
        warnings.simplefilter("ignore")  # quantized tensors are deprecated in newer PyTorch
        qw = torch._make_per_channel_quantized_tensor(
            q.contiguous(), torch.ones(K, dtype=torch.float64), torch.zeros(K, dtype=torch.long), 0
        )
        return torch.ops.quantized.linear_prepack(qw, None)


def _packed_scores(packed: Any, qx: torch.Tensor) -> torch.Tensor:
    """``(T, K)`` float32 ``<q_x, q_j>`` (exact) for integer queries in ``[-63, 63]``."""
    T, d = qx.shape
    X = torch.zeros(T + 1, d, dtype=torch.float32, device=qx.device)
    X[:T] = qx
    X[T, 0], X[T, 1 % d] = -PACKED_LEVELS, PACKED_LEVELS + 1  # the range: scale 1, zero point 63
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out: torch.Tensor = torch.ops.quantized.linear_dynamic(X, packed, True)
    return out[:T]


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
        packed: The rows packed for the packed backend (None: ``torch._int_mm``).
        query_levels: Largest ``|q_x|`` a query may have (127, or 63 for the packed backend).
    """

    qt: torch.Tensor
    scale: torch.Tensor
    scale32: torch.Tensor
    err: torch.Tensor
    max_norm: float
    max_err: float
    packed: Any = None
    query_levels: int = 127


def quantize(X: torch.Tensor, levels: int = 127) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``X = s q + e`` row by row: ``(q int8, s float64, bound on |e| float64)``, ``|q| <= levels``.

    Each row takes the clipping level with the smallest remainder; zero rows get ``s = 1``,
    ``q = 0``, ``e = 0``. The bound covers the float64 rounding of ``|X - s q|`` generously.
    On a CPU with numba, one compiled sweep per row (:func:`gnc.geometry._compiled_int8.quantize`;
    the same arithmetic, up to the order of the remainders' sums).
    """
    X = X.to(torch.float64)
    if COMPILED and _compiled.AVAILABLE and X.device.type == "cpu":
        q, best_s, best_e, norm = _compiled_int8.quantize(X, levels, _CLIPS)
    else:
        q, best_s, best_e, norm = _quantize_tensors(X, levels)
    return q, best_s, best_e * (1.0 + 1e-10) + 1e-14 * norm


def _quantize_tensors(
    X: torch.Tensor, levels: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`quantize`'s tensor path: ``(q, s, |X - s q|, |X|)`` of float64 rows ``X``."""
    amax = X.abs().amax(dim=1)
    norm = X.norm(dim=1)
    best_s = torch.ones_like(amax)
    best_e = torch.full_like(amax, torch.inf)
    for c in _CLIPS:
        s = torch.where(amax > 0, c * amax / levels, 1.0)
        e = (X - s[:, None] * torch.round(X / s[:, None]).clamp_(-levels, levels)).norm(dim=1)
        better = e < best_e
        best_e = torch.where(better, e, best_e)
        best_s = torch.where(better, s, best_s)
    # The best clip's q again (the same operations give the same q): no masked copies.
    q = torch.round(X / best_s[:, None]).clamp_(-levels, levels).to(torch.int8)
    return q, best_s, best_e, norm


def quantize_rows(W: torch.Tensor, max_memory_mib: float, packed: bool = False) -> Int8Rows:
    """:class:`Int8Rows` of the float64 rows ``W``, quantized in blocks within the budget.

    ``packed``: also pack them for the packed backend (queries then have 63 levels).
    """
    K, d = W.shape
    qt = torch.empty(d, K, dtype=torch.int8, device=W.device)
    scale = torch.empty(K, dtype=torch.float64, device=W.device)
    err = torch.empty(K, dtype=torch.float64, device=W.device)
    for a, b in iter_blocks(K, rows_per_budget(40 * d, max_memory_mib, num_rows=K)):
        q, scale[a:b], err[a:b] = quantize(W[a:b])
        qt[:, a:b] = q.T
    engine = packed_engine() if packed else None
    if packed and engine is None:
        raise RuntimeError("The packed int8 backend is not available in this PyTorch build.")
    return Int8Rows(
        qt,
        scale,
        scale.to(torch.float32),
        err,
        float(W.norm(dim=1).max()),
        float(err.max()),
        packed=None if engine is None else _pack(qt.T, engine),
        query_levels=PACKED_LEVELS if engine is not None else 127,
    )


def scores(q8: Int8Rows, qx: torch.Tensor, scaled: bool = True) -> torch.Tensor:
    """``(T, K)`` float32 ``<q_x, q_j> s_j`` (the exact int32 GEMM, scaled by the rows' scales).

    ``s_x`` times an entry is within ``3 u32 (|x| + |e_x|)(max |w_j| + max err_j)`` of
    ``s_x s_j <q_x, q_j>`` (the int32 to float32 conversion, the rounding of ``s_j`` and of the
    product). Without ``scaled``, the exact ``<q_x, q_j>`` (float32 holds them exactly), for a
    caller that multiplies by ``q8.scale32`` itself.
    """
    if q8.packed is not None:
        top = int(qx.abs().amax())
        if top > PACKED_LEVELS:
            raise ValueError(
                f"Expected packed-backend queries `qx` within +-{PACKED_LEVELS}, but got {top}."
            )
        raw = _packed_scores(q8.packed, qx)
        return raw.mul_(q8.scale32[None, :]) if scaled else raw
    G = torch._int_mm(_row_major(qx), q8.qt)
    return torch.mul(G, q8.scale32[None, :]) if scaled else G.to(torch.float32)


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
