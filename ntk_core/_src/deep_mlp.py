"""Structured (layer-wise) traced empirical NTK of the depth-d ReLU MLP of :mod:`archs`.

The gradient of logit k with respect to layer l's weight is an outer product,
∂f_k/∂W_l = a_l·h_{l-1} ⊗ δ_l^k with δ_l^k = ∂f_k/∂z_l, and ∂f_k/∂b_l = c_l·δ_l^k. So

  Θ_ij = (1/K) Σ_l (a_l²·h_{l-1}(x_i)·h_{l-1}(x_j) + c_l²) · Σ_k δ_l^k(x_i)·δ_l^k(x_j)

(the mean over the K logits, raw). The output layer has δ^k = e_k (its term is
a²·H_dH_dᵀ + c²); a hidden layer's signals come from one backward sweep for all K logits
at once, D_l = (D_{l+1}·(a_{l+1}W_{l+1})ᵀ) ⊙ relu'(z_l), an (n, K, w) array. Cost
O(n·K·w² per layer + n²·K·w per layer) instead of a Jacobian's n·K·P (depth 1 reduces to
the closed form of :mod:`ntk` with s_u = mean_k W2[u,k]²). The neural-tangents
STRUCTURED_DERIVATIVES idea, specialised to this network.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ntk_core._src import archs as _archs
from ntk_core._src import model as _model

_HP = jax.lax.Precision.HIGHEST
BUDGET_FLOATS = 16 * 2 ** 20   # 64 MB of float32 backprop signals per compiled call


def _layer_mults(params: dict, parameterization: str, sigma_w: float, sigma_b: float):
    d = _archs.mlp_depth(params)
    return [_archs._mults(parameterization, params[f"W{l}"].shape[0], sigma_w, sigma_b)
            for l in range(1, d + 2)]


def _kernel(params: dict, x1, x2, *, parameterization: str, sigma_w: float, sigma_b: float,
            trace: bool = True):
    d = _archs.mlp_depth(params)
    mults = _layer_mults(params, parameterization, sigma_w, sigma_b)

    def forward(x):
        hs, masks = [x.reshape((x.shape[0], -1))], []
        for l in range(1, d + 1):
            a, c = mults[l - 1]
            z = a * jnp.matmul(hs[-1], params[f"W{l}"], precision=_HP) + c * params[f"b{l}"][None, :]
            masks.append((z > 0).astype(z.dtype))
            hs.append(jax.nn.relu(z))
        return hs, masks

    def signals(masks):  # D_l, l = 1..d: (n, K, w) backprop signals of every logit
        a, _ = mults[d]
        dl = a * params[f"W{d + 1}"].T[None, :, :] * masks[d - 1][:, None, :]   # (n, K, w)
        out = [dl]
        for l in range(d - 1, 0, -1):
            a, _ = mults[l]
            dl = a * jnp.einsum("nkv,uv->nku", dl, params[f"W{l + 1}"], precision=_HP)
            dl = dl * masks[l - 1][:, None, :]
            out.append(dl)
        return out[::-1]

    h1, m1 = forward(x1)
    h2, m2 = forward(x2)
    d1, d2 = signals(m1), signals(m2)
    k = params[f"W{d + 1}"].shape[1]
    a, c = mults[d]
    out = a * a * jnp.matmul(h1[d], h2[d].T, precision=_HP) + c * c        # output layer
    if trace:
        theta = out
    else:   # the output layer's signals are e_a: its block is diagonal in (a, b)
        theta = out[:, :, None, None] * jnp.eye(k, dtype=out.dtype)[None, None]
    for l in range(1, d + 1):
        a, c = mults[l - 1]
        g = a * a * jnp.matmul(h1[l - 1], h2[l - 1].T, precision=_HP) + c * c
        if trace:
            s = jnp.matmul(d1[l - 1].reshape(d1[l - 1].shape[0], -1),
                           d2[l - 1].reshape(d2[l - 1].shape[0], -1).T, precision=_HP) / k
            theta = theta + g * s
        else:
            s = jnp.einsum("iau,jbu->ijab", d1[l - 1], d2[l - 1], precision=_HP)
            theta = theta + g[:, :, None, None] * s
    return theta


@functools.partial(jax.jit, static_argnames=("parameterization", "sigma_w", "sigma_b", "trace"))
def _kernel_jit(params, x1, x2, *, parameterization, sigma_w, sigma_b, trace=True):
    return _kernel(params, x1, x2, parameterization=parameterization, sigma_w=sigma_w, sigma_b=sigma_b,
                   trace=trace)


def mlp_full_ntk(params: dict, x1, x2=None, *, parameterization: str = "standard",
                 sigma_w: float = _model.SIGMA_W, sigma_b: float = _model.SIGMA_B) -> np.ndarray:
    """FULL empirical NTK of the depth-d MLP, layer-wise: Θ[i, j, a, b] = ∇θf_a(x_i)·∇θf_b(x_j).

    Returns:
      (n1, n2, K, K) float32 numpy array (the layout of ``empirical_ntk(..., trace=False)``),
      raw (not divided by n). One compiled call: for the small n of the dynamics pages.
    """
    _archs._check_param(parameterization)
    x1 = jnp.asarray(x1)
    x2 = x1 if x2 is None else jnp.asarray(x2)
    return np.asarray(_kernel_jit(params, x1, x2, parameterization=parameterization,
                                  sigma_w=float(sigma_w), sigma_b=float(sigma_b), trace=False))


def mlp_traced_ntk(params: dict, x1, x2=None, *, parameterization: str = "standard",
                   sigma_w: float = _model.SIGMA_W, sigma_b: float = _model.SIGMA_B,
                   block: int | None = None) -> np.ndarray:
    """Traced empirical NTK of the depth-d MLP (:func:`archs.mlp_apply`), layer-wise.

    Args:
      params: ``W1..W{d+1}``, ``b1..b{d+1}`` (any depth 1–4), float32.
      x1, x2: (n1, 784), (n2, 784); x2 = x1 when omitted.
      block: rows of x1 and x2 per compiled call; default: the most (64–1024) whose
        signals, 2·block·K·w·d floats, stay within :data:`BUDGET_FLOATS`.

    Returns:
      (n1, n2) float32 numpy array, raw traced Θ (mean over the K logits, not divided by
      n); exactly symmetric when x2 is omitted.
    """
    _archs._check_param(parameterization)
    sym = x2 is None
    x1 = jnp.asarray(x1)
    x2 = x1 if sym else jnp.asarray(x2)
    n1, n2 = x1.shape[0], x2.shape[0]
    if block is None:
        d = _archs.mlp_depth(params)
        k, w = params[f"W{d + 1}"].shape[1], params["W1"].shape[1]
        block = int(min(1024, max(64, BUDGET_FLOATS // (2 * k * w * d))))
    out = np.empty((n1, n2), np.float32)
    kw = dict(parameterization=parameterization, sigma_w=float(sigma_w), sigma_b=float(sigma_b))
    for i in range(0, n1, block):
        for j in range(i if sym else 0, n2, block):
            t = np.asarray(_kernel_jit(params, x1[i:i + block], x2[j:j + block], **kw))
            out[i:i + block, j:j + block] = t
            if sym and j != i:
                out[j:j + block, i:i + block] = t.T
    if sym:
        out = 0.5 * (out + out.T)
    return out
