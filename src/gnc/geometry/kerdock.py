"""Kerdock codes as spherical codes: ``2^{2m}`` points of ``R^{2^m}`` with max cosine ``2^{-m/2}``.

The binary Kerdock code of length ``n = 2^m`` (``m >= 4`` even) has ``n^2`` codewords and the
distances ``n/2 +- sqrt(n)/2``, ``n/2`` and ``n`` between distinct words; as ``+-1/sqrt(n)``
vectors its inner products are ``+-1/sqrt(n)``, ``0`` and ``-1``. For ``m = 8``: 65,536 unit
vectors of ``R^256`` with max cosine ``1/16``, far better than a numerical search reaches for
``K = 10,000`` points in ``R^512`` (Jiang et al., "Generalized Neural Collapse for a Large Number
of Classes", ICML 2024, report ``rho = 0.797`` there; this code's certified ``rho`` is in the
catalogue, :func:`gnc.codes.best_known`).

Built as the Gray image of the ``Z4``-linear Kerdock code (Hammons, Kumar, Calderbank, Sloane
and Sole, "The Z4-linearity of Kerdock, Preparata, Goethals and related codes", IEEE Trans.
Inf. Theory 40 (1994)), in integer arithmetic only, so the rows are bit-identical everywhere:

1. ``f``: the first primitive binary polynomial of degree ``r = m - 1`` (odd), in the order of
   its coefficient bits; ``h``: its Hensel lift to ``Z4`` by Graeffe's method,
   ``h(x^2) = +-(e(x)^2 - o(x)^2) mod 4`` with ``f = e + o`` split into even and odd terms.
2. ``t_k = T(beta^k)``, the Galois-ring trace of ``beta = x`` in ``Z4[x]/(h)``, is the ``k``-th
   power sum of ``h``'s roots, from Newton's identities mod 4.
3. The codewords over ``Z4`` are ``c = (eps, T(xi) + eps, T(xi beta) + eps, ...,
   T(xi beta^{2^r - 2}) + eps)`` for ``xi = sum_i xi_i x^i`` (``xi_i`` in ``Z4``) and ``eps`` in
   ``Z4``, ``T(xi beta^j) = sum_i xi_i t_{i+j}``; row ``4 * index(xi) + eps`` with ``index(xi) =
   sum_i xi_i 4^i``.
4. The Gray map ``0 -> (1, 1), 1 -> (1, -1), 2 -> (-1, -1), 3 -> (-1, 1)`` (an isometry from
   the Lee metric) gives ``+-1`` vectors of length ``2^m``, divided by ``2^{m/2}``.

The code is ``Z4``-linear and the Gray map turns the Lee distance into the Hamming distance, so
the distances from any codeword are the Lee weights of the code: the tests check the weight
distribution ``1, n(n/2 - 1), 2n - 2, n(n/2 - 1), 1`` at weights ``0, n/2 - sqrt(n)/2, n/2,
n/2 + sqrt(n)/2, n`` on every codeword.
"""

from __future__ import annotations

import numpy as np
import torch

from gnc._checks import check_int
from gnc.geometry.configurations import Device, _finish

__all__ = ["kerdock_code", "kerdock_z4", "primitive_polynomial"]


def _polymod_gf2(a: int, f: int) -> int:
    """``a mod f`` for binary polynomials as bit masks."""
    deg = f.bit_length() - 1
    while a.bit_length() - 1 >= deg:
        a ^= f << (a.bit_length() - 1 - deg)
    return a


def _mulmod_gf2(a: int, b: int, f: int) -> int:
    out = 0
    while b:
        if b & 1:
            out ^= a
        b >>= 1
        a = _polymod_gf2(a << 1, f)
    return _polymod_gf2(out, f)


def _order_divides(f: int, e: int) -> bool:
    """Whether ``x^e = 1`` modulo the binary polynomial ``f``."""
    result, base = 1, 0b10
    while e:
        if e & 1:
            result = _mulmod_gf2(result, base, f)
        base = _mulmod_gf2(base, base, f)
        e >>= 1
    return result == 1


def primitive_polynomial(degree: int) -> int:
    """The first primitive binary polynomial of ``degree`` (bit ``i`` = coefficient of ``x^i``).

    ``x`` has multiplicative order ``2^r - 1`` modulo a degree-``r`` polynomial only when the
    polynomial is primitive (a reducible one gives a smaller order), which is what is checked.

    Example:
        >>> bin(primitive_polynomial(7))  # x^7 + x + 1
        '0b10000011'
    """
    r = check_int("degree", degree, minimum=1)
    order = 2**r - 1
    primes = [p for p in range(2, order + 1) if order % p == 0 and all(p % q for q in range(2, p))]
    for f in range((1 << r) + 1, 1 << (r + 1), 2):  # monic, constant term 1
        if _order_divides(f, order) and not any(_order_divides(f, order // p) for p in primes):
            return f
    raise AssertionError("unreachable: primitive polynomials exist in every degree")


def _hensel_lift(f: int) -> np.ndarray:
    """Coefficients (low to high, mod 4) of the monic ``Z4`` lift ``h`` of the binary ``f``."""
    r = f.bit_length() - 1
    coeffs = np.array([(f >> i) & 1 for i in range(r + 1)], dtype=np.int64)
    even = np.where(np.arange(r + 1) % 2 == 0, coeffs, 0)
    odd = coeffs - even
    square = np.convolve(even, even) - np.convolve(odd, odd)  # only even powers of x remain
    h = square[::2] % 4
    if h[-1] == 3:  # the sign that makes h monic
        h = (-h) % 4
    return h


def _power_sums(h: np.ndarray, count: int) -> np.ndarray:
    """``p_k = sum of k-th powers of the roots of the monic h`` for ``k = 0..count-1``, mod 4."""
    r = len(h) - 1
    a = h  # h = x^r + a_{r-1} x^{r-1} + ... + a_0
    p = np.zeros(count, dtype=np.int64)
    p[0] = r % 4
    for k in range(1, count):
        total = sum(int(a[r - i]) * int(p[k - i]) for i in range(1, min(k - 1, r) + 1))
        if k <= r:
            total += k * int(a[r - k])
        p[k] = (-total) % 4
    return p


def kerdock_z4(m: int) -> np.ndarray:
    """The ``Z4``-linear Kerdock code of length ``2^{m-1}`` (``m`` even), all ``4^m`` words.

    Args:
        m: Even ``m >= 4``; the binary image has length ``2^m``.

    Returns:
        ``(4^m, 2^{m-1})`` array over ``Z4`` (``int8``), rows in the order of the module
        docstring.

    Example:
        >>> kerdock_z4(4).shape
        (256, 8)
    """
    m = check_int("m", m, minimum=4)
    if m % 2:
        raise ValueError(f"Expected an even `m` (binary Kerdock codes of length 2^m), got {m}.")
    r = m - 1
    h = _hensel_lift(primitive_polynomial(r))
    length = 2**r - 1
    t = _power_sums(h, r + length)
    M = np.stack([t[i : i + length] for i in range(r)])  # (r, 2^r - 1): T(x^i beta^j)
    gen = np.concatenate([np.zeros((r, 1), dtype=np.int64), M], axis=1)
    xi = (np.arange(4**r)[:, None] // 4 ** np.arange(r)[None, :]) % 4  # digits, low first
    words = (xi @ gen) % 4  # (4^r, 2^r)
    eps = np.arange(4)
    out: np.ndarray = ((words[:, None, :] + eps[None, :, None]) % 4).reshape(4**m, 2**r)
    return out.astype(np.int8)


_GRAY = np.array([[1, 1], [1, -1], [-1, -1], [-1, 1]], dtype=np.int8)


def kerdock_code(
    m: int = 8,
    num_points: int | None = None,
    dim: int | None = None,
    *,
    dtype: torch.dtype = torch.float64,
    device: Device = None,
) -> torch.Tensor:
    """The binary Kerdock code of length ``2^m`` as unit vectors (first ``num_points`` rows).

    Entries ``+-2^{-m/2}`` (exact in float32 and float64), zero-padded to ``dim`` columns.

    Args:
        m: Even ``m >= 4`` (``m = 4``: the Nordstrom-Robinson code, 256 points of ``R^16``).
        num_points: Rows to return, ``1..4^m`` (default all).
        dim: Ambient dimension ``>= 2^m`` (default ``2^m``).
        dtype: Floating dtype of the result.
        device: Device of the result (CPU by default).

    Returns:
        Tensor of shape ``(num_points, dim)`` with unit rows.

    Raises:
        ValueError: On an odd ``m``, too many points or too small a ``dim``.

    Example:
        >>> W = kerdock_code(4)  # Nordstrom-Robinson
        >>> sorted(set((W @ W.T).flatten().tolist()))
        [-1.0, -0.25, 0.0, 0.25, 1.0]
    """
    words = kerdock_z4(m)
    K = len(words) if num_points is None else check_int("num_points", num_points, minimum=1)
    n = 2**m
    d = n if dim is None else check_int("dim", dim, minimum=1)
    if len(words) < K or d < n:
        raise ValueError(
            f"Expected `num_points` <= {len(words)} and `dim` >= {n} for m = {m}, "
            f"but got num_points={K}, dim={d}."
        )
    signs = _GRAY[words[:K].astype(np.int64)].reshape(K, n)
    out = np.zeros((K, d))
    out[:, :n] = signs
    return _finish(out, dtype, device)
