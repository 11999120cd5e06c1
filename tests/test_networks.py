"""Every network through every layer (issue 12): config and URL/CLI validation of arch,
depth and dataset; deep MLPs and the CNN trained by the vmapped program; their per-epoch
spectra from the generic ntk_vp operator (deep MLP) and the blocked Jacobian contraction
(CNN at small n; the switch between them) against a dense autodiff kernel; the cache; the
CLI; and the app's pages (AppTest) with a CNN in the sidebar."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntk_core as nc
import runner
from cache import ResultStore
from ntk_core._src import generic
from ui import params as ui_params

ROOT = Path(__file__).resolve().parents[1]
LIM = runner.Limits()
TINY = {"n_train": 48, "n_val": 20, "epochs": 12, "top_k": 4, "lr": 0.05}


def _c(**kw) -> runner.ExperimentConfig:
    return runner.validate_config({**TINY, **kw}, LIM)


# ----------------------------------------------------------------------------- config


def test_arch_depth_dataset_are_validated_with_name_range_and_nearest():
    with pytest.raises(runner.ConfigError) as e:
        _c(arch="rnn")
    assert e.value.param == "arch" and "mlp, cnn" in e.value.allowed
    with pytest.raises(runner.ConfigError) as e:
        _c(depth=7)
    assert e.value.param == "depth" and e.value.suggestion == 4
    with pytest.raises(runner.ConfigError) as e:
        _c(arch="cnn", width=100)
    assert e.value.param == "width" and e.value.suggestion == runner.MAX_CNN_CHANNELS
    with pytest.raises(runner.ConfigError) as e:
        _c(dataset="cifar")
    assert e.value.param == "dataset" and "fashion_mnist" in e.value.allowed
    # the CNN has one layout: depth is normalised, so it has one cache key
    assert _c(arch="cnn", width=4, depth=3) == _c(arch="cnn", width=4, depth=1)
    assert _c(arch="MLP", depth="3").depth == 3
    assert _c().closed_form and not _c(depth=2).closed_form and not _c(arch="cnn", width=4).closed_form
    assert (_c(depth=3, width=128).arch_label, _c(arch="cnn", width=8).arch_label) == ("MLP 3×128", "CNN 8 ch")


def test_parameter_count_and_memory_estimate_cover_each_architecture():
    for arch, width, depth in (("mlp", 128, 1), ("mlp", 64, 3), ("cnn", 8, 1)):
        net = nc.Architecture(arch, width, depth)
        assert runner._config.num_params(arch, width, depth) == net.num_params() == sum(
            int(np.prod(v.shape)) for v in net.init(jax.random.PRNGKey(0)).values())
    est = [runner.estimate_memory_mb(_c(depth=d, width=512), LIM) for d in (1, 2, 4)]
    assert est[0] < est[1] < est[2]
    # a budget the deep network does not fit: rejected, naming a parameter and a value that fits
    small = runner.Limits(max_memory_mb=int(est[1]) - 5)
    with pytest.raises(runner.ConfigError) as e:
        runner.validate_config({**TINY, "depth": 4, "width": 512}, small)
    assert e.value.suggestion is not None
    fixed = runner.validate_config({**TINY, "depth": 4, "width": 512, e.value.param: e.value.suggestion}, small)
    assert runner.estimate_memory_mb(fixed, small) <= small.max_memory_mb


def test_generic_kernel_method_switches_at_its_limits():
    """The CNN's NTK is formed by blocked Jacobian contraction up to JACOBIAN_MAX_BLOCKS
    blocks (and JACOBIAN_MAX_N samples), by ntk_vp beyond; the deeper MLPs' layer-wise
    ("structured") up to STRUCTURED_MAX_N samples, by ntk_vp beyond. The switch is a
    property of the config, so the status line and the JSON name it."""
    cfg = runner._config
    for width in (1, 8, 32):
        b = generic.DEFAULT_BUDGET_FLOATS // (2 * 10 * cfg.num_params("cnn", width))
        n_max = min(cfg.JACOBIAN_MAX_N, b * cfg.JACOBIAN_MAX_BLOCKS)
        assert _c(arch="cnn", width=width, n_train=n_max).ntk_method == "autodiff"
        assert _c(arch="cnn", width=width, n_train=n_max + 1).ntk_method == "ntk_vp"
    for depth in (2, 4):
        assert _c(arch="mlp", depth=depth, width=4, n_train=cfg.STRUCTURED_MAX_N).ntk_method == "structured"
        assert _c(arch="mlp", depth=depth, width=4, n_train=cfg.STRUCTURED_MAX_N + 1).ntk_method == "ntk_vp"
    assert _c(arch="mlp", depth=1).ntk_method == "closed_form"
    # the layer-wise kernel's n×n is in the memory estimate even above max_dense_n
    c = _c(arch="mlp", depth=2, width=8, n_train=1000)
    assert runner.estimate_memory_mb(c, runner.Limits(max_dense_n=100)) == runner.estimate_memory_mb(c, LIM)
    # the per-checkpoint dense kernel is in the memory estimate even above max_dense_n
    lim = runner.Limits(max_dense_n=100)
    c = _c(arch="cnn", width=8, n_train=1000)
    assert c.ntk_method == "autodiff"
    assert runner.estimate_memory_mb(c, lim) == runner.estimate_memory_mb(c, LIM)
    deep = _c(arch="mlp", depth=2, width=8, n_train=2001)         # ntk_vp: dense only ≤ max_dense_n
    assert deep.ntk_method == "ntk_vp"
    gap = runner.estimate_memory_mb(deep, LIM) - runner.estimate_memory_mb(deep, runner.Limits(max_dense_n=2000))
    assert gap == pytest.approx(2 * 2001**2 * 8 / 2**20)


def test_url_keys_for_network_and_dataset_are_checked_like_every_other():
    issues, accepted = ui_params.check_url({"arch": "CNN", "depth": "9", "data": "fashion_mnist"}, LIM)
    assert accepted == {"arch": "cnn", "data": "fashion_mnist"}
    assert [(i.key, i.suggestion) for i in issues] == [("depth", 4)]
    assert {"arch", "depth", "data"} <= set(ui_params.URL_KEYS)


# ----------------------------------------------------------------------------- training


def test_deep_mlp_trains_in_one_program_with_penalty_on_every_weight(mnist_small):
    x, y, xv, yv = mnist_small.x_train, mnist_small.y_train, mnist_small.x_val, mnist_small.y_val
    lam = 1e-3
    tr = nc.train_sweep(x[:64], y[:64], xv[:32], yv[:32], widths=16, reg_strengths=[0.0, lam],
                        lrs=[0.05, 0.05], seeds=[0, 0], reg="l2", epochs=4, arch="mlp", depth=3)
    assert sorted(tr.params) == ["W1", "W2", "W3", "W4", "b1", "b2", "b3", "b4"]
    assert np.all(np.diff(tr.train_loss[0]) < 0)            # full-batch GD on a small lr descends
    p0 = {k: v[1, 0] for k, v in tr.params.items()}
    l2 = lam * sum(float(np.sum(p0[k].astype(np.float64) ** 2)) for k in ("W1", "W2", "W3", "W4"))
    np.testing.assert_allclose(tr.objective[1, 0] - tr.train_loss[1, 0], l2, rtol=1e-4)
    with pytest.raises(ValueError, match="cannot share one program"):
        nc.train_sweep(x[:64], y[:64], xv[:32], yv[:32], widths=[8, 16], reg_strengths=[0, 0],
                       lrs=[0.1, 0.1], seeds=[0, 1], epochs=1, arch="mlp", depth=2)


# ----------------------------------------------------------------------------- runner


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with ResultStore(tmp_path_factory.mktemp("nets") / "store") as s:
        yield s


@pytest.mark.parametrize("net", [dict(arch="mlp", depth=2, width=4, n_train=2001, method="ntk_vp"),
                                 dict(arch="mlp", depth=3, width=8, method="structured"),
                                 dict(arch="cnn", width=2, epochs=4, n_train=24, method="autodiff")],
                         ids=["mlp_depth2_ntk_vp_subset_of_epochs", "mlp_depth3_structured_every_epoch",
                              "cnn_autodiff_every_epoch"])
def test_generic_run_spectra_match_dense_autodiff_and_cache(store, net):
    c = _c(**{k: v for k, v in net.items() if k != "method"})
    before = runner.COUNTERS["trainings"]
    r = runner.run(c, LIM, store=store)
    assert r.status == "computed" and r.spectrum_method == c.ntk_method == net["method"]
    done = np.isfinite(r.topk[:, 0])
    np.testing.assert_array_equal(done, runner.spectrum_epochs(c.epochs, r.best_epoch, runner.every_epoch(c)))
    if net["method"] == "ntk_vp":
        assert done.sum() <= runner.GENERIC_SPECTRUM_EPOCHS + 1 and done[0] and done[-1]
    else:   # the dense methods are cheap: every epoch (the CNN case has 5 epochs only)
        assert done.all()
    split = nc.load_split(c.n_train, c.n_val, c.seed)
    apply_fn = runner.apply_fn_of(c)
    for e in (0, c.epochs):
        p = {k: jnp.asarray(v) for k, v in r.checkpoint(e).items()}
        theta = np.asarray(generic.autodiff_dense(apply_fn, p, jnp.asarray(split.x_train)), np.float64)
        ev = np.linalg.eigvalsh((theta + theta.T) / 2)[::-1][: c.top_k]
        np.testing.assert_allclose(r.topk[e], ev, rtol=1e-5)
        np.testing.assert_allclose(r.trace[e], np.trace(theta), rtol=1e-5)
    sp = runner.spectrum_at(c, c.epochs, LIM, store=store)
    assert sp.method == "dense" and sp.eigenvalues.size == c.n_train
    np.testing.assert_allclose(sp.topk, r.topk[c.epochs], rtol=1e-5)
    again = runner.run(c, LIM, store=store)
    assert again.status == "hit" and runner.COUNTERS["trainings"] == before + 1
    np.testing.assert_array_equal(again.topk, r.topk)


def test_analytic_reference_is_deep_for_mlps_and_refused_for_the_cnn(store):
    deep = runner.analytic_reference(_c(depth=2, parameterization="ntk"), LIM, store=store)
    one = runner.analytic_reference(_c(depth=1, parameterization="ntk"), LIM, store=store)
    assert deep.topk[0] != pytest.approx(one.topk[0], rel=1e-3)   # depth reaches the kernel
    with pytest.raises(runner.ConfigError) as e:
        runner.analytic_reference(_c(arch="cnn", width=2), LIM, store=store)
    assert e.value.param == "arch"


def test_fashion_mnist_unavailable_is_a_clear_error_never_mnist(store, monkeypatch, tmp_path):
    monkeypatch.setenv("NTK_FASHION_MNIST_MIRRORS", "http://127.0.0.1:9/")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))      # no earlier download to find
    nc.forget_download_failures()
    try:
        with pytest.raises(runner.ConfigError) as e:
            runner.run(_c(dataset="fashion_mnist"), LIM, store=store)
    finally:
        nc.forget_download_failures()
    assert e.value.param == "dataset" and "Fashion-MNIST" in str(e.value)


# ----------------------------------------------------------------------------- CLI


def test_cli_arch_depth_flags(tmp_path):
    env = {**os.environ, "NTK_CACHE_DIR": str(tmp_path / "c"), "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-m", "ntk_core", "-q", "run", "--arch", "mlp", "--depth", "3",
                        "--width", "4", "--samples", "24", "--n-val", "20", "--epochs", "2", "--top-k", "3",
                        "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert (out["network"], out["ntk_method"], out["spectrum_method"]) == ("MLP 3×4", "structured", "structured")
    assert out["config"]["depth"] == 3 and all(v is not None for v in out["lambda_max"])
    bad = subprocess.run([sys.executable, "-m", "ntk_core", "run", "--arch", "cnn", "--width", "100"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert "width" in bad.stderr and str(runner.MAX_CNN_CHANNELS) in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- app


@pytest.mark.slow
def test_app_pages_run_a_cnn_from_the_url(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("NTK_CACHE_DIR", str(tmp_path / "app"))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.query_params.update({"arch": "cnn", "width": "2", "samples": "40", "epochs": "2", "topk": "3"})
    at.run()
    assert not at.exception
    assert at.radio(key="arch").value == "cnn" and at.number_input(key="width").value == 2
    at.switch_page("pages/training_dynamics.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert len(list(at.get("vega_lite_chart"))) >= 4
    shown = "\n".join(str(c.value) for c in at.caption) + "\n".join(str(m.value) for m in at.markdown)
    assert "CNN 2 ch" in shown and "autodiff" in shown and "Jacobian contraction" in shown


def test_theory_pages_run_the_sidebar_network(tmp_path, monkeypatch):
    """Linearized on a depth-2 MLP (tiny protocol): the page computes it and its caption
    names the network and how the kernel was formed; Infinite width refuses the CNN with
    the reason (no infinite-width kernel for it here), as a warning, not a traceback."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("NTK_CACHE_DIR", str(tmp_path / "app"))
    monkeypatch.setenv("NTK_THEORY_QUICK", "tiny")
    for var in ("NTK_HOSTED", "NTK_MAX_N", "NTK_MAX_WIDTH", "NTK_MAX_MEMORY_MB"):
        monkeypatch.delenv(var, raising=False)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    at.query_params.update({"arch": "mlp", "depth": "2"})
    at.run()
    at.switch_page("pages/linearized.py")
    at.run()
    assert not at.exception and not at.error, ([e.value for e in at.exception], [e.value for e in at.error])
    shown = "\n".join(str(c.value) for c in at.caption)
    assert "MLP, 2 hidden layers" in shown and "layer-wise" in shown
    assert len(list(at.get("vega_lite_chart"))) >= 2
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params.update({"arch": "cnn", "width": "2"})
    at.run()
    at.switch_page("pages/infinite_width.py")
    at.run()
    assert not at.exception and not at.error
    assert any("arc-cosine" in str(w.value) and "CNN" in str(w.value) for w in at.warning)
    assert not list(at.get("vega_lite_chart"))
