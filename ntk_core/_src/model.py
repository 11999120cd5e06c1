"""The one-hidden-layer ReLU MLP f(x) = a2·relu(a1·x W1 + c1·b1) W2 + c2·b2.

Parameters are stored raw, in the layout of neural-tangents' Dense layers:
``{"W1": (784, w), "b1": (w,), "W2": (w, 10), "b2": (10,)}``. The scalars
(a1, c1, a2, c2) carry the parameterization:

* standard (PyTorch ``nn.Linear`` default): a1 = c1 = a2 = c2 = 1; every weight and
  bias of a layer drawn from U(−1/√fan_in, 1/√fan_in).
* NTK: a1 = σ_w/√784, c1 = σ_b, a2 = σ_w/√w, c2 = σ_b; all raw parameters N(0, 1).
  Defaults σ_w = √2, σ_b = 0.1.

Both parameterizations define the same function class at init in distribution up to
the choice of uniform vs Gaussian draws; they differ in how gradient steps scale
with width, which is what the NTK measures.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

INPUT_DIM = 784
OUTPUT_DIM = 10
SIGMA_W = math.sqrt(2.0)
SIGMA_B = 0.1

Params = dict  # {"W1", "b1", "W2", "b2"} → jax or numpy arrays


class Scales(NamedTuple):
    """Multipliers of the raw parameters (a1·W1, c1·b1, a2·W2, c2·b2)."""

    a1: float
    c1: float
    a2: float
    c2: float


def layer_scales(width: int, parameterization: str = "standard", *, in_dim: int = INPUT_DIM,
                 sigma_w: float = SIGMA_W, sigma_b: float = SIGMA_B) -> Scales:
    """Returns the static per-layer multipliers for a parameterization."""
    if parameterization == "standard":
        return Scales(1.0, 1.0, 1.0, 1.0)
    if parameterization == "ntk":
        return Scales(sigma_w / math.sqrt(in_dim), sigma_b, sigma_w / math.sqrt(width), sigma_b)
    raise ValueError(f"parameterization={parameterization!r}; allowed: standard, ntk")


def init_params(key: jax.Array, width: int, parameterization: str = "standard", *,
                in_dim: int = INPUT_DIM, out_dim: int = OUTPUT_DIM,
                dtype: jnp.dtype = jnp.float32) -> Params:
    """Draws initial raw parameters (see the module docstring for the distributions).

    Returns:
      dict with W1 (in_dim, width), b1 (width,), W2 (width, out_dim), b2 (out_dim,), all ``dtype``.
    """
    k1, k2, k3, k4 = jax.random.split(key, 4)
    shapes = {"W1": (in_dim, width), "b1": (width,), "W2": (width, out_dim), "b2": (out_dim,)}
    keys = {"W1": k1, "b1": k2, "W2": k3, "b2": k4}
    fan_in = {"W1": in_dim, "b1": in_dim, "W2": width, "b2": width}
    if parameterization == "standard":
        return {n: jax.random.uniform(keys[n], s, dtype, -1.0, 1.0) / jnp.sqrt(jnp.asarray(fan_in[n], dtype))
                for n, s in shapes.items()}
    if parameterization == "ntk":
        return {n: jax.random.normal(keys[n], s, dtype) for n, s in shapes.items()}
    raise ValueError(f"parameterization={parameterization!r}; allowed: standard, ntk")


def scales_for(params: Params, parameterization: str, **kw) -> Scales:
    in_dim, width = params["W1"].shape
    return layer_scales(width, parameterization, in_dim=in_dim, **kw)


def preactivations(params: Params, x: jax.Array, s: Scales) -> jax.Array:
    """Hidden pre-activations z = a1·x W1 + c1·b1, shape (n, width)."""
    hp = jax.lax.Precision.HIGHEST
    return s.a1 * jnp.matmul(x, params["W1"], precision=hp) + s.c1 * params["b1"][None, :]


def apply(params: Params, x: jax.Array, parameterization: str = "standard", **kw) -> jax.Array:
    """Network outputs f(x).

    Returns:
      (n, 10) logits, dtype of ``params``.
    """
    s = scales_for(params, parameterization, **kw)
    h = jax.nn.relu(preactivations(params, x, s))
    hp = jax.lax.Precision.HIGHEST
    return s.a2 * jnp.matmul(h, params["W2"], precision=hp) + s.c2 * params["b2"][None, :]
