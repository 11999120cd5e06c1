"""Deep MLPs, the CNN and their infinite-width kernels against neural-tangents 0.6.5.

``fixtures/neural_tangents_0.6.5_deep.npz`` (layout in fixtures/GOLDEN_DEEP_README.md):
every kernel in it is matched — empirical kernels with the generic ntk_vp path (float32,
≤ 1e-5 relative to the largest entry), infinite-width NTK/NNGP with the arc-cosine
recursion (float64).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntk_core as nc
from _compare import rel
from ntk_core._src import archs as nc_archs
from ntk_core._src import model

DEEP = os.path.join(os.path.dirname(__file__), "fixtures", "neural_tangents_0.6.5_deep.npz")
TOL = 1e-5


@pytest.fixture(scope="module")
def deep():
    with np.load(DEEP) as npz:
        return {k: npz[k] for k in npz.files}


def _params(deep, prefix):
    return {k[len(prefix):]: jnp.asarray(v, jnp.float32) for k, v in deep.items()
            if k.startswith(prefix) and not k.endswith("_ntk_traced")}


def test_every_golden_kernel_is_matched(deep):
    x = jnp.asarray(deep["X"], jnp.float32)
    checked = set()
    # empirical: deep MLPs (standard), the one-hidden MLP in NTK parameterization, the CNN
    for key in [k for k in deep if k.endswith("_ntk_traced")]:
        prefix = key[: -len("ntk_traced")]
        p = _params(deep, prefix)
        if prefix.startswith("mlp_d"):
            arch = nc.Architecture("mlp", width=p["b1"].shape[0], depth=int(prefix[5]))
            assert nc.architecture_apply("mlp") is arch.apply
        elif prefix.startswith("ntkparam_"):
            arch = nc.Architecture("mlp", width=p["b1"].shape[0], depth=1, parameterization="ntk")
            # the closed form agrees as well (depth 1 is the app's MLP)
            assert rel(nc.empirical_ntk(p, x, parameterization="ntk"), deep[key]) < TOL, key
        else:
            assert prefix == "cnn_"
            arch = nc.Architecture("cnn", width=p["c1"].shape[0])
        assert {k: v.shape for k, v in jax.eval_shape(arch.init, jax.random.PRNGKey(0)).items()} == \
            {k: v.shape for k, v in p.items()}, key            # the default layouts are the golden ones
        assert rel(nc.ntk_vp_dense(arch.apply, p, x), deep[key]) < TOL, key
        if arch.kind == "mlp":   # and the layer-wise kernel of the deep MLPs
            assert rel(nc.mlp_traced_ntk(p, x, parameterization=arch.parameterization), deep[key]) < TOL, key
        checked.add(key)
    # infinite width, depth 2 and 3, both (W_std, b_std)
    for key in [k for k in deep if k.startswith("inf_")]:
        _, d, wstd, bstd, kind = key.split("_")
        sigma_w = float(wstd[4:]) if wstd != "Wstd1.4142" else float(np.sqrt(2.0))
        ntk, nngp = nc.analytic_kernels(deep["X"], depth=int(d[1:]), sigma_w=sigma_w,
                                        sigma_b=float(bstd[4:]))
        # the golden file's own cross-check of its infinite-width NTK reached 2e-8
        assert rel(ntk if kind == "ntk" else nngp, deep[key]) < (1e-7 if kind == "ntk" else 1e-12), key
        checked.add(key)
    kernels = {k for k in deep if k.endswith("_ntk_traced") or k.startswith("inf_")}
    assert checked == kernels and len(kernels) == 15


def test_depth_one_mlp_is_the_apps_mlp():
    x, _ = nc.load_bundled()
    x = jnp.asarray(x[:5])
    p = model.init_params(jax.random.PRNGKey(1), 6, "ntk")     # non-trivial multipliers
    a = jax.jit(nc.architecture_apply("mlp", "ntk"))(p, x)
    assert rel(a, jax.jit(model.apply, static_argnums=2)(p, x, "ntk")) < 1e-6
    np.testing.assert_allclose(nc.analytic_kernels(np.asarray(x), depth=1)[0],
                               nc.analytic_kernels(np.asarray(x))[0], rtol=0, atol=0)


def test_init_distributions_and_input_layouts():
    arch = nc.Architecture("mlp", width=64, depth=4)
    p = arch.init(jax.random.PRNGKey(0))
    assert sum(v.size for v in p.values()) == arch.num_params()
    for l, fan in zip(range(1, 6), (784, 64, 64, 64, 64)):
        bound = 1 / np.sqrt(fan)
        assert float(jnp.abs(p[f"W{l}"]).max()) <= bound and float(jnp.abs(p[f"W{l}"]).max()) > 0.9 * bound
    cnn = nc.Architecture("cnn", width=3, parameterization="ntk")
    c = cnn.init(jax.random.PRNGKey(0))
    assert abs(float(jnp.std(c["W"])) - 1) < 0.01         # NTK parameterization: raw N(0, 1)
    cnn = nc.Architecture("cnn", width=3)
    c = cnn.init(jax.random.PRNGKey(0))
    assert sum(v.size for v in c.values()) == cnn.num_params()
    x, _ = nc.load_bundled()
    x = jnp.asarray(x[:4])
    out = jax.jit(cnn.apply)(c, x.reshape(4, 28, 28, 1))         # NHWC input as well as flat rows
    assert out.shape == (4, 10) and bool(jnp.all(jnp.isfinite(out)))


def test_patch_convolution_is_lax_convolution():
    # cnn_apply's im2col GEMM against XLA's own convolution (the golden file's definition),
    # both strides, odd and even sizes (SAME padding splits differently)
    rng = np.random.default_rng(0)
    for size, cin, stride in ((28, 1, 1), (28, 3, 2), (7, 2, 2), (6, 2, 2)):
        h = jnp.asarray(rng.standard_normal((2, size, size, cin)), jnp.float32)
        w = jnp.asarray(rng.standard_normal((3, 3, cin, 4)), jnp.float32)
        assert rel(nc_archs.conv_patches(h, w, stride), nc_archs.conv_lax(h, w, stride)) < 1e-6


@pytest.mark.parametrize("bad,match", [
    (dict(kind="rnn"), "kind='rnn'; allowed: mlp, cnn"),
    (dict(depth=0), "depth=0; allowed: integer 1–4"),
    (dict(depth=5), "depth=5; allowed: integer 1–4"),
    (dict(width=0), "width=0; allowed: integer ≥ 1"),
    (dict(parameterization="mup"), "parameterization='mup'; allowed: standard, ntk"),
])
def test_bad_architecture_is_refused_naming_the_parameter(bad, match):
    with pytest.raises(ValueError, match=match):
        nc.Architecture(**bad)


def test_infinite_width_depth_is_checked():
    with pytest.raises(ValueError, match="depth=5; allowed: integer 1–4"):
        nc.analytic_kernels(np.ones((2, 3)), depth=5)
