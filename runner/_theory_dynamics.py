"""Theory pages "Linearized" (does the network train like its linearization? Lee et al.
2019) and "Stability" (edge of stability and the catapult; Lewkowycz et al. 2020, Cohen et
al. 2021): protocols, runner functions with cached results, the pure decision rules behind
their live verdicts and outcomes, and their CLI commands.

Both train by full-batch gradient descent on the app's loss L = ½·mean_i ‖f(x_i) − y_i‖²
(summed over the 10 outputs, no penalty) in NTK parameterization, with the numerics of
:mod:`ntk_core._src.linearized` and :mod:`ntk_core._src.stability`, and store the whole
result as ONE entry of the shared results store (kind "theory"), so a page or a CLI call
that finds it returns at once::

    import runner
    limits = runner.Limits.from_env()
    res = runner.stability(runner.stability_protocol("quick", limits), limits,
                           store=runner.open_store())
    print(res.to_json()["outcome"])

Kernels: the FULL (n·10)×(n·10) empirical NTK Θ_full (raw, not traced, not /n); λ_0 and
λ(t) are λ_max(Θ_full)/n, the normalization of the ½-mean loss (derivation in
:mod:`ntk_core._src.stability`). No traced-kernel approximation is used.

The rules (``judge_*``, :func:`classify_run`) are pure NumPy functions of measured arrays;
thresholds are module constants quoted in each criterion.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import time
from collections import Counter
from typing import Any, Callable, Sequence

import jax
import numpy as np

import ntk_core as nc
from cache import ResultStore
from ntk_core._src import linearized as lin
from ntk_core._src import model as _model
from ntk_core._src import stability as stab
from runner import _run
from runner import _theory_store
from runner._admission import ADMISSION
from runner._config import (MAX_CNN_CHANNELS, ConfigError, ExperimentConfig, Limits, Network,
                            activations_per_sample, estimate_memory_mb, num_params, validate_config)
from runner._types import Progress, ProgressFn, Stage
from runner._verdicts import Verdict, _fit, _plain, _t975

DYNAMICS_VERSION = 1

# ------------------------------------------------------------------------------ constants

LEE_RATE = -0.5            # Lee et al. 2019: sup_t ‖f_t − f^lin_t‖ = O(w^-1/2) (an upper bound)
RATE_TOL = 0.15            # a fitted slope up to −0.5 + 0.15 counts as "at least as fast"
ACC_TOL = 0.02             # |val acc − val acc of the linear model| counted as agreement
MIN_WIDTHS = 3             # usable widths needed for a slope
THRESHOLD = 2.0            # η·λ < 2: gradient descent on a linear model is stable
DIVERGED_LOSS_RATIO = 1.0  # final loss above the initial loss (or non-finite) → diverged
COLLAPSE_DEAD = 0.5        # final fraction of dead ReLU units for a collapse …
COLLAPSE_RISE = 0.25       # … which must have risen by at least this since init
EOS_BAND = (1.8, 2.5)      # median η·λ(t) over the last third of steps inside → at the edge
EOS_TAIL = 1.0 / 3.0       # "last third"
MONO_TOL = 1e-4            # relative loss increase still counted as monotone (float32 noise)
OUTCOMES = ("lazy", "catapult", "collapse", "eos", "diverged", "unresolved")
ETA_LAMBDA0 = (0.5, 1.5, 2.5, 3.5, 5.0, 8.0, 16.0)

_LEE = "Lee, Xiao, Schoenholz, Bahri, Novak, Sohl-Dickstein & Pennington 2019, NeurIPS (arXiv:1902.06720)"
_LEWK = "Lewkowycz, Bahri, Dyer, Sohl-Dickstein & Gur-Ari 2020 (arXiv:2003.02218), abstract"
_COHEN = "Cohen, Kaur, Li, Kolter & Talwalkar 2021, ICLR (arXiv:2103.00065), abstract"


@dataclasses.dataclass(frozen=True)
class DynamicsClaim:
    """A published result re-tested on these pages (quote verbatim or marked "in words")."""

    id: str
    title: str
    quote: str
    reference: str
    statistic_definition: str
    theory: str


DYNAMICS_CLAIMS: dict[str, DynamicsClaim] = {c.id: c for c in (
    DynamicsClaim(
        "lin_gap_rate", "The network's outputs approach its linearization's as w^-1/2",
        "“in the infinite width limit, they are governed by a linear model obtained from the "
        "first-order Taylor expansion of the network around its initial parameters”; in "
        "words: for finite width the difference of the outputs is bounded by O(w^-1/2) "
        "uniformly over training (Thm 2.1)",
        _LEE + ", abstract and Thm 2.1",
        "Per seed, learning rate and width: g = max over epochs of ‖f_t − f^lin_t‖_F/√n on the "
        "training set (RMS over samples of the distance between the 10-vectors). Pooled least "
        "squares of ln g on ln w over every (seed, width) → slope and its 95 % Student-t CI.",
        "f − f^lin is second order in θ − θ_0; in NTK parameterization each weight moves by "
        "O(w^-1/2) and the Hessian of f is O(w^-1/2), so the gap is O(w^-1/2) or smaller — the "
        "theorem is an upper bound, so a steeper slope is consistent with it. A larger η·λ_0 "
        "moves the weights further in the first steps and widens the gap; near η·λ_0 = 2 the "
        "linear model itself stops converging."),
    DynamicsClaim(
        "lin_acc_agrees", "The linearization predicts the validation accuracy",
        "in words: wide networks and their linearizations have the same test predictions "
        "throughout training (Lee et al. 2019, Fig. 1 and Sec. 3)",
        _LEE,
        "Per seed, learning rate and width: |acc_val(f_T) − acc_val(f^lin_T)| after the last "
        "epoch T; mean over seeds per width, compared with 2 points of accuracy.",
        "When the gap in outputs is small the argmax rarely differs; narrow networks, or a "
        "large learning rate, can leave the kernel regime and then differ."),
    DynamicsClaim(
        "lazy_below_2", "Below η·λ_0 = 2 training is lazy",
        "“For small learning rates, the network trains in the lazy regime, where the NTK "
        "barely changes during training” (in words, from the paper's phase diagram: "
        "η < 2/λ_0)",
        _LEWK,
        "Outcome (classify_run) of every seed at the grid's rates with η·λ_0 < 2.",
        "Gradient descent on a linear model with kernel Θ_full/n is stable iff η·λ_max < 2; "
        "a wide network trained there stays close to its linearization."),
    DynamicsClaim(
        "catapult_above_2", "Between 2 and the maximal rate: the catapult",
        "“the loss grows at the beginning of training, the curvature decreases, and the "
        "model eventually converges to a flatter minimum”",
        _LEWK,
        "Outcomes at the rates with 2 < η·λ_0 ≤ 4 (the paper's window for its solvable "
        "model): catapult = started unstable (η·λ_0 > 2), stayed finite, and λ(t) fell "
        "until η·λ(T) < 2; the loss spike max_t L_t / L_0 is reported.",
        "In the two-layer linear model of the paper the catapult window is 2 < η·λ_0 < 4; "
        "for ReLU networks the upper end is larger (≈ 12 in their experiments). The spike "
        "can be small when the unstable top mode carries little of the initial residual."),
    DynamicsClaim(
        "beyond_linear", "The network survives rates at which its linearization diverges",
        "“the curvature decreases, and the model eventually converges” — in words: above "
        "η·λ_0 = 2 the linearized model diverges but the network need not, up to a maximal "
        "rate (≈ 4 in the two-layer linear model, larger for ReLU networks)",
        _LEWK,
        "The largest grid value of η·λ_0 at which every seed's network did not diverge, "
        "against the same for the linear model of the same kernel (measured by gradient "
        "descent on f_0 + J_0(θ − θ_0) in parameter space).",
        "A linear model diverges for η·λ_0 > 2 exactly; the network's curvature can fall in "
        "the first steps (catapult) or its units can die (collapse), both of which stop the "
        "growth."),
    DynamicsClaim(
        "linear_threshold", "A linear model of the same kernel diverges exactly above 2",
        "in words: gradient descent on a linear model (constant NTK) with the ½-mean squared "
        "loss is stable iff η·λ_max(Θ_full)/n < 2",
        "ntk_core._src.full_kernel.stable_lr_bound (derivation in its docstring)",
        "Per seed and rate: the linear model's loss after S steps against its initial loss; "
        "diverged = final loss ≥ initial loss or not finite.",
        "The residual's top component is multiplied by 1 − η·λ_0 per step: it grows iff "
        "η·λ_0 > 2. This checks the measured λ_0 against the learning rate at which the "
        "linear model actually diverges."),
    DynamicsClaim(
        "edge_of_stability", "At moderate rates the sharpness rises to ≈ 2/η and hovers",
        "“the leading eigenvalue of the training loss Hessian hovers just above the value "
        "2/(step size), and the training loss behaves non-monotonically over short "
        "timescales, yet consistently decreases over long timescales”",
        _COHEN,
        "Outcome eos: median of η·λ(t) over the last third of the steps in [1.8, 2.5] and "
        "the loss non-monotone there (at least one rise). λ here is the Gauss–Newton part "
        "of the Hessian, Θ_full/n (equal to the Hessian at a zero-residual minimum).",
        "Cohen et al. see progressive sharpening, then hovering, over thousands of steps, "
        "mostly for narrower or standard-parameterization networks; wide NTK-parameterized "
        "networks are closer to lazy and their sharpness tends to fall, so within a short "
        "run the edge need not be reached."),
)}


def _verdict(claim_id: str, verdict: str, condition: str, statistic: dict, criterion: str,
             per_seed: list | None = None) -> Verdict:
    return Verdict(claim_id, verdict, condition, statistic, criterion, per_seed or [])


# ------------------------------------------------------------------------------ rules: linearized


def _loglog(w: np.ndarray, v: np.ndarray) -> dict[str, Any]:
    """Pooled ln v on ln w fit over the usable widths (finite, > 0 for every seed)."""
    keep = np.isfinite(v).all(axis=0) & (v > 0).all(axis=0)
    out: dict[str, Any] = {"slope": None, "slope_ci": [None, None], "intercept": None, "r2": None,
                           "fit_widths": [int(x) for x in w[keep]],
                           "left_out": [int(x) for x in w[~keep]]}
    if keep.sum() < 2:
        return out
    x = np.tile(np.log(w[keep]), v.shape[0])
    y = np.log(v[:, keep]).ravel()
    b, a, r2, se = _fit(x, y)
    half = _t975(x.size - 2) * se
    out.update(slope=b, slope_ci=[b - half, b + half], intercept=a, r2=r2)
    return out


def judge_lin_gap_rate(*, widths: Any, gap: Any, lr: float) -> Verdict:
    """Lee et al.'s O(w^-1/2) bound on sup_t ‖f_t − f^lin_t‖, from (seeds, widths) gaps.

    holds: slope ≤ −0.5 + RATE_TOL and the CI's upper end < 0 (at least as fast as w^-1/2);
    holds_only_when: the CI is below 0 but the slope is shallower (decays, more slowly);
    does_not_hold: slope ≥ 0; inconclusive: < MIN_WIDTHS usable widths or a CI containing 0.
    """
    w = np.asarray(widths, np.float64)
    v = np.asarray(gap, np.float64)
    if v.ndim != 2 or v.shape[1] != w.size:
        raise ValueError("gap must be (seeds, widths)")
    f = _loglog(w, v)
    crit = (f"pooled log–log slope b of the output gap on width with its 95 % CI; holds if b ≤ "
            f"{LEE_RATE + RATE_TOL:g} and CI < 0 (Lee et al.'s O(w^-1/2) is an upper bound); holds "
            f"only when the CI is below 0 but b > {LEE_RATE + RATE_TOL:g}; does not hold if b ≥ 0; "
            f"inconclusive with < {MIN_WIDTHS} usable widths or a CI containing 0")
    stat = {"lr": lr, **f}
    per_seed = [{"seed_index": i, "gap": list(v[i])} for i in range(v.shape[0])]
    if len(f["fit_widths"]) < MIN_WIDTHS:
        return _verdict("lin_gap_rate", "inconclusive", f"only {len(f['fit_widths'])} usable widths",
                        stat, crit, per_seed)
    b, (lo, hi) = f["slope"], f["slope_ci"]
    if b >= 0:
        return _verdict("lin_gap_rate", "does_not_hold",
                        f"the gap does not shrink with width (slope {b:.2f})", stat, crit, per_seed)
    if hi >= 0:
        return _verdict("lin_gap_rate", "inconclusive",
                        f"slope {b:.2f}, but its CI [{lo:.2f}, {hi:.2f}] contains 0", stat, crit, per_seed)
    if b <= LEE_RATE + RATE_TOL:
        return _verdict("lin_gap_rate", "holds", "", stat, crit, per_seed)
    return _verdict("lin_gap_rate", "holds_only_when",
                    f"the gap shrinks, but more slowly than w^-1/2 (slope {b:.2f} [{lo:.2f}, {hi:.2f}]) "
                    f"over widths {f['fit_widths'][0]}–{f['fit_widths'][-1]}", stat, crit, per_seed)


def judge_lin_acc_agrees(*, widths: Any, acc: Any, acc_lin: Any, lr: float) -> Verdict:
    """Agreement of final validation accuracy, (seeds, widths) each.

    holds: |mean difference| ≤ ACC_TOL at every usable width; holds_only_when: at the
    widest widths only (from some width on); does_not_hold: not at the widest width;
    inconclusive: no usable width.
    """
    w = np.asarray(widths)
    a, b = np.asarray(acc, np.float64), np.asarray(acc_lin, np.float64)
    diff = np.abs(a - b)
    ok_w = np.isfinite(diff).all(axis=0)
    mean = diff.mean(axis=0)                        # NaN where any seed is NaN
    agree = ok_w & (mean <= ACC_TOL)
    crit = (f"mean over seeds of |acc_val(f_T) − acc_val(f^lin_T)| ≤ {ACC_TOL:g} counts as agreement; "
            "holds at every width; holds only when it agrees from some width on; does not hold "
            "if it disagrees at the widest usable width")
    stat = {"lr": lr, "widths": [int(x) for x in w], "mean_abs_diff": list(mean),
            "agree": [bool(x) for x in agree]}
    per_seed = [{"seed_index": i, "abs_diff": list(diff[i])} for i in range(diff.shape[0])]
    if not ok_w.any():
        return _verdict("lin_acc_agrees", "inconclusive", "no width with finite accuracies", stat, crit, per_seed)
    usable = np.flatnonzero(ok_w)
    if agree[usable].all():
        return _verdict("lin_acc_agrees", "holds", "", stat, crit, per_seed)
    if not agree[usable[-1]]:
        return _verdict("lin_acc_agrees", "does_not_hold",
                        f"at the widest width {int(w[usable[-1]])} the accuracies differ by "
                        f"{mean[usable[-1]]:.3f}", stat, crit, per_seed)
    first = usable[-1]
    for j in usable[::-1]:
        if not agree[j]:
            break
        first = j
    return _verdict("lin_acc_agrees", "holds_only_when", f"width ≥ {int(w[first])}", stat, crit, per_seed)


# ------------------------------------------------------------------------------ rules: stability


def classify_run(*, eta_lambda0: float, loss: Any, eta_lambda: Any, dead: Any) -> tuple[str, dict[str, Any]]:
    """What one gradient-descent run did, from its per-step data (the page's outcome).

    Args:
      eta_lambda0: η·λ_0. loss: (S+1,) training loss (NaN/inf after a divergence).
      eta_lambda: (S+1,) η·λ(t). dead: (S+1,) fraction of dead ReLU units.

    Rules, in this order (the first that applies):
      * diverged: a non-finite loss, or final loss ≥ DIVERGED_LOSS_RATIO × initial loss;
      * collapse: final dead fraction ≥ COLLAPSE_DEAD and risen by ≥ COLLAPSE_RISE since init
        (units died: λ small because the network lost its units, not a flatter good minimum);
      * eos: median η·λ(t) over the last third of the steps in EOS_BAND and the loss rose
        at least once there (by more than MONO_TOL relative);
      * lazy: η·λ(t) ≤ 2 at every step (never unstable);
      * catapult: η·λ(t) > 2 at some step and η·λ(T) < 2 at the end (the curvature fell
        until the rate became stable);
      * unresolved: still above 2 at the end without diverging (run longer).

    Returns:
      (outcome, statistics) — the statistics name every number the rule used.
    """
    loss = np.asarray(loss, np.float64)
    el = np.asarray(eta_lambda, np.float64)
    dead = np.asarray(dead, np.float64)
    s = loss.size - 1
    tail = max(int(round(s * EOS_TAIL)), 2)
    fin = np.isfinite(loss)
    l0 = float(loss[0])
    last = float(loss[-1]) if fin.all() else float("nan")
    with np.errstate(invalid="ignore", divide="ignore"):
        rises = np.diff(loss) > MONO_TOL * np.abs(loss[:-1])
    tail_el = el[-tail:]
    stats: dict[str, Any] = {
        "eta_lambda0": float(eta_lambda0), "loss0": l0, "loss_final": last,
        "spike": float(np.nanmax(loss[1:]) / l0) if s > 0 and fin[1:].any() else None,
        "max_eta_lambda": float(np.nanmax(el)) if np.isfinite(el).any() else None,
        "final_eta_lambda": float(el[-1]) if np.isfinite(el[-1]) else None,
        "tail_median_eta_lambda": float(np.median(tail_el)) if np.isfinite(tail_el).all() else None,
        "dead0": float(dead[0]), "dead_final": float(dead[-1]) if np.isfinite(dead[-1]) else None,
        "monotone": bool(not rises.any()), "tail_rises": int(rises[-tail:].sum()),
        "steps": s,
    }
    if not fin.all() or not np.isfinite(el).all() or last >= DIVERGED_LOSS_RATIO * l0:
        bad = np.flatnonzero(~fin)
        stats["diverged_at"] = int(bad[0]) if bad.size else None
        return "diverged", stats
    if dead[-1] >= COLLAPSE_DEAD and dead[-1] - dead[0] >= COLLAPSE_RISE:
        return "collapse", stats
    med = stats["tail_median_eta_lambda"]
    if EOS_BAND[0] <= med <= EOS_BAND[1] and stats["tail_rises"] > 0:
        return "eos", stats
    if np.max(el) <= THRESHOLD:
        return "lazy", stats
    if el[-1] < THRESHOLD:
        return "catapult", stats
    return "unresolved", stats


def consensus(outcomes: Sequence[str]) -> str:
    """The seeds' common outcome, or the most frequent one (ties: the later in OUTCOMES)."""
    c = Counter(outcomes)
    best = max(c.values())
    return max((o for o in c if c[o] == best), key=OUTCOMES.index)


def _crit_outcomes() -> str:
    return (f"outcomes by classify_run: diverged (loss not finite or final ≥ initial), collapse "
            f"(≥ {COLLAPSE_DEAD:g} of units dead at the end, risen ≥ {COLLAPSE_RISE:g}), eos (median "
            f"η·λ over the last third in {list(EOS_BAND)} with a loss rise there), lazy (η·λ ≤ 2 "
            f"throughout), catapult (η·λ rose above 2 or started there, and ended below 2), else "
            f"unresolved")


def judge_lazy_below_2(*, eta_lambda0: Any, outcomes: Any) -> Verdict:
    """holds: every seed at every grid rate with η·λ_0 < 2 is lazy; holds_only_when: at
    the smaller of them only; does_not_hold: none lazy; inconclusive: no such rate."""
    g = np.asarray(eta_lambda0, np.float64)
    o = np.asarray(outcomes, dtype=object)          # (seeds, rates)
    idx = np.flatnonzero(g < THRESHOLD)
    stat = {"eta_lambda0": list(g[idx]), "outcomes": [list(o[:, j]) for j in idx]}
    crit = "every seed lazy at every η·λ_0 < 2; " + _crit_outcomes()
    if idx.size == 0:
        return _verdict("lazy_below_2", "inconclusive", "no grid rate below η·λ_0 = 2", stat, crit)
    lazy = np.array([all(x == "lazy" for x in o[:, j]) for j in idx])
    if lazy.all():
        return _verdict("lazy_below_2", "holds", "", stat, crit)
    if not lazy.any():
        return _verdict("lazy_below_2", "does_not_hold",
                        "no rate below 2 was lazy for every seed: " + ", ".join(
                            f"η·λ_0={g[j]:g}: {consensus(list(o[:, j]))}" for j in idx), stat, crit)
    ok = [g[j] for j, l in zip(idx, lazy) if l]
    return _verdict("lazy_below_2", "holds_only_when", "η·λ_0 ∈ {" + ", ".join(f"{x:g}" for x in ok) + "}",
                    stat, crit)


def judge_catapult(*, eta_lambda0: Any, outcomes: Any) -> Verdict:
    """holds: every seed at every rate in (2, 4] is a catapult; holds_only_when: some
    rates in (2, 4] (all seeds) or catapults only above 4; does_not_hold: no catapult at
    all; inconclusive: no rate in (2, 4]."""
    g = np.asarray(eta_lambda0, np.float64)
    o = np.asarray(outcomes, dtype=object)
    win = np.flatnonzero((g > THRESHOLD) & (g <= 4.0))
    cat = np.array([all(x == "catapult" for x in o[:, j]) for j in range(g.size)])
    any_cat = [g[j] for j in range(g.size) if any(x == "catapult" for x in o[:, j])]
    stat = {"window": list(g[win]), "catapult_all_seeds": [float(g[j]) for j in np.flatnonzero(cat)],
            "catapult_any_seed": any_cat,
            "outcomes": {f"{g[j]:g}": list(o[:, j]) for j in range(g.size)}}
    crit = "every seed a catapult at every grid rate with 2 < η·λ_0 ≤ 4; " + _crit_outcomes()
    if win.size == 0:
        return _verdict("catapult_above_2", "inconclusive", "no grid rate in (2, 4]", stat, crit)
    if cat[win].all():
        return _verdict("catapult_above_2", "holds", "", stat, crit)
    if cat.any():
        vals = [f"{g[j]:g}" for j in np.flatnonzero(cat)]
        return _verdict("catapult_above_2", "holds_only_when", "η·λ_0 ∈ {" + ", ".join(vals) + "}",
                        stat, crit)
    if any_cat:
        return _verdict("catapult_above_2", "holds_only_when",
                        "for some seeds only, at η·λ_0 ∈ {" + ", ".join(f"{x:g}" for x in any_cat) + "}",
                        stat, crit)
    return _verdict("catapult_above_2", "does_not_hold",
                    "no run was a catapult: " + ", ".join(
                        f"{g[j]:g}: {consensus(list(o[:, j]))}" for j in win), stat, crit)


def _max_stable(g: np.ndarray, diverged: np.ndarray) -> tuple[float | None, float | None]:
    """Largest grid value below the first one at which any seed diverged, and that first one."""
    bad = np.flatnonzero(diverged.any(axis=0))
    first = float(g[bad[0]]) if bad.size else None
    ok = g[:bad[0]] if bad.size else g
    return (float(ok[-1]) if ok.size else None), first


def judge_beyond_linear(*, eta_lambda0: Any, net_diverged: Any, lin_diverged: Any) -> Verdict:
    """holds: the network trains (no seed diverges) at a grid rate where the linear model
    diverged; does_not_hold: the network diverges wherever the linear model does;
    inconclusive: the linear model never diverged on the grid."""
    g = np.asarray(eta_lambda0, np.float64)
    nd, ld = np.asarray(net_diverged, bool), np.asarray(lin_diverged, bool)
    net_max, net_first = _max_stable(g, nd)
    lin_max, lin_first = _max_stable(g, ld)
    stat = {"net_max_stable": net_max, "net_first_diverged": net_first,
            "linear_max_stable": lin_max, "linear_first_diverged": lin_first}
    crit = ("largest grid η·λ_0 below the first rate at which any seed diverged, network vs its "
            "linear model; holds if the network survives a rate at which the linear model diverged")
    if lin_first is None:
        return _verdict("beyond_linear", "inconclusive", "the linear model did not diverge on the grid",
                        stat, crit)
    lin_bad = ld.any(axis=0)
    survives = [float(g[j]) for j in np.flatnonzero(lin_bad) if not nd[:, j].any()]
    stat["net_survives_at"] = survives
    if survives:
        return _verdict("beyond_linear", "holds", "", stat, crit)
    return _verdict("beyond_linear", "does_not_hold",
                    "the network diverged at every rate at which its linear model did", stat, crit)


def judge_linear_threshold(*, eta_lambda0: Any, lin_diverged: Any) -> Verdict:
    """holds: the linear model diverged for every seed exactly at the grid rates with
    η·λ_0 > 2 (and at none below); does_not_hold otherwise; inconclusive: empty grid."""
    g = np.asarray(eta_lambda0, np.float64)
    ld = np.asarray(lin_diverged, bool)
    want = g > THRESHOLD
    wrong = [float(g[j]) for j in range(g.size) if not (ld[:, j] == want[j]).all()]
    stat = {"eta_lambda0": list(g), "diverged": [list(map(bool, r)) for r in ld], "mismatch": wrong}
    crit = "the linear model of the same kernel diverges (final loss ≥ initial, or not finite) iff η·λ_0 > 2"
    if g.size == 0 or ld.size == 0:
        return _verdict("linear_threshold", "inconclusive", "no runs", stat, crit)
    if not wrong:
        return _verdict("linear_threshold", "holds", "", stat, crit)
    return _verdict("linear_threshold", "does_not_hold",
                    "mismatch at η·λ_0 ∈ {" + ", ".join(f"{x:g}" for x in wrong) + "}", stat, crit)


def judge_edge_of_stability(*, eta_lambda0: Any, outcomes: Any) -> Verdict:
    """holds: some rate is eos for every seed; holds_only_when: eos for some seeds only;
    does_not_hold: no eos anywhere (the condition says what happened instead)."""
    g = np.asarray(eta_lambda0, np.float64)
    o = np.asarray(outcomes, dtype=object)
    all_eos = [float(g[j]) for j in range(g.size) if all(x == "eos" for x in o[:, j])]
    some = [float(g[j]) for j in range(g.size) if any(x == "eos" for x in o[:, j])]
    stat = {"eos_all_seeds": all_eos, "eos_some_seeds": some,
            "outcomes": {f"{g[j]:g}": list(o[:, j]) for j in range(g.size)}}
    crit = "some grid rate is eos for every seed; " + _crit_outcomes()
    if g.size == 0:
        return _verdict("edge_of_stability", "inconclusive", "no runs", stat, crit)
    if all_eos:
        return _verdict("edge_of_stability", "holds", "", stat, crit)
    if some:
        return _verdict("edge_of_stability", "holds_only_when",
                        "for some seeds, at η·λ_0 ∈ {" + ", ".join(f"{x:g}" for x in some) + "}", stat, crit)
    return _verdict("edge_of_stability", "does_not_hold",
                    "no rate hovered at 2/η within the run: " + ", ".join(
                        f"{g[j]:g}: {consensus(list(o[:, j]))}" for j in range(g.size)), stat, crit)


# ------------------------------------------------------------------------------ protocols

WIDTH_GRID = (16, 64, 256, 1024, 4096)     # ×4 steps: a slope over 2+ decades with few runs
CNN_WIDTH_GRID = (2, 8, 32)                 # channels, ×4 steps up to MAX_CNN_CHANNELS


@dataclasses.dataclass(frozen=True)
class DynamicsProtocol:
    """Every setting a page's result is computed from.

    Attributes:
      command: "linearized" or "stability". name: "quick" (page default) or "full".
      base: validated ExperimentConfig (NTK parameterization, full batch, no penalty; its
        width is the largest width used, epochs the number of gradient-descent steps).
      widths: linearized: ×4 grid up to the width cap; stability: (base.width,).
      seeds: network-init and data-split seeds.
      rates: linearized: the learning rates η; stability: the η·λ_0 grid.
    """

    command: str
    name: str
    base: ExperimentConfig
    widths: tuple[int, ...]
    seeds: tuple[int, ...]
    rates: tuple[float, ...]

    def to_json(self) -> dict[str, Any]:
        return {"command": self.command, "name": self.name, "base": self.base.to_dict(),
                "widths": list(self.widths), "seeds": list(self.seeds), "rates": list(self.rates)}

    @property
    def key(self) -> str:
        text = json.dumps({**self.to_json(), "v": DYNAMICS_VERSION}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


PROTOCOLS = ("quick", "full")


def memory_mb(p: DynamicsProtocol) -> float:
    """Peak working memory (MB) of the protocol's largest run (float32 throughout): data,
    Gram matrices (n², n_v·n), and per run in flight the parameters, gradients and
    activations, plus the per-step outputs kept (linearized: both models' outputs on the
    training and validation inputs every epoch)."""
    c, w = p.base, max(p.widths)
    n, nv, e = c.n_train, c.n_val, c.epochs
    n_params = num_params(c.arch, w, c.depth)
    runs = len(p.rates)
    per_run = (4 * n_params + 6 * (n + nv) * activations_per_sample(c.arch, w, c.depth)) * 4
    outputs = 4 * (e + 1) * (n + nv) * 10 * 4 if p.command == "linearized" else 6 * (e + 1) * 4
    data = 2 * (n + nv) * 784 * 4 + (n * n + nv * n) * 4
    # another network's full (n·10)² kernel is formed densely (float32 → float64, its
    # eigenvectors and the validation cross kernel), plus ntk_core's 2²⁴-float workspace
    dense = 0 if c.closed_form else (n * 10) ** 2 * 8 * 3 + (n * 10) * (nv * 10) * 8 + 2**24 * 4
    return (data + dense + runs * (per_run + outputs)) / 2**20


def _check(p: DynamicsProtocol, limits: Limits) -> DynamicsProtocol:
    need = memory_mb(p)
    if need > limits.max_memory_mb:
        raise ConfigError("max_memory_mb", limits.max_memory_mb,
                          f"at least {math.ceil(need)} MB (NTK_MAX_MEMORY_MB) for the {p.name} "
                          f"{p.command} protocol", math.ceil(need))
    return p


def _widths(limits: Limits, top: int, common: dict | None = None, arch: str = "mlp") -> tuple[int, ...]:
    """The ×4 grid up to ``top`` and the width cap, without widths whose run would not fit
    the memory budget (``estimate_memory_mb`` of the runner, conservative here)."""
    def fits(w: int) -> bool:
        if common is None:
            return True
        cfg = ExperimentConfig(**{**common, "width": w})
        return estimate_memory_mb(cfg, limits) <= limits.max_memory_mb

    grid = CNN_WIDTH_GRID if arch == "cnn" else WIDTH_GRID
    if arch == "cnn":
        top = min(top, MAX_CNN_CHANNELS)
    ws = tuple(w for w in grid if w <= min(top, limits.max_width) and fits(w))
    if len(ws) < MIN_WIDTHS:
        raise ConfigError("width", limits.max_width, f"a width cap of at least {WIDTH_GRID[MIN_WIDTHS - 1]} "
                          f"(this page fits a slope over ≥ {MIN_WIDTHS} widths of {list(WIDTH_GRID)}) "
                          f"within {limits.max_memory_mb} MB", WIDTH_GRID[MIN_WIDTHS - 1])
    return ws


def _tiny() -> bool:
    """``NTK_THEORY_QUICK=tiny`` (tests only, shared with the other theory pages) shrinks
    the quick protocols to a few seconds; the protocol's name and key say so."""
    return os.environ.get("NTK_THEORY_QUICK", "").strip().lower() == "tiny"


def linearized_protocol(name: str, limits: Limits, network: Network = Network()) -> DynamicsProtocol:
    """Linearized: NTK parameterization, full-batch gradient descent, η ∈ {1, 4} (at init
    η·λ_0 ≈ 0.25–0.4 and ≈ 1–1.6 here: λ_0 ≈ 0.25 in NTK parameterization, larger at width 16);
    ``quick`` = n 128, 128 validation images, 30 epochs, widths 16…1024 (×4), seeds 0, 1;
    ``full`` = n 256, 256 validation, 60 epochs, widths 16…4096 (within the cap), seeds 0–2.
    ``network``: any (default the study's MLP); the CNN's widths are channels 2, 8, 32."""
    if name == "quick" and _tiny():
        name, common, top, seeds = "quick-tiny", dict(n_train=32, n_val=32, epochs=5), 256, (0, 1)
    elif name == "quick":
        common, top, seeds = dict(n_train=128, n_val=128, epochs=30), 1024, (0, 1)
    elif name == "full":
        common, top, seeds = dict(n_train=256, n_val=256, epochs=60), 4096, (0, 1, 2)
    else:
        raise ValueError(f"protocol={name!r}: expected one of {PROTOCOLS}")
    common.update(batch_size=0, optimizer="sgd", reg="none", top_k=1, seed=0,
                  parameterization="ntk", lr=1.0, **network._asdict())
    widths = _widths(limits, top, common, network.arch)
    base = validate_config(dict(common, width=widths[-1]), limits)
    return _check(DynamicsProtocol("linearized", name, base, widths, seeds, (1.0, 4.0)), limits)


def stability_protocol(name: str, limits: Limits, network: Network = Network()) -> DynamicsProtocol:
    """Stability: NTK parameterization, full-batch gradient descent at η = c/λ_0 for c in
    ETA_LAMBDA0 (λ_0 measured per seed); ``quick`` = n 128, width 256, 100 steps, seeds
    0–2; ``full`` = n 256, width 512, 300 steps, seeds 0–2 (width and steps within the caps).
    ``network``: any (default the study's MLP); the CNN runs 16 (quick) or 32 (full) channels."""
    seeds = (0, 1, 2)
    if name == "quick" and _tiny():
        name, common, width, seeds = "quick-tiny", dict(n_train=32, n_val=16, epochs=20), 64, (0, 1)
    elif name == "quick":
        common, width = dict(n_train=128, n_val=16, epochs=100), 256
    elif name == "full":
        common, width = dict(n_train=256, n_val=16, epochs=min(300, limits.max_epochs)), 512
    else:
        raise ValueError(f"protocol={name!r}: expected one of {PROTOCOLS}")
    if network.arch == "cnn":
        width = min(width // 16, MAX_CNN_CHANNELS)
    width = min(width, limits.max_width)
    base = validate_config(dict(common, width=width, batch_size=0, optimizer="sgd", reg="none",
                                top_k=1, seed=0, parameterization="ntk", lr=1.0, **network._asdict()), limits)
    return _check(DynamicsProtocol("stability", name, base, (width,), seeds, ETA_LAMBDA0), limits)


# ------------------------------------------------------------------------------ results


@dataclasses.dataclass(frozen=True)
class DynamicsResult:
    """A page's whole result.

    Attributes:
      data: the measurements, JSON types (NaN → None); keys in :func:`linearized` and
        :func:`stability`. verdicts: the live verdicts (:class:`runner.Verdict`).
      status: "hit", "computed" or "uncached". seconds: this call; compute_seconds: the
        computation's own time.
    """

    protocol: DynamicsProtocol
    data: dict[str, Any]
    verdicts: list[Verdict]
    status: str
    seconds: float
    compute_seconds: float

    def to_json(self) -> dict[str, Any]:
        """ONE JSON object: the data's keys, plus verdicts (each with its parameterization,
        always "ntk" here, and its learning rate where it judges one η), protocol, status
        and timings."""
        vs = []
        for v in self.verdicts:
            j = v.to_json()
            c = DYNAMICS_CLAIMS[j["claim_id"]]
            vs.append({"id": j["claim_id"], "title": c.title, "claim": c.quote, "reference": c.reference,
                       "parameterization": "ntk", "lr": j["statistic"].get("lr"),
                       **{k: j[k] for k in ("verdict", "condition", "statistic", "criterion", "per_seed")}})
        return {**self.data, "verdicts": vs, "protocol": self.protocol.name,
                "protocol_settings": self.protocol.to_json(), "config_hash": self.protocol.key,
                "status": self.status, "seconds": round(self.seconds, 3),
                "compute_seconds": round(self.compute_seconds, 3)}


def _key(p: DynamicsProtocol) -> dict[str, Any]:
    return {"command": p.command, "protocol": p.key, "dynamics_version": DYNAMICS_VERSION}


def _from_value(p: DynamicsProtocol, v: dict[str, Any], status: str, seconds: float) -> DynamicsResult:
    obj = json.loads(str(v["json"]))
    return DynamicsResult(p, obj["data"], [Verdict(**d) for d in obj["verdicts"]], status, seconds,
                          float(v["seconds"]))


def cached_dynamics(p: DynamicsProtocol, store: ResultStore | None) -> DynamicsResult | None:
    """The stored result of ``p`` (either command), or None."""
    return _theory_store.cached(store, _key(p), functools.partial(_from_value, p))


def _cached_or_compute(p: DynamicsProtocol, limits: Limits, store: ResultStore | None,
                       progress: ProgressFn | None,
                       compute: Callable[[], tuple[dict, list[Verdict]]]) -> DynamicsResult:
    t0 = time.monotonic()

    def work() -> dict[str, Any]:
        ADMISSION.configure(limits.max_concurrent, limits.max_memory_mb)
        on_wait = (lambda pos, total: progress(Progress(Stage.QUEUED, pos, total))) if progress else None
        with ADMISSION.admit(memory_mb(p), on_wait):
            data, verdicts = compute()
        text = json.dumps({"data": _plain(data, json=True), "verdicts": [v.to_json() for v in verdicts]},
                          allow_nan=False)
        return {"json": text, "seconds": float(time.monotonic() - t0)}

    return _theory_store.cached_or_compute(store, _key(p), work, functools.partial(_from_value, p))


def _split(c: ExperimentConfig, seed: int) -> nc.Split:
    split = nc.load_split(c.n_train, c.n_val, seed, c.dataset)
    if split.source != c.dataset:
        raise RuntimeError(f"dataset {c.dataset!r} requested but {split.source!r} loaded: {split.notice}")
    return split


def _arch(c: ExperimentConfig, width: int) -> nc.Architecture | None:
    """None for the one-hidden MLP (the closed-form paths), else the network's handle."""
    return None if c.closed_form else nc.Architecture(c.arch, width, c.depth, "ntk")


def _init(c: ExperimentConfig, width: int, seed: int) -> dict:
    arch = _arch(c, width)
    if arch is None:
        return _model.init_params(jax.random.PRNGKey(seed), width, "ntk")
    return arch.init(jax.random.PRNGKey(seed))


def _lambda0(params: dict, x: np.ndarray, arch: nc.Architecture | None = None):
    """λ_max(Θ_full)/n by ARPACK (and its eigenvector, for the power iteration): on the
    closed-form product, or for another network on its dense full kernel."""
    if arch is None:
        er = nc.full_ntk_lambda_max(params, x, parameterization="ntk", return_vectors=True)
    else:
        er = nc.top_k_eigs(lin.full_kernel_dense(params, x, arch=arch), 1, return_vectors=True,
                           return_result=True, symmetric=True)
    return float(er.values[0]) / x.shape[0], er


def _mean_sd(v: np.ndarray) -> tuple[list, list]:
    sd = v.std(axis=0, ddof=1) if v.shape[0] > 1 else np.zeros(v.shape[1:])
    return v.mean(axis=0).tolist(), sd.tolist()


# ------------------------------------------------------------------------------ linearized

CONVENTIONS = ("NTK parameterization; full-batch gradient descent on L = ½·mean_i ‖f(x_i) − y_i‖² "
               "(summed over the 10 outputs, no penalty), one step per epoch. The linear model "
               "f_0 + J_0(θ − θ_0) is evaluated exactly from the FULL (n·10)×(n·10) kernel at "
               "init (raw Θ, not traced, not /n): r_t = (I − (η/n)Θ)^t r_0 applied step by step with the "
               "matrix-free closed-form product (exact for gradient descent; float32, equal to the "
               "eigendecomposition and to dense matrix powers to ~1e-6 in the tests), and on "
               "validation inputs through Θ(X_val, X)·Σ_{s<t} r_s. "
               "λ_0 = λ_max(Θ_full)/n (the ½-mean loss's normalization). Losses are ½·mean "
               "squared error; accuracy is the argmax.")


GENERIC_NOTE = (" This network has no closed form: its full kernel at init is formed densely in "
                "float32 (a deeper MLP layer-wise from the backprop signals of the 10 logits, the CNN "
                "from jax.vjp/jvp) and eigendecomposed in float64 (the linear model: method 'eigh'); "
                "the per-step products Θ_full·v of the stability runs are J(Jᵀv) by jax.vjp/jvp; dead "
                "units are counted over every ReLU layer (the CNN's per channel).")


def linearized(p: DynamicsProtocol, limits: Limits, *, store: ResultStore | None = None,
               progress: ProgressFn | None = None) -> DynamicsResult:
    """Does the network train like its linearization? For each learning rate, width and
    seed: the real network trained by full-batch gradient descent beside its linear model
    around θ_0 (:mod:`ntk_core._src.linearized`, exact from the full kernel).

    Returns:
      :class:`DynamicsResult`; ``to_json()`` keys: ``widths``, ``seeds``, ``lrs``,
      ``epochs``, ``gap`` (seed × width: max over epochs of |L_train(f_t) − L_train(f^lin_t)|
      at the first (smaller) η), ``slope``, ``slope_ci`` (its pooled log–log fit, 95 %),
      ``output_gap`` (seed × width: max_t ‖f_t − f^lin_t‖_F/√n, train), ``output_slope``,
      ``output_slope_ci``, ``by_lr`` (the same per η: ``lr``, ``eta_lambda0`` (seed × width),
      ``gap``, ``slope``, ``slope_ci``, ``fit``, ``output_gap``, ``output_fit``,
      ``val_output_gap``, ``acc``/``acc_lin`` (final validation accuracy, seed × width),
      ``diverged``), ``curves`` (one record per (η, width, seed): ``lr``, ``width``,
      ``seed``, ``train_loss``, ``train_loss_lin``, ``val_loss``, ``val_loss_lin``,
      ``train_acc``, ``train_acc_lin``, ``val_acc``, ``val_acc_lin``, ``output_gap``, each
      over epochs 0..E), ``method``, ``conventions``, ``verdicts``.
    """
    if p.command != "linearized":
        raise ValueError(f"a {p.command!r} protocol was passed to linearized")

    def compute() -> tuple[dict, list[Verdict]]:
        c = p.base
        e = c.epochs
        widths, seeds, lrs = list(p.widths), list(p.seeds), list(p.rates)
        S, W, R = len(seeds), len(widths), len(lrs)
        gap = np.full((R, S, W), np.nan)
        ogap, vgap = np.full((R, S, W), np.nan), np.full((R, S, W), np.nan)
        acc, acc_l = np.full((R, S, W), np.nan), np.full((R, S, W), np.nan)
        el0, div = np.full((R, S, W), np.nan), np.zeros((R, S, W), bool)
        curves: list[dict] = []
        methods = set()
        total, done = R * S * W, 0
        for i, s in enumerate(seeds):
            split = _split(c, s)
            for j, w in enumerate(widths):
                params, arch = _init(c, w, s), _arch(c, w)
                if progress:
                    progress(Progress(Stage.TRAINING, done, total))
                trs = lin.gd_trajectories(params, split.x_train, split.y_train, split.x_val, lrs=lrs,
                                          epochs=e, parameterization="ntk", arch=arch)
                lam0 = _lambda0(params, split.x_train, arch)[0]
                # another network: its full kernel formed once for both rates ("eigh")
                kern = None if arch is None else lin.linear_kernel(params, split.x_train, split.x_val,
                                                                   arch=arch)
                for r, lr in enumerate(lrs):
                    tr = trs[r]
                    lo = lin.linearized_outputs(params, split.x_train, split.y_train, split.x_val,
                                                lr=lr, epochs=e, parameterization="ntk",
                                                method="krylov", arch=arch, kernel=kern)
                    methods.add(lo.method)
                    tl, ta = lin.loss_acc(tr.f_train, split.y_train)
                    tll, tal = lin.loss_acc(lo.f_train, split.y_train)
                    vl, va = lin.loss_acc(tr.f_val, split.y_val)
                    vll, val_ = lin.loss_acc(lo.f_val, split.y_val)
                    og = lin.output_gap(tr.f_train, lo.f_train)
                    el0[r, i, j] = lr * lam0
                    div[r, i, j] = tr.diverged_at >= 0
                    with np.errstate(invalid="ignore"):
                        gap[r, i, j] = np.max(np.abs(tl - tll))
                        ogap[r, i, j] = np.max(og)
                        vgap[r, i, j] = np.max(lin.output_gap(tr.f_val, lo.f_val))
                    acc[r, i, j], acc_l[r, i, j] = va[-1], val_[-1]
                    curves.append({"lr": lr, "width": w, "seed": s, "train_loss": tl, "train_loss_lin": tll,
                                   "val_loss": vl, "val_loss_lin": vll, "train_acc": ta, "train_acc_lin": tal,
                                   "val_acc": va, "val_acc_lin": val_, "output_gap": og})
                    done += 1
        if progress:
            progress(Progress(Stage.DONE, total, total))
        w_arr = np.asarray(widths, np.float64)
        by_lr, verdicts = [], []
        for r, lr in enumerate(lrs):
            f_loss, f_out = _loglog(w_arr, gap[r]), _loglog(w_arr, ogap[r])
            by_lr.append({"lr": lr, "eta_lambda0": el0[r], "gap": gap[r], "slope": f_loss["slope"],
                          "slope_ci": f_loss["slope_ci"], "fit": f_loss, "output_gap": ogap[r],
                          "output_fit": f_out, "val_output_gap": vgap[r], "acc": acc[r], "acc_lin": acc_l[r],
                          "diverged": div[r], "gap_mean": _mean_sd(gap[r])[0],
                          "output_gap_mean": _mean_sd(ogap[r])[0]})
            verdicts.append(judge_lin_gap_rate(widths=widths, gap=ogap[r], lr=lr))
            verdicts.append(judge_lin_acc_agrees(widths=widths, acc=acc[r], acc_lin=acc_l[r], lr=lr))
        first = by_lr[0]
        data = {"command": "linearized", "parameterization": "ntk", "widths": widths, "seeds": seeds,
                "lrs": lrs, "epochs": e, "n_train": c.n_train, "n_val": c.n_val,
                "gap": first["gap"], "slope": first["slope"], "slope_ci": first["slope_ci"],
                "output_gap": first["output_gap"], "output_slope": first["output_fit"]["slope"],
                "output_slope_ci": first["output_fit"]["slope_ci"], "by_lr": by_lr, "curves": curves,
                "method": sorted(methods), "network": c.network.label,
                "conventions": CONVENTIONS + ("" if c.closed_form else GENERIC_NOTE)}
        return data, verdicts

    return _cached_or_compute(p, limits, store, progress, compute)


# ------------------------------------------------------------------------------ stability

STABILITY_CONVENTIONS = (
    "NTK parameterization; full-batch gradient descent on L = ½·mean_i ‖f(x_i) − y_i‖² (summed over the "
    "10 outputs, no penalty). λ(t) = λ_max(Θ_full(θ_t))/n: the FULL (n·10)×(n·10) NTK (raw, not traced) "
    "divided by n, the Gauss–Newton part of the loss's Hessian; gradient descent on a linear model is "
    "stable iff η·λ < 2. λ_0 by ARPACK at init; λ(t) by warm-started power iteration every step "
    "(its relative residual is reported, and the last step is checked against ARPACK). The rate grid "
    "is placed relative to each seed's own λ_0: η = (η·λ_0)/λ_0.")


def stability(p: DynamicsProtocol, limits: Limits, *, store: ResultStore | None = None,
              progress: ProgressFn | None = None) -> DynamicsResult:
    """Edge of stability and the catapult: gradient descent at η = c/λ_0 for each c of the
    η·λ_0 grid, every seed, with loss and λ(t) every step, classified by :func:`classify_run`;
    and the linear model of the same kernel at the same rates.

    Returns:
      :class:`DynamicsResult`; ``to_json()`` keys: ``eta_lambda0`` (grid), ``seeds``,
      ``width``, ``steps``, ``lambda0`` (per seed, λ_max(Θ_full)/n), ``lr`` (seed × rate),
      ``lambda_max_per_step`` (seed × rate × step 0..S: λ(t)), ``eta_lambda_per_step``
      (η·λ(t)), ``loss_per_step``, ``acc_per_step``, ``dead_per_step`` (fraction of dead
      ReLU units), ``power_residual_max`` (seed × rate), ``arpack_check`` (seed × rate:
      relative difference of the last step's λ to ARPACK's), ``linear_loss_per_step`` (seed ×
      rate × step: the linear model f_0 + J_0(θ − θ_0) trained the same way, evaluated in
      function space with the full kernel at init),
      ``linear_diverged``, ``outcome`` (per rate: the seeds' consensus), ``outcome_per_seed``
      (seed × rate), ``outcome_stats`` (seed × rate: the numbers classify_run used),
      ``conventions``, ``verdicts``.
    """
    if p.command != "stability":
        raise ValueError(f"a {p.command!r} protocol was passed to stability")

    def compute() -> tuple[dict, list[Verdict]]:
        c = p.base
        steps, width = c.epochs, p.widths[0]
        grid = np.asarray(p.rates, np.float64)
        seeds = list(p.seeds)
        S, R = len(seeds), grid.size
        lam0s, lrs = np.zeros(S), np.zeros((S, R))
        lam, loss, acc, dead = (np.zeros((S, R, steps + 1)) for _ in range(4))
        res_max, check = np.zeros((S, R)), np.full((S, R), np.nan)
        lin_loss = np.zeros((S, R, steps + 1))
        total = 2 * S
        for i, s in enumerate(seeds):
            if progress:
                progress(Progress(Stage.TRAINING, 2 * i, total))
            split = _split(c, s)
            params, arch = _init(c, width, s), _arch(c, width)
            lam0, er = _lambda0(params, split.x_train, arch)
            lam0s[i] = lam0
            lrs[i] = grid / lam0
            runs = stab.sharpness_runs(params, split.x_train, split.y_train, lrs[i], steps=steps,
                                       parameterization="ntk", v0=er.vectors[:, 0], arch=arch)
            lam[i], loss[i], acc[i], dead[i] = runs.lam, runs.loss, runs.acc, runs.dead
            res_max[i] = np.nanmax(runs.lam_residual, axis=1)
            if progress:
                progress(Progress(Stage.TRAINING, 2 * i + 1, total))
            lin_loss[i] = stab.kernel_linear_losses(params, split.x_train, split.y_train, lrs[i],
                                                    steps=steps, parameterization="ntk", arch=arch)
            # the last step's λ against ARPACK (the power iteration's accuracy, measured)
            for r in range(R):
                if runs.diverged_at[r] < 0:
                    pr = {k: v[r] for k, v in runs.final_params.items()}
                    ref = _lambda0(pr, split.x_train, arch)[0]
                    check[i, r] = abs(runs.lam[r, -1] - ref) / ref
        if progress:
            progress(Progress(Stage.DONE, total, total))
        el = lam * lrs[:, :, None]
        outcomes = np.empty((S, R), dtype=object)
        stats = [[None] * R for _ in range(S)]
        for i in range(S):
            for r in range(R):
                outcomes[i, r], stats[i][r] = classify_run(eta_lambda0=grid[r], loss=loss[i, r],
                                                           eta_lambda=el[i, r], dead=dead[i, r])
        with np.errstate(invalid="ignore"):
            lin_div = ~np.isfinite(lin_loss).all(axis=2) | ~(lin_loss[:, :, -1] < lin_loss[:, :, 0])
        net_div = outcomes == "diverged"
        verdicts = [judge_lazy_below_2(eta_lambda0=grid, outcomes=outcomes),
                    judge_catapult(eta_lambda0=grid, outcomes=outcomes),
                    judge_edge_of_stability(eta_lambda0=grid, outcomes=outcomes),
                    judge_beyond_linear(eta_lambda0=grid, net_diverged=net_div, lin_diverged=lin_div),
                    judge_linear_threshold(eta_lambda0=grid, lin_diverged=lin_div)]
        data = {"command": "stability", "parameterization": "ntk", "eta_lambda0": list(grid),
                "seeds": seeds, "width": width, "steps": steps, "n_train": c.n_train,
                "lambda0": lam0s, "lr": lrs, "lambda_max_per_step": lam, "eta_lambda_per_step": el,
                "loss_per_step": loss, "acc_per_step": acc, "dead_per_step": dead,
                "power_residual_max": res_max, "arpack_check": check,
                "linear_loss_per_step": np.where(np.isfinite(lin_loss), lin_loss, np.nan),
                "linear_diverged": lin_div,
                "outcome": [consensus(list(outcomes[:, r])) for r in range(R)],
                "outcome_per_seed": outcomes.tolist(), "outcome_stats": stats,
                "network": c.network.label,
                "conventions": STABILITY_CONVENTIONS + ("" if c.closed_form else GENERIC_NOTE)}
        return data, verdicts

    return _cached_or_compute(p, limits, store, progress, compute)



# ------------------------------------------------------------------------------ CLI


def _protocol_for(args: Any, limits: Limits) -> DynamicsProtocol:
    from runner.cli import network_of

    name = "quick" if getattr(args, "quick", False) else "full"
    factory = linearized_protocol if args.command == "linearized" else stability_protocol
    return factory(name, limits, network_of(args, limits))


def plan_configs(args: Any, limits: Limits) -> list[ExperimentConfig]:
    """The CLI plan's configs: validates the protocol against the limits before any work
    (a cap too small exits 2 with the parameter named)."""
    return [_protocol_for(args, limits).base]


def _fmt(x: Any) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def dynamics_table(res: DynamicsResult) -> str:
    """A short human summary: the headline numbers and one line per verdict."""
    d = res.data
    lines = [f"NTK Explorer {d['command']} — {res.protocol.name} protocol ({res.status}, {res.seconds:.1f} s), "
             f"config hash {res.protocol.key}"]
    if d["command"] == "linearized":
        lines.append(f"widths {d['widths']}, seeds {d['seeds']}, η {d['lrs']}, {d['epochs']} epochs")
        for b in d["by_lr"]:
            lines.append(f"η={b['lr']:g}: max_t |L − L_lin| (mean over seeds) "
                         + " ".join(_fmt(x) for x in b["gap_mean"])
                         + f"; slope {_fmt(b['slope'])}; output-gap slope {_fmt(b['output_fit']['slope'])}")
    else:
        lines.append(f"width {d['width']}, {d['steps']} steps, seeds {d['seeds']}, λ0 = "
                     + ", ".join(_fmt(x) for x in d["lambda0"]))
        for c, o, row in zip(d["eta_lambda0"], d["outcome"], zip(*d["outcome_per_seed"])):
            lines.append(f"η·λ0 = {c:<5g} {o:10s} (per seed: {', '.join(row)})")
    lines.append("")
    for v in res.verdicts:
        lines.append(f"{v.claim_id:20s} {v.verdict}" + (f" — {v.condition}" if v.condition else ""))
    lines.append("")
    lines.append(d["conventions"])
    return "\n".join(lines) + "\n"


def _cmd(fn: Callable[..., DynamicsResult]) -> Callable[[Any], int]:
    from runner import cli  # imports this module only inside its parser builder

    return cli.theory_command(fn, _protocol_for, dynamics_table)


COMMANDS = ("linearized", "stability")


def add_commands(subparsers: Any, common: Callable[..., None]) -> None:
    """Registers ``linearized`` and ``stability`` on the CLI's subparsers (like
    :func:`runner._theory_motion.add_commands`): each sets ``handler`` and ``plan_configs``."""
    specs = (
        ("linearized", _cmd(linearized),
         "does the network train like its linearization? gap vs width (Lee et al. 2019)",
         "Full-batch gradient descent of the network beside its linear model around θ_0 (exact, "
         "from the full kernel) for several widths and two learning rates; the largest gap over "
         "training against width with a fitted log–log slope, and live verdicts."),
        ("stability", _cmd(stability),
         "catapult and edge of stability: η·λ_0 grid, loss and λ_max per step, outcomes",
         "Full-batch gradient descent at η·λ_0 ∈ {0.5, 1.5, 2.5, 3.5, 5, 8, 16} (λ_0 = λ_max(Θ_full)/n "
         "at init, per seed) with loss and sharpness every step, each run classified as lazy / "
         "catapult / collapse / eos / diverged (or unresolved), the linear model of the same kernel, "
         "and live verdicts."),
    )
    for name, handler, help_, desc in specs:
        sp = subparsers.add_parser(name, allow_abbrev=False, help=help_, description=desc,
                                   epilog="Kernels are the FULL (n·10)×(n·10) NTK (raw); λ is its "
                                          "λ_max divided by n (the ½-mean loss's normalization).")
        g = sp.add_mutually_exclusive_group()
        g.add_argument("--quick", action="store_true",
                       help="the page's default protocol (seconds to a minute on 2 cores); the JSON says so")
        g.add_argument("--full", action="store_true", help="the larger protocol [default]")
        sp.add_argument("--json", action="store_true", help="print one JSON object to stdout")
        from runner.cli import add_network_flags

        add_network_flags(sp)
        common(sp, top=False)
        sp.set_defaults(handler=handler, plan_configs=plan_configs)
