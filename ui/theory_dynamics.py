"""Shared pieces of the theory pages "Linearized" and "Stability": the one runner call with
progress and errors shown, the protocol choice and caption, verdict cards, and the two
chart builders these pages add (network vs linearization over epochs; per-step curves
against a horizontal threshold). The page opening and the log–log width charts come from
:mod:`ui.theory`.

Each chart builder takes ONE DataFrame and draws only from it, so the CSV offered next to
the chart is exactly the data plotted (as in :mod:`ui.charts`).
"""

from __future__ import annotations

import json
from typing import Any, Callable

import altair as alt
import pandas as pd
import streamlit as st

import runner
from runner import _theory_dynamics as td
from ui import charts, theory
from ui.findings import BADGE
from ui.progress import Reporter
from ui.sidebar import current_limits, store


class _DynamicsReporter(Reporter):
    def callback(self, p: runner.Progress) -> None:
        if p.stage is runner.Stage.QUEUED:
            f, text = 0.0, p.describe()
        elif p.stage is runner.Stage.TRAINING:
            f = p.done / max(p.total, 1)
            text = (f"gradient descent and its linear model / sharpness: {p.done}/{p.total} "
                    "(one compiled program per width; the first takes a few seconds)")
        else:
            f, text = 1.0, "done"
        self.bar.progress(min(max(f, 0.0), 1.0), text=text)


def compute(fn: Callable[..., Any], protocol: td.DynamicsProtocol, label: str):
    """The page's one runner call, or None after showing the error. A cached result shows
    no status box."""
    return theory.compute(fn, protocol, label, cached_fn=runner.cached_dynamics,
                          reporter=_DynamicsReporter)


def choose_protocol(factory: Callable[..., td.DynamicsProtocol], key: str,
                    full_text: str, network: runner.Network) -> td.DynamicsProtocol | None:
    """The quick protocol (page default), or the full one when cached or requested (the
    button is offered only when the full protocol fits this server's limits), on
    ``network`` (the sidebar's)."""
    limits = current_limits()
    try:
        quick = factory("quick", limits, network)
    except runner.ConfigError as exc:
        st.error(f"This page's protocol does not fit this server's limits: {exc}")
        return None
    try:
        full = factory("full", limits, network)
    except runner.ConfigError:
        return quick
    want_full = td.cached_dynamics(full, store()) is not None or st.session_state.get(key, False)
    if not want_full and st.button(full_text, key=f"{key}_button"):
        st.session_state[key] = True
        want_full = True
    return full if want_full else quick


def protocol_caption(res: td.DynamicsResult, extra: str) -> None:
    p = res.protocol
    c = p.base
    where = {"hit": "loaded from the cache", "computed": f"computed now in {res.compute_seconds:.0f} s",
             "uncached": f"computed in {res.compute_seconds:.0f} s (cache disabled)"}.get(res.status, res.status)
    kernel = ("closed-form NTK" if c.closed_form else "full NTK formed densely "
              + ("layer-wise" if c.arch == "mlp" else "by jax.vjp/jvp") + ", products by jax.vjp/jvp")
    st.caption(f"Showing the **{p.name}** protocol on the **{c.network.label}** ({where}; {kernel}): "
               f"n={c.n_train} training and {c.n_val} validation images (class-stratified per "
               f"seed), NTK parameterization, full-batch gradient descent, no regularization, seeds "
               f"{list(p.seeds)}; {extra}. Config hash `{p.key}`. Of the sidebar, only the network "
               "and dataset apply here.")


def verdict_card(v: runner.Verdict, key: str, note: str = "") -> None:
    claim = td.DYNAMICS_CLAIMS[v.claim_id]
    icon, text = BADGE[v.verdict]
    with st.container(border=True):
        st.markdown(f"**{claim.title}**{note}")
        st.markdown(f"{icon} **{text}**" + (f" — {v.condition}" if v.condition else ""))
        with st.expander("Statistic, criterion and theory"):
            st.markdown(f"**Statistic.** {claim.statistic_definition}")
            st.json(json.loads(json.dumps(v.to_json()["statistic"])), expanded=False)
            st.markdown(f"**Criterion.** {v.criterion}")
            st.markdown(f"**What theory says.** {claim.theory}")
            st.caption(f"Reference: {claim.reference}")


def verdicts_block(verdicts: list, key: str, notes: list[str] | None = None) -> None:
    st.subheader("Live verdicts")
    st.caption("Each verdict is computed from the data above by a stated rule, like the Findings "
               "page — never written by hand. Open a card for the statistic, the criterion with "
               "its thresholds and what theory says.")
    rows = [{"claim": td.DYNAMICS_CLAIMS[v.claim_id].title + (notes[i] if notes else ""),
             "verdict": v.verdict.replace("_", " "), "condition": v.condition}
            for i, v in enumerate(verdicts)]
    st.dataframe(pd.DataFrame(rows), hide_index=True, key=f"summary_{key}")
    for i, v in enumerate(verdicts):
        verdict_card(v, f"{key}_{i}", notes[i] if notes else "")


def model_lines(df: pd.DataFrame, y: str, *, y_title, title: str, y_scale: str | None = None):
    """``y`` over ``epoch``: one colour per width (ordinal), solid = network, dashed = its
    linearization (column ``model``). Draws only ``df``."""
    widths = sorted(df["width"].unique().tolist())
    return alt.Chart(df, title=title).mark_line(clip=True).encode(
        x=alt.X("epoch", type="quantitative", title="epoch (= gradient-descent step; 0 = init)"),
        y=alt.Y(y, type="quantitative", title=y_title, scale=charts.scale(y_scale)),
        color=alt.Color("width", type="ordinal", title="width", sort=widths,
                        scale=alt.Scale(scheme="viridis"), legend=alt.Legend(orient="right")),
        strokeDash=alt.StrokeDash("model", type="nominal", title=None,
                                  sort=["network", "linearized (θ_0)"],
                                  legend=alt.Legend(orient="bottom")),
        detail="model", tooltip=charts.tooltips(df),
    ).properties(height=charts.HEIGHT, autosize=charts.AUTOSIZE)


def step_lines(df: pd.DataFrame, y: str, *, y_title, title: str, y_scale: str | None = None,
               threshold: str | None = None):
    """``y`` over ``step``, one colour per ``eta_lambda0`` (ordinal); with ``threshold`` a
    dashed horizontal rule at that column's value (a column of ``df``, e.g. 2)."""
    order = sorted(df["eta_lambda0"].unique().tolist())
    base = alt.Chart(df, title=title)
    line = base.mark_line(clip=True).encode(
        x=alt.X("step", type="quantitative", title="gradient-descent step t"),
        y=alt.Y(y, type="quantitative", title=y_title, scale=charts.scale(y_scale)),
        color=alt.Color("eta_lambda0", type="ordinal", title="η·λ₀", sort=order,
                        scale=alt.Scale(scheme="plasma"), legend=alt.Legend(orient="right")),
        tooltip=charts.tooltips(df))
    layers = [line]
    if threshold:
        layers.append(base.mark_rule(strokeDash=[6, 4], color="black").encode(
            y=alt.Y(threshold, type="quantitative", aggregate="max")))
    return alt.layer(*layers).properties(height=charts.HEIGHT, autosize=charts.AUTOSIZE)
