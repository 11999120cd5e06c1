"""λ_max over epochs for a grid of L1 or L2 strengths: small multiples and an overlay."""

import streamlit as st

from ui import charts, data, engine, layout, params, sidebar

view = sidebar.current()
cfg = view.config
K, P = view.norm, cfg.parameterization

layout.header(
    "Regularization grid",
    "Does a stronger penalty make the top eigenvalue decline faster during training?",
    "The slope of each curve: with the 'relative to initialization' view every run starts at "
    "1, so a sharper decline is a curve that drops lower, sooner.",
    "Higher L2 gives a sharper decline.")
layout.config_caption(view)

DEFAULTS = {"l2": [1e-4, 1e-3, 1e-2, 1e-1], "l1": [1e-5, 1e-4, 1e-3, 1e-2]}
c1, c2, c3 = st.columns([1, 2, 2])
kind = c1.radio("Penalty", ["l2", "l1"], format_func=str.upper, horizontal=True, key="grid_kind")
text = c2.text_input(f"{kind.upper()} strengths λ (comma-separated)",
                     params.format_number_list(DEFAULTS[kind]), key=f"grid_values_{kind}",
                     help=f"At most {view.limits.max_grid} values. The study used four.")
quantity = c3.radio("Quantity", ["lambda_max", "trace"], horizontal=True, key="grid_quantity",
                    format_func={"lambda_max": "λ_max", "trace": "trace"}.__getitem__)
relative = st.toggle("Relative to initialization (value at epoch e ÷ value at epoch 0)",
                     value=True, key="grid_relative")

lams = layout.number_list(text, kind, max_count=view.limits.max_grid)
rs = engine.sweep(cfg, kind, lams, f"{kind.upper()} grid") if lams else None

if rs is not None:
    labels = [f"λ={v:g}" for v in lams]
    engine.show_notices(rs, labels)
    df = data.sweep_epoch_frame(rs, lams, "lambda", K, quantity)
    qname = "λ_max" if quantity == "lambda_max" else "trace"
    y = "relative_to_init" if relative else "value"
    y_title = (f"{qname}(epoch) / {qname}(init) of {data.kernel_name(K)}" if relative
               else data.axis_title(qname, K, P))
    st.subheader("Small multiples")
    charts.show(charts.facets(df, "epoch", y, "lambda", x_title="epoch (0 = init)", y_title=y_title,
                              facet_title=layout.with_decay(f"{kind.upper()} strength", cfg), facet_prefix="λ = ",
                              facet_sort=lams, rules=[("is_best_epoch", "best epoch")]),
                df, f"{kind}_grid_{quantity}_panels",
                caption="Dashed rule: best epoch (lowest validation loss) of each run.")
    st.subheader("Overlay")
    charts.show(charts.lines(df, "epoch", y, color="lambda", color_title=f"{kind.upper()} λ",
                             ordinal_color=True, color_sort=lams, y_scale="auto",
                             x_title="epoch (0 = init)", y_title=y_title,
                             title=layout.with_decay(f"{qname} over epochs for every {kind.upper()} strength", cfg)),
                df, f"{kind}_grid_{quantity}_overlay")
