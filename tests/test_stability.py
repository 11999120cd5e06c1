"""The "Stability" theory page: λ(t) = λ_max(Θ_full)/n tracked per step (checked against
ARPACK and the matrix-free product of full_kernel), the linear model's threshold η·λ_0 = 2
(known analytically, found by bisection on real runs), the outcome classifier and rules on
synthetic inputs, the runner's cache, the CLI and the page."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import pytest

import ntk_core as nc
from ntk_core._src import model
from ntk_core._src import stability as stab
from runner import _theory_dynamics as td

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def small(mnist_small):
    x, y = mnist_small.x_train[:24], mnist_small.y_train[:24]
    params = model.init_params(jax.random.PRNGKey(2), 64, "ntk")
    er = nc.full_ntk_lambda_max(params, x, parameterization="ntk", return_vectors=True)
    return params, x, y, float(er.values[0]) / x.shape[0], er.vectors[:, 0]


def test_gram_product_equals_full_kernel_product(small):
    params, x, _, _, _ = small
    v = np.random.default_rng(0).standard_normal((x.shape[0], 10)).astype(np.float32)
    a = stab.full_matvec_gram(params, x, v)
    b = np.asarray(nc.full_ntk_matvec(params, x, v, parameterization="ntk"))
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-5 * np.abs(b).max())


def test_sharpness_per_step_matches_arpack(small):
    """λ(0) equals ARPACK's λ_0, and the warm-started power iteration's last-step λ equals
    ARPACK's on the final parameters (rates below and above 2)."""
    params, x, y, lam0, v0 = small
    runs = stab.sharpness_runs(params, x, y, np.array([0.5, 3.0]) / lam0, steps=15, v0=v0)
    np.testing.assert_allclose(runs.lam[:, 0], lam0, rtol=1e-4)
    for r in range(2):
        pr = {k: v[r] for k, v in runs.final_params.items()}
        ref = float(nc.full_ntk_lambda_max(pr, x, parameterization="ntk").values[0]) / x.shape[0]
        assert runs.lam[r, -1] == pytest.approx(ref, rel=2e-3)
    assert runs.lam_residual.max() < 0.2
    assert np.isfinite(runs.loss).all() and (runs.diverged_at == -1).all()
    # above 2 the sharpness must change: the linear picture (constant λ) cannot hold there
    assert abs(runs.lam[1, -1] / lam0 - 1) > abs(runs.lam[0, -1] / lam0 - 1)


def test_linear_model_threshold_is_two_over_lambda0(small):
    """A linear model of the same kernel diverges iff η·λ_0 > 2: parameter-space gradient
    descent on f_0 + J_0(θ − θ_0) equals the kernel recursion, and a fine grid of rates
    around 2/λ_0 finds the divergence exactly at the measured λ_0."""
    params, x, y, lam0, _ = small
    c = np.array([1.9, 2.1])
    a = stab.linear_model_losses(params, x, y, c / lam0, steps=40)
    b = stab.kernel_linear_losses(params, x, y, c / lam0, steps=40)
    np.testing.assert_allclose(a, b, rtol=1e-4)
    assert a[0, -1] < a[0, 0] and a[1, -1] > a[1, 0]
    grid = np.linspace(1.9, 2.1, 21)
    ls = stab.kernel_linear_losses(params, x, y, grid / lam0, steps=1500)
    with np.errstate(invalid="ignore"):
        diverged = ~(ls[:, -1] < ls[:, 0])
    first = grid[np.argmax(diverged)]
    assert diverged.any() and not diverged[grid < 1.995].any() and diverged[grid > 2.005].all()
    assert 2.0 < first <= 2.01 + 1e-9
    # classify_run on the linear model: constant λ, lazy below 2, diverged above
    for ci, l in zip(grid[[0, -1]], ls[[0, -1]]):
        out, _ = td.classify_run(eta_lambda0=ci, loss=l, eta_lambda=np.full(l.size, ci), dead=np.zeros(l.size))
        assert out == ("lazy" if ci < 2 else "diverged")
    # and the project's stable-rate bound names the same rate
    assert nc.stable_lr_bound(lam0 * x.shape[0], x.shape[0]) == pytest.approx(2.0 / lam0)


# ------------------------------------------------------------------------------ rules

S = 30


def _run(kind):
    t = np.arange(S + 1, dtype=float)
    dead = np.zeros(S + 1)
    if kind == "lazy":
        return np.exp(-0.05 * t), np.full(S + 1, 1.2), dead, 1.2
    if kind == "catapult":
        loss = np.where(t < 3, 1 + t, np.exp(-0.1 * t))
        return loss, np.where(t < 3, 3.0, 1.5), dead, 3.0
    if kind == "diverged":
        loss = np.exp(0.5 * t)
        loss[20:] = np.nan
        return loss, np.full(S + 1, 3.0), dead, 3.0
    if kind == "collapse":
        return np.exp(-0.01 * t), np.where(t < 2, 8.0, 0.3), np.where(t < 2, 0.0, 0.7), 8.0
    if kind == "eos":
        loss = np.exp(-0.05 * t) * (1 + 0.2 * (t % 2))
        return loss, np.where(t < 10, 1.0 + 0.1 * t, 2.05), dead, 1.0
    if kind == "unresolved":
        return np.exp(-0.05 * t), np.full(S + 1, 3.0), dead, 3.0
    raise ValueError(kind)


@pytest.mark.parametrize("kind", td.OUTCOMES)
def test_classify_run_reaches_every_outcome(kind):
    loss, el, dead, el0 = _run(kind)
    out, stats = td.classify_run(eta_lambda0=el0, loss=loss, eta_lambda=el, dead=dead)
    assert out == kind, stats
    json.dumps(stats, allow_nan=True)


def _outcomes(*cols):
    return np.array([list(cols), list(cols)], dtype=object)


G = [0.5, 1.5, 2.5, 3.5, 5.0]


@pytest.mark.parametrize("judge,outcomes,verdict", [
    (td.judge_lazy_below_2, _outcomes("lazy", "lazy", "catapult", "catapult", "diverged"), "holds"),
    (td.judge_lazy_below_2, _outcomes("lazy", "eos", "catapult", "catapult", "diverged"), "holds_only_when"),
    (td.judge_lazy_below_2, _outcomes("eos", "eos", "catapult", "catapult", "diverged"), "does_not_hold"),
    (td.judge_catapult, _outcomes("lazy", "lazy", "catapult", "catapult", "diverged"), "holds"),
    (td.judge_catapult, _outcomes("lazy", "lazy", "catapult", "diverged", "diverged"), "holds_only_when"),
    (td.judge_catapult, _outcomes("lazy", "lazy", "diverged", "diverged", "diverged"), "does_not_hold"),
    (td.judge_edge_of_stability, _outcomes("lazy", "eos", "catapult", "catapult", "diverged"), "holds"),
    (td.judge_edge_of_stability, _outcomes("lazy", "lazy", "catapult", "catapult", "diverged"), "does_not_hold"),
])
def test_outcome_rules_reach_their_verdicts(judge, outcomes, verdict):
    assert judge(eta_lambda0=G, outcomes=outcomes).verdict == verdict


def test_outcome_rules_inconclusive_and_partial():
    o = np.array([["lazy", "eos"], ["lazy", "lazy"]], dtype=object)
    assert td.judge_lazy_below_2(eta_lambda0=[2.5, 3.0], outcomes=o).verdict == "inconclusive"
    assert td.judge_catapult(eta_lambda0=[0.5, 1.5], outcomes=o).verdict == "inconclusive"
    assert td.judge_edge_of_stability(eta_lambda0=[0.5, 1.5], outcomes=o).verdict == "holds_only_when"
    assert td.judge_edge_of_stability(eta_lambda0=[], outcomes=np.zeros((2, 0), object)).verdict == "inconclusive"
    o = np.array([["catapult"], ["lazy"]], dtype=object)
    assert td.judge_catapult(eta_lambda0=[3.0], outcomes=o).verdict == "holds_only_when"
    assert td.consensus(["lazy", "catapult", "catapult"]) == "catapult"


@pytest.mark.parametrize("net,lin,verdict", [
    ([[0, 0, 0, 0, 1]], [[0, 0, 1, 1, 1]], "holds"),
    ([[0, 0, 1, 1, 1]], [[0, 0, 1, 1, 1]], "does_not_hold"),
    ([[0, 0, 0, 0, 0]], [[0, 0, 0, 0, 0]], "inconclusive")])
def test_judge_beyond_linear(net, lin, verdict):
    assert td.judge_beyond_linear(eta_lambda0=G, net_diverged=np.array(net, bool),
                                  lin_diverged=np.array(lin, bool)).verdict == verdict


@pytest.mark.parametrize("lin,verdict", [
    ([[0, 0, 1, 1, 1]], "holds"), ([[0, 0, 0, 1, 1]], "does_not_hold"), ([[0, 1, 1, 1, 1]], "does_not_hold")])
def test_judge_linear_threshold(lin, verdict):
    assert td.judge_linear_threshold(eta_lambda0=G, lin_diverged=np.array(lin, bool)).verdict == verdict
    assert td.judge_linear_threshold(eta_lambda0=[], lin_diverged=np.zeros((1, 0), bool)).verdict == "inconclusive"


# ------------------------------------------------------------------------------ runner, CLI, page


@pytest.fixture(scope="module")
def cli_stability(tiny_dynamics):
    """``python -m ntk_core stability --quick --json`` with the tiny protocol (conftest)."""
    cache_dir, out, env = tiny_dynamics
    return cache_dir, out["stability"], env


def test_cli_stability_json_keys_verdicts_and_cache(cli_stability, monkeypatch):
    cache_dir, j, _ = cli_stability
    for key in ("eta_lambda0", "lambda_max_per_step", "loss_per_step", "outcome", "lambda0",
                "eta_lambda_per_step", "linear_loss_per_step", "outcome_per_seed", "verdicts"):
        assert key in j, key
    assert j["eta_lambda0"] == list(td.ETA_LAMBDA0)
    s, r = len(j["seeds"]), len(j["eta_lambda0"])
    assert np.asarray(j["loss_per_step"], float).shape == (s, r, j["steps"] + 1)
    assert set(j["outcome"]) <= set(td.OUTCOMES) and len(j["outcome"]) == r
    # step 0 is the measured λ_0 and the grid is placed on it
    lam = np.asarray(j["lambda_max_per_step"], float)
    np.testing.assert_allclose(lam[:, :, 0], np.broadcast_to(np.asarray(j["lambda0"])[:, None], (s, r)), rtol=1e-4)
    np.testing.assert_allclose(np.asarray(j["eta_lambda_per_step"], float)[:, :, 0],
                               np.tile(j["eta_lambda0"], (s, 1)), rtol=1e-4)
    # every stored outcome is classify_run applied to the stored data
    loss, el = np.asarray(j["loss_per_step"], float), np.asarray(j["eta_lambda_per_step"], float)
    dead = np.asarray(j["dead_per_step"], float)
    for i in range(s):
        for k in range(r):
            o, _ = td.classify_run(eta_lambda0=j["eta_lambda0"][k], loss=loss[i, k], eta_lambda=el[i, k],
                                   dead=dead[i, k])
            assert o == j["outcome_per_seed"][i][k]
    # the linear model of the same kernel: diverged exactly above 2 (analytic threshold)
    v = {x["id"]: x for x in j["verdicts"]}
    assert v["linear_threshold"]["verdict"] == "holds", v["linear_threshold"]
    monkeypatch.setenv("NTK_THEORY_QUICK", "tiny")
    import runner

    limits = runner.Limits.from_env()
    res = runner.stability(runner.stability_protocol("quick", limits), limits, store=runner.open_store(cache_dir))
    assert res.status == "hit" and res.to_json()["outcome"] == j["outcome"]


def test_stability_protocol_fits_hosted_limits():
    import runner

    hosted = runner.Limits.hosted()
    for name in ("quick", "full"):
        p = td.stability_protocol(name, hosted)
        assert td.memory_mb(p) <= hosted.max_memory_mb and p.widths[0] <= hosted.max_width


@pytest.mark.slow
def test_stability_page_renders_cached_result(cli_stability):
    from streamlit.testing.v1 import AppTest

    cache_dir, j, env = cli_stability
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            if k.startswith("NTK_"):
                mp.setenv(k, v)
        for var in ("NTK_HOSTED", "NTK_MAX_N", "NTK_MAX_WIDTH", "NTK_MAX_MEMORY_MB"):
            mp.delenv(var, raising=False)
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        at.switch_page("pages/stability.py")
        at.run()
        assert not at.exception, at.exception
        assert "Lewkowycz" in " ".join(i.value for i in at.info)
        assert any("Live verdicts" in s.value for s in at.subheader)
        assert not at.error


# ----------------------------------------------------------------- any network (issue 12)


@pytest.mark.parametrize("arch", [nc.Architecture("mlp", 16, 3, "ntk"), nc.Architecture("cnn", 2, 1, "ntk")],
                         ids=["mlp_depth3", "cnn"])
def test_generic_runs_match_their_dense_full_kernel(mnist_small, arch):
    """Another network: λ(0) from the vjp/jvp power iteration equals the top eigenvalue of
    its dense full kernel (formed independently by jacrev), the last step is re-checked
    the same way, and the linear model diverges exactly above η·λ_0 = 2 — the threshold the
    theory predicts, found with the generic λ_0 and the generic product."""
    from ntk_core._src import generic

    x, y = mnist_small.x_train[:16], mnist_small.y_train[:16]
    params = arch.init(jax.random.PRNGKey(4))

    def lam_dense(p):
        t = np.asarray(generic.autodiff_dense(arch.apply, p, x, trace=False), np.float64)
        m = t.transpose(0, 2, 1, 3).reshape(160, 160)
        return np.linalg.eigvalsh((m + m.T) / 2)[-1] / x.shape[0]

    lam0, er = td._lambda0(params, x, arch)
    assert lam0 == pytest.approx(lam_dense(params), rel=1e-5)
    runs = stab.sharpness_runs(params, x, y, np.array([0.5, 1.5]) / lam0, steps=6, v0=er.vectors[:, 0],
                               arch=arch)
    np.testing.assert_allclose(runs.lam[:, 0], lam0, rtol=1e-4)
    for r in range(2):
        pr = {k: v[r] for k, v in runs.final_params.items()}
        assert runs.lam[r, -1] == pytest.approx(lam_dense(pr), rel=2e-3)
    assert np.all((runs.dead >= 0) & (runs.dead <= 1))
    lin = stab.kernel_linear_losses(params, x, y, np.array([1.9, 2.1]) / lam0, steps=150, arch=arch)
    par = stab.linear_model_losses(params, x, y, np.array([1.9]) / lam0, steps=20, arch=arch)
    np.testing.assert_allclose(par[0], lin[0, :21], rtol=2e-3)      # parameter space = kernel recursion
    assert lin[0, -1] < lin[0, 0] and not (lin[1, -1] < lin[1, 0])  # stable below 2, not above


def test_generic_path_on_the_one_hidden_mlp_is_the_closed_form(small):
    """The same network through both paths: Architecture (vjp/jvp) vs the closed form."""
    params, x, y, lam0, v0 = small
    arch = nc.Architecture("mlp", 64, 1, "ntk")
    a = stab.sharpness_runs(params, x, y, np.array([0.5, 3.0]) / lam0, steps=10, v0=v0)
    b = stab.sharpness_runs(params, x, y, np.array([0.5, 3.0]) / lam0, steps=10, v0=v0, arch=arch)
    np.testing.assert_allclose(b.loss, a.loss, rtol=1e-4)
    np.testing.assert_allclose(b.lam, a.lam, rtol=1e-3)
    np.testing.assert_array_equal(b.dead, a.dead)
    assert td._lambda0(params, x, arch)[0] == pytest.approx(lam0, rel=1e-5)
