"""Shared pieces of the theory pages "Kernel motion" and "Infinite width": the page opening
(question, what to look for, the papers' results with references), the one runner call
with progress and errors shown, verdict cards and the log–log charts with fitted lines.

Each chart builder takes ONE DataFrame and draws only from it, so the CSV offered next to
the chart is exactly the data plotted (as in :mod:`ui.charts`).
"""

from __future__ import annotations

import json
import logging
from typing import Any, Callable, Sequence

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

import runner
from ui import charts
from ui.findings import BADGE
from ui import layout
from ui.progress import Reporter
from ui.sidebar import current_limits, store

_log = logging.getLogger(__name__)

PARAM_NAME = {"ntk": "NTK param.", "standard": "standard param."}


# ------------------------------------------------------------------------------ opening


def header(title: str, question: str, look_for: str, results: Sequence[tuple[str, str]]) -> None:
    """The fixed opening of a theory page: title, question, what to look for, and each
    paper's result (quote, reference) — the same order as the other experiment pages.
    Every theory page runs its protocol on the sidebar's network and dataset."""
    st.title(title)
    st.markdown(f"**Question.** {question}")
    st.markdown(f"**What to look for.** {look_for}")
    for quote, ref in results:
        st.info(f"**The paper's result:** {quote}\n\n— *{ref}*", icon=":material/format_quote:")


# ------------------------------------------------------------------------------ computing


class _TheoryReporter(Reporter):
    """Progress text for the two phases of a theory computation: training (through the
    shared runner) and the measurements on the stored checkpoints."""

    def callback(self, p: runner.Progress) -> None:
        # The runner trains one group of runs, measures them, then the next group: the
        # bar is the share of runs done in both stages, so it only moves forward.
        f = p.done / max(p.total, 1)
        if p.stage is runner.Stage.REFERENCE:
            text = (f"measuring the kernels of the runs just trained (float64, exact); "
                    f"{p.done}/{p.total} runs finished before them")
        elif p.stage is runner.Stage.TRAINING:
            text = (f"training: {p.done}/{p.total} runs done (through the shared cache; one "
                    "compiled program per group of widths, the first time takes a few seconds)")
        elif p.stage is runner.Stage.QUEUED:
            f, text = 0.0, p.describe()
        else:
            f, text = 1.0, "done"
        self.bar.progress(min(max(f, 0.0), 1.0), text=text)


def compute(fn: Callable[..., Any], protocol: Any, label: str, *,
            cached_fn: Callable[..., Any] = runner.cached_theory,
            reporter: type[Reporter] = _TheoryReporter):
    """The page's one runner call (``runner.kernel_motion``, ``runner.infinite_width``, or with
    ``cached_fn=runner.cached_dynamics`` the dynamics pages'), or None after showing the
    error. A cached result shows no status box."""
    cached = cached_fn(protocol, store())
    if cached is not None:
        return cached
    rep = reporter(label)
    try:
        res = fn(protocol, current_limits(), store=store(), progress=rep.callback)
    except runner.ConfigError as exc:
        rep.fail(f"{label}: invalid setting")
        st.error(f"Invalid setting — {exc}")
        return None
    except Exception as exc:  # any engine failure becomes a message, never a traceback
        rep.fail(f"{label}: failed")
        _log.exception("%s failed", label)
        if current_limits().is_hosted:
            st.error(f"{label} failed. The error was logged on the server.")
        else:
            st.error(f"{label} failed — {type(exc).__name__}: {exc}")
        return None
    where = "computed and cached" if res.status == "computed" else "computed (cache disabled)"
    rep.complete(f"{label} — {where} in {res.compute_seconds:.0f} s")
    return res


def choose_protocol(factory: Callable[..., Any], key: str, full_text: str,
                    network: runner.Network):
    """The quick protocol (page default), or the full one when it is cached or requested
    with the button (labelled ``full_text`` plus the full protocol's sizes under the caps),
    on ``network`` (the sidebar's).
    Returns the protocol, or None (with an error) when the caps forbid it."""
    limits = current_limits()
    try:
        quick = factory("quick", limits, network)
        full = factory("full", limits, network)
    except runner.ConfigError as exc:
        if exc.param == "arch":   # the page has no version of itself for this network
            st.warning(f"This page cannot run the sidebar's network: {exc}. Choose an MLP in the "
                       "sidebar.", icon=":material/block:")
        else:
            st.error(f"This page's protocol does not fit this server's limits: {exc}")
        return None
    want_full = runner.cached_theory(full, store()) is not None or st.session_state.get(key, False)
    if not want_full:
        c = full.bases[0][1]
        label = (f"{full_text} (n={c.n_train}, {c.epochs} epochs, widths {full.widths[0]}–"
                 f"{full.widths[-1]}, {len(full.seeds)} seeds; minutes on 2 cores, cached for "
                 "everyone after)")
        if st.button(label, key=f"{key}_button"):
            st.session_state[key] = True
            want_full = True
    return full if want_full else quick


def protocol_caption(res: Any) -> None:
    p = res.protocol
    where = {"hit": "loaded from the cache", "computed": f"computed now in {res.compute_seconds:.0f} s",
             "uncached": f"computed in {res.compute_seconds:.0f} s (cache disabled)"}.get(res.status, res.status)
    parts = []
    for par, c in p.bases:
        batch = "full batch (gradient descent)" if c.batch_size == 0 else f"minibatch {c.batch_size}"
        parts.append(f"{PARAM_NAME[par]}: {c.optimizer.upper()} η={c.lr:g}, {batch}")
    c = p.bases[0][1]
    kernel = ("closed-form NTK" if c.closed_form
              else f"NTK by {layout.generic_method_text(c)}"
              + (" at the narrowest width" if c.arch == "cnn" else ""))
    st.caption(f"Showing the **{p.name}** protocol on the **{c.network.label}** ({where}; {kernel}): "
               f"n={c.n_train} training and {c.n_val} validation images (class-stratified per "
               f"seed), {c.epochs} epochs, no regularization, widths {list(p.widths)} (log₂ grid up "
               f"to the width cap), seeds {list(p.seeds)}; " + "; ".join(parts)
               + f". Config hash `{p.key}`. Of the sidebar, only the network and dataset apply "
               "here.")


# ------------------------------------------------------------------------------ verdicts


def param_label(v: Any) -> str:
    """The parameterization a verdict is about; in standard parameterization the
    infinite-width claims are measured against the width-w expectation (there is no limit)."""
    name = PARAM_NAME.get(v.parameterization, v.parameterization)
    if v.parameterization == "standard" and v.claim_id.startswith("inf_"):
        return name + ", against its width-w expectation E_w (no infinite-width limit)"
    return name


def verdict_line(v: Any) -> str:
    icon, text = BADGE[v.verdict.verdict]
    cond = f" — {v.verdict.condition}" if v.verdict.condition else ""
    return f"{icon} **{text}** ({param_label(v)}){cond}"


def verdict_summary(verdicts: Sequence[Any]) -> pd.DataFrame:
    return pd.DataFrame([{"claim": runner.THEORY_CLAIMS[v.claim_id].title,
                          "parameterization": param_label(v),
                          "verdict": v.verdict.verdict.replace("_", " "),
                          "condition": v.verdict.condition} for v in verdicts])


def verdict_card(v: Any, key: str) -> None:
    """One live verdict: claim, verdict line, statistic, criterion, per-seed numbers, theory."""
    claim = runner.THEORY_CLAIMS[v.claim_id]
    j = v.verdict.to_json()
    with st.container(border=True):
        st.markdown(f"**{claim.title}** · {param_label(v)}")
        st.markdown(verdict_line(v))
        with st.expander("Statistic, criterion, per-seed numbers and theory"):
            st.markdown(f"**Statistic.** {claim.statistic_definition}")
            if v.parameterization == "standard" and v.claim_id.startswith("inf_"):
                st.markdown("Here in **standard parameterization**: the same distance to the kernel's "
                            "expectation at the same width, E_w (ntk_core.analytic_kernels with "
                            "width=w), from independent draws of the PyTorch init.")
            st.json(j["statistic"], expanded=False)
            st.markdown(f"**Criterion.** {j['criterion']}")
            if j["per_seed"]:
                st.markdown("**Per seed.**")
                st.dataframe(pd.DataFrame([{k: (json.dumps(x) if isinstance(x, list) else x)
                                            for k, x in row.items()} for row in j["per_seed"]]),
                             hide_index=True, key=f"seeds_{key}")
            st.markdown(f"**What theory says.** {claim.theory}")
            st.caption(f"Reference: {claim.reference}")


def verdicts_block(verdicts: Sequence[Any], key: str) -> None:
    st.subheader("Live verdicts")
    st.caption("Each verdict is computed from the data above by a stated rule (3 seeds), like the "
               "Findings page — never written by hand. Open a card for the statistic, the criterion "
               "with its thresholds, the per-seed numbers and what theory says.")
    st.dataframe(verdict_summary(verdicts), hide_index=True, key=f"summary_{key}")
    for i, v in enumerate(verdicts):
        verdict_card(v, f"{key}_{v.claim_id}_{v.parameterization}_{i}")


# ------------------------------------------------------------------------------ frames


def array(x: Any) -> np.ndarray:
    """Nested JSON lists (None = NaN) → float array of any rank."""
    def conv(v):
        if isinstance(v, list):
            return [conv(u) for u in v]
        return np.nan if v is None else v
    return np.asarray(conv(x), dtype=float)


def power_frame(widths: Sequence[int], series: Sequence[tuple[str, np.ndarray]],
                guides: Sequence[tuple[str, float]] = ()) -> pd.DataFrame:
    """Long frame for a log–log chart of per-seed values against width.

    For each (name, (S, W) values): one ``measured`` row per width (seed mean, sd, min and
    max over seeds) and one ``fit`` row per width from the pooled log–log least-squares fit
    over the usable widths (what the verdicts use). ``guides``: (name of the series to
    anchor on, exponent) pairs, each a dashed line of that slope through that series' mean
    at the widest width.
    """
    w = np.asarray(widths, float)
    rows: list[dict] = []
    fits: dict[str, dict] = {}
    for name, values in series:
        v = np.asarray(values, float)
        ok = np.isfinite(v).all(axis=0) & (v > 0).all(axis=0)
        mean = v.mean(axis=0)
        sd = v.std(axis=0, ddof=1) if v.shape[0] > 1 else np.zeros(w.size)
        for j in range(w.size):
            if ok[j]:
                rows.append({"width": int(w[j]), "series": name, "kind": "measured (mean ± sd over seeds)",
                             "value": mean[j], "sd": sd[j], "low": max(mean[j] - sd[j], v[:, j].min()),
                             "high": mean[j] + sd[j], "seeds": v.shape[0]})
        if ok.sum() >= 2:
            x = np.tile(np.log(w[ok]), v.shape[0])
            y = np.log(v[:, ok]).ravel()
            b, a = np.polyfit(x, y, 1)
            fits[name] = {"slope": b, "intercept": a}
            for j in np.flatnonzero(ok):
                rows.append({"width": int(w[j]), "series": name, "kind": f"fit: slope {b:.2f}",
                             "value": float(np.exp(a + b * np.log(w[j]))), "sd": np.nan,
                             "low": np.nan, "high": np.nan, "seeds": v.shape[0]})
    for name, slope in guides:
        anchor = [r for r in rows if r["series"] == name and r["kind"].startswith("measured")]
        if anchor:
            last = anchor[-1]
            for wj in w:
                rows.append({"width": int(wj), "series": f"guide: slope {slope:g}",
                             "kind": f"guide: slope {slope:g}",
                             "value": last["value"] * (wj / last["width"]) ** slope, "sd": np.nan,
                             "low": np.nan, "high": np.nan, "seeds": 0})
    return pd.DataFrame(rows, columns=["width", "series", "kind", "value", "sd", "low", "high", "seeds"])


def power_chart(df: pd.DataFrame, *, y_title, title: str, x_title: str = "hidden width (log₂ axis)"):
    """Measured means (points + error bars of ± sd) and dashed fitted/guide lines, log–log;
    one colour per series. Draws only ``df``."""
    x = alt.X("width", type="quantitative", title=x_title, scale=alt.Scale(type="log", base=2),
              axis=alt.Axis(format="~g"))
    y = alt.Y("value", type="quantitative", title=y_title, scale=alt.Scale(type="log"),
              axis=alt.Axis(format="~g"))
    color = alt.Color("series", type="nominal", title=None,
                      legend=alt.Legend(orient="bottom", direction="vertical", labelLimit=420))
    base = alt.Chart(df, title=title)
    measured = base.transform_filter(alt.FieldOneOfPredicate("kind", ["measured (mean ± sd over seeds)"]))
    pts = measured.mark_line(point=True).encode(x=x, y=y, color=color, tooltip=charts.tooltips(df))
    bars = measured.transform_filter("isValid(datum.low) && datum.low > 0").mark_rule().encode(
        x=x, y=alt.Y("low", type="quantitative", scale=alt.Scale(type="log")), y2="high", color=color,
        tooltip=charts.tooltips(df))
    lines = base.transform_filter(
        "indexof(datum.kind, 'fit') == 0 || indexof(datum.kind, 'guide') == 0").mark_line(
        strokeDash=[6, 4], opacity=0.8).encode(
        x=x, y=y, color=color, detail="kind", tooltip=charts.tooltips(df))
    return alt.layer(pts, bars, lines).properties(height=charts.HEIGHT, autosize=charts.AUTOSIZE)


def fmt_ci(slope: Any, ci: Any) -> str:
    if slope is None or ci is None or ci[0] is None:
        return "n/a"
    return f"{slope:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"
