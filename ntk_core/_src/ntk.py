"""Empirical NTK of the one-hidden-layer MLP: closed form, autodiff reference, matrix-free.

Conventions (neural-tangents compatible):
  * traced kernel Θ_ij = (1/10) Σ_k ∇θ f_k(x_i)·∇θ f_k(x_j) — the **mean** over the
    10 logits (nt's ``trace_axes=(-1,)``);
  * full kernel Θ[i, j, k, l] = ∇θ f_k(x_i)·∇θ f_l(x_j) (nt's ``trace_axes=()``);
  * gradients are taken w.r.t. the raw parameters of :mod:`ntk_core._src.model`,
    so the parameterization's multipliers appear in Θ;
  * ``normalize=True`` returns Θ/n with n = number of rows (x1).

Closed form. With z = a1·xW1 + c1·b1, h = relu(z), m = 1[z > 0], s_u = mean_k W2[u,k]²
and G = a1²·XXᵀ + c1²:

  traced Θ = a2²·(H Hᵀ + G ∘ (M diag(s) Mᵀ)) + c2²
  full   Θ[i,j,k,l] = δ_kl·(a2²·h_i·h_j + c2²) + a2²·G_ij·Σ_u m_iu m_ju W2[u,k] W2[u,l]

Cost O(n²(784 + width)) with no per-sample Jacobians.

Explicit scales. Every kernel function takes an optional ``scales=`` (a
:class:`~ntk_core._src.model.Scales` or (4,) array a1, c1, a2, c2; traced, so any value
reuses one compiled program). Parameters of true width w zero-padded to W (see
``model.pad_params``) with ``scales=layer_scales(w, parameterization)`` give exactly the
width-w kernel: a padded unit has z = 0, so h = relu(0) = 0 and m = 1[0 > 0] = 0, and
its W2 row is 0 (s_u = 0); it adds exact zeros to HHᵀ, to M diag(s) Mᵀ and to every
Jacobian entry. Kernels of all widths of a sweep then share one shape and one compile.
"""

from __future__ import annotations

import enum
import functools
from typing import Callable, NamedTuple

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import scipy.sparse.linalg as spla

from ntk_core._src import full_kernel as _full
from ntk_core._src import generic as _generic
from ntk_core._src import model as _model

_HP = jax.lax.Precision.HIGHEST


class NTKMethod(str, enum.Enum):
    """Implementation switch for :func:`empirical_ntk`."""

    CLOSED_FORM = "closed_form"
    AUTODIFF = "autodiff"
    NTK_VP = "ntk_vp"        # generic matrix-free vjp/jvp path (ntk_core._src.generic)


class _Features(NamedTuple):
    x: jax.Array      # (n, d) inputs
    h: jax.Array      # (n, w) relu activations
    m: jax.Array      # (n, w) relu derivative mask, same dtype
    z: jax.Array      # (n, w) pre-activations


def _features(params, x, s: _model.Scales) -> _Features:
    z = _model.preactivations(params, x, s)
    return _Features(x, jax.nn.relu(z), (z > 0).astype(z.dtype), z)


def _gram(x1, x2, s: _model.Scales):
    return s.a1 ** 2 * jnp.matmul(x1, x2.T, precision=_HP) + s.c1 ** 2


def _closed_traced_from_gram(params, f1: _Features, f2: _Features, g, s: _model.Scales):
    sw = jnp.mean(params["W2"] ** 2, axis=1)
    k = jnp.matmul(f1.m * sw[None, :], f2.m.T, precision=_HP)
    hh = jnp.matmul(f1.h, f2.h.T, precision=_HP)
    return s.a2 ** 2 * (hh + g * k) + s.c2 ** 2


def _closed_traced(params, x1, x2, s):
    f1, f2 = _features(params, x1, s), _features(params, x2, s)
    return _closed_traced_from_gram(params, f1, f2, _gram(x1, x2, s), s)


def _closed_full(params, x1, x2, s):
    f1, f2 = _features(params, x1, s), _features(params, x2, s)
    g = _gram(x1, x2, s)
    w2 = params["W2"]
    out = w2.shape[1]
    hh = s.a2 ** 2 * jnp.matmul(f1.h, f2.h.T, precision=_HP) + s.c2 ** 2
    # Σ_u m_iu m_ju W2[u,k] W2[u,l], built without an (n, n, w) intermediate per output pair.
    mw1 = f1.m[:, :, None] * w2[None, :, :]                       # (n1, w, out)
    mw2 = f2.m[:, :, None] * w2[None, :, :]                       # (n2, w, out)
    inner = jnp.einsum("iuk,jul->ijkl", mw1, mw2, precision=_HP)
    eye = jnp.eye(out, dtype=hh.dtype)
    return hh[:, :, None, None] * eye[None, None] + s.a2 ** 2 * g[:, :, None, None] * inner


def _flat_fn(params, s):
    flat, unravel = jax.flatten_util.ravel_pytree(params)

    def f(theta, x):
        return _model.apply(unravel(theta), x[None, :], scales=s)[0]

    return flat, f


def _autodiff_jac(params, x, s):
    flat, f = _flat_fn(params, s)
    return jax.vmap(lambda xi: jax.jacrev(f)(flat, xi))(x)        # (n, out, P)


def _autodiff_traced(params, x1, x2, s):
    flat, f = _flat_fn(params, s)
    out = params["W2"].shape[1]

    # One logit at a time keeps the Jacobian at (n, P) instead of (n, 10, P).
    def per_logit(k):
        fk = lambda theta, xi: f(theta, xi)[k]
        j1 = jax.vmap(lambda xi: jax.grad(fk)(flat, xi))(x1)
        j2 = jax.vmap(lambda xi: jax.grad(fk)(flat, xi))(x2)
        return jnp.matmul(j1, j2.T, precision=_HP)

    return jax.lax.map(per_logit, jnp.arange(out)).sum(0) / out


def _autodiff_full(params, x1, x2, s):
    j1 = _autodiff_jac(params, x1, s)
    j2 = _autodiff_jac(params, x2, s)
    return jnp.einsum("ikp,jlp->ijkl", j1, j2, precision=_HP)


def _ntk_vp(params, x1, x2, s, *, trace):
    apply_fn = lambda p, x: _model.apply(p, x, scales=s)  # noqa: E731 - gradients w.r.t. p only
    chunk, block = _generic._dense_sizes(apply_fn, params, x1, x2, trace, _generic.DEFAULT_BUDGET_FLOATS)
    return _generic._dense(apply_fn, params, x1, x2, trace=trace, chunk=chunk, block=block)


_IMPLS: dict[tuple[NTKMethod, bool], Callable] = {
    (NTKMethod.CLOSED_FORM, True): _closed_traced,
    (NTKMethod.CLOSED_FORM, False): _closed_full,
    (NTKMethod.AUTODIFF, True): _autodiff_traced,
    (NTKMethod.AUTODIFF, False): _autodiff_full,
    (NTKMethod.NTK_VP, True): functools.partial(_ntk_vp, trace=True),
    (NTKMethod.NTK_VP, False): functools.partial(_ntk_vp, trace=False),
}


def _scales(params, parameterization, scales, **kw) -> _model.Scales:
    """Explicit (possibly traced) scales, or the static ones of the params' shape."""
    if scales is None:
        return _model.scales_for(params, parameterization, **kw)
    return _model.as_scales(scales)


@functools.partial(jax.jit, static_argnames=("method", "trace", "parameterization", "sigma_w", "sigma_b"))
def _ntk_jit(params, x1, x2, scales, *, method, trace, parameterization, sigma_w, sigma_b):
    s = _scales(params, parameterization, scales, sigma_w=sigma_w, sigma_b=sigma_b)
    return _IMPLS[(method, trace)](params, x1, x2, s)


def empirical_ntk(params, x1, x2=None, *, parameterization: str = "standard",
                  method: str | NTKMethod = NTKMethod.CLOSED_FORM, trace: bool = True,
                  normalize: bool = False, sigma_w: float = _model.SIGMA_W,
                  sigma_b: float = _model.SIGMA_B, scales=None) -> jax.Array:
    """Empirical NTK of the MLP between two batches of inputs.

    Args:
      params: raw parameters ``{"W1", "b1", "W2", "b2"}``.
      x1: (n1, 784) inputs. x2: (n2, 784) inputs, default ``x1``.
      parameterization: "standard" or "ntk" (see :mod:`ntk_core._src.model`).
      method: "closed_form" (fast, exact for this architecture), "autodiff"
        (generic ``jax.grad``/``jacrev`` contraction, the reference) or "ntk_vp" (the
        generic matrix-free vjp/jvp path of :mod:`ntk_core._src.generic`, formed densely;
        for any other model use :func:`empirical_ntk_fn`).
      trace: True for the traced kernel (mean over the 10 logits), False for the full one.
      normalize: divide by n1 (Θ/n, the kernel of the mean-squared loss).
      scales: explicit (a1, c1, a2, c2) overriding the parameterization's ones for the
        params' shape (and sigma_w/sigma_b); use ``layer_scales(w, ...)`` for params
        zero-padded from true width w. Traced: no recompilation per value.

    Returns:
      traced: (n1, n2) array; full: (n1, n2, 10, 10) with axes (i, j, logit_i, logit_j).
      dtype of ``params``. Normalisation: mean over logits when traced, summed over
      parameters, raw Θ unless ``normalize``.
    """
    x2 = x1 if x2 is None else x2
    theta = _ntk_jit(params, x1, x2, scales, method=NTKMethod(method), trace=bool(trace),
                     parameterization=parameterization, sigma_w=float(sigma_w), sigma_b=float(sigma_b))
    return theta / x1.shape[0] if normalize else theta


# ----------------------------------------------------------------------------------------
# Checkpoint kernels sharing one Gram matrix, diagonal, and the matrix-free operator.
# Data are always passed as arguments: closed-over arrays become XLA constants and
# constant-folding X·Xᵀ costs minutes of compile time.

@functools.partial(jax.jit, static_argnames=("parameterization",))
def gram(x, *, parameterization: str = "standard"):
    """G = a1²·XXᵀ + c1², shape (n, n): shared by every checkpoint of a run."""
    s = _model.layer_scales(1, parameterization, in_dim=x.shape[1])  # a1, c1 do not depend on width
    return _gram(x, x, s)


@functools.partial(jax.jit, static_argnames=("parameterization",))
def traced_ntk_from_gram(params, x, g, *, parameterization: str = "standard", scales=None):
    """Traced Θ (n, n) for one checkpoint, reusing the shared Gram matrix ``g = gram(x)``.

    Args:
      scales: optional explicit (a1, c1, a2, c2), traced (see the module docstring): with
        params zero-padded from width w, pass ``layer_scales(w, parameterization)``.

    Returns:
      (n, n) raw traced Θ (mean over logits, not /n), exactly symmetric, dtype of params.
    """
    s = _scales(params, parameterization, scales)
    f = _features(params, x, s)
    theta = _closed_traced_from_gram(params, f, f, g, s)
    return 0.5 * (theta + theta.T)  # exactly symmetric, so eigensolvers need no copy


@functools.partial(jax.jit, static_argnames=("parameterization",))
def ntk_diagonal(params, x, *, parameterization: str = "standard", scales=None):
    """Diagonal Θ_ii of the traced kernel, shape (n,), O(n·(784 + width)).

    Args:
      scales: optional explicit (a1, c1, a2, c2), as in :func:`traced_ntk_from_gram`.

    Returns:
      (n,) raw traced diagonal (mean over logits, not divided by n).
    """
    s = _scales(params, parameterization, scales)
    f = _features(params, x, s)
    sw = jnp.mean(params["W2"] ** 2, axis=1)
    gx = s.a1 ** 2 * jnp.sum(x * x, axis=1) + s.c1 ** 2
    return s.a2 ** 2 * (jnp.sum(f.h * f.h, axis=1) + gx * jnp.matmul(f.m, sw, precision=_HP)) + s.c2 ** 2


class MatFreeState(NamedTuple):
    """Everything the matrix-free product needs: O(n·(784 + width)) memory."""

    x: jax.Array       # (n, d)
    h: jax.Array       # (n, w)
    m: jax.Array       # (n, w)
    sw: jax.Array      # (w,)
    scales: jax.Array  # (4,) a1, c1, a2, c2


@functools.partial(jax.jit, static_argnames=("parameterization",))
def matfree_state(params, x, *, parameterization: str = "standard", scales=None) -> MatFreeState:
    """Precomputes activations and masks for :func:`matfree_matvec`.

    Args:
      scales: optional explicit (a1, c1, a2, c2), as in :func:`traced_ntk_from_gram`.
    """
    s = _scales(params, parameterization, scales)
    f = _features(params, x, s)
    return MatFreeState(x, f.h, f.m, jnp.mean(params["W2"] ** 2, axis=1),
                        jnp.stack([jnp.asarray(v, dtype=x.dtype) for v in s]))


@jax.jit
def matfree_matvec(state: MatFreeState, v):
    """Θ·v for the traced kernel without forming Θ.

    Args:
      state: from :func:`matfree_state`.
      v: (n,) vector.

    Returns:
      (n,) raw traced Θ·v, dtype of the state.
    """
    a1, c1, a2, c2 = state.scales[0], state.scales[1], state.scales[2], state.scales[3]
    x, h, m, sw = state.x, state.h, state.m, state.sw
    hv = jnp.matmul(h, jnp.matmul(v, h, precision=_HP), precision=_HP)
    mv = m * v[:, None]                                           # (n, w)
    a = jnp.matmul(x.T, mv, precision=_HP)                        # (d, w) = Jᵀv on the W1 block
    xa = jnp.matmul(x, a, precision=_HP)                          # (n, w)
    gk = a1 ** 2 * jnp.matmul(xa * m, sw, precision=_HP)
    kv = c1 ** 2 * jnp.matmul(m, sw * jnp.sum(mv, axis=0), precision=_HP)
    return a2 ** 2 * (hv + gk + kv) + c2 ** 2 * jnp.sum(v)


@jax.jit
def matfree_matmat(state: MatFreeState, vs):
    """Θ·V for a block V of shape (n, b), column by column to keep memory O(n·w)."""
    return jax.lax.map(lambda v: matfree_matvec(state, v), vs.T).T


def as_numpy(a) -> np.ndarray:
    return np.asarray(jax.device_get(a))


# ----------------------------------------------------------------------------------------
# Any model: one signature for the three methods (neural-tangents' empirical_ntk_fn style).

def empirical_ntk_fn(apply_fn: Callable | None = None, *, method: str | NTKMethod = NTKMethod.NTK_VP,
                     trace: bool = True, normalize: bool = False, parameterization: str = "standard"
                     ) -> Callable:
    """``ntk(params, x1, x2=None)`` for any model ``apply_fn(params, x) -> (n, K)``.

    Args:
      apply_fn: the model; ``None`` means the project's one-hidden MLP
        (:func:`ntk_core._src.model.apply` in ``parameterization``).
      method: "ntk_vp" (matrix-free vjp/jvp path, formed densely), "autodiff" (per-sample
        ``jacrev`` Jacobians contracted) or "closed_form" (only for ``apply_fn=None``: the
        one-hidden MLP has the only closed form here).
      trace: traced (mean over the K logits) or full kernel; normalize: divide by n1.

    Returns:
      a function returning (n1, n2) traced or (n1, n2, K, K) full kernels, raw Θ unless
      ``normalize``, dtype of params.

    Raises:
      ValueError: ``method="closed_form"`` with a model other than the one-hidden MLP, or an
        unknown method.
    """
    try:
        m = NTKMethod(method)
    except ValueError:
        raise ValueError(f"method={method!r}; allowed: {', '.join(e.value for e in NTKMethod)}") from None
    if apply_fn is None:
        def mlp_ntk(params, x1, x2=None):
            return empirical_ntk(params, x1, x2, parameterization=parameterization, method=m,
                                 trace=trace, normalize=normalize)
        return mlp_ntk
    if m is NTKMethod.CLOSED_FORM:
        raise ValueError("method='closed_form' applies only to the one-hidden-layer MLP "
                         "(apply_fn=None); allowed for any model: ntk_vp, autodiff")
    dense = _generic.ntk_vp_dense if m is NTKMethod.NTK_VP else _generic.autodiff_dense

    def ntk(params, x1, x2=None):
        theta = dense(apply_fn, params, x1, x2, trace=trace)
        return theta / x1.shape[0] if normalize else theta

    return ntk


@functools.lru_cache(maxsize=64)
def _mlp_apply(scales: tuple) -> Callable:
    """One function object per static scales, so the generic operator's jit cache is reused."""
    return functools.partial(_model.apply, scales=_model.Scales(*scales))


class _JaxOperator(spla.LinearOperator):
    """A float64 LinearOperator over a float32 JAX matvec (what ARPACK needs)."""

    arpack_tol = 1e-6

    def __init__(self, matmat: Callable, n: int, diagonal: Callable | None, dtype):
        super().__init__(dtype=np.dtype(np.float64), shape=(n, n))
        self._mm, self._diag, self._dt = matmat, diagonal, dtype

    def _matvec(self, v):
        return np.asarray(self._mm(jnp.asarray(np.asarray(v).reshape(-1, 1), self._dt))[:, 0], np.float64)

    def _matmat(self, vs):
        return np.asarray(self._mm(jnp.asarray(vs, self._dt)), np.float64)

    def _adjoint(self):
        return self

    def diagonal(self) -> np.ndarray:
        return np.asarray(self._diag(), np.float64)


def ntk_operator(params, x, *, apply_fn: Callable | None = None,
                 method: str | NTKMethod = NTKMethod.NTK_VP, trace: bool = True,
                 parameterization: str = "standard", scales=None, chunk: int | None = None
                 ) -> spla.LinearOperator:
    """The empirical NTK on ``x`` as a symmetric operator for ``top_k_eigs``, ``slq`` and
    ``trace_estimate`` — one signature for every method.

    Args:
      apply_fn: any model ``f(params, x) -> (n, K)``; ``None`` = the one-hidden MLP of
        :mod:`ntk_core._src.model` in ``parameterization`` (with optional ``scales``).
      method: "ntk_vp" — matrix-free vjp/jvp (:class:`generic.NTKOperator`, O(n) memory);
        "closed_form" — the MLP's matrix-free closed form (traced: ``matfree_matvec``; full:
        ``full_kernel.full_ntk_matvec``), MLP only; "autodiff" — the kernel formed from
        per-sample Jacobians (O(n²) memory, small n).
      trace: traced (n × n) or full ((n·K) × (n·K), index i·K + a) kernel.

    Returns:
      a :class:`scipy.sparse.linalg.LinearOperator` (float64 in/out) with ``diagonal()`` and
      ``arpack_tol``; raw Θ (not /n).
    """
    m = NTKMethod(method)
    x = jnp.asarray(x)
    if apply_fn is None:
        s = _scales(params, parameterization, scales)
        apply_fn = _mlp_apply(tuple(float(a) for a in s)) if scales is None \
            else functools.partial(_model.apply, scales=s)
        mlp = True
    else:
        mlp = False
    if m is NTKMethod.NTK_VP:
        return _generic.NTKOperator(apply_fn, params, x, trace=trace, chunk=chunk)
    if m is NTKMethod.AUTODIFF:
        d = np.asarray(_generic.autodiff_dense(apply_fn, params, x, trace=trace), np.float64)
        if not trace:
            n, k = d.shape[0], d.shape[2]
            d = d.transpose(0, 2, 1, 3).reshape(n * k, n * k)
        d = 0.5 * (d + d.T)
        op = spla.aslinearoperator(d)
        op.diagonal = lambda: np.diag(d).copy()
        return op
    if not mlp:
        raise ValueError("method='closed_form' applies only to the one-hidden-layer MLP "
                         "(apply_fn=None); allowed for any model: ntk_vp, autodiff")
    n = int(x.shape[0])
    dt = params["W1"].dtype
    if trace:
        st = matfree_state(params, x, parameterization=parameterization, scales=scales)
        return _JaxOperator(lambda vs: matfree_matmat(st, vs), n,
                            lambda: ntk_diagonal(params, x, parameterization=parameterization, scales=scales), dt)
    st = _full.full_ntk_state(params, x, parameterization=parameterization, scales=scales)
    k = params["W2"].shape[1]
    mm = jax.jit(lambda s_, vs: jax.vmap(lambda v: _full.full_ntk_matvec_state(s_, v.reshape(n, k)).reshape(-1),
                                         in_axes=1, out_axes=1)(vs))
    diag = lambda: _generic.ntk_vp_diagonal(apply_fn, params, x, trace=False)  # noqa: E731
    return _JaxOperator(lambda vs: mm(st, vs), n * k, diag, dt)
