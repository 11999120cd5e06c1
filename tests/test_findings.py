"""Findings end to end: a small protocol through the real runner and cache (verdicts equal
the rules applied to the runs themselves), the CLI's JSON contract, and the cache hit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import runner
from cache import ResultStore
from runner import _findings
from runner._verdicts import CLAIMS, RULES, VERDICTS

ROOT = Path(__file__).resolve().parents[1]
LIM = runner.Limits()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A small protocol (3 seeds, both optimizers) computed once into a fresh store."""
    base = runner.validate_config({"width": 8, "n_train": 60, "n_val": 40, "epochs": 4,
                                   "batch_size": 20, "top_k": 5}, LIM)
    p = runner.Protocol(name="tiny", base=base, seeds=(0, 1, 2),
                        optimizers=(("sgd", 0.1), ("adam", 1e-3)), l2_grid=(0.0, 1e-2, 1e-1),
                        l1_grid=(0.0, 1e-2, 1e-1), ns=(30, 60), widths=(1, 2, 4))
    store = ResultStore(tmp_path_factory.mktemp("findings") / "store")
    seen = []
    res = runner.findings(p, LIM, store=store, on_claim=seen.append)
    return p, store, res, seen


def test_one_verdict_per_claim_and_optimizer_where_it_matters(tiny):
    p, _, res, seen = tiny
    assert res.status == "computed"
    assert [c.claim_id for c in seen] and len(seen) == len(res.claims)  # streamed as computed
    pairs = {(c.claim_id, c.optimizer) for c in res.claims}
    assert len(pairs) == len(res.claims)
    assert {c.claim_id for c in res.claims} == set(CLAIMS)
    for cid in _findings.TRAINING_CLAIMS:
        assert {(cid, "sgd"), (cid, "adam")} <= pairs, cid
    for c in res.claims:
        assert c.verdict.verdict in VERDICTS
        assert c.protocol["seeds"] == [0, 1, 2] or c.protocol.get("seed") == 0


def test_verdicts_equal_the_rules_applied_to_the_runs(tiny):
    # Recompute claim 1 (SGD) from runner.run results directly: same numbers, same verdict.
    p, store, res, _ = tiny
    lam = np.array([[runner.run(runner.validate_config(p.base, LIM, optimizer="sgd", lr=0.1, seed=s,
                                                       reg="l2" if g else "none", reg_strength=g),
                                LIM, store=store).topk[p.base.epochs, 0] for g in p.l2_grid]
                    for s in p.seeds])
    want = RULES["l2_lowers_lambda_max"](strengths=np.asarray(p.l2_grid), lambda_max=lam,
                                         epoch=p.base.epochs)
    got = next(c for c in res.claims if c.claim_id == "l2_lowers_lambda_max" and c.optimizer == "sgd")
    assert got.verdict == want
    np.testing.assert_allclose(np.asarray(got.evidence["lambda_max"]), lam, rtol=1e-12)


def test_second_call_is_a_cache_hit_without_training(tiny):
    p, store, res, _ = tiny
    before = runner.COUNTERS["trainings"]
    again = runner.findings(p, LIM, store=store)
    assert again.status == "hit" and runner.COUNTERS["trainings"] == before
    assert [c.to_json() for c in again.claims] == [c.to_json() for c in res.claims]


def test_cli_findings_quick_json(quick_findings):
    _, out, _ = quick_findings
    assert set(out) >= {"claims", "config_hash", "seconds", "quick", "protocol"}
    assert out["quick"] is True and out["protocol"] == "quick"
    keys = {"id", "claim", "verdict", "condition", "statistic", "criterion", "per_seed", "protocol",
            "optimizer"}
    for c in out["claims"]:
        assert keys <= set(c), set(c) ^ keys
        assert c["claim"] == CLAIMS[c["id"]].quote and c["verdict"] in VERDICTS
    assert {c["id"] for c in out["claims"]} == set(CLAIMS)
    json.dumps(out, allow_nan=False)


def test_cli_findings_second_run_is_cached_and_prints_a_table(quick_findings):
    cache_dir, out, _ = quick_findings
    env = {"PATH": "/usr/bin:/bin", "NTK_CACHE_DIR": str(cache_dir), "JAX_PLATFORMS": "cpu"}
    p = subprocess.run([sys.executable, "-m", "ntk_core", "findings", "--quick"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "quick protocol (hit" in p.stdout and out["config_hash"] in p.stdout
    for c in out["claims"]:
        assert c["id"] in p.stdout


def test_protocol_follows_the_network_and_the_cnn_grids_are_smaller():
    lim = runner.Limits()
    study = runner.protocol("quick", lim)
    deep = runner.protocol("quick", lim, runner.Network("mlp", 2, "bundled"))
    cnn = runner.protocol("quick", lim, runner.Network("cnn", 4, "bundled"))
    assert (study.base.arch, study.base.depth) == ("mlp", 1) and study.base.closed_form
    assert (deep.base.depth, deep.base.ntk_method) == (2, "structured") and deep.widths == study.widths
    assert cnn.base.arch == "cnn" and cnn.base.depth == 1 and max(cnn.widths) <= runner.MAX_CNN_CHANNELS
    assert len({study.key, deep.key, cnn.key}) == 3            # one cache entry per network
    with pytest.raises(runner.ConfigError) as e:
        runner.validate_network({"arch": "rnn"}, lim)
    assert e.value.param == "arch"


def test_recorded_epochs_are_those_every_run_has():
    class R:  # the two fields _recorded reads
        def __init__(self, topk):
            self.topk = np.asarray(topk, float)[:, None]
    nan = np.nan
    runs = [R([1, nan, 3, nan, 5]), R([1, 2, 3, nan, 5])]
    np.testing.assert_array_equal(_findings._recorded(runs), [0, 2, 4])
