"""Spectra of (possibly huge) symmetric PSD kernels: dense, top-k Lanczos, SLQ density.

All eigenvalues are returned in float64, descending, in the normalisation of the
operator they were computed from (the callers pass raw traced Θ).
"""

from __future__ import annotations

import dataclasses
import enum
import os
import warnings
from typing import Callable, NamedTuple

import numpy as np
import scipy.linalg
import scipy.sparse.linalg as spla
from threadpoolctl import threadpool_limits

# ARPACK's many small BLAS calls wake OpenBLAS worker threads that then spin and fight
# XLA's threads for the 2 cores (measured: 60k top-10 4.1 → 2.8 s, grid spectra 7.2 →
# 4.0 s with one BLAS thread). Large dense LAPACK (eigvalsh) keeps all threads.
_ONE_BLAS_THREAD = dict(limits=1, user_api="blas")


def lapack_threads() -> threadpool_limits:
    """BLAS threads for a large dense LAPACK call: all of them, except when the machine is
    oversubscribed (1-min load above the core count + ½, e.g. other sessions or a noisy
    neighbour): then OpenBLAS's spinning workers are descheduled mid-barrier and one thread
    is far faster (measured, 2 cores at load 15: float64 eigh of 1000×1000 took 9–19 s with
    2 threads, 0.28 s with 1; on the idle machine 0.11 s with 2)."""
    try:
        busy = os.getloadavg()[0] > (os.cpu_count() or 1) + 0.5
    except OSError:  # no load average on this platform
        busy = False
    return threadpool_limits(limits=1 if busy else None, user_api="blas")


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


def roundoff_floor(trace: float, n: int, lambda_max: float, dtype=np.float32) -> float:
    """Round-off floor of the eigenvalues of an n×n PSD kernel formed in ``dtype``.

    Definition: floor = ε·tr(Θ) + n·ε₆₄·λ_max, with ε = ``np.finfo(dtype).eps`` of the
    precision the kernel *entries* were computed in (1.19e-7 float32, 2.22e-16 float64)
    and ε₆₄ that of the float64 eigensolver.

    First term (formation): every kernel here is a Gram matrix, Θ_ij = φ_i·φ_j (Θ = JJᵀ/K).
    Forming an entry in floating point errs by |E_ij| ≤ γ·|φ_i|·|φ_j| ≤ γ·√(Θ_ii·Θ_jj)
    (Cauchy–Schwarz), γ ≈ ε (the closed form's Hadamard product adds a small constant,
    random rounding in a length-d sum adds √d on average, blocked BLAS less). So
    |E| ≤ γ·ddᵀ entrywise with d_i = √Θ_ii, hence ‖E‖₂ ≤ γ·‖ddᵀ‖₂ = γ·tr(Θ), and by Weyl's
    inequality every eigenvalue moves by at most ε·tr(Θ). Second term (solver): LAPACK's
    eigvalsh is backward stable with ‖E‖₂ ≤ p(n)·ε₆₄·‖Θ‖₂, p(n) ≤ n; it matters only for
    float64-formed kernels (measured at n = 2000: |negative round-off eigenvalues| ≈
    √n·ε₆₄·λ_max). Eigenvalues below the floor are not resolved: a float32-formed kernel of
    rank r shows its n − r zero eigenvalues as a ~1e-7-relative "bulk", not as zeros.
    Computing eigenvalues in float64 does not lower the formation term; forming the
    kernel in float64 does (then the floor is ≈ n·ε₆₄·λ_max).

    Since tr(Θ) ≤ n·λ_max, the formation term is at most n·ε·λ_max, a cruder form of the
    same bound that is far too pessimistic for NTKs (trace ≈ 2–3·λ_max): measured at
    n = 2000, width 128 (bundled MNIST, init), n·ε₃₂·λ_max = 2.46 would discard 1115 of
    2000 eigenvalues that agree with the float64-formed kernel's to ≤ 1.6e-5 relative,
    while ε₃₂·tr(Θ) = 3.7e-3 lies below all of them (and above every measured float32
    eigenvalue error, max 2.2e-5).

    Args:
      trace: tr(Θ); lambda_max: largest eigenvalue (both in the units of the eigenvalues).
      n: matrix size; dtype: precision the kernel entries were formed in.

    Returns:
      the floor (float, same units as ``trace``).
    """
    eps64 = np.finfo(np.float64).eps
    return float(np.finfo(dtype).eps * abs(float(trace)) + n * eps64 * abs(float(lambda_max)))


def split_at_floor(eigs: np.ndarray, floor: float) -> tuple[np.ndarray, int]:
    """Separates resolved eigenvalues (λ ≥ floor) from round-off (λ < floor, negatives included).

    Returns:
      (resolved, n_below): the resolved eigenvalues in their given order (float64), and how
      many lie below the floor. Plot ``resolved`` and state ``n_below`` next to it.
    """
    lam = np.asarray(eigs, dtype=np.float64)
    keep = lam >= floor
    return lam[keep], int(np.count_nonzero(~keep & ~np.isnan(lam)))


class DenseSpectrum(NamedTuple):
    """All eigenvalues of a dense symmetric kernel and its round-off floor."""

    eigenvalues: np.ndarray   # (n,) float64 descending
    floor: float              # roundoff_floor(tr Θ, n, λ_max, formed_dtype)
    below_floor: int          # #{λ < floor}
    formed_dtype: str         # precision the kernel entries were computed in


def dense_spectrum(matrix, *, formed_dtype=None, triangle: str | None = None,
                   overwrite: bool = False) -> DenseSpectrum:
    """All eigenvalues in float64 (LAPACK) plus the round-off floor of the kernel's precision.

    Args:
      matrix: (n, n) symmetric kernel (any float dtype; eigenvalues are always computed
        in float64, a float32 matrix is cast first).
      formed_dtype: precision its entries were computed in; default ``matrix.dtype``.
        It sets the floor (see :func:`roundoff_floor`); a float32 kernel cast to float64
        keeps the float32 floor.
      triangle: "upper"/"lower" if only that triangle is valid (e.g. from BLAS syrk);
        None symmetrises (A + Aᵀ)/2 first.
      overwrite: a float64 ``matrix`` may be destroyed (saves an n×n copy).

    Returns:
      :class:`DenseSpectrum`.
    """
    a = np.asarray(matrix)
    formed = np.dtype(a.dtype if formed_dtype is None else formed_dtype)
    n = a.shape[0]
    if triangle is None:
        a = np.asarray(a, dtype=np.float64)
        a = 0.5 * (a + a.T)
        lower, overwrite = True, True
    else:
        if triangle not in ("upper", "lower"):
            raise ValueError(f"triangle={triangle!r}; allowed: None, 'upper', 'lower'")
        overwrite = overwrite or a.dtype != np.float64
        a = np.asarray(a, dtype=np.float64)
        lower = triangle == "lower"
    trace = float(np.trace(a))
    with lapack_threads():
        eig = scipy.linalg.eigvalsh(a, lower=lower, overwrite_a=overwrite, check_finite=True)[::-1].copy()
    floor = roundoff_floor(trace, n, np.abs(eig).max() if n else 0.0, formed)
    _, below = split_at_floor(eig, floor)
    return DenseSpectrum(eig, floor, below, formed.name)


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


# Default cap on ARPACK restarts. NTK spectra have well-separated tops and converge in
# 2–4 restarts (n = 2000, width 128, top-10: 34–56 products); scipy's own default, 10·n,
# would let a stalled solve run for hours at n = 60 000.
DEFAULT_MAXITER = 300
# Above this size a non-converged ARPACK solve is not redone densely (O(n³), n² memory).
DENSE_FALLBACK_MAX = 4000


class EigshNotConverged(RuntimeWarning):
    """:func:`top_k_eigs` (array API) returned pairs that ARPACK did not converge."""


@dataclasses.dataclass(frozen=True)
class EigResult:
    """Top-k eigenpairs of a symmetric operator with an honest account of their accuracy.

    Attributes:
      values: (k,) float64, descending. NaN where no estimate exists.
      vectors: (n, k) float64 orthonormal eigenvector estimates, or None when not requested.
      residuals: (k,) float64 relative residuals ‖A v − λ v‖₂ / |λ| of the returned pairs,
        measured after the solve with the operator itself (one extra block product), so in
        the operator's own arithmetic: a float32 operator cannot show residuals below
        ≈ 1e-7·λ_max/|λ|. NaN where ``values`` is NaN.
      converged: True when ARPACK met ``tol`` within ``maxiter`` restarts (by its own Ritz
        estimate) or a direct dense solver produced the values; False otherwise — the
        values are then the best available estimates, and ``residuals`` says how good.
      method: "arpack"; "dense" (k ≥ n − 1, LAPACK); "dense_fallback" (ARPACK did not
        converge, n ≤ ``dense_fallback_max``, LAPACK on the formed operator);
        "arpack_partial" (ARPACK did not converge but returned ≥ k pairs);
        "ritz_estimate" (ARPACK did not converge, n too large for LAPACK: Ritz pairs of a
        Lanczos run with full reorthogonalisation from the same start vector).
      matvecs: operator applications in total (ARPACK, fallback, and the residual check).
      maxiter: the cap on ARPACK restarts that was in force.
      tol: the ARPACK tolerance used (0 = machine precision of the operator's dtype). It is
        never loosened on a retry: there is no retry.
      note: human-readable account of any fallback ("" when ARPACK converged).
    """

    values: np.ndarray
    vectors: np.ndarray | None
    residuals: np.ndarray
    converged: bool
    method: str
    matvecs: int
    maxiter: int
    tol: float
    note: str = ""

    @property
    def max_residual(self) -> float:
        """Largest relative residual of the top-k (NaN if any value is missing)."""
        r = np.asarray(self.residuals, np.float64)
        return float(r.max()) if r.size else float("nan")


class _CountingOperator(spla.LinearOperator):
    """Forwards to ``op`` and counts the vectors it is applied to."""

    def __init__(self, op: spla.LinearOperator):
        super().__init__(dtype=op.dtype, shape=op.shape)
        self.op = op
        self.count = 0

    def _matvec(self, v):
        self.count += 1
        return self.op.matvec(v)

    def _matmat(self, v):
        self.count += v.shape[1]
        return self.op.matmat(v)


def _relative_residuals(op: spla.LinearOperator, w: np.ndarray, v: np.ndarray) -> np.ndarray:
    """‖A v_j − λ_j v_j‖ / |λ_j| per column, float64 (NaN for NaN pairs)."""
    res = np.full(w.shape, np.nan)
    ok = np.isfinite(w) & np.all(np.isfinite(v), axis=0)
    if ok.any():
        vv = v[:, ok]
        av = np.asarray(op.matmat(np.ascontiguousarray(vv, dtype=op.dtype)), dtype=np.float64)
        r = np.linalg.norm(av - vv.astype(np.float64) * w[ok][None, :], axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            res[ok] = r / np.abs(w[ok])
    return res


def _dense_top_k(dense: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of a symmetric matrix by LAPACK (only the wanted pairs are back-transformed)."""
    n = dense.shape[0]
    w, v = scipy.linalg.eigh(np.asarray(dense, np.float64), subset_by_index=[n - k, n - 1])
    return w[::-1].copy(), v[:, ::-1].copy()


def _ritz_estimate(op: spla.LinearOperator, v0: np.ndarray, k: int, steps: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Top-k Ritz pairs of a ``steps``-step Lanczos run (full reorthogonalisation)."""
    n = op.shape[0]
    mv = lambda x: np.asarray(op.matvec(np.asarray(x, dtype=op.dtype)), np.float64).ravel()
    alpha, beta, q = _lanczos(mv, np.asarray(v0, np.float64), steps, keep_basis=True)
    m = alpha.size
    theta, s = scipy.linalg.eigh_tridiagonal(alpha, beta) if m > 1 else (alpha, np.ones((1, 1)))
    order = np.argsort(theta)[::-1][:k]
    w = np.full(k, np.nan)
    v = np.full((n, k), np.nan)
    w[: order.size] = theta[order]
    v[:, : order.size] = q[:m].T @ s[:, order]
    return w, v


def top_k_eigs(operator, k: int, *, n: int | None = None, v0: np.ndarray | None = None,
               tol: float | None = None, return_vectors: bool = False,
               dtype=np.float64, maxiter: int | None = None, symmetric: bool = False,
               return_result: bool = False, dense_fallback_max: int = DENSE_FALLBACK_MAX):
    """Largest-k eigenvalues of a symmetric PSD operator by implicitly restarted Lanczos.

    ARPACK runs once, with the requested ``tol`` and at most ``maxiter`` restarts. If it
    does not converge, the tolerance is **not** loosened; instead (in this order) ARPACK's
    partial pairs are used if there are k of them (in practice ARPACK stops short of k),
    else the operator is formed and solved by LAPACK when n ≤ ``dense_fallback_max``,
    else the Ritz pairs of a 2·ncv-step Lanczos run are returned flagged ``converged=False``.
    Every path measures the relative residuals of what it returns.

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
      maxiter: cap on ARPACK restarts, default :data:`DEFAULT_MAXITER`.
      symmetric: the dense matrix is exactly symmetric already (skips an n×n copy).
      return_result: return an :class:`EigResult` (values, vectors if ``return_vectors``,
        residuals, converged, …) instead of arrays.
      dense_fallback_max: largest n redone by LAPACK when ARPACK does not converge.

    Returns:
      With ``return_result``: :class:`EigResult`. Otherwise, as before: (k,) float64
      descending eigenvalues, and (n, k) eigenvectors if ``return_vectors``; a
      non-converged solve then emits :class:`EigshNotConverged` (a RuntimeWarning with the
      achieved residual) instead of passing silently.
    """
    res = _top_k(operator, k, n=n, v0=v0, tol=tol, dtype=dtype, maxiter=maxiter,
                 symmetric=symmetric, dense_fallback_max=dense_fallback_max)
    if not return_vectors:
        res = dataclasses.replace(res, vectors=None)
    if return_result:
        return res
    if not res.converged:
        warnings.warn(f"top_k_eigs: {res.note} (max relative residual {res.max_residual:.2e}, "
                      f"tol {res.tol:g}); use return_result=True to handle this",
                      EigshNotConverged, stacklevel=2)
    return (res.values, res.vectors) if return_vectors else res.values


def _top_k(operator, k, *, n, v0, tol, dtype, maxiter, symmetric, dense_fallback_max) -> EigResult:
    maxiter = DEFAULT_MAXITER if maxiter is None else int(maxiter)
    if tol is None and isinstance(operator, spla.LinearOperator):
        # float32 operators (e.g. generic.NTKOperator) state the residual they can reach
        tol = getattr(operator, "arpack_tol", None)
    dense = None
    if not isinstance(operator, spla.LinearOperator):
        if callable(operator):
            operator = as_operator(operator, n)
            tol = 1e-6 if tol is None else tol
        else:
            dense = np.asarray(operator, dtype=dtype)
            if not symmetric:
                dense = 0.5 * (dense + dense.T)
            if k >= dense.shape[0] - 1:
                w, v = _dense_top_k(dense, k)
                return EigResult(w, v, _relative_residuals(spla.aslinearoperator(dense), w, v), True,
                                 "dense", 0, maxiter, 0.0 if tol is None else float(tol),
                                 f"k={k} ≥ n − 1: LAPACK eigh")
            operator = spla.aslinearoperator(dense)
    tol = 0.0 if tol is None else float(tol)
    n = operator.shape[0]
    op = _CountingOperator(operator)
    if k >= n - 1:
        w, v = _dense_top_k(op.matmat(np.eye(n, dtype=op.dtype)), k)
        return EigResult(w, v, _relative_residuals(op, w, v), True, "dense", op.count, maxiter, tol,
                         f"k={k} ≥ n − 1: operator formed, LAPACK eigh")
    ncv = min(n, max(2 * k + 1, 20))
    if v0 is None:
        # ARPACK's own random start differs per call; a seeded one makes results reproducible.
        v0 = np.random.default_rng(0).standard_normal(n)
    v0 = np.asarray(v0, dtype=op.dtype)
    converged, method, note = True, "arpack", ""
    with threadpool_limits(**_ONE_BLAS_THREAD):
        try:
            w, v = spla.eigsh(op, k=k, which="LA", v0=v0, tol=tol, ncv=ncv, maxiter=maxiter)
        except spla.ArpackNoConvergence as e:
            why = f"ARPACK did not converge to tol={tol:g} within maxiter={maxiter} restarts ({e})"
            if np.size(e.eigenvalues) >= k:
                w, v = e.eigenvalues, e.eigenvectors
                order = np.argsort(w)[::-1][:k]
                w, v = w[order], v[:, order]
                converged, method, note = False, "arpack_partial", f"{why}; its partial pairs returned"
            elif n <= dense_fallback_max:
                formed = dense if dense is not None else op.matmat(np.eye(n, dtype=op.dtype))
                w, v = _dense_top_k(formed, k)
                method, note = "dense_fallback", f"{why}; values from a dense LAPACK eigh (n={n})"
            else:
                w, v = _ritz_estimate(op, v0, k, steps=min(n, 2 * ncv))
                converged, method = False, "ritz_estimate"
                note = (f"{why}; n={n} > {dense_fallback_max} too large for LAPACK: unconverged "
                        f"Ritz estimates from a {min(n, 2 * ncv)}-step Lanczos run")
    order = np.argsort(w)[::-1]
    w, v = np.asarray(w[order], np.float64), np.asarray(v[:, order], np.float64)
    return EigResult(w, v, _relative_residuals(op, w, v), converged, method, op.count, maxiter, tol, note)


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
    alpha, beta, _ = _lanczos(matvec, v0, steps)
    return alpha, beta


def _lanczos(matvec, v0, steps, keep_basis: bool = False):
    """Lanczos core; also returns the (m, n) orthonormal basis (rows) when ``keep_basis``."""
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
                # invariant subspace found: quadrature is exact
                return alpha[: j + 1], beta[:j], (q[: j + 1] if keep_basis else None)
            beta[j] = b
            q[j + 1] = w / b
    return alpha, beta, (q if keep_basis else None)


def slq(matvec: Callable[[np.ndarray], np.ndarray], n: int | None = None, *, num_probes: int = 8,
        steps: int = 60, seed: int = 0, deflate: tuple[np.ndarray, np.ndarray] | None = None
        ) -> tuple[np.ndarray, np.ndarray]:
    """Stochastic Lanczos quadrature: a discrete approximation of the spectral measure.

    Each Rademacher probe gives Gauss-quadrature nodes (Ritz values) and weights
    (squared first components); averaging the probes estimates
    μ = (1/n) Σ_i δ(λ − λ_i). NTKs have one or a few huge eigenvalues and large
    off-diagonal mass, which makes plain Hutchinson probes noisy; passing the exact top
    eigenpairs as ``deflate=(values, vectors)`` puts them in as exact point masses and
    probes only their orthogonal complement.

    ``matvec`` may be any callable or a LinearOperator (e.g. ``generic.NTKOperator``);
    ``n`` defaults to its ``shape[0]``.

    Returns:
      (nodes, weights): float64 arrays of equal length; weights sum to 1. So
      n·Σ weights·nodes estimates the trace and Σ_{nodes ≤ t} weights the CDF.
    """
    if n is None:
        if not hasattr(matvec, "shape"):
            raise ValueError("n is required with a plain matvec callable")
        n = int(matvec.shape[0])
    if isinstance(matvec, spla.LinearOperator):
        matvec = matvec.matvec
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


class TraceEstimate(NamedTuple):
    """tr(Θ) and how it was obtained."""

    value: float        # the trace (float64)
    std_error: float    # 0 for exact methods; Hutchinson: sample std / √probes
    method: str         # "dense" | "diagonal" | "hutchinson"
    matvecs: int        # operator applications used


def trace_estimate(operator, n: int | None = None, *, probes: int = 0, seed: int = 0) -> TraceEstimate:
    """tr(Θ) of a dense matrix or an operator: exact when possible, else Hutchinson.

    Exact: a dense matrix (its diagonal), or an operator with a ``diagonal()`` method
    (``generic.NTKOperator``: per-sample Jacobian norms) when ``probes`` is 0. Otherwise the
    Hutchinson estimator mean_p zₚᵀΘzₚ over ``probes`` (default 32) Rademacher vectors (unbiased,
    variance 2·Σ_{i≠j} Θ_ij²/probes), with its standard error.

    Args:
      operator: (n, n) array, a LinearOperator, or a matvec callable (with ``n``).
      probes: 0 = exact if possible; > 0 forces the stochastic estimator.

    Returns:
      :class:`TraceEstimate` in the operator's normalisation.
    """
    if not callable(operator) and not isinstance(operator, spla.LinearOperator):
        a = np.asarray(operator)
        return TraceEstimate(float(np.trace(a, dtype=np.float64)), 0.0, "dense", 0)
    if probes <= 0 and hasattr(operator, "diagonal"):
        d = np.asarray(operator.diagonal(), dtype=np.float64)
        return TraceEstimate(float(d.sum()), 0.0, "diagonal", 0)
    probes = 32 if probes <= 0 else int(probes)
    if n is None:
        if not hasattr(operator, "shape"):
            raise ValueError("n is required with a plain matvec callable")
        n = int(operator.shape[0])
    mv = operator.matvec if isinstance(operator, spla.LinearOperator) else operator
    rng = np.random.default_rng(seed)
    vals = np.empty(probes)
    for p in range(probes):
        z = rng.choice(np.array([-1.0, 1.0]), size=n)
        vals[p] = z @ np.asarray(mv(z), dtype=np.float64).ravel()
    err = float(vals.std(ddof=1) / np.sqrt(probes)) if probes > 1 else float("inf")
    return TraceEstimate(float(vals.mean()), err, "hutchinson", probes)
