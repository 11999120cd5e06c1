"""The Findings page's pieces: one card per claim (verdict, statistic, criterion, protocol,
theory) with its evidence chart, built from a ``runner.ClaimResult``."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

import runner
from ui import charts

BADGE = {"holds": ("✅", "holds"), "holds_only_when": ("🟡", "holds only when"),
         "does_not_hold": ("❌", "does not hold"), "inconclusive": ("❔", "inconclusive")}
OPTIMIZER = {"sgd": "SGD", "adam": "Adam", "any": "any optimizer"}


def verdict_line(c: Any) -> str:
    icon, text = BADGE[c.verdict.verdict]
    cond = f" — {c.verdict.condition}" if c.verdict.condition else ""
    return f"{icon} **{text}** ({OPTIMIZER.get(c.optimizer, c.optimizer)}){cond}"


def _seed_rows(ev: dict, key: str, x: list, x_name: str) -> pd.DataFrame:
    arr = np.asarray(ev[key], dtype=float)
    seeds = ev.get("seeds", list(range(arr.shape[0])))
    return pd.DataFrame([{x_name: xv, "seed": str(s), key: v}
                         for s, row in zip(seeds, arr) for xv, v in zip(x, row)])


def evidence(c: Any) -> tuple[pd.DataFrame, Any] | None:
    """(frame, Altair chart) of a claim's evidence, or None when there is nothing to draw."""
    ev, cid = c.evidence, c.claim_id
    raw = "λ_max of raw traced Θ (mean over 10 logits, not /n)"
    if cid in ("l2_lowers_lambda_max", "l1_lowers_lambda_max"):
        df = _seed_rows(ev, "lambda_max", ev["strengths"], "strength")
        pos = [v for v in ev["strengths"] if v > 0]
        ch = charts.lines(df, "strength", "lambda_max", color="seed", color_title="seed",
                          x_scale="symlog", symlog_constant=min(pos, default=1.0),
                          x_ticks=sorted(ev["strengths"]), y_scale="auto",
                          x_title=f"{c.protocol.get('reg', '').upper()} strength λ (symlog: 0 included)",
                          y_title=raw, title=f"λ_max at epoch {ev['epoch']} per seed")
        return df, ch
    if cid == "higher_l2_sharper_decline":
        lam = np.asarray(ev["lambda_max"], dtype=float)  # (S, G, E+1)
        rel = np.nanmean(lam / lam[:, :, :1], axis=0)
        df = pd.DataFrame([{"epoch": e, "L2 λ": f"{g:g}", "lambda_max_rel": v}
                           for g, row in zip(ev["strengths"], rel) for e, v in enumerate(row)])
        ch = charts.lines(df, "epoch", "lambda_max_rel", color="L2 λ", color_title="L2 λ",
                          points=False, x_title="epoch (0 = init)",
                          y_title="λ_max(epoch) / λ_max(init), mean over seeds",
                          title="Relative λ_max over training per L2 strength")
        return df, ch
    if cid in ("lambda_max_falls_min_rises", "min_coincides_with_overfitting"):
        lam = np.asarray(ev["lambda_max"], dtype=float)
        val = np.asarray(ev["val_loss"], dtype=float)
        rows = []
        for s, a, b in zip(ev["seeds"], lam, val):
            for e in range(a.size):
                rows.append({"epoch": e, "seed": str(s), "quantity": "λ_max / λ_max(init)",
                             "value": a[e] / a[0]})
                if cid == "min_coincides_with_overfitting":
                    rows.append({"epoch": e, "seed": str(s), "quantity": "val loss / val loss(init)",
                                 "value": b[e] / b[0]})
        df = pd.DataFrame(rows)
        df["series"] = df["quantity"] + ", seed " + df["seed"]
        ch = charts.lines(df, "epoch", "value", color="series", color_title=None, points=False,
                          x_title="epoch (0 = init)", y_title="relative to initialization",
                          title="λ_max" + (" and validation loss" if "coincides" in cid else "")
                                + " over training, per seed")
        return df, ch
    if cid in ("lambda_max_grows_with_n", "trace_linear_in_n"):
        key = "lambda_max" if cid == "lambda_max_grows_with_n" else "trace"
        df = _seed_rows(ev, key, ev["ns"], "n")
        ch = charts.lines(df, "n", key, color="seed", color_title="seed", x_scale="log",
                          y_scale="log", x_title="training samples n",
                          y_title=("λ_max" if key == "lambda_max" else "trace")
                                  + " of raw traced Θ (not /n)",
                          title=f"{'λ_max' if key == 'lambda_max' else 'Trace'} vs n (log–log: "
                                "slope 1 = linear)")
        return df, ch
    if cid == "width_dip_rise_flatten":
        df = _seed_rows(ev, "lambda_max", ev["widths"], "width")
        ch = charts.lines(df, "width", "lambda_max", color="seed", color_title="seed", x_scale="log2",
                          y_scale="log", x_title="hidden width", y_title=raw,
                          title="λ_max vs width per seed")
        return df, ch
    if cid == "width_1_rank_1":
        rows = []
        for s, eig in zip(ev["seeds"], ev["eigenvalues"]):
            eig = np.sort(np.asarray(eig, dtype=float))[::-1]
            rows += [{"index": j + 1, "seed": str(s), "eigenvalue": v} for j, v in enumerate(eig) if v > 0]
        df = pd.DataFrame(rows)
        ch = charts.lines(df, "index", "eigenvalue", color="seed", color_title="seed", points=False,
                          x_scale="log", y_scale="log", x_title="eigenvalue index j (1 = largest)",
                          y_title="λ_j of raw traced Θ (positive ones; float64 kernel)",
                          title=f"Whole spectrum at width 1, epoch {ev['epoch']}")
        return df, ch
    if cid == "cdf_saturates_late":
        rows = []
        for lab, eig in zip(ev["labels"], ev["spectra"]):
            eig = np.sort(np.asarray(eig, dtype=float))
            eig = eig[eig > 0]
            w = np.cumsum(eig) / eig.sum()
            rows += [{"run": lab, "t_over_lambda1": v / eig[-1], "trace_cdf": f}
                     for v, f in zip(eig, w)]
        df = pd.DataFrame(rows)
        ch = charts.lines(df, "t_over_lambda1", "trace_cdf", color="run", color_title="run",
                          points=False, x_scale="log", x_title="eigenvalue t / λ1",
                          y_title="share of the trace in eigenvalues ≤ t",
                          title="Trace-weighted CDF, eigenvalues in units of λ1")
        return df, ch
    return None


def claim_card(c: Any, key: str) -> None:
    """One claim: quote, verdict, evidence chart, statistic, criterion, protocol, theory."""
    claim = runner.CLAIMS[c.claim_id]
    with st.container(border=True):
        st.markdown(f"**{c.claim_id}** · {OPTIMIZER.get(c.optimizer, c.optimizer)}")
        st.markdown(f"> “{claim.quote}”")
        st.markdown(verdict_line(c))
        ev = evidence(c)
        if ev is not None:
            df, ch = ev
            charts.show(ch, df, f"findings_{key}")
        with st.expander("Statistic, criterion, protocol and theory"):
            st.markdown(f"**Statistic.** {claim.statistic_definition}")
            st.json(c.verdict.to_json()["statistic"], expanded=False)
            st.markdown(f"**Criterion.** {c.verdict.criterion}")
            st.markdown("**Per seed.**")
            st.dataframe(pd.DataFrame(c.verdict.to_json()["per_seed"]), hide_index=True)
            st.markdown("**Protocol.**")
            st.code(json.dumps(c.protocol, indent=None), language="json")
            st.markdown(f"**What theory says.** {claim.theory}")


def summary_frame(claims: list) -> pd.DataFrame:
    return pd.DataFrame([{"claim": c.claim_id, "optimizer": c.optimizer, "verdict": c.verdict.verdict,
                          "condition": c.verdict.condition} for c in claims])


def protocol_caption(p: runner.Protocol, status: str, seconds: float) -> str:
    b = p.base
    where = {"hit": "loaded from the cache", "computed": f"computed now in {seconds:.0f} s",
             "uncached": f"computed in {seconds:.0f} s (cache disabled)"}.get(status, status)
    kernel = "closed-form NTK" if b.closed_form else f"generic NTK, {b.ntk_method} at the base config"
    if not b.closed_form and b.epochs + 1 > runner.GENERIC_SPECTRUM_EPOCHS:
        kernel += (f"; λ_max recorded at {runner.GENERIC_SPECTRUM_EPOCHS} evenly spaced epochs, "
                   "on which the dynamics claims are judged")
    return (f"Showing the **{p.name}** protocol on the **{b.network.label}** ({where}; {kernel}): "
            f"width {b.width}, n={b.n_train} "
            f"(validation {b.n_val}), {b.epochs} epochs, minibatch {b.batch_size}, "
            f"{b.parameterization} parameterization, seeds {list(p.seeds)}, optimizers "
            + ", ".join(f"{OPTIMIZER[o]} (η={lr:g})" for o, lr in p.optimizers)
            + f"; L2 grid {list(p.l2_grid)}, L1 grid {list(p.l1_grid)}, n sweep {list(p.ns)}, "
              f"widths {list(p.widths)}. Config hash `{p.key}`. Of the sidebar, only the network and "
              "the dataset apply here.")
