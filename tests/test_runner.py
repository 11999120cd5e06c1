"""The experiment runner on real JAX and a real diskcache store in a temp dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ntk_core
import runner
from cache import ResultStore

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"width": 8, "n_train": 120, "n_val": 40, "epochs": 3, "lr": 0.1, "top_k": 5}
LIM = runner.Limits()


def _c(mapping, limits=LIM) -> runner.ExperimentConfig:
    """The test's entry point: validate once, as the CLI and the app do."""
    return runner.validate_config(mapping, limits)


@pytest.fixture()
def store(tmp_path):
    with ResultStore(tmp_path / "store") as s:
        yield s


def _same(a: runner.RunResult, b: runner.RunResult) -> None:
    for k in a.metrics:
        np.testing.assert_array_equal(a.metrics[k], b.metrics[k], err_msg=k)
    np.testing.assert_array_equal(a.topk, b.topk)
    np.testing.assert_array_equal(a.trace, b.trace)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k], err_msg=k)


def test_cache_hit_skips_training_and_returns_identical_arrays(store):
    before = runner.COUNTERS["trainings"]
    first = runner.run(_c(SMALL), LIM, store=store)
    assert first.status == "computed"
    assert runner.COUNTERS["trainings"] == before + 1
    second = runner.run(_c(SMALL), LIM, store=store)
    assert second.status == "hit"
    assert runner.COUNTERS["trainings"] == before + 1, "a cache hit must not train"
    _same(first, second)
    assert isinstance(second.topk, np.ndarray) and type(second.params["W1"]) is np.ndarray


def test_result_shapes_and_spectra_match_a_direct_computation(store):
    r = runner.run(_c(SMALL), LIM, store=store)
    e, k = SMALL["epochs"], SMALL["top_k"]
    assert r.topk.shape == (e + 1, k) and r.trace.shape == (e + 1,)
    assert all(v.shape == (e + 1,) for v in r.metrics.values())
    assert np.all(np.diff(r.topk, axis=1) <= 1e-6 * r.topk[:, :1])  # descending
    split = ntk_core.load_split(SMALL["n_train"], SMALL["n_val"], 0)
    theta = np.asarray(ntk_core.empirical_ntk(r.checkpoint(e), split.x_train))
    dense = ntk_core.eigvalsh_desc(theta)
    np.testing.assert_allclose(r.topk[e], dense[:k], rtol=1e-4)
    np.testing.assert_allclose(r.trace[e], dense.sum(), rtol=1e-5)


def test_sweep_vmapped_equals_individual_runs(store, tmp_path):
    values = [0.0, 1e-3, 1e-2]
    sweep = runner.run_sweep(_c(SMALL), "l2", values, LIM, store=store)
    assert [r.status for r in sweep] == ["computed"] * 3
    with ResultStore(tmp_path / "other") as other:
        for v, r in zip(values, sweep):
            single = runner.run(_c({**SMALL, "reg": "l2", "reg_strength": v}), LIM, store=other)
            np.testing.assert_allclose(single.metrics["train_loss"], r.metrics["train_loss"], rtol=1e-5)
            np.testing.assert_allclose(single.topk, r.topk, rtol=1e-4)
    # and the sweep filled the cache for single runs
    assert runner.run(_c({**SMALL, "reg": "l2", "reg_strength": 1e-2}), LIM, store=store).status == "hit"


def test_weight_norm_falls_with_l2(store):
    sweep = runner.run_sweep(_c({**SMALL, "epochs": 5, "lr": 0.5}), "l2", [0.0, 1e-2, 1e-1], LIM, store=store)
    final = [r.metrics["weight_norm"][-1] for r in sweep]
    assert final[0] > final[1] > final[2]


def test_divergence_is_reported_and_cached_as_diverged(store):
    cfg = {**SMALL, "lr": 90.0, "epochs": 4}
    before = runner.COUNTERS["trainings"]
    r = runner.run(_c(cfg), LIM, store=store)
    assert r.diverged_at is not None and 1 <= r.diverged_at <= 4
    assert np.all(np.isnan(r.metrics["train_loss"][r.diverged_at:]))
    assert np.all(np.isfinite(r.topk[: r.diverged_at]))
    assert np.all(np.isnan(r.topk[r.diverged_at:]))
    again = runner.run(_c(cfg), LIM, store=store)
    assert again.status == "hit" and again.diverged_at == r.diverged_at
    assert runner.COUNTERS["trainings"] == before + 1, "a diverged run must not be recomputed"
    good = runner.run(_c({**cfg, "lr": 0.1}), LIM, store=store)
    assert good.diverged_at is None and good.status == "computed"


def test_corrupted_entry_is_recomputed_not_returned(store):
    first = runner.run(_c(SMALL), LIM, store=store)
    # Overwrite the stored blob with garbage through the underlying diskcache.
    raw = store._cache  # the real diskcache.Cache underneath
    keys = list(raw.iterkeys())
    assert keys, "the run was stored"
    for k in keys:
        raw.set(k, b"garbage" * 10)
    before = runner.COUNTERS["trainings"]
    again = runner.run(_c(SMALL), LIM, store=store)
    assert again.status == "computed"
    assert runner.COUNTERS["trainings"] == before + 1
    _same(first, again)
    assert store.stats["corrupt"] >= 1


def test_disabled_store_still_computes(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with ResultStore(blocker / "sub") as s:
        assert not s.enabled
        r = runner.run(_c(SMALL), LIM, store=s)
    assert r.status == "uncached" and np.all(np.isfinite(r.topk))


def test_over_cap_request_explains_itself():
    limits = runner.Limits(max_width=64, max_n=500)
    with pytest.raises(runner.ConfigError) as err:
        runner.run(_c({**SMALL, "width": 128}, limits), limits)
    assert err.value.param == "width" and err.value.suggestion == 64
    with pytest.raises(runner.ConfigError) as err:
        runner.run_sweep(_c(SMALL, limits), "samples", [100, 10_000], limits)
    assert err.value.param == "samples" and err.value.suggestion == 500


def test_large_n_uses_matrix_free_spectra_automatically(store):
    limits = runner.Limits(max_dense_n=100)
    r = runner.run(_c({**SMALL, "n_train": 150, "epochs": 1}), limits, store=store)
    assert r.spectrum_method == "matrix_free"
    dense = runner.run(_c({**SMALL, "n_train": 150, "epochs": 1}), LIM, store=None)
    assert dense.spectrum_method == "dense"
    np.testing.assert_allclose(r.topk, dense.topk, rtol=1e-4)


def test_spectrum_at_dense_and_slq(store):
    sp = runner.spectrum_at(_c(SMALL), 3, LIM, store=store)
    assert isinstance(sp, runner.SpectrumResult)
    assert sp.method == "dense" and sp.eigenvalues.shape == (SMALL["n_train"],)
    np.testing.assert_allclose(sp.eigenvalues.sum(), sp.trace, rtol=1e-5)
    slq = runner.spectrum_at(_c(SMALL), 3, runner.Limits(max_dense_n=50), store=store)
    assert slq.method == "slq"
    est_trace = SMALL["n_train"] * float(slq.weights @ slq.nodes)
    np.testing.assert_allclose(est_trace, sp.trace, rtol=0.05)
    np.testing.assert_allclose(slq.topk[0], sp.eigenvalues[0], rtol=1e-5)
    assert runner.spectrum_at(_c(SMALL), 3, LIM, store=store).status == "hit"


_WORKER = r"""
import json, os, sys
sys.path.insert(0, {root!r})
import numpy as np, runner
from cache import ResultStore
lim = runner.Limits()
r = runner.run(runner.validate_config({cfg!r}, lim), lim, store=ResultStore({store!r}))
print(json.dumps({{"status": r.status, "topk": r.topk.tolist(), "loss": r.metrics["train_loss"].tolist()}}))
"""


def test_eight_processes_same_config_compute_once(tmp_path):
    log = tmp_path / "compute.log"
    env = {**os.environ, "NTK_COMPUTE_LOG": str(log), "JAX_PLATFORMS": "cpu"}
    code = _WORKER.format(root=str(ROOT), cfg={**SMALL, "seed": 7}, store=str(tmp_path / "shared"))
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=env, text=True) for _ in range(8)]
    outs = []
    for p in procs:
        out, errtxt = p.communicate(timeout=600)
        assert p.returncode == 0, errtxt[-2000:]
        outs.append(json.loads(out.strip().splitlines()[-1]))
    trainings = [line for line in log.read_text().splitlines() if line.startswith("trainings")]
    assert len(trainings) == 1, trainings
    assert sorted(o["status"] for o in outs).count("computed") == 1
    assert all(o["topk"] == outs[0]["topk"] and o["loss"] == outs[0]["loss"] for o in outs)


def test_fused_width_sweep_equals_runs_alone_including_bucketed_kernels():
    """A width sweep trains in one padded program and forms each run's kernels at the next
    power of two of its width (3 → 4, 16 → 16) with zero-padded units: every stored
    number must match the same config run alone, unpadded (float32 round-off)."""
    base = _c({**SMALL, "epochs": 2})
    cfgs = runner.sweep_configs(base, "width", [3, 16], LIM)
    fused = runner.run_configs(cfgs, LIM, store=None)
    for f, c in zip(fused, cfgs):
        alone = runner.run(c, LIM, store=None)
        assert f.params["W1"].shape == alone.params["W1"].shape == (3, 784, c.width)
        for k in alone.metrics:
            np.testing.assert_allclose(f.metrics[k], alone.metrics[k], rtol=2e-5, atol=1e-7, err_msg=k)
        np.testing.assert_allclose(f.trace, alone.trace, rtol=2e-5)
        np.testing.assert_allclose(f.topk, alone.topk, rtol=2e-5, atol=1e-6 * float(np.max(alone.topk)))
