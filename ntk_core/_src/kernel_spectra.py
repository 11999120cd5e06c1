"""Spectra of the empirical NTK at a checkpoint or over a run's checkpoints.

Chooses dense vs matrix-free by size: the n×n kernel is formed only when n ≤ dense_max
(memory n², shared Gram XXᵀ computed once per run); above that every product is
matrix-free (memory O(n·(784 + width))).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ntk_core._src import ntk as _ntk
from ntk_core._src import spectra as _spectra


@dataclasses.dataclass(frozen=True)
class CheckpointSpectra:
    """Top-k spectra of the traced Θ (raw, mean over logits, not /n) per checkpoint.

    Attributes:
      topk: (C, k) float64 descending eigenvalues (NaN rows for skipped checkpoints).
      trace: (C,) float64 exact trace from the diagonal.
      method: "dense" (kernel formed, Lanczos on it) or "matrix_free".
    """

    topk: np.ndarray
    trace: np.ndarray
    method: str


def _take(params_stack: dict, i: int) -> dict:
    return {k: jnp.asarray(v[i]) for k, v in params_stack.items()}


def checkpoint_spectra(x, params_stack: dict, *, parameterization: str, top_k: int,
                       dense_max: int = 4000, valid: np.ndarray | None = None,
                       progress: Callable[[int, int], None] | None = None) -> CheckpointSpectra:
    """Top-k eigenvalues and exact trace of Θ for every checkpoint of a run.

    Consecutive checkpoints have similar kernels, so each Lanczos run starts from the
    previous top eigenvector.

    Args:
      x: (n, 784) training inputs the kernel is evaluated on.
      params_stack: dict of (C, ...) checkpoints.
      valid: (C,) bool; False entries (e.g. after divergence) are left NaN.
      progress: called as progress(done, total) after each checkpoint.

    Returns:
      :class:`CheckpointSpectra` (raw traced Θ, not divided by n).
    """
    x = jnp.asarray(x)
    n = x.shape[0]
    count = next(iter(params_stack.values())).shape[0]
    valid = np.ones(count, bool) if valid is None else np.asarray(valid, bool)
    k = min(top_k, n)
    topk = np.full((count, k), np.nan)
    trace = np.full(count, np.nan)
    dense = n <= dense_max
    g = _ntk.gram(x, parameterization=parameterization) if dense else None
    v0 = None
    for i in range(count):
        if valid[i]:
            p = _take(params_stack, i)
            if dense:
                op = np.asarray(_ntk.traced_ntk_from_gram(p, x, g, parameterization=parameterization))
                trace[i] = float(np.trace(op, dtype=np.float64))
            else:
                trace[i] = float(jnp.sum(_ntk.ntk_diagonal(p, x, parameterization=parameterization)))
                state = _ntk.matfree_state(p, x, parameterization=parameterization)
                op = _spectra.as_operator(lambda v, st=state: _ntk.matfree_matvec(st, jnp.asarray(v)), n)
            # float32 products cannot reach float64's tolerance: 1e-6 residuals (eigenvalues
            # converge quadratically, so they are far more accurate than that).
            w, vecs = _spectra.top_k_eigs(op, k, v0=v0, return_vectors=True, dtype=np.float32,
                                          tol=None if dense else 1e-6, symmetric=dense)
            topk[i] = w
            v0 = vecs[:, 0]
        if progress is not None:
            progress(i + 1, count)
    return CheckpointSpectra(topk=topk, trace=trace, method="dense" if dense else "matrix_free")


@dataclasses.dataclass(frozen=True)
class FullSpectrum:
    """The whole spectrum of traced Θ at one checkpoint (raw, not /n).

    Attributes:
      method: "dense" (all n eigenvalues exact) or "slq" (stochastic Lanczos quadrature).
      eigenvalues: (n,) descending float64 when dense, else empty.
      nodes, weights: SLQ quadrature (weights sum to 1) when "slq", else empty.
      trace: exact trace. topk: (k,) exact top-k (Lanczos).
    """

    method: str
    eigenvalues: np.ndarray
    nodes: np.ndarray
    weights: np.ndarray
    trace: float
    topk: np.ndarray


def full_spectrum(params, x, *, parameterization: str, dense_max: int = 4000, top_k: int = 10,
                  slq_probes: int = 8, slq_steps: int = 60, seed: int = 0) -> FullSpectrum:
    """All eigenvalues (dense, n ≤ dense_max) or an SLQ spectral measure (matrix-free).

    Returns:
      :class:`FullSpectrum`; eigenvalues of raw traced Θ (mean over logits, not /n).
    """
    x = jnp.asarray(x)
    p = {k: jnp.asarray(v) for k, v in params.items()}
    n = x.shape[0]
    trace = float(jnp.sum(_ntk.ntk_diagonal(p, x, parameterization=parameterization)))
    empty = np.zeros(0)
    if n <= dense_max:
        g = _ntk.gram(x, parameterization=parameterization)
        eig = _spectra.eigvalsh_desc(_ntk.traced_ntk_from_gram(p, x, g, parameterization=parameterization))
        return FullSpectrum("dense", eig, empty, empty, trace, eig[: min(top_k, n)].copy())
    state = _ntk.matfree_state(p, x, parameterization=parameterization)
    mv = lambda v: np.asarray(_ntk.matfree_matvec(state, jnp.asarray(v, jnp.float32)), np.float64)
    topk, vecs = _spectra.top_k_eigs(_spectra.as_operator(mv, n), min(top_k, n), return_vectors=True,
                                     tol=1e-6)
    d = max(min(topk.size, n - 2), 0)  # leave a complement for the probes
    nodes, weights = _spectra.slq(mv, n, num_probes=slq_probes, steps=slq_steps, seed=seed,
                                  deflate=(topk[:d], vecs[:, :d]))
    return FullSpectrum("slq", empty, nodes, weights, trace, topk)
