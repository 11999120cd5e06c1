"""Kernel motion and the infinite-width limit: exact Frobenius statistics of traced NTKs
from their closed-form factors, the empirical NNGP, and kernel-regression predictors.

Conventions (as everywhere in ntk_core): the traced kernel is the **mean** over the 10
logits, raw (not /n), of the raw parameters with the parameterization's multipliers.
Everything here is NumPy float64, evaluated from the given (usually float32) parameters,
so differences of kernels (Θ_t − Θ_0, consecutive epochs) carry no float32 cancellation.

Closed form (see :mod:`ntk_core._src.ntk`). With z = a1·xW1 + c1·b1, H = relu(Z),
M = 1[Z > 0], s_u = mean_k W2[u,k]² and G = a1²·XXᵀ + c1²:

  Θ = a2²·(H Hᵀ + G ∘ (M diag(s) Mᵀ)) + c2²·11ᵀ

so Θ is fully described by its *factors* (H, M, s, a1, c1, a2, c2): O(n·w) numbers.

Frobenius inner products without forming n×n. ⟨Θ_A, Θ_B⟩_F = Σ_ij Θ_A,ij Θ_B,ij. The
purely low-rank parts have factor identities (⟨H_A H_Aᵀ, H_B H_Bᵀ⟩ = ‖H_Aᵀ H_B‖_F²,
1ᵀ H Hᵀ 1 = ‖Hᵀ1‖²), but the Hadamard term G ∘ (M S Mᵀ) mixes a rank-785 factor with a
rank-w factor, whose factor form costs n·w_A·w_B·784 (more than the n² route for every
width of interest). It is therefore summed exactly over **row blocks**: rows R of both
kernels are formed as (b × n) slabs, Θ[R, :] = a2²(H_R Hᵀ + G_R ∘ ((M_R·s) Mᵀ)) + c2², and
their products summed; memory O(b·n + n·(784 + w)), never n×n; cost O(n²·(784 + w_A +
w_B)) — the same as forming the kernels once. :func:`kernel_path_stats` does this for a
whole run's checkpoints in one pass (each row block of G computed once, shared by all
checkpoints), giving every norm, inner product and distance the kernel-motion page needs.

Empirical NNGP. At init each logit f_k is (at infinite width) an independent draw of a GP
with kernel K (``analytic_kernels``'s NNGP). Two estimates from one network:

* ``"readout"`` (default): K̂ = a2²·v_W2·H Hᵀ + c2²·v_b2 = E[(1/10)Σ_k f_k(x) f_k(x') | W1, b1]
  — the output covariance averaged over the output layer's init given this network's
  hidden layer (v_W2, v_b2: variances of the raw W2, b2 entries at init). A sum over the
  w hidden units: it converges to K at rate w^-1/2, like the NTK.
* ``"logits"``: (1/10)Σ_k f_k(x) f_k(x') — the output Gram (neural-tangents'
  ``empirical_nngp_fn`` with ``trace_axes=(-1,)``). Ten draws of a GP average to K only
  up to Monte-Carlo error: E‖K̂ − K‖_F² = (‖K‖_F² + (tr K)²)/10 for Gaussian outputs, so
  its relative error stays O(1/√10) ≈ 0.3–0.7 at any width; it does NOT converge.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from typing import Callable, Mapping, NamedTuple, Sequence

import numpy as np
import scipy.linalg
from threadpoolctl import threadpool_limits

from ntk_core._src import archs as _archs
from ntk_core._src import infinite as _infinite
from ntk_core._src import model as _model

DEFAULT_BLOCK = 512  # rows per slab: 512 × n × 8 bytes per kernel slab


_LOCAL = threading.local()


@contextlib.contextmanager
def one_blas_thread():
    """One OpenBLAS thread inside the block. These matmuls are mid-sized (n ≈ 256–1000 rows):
    on the 2-core server, with XLA or other requests busy, two OpenBLAS threads spin against
    them — measured (256×512)·(512×256) float64: 1.3 ms with one thread, 28 ms with two under
    load. Same policy as ``spectra.py`` for ARPACK's small products. Re-entrant: nested
    blocks (and the functions of this module, which each use one) cost nothing, since
    entering threadpoolctl's limit takes milliseconds."""
    if getattr(_LOCAL, "depth", 0):
        _LOCAL.depth += 1
        try:
            yield
        finally:
            _LOCAL.depth -= 1
        return
    with threadpool_limits(limits=1, user_api="blas"):
        _LOCAL.depth = 1
        try:
            yield
        finally:
            _LOCAL.depth = 0


def _one_blas_thread(fn):
    """Runs ``fn`` inside :func:`one_blas_thread`."""
    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        with one_blas_thread():
            return fn(*args, **kwargs)
    return wrapped


class KernelFactors(NamedTuple):
    """The closed-form factors of one traced kernel on n inputs (float64).

    Attributes:
      h: (n, w) ReLU activations. m: (n, w) 0/1 ReLU derivative masks.
      sw: (w,) s_u = mean_k W2[u, k]². scales: (a1, c1, a2, c2) multipliers.
    """

    h: np.ndarray
    m: np.ndarray
    sw: np.ndarray
    scales: tuple[float, float, float, float]


def _scales(params: Mapping, parameterization: str, scales) -> tuple[float, float, float, float]:
    if scales is None:
        s = _model.scales_for({k: np.asarray(v) for k, v in params.items()}, parameterization)
    else:
        s = _model.as_scales(tuple(np.asarray(scales, np.float64).ravel().tolist())
                             if not isinstance(scales, tuple) else scales)
    return tuple(float(v) for v in s)  # type: ignore[return-value]


@_one_blas_thread
def kernel_factors(params: Mapping, x, *, parameterization: str = "standard",
                   scales=None) -> KernelFactors:
    """Factors (H, M, s, scales) of the traced kernel of ``params`` on inputs ``x``.

    Args:
      params: raw parameters {"W1", "b1", "W2", "b2"} (NumPy or JAX, any float dtype).
      x: (n, 784) inputs.
      scales: explicit (a1, c1, a2, c2) (e.g. ``layer_scales(w, ...)`` for params
        zero-padded from true width w), default those of the params' own width.

    Returns:
      :class:`KernelFactors` in float64. Zero-padded hidden units give zero columns
      (z = 0 → h = 0, m = 0), so they change no kernel value.
    """
    a1, c1, a2, c2 = _scales(params, parameterization, scales)
    x = np.asarray(x, np.float64)
    w1, b1 = np.asarray(params["W1"], np.float64), np.asarray(params["b1"], np.float64)
    z = a1 * (x @ w1) + c1 * b1[None, :]
    sw = np.mean(np.asarray(params["W2"], np.float64) ** 2, axis=1)
    return KernelFactors(np.maximum(z, 0.0), (z > 0).astype(np.float64), sw, (a1, c1, a2, c2))


def _gram_rows(x: np.ndarray, rows: slice, a1: float, c1: float) -> np.ndarray:
    return a1 * a1 * (x[rows] @ x.T) + c1 * c1


def _kernel_rows(f: KernelFactors, g_rows: np.ndarray, rows: slice) -> np.ndarray:
    """Θ[rows, :] (b × n) from the factors and the matching rows of G."""
    _, _, a2, c2 = f.scales
    k = (f.m[rows] * f.sw[None, :]) @ f.m.T
    k *= g_rows
    k += f.h[rows] @ f.h.T
    k *= a2 * a2
    k += c2 * c2
    return k


def _check_first_layer(factors: Sequence[KernelFactors]) -> tuple[float, float]:
    a1, c1 = factors[0].scales[:2]
    for f in factors[1:]:
        if not (np.isclose(f.scales[0], a1, rtol=1e-12, atol=0) and np.isclose(f.scales[1], c1, rtol=1e-12, atol=0)):
            raise ValueError("kernels to compare must share a1 and c1 (the same parameterization "
                             f"and σ's): got {factors[0].scales[:2]} and {f.scales[:2]}")
    return a1, c1


@_one_blas_thread
def traced_kernel(f: KernelFactors, x) -> np.ndarray:
    """The dense (n, n) float64 traced kernel from its factors (small n; tests, references)."""
    x = np.asarray(x, np.float64)
    a1, c1 = f.scales[:2]
    every = slice(0, x.shape[0])
    k = _kernel_rows(f, _gram_rows(x, every, a1, c1), every)
    return 0.5 * (k + k.T)


@_one_blas_thread
def frobenius_inner(fa: KernelFactors, fb: KernelFactors, x, *, block: int = DEFAULT_BLOCK) -> float:
    """⟨Θ_A, Θ_B⟩_F = Σ_ij Θ_A,ij·Θ_B,ij, exact, in row blocks (never n×n in memory).

    Both kernels are on the same inputs ``x`` and parameterization (shared G); their
    widths may differ.
    """
    x = np.asarray(x, np.float64)
    a1, c1 = _check_first_layer([fa, fb])
    total = 0.0
    for start in range(0, x.shape[0], block):
        rows = slice(start, min(start + block, x.shape[0]))
        g = _gram_rows(x, rows, a1, c1)
        total += float(np.sum(_kernel_rows(fa, g, rows) * _kernel_rows(fb, g, rows)))
    return total


class PathStats(NamedTuple):
    """Frobenius statistics of a sequence of kernels Θ_0, …, Θ_{T} (e.g. epochs of a run).

    Attributes:
      norm: (T+1,) ‖Θ_t‖_F.
      dist_init: (T+1,) ‖Θ_t − Θ_0‖_F (0 at t = 0), summed from the difference itself.
      dist_next: (T,) ‖Θ_{t+1} − Θ_t‖_F.
      inner_next: (T,) ⟨Θ_t, Θ_{t+1}⟩_F.
      velocity: (T,) kernel velocity 1 − ⟨Θ_t, Θ_{t+1}⟩_F/(‖Θ_t‖_F‖Θ_{t+1}‖_F) (Fort et
        al. 2020's kernel distance between consecutive checkpoints), evaluated as
        (‖Θ_{t+1} − Θ_t‖² − (‖Θ_{t+1}‖ − ‖Θ_t‖)²)/(2‖Θ_t‖‖Θ_{t+1}‖), which has no
        cancellation when the kernels are nearly parallel.
      rel_change: (T+1,) ‖Θ_t − Θ_0‖_F/‖Θ_0‖_F.
      alignment: (T+1,) centered kernel–target alignment A(Θ_t, YYᵀ) (Cortes et al. 2012)
        = ⟨CΘC, CYYᵀC⟩_F/(‖CΘC‖_F‖CYYᵀC‖_F), C = I − 11ᵀ/n; NaN when no targets were given.
    """

    norm: np.ndarray
    dist_init: np.ndarray
    dist_next: np.ndarray
    inner_next: np.ndarray
    velocity: np.ndarray
    rel_change: np.ndarray
    alignment: np.ndarray


@_one_blas_thread
def kernel_path_stats(factors: Sequence[KernelFactors], x, y=None, *,
                      block: int = DEFAULT_BLOCK) -> PathStats:
    """Every Frobenius statistic of a run's kernels in one exact pass over row blocks.

    Args:
      factors: the kernels Θ_0, …, Θ_T as :class:`KernelFactors` on the same inputs.
      x: (n, 784) inputs. y: optional (n, c) targets (one-hot) for the alignment.
      block: rows per slab (memory ≈ 3·block·n·8 bytes plus the factors).

    Returns:
      :class:`PathStats` (float64).
    """
    if len(factors) < 1:
        raise ValueError("need at least one kernel")
    x = np.asarray(x, np.float64)
    a1, c1 = _check_first_layer(factors)
    cache: dict = {}

    def rows_of(t: int, rows: slice) -> np.ndarray:
        if cache.get("rows") != (rows.start, rows.stop):   # one Gram slab per row block
            cache.update(rows=(rows.start, rows.stop), g=_gram_rows(x, rows, a1, c1))
        return _kernel_rows(factors[t], cache["g"], rows)

    return _path_stats(rows_of, len(factors), x.shape[0], y, block)


@_one_blas_thread
def dense_path_stats(kernels: Sequence, y=None, *, block: int = DEFAULT_BLOCK) -> PathStats:
    """:func:`kernel_path_stats` of kernels given as dense (n, n) arrays (any network's,
    e.g. the generic paths' float32 kernels); the sums are taken in float64.

    Returns:
      :class:`PathStats` (float64).
    """
    if len(kernels) < 1:
        raise ValueError("need at least one kernel")
    n = np.shape(kernels[0])[0]
    return _path_stats(lambda t, rows: np.asarray(kernels[t][rows], np.float64), len(kernels), n,
                       y, block)


def _path_stats(rows_of: Callable[[int, slice], np.ndarray], t_count: int, n: int, y, block: int
                ) -> PathStats:
    """The one pass over row blocks behind both path-stats functions: ``rows_of(t, rows)``
    gives rows ``rows`` of kernel t in float64."""
    sq = np.zeros(t_count)
    d0 = np.zeros(t_count)
    dn = np.zeros(max(t_count - 1, 0))
    ip = np.zeros(max(t_count - 1, 0))
    rowsum = np.zeros((t_count, n))
    yky = np.zeros(t_count)
    yc = None
    if y is not None:
        y = np.asarray(y, np.float64)
        yc = y - y.mean(axis=0, keepdims=True)          # C·Y
    for start in range(0, n, block):
        rows = slice(start, min(start + block, n))
        first = prev = None
        for t in range(t_count):
            k = rows_of(t, rows)
            sq[t] += float(np.sum(k * k))
            rowsum[t, rows] = k.sum(axis=1)
            if yc is not None:
                yky[t] += float(np.sum(yc[rows] * (k @ yc)))
            if first is None:
                first = k
            else:
                d0[t] += float(np.sum((k - first) ** 2))
            if prev is not None:
                dn[t - 1] += float(np.sum((k - prev) ** 2))
                ip[t - 1] += float(np.sum(k * prev))
            prev = k
    norm = np.sqrt(sq)
    dist_init, dist_next = np.sqrt(d0), np.sqrt(dn)
    denom = 2.0 * norm[:-1] * norm[1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        velocity = (dn - (norm[1:] - norm[:-1]) ** 2) / denom
        rel_change = dist_init / norm[0]
    velocity = np.maximum(velocity, 0.0)
    if yc is not None:
        total = rowsum.sum(axis=1)
        centered_sq = sq - 2.0 / n * np.sum(rowsum * rowsum, axis=1) + (total / n) ** 2
        yty = yc.T @ yc
        with np.errstate(invalid="ignore", divide="ignore"):
            alignment = yky / (np.sqrt(np.maximum(centered_sq, 0.0)) * np.linalg.norm(yty))
    else:
        alignment = np.full(t_count, np.nan)
    return PathStats(norm, dist_init, dist_next, ip, velocity, rel_change, alignment)


@_one_blas_thread
def centered_alignment(k, y) -> float:
    """Dense centered kernel–target alignment A(K, YYᵀ) (Cortes, Mohri & Rostamizadeh 2012):
    ⟨CKC, CYYᵀC⟩_F/(‖CKC‖_F·‖CYYᵀC‖_F) with C = I − 11ᵀ/n. In [−1, 1] for PSD K."""
    k = np.asarray(k, np.float64)
    y = np.asarray(y, np.float64)
    n = k.shape[0]
    c = np.eye(n) - 1.0 / n
    kc = c @ k @ c
    yc = c @ y @ y.T @ c
    return float(np.sum(kc * yc) / (np.linalg.norm(kc) * np.linalg.norm(yc)))


# --------------------------------------------------------------------------- infinite width

def relative_frobenius(a, b) -> float:
    """‖a − b‖_F / ‖b‖_F in float64."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _last_hidden64(params: Mapping, x, parameterization: str, scales) -> tuple[np.ndarray, float, float]:
    """(H_d, a, c): the last hidden layer of the depth-d MLP in float64 and the output
    layer's multipliers. Depth 1 honours ``scales`` (zero-padded params); deeper MLPs take
    each layer's multipliers from its fan-in (:func:`ntk_core._src.archs.mlp_apply`)."""
    h = np.asarray(x, np.float64).reshape(np.shape(x)[0], -1)
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    d = _archs.mlp_depth(p)
    if d == 1:
        a1, c1, a2, c2 = _scales(params, parameterization, scales)
        return np.maximum(a1 * (h @ p["W1"]) + c1 * p["b1"][None, :], 0.0), a2, c2
    if scales is not None:
        raise ValueError("scales (zero-padded params) are only defined for the one-hidden MLP")
    mults = [_archs._mults(parameterization, p[f"W{l}"].shape[0], _model.SIGMA_W, _model.SIGMA_B)
             for l in range(1, d + 2)]
    for l, (a, c) in enumerate(mults[:-1], start=1):
        h = np.maximum(a * (h @ p[f"W{l}"]) + c * p[f"b{l}"][None, :], 0.0)
    return (h, *mults[-1])


@_one_blas_thread
def forward64(params: Mapping, x, *, parameterization: str = "standard", scales=None) -> np.ndarray:
    """Network outputs f(x) (n, 10) evaluated in float64 (same function as ``apply``, or as
    :func:`ntk_core._src.archs.mlp_apply` for a deeper MLP's params)."""
    h, a, c = _last_hidden64(params, x, parameterization, scales)
    d = _archs.mlp_depth(params)
    return a * (h @ np.asarray(params[f"W{d + 1}"], np.float64)) + c * np.asarray(params[f"b{d + 1}"], np.float64)[None, :]


@_one_blas_thread
def empirical_nngp(params: Mapping, x, x2=None, *, parameterization: str = "standard",
                   width: int | None = None, estimator: str = "readout", scales=None) -> np.ndarray:
    """The NNGP kernel estimated from one network at init (float64, raw, mean over logits).

    Args:
      estimator: "readout" — a2²·v_W2·H(x)H(x')ᵀ + c2²·v_b2, the output covariance
        averaged over the output layer's init distribution given this network's (last)
        hidden layer H (any depth 1–4); converges to the analytic NNGP at rate w^-1/2. "logits" — the output Gram
        (1/10)·Σ_k f_k(x) f_k(x'): ten draws of the GP, whose Monte-Carlo error does not
        vanish with width (see the module docstring).
      width: the TRUE width (for the standard parameterization's init variances 1/(3w));
        default the params' own width (pass it for zero-padded params).

    Returns:
      (n1, n2) float64, consistent with ``analytic_kernels``' NNGP (its expectation).
    """
    x2 = x if x2 is None else x2
    if estimator == "logits":
        f1 = forward64(params, x, parameterization=parameterization, scales=scales)
        f2 = forward64(params, x2, parameterization=parameterization, scales=scales)
        return f1 @ f2.T / f1.shape[1]
    if estimator != "readout":
        raise ValueError(f"estimator={estimator!r}; allowed: readout, logits")
    w = int(np.asarray(params["W1"]).shape[1]) if width is None else int(width)
    _, _, v_w2, v_b2 = _infinite._variances(parameterization, w, np.asarray(params["W1"]).shape[0])
    h1, a2, c2 = _last_hidden64(params, x, parameterization, scales)
    h2, _, _ = _last_hidden64(params, x2, parameterization, scales)
    return a2 * a2 * v_w2 * (h1 @ h2.T) + c2 * c2 * v_b2


class Regression(NamedTuple):
    """Kernel-regression predictions and the ridge actually added (0.0 = none)."""

    predictions: np.ndarray
    ridge: float


RIDGE_START = 1e-12  # relative to mean(diag K): first ridge tried when K is not positive definite


@_one_blas_thread
def kernel_regression(k_train, k_cross, y, *, f0_train=None, f0_test=None,
                      steps: int | None = None, lr: float | None = None) -> Regression:
    """Infinite-width predictors with a fixed kernel K (NTK or NNGP), float64.

    ``steps=None`` (the limit t → ∞): f(x*) = f0(x*) + K(x*, X)·K⁻¹·(Y − f0(X)) — with the
    default zero init outputs (the mean over initializations) this is NTK regression /
    the noiseless NNGP posterior mean K(x*, X)K⁻¹Y. K is Cholesky-factored as is; only if
    that fails a ridge ε·mean(diag K), ε = 1e-12, 1e-11, …, is added (and returned).

    ``steps=T, lr=η``: the linearized network with kernel K after T full-batch gradient-
    descent steps on the ½·mean squared loss (the project's loss): the residual evolves as
    r_{k+1} = (I − ηK/n)·r_k, so f_T(x*) = f0(x*) − K(x*, X)·K⁻¹(I − (I − ηK/n)^T)·r_0,
    evaluated with K's eigendecomposition as V·diag((1 − (1 − ηλ/n)^T)/λ)·Vᵀ (finite as
    λ → 0: the limit is Tη/n), so no inverse of a small eigenvalue is ever formed.

    Args:
      k_train: (n, n) K(X, X). k_cross: (m, n) K(x*, X). y: (n, c) targets.
      f0_train, f0_test: init outputs (n, c), (m, c); default zeros.

    Returns:
      :class:`Regression` with (m, c) predictions.
    """
    k = np.asarray(k_train, np.float64)
    kx = np.asarray(k_cross, np.float64)
    y = np.asarray(y, np.float64)
    n = k.shape[0]
    f0_train = np.zeros_like(y) if f0_train is None else np.asarray(f0_train, np.float64)
    f0_test = np.zeros((kx.shape[0], y.shape[1])) if f0_test is None else np.asarray(f0_test, np.float64)
    r0 = y - f0_train
    k = 0.5 * (k + k.T)
    if steps is None:
        ridge, scale = 0.0, float(np.mean(np.diag(k)))
        eps = RIDGE_START
        while True:
            try:
                cf = scipy.linalg.cho_factor(k + ridge * np.eye(n), lower=True, check_finite=True)
                break
            except np.linalg.LinAlgError:
                if eps > 1e-2:
                    raise
                ridge = eps * scale
                eps *= 10.0
        return Regression(f0_test + kx @ scipy.linalg.cho_solve(cf, r0), ridge)
    if lr is None:
        raise ValueError("steps needs lr")
    lam, v = np.linalg.eigh(k)
    lam = np.maximum(lam, 0.0)
    a = lr * lam / n
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        decay = np.where(a < 1.0, -np.expm1(steps * np.log1p(-np.minimum(a, 0.5 + 0.5 * a))),
                         1.0 - np.power(1.0 - a, steps))
        g = np.where(lam > 1e-300, decay / lam, steps * lr / n)
    return Regression(f0_test + kx @ (v @ (g[:, None] * (v.T @ r0))), 0.0)


def sample_init(seed: int, width: int, parameterization: str = "standard", *,
                in_dim: int = _model.INPUT_DIM, out_dim: int = _model.OUTPUT_DIM, depth: int = 1) -> dict:
    """Raw parameters drawn with NumPy from the distributions of ``init_params`` /
    ``init_mlp`` (standard: U(±1/√fan_in) for every weight and bias; NTK: N(0, 1)),
    float32, for ``depth`` hidden layers. Independent draws — not the same numbers as
    ``init_params(key)`` — for statistics over initializations that need no training (one
    NumPy stream per (seed, width), no XLA compilation; depth 1 draws what it always drew)."""
    rng = np.random.default_rng([int(seed), int(width)])
    dims = [in_dim] + [width] * depth + [out_dim]
    shapes, fan_in = {}, {}
    for l in range(1, depth + 2):
        shapes[f"W{l}"], shapes[f"b{l}"] = (dims[l - 1], dims[l]), (dims[l],)
        fan_in[f"W{l}"] = fan_in[f"b{l}"] = dims[l - 1]
    if parameterization == "standard":
        return {k: (rng.uniform(-1.0, 1.0, s) / np.sqrt(fan_in[k])).astype(np.float32)
                for k, s in shapes.items()}
    if parameterization == "ntk":
        return {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    raise ValueError(f"parameterization={parameterization!r}; allowed: standard, ntk")


def accuracy(predictions, labels) -> float:
    """Share of rows whose argmax equals the integer label."""
    return float(np.mean(np.argmax(np.asarray(predictions), axis=1) == np.asarray(labels)))
