"""Spectra of (possibly huge) symmetric PSD kernels: dense, top-k Lanczos, SLQ density.

All eigenvalues are returned in float64, descending, in the normalisation of the
operator they were computed from (the callers pass raw traced Θ).
"""

from __future__ import annotations

import enum
from typing import Callable

import numpy as np
import scipy.linalg
import scipy.sparse.linalg as spla
from threadpoolctl import threadpool_limits

# ARPACK's many small BLAS calls wake OpenBLAS worker threads that then spin and fight
# XLA's threads for the 2 cores (measured: 60k top-10 4.1 → 2.8 s, grid spectra 7.2 →
# 4.0 s with one BLAS thread). Large dense LAPACK (eigvalsh) keeps all threads.
_ONE_BLAS_THREAD = dict(limits=1, user_api="blas")


class SpectrumMethod(str, enum.Enum):
    """How top-k eigenvalues are computed."""

    DENSE = "dense"          # eigvalsh of the formed matrix, O(n³)
    LANCZOS = "lanczos"      # ARPACK (scipy eigsh) on the formed matrix or a matrix-free operator


def eigvalsh_desc(matrix) -> np.ndarray:
    """All eigenvalues of a symmetric matrix, float64, descending.

    Returns:
      (n,) float64, same normalisation as ``matrix``.
    """
    a = np.asarray(matrix, dtype=np.float64)
    a = 0.5 * (a + a.T)  # symmetrise float32 round-off so LAPACK sees a symmetric matrix
    return scipy.linalg.eigvalsh(a, check_finite=True)[::-1].copy()


def as_operator(matrix_or_matvec, n: int | None = None,
                matmat: Callable | None = None) -> spla.LinearOperator:
    """Wraps a dense matrix or a float32 matvec into a float64 LinearOperator for ARPACK."""
    if callable(matrix_or_matvec):
        if n is None:
            raise ValueError("n is required with a matvec")
        mv = matrix_or_matvec
        kwargs = {}
        if matmat is not None:
            kwargs["matmat"] = lambda V: np.asarray(matmat(np.ascontiguousarray(V, dtype=np.float32)),
                                                    dtype=np.float64)
        return spla.LinearOperator((n, n), dtype=np.float64,
                                   matvec=lambda v: np.asarray(mv(np.asarray(v, np.float32).ravel()),
                                                               dtype=np.float64),
                                   **kwargs)
    a = np.asarray(matrix_or_matvec, dtype=np.float64)
    a = 0.5 * (a + a.T)
    return spla.aslinearoperator(a)


def top_k_eigs(operator, k: int, *, n: int | None = None, v0: np.ndarray | None = None,
               tol: float | None = None, return_vectors: bool = False,
               dtype=np.float64, maxiter: int | None = None, symmetric: bool = False):
    """Largest-k eigenvalues of a symmetric PSD operator by implicitly restarted Lanczos.

    Args:
      operator: dense (n, n) matrix, a LinearOperator, or a float32 matvec callable (needs ``n``).
      k: how many; when k ≥ n − 1 the dense path is used (ARPACK needs k < n).
      v0: optional start vector (e.g. the previous checkpoint's top eigenvector).
      tol: ARPACK relative residual tolerance; default machine precision of ``dtype`` for
        dense matrices and 1e-6 for callables (their float32 products cannot reach float64
        precision; Ritz values converge quadratically in the residual, so eigenvalues are
        still far more accurate than 1e-6).
      dtype: arithmetic of ARPACK for dense matrices: float64 (default, ≤1e-6 relative on
        λ1 vs eigvalsh, tested) or float32 (≈3× faster, used per checkpoint; ~1e-6 relative).
      symmetric: the dense matrix is exactly symmetric already (skips an n×n copy).

    Returns:
      (k,) float64 descending eigenvalues, and (n, k) eigenvectors if ``return_vectors``.
    """
    if not isinstance(operator, spla.LinearOperator):
        if callable(operator):
            operator = as_operator(operator, n)
            tol = 1e-6 if tol is None else tol
        else:
            dense = np.asarray(operator, dtype=dtype)
            if not symmetric:
                dense = 0.5 * (dense + dense.T)
            if k >= dense.shape[0] - 1:
                w, v = scipy.linalg.eigh(dense.astype(np.float64))
                w, v = w[::-1][:k].copy(), v[:, ::-1][:, :k].copy()
                return (w, v) if return_vectors else w
            operator = spla.aslinearoperator(dense)
    tol = 0.0 if tol is None else tol
    n = operator.shape[0]
    if k >= n - 1:
        dense = operator @ np.eye(n)
        return top_k_eigs(dense, k, return_vectors=return_vectors)
    ncv = min(n, max(2 * k + 1, 20))
    if v0 is None:
        # ARPACK's own random start differs per call; a seeded one makes results reproducible.
        v0 = np.random.default_rng(0).standard_normal(n)
    v0 = np.asarray(v0, dtype=operator.dtype)
    with threadpool_limits(**_ONE_BLAS_THREAD):
        try:
            w, v = spla.eigsh(operator, k=k, which="LA", v0=v0, tol=tol, ncv=ncv, maxiter=maxiter)
        except spla.ArpackNoConvergence:
            # float32 noise can stall a tight tolerance: one retry, looser and with more room.
            w, v = spla.eigsh(operator, k=k, which="LA", v0=v0, tol=max(tol * 100, 1e-4),
                              ncv=min(n, 2 * ncv), maxiter=maxiter)
    order = np.argsort(w)[::-1]
    w, v = np.asarray(w[order], np.float64), np.asarray(v[:, order], np.float64)
    return (w, v) if return_vectors else w


def effective_rank(eigs: np.ndarray) -> float:
    """exp(Shannon entropy) of the normalised positive eigenvalues (Roy & Vetterli 2007).

    Returns 1.0 for a rank-1 spectrum and m for m equal eigenvalues; scale-invariant.
    """
    lam = np.clip(np.asarray(eigs, dtype=np.float64), 0.0, None)
    total = lam.sum()
    if total <= 0:
        return 0.0
    p = lam[lam > 0] / total
    return float(np.exp(-(p * np.log(p)).sum()))


def condition_number(eigs: np.ndarray) -> float:
    """λ_max/λ_min over the given eigenvalues (inf when λ_min ≤ 0)."""
    lam = np.asarray(eigs, dtype=np.float64)
    lo = lam.min()
    return float(lam.max() / lo) if lo > 0 else float("inf")


def cumulative_share(eigs: np.ndarray, total: float | None = None) -> np.ndarray:
    """Cumulative share of the trace explained by the top-j eigenvalues, j = 1..len(eigs).

    Returns:
      (len(eigs),) float64 in [0, 1]; divides by ``total`` (e.g. the exact trace) if given.
    """
    lam = np.sort(np.asarray(eigs, dtype=np.float64))[::-1]
    denom = lam.sum() if total is None else float(total)
    return np.cumsum(lam) / denom


def empirical_cdf(eigs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Empirical CDF of eigenvalue magnitudes: F(t) = #{λ ≤ t}/n.

    Returns:
      (t, F): sorted eigenvalues ascending and F at each, float64.
    """
    lam = np.sort(np.asarray(eigs, dtype=np.float64))
    # side="right" counts ties: equal eigenvalues share one CDF value.
    return lam, np.searchsorted(lam, lam, side="right").astype(np.float64) / lam.size


def lanczos_tridiag(matvec: Callable[[np.ndarray], np.ndarray], v0: np.ndarray, steps: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """m-step Lanczos with full reorthogonalisation (needed for a faithful quadrature).

    Returns:
      (alpha, beta): diagonal (m,) and off-diagonal (m-1,) of the tridiagonal matrix, float64.
    """
    n = v0.shape[0]
    steps = min(steps, n)
    q = np.zeros((steps, n))
    alpha = np.zeros(steps)
    beta = np.zeros(max(steps - 1, 0))
    q[0] = v0 / np.linalg.norm(v0)
    for j in range(steps):
        w = np.asarray(matvec(q[j]), dtype=np.float64)
        alpha[j] = q[j] @ w
        w -= q[: j + 1].T @ (q[: j + 1] @ w)   # two passes of Gram–Schmidt: float32 operators
        w -= q[: j + 1].T @ (q[: j + 1] @ w)
        if j + 1 < steps:
            b = np.linalg.norm(w)
            if b < 1e-12 * max(abs(alpha[: j + 1]).max(), 1e-300):
                return alpha[: j + 1], beta[:j]  # invariant subspace found: quadrature is exact
            beta[j] = b
            q[j + 1] = w / b
    return alpha, beta


def slq(matvec: Callable[[np.ndarray], np.ndarray], n: int, *, num_probes: int = 8,
        steps: int = 60, seed: int = 0, deflate: tuple[np.ndarray, np.ndarray] | None = None
        ) -> tuple[np.ndarray, np.ndarray]:
    """Stochastic Lanczos quadrature: a discrete approximation of the spectral measure.

    Each Rademacher probe gives Gauss-quadrature nodes (Ritz values) and weights
    (squared first components); averaging the probes estimates
    μ = (1/n) Σ_i δ(λ − λ_i). NTKs have one or a few huge eigenvalues and large
    off-diagonal mass, which makes plain Hutchinson probes noisy; passing the exact top
    eigenpairs as ``deflate=(values, vectors)`` puts them in as exact point masses and
    probes only their orthogonal complement.

    Returns:
      (nodes, weights): float64 arrays of equal length; weights sum to 1. So
      n·Σ weights·nodes estimates the trace and Σ_{nodes ≤ t} weights the CDF.
    """
    rng = np.random.default_rng(seed)
    nodes, weights = [], []
    vecs_d = None
    if deflate is not None:
        vals_d, vecs_d = np.asarray(deflate[0], np.float64), np.asarray(deflate[1], np.float64)
        nodes.append(vals_d)
        weights.append(np.full(vals_d.shape, 1.0 / n))
        op = matvec

        def matvec(v):  # P Θ P with P the projector onto the complement
            v = v - vecs_d @ (vecs_d.T @ v)
            w = np.asarray(op(v), dtype=np.float64)
            return w - vecs_d @ (vecs_d.T @ w)

    for _ in range(num_probes):
        z = rng.choice(np.array([-1.0, 1.0]), size=n)
        if vecs_d is not None:
            z = z - vecs_d @ (vecs_d.T @ z)
        with threadpool_limits(**_ONE_BLAS_THREAD):
            a, b = lanczos_tridiag(matvec, z, steps)
        theta, vecs = scipy.linalg.eigh_tridiagonal(a, b) if b.size else (a, np.ones((1, 1)))
        nodes.append(theta)
        # zᵀf(A)z = ‖z‖²·Σ τ_j² f(θ_j); the 1/n turns the trace into a probability measure.
        weights.append(vecs[0] ** 2 * (z @ z) / (n * num_probes))
    nodes_a, weights_a = np.concatenate(nodes), np.concatenate(weights)
    return nodes_a, weights_a / weights_a.sum()


def density_on_grid(nodes: np.ndarray, weights: np.ndarray, grid: np.ndarray,
                    sigma: float) -> np.ndarray:
    """Gaussian-smoothed spectral density from SLQ (or dense eigenvalues with equal weights).

    Args:
      grid: evaluation points; sigma: kernel width in the same units (use a log grid
        and pass log-eigenvalues for a density on a log axis).

    Returns:
      (len(grid),) float64 density integrating to ≈ Σ weights over the real line.
    """
    z = (np.asarray(grid)[:, None] - np.asarray(nodes)[None, :]) / sigma
    return (np.exp(-0.5 * z * z) * weights[None, :]).sum(1) / (sigma * np.sqrt(2 * np.pi))
