"""How the NTK spectrum depends on the L2 penalty, at a chosen epoch."""

import streamlit as st

from ui import charts, data, engine, layout, sidebar

view = sidebar.current()
cfg = view.config
K, P = view.norm, cfg.parameterization

layout.header(
    "Spectrum vs L2 regularization",
    "How does the L2 penalty λ change the top of the NTK spectrum?",
    "λ_max (and the whole top-k) at the chosen epoch as λ grows. The count CDF gives every "
    "eigenvalue weight 1/n, so a large λ₁ barely shows in it; the trace-weighted CDF shows "
    "how much of the trace sits in the largest eigenvalues.",
    "Maximum eigenvalue of the NTK matrix decreases as we apply regularization.")
layout.config_caption(view)

c1, c2 = st.columns([2, 1])
text = c1.text_input("L2 strengths λ (comma-separated)", "0, 1e-4, 1e-3, 1e-2, 1e-1",
                     key="l2_values", help=f"At most {view.limits.max_grid} values; 0 = no penalty.")
epoch = c2.slider("Epoch", 0, cfg.epochs, cfg.epochs, key="l2_epoch",
                  help="0 = initialization. The same epoch is used for every λ.")

lams = layout.number_list(text, "l2", max_count=view.limits.max_grid)

out = None
if lams:
    labels = [f"λ={v:g}" for v in lams]
    out = engine.sweep_spectra(cfg, "l2", lams, epoch, labels, "L2 sweep + spectra")

if out is not None:
    engine.show_notices(out.results, labels, out.notes, out.errors)
    left, right = st.columns(2)
    with left:
        df = data.topk_at_frame(out.results, lams, "l2", epoch, K)
        charts.show(charts.lines(df, "rank", "eigenvalue", color="l2", color_title="L2 λ",
                                 ordinal_color=True, color_sort=lams, y_scale="log",
                                 x_ticks=charts.int_ticks(cfg.top_k),
                                 x_title="rank j (1 = λ_max)",
                                 y_title=data.axis_title(f"λ_j at epoch {epoch}", K, P),
                                 title=layout.with_decay("Top-k eigenvalues per λ", cfg)),
                    df, f"topk_vs_l2_epoch{epoch}")
    with right:
        df = data.summary_frame(out.results, lams, "l2", epoch, K)
        charts.show(charts.lines(df, "l2", "lambda_max", x_scale="symlog",
                                 symlog_constant=min([v for v in lams if v > 0], default=1.0),
                                 x_ticks=sorted(lams), y_scale="auto",
                                 x_title="L2 strength λ (symlog axis: 0 included)",
                                 y_title=data.axis_title("λ_max", K, P),
                                 title=layout.with_decay(f"λ_max vs λ at epoch {epoch}", cfg)),
                    df, f"lambda_max_vs_l2_epoch{epoch}")
    specs, labs, cfgs = out.available()
    if specs:
        left, right = st.columns(2)
        with left:
            df = data.cdf_frame(specs, labs, cfgs, K)
            method = "dense eigenvalues" if specs[0].method == "dense" else "SLQ estimate"
            charts.show(charts.lines(df, "eigenvalue", "cdf", color="series", color_title="run",
                                     color_sort=labs, ordinal_color=True, x_scale="log", points=False,
                                     x_title=data.axis_title("eigenvalue t", K, P),
                                     y_title="share of eigenvalues ≤ t (CDF)",
                                     title=f"Spectral CDF ({method})"),
                        df, f"cdf_vs_l2_epoch{epoch}")
        with right:
            df = data.cdf_frame(specs, labs, cfgs, K)
            charts.show(charts.lines(df, "eigenvalue", "trace_cdf", color="series", color_title="run",
                                     color_sort=labs, ordinal_color=True, x_scale="log", points=False,
                                     x_title=data.axis_title("eigenvalue t", K, P),
                                     y_title="share of the trace in eigenvalues ≤ t",
                                     title="Trace-weighted CDF"),
                        df, f"trace_cdf_vs_l2_epoch{epoch}")
        df = data.cumshare_frame(specs, labs)
        charts.show(charts.lines(df, "j", "cumulative_share", color="series",
                                 color_title="run", color_sort=labs, ordinal_color=True,
                                 x_ticks=charts.int_ticks(cfg.top_k),
                                 x_title="number of top eigenvalues j",
                                 y_title=f"share of trace({data.kernel_name(K)}) in top-j",
                                 title="Cumulative share of the trace", height=240),
                    df, f"cumulative_share_vs_l2_epoch{epoch}")
        note = data.floor_note(specs, labs)
        if note:
            st.caption(note + ".")
