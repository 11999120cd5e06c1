"""Turns the runner's ``progress(runner.Progress)`` callback into st.status + st.progress."""

from __future__ import annotations

import streamlit as st

import runner


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

    def callback(self, p: runner.Progress) -> None:
        f = (self._step + p.fraction) / self.steps
        prefix = f"step {self._step + 1}/{self.steps}: " if self.steps > 1 else ""
        self.bar.progress(min(max(f, 0.0), 1.0), text=prefix + p.describe())

    def complete(self, label: str) -> None:
        self.bar.progress(1.0, text="done")
        self.status.update(label=label, state="complete", expanded=False)

    def fail(self, label: str) -> None:
        self.status.update(label=label, state="error", expanded=False)
