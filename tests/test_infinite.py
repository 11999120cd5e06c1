"""Analytic (arc-cosine) kernels vs neural-tangents 0.6.5 and vs the empirical kernel:
1/√width convergence in NTK parameterization and the width-w expectation in standard
parameterization."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest

import ntk_core as nc

# analytic_kernels computes in float64. The arc-cosine NTK is sensitive to round-off of
# cos φ ≈ 1 on the diagonal (dφ/dcos → ∞), which costs a few 1e-9 relative against
# neural-tangents; 1e-7 still catches any formula or scaling error.
RTOL = {np.dtype(np.float64): 1e-7}

GOLDEN_SIGMAS = {
    # key prefix → (sigma_w, sigma_b). The file label rounds √2 to "1.4142"; the stored
    # kernels were computed with W_std = √2 exactly (1.4142 is off by 3.8e-5 relative).
    "inf_Wstd1.4142_bstd0.1": (math.sqrt(2.0), 0.1),
    "inf_Wstd1.0000_bstd0.0": (1.0, 0.0),
}


def rel_err(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a - b).max() / np.abs(b).max())


def rel_fro(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def make_params(width, parameterization, seed):
    """Init distributions of ntk_core.init_params, drawn with NumPy (fast, no compiles)."""
    rng = np.random.default_rng(seed)
    shapes = {"W1": (784, width), "b1": (width,), "W2": (width, 10), "b2": (10,)}
    fan_in = {"W1": 784, "b1": 784, "W2": width, "b2": width}
    if parameterization == "ntk":
        return {k: jnp.asarray(rng.standard_normal(s), jnp.float32) for k, s in shapes.items()}
    return {k: jnp.asarray(rng.uniform(-1, 1, s) / np.sqrt(fan_in[k]), jnp.float32)
            for k, s in shapes.items()}


# ----------------------------------------------------------------------------------------
# vs neural-tangents

@pytest.mark.parametrize("input_dtype", [np.float64, np.float32], ids=["x64", "x32"])
@pytest.mark.parametrize("prefix", sorted(GOLDEN_SIGMAS))
def test_matches_neural_tangents(golden, prefix, input_dtype):
    sigma_w, sigma_b = GOLDEN_SIGMAS[prefix]
    x = golden["X"].astype(input_dtype)
    ntk, nngp = nc.analytic_kernels(x, parameterization="ntk", sigma_w=sigma_w, sigma_b=sigma_b)
    assert ntk.dtype == nngp.dtype == np.float64 and ntk.shape == nngp.shape == (32, 32)
    # float32 inputs (k/255 rounded) move the kernel by ~1e-8 relative.
    rtol = RTOL[np.dtype(np.float64)] if input_dtype == np.float64 else 1e-6
    for name, got in (("ntk", ntk), ("nngp", nngp)):
        err = rel_err(got, golden[f"{prefix}_{name}"])
        assert err <= rtol, f"analytic_kernels {name} vs neural-tangents {prefix}: {err:.3g} > {rtol:g}"


def test_defaults_are_the_golden_sigmas(golden):
    ntk, nngp = nc.analytic_kernels(golden["X"])
    assert rel_err(ntk, golden["inf_Wstd1.4142_bstd0.1_ntk"]) <= RTOL[np.dtype(np.float64)]
    assert rel_err(nngp, golden["inf_Wstd1.4142_bstd0.1_nngp"]) <= RTOL[np.dtype(np.float64)]


@pytest.mark.parametrize("parameterization,width", [("ntk", None), ("standard", 64)])
def test_rectangular_symmetric_psd(golden, parameterization, width):
    x = golden["X"]
    kw = dict(parameterization=parameterization, width=width)
    full_ntk, full_nngp = nc.analytic_kernels(x, **kw)
    rect_ntk, rect_nngp = nc.analytic_kernels(x[:5], x[5:12], **kw)
    assert rect_ntk.shape == rect_nngp.shape == (5, 7)
    np.testing.assert_allclose(rect_ntk, full_ntk[:5, 5:12], rtol=1e-12, err_msg="rectangular NTK")
    np.testing.assert_allclose(rect_nngp, full_nngp[:5, 5:12], rtol=1e-12, err_msg="rectangular NNGP")
    for name, k in (("ntk", full_ntk), ("nngp", full_nngp)):
        np.testing.assert_allclose(k, k.T, rtol=1e-12, err_msg=f"{name} not symmetric")
        eig = np.linalg.eigvalsh(k)
        assert eig[0] >= -1e-10 * eig[-1], f"{name} not PSD ({parameterization}): {eig[0]}"


def test_diagonal_and_orthogonal_closed_forms():
    """Known values of the arc-cosine kernel: on the diagonal (φ = 0)
    Θ(x,x) = σ_w²Σ/2 + σ_b² + σ_w²Σ/2 with Σ = σ_w²|x|²/d + σ_b², K(x,x) = σ_w²Σ/2 + σ_b²;
    for orthogonal inputs with σ_b = 0 (φ = π/2): K = σ_w²√(Σ₁Σ₂)/(2π), Θ = K."""
    d = 784
    x = np.zeros((2, d))
    x[0, :10] = 1.0
    x[1, 10:30] = 0.5
    sw, sb = 1.3, 0.4
    ntk, nngp = nc.analytic_kernels(x, sigma_w=sw, sigma_b=sb)
    sig = sw ** 2 * np.sum(x * x, 1) / d + sb ** 2
    np.testing.assert_allclose(np.diag(nngp), sw ** 2 * sig / 2 + sb ** 2, rtol=1e-12)
    np.testing.assert_allclose(np.diag(ntk), sw ** 2 * sig / 2 + sb ** 2 + sw ** 2 * sig / 2, rtol=1e-12)
    ntk0, nngp0 = nc.analytic_kernels(x, sigma_w=sw, sigma_b=0.0)
    sig0 = sw ** 2 * np.sum(x * x, 1) / d
    k01 = sw ** 2 * np.sqrt(sig0[0] * sig0[1]) / (2 * np.pi)
    assert nngp0[0, 1] == pytest.approx(k01, rel=1e-12)
    assert ntk0[0, 1] == pytest.approx(k01, rel=1e-12)   # x·x' = 0 kills the W1 term


def test_argument_errors(golden):
    with pytest.raises(ValueError, match="width"):
        nc.analytic_kernels(golden["X"], parameterization="standard")
    with pytest.raises(ValueError, match="parameterization"):
        nc.analytic_kernels(golden["X"], parameterization="mup", width=8)


# ----------------------------------------------------------------------------------------
# vs the empirical kernel

@pytest.fixture(scope="module")
def x32(golden):
    return golden["X"]


def test_ntk_parameterization_converges_like_inverse_sqrt_width(x32):
    """‖Θ_emp − Θ_∞‖_F/‖Θ_∞‖_F at init ∝ width^(−1/2) (fluctuations of a sum of `width`
    i.i.d. terms); fitted log-log slope over widths 64…4096, 4 seeds each."""
    inf, _ = nc.analytic_kernels(x32, parameterization="ntk")
    x = jnp.asarray(x32, jnp.float32)
    widths = (64, 256, 1024, 4096)
    errs = []
    for w in widths:
        e = [rel_fro(nc.empirical_ntk(make_params(w, "ntk", 100 * w + s), x, parameterization="ntk"), inf)
             for s in range(4)]
        errs.append(np.mean(e))
    slope = np.polyfit(np.log(widths), np.log(errs), 1)[0]
    assert -0.7 < slope < -0.3, f"log-log slope {slope:.3f}; errors {np.round(errs, 4)}"
    assert errs[-1] < 0.06, f"width 4096 still {errs[-1]:.3f} away from the limit"


def test_standard_parameterization_expectation(x32):
    """The width-w expectation (Gaussian approximation of the uniform init) matches the
    mean empirical kernel over 16 seeds at width 512 within a few %."""
    width = 512
    expected, _ = nc.analytic_kernels(x32, parameterization="standard", width=width)
    x = jnp.asarray(x32, jnp.float32)
    mean = np.mean([np.asarray(nc.empirical_ntk(make_params(width, "standard", s), x), np.float64)
                    for s in range(16)], axis=0)
    err = rel_fro(mean, expected)
    assert err < 0.04, f"standard parameterization, width {width}: relative error {err:.3f}"
    # In standard parameterization only the W2 block (a2²·Σ_u h_u h_u') grows with width:
    # the expectation is affine in width, Θ(w) = A + w·B.
    e2, _ = nc.analytic_kernels(x32, parameterization="standard", width=2 * width)
    e4, _ = nc.analytic_kernels(x32, parameterization="standard", width=4 * width)
    np.testing.assert_allclose(e4 - e2, 2 * (e2 - expected), rtol=1e-9,
                               err_msg="standard-parameterization expectation not affine in width")
    assert np.all(e2 > expected), "expectation does not grow with width"


@pytest.mark.parametrize("parameterization,width,seeds", [
    ("ntk", 4096, 4), ("standard", 4096, 4),
    # At width 8 the b2 term (variance 1/(3·8)) dominates the standard-parameterization NNGP.
    ("standard", 8, 256),
])
def test_nngp_is_output_covariance(x32, parameterization, width, seeds):
    """NNGP = E[f_k(x) f_k(x')]. Averaging over the last layer exactly, given the hidden
    activations H: E_{W2,b2}[f fᵀ] = a2²·v_W2·H Hᵀ + c2²·v_b2; the mean of that over
    first-layer seeds is within a few % of the analytic NNGP (the first layer's
    pre-activations are sums over 784 inputs, Gaussian whatever the width)."""
    _, nngp = nc.analytic_kernels(x32, parameterization=parameterization, width=width)
    a1, c1, a2, c2 = nc.layer_scales(width, parameterization)
    # Variance of the raw W2, b2 entries: N(0, 1), or U(±1/√width) with variance 1/(3·width).
    v2 = 1.0 if parameterization == "ntk" else 1.0 / (3 * width)
    ks = []
    for s in range(seeds):
        p = {k: np.asarray(v, np.float64) for k, v in make_params(width, parameterization, 7 + s).items()}
        h = np.maximum(a1 * x32 @ p["W1"] + c1 * p["b1"], 0.0)
        ks.append(a2 ** 2 * v2 * h @ h.T + c2 ** 2 * v2)
    err = rel_fro(np.mean(ks, axis=0), nngp)
    assert err < 0.05, f"NNGP ({parameterization}) vs conditional output covariance: {err:.3f}"
