"""Spectra of the empirical NTK at a checkpoint or over a run's checkpoints.

Chooses dense vs matrix-free by size: the n×n kernel is formed only when n ≤ dense_max
(memory n², shared Gram XXᵀ computed once per run); above that every product is
matrix-free (memory O(n·(784 + width))). With more than one device (or an explicit
``mesh=``/``devices=``) the matrix-free path runs sharded over the samples
(:mod:`ntk_core._src.sharded`): each device holds n/P rows, top-k by block Lanczos on
the devices, trace from the sharded diagonal.

Precision. The JAX kernels are float32 (jax_enable_x64 is off): their eigenvalues are
resolved only down to the round-off floor ≈ ε₃₂·tr(Θ) (see
:func:`ntk_core._src.spectra.roundoff_floor`). For the *whole* spectrum (the log density
and CDF), :func:`full_spectrum` therefore forms the kernel in float64 with NumPy/BLAS
(:func:`traced_ntk_float64`) and reports the floor and the count below it; the top-k per
checkpoint (far above any floor) stay float32.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg.blas as _blas
import scipy.sparse.linalg as spla

from ntk_core._src import deep_mlp as _deep_mlp
from ntk_core._src import generic as _generic
from ntk_core._src import model as _model
from ntk_core._src import ntk as _ntk
from ntk_core._src import sharded as _sharded
from ntk_core._src import spectra as _spectra


@dataclasses.dataclass(frozen=True)
class CheckpointSpectra:
    """Top-k spectra of the traced Θ (raw, mean over logits, not /n) per checkpoint.

    Attributes:
      topk: (C, k) float64 descending eigenvalues (NaN rows for skipped checkpoints).
      trace: (C,) float64 exact trace from the diagonal.
      method: "dense" (kernel formed, Lanczos on it) or "matrix_free".
      residual: (C,) float64 max over the top-k of the relative residual ‖Θv − λv‖/|λ|,
        measured after each solve (NaN for skipped checkpoints).
      converged: (C,) bool, whether each solve converged (False for skipped checkpoints;
        see :class:`ntk_core._src.spectra.EigResult`).
      notes: (C,) str, fallback notes per checkpoint ("" when ARPACK converged).
    """

    topk: np.ndarray
    trace: np.ndarray
    method: str
    residual: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    converged: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, bool))
    notes: tuple[str, ...] = ()


def _scales_kw(scales) -> dict:
    """``scales=`` is passed on only when given, so the default path needs nothing new of ntk."""
    return {} if scales is None else {"scales": scales}


def _static_scales(params, parameterization, scales, **kw) -> _model.Scales:
    """Python-float scales: explicit (Scales/tuple/(4,) array) or those of the params' shape."""
    if scales is None:
        return _model.scales_for(params, parameterization, **kw)
    return _model.Scales(*np.asarray(scales, dtype=np.float64).ravel().tolist())


def _take(params_stack: dict, i: int) -> dict:
    return {k: jnp.asarray(v[i]) for k, v in params_stack.items()}


def checkpoint_spectra(x, params_stack: dict, *, parameterization: str, top_k: int,
                       dense_max: int = 4000, valid: np.ndarray | None = None,
                       progress: Callable[[int, int], None] | None = None,
                       maxiter: int | None = None, scales=None, mesh=None,
                       devices=None, apply_fn=None, generic_method: str = "ntk_vp") -> CheckpointSpectra:
    """Top-k eigenvalues and exact trace of Θ for every checkpoint of a run.

    Consecutive checkpoints have similar kernels, so each Lanczos run starts from the
    previous top eigenvector.

    Args:
      x: (n, 784) training inputs the kernel is evaluated on.
      params_stack: dict of (C, ...) checkpoints.
      valid: (C,) bool; False entries (e.g. after divergence) are left NaN.
      progress: called as progress(done, total) after each checkpoint.
      maxiter: ARPACK restart cap (default :data:`ntk_core._src.spectra.DEFAULT_MAXITER`).
      scales: optional explicit (a1, c1, a2, c2) passed to the kernel functions (for params
        zero-padded from a smaller true width); None uses those of the params' shape.
      mesh / devices: sample-sharded matrix-free path (a 1-D ``jax.sharding.Mesh``, or the
        devices to build one from). Default: all local devices when there are more than
        one, else the single-device path (see :func:`ntk_core._src.sharded.spectrum_mesh`).
        Used only when n > dense_max; the inputs are placed on the mesh once per run, the
        top-k come from :func:`ntk_core._src.sharded.operator_top_k` (float32, residual
        ≤ 1e-5·θ₁; ``maxiter`` then caps its block products) warm-started like ARPACK.
      apply_fn: any network ``f(params, x) -> (n, 10)`` (e.g. ``Architecture.apply``): the
        kernel is then the generic matrix-free :class:`ntk_core._src.generic.NTKOperator`
        (vjp/jvp, method "ntk_vp"), top-k by ARPACK on it and the trace from its exact
        diagonal, whatever n (``dense_max``, ``scales`` and the mesh are not used).
      generic_method: with ``apply_fn``: "ntk_vp" (above) or "autodiff": each checkpoint's
        dense kernel by blocked Jacobian contraction
        (:func:`ntk_core._src.generic.jacobian_dense`, float32), top-k by ARPACK on it and
        the trace from its diagonal (the caller decides when n is small enough); or
        "structured" (the depth-d MLP only, ``parameterization`` as its ``apply_fn``): the same
        dense kernel layer-wise (:func:`ntk_core._src.deep_mlp.mlp_traced_ntk`), far cheaper.

    Returns:
      :class:`CheckpointSpectra` (raw traced Θ, not divided by n), with per-checkpoint
      residuals and convergence flags; ``method`` the generic method on the generic path.
    """
    if apply_fn is not None:
        return _checkpoint_spectra_generic(apply_fn, x, params_stack, top_k=top_k, valid=valid,
                                           progress=progress, maxiter=maxiter, method=generic_method,
                                           parameterization=parameterization)
    x = jnp.asarray(x)
    n = x.shape[0]
    k = min(top_k, n)
    count, valid, topk, trace, residual, converged, notes = _empty_spectra(params_stack, valid, k)
    dense = n <= dense_max
    kw = _scales_kw(scales)
    mesh = None if dense else _sharded.spectrum_mesh(mesh, devices)
    if mesh is not None:
        return _checkpoint_spectra_sharded(x, params_stack, mesh, parameterization=parameterization,
                                           k=k, valid=valid, progress=progress, maxiter=maxiter,
                                           scales=scales)
    g = _ntk.gram(x, parameterization=parameterization) if dense else None
    todo = [i for i in range(count) if valid[i]]

    def dense_kernel(i):  # dispatched asynchronously: XLA forms it while ARPACK works
        return _ntk.traced_ntk_from_gram(_take(params_stack, i), x, g,
                                         parameterization=parameterization, **kw)

    pending = {todo[0]: dense_kernel(todo[0])} if dense and todo else {}
    v0 = None
    for i in range(count):
        if valid[i]:
            if dense:
                nxt = todo.index(i) + 1
                if nxt < len(todo):  # the next checkpoint's kernel, computed during this solve
                    pending[todo[nxt]] = dense_kernel(todo[nxt])
                op = np.asarray(pending.pop(i))
                trace[i] = float(np.trace(op, dtype=np.float64))
            else:
                p = _take(params_stack, i)
                trace[i] = float(jnp.sum(_ntk.ntk_diagonal(p, x, parameterization=parameterization, **kw)))
                state = _ntk.matfree_state(p, x, parameterization=parameterization, **kw)
                op = _spectra.as_operator(lambda v, st=state: _ntk.matfree_matvec(st, jnp.asarray(v)), n)
            # float32 products (dense or not) cannot reach float64's tolerance: 1e-6 relative
            # residuals; eigenvalues converge quadratically, so they are far more accurate
            # than that (≈1e-8 relative against a solve to float32 machine precision).
            res = _spectra.top_k_eigs(op, k, v0=v0, return_vectors=True, return_result=True,
                                      dtype=np.float32, tol=1e-6,
                                      symmetric=dense, maxiter=maxiter)
            topk[i] = res.values
            residual[i] = res.max_residual
            converged[i] = res.converged
            notes[i] = res.note
            v0 = res.vectors[:, 0] if np.all(np.isfinite(res.vectors[:, 0])) else None
        if progress is not None:
            progress(i + 1, count)
    return CheckpointSpectra(topk=topk, trace=trace, method="dense" if dense else "matrix_free",
                             residual=residual, converged=converged, notes=tuple(notes))


def _empty_spectra(params_stack, valid, k: int):
    """Per-checkpoint outputs before any solve: (count, valid mask, top-k NaN (count, k),
    trace NaN, residual NaN, converged False, notes "")."""
    count = next(iter(params_stack.values())).shape[0]
    valid = np.ones(count, bool) if valid is None else np.asarray(valid, bool)
    return (count, valid, np.full((count, k), np.nan), np.full(count, np.nan),
            np.full(count, np.nan), np.zeros(count, bool), [""] * count)


GENERIC_METHODS = ("ntk_vp", "autodiff", "structured")
DENSE_GENERIC_METHODS = ("autodiff", "structured")


def generic_dense_kernel(method: str, apply_fn, params, x, parameterization: str) -> np.ndarray:
    """(n, n) float32 raw traced Θ (mean over logits) of a network ``apply_fn``, formed by
    ``method``: "autodiff"
    (blocked Jacobian contraction, any network), "structured" (the layer-wise kernel of the
    depth-d MLP, :func:`ntk_core._src.deep_mlp.mlp_traced_ntk`; ``apply_fn`` must be that
    MLP's, in ``parameterization``) or "ntk_vp" (the operator's columns)."""
    if method == "autodiff":
        return _generic.jacobian_dense(apply_fn, params, x)
    if method == "structured":
        if "W1" not in params or "C1" in params:
            raise ValueError("generic_method='structured' is the depth-d MLP's kernel; these "
                             f"params have leaves {sorted(params)}")
        return _deep_mlp.mlp_traced_ntk(params, x, parameterization=parameterization)
    return np.asarray(_generic.NTKOperator(apply_fn, params, x).dense())


def _check_generic_method(method: str) -> None:
    if method not in GENERIC_METHODS:
        raise ValueError(f"generic_method={method!r}; allowed: {', '.join(map(repr, GENERIC_METHODS))}")


def _checkpoint_spectra_generic(apply_fn, x, params_stack, *, top_k, valid, progress, maxiter,
                                method: str = "ntk_vp", parameterization: str = "standard"):
    """:func:`checkpoint_spectra` on the generic operator or its Jacobian-contracted dense
    kernel (warm-started like the closed form)."""
    _check_generic_method(method)
    x = jnp.asarray(x)
    n = x.shape[0]
    k = min(top_k, n)
    count, valid, topk, trace, residual, converged, notes = _empty_spectra(params_stack, valid, k)
    v0 = None
    for i in range(count):
        if valid[i]:
            if method in DENSE_GENERIC_METHODS:
                op = generic_dense_kernel(method, apply_fn, _take(params_stack, i), x, parameterization)
                trace[i] = float(np.trace(op, dtype=np.float64))
                res = _spectra.top_k_eigs(op, k, v0=v0, return_vectors=True, return_result=True,
                                          dtype=np.float32, tol=1e-6, symmetric=True, maxiter=maxiter)
            else:
                op = _generic.NTKOperator(apply_fn, _take(params_stack, i), x)
                trace[i] = float(op.diagonal().sum())
                res = _spectra.top_k_eigs(op, k, v0=v0, return_vectors=True, return_result=True,
                                          tol=op.arpack_tol, maxiter=maxiter)
            topk[i], residual[i], converged[i], notes[i] = res.values, res.max_residual, res.converged, res.note
            v0 = res.vectors[:, 0] if np.all(np.isfinite(res.vectors[:, 0])) else None
        if progress is not None:
            progress(i + 1, count)
    return CheckpointSpectra(topk=topk, trace=trace, method=method, residual=residual,
                             converged=converged, notes=tuple(notes))


# Residual target of the sharded top-k: ‖Θv − θv‖ ≤ tol·θ₁ (float32 products). The ARPACK
# path's 1e-6 is per eigenvalue; at this tolerance the sharded top-10 agree with a float64
# dense solve to ~1e-7 relative (n = 3000, bench/_sharded.py reports it at n = 10 000).
SHARDED_TOL = _sharded.DEFAULT_TOL


def _checkpoint_spectra_sharded(x, params_stack, mesh, *, parameterization, k, valid, progress,
                                maxiter, scales) -> CheckpointSpectra:
    """checkpoint_spectra's matrix-free path with the samples sharded over ``mesh``."""
    count, valid, topk, trace, residual, converged, notes = _empty_spectra(params_stack, valid, k)
    xs, mask, n = _sharded._place_samples(x, mesh)
    solver = {} if maxiter is None else {"max_steps": int(maxiter)}
    v0 = None
    for i in range(count):
        if valid[i]:
            op = _sharded._closed_form_on(_take(params_stack, i), xs, mask, n, mesh,
                                          parameterization=parameterization, scales=scales)
            trace[i] = _sharded.operator_trace(op)
            res = _sharded.operator_top_k(op, k, tol=SHARDED_TOL, v0=v0, return_vectors=True,
                                          **solver)
            topk[i] = res.values
            residual[i] = res.max_residual
            converged[i] = res.converged
            notes[i] = res.note
            v0 = res.vectors[:, 0] if np.all(np.isfinite(res.vectors[:, 0])) else None
        if progress is not None:
            progress(i + 1, count)
    return CheckpointSpectra(topk=topk, trace=trace, method="matrix_free", residual=residual,
                             converged=converged, notes=tuple(notes))


# ----------------------------------------------------------------------------------------
# float64 kernel formation (NumPy/BLAS: JAX runs with x64 disabled)

def _traced_ntk_float64_upper(params, x, *, parameterization: str,
                              sigma_w: float = _model.SIGMA_W, sigma_b: float = _model.SIGMA_B,
                              scales=None) -> np.ndarray:
    """Upper triangle of the float64 traced Θ, Fortran order; the lower triangle is junk.

    Θ = a2²·(HHᵀ + G ∘ (M diag(s) Mᵀ)) + c2², G = a1²·XXᵀ + c1² (see :mod:`ntk`), with
    every product a BLAS dsyrk (half the flops of a matmul). Peak memory 2·n² float64.
    """
    p = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    x64 = np.asarray(x, dtype=np.float64)
    s = _static_scales(p, parameterization, scales, sigma_w=sigma_w, sigma_b=sigma_b)
    z = s.a1 * (x64 @ p["W1"]) + s.c1 * p["b1"][None, :]
    h = np.maximum(z, 0.0)
    ms = (z > 0).astype(np.float64) * np.sqrt(np.mean(p["W2"] ** 2, axis=1))[None, :]
    del z
    theta = _blas.dsyrk(s.a1 ** 2, x64.T, trans=1)            # a1²·XXᵀ (x64.T is F-ordered)
    theta += s.c1 ** 2                                        # G
    theta *= _blas.dsyrk(1.0, ms.T, trans=1)                  # G ∘ (M diag(s) Mᵀ)
    theta = _blas.dsyrk(1.0, h.T, beta=1.0, c=theta, trans=1, overwrite_c=1)  # + HHᵀ
    theta *= s.a2 ** 2
    theta += s.c2 ** 2
    return theta


def _symmetrize_from_upper(a: np.ndarray, block: int = 512) -> np.ndarray:
    """Copies the upper triangle onto the lower one in place, block by block (no n² temp)."""
    n = a.shape[0]
    for i0 in range(0, n, block):
        i1 = min(n, i0 + block)
        a[i0:i1, :i0] = a[:i0, i0:i1].T
        blk = a[i0:i1, i0:i1]
        a[i0:i1, i0:i1] = np.triu(blk) + np.triu(blk, 1).T
    return a


def traced_ntk_float64(params, x, *, parameterization: str = "standard",
                       sigma_w: float = _model.SIGMA_W, sigma_b: float = _model.SIGMA_B,
                       scales=None) -> np.ndarray:
    """Traced Θ formed in float64 (NumPy/BLAS) from the given (e.g. float32) parameters.

    The closed form of :mod:`ntk_core._src.ntk` evaluated with every operation in float64,
    including the ReLU mask, so its eigenvalues are resolved down to ≈ n·ε₆₄·λ_max (the
    eigensolver's limit) instead of ε₃₂·tr(Θ). Measured at n = 2000, width 128 (2 cores,
    min of 5): 0.08 s, vs 0.10 s for the float32 JAX kernel (BLAS dsyrk does half the
    flops of a matmul); whole dense ``full_spectrum`` 0.39 s vs 0.44 s before (eigvalsh
    dominates). ``scales``: optional explicit (a1, c1, a2, c2) overriding the
    parameterization's (params zero-padded from a smaller true width).

    Returns:
      (n, n) float64, exactly symmetric, raw traced Θ (mean over logits, not /n).
    """
    return _symmetrize_from_upper(_traced_ntk_float64_upper(
        params, x, parameterization=parameterization, sigma_w=sigma_w, sigma_b=sigma_b, scales=scales))


# ----------------------------------------------------------------------------------------
# Whole spectrum at one checkpoint

@dataclasses.dataclass(frozen=True)
class FullSpectrum:
    """The whole spectrum of traced Θ at one checkpoint (raw, not /n).

    Attributes:
      method: "dense" (all n eigenvalues, LAPACK) or "slq" (stochastic Lanczos quadrature).
      eigenvalues: (n,) descending float64 when dense, else empty. Includes the values
        below ``floor``; use :func:`ntk_core._src.spectra.split_at_floor` to plot only the
        resolved ones.
      nodes, weights: SLQ quadrature (weights sum to 1) when "slq", else empty.
      trace: exact trace. topk: (k,) top-k (dense: LAPACK; slq: Lanczos).
      floor: round-off floor ε·tr(Θ) + n·ε₆₄·λ_max (ε: precision the kernel entries were formed in,
        ``kernel_dtype``): eigenvalues below it are round-off, not spectrum. See
        :func:`ntk_core._src.spectra.roundoff_floor` for the definition and its derivation.
      below_floor: number of eigenvalues below ``floor`` (dense: exact count; slq: the
        estimate round(n·Σ weights of nodes below the floor)).
      kernel_dtype: "float64" (dense path, formed with NumPy/BLAS) or "float32" (JAX:
        the matrix-free product, or the dense path with ``dense_dtype="float32"``).
      residual: max relative residual ‖Θv − λv‖/|λ| of the Lanczos top-k (slq path).
        NaN on the dense path: a direct LAPACK solve has no iteration to converge; its
        eigenvalues are exact to within the floor.
      converged: whether the top-k solve converged (always True on the dense path).
      note: fallback account from the top-k solve ("" normally).
    """

    method: str
    eigenvalues: np.ndarray
    nodes: np.ndarray
    weights: np.ndarray
    trace: float
    topk: np.ndarray
    floor: float = float("nan")
    below_floor: int = 0
    kernel_dtype: str = "float32"
    residual: float = float("nan")
    converged: bool = True
    note: str = ""


def full_spectrum(params, x, *, parameterization: str, dense_max: int = 4000, top_k: int = 10,
                  slq_probes: int = 8, slq_steps: int = 60, seed: int = 0,
                  dense_dtype: str = "float64", maxiter: int | None = None,
                  scales=None, mesh=None, devices=None, apply_fn=None,
                  generic_method: str = "ntk_vp") -> FullSpectrum:
    """All eigenvalues (dense, n ≤ dense_max) or an SLQ spectral measure (matrix-free).

    Args:
      dense_dtype: precision the dense kernel is *formed* in: "float64" (default; NumPy
        BLAS from the float32 parameters, floor ≈ n·ε₆₄·λ_max) or "float32" (the JAX kernel,
        floor ≈ ε₃₂·tr Θ). The eigenvalues themselves are always computed in float64.
      maxiter: ARPACK restart cap for the slq path's top-k.
      scales: optional explicit (a1, c1, a2, c2) (params zero-padded from a smaller width).
      mesh / devices: as in :func:`checkpoint_spectra` (slq path only): trace and top-k on
        the sample-sharded operator; the SLQ probes' Lanczos vectors (``slq_steps`` of them)
        stay on the host, each product sharded over the mesh.
      apply_fn: any network ``f(params, x)``: the kernel is the generic
        :class:`ntk_core._src.generic.NTKOperator` — formed from its vjp/jvp in float32 when
        n ≤ dense_max (``dense_dtype`` is then float32, whatever was asked), else SLQ on it.
      generic_method: with ``apply_fn`` and n ≤ dense_max, "autodiff" forms that float32
        kernel by blocked Jacobian contraction instead, "structured" layer-wise (depth-d MLP
        only) — the same matrix at another cost.

    Returns:
      :class:`FullSpectrum`; eigenvalues of raw traced Θ (mean over logits, not /n), with
      the round-off floor, the count below it, and the top-k residual/convergence.
    """
    n = np.shape(x)[0]
    empty = np.zeros(0)
    kw = _scales_kw(scales)
    if apply_fn is not None:
        _check_generic_method(generic_method)
        p, xj = {k: jnp.asarray(v) for k, v in params.items()}, jnp.asarray(x)
        if n <= dense_max:
            theta = generic_dense_kernel(generic_method, apply_fn, p, xj, parameterization)
            trace = float(np.trace(theta))
            ds = _spectra.dense_spectrum(theta, formed_dtype=np.float32)
            eig = ds.eigenvalues
            return FullSpectrum("dense", eig, empty, empty, trace, eig[: min(top_k, n)].copy(),
                                floor=ds.floor, below_floor=ds.below_floor, kernel_dtype=ds.formed_dtype,
                                residual=float("nan"), converged=True, note="")
        op = _generic.NTKOperator(apply_fn, p, xj)
        trace = float(op.diagonal().sum())
        mv = op.matvec
        res = _spectra.top_k_eigs(op, min(top_k, n), return_vectors=True, return_result=True,
                                  tol=op.arpack_tol, maxiter=maxiter)
        return _slq_spectrum(mv, n, trace, res, slq_probes, slq_steps, seed)
    if n <= dense_max:
        if dense_dtype == "float64":
            theta = _traced_ntk_float64_upper(params, x, parameterization=parameterization, scales=scales)
            trace = float(np.trace(theta))
            ds = _spectra.dense_spectrum(theta, formed_dtype=np.float64, triangle="upper", overwrite=True)
        elif dense_dtype == "float32":
            xj = jnp.asarray(x)
            p = {k: jnp.asarray(v) for k, v in params.items()}
            g = _ntk.gram(xj, parameterization=parameterization)
            theta = np.asarray(_ntk.traced_ntk_from_gram(p, xj, g, parameterization=parameterization, **kw))
            trace = float(np.trace(theta, dtype=np.float64))
            ds = _spectra.dense_spectrum(theta, formed_dtype=np.float32)
        else:
            raise ValueError(f"dense_dtype={dense_dtype!r}; allowed: 'float64', 'float32'")
        eig = ds.eigenvalues
        return FullSpectrum("dense", eig, empty, empty, trace, eig[: min(top_k, n)].copy(),
                            floor=ds.floor, below_floor=ds.below_floor, kernel_dtype=ds.formed_dtype,
                            residual=float("nan"), converged=True, note="")
    mesh = _sharded.spectrum_mesh(mesh, devices)
    if mesh is not None:
        op = _sharded.sharded_closed_form(params, x, parameterization=parameterization, mesh=mesh,
                                          scales=scales)
        trace = _sharded.operator_trace(op)
        mv = op.host_matvec()
        res = _sharded.operator_top_k(op, min(top_k, n), tol=SHARDED_TOL, return_vectors=True,
                                      **({} if maxiter is None else {"max_steps": int(maxiter)}))
    else:
        xj = jnp.asarray(x)
        p = {k: jnp.asarray(v) for k, v in params.items()}
        trace = float(jnp.sum(_ntk.ntk_diagonal(p, xj, parameterization=parameterization, **kw)))
        state = _ntk.matfree_state(p, xj, parameterization=parameterization, **kw)
        mv = lambda v: np.asarray(_ntk.matfree_matvec(state, jnp.asarray(v, jnp.float32)), np.float64)
        res = _spectra.top_k_eigs(_spectra.as_operator(mv, n), min(top_k, n), return_vectors=True,
                                  return_result=True, tol=1e-6, maxiter=maxiter)
    return _slq_spectrum(mv, n, trace, res, slq_probes, slq_steps, seed)


def _slq_spectrum(mv, n, trace, res, slq_probes, slq_steps, seed) -> FullSpectrum:
    """SLQ spectral measure deflated by the converged leading pairs of ``res``."""
    empty = np.zeros(0)
    topk, vecs = res.values, res.vectors
    d = max(min(topk.size, n - 2), 0)  # leave a complement for the probes
    ok = np.isfinite(topk[:d]) & np.all(np.isfinite(vecs[:, :d]), axis=0)
    d = int(np.argmin(ok)) if not ok.all() else d   # deflate only the leading finite pairs
    nodes, weights = _spectra.slq(mv, n, num_probes=slq_probes, steps=slq_steps, seed=seed,
                                  deflate=(topk[:d], vecs[:, :d]) if d else None)
    finite = np.concatenate([topk[np.isfinite(topk)], nodes])
    floor = _spectra.roundoff_floor(trace, n, finite.max() if finite.size else 0.0, np.float32)
    below = int(round(n * float(weights[nodes < floor].sum())))
    return FullSpectrum("slq", empty, nodes, weights, trace, topk, floor=floor, below_floor=below,
                        kernel_dtype="float32", residual=res.max_residual, converged=res.converged,
                        note=res.note)
