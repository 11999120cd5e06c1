"""Altair chart builders and the chart + CSV download pair every page uses.

Each builder takes ONE DataFrame and draws only from it (rules and fitted lines are
filters/columns of the same frame), so the CSV offered next to a chart is exactly
the data plotted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import altair as alt
import pandas as pd
import streamlit as st

HEIGHT = 300
# Fit the container's width only: the plot keeps its height and axis titles, legends and
# chart titles are added around it (Streamlit's default "fit" squeezes them all into the
# height, which collapses a plot with a long y-axis title).
AUTOSIZE = alt.AutoSizeParams(type="fit-x", contains="padding")


def _fmt(df: pd.DataFrame, col: str) -> alt.Tooltip:
    if pd.api.types.is_float_dtype(df[col]):
        return alt.Tooltip(col, type="quantitative", format=".4g")
    if pd.api.types.is_bool_dtype(df[col]):
        return alt.Tooltip(col, type="nominal")
    if pd.api.types.is_integer_dtype(df[col]):
        return alt.Tooltip(col, type="quantitative")
    return alt.Tooltip(col, type="nominal")


def tooltips(df: pd.DataFrame, cols: Sequence[str] | None = None) -> list[alt.Tooltip]:
    return [_fmt(df, c) for c in (cols or df.columns)]


def scale(kind: str | None, **kw) -> alt.Scale:
    """"log", "log2", "symlog" or None (linear, zero not forced)."""
    if kind == "log":
        return alt.Scale(type="log", **kw)
    if kind == "log2":
        return alt.Scale(type="log", base=2, **kw)
    if kind == "symlog":
        return alt.Scale(type="symlog", **kw)
    return alt.Scale(zero=False, **kw)


def _axis(kind: str | None, values: Sequence | None = None) -> alt.Axis:
    kw = {"values": list(values)} if values is not None else {}
    if kind in ("log", "log2", "symlog"):
        return alt.Axis(format="~g", **kw)
    return alt.Axis(**kw)


def int_ticks(k: int, most: int = 20) -> list[int] | None:
    """Ticks 1..k for a rank axis, or None (automatic ticks) when k is large."""
    return list(range(1, k + 1)) if k <= most else None


def auto_log(values, decades: float = 1.0) -> str | None:
    """"log" when the positive values span at least ``decades`` decades, else None
    (linear): log axes only where values really span orders of magnitude."""
    v = pd.to_numeric(pd.Series(values), errors="coerce").dropna()
    v = v[v > 0]
    if len(v) < 2:
        return None
    return "log" if v.max() / v.min() >= 10 ** decades else None


RULE_COLORS = ("#d62728", "#ff7f0e", "#2ca02c")


def _rules(df: pd.DataFrame, x: str, rules: Sequence[tuple[str, str]],
           labels: bool = True) -> list:
    """Dashed vertical rules at the ``x`` of rows where a boolean column is true,
    optionally labelled at the top of the plot."""
    layers = []
    for i, ((col, label), color) in enumerate(zip(rules, RULE_COLORS)):
        sel = alt.Chart(df).transform_filter(alt.datum[col])
        layers.append(sel.mark_rule(strokeDash=[6, 4], color=color, strokeWidth=1.5).encode(
            x=alt.X(x, type="quantitative"),
            tooltip=[alt.Tooltip(x, type="quantitative", title=label)]))
        if labels:
            layers.append(sel.mark_text(align="right", dx=-4, dy=8 + 14 * i, color=color).encode(
                x=alt.X(x, type="quantitative"), y=alt.value(0), text=alt.value(label)))
    return layers


def lines(df: pd.DataFrame, x: str, y: str, *, x_title, y_title,
          color: str | None = None, color_title: str | None = None, x_scale: str | None = None,
          y_scale: str | None = None, points: bool = True, color_sort: Sequence | None = None,
          ordinal_color: bool = False, title: str | None = None,
          rules: Sequence[tuple[str, str]] = (), symlog_constant: float | None = None,
          x_ticks: Sequence | None = None, height: int = HEIGHT) -> alt.LayerChart | alt.Chart:
    """Lines (with points) of ``y`` against ``x``, optionally one per ``color`` value.

    Titles may be a string or a list of lines. ``color_title=None`` hides the legend
    title. ``rules`` lists (boolean column, label): a dashed vertical rule is drawn at
    the ``x`` of the rows where the column is true (e.g. the best epoch).
    ``symlog_constant`` sets where a symlog x axis turns from linear to logarithmic
    (e.g. the smallest positive λ); ``x_ticks`` fixes the x tick values. A scale of
    "auto" is log when the values span a decade or more, else linear.
    """
    if y_scale == "auto":
        y_scale = auto_log(df[y]) if len(df) else None
    xkw = {"constant": symlog_constant} if x_scale == "symlog" and symlog_constant else {}
    enc = dict(
        x=alt.X(x, type="quantitative", title=x_title, scale=scale(x_scale, **xkw),
                axis=_axis(x_scale, x_ticks)),
        y=alt.Y(y, type="quantitative", title=y_title, scale=scale(y_scale), axis=_axis(y_scale)),
        tooltip=tooltips(df),
    )
    if color:
        ctype = "ordinal" if ordinal_color else "nominal"
        # Short ordinal labels (ranks, λ values) sit on the right; long names below.
        legend = (alt.Legend(orient="right") if ordinal_color else
                  alt.Legend(orient="bottom", direction="horizontal", columns=2, labelLimit=320))
        enc["color"] = alt.Color(color, type=ctype, title=color_title,
                                 sort=list(color_sort) if color_sort is not None else None,
                                 scale=alt.Scale(scheme="viridis") if ordinal_color else alt.Scale(),
                                 legend=legend)
    chart = alt.Chart(df, title=title or alt.Undefined).encode(**enc).mark_line(
        point=points, clip=True)
    if rules:
        chart = alt.layer(chart, *_rules(df, x, rules))
    return chart.properties(height=height, autosize=AUTOSIZE)


def facets(df: pd.DataFrame, x: str, y: str, facet: str, *, x_title, y_title,
           facet_title: str, y_scale: str | None = "auto", columns: int = 4,
           facet_sort: Sequence | None = None, facet_prefix: str = "",
           rules: Sequence[tuple[str, str]] = ()) -> alt.FacetChart:
    """Small multiples: one panel per ``facet`` value (shared axes), ``columns`` a row."""
    if y_scale == "auto":
        y_scale = auto_log(df[y]) if len(df) else None
    base = alt.Chart(df).encode(
        x=alt.X(x, type="quantitative", title=x_title),
        y=alt.Y(y, type="quantitative", title=y_title, scale=scale(y_scale), axis=_axis(y_scale)),
        tooltip=tooltips(df))
    layer = base.mark_line(point=True)
    if rules:
        layer = alt.layer(layer, *_rules(df, x, rules, labels=False))
    return layer.properties(height=180, width=170).facet(
        facet=alt.Facet(facet, type="nominal", title=facet_title,
                        sort=list(facet_sort) if facet_sort is not None else "ascending",
                        header=alt.Header(labelExpr=f"'{facet_prefix}' + datum.value",
                                          labelFontSize=12)),
        columns=columns)


def points_with_line(df: pd.DataFrame, x: str, y: str, line_col: str, *, x_title,
                     y_title, line_label: str, x_scale: str | None = None,
                     y_scale: str | None = None, title: str | None = None,
                     height: int = HEIGHT) -> alt.LayerChart:
    """Measured points of ``y`` plus a dashed line of ``line_col`` (a fit or a reference),
    both from ``df``; the legend tells them apart. ``y_scale="auto"``: log when the
    values span a decade or more."""
    if y_scale == "auto":
        y_scale = auto_log(pd.concat([df[y], df[line_col]]))
    enc_x = alt.X(x, type="quantitative", title=x_title, scale=scale(x_scale), axis=_axis(x_scale))
    names = {y: "measured", line_col: line_label}
    base = alt.Chart(df, title=title or alt.Undefined).transform_fold(
        [y, line_col], as_=["series_key", "value"]).transform_calculate(
        series=f"datum.series_key == '{y}' ? '{names[y]}' : '{names[line_col]}'")
    yenc = alt.Y("value", type="quantitative", title=y_title, scale=scale(y_scale),
                 axis=_axis(y_scale))
    color = alt.Color("series", type="nominal", title=None,
                      scale=alt.Scale(domain=[names[y], names[line_col]], range=["#1f77b4", "#7f7f7f"]),
                      legend=alt.Legend(orient="bottom", direction="vertical", labelLimit=400))
    measured = base.transform_filter(f"datum.series_key == '{y}'").mark_line(point=True).encode(
        x=enc_x, y=yenc, color=color, tooltip=tooltips(df))
    ref = base.transform_filter(f"datum.series_key == '{line_col}' && isValid(datum.value)").mark_line(
        strokeDash=[6, 4]).encode(x=enc_x, y=yenc, color=color, tooltip=tooltips(df))
    return alt.layer(measured, ref).properties(height=height, autosize=AUTOSIZE)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").lower() or "data"


def show(chart, df: pd.DataFrame, name: str, *, caption: str | None = None) -> None:
    """Draws the chart and a download button with exactly its data as CSV."""
    st.altair_chart(chart, width="stretch")
    cols = st.columns([1, 3]) if caption else [st.container()]
    cols[0].download_button("Download CSV", df.to_csv(index=False).encode("utf-8"),
                            file_name=f"{_slug(name)}.csv", mime="text/csv",
                            key=f"dl_{_slug(name)}", on_click="ignore", icon=":material/download:")
    if caption:
        cols[1].caption(caption)
