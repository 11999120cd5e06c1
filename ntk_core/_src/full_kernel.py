"""The full (n·10)×(n·10) empirical NTK: matrix-free product, λ_max, stable learning rate.

Which kernel governs gradient descent. For the loss of the project,
L = ½·(1/n)·Σ_i ‖f(x_i) − y_i‖² (squared error summed over the K = 10 outputs, mean over
samples), a gradient step θ ← θ − η∇θL moves the outputs, to first order in η, by

    f ← f − (η/n)·Θ_full·(f − y),   Θ_full[(i,a),(j,b)] = ∇θf_a(x_i)·∇θf_b(x_j),

with f, y flattened to (n·K,). The residual r = f − y evolves as r ← (I − (η/n)Θ_full) r,
which is stable iff |1 − ηλ/n| < 1 for every eigenvalue λ of Θ_full, i.e.

    η < 2n / λ_max(Θ_full)                                   (:func:`stable_lr_bound`).

This is exact for a linear model (constant NTK) and the linearised-network prediction
otherwise; it ignores the regulariser (L2 on the weights adds 2λ to the parameter-space
curvature of those parameters only).

Full vs traced. The project's traced kernel is the mean of the diagonal logit blocks,
T = (1/K)·Σ_a F_aa with F_ab = Θ_full[:, a, :, b] (n×n). For PSD F (here F = J Jᵀ):

    λ_max(T) ≤ max_a λ_max(F_aa) ≤ λ_max(F) ≤ Σ_a λ_max(F_aa) ≤ K²·λ_max(T).

Left: λ_max(T) ≤ mean_a λ_max(F_aa) ≤ max_a, and each F_aa is a principal sub-matrix
of F. Right: F = RᵀR with column blocks R_a, so λ_max(F) = ‖Σ_a R_a R_aᵀ‖ ≤ Σ_a ‖R_aᵀR_a‖,
and T ⪰ F_aa/K. Both ends are attained: F = I_K ⊗ A gives λ_max(F) = λ_max(T);
F = wwᵀ with w = (v_1, …, v_K), v_a orthonormal, gives λ_max(F) = K²·λ_max(T). So the
traced λ_max is only a *lower* bound on the one that sets the step size: η < 2n/λ_max(T)
can be unstable (tested on a linear model whose outputs share a parameter).

Closed form (this MLP, see :mod:`ntk_core._src.ntk`). With z = a1·xW1 + c1·b1, h = relu(z),
m = 1[z > 0], G = a1²·XXᵀ + c1²:

    Θ_full[(i,a),(j,b)] = δ_ab·(a2²·h_i·h_j + c2²) + a2²·G_ij·Σ_u m_iu m_ju W2[u,a] W2[u,b],

so for V of shape (n, K), (ΘV)_ia = Σ_jb Θ[(i,a),(j,b)] V_jb is

    ΘV = a2²·H(HᵀV) + c2²·1(1ᵀV) + a2²·(M ∘ Q) W2,
    P = M ∘ (V W2ᵀ)  (n, w),   Q = a1²·X(XᵀP) + c1²·1(1ᵀP)  (n, w),

O(n·(784 + w)·K) time and O(n·(784 + w)) memory, no per-sample Jacobians.
Flattening convention: V (n, K) ↔ vector index i·K + a (C order), matching
:func:`full_ntk_matrix` of ``empirical_ntk(..., trace=False)`` with axes (i, j, a, b).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ntk_core._src import model as _model
from ntk_core._src import spectra as _spectra

_HP = jax.lax.Precision.HIGHEST


class FullNTKState(NamedTuple):
    """What the full-kernel product needs: O(n·(784 + width)) memory."""

    x: jax.Array       # (n, d)
    h: jax.Array       # (n, w) relu activations
    m: jax.Array       # (n, w) relu mask
    w2: jax.Array      # (w, K)
    scales: jax.Array  # (4,) a1, c1, a2, c2


@functools.partial(jax.jit, static_argnames=("parameterization", "sigma_w", "sigma_b"))
def full_ntk_state(params, x, *, parameterization: str = "standard",
                   sigma_w: float = _model.SIGMA_W, sigma_b: float = _model.SIGMA_B,
                   scales=None) -> FullNTKState:
    """Precomputes activations and masks for :func:`full_ntk_matvec_state`.

    ``scales``: optional explicit (a1, c1, a2, c2) (a Scales, tuple or (4,) array; traced)
    overriding those of the params' shape, e.g. for params zero-padded from width w.
    """
    if scales is None:
        s = _model.scales_for(params, parameterization, sigma_w=sigma_w, sigma_b=sigma_b)
    else:
        a = jnp.asarray(scales, dtype=x.dtype)
        s = _model.Scales(a[0], a[1], a[2], a[3])
    z = _model.preactivations(params, x, s)
    return FullNTKState(x, jax.nn.relu(z), (z > 0).astype(z.dtype), params["W2"],
                        jnp.stack([jnp.asarray(v, dtype=x.dtype) for v in s]))


@jax.jit
def full_ntk_matvec_state(state: FullNTKState, v):
    """Θ_full·V from a :class:`FullNTKState`; V (n, K) → (n, K), raw (not /n)."""
    a1, c1, a2, c2 = state.scales[0], state.scales[1], state.scales[2], state.scales[3]
    x, h, m, w2 = state.x, state.h, state.m, state.w2
    out = jnp.matmul(h, jnp.matmul(h.T, v, precision=_HP), precision=_HP)          # H(HᵀV)
    p = m * jnp.matmul(v, w2.T, precision=_HP)                                      # (n, w)
    q = a1 ** 2 * jnp.matmul(x, jnp.matmul(x.T, p, precision=_HP), precision=_HP) \
        + c1 ** 2 * jnp.sum(p, axis=0)[None, :]                                     # G P
    out = out + jnp.matmul(m * q, w2, precision=_HP)
    return a2 ** 2 * out + c2 ** 2 * jnp.sum(v, axis=0)[None, :]


def full_ntk_matvec(params, x, v, *, parameterization: str = "standard",
                    sigma_w: float = _model.SIGMA_W, sigma_b: float = _model.SIGMA_B,
                    scales=None) -> jax.Array:
    """Product of the full empirical NTK with V, without forming the kernel.

    Args:
      params: raw parameters ``{"W1", "b1", "W2", "b2"}``.
      x: (n, 784) inputs. v: (n, K) (or flat (n·K,), index i·K + a).
      parameterization: "standard" or "ntk"; scales: optional explicit (a1, c1, a2, c2).

    Returns:
      (ΘV)_ia = Σ_j Σ_b Θ_full[i, j, a, b]·V_jb, same shape as ``v``, dtype of params
      (jitted pieces; raw Θ, not /n). For many products build the state once:
      ``full_ntk_matvec_state(full_ntk_state(params, x, ...), V)``.
    """
    state = full_ntk_state(params, x, parameterization=parameterization,
                           sigma_w=float(sigma_w), sigma_b=float(sigma_b), scales=scales)
    n, out = x.shape[0], params["W2"].shape[1]
    shape = jnp.shape(v)
    vv = jnp.reshape(jnp.asarray(v, dtype=state.x.dtype), (n, out))
    return jnp.reshape(full_ntk_matvec_state(state, vv), shape)


def full_ntk_matrix(theta_full) -> np.ndarray:
    """Reshapes ``empirical_ntk(..., trace=False)`` (n, n, K, K) to the (n·K, n·K) matrix.

    Axes (i, j, a, b) → row i·K + a, column j·K + b (the flattening of :func:`full_ntk_matvec`).
    """
    t = np.asarray(theta_full)
    n, _, k, _ = t.shape
    return t.transpose(0, 2, 1, 3).reshape(n * k, n * k)


def full_ntk_lambda_max(params, x, *, parameterization: str = "standard", tol: float = 1e-6,
                        maxiter: int | None = None, v0: np.ndarray | None = None,
                        return_vectors: bool = False, scales=None) -> _spectra.EigResult:
    """λ_max of the full (n·K)×(n·K) empirical NTK by Lanczos on :func:`full_ntk_matvec`.

    Args:
      tol: ARPACK relative residual tolerance (the product is float32: ≥ 1e-6 is reachable).
      maxiter: ARPACK restart cap; v0: optional (n·K,) start vector.
      scales: optional explicit (a1, c1, a2, c2) (params zero-padded from a smaller width).

    Returns:
      :class:`ntk_core._src.spectra.EigResult` with k = 1 (values[0] = λ_max(Θ_full), raw,
      not /n; residual and convergence flag). Feed ``values[0]`` to :func:`stable_lr_bound`.
    """
    xj = jnp.asarray(x)
    p = {k: jnp.asarray(v) for k, v in params.items()}
    state = full_ntk_state(p, xj, parameterization=parameterization, scales=scales)
    n, out = xj.shape[0], p["W2"].shape[1]

    def mv(v):
        vv = jnp.reshape(jnp.asarray(v, dtype=state.x.dtype), (n, out))
        return jnp.reshape(full_ntk_matvec_state(state, vv), (n * out,))

    return _spectra.top_k_eigs(mv, 1, n=n * out, tol=tol, maxiter=maxiter, v0=v0,
                               return_vectors=return_vectors, return_result=True)


def stable_lr_bound(lambda_max_full: float, n: int) -> float:
    """Largest stable gradient-descent learning rate, η* = 2n / λ_max(Θ_full).

    Derivation (module docstring): for L = ½·mean_i ‖f(x_i) − y_i‖², one step moves the
    linearised outputs by f ← f − (η/n)·Θ_full·(f − y); the residual's component along the
    top eigenvector is multiplied by (1 − η·λ_max/n) per step, which stays inside (−1, 1)
    iff η < 2n/λ_max. Use the **full** kernel's λ_max (raw, not /n, not traced: the traced
    λ_max can be up to K² = 100× smaller and then overestimates η*). For the kernel Θ/n
    (``normalize=True``) pass λ_max(Θ/n)·n.

    Returns:
      η* (float); ``inf`` when λ_max ≤ 0.
    """
    lam = float(lambda_max_full)
    return 2.0 * n / lam if lam > 0 else float("inf")
