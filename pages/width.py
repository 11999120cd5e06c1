"""λ_max, trace and the whole-spectrum rank of the NTK against the hidden width."""

import numpy as np
import pandas as pd
import streamlit as st

import runner
from ui import charts, data, engine, layout, sidebar

view = sidebar.current()
cfg = view.config
K, P = view.norm, cfg.parameterization

layout.header(
    "Width",
    "How does the kernel's spectrum change from a 1-unit network to a wide one?",
    "Is the width-1 kernel rank-1? The rank chart counts the eigenvalues of the WHOLE spectrum "
    "above the round-off floor and the participation ratio (Σλ)²/Σλ² (1 = one direction). At "
    "width 1 the first-layer gradients still carry the input Gram matrix, masked by where the "
    "one unit is active, so expect more than rank 1 unless that unit is dead. Then look for "
    "a dip at small widths, a rise at 16–32 and a flat curve beyond 32.",
    runner.CLAIMS["width_1_rank_1"].quote + "; " + runner.CLAIMS["width_dip_rise_flatten"].quote)
layout.config_caption(view)

# The CNN's width is its channel count (a smaller range); without the closed form every
# width is its own compiled program and its kernel the slower generic one: fewer defaults.
WIDTH_NAME = "channels" if cfg.arch == "cnn" else "hidden width"
GRID = [w for w in (2 ** i for i in range(13)) if w <= runner.bounds(view.limits, arch=cfg.arch).width[1]]
DEFAULT = ([w for w in (1, 2, 4, 8, 16, 32, 64, 128, 256) if w in GRID] if cfg.closed_form
           else [w for w in ((1, 2, 4, 8) if cfg.arch == "cnn" else (1, 4, 16, 64)) if w in GRID])[-view.limits.max_grid:]
c1, c2 = st.columns([2, 1])
widths = c1.multiselect(f"Widths ({WIDTH_NAME}, log₂ grid)", GRID, default=DEFAULT,
                        key="width_values" if cfg.closed_form else f"width_values_{cfg.arch}{cfg.depth}",
                        max_selections=view.limits.max_grid,
                        help="The largest widths take longest to train.")
epoch = c2.slider("Epoch", 0, cfg.epochs, 0, key="width_epoch",
                  help="0 = initialization, where the analytic reference applies exactly.")

out = engine.width_sweep(cfg, sorted(widths), "Width sweep", epoch) if widths else None
if not widths:
    st.warning("Pick at least one width.")

REF_SHORT = ("analytic: infinite-width NTK (NTK param.)" if P == "ntk"
             else "analytic: λ_max of the expected kernel E[Θ] at init (standard param.)")
if out is not None:
    ws = sorted(widths)
    engine.show_notices(out.results, [f"width={w}" for w in ws], out.notes)
    df = data.width_frame(out.results, ws, out.references, epoch, K, out.spectra)
    left, right = st.columns(2)
    for col, (name, q) in zip((left, right), (("λ_max", "lambda_max"), ("trace", "trace"))):
        with col:
            part = df[["width", "epoch", q, f"analytic_{q}"]]
            charts.show(charts.points_with_line(part, "width", q, f"analytic_{q}", x_title=WIDTH_NAME,
                                                y_title=data.axis_title(name, K, P), line_label=REF_SHORT,
                                                x_scale="log2", y_scale="auto",
                                                title=f"{name} vs width (epoch {epoch})"),
                        part, f"{q}_vs_width_epoch{epoch}")
    left, right = st.columns(2)
    with left:
        rank = df.melt(id_vars=["width", "epoch"], value_vars=["numerical_rank", "participation_ratio"],
                       var_name="measure", value_name="value").dropna()
        rank["measure"] = rank["measure"].map({"numerical_rank": "numerical rank (λ > round-off floor)",
                                               "participation_ratio": "participation ratio (Σλ)²/Σλ²"})
        if rank.empty:
            st.info("The whole-spectrum rank needs every eigenvalue: n is above the dense limit "
                    f"({view.limits.max_dense_n}), where only an SLQ estimate of the density exists.")
        else:
            charts.show(charts.lines(rank, "width", "value", color="measure", color_title=None,
                                     x_scale="log2", y_scale="log", x_title=WIDTH_NAME,
                                     y_title="rank of the whole spectrum (1 = rank-1)",
                                     title=f"Whole-spectrum rank vs width (epoch {epoch})"),
                        rank, f"rank_vs_width_epoch{epoch}")
    with right:
        # Live verdicts on this sidebar config (one seed; the Findings page uses 3 seeds).
        st.markdown("**Live verdicts** (this config, seed "
                    f"{cfg.seed}; the Findings page repeats them over 3 seeds)")
        if 1 in ws and out.spectra and out.spectra[ws.index(1)] is not None \
                and out.spectra[ws.index(1)].method == "dense":
            sp = out.spectra[ws.index(1)]
            v = runner.RULES["width_1_rank_1"](eigenvalues=[sp.eigenvalues], tol=sp.floor / max(sp.topk[0], 1e-300))
            st.markdown(f"- Width 1 rank-1: **{v.verdict.replace('_', ' ')}**"
                        + (f" — {v.condition}" if v.condition else ""))
        lam = df["lambda_max"].to_numpy()[None, :]
        if np.isfinite(lam).all():
            v = runner.RULES["width_dip_rise_flatten"](widths=np.asarray(ws), lambda_max=lam)
            st.markdown(f"- Dip, rise, flatten: **{v.verdict.replace('_', ' ')}**"
                        + (f" — {v.condition}" if v.condition else ""))
        st.caption("Verdicts are computed from the data above by the same rules as the Findings page.")
    st.caption("Dashed: " + REF_SHORT + ". In standard parameterization the reference is the "
               "largest eigenvalue of the kernel averaged over initializations of this width (which "
               "is not the average λ_max of a random network), so it is a curve in width; the "
               "NTK-parameterization limit is one value. Rank counts use the whole spectrum, "
               "formed in float64, with the round-off floor stated on the Spectrum explorer.")
    st.dataframe(pd.DataFrame(df), hide_index=True)
