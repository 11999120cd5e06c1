"""Turns the runner's ``progress(runner.Progress)`` callback into st.status + st.progress."""

from __future__ import annotations

import streamlit as st

import runner


class Reporter:
    """A status box with a progress bar; ``callback`` is what the runner calls.

    The box is opened lazily, on the first report of real work: a page whose results all
    come from the cache draws one caption line instead (creating an ``st.status`` costs
    ~0.1 s of server script time, most of a cached rerun's budget).
    Several runner calls may share one reporter: :meth:`step` sets which of ``steps``
    sub-tasks is running so the bar keeps moving forward.
    """

    def __init__(self, label: str, steps: int = 1):
        self.label = label
        self.steps = max(int(steps), 1)
        self._step = 0
        self._text = "starting…"
        self._slot = st.empty()  # keeps the box's place on the page until it is needed
        self._status = None
        self._bar = None

    @property
    def status(self):
        if self._status is None:
            # Open while working (the bar is inside), collapsed to one line when done.
            self._status = self._slot.container().status(self.label, expanded=True)
        return self._status

    @property
    def bar(self):
        if self._bar is None:
            self._bar = self.status.progress(self._step / self.steps, text=self._text)
        return self._bar

    @property
    def opened(self) -> bool:
        """Whether any work was reported (so the status box exists)."""
        return self._status is not None

    def step(self, index: int, text: str | None = None) -> None:
        self._step = min(max(int(index), 0), self.steps - 1)
        self._text = text or "…"
        if self._bar is not None:
            self._bar.progress(self._step / self.steps, text=self._text)

    def callback(self, p: runner.Progress) -> None:
        if p.stage == runner.Stage.DONE and self._bar is None:
            return  # everything came from the cache: nothing to show
        f = (self._step + p.fraction) / self.steps
        prefix = f"step {self._step + 1}/{self.steps}: " if self.steps > 1 else ""
        self.bar.progress(min(max(f, 0.0), 1.0), text=prefix + p.describe())

    def complete(self, label: str) -> None:
        if self._status is None:
            self._slot.caption(f":material/check_circle: {label}")
            return
        self.bar.progress(1.0, text="done")
        self._status.update(label=label, state="complete", expanded=False)

    def fail(self, label: str) -> None:
        self.status.update(label=label, state="error", expanded=False)
