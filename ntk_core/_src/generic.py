"""Empirical NTK of ANY JAX model ``f(params, x) -> (n, K)``: matrix-free and dense.

Every empirical NTK is a Gram matrix of per-sample Jacobians J_i = ∂f(x_i)/∂θ (K × P):

  * full kernel   Θ[(i,a),(j,b)] = J_ia · J_jb                      (nt's ``trace_axes=()``)
  * traced kernel Θ_ij = (1/K) Σ_k J_ik · J_jk — the **mean** over the K logits, the
    project's convention (nt's ``trace_axes=(-1,)``), as in :mod:`ntk_core._src.ntk`.

Gradients are taken w.r.t. the raw leaves of ``params`` (so a parameterization's
multipliers inside ``f`` appear in Θ). Nothing here is divided by n (raw Θ).

Matrix-free product Θ·v = J(Jᵀv), never forming J or Θ, in two passes over the samples:

  reduce  u = Jᵀv   ``jax.vjp`` of each chunk of samples; the per-chunk parameter-space
                    vectors are summed (a ``lax.scan`` carry): traced, one vector per
                    logit k, u_k = Σ_j v_j J_jk (cotangent v ⊗ e_k); full, one vector,
                    u = Σ_jb V_jb J_jb (cotangent V).
  expand  Θv = Ju   ``jax.jvp`` of each chunk with tangent u: traced, (Θv)_i =
                    (1/K) Σ_k [J_i u_k]_k (the diagonal of the (K tangents × K outputs)
                    block); full, (ΘV)_ia = [J_i u]_a.

Memory O(n·(input + K) + K·P + chunk·(activations of one sample)·K): the samples are
processed ``chunk`` at a time, so n = 60,000 fits; time per product ≈ K forward +
K backward passes over the data for the traced kernel (a J·Jᵀv per logit), 1 + 1 for
the full one. The closed form of the one-hidden MLP (:mod:`ntk_core._src.ntk`) factors
the mean over logits through s_u = mean_k W2[u,k]² and is therefore cheaper.

The dense kernel for small n uses the SAME reduce/expand: for a block B of x2's rows,
reduce with the identity cotangent gives that block's Jacobians U = J_B (one vector per
(sample, logit)), and expand on x1 gives the block's columns Θ(x1, x_B).

``chunk`` (samples per pass) defaults to the largest size whose intermediates stay within
``DEFAULT_BUDGET_FLOATS`` (counted from the jaxpr of one sample's forward pass), at least
``MIN_CHUNK``.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse.linalg as spla

ApplyFn = Callable[[Any, jax.Array], jax.Array]

# Intermediates of one chunk's vmapped vjp/jvp: 2²⁴ floats = 64 MB in float32 (an upper
# estimate from the jaxpr; XLA fuses much of it away).
DEFAULT_BUDGET_FLOATS = 1 << 24
# Fewer samples per pass leave the GEMMs too thin (the CNN's budget alone would give 7).
MIN_CHUNK = 32


# ------------------------------------------------------------------------------------------
# helpers

def _tree_add(a, b):
    return jax.tree_util.tree_map(jnp.add, a, b)


def _num_params(params) -> int:
    return int(sum(np.prod(np.shape(p), dtype=np.int64) for p in jax.tree_util.tree_leaves(params)))


def _jaxpr_floats(jaxpr) -> int:
    total = 0
    for eqn in jaxpr.eqns:
        for v in eqn.outvars:
            shape = getattr(getattr(v, "aval", None), "shape", None)
            if shape is not None:
                total += int(np.prod(shape, dtype=np.int64))
        for p in eqn.params.values():
            inner = getattr(p, "jaxpr", p)
            if hasattr(inner, "eqns"):
                total += _jaxpr_floats(inner)
    return total


def per_sample_floats(apply_fn: ApplyFn, params, x) -> int:
    """Floats of every intermediate of one sample's forward pass (from its jaxpr), ≥ 1."""
    row = jax.ShapeDtypeStruct((1,) + tuple(x.shape[1:]), x.dtype)
    shapes = jax.tree_util.tree_map(lambda p: jax.ShapeDtypeStruct(np.shape(p), p.dtype), params)
    try:
        closed = jax.make_jaxpr(apply_fn)(shapes, row)
        return max(1, _jaxpr_floats(closed.jaxpr))
    except Exception:  # noqa: BLE001 - an estimate only; fall back to input + width-ish size
        return max(1, int(np.prod(x.shape[1:], dtype=np.int64)) * 4)


def auto_chunk(apply_fn: ApplyFn, params, x, *, columns: int, out_dim: int,
               budget_floats: int = DEFAULT_BUDGET_FLOATS) -> int:
    """Samples per pass so that ``columns`` simultaneous tangents fit the budget.

    Per sample a pass keeps ≈ 2·(forward intermediates)·columns floats (primal residuals
    and the tangents/cotangents) and columns·K outputs.
    """
    per = 2 * per_sample_floats(apply_fn, params, x) * max(1, columns) + columns * out_dim * out_dim
    n = int(x.shape[0])
    return int(max(1, min(n, max(MIN_CHUNK, budget_floats // max(1, per)))))


def _out_dim(apply_fn: ApplyFn, params, x) -> int:
    row = jax.ShapeDtypeStruct((1,) + tuple(x.shape[1:]), x.dtype)
    out = jax.eval_shape(apply_fn, params, row)
    if out.ndim != 2:
        raise ValueError(f"apply_fn(params, x) must return (n, K); got shape {out.shape} for n = 1")
    return int(out.shape[1])


def pad_chunks(x, chunk: int):
    """(n, ...) → (C, chunk, ...) zero-padded to C·chunk rows (NumPy or JAX)."""
    n = x.shape[0]
    c = -(-n // chunk)
    xp = jnp if isinstance(x, jax.Array) else np
    if c * chunk != n:
        x = xp.concatenate([x, xp.zeros((c * chunk - n,) + tuple(x.shape[1:]), x.dtype)])
    return x.reshape((c, chunk) + tuple(x.shape[1:]))


# ------------------------------------------------------------------------------------------
# reduce (Jᵀ·) and expand (J·): pure, traceable, chunked over samples

def reduce_traced(apply_fn: ApplyFn, params, xs, vs):
    """u_bk = Σ_j vs[j, b]·J_jk for every column b and logit k.

    Args:
      xs: (C, c, ...) chunked inputs. vs: (C, c, B) chunked columns (padding rows 0).

    Returns:
      pytree like ``params`` with leaves (B, K, *leaf.shape).
    """
    k_out = _out_dim(apply_fn, params, xs[0])
    b = vs.shape[-1]
    acc0 = jax.tree_util.tree_map(lambda p: jnp.zeros((b, k_out) + np.shape(p), p.dtype), params)
    eye = jnp.eye(k_out, dtype=vs.dtype)

    def body(acc, inp):
        xc, vc = inp
        _, vjp = jax.vjp(lambda p: apply_fn(p, xc), params)
        ct = vc.T[:, None, :, None] * eye[None, :, None, :]          # (B, K, c, K)
        u = jax.vmap(jax.vmap(lambda t: vjp(t)[0]))(ct)
        return _tree_add(acc, u), None

    return jax.lax.scan(body, acc0, (xs, vs))[0]


def expand_traced(apply_fn: ApplyFn, params, xs, u):
    """(Θv)_ib = (1/K) Σ_k [J_i u_bk]_k for every chunked sample i.

    Args:
      xs: (C, c, ...) chunked inputs. u: pytree of leaves (B, K, *leaf.shape).

    Returns:
      (C·c, B) array (padding rows included; slice to n).
    """

    def body(_, xc):
        f = lambda p: apply_fn(p, xc)
        jv = lambda t: jax.jvp(f, (params,), (t,))[1]               # (c, K)
        outs = jax.vmap(jax.vmap(jv))(u)                               # (B, K, c, K)
        k_out = outs.shape[1]
        diag = jnp.diagonal(outs, axis1=1, axis2=3)                    # (B, c, K)
        return None, (jnp.sum(diag, axis=-1) / k_out).T               # (c, B)

    ys = jax.lax.scan(body, None, xs)[1]
    return ys.reshape((-1, ys.shape[-1]))


def reduce_full(apply_fn: ApplyFn, params, xs, vs):
    """u_b = Σ_ja vs[j, a, b]·J_ja. xs (C, c, ...), vs (C, c, K, B) → leaves (B, *leaf.shape)."""
    b = vs.shape[-1]
    acc0 = jax.tree_util.tree_map(lambda p: jnp.zeros((b,) + np.shape(p), p.dtype), params)

    def body(acc, inp):
        xc, vc = inp
        _, vjp = jax.vjp(lambda p: apply_fn(p, xc), params)
        u = jax.vmap(lambda t: vjp(t)[0])(jnp.moveaxis(vc, -1, 0))    # cotangents (B, c, K)
        return _tree_add(acc, u), None

    return jax.lax.scan(body, acc0, (xs, vs))[0]


def expand_full(apply_fn: ApplyFn, params, xs, u):
    """(ΘV)_iab = [J_i u_b]_a. xs (C, c, ...), u leaves (B, ...) → (C·c, K, B)."""

    def body(_, xc):
        f = lambda p: apply_fn(p, xc)
        outs = jax.vmap(lambda t: jax.jvp(f, (params,), (t,))[1])(u)  # (B, c, K)
        return None, jnp.moveaxis(outs, 0, -1)

    ys = jax.lax.scan(body, None, xs)[1]
    return ys.reshape((-1,) + ys.shape[2:])


def _matmat_chunked(apply_fn, params, xs, v, *, trace: bool):
    """Θ·V on pre-chunked inputs. traced: v (C·c, B); full: v (C·c, K, B). Same shape out."""
    c_count, chunk = xs.shape[0], xs.shape[1]
    vs = v.reshape((c_count, chunk) + v.shape[1:])
    if trace:
        return expand_traced(apply_fn, params, xs, reduce_traced(apply_fn, params, xs, vs))
    return expand_full(apply_fn, params, xs, reduce_full(apply_fn, params, xs, vs))


_matmat_chunked_jit = jax.jit(_matmat_chunked, static_argnums=(0,), static_argnames=("trace",))


def _diagonal_chunked(apply_fn, params, xs, *, trace: bool):
    """Θ_ii (traced, (C·c,)) or Θ[(i,a),(i,a)] (full, (C·c, K)) from per-sample Jacobians."""

    def one(xi):
        return jax.jacrev(lambda p: apply_fn(p, xi[None])[0])(params)    # leaves (K, *shape)

    def body(_, xc):
        jac = jax.vmap(one)(xc)                                          # leaves (c, K, *shape)
        sq = sum(jnp.sum(jnp.reshape(leaf * leaf, leaf.shape[:2] + (-1,)), axis=-1)
                 for leaf in jax.tree_util.tree_leaves(jac))             # (c, K)
        return None, (jnp.mean(sq, axis=-1) if trace else sq)

    ys = jax.lax.scan(body, None, xs)[1]
    return ys.reshape((-1,) + ys.shape[2:])


_diagonal_chunked_jit = jax.jit(_diagonal_chunked, static_argnums=(0,), static_argnames=("trace",))


# ------------------------------------------------------------------------------------------
# public function API

def _check(apply_fn, params, x):
    if not callable(apply_fn):
        raise TypeError("apply_fn must be callable as apply_fn(params, x) -> (n, K)")
    if x.ndim < 2 or x.shape[0] < 1:
        raise ValueError(f"x must have a leading sample axis with n ≥ 1; got shape {x.shape}")


def ntk_vp(apply_fn: ApplyFn, params, x, v, *, trace: bool = True, chunk: int | None = None
           ) -> jax.Array:
    """Θ·v for the empirical NTK of ``apply_fn`` on ``x``, matrix-free (vjp then jvp).

    Args:
      apply_fn: ``apply_fn(params, x) -> (n, K)``, rows independent (no batch statistics);
        a jit cache key, so pass the same function object to reuse the compiled program.
      params: any pytree of float arrays; x: (n, ...) inputs.
      v: traced: (n,) or (n, B); full: (n·K,) or (n·K, B) with C-order index i·K + a (the
        convention of :mod:`ntk_core._src.full_kernel`).
      trace: True for the traced kernel (mean over the K logits), False for the full one.
      chunk: samples per pass (default :func:`auto_chunk`).

    Returns:
      Θ·v, same shape and dtype as ``v``: raw Θ (not /n), gradients w.r.t. raw params.
    """
    x = jnp.asarray(x)
    v = jnp.asarray(v)
    _check(apply_fn, params, x)
    n = x.shape[0]
    k_out = _out_dim(apply_fn, params, x)
    vec = v.ndim == 1
    vm = v[:, None] if vec else v
    cols = vm.shape[1]
    if chunk is None:
        chunk = auto_chunk(apply_fn, params, x, columns=cols * (k_out if trace else 1), out_dim=k_out)
    xs = pad_chunks(x, chunk)
    pad = xs.shape[0] * chunk - n
    if trace:
        vp = jnp.pad(vm, ((0, pad), (0, 0)))
        out = _matmat_chunked_jit(apply_fn, params, xs, vp, trace=True)[:n]
    else:
        vp = jnp.pad(vm.reshape(n, k_out, cols), ((0, pad), (0, 0), (0, 0)))
        out = _matmat_chunked_jit(apply_fn, params, xs, vp, trace=False)[:n].reshape(n * k_out, cols)
    return out[:, 0] if vec else out


def ntk_vp_diagonal(apply_fn: ApplyFn, params, x, *, trace: bool = True, chunk: int | None = None,
                    budget_floats: int = DEFAULT_BUDGET_FLOATS) -> jax.Array:
    """Diagonal of the empirical NTK from per-sample Jacobians, chunked.

    Returns:
      traced: (n,) Θ_ii = (1/K) Σ_k ‖J_ik‖²; full: (n·K,) ‖J_ia‖² (index i·K + a). Raw.
    """
    x = jnp.asarray(x)
    _check(apply_fn, params, x)
    n = x.shape[0]
    k_out = _out_dim(apply_fn, params, x)
    if chunk is None:
        per = k_out * (_num_params(params) + 2 * per_sample_floats(apply_fn, params, x))
        chunk = int(max(1, min(n, budget_floats // max(1, per))))
    d = _diagonal_chunked_jit(apply_fn, params, pad_chunks(x, chunk), trace=trace)[:n]
    return d if trace else d.reshape(n * k_out)


def _dense(apply_fn: ApplyFn, params, x1, x2, *, trace: bool, chunk: int, block: int):
    """Dense Θ(x1, x2) from reduce/expand (see the module docstring); traceable."""
    n1, n2 = x1.shape[0], x2.shape[0]
    k_out = _out_dim(apply_fn, params, x1)
    xs1 = pad_chunks(x1, chunk)
    xb = pad_chunks(x2, block)                                     # (Cb, b, ...)
    if trace:
        one = jnp.ones((1, 1, 1), x1.dtype)

        def cols(xblk):
            # reduce with the identity cotangent, one sample per pass (a column touches one
            # sample only): the block's Jacobians, leaves (b, K, ...)
            u = jax.vmap(lambda xj: reduce_traced(apply_fn, params, xj[None, None], one))(xblk)
            u = jax.tree_util.tree_map(lambda a: a[:, 0], u)
            return expand_traced(apply_fn, params, xs1, u)[:n1]           # (n1, b)

        out = jax.lax.map(cols, xb)                                  # (Cb, n1, b)
        return jnp.moveaxis(out, 0, 1).reshape(n1, -1)[:, :n2]
    eye = jnp.eye(k_out, dtype=x1.dtype)[None, None]                   # (1, 1, K, K)

    def cols_full(xblk):
        u = jax.vmap(lambda xj: reduce_full(apply_fn, params, xj[None, None], eye))(xblk)
        u = jax.tree_util.tree_map(lambda a: a.reshape((-1,) + a.shape[2:]), u)  # (b·K, ...)
        return expand_full(apply_fn, params, xs1, u)[:n1]                 # (n1, K, b·K)

    out = jax.lax.map(cols_full, xb)                                 # (Cb, n1, K, b·K)
    out = out.reshape(out.shape[0], n1, k_out, block, k_out)         # (Cb, i, a, j, b)
    out = jnp.transpose(out, (1, 0, 3, 2, 4)).reshape(n1, -1, k_out, k_out)[:, :n2]
    return out                                                       # (n1, n2, K, K)


_dense_jit = jax.jit(_dense, static_argnums=(0,), static_argnames=("trace", "chunk", "block"))


def _dense_sizes(apply_fn, params, x1, x2, trace, budget_floats):
    k_out = _out_dim(apply_fn, params, x1)
    per_col = (k_out if trace else k_out) * _num_params(params)
    block = int(max(1, min(x2.shape[0], budget_floats // max(1, 2 * per_col))))
    cols = block * k_out
    chunk = auto_chunk(apply_fn, params, x1, columns=cols, out_dim=k_out, budget_floats=budget_floats)
    return chunk, block


def ntk_vp_dense(apply_fn: ApplyFn, params, x1, x2=None, *, trace: bool = True,
                 budget_floats: int = DEFAULT_BUDGET_FLOATS) -> jax.Array:
    """The dense empirical NTK Θ(x1, x2) from the matrix-free path's vjp/jvp (small n).

    Returns:
      traced: (n1, n2); full: (n1, n2, K, K) with axes (i, j, logit_i, logit_j) — the
      layout of ``empirical_ntk(..., trace=False)``. Raw Θ, dtype of params.
    """
    x1 = jnp.asarray(x1)
    x2 = x1 if x2 is None else jnp.asarray(x2)
    _check(apply_fn, params, x1)
    _check(apply_fn, params, x2)
    chunk, block = _dense_sizes(apply_fn, params, x1, x2, trace, budget_floats)
    return _dense_jit(apply_fn, params, x1, x2, trace=bool(trace), chunk=chunk, block=block)


def autodiff_dense(apply_fn: ApplyFn, params, x1, x2=None, *, trace: bool = True) -> jax.Array:
    """Reference: per-sample Jacobians by ``jax.jacrev``, contracted (neural-tangents'
    JACOBIAN_CONTRACTION). O(n·K·P) memory: small n only. Same layout as :func:`ntk_vp_dense`."""
    x1 = jnp.asarray(x1)
    x2 = x1 if x2 is None else jnp.asarray(x2)
    return _autodiff_jit(apply_fn, params, x1, x2, trace=bool(trace))


def _jacobian(apply_fn, params, x):
    """(n, K, P) per-sample Jacobians, leaves flattened in tree order."""
    j = jax.vmap(lambda xi: jax.jacrev(lambda p: apply_fn(p, xi[None])[0])(params))(x)
    leaves = jax.tree_util.tree_leaves(j)
    return jnp.concatenate([jnp.reshape(a, a.shape[:2] + (-1,)) for a in leaves], axis=-1)


def _traced_contract(ja, jb):
    """(n1, K, P), (n2, K, P) → (n1, n2) traced Θ, the mean over the K logits."""
    return jnp.einsum("ikp,jkp->ij", ja, jb, precision=jax.lax.Precision.HIGHEST) / ja.shape[1]


def _autodiff(apply_fn, params, x1, x2, *, trace):
    j1, j2 = _jacobian(apply_fn, params, x1), _jacobian(apply_fn, params, x2)   # (n, K, P)
    if trace:
        return _traced_contract(j1, j2)
    return jnp.einsum("ikp,jlp->ijkl", j1, j2, precision=jax.lax.Precision.HIGHEST)


_autodiff_jit = jax.jit(_autodiff, static_argnums=(0,), static_argnames=("trace",))
_jacobian_jit = jax.jit(_jacobian, static_argnums=(0,))
_traced_contract_jit = jax.jit(_traced_contract)


def jacobian_samples_per_block(n_params: int, out_dim: int,
                               budget_floats: int = DEFAULT_BUDGET_FLOATS) -> int:
    """Samples per block of :func:`jacobian_dense` for a network of ``n_params`` parameters
    and ``out_dim`` outputs: two blocks' (b, K, P) Jacobians fit ``budget_floats``."""
    return int(max(1, budget_floats // (2 * out_dim * n_params)))


def jacobian_block(apply_fn: ApplyFn, params, x, *, budget_floats: int = DEFAULT_BUDGET_FLOATS) -> int:
    """:func:`jacobian_samples_per_block` of this model (its outputs from ``x``'s shape)."""
    k_out = _out_dim(apply_fn, params, jnp.asarray(x[:1]))
    return jacobian_samples_per_block(_num_params(params), k_out, budget_floats)


def jacobian_dense(apply_fn: ApplyFn, params, x, *, budget_floats: int = DEFAULT_BUDGET_FLOATS) -> np.ndarray:
    """The traced dense Θ(x, x) by Jacobian contraction (nt's JACOBIAN_CONTRACTION), in
    sample blocks so that two blocks' Jacobians stay within ``budget_floats``.

    The block pairs (I, J ≥ I) recompute J's Jacobian, so the cost is (m + 1)/2 backward
    passes per sample for m blocks, plus the n²·K·P contraction. For a network whose
    forward pass is expensive per parameter (the CNN shares each filter over 784
    positions) that is far cheaper than the ~45 products × 2K passes of an ARPACK solve
    on the matrix-free operator; for a dense MLP it is not (measured: BENCHMARKS.md).

    Returns:
      (n, n) float32 numpy array, exactly symmetric; the mean over the K logits, raw (not
      divided by n).
    """
    x = jnp.asarray(x)
    n = x.shape[0]
    b = min(n, jacobian_block(apply_fn, params, x, budget_floats=budget_floats))
    xs = pad_chunks(x, b)                                    # (m, b, ...), zero-padded tail
    m = xs.shape[0]
    out = np.empty((m * b, m * b), np.float32)
    for i in range(m):
        ji = _jacobian_jit(apply_fn, params, xs[i])
        d = np.asarray(_traced_contract_jit(ji, ji))
        out[i * b:(i + 1) * b, i * b:(i + 1) * b] = 0.5 * (d + d.T)   # exactly symmetric
        for j in range(i + 1, m):
            t = np.asarray(_traced_contract_jit(ji, _jacobian_jit(apply_fn, params, xs[j])))
            out[i * b:(i + 1) * b, j * b:(j + 1) * b] = t
            out[j * b:(j + 1) * b, i * b:(i + 1) * b] = t.T
    return out[:n, :n]


# ------------------------------------------------------------------------------------------
# the operator object: a SciPy LinearOperator every spectrum function accepts

class NTKOperator(spla.LinearOperator):
    """The empirical NTK of ``apply_fn`` on ``x`` as a matrix-free symmetric PSD operator.

    A :class:`scipy.sparse.linalg.LinearOperator` (float64 in and out; products are computed
    in the params' dtype by :func:`ntk_vp`), so ``top_k_eigs``, ``slq`` and
    ``trace_estimate`` of :mod:`ntk_core._src.spectra` take it as it is. The inputs are
    chunked once at construction (no per-product copy of x).

    Attributes:
      n: samples; out_dim: K; trace: traced (n × n) or full ((n·K) × (n·K), index i·K + a);
      chunk: samples per pass; arpack_tol: the residual tolerance a float32 operator can reach
        (1e-6 relative), used by ``top_k_eigs`` when no ``tol`` is given.
    """

    arpack_tol = 1e-6

    def __init__(self, apply_fn: ApplyFn, params, x, *, trace: bool = True, chunk: int | None = None,
                 max_columns: int = 8, budget_floats: int = DEFAULT_BUDGET_FLOATS):
        x = jnp.asarray(x)
        _check(apply_fn, params, x)
        self.apply_fn, self.params, self.trace = apply_fn, params, bool(trace)
        self.n = int(x.shape[0])
        self.out_dim = _out_dim(apply_fn, params, x)
        self.budget_floats = int(budget_floats)
        self.max_columns = int(max_columns)
        self.compute_dtype = np.dtype(jax.tree_util.tree_leaves(params)[0].dtype)
        if chunk is None:
            chunk = auto_chunk(apply_fn, params, x, columns=self.out_dim if self.trace else 1,
                               out_dim=self.out_dim, budget_floats=budget_floats)
        self.chunk = int(chunk)
        self._x = x
        self._xs = pad_chunks(x, self.chunk)
        self._rows = self._xs.shape[0] * self.chunk
        size = self.n if self.trace else self.n * self.out_dim
        super().__init__(dtype=np.dtype(np.float64), shape=(size, size))

    # JAX-level product (no host round trip): v (size,) or (size, B) in the compute dtype.
    def jax_matmat(self, v) -> jax.Array:
        v = jnp.asarray(v, dtype=self.compute_dtype)
        vec = v.ndim == 1
        vm = v[:, None] if vec else v
        pad = self._rows - self.n
        if self.trace:
            out = _matmat_chunked_jit(self.apply_fn, self.params, self._xs,
                                      jnp.pad(vm, ((0, pad), (0, 0))), trace=True)[: self.n]
        else:
            b = vm.shape[1]
            vp = jnp.pad(vm.reshape(self.n, self.out_dim, b), ((0, pad), (0, 0), (0, 0)))
            out = _matmat_chunked_jit(self.apply_fn, self.params, self._xs, vp,
                                      trace=False)[: self.n].reshape(self.n * self.out_dim, b)
        return out[:, 0] if vec else out

    def _matvec(self, v):
        return np.asarray(self.jax_matmat(np.asarray(v).ravel()), dtype=np.float64)

    def _matmat(self, vs):
        vs = np.asarray(vs)
        # column blocks of at most max_columns keep the vmapped tangents within the budget
        outs = [np.asarray(self.jax_matmat(vs[:, i: i + self.max_columns]), dtype=np.float64)
                for i in range(0, vs.shape[1], self.max_columns)]
        return np.concatenate(outs, axis=1) if outs else np.zeros((self.shape[0], 0))

    def _adjoint(self):
        return self  # symmetric

    def diagonal(self) -> np.ndarray:
        """Exact diagonal (float64 copy of :func:`ntk_vp_diagonal`)."""
        return np.asarray(ntk_vp_diagonal(self.apply_fn, self.params, self._x, trace=self.trace,
                                          budget_floats=self.budget_floats), dtype=np.float64)

    def dense(self) -> np.ndarray:
        """The formed kernel (small n): (n, n) traced or (n·K, n·K) full, float64 copy."""
        d = np.asarray(ntk_vp_dense(self.apply_fn, self.params, self._x, trace=self.trace,
                                    budget_floats=self.budget_floats), dtype=np.float64)
        if self.trace:
            return d
        n, k = self.n, self.out_dim
        return d.transpose(0, 2, 1, 3).reshape(n * k, n * k)


def matvec_flops(apply_fn: ApplyFn, params, x, *, trace: bool = True, chunk: int | None = None) -> float:
    """FLOPs of one Θ·v on ``x`` by XLA's cost analysis: the compiled product on ONE chunk
    (a scan of length 1, so no loop-count ambiguity) times the number of chunks. NaN if the
    backend reports no count."""
    x = jnp.asarray(x)
    k_out = _out_dim(apply_fn, params, x)
    if chunk is None:
        chunk = auto_chunk(apply_fn, params, x, columns=k_out if trace else 1, out_dim=k_out)
    chunks = -(-x.shape[0] // chunk)
    xs = jax.ShapeDtypeStruct((1, chunk) + tuple(x.shape[1:]), x.dtype)
    v = jax.ShapeDtypeStruct((chunk, 1) if trace else (chunk, k_out, 1), x.dtype)
    try:
        cost = _matmat_chunked_jit.lower(apply_fn, params, xs, v, trace=trace).compile().cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        flops = float(cost.get("flops", math.nan))
    except Exception:  # noqa: BLE001 - informational
        return math.nan
    return flops * chunks
