"""The "Linearized" theory page: the linear model around θ_0 (exact formulas checked against
dense matrix powers and matrix exponentials), the real network against it at a very wide
width, the decision rules on synthetic inputs, the runner's cache, the CLI and the page."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import ntk_core as nc
from ntk_core._src import linearized as lin
from ntk_core._src import model
from runner import _theory_dynamics as td

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tiny(mnist_small):
    x, y, xv = mnist_small.x_train[:8], mnist_small.y_train[:8], mnist_small.x_val[:6]
    params = model.init_params(jax.random.PRNGKey(3), 32, "ntk")
    return params, x, y, xv


@pytest.mark.parametrize("dynamics", ["gd", "flow"])
def test_linear_model_equals_dense_matrix_functions(tiny, dynamics):
    """eigh and the matrix-free Krylov action against dense matrix_power / scipy expm."""
    params, x, y, xv = tiny
    lr, epochs, n = 3.0, 6, x.shape[0]
    theta = lin.full_kernel_dense(params, x)
    cross = lin.full_kernel_dense(params, xv, x)
    f0 = np.asarray(model.apply(params, x, "ntk"), np.float64)
    fv0 = np.asarray(model.apply(params, xv, "ntk"), np.float64).reshape(-1)
    r0 = (f0 - y).reshape(-1)
    r_ref, fv_ref = lin.dense_reference(theta, cross, r0, fv0, lr=lr, n=n, epochs=epochs, dynamics=dynamics)
    scale = np.abs(f0).max()
    for method in ("eigh", "krylov"):
        out = lin.linearized_outputs(params, x, y, xv, lr=lr, epochs=epochs, method=method, dynamics=dynamics)
        assert out.method == method and out.dynamics == dynamics
        np.testing.assert_allclose(out.f_train.reshape(epochs + 1, -1) - y.reshape(1, -1), r_ref,
                                   atol=2e-5 * scale, rtol=0)
        np.testing.assert_allclose(out.f_val.reshape(epochs + 1, -1), fv_ref, atol=2e-5 * scale, rtol=0)
    # the training residual must actually move (else the comparison is vacuous)
    assert np.linalg.norm(r_ref[-1]) < 0.9 * np.linalg.norm(r_ref[0])


def test_cross_kernel_product_matches_dense(tiny):
    params, x, _, xv = tiny
    v = np.random.default_rng(0).standard_normal((x.shape[0], 10)).astype(np.float32)
    dense = lin.full_kernel_dense(params, xv, x) @ v.reshape(-1).astype(np.float64)
    got = lin.cross_full_matvec(params, xv, x, v)
    np.testing.assert_allclose(got.reshape(-1), dense, rtol=0, atol=1e-5 * np.abs(dense).max())


def test_network_trains_like_its_linearization_when_very_wide(mnist_small):
    """Lee et al. 2019: the gap to the linear model vanishes with width (here: width 16384
    vs 64, same data and rate, η·λ_0 ≈ 0.25)."""
    x, y, xv = mnist_small.x_train[:16], mnist_small.y_train[:16], mnist_small.x_val[:16]
    gaps, loss_gaps = {}, {}
    for w in (64, 16384):
        params = model.init_params(jax.random.PRNGKey(0), w, "ntk")
        tr = lin.gd_trajectory(params, x, y, xv, lr=1.0, epochs=10)
        lo = lin.linearized_outputs(params, x, y, xv, lr=1.0, epochs=10, method="krylov")
        assert tr.diverged_at == -1
        gaps[w] = lin.output_gap(tr.f_train, lo.f_train).max()
        l, _ = lin.loss_acc(tr.f_train, y)
        ll, _ = lin.loss_acc(lo.f_train, y)
        loss_gaps[w] = np.abs(l - ll).max()
        assert l[-1] < 0.8 * l[0]                       # it trains
    assert gaps[16384] < 0.02                           # outputs are O(1): a small gap
    assert loss_gaps[16384] < 0.005
    assert gaps[64] / gaps[16384] > 16 ** 0.5 / 2      # ≥ half of the w^-1/2 prediction (×16)


def test_gd_trajectories_vmapped_equal_single(mnist_small):
    x, y, xv = mnist_small.x_train[:8], mnist_small.y_train[:8], mnist_small.x_val[:4]
    params = model.init_params(jax.random.PRNGKey(1), 16, "ntk")
    many = lin.gd_trajectories(params, x, y, xv, lrs=[0.5, 2.0], epochs=3)
    one = lin.gd_trajectory(params, x, y, xv, lr=2.0, epochs=3)
    np.testing.assert_allclose(many[1].f_train, one.f_train, rtol=1e-5, atol=1e-6)
    assert not np.allclose(many[0].f_train[-1], many[1].f_train[-1])


# ------------------------------------------------------------------------------ rules


W = [16, 64, 256, 1024]


def _gap(slope, seeds=2):
    return np.array([[0.3 * (w / 16) ** slope * (1 + 0.05 * (i + j) % 2) for j, w in enumerate(W)]
                     for i in range(seeds)])


@pytest.mark.parametrize("gap,verdict", [
    (_gap(-0.5), "holds"), (_gap(-0.9), "holds"), (_gap(-0.2), "holds_only_when"),
    (_gap(0.1), "does_not_hold"),
    (np.array([[0.3, 0.1, 0.3, 0.15], [0.1, 0.3, 0.1, 0.15]]), "inconclusive"),
    (np.array([[0.1, np.nan, np.nan, 0.01]] * 2), "inconclusive")])
def test_judge_lin_gap_rate_reaches_every_verdict(gap, verdict):
    v = td.judge_lin_gap_rate(widths=W, gap=gap, lr=1.0)
    assert v.verdict == verdict, (v.condition, v.statistic)


@pytest.mark.parametrize("diff,verdict", [
    ([0.0, 0.01, 0.0, 0.0], "holds"), ([0.1, 0.0, 0.01, 0.0], "holds_only_when"),
    ([0.0, 0.0, 0.0, 0.2], "does_not_hold"), ([np.nan] * 4, "inconclusive")])
def test_judge_lin_acc_agrees_reaches_every_verdict(diff, verdict):
    acc = np.full((2, 4), 0.8)
    v = td.judge_lin_acc_agrees(widths=W, acc=acc, acc_lin=acc + np.asarray(diff), lr=1.0)
    assert v.verdict == verdict
    if verdict == "holds_only_when":
        assert v.condition == "width ≥ 64"


# ------------------------------------------------------------------------------ runner, CLI, page


def _tiny_env(cache_dir: Path) -> dict[str, str]:
    env = {**os.environ, "NTK_CACHE_DIR": str(cache_dir), "JAX_PLATFORMS": "cpu", "NTK_THEORY_QUICK": "tiny"}
    for var in ("NTK_HOSTED", "NTK_MAX_N", "NTK_MAX_WIDTH", "NTK_MAX_EPOCHS", "NTK_MAX_TOPK",
                "NTK_MAX_DENSE_N", "NTK_MAX_GRID", "NTK_MAX_MEMORY_MB"):
        env.pop(var, None)
    return env


@pytest.fixture(scope="module")
def cli_linearized(tiny_dynamics):
    """``python -m ntk_core linearized --quick --json`` with the tiny protocol (conftest)."""
    cache_dir, out, env = tiny_dynamics
    return cache_dir, out["linearized"], env


def test_cli_linearized_json_keys_and_cache(cli_linearized, monkeypatch):
    cache_dir, j, env = cli_linearized
    for key in ("widths", "gap", "slope", "slope_ci", "curves", "output_gap", "by_lr", "verdicts", "lrs"):
        assert key in j, key
    assert j["protocol"] == "quick-tiny" and j["status"] == "computed"
    assert np.asarray(j["gap"], float).shape == (len(j["seeds"]), len(j["widths"]))
    assert len(j["curves"]) == len(j["lrs"]) * len(j["seeds"]) * len(j["widths"])
    c = j["curves"][0]
    assert len(c["train_loss"]) == len(c["train_loss_lin"]) == j["epochs"] + 1
    assert c["train_loss"][0] == pytest.approx(c["train_loss_lin"][0], rel=1e-6)  # same init
    assert {v["id"] for v in j["verdicts"]} == {"lin_gap_rate", "lin_acc_agrees"}
    # the runner finds the CLI's entry in the shared store
    monkeypatch.setenv("NTK_THEORY_QUICK", "tiny")
    import runner

    limits = runner.Limits.from_env()
    res = runner.linearized(runner.linearized_protocol("quick", limits), limits,
                            store=runner.open_store(cache_dir))
    assert res.status == "hit"
    assert res.to_json()["gap"] == j["gap"]


def test_cli_linearized_bad_flag_exits_2_with_one_line(tmp_path):
    p = subprocess.run([sys.executable, "-m", "ntk_core", "linearized", "--quick", "--widht", "3"],
                       cwd=ROOT, env=_tiny_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and "--widht" in p.stderr


def test_protocol_caps_name_the_parameter():
    import runner

    with pytest.raises(runner.ConfigError) as e:
        td.linearized_protocol("quick", runner.Limits(max_width=32))
    assert e.value.param == "width"
    with pytest.raises(runner.ConfigError) as e:     # the run check or this page's own
        td.linearized_protocol("quick", runner.Limits(max_memory_mb=1))
    assert e.value.param in ("width", "max_memory_mb") and "MB" in str(e.value)
    hosted = runner.Limits.hosted()
    for name in ("quick", "full"):
        assert td.memory_mb(td.linearized_protocol(name, hosted)) <= hosted.max_memory_mb


@pytest.mark.slow
def test_linearized_page_renders_cached_result(cli_linearized):
    from streamlit.testing.v1 import AppTest

    cache_dir, j, env = cli_linearized
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            if k.startswith("NTK_"):
                mp.setenv(k, v)
        for var in ("NTK_HOSTED", "NTK_MAX_N", "NTK_MAX_WIDTH", "NTK_MAX_MEMORY_MB"):
            mp.delenv(var, raising=False)
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        at.switch_page("pages/linearized.py")
        at.run()
        assert not at.exception, at.exception
        text = " ".join(m.value for m in at.markdown)
        assert "Question." in text and "Lee" in " ".join(i.value for i in at.info)
        assert any("Live verdicts" in s.value for s in at.subheader)
        assert not at.error


def test_linear_model_of_any_network_is_the_closed_forms_on_the_one_hidden_mlp(mnist_small):
    """linearized_outputs through the generic path (Architecture: its full kernel formed
    densely, method eigh) equals the closed form's matrix-free path on the same network;
    and the deep MLP's layer-wise full kernel equals the jacrev contraction."""
    from ntk_core._src import generic

    x, y, xv = mnist_small.x_train[:20], mnist_small.y_train[:20], mnist_small.x_val[:8]
    params = model.init_params(jax.random.PRNGKey(1), 32, "ntk")
    arch = nc.Architecture("mlp", 32, 1, "ntk")
    a = lin.linearized_outputs(params, x, y, xv, lr=2.0, epochs=12, method="krylov")
    b = lin.linearized_outputs(params, x, y, xv, lr=2.0, epochs=12, method="krylov", arch=arch)
    assert b.method == "eigh"
    np.testing.assert_allclose(b.f_train, a.f_train, atol=2e-4 * np.abs(a.f_train).max())
    np.testing.assert_allclose(b.f_val, a.f_val, atol=2e-4 * np.abs(a.f_val).max())
    ta = lin.gd_trajectories(params, x, y, xv, lrs=[1.0], epochs=5)[0]
    tb = lin.gd_trajectories(params, x, y, xv, lrs=[1.0], epochs=5, arch=arch)[0]
    np.testing.assert_allclose(tb.f_train, ta.f_train, rtol=1e-4, atol=1e-5)
    deep = nc.Architecture("mlp", 8, 3, "ntk")
    p3 = deep.init(jax.random.PRNGKey(2))
    t = np.asarray(generic.autodiff_dense(deep.apply, p3, x, trace=False), np.float64)
    ref = t.transpose(0, 2, 1, 3).reshape(200, 200)
    got = lin.full_kernel_dense(p3, x, arch=deep)
    assert np.abs(got - (ref + ref.T) / 2).max() / np.abs(ref).max() < 1e-5
