"""λ_max and trace of the NTK against the number of training samples n, with a line fit."""

import streamlit as st

from ui import charts, data, engine, layout, params, sidebar

view = sidebar.current()
cfg = view.config
P = cfg.parameterization

layout.header(
    "Training-set size",
    "How do the trace and the largest eigenvalue of the kernel scale with n?",
    "Whether the points sit on the fitted line (R² near 1) and the log–log slope (1 means "
    "proportional to n). Switch the normalization to Θ/n: the growth with n then becomes "
    "a (nearly) flat line, i.e. the per-sample kernel does not change with n.",
    "Trace and λ_max grow ~linearly with n.")
layout.config_caption(view)

c1, c2, c3 = st.columns([2, 1, 1])
text = c1.text_input("Training samples n (comma-separated)", "250, 500, 1000, 2000", key="size_values",
                     help=f"Integers, at most {view.limits.max_grid} values. Each n is a separate "
                          "compiled training program, so the first visit takes a few seconds per n.")
epoch = c2.slider("Epoch", 0, cfg.epochs, cfg.epochs, key="size_epoch",
                  help="0 = initialization.")
K = c3.radio("Normalization", params.NORMS, index=params.NORMS.index(view.norm), horizontal=True,
             key=f"size_norm_{params.NORMS.index(view.norm)}",
             help="Starts at the sidebar's kernel normalization; Θ/n divides by each run's n.")

ns = layout.number_list(text, "samples", integer=True, max_count=view.limits.max_grid)
rs = engine.sweep(cfg, "samples", sorted(ns), "Training-size sweep") if ns else None

if rs is not None:
    ns = sorted(ns)
    engine.show_notices(rs, [f"n={n}" for n in ns])
    summary = data.summary_frame(rs, ns, "n", epoch, K)
    for col, (name, q) in zip(st.columns(2), [("λ_max", "lambda_max"), ("trace", "trace")]):
        with col:
            df, fit = data.with_fit(summary[["n", "epoch", q]], "n", q)
            m1, m2, m3 = st.columns(3)
            m1.metric("slope per sample", f"{fit['slope']:.4g}")
            m2.metric("R² of the line", f"{fit['r2']:.4f}")
            m3.metric("log–log slope", f"{fit['loglog_slope']:.3f}",
                      help="Exponent b in value ∝ nᵇ; 1 = linear growth.")
            charts.show(charts.points_with_line(df, "n", q, f"{q}_fit", x_title="training samples n",
                                                y_title=data.axis_title(name, K, P),
                                                line_label="least-squares line",
                                                title=f"{name} vs n at epoch {epoch}"),
                        df, f"{q}_vs_n_epoch{epoch}")
