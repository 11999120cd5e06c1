"""Linearized — does the network train like its linearization? (Lee et al. 2019)"""

import numpy as np
import pandas as pd
import streamlit as st

from runner import _theory_dynamics as td
from ui import charts, sidebar, theory
from ui import theory_dynamics as tdu

view = sidebar.current()
C = td.DYNAMICS_CLAIMS

theory.header(
    "Linearized dynamics",
    "Does the network train like its first-order Taylor expansion around the initial "
    "parameters? If so, its whole training run is predicted by one fixed kernel — the NTK at "
    "initialization. How wide must it be, and how does the learning rate matter?",
    "Solid lines are the trained network, dashed lines its linearization f_0 + J_0(θ − θ_0) "
    "trained the same way: they start equal and, when wide, stay together. Then the largest "
    "gap over training against width, on log–log axes: Lee et al. bound it by w^-1/2 (a "
    "slope of −1/2 or steeper). Where it breaks — narrow networks, a larger η·λ₀ — is the "
    "lesson.",
    [(C["lin_gap_rate"].quote, C["lin_gap_rate"].reference),
     (C["lin_acc_agrees"].quote, C["lin_acc_agrees"].reference)])

proto = tdu.choose_protocol(td.linearized_protocol, "lin_full",
                            "Run the full protocol (n=256, 60 epochs, a wider width grid, 3 seeds: "
                            "minutes on 2 cores; cached for everyone after)", network=view.config.network)
res = tdu.compute(td.linearized, proto, f"Linearized dynamics ({proto.name} protocol)") if proto else None

if res is not None:
    d = res.data
    widths, seeds, lrs = d["widths"], d["seeds"], d["lrs"]
    tdu.protocol_caption(res, f"{d['epochs']} epochs, widths {widths} (×4 grid up to the width cap), "
                              f"learning rates η ∈ {lrs}")
    st.caption("Conventions: " + d["conventions"])
    by_lr = d["by_lr"]
    diverged = [(b["lr"], s, w) for b in by_lr for s, row in zip(seeds, b["diverged"])
                for w, x in zip(widths, row) if x]
    if diverged:
        st.warning("Diverged network runs (left out of the fits): " + ", ".join(
            f"η={lr:g} seed {s} width {w}" for lr, s, w in diverged))

    # 1. Curves over epochs: network (solid) vs linearization (dashed), per width.
    st.subheader("The network and its linearization over training")
    c1, c2, c3 = st.columns(3)
    lr = c1.radio("Learning rate η", lrs, horizontal=True, key="lin_lr", format_func=lambda x: f"{x:g}")
    seed = c2.radio("Seed", seeds, horizontal=True, key="lin_seed")
    split = c3.radio("Data", ["training", "validation"], horizontal=True, key="lin_split")
    b = next(x for x in by_lr if x["lr"] == lr)
    el0 = theory.array(b["eta_lambda0"])
    st.caption(f"η = {lr:g} is η·λ₀ = " + ", ".join(f"{el0[:, j].mean():.2f} (width {w})"
                                                     for j, w in enumerate(widths))
               + " (mean over seeds; λ₀ = λ_max(Θ_full)/n at init). The linear model "
                 "converges iff η·λ₀ < 2.")
    pre = "train" if split == "training" else "val"
    rows = []
    for cv in d["curves"]:
        if cv["lr"] != lr or cv["seed"] != seed:
            continue
        for model, suffix in (("network", ""), ("linearized (θ_0)", "_lin")):
            loss, acc = cv[f"{pre}_loss{suffix}"], cv[f"{pre}_acc{suffix}"]
            for e in range(len(loss)):
                if loss[e] is not None:
                    rows.append({"epoch": e, "width": cv["width"], "model": model,
                                 "loss": loss[e], "accuracy": acc[e]})
    cdf = pd.DataFrame(rows)
    left, right = st.columns(2)
    with left:
        charts.show(tdu.model_lines(cdf, "loss", y_scale="log",
                                    y_title=[f"{split} loss ½·mean‖f − y‖²", "(log axis)"],
                                    title=f"{split.capitalize()} loss: network vs linearization (η={lr:g}, seed {seed})"),
                    cdf, f"linearized_curves_{pre}_lr{lr:g}_seed{seed}")
    with right:
        charts.show(tdu.model_lines(cdf, "accuracy", y_title=f"{split} accuracy (argmax)",
                                    title=f"{split.capitalize()} accuracy: network vs linearization"),
                    cdf, f"linearized_accuracy_{pre}_lr{lr:g}_seed{seed}",
                    caption="Same data as the loss chart (one CSV row per epoch, width and model).")

    # 2. The gap against width, log–log with fitted slopes (both learning rates).
    st.subheader("The largest gap over training, against width")
    series = []
    for bb in by_lr:
        series.append((f"output gap, η={bb['lr']:g}", theory.array(bb["output_gap"])))
        series.append((f"loss gap, η={bb['lr']:g}", theory.array(bb["gap"])))
    gdf = theory.power_frame(widths, series, guides=[(series[0][0], -0.5)])
    fits = pd.DataFrame([{"η": bb["lr"],
                          "η·λ₀ (seed means, per width)": ", ".join(
                              f"{x:.2f}" for x in theory.array(bb["eta_lambda0"]).mean(0)),
                          "output-gap slope [95 % CI]": theory.fmt_ci(bb["output_fit"]["slope"],
                                                                      bb["output_fit"]["slope_ci"]),
                          "loss-gap slope [95 % CI]": theory.fmt_ci(bb["slope"], bb["slope_ci"])}
                         for bb in by_lr])
    st.dataframe(fits, hide_index=True, key="lin_fits")
    st.caption("Slopes: pooled least squares of ln(gap) on ln(width) over every seed and width; the "
               "output gap is max_t ‖f_t − f^lin_t‖_F/√n, the loss gap max_t |L(f_t) − L(f^lin_t)| "
               "(training set).")
    charts.show(theory.power_chart(gdf, y_title=["largest gap over epochs (training set)",
                                                 "output: ‖f − f^lin‖_F/√n; loss: |L − L^lin|"],
                                   title="Network minus linearization vs width"),
                gdf, "linearized_gap_vs_width",
                caption="Points: mean over seeds, bars ± sd. Dashed: pooled log–log fit per series, and a "
                        "guide of slope −1/2 (Lee et al.'s bound) through the first series at the widest width.")

    # 3. Where it breaks: final validation accuracy of both, per width.
    rows = []
    for bb in by_lr:
        a, al = theory.array(bb["acc"]), theory.array(bb["acc_lin"])
        for j, w in enumerate(widths):
            rows.append({"width": w, "lr": bb["lr"], "model": "network", "val_acc": float(np.nanmean(a[:, j]))})
            rows.append({"width": w, "lr": bb["lr"], "model": "linearized (θ_0)", "val_acc": float(np.nanmean(al[:, j]))})
    adf = pd.DataFrame(rows)
    adf["series"] = adf["model"] + ", η=" + adf["lr"].map(lambda x: f"{x:g}")
    charts.show(charts.lines(adf, "width", "val_acc", color="series", color_title=None, x_scale="log2",
                             x_title="hidden width (log₂ axis)",
                             y_title=[f"validation accuracy after {d['epochs']} epochs", "(mean over seeds)"],
                             title="Final validation accuracy: network vs linearization"),
                adf, "linearized_final_accuracy")
    gaps0 = theory.array(by_lr[-1]["output_gap"]).mean(0)
    gaps1 = theory.array(by_lr[0]["output_gap"]).mean(0)
    st.markdown(
        f"**Where it breaks.** At the narrowest width ({widths[0]}) the largest output gap is "
        f"{gaps1[0]:.3f} at η={by_lr[0]['lr']:g} and {gaps0[0]:.3f} at η={by_lr[-1]['lr']:g}; at the widest "
        f"({widths[-1]}) {gaps1[-1]:.3f} and {gaps0[-1]:.3f} (mean over seeds, RMS distance of the 10 "
        f"outputs; the outputs themselves are O(1)). A narrow network's kernel moves during training, "
        f"so the fixed kernel of the linear model mispredicts it; a larger step η·λ₀ moves the weights "
        f"further per step and widens the gap at every width.")

    verdicts = res.verdicts
    notes = [f" · η={v.statistic.get('lr'):g}" for v in verdicts]
    tdu.verdicts_block(verdicts, "lin", notes)

    with st.expander("All numbers (per seed)"):
        rows = []
        for bb in by_lr:
            for i, s in enumerate(seeds):
                for j, w in enumerate(widths):
                    rows.append({"lr": bb["lr"], "seed": s, "width": w,
                                 "eta_lambda0": theory.array(bb["eta_lambda0"])[i, j],
                                 "loss_gap": theory.array(bb["gap"])[i, j],
                                 "output_gap": theory.array(bb["output_gap"])[i, j],
                                 "val_output_gap": theory.array(bb["val_output_gap"])[i, j],
                                 "val_acc": theory.array(bb["acc"])[i, j],
                                 "val_acc_lin": theory.array(bb["acc_lin"])[i, j]})
        st.dataframe(pd.DataFrame(rows), hide_index=True, key="lin_table")
