"""Independent dense NumPy reference for the GNC / NC metrics, straight from the formulas.

Deliberately naive: explicit loops over classes, full K x K matrices, ``np.linalg.pinv``. Only for
small test sizes. Shares no code with ``gnc.metrics``.
"""

from __future__ import annotations

import itertools

import numpy as np


def normalize(H: np.ndarray) -> np.ndarray:
    return H / np.linalg.norm(H, axis=1, keepdims=True)


def class_means(H: np.ndarray, y: np.ndarray, K: int) -> np.ndarray:
    return np.stack([H[y == k].mean(axis=0) for k in range(K)])


def reference_metrics(
    features: np.ndarray,
    labels: np.ndarray,
    K: int,
    weights: np.ndarray | None = None,
    *,
    normalize_features: bool = True,
) -> dict[str, float]:
    H = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels)
    if normalize_features:
        H = normalize(H)
    N, d = H.shape
    mu = class_means(H, y, K)
    hG = H.mean(axis=0)

    # GNC1 (paper's code): Sigma_W over all samples, Sigma_B over class means, pinv.
    Sw = np.zeros((d, d))
    for i in range(N):
        z = H[i] - mu[y[i]]
        Sw += np.outer(z, z)
    Sw /= N
    Sb = np.zeros((d, d))
    for k in range(K):
        z = mu[k] - hG
        Sb += np.outer(z, z)
    Sb /= K
    rcond = max(d, K) * np.finfo(np.float64).eps
    gnc1 = float(np.trace(Sw @ np.linalg.pinv(Sb, rcond=rcond, hermitian=True)) / K)

    M = mu - hG
    out: dict[str, float] = {"gnc1": gnc1}

    # CDNV over ordered pairs.
    var = np.array([np.mean(np.sum((H[y == k] - mu[k]) ** 2, axis=1)) for k in range(K)])
    cdnv = [
        (var[k] + var[l]) / (2 * np.sum((mu[k] - mu[l]) ** 2))
        for k, l in itertools.permutations(range(K), 2)
    ]
    out["nc1_cdnv"] = float(np.mean(cdnv))

    # NC2 (Papyan et al.): full K x K Gram against the simplex-ETF Gram.
    def etf_error(V: np.ndarray) -> float:
        G = V @ V.T
        target = (np.eye(K) - np.ones((K, K)) / K) / np.sqrt(K - 1)
        return float(np.linalg.norm(G / np.linalg.norm(G) - target))

    def equinorm(V: np.ndarray) -> float:
        n = np.linalg.norm(V, axis=1)
        return float(np.std(n, ddof=1) / np.mean(n))

    out["nc2_etf_error"] = etf_error(M)
    out["nc2_equinorm"] = equinorm(M)

    U = normalize(M)
    energies = [
        np.log(1.0 / np.linalg.norm(U[k] - U[l])) for k, l in itertools.permutations(range(K), 2)
    ]
    out["hyperspherical_uniformity"] = float(np.mean(energies))

    if weights is not None:
        W = np.asarray(weights, dtype=np.float64)
        cos = [W[k] @ M[k] / (np.linalg.norm(W[k]) * np.linalg.norm(M[k])) for k in range(K)]
        out["gnc3"] = float(np.mean(1.0 - np.array(cos)))
        out["nc3_self_duality"] = float(
            np.linalg.norm(W / np.linalg.norm(W) - M / np.linalg.norm(M)) ** 2
        )
        out["nc2_etf_error_weights"] = etf_error(W)
        out["nc2_equinorm_weights"] = equinorm(W)
    return out


def reference_within_scatter(features: np.ndarray, labels: np.ndarray, K: int) -> np.ndarray:
    H = normalize(np.asarray(features, dtype=np.float64))
    mu = class_means(H, labels, K)
    Z = H - mu[labels]
    return Z.T @ Z


def reference_ncc_predictions(features: np.ndarray, means: np.ndarray) -> np.ndarray:
    H = normalize(np.asarray(features, dtype=np.float64))
    dists = np.linalg.norm(H[:, None, :] - means[None, :, :], axis=2)
    return np.argmin(dists, axis=1)


def simplex_etf(K: int) -> np.ndarray:
    """K unit vectors in R^K with pairwise inner products -1/(K-1) (rows of centred identity)."""
    E = np.eye(K) - np.ones((K, K)) / K
    return normalize(E)
