"""The claim rules of runner._verdicts on synthetic curves: every reachable verdict of
every rule, the edge cases (diverged runs, one seed, missing grid points), and the
JSON form of the verdicts."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest

from runner import _verdicts as V

L2 = [0.0, 1e-4, 1e-3, 1e-2, 1e-1]
L1 = [1e-4, 1e-3, 1e-2, 1e-1, 3e-1]
NS = [250, 500, 1000, 2000, 4000]
WIDTHS = [1, 2, 4, 8, 16, 32, 64, 128, 256]


def seeds(curve, jitter=0.005, n=3, seed=0):
    """n seeds of ``curve`` with independent multiplicative jitter (deterministic)."""
    c = np.asarray(curve, np.float64)
    rng = np.random.default_rng(seed)
    return c * (1.0 + jitter * rng.standard_normal((n,) + c.shape))


# Seed rows that average to a flat curve but disagree wildly: every change is "noise".
NOISY5 = np.array([[10, 13, 7, 12, 8], [10, 7, 13, 8, 12], [10, 10.5, 10, 10, 10.5]], float)


def with_nan(a, index=(1, 2)):
    a = np.array(a, np.float64)
    a[index] = np.nan
    return a


# --------------------------------------------------------------- claim-specific data


def decline_curves(rates, epochs=10, n=3):
    """λ_max(t) = 10·exp(−r·t) per strength, per-seed scale and slightly perturbed rates."""
    t = np.arange(epochs + 1)
    r = np.asarray(rates, float)
    out = np.empty((n, r.size, t.size))
    for s in range(n):
        out[s] = (10.0 + s) * np.exp(-np.outer(r * (1 + 0.01 * (s - 1)), t))
    return out


FALL_RISE = [10, 8, 6, 5, 4.5, 4.4, 4.6, 5, 5.5, 6, 6.5]
FALL_ONLY = [10, 9, 8, 7, 6, 5.5, 5.2, 5.1, 5.05, 5.02, 5.0]
RISE_ONLY = [5, 5.5, 6, 6.5, 7, 7.5, 8, 8.5, 9, 9.5, 10]
# No seed falls then rises; the mean does, but both legs are within seed noise.
SPLIT = np.array([np.r_[np.linspace(10, 5, 6), np.full(5, 5.0)],
                  np.r_[np.full(6, 10.0), np.linspace(11.2, 16, 5)],
                  np.full(11, 10.0)])


def v_shape(e_min, epochs=20, depth=0.5):
    t = np.arange(epochs + 1)
    return 5.0 + depth * np.abs(t - e_min)


def val_curve(e_best, epochs=20):
    t = np.arange(epochs + 1)
    return 1.0 + 0.05 * (t - e_best) ** 2


def overfit(pairs):
    """(λ_max, val_loss) arrays for per-seed (λ minimum epoch, best-validation epoch)."""
    return (np.array([v_shape(a) for a, _ in pairs]), np.array([val_curve(b) for _, b in pairs]))


def growth(power, scale=0.05, jitter=0.003):
    return seeds(scale * np.asarray(NS, float) ** power, jitter=jitter)


def shares(trace, share):
    return {"trace": trace, "top10": trace * share, "lambda_max": trace * share * 0.6}


def rank1_spectrum(n=50):
    e = np.zeros(n)
    e[0], e[1:5], e[-1] = 5.0, 1e-9, -1e-8   # round-off around zero, below n·eps32·λ_max
    return e


def approx_spectrum(n=50):
    return np.r_[5.0, 0.05, 0.01 * np.ones(n - 2) / (n - 2)]


def flat_spectrum(n=50):
    return np.linspace(1.0, 0.1, n)


DIP = [10, 8, 6, 4, 5, 7, 7.1, 7.15, 7.2]
NO_DIP = [1, 2, 3, 4, 5, 7, 7.1, 7.15, 7.2]
TAIL = np.logspace(-3, 0, 99)


def spec(l1, tail):
    return np.r_[l1, tail]


# (case name, claim id, kwargs, expected verdict, text expected in the condition)
CASES = [
    # 1, 2: λ_max vs regularization strength
    *[c for cid, grid in (("l2_lowers_lambda_max", L2), ("l1_lowers_lambda_max", L1)) for c in (
        (f"{cid}-monotone", cid, dict(strengths=grid, lambda_max=seeds([10, 9, 8, 6, 3])), "holds", ""),
        (f"{cid}-above", cid, dict(strengths=grid, lambda_max=seeds([10, 10, 10, 7, 4])),
         "holds_only_when", f"λ ≥ {grid[3]:g}"),
        (f"{cid}-unordered", cid, dict(strengths=grid[::-1], lambda_max=seeds([4, 7, 10, 10, 10])),
         "holds_only_when", f"λ ≥ {grid[3]:g}"),
        (f"{cid}-middle", cid, dict(strengths=grid, lambda_max=seeds([10, 7, 6, 10, 12])),
         "holds_only_when", f"{grid[1]:g} ≤ λ ≤ {grid[2]:g}"),
        (f"{cid}-rises", cid, dict(strengths=grid, lambda_max=seeds([10, 11, 12, 13, 14])),
         "does_not_hold", "moves up"),
        (f"{cid}-flat", cid, dict(strengths=grid, lambda_max=seeds([10] * 5, jitter=1e-4)),
         "does_not_hold", "within tolerance"),
        (f"{cid}-noise", cid, dict(strengths=grid, lambda_max=NOISY5), "inconclusive", "seed noise"),
        (f"{cid}-diverged", cid, dict(strengths=grid, lambda_max=with_nan(seeds([10, 9, 8, 6, 3]))),
         "inconclusive", "seed(s) [1]"),
        (f"{cid}-two-strengths", cid, dict(strengths=grid[:2], lambda_max=seeds([10, 9])),
         "inconclusive", "≥ 3 strengths"),
    )],
    ("l2-some-seeds", "l2_lowers_lambda_max",
     dict(strengths=L2, lambda_max=np.array([[10, 8, 7, 6, 3]] * 3 + [[10, 9.9, 9, 8.5, 9]] * 3)),
     "holds_only_when", "λ ≥ 0.0001; only for seeds [0, 1, 2] (3/6)"),
    ("l2-step", "l2_lowers_lambda_max", dict(strengths=L2, lambda_max=seeds([10, 5, 5, 5, 5])),
     "holds", ""),
    # 3: falls, minimum, rises
    ("falls-rises", "lambda_max_falls_min_rises", dict(lambda_max=seeds(FALL_RISE)), "holds", ""),
    ("falls-rises-one-seed-of-three", "lambda_max_falls_min_rises",
     dict(lambda_max=np.array([FALL_RISE, FALL_ONLY, FALL_ONLY])),
     "holds_only_when", "only for seeds [0] (1/3)"),
    ("falls-only", "lambda_max_falls_min_rises", dict(lambda_max=seeds(FALL_ONLY)),
     "does_not_hold", "does not rise"),
    ("rises-only", "lambda_max_falls_min_rises", dict(lambda_max=seeds(RISE_ONLY)),
     "does_not_hold", "never falls"),
    ("flat-over-epochs", "lambda_max_falls_min_rises",
     dict(lambda_max=seeds(np.full(11, 10.0), jitter=1e-4)), "does_not_hold", "within 2%"),
    ("split-seeds", "lambda_max_falls_min_rises", dict(lambda_max=SPLIT), "inconclusive", "noise"),
    ("falls-rises-diverged", "lambda_max_falls_min_rises",
     dict(lambda_max=with_nan(seeds(FALL_RISE), (2, 7))), "inconclusive", "seed(s) [2]"),
    ("two-epochs", "lambda_max_falls_min_rises", dict(lambda_max=seeds([10, 9])),
     "inconclusive", "≥ 3 recorded epochs"),
    # 4: λ_max minimum vs best validation epoch
    ("coincide", "min_coincides_with_overfitting",
     dict(zip(("lambda_max", "val_loss"), overfit([(8, 9), (8, 8), (10, 9)]))), "holds", ""),
    ("coincide-one-seed", "min_coincides_with_overfitting",
     dict(zip(("lambda_max", "val_loss"), overfit([(8, 9), (3, 15), (4, 16)]))),
     "holds_only_when", "only for seeds [0] (1/3)"),
    ("apart", "min_coincides_with_overfitting",
     dict(zip(("lambda_max", "val_loss"), overfit([(3, 15), (4, 16), (5, 12)]))),
     "does_not_hold", "from the best-validation epoch"),
    ("no-interior-min", "min_coincides_with_overfitting",
     dict(lambda_max=seeds(np.linspace(10, 5, 21)), val_loss=np.array([val_curve(9)] * 3)),
     "inconclusive", "0/3 seeds"),
    ("no-overfitting", "min_coincides_with_overfitting",
     dict(lambda_max=np.array([v_shape(8)] * 3), val_loss=seeds(np.linspace(2, 1, 21))),
     "inconclusive", "0/3 seeds"),
    ("coincide-diverged", "min_coincides_with_overfitting",
     dict(lambda_max=np.array([v_shape(8)] * 3), val_loss=with_nan([val_curve(9)] * 3, (0, 20))),
     "inconclusive", "seed(s) [0]"),
    # 5: λ_max vs n
    ("linear-n", "lambda_max_grows_with_n", dict(ns=NS, lambda_max=growth(1.0)), "holds", ""),
    ("sqrt-n", "lambda_max_grows_with_n", dict(ns=NS, lambda_max=growth(0.5, scale=3.0)),
     "holds_only_when", "n^0.50, not linearly"),
    ("falls-with-n", "lambda_max_grows_with_n", dict(ns=NS, lambda_max=growth(-0.3, scale=100.0)),
     "does_not_hold", "decreases with n"),
    ("flat-n", "lambda_max_grows_with_n", dict(ns=NS, lambda_max=growth(0.0, scale=10.0, jitter=1e-4)),
     "does_not_hold", "within 2%"),
    ("noise-n", "lambda_max_grows_with_n",
     dict(ns=NS, lambda_max=np.array([[10, 20, 5, 15, 12], [10, 3, 18, 8, 9], [10, 9, 11, 10, 8]], float)),
     "inconclusive", "seed noise"),
    ("negative-n", "lambda_max_grows_with_n", dict(ns=NS, lambda_max=-growth(1.0)),
     "inconclusive", "non-positive"),
    ("two-sizes", "lambda_max_grows_with_n", dict(ns=NS[:2], lambda_max=growth(1.0)[:, :2]),
     "inconclusive", "≥ 3 sizes"),
    # 6: trace vs n, concentration
    ("trace-both", "trace_linear_in_n", dict(ns=NS, **shares(growth(1.0, 2.0), 0.7)), "holds", ""),
    ("trace-linear-spread", "trace_linear_in_n", dict(ns=NS, **shares(growth(1.0, 2.0), 0.3)),
     "holds_only_when", "grows linearly"),
    ("trace-sqrt-concentrated", "trace_linear_in_n", dict(ns=NS, **shares(growth(0.5, 20.0), 0.7)),
     "holds_only_when", "not linearly"),
    ("trace-neither", "trace_linear_in_n", dict(ns=NS, **shares(growth(0.5, 20.0), 0.3)),
     "does_not_hold", "not linearly"),
    ("trace-noise", "trace_linear_in_n", dict(ns=NS, **shares(NOISY5 * 100, 0.7)),
     "inconclusive", "seed noise"),
    ("trace-diverged", "trace_linear_in_n", dict(ns=NS, **shares(with_nan(growth(1.0, 2.0)), 0.7)),
     "inconclusive", "seed(s) [1]"),
    # 7: stronger L2, faster decline
    ("decline-grows", "higher_l2_sharper_decline",
     dict(strengths=L2[1:], lambda_max=decline_curves([0.0, 0.02, 0.05, 0.1])), "holds", ""),
    ("decline-above", "higher_l2_sharper_decline",
     dict(strengths=L2, lambda_max=decline_curves([0.01, 0.01, 0.01, 0.05, 0.1])),
     "holds_only_when", "λ ≥ 0.01"),
    ("decline-shrinks", "higher_l2_sharper_decline",
     dict(strengths=L2[1:], lambda_max=decline_curves([0.1, 0.05, 0.02, 0.0])),
     "does_not_hold", "moves down"),
    ("decline-noise", "higher_l2_sharper_decline",
     dict(strengths=L2, lambda_max=decline_curves([0.05] * 5) * np.exp(
         -0.02 * np.arange(11) * (NOISY5 - 10)[..., None])),
     "inconclusive", "seed noise"),
    ("decline-diverged", "higher_l2_sharper_decline",
     dict(strengths=L2[1:], lambda_max=with_nan(decline_curves([0.0, 0.02, 0.05, 0.1]), (1, 2, 3))),
     "inconclusive", "seed(s) [1]"),
    ("decline-one-epoch", "higher_l2_sharper_decline",
     dict(strengths=L2[1:], lambda_max=decline_curves([0.0, 0.02, 0.05, 0.1], epochs=1)),
     "inconclusive", "≥ 2 epochs"),
    # 8: width 1, rank 1
    ("rank-1", "width_1_rank_1", dict(eigenvalues=[rank1_spectrum()] * 3), "holds", ""),
    ("approx-rank-1", "width_1_rank_1", dict(eigenvalues=np.array([approx_spectrum()] * 3)),
     "holds_only_when", "approximately: one eigenvalue carries almost all of the trace (PR="),
    ("not-rank-1", "width_1_rank_1", dict(eigenvalues=[flat_spectrum()] * 3),
     "does_not_hold", "numerical rank 50"),
    ("rank-mixed", "width_1_rank_1",
     dict(eigenvalues=[rank1_spectrum(), approx_spectrum(), flat_spectrum(), flat_spectrum(40)]),
     "inconclusive", "seeds disagree"),
    ("rank-nan", "width_1_rank_1", dict(eigenvalues=[rank1_spectrum(), with_nan([1.0, 2.0], 0)]),
     "inconclusive", "seed(s) [1]"),
    ("rank-1x1", "width_1_rank_1", dict(eigenvalues=[[3.0]]), "inconclusive", "n ≥ 2"),
    ("rank-zero-kernel", "width_1_rank_1", dict(eigenvalues=[np.zeros(5)]), "inconclusive", "zero"),
    ("rank-loose-tol", "width_1_rank_1", dict(eigenvalues=[approx_spectrum()], tol=0.02), "holds", ""),
    # 9: width dip, rise, flatten
    ("width-all", "width_dip_rise_flatten", dict(widths=WIDTHS, lambda_max=seeds(DIP)), "holds", ""),
    ("width-no-dip", "width_dip_rise_flatten", dict(widths=WIDTHS, lambda_max=seeds(NO_DIP)),
     "holds_only_when", "only these parts hold: rise, flatten; not: dip"),
    ("width-decreasing", "width_dip_rise_flatten",
     dict(widths=WIDTHS, lambda_max=seeds(100.0 / np.asarray(WIDTHS, float))),
     "does_not_hold", "no dip"),
    ("width-noise", "width_dip_rise_flatten",
     dict(widths=WIDTHS, lambda_max=np.array([[10, 10, 10, 10, 13, 7, 13, 7, 13],
                                              [10, 10, 10, 10, 7, 13, 7, 13, 7],
                                              [10, 10, 10, 10, 10, 10, 10, 10, 10]], float)),
     "inconclusive", "within noise"),
    ("width-missing", "width_dip_rise_flatten", dict(widths=[1, 2, 4], lambda_max=seeds([3, 2, 1])),
     "inconclusive", "missing"),
    ("width-diverged", "width_dip_rise_flatten", dict(widths=WIDTHS, lambda_max=with_nan(seeds(DIP))),
     "inconclusive", "seed(s) [1]"),
    # 10: CDF saturation
    ("cdf-both", "cdf_saturates_late", dict(spectra=[spec(10, TAIL), spec(20, np.full(99, 0.21))]),
     "holds", ""),
    ("cdf-trace-only", "cdf_saturates_late", dict(spectra=[spec(10, TAIL), spec(20, TAIL)]),
     "holds_only_when", "on the trace-weighted CDF only"),
    ("cdf-count-only", "cdf_saturates_late", dict(spectra=[spec(10, TAIL), spec(20, np.full(99, 0.5))]),
     "holds_only_when", "on the count CDF (in units of λ1) only"),
    ("cdf-rescaled", "cdf_saturates_late", dict(spectra=[spec(10, TAIL), spec(20, 2 * TAIL)]),
     "does_not_hold", "neither"),
    ("cdf-mixed", "cdf_saturates_late",
     dict(spectra=[spec(10, TAIL), spec(20, TAIL * 1.2), spec(30, TAIL * 0.5), spec(40, TAIL * 3)],
          labels=["a", "b", "c", "d"]),
     "inconclusive", "no clear monotone relation"),
    ("cdf-same-lambda1", "cdf_saturates_late", dict(spectra=[spec(10, TAIL), spec(10, TAIL * 0.5)]),
     "inconclusive", "do not differ"),
    ("cdf-one", "cdf_saturates_late", dict(spectra=[spec(10, TAIL)]), "inconclusive", "≥ 2 spectra"),
    ("cdf-nan", "cdf_saturates_late", dict(spectra=[spec(10, TAIL), with_nan(spec(20, TAIL), 3)]),
     "inconclusive", "non-finite"),
]


@pytest.mark.parametrize("name,claim_id,kwargs,expected,text", CASES, ids=[c[0] for c in CASES])
def test_rule_verdict(name, claim_id, kwargs, expected, text):
    v = V.RULES[claim_id](**kwargs)
    assert (v.claim_id, v.verdict) == (claim_id, expected), (v.condition, v.statistic)
    assert text in v.condition
    assert v.criterion
    plain = (bool, int, float, str, type(None))
    assert all(isinstance(x, plain) for row in v.per_seed for x in row.values())
    assert all(isinstance(x, plain + (list,)) for x in v.statistic.values())
    json.dumps(v.to_json(), allow_nan=False)


def test_every_rule_reaches_every_verdict():
    reached = {cid: set() for cid in V.CLAIMS}
    for _, cid, _, expected, _ in CASES:
        reached[cid].add(expected)
    assert reached == {cid: set(V.VERDICTS) for cid in V.CLAIMS}


def test_claims_and_rules_match():
    assert set(V.CLAIMS) == set(V.RULES)
    assert len(V.CLAIMS) == 10
    for cid, claim in V.CLAIMS.items():
        assert claim.id == cid
        assert claim.quote and claim.statistic_definition and claim.theory
        sig = inspect.signature(V.RULES[cid])
        assert all(p.kind is p.KEYWORD_ONLY for p in sig.parameters.values()), cid
        assert "Args:" in (V.RULES[cid].__doc__ or "")
    quote = "Maximum eigenvalue of the NTK matrix decreases as we apply regularization"
    assert V.CLAIMS["l2_lowers_lambda_max"].quote == quote == V.CLAIMS["l1_lowers_lambda_max"].quote
    assert V.CLAIMS["width_1_rank_1"].quote == "Width = 1: Rank-1 NTK"


def test_one_seed_is_judged_and_noted():
    v = V.judge_l2_lowers_lambda_max(strengths=L2, lambda_max=[10, 9, 8, 6, 3], epoch=5)
    assert v.verdict == "holds"
    assert "Only 1 seed" in v.criterion and "epoch 5" in v.criterion
    assert v.statistic["n_seeds"] == 1 and len(v.per_seed) == 1
    v = V.judge_lambda_max_falls_min_rises(lambda_max=FALL_RISE)
    assert v.verdict == "holds" and "Only 1 seed" in v.criterion


def test_diverged_seed_reported_per_seed():
    v = V.judge_lambda_max_falls_min_rises(lambda_max=with_nan(seeds(FALL_RISE), (0, 3)))
    assert v.verdict == "inconclusive" and "diverged" in v.condition
    assert v.per_seed == [{"seed": 0, "outcome": "diverged"}]


def test_statistics_are_computed_numbers():
    v = V.judge_lambda_max_grows_with_n(ns=NS, lambda_max=growth(1.0))
    s = v.statistic
    assert s["lambda_max_loglog_slope"] == pytest.approx(1.0, abs=0.02)
    assert s["lambda_max_slope_ci_low"] <= 1.0 <= s["lambda_max_slope_ci_high"]
    assert s["lambda_max_r2_linear"] > 0.99 and s["n_agree"] == 3
    v = V.judge_width_1_rank_1(eigenvalues=[approx_spectrum()])
    assert v.per_seed[0]["numerical_rank"] == 50
    assert v.per_seed[0]["participation_ratio"] == pytest.approx(
        sum(approx_spectrum()) ** 2 / sum(approx_spectrum() ** 2))
    v = V.judge_lambda_max_falls_min_rises(lambda_max=seeds(FALL_RISE))
    assert v.statistic["argmin_epoch_mean_curve"] == 5.0


def test_to_json_replaces_non_finite():
    v = V.Verdict("x", "inconclusive", "why", {"a": float("nan"), "b": [1.0, float("inf")],
                                                "c": np.float32(2.0), "d": np.int64(3)},
                  "rule", [{"seed": 0, "s": np.nan}])
    j = v.to_json()
    assert j["statistic"] == {"a": None, "b": [1.0, None], "c": 2.0, "d": 3}
    assert j["per_seed"] == [{"seed": 0, "s": None}]
    json.dumps(j, allow_nan=False)


@pytest.mark.parametrize("verdict,condition", [("maybe", "x"), ("does_not_hold", "")])
def test_verdict_validates(verdict, condition):
    with pytest.raises(ValueError):
        V.Verdict("x", verdict, condition, {}, "rule", [])


def test_helpers_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    for dof in (1, 2, 5, 29, 30, 31, 47, 120, 1000):
        assert V._t975(dof) == pytest.approx(stats.t.ppf(0.975, dof), abs=2e-4)
    x, y = [1, 2, 2, 3, 5, 4], [3, 1, 1, 4, 6, 6]
    assert V._spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)
    assert V._spearman([1, 2, 3], [5, 5, 5]) == 0.0


def test_bad_shapes_raise():
    with pytest.raises(ValueError):
        V.judge_l2_lowers_lambda_max(strengths=L2, lambda_max=np.ones((3, 4)))
    with pytest.raises(ValueError):
        V.judge_lambda_max_grows_with_n(ns=[1, 1, 2], lambda_max=np.ones((3, 3)))
    with pytest.raises(ValueError):
        V.judge_min_coincides_with_overfitting(lambda_max=np.ones((3, 5)), val_loss=np.ones((3, 6)))



def test_sharper_decline_on_recorded_epochs_equals_every_epoch():
    """λ_max = exp(−r·e) per strength: the fitted decline 1 − exp(−r·T) is exact, so judging
    on a subset of recorded epochs (the generic NTK's) gives the same declines."""
    from runner._verdicts import judge_higher_l2_sharper_decline

    rates = np.array([0.01, 0.05, 0.1, 0.2])
    e = np.arange(21)
    curves = np.exp(-rates[None, :, None] * e[None, None, :]) * np.array([1.0, 1.1, 0.9])[:, None, None]
    full = judge_higher_l2_sharper_decline(strengths=[0, 1e-3, 1e-2, 1e-1], lambda_max=curves)
    sub = [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20]
    part = judge_higher_l2_sharper_decline(strengths=[0, 1e-3, 1e-2, 1e-1], lambda_max=curves[:, :, sub],
                                           epochs=sub)
    np.testing.assert_allclose(part.statistic["decline_per_seed"], full.statistic["decline_per_seed"], rtol=1e-12)
    np.testing.assert_allclose(full.statistic["decline_per_seed"][0], 1 - np.exp(-rates * 10), rtol=1e-12)
    assert part.verdict == full.verdict == "holds"
    with pytest.raises(ValueError, match="epochs"):
        judge_higher_l2_sharper_decline(strengths=[0, 1e-3, 1e-2, 1e-1], lambda_max=curves[:, :, sub], epochs=e)
