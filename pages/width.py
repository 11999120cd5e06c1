"""λ_max, trace and effective rank of the NTK against the hidden width."""

import streamlit as st

from ui import charts, data, engine, layout, sidebar

view = sidebar.current()
cfg = view.config
K, P = view.norm, cfg.parameterization

layout.header(
    "Width",
    "How does the kernel's spectrum change from a 1-unit network to a wide one?",
    "Is the width-1 kernel rank-1? Read the effective-rank chart (1 = rank-1): here the "
    "first-layer gradients still carry the input Gram matrix, masked by the one unit's "
    "activity, so expect more than 1 unless that unit is dead. Then watch for a dip at small "
    "widths and how the curves flatten towards the analytic reference as the width grows.",
    "Width 1 is rank-1, dip near 8, flattens at large width.")
layout.config_caption(view)

GRID = [w for w in (2 ** i for i in range(13)) if w <= view.limits.max_width]
DEFAULT = [w for w in (1, 2, 4, 8, 16, 32, 64, 128, 256) if w in GRID][-view.limits.max_grid:]
c1, c2 = st.columns([2, 1])
widths = c1.multiselect("Widths (log₂ grid)", GRID, default=DEFAULT, key="width_values",
                        max_selections=view.limits.max_grid,
                        help="Each width is a separate compiled training program; the default "
                             "subset is quick, the largest widths take longer.")
epoch = c2.slider("Epoch", 0, cfg.epochs, 0, key="width_epoch",
                  help="0 = initialization, where the analytic reference applies exactly.")

out = engine.width_sweep(cfg, sorted(widths), "Width sweep") if widths else None
if not widths:
    st.warning("Pick at least one width.")

REF = "analytic: infinite width (NTK param.) / expected at init (standard param.)"
REF_SHORT = ("analytic: infinite width (NTK param.)" if P == "ntk"
             else "analytic: expected at init (standard param.)")
if out is not None:
    ws = sorted(widths)
    engine.show_notices(out.results, [f"width={w}" for w in ws], out.notes)
    df = data.width_frame(out.results, ws, out.references, epoch, K)
    specs = [("λ_max", "lambda_max", "auto"), ("trace", "trace", "auto"),
             (f"effective rank of the top-{cfg.top_k}", "effective_rank_topk", None)]
    cols = st.columns(2) + st.columns(2)[:1]
    for col, (name, q, ys) in zip(cols, specs):
        with col:
            part = df[["width", "epoch", q, f"analytic_{q}"]]
            y_title = (data.axis_title(name, K, P) if q != "effective_rank_topk"
                       else f"{name} eigenvalues (exp of entropy; 1 = rank-1)")
            charts.show(charts.points_with_line(part, "width", q, f"analytic_{q}", x_title="hidden width",
                                                y_title=y_title, line_label=REF_SHORT, x_scale="log2",
                                                y_scale=ys, title=f"{name} vs width (epoch {epoch})"),
                        part, f"{q}_vs_width_epoch{epoch}")
    st.caption("Dashed: " + REF + ". The standard-parameterization expectation depends on the "
               "width, so it is a curve; the NTK-parameterization limit is one value.")
