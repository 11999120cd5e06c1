"""Stability — edge of stability and the catapult (Lewkowycz et al. 2020; Cohen et al. 2021)."""

import numpy as np
import pandas as pd
import streamlit as st

from runner import _theory_dynamics as td
from ui import charts, sidebar, theory
from ui import theory_dynamics as tdu

view = sidebar.current()
C = td.DYNAMICS_CLAIMS

theory.header(
    "Stability: catapult and edge of stability",
    "What happens when the learning rate is too large for the kernel's top eigenvalue? "
    "Gradient descent on a linear model diverges as soon as η·λ₀ > 2. Does the network "
    "diverge too — or does it *catapult*: a loss spike, after which the curvature has "
    "fallen until the step is stable again? And does the sharpness sit at the edge, 2/η?",
    "Learning rates placed relative to this network's own λ₀ (η·λ₀ from 0.5 to 16). Left: the "
    "training loss per step — monotone below 2, a spike above. Right: η·λ(t) against the "
    "dashed line 2 — the lazy runs stay flat below it, a catapult starts above and falls below "
    "it, the edge of stability hovers at it. The dead-unit chart tells a collapse (ReLUs "
    "dying, which also makes λ small) apart from a catapult into a good minimum.",
    [(C["catapult_above_2"].quote, C["catapult_above_2"].reference),
     (C["edge_of_stability"].quote, C["edge_of_stability"].reference)])

proto = tdu.choose_protocol(td.stability_protocol, "stab_full",
                            "Run the full protocol (n=256, twice the width, 300 steps, 3 seeds: "
                            "minutes on 2 cores; cached for everyone after)", network=view.config.network)
res = tdu.compute(td.stability, proto, f"Stability ({proto.name} protocol)") if proto else None

if res is not None:
    d = res.data
    grid, seeds, steps = d["eta_lambda0"], d["seeds"], d["steps"]
    lam0 = theory.array(d["lambda0"])
    tdu.protocol_caption(res, f"width {d['width']}, {steps} steps, rates η = (η·λ₀)/λ₀ with "
                              f"η·λ₀ ∈ {grid}")
    st.caption("Conventions: " + d["conventions"])
    m1, m2, m3 = st.columns(3)
    m1.metric("λ₀ = λ_max(Θ_full)/n at init", f"{lam0.mean():.4f}",
              help="Mean over seeds: " + ", ".join(f"{x:.4f}" for x in lam0))
    m2.metric("linear-model limit η = 2/λ₀", f"{2 / lam0.mean():.3g}",
              help="Gradient descent on a linear model with this kernel diverges above it.")
    m3.metric("power-iteration check vs ARPACK (last step)",
              f"{np.nanmax(theory.array(d['arpack_check'])):.1e}",
              help="Largest relative difference, over every non-diverged run, of the last step's "
                   "λ(t) from ARPACK on the same parameters.")

    # Outcomes table (the per-rate live result).
    st.subheader("What this network does, per learning rate")
    stats = d["outcome_stats"]
    rows = []
    lin_div = np.asarray(d["linear_diverged"], bool)
    for k, c in enumerate(grid):
        per_seed = [d["outcome_per_seed"][i][k] for i in range(len(seeds))]
        st0 = [stats[i][k] for i in range(len(seeds))]
        spikes = [s["spike"] for s in st0 if s.get("spike") is not None]
        fin = [s["final_eta_lambda"] for s in st0 if s.get("final_eta_lambda") is not None]
        rows.append({"η·λ₀": c, "outcome": d["outcome"][k], "per seed": ", ".join(per_seed),
                     "loss spike max L/L₀ (max over seeds)": max(spikes) if spikes else np.nan,
                     "final η·λ (mean)": float(np.mean(fin)) if fin else np.nan,
                     "dead units at the end (max)": max((s["dead_final"] or 0.0) for s in st0),
                     "linear model": "diverged" if lin_div[:, k].all() else
                                     ("converged" if not lin_div[:, k].any() else "mixed")})
    odf = pd.DataFrame(rows)
    st.dataframe(odf, hide_index=True, key="stab_outcomes")
    st.download_button("Download CSV", odf.to_csv(index=False).encode("utf-8"), file_name="stability_outcomes.csv",
                       mime="text/csv", key="dl_stability_outcomes", on_click="ignore",
                       icon=":material/download:")
    st.caption("Outcomes are computed from each run's data by `classify_run` (criterion in the "
               "verdict cards): " + td._crit_outcomes() + ". The row's outcome is the seeds' common "
               "one (or the most frequent).")

    # Per-step curves for one seed.
    seed = st.radio("Seed of the per-step charts", seeds, horizontal=True, key="stab_seed")
    i = seeds.index(seed)
    loss = theory.array(d["loss_per_step"])[i]
    el = theory.array(d["eta_lambda_per_step"])[i]
    lam = theory.array(d["lambda_max_per_step"])[i]
    dead = theory.array(d["dead_per_step"])[i]
    acc = theory.array(d["acc_per_step"])[i]
    lin_loss = theory.array(d["linear_loss_per_step"])[i]
    lrs = theory.array(d["lr"])[i]
    rows = []
    for k, c in enumerate(grid):
        for t in range(steps + 1):
            if np.isfinite(loss[k, t]):
                rows.append({"step": t, "eta_lambda0": c, "lr": lrs[k], "loss": loss[k, t],
                             "eta_lambda": el[k, t], "lambda_max_over_n": lam[k, t],
                             "dead_fraction": dead[k, t], "train_acc": acc[k, t],
                             "outcome": d["outcome_per_seed"][i][k], "threshold": 2.0})
    sdf = pd.DataFrame(rows)
    left, right = st.columns(2)
    with left:
        charts.show(tdu.step_lines(sdf, "loss", y_scale="log",
                                   y_title=["training loss ½·mean‖f − y‖²", "(log axis)"],
                                   title=f"Loss per step (seed {seed})"),
                    sdf, f"stability_per_step_seed{seed}")
    with right:
        charts.show(tdu.step_lines(sdf, "eta_lambda", y_scale="log", threshold="threshold",
                                   y_title=["η·λ(t), λ = λ_max(Θ_full)/n", "(log axis; dashed: 2)"],
                                   title=f"Sharpness times step size (seed {seed})"),
                    sdf, f"stability_eta_lambda_seed{seed}",
                    caption="Same CSV columns as the loss chart; the dashed line is the column threshold = 2.")
    left, right = st.columns(2)
    with left:
        charts.show(tdu.step_lines(sdf, "dead_fraction",
                                   y_title="fraction of dead ReLU units (inactive on every training image)",
                                   title="Dying units: collapse vs catapult"),
                    sdf, f"stability_dead_seed{seed}")
    with right:
        rows = [{"step": t, "eta_lambda0": c, "linear_loss": lin_loss[k, t]}
                for k, c in enumerate(grid) for t in range(steps + 1)
                if np.isfinite(lin_loss[k, t]) and lin_loss[k, t] < 1e12]
        ldf = pd.DataFrame(rows)
        charts.show(tdu.step_lines(ldf, "linear_loss", y_scale="log",
                                   y_title=["loss of the linear model f_0 + J_0(θ − θ_0)", "(log axis; cut at 1e12)"],
                                   title="The linear model of the same kernel"),
                    ldf, f"stability_linear_seed{seed}",
                    caption="Its residual is multiplied by 1 − η·λ per eigen-direction each step: it "
                            "must diverge for η·λ₀ > 2.")

    verdicts = res.verdicts
    tdu.verdicts_block(verdicts, "stab")
    st.markdown(
        "**Reading the outcomes.** *lazy*: η·λ(t) stayed below 2 and the kernel barely moved. "
        "*catapult*: the rate was unstable for the initial kernel, yet the network did not "
        "diverge — its top eigenvalue fell until η·λ < 2 (with a loss spike when the unstable "
        "mode carried enough of the residual). *collapse*: most hidden units died; λ is then small "
        "because the network lost capacity, not because it found a flat good minimum. *eos*: "
        "η·λ hovered at ≈ 2 while the loss kept falling non-monotonically. *diverged*: the loss "
        "blew up. *unresolved*: still above 2 at the end — run longer.")
