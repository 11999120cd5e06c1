"""Architectures beyond the one-hidden MLP: ReLU MLPs of depth 1–4 and a small CNN.

Pure functions on a params pytree (dict of raw arrays), usable by the generic NTK
(:mod:`ntk_core._src.generic`) and by vmapped/scanned training (no state, no batch
statistics: rows are independent).

MLP of depth d (d hidden layers of one width w), raw parameters ``W1..W{d+1}``,
``b1..b{d+1}`` in neural-tangents' Dense layout (W_l: (fan_in, fan_out)):

  h_0 = x;  h_l = relu(a_l·h_{l-1} W_l + c_l·b_l), l = 1..d;  f = a_{d+1}·h_d W_{d+1} + c_{d+1}·b_{d+1}

* standard (PyTorch ``nn.Linear``): a = c = 1, every weight and bias ~ U(±1/√fan_in);
* NTK: a_l = σ_w/√fan_in, c_l = σ_b, raw parameters N(0, 1) (σ_w = √2, σ_b = 0.1).

Depth 1 is exactly :func:`ntk_core._src.model.apply` (same names, same multipliers).

CNN (the layout of the golden file ``neural_tangents_0.6.5_deep.npz``), c channels
(default 8), input 28×28×1 (NHWC; flat (n, 784) rows are reshaped row-major):

  C1 (3, 3, 1, c) HWIO + c1 (c,), stride 1, SAME, relu
  C2 (3, 3, c, c) + c2 (c,), stride 2, SAME, relu          → 14×14×c
  flatten (row-major over H, W, C) @ W (14·14·c, 10) + b (10,)

The golden file defines the convolutions as ``jax.lax.conv_general_dilated``
(cross-correlation); :func:`cnn_apply` computes the same function as im2col GEMMs
(:func:`conv_patches`, tested equal to :func:`conv_lax`), which is far faster on CPU. Standard init
U(±1/√fan_in) with fan_in 9, 9·c and 14·14·c; NTK parameterization multiplies each layer
by σ_w/√fan_in and each bias by σ_b, raw parameters N(0, 1).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable

import jax
import jax.numpy as jnp

from ntk_core._src import model as _model

_HP = jax.lax.Precision.HIGHEST
MAX_DEPTH = 4
KINDS = ("mlp", "cnn")
IMAGE_SHAPE = (28, 28, 1)


def _check_param(parameterization: str) -> None:
    if parameterization not in ("standard", "ntk"):
        raise ValueError(f"parameterization={parameterization!r}; allowed: standard, ntk")


def _mults(parameterization: str, fan_in: int, sigma_w: float, sigma_b: float) -> tuple[float, float]:
    if parameterization == "standard":
        return 1.0, 1.0
    return sigma_w / math.sqrt(fan_in), sigma_b


def _draw(key, shape, fan_in, parameterization, dtype):
    if parameterization == "standard":
        return jax.random.uniform(key, shape, dtype, -1.0, 1.0) * _model.inv_sqrt(fan_in, dtype)
    return jax.random.normal(key, shape, dtype)


# ------------------------------------------------------------------------------------------
# MLP

def mlp_depth(params) -> int:
    """Number of hidden layers d of MLP params ``W1..W{d+1}``."""
    return sum(1 for k in params if k.startswith("W")) - 1


def init_mlp(key: jax.Array, width: int, depth: int = 1, parameterization: str = "standard", *,
             in_dim: int = _model.INPUT_DIM, out_dim: int = _model.OUTPUT_DIM,
             dtype=jnp.float32) -> dict:
    """Initial raw parameters of a depth-``depth`` ReLU MLP (see the module docstring).

    Returns:
      dict W1 (in_dim, width), b1 (width,), W2..W{d} (width, width), b2..b{d} (width,),
      W{d+1} (width, out_dim), b{d+1} (out_dim,), all ``dtype``.
    """
    _check_param(parameterization)
    if not (isinstance(depth, int) and 1 <= depth <= MAX_DEPTH):
        raise ValueError(f"depth={depth!r}; allowed: integer 1–{MAX_DEPTH}")
    if not (isinstance(width, int) and width >= 1):
        raise ValueError(f"width={width!r}; allowed: integer ≥ 1")
    dims = [in_dim] + [width] * depth + [out_dim]
    keys = jax.random.split(key, 2 * (depth + 1))
    params = {}
    for l in range(depth + 1):
        fan_in, fan_out = dims[l], dims[l + 1]
        params[f"W{l + 1}"] = _draw(keys[2 * l], (fan_in, fan_out), fan_in, parameterization, dtype)
        params[f"b{l + 1}"] = _draw(keys[2 * l + 1], (fan_out,), fan_in, parameterization, dtype)
    return params


def mlp_apply(params: dict, x: jax.Array, parameterization: str = "standard", *,
              sigma_w: float = _model.SIGMA_W, sigma_b: float = _model.SIGMA_B) -> jax.Array:
    """Outputs of the depth-d MLP, (n, out_dim), dtype of params. x: (n, in_dim) or (n, ...)."""
    d = mlp_depth(params)
    h = x.reshape((x.shape[0], -1))
    for l in range(1, d + 2):
        w, b = params[f"W{l}"], params[f"b{l}"]
        a, c = _mults(parameterization, w.shape[0], sigma_w, sigma_b)
        z = a * jnp.matmul(h, w, precision=_HP) + c * b[None, :]
        h = jax.nn.relu(z) if l <= d else z
    return h


# ------------------------------------------------------------------------------------------
# CNN

def init_cnn(key: jax.Array, channels: int = 8, parameterization: str = "standard", *,
             out_dim: int = _model.OUTPUT_DIM, dtype=jnp.float32) -> dict:
    """Initial raw parameters of the small CNN (see the module docstring).

    Returns:
      dict C1 (3, 3, 1, c), c1 (c,), C2 (3, 3, c, c), c2 (c,), W (14·14·c, out_dim), b (out_dim,).
    """
    _check_param(parameterization)
    if not (isinstance(channels, int) and channels >= 1):
        raise ValueError(f"channels={channels!r}; allowed: integer ≥ 1")
    c = channels
    flat = (IMAGE_SHAPE[0] // 2) * (IMAGE_SHAPE[1] // 2) * c
    spec = {"C1": ((3, 3, 1, c), 9), "c1": ((c,), 9), "C2": ((3, 3, c, c), 9 * c), "c2": ((c,), 9 * c),
            "W": ((flat, out_dim), flat), "b": ((out_dim,), flat)}
    keys = jax.random.split(key, len(spec))
    return {name: _draw(k, shape, fan, parameterization, dtype)
            for k, (name, (shape, fan)) in zip(keys, spec.items())}


def conv_lax(h, w, stride):
    """3×3 SAME cross-correlation by ``jax.lax.conv_general_dilated`` (NHWC, HWIO): the
    golden file's definition, kept as the reference for :func:`conv_patches`."""
    return jax.lax.conv_general_dilated(h, w, (stride, stride), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=_HP)


def conv_patches(h, w, stride):
    """The same convolution as :func:`conv_lax`, as one GEMM on 3×3 patches (im2col).

    SAME padding as XLA/TensorFlow define it: output size ⌈H/stride⌉, total padding
    max((out − 1)·stride + 3 − H, 0), the smaller half before. Patches are ordered (i, j, c),
    matching ``w.reshape(9·C, O)`` of an HWIO kernel. Why: XLA's CPU convolutions with few
    channels, and their vmapped vjp/jvp, ran 5–20× slower than this GEMM form here
    (measured 512 samples, 8 channels: forward 0.06 s, one vjp 0.23 s with lax.conv).
    """
    n, height, width, cin = h.shape
    kh, kw, _, cout = w.shape
    out_h, out_w = -(-height // stride), -(-width // stride)
    pad_h = max((out_h - 1) * stride + kh - height, 0)
    pad_w = max((out_w - 1) * stride + kw - width, 0)
    hp = jnp.pad(h, ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
    cols = [hp[:, i: i + stride * (out_h - 1) + 1: stride, j: j + stride * (out_w - 1) + 1: stride, :]
            for i in range(kh) for j in range(kw)]
    patches = jnp.concatenate(cols, axis=-1)                          # (n, out_h, out_w, 9·C)
    return jnp.matmul(patches, w.reshape(kh * kw * cin, cout), precision=_HP)


_conv = conv_patches


def cnn_apply(params: dict, x: jax.Array, parameterization: str = "standard", *,
              sigma_w: float = _model.SIGMA_W, sigma_b: float = _model.SIGMA_B) -> jax.Array:
    """Outputs of the CNN, (n, out_dim). x: (n, 784) flat rows or (n, 28, 28, 1) NHWC."""
    h = x.reshape((x.shape[0],) + IMAGE_SHAPE)
    for name, bias, stride in (("C1", "c1", 1), ("C2", "c2", 2)):
        w = params[name]
        a, c = _mults(parameterization, w.shape[0] * w.shape[1] * w.shape[2], sigma_w, sigma_b)
        h = jax.nn.relu(a * _conv(h, w, stride) + c * params[bias][None, None, None, :])
    h = h.reshape((h.shape[0], -1))
    a, c = _mults(parameterization, params["W"].shape[0], sigma_w, sigma_b)
    return a * jnp.matmul(h, params["W"], precision=_HP) + c * params["b"][None, :]


def dead_fraction(kind: str, params: dict, x: jax.Array, parameterization: str = "standard", *,
                  sigma_w: float = _model.SIGMA_W, sigma_b: float = _model.SIGMA_B) -> jax.Array:
    """Fraction of ReLU units that are off (pre-activation ≤ 0) on every input: for the MLP
    each hidden unit of every layer; for the CNN each channel of each conv layer (a filter
    off at every position of every image). Scalar, dtype of params; traceable (jit/scan)."""
    dead, total = jnp.zeros((), params[next(iter(params))].dtype), 0
    if kind == "mlp":
        h = x.reshape((x.shape[0], -1))
        for l in range(1, mlp_depth(params) + 1):
            w = params[f"W{l}"]
            a, c = _mults(parameterization, w.shape[0], sigma_w, sigma_b)
            z = a * jnp.matmul(h, w, precision=_HP) + c * params[f"b{l}"][None, :]
            dead, total = dead + jnp.sum(jnp.all(z <= 0, axis=0)).astype(dead.dtype), total + z.shape[1]
            h = jax.nn.relu(z)
        return dead / total
    h = x.reshape((x.shape[0],) + IMAGE_SHAPE)
    for name, bias, stride in (("C1", "c1", 1), ("C2", "c2", 2)):
        w = params[name]
        a, c = _mults(parameterization, w.shape[0] * w.shape[1] * w.shape[2], sigma_w, sigma_b)
        z = a * _conv(h, w, stride) + c * params[bias][None, None, None, :]
        dead, total = dead + jnp.sum(jnp.all(z <= 0, axis=(0, 1, 2))).astype(dead.dtype), total + z.shape[-1]
        h = jax.nn.relu(z)
    return dead / total


# ------------------------------------------------------------------------------------------
# one handle per architecture

def architecture_apply(kind: str, parameterization: str = "standard", sigma_w: float = _model.SIGMA_W,
                       sigma_b: float = _model.SIGMA_B) -> Callable:
    """The apply function ``f(params, x) -> (n, 10)`` of an architecture kind.

    The SAME function object is returned for equal arguments, so jit caches keyed on it
    (the generic NTK's, training's) compile once per architecture.
    """
    _check_param(parameterization)
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}; allowed: {', '.join(KINDS)}")
    return _apply_cached(kind, parameterization, float(sigma_w), float(sigma_b))


@functools.lru_cache(maxsize=None)
def _apply_cached(kind: str, parameterization: str, sigma_w: float, sigma_b: float) -> Callable:
    fn = mlp_apply if kind == "mlp" else cnn_apply
    return functools.partial(fn, parameterization=parameterization, sigma_w=sigma_w, sigma_b=sigma_b)


@functools.lru_cache(maxsize=None)
def _init_jit(kind: str, width: int, depth: int, parameterization: str, dtype) -> Callable:
    if kind == "mlp":
        return jax.jit(functools.partial(init_mlp, width=width, depth=depth,
                                         parameterization=parameterization, dtype=dtype))
    return jax.jit(functools.partial(init_cnn, channels=width, parameterization=parameterization, dtype=dtype))


@dataclasses.dataclass(frozen=True)
class Architecture:
    """A network: ``kind`` "mlp" (``depth`` 1–4 hidden layers of ``width`` units) or "cnn"
    (``width`` channels in both conv layers; ``depth`` is ignored and reported as 2)."""

    kind: str = "mlp"
    width: int = 128
    depth: int = 1
    parameterization: str = "standard"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind={self.kind!r}; allowed: {', '.join(KINDS)}")
        if not (isinstance(self.width, int) and self.width >= 1):
            raise ValueError(f"width={self.width!r}; allowed: integer ≥ 1")
        if self.kind == "mlp" and not (isinstance(self.depth, int) and 1 <= self.depth <= MAX_DEPTH):
            raise ValueError(f"depth={self.depth!r}; allowed: integer 1–{MAX_DEPTH}")
        _check_param(self.parameterization)

    @property
    def apply(self) -> Callable:
        return architecture_apply(self.kind, self.parameterization)

    @property
    def closed_form_applies(self) -> bool:
        """True for the one-hidden MLP, whose NTK has the closed form of :mod:`ntk_core._src.ntk`."""
        return self.kind == "mlp" and self.depth == 1

    def dead_fraction(self, params: dict, x: jax.Array) -> jax.Array:
        """:func:`dead_fraction` of this network (traceable)."""
        return dead_fraction(self.kind, params, x, self.parameterization)

    def init(self, key: jax.Array, dtype=jnp.float32) -> dict:
        """Initial raw parameters (:func:`init_mlp` / :func:`init_cnn`), one compiled program."""
        return _init_jit(self.kind, self.width, self.depth if self.kind == "mlp" else 1,
                         self.parameterization, jnp.dtype(dtype))(key)

    def num_params(self) -> int:
        if self.kind == "mlp":
            w, d = self.width, self.depth
            return (_model.INPUT_DIM + 1) * w + (d - 1) * (w + 1) * w + (w + 1) * _model.OUTPUT_DIM
        c = self.width
        return 10 * c + (9 * c + 1) * c + (196 * c + 1) * _model.OUTPUT_DIM
