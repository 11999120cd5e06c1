"""The study's claims and the pure decision rules that judge them from measured data.

The app re-tests the claims of a student study ("Regularization effects on NTK
spectrum"). Each claim in :data:`CLAIMS` has a rule in :data:`RULES` (``judge_<claim id>``)
that takes arrays (per seed where training is involved) and returns a :class:`Verdict`
computed from them: a verdict is never written by hand. The runner trains and measures;
this module only decides. Pure NumPy; no JAX, no Streamlit, no project imports.

Kernel convention everywhere: the raw traced kernel Θ_ij = (1/10)·Σ_k ∇θf_k(x_i)·∇θf_k(x_j)
(the mean over the 10 logits of the per-logit kernels), not divided by n.

Rules shared by every training rule (thresholds are module constants, quoted in each
verdict's ``criterion``):

* A change between two settings is compared per seed (paired) and labelled ``up`` /
  ``down`` when |mean change| exceeds both ``NOISE_Z`` standard errors of the paired
  difference and the ``REL_TOL`` relative tolerance; ``flat`` when the change and the
  noise are both within the tolerance; ``noise`` otherwise (cannot tell: inconclusive).
* ``holds`` needs the seed mean AND at least ``ceil(MAJORITY·seeds)`` seeds (2 of 3,
  3 of 4, all of 1 or 2) to show the effect; fewer agreeing seeds give
  ``holds_only_when("only for seeds …")``.
* Any non-finite value (a diverged run or missing data) makes the verdict
  ``inconclusive`` and names the seeds; one seed only is allowed but noted in the
  criterion (no noise estimate: only the relative tolerance separates effect from none).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Sequence

import numpy as np

VERDICTS = ("holds", "holds_only_when", "does_not_hold", "inconclusive")

REL_TOL = 0.02            # smallest relative change that counts as a change
ABS_TOL_FRACTION = 0.02   # same, for quantities that are already fractions (shares, declines)
NOISE_Z = 2.0             # an effect must exceed 2 standard errors of the paired difference
MAJORITY = 2.0 / 3.0      # share of seeds that must agree for "holds"
SPEARMAN_MIN = 0.8        # |rank correlation| that counts as a monotone trend
LINEAR_R2 = 0.95          # R² of y = a + b·n for "approximately linear"
SLOPE_BAND = (0.85, 1.15) # log-log slope band for "approximately linear"
TOP10_SHARE = 0.5         # "most of the trace in the top few": top-10 / trace above this
EPS32 = 1.19e-7           # float32 machine epsilon: relative round-off floor of the kernels
PR_APPROX = 1.5           # participation ratio below which one direction dominates
FLAT_PER_DOUBLING = 0.1   # |Δ ln λ_max| per doubling of width below which the curve is flat
DIP_WIDTHS = (4, 8, 16)   # where the study's "dip near 8" may sit
CDF_REL = 0.01            # count CDF read at t = CDF_REL·λ1 (scale-free)
TRACE_LEVEL = 0.9         # trace share used for the saturation index


# ----------------------------------------------------------------------------- types


@dataclasses.dataclass(frozen=True)
class Claim:
    """One claim of the study: its words, what is measured, and what theory says."""

    id: str
    quote: str                  # the study's words (fragments joined by " … ")
    statistic_definition: str   # what the rule computes from the data
    theory: str                 # what NTK theory says about it (for students)


@dataclasses.dataclass(frozen=True)
class Verdict:
    """A verdict computed by a rule from data.

    ``condition``: for ``holds_only_when`` when the claim holds; otherwise a short reason
    (empty only for ``holds``). ``statistic``: the numbers computed (mean and sd over
    seeds where relevant). ``criterion``: the rule applied, with its thresholds.
    ``per_seed``: per-seed statistics and outcome.
    """

    claim_id: str
    verdict: str
    condition: str
    statistic: dict[str, Any]
    criterion: str
    per_seed: list[dict[str, Any]]

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict={self.verdict!r}; allowed: {VERDICTS}")
        if self.verdict != "holds" and not self.condition:
            raise ValueError(f"a {self.verdict!r} verdict needs a condition or reason")

    def to_json(self) -> dict:
        """Plain JSON types; NaN and ±inf become None."""
        return _plain(dataclasses.asdict(self), json=True)


def _plain(x: Any, *, json: bool = False) -> Any:
    """Python scalars, lists and dicts instead of NumPy types; with ``json`` also
    non-finite floats → None."""
    if isinstance(x, dict):
        return {str(k): _plain(v, json=json) for k, v in x.items()}
    if isinstance(x, np.ndarray):
        return _plain(x.tolist(), json=json)  # also a 0-d array → its scalar
    if isinstance(x, (list, tuple)):
        return [_plain(v, json=json) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return None if json and not math.isfinite(x) else float(x)
    return x


# ----------------------------------------------------------------------------- helpers


@dataclasses.dataclass(frozen=True)
class _Change:
    diff: float    # mean over seeds of (b − a)
    rel: float     # diff / |mean a| (nan when mean a = 0)
    se: float      # standard error of the paired difference (0 with one seed)
    label: str     # "up", "down", "flat" or "noise"


def _change(a: np.ndarray, b: np.ndarray, *, abs_tol: float | None = None) -> _Change:
    """Paired change a → b over seeds, labelled against seed noise and a tolerance."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    d = b - a
    diff = float(d.mean())
    base = abs(float(a.mean()))
    se = float(d.std(ddof=1) / math.sqrt(d.size)) if d.size >= 2 else 0.0
    tol = abs_tol if abs_tol is not None else REL_TOL * base
    noise = NOISE_Z * se
    if abs(diff) > max(noise, tol):
        label = "up" if diff > 0 else "down"
    elif noise <= tol:
        label = "flat"     # the change and its uncertainty are both within tolerance
    else:
        label = "noise"    # too noisy to tell a change from none
    return _Change(diff, diff / base if base > 0 else math.nan, se, label)


def _per_seed(values: Any, ndim: int, name: str) -> np.ndarray:
    """float64 array with a leading seed axis; one dimension fewer means one seed."""
    a = np.asarray(values, dtype=np.float64)
    if a.ndim == ndim - 1:
        a = a[None]
    if a.ndim != ndim or a.shape[0] < 1:
        raise ValueError(f"{name}: expected {ndim} dims (seeds first), got shape {a.shape}")
    return a


def _bad_seeds(*arrays: np.ndarray) -> list[int]:
    """Seeds (leading axis) with any non-finite value in any of the arrays."""
    bad = np.zeros(arrays[0].shape[0], dtype=bool)
    for a in arrays:
        bad |= ~np.isfinite(a.reshape(a.shape[0], -1)).all(axis=1)
    return [int(i) for i in np.flatnonzero(bad)]


def _need(seeds: int) -> int:
    return math.ceil(MAJORITY * seeds - 1e-9)


def _seed_note(seeds: int) -> str:
    if seeds == 1:
        return (" Only 1 seed: no seed-noise estimate, so only the relative tolerance "
                "separates an effect from none; the verdict rests on that single run.")
    if seeds == 2:
        return " Only 2 seeds: the noise estimate is rough, and both seeds must agree."
    return ""


def _common_criterion(seeds: int) -> str:
    return (f" A change counts when it exceeds {NOISE_Z:g} standard errors of the paired "
            f"per-seed difference and {REL_TOL:.0%} of the reference value; 'holds' needs "
            f"the seed mean and ≥ {_need(seeds)}/{seeds} seeds; non-finite values "
            "(diverged runs) → inconclusive." + _seed_note(seeds))


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 0..n−1 with ties averaged."""
    x = np.asarray(x, np.float64)
    r = np.empty(x.size)
    r[np.argsort(x, kind="mergesort")] = np.arange(x.size, dtype=np.float64)
    _, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
    return np.bincount(inv, weights=r)[inv] / counts[inv]


def _spearman(x: Any, y: Any) -> float:
    """Spearman rank correlation; 0 when either side is constant (no monotone trend)."""
    rx, ry = _ranks(np.ravel(x)), _ranks(np.ravel(y))
    rx, ry = rx - rx.mean(), ry - ry.mean()
    den = math.sqrt(float((rx * rx).sum() * (ry * ry).sum()))
    return float((rx * ry).sum() / den) if den > 0 else 0.0


# Two-sided 95% Student t quantiles, dof 1..30 (tested against scipy).
_T975 = (12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004,
         2.262157, 2.228139, 2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905,
         2.109816, 2.100922, 2.093024, 2.085963, 2.079614, 2.073873, 2.068658, 2.063899,
         2.059539, 2.055529, 2.051831, 2.048407, 2.045230, 2.042272)


def _t975(dof: int) -> float:
    """97.5% quantile of Student's t (table to 30 dof, Cornish–Fisher beyond: < 1e-4 off)."""
    if dof < 1:
        return math.inf
    if dof <= len(_T975):
        return _T975[dof - 1]
    z, v = 1.959963984540054, float(dof)
    return (z + (z**3 + z) / (4 * v) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * v**3))


def _fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float]:
    """Least squares y = a + b·x → (b, a, R², standard error of b)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    xc, yc = x - x.mean(), y - y.mean()
    sxx = float((xc * xc).sum())
    b = float((xc * yc).sum() / sxx)
    a = float(y.mean() - b * x.mean())
    ss_res = float(((y - a - b * x) ** 2).sum())
    ss_tot = float((yc * yc).sum())
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else (1.0 if ss_res == 0 else 0.0)
    dof = x.size - 2
    se = math.sqrt(ss_res / dof / sxx) if dof > 0 else math.inf
    return b, a, r2, se


def _mean_sd(x: Sequence[float]) -> tuple[float, float]:
    a = np.asarray(x, np.float64)
    return float(a.mean()), (float(a.std(ddof=1)) if a.size >= 2 else 0.0)


def _seeds_text(ids: Sequence[int], seeds: int) -> str:
    return f"seeds {list(ids)} ({len(ids)}/{seeds})"


def _verdict(claim_id: str, verdict: str, condition: str, statistic: dict, criterion: str,
             per_seed: list[dict]) -> Verdict:
    return Verdict(claim_id, verdict, condition, _plain(statistic), criterion.strip(),
                   _plain(per_seed))


def _nonfinite(claim_id: str, bad: list[int], what: str, statistic: dict, criterion: str) -> Verdict:
    return _verdict(claim_id, "inconclusive",
                    f"non-finite {what} (diverged run or missing data) for seed(s) {bad}; "
                    "such a run cannot be judged — rerun it (e.g. with a smaller learning rate)",
                    statistic, criterion, [{"seed": s, "outcome": "diverged"} for s in bad])


# ------------------------------------------------- claims 1, 2, 7: trend against strength


def _fmt_range(s: np.ndarray, lo: int, hi: int, last: int) -> str:
    if lo == hi:
        return f"λ = {s[lo]:g}"
    if hi == last:
        return f"λ ≥ {s[lo]:g}"
    return f"{s[lo]:g} ≤ λ ≤ {s[hi]:g}"


def _strength_trend(*, claim_id: str, strengths: Any, values: Any, direction: int,
                    abs_tol: float | None, quantity: str, criterion_head: str,
                    extra_statistic: dict | None = None) -> Verdict:
    """Does ``quantity`` move in ``direction`` (−1 down, +1 up) as the strength grows?

    Each strength is compared with the smallest one (the baseline, usually λ = 0); the
    longest contiguous run of strengths where the quantity moved the claimed way relative
    to the baseline, with no significant step the other way inside it, is the range
    where the claim holds. The whole regularized grid → holds; a sub-range →
    holds_only_when that range.
    """
    s = np.asarray(strengths, np.float64).ravel()
    v = _per_seed(values, 2, "values")
    if v.shape[1] != s.size:
        raise ValueError(f"values has {v.shape[1]} strengths, strengths has {s.size}")
    order = np.argsort(s, kind="mergesort")
    s, v = s[order], v[:, order]
    seeds, g_count = v.shape
    want, against = ("down", "up") if direction < 0 else ("up", "down")
    tol_text = f"{abs_tol:g} (absolute)" if abs_tol is not None else f"{REL_TOL:.0%}"
    criterion = (criterion_head + f" Each strength is compared with the smallest ({s[0]:g}) per "
                 f"seed; the claim holds on the longest run of strengths where {quantity} "
                 f"moved {want} beyond noise and tolerance {tol_text}, with no significant "
                 f"step {against} inside it. Whole grid → holds; a sub-range → "
                 f"holds_only_when that range; nowhere {want} but somewhere {against}, or "
                 f"flat everywhere → does_not_hold; otherwise inconclusive. A seed agrees "
                 f"when its own value is {want} from its baseline by more than the tolerance "
                 f"at every strength of that range (Spearman ρ reported)."
                 + _common_criterion(seeds))
    stat: dict[str, Any] = {"strengths": s.tolist(), "n_seeds": seeds, **(extra_statistic or {})}
    if g_count < 3:
        return _verdict(claim_id, "inconclusive", f"need ≥ 3 strengths, got {g_count}", stat,
                        criterion, [])
    bad = _bad_seeds(v)
    if bad:
        return _nonfinite(claim_id, bad, quantity, stat, criterion)

    mean = v.mean(axis=0)
    rho = [_spearman(s, row) for row in v]
    vs_base = [_change(v[:, 0], v[:, g], abs_tol=abs_tol) for g in range(1, g_count)]
    labels = ["baseline"] + [c.label for c in vs_base]
    steps = [_change(v[:, g], v[:, g + 1], abs_tol=abs_tol) for g in range(g_count - 1)]
    rel_seed = [(row[-1] - row[0]) if abs_tol is not None else
                ((row[-1] - row[0]) / abs(row[0]) if row[0] != 0 else math.nan) for row in v]
    stat.update({
        "mean": mean.tolist(),
        "sd": (v.std(axis=0, ddof=1) if seeds > 1 else np.zeros(g_count)).tolist(),
        "change_vs_smallest": [0.0] + [c.diff if abs_tol is not None else c.rel for c in vs_base],
        "spearman_mean": _mean_sd(rho)[0], "spearman_sd": _mean_sd(rho)[1],
        "change_largest_vs_smallest_mean": _mean_sd(rel_seed)[0],
        "change_largest_vs_smallest_sd": _mean_sd(rel_seed)[1],
    })
    labelled = ", ".join(f"λ={s[g]:g}: {labels[g]}" for g in range(1, g_count))

    def seeds_out(ok: list[bool], rho_in: list[float]) -> list[dict]:
        return [{"seed": i, "spearman": rho[i], "spearman_in_range": rho_in[i],
                 "change_largest_vs_smallest": rel_seed[i],
                 "outcome": "agrees" if ok[i] else "disagrees"} for i in range(seeds)]

    eff = [g for g in range(1, g_count) if labels[g] == want]
    if not eff:
        out = seeds_out([False] * seeds, rho)
        stat["n_agree"] = 0
        if any(lab == against for lab in labels[1:]):
            return _verdict(claim_id, "does_not_hold",
                            f"{quantity} moves {against}, never {want}, relative to λ = {s[0]:g} "
                            f"({labelled})", stat, criterion, out)
        if all(lab == "flat" for lab in labels[1:]):
            return _verdict(claim_id, "does_not_hold",
                            f"{quantity} stays within tolerance of λ = {s[0]:g} at every strength",
                            stat, criterion, out)
        return _verdict(claim_id, "inconclusive",
                        f"no strength moves {quantity} beyond seed noise ({labelled})",
                        stat, criterion, out)

    runs: list[list[int]] = []
    for g in eff:
        if runs and g == runs[-1][-1] + 1 and steps[g - 1].label != against:
            runs[-1].append(g)
        else:
            runs.append([g])
    best = max(runs, key=lambda r: (len(r), abs(vs_base[r[-1] - 1].diff)))
    lo, hi = best[0], best[-1]
    idx = [0] + best
    rho_in = [_spearman(s[idx], row[idx]) for row in v]
    ok = []
    for row in v:
        tol = abs_tol if abs_tol is not None else REL_TOL * abs(row[0])
        ok.append(all(direction * (row[g] - row[0]) > tol for g in best))
    agree = [i for i in range(seeds) if ok[i]]
    stat.update({"range_low": float(s[lo]), "range_high": float(s[hi]), "n_agree": len(agree)})
    out = seeds_out(ok, rho_in)
    full = lo == 1 and hi == g_count - 1
    cond = _fmt_range(s, lo, hi, g_count - 1)
    if not full:
        cond += f" (vs λ = {s[0]:g}: {labelled})"
    if len(agree) >= _need(seeds):
        if full:
            return _verdict(claim_id, "holds", "", stat, criterion, out)
        return _verdict(claim_id, "holds_only_when", cond, stat, criterion, out)
    if agree:
        return _verdict(claim_id, "holds_only_when",
                        f"{cond}; only for {_seeds_text(agree, seeds)}", stat, criterion, out)
    return _verdict(claim_id, "inconclusive",
                    f"the seed mean moves {want} for {cond}, but no single seed does so "
                    f"beyond the tolerance", stat, criterion, out)


def _lowers_lambda_max(claim_id: str, reg: str, strengths: Any, lambda_max: Any,
                       epoch: int | None) -> Verdict:
    at = f" at epoch {epoch}" if epoch is not None else ""
    return _strength_trend(
        claim_id=claim_id, strengths=strengths, values=lambda_max, direction=-1, abs_tol=None,
        quantity="λ_max",
        criterion_head=f"λ_max of the traced NTK{at} against the {reg} strength λ.",
        extra_statistic={"epoch": epoch} if epoch is not None else None)


def judge_l2_lowers_lambda_max(*, strengths: Any, lambda_max: Any,
                               epoch: int | None = None) -> Verdict:
    """Claim ``l2_lowers_lambda_max``: λ_max decreases as the L2 strength grows.

    Args:
      strengths: (G,) L2 strengths, G ≥ 3, any order; the smallest (usually 0) is the
        baseline.
      lambda_max: (S, G) λ_max of the traced NTK at one chosen (trained) epoch, per seed and
        strength; (G,) is one seed.
      epoch: the epoch the values come from (reported only).
    """
    return _lowers_lambda_max("l2_lowers_lambda_max", "L2", strengths, lambda_max, epoch)


def judge_l1_lowers_lambda_max(*, strengths: Any, lambda_max: Any,
                               epoch: int | None = None) -> Verdict:
    """Claim ``l1_lowers_lambda_max``: λ_max decreases as the L1 strength grows.

    Args:
      strengths: (G,) L1 strengths, G ≥ 3, any order; the smallest (0 if included) is the
        baseline.
      lambda_max: (S, G) λ_max at one chosen epoch per seed and strength; (G,) is one seed.
      epoch: the epoch the values come from (reported only).
    """
    return _lowers_lambda_max("l1_lowers_lambda_max", "L1", strengths, lambda_max, epoch)


def judge_higher_l2_sharper_decline(*, strengths: Any, lambda_max: Any,
                                    horizon: int | None = None, epochs: Any = None) -> Verdict:
    """Claim ``higher_l2_sharper_decline``: λ_max declines faster under stronger L2.

    The decline of one run is the fitted fraction of λ_max lost over epochs 0..T:
    1 − exp(T·slope) with slope the least-squares slope of ln λ_max against the epoch over
    the recorded epochs ≤ T (robust to one noisy epoch; negative when λ_max rises). Its
    trend against the strength is judged like claim 1, with an absolute tolerance of 0.02
    (2 points of λ_max[0]).

    Args:
      strengths: (G,) L2 strengths, G ≥ 3, any order; the smallest is the baseline.
      lambda_max: (S, G, E'+1) λ_max per seed, strength and recorded epoch (first = init);
        (G, E'+1) is one seed.
      horizon: T, the epochs the decline is measured over (default: the first half of the
        last recorded epoch).
      epochs: (E'+1,) increasing epoch numbers of the columns, the first 0 (default 0..E').
    """
    v = _per_seed(lambda_max, 3, "lambda_max")
    ep = (np.arange(v.shape[2], dtype=np.float64) if epochs is None
          else np.asarray(epochs, dtype=np.float64))
    if ep.shape != (v.shape[2],):
        raise ValueError(f"epochs {ep.shape} do not match lambda_max's last axis {v.shape[2]}")
    last = int(ep[-1]) if ep.size else 0
    t = max(1, last // 2) if horizon is None else int(horizon)
    head = (f"Decline of λ_max over epochs 0..{t} = 1 − exp({t}·slope of ln λ_max), per seed "
            f"and L2 strength; claim: the decline grows with λ.")
    cols = np.flatnonzero(ep <= t)
    if last < 2 or not 1 <= t <= last or cols.size < 2 or ep[0] != 0:
        return _verdict("higher_l2_sharper_decline", "inconclusive",
                        f"need ≥ 2 epochs, 1 ≤ horizon ≤ epochs and ≥ 2 recorded epochs from 0 to "
                        f"the horizon (epochs={last}, horizon={t}, recorded={cols.size})",
                        {"horizon": t, "n_seeds": v.shape[0]}, head, [])
    part = v[:, :, cols]
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(part > 0, np.log(np.where(part > 0, part, 1.0)), np.nan)
    x = ep[cols]
    xc = x - x.mean()
    slope = (logs * xc).sum(axis=-1) / float((xc * xc).sum())  # NaN if any epoch is NaN/≤0
    decline = 1.0 - np.exp(np.clip(slope * t, -50.0, 50.0))
    return _strength_trend(
        claim_id="higher_l2_sharper_decline", strengths=strengths, values=decline,
        direction=+1, abs_tol=ABS_TOL_FRACTION, quantity="decline of λ_max",
        criterion_head=head,
        extra_statistic={"horizon": t, "decline_per_seed": decline.tolist()})


# ----------------------------------------------------------- claim 3: falls, then rises


def _interior_min(row: np.ndarray) -> tuple[int, float, float, bool]:
    """(argmin, relative fall to it, relative rise after it, fall and rise both > REL_TOL)."""
    e = int(np.argmin(row))
    fall = (row[0] - row[e]) / abs(row[0]) if row[0] != 0 else 0.0
    rise = (row[-1] - row[e]) / abs(row[e]) if row[e] != 0 else 0.0
    return e, float(fall), float(rise), 0 < e < row.size - 1 and fall > REL_TOL and rise > REL_TOL


def judge_lambda_max_falls_min_rises(*, lambda_max: Any, epochs: Any = None) -> Verdict:
    """Claim ``lambda_max_falls_min_rises``: over training λ_max falls, reaches an interior
    minimum, then rises.

    Args:
      lambda_max: (S, E+1) λ_max per seed and recorded epoch (first = init), E+1 ≥ 3;
        (E+1,) is one seed.
      epochs: (E+1,) epoch numbers of the columns (default 0..E), reported only.
    """
    cid = "lambda_max_falls_min_rises"
    v = _per_seed(lambda_max, 2, "lambda_max")
    seeds, t = v.shape
    ep = np.arange(t, dtype=np.float64) if epochs is None else np.asarray(epochs, np.float64)
    criterion = (f"On the seed-mean curve, e* = argmin λ_max must be interior (not the first "
                 f"or last epoch), the fall λ_max[0] → λ_max[e*] must be 'down' and the rise "
                 f"λ_max[e*] → λ_max[last] 'up' (paired over seeds). Per seed: interior argmin "
                 f"with fall and rise each > {REL_TOL:.0%}. Some but too few seeds → "
                 "holds_only_when those seeds; a fall without a rise, a rise from the start, "
                 "or a flat curve → does_not_hold; a part within noise → inconclusive."
                 + _common_criterion(seeds))
    stat: dict[str, Any] = {"n_seeds": seeds, "epochs": ep.tolist()}
    if t < 3:
        return _verdict(cid, "inconclusive", f"need ≥ 3 recorded epochs, got {t}", stat, criterion, [])
    bad = _bad_seeds(v)
    if bad:
        return _nonfinite(cid, bad, "λ_max", stat, criterion)
    mean = v.mean(axis=0)
    e = int(np.argmin(mean))
    fall, rise = _change(v[:, 0], v[:, e]), _change(v[:, e], v[:, -1])
    mean_ok = 0 < e < t - 1 and fall.label == "down" and rise.label == "up"
    out, agree, es = [], [], []
    for i, row in enumerate(v):
        es_i, f_i, r_i, ok = _interior_min(row)
        es.append(float(ep[es_i]))
        outcome = ("falls_then_rises" if ok else "falls_only" if f_i > REL_TOL
                   else "rises_only" if r_i > REL_TOL else "flat")
        out.append({"seed": i, "argmin_epoch": float(ep[es_i]), "fall": f_i, "rise": r_i,
                    "outcome": outcome})
        if ok:
            agree.append(i)
    stat.update({"mean": mean.tolist(), "argmin_epoch_mean_curve": float(ep[e]),
                 "argmin_epoch_mean": _mean_sd(es)[0], "argmin_epoch_sd": _mean_sd(es)[1],
                 "fall_rel": fall.rel, "rise_rel": rise.rel, "n_agree": len(agree)})
    if mean_ok and len(agree) >= _need(seeds):
        return _verdict(cid, "holds", "", stat, criterion, out)
    if agree:
        tail = "" if mean_ok else "; the seed-mean curve does not"
        return _verdict(cid, "holds_only_when",
                        f"falls then rises only for {_seeds_text(agree, seeds)}{tail}",
                        stat, criterion, out)
    if mean_ok:
        return _verdict(cid, "inconclusive", "the seed-mean curve falls then rises, but no "
                        f"single seed does by more than {REL_TOL:.0%}", stat, criterion, out)
    if e == 0:
        reason = ("λ_max never falls below its initial value (minimum at the first epoch)"
                  + ("; it rises" if rise.label == "up" else ""))
        return _verdict(cid, "does_not_hold", reason, stat, criterion, out)
    if "noise" in (fall.label, rise.label):
        return _verdict(cid, "inconclusive",
                        f"fall {fall.label}, rise {rise.label}: within seed noise",
                        stat, criterion, out)
    reason = ("λ_max falls and does not rise again" if fall.label == "down"
              else f"λ_max stays within {REL_TOL:.0%} of its initial value")
    return _verdict(cid, "does_not_hold", reason, stat, criterion, out)


# ------------------------------------------- claim 4: λ_max minimum vs best validation


def judge_min_coincides_with_overfitting(*, lambda_max: Any, val_loss: Any, epochs: Any = None,
                                         tolerance: float | None = None) -> Verdict:
    """Claim ``min_coincides_with_overfitting``: λ_max's minimum marks the onset of
    overfitting (the best-validation epoch).

    Args:
      lambda_max: (S, E+1) λ_max per seed and recorded epoch; (E+1,) is one seed.
      val_loss: (S, E+1) validation loss at the same epochs.
      epochs: (E+1,) epoch numbers of the columns (default 0..E).
      tolerance: largest |epoch gap| that counts as coinciding (default
        max(2, 10% of the epoch span)).
    """
    cid = "min_coincides_with_overfitting"
    v = _per_seed(lambda_max, 2, "lambda_max")
    val = _per_seed(val_loss, 2, "val_loss")
    if v.shape != val.shape:
        raise ValueError(f"lambda_max {v.shape} and val_loss {val.shape} differ in shape")
    seeds, t = v.shape
    ep = np.arange(t, dtype=np.float64) if epochs is None else np.asarray(epochs, np.float64)
    tol = float(tolerance) if tolerance is not None else max(2.0, 0.1 * float(ep[-1] - ep[0]))
    criterion = (f"Per seed: the epoch of λ_max's interior minimum (fall and rise > {REL_TOL:.0%}) "
                 f"vs the best-validation epoch (interior, validation loss then rising > "
                 f"{REL_TOL:.0%}); they coincide when |gap| ≤ {tol:g} epochs. Holds when "
                 f"≥ {_need(seeds)}/{seeds} seeds coincide and the mean gap ≤ {tol:g}; some "
                 f"seeds → holds_only_when those; ≥ {_need(seeds)} comparable seeds all apart → "
                 "does_not_hold; too few comparable seeds (no interior minimum or no "
                 "overfitting) → inconclusive; non-finite values → inconclusive."
                 + _seed_note(seeds))
    stat: dict[str, Any] = {"n_seeds": seeds, "tolerance_epochs": tol}
    if t < 3:
        return _verdict(cid, "inconclusive", f"need ≥ 3 recorded epochs, got {t}", stat, criterion, [])
    bad = _bad_seeds(v, val)
    if bad:
        return _nonfinite(cid, bad, "λ_max or validation loss", stat, criterion)
    out, gaps, coincide, apart, best_epochs = [], [], [], [], []
    for i in range(seeds):
        e_l, _, _, has_min = _interior_min(v[i])
        e_v = int(np.argmin(val[i]))
        best_epochs.append(float(ep[e_v]))
        overfits = 0 < e_v < t - 1 and val[i, -1] - val[i, e_v] > REL_TOL * abs(val[i, e_v])
        gap = abs(float(ep[e_l] - ep[e_v]))
        if not has_min:
            outcome = "no_lambda_min"
        elif not overfits:
            outcome = "no_overfitting"
        else:
            gaps.append(gap)
            outcome = "coincides" if gap <= tol else "apart"
            (coincide if gap <= tol else apart).append(i)
        out.append({"seed": i, "lambda_min_epoch": float(ep[e_l]), "best_val_epoch": float(ep[e_v]),
                    "gap_epochs": gap, "outcome": outcome})
    gap_mean, gap_sd = _mean_sd(gaps) if gaps else (math.nan, math.nan)
    stat.update({"gap_mean": gap_mean, "gap_sd": gap_sd, "n_comparable": len(gaps),
                 "n_coincide": len(coincide), "best_val_epoch_mean": _mean_sd(best_epochs)[0],
                 "best_val_epoch_sd": _mean_sd(best_epochs)[1]})
    if len(coincide) >= _need(seeds) and gap_mean <= tol:
        return _verdict(cid, "holds", "", stat, criterion, out)
    if coincide:
        return _verdict(cid, "holds_only_when", f"only for {_seeds_text(coincide, seeds)}",
                        stat, criterion, out)
    if len(apart) >= _need(seeds):
        return _verdict(cid, "does_not_hold",
                        f"λ_max's minimum is {gap_mean:.1f} ± {gap_sd:.1f} epochs from the "
                        f"best-validation epoch (tolerance {tol:g})", stat, criterion, out)
    return _verdict(cid, "inconclusive",
                    f"only {len(gaps)}/{seeds} seeds have both an interior λ_max minimum and a "
                    "validation minimum followed by a rise", stat, criterion, out)


# ------------------------------------------------------ claims 5, 6: growth with n


@dataclasses.dataclass(frozen=True)
class _Growth:
    label: str            # "linear", "nonlinear", "down", "flat" or "noise"
    holds: bool           # linear on the mean and for the majority of seeds
    slope: float          # log-log slope of the seed-mean curve
    ci: tuple[float, float]
    r2: float             # R² of y = a + b·n on the seed-mean curve
    statistic: dict
    per_seed: list[dict]
    agree: list[int]


def _is_linear(slope: float, lo: float, hi: float, r2: float) -> bool:
    return r2 >= LINEAR_R2 and (SLOPE_BAND[0] <= slope <= SLOPE_BAND[1] or lo <= 1.0 <= hi)


def _loglog(ns: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float]:
    b, _, _, se = _fit(np.log(ns), np.log(y))
    half = _t975(ns.size - 2) * se
    _, _, r2, _ = _fit(ns, y)
    return b, b - half, b + half, r2


def _growth(ns: np.ndarray, y: np.ndarray, name: str) -> _Growth:
    """Growth of y (S, m) with n: direction (paired smallest vs largest n) and linearity."""
    seeds = y.shape[0]
    mean = y.mean(axis=0)
    ch = _change(y[:, 0], y[:, -1])
    slope, lo, hi, r2 = _loglog(ns, mean)
    b, a, _, _ = _fit(ns, mean)
    out, agree, slopes = [], [], []
    for i, row in enumerate(y):
        s_i, lo_i, hi_i, r2_i = _loglog(ns, row)
        grows = row[-1] - row[0] > REL_TOL * abs(row[0])
        ok = grows and _is_linear(s_i, lo_i, hi_i, r2_i)
        slopes.append(s_i)
        out.append({"seed": i, f"{name}_loglog_slope": s_i, f"{name}_slope_ci_low": lo_i,
                    f"{name}_slope_ci_high": hi_i, f"{name}_r2_linear": r2_i,
                    "outcome": "linear_growth" if ok else "grows_nonlinearly" if grows else "no_growth"})
        if ok:
            agree.append(i)
    linear = _is_linear(slope, lo, hi, r2)
    label = ("noise" if ch.label == "noise" else "down" if ch.label == "down" else "flat"
             if ch.label == "flat" else "linear" if linear else "nonlinear")
    stat = {f"{name}_mean": mean.tolist(),
            f"{name}_sd": (y.std(axis=0, ddof=1) if seeds > 1 else np.zeros(mean.size)).tolist(),
            f"{name}_loglog_slope": slope, f"{name}_slope_ci_low": lo, f"{name}_slope_ci_high": hi,
            f"{name}_loglog_slope_seed_mean": _mean_sd(slopes)[0],
            f"{name}_loglog_slope_seed_sd": _mean_sd(slopes)[1],
            f"{name}_linear_fit_slope": b, f"{name}_linear_fit_intercept": a,
            f"{name}_r2_linear": r2, f"{name}_spearman": _spearman(ns, mean),
            f"{name}_change_rel": ch.rel}
    return _Growth(label, label == "linear" and len(agree) >= _need(seeds), slope, (lo, hi), r2,
                   stat, out, agree)


def _growth_criterion(name: str, m: int, seeds: int) -> str:
    return (f"{name} vs n: the paired change from the smallest to the largest n must be 'up'; "
            f"'approximately linear' = R² of {name} = a + b·n (seed mean) ≥ {LINEAR_R2:g} and "
            f"(log-log slope in [{SLOPE_BAND[0]:g}, {SLOPE_BAND[1]:g}] or its 95% t-interval "
            f"({m - 2} dof) contains 1); per seed the same test on that seed's curve.")


def _growth_input(ns: Any, arrays: dict[str, Any]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    n = np.asarray(ns, np.float64).ravel()
    if np.unique(n).size != n.size or not (n > 0).all():
        raise ValueError(f"ns must be distinct positive sizes, got {n.tolist()}")
    order = np.argsort(n, kind="mergesort")
    out = {}
    for k, a in arrays.items():
        a = _per_seed(a, 2, k)
        if a.shape[1] != n.size:
            raise ValueError(f"{k} has {a.shape[1]} sizes, ns has {n.size}")
        out[k] = a[:, order]
    return n[order], out


def _positive_bad(*arrays: np.ndarray) -> list[int]:
    """Seeds with non-finite or non-positive values (a log-log fit needs y > 0)."""
    bad = _bad_seeds(*arrays)
    for a in arrays:
        with np.errstate(invalid="ignore"):
            bad += [int(i) for i in np.flatnonzero((a <= 0).any(axis=1))]
    return sorted(set(bad))


def judge_lambda_max_grows_with_n(*, ns: Any, lambda_max: Any) -> Verdict:
    """Claim ``lambda_max_grows_with_n``: λ_max grows, approximately linearly, with n.

    Args:
      ns: (m,) training-set sizes, m ≥ 3, any order.
      lambda_max: (S, m) λ_max of the traced NTK (raw, not divided by n) per seed and size;
        (m,) is one seed.
    """
    cid = "lambda_max_grows_with_n"
    n, arr = _growth_input(ns, {"lambda_max": lambda_max})
    y = arr["lambda_max"]
    seeds, m = y.shape
    criterion = (_growth_criterion("λ_max", m, seeds) + " Linear on the mean and for the "
                 "seed majority → holds; grows but not linearly → holds_only_when; falls or flat "
                 "→ does_not_hold; within noise → inconclusive." + _common_criterion(seeds))
    stat: dict[str, Any] = {"ns": n.tolist(), "n_seeds": seeds}
    if m < 3:
        return _verdict(cid, "inconclusive", f"need ≥ 3 sizes, got {m}", stat, criterion, [])
    bad = _positive_bad(y)
    if bad:
        return _nonfinite(cid, bad, "or non-positive λ_max", stat, criterion)
    g = _growth(n, y, "lambda_max")
    stat.update(g.statistic)
    stat["n_agree"] = len(g.agree)
    if g.label == "noise":
        return _verdict(cid, "inconclusive", "the change with n is within seed noise", stat,
                        criterion, g.per_seed)
    if g.label in ("down", "flat"):
        return _verdict(cid, "does_not_hold", "λ_max " + ("decreases with n" if g.label == "down"
                        else f"stays within {REL_TOL:.0%} as n grows"), stat, criterion, g.per_seed)
    if g.label == "nonlinear":
        return _verdict(cid, "holds_only_when", f"grows, but {_nonlinear_text(g)}", stat,
                        criterion, g.per_seed)
    if g.holds:
        return _verdict(cid, "holds", "", stat, criterion, g.per_seed)
    return _verdict(cid, "holds_only_when", f"grows linearly on the seed mean, but only "
                    f"{_seeds_text(g.agree, seeds)} pass individually", stat, criterion, g.per_seed)


def _nonlinear_text(g: _Growth) -> str:
    """How a growing curve fails the linearity test ("as n^0.50, not linearly")."""
    if SLOPE_BAND[0] <= g.slope <= SLOPE_BAND[1] or g.ci[0] <= 1.0 <= g.ci[1]:
        return f"roughly as n^{g.slope:.2f}, with a poor straight-line fit (R² = {g.r2:.2f})"
    return f"as n^{g.slope:.2f}, not linearly"


def judge_trace_linear_in_n(*, ns: Any, trace: Any, top10: Any, lambda_max: Any) -> Verdict:
    """Claim ``trace_linear_in_n``: tr Θ grows ~linearly with n, and most of it sits in
    the top few eigenvalues.

    Args:
      ns: (m,) training-set sizes, m ≥ 3, any order.
      trace: (S, m) tr Θ per seed and size; (m,) is one seed.
      top10: (S, m) sum of the 10 largest eigenvalues (all of them when n < 10).
      lambda_max: (S, m) λ_max (for λ1 / trace).
    """
    cid = "trace_linear_in_n"
    n, arr = _growth_input(ns, {"trace": trace, "top10": top10, "lambda_max": lambda_max})
    tr, t10, l1 = arr["trace"], arr["top10"], arr["lambda_max"]
    seeds, m = tr.shape
    criterion = (_growth_criterion("trace", m, seeds) + f" Second part: the seed mean of "
                 f"top-10 / trace > {TOP10_SHARE:g} at every n. Both parts → holds; one → "
                 "holds_only_when naming it; neither → does_not_hold; the trace change within "
                 "noise → inconclusive." + _common_criterion(seeds))
    stat: dict[str, Any] = {"ns": n.tolist(), "n_seeds": seeds}
    if m < 3:
        return _verdict(cid, "inconclusive", f"need ≥ 3 sizes, got {m}", stat, criterion, [])
    bad = _positive_bad(tr, t10, l1)
    if bad:
        return _nonfinite(cid, bad, "or non-positive trace / eigenvalues", stat, criterion)
    g = _growth(n, tr, "trace")
    share10, share1 = t10 / tr, l1 / tr
    top_mean = share10.mean(axis=0)
    concentrated = bool((top_mean > TOP10_SHARE).all())
    stat.update(g.statistic)
    stat.update({"top10_share_mean": top_mean.tolist(),
                 "top10_share_sd": (share10.std(axis=0, ddof=1) if seeds > 1 else 0 * top_mean).tolist(),
                 "lambda1_share_mean": share1.mean(axis=0).tolist(),
                 "lambda1_share_sd": (share1.std(axis=0, ddof=1) if seeds > 1 else 0 * top_mean).tolist(),
                 "n_agree": len(g.agree)})
    out = [dict(row, top10_share_min=float(share10[i].min()),
                lambda1_share_mean=float(share1[i].mean())) for i, row in enumerate(g.per_seed)]
    lo_txt, hi_txt = f"{top_mean.min():.0%}", f"{top_mean.max():.0%}"
    top_text = f"top-10 / trace = {lo_txt}" + (f"–{hi_txt}" if hi_txt != lo_txt else "")
    if g.label == "noise":
        return _verdict(cid, "inconclusive", f"the change of the trace with n is within seed "
                        f"noise ({top_text})", stat, criterion, out)
    if g.holds and concentrated:
        return _verdict(cid, "holds", "", stat, criterion, out)
    if g.holds:
        return _verdict(cid, "holds_only_when", f"the trace grows linearly (n^{g.slope:.2f}), "
                        f"but the top 10 eigenvalues do not hold most of it ({top_text})",
                        stat, criterion, out)
    if g.label == "linear":
        why = f"linear on the seed mean but only {_seeds_text(g.agree, seeds)} individually"
    elif g.label == "nonlinear":
        why = f"the trace grows {_nonlinear_text(g)}"
    else:
        why = "the trace " + ("decreases with n" if g.label == "down" else "does not grow with n")
    if concentrated:
        return _verdict(cid, "holds_only_when", f"most of the trace is in the top 10 "
                        f"({top_text}), but {why}", stat, criterion, out)
    return _verdict(cid, "does_not_hold", f"{why}; and {top_text}", stat, criterion, out)


# ------------------------------------------------------------- claim 8: width 1, rank 1


def _spectra(eigenvalues: Any) -> list[np.ndarray]:
    """A (S, n) array, an (n,) array (one seed) or a sequence of 1-D arrays."""
    if isinstance(eigenvalues, np.ndarray) or not isinstance(eigenvalues, (list, tuple)):
        a = np.asarray(eigenvalues, np.float64)
        return [a] if a.ndim == 1 else [row for row in a]
    if eigenvalues and np.ndim(eigenvalues[0]) == 0:
        return [np.asarray(eigenvalues, np.float64)]
    return [np.asarray(e, np.float64).ravel() for e in eigenvalues]


def judge_width_1_rank_1(*, eigenvalues: Any, tol: float | None = None) -> Verdict:
    """Claim ``width_1_rank_1``: the width-1 NTK is rank-1 (judged on the WHOLE spectrum).

    Args:
      eigenvalues: all n eigenvalues of the width-1 traced Θ per seed: (S, n), (n,) for one
        seed, or a sequence of S 1-D arrays (lengths may differ).
      tol: relative threshold of the numerical rank (default n·EPS32, the float32
        round-off floor of an n×n kernel).
    """
    cid = "width_1_rank_1"
    specs = _spectra(eigenvalues)
    seeds = len(specs)
    tol_text = f"{tol:g}" if tol is not None else f"n·{EPS32:g}"
    criterion = (f"Per seed, on all eigenvalues: numerical rank = #{{λ_i > tol·λ_max}} with tol = "
                 f"{tol_text}; participation ratio PR = (Σλ)²/Σλ² (negative round-off clipped "
                 f"to 0). Rank 1 for ≥ {_need(seeds)}/{seeds} seeds → holds; otherwise PR < "
                 f"{PR_APPROX:g} (one direction carries almost all of the trace) for that many → "
                 f"holds_only_when (approximately); PR ≥ {PR_APPROX:g} for that many → "
                 "does_not_hold; mixed seeds → inconclusive." + _seed_note(seeds))
    stat: dict[str, Any] = {"n_seeds": seeds}
    if seeds == 0:
        return _verdict(cid, "inconclusive", "no spectra given", stat, criterion, [])
    bad = [i for i, e in enumerate(specs) if e.size == 0 or not np.isfinite(e).all()]
    if bad:
        return _nonfinite(cid, bad, "eigenvalues", stat, criterion)
    if min(e.size for e in specs) < 2:
        return _verdict(cid, "inconclusive", "a 1×1 kernel is rank-1 trivially; need n ≥ 2",
                        stat, criterion, [])
    out, ranks, prs, shares = [], [], [], []
    for i, e in enumerate(specs):
        lam = np.sort(e)[::-1]
        if lam[0] <= 0:
            return _verdict(cid, "inconclusive", f"seed {i}: the kernel is zero (λ_max ≤ 0)",
                            stat, criterion, [])
        t = tol if tol is not None else lam.size * EPS32
        rank = int((lam > t * lam[0]).sum())
        pos = np.clip(lam, 0.0, None)
        pr = float(pos.sum() ** 2 / (pos * pos).sum())
        share = float(lam[0] / pos.sum())
        ranks.append(rank)
        prs.append(pr)
        shares.append(share)
        outcome = "rank_1" if rank == 1 else "approximately_rank_1" if pr < PR_APPROX else "not_rank_1"
        out.append({"seed": i, "n": int(lam.size), "tol": float(t), "numerical_rank": rank,
                    "participation_ratio": pr, "lambda1_share": share,
                    "lambda2_over_lambda1": float(lam[1] / lam[0]), "outcome": outcome})
    k1 = sum(o["outcome"] == "rank_1" for o in out)
    ka = sum(o["outcome"] == "approximately_rank_1" for o in out)
    stat.update({"numerical_rank_mean": _mean_sd(ranks)[0], "numerical_rank_sd": _mean_sd(ranks)[1],
                 "numerical_rank_min": min(ranks), "numerical_rank_max": max(ranks),
                 "participation_ratio_mean": _mean_sd(prs)[0],
                 "participation_ratio_sd": _mean_sd(prs)[1],
                 "lambda1_share_mean": _mean_sd(shares)[0], "n_rank_1": k1})
    rank_text = f"{min(ranks)}" if min(ranks) == max(ranks) else f"{min(ranks)}–{max(ranks)}"
    pr_text = f"PR={_mean_sd(prs)[0]:.2f}"
    need = _need(seeds)
    if k1 >= need:
        return _verdict(cid, "holds", "", stat, criterion, out)
    if k1 + ka >= need:
        return _verdict(cid, "holds_only_when",
                        f"approximately: one eigenvalue carries almost all of the trace ({pr_text}, "
                        f"λ1/trace={_mean_sd(shares)[0]:.0%}) though numerical rank is {rank_text}",
                        stat, criterion, out)
    if seeds - k1 - ka >= need:
        return _verdict(cid, "does_not_hold", f"numerical rank {rank_text} and {pr_text}: several "
                        "directions carry the trace", stat, criterion, out)
    return _verdict(cid, "inconclusive", f"seeds disagree (rank {rank_text}, {pr_text})",
                    stat, criterion, out)


# ------------------------------------------------ claim 9: dip, rise, flatten with width


def judge_width_dip_rise_flatten(*, widths: Any, lambda_max: Any) -> Verdict:
    """Claim ``width_dip_rise_flatten``: λ_max dips near width 8, rises again over 16→32,
    and flattens beyond ≈ 32.

    Args:
      widths: (W,) hidden widths (a log2 grid), any order. Needed: a width in {4, 8, 16}
        with a neighbour on each side, both 16 and 32, and two or more widths ≥ 32.
      lambda_max: (S, W) λ_max per seed and width (one epoch); (W,) is one seed.
    """
    cid = "width_dip_rise_flatten"
    w = np.asarray(widths, np.float64).ravel()
    v = _per_seed(lambda_max, 2, "lambda_max")
    if v.shape[1] != w.size:
        raise ValueError(f"lambda_max has {v.shape[1]} widths, widths has {w.size}")
    if np.unique(w).size != w.size or not (w > 0).all():
        raise ValueError(f"widths must be distinct and positive, got {w.tolist()}")
    order = np.argsort(w, kind="mergesort")
    w, v = w[order], v[:, order]
    seeds, n_w = v.shape
    need = _need(seeds)
    criterion = (f"Three parts on the seed-mean curve, each also needing ≥ {need}/{seeds} seeds "
                 f"(per seed: changes > {REL_TOL:.0%}). Dip: at some width in {list(DIP_WIDTHS)}, "
                 "λ_max falls 'down' from the left neighbour and rises 'up' to the right one. "
                 "Rise: 16 → 32 'up'. Flatten: for consecutive widths ≥ 32, |Δ ln λ_max| per "
                 f"doubling < {FLAT_PER_DOUBLING:g}. All three → holds; some → holds_only_when "
                 "naming them; none → does_not_hold, unless a part is within seed noise "
                 "(inconclusive); a missing width → inconclusive." + _common_criterion(seeds))
    stat: dict[str, Any] = {"widths": w.tolist(), "n_seeds": seeds}
    pos = {float(x): i for i, x in enumerate(w)}
    dip_at = [pos[d] for d in DIP_WIDTHS if d in pos and 0 < pos[d] < n_w - 1]
    flat_pairs = [j for j in range(n_w - 1) if w[j] >= 32]
    missing = ([] if dip_at else [f"a width in {list(DIP_WIDTHS)} with neighbours (dip)"]) + \
        ([] if 16.0 in pos and 32.0 in pos else ["widths 16 and 32 (rise)"]) + \
        ([] if flat_pairs else ["two widths ≥ 32 (flatten)"])
    if missing:
        return _verdict(cid, "inconclusive", "missing " + "; ".join(missing), stat, criterion, [])
    bad = _positive_bad(v)
    if bad:
        return _nonfinite(cid, bad, "or non-positive λ_max", stat, criterion)
    mean = v.mean(axis=0)
    i16, i32 = pos[16.0], pos[32.0]

    # Mean-level parts: True, False, or None (within seed noise).
    dip_mean, dip_width = False, math.nan
    for i in dip_at:
        left, right = _change(v[:, i - 1], v[:, i]).label, _change(v[:, i], v[:, i + 1]).label
        if left == "down" and right == "up":
            dip_mean, dip_width = True, float(w[i])
            break
        if left in ("down", "noise") and right in ("up", "noise"):
            dip_mean = None
    rise_label = _change(v[:, i16], v[:, i32]).label
    rise_mean = True if rise_label == "up" else None if rise_label == "noise" else False
    rates = [abs(math.log(mean[j + 1] / mean[j])) / math.log2(w[j + 1] / w[j]) for j in flat_pairs]
    flat_mean: bool | None = True
    for j, r in zip(flat_pairs, rates):
        if r >= FLAT_PER_DOUBLING:
            lab = _change(v[:, j], v[:, j + 1]).label
            flat_mean = False if lab in ("up", "down") else (None if flat_mean is not False else False)

    out, counts = [], {"dip": 0, "rise": 0, "flatten": 0}
    for s, row in enumerate(v):
        dip = any(row[i - 1] - row[i] > REL_TOL * row[i - 1] and row[i + 1] - row[i] > REL_TOL * row[i]
                  for i in dip_at)
        rise = row[i32] - row[i16] > REL_TOL * row[i16]
        flat = all(abs(math.log(row[j + 1] / row[j])) / math.log2(w[j + 1] / w[j]) < FLAT_PER_DOUBLING
                   for j in flat_pairs)
        for k, val in (("dip", dip), ("rise", rise), ("flatten", flat)):
            counts[k] += int(val)
        out.append({"seed": s, "dip": int(dip), "rise": int(rise), "flatten": int(flat),
                    "outcome": ", ".join(k for k, val in (("dip", dip), ("rise", rise),
                                                           ("flatten", flat)) if val) or "none"})

    def part(mean_val: bool | None, k: str) -> bool | None:
        if mean_val is True:
            return True if counts[k] >= need else None   # mean shows it, seeds do not agree
        return mean_val

    parts = {"dip": part(dip_mean, "dip"), "rise": part(rise_mean, "rise"),
             "flatten": part(flat_mean, "flatten")}
    stat.update({"mean": mean.tolist(),
                 "sd": (v.std(axis=0, ddof=1) if seeds > 1 else 0 * mean).tolist(),
                 "dip_width": dip_width,
                 "rise_rel": float((mean[i32] - mean[i16]) / mean[i16]),
                 "flatten_rate_per_doubling": rates,
                 "flatten_rate_max": max(rates),
                 **{f"n_seeds_{k}": c for k, c in counts.items()},
                 **{f"{k}_holds": (1.0 if p else 0.0) if p is not None else math.nan
                    for k, p in parts.items()}})
    yes = [k for k, p in parts.items() if p is True]
    unsure = [k for k, p in parts.items() if p is None]
    no = [k for k, p in parts.items() if p is False]
    if len(yes) == 3:
        return _verdict(cid, "holds", "", stat, criterion, out)
    if yes:
        rest = (f"; not: {', '.join(no)}" if no else "") + \
            (f"; within noise: {', '.join(unsure)}" if unsure else "")
        return _verdict(cid, "holds_only_when", f"only these parts hold: {', '.join(yes)}{rest}",
                        stat, criterion, out)
    if unsure:
        return _verdict(cid, "inconclusive", f"no part holds clearly; within noise or not "
                        f"consistent across seeds: {', '.join(unsure)}", stat, criterion, out)
    return _verdict(cid, "does_not_hold", "no dip, no rise over 16→32, and no flattening beyond 32",
                    stat, criterion, out)


# ----------------------------------------------- claim 10: larger λ1, CDF saturates late


def judge_cdf_saturates_late(*, spectra: Any, labels: Sequence[str] | None = None,
                             rel_threshold: float = CDF_REL) -> Verdict:
    """Claim ``cdf_saturates_late``: a larger first eigenvalue means fewer small eigenvalues
    and a CDF that saturates late — judged with scale-free statistics.

    Args:
      spectra: two or more whole spectra (all eigenvalues of a traced Θ each), e.g. for
        different strengths or epochs: a sequence of 1-D arrays (lengths may differ) or (K, n).
      labels: K names for the spectra (reported only; default "0", "1", …).
      rel_threshold: c in the count CDF F(c·λ1) (default 0.01).
    """
    cid = "cdf_saturates_late"
    specs = _spectra(spectra)
    k = len(specs)
    names = [str(x) for x in labels] if labels is not None else [str(i) for i in range(k)]
    if len(names) != k:
        raise ValueError(f"{len(names)} labels for {k} spectra")
    criterion = (
        f"On the raw count CDF F(t) = #{{λ_i ≤ t}}/n, λ1 is 1/n of the mass and F reaches 1 "
        f"exactly at t = λ1, so a larger λ1 'saturates later' by construction; not tested. "
        f"Scale-free, across spectra ordered by λ1: (count) F({rel_threshold:g}·λ1), the "
        f"fraction of eigenvalues below {rel_threshold:g}·λ1, should fall as λ1 grows (fewer "
        f"small eigenvalues); (trace-weighted) W(t) = Σ_{{λ_i ≤ t}} λ_i / Σλ_i jumps by λ1/Σλ "
        f"at t = λ1, so a larger share λ1/Σλ keeps W low until λ1 (it reaches {TRACE_LEVEL:g} "
        f"at a later eigenvalue index) and should rise with λ1. A part holds when Spearman "
        f"ρ(λ1, statistic) is ≥ {SPEARMAN_MIN:g} in the claimed direction and the change "
        f"from the smallest to the largest λ1 exceeds {ABS_TOL_FRACTION:g}; fails when ρ is "
        f"0 or against, or the change is within {ABS_TOL_FRACTION:g}; otherwise within noise. "
        "Both → holds; one → holds_only_when on that CDF only; none → does_not_hold (or "
        f"inconclusive when a part is within noise). λ1 must differ by > {REL_TOL:.0%} "
        "across spectra. Negative round-off eigenvalues are clipped to 0 for the trace.")
    stat: dict[str, Any] = {"n_spectra": k}
    if k < 2:
        return _verdict(cid, "inconclusive", f"need ≥ 2 spectra, got {k}", stat, criterion, [])
    bad = [i for i, e in enumerate(specs) if e.size < 2 or not np.isfinite(e).all()]
    if bad:
        return _verdict(cid, "inconclusive", f"spectra {[names[i] for i in bad]} are empty or "
                        "non-finite (diverged run or missing data)", stat, criterion,
                        [{"spectrum": i, "label": names[i], "outcome": "diverged"} for i in bad])
    out, l1, f_small, share1 = [], [], [], []
    for i, e in enumerate(specs):
        lam = np.sort(e)[::-1]
        pos = np.clip(lam, 0.0, None)
        total = float(pos.sum())
        if lam[0] <= 0 or total <= 0:
            return _verdict(cid, "inconclusive", f"spectrum {names[i]} is zero", stat, criterion, [])
        f = float((lam <= rel_threshold * lam[0]).mean())
        sh = float(lam[0] / total)
        top_cum = np.cumsum(pos) / total
        k90 = int(np.searchsorted(top_cum, TRACE_LEVEL - 1e-12) + 1)          # from the top
        asc_cum = np.cumsum(pos[::-1]) / total
        j90 = int(np.searchsorted(asc_cum, TRACE_LEVEL - 1e-12) + 1)          # ascending W
        l1.append(float(lam[0]))
        f_small.append(f)
        share1.append(sh)
        out.append({"spectrum": i, "label": names[i], "n": int(lam.size), "lambda1": float(lam[0]),
                    "count_cdf_at_c_lambda1": f, "lambda1_share": sh,
                    "top_fraction_for_90pct_trace": k90 / lam.size,
                    "ascending_index_fraction_W_reaches_90pct": j90 / lam.size, "outcome": ""})
    l1a = np.asarray(l1)
    lo_i, hi_i = int(np.argmin(l1a)), int(np.argmax(l1a))
    stat.update({"lambda1": l1, "count_cdf_at_c_lambda1": f_small, "lambda1_share": share1,
                 "c": rel_threshold})
    if l1a[hi_i] <= l1a[lo_i] * (1 + REL_TOL):
        return _verdict(cid, "inconclusive", f"the first eigenvalues do not differ by more than "
                        f"{REL_TOL:.0%}", stat, criterion, out)

    def part(q: list[float], direction: int) -> tuple[bool | None, float, float]:
        rho = _spearman(l1a, q) * direction
        delta = (q[hi_i] - q[lo_i]) * direction
        if rho >= SPEARMAN_MIN and delta > ABS_TOL_FRACTION:
            return True, rho * direction, delta * direction
        if rho <= 0 or abs(delta) <= ABS_TOL_FRACTION:
            return False, rho * direction, delta * direction
        return None, rho * direction, delta * direction

    count_ok, rho_c, d_c = part(f_small, -1)
    trace_ok, rho_t, d_t = part(share1, +1)
    stat.update({"spearman_lambda1_count_cdf": rho_c, "change_count_cdf": d_c,
                 "spearman_lambda1_share": rho_t, "change_lambda1_share": d_t,
                 "count_part_holds": math.nan if count_ok is None else float(count_ok),
                 "trace_part_holds": math.nan if trace_ok is None else float(trace_ok)})
    for o in out:
        o["outcome"] = "largest_lambda1" if o["spectrum"] == hi_i else (
            "smallest_lambda1" if o["spectrum"] == lo_i else "between")
    text = (f"F({rel_threshold:g}·λ1) {f_small[lo_i]:.2f} → {f_small[hi_i]:.2f}, λ1/trace "
            f"{share1[lo_i]:.2f} → {share1[hi_i]:.2f} from the smallest to the largest λ1")
    if count_ok and trace_ok:
        return _verdict(cid, "holds", "", stat, criterion, out)
    if trace_ok:
        return _verdict(cid, "holds_only_when", f"on the trace-weighted CDF only ({text})",
                        stat, criterion, out)
    if count_ok:
        return _verdict(cid, "holds_only_when", f"on the count CDF (in units of λ1) only ({text})",
                        stat, criterion, out)
    if count_ok is None or trace_ok is None:
        return _verdict(cid, "inconclusive", f"no clear monotone relation with λ1 ({text})",
                        stat, criterion, out)
    return _verdict(cid, "does_not_hold", f"neither CDF saturates later for a larger λ1 ({text})",
                    stat, criterion, out)


# ----------------------------------------------------------------------------- claims

_LOWERS_QUOTE = "Maximum eigenvalue of the NTK matrix decreases as we apply regularization"

_REG_THEORY = (
    "Θ = (1/10)·Σ_k J_k J_kᵀ (J_k: the n × P Jacobian of logit k; the mean over the 10 "
    "logits of the per-logit kernels, raw, not divided by n) is a property of the network "
    "function; the penalty term of the loss does not appear in it, so regularization can change Θ only through the parameters training produces. At "
    "initialization (epoch 0) every strength gives the same kernel, so compare at a trained "
    "epoch. Here the penalty acts on W1 and W2 (not the biases). Both weight-dependent terms "
    "of Θ are quadratic in the weights: the first-layer term scales with the output weights "
    "(mean_k W2²) and the output-layer term with the hidden activations relu(xW1 + b1)², so "
    "shrinking the weights lowers the kernel and λ_max with it. {mech} The effect needs the "
    "accumulated shrinkage (strength × learning rate × steps) to be non-negligible, so small "
    "strengths are expected to be indistinguishable from λ = 0 within seed noise, and λ_max "
    "to drop only above some strength.")

CLAIMS: dict[str, Claim] = {c.id: c for c in (
    Claim(
        "l2_lowers_lambda_max", _LOWERS_QUOTE,
        "λ_max of the traced NTK at one trained epoch per seed and L2 strength; per seed the "
        "Spearman ρ(λ, λ_max) and the relative change from the smallest to the largest "
        "strength; each strength compared with the smallest (paired over seeds).",
        _REG_THEORY.format(mech=(
            "The L2 penalty λ·Σw² has gradient 2λw, so each SGD step multiplies every weight "
            "by (1 − 2ηλ) before the data gradient acts (weight decay)."))),
    Claim(
        "l1_lowers_lambda_max", _LOWERS_QUOTE,
        "As for L2, on the L1 strength grid: Spearman ρ(λ, λ_max) per seed, relative change "
        "smallest → largest strength, and a paired comparison of each strength with the "
        "smallest.",
        _REG_THEORY.format(mech=(
            "The L1 penalty λ·Σ|w| pulls every weight toward 0 by ηλ per step whatever its "
            "size (with plain SGD, small weights end up hovering near 0 rather than exactly "
            "at 0), so it favours sparse weights rather than scaling all of them; it still "
            "shrinks the weight norms, so the same reasoning applies, to the kernel of a "
            "sparser network."))),
    Claim(
        "lambda_max_falls_min_rises",
        "As the training progresses, the maximum eigenvalue … decreases, attains a minima and "
        "then increases, showing overfitting on training data.",
        "λ_max per recorded epoch per seed: the epoch e* of the minimum, the relative fall "
        "λ_max[0] → λ_max[e*] and the relative rise λ_max[e*] → λ_max[last], on the seed-mean "
        "curve (paired over seeds) and per seed.",
        "In the infinite-width limit (NTK parameterization) with a small learning rate the "
        "kernel stays at its initial value during training (lazy regime), so λ_max would be "
        "flat; at finite width Θ moves, usually most in the first epochs. For the loss "
        "½·mean‖f − y‖² used here the Gauss–Newton part of the loss Hessian is JᵀJ/n, whose "
        "non-zero eigenvalues are those of the full (10n × 10n) kernel Θ_full/n; the traced "
        "kernel's λ_max is a lower bound of Θ_full's. So λ_max/n is a curvature: full-batch "
        "gradient descent on the linearized model is stable only while "
        "η·λ_max(Θ_full)/n < 2, and empirically this curvature often rises during training ('progressive sharpening', Cohen et al. 2021) "
        "while weight decay pulls it down. A fall then a rise is therefore possible, but Θ is "
        "computed from the training inputs and parameters only — no labels, no validation "
        "data — so its rise is not by itself a measurement of overfitting (claim "
        "'min_coincides_with_overfitting' tests that link)."),
    Claim(
        "min_coincides_with_overfitting",
        "Sharp changes in eigenvalues coupled with anomalies in validation loss denote "
        "transitions between well-trained and over-fitting",
        "Per seed: the epoch of λ_max's interior minimum, the best-validation epoch (validation "
        "loss rising after it), and their absolute gap in epochs; mean ± sd of the gap.",
        "No theorem ties an extremum of λ_max to the best validation epoch: Θ depends on the "
        "training inputs and the parameters, not on labels or validation data. What NTK "
        "theory does say (linearized network, squared loss ½·mean‖f − y‖², gradient flow) is "
        "that the training residual along the kernel's eigenvector v_i decays like "
        "exp(−η·λ_i·t/n) with the full kernel's eigenvalues: large-eigenvalue directions are "
        "fitted first, small ones (often where label noise lives) last, which is why early "
        "stopping acts like a spectral filter. That link involves the time scales of all "
        "eigenvalues, not the epoch where λ_max is smallest, so a coincidence has to be "
        "measured per seed with a stated tolerance."),
    Claim(
        "lambda_max_grows_with_n",
        "As training data increases, maximum eigenvalue increases … the maximum eigenvalue "
        "increases approximately linearly with training size",
        "λ_max per training size n per seed: paired change smallest → largest n, least-squares "
        "fit λ_max = a + b·n with R², and the log-log slope with its 95% t-interval (m − 2 "
        "dof) on the seed-mean curve; the same per seed.",
        "Θ is the n × n Gram matrix of per-sample gradient features. For n i.i.d. inputs and a "
        "fixed network, Θ/n approximates the kernel's integral operator, whose eigenvalues "
        "μ1 ≥ μ2 ≥ … do not depend on n, and the top eigenvalue of Θ/n converges to μ1 "
        "(Koltchinskii & Giné 2000), so λ_max(Θ) ≈ n·μ1 grows linearly in n. On MNIST the "
        "pixels are non-negative and ReLU features have a non-zero mean, so every Θ_ij > 0 and "
        "the top eigenvector is close to constant: λ_max ≥ n·mean_ij Θ_ij (Rayleigh quotient of "
        "the constant vector), and close to it. This reasoning is for one fixed network "
        "(e.g. at initialization); trained networks differ per n (other data, other weights), so "
        "after training linearity is an empirical question."),
    Claim(
        "trace_linear_in_n",
        "The trace scales approximately linearly with dataset size n … most of the trace is "
        "concentrated in top few eigenvalues",
        "tr Θ per n per seed: linear fit with R² and log-log slope with 95% t-interval (as for "
        "λ_max); and λ1/trace and top-10/trace per n (mean ± sd over seeds).",
        "tr Θ = Σ_i Θ_ii = Σ_i (1/10)·Σ_k ‖∇θ f_k(x_i)‖² is a sum of n per-sample terms, so "
        "for a fixed network and i.i.d. samples E[tr Θ] = n·E[(1/10)Σ_k ‖∇θ f_k(x)‖²] is "
        "exactly linear in n; across networks trained on different n it is linear only "
        "approximately. Since tr(Θ)/n → Σ_j μ_j and the top eigenvalues of Θ/n → μ_j, the "
        "shares λ1/trace and top-10/trace tend to constants as n grows (for small n, "
        "top-10 of only a few eigenvalues is trivially most of the trace). Whether the top "
        "few hold most of the trace depends on the kernel: on MNIST the large constant (mean) "
        "direction alone typically carries a big share, followed by a fast-decaying tail."),
    Claim(
        "higher_l2_sharper_decline",
        "Increasing L2-Norm results in faster decline of maximum NTK eigenvalue over training.",
        "Per seed and L2 strength, the fitted fraction of λ_max lost over the first T epochs "
        "(1 − exp(T·slope of ln λ_max)); its Spearman ρ with the strength per seed; each "
        "strength compared with the smallest (paired).",
        "The L2 penalty λ·Σw² (on W1 and W2) adds −2ηλw to every SGD step, shrinking the "
        "weights geometrically by (1 − 2ηλ) per step where the data gradient does not oppose "
        "it. The weight-dependent part of Θ is quadratic in the weights (first-layer term ∝ "
        "mean_k W2², output-layer term ∝ relu(xW1 + b1)²; exactly ∝ s² under a common scaling "
        "s of W1 and W2 when the hidden biases are zero, by positive homogeneity of ReLU), so "
        "a stronger λ should make λ_max fall faster, until the data gradient balances the "
        "decay and λ_max settles at a λ-dependent level. Theory predicts the ordering; the "
        "size depends on η, λ and the number of steps, and at λ·η·steps ≪ 1 the decline is "
        "within seed noise."),
    Claim(
        "width_1_rank_1",
        "Width = 1: Rank-1 NTK",
        "All n eigenvalues of the width-1 traced Θ per seed: numerical rank = #{λ_i > tol·λ_max} "
        "(tol = n·1.19e-7, the float32 round-off floor) and participation ratio "
        "PR = (Σλ)²/Σλ²; also λ1/trace and λ2/λ1.",
        "At width 1 the closed form is Θ = a2²·(h hᵀ + s·(m mᵀ) ∘ G) + c2²·11ᵀ, with "
        "h = relu(z) over the n inputs, m = 1[z > 0], s = mean_k W2[0,k]² and G = a1²·XXᵀ + c1² "
        "(the input Gram matrix). The output-weight term h hᵀ and the output-bias term are "
        "rank-1 each, but the first-layer term is the input Gram matrix restricted to the "
        "inputs where the unit is active, whose rank is that of G on those rows (up to "
        "min(#active, 785)). So the width-1 NTK is not rank-1 in general: in practice it is "
        "rank-1 only when the unit is dead on every input (Θ = c2²·11ᵀ). It can still be "
        "dominated by one direction, because MNIST images (non-negative pixels) share a large mean component "
        "that makes G nearly rank-1 plus a tail — which is what the participation ratio "
        "measures, while the numerical rank counts every direction above round-off."),
    Claim(
        "width_dip_rise_flatten",
        "dip near 8 … 16–32 … top eigenvalue rises again … beyond ≈32 … flattens",
        "λ_max per width (log2 grid) per seed: dip = a local minimum of the seed-mean curve at "
        "a width in {4, 8, 16}; rise = change 16 → 32; flatten = |Δ ln λ_max| per doubling for "
        "consecutive widths ≥ 32.",
        "In NTK parameterization Θ is an average over the w hidden units (a2² = 2/w), so by "
        "the law of large numbers it converges to a deterministic limit as w → ∞ with "
        "O(1/√w) fluctuations at initialization (and moves by O(1/√w) during training): "
        "λ_max flattens and its seed spread shrinks. In standard parameterization (PyTorch "
        "init, a2 = 1, the default here) the output-layer term H Hᵀ is a sum of w terms that "
        "do not shrink with w, so it grows ∝ w, while the first-layer term stays O(1) (W2² ~ 1/w), so "
        "λ_max approaches a straight line in w once H Hᵀ dominates; there Θ/w converges "
        "instead. Neither predicts a dip near width 8: at small widths λ_max is a sum over a "
        "few units and depends on which of them are active, so a dip must clear the "
        "seed-to-seed noise to count."),
    Claim(
        "cdf_saturates_late",
        "Larger first eigenvalue → less dense for small eigenvalues → cdf saturates late",
        "For each spectrum: λ1; the count CDF F(t) = #{λ_i ≤ t}/n at t = 0.01·λ1 (fraction "
        "of eigenvalues below 1% of λ1); the trace-weighted CDF W(t) = Σ_{λ_i ≤ t} λ_i/Σλ_i "
        "via the share λ1/Σλ of its last jump; and the eigenvalue index where the trace "
        "share reaches 0.9; Spearman of each against λ1 across spectra.",
        "On a count-based CDF λ1 is just 1/n of the mass: F reaches 1 exactly at t = λ1, so a "
        "larger λ1 only stretches the axis and 'saturates later' by construction. Only "
        "scale-free statistics say something about the shape: the fraction of eigenvalues "
        "below a fixed fraction of λ1, and the trace-weighted CDF W(t), which jumps by "
        "λ1/Σλ at t = λ1. For MNIST kernels λ1 is mostly the constant (mean) direction, "
        "≈ n·mean Θ_ij, and the rest decays fast (for ReLU NTKs of inputs on a sphere the "
        "eigenvalues decay polynomially), so if the rest of the spectrum stays put, a larger λ1 puts "
        "MORE eigenvalues below 1% of λ1, not fewer, while W indeed stays low until λ1. "
        "When λ1 grows only because n grows, trace and λ1 scale together and the share "
        "λ1/trace can stay put."),
)}

RULES: dict[str, Callable[..., Verdict]] = {
    "l2_lowers_lambda_max": judge_l2_lowers_lambda_max,
    "l1_lowers_lambda_max": judge_l1_lowers_lambda_max,
    "lambda_max_falls_min_rises": judge_lambda_max_falls_min_rises,
    "min_coincides_with_overfitting": judge_min_coincides_with_overfitting,
    "lambda_max_grows_with_n": judge_lambda_max_grows_with_n,
    "trace_linear_in_n": judge_trace_linear_in_n,
    "higher_l2_sharper_decline": judge_higher_l2_sharper_decline,
    "width_1_rank_1": judge_width_1_rank_1,
    "width_dip_rise_flatten": judge_width_dip_rise_flatten,
    "cdf_saturates_late": judge_cdf_saturates_late,
}
