"""The full (n·10)×(n·10) NTK: matrix-free product vs the dense kernel, its λ_max vs the
traced one, and the gradient-descent stability bound η < 2n/λ_max(Θ_full) on models
whose NTK is exact (linear)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import ntk_core as nc

N, WIDTH, K = 12, 16, 10


def make_params(width, parameterization, seed=0):
    rng = np.random.default_rng(seed)
    shapes = {"W1": (784, width), "b1": (width,), "W2": (width, K), "b2": (K,)}
    fan_in = {"W1": 784, "b1": 784, "W2": width, "b2": width}
    if parameterization == "standard":
        return {k: rng.uniform(-1, 1, s).astype(np.float32) / np.float32(np.sqrt(fan_in[k]))
                for k, s in shapes.items()}
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}


def trained_like(params, seed):
    """Params moved away from init (heavier, correlated W2 columns) to vary the kernel."""
    rng = np.random.default_rng(seed)
    out = {k: v * np.float32(1.5) + np.float32(0.05) * rng.standard_normal(v.shape).astype(np.float32)
           for k, v in params.items()}
    out["W2"] = out["W2"] + np.float32(0.5) * out["W2"][:, :1]
    return out


@pytest.fixture(scope="module")
def xs():
    x, _ = nc.load_bundled()
    return jnp.asarray(x[:N])


def dense_full(params, x, par, method="closed_form"):
    theta = nc.empirical_ntk(params, x, parameterization=par, trace=False, method=method)
    assert theta.shape == (N, N, K, K)      # axes (i, j, logit_i, logit_j)
    return nc.full_ntk_matrix(theta).astype(np.float64)


@pytest.mark.parametrize("par", ["standard", "ntk"])
@pytest.mark.parametrize("method", ["closed_form", "autodiff"])
def test_full_matvec_matches_dense_full_kernel(xs, par, method):
    params = make_params(WIDTH, par, seed=1)
    f = dense_full(params, xs, par, method)
    rng = np.random.default_rng(2)
    for v in (rng.standard_normal((N, K)).astype(np.float32), np.eye(N * K, dtype=np.float32)[7].reshape(N, K)):
        got = np.asarray(nc.full_ntk_matvec(params, xs, v, parameterization=par), np.float64)
        ref = (f @ v.astype(np.float64).ravel()).reshape(N, K)
        err = np.linalg.norm(got - ref) / np.linalg.norm(ref)
        assert got.shape == (N, K) and err <= 1e-5, f"full_ntk_matvec vs dense ({par}, {method}): {err:.2e}"
    flat = rng.standard_normal(N * K).astype(np.float32)
    got = np.asarray(nc.full_ntk_matvec(params, xs, flat, parameterization=par), np.float64)
    assert got.shape == (N * K,)
    np.testing.assert_allclose(got, f @ flat.astype(np.float64), rtol=0, atol=1e-5 * np.abs(f @ flat).max())


def test_full_ntk_matrix_layout(xs):
    """Row i·K + a, column j·K + b holds Θ[i, j, a, b]; its traced mean is the traced kernel."""
    params = make_params(WIDTH, "standard", seed=3)
    t4 = np.asarray(nc.empirical_ntk(params, xs, trace=False))
    f = nc.full_ntk_matrix(t4)
    assert f.shape == (N * K, N * K)
    assert f[3 * K + 2, 5 * K + 7] == t4[3, 5, 2, 7]
    traced = np.asarray(nc.empirical_ntk(params, xs))
    blocks_mean = np.mean([f[a::K, a::K] for a in range(K)], axis=0)
    np.testing.assert_allclose(blocks_mean, traced, rtol=1e-5, atol=1e-6 * np.abs(traced).max())


@pytest.mark.parametrize("par", ["standard", "ntk"])
@pytest.mark.parametrize("trained", [False, True], ids=["init", "moved"])
def test_full_lambda_max_and_relation_to_traced(xs, par, trained):
    params = make_params(WIDTH, par, seed=4)
    if trained:
        params = trained_like(params, seed=5)
    f = dense_full(params, xs, par)
    lam_f = np.linalg.eigvalsh(f)[-1]
    res = nc.full_ntk_lambda_max(params, xs, parameterization=par)
    assert isinstance(res, nc.EigResult) and res.values.shape == (1,)
    assert res.converged and res.max_residual <= 1e-5
    assert abs(res.values[0] - lam_f) <= 1e-5 * lam_f, f"λ_max(full) {res.values[0]} vs eigvalsh {lam_f}"

    traced = np.asarray(nc.empirical_ntk(params, xs, parameterization=par), np.float64)
    lam_t = np.linalg.eigvalsh(traced)[-1]
    lam_blocks = np.array([np.linalg.eigvalsh(f[a::K, a::K])[-1] for a in range(K)])
    # λ_max(T) ≤ max_a λ_max(F_aa) ≤ λ_max(F) ≤ Σ_a λ_max(F_aa) ≤ K²·λ_max(T)
    slack = 1 + 1e-6
    assert lam_t <= lam_blocks.max() * slack
    assert lam_blocks.max() <= lam_f * slack
    assert lam_f <= lam_blocks.sum() * slack
    assert lam_blocks.sum() <= K ** 2 * lam_t * slack
    assert lam_f > lam_t * (1 + 1e-3), "the full kernel's λ_max should exceed the traced one here"


def test_relation_bounds_are_attained():
    """Both ends of λ_max(T) ≤ λ_max(F) ≤ K²·λ_max(T) are reached by PSD block matrices
    (T = mean of the diagonal blocks F_aa; index i·K + a)."""
    def traced(f):
        return np.mean([f[a::K, a::K] for a in range(K)], axis=0)

    rng = np.random.default_rng(6)
    b = rng.standard_normal((4, 4))
    f_lo = np.kron(b @ b.T, np.eye(K))                       # F_ab = δ_ab·A
    assert np.linalg.eigvalsh(f_lo)[-1] == pytest.approx(np.linalg.eigvalsh(traced(f_lo))[-1], rel=1e-12)
    w = np.eye(K).ravel()                                     # w_(i,a) = v_a[i] with v_a = e_a ∈ R^K
    f_hi = np.outer(w, w)                                     # F_ab = v_a v_bᵀ, T = I/K
    assert np.linalg.eigvalsh(f_hi)[-1] == pytest.approx(K ** 2 * np.linalg.eigvalsh(traced(f_hi))[-1], rel=1e-12)


def test_stable_lr_bound():
    assert nc.stable_lr_bound(4.0, 10) == pytest.approx(5.0)
    assert nc.stable_lr_bound(0.0, 10) == float("inf")


# ----------------------------------------------------------------------------------------
# Physics: gradient descent on linear models (NTK exact and constant)

def _gd_losses(x, y, jac, eta, steps):
    """Full-batch GD on L = ½·mean_i ‖f(x_i) − y_i‖² for f = J θ (flattened outputs i·K + a)."""
    n = x.shape[0]
    theta = np.zeros(jac.shape[1])
    losses = []
    for _ in range(steps):
        r = jac @ theta - y.ravel()
        losses.append(0.5 * (r @ r) / n)
        if losses[-1] > 1e12 * losses[0]:
            break                                             # diverged; stop before overflow
        theta = theta - eta * (jac.T @ r) / n                 # ∇θ L = (1/n) Jᵀ r
    return np.array(losses)


def _linear_jacobian(x, shared: bool):
    """J of f_a(x) = x·W[:, a] (+ x·u if ``shared``) w.r.t. θ = (vec W [, u]); rows i·K + a."""
    n, d = x.shape
    jw = np.einsum("ic,ab->iacb", x, np.eye(K)).reshape(n * K, d * K)    # ∂f_ia/∂W[c,b] = x_ic δ_ab
    if not shared:
        return jw
    ju = np.repeat(x, K, axis=0)                                          # ∂f_ia/∂u_c = x_ic
    return np.concatenate([jw, ju], axis=1)


@pytest.mark.parametrize("shared", [False, True], ids=["f=xW", "f=xW+(x·u)1"])
def test_gd_stability_threshold_is_2n_over_full_lambda_max(shared):
    """Below η* = 2n/λ_max(Θ_full) the loss decreases monotonically; just above it blows up.

    With a parameter shared by all outputs (u), Θ_full = XXᵀ ⊗ (I + 11ᵀ) has
    λ_max = 11·λ_max(XXᵀ) while the traced (mean over logits) kernel is 2·XXᵀ: a rate
    chosen from the traced λ_max (5.5× larger) diverges, as asserted below."""
    rng = np.random.default_rng(7)
    n, d = 16, 24
    x = rng.standard_normal((n, d))
    y = rng.standard_normal((n, K))
    jac = _linear_jacobian(x, shared)
    theta_full = jac @ jac.T
    lam_full = nc.top_k_eigs(theta_full, 1)[0]
    assert lam_full == pytest.approx(np.linalg.eigvalsh(theta_full)[-1], rel=1e-10)
    traced = np.mean([theta_full[a::K, a::K] for a in range(K)], axis=0)
    lam_traced = np.linalg.eigvalsh(traced)[-1]
    lam_xx = np.linalg.eigvalsh(x @ x.T)[-1]
    assert lam_full == pytest.approx((11 if shared else 1) * lam_xx, rel=1e-10)
    assert lam_traced == pytest.approx((2 if shared else 1) * lam_xx, rel=1e-10)

    eta_star = nc.stable_lr_bound(lam_full, n)
    below = _gd_losses(x, y, jac, 0.98 * eta_star, 400)
    above = _gd_losses(x, y, jac, 1.02 * eta_star, 400)
    assert np.all(np.diff(below) <= 1e-12 * below[0]), "loss must decrease monotonically below η*"
    assert below[-1] < 0.5 * below[0]
    assert above[-1] > 1e6 * above[0], f"loss must blow up above η*: {above[0]:.3g} → {above[-1]:.3g}"
    if shared:
        eta_traced = nc.stable_lr_bound(lam_traced, n)
        assert eta_traced > 5 * eta_star
        mid = _gd_losses(x, y, jac, 0.5 * eta_traced, 400)   # "stable" by the traced λ_max
        assert mid[-1] > 1e6 * mid[0], "a rate from the traced λ_max diverges"


def _zero_pad(params, width):
    w = params["W1"].shape[1]
    out = dict(params)
    out["W1"] = np.concatenate([params["W1"], np.zeros((784, width - w), np.float32)], axis=1)
    out["b1"] = np.concatenate([params["b1"], np.zeros(width - w, np.float32)])
    out["W2"] = np.concatenate([params["W2"], np.zeros((width - w, K), np.float32)], axis=0)
    return out


@pytest.mark.parametrize("par", ["standard", "ntk"])
def test_explicit_scales_for_zero_padded_params(xs, par):
    """Params zero-padded from width 16 to 24 with the true width's scales give the
    width-16 full-kernel product, λ_max and float64 traced kernel exactly."""
    params = make_params(WIDTH, par, seed=8)
    padded = _zero_pad(params, 24)
    s = nc.layer_scales(WIDTH, par)
    v = np.random.default_rng(9).standard_normal((N, K)).astype(np.float32)
    ref = np.asarray(nc.full_ntk_matvec(params, xs, v, parameterization=par))
    got = np.asarray(nc.full_ntk_matvec(padded, xs, v, parameterization=par, scales=s))
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6 * np.abs(ref).max())
    got_arr = np.asarray(nc.full_ntk_matvec(padded, xs, v, parameterization=par, scales=np.asarray(s)))
    np.testing.assert_allclose(got_arr, ref, rtol=1e-6, atol=1e-6 * np.abs(ref).max())
    lam = nc.full_ntk_lambda_max(params, xs, parameterization=par).values[0]
    lam_p = nc.full_ntk_lambda_max(padded, xs, parameterization=par, scales=s).values[0]
    assert lam_p == pytest.approx(lam, rel=1e-5)
    k64 = nc.traced_ntk_float64(params, np.asarray(xs), parameterization=par)
    k64p = nc.traced_ntk_float64(padded, np.asarray(xs), parameterization=par, scales=s)
    np.testing.assert_allclose(k64p, k64, rtol=1e-12)
    if par == "ntk":   # the padded shape's own scales differ (a2 = σ_w/√24): a real override
        other = nc.traced_ntk_float64(padded, np.asarray(xs), parameterization=par)
        assert np.abs(other - k64).max() > 1e-3 * np.abs(k64).max()
