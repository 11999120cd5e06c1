"""Theory pages "Kernel motion" (lazy or rich?) and "Infinite width" (the limit and how fast
we approach it): protocols, runner functions with cached results, the pure decision rules
behind their live verdicts, and their CLI commands.

Both runner functions train through :func:`runner.run_configs` (validated configs, the
shared results cache: every training is shared with the app and the CLI), then measure
on the stored checkpoints with :mod:`ntk_core._src.kernel_motion` (NumPy float64), judge
with the rules below and store the whole result as one entry, so a page that finds it
loads at once::

    import runner
    from runner import _theory_motion as tm
    limits = runner.Limits.from_env()
    res = tm.kernel_motion(tm.motion_protocol("quick", limits), limits, store=runner.open_store())
    print(res.to_json()["slope"], [v.verdict.verdict for v in res.verdicts])

Conventions: raw traced kernel Θ = mean over the 10 logits of ∇θf_k(x_i)·∇θf_k(x_j), NOT
divided by n (every statistic here is scale-free, so Θ/n would give the same numbers);
parameters are float32, kernels are formed from them in float64; the parameterization is
named on every number.

The rules (``judge_*``) are pure NumPy functions of measured arrays, each returning a
:class:`runner.Verdict` (holds, holds_only_when, does_not_hold, inconclusive) with its
statistic and the criterion it applied; thresholds are module constants quoted in each
criterion. A width whose value is non-finite or (for power laws) non-positive for any
seed — a diverged run — is left out of the fit and named in the statistic; fewer than
``MIN_WIDTHS`` usable widths → inconclusive.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import time
from typing import Any, Callable, Iterator, Sequence

import numpy as np

import ntk_core as nc
from cache import ResultStore
from ntk_core._src import kernel_motion as km
from ntk_core._src.archs import mlp_depth
from runner import _run
from runner import _theory_store
from runner._config import MAX_CNN_CHANNELS, ConfigError, ExperimentConfig, Limits, Network, validate_config
from runner._types import Progress, ProgressFn, Stage
from runner._verdicts import (SPEARMAN_MIN, Verdict, _change, _fit, _need, _per_seed, _plain,
                              _spearman, _t975)

THEORY_VERSION = 1

# ------------------------------------------------------------------------------ constants

TARGET_LEE = -0.5          # Lee et al. 2019: ‖Θ_t − Θ_0‖_F = O(w^-1/2)
TARGET_DYER = -1.0         # Dyer & Gur-Ari 2020: the kernel's change is O(w^-1)
RATE_TARGET = -0.5         # fluctuations of a sum over w independent units: O(w^-1/2)
RATE_BAND = (-0.65, -0.35) # slope band accepted as "≈ −1/2" when the CI misses −0.5
FAST_SLOW_RATIO = 3.0      # early / late kernel velocity for "fast, then slow"
EARLY_FRACTION = 0.2       # "early" = the first 20 % of epochs (at least one)
ALIGN_TOL = 0.005          # smallest alignment change that counts (alignment is in [−1, 1])
ACC_TOL = 0.02             # accuracy gap counted as "no gap" (2 points of accuracy)
MIN_WIDTHS = 3             # usable widths needed for a slope or a trend
CI_LEVEL = 0.95


# ------------------------------------------------------------------------------ claims


@dataclasses.dataclass(frozen=True)
class TheoryClaim:
    """A published result re-tested on a page.

    Attributes:
      quote: the paper's words (verbatim, or marked "in words:" when paraphrased).
      reference: author(s), year, venue / arXiv id.
      statistic_definition: what the rule computes. theory: what to expect and why.
    """

    id: str
    title: str
    quote: str
    reference: str
    statistic_definition: str
    theory: str


_LEE = "Lee, Xiao, Schoenholz, Bahri, Novak, Sohl-Dickstein & Pennington 2019, NeurIPS (arXiv:1902.06720)"
_DYER = "Dyer & Gur-Ari 2020, ICLR (arXiv:1909.11304)"
_FORT = ("Fort, Dziugaite, Paul, Kharaghani, Roy & Ganguli 2020, NeurIPS (arXiv:2010.15110), "
         "abstract")
_BARATIN = ("Baratin, George, Laurent, Hjelm, Lajoie, Vincent & Lacoste-Julien 2021, AISTATS "
            "(arXiv:2008.00938), abstract; centered alignment: Cortes, Mohri & Rostamizadeh 2012, "
            "JMLR 13")
_JACOT = "Jacot, Gabriel & Hongler 2018, NeurIPS (arXiv:1806.07572), abstract"

THEORY_CLAIMS: dict[str, TheoryClaim] = {c.id: c for c in (
    TheoryClaim(
        "kernel_change_exponent", "How fast the kernel's motion vanishes with width",
        "in words: under gradient descent with a width-independent learning rate (NTK "
        "parameterization) the empirical kernel moves by sup_t ‖Θ_t − Θ_0‖_F = O(w^-1/2) "
        "(Lee et al. 2019, Thm 2.1 with App. G); Dyer & Gur-Ari 2020 argue that the "
        "change is O(w^-1), i.e. that bound is not tight.",
        _LEE + "; " + _DYER,
        "Per seed and width: r = ‖Θ_T − Θ_0‖_F/‖Θ_0‖_F after the last epoch T (exact, "
        "float64, from the stored checkpoints). Pooled least squares of ln r on ln w over "
        "every (seed, width) → slope and its 95 % Student-t confidence interval, over all "
        "widths and over the widest half (≥ 3 widths), which decides: both exponents "
        "describe w → ∞.",
        "In NTK parameterization each weight moves by O(w^-1/2) while f changes by O(1); "
        "first-order changes of Θ are sums over w units with random signs (the signs of "
        "the output weights), so their mean cancels to O(1/w) — Dyer & Gur-Ari's argument, "
        "made for smooth activations — while Lee et al. bound the worst case by O(w^-1/2). "
        "ReLU's kink is outside the smooth argument: a unit whose pre-activation crosses 0 "
        "switches its mask, a non-smooth change. So a measured exponent between −1 and −1/2 "
        "is possible at finite width. In standard parameterization with a width-independent "
        "learning rate there is no such limit: Θ's output-layer term H Hᵀ grows ∝ w, so the "
        "same learning rate is a step ∝ w larger in function space (η·λ_max(Θ₀/n) grows "
        "with width until training diverges); the lazy regime of standard parameterization "
        "needs η ∝ 1/w (Lee et al. 2019; Sohl-Dickstein et al. 2020)."),
    TheoryClaim(
        "velocity_fast_then_slow", "Kernel velocity: fast first, then slow",
        "“During this chaotic transient, the NTK changes rapidly, learning useful features "
        "from the training data … After this rapid chaotic transient, the NTK changes at "
        "constant velocity”",
        _FORT,
        "Kernel velocity per epoch v_t = 1 − ⟨Θ_{t−1}, Θ_t⟩_F/(‖Θ_{t−1}‖_F‖Θ_t‖_F) (the "
        "cosine distance between consecutive epochs' kernels). Per seed and width: ratio of "
        "the mean velocity over the first 20 % of epochs to the mean over the last half.",
        "Gradients are proportional to the residual f − y, which is largest at the start, "
        "so the parameters — and with them the kernel — move fastest in the first epochs "
        "and then drift. The velocity itself shrinks with width in NTK parameterization "
        "(the kernel freezes), but the fast-then-slow shape is about time, not width."),
    TheoryClaim(
        "alignment_rises", "Kernel–target alignment rises during training",
        "“We highlight a regularization effect induced by a dynamical alignment of the "
        "neural tangent features introduced by Jacot et al, along a small number of "
        "task-relevant directions.”",
        _BARATIN,
        "Centered kernel–target alignment A(Θ_t, YYᵀ) = ⟨CΘ_tC, CYYᵀC⟩_F/(‖CΘ_tC‖_F‖CYYᵀC‖_F), "
        "C = I − 11ᵀ/n, Y the one-hot training targets; per width, the paired change from "
        "epoch 0 to the last epoch over seeds.",
        "Training moves the tangent features towards the directions the targets need, so "
        "the kernel's top eigenvectors turn towards the label structure and A rises. The "
        "first steps mostly fit the class means (the constant direction), which the "
        "centering removes; a dip in the first epochs before the rise is possible."),
    TheoryClaim(
        "alignment_less_for_wider", "… and less for wider networks",
        "“While the NTK is random at initialization and varies during training, in the "
        "infinite-width limit it converges to an explicit limiting kernel and it stays "
        "constant during training.”",
        _JACOT + " (a constant kernel cannot change its alignment)",
        "Per seed and width: the alignment rise A(Θ_T) − A(Θ_0). Spearman correlation of "
        "the seed-mean rise with width, and the paired change of the rise from the smallest "
        "to the largest width; if the rise first grows, the same test from its peak on.",
        "In NTK parameterization the kernel's motion vanishes as w → ∞, so the alignment "
        "rise must shrink with width: wide networks are lazy, narrow ones learn features. "
        "Very narrow networks can also align less, when their first epochs are dominated by "
        "fitting the class means."),
    TheoryClaim(
        "inf_ntk_rate", "The empirical NTK approaches the infinite-width NTK as w^-1/2",
        "“While the NTK is random at initialization and varies during training, in the "
        "infinite-width limit it converges to an explicit limiting kernel”",
        _JACOT,
        "Per seed and width: ‖Θ_emp(w) − Θ_∞‖_F/‖Θ_∞‖_F at initialization (NTK "
        "parameterization; Θ_∞ = ntk_core.analytic_kernels, the arc-cosine kernel). Pooled "
        "log–log slope over (seed, width) with its 95 % CI.",
        "Θ_emp = a2²·Σ_u (h_u h_uᵀ + G∘m_u s_u m_uᵀ) + c2² with a2² = 2/w is an average of w "
        "independent units, so its fluctuation around the mean Θ_∞ has standard deviation "
        "∝ w^-1/2 (central limit theorem): slope −1/2."),
    TheoryClaim(
        "inf_nngp_rate", "The empirical NNGP approaches the infinite-width NNGP as w^-1/2",
        "“gradient-based training of wide neural networks with a squared loss produces test "
        "set predictions drawn from a Gaussian process with a particular compositional kernel”",
        _LEE + ", abstract",
        "Per seed and width: ‖K̂(w) − K_∞‖_F/‖K_∞‖_F at initialization, with K̂ = a2²·v_W2·H Hᵀ "
        "+ c2²·v_b2 (the output covariance averaged over the output layer's init, given this "
        "network's hidden layer; its expectation is analytic_kernels' NNGP). Same fit.",
        "K̂ is a mean over the w hidden units, so it converges like the NTK, as w^-1/2. The "
        "output Gram (1/10)·Σ_k f_k(x)f_k(x') of one network does NOT: its 10 logits are "
        "only 10 draws of the Gaussian process, whose Monte-Carlo error "
        "√((‖K‖² + (tr K)²)/10)/‖K‖ stays O(1) at every width (its own verdict below)."),
    TheoryClaim(
        "inf_nngp_logits_rate", "The output Gram of one network is not the NNGP",
        "in words: at infinite width each logit f_k is an independent draw of a Gaussian "
        "process with the NNGP kernel (Neal 1996; Lee et al. 2018, ICLR).",
        "Neal 1996 (Bayesian Learning for Neural Networks); Lee, Bahri, Novak, Schoenholz, "
        "Pennington & Sohl-Dickstein 2018, ICLR (arXiv:1711.00165)",
        "Per seed and width: ‖(1/10)·F Fᵀ − K_∞‖_F/‖K_∞‖_F with F the (n, 10) outputs at init "
        "(neural-tangents' empirical_nngp_fn). Same fit and rule as the NTK.",
        "Expected to NOT hold: averaging 10 independent GP draws leaves a relative error "
        "of order 1/√10 that no width removes. It is shown to explain why the page's NNGP "
        "estimate averages over the output layer instead."),
    TheoryClaim(
        "inf_outputs_rate", "Trained networks approach their infinite-width linearization",
        "“in the infinite width limit, they are governed by a linear model obtained from the "
        "first-order Taylor expansion of the network around its initial parameters”",
        _LEE + ", abstract",
        "Per seed and width: ‖f_T(X_val) − f_T^lin,∞(X_val)‖_F/‖f_T^lin,∞(X_val)‖_F, where f_T "
        "is the trained network after T full-batch gradient-descent epochs and f_T^lin,∞ the "
        "linear model with the infinite-width kernel Θ_∞ started from the SAME network's init "
        "outputs f_0 and trained the same T steps with the same learning rate. Same fit.",
        "Lee et al. show f_t − f_t^lin = O(w^-1/2) in NTK parameterization, and Θ_emp − Θ_∞ "
        "is O(w^-1/2) too, so the distance to the infinite-width linear model falls as w^-1/2."),
    TheoryClaim(
        "finite_approach", "Finite networks approach the infinite-width predictor's accuracy",
        "“in the infinite width limit, they are governed by a linear model obtained from the "
        "first-order Taylor expansion of the network around its initial parameters”",
        _LEE + ", abstract",
        "Per seed and width: |accuracy of the trained network − accuracy of f_T^lin,∞| on "
        "the validation split (f_T^lin,∞ as for the outputs: same init outputs, same T steps "
        "and learning rate). Spearman of the seed-mean gap with width, and the paired change "
        "from the smallest to the largest width.",
        "The gap must shrink with width. It is measured against the infinite-width network "
        "trained the same way from the same random init outputs f_0 — not against NTK "
        "regression with zero init outputs (t → ∞), which a network trained T steps from its "
        "own random f_0 is not expected to reach at any width."),
)}


# ------------------------------------------------------------------------------ rule helpers


def _verdict(claim_id: str, verdict: str, condition: str, statistic: dict, criterion: str,
             per_seed: list[dict]) -> Verdict:
    return Verdict(claim_id, verdict, condition, _plain(statistic), criterion.strip(),
                   _plain(per_seed))


def _usable(widths: np.ndarray, arrays: Sequence[np.ndarray], positive: bool) -> tuple[np.ndarray, list]:
    """(mask of widths usable in every array for every seed, widths left out)."""
    keep = np.ones(widths.size, bool)
    for a in arrays:
        flat = a.reshape(a.shape[0], a.shape[1], -1)
        ok = np.isfinite(flat).all(axis=(0, 2))
        if positive:
            ok &= (flat > 0).all(axis=(0, 2))
        keep &= ok
    return keep, [int(w) for w in widths[~keep]]


def _widths_input(widths: Any, values: Any, name: str, ndim: int = 2) -> tuple[np.ndarray, np.ndarray]:
    w = np.asarray(widths, np.float64).ravel()
    v = _per_seed(values, ndim, name)
    if v.shape[1] != w.size:
        raise ValueError(f"{name} has {v.shape[1]} widths, widths has {w.size}")
    order = np.argsort(w, kind="mergesort")
    return w[order], v[:, order]


@dataclasses.dataclass(frozen=True)
class _LogFit:
    slope: float
    lo: float
    hi: float
    r2: float
    points: int

    def text(self) -> str:
        return f"slope {self.slope:.3f} (95 % CI [{self.lo:.3f}, {self.hi:.3f}], R² {self.r2:.3f})"

    def contains(self, x: float) -> bool:
        return self.lo <= x <= self.hi


def _loglog(w: np.ndarray, v: np.ndarray) -> _LogFit:
    """Pooled least squares ln v = a + b·ln w over every (seed, width) point, with the 95 %
    Student-t interval of b (dof = points − 2)."""
    x = np.tile(np.log(w), v.shape[0])
    y = np.log(v).ravel()
    b, _, r2, se = _fit(x, y)
    half = _t975(x.size - 2) * se
    return _LogFit(b, b - half, b + half, r2, int(x.size))


def _seed_slopes(w: np.ndarray, v: np.ndarray) -> list[float]:
    return [float(np.polyfit(np.log(w), np.log(row), 1)[0]) for row in v]


def _fit_criterion(what: str) -> str:
    return (f"{what} Slope = pooled least squares of ln(value) on ln(width) over every "
            f"(seed, width) point, {CI_LEVEL:.0%} Student-t interval (dof = points − 2). "
            f"Widths with a non-finite or non-positive value for any seed (a diverged run) "
            f"are left out and named; fewer than {MIN_WIDTHS} usable widths → inconclusive.")


# ------------------------------------------------------------------------------ rules


def _targets_in(f: _LogFit) -> list[float]:
    return [t for t in (TARGET_LEE, TARGET_DYER) if f.contains(t)]


def _where(f: _LogFit) -> str:
    if f.hi < TARGET_DYER:
        return "steeper than −1"
    if f.lo > TARGET_LEE:
        return "shallower than −1/2 (slower than Lee et al.'s bound)"
    return "between −1 and −1/2"


def judge_kernel_change_exponent(*, widths: Any, rel_change: Any, parameterization: str = "ntk") -> Verdict:
    """Claim ``kernel_change_exponent``: in the wide regime ‖Θ_T − Θ_0‖_F/‖Θ_0‖_F ∝ w^b with
    b = −1/2 (Lee et al. 2019's bound) or b = −1 (Dyer & Gur-Ari 2020).

    Both are statements about w → ∞, so the widest widths decide. Rule: fit the widest
    max(3, ⌈W/2⌉) widths (U) and the whole grid (F). U's CI contains exactly one exponent:
    → holds when F's CI contains exactly the same one, else holds_only_when "width ≥ the
    smallest width of U". U's CI contains both → inconclusive (too few widths or seeds to
    tell). U's CI contains neither → does_not_hold, saying where U lies (steeper than −1,
    between −1 and −1/2, or shallower than −1/2).

    Args:
      widths: (W,) hidden widths. rel_change: (S, W) per seed (or (W,) for one seed).
      parameterization: reported only.
    """
    cid = "kernel_change_exponent"
    w, v = _widths_input(widths, rel_change, "rel_change")
    crit = _fit_criterion(
        f"Relative kernel change after training vs width ({parameterization} param.).") + (
        f" Both exponents describe w → ∞, so the widest max({MIN_WIDTHS}, ⌈W/2⌉) widths decide: "
        "their CI contains exactly one of −1/2 (Lee et al.) and −1 (Dyer & Gur-Ari) → holds when "
        "the fit over all widths agrees, else holds_only_when from the smallest of those widths; "
        "both → inconclusive; neither → does_not_hold.")
    keep, dropped = _usable(w, [v], positive=True)
    stat: dict[str, Any] = {"parameterization": parameterization, "widths": w.tolist(),
                            "left_out_widths": dropped, "n_seeds": v.shape[0]}
    if keep.sum() < MIN_WIDTHS:
        return _verdict(cid, "inconclusive", f"only {int(keep.sum())} usable widths (left out: "
                        f"{dropped})", stat, crit, [])
    w, v = w[keep], v[:, keep]
    full = _loglog(w, v)
    k = w.size - max(MIN_WIDTHS, math.ceil(w.size / 2))
    up = _loglog(w[k:], v[:, k:])
    names = {TARGET_LEE: "−1/2 (Lee et al. 2019)", TARGET_DYER: "−1 (Dyer & Gur-Ari 2020)"}
    stat.update(slope=full.slope, ci=[full.lo, full.hi], r2=full.r2, points=full.points,
                upper_from=int(w[k]), upper_slope=up.slope, upper_ci=[up.lo, up.hi],
                mean=v.mean(0).tolist(), sd=(v.std(0, ddof=1) if v.shape[0] > 1 else 0 * w).tolist())
    per_seed = [{"seed": i, "slope": s, "upper_slope": su} for i, (s, su) in
                enumerate(zip(_seed_slopes(w, v), _seed_slopes(w[k:], v[:, k:])))]
    upper = f"widths {int(w[k])}–{int(w[-1])}: {up.text()}"
    every = f"widths {int(w[0])}–{int(w[-1])}: {full.text()}"
    hit_u, hit_f = _targets_in(up), _targets_in(full)
    if len(hit_u) == 1:
        if hit_f == hit_u:
            return _verdict(cid, "holds", f"consistent with {names[hit_u[0]]} over the widest widths "
                            f"({upper}) and over all ({every})", stat, crit, per_seed)
        over_all = (f"consistent with {names[hit_f[0]]}" if len(hit_f) == 1 else
                    "consistent with both" if hit_f else _where(full))
        return _verdict(cid, "holds_only_when", f"width ≥ {int(w[k])}: consistent with "
                        f"{names[hit_u[0]]} ({upper}); over all widths {over_all} ({every})",
                        stat, crit, per_seed)
    if len(hit_u) == 2:
        return _verdict(cid, "inconclusive", f"the widest widths cannot tell −1/2 from −1 ({upper}); "
                        f"over all {every}", stat, crit, per_seed)
    return _verdict(cid, "does_not_hold", f"{_where(up)} over the widest widths ({upper}); over all "
                    f"{every}", stat, crit, per_seed)


def judge_velocity_fast_then_slow(*, widths: Any, velocity: Any, parameterization: str = "ntk") -> Verdict:
    """Claim ``velocity_fast_then_slow``: the kernel velocity is large in the first epochs
    and small later (Fort et al. 2020).

    Rule: per seed and width, ratio = mean velocity over the first max(1, round(0.2·T))
    epochs / mean over the last half (T epochs of velocity, T ≥ 4). A width shows it when
    the geometric mean of its seeds' ratios is ≥ FAST_SLOW_RATIO and ≥ ⌈2/3·seeds⌉ seeds are.
    Every usable width → holds; some → holds_only_when those widths; none → does_not_hold.

    Args:
      widths: (W,). velocity: (S, W, T) per seed, width and epoch (epoch t: between t−1 and t).
    """
    cid = "velocity_fast_then_slow"
    w, v = _widths_input(widths, velocity, "velocity", ndim=3)
    seeds, _, t = v.shape
    early_n = max(1, int(round(EARLY_FRACTION * t)))
    crit = (f"Kernel velocity ({parameterization} param.). Ratio = mean over the first {early_n} "
            f"epoch(s) / mean over the last {t - t // 2} epochs, per seed and width; a width shows "
            f"'fast, then slow' when the geometric mean over seeds is ≥ {FAST_SLOW_RATIO:g} and ≥ "
            f"{_need(seeds)}/{seeds} seeds are. All usable widths → holds; some → holds_only_when; "
            "none → does_not_hold. Widths with non-finite velocities (diverged runs) are left out.")
    stat: dict[str, Any] = {"parameterization": parameterization, "widths": w.tolist(),
                            "early_epochs": early_n, "late_epochs": t - t // 2}
    if t < 4:
        return _verdict(cid, "inconclusive", f"need ≥ 4 epochs of velocity, got {t}", stat, crit, [])
    keep, dropped = _usable(w, [v], positive=False)
    stat["left_out_widths"] = dropped
    if not keep.any():
        return _verdict(cid, "inconclusive", f"no usable width (left out: {dropped})", stat, crit, [])
    w, v = w[keep], v[:, keep]
    early = v[:, :, :early_n].mean(axis=2)
    late = v[:, :, t // 2:].mean(axis=2)
    # late = 0: no motion late at all → ratio ∞ if anything moved early; 0/0 → NaN (no motion).
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = early / late
    shows, geo = [], []
    for j in range(w.size):
        r = ratio[:, j]
        if np.isnan(r).any():
            g = math.nan
        else:
            with np.errstate(divide="ignore"):
                g = float(np.exp(np.mean(np.log(r))))
        geo.append(g)
        shows.append(bool(g >= FAST_SLOW_RATIO and np.sum(r >= FAST_SLOW_RATIO) >= _need(seeds)))
    stat.update(ratio_geomean=geo, shows=shows)
    per_seed = [{"seed": i, "ratio": ratio[i].tolist()} for i in range(seeds)]
    yes = [int(x) for x, s in zip(w, shows) if s]
    if len(yes) == w.size:
        return _verdict(cid, "holds", f"early/late velocity ratio ≥ {FAST_SLOW_RATIO:g} at every "
                        f"width (geometric means {', '.join(f'{g:.3g}' for g in geo)})", stat, crit, per_seed)
    if yes:
        return _verdict(cid, "holds_only_when", f"at widths {yes} (ratios "
                        f"{', '.join(f'{int(x)}: {g:.3g}' for x, g in zip(w, geo))})", stat, crit, per_seed)
    return _verdict(cid, "does_not_hold", "the early velocity is never ≥ "
                    f"{FAST_SLOW_RATIO:g}× the late one (ratios "
                    f"{', '.join(f'{int(x)}: {g:.3g}' for x, g in zip(w, geo))})", stat, crit, per_seed)


def _rise(w: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray, list]:
    keep, dropped = _usable(w, [a[:, :, [0, -1]]], positive=False)
    return keep, a[:, :, -1] - a[:, :, 0], dropped


def judge_alignment_rises(*, widths: Any, alignment: Any, parameterization: str = "ntk") -> Verdict:
    """Claim ``alignment_rises``: the centered kernel–target alignment is higher after
    training than at initialization.

    Rule: per width, the paired change A(Θ_T) − A(Θ_0) over seeds is labelled up / down /
    flat / noise (beyond 2 standard errors AND ALIGN_TOL; see runner._verdicts._change).
    Up at every usable width → holds; at some → holds_only_when those widths; none up but
    some down, or all flat → does_not_hold; otherwise inconclusive.

    Args:
      widths: (W,). alignment: (S, W, T+1) per seed, width and epoch (0 = init).
    """
    cid = "alignment_rises"
    w, a = _widths_input(widths, alignment, "alignment", ndim=3)
    seeds = a.shape[0]
    crit = (f"Centered kernel–target alignment ({parameterization} param.), last epoch vs init, "
            f"paired over seeds per width: a change counts when it exceeds 2 standard errors "
            f"of the paired difference and {ALIGN_TOL:g} (absolute). Up at every width → holds; "
            "at some → holds_only_when; none up and some down or all flat → does_not_hold; "
            "otherwise inconclusive. Widths with non-finite values are left out.")
    keep, rise, dropped = _rise(w, a)
    stat: dict[str, Any] = {"parameterization": parameterization, "widths": w.tolist(),
                            "left_out_widths": dropped}
    if not keep.any():
        return _verdict(cid, "inconclusive", f"no usable width (left out: {dropped})", stat, crit, [])
    w, a, rise = w[keep], a[:, keep], rise[:, keep]
    labels = [_change(a[:, j, 0], a[:, j, -1], abs_tol=ALIGN_TOL).label for j in range(w.size)]
    stat.update(init_mean=a[:, :, 0].mean(0).tolist(), final_mean=a[:, :, -1].mean(0).tolist(),
                rise_mean=rise.mean(0).tolist(), labels=labels)
    per_seed = [{"seed": i, "rise": rise[i].tolist()} for i in range(seeds)]
    desc = ", ".join(f"{int(x)}: {r:+.4f} ({lab})" for x, r, lab in zip(w, rise.mean(0), labels))
    up = [int(x) for x, lab in zip(w, labels) if lab == "up"]
    if len(up) == w.size:
        return _verdict(cid, "holds", f"rises at every width ({desc})", stat, crit, per_seed)
    if up:
        return _verdict(cid, "holds_only_when", f"at widths {up} (rise per width: {desc})", stat, crit, per_seed)
    if "down" in labels or all(lab == "flat" for lab in labels):
        return _verdict(cid, "does_not_hold", f"never rises beyond noise and tolerance ({desc})",
                        stat, crit, per_seed)
    return _verdict(cid, "inconclusive", f"changes are within seed noise ({desc})", stat, crit, per_seed)


def judge_alignment_less_for_wider(*, widths: Any, alignment: Any, parameterization: str = "ntk") -> Verdict:
    """Claim ``alignment_less_for_wider``: the alignment rise shrinks as width grows.

    Rule (rise = A(Θ_T) − A(Θ_0) per seed and width): Spearman ρ(width, seed-mean rise)
    ≤ −SPEARMAN_MIN and the paired change of the rise from the smallest to the largest
    width "down" → holds. Otherwise, if the seed-mean rise peaks at an interior width
    w* with ≥ 3 widths from w* on, ρ ≤ −SPEARMAN_MIN there and the paired change w* →
    largest "down" → holds_only_when "widths ≥ w*". Else the change smallest → largest
    "up" or ρ ≥ SPEARMAN_MIN → does_not_hold (wider align more); "flat" → does_not_hold
    (no width dependence); otherwise inconclusive.

    Args:
      widths: (W,). alignment: (S, W, T+1) per seed, width and epoch.
    """
    cid = "alignment_less_for_wider"
    w, a = _widths_input(widths, alignment, "alignment", ndim=3)
    crit = (f"Alignment rise A(Θ_T) − A(Θ_0) vs width ({parameterization} param.): Spearman ρ of "
            f"the seed-mean rise with width ≤ −{SPEARMAN_MIN:g} and the paired change of the rise "
            f"smallest → largest width beyond 2 standard errors and {ALIGN_TOL:g} → holds; the "
            f"same from an interior peak on (≥ {MIN_WIDTHS} widths) → holds_only_when; rising "
            "with width or no width dependence → does_not_hold; otherwise inconclusive.")
    keep, rise, dropped = _rise(w, a)
    stat: dict[str, Any] = {"parameterization": parameterization, "widths": w.tolist(),
                            "left_out_widths": dropped}
    if keep.sum() < MIN_WIDTHS:
        return _verdict(cid, "inconclusive", f"only {int(keep.sum())} usable widths", stat, crit, [])
    w, rise = w[keep], rise[:, keep]
    m = rise.mean(0)
    rho = _spearman(w, m)
    ends = _change(rise[:, 0], rise[:, -1], abs_tol=ALIGN_TOL)
    stat.update(rise_mean=m.tolist(), spearman=rho, change_smallest_to_largest=ends.diff,
                change_label=ends.label)
    per_seed = [{"seed": i, "rise": rise[i].tolist(), "spearman": _spearman(w, rise[i])}
                for i in range(rise.shape[0])]
    desc = ", ".join(f"{int(x)}: {r:+.4f}" for x, r in zip(w, m))
    if rho <= -SPEARMAN_MIN and ends.label == "down":
        return _verdict(cid, "holds", f"ρ = {rho:.2f}; rise per width {desc}", stat, crit, per_seed)
    j = int(np.argmax(m))
    if 0 < j <= w.size - MIN_WIDTHS:
        rho_j = _spearman(w[j:], m[j:])
        tail = _change(rise[:, j], rise[:, -1], abs_tol=ALIGN_TOL)
        if rho_j <= -SPEARMAN_MIN and tail.label == "down":
            stat.update(peak_width=int(w[j]), spearman_from_peak=rho_j)
            return _verdict(cid, "holds_only_when",
                            f"widths ≥ {int(w[j])}: the rise peaks at width {int(w[j])} and shrinks "
                            f"beyond (ρ = {rho_j:.2f}); rise per width {desc}", stat, crit, per_seed)
    if ends.label == "up" or rho >= SPEARMAN_MIN:
        return _verdict(cid, "does_not_hold", f"wider networks align more (ρ = {rho:.2f}; {desc})",
                        stat, crit, per_seed)
    if ends.label == "flat":
        return _verdict(cid, "does_not_hold", f"the rise does not depend on width beyond "
                        f"{ALIGN_TOL:g} ({desc})", stat, crit, per_seed)
    return _verdict(cid, "inconclusive", f"no monotone width dependence beyond seed noise "
                    f"(ρ = {rho:.2f}; {desc})", stat, crit, per_seed)


def judge_rate(*, claim_id: str, widths: Any, rel_err: Any, parameterization: str = "ntk",
               target: float = RATE_TARGET, band: tuple[float, float] = RATE_BAND) -> Verdict:
    """Claims ``inf_*_rate``: a relative error falls as w^-1/2.

    Rule: pooled log–log fit; holds when the error significantly decreases (CI below 0)
    and the CI contains ``target`` or the slope lies in ``band``; else the same on the
    widest widths (≥ 3) → holds_only_when "width ≥ …";
    else does_not_hold (saying whether the error does not fall at all — slope > −0.1 —
    falls more slowly, or faster).

    Args:
      claim_id: which claim (the rule is shared). widths: (W,). rel_err: (S, W).
    """
    w, v = _widths_input(widths, rel_err, "rel_err")
    crit = _fit_criterion(f"Relative error vs width ({parameterization} param.).") + (
        f" Holds when the CI lies below 0 (the error does decrease) and contains {target:g} or the "
        f"slope lies in [{band[0]:g}, {band[1]:g}]; "
        f"else the widest ≥ {MIN_WIDTHS} widths are refitted → holds_only_when; else does_not_hold.")
    keep, dropped = _usable(w, [v], positive=True)
    stat: dict[str, Any] = {"parameterization": parameterization, "widths": w.tolist(),
                            "left_out_widths": dropped, "n_seeds": v.shape[0], "target": target,
                            "band": list(band)}
    if keep.sum() < MIN_WIDTHS:
        return _verdict(claim_id, "inconclusive", f"only {int(keep.sum())} usable widths", stat, crit, [])
    w, v = w[keep], v[:, keep]
    fit = _loglog(w, v)
    stat.update(slope=fit.slope, ci=[fit.lo, fit.hi], r2=fit.r2, points=fit.points,
                mean=v.mean(0).tolist(), sd=(v.std(0, ddof=1) if v.shape[0] > 1 else 0 * w).tolist())
    per_seed = [{"seed": i, "slope": s} for i, s in enumerate(_seed_slopes(w, v))]

    def ok(f: _LogFit) -> bool:
        # A CI so wide that it also allows no decrease at all proves nothing.
        return f.hi < 0 and (f.contains(target) or band[0] <= f.slope <= band[1])

    if ok(fit):
        return _verdict(claim_id, "holds", f"{fit.text()} (widths {int(w[0])}–{int(w[-1])})",
                        stat, crit, per_seed)
    for k in range(1, w.size - MIN_WIDTHS + 1):
        sub = _loglog(w[k:], v[:, k:])
        if ok(sub):
            stat.update(upper_from=int(w[k]), upper_slope=sub.slope, upper_ci=[sub.lo, sub.hi])
            return _verdict(claim_id, "holds_only_when", f"width ≥ {int(w[k])}: {sub.text()}; over "
                            f"all widths {fit.text()}", stat, crit, per_seed)
    if fit.slope > -0.1:
        where = "the error does not fall with width"
    elif fit.slope > band[1]:
        where = f"the error falls more slowly than w^{target:g}"
    else:
        where = f"the error falls faster than w^{target:g}"
    return _verdict(claim_id, "does_not_hold", f"{fit.text()}: {where}", stat, crit, per_seed)


def judge_finite_approach(*, widths: Any, acc_finite: Any, acc_inf: Any) -> Verdict:
    """Claim ``finite_approach``: trained finite networks approach the accuracy of the
    infinite-width predictor as width grows.

    Rule on gap = |acc_finite − acc_inf| per seed and width (accuracies on a few hundred
    samples are noisy, so widths are compared in halves): every seed-mean gap ≤ ACC_TOL →
    holds (no gap at any width). Spearman ρ(width, mean gap) ≤ −SPEARMAN_MIN and the
    paired change (over seeds) from the mean gap of the narrower half of the widths to the
    wider half "down" (beyond 2 standard errors and ACC_TOL/2) → holds. Otherwise, from
    the gap's peak at an interior width on (≥ 3 widths): ρ ≤ −SPEARMAN_MIN and the peak →
    widest change "down" → holds_only_when. Gap growing ("up", or ρ ≥ SPEARMAN_MIN) or
    flat → does_not_hold; otherwise inconclusive.

    Args:
      widths: (W,). acc_finite: (S, W). acc_inf: (S, W), (1, W), or (S,) when the
        infinite-width predictor does not depend on width.
    """
    cid = "finite_approach"
    w_raw = np.asarray(widths, np.float64).ravel()
    w, f = _widths_input(widths, acc_finite, "acc_finite")
    inf = np.asarray(acc_inf, np.float64)
    if inf.ndim == 1 and inf.size == f.shape[0]:
        inf = np.repeat(inf[:, None], f.shape[1], axis=1)
    else:
        inf = _per_seed(inf, 2, "acc_inf")[:, np.argsort(w_raw, kind="mergesort")]
    try:
        inf = np.broadcast_to(inf, f.shape)
    except ValueError:
        raise ValueError(f"acc_inf shape {inf.shape} does not match acc_finite {f.shape}") from None
    gap = np.abs(f - inf)
    crit = (f"Gap = |accuracy of the trained network − accuracy of the infinite-width predictor| "
            f"per seed and width. Every seed-mean gap ≤ {ACC_TOL:g} → holds; Spearman ρ(width, "
            f"mean gap) ≤ −{SPEARMAN_MIN:g} with the paired change from the narrower half of the "
            f"widths to the wider half beyond 2 standard errors and {ACC_TOL / 2:g} → holds; the "
            f"same from the gap's peak on (≥ {MIN_WIDTHS} widths) → holds_only_when; growing or "
            "flat → does_not_hold; otherwise inconclusive. Widths with non-finite values "
            "(diverged runs) are left out.")
    keep, dropped = _usable(w, [gap], positive=False)
    stat: dict[str, Any] = {"widths": w.tolist(), "left_out_widths": dropped}
    if keep.sum() < MIN_WIDTHS:
        return _verdict(cid, "inconclusive", f"only {int(keep.sum())} usable widths", stat, crit, [])
    w, gap, f, inf = w[keep], gap[:, keep], f[:, keep], inf[:, keep]
    m = gap.mean(0)
    rho = _spearman(w, m)
    half = w.size // 2
    halves = _change(gap[:, :half].mean(1), gap[:, w.size - half:].mean(1), abs_tol=ACC_TOL / 2)
    stat.update(gap_mean=m.tolist(), acc_finite_mean=f.mean(0).tolist(), acc_inf_mean=inf.mean(0).tolist(),
                spearman=rho, change_narrow_to_wide_half=halves.diff, change_label=halves.label)
    per_seed = [{"seed": i, "gap": gap[i].tolist()} for i in range(gap.shape[0])]
    desc = ", ".join(f"{int(x)}: {g:.3f}" for x, g in zip(w, m))
    if np.all(m <= ACC_TOL):
        return _verdict(cid, "holds", f"gap ≤ {ACC_TOL:g} at every width ({desc})", stat, crit, per_seed)
    if rho <= -SPEARMAN_MIN and halves.label == "down":
        note = "" if m[-1] <= ACC_TOL else f"; still {m[-1]:.3f} > {ACC_TOL:g} at width {int(w[-1])}"
        return _verdict(cid, "holds", f"the gap shrinks with width ({desc}){note}", stat, crit, per_seed)
    j = int(np.argmax(m))
    if 0 < j <= w.size - MIN_WIDTHS:
        rho_j = _spearman(w[j:], m[j:])
        if rho_j <= -SPEARMAN_MIN and _change(gap[:, j], gap[:, -1], abs_tol=ACC_TOL / 2).label == "down":
            stat.update(peak_width=int(w[j]), spearman_from_peak=rho_j)
            return _verdict(cid, "holds_only_when", f"widths ≥ {int(w[j])}: the gap shrinks from its "
                            f"peak ({desc})", stat, crit, per_seed)
    if halves.label == "up" or rho >= SPEARMAN_MIN:
        return _verdict(cid, "does_not_hold", f"the gap grows with width ({desc})", stat, crit, per_seed)
    if halves.label == "flat":
        return _verdict(cid, "does_not_hold", f"the gap does not shrink with width ({desc})",
                        stat, crit, per_seed)
    return _verdict(cid, "inconclusive", f"no trend beyond seed noise (ρ = {rho:.2f}; {desc})",
                    stat, crit, per_seed)


THEORY_RULES: dict[str, Callable[..., Verdict]] = {
    "kernel_change_exponent": judge_kernel_change_exponent,
    "velocity_fast_then_slow": judge_velocity_fast_then_slow,
    "alignment_rises": judge_alignment_rises,
    "alignment_less_for_wider": judge_alignment_less_for_wider,
    "inf_ntk_rate": lambda **kw: judge_rate(claim_id="inf_ntk_rate", **kw),
    "inf_nngp_rate": lambda **kw: judge_rate(claim_id="inf_nngp_rate", **kw),
    "inf_nngp_logits_rate": lambda **kw: judge_rate(claim_id="inf_nngp_logits_rate", **kw),
    "inf_outputs_rate": lambda **kw: judge_rate(claim_id="inf_outputs_rate", **kw),
    "finite_approach": judge_finite_approach,
}
"""Claim id → rule (the four ``inf_*_rate`` claims share :func:`judge_rate`)."""


# ------------------------------------------------------------------------------ protocols

WIDTH_GRID = tuple(2 ** i for i in range(4, 13))   # 16 … 4096
CNN_WIDTH_GRID = (4, 8, 16, 32)                     # channels (the CNN's cost grows ~c²)
CNN_TOP = {"quick": 16, "full": 32}


def _grid(limits: Limits, top: int, arch: str = "mlp") -> tuple[int, ...]:
    if arch == "cnn":
        grid, top = CNN_WIDTH_GRID, min(top, MAX_CNN_CHANNELS)
    else:
        grid = WIDTH_GRID
    widths = tuple(w for w in grid if w <= min(top, limits.max_width))
    if len(widths) < MIN_WIDTHS:
        raise ConfigError("width", limits.max_width, f"a width cap of at least "
                          f"{WIDTH_GRID[MIN_WIDTHS - 1]} (these pages fit slopes over ≥ {MIN_WIDTHS} "
                          f"widths of the grid {list(WIDTH_GRID)})", WIDTH_GRID[MIN_WIDTHS - 1])
    return widths


@dataclasses.dataclass(frozen=True)
class TheoryProtocol:
    """Every setting a theory page's result is computed from.

    Attributes:
      command: "kernel-motion" or "infinite-width". name: "quick" (the page default) or "full".
      bases: parameterization → validated base config (width and seed are set per run).
      widths: log2 grid up to the width cap. seeds: ≥ 3.
    """

    command: str
    name: str
    bases: tuple[tuple[str, ExperimentConfig], ...]
    widths: tuple[int, ...]
    seeds: tuple[int, ...]

    def base(self, parameterization: str) -> ExperimentConfig:
        return dict(self.bases)[parameterization]

    @property
    def parameterizations(self) -> tuple[str, ...]:
        return tuple(p for p, _ in self.bases)

    def configs(self, parameterization: str, limits: Limits) -> list[ExperimentConfig]:
        """The validated run configs of one parameterization, ordered by width then seed."""
        b = self.base(parameterization)
        return [validate_config(b, limits, width=w, seed=s) for w in self.widths for s in self.seeds]

    def to_json(self) -> dict[str, Any]:
        return {"command": self.command, "name": self.name,
                "bases": {p: c.to_dict() for p, c in self.bases},
                "widths": list(self.widths), "seeds": list(self.seeds)}

    @property
    def key(self) -> str:
        text = json.dumps({**self.to_json(), "v": THEORY_VERSION}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


PROTOCOLS = ("quick", "full")


QUICK_ENV = "NTK_THEORY_QUICK"
QUICK_SIZES = {"default": (256, 10, 512), "tiny": (64, 5, 64)}
"""``NTK_THEORY_QUICK`` → (n, epochs, top width) of the quick protocol: "default" (the page
default), or "tiny" (3 widths, seconds: for tests and demo servers; the caption and the
JSON state the sizes run)."""


HOSTED_TOP = {"quick": 256, "full": 512}
"""Widest width of each protocol in hosted mode (NTK_HOSTED=1). Measured peak RSS of the
quick kernel-motion protocol in hosted mode (2026-11-25): 737 MB with widths to 512 (the
width-512 training call alone takes it from 435 to 693 MB, as a single width-512 run does),
against a ~700 MB hosted server."""


def _sizes(name: str, limits: Limits) -> tuple[int, int, int]:
    """(n, epochs, top width) of a protocol, within the caps: a server with smaller caps
    (NTK_MAX_N, NTK_MAX_EPOCHS, NTK_MAX_WIDTH, hosted mode) runs the same protocol on fewer
    samples, epochs and widths — the caption and the JSON state what was run."""
    if name == "quick":
        choice = os.environ.get(QUICK_ENV, "").strip().lower() or "default"
        if choice not in QUICK_SIZES:
            raise ConfigError(QUICK_ENV, os.environ.get(QUICK_ENV), "one of "
                              + ", ".join(QUICK_SIZES) + " (or unset)")
        n, epochs, top = QUICK_SIZES[choice]
    elif name == "full":
        n, epochs, top = 1000, 20, 1024
    else:
        raise ValueError(f"protocol={name!r}: expected one of {PROTOCOLS}")
    if limits.is_hosted:   # hosted (~700 MB server): a width-512 call alone peaks near 700 MB RSS
        top = min(top, HOSTED_TOP[name])
    return min(n, limits.max_n), min(epochs, limits.max_epochs), top


def _n_val(name: str, n: int) -> int:
    return 500 if name == "full" else min(256, max(n, 64))


def motion_protocol(name: str, limits: Limits, network: Network = Network()) -> TheoryProtocol:
    """Kernel motion: SGD in both parameterizations, each with a width-independent learning
    rate (NTK η = 4, standard η = 0.1, the app's default), no regularization; ``quick`` =
    n 256 (256 validation), minibatch 32, 10 epochs, widths 16…512 (the page default);
    ``full`` = n 1000 (500 validation), minibatch 50, 20 epochs, widths 16…1024. n, epochs
    and widths are capped by ``limits``. On ``network`` (default the study's MLP): a deeper
    MLP runs the same grid; the CNN runs channels 4…16 (quick) or 4…32 (full)."""
    n, epochs, top = _sizes(name, limits)
    batch = 32 if name == "quick" else 50
    common = dict(n_train=n, n_val=_n_val(name, n), epochs=epochs,
                  batch_size=batch if batch < n else 0, optimizer="sgd", reg="none", top_k=5,
                  width=4 if network.arch == "cnn" else 16, seed=0, **network._asdict())
    bases = (("ntk", validate_config(dict(common, parameterization="ntk", lr=4.0), limits)),
             ("standard", validate_config(dict(common, parameterization="standard", lr=0.1), limits)))
    if network.arch == "cnn":
        top = min(top, CNN_TOP[name])
    return TheoryProtocol("kernel-motion", name, bases, _grid(limits, top, network.arch), (0, 1, 2))


def infinite_protocol(name: str, limits: Limits, network: Network = Network()) -> TheoryProtocol:
    """Infinite width: full-batch gradient descent in NTK parameterization (η = 4, where
    the infinite-width linear model's discrete dynamics are exact), no regularization;
    ``quick`` = n 256 (256 validation), 10 epochs, widths 16…512; ``full`` = n 1000 (500
    validation), 20 epochs, widths 16…1024, each capped by ``limits``. The infinite-width
    kernels are formed densely (n ≤ NTK_MAX_DENSE_N). The standard-parameterization kernels
    are measured at init only. ``network``: an MLP of depth 1–4 (the arc-cosine recursion
    gives its limits); the CNN has no infinite-width kernel here (ConfigError "arch")."""
    if network.arch != "mlp":
        raise ConfigError("arch", network.arch, "an MLP of depth 1–4: this page's infinite-width "
                          "kernels are the MLP's arc-cosine recursion; the app has none for the CNN",
                          "mlp")
    n, epochs, top = _sizes(name, limits)
    n = min(n, limits.max_dense_n)
    common = dict(n_train=n, n_val=_n_val(name, n), epochs=epochs, batch_size=0,
                  optimizer="sgd", reg="none", top_k=5, width=16, seed=0,
                  parameterization="ntk", lr=4.0, **network._asdict())
    return TheoryProtocol("infinite-width", name, (("ntk", validate_config(common, limits)),),
                          _grid(limits, top), (0, 1, 2))


# ------------------------------------------------------------------------------ results


@dataclasses.dataclass(frozen=True)
class TheoryVerdict:
    """One rule's verdict on one parameterization's data."""

    verdict: Verdict
    parameterization: str

    @property
    def claim_id(self) -> str:
        return self.verdict.claim_id

    def to_json(self) -> dict[str, Any]:
        v = self.verdict.to_json()
        c = THEORY_CLAIMS[v["claim_id"]]
        return {"id": v["claim_id"], "title": c.title, "claim": c.quote, "reference": c.reference,
                "parameterization": self.parameterization, "verdict": v["verdict"],
                "condition": v["condition"], "statistic": v["statistic"], "criterion": v["criterion"],
                "per_seed": v["per_seed"]}


@dataclasses.dataclass(frozen=True)
class TheoryResult:
    """A theory page's whole result.

    Attributes:
      data: the measurements, JSON types (NaN → None); see :func:`kernel_motion` and
        :func:`infinite_width` for the keys.
      verdicts: the live verdicts. status: "hit", "computed" or "uncached".
      seconds: time of this call. compute_seconds: time the result took to compute.
    """

    protocol: TheoryProtocol
    data: dict[str, Any]
    verdicts: list[TheoryVerdict]
    status: str
    seconds: float
    compute_seconds: float

    def to_json(self) -> dict[str, Any]:
        """ONE JSON object: the data's keys, plus verdicts, protocol, status and timings."""
        return {**self.data, "verdicts": [v.to_json() for v in self.verdicts],
                "protocol": self.protocol.name, "protocol_settings": self.protocol.to_json(),
                "config_hash": self.protocol.key, "status": self.status,
                "seconds": round(self.seconds, 3), "compute_seconds": round(self.compute_seconds, 3)}


def _key(p: TheoryProtocol) -> dict[str, Any]:
    return {"command": p.command, "protocol": p.key, "theory_version": THEORY_VERSION,
            "result_version": _run.RESULT_VERSION}


def _to_value(data: dict, verdicts: list[TheoryVerdict], seconds: float) -> dict[str, Any]:
    return {"json": json.dumps({"data": data, "verdicts": [{"verdict": v.verdict.to_json(),
                                                            "parameterization": v.parameterization}
                                                           for v in verdicts]}, allow_nan=False),
            "seconds": float(seconds)}


def _from_value(p: TheoryProtocol, v: dict[str, Any], status: str, seconds: float) -> TheoryResult:
    obj = json.loads(str(v["json"]))
    verdicts = [TheoryVerdict(Verdict(**d["verdict"]), d["parameterization"]) for d in obj["verdicts"]]
    return TheoryResult(p, obj["data"], verdicts, status, seconds, float(v["seconds"]))


def cached_theory(p: TheoryProtocol, store: ResultStore | None) -> TheoryResult | None:
    """The stored result of ``p`` (either command), or None."""
    return _theory_store.cached(store, _key(p), functools.partial(_from_value, p))


def _cached_or_compute(p: TheoryProtocol, limits: Limits, store: ResultStore | None,
                       compute: Callable[[], tuple[dict, list[TheoryVerdict]]]) -> TheoryResult:
    t0 = time.monotonic()

    def work() -> dict[str, Any]:
        data, verdicts = compute()
        return _to_value(data, verdicts, time.monotonic() - t0)

    return _theory_store.cached_or_compute(store, _key(p), work, functools.partial(_from_value, p))


# ------------------------------------------------------------------------------ training


GROUP_UNITS = 3 * 512
"""Hosted mode: largest runs × padded width of one run_configs call. Measured (hosted mode,
n = 256, 10 epochs, 2026-11-25): 8 runs zero-padded to width 512 in one call peaked at
805 MB RSS, a one-seed width sweep 16…512 at 526 MB. Off the hosted server (6 GB budget)
calls stay larger: fewer compiled programs, faster."""


def _call_groups(configs: Sequence[ExperimentConfig], limits: Limits) -> list[list[ExperimentConfig]]:
    """Splits configs (ordered by width) into run_configs calls of ≤ max_grid points whose
    zero-padding to the call's largest width costs at most PAD_COST_FACTOR × the unpadded
    compute and, hosted, whose runs × padded width is ≤ GROUP_UNITS (peak memory), keeping the
    points of one width together where possible (fewer compiled training programs than
    splitting blindly)."""
    def fits(group: list[ExperimentConfig]) -> bool:
        padded = len(group) * max(x.width for x in group)
        units = GROUP_UNITS if limits.is_hosted else math.inf
        return (len(group) <= limits.max_grid
                and padded <= min(_run.PAD_COST_FACTOR * sum(x.width for x in group), units))

    blocks: list[list[ExperimentConfig]] = []       # the points of one width, in order
    for c in configs:
        if blocks and blocks[-1][0].width == c.width:
            blocks[-1].append(c)
        else:
            blocks.append([c])
    calls: list[list[ExperimentConfig]] = []
    for block in blocks:
        if calls and fits(calls[-1] + block):
            calls[-1].extend(block)
            continue
        for c in block:                             # a new call; split the block if it must
            if calls and calls[-1][0].width == c.width and fits(calls[-1] + [c]):
                calls[-1].append(c)
            else:
                calls.append([c])
    return calls


def _runs(p: TheoryProtocol, limits: Limits, store: ResultStore | None, progress: ProgressFn | None
          ) -> Iterator[tuple[str, _run.RunResult]]:
    """Every run of the protocol through the shared runner and cache, one call group at a
    time: yields (parameterization, RunResult). The caller measures each run and drops it,
    so at most one group's checkpoints are in memory (not the whole protocol's)."""
    plan = [(par, p.configs(par, limits)) for par in p.parameterizations]
    total, done = sum(len(c) for _, c in plan), 0
    for par, cfgs in plan:
        for call in _call_groups(cfgs, limits):
            if progress:
                progress(Progress(Stage.TRAINING, done, total))
            results = _run.run_configs(call, limits, store=store)
            done += len(call)
            if progress:
                progress(Progress(Stage.REFERENCE, done - len(call), total))
            with _run._admitted([call[-1]], limits, None):
                for r in results:
                    yield par, r
            del results
    if progress:
        progress(Progress(Stage.DONE, total, total))


def _one_blas_thread():
    """One OpenBLAS thread for the NumPy analysis (re-entrant; see
    ntk_core._src.kernel_motion.one_blas_thread for the measurement)."""
    return km.one_blas_thread()


def _nan(shape) -> np.ndarray:
    return np.full(shape, np.nan)


def _seed_stats(values: np.ndarray) -> tuple[list, list]:
    """Mean and sd (ddof 1) over seeds (axis 0) ignoring nothing: NaN where any seed is NaN."""
    sd = values.std(axis=0, ddof=1) if values.shape[0] > 1 else np.zeros(values.shape[1:])
    return values.mean(axis=0).tolist(), sd.tolist()


def _fit_json(widths: Sequence[int], values: np.ndarray) -> dict[str, Any]:
    """Pooled log–log slope of the usable widths (for the charts' fitted lines)."""
    w = np.asarray(widths, np.float64)
    keep, _ = _usable(w, [values], positive=True)
    if keep.sum() < 2:
        return {"slope": None, "slope_ci": [None, None], "intercept": None, "fit_widths": []}
    x = np.tile(np.log(w[keep]), values.shape[0])
    y = np.log(values[:, keep]).ravel()
    b, a, r2, se = _fit(x, y)
    half = _t975(x.size - 2) * se
    return {"slope": b, "slope_ci": [b - half, b + half], "intercept": a, "r2": r2,
            "fit_widths": [int(v) for v in w[keep]]}


# ------------------------------------------------------------------------------ kernel motion

CONVENTIONS = ("Raw traced kernel Θ_ij = (1/10)·Σ_k ∇θf_k(x_i)·∇θf_k(x_j) (mean over the 10 logits, "
               "not divided by n; every statistic here is scale-free, so Θ/n gives the same "
               "numbers). Parameters are float32 (as trained); kernels are formed from them "
               "in float64, exactly, in row blocks (never n×n at once).")


GENERIC_CONVENTIONS = ("Raw traced kernel Θ_ij = (1/10)·Σ_k ∇θf_k(x_i)·∇θf_k(x_j) (mean over the 10 "
                       "logits, not divided by n; every statistic here is scale-free). This network "
                       "has no closed form: each checkpoint's kernel is formed in float32 by the "
                       "generic path named in the caption (the deeper MLPs layer-wise, the CNN by "
                       "Jacobian contraction), and the Frobenius sums are taken in float64.")


def _motion_run(r: _run.RunResult) -> dict[str, np.ndarray]:
    """Frobenius statistics of one run's stored checkpoints, on epochs 0..E (NaN where no
    checkpoint is stored, e.g. after divergence). The one-hidden MLP's kernels come from
    their closed-form factors (float64, exact); any other network's are formed densely by
    its generic method (float32, ``ntk_core.generic_dense_kernel``)."""
    c = r.config
    e_count = c.epochs + 1
    split = _run._split_for(c)
    stored = sorted(int(e) for e in r.checkpoint_epochs)
    if c.closed_form:
        factors = [km.kernel_factors(r.checkpoint(e), split.x_train, parameterization=c.parameterization)
                   for e in stored]
        st = km.kernel_path_stats(factors, split.x_train, split.y_train)
    else:
        fn, x = _run.apply_fn_of(c), split.x_train
        kernels = [nc.generic_dense_kernel(c.ntk_method, fn, r.checkpoint(e), x, c.parameterization)
                   for e in stored]
        st = km.dense_path_stats(kernels, split.y_train)
    rel, align, norm = _nan(e_count), _nan(e_count), _nan(e_count)
    vel = _nan(c.epochs)
    for i, e in enumerate(stored):
        rel[e], align[e], norm[e] = st.rel_change[i], st.alignment[i], st.norm[i]
        if i > 0 and stored[i - 1] == e - 1:
            vel[e - 1] = st.velocity[i - 1]
    return {"rel": rel, "align": align, "vel": vel, "norm": norm}


def kernel_motion(p: TheoryProtocol, limits: Limits, *, store: ResultStore | None = None,
                  progress: ProgressFn | None = None) -> TheoryResult:
    """Lazy or rich? How far the empirical NTK moves during training, against width.

    Trains the protocol's configs (both parameterizations, every width and seed) through
    :func:`runner.run_configs` (shared cache), then from every stored checkpoint: the
    relative change ‖Θ_t − Θ_0‖_F/‖Θ_0‖_F, the kernel velocity between consecutive epochs
    and the centered kernel–target alignment A(Θ_t, YYᵀ) — exact Frobenius sums in float64
    over row blocks (:func:`ntk_core._src.kernel_motion.kernel_path_stats`).

    Returns:
      :class:`TheoryResult`; ``to_json()`` keys (NTK parameterization at the top level, the
      same keys for the standard one under ``"standard"``): ``widths``, ``seeds``,
      ``epochs``, ``rel_change`` (seed × width, after the last epoch), ``rel_change_mean``,
      ``rel_change_sd``, ``slope``, ``slope_ci`` (pooled log–log fit, 95 %), ``velocity``
      (seed × width × epoch 1..E), ``velocity_mean``, ``alignment`` (seed × width × epoch
      0..E), ``alignment_mean``, ``rel_change_epochs`` (seed × width × epoch), ``val_acc``
      (seed × width, last epoch), ``lr``, ``lr_lambda_max`` (seed × width: η·λ_max(Θ_0)/n
      of the traced kernel, the gradient-descent stability number, < 2 needed),
      ``diverged`` (seed × width bool), ``verdicts``, ``conventions``.
    """
    if p.command != "kernel-motion":
        raise ValueError(f"a {p.command!r} protocol was passed to kernel_motion")

    def compute() -> tuple[dict, list[TheoryVerdict]]:
        widths, seeds = list(p.widths), list(p.seeds)
        s_n, w_n = len(seeds), len(widths)
        net = p.base("ntk")
        data: dict[str, Any] = {"command": "kernel-motion", "parameterization": "ntk",
                                "widths": widths, "seeds": seeds, "network": net.network.label,
                                "ntk_method": net.ntk_method,
                                "conventions": CONVENTIONS if net.closed_form else GENERIC_CONVENTIONS}
        verdicts: list[TheoryVerdict] = []
        m: dict[str, dict[str, np.ndarray]] = {}
        for par in p.parameterizations:
            e = p.base(par).epochs
            m[par] = {"rel": _nan((s_n, w_n, e + 1)), "align": _nan((s_n, w_n, e + 1)),
                      "vel": _nan((s_n, w_n, e)), "acc": _nan((s_n, w_n)), "lam": _nan((s_n, w_n)),
                      "div": np.zeros((s_n, w_n), bool)}
        with _one_blas_thread():
            for par, r in _runs(p, limits, store, progress):
                base, a = p.base(par), m[par]
                i, j = seeds.index(r.config.seed), widths.index(r.config.width)
                st = _motion_run(r)
                a["rel"][i, j], a["align"][i, j], a["vel"][i, j] = st["rel"], st["align"], st["vel"]
                a["acc"][i, j] = r.metrics["val_acc"][base.epochs]
                a["lam"][i, j] = base.lr * r.topk[0, 0] / base.n_train
                a["div"][i, j] = r.diverged_at is not None
            for par in p.parameterizations:
                base = p.base(par)
                e = base.epochs
                rel, align, vel = m[par]["rel"], m[par]["align"], m[par]["vel"]
                acc, lam, div = m[par]["acc"], m[par]["lam"], m[par]["div"]
                final = rel[:, :, -1]
                fit = _fit_json(widths, final)
                part = {
                    "epochs": list(range(e + 1)), "lr": base.lr, "optimizer": base.optimizer,
                    "batch_size": base.batch_size, "n_train": base.n_train, "n_val": base.n_val,
                    "rel_change": final, "rel_change_mean": _seed_stats(final)[0],
                    "rel_change_sd": _seed_stats(final)[1], **fit,
                    "rel_change_epochs": rel, "velocity": vel,
                    "velocity_mean": vel.mean(axis=0), "alignment": align,
                    "alignment_mean": align.mean(axis=0), "val_acc": acc, "lr_lambda_max": lam,
                    "diverged": div,
                }
                if par == "ntk":
                    data.update(part)
                else:
                    data[par] = {"parameterization": par, **part}
                kw = dict(widths=widths, parameterization=par)
                verdicts += [
                    TheoryVerdict(judge_kernel_change_exponent(rel_change=final, **kw), par),
                    TheoryVerdict(judge_velocity_fast_then_slow(velocity=vel, **kw), par),
                    TheoryVerdict(judge_alignment_rises(alignment=align, **kw), par),
                    TheoryVerdict(judge_alignment_less_for_wider(alignment=align, **kw), par),
                ]
        return _plain(data, json=True), verdicts

    return _cached_or_compute(p, limits, store, compute)


# ------------------------------------------------------------------------------ infinite width


def _ntk_at(params: dict, x: np.ndarray, parameterization: str) -> np.ndarray:
    """Traced empirical NTK in float64: the one-hidden MLP's from its closed-form factors
    (exact), a deeper MLP's layer-wise (``ntk_core.mlp_traced_ntk``, formed in float32)."""
    if mlp_depth(params) == 1:
        return km.traced_kernel(km.kernel_factors(params, x, parameterization=parameterization), x)
    return np.asarray(nc.mlp_traced_ntk(params, x, parameterization=parameterization), np.float64)


def infinite_width(p: TheoryProtocol, limits: Limits, *, store: ResultStore | None = None,
                   progress: ProgressFn | None = None) -> TheoryResult:
    """The infinite-width limit and how fast finite networks approach it.

    At init (epoch-0 checkpoints of the protocol's NTK-parameterization runs): relative
    Frobenius distance of the empirical NTK and NNGP to the analytic infinite-width
    kernels (``ntk_core.analytic_kernels``), per seed and width. Standard parameterization:
    the same distances to its width-w expectation, from independent NumPy draws of its init.
    Predictors on each seed's validation split: NTK regression and the NNGP posterior mean
    (t → ∞, zero init outputs), the infinite-width linear model after the protocol's T
    gradient-descent steps (zero init outputs; and from each network's own init outputs),
    against the trained finite networks.

    Returns:
      :class:`TheoryResult`; ``to_json()`` keys: ``widths``, ``seeds``, ``rel_err_ntk``,
      ``rel_err_nngp`` (readout estimate), ``rel_err_nngp_logits`` (output Gram), each seed ×
      width with ``*_mean``/``*_sd``; ``slope``, ``slope_ci`` (NTK), ``slope_nngp``,
      ``slope_nngp_ci``, ``slope_nngp_logits``; ``acc_inf_ntk``, ``acc_inf_nngp`` (per seed,
      t → ∞), ``acc_inf_ntk_steps`` (per seed, T steps, zero init outputs), ``acc_lin_inf``
      (seed × width: T steps from the network's own init outputs), ``acc_lin_inf_limit``
      (seed × width: the same, t → ∞), ``acc_finite`` (seed ×
      width), ``output_rel_err`` (seed × width), ``ridge_ntk``, ``ridge_nngp`` (per seed,
      0 = none added), ``standard`` (``rel_err_ntk``, ``rel_err_nngp`` and slopes vs the
      width-w expectation), ``verdicts``, ``conventions``.
    """
    if p.command != "infinite-width":
        raise ValueError(f"a {p.command!r} protocol was passed to infinite_width")

    def compute() -> tuple[dict, list[TheoryVerdict]]:
        base = p.base("ntk")
        if base.batch_size != 0:
            raise ValueError("the infinite-width comparison needs full-batch gradient descent")
        widths, seeds = list(p.widths), list(p.seeds)
        s_n, w_n = len(seeds), len(widths)
        e, lr = base.epochs, base.lr
        err = {k: _nan((s_n, w_n)) for k in ("ntk", "nngp", "nngp_logits", "sp_ntk", "sp_nngp")}
        acc_fin, acc_lin, out_err = _nan((s_n, w_n)), _nan((s_n, w_n)), _nan((s_n, w_n))
        acc_lin_limit = _nan((s_n, w_n))
        acc_ntk, acc_nngp, acc_steps = _nan(s_n), _nan(s_n), _nan(s_n)
        ridge_ntk, ridge_nngp = np.zeros(s_n), np.zeros(s_n)
        per_seed: dict[int, tuple] = {}   # seed → split and infinite-width kernels on it

        depth = base.depth

        def seed_kernels(i: int, config: ExperimentConfig) -> tuple:
            if i not in per_seed:
                split = _run._split_for(config)
                xt, xv, yt, lv = split.x_train, split.x_val, split.y_train, split.labels_val
                k_inf, n_inf = nc.analytic_kernels(xt, parameterization="ntk", depth=depth)
                kx_inf, nx_inf = nc.analytic_kernels(xv, xt, parameterization="ntk", depth=depth)
                reg = km.kernel_regression(k_inf, kx_inf, yt)
                acc_ntk[i], ridge_ntk[i] = km.accuracy(reg.predictions, lv), reg.ridge
                reg = km.kernel_regression(n_inf, nx_inf, yt)
                acc_nngp[i], ridge_nngp[i] = km.accuracy(reg.predictions, lv), reg.ridge
                acc_steps[i] = km.accuracy(km.kernel_regression(k_inf, kx_inf, yt, steps=e, lr=lr)
                                           .predictions, lv)
                per_seed[i] = (xt, xv, yt, lv, k_inf, n_inf, kx_inf)
            return per_seed[i]

        with _one_blas_thread():
            for _, r in _runs(p, limits, store, progress):
                s, w = r.config.seed, r.config.width
                i, j = seeds.index(s), widths.index(w)
                xt, xv, yt, lv, k_inf, n_inf, kx_inf = seed_kernels(i, r.config)
                p0 = r.checkpoint(0)
                err["ntk"][i, j] = km.relative_frobenius(_ntk_at(p0, xt, "ntk"), k_inf)
                err["nngp"][i, j] = km.relative_frobenius(
                    km.empirical_nngp(p0, xt, parameterization="ntk"), n_inf)
                err["nngp_logits"][i, j] = km.relative_frobenius(
                    km.empirical_nngp(p0, xt, parameterization="ntk", estimator="logits"), n_inf)
                if r.diverged_at is None:
                    f0t = km.forward64(p0, xt, parameterization="ntk")
                    f0v = km.forward64(p0, xv, parameterization="ntk")
                    lin = km.kernel_regression(k_inf, kx_inf, yt, f0_train=f0t, f0_test=f0v,
                                               steps=e, lr=lr).predictions
                    f_t = km.forward64(r.checkpoint(e), xv, parameterization="ntk")
                    acc_lin[i, j] = km.accuracy(lin, lv)
                    acc_lin_limit[i, j] = km.accuracy(km.kernel_regression(
                        k_inf, kx_inf, yt, f0_train=f0t, f0_test=f0v).predictions, lv)
                    acc_fin[i, j] = r.metrics["val_acc"][e]
                    out_err[i, j] = float(np.linalg.norm(f_t - lin) / np.linalg.norm(lin))
                # Standard parameterization: its width-w expectation, independent draws.
                sp = km.sample_init(s, w, "standard", depth=depth)
                k_sp, n_sp = nc.analytic_kernels(xt, parameterization="standard", width=w, depth=depth)
                err["sp_ntk"][i, j] = km.relative_frobenius(_ntk_at(sp, xt, "standard"), k_sp)
                err["sp_nngp"][i, j] = km.relative_frobenius(
                    km.empirical_nngp(sp, xt, parameterization="standard"), n_sp)

        def block(prefix: str, values: np.ndarray) -> dict[str, Any]:
            mean, sd = _seed_stats(values)
            fit = _fit_json(widths, values)
            return {prefix: values, f"{prefix}_mean": mean, f"{prefix}_sd": sd}, fit

        data: dict[str, Any] = {"command": "infinite-width", "parameterization": "ntk",
                                "widths": widths, "seeds": seeds, "epochs": e, "lr": lr,
                                "n_train": base.n_train, "n_val": base.n_val,
                                "network": base.network.label, "depth": depth,
                                "optimizer": "full-batch gradient descent", "conventions": CONVENTIONS
                                + (" Deeper MLPs: the empirical NTK is formed layer-wise in float32 "
                                   "(ntk_core.mlp_traced_ntk); the analytic kernels are the arc-cosine "
                                   "recursion over all hidden layers." if depth > 1 else "")
                                + " NNGP: readout estimate a²·v_W·H Hᵀ + c²·v_b of the output layer "
                                "on the last hidden layer H (the output covariance averaged over the "
                                "output layer's init); output-Gram estimate (1/10)·Σ_k f_k f_kᵀ shown apart."}
        for key, name in (("ntk", "rel_err_ntk"), ("nngp", "rel_err_nngp"),
                          ("nngp_logits", "rel_err_nngp_logits")):
            part, fit = block(name, err[key])
            data.update(part)
            suffix = "" if key == "ntk" else "_" + key
            data[f"slope{suffix}"], data[f"slope{suffix}_ci"] = fit["slope"], fit["slope_ci"]
            data[f"intercept{suffix}"] = fit["intercept"]
        part, fit = block("output_rel_err", out_err)
        data.update(part, slope_outputs=fit["slope"], slope_outputs_ci=fit["slope_ci"],
                    intercept_outputs=fit["intercept"])
        data.update(acc_inf_ntk=acc_ntk, acc_inf_nngp=acc_nngp, acc_inf_ntk_steps=acc_steps,
                    acc_lin_inf=acc_lin, acc_lin_inf_limit=acc_lin_limit, acc_finite=acc_fin, ridge_ntk=ridge_ntk, ridge_nngp=ridge_nngp)
        std: dict[str, Any] = {"parameterization": "standard", "reference": "width-w expectation at init "
                               "(Gaussian approximation of the uniform init's pre-activations"
                               + (", layer by layer: at depth > 1 an approximation whose finite-width "
                                  "bias is part of what is measured)" if depth > 1 else ")")}
        for key, name in (("sp_ntk", "rel_err_ntk"), ("sp_nngp", "rel_err_nngp")):
            part, fit = block(name, err[key])
            std.update(part)
            suffix = "" if key == "sp_ntk" else "_nngp"
            std[f"slope{suffix}"], std[f"slope{suffix}_ci"] = fit["slope"], fit["slope_ci"]
            std[f"intercept{suffix}"] = fit["intercept"]
        data["standard"] = std
        verdicts = [
            TheoryVerdict(judge_rate(claim_id="inf_ntk_rate", widths=widths, rel_err=err["ntk"]), "ntk"),
            TheoryVerdict(judge_rate(claim_id="inf_nngp_rate", widths=widths, rel_err=err["nngp"]), "ntk"),
            TheoryVerdict(judge_rate(claim_id="inf_nngp_logits_rate", widths=widths,
                                     rel_err=err["nngp_logits"]), "ntk"),
            TheoryVerdict(judge_rate(claim_id="inf_outputs_rate", widths=widths, rel_err=out_err), "ntk"),
            TheoryVerdict(judge_finite_approach(widths=widths, acc_finite=acc_fin, acc_inf=acc_lin), "ntk"),
            TheoryVerdict(judge_rate(claim_id="inf_ntk_rate", widths=widths, rel_err=err["sp_ntk"],
                                     parameterization="standard"), "standard"),
            TheoryVerdict(judge_rate(claim_id="inf_nngp_rate", widths=widths, rel_err=err["sp_nngp"],
                                     parameterization="standard"), "standard"),
        ]
        return _plain(data, json=True), verdicts

    return _cached_or_compute(p, limits, store, compute)


# ------------------------------------------------------------------------------ CLI


def _protocol_for(args: Any, limits: Limits) -> TheoryProtocol:
    name = "quick" if getattr(args, "quick", False) else "full"
    from runner.cli import network_of

    if args.command == "kernel-motion":
        return motion_protocol(name, limits, network_of(args, limits))
    return infinite_protocol(name, limits, network_of(args, limits))


def plan_configs(args: Any, limits: Limits) -> list[ExperimentConfig]:
    """The CLI plan's configs (validates the protocol against the limits before any work:
    a cap too small exits 2 with the parameter named)."""
    p = _protocol_for(args, limits)
    return [c for par in p.parameterizations for c in p.configs(par, limits)]


def theory_table(res: TheoryResult) -> str:
    """A short human summary: the headline numbers and one line per verdict."""
    d = res.data
    lines = [f"NTK Explorer {d['command']} — {res.protocol.name} protocol ({res.status}, "
             f"{res.seconds:.1f} s), config hash {res.protocol.key}",
             f"widths {d['widths']}, seeds {d['seeds']}"]

    def row(name: str, mean: list, sd: list) -> str:
        return f"{name:32s}" + " ".join(f"{(m if m is not None else float('nan')):>10.4g}" for m in mean)

    lines.append(f"{'width':32s}" + " ".join(f"{w:>10d}" for w in d["widths"]))
    if d["command"] == "kernel-motion":
        lines.append(row("‖ΘT−Θ0‖/‖Θ0‖ NTK param.", d["rel_change_mean"], d["rel_change_sd"]))
        lines.append(row("‖ΘT−Θ0‖/‖Θ0‖ standard param.", d["standard"]["rel_change_mean"],
                         d["standard"]["rel_change_sd"]))
        ci = d["slope_ci"]
        lines.append(f"slope (NTK param.) {d['slope']:.3f}, 95 % CI [{ci[0]:.3f}, {ci[1]:.3f}]")
    else:
        lines.append(row("‖Θ(w)−Θ∞‖/‖Θ∞‖ (init)", d["rel_err_ntk_mean"], d["rel_err_ntk_sd"]))
        lines.append(row("‖K(w)−K∞‖/‖K∞‖ NNGP (init)", d["rel_err_nngp_mean"], d["rel_err_nngp_sd"]))
        lines.append(row("accuracy, trained net", np.nanmean(np.asarray(d["acc_finite"], float), 0).tolist(), []))
        lines.append(row("accuracy, ∞-width linear", np.nanmean(np.asarray(d["acc_lin_inf"], float), 0).tolist(), []))
        ci = d["slope_ci"]
        lines.append(f"slope NTK {d['slope']:.3f}, 95 % CI [{ci[0]:.3f}, {ci[1]:.3f}]; NTK regression "
                     f"accuracy {np.mean(d['acc_inf_ntk']):.3f}, NNGP {np.mean(d['acc_inf_nngp']):.3f}")
    lines.append("")
    for v in res.verdicts:
        j = v.verdict
        lines.append(f"{j.claim_id:26s} {v.parameterization:9s} {j.verdict}"
                     + (f" — {j.condition}" if j.condition else ""))
    lines.append("")
    lines.append(d["conventions"])
    return "\n".join(lines) + "\n"


def _cmd(fn: Callable[..., TheoryResult]) -> Callable[[Any], int]:
    from runner import cli  # imports this module only inside its parser builder

    return cli.theory_command(fn, _protocol_for, theory_table)


cmd_kernel_motion = _cmd(kernel_motion)
cmd_infinite_width = _cmd(infinite_width)

COMMANDS = ("kernel-motion", "infinite-width")


def add_commands(subparsers: Any, common: Callable[..., None]) -> None:
    """Registers ``kernel-motion`` and ``infinite-width`` on the CLI's subparsers.

    Args:
      subparsers: the ``add_subparsers()`` object of ``runner.cli.build_parser``.
      common: ``runner.cli._add_common`` (called as ``common(parser, top=False)``).

    Each parser sets ``handler`` (receives the CLI's Plan) and ``plan_configs`` (args,
    limits) → the protocol's validated configs, for ``runner.cli.plan``.
    """
    specs = (
        ("kernel-motion", cmd_kernel_motion,
         "lazy or rich? relative kernel change vs width, kernel velocity, kernel–target alignment",
         "Train the kernel-motion protocol (both parameterizations, widths on a log2 grid up to the "
         "cap, 3 seeds) through the shared cache; report ‖Θ_T − Θ_0‖_F/‖Θ_0‖_F against width with a "
         "fitted log–log slope and CI, the kernel velocity and the centered kernel–target alignment "
         "over epochs, and live verdicts."),
        ("infinite-width", cmd_infinite_width,
         "the infinite-width limit: kernel error vs width, NTK/NNGP predictors vs finite nets",
         "Relative distance of the empirical NTK and NNGP at init to the infinite-width kernels "
         "against width (slope ≈ −1/2 expected), and NTK regression / NNGP posterior mean / the "
         "infinite-width linear model against trained finite networks, with live verdicts."),
    )
    for name, handler, help_, desc in specs:
        sp = subparsers.add_parser(name, allow_abbrev=False, help=help_, description=desc,
                                   epilog="Kernels are the raw traced Θ (mean over the 10 logits), "
                                          "not divided by n; ratios are scale-free.")
        sp.add_argument("--quick", action="store_true",
                        help="the page's default protocol (n 256, 10 epochs, widths to 512: well under "
                             "a minute on 2 cores); default: the full one (n 1000, 20 epochs, widths to "
                             "1024: minutes). The JSON says which")
        sp.add_argument("--json", action="store_true", help="print one JSON object to stdout")
        from runner.cli import add_network_flags

        add_network_flags(sp)
        common(sp, top=False)
        sp.set_defaults(handler=handler, plan_configs=plan_configs)
