"""Findings: every claim of the study re-tested, with a verdict computed from the data."""

import streamlit as st

import runner
from ui import engine, findings, layout, sidebar

view = sidebar.current()

layout.header(
    "Findings",
    "Which of the study's claims hold when the experiments are run again, here, on this data?",
    "One card per claim (and per optimizer where training is involved): the verdict — holds, "
    "holds only when …, does not hold, or inconclusive — is computed from the measurements by a "
    "stated rule over 3 seeds, never written by hand. Open a card's details for the statistic, "
    "the criterion, the per-seed numbers, the protocol and what theory says.",
    None)  # ten claims: each card quotes its own, in the study's words

try:  # the sidebar's network and dataset; the protocol sets everything else
    quick = runner.protocol("quick", view.limits, view.config.network)
    full = runner.protocol("full", view.limits, view.config.network)
except runner.ConfigError as exc:  # caps too small for even the quick protocol
    st.error(f"The findings protocols do not fit this server's limits: {exc}")
    st.stop()

full_cached = runner.cached_findings(full, view.limits, sidebar.store()) is not None
want_full = full_cached or st.session_state.get("findings_full", False)
if not want_full:
    fb = full.base
    st.caption(f"The full protocol for the {fb.network.label} (width {fb.width}, n={fb.n_train}, "
               f"{fb.epochs} epochs) is not cached on this server yet, so the quick protocol is shown.")
    if st.button("Run the full protocol (several minutes on 2 cores; cached for everyone after)",
                 key="findings_run_full"):
        st.session_state["findings_full"] = True
        want_full = True
proto = full if want_full else quick

live = st.empty()
arrived: list[str] = []


def on_claim(c) -> None:  # verdicts appear as they are computed
    arrived.append(f"- `{c.claim_id}`: {findings.verdict_line(c)}")
    live.markdown("**Verdicts so far**\n" + "\n".join(arrived))


res = engine.findings(proto, f"Findings ({proto.name} protocol)", on_claim=on_claim)
if res is not None:
    live.empty()
    st.markdown(findings.protocol_caption(res.protocol, res.status, res.seconds))
    st.dataframe(findings.summary_frame(res.claims), hide_index=True)
    for i, c in enumerate(res.claims):
        findings.claim_card(c, f"{c.claim_id}_{c.optimizer}_{i}")
