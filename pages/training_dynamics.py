"""λ_max and the top-k over epochs, next to losses, accuracy and parameter movement."""

import numpy as np
import streamlit as st

from ui import charts, data, engine, layout, sidebar

view = sidebar.current()
cfg = view.config
K, P = view.norm, cfg.parameterization

layout.header(
    "Training dynamics",
    "How does the top of the NTK spectrum move while the network trains?",
    "λ_max against the validation loss: the dashed rules mark the epoch of lowest "
    "validation loss, where early stopping would stop and which epoch it would restore; compare the eigenvalue curve "
    "with how far the weights have moved from initialization.",
    "λ_max falls, reaches a minimum, rises again with overfitting.")
layout.config_caption(view)

r = engine.run(cfg, "Training run")

if r is not None:
    engine.show_notices([r])
    ep = data.epoch_frame(r, K)
    if r.stop_epoch is not None:
        stop = (f"early stopping (patience {cfg.patience}) would stop at epoch **{r.stop_epoch}** and "
                f"restore epoch **{r.restore_epoch}** (lowest validation loss up to the stop)")
    else:
        stop = f"early stopping (patience {cfg.patience}) never triggers"
    later = (" — after the stop: patience would have missed it" if r.stop_epoch is not None
             and r.best_epoch > r.stop_epoch else "")
    st.markdown(f"**Lowest validation loss over the whole run**: epoch **{r.best_epoch}**{later} · "
                f"{stop} · kernel spectra: {r.spectrum_method}")
    # epochs whose top-k was solved (a generic network's skipped epochs were not)
    solved = data.valid_mask(r) & np.isfinite(r.topk[:, 0])
    bad = int(np.sum(~np.asarray(r.lanczos_converged)[solved]))
    if bad:
        st.warning(f"The top-k eigensolver did not converge at {bad} epoch(s) (max relative "
                   f"residual {np.nanmax(r.lanczos_residual):.1e}); those eigenvalues are estimates.")
    rules = [("is_best_epoch", f"lowest val. loss (epoch {r.best_epoch})")]
    if r.stop_epoch is not None:
        rules.append(("is_stop_epoch", f"early stop ({r.stop_epoch})"))
        if r.restore_epoch != r.best_epoch:
            rules.append(("is_restore_epoch", f"early stopping restores ({r.restore_epoch})"))

    # Each toggle only redraws its own chart: a fragment reruns without the sidebar,
    # the cache lookup and the other charts.
    @st.fragment
    def eigenvalue_chart() -> None:
        show_all = st.toggle(f"Show all top-{cfg.top_k} eigenvalues", value=True, key="dyn_topk")
        df = data.topk_epochs_frame(r, K)
        if not show_all:
            df = df[df["rank"] == 1].reset_index(drop=True)
        df["is_stop_epoch"] = df["epoch"] == (r.stop_epoch if r.stop_epoch is not None else -1)
        df["is_restore_epoch"] = df["epoch"] == (r.restore_epoch if r.stop_epoch is not None else -1)
        charts.show(charts.lines(df, "epoch", "eigenvalue", color="rank", color_title="rank j",
                                 ordinal_color=True, y_scale="log", points=False, rules=rules,
                                 x_title="epoch (0 = init)",
                                 y_title=data.axis_title("λ_max" if not show_all else "top-k λ_j", K, P),
                                 title="λ_max (rank 1) and the top-k over epochs"),
                    df, "eigenvalues_over_epochs")

    @st.fragment
    def loss_chart() -> None:
        log_loss = st.toggle("Log scale for losses", value=True, key="dyn_logloss")
        df = data.metric_long(ep, {"train_loss": "train loss", "val_loss": "validation loss"},
                              positive=log_loss)
        charts.show(charts.lines(df, "epoch", "value", color="quantity", color_title=None,
                                 y_scale="log" if log_loss else None, rules=rules,
                                 x_title="epoch (0 = init)",
                                 y_title="loss ½·mean‖f(x) − y‖² (no penalty)",
                                 title="Train and validation loss"),
                    df, "losses_over_epochs")

    left, right = st.columns(2)
    with left:
        eigenvalue_chart()
    with right:
        loss_chart()
    left, right = st.columns(2)
    with left:
        df = data.metric_long(ep, {"step_norm": "‖θ_e − θ_{e−1}‖ (step)",
                                   "rel_change": "‖θ_e − θ_0‖ / ‖θ_0‖ (from init)"},
                              positive=True, min_epoch=1)
        charts.show(charts.lines(df, "epoch", "value", color="quantity", color_title=None,
                                 y_scale="log", rules=rules, x_title="epoch",
                                 y_title="parameter movement (Euclidean norm)",
                                 title="How far the parameters move"),
                    df, "parameter_movement")
    with right:
        df = data.metric_long(ep, {"val_acc": "validation accuracy"})
        charts.show(charts.lines(df, "epoch", "value", color="quantity", color_title=None,
                                 rules=rules, x_title="epoch (0 = init)",
                                 y_title="validation accuracy (fraction correct)",
                                 title="Validation accuracy"),
                    df, "validation_accuracy")
