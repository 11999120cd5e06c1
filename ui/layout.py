"""Common page furniture: title, question, what to look for, the study's claim."""

from __future__ import annotations

import streamlit as st

import runner
from ui.data import PARAM_LABEL, kernel_name
from ui.params import parse_number_list


def header(title: str, question: str, look_for: str, claim: str | None) -> None:
    """The fixed opening of every experiment page."""
    st.title(title)
    st.markdown(f"**Question.** {question}")
    st.markdown(f"**What to look for.** {look_for}")
    if claim:
        st.info(f"**The study's claim:** “{claim}”", icon=":material/format_quote:")


# How a network without a closed form gets its NTK (ExperimentConfig.ntk_method), in words.
GENERIC_NAME = {"ntk_vp": "the generic matrix-free path ntk_vp (jax.vjp/jvp)",
                "autodiff": "Jacobian contraction (autodiff: jax.jacrev, dense n×n)",
                "structured": "layer-wise MLP kernel (structured: backprop signals, dense n×n)"}


def generic_method_text(c) -> str:
    """How a network without the closed form got its NTK, and at which epochs."""
    when = ("every epoch" if runner.every_epoch(c)
            else f"top-k at ≤ {runner.GENERIC_SPECTRUM_EPOCHS} epochs")
    return f"{GENERIC_NAME[c.ntk_method]}, {when}"


def config_caption(view) -> None:
    """One line stating the sidebar configuration the page uses."""
    c = view.config
    batch = "full batch" if c.batch_size == 0 else f"batch {c.batch_size}"
    method = "NTK: closed form" if c.closed_form else f"NTK: {generic_method_text(c)}"
    st.caption(f"Sidebar config: {c.arch_label} on {c.dataset_label} · {method} · "
               f"n={c.n_train} · {c.epochs} epochs · "
               f"{c.optimizer_label} η={c.lr:g} · {batch} · {c.regularizer_label} · seed {c.seed} · "
               f"top-{c.top_k} · {PARAM_LABEL[c.parameterization]} param. · "
               f"showing {kernel_name(view.norm)}")


def with_decay(title: str, config) -> str:
    """A chart title that names an L1/L2 penalty, plus the decoupled weight decay (and the
    optimizer it changes: Adam → AdamW) when the config has one, so the two regularisers
    are never confused: "... (+ decoupled weight decay wd=0.01, AdamW)"."""
    if not config.weight_decay:
        return title
    return f"{title} (+ {config.decay_label}, {config.optimizer_label})"


def number_list(text: str, name: str, *, integer: bool = False, max_count: int | None = None):
    """Parses an editable list of sweep values; shows st.error and returns None if invalid."""
    try:
        return parse_number_list(text, name, integer=integer, max_count=max_count)
    except runner.ConfigError as exc:
        st.error(f"Invalid setting — {exc}")
        return None
