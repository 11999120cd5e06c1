"""Reshaping runner results into the DataFrames the charts plot (and the CSVs offer).

Each function returns exactly the rows one chart draws, so the download button of a
chart can hand out the same frame. Eigenvalues from the runner are of the RAW traced
Θ; the display normalisation (Θ or Θ/n) is applied here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

import ntk_core as nc
import runner
from ui.params import NORM_PER_N

PARAM_LABEL = {"standard": "standard", "ntk": "NTK"}


def kernel_name(norm: str) -> str:
    return "Θ/n" if norm == NORM_PER_N else "Θ"


def scale(config: runner.ExperimentConfig, norm: str) -> float:
    """Factor turning raw Θ eigenvalues/trace into the displayed normalisation."""
    return 1.0 / config.n_train if norm == NORM_PER_N else 1.0


def axis_title(quantity: str, norm: str, parameterization: str) -> list[str]:
    """Two-line axis title, e.g. ``["λ_max of Θ/n", "(traced: mean over 10 logits,
    standard param.)"]`` (one line would not fit along a y axis)."""
    return [f"{quantity} of {kernel_name(norm)}",
            f"(traced: mean over 10 logits, {PARAM_LABEL.get(parameterization, parameterization)} param.)"]


def valid_mask(r) -> np.ndarray:
    """(E+1,) True for epochs before divergence."""
    e = np.arange(r.config.epochs + 1)
    return e < r.diverged_at if r.diverged_at is not None else np.ones(e.size, bool)


def last_valid_epoch(r) -> int:
    return int(np.arange(r.config.epochs + 1)[valid_mask(r)][-1]) if valid_mask(r).any() else 0


def _finite(df: pd.DataFrame, cols: Sequence[str], positive: bool = False) -> pd.DataFrame:
    keep = np.ones(len(df), bool)
    for c in cols:
        v = df[c].to_numpy(dtype=float)
        keep &= np.isfinite(v) & ((v > 0) if positive else True)
    return df[keep].reset_index(drop=True)


# ---------------------------------------------------------------- one run over epochs

def epoch_frame(r, norm: str) -> pd.DataFrame:
    """One row per epoch up to divergence: spectra (in the displayed normalisation),
    losses, accuracy, parameter movement and early-stopping markers."""
    s = scale(r.config, norm)
    e = np.arange(r.config.epochs + 1)
    df = pd.DataFrame({
        "epoch": e,
        "lambda_max": r.topk[:, 0] * s,
        "trace": r.trace * s,
        "train_loss": r.metrics["train_loss"],
        "val_loss": r.metrics["val_loss"],
        "val_acc": r.metrics["val_acc"],
        "step_norm": r.metrics["step_norm"],
        "rel_change": r.metrics["rel_change"],
        "is_best_epoch": e == r.best_epoch,
        "is_stop_epoch": e == (r.stop_epoch if r.stop_epoch is not None else -1),
        "is_restore_epoch": e == (r.restore_epoch if r.stop_epoch is not None else -1),
    })
    return df[valid_mask(r)].reset_index(drop=True)


def topk_epochs_frame(r, norm: str) -> pd.DataFrame:
    """Long frame: epoch, rank j (1 = λ_max), eigenvalue; positive finite values only."""
    s = scale(r.config, norm)
    mask = valid_mask(r)
    rows = [(int(e), j + 1, float(v) * s) for e in np.flatnonzero(mask)
            for j, v in enumerate(r.topk[e])]
    df = pd.DataFrame(rows, columns=["epoch", "rank", "eigenvalue"])
    df["is_best_epoch"] = df["epoch"] == r.best_epoch
    return _finite(df, ["eigenvalue"], positive=True)


def metric_long(df: pd.DataFrame, cols: dict[str, str], positive: bool = False,
                min_epoch: int = 0) -> pd.DataFrame:
    """Melts columns of an epoch frame into (epoch, flags…, quantity, value); ``cols``
    maps column → displayed name. Early-stopping flags are kept for the rules."""
    flags = [c for c in ("is_best_epoch", "is_stop_epoch", "is_restore_epoch") if c in df]
    out = df[df["epoch"] >= min_epoch].melt(id_vars=["epoch", *flags], value_vars=list(cols),
                                             var_name="quantity", value_name="value")
    out["quantity"] = out["quantity"].map(cols)
    return _finite(out, ["value"], positive=positive)


# ---------------------------------------------------------------- sweeps

def sweep_epoch_frame(results, labels: Sequence[Any], label_name: str, norm: str,
                      quantity: str = "lambda_max") -> pd.DataFrame:
    """Long frame over a sweep: (label, epoch, value, relative to epoch 0)."""
    frames = []
    for r, lab in zip(results, labels):
        df = epoch_frame(r, norm)
        frames.append(pd.DataFrame({
            label_name: lab, "epoch": df["epoch"], "value": df[quantity],
            "relative_to_init": df[quantity] / df[quantity].iloc[0] if len(df) else [],
            "is_best_epoch": df["is_best_epoch"]}))
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=[label_name, "epoch", "value", "relative_to_init", "is_best_epoch"])
    return _finite(out, ["value"], positive=True)


def topk_at_frame(results, labels: Sequence[Any], label_name: str, epoch: int,
                  norm: str) -> pd.DataFrame:
    """Long frame: (label, rank j, eigenvalue) of each run's top-k at ``epoch``."""
    rows = []
    for r, lab in zip(results, labels):
        if epoch > r.config.epochs or not valid_mask(r)[epoch]:
            continue
        s = scale(r.config, norm)
        rows += [(lab, j + 1, float(v) * s) for j, v in enumerate(r.topk[epoch])]
    return _finite(pd.DataFrame(rows, columns=[label_name, "rank", "eigenvalue"]),
                   ["eigenvalue"], positive=True)


def summary_frame(results, xs: Sequence[Any], x_name: str, epoch: int, norm: str) -> pd.DataFrame:
    """One row per sweep point at ``epoch`` (clipped to the last valid epoch):
    λ_max, trace, effective rank of the top-k, λ_max share of the trace."""
    rows = []
    for r, x in zip(results, xs):
        e = min(epoch, last_valid_epoch(r))
        s = scale(r.config, norm)
        topk = r.topk[e]
        rows.append({x_name: x, "epoch": e, "n_train": r.config.n_train,
                     "lambda_max": float(topk[0]) * s, "trace": float(r.trace[e]) * s,
                     "effective_rank_topk": nc.effective_rank(topk[np.isfinite(topk)]),
                     "lambda1_share": float(topk[0] / r.trace[e]) if r.trace[e] else np.nan})
    return pd.DataFrame(rows)


def whole_spectrum_rank(spec) -> tuple[float, float]:
    """(numerical rank, participation ratio) of a whole dense spectrum: the number of
    eigenvalues above the round-off floor, and (Σλ)²/Σλ² over those eigenvalues (1 for a
    rank-1 kernel, n for a flat spectrum). NaN for an SLQ estimate (no single eigenvalues)."""
    if spec is None or spec.method != "dense":
        return float("nan"), float("nan")
    lam = np.asarray(spec.eigenvalues, dtype=float)
    lam = lam[lam > spec.floor]
    if lam.size == 0:
        return 0.0, float("nan")
    return float(lam.size), float(lam.sum() ** 2 / np.sum(lam ** 2))


def width_frame(results, widths: Sequence[int], references: Sequence, epoch: int,
                norm: str, spectra: Sequence = ()) -> pd.DataFrame:
    """:func:`summary_frame` over widths plus the analytic reference per width
    (``analytic_<column>``; NaN where no reference is available) and, from each width's
    whole spectrum, ``numerical_rank`` and ``participation_ratio``."""
    df = summary_frame(results, widths, "width", epoch, norm)
    ranks = [whole_spectrum_rank(sp) for sp in (list(spectra) or [None] * len(results))]
    df["numerical_rank"] = [r for r, _ in ranks]
    df["participation_ratio"] = [p for _, p in ranks]
    lam, tr, er = [], [], []
    for r, ref in zip(results, references):
        if ref is None:
            lam.append(np.nan), tr.append(np.nan), er.append(np.nan)
            continue
        s = scale(r.config, norm)
        topk = np.asarray(ref.topk, dtype=float)
        lam.append(float(topk[0]) * s)
        tr.append(float(ref.trace) * s)
        er.append(nc.effective_rank(topk))
    df["analytic_lambda_max"] = lam
    df["analytic_trace"] = tr
    df["analytic_effective_rank_topk"] = er
    return df


# ---------------------------------------------------------------- whole spectra

def _spectrum_points(spec) -> tuple[np.ndarray, np.ndarray]:
    """(eigenvalue, weight) pairs of a SpectrumResult, raw Θ, above its round-off floor only.

    Dense: each resolved eigenvalue weighs 1/n, so the weights sum to the resolved share
    (the eigenvalues below the floor are counted, not plotted). SLQ: quadrature nodes
    above the floor with their weights.
    """
    if spec.method == "dense":
        lam = np.asarray(spec.eigenvalues, dtype=float)
        keep = lam > spec.floor
        return lam[keep], np.full(int(keep.sum()), 1.0 / max(lam.size, 1))
    nodes = np.asarray(spec.nodes, dtype=float)
    w = np.asarray(spec.weights, dtype=float)
    keep = nodes > spec.floor
    return nodes[keep], w[keep]


def floor_note(specs, labels) -> str:
    """One line per spectrum on what lies below its round-off floor ("" when nothing does)."""
    parts = []
    for spec, lab in zip(specs, labels):
        if spec.below_floor:
            n = spec.eigenvalues.size if spec.method == "dense" else None
            of = f" of {n}" if n else " (SLQ estimate)"
            parts.append(f"{lab}: {spec.below_floor}{of} eigenvalues lie below the round-off floor "
                         f"{spec.floor:.2g} (raw Θ, {spec.kernel_dtype} kernel) and are counted, not drawn")
    return "; ".join(parts)


def cdf_frame(specs: Sequence, labels: Sequence[str], configs, norm: str,
              max_points: int = 1500) -> pd.DataFrame:
    """Long frame (series, eigenvalue, cdf, trace_cdf) over the resolved eigenvalues.

    ``cdf`` is the count CDF F(t) = #{λ_i ≤ t}/n: every eigenvalue weighs 1/n, so λ1 is
    one point of mass 1/n; the eigenvalues below the round-off floor are counted in F
    (the curve starts at their share) but not drawn. ``trace_cdf`` is the trace-weighted
    CDF W(t) = Σ_{λ_i ≤ t} λ_i / Σ λ_i, where λ1's weight is its share of the trace.
    """
    frames = []
    for spec, lab, cfg in zip(specs, labels, configs):
        lam, w = _spectrum_points(spec)
        order = np.argsort(lam)
        lam, w = lam[order], w[order]
        start = max(1.0 - float(w.sum()), 0.0)  # share below the floor (and ≤ 0)
        F = start + np.cumsum(w)
        mass = w * lam
        W = np.cumsum(mass) / mass.sum() if mass.sum() > 0 else np.zeros_like(F)
        t = lam * scale(cfg, norm)
        if t.size > max_points:  # thin evenly in rank, keep both ends
            idx = np.unique(np.linspace(0, t.size - 1, max_points).round().astype(int))
            t, F, W = t[idx], F[idx], W[idx]
        frames.append(pd.DataFrame({"series": lab, "method": spec.method,
                                    "eigenvalue": t, "cdf": F, "trace_cdf": W}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["series", "method", "eigenvalue", "cdf", "trace_cdf"])


def density_frame(specs: Sequence, labels: Sequence[str], configs, norm: str,
                  points: int = 200) -> pd.DataFrame:
    """Long frame (series, eigenvalue, density): Gaussian-smoothed spectral density per
    decade of eigenvalue (on log10 λ), for dense eigenvalues and SLQ alike, over the
    eigenvalues above the round-off floor (it integrates to their share of n)."""
    logs, weights = [], []
    for spec, cfg in zip(specs, configs):
        lam, w = _spectrum_points(spec)
        lam = lam * scale(cfg, norm)
        keep = np.isfinite(lam) & (lam > 0)
        logs.append(np.log10(lam[keep]))
        weights.append(w[keep])
    every = np.concatenate(logs) if logs else np.zeros(0)
    if every.size == 0:
        return pd.DataFrame(columns=["series", "eigenvalue", "density_per_decade"])
    lo, hi = float(every.min()), float(every.max())
    pad = max(0.05 * (hi - lo), 0.1)
    grid = np.linspace(lo - pad, hi + pad, points)
    sigma = max((hi - lo) / 60.0, 0.02)
    frames = []
    for lab, x, w in zip(labels, logs, weights):
        d = nc.density_on_grid(x, w, grid, sigma)
        frames.append(pd.DataFrame({"series": lab, "eigenvalue": 10.0 ** grid,
                                    "density_per_decade": d}))
    return pd.concat(frames, ignore_index=True)


def cumshare_frame(specs: Sequence, labels: Sequence[str]) -> pd.DataFrame:
    """Long frame (series, j, share): share of the exact trace in the top-j eigenvalues."""
    frames = []
    for spec, lab in zip(specs, labels):
        topk = np.asarray(spec.topk, dtype=float)
        share = nc.cumulative_share(topk, spec.trace)
        frames.append(pd.DataFrame({"series": lab, "j": np.arange(1, topk.size + 1),
                                    "cumulative_share": share}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["series", "j", "cumulative_share"])


def spectrum_summary(specs: Sequence, labels: Sequence[str], configs, norm: str) -> pd.DataFrame:
    """One row per spectrum: method, λ1, trace, λ1/trace, effective rank of the top-k."""
    rows = []
    for spec, lab, cfg in zip(specs, labels, configs):
        s = scale(cfg, norm)
        topk = np.asarray(spec.topk, dtype=float)
        rows.append({"series": lab, "method": spec.method, "epoch": spec.epoch,
                     "lambda_1": topk[0] * s, "trace": float(spec.trace) * s,
                     "lambda1_share_of_trace": float(topk[0] / spec.trace),
                     "effective_rank_topk": nc.effective_rank(topk),
                     "below_roundoff_floor": int(spec.below_floor)})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- fits

def linear_fit(x: Sequence[float], y: Sequence[float]) -> dict[str, float]:
    """Least-squares line y ≈ slope·x + intercept (numpy.polyfit), its R², and the
    log–log slope (exponent; 1 means proportional growth). NaN when under-determined."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    out = {"slope": np.nan, "intercept": np.nan, "r2": np.nan, "loglog_slope": np.nan}
    if x.size < 2 or np.ptp(x) == 0:
        return out
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (slope * x + intercept)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    out.update(slope=float(slope), intercept=float(intercept),
               r2=float(1 - (resid ** 2).sum() / ss_tot) if ss_tot > 0 else 1.0)
    pos = (x > 0) & (y > 0)
    if pos.sum() >= 2 and np.ptp(np.log(x[pos])) > 0:
        out["loglog_slope"] = float(np.polyfit(np.log(x[pos]), np.log(y[pos]), 1)[0])
    return out


def with_fit(df: pd.DataFrame, x: str, y: str) -> tuple[pd.DataFrame, dict[str, float]]:
    """Adds a ``<y>_fit`` column with the fitted line."""
    fit = linear_fit(df[x], df[y])
    out = df.copy()
    out[f"{y}_fit"] = fit["slope"] * out[x].astype(float) + fit["intercept"]
    return out, fit
