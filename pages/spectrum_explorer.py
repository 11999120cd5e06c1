"""The whole NTK spectrum of one configuration, optionally against a second one."""

import streamlit as st

from ui import charts, data, engine, layout, sidebar

view = sidebar.current()
cfg = view.config
K, P = view.norm, cfg.parameterization

layout.header(
    "Spectrum explorer",
    "What does the whole eigenvalue distribution look like, beyond the top-k?",
    "The density on a log axis shows the bulk and the outliers. Read the two CDFs "
    "differently: in the count CDF (share of eigenvalues ≤ t) λ₁ is one eigenvalue, 1/n of "
    "the mass, so a larger λ₁ only moves the curve's right end; in the trace-weighted CDF "
    "(share of the trace in eigenvalues ≤ t) a λ₁ that carries more of the trace keeps the "
    "curve low until t reaches λ₁ — that is where a CDF 'saturates late'. Eigenvalues below "
    "the round-off floor are counted, not drawn.",
    "Larger λ1 → CDF saturates late.")
layout.config_caption(view)

c1, c2, c3 = st.columns([1, 1, 1])
epoch = c1.slider("Epoch of the sidebar config", 0, cfg.epochs, cfg.epochs, key="exp_epoch")
compare = c2.radio("Compare with", ["nothing", "another L2 λ", "another epoch"], key="exp_compare",
                   help="The second config is the sidebar config with one thing changed.")
items = [("A: sidebar config", cfg, epoch)]
if compare == "another L2 λ":
    lam = c3.number_input("L2 strength λ of config B", min_value=0.0, max_value=100.0, value=1e-2,
                          step=1e-3, format="%g", key="exp_l2")
    cfg_b = cfg.replace(reg="l2", reg_strength=lam)
    items.append((f"B: {cfg_b.regularizer_label}", cfg_b, epoch))
elif compare == "another epoch":
    epoch_b = c3.slider("Epoch of config B", 0, cfg.epochs, 0, key="exp_epoch_b")
    items.append((f"B: epoch {epoch_b}", cfg, epoch_b))

out = engine.spectra(items, "Whole spectra")

if out is not None:
    engine.show_notices(out.results, out.labels, out.notes, out.errors)
    specs, labs, cfgs = out.available()
    if specs:
        summary = data.spectrum_summary(specs, labs, cfgs, K)
        cols = st.columns(len(specs))
        for col, row in zip(cols, summary.itertuples()):
            col.metric(f"λ₁ share of the trace — {row.series}", f"{row.lambda1_share_of_trace:.1%}",
                       help=f"λ₁ = {row.lambda_1:.4g}, trace = {row.trace:.4g} "
                            f"({data.kernel_name(K)}); method: {row.method}")
        note = data.floor_note(specs, labs)
        if note:
            st.caption(note + ".")
        methods = set(summary["method"])
        st.caption("Method: " + ("dense eigendecomposition of the n×n kernel" if methods == {"dense"}
                                 else "stochastic Lanczos quadrature (SLQ) estimate of the density "
                                      "(n above the dense limit); top-k and trace are exact")
                   + ".")
        left, right = st.columns(2)
        with left:
            df = data.density_frame(specs, labs, cfgs, K)
            charts.show(charts.lines(df, "eigenvalue", "density_per_decade", color="series",
                                     color_title="config", color_sort=labs, x_scale="log",
                                     y_scale=None, points=False,
                                     x_title=data.axis_title("eigenvalue", K, P),
                                     y_title="share of eigenvalues per decade (smoothed)",
                                     title="Spectral density on a log axis"),
                        df, "spectral_density")
        with right:
            df = data.cdf_frame(specs, labs, cfgs, K)
            charts.show(charts.lines(df, "eigenvalue", "cdf", color="series", color_title="config",
                                     color_sort=labs, x_scale="log", points=False,
                                     x_title=data.axis_title("eigenvalue t", K, P),
                                     y_title="share of eigenvalues ≤ t (CDF)",
                                     title="Spectral CDF"),
                        df, "spectral_cdf")
        left, right = st.columns(2)
        with left:
            df = data.cdf_frame(specs, labs, cfgs, K)
            charts.show(charts.lines(df, "eigenvalue", "trace_cdf", color="series",
                                     color_title="config", color_sort=labs, x_scale="log",
                                     points=False, x_title=data.axis_title("eigenvalue t", K, P),
                                     y_title="share of the trace in eigenvalues ≤ t",
                                     title="Trace-weighted CDF"),
                        df, "spectral_trace_cdf")
        with right:
            df = data.cumshare_frame(specs, labs)
            charts.show(charts.lines(df, "j", "cumulative_share", color="series", color_title="config",
                                     color_sort=labs, x_ticks=charts.int_ticks(cfg.top_k),
                                     x_title="number of top eigenvalues j",
                                     y_title=f"share of trace({data.kernel_name(K)}) in the top-j",
                                     title=f"Cumulative share of the trace in the top-{cfg.top_k}"),
                        df, "cumulative_share_topk")
        st.dataframe(summary, hide_index=True)
