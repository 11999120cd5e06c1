"""The generic matrix-free NTK (ntk_vp) against the closed form and the autodiff reference.

Every comparison is float32 against an independent implementation: the one-hidden MLP's
closed form (both parameterizations, traced and full), and per-sample ``jacrev`` Jacobians
contracted (deep MLP, CNN). Tolerance: 1e-5 relative to the largest entry.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntk_core as nc
from _compare import rel
from ntk_core._src import generic, model

TOL = 1e-5


@pytest.fixture(scope="module")
def x24():
    x, _ = nc.load_bundled()
    return jnp.asarray(x[:24])


def _full_matrix(theta):  # (n, n, K, K) → (n·K, n·K), index i·K + a
    n, k = theta.shape[0], theta.shape[2]
    return np.asarray(theta, np.float64).transpose(0, 2, 1, 3).reshape(n * k, n * k)


@pytest.mark.parametrize("parameterization", ["standard", "ntk"])
def test_ntk_vp_matches_closed_form_traced_and_full(x24, parameterization):
    p = model.init_params(jax.random.PRNGKey(3), 16, parameterization)
    closed_t = nc.empirical_ntk(p, x24, parameterization=parameterization)
    closed_f = nc.empirical_ntk(p, x24, parameterization=parameterization, trace=False)
    # dense, through the NTKMethod switch
    assert rel(nc.empirical_ntk(p, x24, parameterization=parameterization, method="ntk_vp"), closed_t) < TOL
    assert rel(nc.empirical_ntk(p, x24, parameterization=parameterization, method="ntk_vp", trace=False),
               closed_f) < TOL
    if parameterization == "ntk":
        return
    f = functools.partial(model.apply, parameterization=parameterization)
    assert rel(nc.ntk_vp_dense(f, p, x24[:10], x24), closed_t[:10]) < TOL       # x1 ≠ x2
    # matrix-free products; chunk 7 does not divide n = 24 (padding rows must not leak)
    v = jax.random.normal(jax.random.PRNGKey(4), (24, 3))
    assert rel(nc.ntk_vp(f, p, x24, v, chunk=7), np.asarray(closed_t) @ np.asarray(v)) < TOL
    vf = jax.random.normal(jax.random.PRNGKey(5), (240,))
    assert rel(nc.ntk_vp(f, p, x24, vf, trace=False, chunk=7), _full_matrix(closed_f) @ np.asarray(vf)) < TOL
    # diagonals (the exact trace)
    assert rel(nc.ntk_vp_diagonal(f, p, x24), np.diag(np.asarray(closed_t))) < TOL
    assert rel(nc.ntk_vp_diagonal(f, p, x24, trace=False), np.diag(_full_matrix(closed_f))) < TOL


@pytest.mark.parametrize("kind,depth,parameterization", [("mlp", 3, "standard"), ("cnn", 1, "standard")])
def test_ntk_vp_matches_autodiff_deep_mlp_and_cnn(x24, kind, depth, parameterization):
    arch = nc.Architecture(kind, width=4 if kind == "cnn" else 8, depth=depth,
                           parameterization=parameterization)
    p = arch.init(jax.random.PRNGKey(7))
    x = x24[:12]
    ref_t = generic.autodiff_dense(arch.apply, p, x)
    assert rel(nc.ntk_vp_dense(arch.apply, p, x), ref_t) < TOL
    if depth == 3:  # the full kernel of a deep model (the CNN's is the same code path)
        ref_f = generic.autodiff_dense(arch.apply, p, x, trace=False)
        assert rel(nc.ntk_vp_dense(arch.apply, p, x, trace=False), ref_f) < TOL
    v = jax.random.normal(jax.random.PRNGKey(8), (12,))
    assert rel(nc.ntk_vp(arch.apply, p, x, v, chunk=5), np.asarray(ref_t) @ np.asarray(v)) < TOL
    # the NTKMethod switch for any model gives the same kernels
    for method in ("ntk_vp", "autodiff"):
        assert rel(nc.empirical_ntk_fn(arch.apply, method=method)(p, x), ref_t) < TOL


@pytest.mark.parametrize("kind", ["cnn", "mlp"])
def test_blocked_jacobian_kernel_equals_one_block_and_closed_form(x24, kind):
    """jacobian_dense in blocks (5 samples: 24 = 4·5 + 4, an uneven zero-padded tail) is the
    unblocked Jacobian contraction, exactly symmetric; on the 1-hidden MLP it is the
    closed form."""
    if kind == "cnn":
        arch = nc.Architecture("cnn", width=4)
        p = arch.init(jax.random.PRNGKey(11))
        f, ref = arch.apply, generic.autodiff_dense(arch.apply, p, x24)
    else:
        p = model.init_params(jax.random.PRNGKey(12), 16, "standard")
        f = functools.partial(model.apply, parameterization="standard")
        ref = nc.empirical_ntk(p, x24, parameterization="standard")
    k_p = 10 * sum(int(np.prod(v.shape)) for v in jax.tree_util.tree_leaves(p))
    budget = 2 * 5 * k_p                                      # two blocks of 5 samples
    assert generic.jacobian_block(f, p, x24, budget_floats=budget) == 5
    blocked = nc.jacobian_dense(f, p, x24, budget_floats=budget)
    assert blocked.shape == (24, 24) and blocked.dtype == np.float32
    np.testing.assert_array_equal(blocked, blocked.T)
    assert rel(blocked, ref) < TOL
    assert rel(nc.jacobian_dense(f, p, x24), ref) < TOL       # default budget: one block


def test_spectra_of_the_ntk_vp_operator_match_dense(x24):
    arch = nc.Architecture("mlp", width=16, depth=2, parameterization="ntk")
    x, _ = nc.load_bundled()
    x = jnp.asarray(x[:60])
    p = arch.init(jax.random.PRNGKey(2))
    op = nc.NTKOperator(arch.apply, p, x)
    dense = np.asarray(generic.autodiff_dense(arch.apply, p, x), np.float64)
    eig = nc.eigvalsh_desc(dense)
    res = nc.top_k_eigs(op, 5, return_result=True)
    assert res.converged and res.method == "arpack"
    assert np.abs(res.values - eig[:5]).max() / eig[0] < TOL
    # exact trace from the operator's diagonal; Hutchinson within 4 standard errors
    tr = nc.trace_estimate(op)
    assert tr.method == "diagonal" and abs(tr.value - np.trace(dense)) / np.trace(dense) < TOL
    hut = nc.trace_estimate(op, probes=16, seed=3)
    assert hut.method == "hutchinson" and hut.std_error > 0
    assert abs(hut.value - np.trace(dense)) < 4 * hut.std_error
    # SLQ on the operator: with the same seed its probes are Hutchinson's, so n·Σ w·θ must
    # equal that estimate (exact Gauss quadrature of zᵀΘz), and the nodes lie in the spectrum
    nodes, weights = nc.slq(op, num_probes=16, steps=60, seed=3)
    assert abs(60 * np.sum(weights * nodes) - hut.value) / hut.value < 1e-5
    assert nodes.max() <= eig[0] * (1 + 1e-5) and nodes.min() >= eig[-1] - 1e-5 * eig[0]
    # the formed kernel from the same path
    assert rel(op.dense(), dense) < TOL


def test_every_method_gives_the_same_operator(x24):
    p = model.init_params(jax.random.PRNGKey(9), 8, "standard")
    v = np.random.default_rng(0).standard_normal((24, 2))
    vf = np.random.default_rng(1).standard_normal((240, 2))
    for trace, vv, methods in ((True, v, ("autodiff", "closed_form", "ntk_vp")), (False, vf, ("closed_form", "ntk_vp"))):
        ops = {m: nc.ntk_operator(p, x24, method=m, trace=trace) for m in methods}
        ref = ops[methods[0]]
        for m, op in ops.items():
            assert op.shape == ((24, 24) if trace else (240, 240))
            assert rel(op.matmat(vv), ref.matmat(vv)) < TOL, m
            assert rel(op.diagonal(), ref.diagonal()) < TOL, m


def test_bad_method_and_model_are_refused_with_a_clear_message(x24):
    arch = nc.Architecture("mlp", width=4, depth=2)
    with pytest.raises(ValueError, match="closed_form.*one-hidden"):
        nc.empirical_ntk_fn(arch.apply, method="closed_form")
    with pytest.raises(ValueError, match="closed_form.*one-hidden"):
        nc.ntk_operator(arch.init(jax.random.PRNGKey(0)), x24, apply_fn=arch.apply, method="closed_form")
    with pytest.raises(ValueError, match="method='jvp'.*allowed: closed_form, autodiff, ntk_vp"):
        nc.empirical_ntk_fn(arch.apply, method="jvp")
    with pytest.raises(ValueError, match=r"must return \(n, K\)"):
        nc.ntk_vp(lambda p, x: x @ p["w"], {"w": jnp.ones((784,))}, x24, jnp.ones(24))
