"""The generic NTK on a model written with a JAX NN library (equinox): any ``f(params, x)``
with a params pytree, not only this project's networks.

An ``equinox.nn.MLP`` is split into its array leaves (the params pytree) and the rest;
its NTK from the matrix-free path (ntk_vp) equals the jacrev Jacobian contraction, and —
the weights copied into this project's layout (equinox's Linear stores W as (out, in)) —
the one-hidden MLP's closed form and the deeper MLPs' layer-wise kernel. float32, 1e-5
relative to the largest entry. equinox is a test-only dependency (requirements-dev.txt:
pure Python, with jaxtyping and wadler-lindig).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntk_core as nc
from _compare import rel
from ntk_core._src import generic

TOL = 1e-5


def equinox_mlp(depth: int, width: int, seed: int):
    """(f(params, x) -> (n, 10), params pytree, the module) of an equinox ReLU MLP."""
    mlp = eqx.nn.MLP(in_size=784, out_size=10, width_size=width, depth=depth,
                     activation=jax.nn.relu, key=jax.random.PRNGKey(seed))
    params, static = eqx.partition(mlp, eqx.is_inexact_array)

    def f(p, x):
        return jax.vmap(eqx.combine(p, static))(x.reshape(x.shape[0], -1))

    return f, params, mlp


def as_project_params(mlp) -> dict:
    """The same weights in this project's MLP layout (W_l: (fan_in, fan_out))."""
    out = {}
    for l, layer in enumerate(mlp.layers, start=1):
        out[f"W{l}"], out[f"b{l}"] = jnp.asarray(layer.weight).T, jnp.asarray(layer.bias)
    return out


@pytest.fixture(scope="module")
def x20():
    x, _ = nc.load_bundled()
    return jnp.asarray(x[:20])


@pytest.mark.parametrize("depth", [1, 2])
def test_equinox_model_ntk_matches_references(x20, depth):
    f, params, mlp = equinox_mlp(depth, 16, seed=depth)
    ours = as_project_params(mlp)
    np.testing.assert_allclose(np.asarray(f(params, x20)), np.asarray(nc.mlp_apply(ours, x20)),
                               rtol=1e-5, atol=1e-6)                  # the same function
    traced = nc.ntk_vp_dense(f, params, x20)
    assert rel(traced, generic.autodiff_dense(f, params, x20)) < TOL
    full = nc.ntk_vp_dense(f, params, x20, trace=False)
    assert rel(full, generic.autodiff_dense(f, params, x20, trace=False)) < TOL
    assert rel(traced, nc.mlp_traced_ntk(ours, x20)) < TOL              # layer-wise, any depth
    if depth == 1:
        assert rel(traced, nc.empirical_ntk(ours, x20, parameterization="standard")) < TOL


def test_equinox_model_spectra_from_the_operator(x20):
    f, params, _ = equinox_mlp(2, 16, seed=5)
    op = nc.NTKOperator(f, params, x20)
    dense = np.asarray(generic.autodiff_dense(f, params, x20), np.float64)
    eig = nc.eigvalsh_desc((dense + dense.T) / 2)
    res = nc.top_k_eigs(op, 4, return_result=True)
    assert res.converged and np.abs(res.values - eig[:4]).max() / eig[0] < TOL
    assert abs(nc.trace_estimate(op).value - np.trace(dense)) / np.trace(dense) < TOL
