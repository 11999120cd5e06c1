"""Turns the runner's ``progress(stage, done, total)`` callback into st.status + st.progress."""

from __future__ import annotations

import re
from typing import Callable

import streamlit as st

Progress = Callable[[str, int, int], None]

_SPECTRA = re.compile(r"spectra (\d+)/(\d+)")


def fraction(stage: str, done: int, total: int) -> float:
    """Overall completion in [0, 1] for one runner call.

    The runner reports "training" (done/total runs), then "spectra i/N" (epochs of run
    i of N) and finally "done"; training counts as the first half of the work.
    """
    if stage == "done":
        return 1.0
    total = max(int(total), 1)
    part = min(max(done / total, 0.0), 1.0)
    m = _SPECTRA.fullmatch(stage)
    if m:
        i, n = int(m.group(1)), max(int(m.group(2)), 1)
        return 0.5 + 0.5 * min(((i - 1) + part) / n, 1.0)
    return 0.5 * part


def describe(stage: str, done: int, total: int) -> str:
    if stage == "done":
        return "done"
    if stage == "training":
        return (f"training {done}/{total} runs (one compiled program per shape; "
                "the first time takes a few seconds)")
    m = _SPECTRA.fullmatch(stage)
    if m:
        return f"kernel spectra of run {m.group(1)}/{m.group(2)}: epoch {done}/{total}"
    return f"{stage}: {done}/{total}"


class Reporter:
    """A status box with a progress bar; ``callback`` is what the runner calls.

    Several runner calls may share one reporter: :meth:`step` sets which of ``steps``
    sub-tasks is running so the bar keeps moving forward.
    """

    def __init__(self, label: str, steps: int = 1):
        self.label = label
        self.steps = max(int(steps), 1)
        self._step = 0
        # Open while working (the bar is inside), collapsed to one line when done.
        self.status = st.status(label, expanded=True)
        self.bar = self.status.progress(0.0, text="starting…")

    def step(self, index: int, text: str | None = None) -> None:
        self._step = min(max(int(index), 0), self.steps - 1)
        self.bar.progress(self._step / self.steps, text=text or "…")

    def callback(self, stage: str, done: int, total: int) -> None:
        f = (self._step + fraction(stage, done, total)) / self.steps
        prefix = f"step {self._step + 1}/{self.steps}: " if self.steps > 1 else ""
        self.bar.progress(min(max(f, 0.0), 1.0), text=prefix + describe(stage, done, total))

    def complete(self, label: str) -> None:
        self.bar.progress(1.0, text="done")
        self.status.update(label=label, state="complete", expanded=False)

    def fail(self, label: str) -> None:
        self.status.update(label=label, state="error", expanded=False)
