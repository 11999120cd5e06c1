"""The pages' only door to the runner: one call per page, with progress and errors shown.

Every function here draws a status box (with a progress bar while work runs, and the
cache outcome when done), turns a ConfigError or any other exception into ``st.error``
and returns None instead of raising, so the rest of the page still renders.
Results come from the runner's disk cache; nothing here adds another cache.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from typing import Any, Callable, Sequence

import numpy as np
import streamlit as st

import runner
from ui import layout
from ui.progress import Reporter
from ui.sidebar import current_limits, store

_log = logging.getLogger(__name__)


def cache_summary(statuses: Sequence[str]) -> str:
    """E.g. "3 from cache, 2 computed"."""
    c = Counter(statuses)
    parts = []
    if c.get("hit"):
        parts.append(f"{c['hit']} from cache")
    if c.get("computed"):
        parts.append(f"{c['computed']} computed and cached")
    if c.get("uncached"):
        parts.append(f"{c['uncached']} computed (cache disabled)")
    return ", ".join(parts) or "nothing to do"


def _limits() -> runner.Limits:
    """The limits the sidebar read for this script run."""
    return current_limits()


def _guarded(rep: Reporter, label: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except runner.ConfigError as exc:
        rep.fail(f"{label}: invalid setting")
        st.error(f"Invalid setting — {exc}")
    except Exception as exc:  # any engine failure becomes a message, never a traceback
        rep.fail(f"{label}: failed")
        _log.exception("%s failed", label)  # the details go to the server log
        if _limits().is_hosted:  # visitors of a hosted demo see no exception details
            st.error(f"{label} failed. The error was logged on the server; try a smaller setting.")
        else:
            st.error(f"{label} failed — {type(exc).__name__}: {exc}")
    return None


def method_text(config: runner.ExperimentConfig) -> str:
    """Which network ran and how its NTK was computed, for the status line."""
    if config.closed_form:
        how = "NTK by the closed form of the one-hidden MLP"
    else:
        how = f"NTK by {layout.generic_method_text(config)}"
    return f"{config.arch_label} on {config.dataset_label}, {how}"


def _finish(rep: Reporter, label: str, results: Sequence[Any],
            extra: Sequence[str] = (), extra_name: str = "spectra") -> None:
    """Status line with the cache outcome and the method, e.g. "L2 sweep — runs: 5 from
    cache · spectra: … · MLP 1×128 on MNIST 10k (bundled), NTK by the closed form …"."""
    text = f"{label} — runs: {cache_summary([r.status for r in results])}"
    if extra:
        text += f" · {extra_name}: {cache_summary(extra)}"
    if results:
        text += f" · {method_text(results[0].config)}"
    rep.complete(text)


def run(config: runner.ExperimentConfig, label: str = "Training run"):
    """One training run with per-epoch top-k spectra, or None on failure."""
    rep = Reporter(label)
    r = _guarded(rep, label, lambda: runner.run(config, _limits(), store=store(), progress=rep.callback))
    if r is not None:
        _finish(rep, label, [r])
    return r


def _steps(vary: str, values: Sequence[Any]) -> int:
    return 1  # one runner call: every point of a sweep trains in one (or a few) programs


def _sweep_work(rep: Reporter, config, vary: str, values: Sequence[Any], first_step: int = 0):
    configs = runner.sweep_configs(config, vary, list(values), _limits())  # the values' validation
    rep.step(first_step, f"{vary} sweep: {len(configs)} points")
    return runner.run_configs(configs, _limits(), store=store(), progress=rep.callback)


def sweep(config: runner.ExperimentConfig, vary: str, values: Sequence[Any], label: str):
    """One-axis sweep (list of RunResult, in the order of ``values``) or None."""
    rep = Reporter(label, steps=_steps(vary, values))
    rs = _guarded(rep, label, lambda: _sweep_work(rep, config, vary, values))
    if rs is not None:
        _finish(rep, label, rs)
    return rs


@dataclasses.dataclass
class SpectraOutcome:
    """Runs plus the whole spectrum of each at one epoch.

    Attributes:
      results: RunResult per item; spectra: runner.SpectrumResult per item, None where it
        failed; epochs: the epoch actually used per item; notes: remarks for the user;
      errors: failures of single spectra (the others are still shown).
    """

    results: list
    spectra: list
    epochs: list
    labels: list
    notes: list = dataclasses.field(default_factory=list)
    errors: list = dataclasses.field(default_factory=list)

    def available(self) -> tuple[list, list, list]:
        """(spectra, "label (epoch e)" labels, configs) of the items whose spectrum exists."""
        ok = [i for i, s in enumerate(self.spectra) if s is not None]
        return ([self.spectra[i] for i in ok],
                [f"{self.labels[i]} (epoch {self.epochs[i]})" for i in ok],
                [self.results[i].config for i in ok])


def _usable_epoch(r, epoch: int) -> tuple[int, str | None]:
    """Nearest stored, pre-divergence checkpoint to ``epoch`` and a note if it moved."""
    stored = np.asarray(r.checkpoint_epochs)
    if r.diverged_at is not None:
        stored = stored[stored < r.diverged_at] if (stored < r.diverged_at).any() else stored[:1]
    e = int(stored[np.argmin(np.abs(stored - epoch))])
    if e == epoch:
        return e, None
    why = (f"diverged at epoch {r.diverged_at}" if r.diverged_at is not None and epoch >= r.diverged_at
           else "no checkpoint stored there")
    return e, f"epoch {epoch} → {e} ({why})"


def _spectra_for(rep: Reporter, results, epochs, labels, offset: int) -> SpectraOutcome:
    out = SpectraOutcome(results=list(results), spectra=[], epochs=[], labels=list(labels))
    for i, (r, epoch, lab) in enumerate(zip(results, epochs, labels)):
        rep.step(offset + i, f"whole spectrum of {lab}")
        e, note = _usable_epoch(r, epoch)
        if note:
            out.notes.append(f"{lab}: {note}.")
        try:
            spec = runner.spectrum_at(r.config, e, _limits(), store=store(), progress=rep.callback)
        except Exception as exc:  # one failed spectrum must not hide the others
            _log.exception("whole spectrum of %s failed", lab)
            out.errors.append(f"{lab}: whole spectrum failed" + (
                "" if _limits().is_hosted else f" — {type(exc).__name__}: {exc}"))
            spec = None
        out.spectra.append(spec)
        out.epochs.append(e)
    return out


def sweep_spectra(config: runner.ExperimentConfig, vary: str, values: Sequence[Any], epoch: int,
                  labels: Sequence[str], label: str) -> SpectraOutcome | None:
    """A sweep, then the whole spectrum of every point at ``epoch``."""
    first = _steps(vary, values)
    rep = Reporter(label, steps=first + len(values))

    def work():
        rs = _sweep_work(rep, config, vary, values)
        return _spectra_for(rep, rs, [epoch] * len(rs), labels, first)

    out = _guarded(rep, label, work)
    if out is not None:
        _finish(rep, label, out.results,
                [s.status for s in out.spectra if s])
    return out


def spectra(items: Sequence[tuple[str, runner.ExperimentConfig, int]], label: str) -> SpectraOutcome | None:
    """(label, config, epoch) items → each run and its whole spectrum at that epoch."""
    rep = Reporter(label, steps=2 * len(items))

    def work():
        rs = []
        for i, (_, cfg, _) in enumerate(items):
            rep.step(i, f"training {items[i][0]}")
            rs.append(runner.run(cfg, _limits(), store=store(), progress=rep.callback))
        return _spectra_for(rep, rs, [e for _, _, e in items], [lab for lab, _, _ in items],
                            len(items))

    out = _guarded(rep, label, work)
    if out is not None:
        _finish(rep, label, out.results,
                [s.status for s in out.spectra if s])
    return out


@dataclasses.dataclass
class WidthOutcome:
    """Width sweep plus the analytic reference per width (None where unavailable) and
    each width's whole spectrum at the chosen epoch (None where it failed)."""

    results: list
    references: list
    spectra: list = dataclasses.field(default_factory=list)
    notes: list = dataclasses.field(default_factory=list)


def width_sweep(config: runner.ExperimentConfig, widths: Sequence[int], label: str,
                epoch: int = 0) -> WidthOutcome | None:
    """Sweep over widths, plus ``runner.analytic_reference`` (per width in standard
    parameterization, where the expectation depends on width; once in NTK) and the whole
    spectrum of every width at ``epoch`` (rank is judged on it, never on the top-k)."""
    rep = Reporter(label, steps=2 * len(widths) + 1)

    def work():
        rs = _sweep_work(rep, config, "width", widths)
        spectra = _spectra_for(rep, rs, [epoch] * len(rs), [f"width={w}" for w in widths],
                               len(widths))
        rep.step(2 * len(widths), "analytic reference kernel")
        out = WidthOutcome(results=rs, references=[], spectra=spectra.spectra,
                           notes=spectra.notes + spectra.errors)
        try:
            if config.parameterization == "ntk":
                ref = runner.analytic_reference(rs[0].config, _limits(), store=store())
                out.references = [ref] * len(rs)
            else:
                out.references = [runner.analytic_reference(r.config, _limits(), store=store()) for r in rs]
        except runner.ConfigError as exc:
            out.references = [None] * len(rs)
            out.notes.append(f"No analytic reference: {exc}")
        return out

    out = _guarded(rep, label, work)
    if out is not None:
        _finish(rep, label, out.results,
                [ref.status for ref in {id(x): x for x in out.references if x}.values()],
                "analytic reference")
    return out


def show_notices(results, labels: Sequence[str] | None = None, notes: Sequence[str] = (),
                 errors: Sequence[str] = ()) -> None:
    """Data-source notices, divergence warnings, cache problems, errors and extra notes."""
    labels = list(labels) if labels is not None else [""] * len(results)
    for text in dict.fromkeys(r.notice for r in results if r.notice):
        st.info(f"Data: {text}")
    for r, lab in zip(results, labels):
        if r.diverged_at is not None:
            who = f" ({lab})" if lab else ""
            st.warning(f"Training{who} diverged at epoch {r.diverged_at}: curves are shown up to "
                       f"epoch {max(r.diverged_at - 1, 0)}. Try a smaller learning rate.")
    s = store()
    if s.notice:
        st.warning(f"Cache: {s.notice}")
    for text in errors:
        st.error(text)
    for note in notes:
        st.caption(note)


def findings(protocol: runner.Protocol, label: str, on_claim=None):
    """The study's claims re-tested under ``protocol`` (a FindingsResult) or None on failure;
    ``on_claim`` sees each verdict as it arrives. A cached protocol shows no status box."""
    cached = runner.cached_findings(protocol, _limits(), store())
    if cached is not None:
        return cached
    rep = Reporter(label)
    out = _guarded(rep, label, lambda: runner.findings(protocol, _limits(), store=store(),
                                                       progress=rep.callback, on_claim=on_claim))
    if out is not None:
        rep.complete(f"{label} — {len(out.claims)} verdicts computed in {out.seconds:.0f} s and cached")
    return out
