"""The one-hidden-layer ReLU MLP f(x) = a2·relu(a1·x W1 + c1·b1) W2 + c2·b2.

Parameters are stored raw, in the layout of neural-tangents' Dense layers:
``{"W1": (784, w), "b1": (w,), "W2": (w, 10), "b2": (10,)}``. The scalars
(a1, c1, a2, c2) carry the parameterization:

* standard (PyTorch ``nn.Linear`` default): a1 = c1 = a2 = c2 = 1; every weight and
  bias of a layer drawn from U(−1/√fan_in, 1/√fan_in).
* NTK: a1 = σ_w/√784, c1 = σ_b, a2 = σ_w/√w, c2 = σ_b; all raw parameters N(0, 1).
  Defaults σ_w = √2, σ_b = 0.1.

The two do NOT define the same functions at init: the effective first-layer weights
have variance 1/(3·784) (standard: U(±1/√fan_in)) against σ_w²/784 = 2/784 (NTK), six
times larger, the output layer likewise 1/(3w) against 2/w, and the biases U(±1/√fan_in)
against σ_b·N(0, 1). They also differ in how gradient steps scale with width, which is
what the NTK measures (tests/test_explanations.py checks the variances).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

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


def inv_sqrt(fan_in, dtype=np.float32) -> np.ndarray:
    """1/√fan_in rounded as the standard init uses it: ``dtype(1) / sqrt(dtype(fan_in))``."""
    one = np.asarray(1, dtype)
    return one / np.sqrt(np.asarray(fan_in, dtype))


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
        # × a host-computed float32 1/√fan_in (what XLA made of the former "/ √fan_in" anyway,
        # bit for bit): a padded init with a traced width multiplies by the same value.
        return {n: jax.random.uniform(keys[n], s, dtype, -1.0, 1.0) * inv_sqrt(fan_in[n], dtype)
                for n, s in shapes.items()}
    if parameterization == "ntk":
        return {n: jax.random.normal(keys[n], s, dtype) for n, s in shapes.items()}
    raise ValueError(f"parameterization={parameterization!r}; allowed: standard, ntk")


def scales_for(params: Params, parameterization: str, **kw) -> Scales:
    in_dim, width = params["W1"].shape
    return layer_scales(width, parameterization, in_dim=in_dim, **kw)


def as_scales(scales) -> Scales:
    """A :class:`Scales` from a Scales/tuple of scalars or a (4,) array (a1, c1, a2, c2).

    Explicit scales may be traced values: a run whose parameters are zero-padded to a larger
    width keeps its TRUE width's multipliers (NTK: a2 = σ_w/√w) instead of the ones the
    padded shape would imply.
    """
    if isinstance(scales, Scales):
        return scales
    if isinstance(scales, (tuple, list)):
        return Scales(*scales)
    a = jnp.asarray(scales)
    return Scales(a[0], a[1], a[2], a[3])


def preactivations(params: Params, x: jax.Array, s: Scales) -> jax.Array:
    """Hidden pre-activations z = a1·x W1 + c1·b1, shape (n, width)."""
    hp = jax.lax.Precision.HIGHEST
    return s.a1 * jnp.matmul(x, params["W1"], precision=hp) + s.c1 * params["b1"][None, :]


def apply(params: Params, x: jax.Array, parameterization: str = "standard", *, scales=None,
          unit_mask: jax.Array | None = None, **kw) -> jax.Array:
    """Network outputs f(x).

    Args:
      scales: explicit multipliers (see :func:`as_scales`), default those of the shape's width.
      unit_mask: optional (width,) 0/1 mask multiplying the hidden activations; units with
        mask 0 contribute nothing to f and receive exactly zero gradient.

    Returns:
      (n, 10) logits, dtype of ``params``.
    """
    s = scales_for(params, parameterization, **kw) if scales is None else as_scales(scales)
    h = jax.nn.relu(preactivations(params, x, s))
    if unit_mask is not None:
        h = h * unit_mask[None, :]
    hp = jax.lax.Precision.HIGHEST
    return s.a2 * jnp.matmul(h, params["W2"], precision=hp) + s.c2 * params["b2"][None, :]


def pad_params(params: Params, width: int) -> Params:
    """Zero-pads raw parameters of true width w ≤ ``width`` to ``width`` hidden units.

    Works on NumPy or JAX arrays with any leading axes (e.g. (G, E+1, 784, w)). The padded
    units are inert: zero W1 columns and b1 entries give pre-activation exactly 0, hence
    relu 0 and relu' 0, and their zero W2 rows add nothing to f or to the NTK.
    """
    w = params["b1"].shape[-1]
    if w > width:
        raise ValueError(f"cannot pad width {w} down to {width}")
    xp = jnp if isinstance(params["W1"], jax.Array) else np

    def pad(a, axis):
        widths = [(0, 0)] * a.ndim
        widths[a.ndim + axis] = (0, width - w)
        return xp.pad(a, widths)

    return {"W1": pad(params["W1"], -1), "b1": pad(params["b1"], -1),
            "W2": pad(params["W2"], -2), "b2": params["b2"]}


def unpad(params: Params, width: int) -> Params:
    """The first ``width`` hidden units of (possibly padded) raw parameters.

    Works with any leading axes: ``W1[..., :width]``, ``b1[..., :width]``,
    ``W2[..., :width, :]``, ``b2`` unchanged. Inverse of :func:`pad_params`.
    """
    return {"W1": params["W1"][..., :width], "b1": params["b1"][..., :width],
            "W2": params["W2"][..., :width, :], "b2": params["b2"]}
