"""Structured values the runner hands to its callers (the app and the CLI)."""

from __future__ import annotations

import dataclasses
import enum
from typing import Callable, NamedTuple

import numpy as np


class Stage(str, enum.Enum):
    """What a runner call is doing."""

    QUEUED = "queued"         # waiting for the server: place `done` (1 = next) of `total` waiting
    TRAINING = "training"     # training `done` of `total` runs (one compiled program per shape)
    SPECTRA = "spectra"       # per-epoch top-k of run `run` of `runs`: epoch `done` of `total`
    SPECTRUM = "spectrum"     # the whole spectrum at one checkpoint
    REFERENCE = "reference"   # the analytic (infinite-width / expected) kernel
    DONE = "done"


class Progress(NamedTuple):
    """One progress report: ``stage``, ``done`` of ``total``; ``run`` (0-based) of ``runs``
    says which run a per-run stage (SPECTRA) concerns."""

    stage: Stage
    done: int
    total: int
    run: int = 0
    runs: int = 1

    @property
    def fraction(self) -> float:
        """Completion of the whole runner call in [0, 1]: training is the first half of
        the work, the per-run spectra the second."""
        if self.stage is Stage.DONE:
            return 1.0
        if self.stage is Stage.QUEUED:
            return 0.0
        part = min(max(self.done / max(self.total, 1), 0.0), 1.0)
        if self.stage is Stage.SPECTRA:
            return 0.5 + 0.5 * min((self.run + part) / max(self.runs, 1), 1.0)
        return 0.5 * part

    def describe(self) -> str:
        """One line for a progress bar."""
        if self.stage is Stage.DONE:
            return "done"
        if self.stage is Stage.QUEUED:
            return (f"waiting for the server: place {self.done} of {self.total} in the queue "
                    "(other visitors' computations run first, one at a time)")
        if self.stage is Stage.TRAINING:
            return (f"training {self.done}/{self.total} runs (one compiled program per sweep; "
                    "the first time takes a few seconds)")
        if self.stage is Stage.SPECTRA:
            return f"kernel spectra of run {self.run + 1}/{self.runs}: epoch {self.done}/{self.total}"
        return f"{self.stage.value}: {self.done}/{self.total}"


ProgressFn = Callable[[Progress], None]


@dataclasses.dataclass(frozen=True)
class SpectrumResult:
    """The whole spectrum of the raw traced Θ (mean over the 10 logits, NOT divided by n)
    at one stored checkpoint.

    Attributes:
      method: "dense" (all n eigenvalues, exact) or "slq" (stochastic Lanczos quadrature).
      eigenvalues: (n,) float64 descending when dense, else empty.
      nodes, weights: SLQ quadrature nodes and weights (weights sum to 1) when "slq".
      trace: exact trace (float). topk: (k,) float64 descending, exact (Lanczos).
      floor: round-off floor ε·tr(Θ) + n·ε₆₄·λ_max for the precision the kernel was formed
        in (``kernel_dtype``): eigenvalues below it are round-off, not spectrum.
      below_floor: how many eigenvalues lie below the floor (SLQ: an estimate).
      residual: max relative residual of the Lanczos top-k (NaN for a direct dense solve).
      converged: whether the top-k solve converged. note: its fallback account, or "".
      epoch: the checkpoint's epoch. status: "hit", "computed" or "uncached".
    """

    method: str
    eigenvalues: np.ndarray
    nodes: np.ndarray
    weights: np.ndarray
    trace: float
    topk: np.ndarray
    floor: float
    below_floor: int
    kernel_dtype: str
    residual: float
    converged: bool
    note: str
    epoch: int
    status: str

    @property
    def resolved(self) -> np.ndarray:
        """Dense eigenvalues above the round-off floor (what a chart may plot as data)."""
        return self.eigenvalues[self.eigenvalues > self.floor]


@dataclasses.dataclass(frozen=True)
class ReferenceResult:
    """Top-k and trace of the analytic kernel on a config's training inputs (raw traced Θ,
    not /n): the infinite-width NTK in NTK parameterization, the width-w expectation at
    init in standard parameterization (whose λ_max is the λ_max of the EXPECTED kernel).

    Attributes:
      kind: "infinite_width" or "expected_at_init". topk: (k,) float64. trace: float.
      status: "hit", "computed" or "uncached".
    """

    kind: str
    topk: np.ndarray
    trace: float
    status: str
