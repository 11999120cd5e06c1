"""Kernel motion and infinite width: exact Frobenius statistics against dense kernels (both
parameterizations, moved and padded parameters), the infinite-width rates, kernel
regression, every decision rule on synthetic data, the runner functions (cached second
call) and the CLI commands' one-JSON-object contract. The Streamlit pages are tested in
tests/test_infinite_width_page.py (slow)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import jax
import numpy as np
import pytest

import ntk_core as nc
import runner
from ntk_core._src import kernel_motion as km
from runner import _theory_motion as tm
from runner._verdicts import VERDICTS

LIM = runner.Limits()
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data():
    return nc.load_split(70, 30, seed=3)


def moved(params, scale, seed):
    """Params moved by ``scale`` × their own spread (a "trained" checkpoint), float32."""
    rng = np.random.default_rng(seed)
    return {k: (np.asarray(v) + scale * np.std(np.asarray(v)) * rng.standard_normal(np.shape(v)))
            .astype(np.float32) for k, v in params.items()}


def dense64(params, x, parameterization, scales=None):
    return nc.traced_ntk_float64(params, x, parameterization=parameterization, scales=scales)


# ------------------------------------------------------------------------------ Frobenius sums


@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
def test_frobenius_inner_products_match_dense_kernels(data, parameterization):
    x = data.x_train
    p0 = km.sample_init(0, 24, parameterization)
    p1 = moved(p0, 0.3, 1)
    p_wide = km.sample_init(5, 40, parameterization)   # another width
    ks = [dense64(p, x, parameterization) for p in (p0, p1, p_wide)]
    fs = [km.kernel_factors(p, x, parameterization=parameterization) for p in (p0, p1, p_wide)]
    for i in range(3):
        np.testing.assert_allclose(km.traced_kernel(fs[i], x), ks[i], rtol=1e-12, atol=1e-12 * np.abs(ks[i]).max())
        for j in range(3):
            want = float(np.sum(ks[i] * ks[j]))
            for block in (7, 64, 512):   # blocks that do not divide n, and one that covers it
                got = km.frobenius_inner(fs[i], fs[j], x, block=block)
                assert got == pytest.approx(want, rel=1e-12), (i, j, block)
    # The float32 jax.grad kernel (per-sample Jacobians, no closed form) agrees to float32 accuracy.
    k32 = np.asarray(nc.empirical_ntk(p1, x, parameterization=parameterization, method="autodiff"),
                     np.float64)
    assert km.frobenius_inner(fs[1], fs[0], x) == pytest.approx(float(np.sum(k32 * ks[0])), rel=2e-6)


@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
def test_path_statistics_match_dense(data, parameterization):
    x, y = data.x_train, data.y_train
    p0 = km.sample_init(1, 32, parameterization)
    path = [p0, moved(p0, 0.02, 2), moved(p0, 0.2, 3), moved(p0, 0.5, 4)]
    ks = [dense64(p, x, parameterization) for p in path]
    st = km.kernel_path_stats([km.kernel_factors(p, x, parameterization=parameterization) for p in path],
                              x, y, block=13)
    norms = np.array([np.linalg.norm(k) for k in ks])
    np.testing.assert_allclose(st.norm, norms, rtol=1e-12)
    np.testing.assert_allclose(st.dist_init, [np.linalg.norm(k - ks[0]) for k in ks], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(st.rel_change, st.dist_init / norms[0], rtol=1e-12)
    np.testing.assert_allclose(st.dist_next, [np.linalg.norm(b - a) for a, b in zip(ks, ks[1:])], rtol=1e-10)
    inner = np.array([np.sum(a * b) for a, b in zip(ks, ks[1:])])
    np.testing.assert_allclose(st.inner_next, inner, rtol=1e-12)
    naive = 1 - inner / (norms[:-1] * norms[1:])
    np.testing.assert_allclose(st.velocity, naive, rtol=1e-6, atol=1e-15)
    assert st.velocity[0] < st.velocity[1] < st.velocity[2]    # moved further → faster
    np.testing.assert_allclose(st.alignment, [km.centered_alignment(k, y) for k in ks], rtol=1e-10)
    # Centered alignment, from its definition with C = I − 11ᵀ/n.
    n = x.shape[0]
    c = np.eye(n) - np.ones((n, n)) / n
    kc, yc = c @ ks[2] @ c, c @ (y @ y.T) @ c
    assert st.alignment[2] == pytest.approx(np.sum(kc * yc) / np.linalg.norm(kc) / np.linalg.norm(yc), rel=1e-10)


def test_tiny_motion_is_resolved_without_cancellation(data):
    """A change of 1e-7 relative to the kernel is measured to a few percent (float64 sums of
    the difference itself; 1 − cos of nearly parallel kernels without cancellation)."""
    x = data.x_train
    p0 = {k: np.asarray(v, np.float64) for k, v in km.sample_init(2, 16, "ntk").items()}
    p1 = dict(p0, W2=p0["W2"] * (1 + 1e-7))      # a pure rescaling of one layer's term
    st = km.kernel_path_stats([km.kernel_factors(p, x, parameterization="ntk") for p in (p0, p1)], x)
    k0, k1 = (km.traced_kernel(km.kernel_factors(p, x, parameterization="ntk"), x) for p in (p0, p1))
    assert st.dist_init[1] == pytest.approx(np.linalg.norm(k1 - k0), rel=1e-6)
    assert 0 < st.rel_change[1] < 3e-7
    assert 0 <= st.velocity[0] < 1e-13      # nearly parallel: 1 − cos ≈ 0, never negative


def test_padded_params_with_true_width_scales(data):
    x = data.x_train
    p = km.sample_init(4, 12, "ntk")
    padded = nc.pad_params({k: np.asarray(v) for k, v in p.items()}, 40)
    f_true = km.kernel_factors(p, x, parameterization="ntk")
    f_pad = km.kernel_factors(padded, x, parameterization="ntk", scales=nc.layer_scales(12, "ntk"))
    np.testing.assert_allclose(km.traced_kernel(f_pad, x), km.traced_kernel(f_true, x), rtol=1e-12)


def test_mismatched_first_layer_scales_are_refused(data):
    x = data.x_train
    f_ntk = km.kernel_factors(km.sample_init(0, 8, "ntk"), x, parameterization="ntk")
    f_std = km.kernel_factors(km.sample_init(0, 8, "standard"), x,
                              parameterization="standard")
    with pytest.raises(ValueError, match="a1 and c1"):
        km.frobenius_inner(f_ntk, f_std, x)


def test_forward64_matches_apply(data):
    for par in ("ntk", "standard"):
        p = km.sample_init(7, 20, par)
        np.testing.assert_allclose(km.forward64(p, data.x_val, parameterization=par),
                                   np.asarray(nc.apply(p, data.x_val, par)), rtol=2e-5, atol=2e-6)


# ------------------------------------------------------------------------------ infinite width


def _loglog_slope(widths, errs):
    x = np.tile(np.log(widths), errs.shape[0])
    return float(np.polyfit(x, np.log(errs).ravel(), 1)[0])


def test_empirical_kernels_approach_the_infinite_width_kernels_as_w_to_the_minus_half():
    """NTK parameterization at init, n = 64, widths 64…4096, 3 seeds: the relative Frobenius
    error of the empirical NTK and of the readout NNGP falls with slope in [−0.8, −0.3]
    (theory: −1/2); the output Gram of one network (10 GP draws) does not converge."""
    x = nc.load_split(64, 16, seed=0).x_train
    ntk_inf, nngp_inf = nc.analytic_kernels(x, parameterization="ntk")
    widths = np.array([64, 256, 1024, 4096])
    errs = np.zeros((3, 3, widths.size))
    for s in range(3):
        for j, w in enumerate(widths):
            p = km.sample_init(s, int(w), "ntk")
            f = km.kernel_factors(p, x, parameterization="ntk")
            errs[0, s, j] = km.relative_frobenius(km.traced_kernel(f, x), ntk_inf)
            errs[1, s, j] = km.relative_frobenius(km.empirical_nngp(p, x, parameterization="ntk"), nngp_inf)
            errs[2, s, j] = km.relative_frobenius(
                km.empirical_nngp(p, x, parameterization="ntk", estimator="logits"), nngp_inf)
    for k, name in ((0, "NTK"), (1, "NNGP readout")):
        slope = _loglog_slope(widths, errs[k])
        assert -0.8 <= slope <= -0.3, (name, slope, errs[k].mean(0))
        assert errs[k][:, -1].mean() < 0.1, name
    assert _loglog_slope(widths, errs[2]) > -0.2       # no convergence: a 10-draw Monte-Carlo error
    assert errs[2].mean() > 0.2
    # The same data through the rule: holds for both, does not hold for the output Gram.
    assert tm.judge_rate(claim_id="inf_ntk_rate", widths=widths, rel_err=errs[0]).verdict == "holds"
    assert tm.judge_rate(claim_id="inf_nngp_logits_rate", widths=widths,
                         rel_err=errs[2]).verdict == "does_not_hold"


def test_readout_nngp_is_the_output_covariance_averaged_over_the_output_layer(data):
    """E over W2, b2 of (1/10)·Σ_k f_k f_kᵀ (hidden layer fixed) is the readout estimate —
    in both parameterizations, and its expectation is analytic_kernels' NNGP."""
    x = data.x_train[:8]
    with km.one_blas_thread():        # once for the ~1000 small calls below
        _readout_checks(x)


def _readout_checks(x):
    for par, width in (("ntk", 30), ("standard", 30)):
        p = km.sample_init(11, width, par)
        want = km.empirical_nngp(p, x, parameterization=par)
        draws = []
        for d in range(400):
            q = km.sample_init(1000 + d, width, par)
            draws.append(km.empirical_nngp(dict(p, W2=q["W2"], b2=q["b2"]), x, parameterization=par,
                                           estimator="logits"))
        mc = np.mean(draws, axis=0)
        assert km.relative_frobenius(mc, want) < 0.05, par
    # Mean over initializations of the readout estimate → the analytic NNGP (NTK param.: exact
    # expectation; 150 draws of width 50).
    _, nngp_inf = nc.analytic_kernels(x, parameterization="ntk")
    mean = np.mean([km.empirical_nngp(km.sample_init(s, 50, "ntk"), x, parameterization="ntk")
                    for s in range(150)], axis=0)
    assert km.relative_frobenius(mean, nngp_inf) < 0.03


def test_one_blas_thread_is_reentrant_and_limits_blas():
    from threadpoolctl import threadpool_info

    def blas_threads():
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    with km.one_blas_thread():
        assert blas_threads() == {1}
        with km.one_blas_thread():
            assert blas_threads() == {1}
        assert blas_threads() == {1}                     # the inner exit keeps the limit
        km.frobenius_inner(*(2 * [km.kernel_factors(km.sample_init(0, 4, "ntk"), np.eye(3, 784),
                                                    parameterization="ntk")]), np.eye(3, 784))
        assert blas_threads() == {1}


def test_kernel_regression_steps_match_explicit_gradient_descent():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((12, 30))
    k = a @ a.T / 30 + 0.01 * np.eye(12)
    kx = rng.standard_normal((5, 30)) @ a.T / 30
    y = np.eye(10)[rng.integers(0, 10, 12)]
    f0, f0x = rng.standard_normal((12, 10)), rng.standard_normal((5, 10))
    lr, steps, n = 3.0, 7, 12
    f, fx = f0.copy(), f0x.copy()
    for _ in range(steps):                          # f ← f − (η/n)·K·(f − y), on train and test
        r = f - y
        f, fx = f - lr / n * k @ r, fx - lr / n * kx @ r
    got = km.kernel_regression(k, kx, y, f0_train=f0, f0_test=f0x, steps=steps, lr=lr)
    np.testing.assert_allclose(got.predictions, fx, rtol=1e-9, atol=1e-12)
    # Many small steps → the t → ∞ limit K(x, X)K⁻¹(Y − f0(X)) + f0(x).
    limit = km.kernel_regression(k, kx, y, f0_train=f0, f0_test=f0x)
    long = km.kernel_regression(k, kx, y, f0_train=f0, f0_test=f0x, steps=200_000, lr=1.0)
    np.testing.assert_allclose(long.predictions, limit.predictions, rtol=1e-6, atol=1e-8)
    assert limit.ridge == 0.0


def test_kernel_regression_adds_a_ridge_only_when_needed():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((6, 3))
    k = a @ a.T                                     # rank 3 < 6: not positive definite
    y = np.eye(10)[rng.integers(0, 10, 6)]
    reg = km.kernel_regression(k, k[:2], y)
    assert reg.ridge > 0 and np.isfinite(reg.predictions).all()
    reg0 = km.kernel_regression(k + np.eye(6), k[:2], y)
    assert reg0.ridge == 0.0
    # Time-matched predictions need no inverse: a zero eigenvalue contributes Tη/n·0.
    assert np.isfinite(km.kernel_regression(k, k[:2], y, steps=5, lr=0.1).predictions).all()


# ------------------------------------------------------------------------------ rules

W = np.array([16, 32, 64, 128, 256, 512], float)


def power(slope, scale=1.0, noise=0.0, seeds=3, seed=0, widths=W):
    rng = np.random.default_rng(seed)
    base = scale * (widths / widths[0]) ** slope
    return base[None, :] * np.exp(noise * rng.standard_normal((seeds, widths.size)))


def bent(seeds=3):
    """Flat over the narrow half, then slope −1."""
    v = np.where(W <= 64, 0.7, 0.7 * (W / 64) ** -1.0)
    return v[None, :] * np.exp(0.01 * np.random.default_rng(0).standard_normal((seeds, W.size)))


def velocity(ratio_per_width, seeds=3, epochs=10):
    out = np.empty((seeds, len(ratio_per_width), epochs))
    for j, r in enumerate(ratio_per_width):
        curve = np.full(epochs, 1e-4)
        curve[:2] = 1e-4 * r
        out[:, j] = curve * (1 + 0.02 * np.arange(seeds))[:, None]
    return out


def alignment(rises, seeds=3, epochs=5, noise=0.0):
    rng = np.random.default_rng(2)
    rises = np.asarray(rises, float)
    out = np.empty((seeds, rises.size, epochs + 1))
    for j, r in enumerate(rises):
        out[:, j] = 0.4 + np.linspace(0, 1, epochs + 1)[None, :] * r
    out[:, :, -1] += noise * rng.standard_normal((seeds, rises.size))
    return out


def alignment_from(rises):
    """(S, W) per-seed rises → (S, W, 3) alignment curves."""
    r = np.asarray(rises, float)
    return 0.4 + r[:, :, None] * np.array([0.0, 0.5, 1.0])[None, None, :]


def with_nan(a, index):
    a = np.array(a, float)
    a[index] = np.nan
    return a


ACC = np.array([0.80, 0.80, 0.80, 0.80, 0.80, 0.80])
RULE_CASES = [
    # (name, rule, kwargs, expected verdict, text in the condition)
    ("exp-half", "kernel_change_exponent", dict(widths=W, rel_change=power(-0.5, noise=0.01)), "holds", "−1/2"),
    ("exp-one", "kernel_change_exponent", dict(widths=W, rel_change=power(-1.0, noise=0.01)), "holds", "−1 (Dyer"),
    ("exp-bent", "kernel_change_exponent", dict(widths=W, rel_change=bent()), "holds_only_when", "width ≥ 128"),
    ("exp-between", "kernel_change_exponent", dict(widths=W, rel_change=power(-0.75, noise=0.005)),
     "does_not_hold", "between −1 and −1/2"),
    ("exp-flat", "kernel_change_exponent", dict(widths=W, rel_change=power(-0.05, noise=0.005)),
     "does_not_hold", "shallower"),
    ("exp-noisy", "kernel_change_exponent", dict(widths=W, rel_change=power(-0.75, noise=0.4, seed=3)),
     "inconclusive", "cannot tell"),
    ("exp-nan", "kernel_change_exponent",
     dict(widths=W[:4], rel_change=with_nan(power(-0.5, widths=W[:4]), (0, slice(0, 2)))), "inconclusive",
     "usable widths"),
    ("vel-all", "velocity_fast_then_slow", dict(widths=W, velocity=velocity([20, 10, 8, 6, 5, 4])), "holds",
     "every width"),
    ("vel-some", "velocity_fast_then_slow", dict(widths=W, velocity=velocity([20, 10, 8, 6, 2, 1.5])),
     "holds_only_when", "[16, 32, 64, 128]"),
    ("vel-none", "velocity_fast_then_slow", dict(widths=W, velocity=velocity([1, 1.2, 0.8, 1, 1, 2])),
     "does_not_hold", "never"),
    ("vel-short", "velocity_fast_then_slow", dict(widths=W, velocity=velocity([9] * 6, epochs=3)),
     "inconclusive", "≥ 4 epochs"),
    ("vel-nan", "velocity_fast_then_slow",
     dict(widths=W[:2], velocity=with_nan(velocity([9, 9]), (0, slice(None), 4))), "inconclusive", "no usable"),
    ("rise-all", "alignment_rises", dict(widths=W, alignment=alignment([0.1, 0.08, 0.05, 0.03, 0.02, 0.01])),
     "holds", "every width"),
    ("rise-some", "alignment_rises", dict(widths=W, alignment=alignment([0.0, 0.08, 0.05, 0.03, 0.02, 0.001])),
     "holds_only_when", "[32, 64, 128, 256]"),
    ("rise-down", "alignment_rises", dict(widths=W, alignment=alignment([-0.05, -0.03, 0, 0, 0, 0])),
     "does_not_hold", "never rises"),
    ("rise-noise", "alignment_rises", dict(widths=W, alignment=alignment_from([[0.03] * 6, [-0.03] * 6, [0.006] * 6])),
     "inconclusive", "seed noise"),
    ("less-mono", "alignment_less_for_wider", dict(widths=W, alignment=alignment([0.1, 0.08, 0.05, 0.03, 0.02, 0.01])),
     "holds", "ρ = -1.00"),
    ("less-peak", "alignment_less_for_wider", dict(widths=W, alignment=alignment([0.0, 0.02, 0.05, 0.03, 0.02, 0.01])),
     "holds_only_when", "widths ≥ 64"),
    ("less-up", "alignment_less_for_wider", dict(widths=W, alignment=alignment([0.01, 0.02, 0.03, 0.05, 0.08, 0.1])),
     "does_not_hold", "wider networks align more"),
    ("less-noise", "alignment_less_for_wider", dict(widths=W, alignment=alignment([0.05, 0.04, 0.05, 0.04, 0.05, 0.045],
                                                                                    noise=0.05)),
     "inconclusive", "seed noise"),
    ("rate-half", "inf_ntk_rate", dict(widths=W, rel_err=power(-0.5, 0.4, noise=0.02)), "holds", "slope -0.5"),
    ("rate-upper", "inf_ntk_rate", dict(widths=W, rel_err=power(0, noise=0.01) * np.where(W <= 64, 0.3, 0.3 * (W / 64) ** -0.5)),
     "holds_only_when", "width ≥ 32"),
    ("rate-flat", "inf_nngp_logits_rate", dict(widths=W, rel_err=power(0.0, 0.5, noise=0.1)),
     "does_not_hold", "does not fall"),
    ("rate-few", "inf_ntk_rate", dict(widths=W[:2], rel_err=power(-0.5, widths=W[:2])), "inconclusive",
     "usable widths"),
    ("acc-none", "finite_approach", dict(widths=W, acc_finite=ACC[None] + np.zeros((3, 1)), acc_inf=ACC[None] + 0.01),
     "holds", "at every width"),
    ("acc-shrinks", "finite_approach", dict(widths=W, acc_finite=ACC[None] - np.array([0.2, 0.15, 0.1, 0.06, 0.03, 0.02])
                                            + 0.005 * np.arange(3)[:, None], acc_inf=np.full(3, 0.8)), "holds", "shrinks"),
    ("acc-peak", "finite_approach", dict(widths=W, acc_finite=ACC[None] - np.array([0.03, 0.2, 0.15, 0.1, 0.06, 0.03])
                                         + 0.004 * np.arange(3)[:, None], acc_inf=np.full(3, 0.8)),
     "holds_only_when", "widths ≥ 32"),
    ("acc-grows", "finite_approach", dict(widths=W, acc_finite=ACC[None] - np.array([0.0, 0.02, 0.05, 0.1, 0.15, 0.2])
                                          + 0.004 * np.arange(3)[:, None], acc_inf=np.full(3, 0.8)),
     "does_not_hold", "grows"),
    ("acc-noise", "finite_approach", dict(widths=W, acc_finite=0.8 - np.array([[0.1, 0.0, 0.1, 0.0, 0.1, 0.0],
                                                                               [0.0, 0.1, 0.0, 0.1, 0.0, 0.1],
                                                                               [0.1, 0.1, 0.0, 0.0, 0.1, 0.0]]),
                                          acc_inf=np.full(3, 0.8)), "inconclusive", "seed noise"),
]


@pytest.mark.parametrize("name,claim_id,kwargs,expected,text", RULE_CASES, ids=[c[0] for c in RULE_CASES])
def test_rule_verdict(name, claim_id, kwargs, expected, text):
    v = tm.THEORY_RULES[claim_id](**kwargs)
    assert (v.claim_id, v.verdict) == (claim_id, expected), (v.condition, v.statistic)
    assert text in v.condition, v.condition
    assert v.criterion
    json.dumps(v.to_json(), allow_nan=False)


def test_every_rule_reaches_every_verdict():
    reached: dict[str, set] = {}
    for _, cid, _, expected, _ in RULE_CASES:
        rule = "inf_rate" if cid.startswith("inf_") else cid       # the four rate claims share a rule
        reached.setdefault(rule, set()).add(expected)
    assert reached == {r: set(VERDICTS) for r in reached}
    assert set(reached) == {"kernel_change_exponent", "velocity_fast_then_slow", "alignment_rises",
                            "alignment_less_for_wider", "inf_rate", "finite_approach"}


def test_claims_have_quotes_references_and_rules():
    assert set(tm.THEORY_CLAIMS) == set(tm.THEORY_RULES)
    for cid, c in tm.THEORY_CLAIMS.items():
        assert c.id == cid and c.quote and c.reference and c.statistic_definition and c.theory
    assert "Lee" in tm.THEORY_CLAIMS["kernel_change_exponent"].reference
    assert "Dyer" in tm.THEORY_CLAIMS["kernel_change_exponent"].reference
    assert "Fort" in tm.THEORY_CLAIMS["velocity_fast_then_slow"].reference
    assert "Baratin" in tm.THEORY_CLAIMS["alignment_rises"].reference


def test_widths_may_come_in_any_order():
    order = np.array([3, 0, 5, 1, 4, 2])
    v1 = tm.judge_kernel_change_exponent(widths=W, rel_change=power(-1.0, noise=0.01))
    v2 = tm.judge_kernel_change_exponent(widths=W[order], rel_change=power(-1.0, noise=0.01)[:, order])
    assert v1.verdict == v2.verdict and v1.statistic["slope"] == pytest.approx(v2.statistic["slope"])


# ------------------------------------------------------------------------------ runner and CLI


TINY = {"NTK_THEORY_QUICK": "tiny"}


def _tiny_protocol(command: str, monkeypatch) -> tm.TheoryProtocol:
    """The quick protocol under NTK_THEORY_QUICK=tiny (3 widths, n=64, 5 epochs, 3 seeds):
    what the session fixture ``tiny_theory`` computed through the CLI."""
    monkeypatch.setenv("NTK_THEORY_QUICK", "tiny")
    factory = tm.motion_protocol if command == "kernel-motion" else tm.infinite_protocol
    return factory("quick", LIM)


@pytest.mark.parametrize("command,fn", [("kernel-motion", tm.kernel_motion),
                                        ("infinite-width", tm.infinite_width)])
def test_runner_function_is_cached_and_its_verdicts_follow_the_rules(tiny_theory, monkeypatch, command, fn):
    cache_dir, cli_json, _ = tiny_theory
    store = runner.open_store(cache_dir)
    p = _tiny_protocol(command, monkeypatch)
    assert p.widths == (16, 32, 64) and p.seeds == (0, 1, 2)
    assert cli_json[command]["config_hash"] == p.key and cli_json[command]["status"] == "computed"
    trainings = runner.COUNTERS["trainings"]
    res = fn(p, LIM, store=store)            # computed by the CLI in another process
    assert res.status == "hit" and runner.COUNTERS["trainings"] == trainings
    assert res.seconds < 1.0
    assert tm.cached_theory(p, store) is not None
    obj = json.loads(json.dumps(res.to_json(), allow_nan=False))
    assert obj == cli_json[command] | {"status": "hit", "seconds": obj["seconds"]}
    assert {v["verdict"] for v in obj["verdicts"]} <= set(VERDICTS)
    d = res.data
    if command == "kernel-motion":
        rel = np.asarray(d["rel_change"], float)
        assert rel.shape == (3, 3) and (rel > 0).all()
        assert np.asarray(d["velocity"], float).shape == (3, 3, 5)
        assert np.asarray(d["alignment"], float).shape == (3, 3, 6)
        # Every stored verdict is its rule applied to the stored data.
        for par, part in (("ntk", d), ("standard", d["standard"])):
            kw = dict(widths=d["widths"], parameterization=par)
            want = [tm.judge_kernel_change_exponent(rel_change=np.asarray(part["rel_change"], float), **kw),
                    tm.judge_velocity_fast_then_slow(velocity=np.asarray(part["velocity"], float), **kw),
                    tm.judge_alignment_rises(alignment=np.asarray(part["alignment"], float), **kw),
                    tm.judge_alignment_less_for_wider(alignment=np.asarray(part["alignment"], float), **kw)]
            got = [v.verdict for v in res.verdicts if v.parameterization == par]
            assert [json.dumps(v.to_json()) for v in got] == [json.dumps(v.to_json()) for v in want]
        # rel_change equals the dense float64 kernels of the stored checkpoints.
        r = runner.run_configs([p.configs("ntk", LIM)[0]], LIM, store=store)[0]
        assert r.status == "hit"
        x = nc.load_split(r.config.n_train, r.config.n_val, r.config.seed).x_train
        k0, k5 = (dense64(r.checkpoint(e), x, "ntk") for e in (0, 5))
        assert rel[0, 0] == pytest.approx(np.linalg.norm(k5 - k0) / np.linalg.norm(k0), rel=1e-8)
    else:
        assert np.asarray(d["rel_err_ntk"], float).shape == (3, 3)
        assert all(0 <= a <= 1 for a in d["acc_inf_ntk"] + d["acc_inf_nngp"])
        v = tm.judge_rate(claim_id="inf_ntk_rate", widths=d["widths"],
                          rel_err=np.asarray(d["rel_err_ntk"], float))
        assert v.to_json() == next(x.verdict.to_json() for x in res.verdicts
                                   if x.claim_id == "inf_ntk_rate" and x.parameterization == "ntk")
        # rel_err_ntk is the distance of the stored init checkpoint's kernel to Θ_∞.
        r = runner.run_configs([p.configs("ntk", LIM)[0]], LIM, store=store)[0]
        x = nc.load_split(r.config.n_train, r.config.n_val, r.config.seed).x_train
        k_inf, _ = nc.analytic_kernels(x, parameterization="ntk")
        k0 = dense64(r.checkpoint(0), x, "ntk")
        assert d["rel_err_ntk"][0][0] == pytest.approx(np.linalg.norm(k0 - k_inf) / np.linalg.norm(k_inf), rel=1e-8)


CLI_KEYS = {
    "kernel-motion": ("widths", "rel_change", "slope", "slope_ci", "velocity", "alignment"),
    "infinite-width": ("widths", "rel_err_ntk", "rel_err_nngp", "slope", "acc_inf_ntk", "acc_inf_nngp",
                       "acc_finite"),
}


@pytest.mark.parametrize("command", list(CLI_KEYS))
def test_cli_prints_one_json_object_with_the_issue_keys(tiny_theory, command):
    _, out, _ = tiny_theory
    obj = out[command]                        # one line, one object (checked by the fixture)
    assert obj["command"] == command and obj["protocol"] == "quick" and obj["verdicts"]
    for k in CLI_KEYS[command]:
        assert k in obj, k
    assert len(obj["slope_ci"]) == 2 and obj["slope_ci"][0] <= obj["slope"] <= obj["slope_ci"][1]
    if command == "kernel-motion":             # both parameterizations, same keys
        for k in CLI_KEYS[command][1:]:
            assert k in obj["standard"], k
        assert {v["parameterization"] for v in obj["verdicts"]} == {"ntk", "standard"}
    else:
        assert np.asarray(obj["acc_finite"], float).shape == (3, 3)
        assert "rel_err_ntk" in obj["standard"] and "slope" in obj["standard"]


@pytest.mark.parametrize("command", list(CLI_KEYS))
def test_cli_table_from_the_cache(tiny_theory, monkeypatch, capsys, command):
    from runner import cli

    cache_dir, _, _ = tiny_theory
    monkeypatch.setenv("NTK_THEORY_QUICK", "tiny")
    assert cli.main([command, "--quick", "-q", "--cache-dir", str(cache_dir)]) == 0
    out = capsys.readouterr().out
    assert "(hit," in out and "raw traced" in out.lower() and "slope" in out


@pytest.mark.parametrize("argv,needle", [
    (["kernel-motion", "--quick", "--bogus"], "unrecognized arguments: --bogus"),
    (["infinite-width", "--quick", "--json", "--full"], "unrecognized arguments: --full"),
])
def test_cli_bad_flags_exit_2_with_one_line(capsys, argv, needle):
    from runner import cli

    assert cli.main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and needle in err and err.strip().count("\n") == 0


def test_cli_plan_refuses_caps_below_the_protocol_before_any_work(monkeypatch):
    from runner import cli

    monkeypatch.setenv("NTK_MAX_WIDTH", "32")
    with pytest.raises(runner.ConfigError) as exc:
        cli.plan(["kernel-motion", "--json"])
    assert exc.value.param == "width" and "64" in str(exc.value)
    monkeypatch.setenv("NTK_MAX_WIDTH", "1024")
    monkeypatch.setenv("NTK_THEORY_QUICK", "huge")
    with pytest.raises(runner.ConfigError) as exc:
        cli.plan(["infinite-width", "--quick"])
    assert exc.value.param == "NTK_THEORY_QUICK" and "tiny" in str(exc.value)
    monkeypatch.setenv("NTK_THEORY_QUICK", "tiny")
    plan = cli.plan(["kernel-motion", "--quick", "--json"])
    assert len(plan.configs) == 2 * 3 * 3     # both parameterizations × widths × seeds


def test_protocols_follow_the_limits():
    p = tm.motion_protocol("quick", LIM)
    assert p.widths == (16, 32, 64, 128, 256, 512) and len(p.seeds) >= 3
    assert {c.parameterization for _, c in p.bases} == {"ntk", "standard"}
    assert tm.infinite_protocol("quick", LIM).base("ntk").batch_size == 0    # gradient descent
    hosted = runner.Limits.hosted()
    assert tm.motion_protocol("quick", hosted).widths == (16, 32, 64, 128, 256)   # memory: see HOSTED_TOP
    assert max(tm.infinite_protocol("full", hosted).widths) == 512
    for factory in (tm.motion_protocol, tm.infinite_protocol):
        for name in ("quick", "full"):
            proto = factory(name, hosted)
            assert max(proto.widths) <= hosted.max_width
            for par in proto.parameterizations:   # every run fits (run_configs splits groups to fit)
                for c in proto.configs(par, hosted):
                    assert runner.estimate_memory_mb(c, hosted) <= hosted.max_memory_mb
    with pytest.raises(runner.ConfigError) as exc:
        tm.motion_protocol("quick", runner.Limits(max_width=32))
    assert exc.value.param == "width"
    capped = tm.infinite_protocol("full", runner.Limits(max_dense_n=300, max_epochs=7))
    assert capped.base("ntk").n_train == 300 and capped.base("ntk").epochs == 7


def test_theory_json_has_no_nan():
    # The theory results are stored through the verdicts' _plain(json=True).
    d = tm._plain({"a": np.array([1.0, math.nan]), "b": np.float32(math.inf), "c": [np.int64(3)],
                   "d": np.array(2.5)}, json=True)
    assert d == {"a": [1.0, None], "b": None, "c": [3], "d": 2.5}


@pytest.mark.parametrize("limits", [runner.Limits(), runner.Limits.hosted(), runner.Limits(max_grid=2)],
                         ids=["default", "hosted", "grid2"])
def test_training_calls_cover_every_run_once_within_the_caps(limits):
    p = tm.motion_protocol("quick", limits)
    cfgs = p.configs("ntk", limits)
    calls = tm._call_groups(cfgs, limits)
    assert [c for call in calls for c in call] == cfgs            # every run once, in order
    for call in calls:
        wide = max(c.width for c in call)
        assert len(call) <= limits.max_grid
        assert len(call) * wide <= tm.GROUP_UNITS or not limits.is_hosted
        assert len(call) * wide <= 3 * sum(c.width for c in call)  # padding ≤ 3× the compute
    # A width's seeds share a call whenever the caps allow it.
    if limits.max_grid >= 3:
        assert all(len({c.width for c in call}) * 3 == len(call) for call in calls)
    widest = [len(call) for call in calls if max(c.width for c in call) == max(p.widths)]
    assert widest == [3] if limits.is_hosted or limits.max_grid >= 3 else widest == [2, 1]


def test_dense_path_statistics_equal_the_factor_path_on_the_one_hidden_mlp(data):
    """The generic networks' path statistics (from dense kernels) and the closed form's
    (from factors) are one computation: equal on the same kernels, to float64 round-off."""
    x, y = data.x_train, data.y_train
    p0 = nc.init_params(jax.random.PRNGKey(3), 24, "standard")
    path = [p0, moved(p0, 0.05, 1), moved(p0, 0.2, 2)]
    ref = km.kernel_path_stats([km.kernel_factors(p, x) for p in path], x, y, block=16)
    got = km.dense_path_stats([dense64(p, x, "standard") for p in path], y, block=16)
    for name in ("norm", "rel_change", "velocity", "alignment"):
        np.testing.assert_allclose(getattr(got, name), getattr(ref, name), rtol=1e-9, err_msg=name)


def test_motion_of_a_deep_mlp_run_is_that_of_its_layerwise_kernels(tmp_path):
    """The runner's kernel-motion measurement of a network without a closed form: the
    relative change of the stored checkpoints' kernels, formed independently here by the
    jacrev Jacobian contraction."""
    from ntk_core._src import generic

    c = runner.validate_config(dict(arch="mlp", depth=2, width=8, n_train=40, n_val=20, epochs=3,
                                    lr=0.5, top_k=2), LIM)
    assert c.ntk_method == "structured"
    r = runner.run(c, LIM)
    st = tm._motion_run(r)
    split = nc.load_split(c.n_train, c.n_val, c.seed)
    fn = runner.apply_fn_of(c)
    k = [np.asarray(generic.autodiff_dense(fn, r.checkpoint(e), split.x_train), np.float64)
         for e in (0, c.epochs)]
    want = np.linalg.norm(k[1] - k[0]) / np.linalg.norm(k[0])
    assert want > 1e-3                                   # the kernel did move
    np.testing.assert_allclose(st["rel"][-1], want, rtol=1e-4)
    assert np.isfinite(st["vel"]).all() and np.isfinite(st["align"]).all()


def test_kernel_motion_protocol_follows_the_network():
    deep = tm.motion_protocol("quick", LIM, runner.Network("mlp", 3, "bundled"))
    assert all(c.depth == 3 and c.ntk_method == "structured" for _, c in deep.bases)
    assert deep.widths == tm.motion_protocol("quick", LIM).widths and deep.key != tm.motion_protocol("quick", LIM).key
    cnn = tm.motion_protocol("quick", LIM, runner.Network("cnn", 1, "bundled"))
    assert cnn.widths == (4, 8, 16) and all(c.arch == "cnn" for _, c in cnn.bases)
    assert tm.motion_protocol("full", LIM, runner.Network("cnn", 1, "bundled")).widths[-1] == runner.MAX_CNN_CHANNELS


def test_deep_forward_nngp_and_init_draws(data):
    """Depth 2–3: forward64 is archs.mlp_apply in float64, the readout NNGP uses the last
    hidden layer, and sample_init at depth 1 still draws exactly what it always drew."""
    old = np.random.default_rng([5, 20])        # the depth-1 stream: W1, b1, W2, b2 in order
    want = {"W1": old.standard_normal((784, 20)), "b1": old.standard_normal(20),
            "W2": old.standard_normal((20, 10)), "b2": old.standard_normal(10)}
    got = km.sample_init(5, 20, "ntk")
    for k, v in want.items():
        np.testing.assert_array_equal(got[k], v.astype(np.float32))
    for depth in (2, 3):
        for par in ("ntk", "standard"):
            p = km.sample_init(7, 20, par, depth=depth)
            assert sorted(p) == sorted([f"W{l}" for l in range(1, depth + 2)] + [f"b{l}" for l in range(1, depth + 2)])
            ref = np.asarray(nc.mlp_apply(p, data.x_val, par))
            np.testing.assert_allclose(km.forward64(p, data.x_val, parameterization=par), ref, rtol=2e-5, atol=2e-6)
            # readout NNGP = the output Gram averaged over redraws of the output layer
            # (Monte Carlo: 200 draws of W_out, b_out from the init distribution × 10 logits, within 10 %)
            nngp = km.empirical_nngp(p, data.x_val[:8], parameterization=par)
            rng, d = np.random.default_rng(0), depth + 1
            grams = []
            for _ in range(200):
                q = dict(p)
                fresh = km.sample_init(int(rng.integers(1 << 30)), 20, par, depth=depth)
                q[f"W{d}"], q[f"b{d}"] = fresh[f"W{d}"], fresh[f"b{d}"]
                f = km.forward64(q, data.x_val[:8], parameterization=par)
                grams.append(f @ f.T / f.shape[1])
            np.testing.assert_allclose(np.mean(grams, axis=0), nngp, rtol=0.1, atol=0.1 * np.abs(nngp).max())


def test_deep_empirical_ntk_approaches_the_arc_cosine_limit():
    """Depth 2, NTK parameterization at init, n = 48: the layer-wise empirical NTK's and the
    readout NNGP's distance to the arc-cosine recursion fall with width (slope < −0.3
    over widths 64…2048, theory −1/2) and are below 10 % at the widest."""
    x = nc.load_split(48, 16, seed=0).x_train
    ntk_inf, nngp_inf = nc.analytic_kernels(x, parameterization="ntk", depth=2)
    widths = np.array([64, 256, 1024, 2048])
    errs = np.zeros((2, 2, widths.size))
    for s in range(2):
        for j, w in enumerate(widths):
            p = km.sample_init(s, int(w), "ntk", depth=2)
            errs[0, s, j] = km.relative_frobenius(tm._ntk_at(p, x, "ntk"), ntk_inf)
            errs[1, s, j] = km.relative_frobenius(km.empirical_nngp(p, x, parameterization="ntk"), nngp_inf)
    for k, name in ((0, "NTK"), (1, "NNGP readout")):
        slope = _loglog_slope(widths, errs[k])
        assert -0.9 <= slope <= -0.3, (name, slope, errs[k].mean(0))
        assert errs[k][:, -1].mean() < 0.1, (name, errs[k][:, -1])


def test_infinite_width_protocol_follows_the_mlp_and_refuses_the_cnn():
    p = tm.infinite_protocol("quick", LIM, runner.Network("mlp", 3, "bundled"))
    assert p.base("ntk").depth == 3
    with pytest.raises(runner.ConfigError) as e:
        tm.infinite_protocol("quick", LIM, runner.Network("cnn", 1, "bundled"))
    assert e.value.param == "arch" and "arc-cosine" in str(e.value)
