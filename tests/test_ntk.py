"""Empirical NTK: closed form vs autodiff vs neural-tangents 0.6.5 golden kernels.

Every implementation is compared with a reference over a parameter grid; assertion
messages name the implementation that failed. Tolerances are relative to the largest
entry of the reference and depend on the dtype of the computation.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntk_core as nc

# Relative (to the largest |entry| of the reference) tolerances per computation dtype.
# JAX runs without x64 here, so every kernel is float32; the goldens are float64.
RTOL = {np.dtype(np.float32): 1e-5}

WIDTHS_GOLDEN = (1, 8, 128)
METHODS = ("closed_form", "autodiff")
PARAMETERIZATIONS = ("standard", "ntk")


def rel_err(actual, ref) -> float:
    actual = np.asarray(actual, np.float64)
    ref = np.asarray(ref, np.float64)
    assert actual.shape == ref.shape, f"shape {actual.shape} != reference shape {ref.shape}"
    scale = np.abs(ref).max()
    assert scale > 0, "reference is identically zero: the comparison would be vacuous"
    return float(np.abs(actual - ref).max() / scale)


def assert_kernel_close(actual, ref, rtol, what: str):
    assert np.all(np.isfinite(np.asarray(actual))), f"{what}: non-finite entries"
    err = rel_err(actual, ref)
    assert err <= rtol, f"{what}: max |Δ| / max |ref| = {err:.3g} > {rtol:g}"


def golden_params(golden, width):
    return {k: jnp.asarray(golden[f"w{width}_{k}"], jnp.float32) for k in ("W1", "b1", "W2", "b2")}


def random_inputs(n, seed):
    """MNIST-like inputs: non-negative, sparse-ish, in [0, 1]."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, size=(n, 784)) * (rng.uniform(size=(n, 784)) < 0.25)
    return jnp.asarray(x, jnp.float32)


def make_params(width, parameterization="standard", seed=0, jitter=0.0):
    """Raw parameters drawn with NumPy (no per-shape JAX compilations), distributed as
    :func:`ntk_core.init_params` documents; ``jitter`` > 0 multiplies every entry by an
    independent U(1, 1 + jitter) factor to move away from the symmetric init."""
    rng = np.random.default_rng(seed)
    shapes = {"W1": (784, width), "b1": (width,), "W2": (width, 10), "b2": (10,)}
    fan_in = {"W1": 784, "b1": 784, "W2": width, "b2": width}
    out = {}
    for name, shape in shapes.items():
        if parameterization == "standard":
            a = rng.uniform(-1, 1, shape) / np.sqrt(fan_in[name])
        else:
            a = rng.standard_normal(shape)
        if jitter:
            a = a * rng.uniform(1, 1 + jitter, shape)
        out[name] = jnp.asarray(a, jnp.float32)
    return out


def np_params(params):
    return {k: np.asarray(v, np.float64) for k, v in params.items()}


def np_scales(width, parameterization, sigma_w=np.sqrt(2.0), sigma_b=0.1):
    if parameterization == "standard":
        return 1.0, 1.0, 1.0, 1.0
    return sigma_w / np.sqrt(784.0), sigma_b, sigma_w / np.sqrt(width), sigma_b


def np_traced_ntk(params, x1, x2, parameterization, **kw):
    """Float64 NumPy reference of the traced kernel, written from the Jacobian blocks."""
    p = np_params(params)
    x1 = np.asarray(x1, np.float64)
    x2 = np.asarray(x2, np.float64)
    width = p["W1"].shape[1]
    a1, c1, a2, c2 = np_scales(width, parameterization, **kw)
    z1 = a1 * x1 @ p["W1"] + c1 * p["b1"]
    z2 = a1 * x2 @ p["W1"] + c1 * p["b1"]
    h1, h2 = np.maximum(z1, 0), np.maximum(z2, 0)
    m1, m2 = (z1 > 0).astype(np.float64), (z2 > 0).astype(np.float64)
    s = np.mean(p["W2"] ** 2, axis=1)
    # ∂f_k/∂W2[u,k] = a2 h_u; ∂f_k/∂b2[k] = c2; ∂f_k/∂W1[d,u] = a2 W2[u,k] m_u a1 x_d;
    # ∂f_k/∂b1[u] = a2 W2[u,k] m_u c1. Mean over k of the sum over parameters:
    return (a2 ** 2 * h1 @ h2.T + c2 ** 2
            + a2 ** 2 * (a1 ** 2 * x1 @ x2.T + c1 ** 2) * ((m1 * s) @ m2.T))


# ----------------------------------------------------------------------------------------
# Golden kernels from neural-tangents 0.6.5 (standard parameterization: raw weights).

@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("width", WIDTHS_GOLDEN)
def test_traced_matches_neural_tangents(golden, width, method):
    params = golden_params(golden, width)
    x = jnp.asarray(golden["X"], jnp.float32)
    theta = nc.empirical_ntk(params, x, parameterization="standard", method=method, trace=True)
    assert theta.shape == (32, 32) and theta.dtype == jnp.float32, (method, theta.shape, theta.dtype)
    assert_kernel_close(theta, golden[f"w{width}_ntk_traced"], RTOL[np.dtype(theta.dtype)],
                        f"{method} traced Θ, width {width}, vs neural-tangents")


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("width", WIDTHS_GOLDEN)
def test_full_matches_neural_tangents(golden, width, method):
    params = golden_params(golden, width)
    x = jnp.asarray(golden["X"][:8], jnp.float32)
    theta = nc.empirical_ntk(params, x, parameterization="standard", method=method, trace=False)
    assert theta.shape == (8, 8, 10, 10) and theta.dtype == jnp.float32, (method, theta.shape)
    assert_kernel_close(theta, golden[f"w{width}_ntk_full"], RTOL[np.dtype(theta.dtype)],
                        f"{method} full Θ, width {width}, vs neural-tangents")


def test_golden_reference_is_consistent(golden):
    """The float64 NumPy reference used below reproduces the golden traced kernels."""
    for width in WIDTHS_GOLDEN:
        ref = np_traced_ntk(golden_params(golden, width), golden["X"], golden["X"], "standard")
        # golden_params are float32: compare at float32 precision.
        assert_kernel_close(ref, golden[f"w{width}_ntk_traced"], 1e-6,
                            f"NumPy reference, width {width}")


# ----------------------------------------------------------------------------------------
# closed form vs autodiff on random parameters.

@pytest.mark.parametrize("shape", ["square", "rectangular"])
@pytest.mark.parametrize("trace", [True, False], ids=["traced", "full"])
@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
@pytest.mark.parametrize("width", [1, 2, 7, 64, 300])
def test_closed_form_matches_autodiff(width, parameterization, trace, shape):
    # Jitter away from init so that W2 rows differ in scale (s_u not constant).
    params = make_params(width, parameterization, seed=1000 + width, jitter=0.5)
    x1 = random_inputs(6, seed=width)
    x2 = x1 if shape == "square" else random_inputs(4, seed=width + 1)
    kw = dict(parameterization=parameterization, trace=trace)
    ref = nc.empirical_ntk(params, x1, x2, method="autodiff", **kw)
    got = nc.empirical_ntk(params, x1, x2, method="closed_form", **kw)
    expected_shape = (6, x2.shape[0]) + (() if trace else (10, 10))
    assert got.shape == ref.shape == expected_shape, (got.shape, ref.shape, expected_shape)
    assert got.dtype == ref.dtype == jnp.float32
    assert_kernel_close(got, ref, RTOL[np.dtype(got.dtype)],
                        f"closed_form vs autodiff ({parameterization}, width {width}, "
                        f"{'traced' if trace else 'full'}, {shape})")


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("sigmas", [(1.0, 0.0), (2.0, 0.5)])
def test_ntk_parameterization_sigmas(method, sigmas):
    """Non-default σ_w, σ_b reach every implementation (vs the float64 NumPy reference)."""
    sigma_w, sigma_b = sigmas
    params = make_params(16, "ntk", seed=3)
    x1, x2 = random_inputs(5, 10), random_inputs(3, 11)
    got = nc.empirical_ntk(params, x1, x2, parameterization="ntk", method=method,
                           sigma_w=sigma_w, sigma_b=sigma_b)
    ref = np_traced_ntk(params, x1, x2, "ntk", sigma_w=sigma_w, sigma_b=sigma_b)
    assert_kernel_close(got, ref, 1e-5, f"{method} traced Θ at σ_w={sigma_w}, σ_b={sigma_b}")


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
def test_traced_matches_numpy_reference(method, parameterization, mnist_small):
    params = make_params(32, parameterization, seed=5)
    x = jnp.asarray(mnist_small.x_train[:12])
    got = nc.empirical_ntk(params, x, parameterization=parameterization, method=method)
    ref = np_traced_ntk(params, x, x, parameterization)
    assert_kernel_close(got, ref, 1e-5, f"{method} traced Θ ({parameterization}) vs NumPy")


@pytest.mark.parametrize("method", ["closed_form", nc.NTKMethod.AUTODIFF])
def test_x2_defaults_to_x1(method, mnist_small):
    params = make_params(8, seed=2)
    x = jnp.asarray(mnist_small.x_train[:5])
    a = nc.empirical_ntk(params, x, method=method)
    b = nc.empirical_ntk(params, x, x, method=method)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=f"{method}: x2=None")


def test_unknown_method_rejected():
    params = make_params(2, seed=0)
    with pytest.raises(ValueError):
        nc.empirical_ntk(params, random_inputs(2, 0), method="finite_differences")


# ----------------------------------------------------------------------------------------
# Normalisation, trace over logits, symmetry and PSD.

@pytest.mark.parametrize("trace", [True, False], ids=["traced", "full"])
@pytest.mark.parametrize("method", METHODS)
def test_normalize_divides_by_rows(method, trace):
    params = make_params(9, seed=7)
    x1, x2 = random_inputs(6, 20), random_inputs(3, 21)
    raw = np.asarray(nc.empirical_ntk(params, x1, x2, method=method, trace=trace), np.float64)
    norm = np.asarray(nc.empirical_ntk(params, x1, x2, method=method, trace=trace, normalize=True),
                      np.float64)
    assert_kernel_close(norm, raw / 6, 1e-6, f"{method} normalize=True vs Θ/n1 (n1=6, n2=3)")


@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
@pytest.mark.parametrize("method", METHODS)
def test_traced_is_mean_of_full_diagonal_logits(method, parameterization):
    params = make_params(24, parameterization, seed=8)
    x1, x2 = random_inputs(5, 30), random_inputs(4, 31)
    kw = dict(parameterization=parameterization, method=method)
    traced = nc.empirical_ntk(params, x1, x2, trace=True, **kw)
    full = np.asarray(nc.empirical_ntk(params, x1, x2, trace=False, **kw), np.float64)
    ref = np.einsum("ijkk->ij", full) / 10
    assert_kernel_close(traced, ref, 1e-5, f"{method} traced vs mean_k full[:, :, k, k]")


@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
@pytest.mark.parametrize("width", [1, 64])
def test_full_kernel_logit_structure(width, parameterization):
    """Off-diagonal logit blocks carry only the W1/b1 term: full[i,j,k,l] for k≠l equals
    a2²·G_ij·Σ_u m_iu m_ju W2[u,k] W2[u,l] (NumPy reference)."""
    params = make_params(width, parameterization, seed=9)
    x = random_inputs(4, 40)
    full = np.asarray(nc.empirical_ntk(params, x, trace=False, parameterization=parameterization),
                      np.float64)
    p = np_params(params)
    a1, c1, a2, c2 = np_scales(width, parameterization)
    xd = np.asarray(x, np.float64)
    z = a1 * xd @ p["W1"] + c1 * p["b1"]
    h, m = np.maximum(z, 0), (z > 0).astype(np.float64)
    g = a1 ** 2 * xd @ xd.T + c1 ** 2
    inner = np.einsum("iu,ju,uk,ul->ijkl", m, m, p["W2"], p["W2"])
    ref = (a2 ** 2 * g[:, :, None, None] * inner
           + (a2 ** 2 * h @ h.T + c2 ** 2)[:, :, None, None] * np.eye(10)[None, None])
    assert_kernel_close(full, ref, 1e-5, f"closed_form full Θ ({parameterization}, width {width})")


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
@pytest.mark.parametrize("width", [1, 64])
def test_kernel_symmetric_psd(width, parameterization, method, mnist_small):
    params = make_params(width, parameterization, seed=11)
    x = jnp.asarray(mnist_small.x_train[:32])
    theta = np.asarray(nc.empirical_ntk(params, x, parameterization=parameterization,
                                        method=method), np.float64)
    scale = np.abs(theta).max()
    asym = np.abs(theta - theta.T).max() / scale
    assert asym <= 1e-6, f"{method} ({parameterization}, width {width}): asymmetry {asym:.3g}"
    eigs = np.linalg.eigvalsh(0.5 * (theta + theta.T))
    assert eigs[0] >= -1e-5 * eigs[-1], (
        f"{method} ({parameterization}, width {width}): λ_min = {eigs[0]:.3g}, λ_max = {eigs[-1]:.3g}")


def test_width_one_structure():
    """At width 1 (standard parameterization) the traced kernel is, exactly,
    Θ = h hᵀ + s·(XXᵀ + 1) ∘ (m mᵀ) + 1 with s = mean_k W2[0, k]²:
    a rank-1 W2 block, a masked Gram block and the constant b2 block."""
    params = make_params(1, "standard", seed=4)
    # Scale W2 so the three blocks have comparable size, and pick b1 so that some
    # samples are active and some are not (otherwise the mask would be trivial).
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.uniform(0, 1, (24, 784)), jnp.float32)
    w1 = np.asarray(params["W1"], np.float64)
    z0 = np.asarray(x, np.float64) @ w1[:, 0]
    params = dict(params, b1=jnp.asarray([-np.median(z0)], jnp.float32),
                  W2=jnp.asarray(np.asarray(params["W2"]) * 10.0))
    theta = np.asarray(nc.empirical_ntk(params, x, method="closed_form"), np.float64)

    p = np_params(params)
    xd = np.asarray(x, np.float64)
    z = xd @ p["W1"][:, 0] + p["b1"][0]
    h, m = np.maximum(z, 0), (z > 0).astype(np.float64)
    assert 0 < m.sum() < m.size, "degenerate mask: all samples active or all inactive"
    s = np.mean(p["W2"][0] ** 2)
    ref = np.outer(h, h) + s * (xd @ xd.T + 1.0) * np.outer(m, m) + 1.0
    assert_kernel_close(theta, ref, 1e-5, "closed_form at width 1 vs explicit formula")
    # Inactive samples only see the b2 block and the W2 block (h = 0): Θ_ij = 1 exactly.
    off = np.flatnonzero(m == 0)
    np.testing.assert_allclose(theta[np.ix_(off, off)], 1.0, rtol=1e-6,
                               err_msg="closed_form at width 1: inactive×inactive entries")
    # Θ − 1 − h hᵀ (the W1/b1 block) vanishes on every row of an inactive sample.
    rest = theta - 1.0 - np.outer(h, h)
    assert np.abs(rest[np.ix_(off, np.arange(24))]).max() <= 1e-5 * np.abs(theta).max()


@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
def test_width_4096_closed_form_matches_autodiff(parameterization, mnist_small):
    params = make_params(4096, parameterization, seed=12)
    x = jnp.asarray(mnist_small.x_train[:16])
    ref = nc.empirical_ntk(params, x, parameterization=parameterization, method="autodiff")
    got = nc.empirical_ntk(params, x, parameterization=parameterization, method="closed_form")
    assert_kernel_close(got, ref, 1e-5, f"closed_form vs autodiff at width 4096 ({parameterization})")


# ----------------------------------------------------------------------------------------
# Diagonal, matrix-free operator and Gram-sharing variant vs the dense kernel.

CHEAP_GRID = list(itertools.product(PARAMETERIZATIONS, [1, 7, 128]))


@pytest.mark.parametrize("parameterization,width", CHEAP_GRID)
def test_ntk_diagonal(parameterization, width, mnist_small):
    params = make_params(width, parameterization, seed=13)
    x = jnp.asarray(mnist_small.x_train)
    dense = np.asarray(nc.empirical_ntk(params, x, parameterization=parameterization), np.float64)
    diag = np.asarray(nc.ntk_diagonal(params, x, parameterization=parameterization), np.float64)
    assert diag.shape == (64,)
    assert_kernel_close(diag, np.diag(dense), 1e-5, f"ntk_diagonal ({parameterization}, width {width})")
    tr = diag.sum()
    assert abs(tr - np.trace(dense)) <= 1e-5 * abs(np.trace(dense)), (
        f"ntk_diagonal sum {tr} vs trace {np.trace(dense)}")


@pytest.mark.parametrize("parameterization,width", CHEAP_GRID)
def test_matfree_matvec_and_matmat(parameterization, width, mnist_small):
    params = make_params(width, parameterization, seed=14)
    x = jnp.asarray(mnist_small.x_train)
    dense = np.asarray(nc.empirical_ntk(params, x, parameterization=parameterization), np.float64)
    state = nc.matfree_state(params, x, parameterization=parameterization)
    rng = np.random.default_rng(width)
    v = rng.standard_normal(64).astype(np.float32)
    vs = rng.standard_normal((64, 5)).astype(np.float32)
    mv = nc.matfree_matvec(state, jnp.asarray(v))
    mm = nc.matfree_matmat(state, jnp.asarray(vs))
    assert mv.shape == (64,) and mv.dtype == jnp.float32
    assert mm.shape == (64, 5) and mm.dtype == jnp.float32
    assert_kernel_close(mv, dense @ v.astype(np.float64), 1e-5,
                        f"matfree_matvec ({parameterization}, width {width})")
    assert_kernel_close(mm, dense @ vs.astype(np.float64), 1e-5,
                        f"matfree_matmat ({parameterization}, width {width})")
    # Mean-zero vectors remove the dominant constant (b2) direction: still exact.
    v0 = (v - v.mean()).astype(np.float32)
    assert_kernel_close(nc.matfree_matvec(state, jnp.asarray(v0)), dense @ v0.astype(np.float64),
                        1e-4, f"matfree_matvec on a mean-zero vector ({parameterization})")


@pytest.mark.parametrize("parameterization,width", CHEAP_GRID)
def test_traced_ntk_from_gram(parameterization, width, mnist_small):
    params = make_params(width, parameterization, seed=15)
    x = jnp.asarray(mnist_small.x_train)
    g = nc.gram(x, parameterization=parameterization)
    a1, c1, _, _ = np_scales(width, parameterization)
    xd = np.asarray(x, np.float64)
    assert_kernel_close(g, a1 ** 2 * xd @ xd.T + c1 ** 2, 1e-6, f"gram ({parameterization})")
    got = nc.traced_ntk_from_gram(params, x, g, parameterization=parameterization)
    ref = nc.empirical_ntk(params, x, parameterization=parameterization)
    assert_kernel_close(got, ref, 1e-6,
                        f"traced_ntk_from_gram vs empirical_ntk ({parameterization}, width {width})")


@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
def test_apply_matches_numpy(parameterization, mnist_small):
    params = make_params(20, parameterization, seed=16)
    x = np.asarray(mnist_small.x_train[:10], np.float64)
    p = np_params(params)
    a1, c1, a2, c2 = np_scales(20, parameterization)
    ref = a2 * np.maximum(a1 * x @ p["W1"] + c1 * p["b1"], 0) @ p["W2"] + c2 * p["b2"]
    got = nc.apply(params, jnp.asarray(x, jnp.float32), parameterization)
    assert got.shape == (10, 10) and got.dtype == jnp.float32
    assert_kernel_close(got, ref, 1e-5, f"apply ({parameterization})")


@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
def test_init_params_distribution(parameterization):
    width = 512
    params = nc.init_params(jax.random.PRNGKey(17), width, parameterization)
    shapes = {"W1": (784, width), "b1": (width,), "W2": (width, 10), "b2": (10,)}
    for name, shape in shapes.items():
        a = np.asarray(params[name], np.float64)
        assert a.shape == shape and params[name].dtype == jnp.float32, (name, a.shape)
    if parameterization == "standard":
        for name, fan_in in (("W1", 784), ("W2", width)):
            a = np.asarray(params[name], np.float64)
            bound = 1 / np.sqrt(fan_in)
            assert np.abs(a).max() <= bound * (1 + 1e-6), f"{name} outside ±1/√fan_in"
            # Uniform on ±b has variance b²/3.
            assert abs(a.var() / (bound ** 2 / 3) - 1) < 0.05, f"{name} variance"
    else:
        w1 = np.asarray(params["W1"], np.float64)
        assert abs(w1.std() - 1) < 0.01 and abs(w1.mean()) < 0.01, "W1 not standard normal"


# ----------------------------------------------------------------------------------------
# Explicit scales: params zero-padded to a larger width with the TRUE width's scales give
# the true width's kernel (padded units: z = 0 → h = 0, relu'(0) = 0, zero W2 rows).

@pytest.mark.parametrize("trace", [True, False], ids=["traced", "full"])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
def test_padded_params_with_true_scales(parameterization, method, trace, mnist_small):
    width, padded_width = 5, 12
    params = make_params(width, parameterization, seed=18, jitter=0.5)
    padded = nc.pad_params(params, padded_width)
    assert padded["W1"].shape == (784, padded_width)
    x = jnp.asarray(mnist_small.x_train[:24])
    what = f"padded {width}→{padded_width} ({parameterization}, {method}, trace={trace})"
    ref = nc.empirical_ntk(params, x, parameterization=parameterization, method=method, trace=trace)
    got = nc.empirical_ntk(padded, x, parameterization=parameterization, method=method, trace=trace,
                           scales=nc.layer_scales(width, parameterization))
    assert_kernel_close(got, ref, 1e-6, what)
    if parameterization == "ntk":  # the padded shape's own scales (a2 = σ_w/√12) differ
        wrong = nc.empirical_ntk(padded, x, parameterization=parameterization, method=method, trace=trace)
        assert rel_err(wrong, ref) > 1e-2, f"{what}: scales had no effect"


@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
def test_checkpoint_functions_accept_scales(parameterization, mnist_small):
    """gram-sharing kernel, diagonal and matrix-free state with explicit scales, including
    as a Scales of traced-friendly Python floats and as a (4,) array."""
    width, padded_width = 7, 16
    params = make_params(width, parameterization, seed=19)
    padded = nc.pad_params(params, padded_width)
    sc = nc.layer_scales(width, parameterization)
    x = jnp.asarray(mnist_small.x_train)
    g = nc.gram(x, parameterization=parameterization)
    ref = np.asarray(nc.traced_ntk_from_gram(params, x, g, parameterization=parameterization), np.float64)
    for scales in (sc, jnp.asarray(sc, jnp.float32)):
        got = nc.traced_ntk_from_gram(padded, x, g, parameterization=parameterization, scales=scales)
        assert_kernel_close(got, ref, 1e-6, f"traced_ntk_from_gram padded ({parameterization})")
    diag = nc.ntk_diagonal(padded, x, parameterization=parameterization, scales=sc)
    assert_kernel_close(diag, np.diag(ref), 1e-6, f"ntk_diagonal padded ({parameterization})")
    state = nc.matfree_state(padded, x, parameterization=parameterization, scales=sc)
    v = np.random.default_rng(1).standard_normal(64).astype(np.float32)
    assert_kernel_close(nc.matfree_matvec(state, jnp.asarray(v)), ref @ v.astype(np.float64), 1e-5,
                        f"matfree_matvec padded ({parameterization})")
