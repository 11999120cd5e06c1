"""Command-line interface: ``python -m runner run|sweep`` (also ``python -m ntk_core``).

Headless access to the same runner and the same results cache as the app::

    python -m ntk_core run --width 256 --samples 1000 --epochs 30 --json
    python -m ntk_core sweep --vary l2 --values 0 1e-4 1e-3 --output l2.csv
    python -m ntk_core --cache-dir /srv/ntk-cache sweep --vary width --values 64,256,1024

Every config value is taken as a string and validated once, by
``runner.validate_config``, so a bad flag gets exactly the message the app shows for the
same value (plus the flag's name). Bad arguments (and bad ``NTK_*`` environment values)
exit with status 2 and one line on stderr; any other failure exits with status 1 and one
line (the traceback only with ``--debug``). A diverged run is a success (exit 0) and
reports ``diverged_at``. Cache problems are printed on stderr and never fail a command.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import math
import os
import re
import sys
import time
import traceback
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np
from tqdm import tqdm

from runner import _run
from runner._run import FIELD_OF_VARY as _FIELD_OF_VARY
from runner._config import ConfigError, ExperimentConfig, Limits, Network, validate_config, validate_network
from runner._malloc import tune_allocator
from runner._types import Progress, Stage

PROG = "python -m ntk_core"  # also: python -m runner

# (flag, ExperimentConfig field, metavar, help). Every ExperimentConfig field has a flag.
CONFIG_FLAGS: tuple[tuple[str, str, str, str], ...] = (
    ("--width", "width", "N", "units of every hidden layer of the MLP; channels of the CNN"),
    ("--samples", "n_train", "N", "training samples n (class-stratified MNIST subsample)"),
    ("--n-val", "n_val", "N", "validation samples (disjoint from training)"),
    ("--reg", "reg", "{none,l1,l2}", "weight penalty: none, l1 (λ‖W‖₁) or l2 (λ‖W‖²)"),
    ("--reg-strength", "reg_strength", "LAMBDA", "penalty strength λ ≥ 0 (ignored with --reg none)"),
    ("--weight-decay", "weight_decay", "WD", "decoupled weight decay wd in [0, 100] on the weights, "
     "a step rule θ ← θ − lr·wd·θ (optax.adamw convention; adam becomes AdamW); with sgd, wd = 2λ "
     "equals --reg l2 --reg-strength λ, with adam it does not; 0 = off"),
    ("--lr", "lr", "LR", "learning rate"),
    ("--epochs", "epochs", "E", "passes over the training set"),
    ("--optimizer", "optimizer", "{sgd,adam}", "optimizer"),
    ("--batch-size", "batch_size", "B", "minibatch size; 0 = full batch"),
    ("--seed", "seed", "S", "seeds the data split, the init and the minibatch order"),
    ("--parameterization", "parameterization", "{standard,ntk}", "standard (PyTorch init) or ntk"),
    ("--top-k", "top_k", "K", "number of top eigenvalues tracked per epoch"),
    ("--patience", "patience", "P", "early-stopping patience (reported only, never truncates)"),
    ("--dataset", "dataset", "{bundled,full,fashion_mnist}", "bundled 10k MNIST test set, full 70k "
     "MNIST or 70k Fashion-MNIST (both downloaded; Fashion-MNIST never falls back to MNIST)"),
    ("--arch", "arch", "{mlp,cnn}", "network: ReLU MLP, or the small CNN (width = channels, ≤ 32); "
     "every network but the 1-hidden MLP uses a generic kernel (ntk_vp; at n ≤ 2000 the deeper "
     "MLPs layer-wise, structured, and the CNN by Jacobian contraction, autodiff)"),
    ("--depth", "depth", "D", "hidden layers of the MLP, 1-4 (ignored by the CNN)"),
)
_FLAG_OF = {field: flag for flag, field, _, _ in CONFIG_FLAGS}


def add_network_flags(parser: argparse.ArgumentParser) -> None:
    """--arch, --depth, --dataset on a protocol command (findings, the theory commands):
    the protocol's grids run on that network."""
    for flag, field, metavar, text in CONFIG_FLAGS:
        if field in Network._fields:
            parser.add_argument(flag, dest=field, metavar=metavar, default=None, help=text)


def network_of(args: argparse.Namespace, limits: Limits) -> Network:
    """The validated network of a protocol command's flags (default: the study's MLP)."""
    return validate_network({f: getattr(args, f) for f in Network._fields
                             if getattr(args, f, None) is not None}, limits)

CSV_COLUMNS = ("vary", "value", "epoch", "train_loss", "val_loss", "val_acc", "lambda_max", "trace",
               "step_norm", "rel_change", "diverged_at", "status")
_PER_EPOCH = ("train_loss", "objective", "val_loss", "val_acc", "step_norm", "rel_change", "weight_norm")

# argparse takes "-3" and "-.5" as values but not "-1e-3" (its negative-number pattern
# has no exponent), which it would read as an unknown option: such a token is glued to
# the option before it (``--reg-strength=-1e-3``) so validation, not argparse, rejects it.
_SCI_NEGATIVE = re.compile(r"-(\d+\.?\d*|\.\d+)[eE][-+]?\d+")
_VALUE_OPTIONS = frozenset([f for f, *_ in CONFIG_FLAGS] + ["--cache-dir", "--vary", "--format",
                                                           "--output", "-o"])


class _UsageError(Exception):
    """An argparse-level problem (unknown flag, missing value, ...)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        sub = self.prog[len(PROG):].strip() if self.prog.startswith(PROG) else ""
        raise _UsageError(f"{sub + ': ' if sub else ''}error: {message} (see --help)")


# --------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------


def _glue_dash_values(argv: Sequence[str]) -> list[str]:
    """``--lr -1e-3`` → ``--lr=-1e-3`` and ``--values 1 -1e-3`` → ``--values 1 --values=-1e-3``
    (``--values`` extends its list). Every other token is left to argparse."""
    out: list[str] = []
    in_values = False
    for tok in argv:
        if _SCI_NEGATIVE.fullmatch(tok):
            if out and out[-1] in _VALUE_OPTIONS:
                out[-1] = f"{out[-1]}={tok}"
                continue
            if in_values:
                out.append(f"--values={tok}")
                continue
        elif tok.startswith("-") and not _is_number(tok):
            in_values = tok == "--values"
        out.append(tok)
    return out


def _is_number(tok: str) -> bool:
    try:
        float(tok)
        return True
    except ValueError:
        return False


def _add_common(p: argparse.ArgumentParser, *, top: bool) -> None:
    """Global options; on subcommands they only override what was given before them."""
    kw: dict[str, Any] = {} if top else {"default": argparse.SUPPRESS}
    g = p.add_argument_group("cache and output")
    g.add_argument("--cache-dir", metavar="DIR", help="results store directory (default: "
                   "$NTK_CACHE_DIR or the per-user cache); JAX's compile cache goes in DIR/jax-compile",
                   **({"default": None} if top else kw))
    g.add_argument("--no-cache", action="store_true", help="compute without reading or writing the results store "
                   "(nothing is written to disk, not even JAX's compile cache)",
                   **({"default": False} if top else kw))
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar on stderr",
                   **({"default": False} if top else kw))
    g.add_argument("--debug", action="store_true", help="on an unexpected error, print the full "
                   "traceback (default: one line)", **({"default": False} if top else kw))


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    defaults = ExperimentConfig()
    g = p.add_argument_group("experiment (validated exactly like the app; defaults in brackets)")
    for flag, field, metavar, help_ in CONFIG_FLAGS:
        # Strings on purpose: validate_config does all type and range checking.
        g.add_argument(flag, dest=field, metavar=metavar, type=str, default=None,
                       help=f"{help_} [{getattr(defaults, field)}]")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG, allow_abbrev=False,
        description="NTK Explorer headless: train one-hidden-layer ReLU MLPs on MNIST and track the "
                    "empirical NTK spectrum per epoch. Results go to the same cache the app reads.",
        epilog="Eigenvalues are of the raw traced Θ (mean over the 10 logits), not divided by n.")
    _add_common(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="{run,sweep,findings,kernel-motion,infinite-width,linearized,stability}", required=True)

    p_run = sub.add_parser("run", allow_abbrev=False, help="one config: per-epoch metrics and top-k spectrum",
                           description="Train one config (or load it from the cache) and print per-epoch "
                                       "metrics and the top-k spectrum of the empirical NTK.")
    _add_config_flags(p_run)
    p_run.add_argument("--json", action="store_true", help="print one JSON object to stdout")
    _add_common(p_run, top=False)
    p_run.set_defaults(handler=cmd_run)

    p_sw = sub.add_parser("sweep", allow_abbrev=False, help="one-axis sweep (pre-warms the app's cache)",
                          description="Run a one-axis sweep over the base config given by the flags; "
                                      "points differing only in λ, lr or seed train in one vmapped program.")
    p_sw.add_argument("--vary", metavar="{width,samples,l1,l2,lr,seed}", default=None,
                      help="the swept parameter (l1/l2 also set --reg)")
    p_sw.add_argument("--values", nargs="*", action="extend", metavar="V", default=None,
                      help="values to sweep, space- and/or comma-separated")
    p_sw.add_argument("--format", metavar="{csv,json}", default="csv",
                      help="csv: one row per (value, epoch) [default]; json: one object with all runs")
    p_sw.add_argument("-o", "--output", metavar="FILE", default=None,
                      help="write to FILE instead of stdout (\"-\" = stdout)")
    _add_config_flags(p_sw)
    _add_common(p_sw, top=False)
    p_sw.set_defaults(handler=cmd_sweep)

    p_f = sub.add_parser("findings", allow_abbrev=False,
                         help="re-test every claim of the study; verdicts computed from the data",
                         description="Train the protocol's grids (L2, L1, n and width sweeps, 3 seeds, "
                                     "SGD and Adam) through the shared cache and judge each claim of the "
                                     "study: holds, holds_only_when, does_not_hold or inconclusive.")
    p_f.add_argument("--quick", action="store_true",
                     help="reduced protocol (smaller net, fewer epochs and grid points: minutes on "
                          "2 cores); the JSON says so")
    p_f.add_argument("--json", action="store_true", help="print one JSON object to stdout")
    add_network_flags(p_f)
    _add_common(p_f, top=False)
    p_f.set_defaults(handler=cmd_findings)
    from runner import _theory_motion  # kernel-motion, infinite-width

    _theory_motion.add_commands(sub, _add_common)
    from runner import _theory_dynamics  # linearized, stability

    _theory_dynamics.add_commands(sub, _add_common)
    return parser


def _base_config(args: argparse.Namespace) -> dict[str, str]:
    return {field: getattr(args, field) for _, field, _, _ in CONFIG_FLAGS
            if getattr(args, field, None) is not None}


def _split_values(raw: Sequence[str] | None) -> list[str]:
    out: list[str] = []
    for item in raw or ():
        out.extend(v.strip() for v in item.split(",") if v.strip())
    return out


# --------------------------------------------------------------------------
# stderr: progress bar and notices
# --------------------------------------------------------------------------


class _Progress:
    """The runner's ``progress(Progress)`` callback drawn as a tqdm bar on stderr (one bar
    per stage; tqdm itself handles terminals vs pipes and the rate/elapsed display)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: tqdm | None = None
        self._key: tuple | None = None

    def __call__(self, p: Progress) -> None:
        if not self.enabled:
            return
        if p.stage is Stage.DONE:
            self.clear()
            return
        key = (p.stage, p.run, p.total)
        if key != self._key:
            self.clear()
            desc = (f"spectra {p.run + 1}/{p.runs}" if p.stage is Stage.SPECTRA else p.stage.value)
            self._bar = tqdm(total=max(p.total, 1), desc=desc, unit="epoch" if p.stage is Stage.SPECTRA
                             else "run", file=sys.stderr, leave=False, dynamic_ncols=True,
                             mininterval=0.2)
            self._key = key
        if self._bar is not None:
            self._bar.n = min(p.done, self._bar.total)
            self._bar.refresh()

    def clear(self) -> None:
        """Closes the current bar so the next message starts on a fresh line."""
        if self._bar is not None:
            try:
                self._bar.close()
            except (OSError, ValueError):
                self.enabled = False
            self._bar = None
            self._key = None


class _NoticeHandler(logging.Handler):
    """Prints the cache's warnings on stderr (after clearing the progress bar)."""

    def __init__(self, bar: _Progress) -> None:
        super().__init__(logging.WARNING)
        self.bar = bar
        self.seen: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        self.seen.add(msg)
        self.bar.clear()
        _say(f"cache: {msg}")


def _say(msg: str) -> None:
    try:
        sys.stderr.write(f"ntk_core: {msg}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


class _Session:
    """Store, limits, progress bar and cache-notice reporting for one command."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.bar = _Progress(enabled=not args.quiet)
        self.handler = _NoticeHandler(self.bar)
        self.store = None

    def __enter__(self) -> "_Session":
        log = logging.getLogger("cache")
        log.addHandler(self.handler)
        log.propagate = False
        return self

    def open_store(self):
        """The results store, or None with --no-cache."""
        cache_dir = Path(self.args.cache_dir).expanduser() if self.args.cache_dir else None
        if self.args.no_cache:
            # Nothing is written: neither results nor compiled programs. No store object
            # at all (the runner then reports "uncached"): even a disabled ResultStore
            # without a directory resolves default_cache_dir(), which creates directories.
            self.store = None
        else:
            _run.configure_jax_cache(cache_dir / "jax-compile" if cache_dir is not None else None)
            self.store = _run.open_store(cache_dir)
        return self.store

    def __exit__(self, *exc: object) -> None:
        self.bar.clear()
        logging.getLogger("cache").removeHandler(self.handler)
        notice = getattr(self.store, "notice", None)
        if notice and notice not in self.handler.seen:
            _say(f"cache: {notice}")


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------


def _num(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _list(a: Any) -> list:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 0:
        return [_num(a)]
    if a.ndim == 1:
        return [_num(v) for v in a]
    return [_list(row) for row in a]


def normalization_note(config: ExperimentConfig) -> str:
    return (f"eigenvalues (lambda_max, topk, trace) are of the raw traced empirical NTK Θ: the mean over "
            f"the 10 logits of ∇θf_k(x_i)·∇θf_k(x_j), summed over parameters, NOT divided by n "
            f"(n = n_train = {config.n_train}; divide by n for Θ/n), in the {config.parameterization} "
            f"parameterization")


def result_json(r) -> dict[str, Any]:
    """A RunResult as plain JSON types (NaN and ±inf become null)."""
    e = r.topk.shape[0]
    obj: dict[str, Any] = {"config": r.config.to_dict(), "status": r.status, "epoch": list(range(e))}
    for k in _PER_EPOCH:
        if k in r.metrics:
            obj[k] = _list(r.metrics[k])
    obj["lambda_max"] = _list(r.topk[:, 0]) if r.topk.shape[1] else [None] * e
    obj["topk"] = _list(r.topk)
    obj["trace"] = _list(r.trace)
    obj["lanczos_residual"] = _list(r.lanczos_residual)
    obj["lanczos_converged"] = [bool(c) for c in np.asarray(r.lanczos_converged).ravel()]
    obj.update(best_epoch=int(r.best_epoch), stop_epoch=r.stop_epoch, restore_epoch=int(r.restore_epoch),
               diverged_at=r.diverged_at,
               spectrum_method=r.spectrum_method, ntk_method=r.config.ntk_method,
               network=r.config.arch_label, data_source=r.data_source, notice=r.notice,
               checkpoint_epochs=[int(c) for c in np.asarray(r.checkpoint_epochs).ravel()],
               normalization=normalization_note(r.config))
    return obj


def _dumps(obj: Any) -> str:
    return json.dumps(obj, allow_nan=False)


def _g(x: Any, width: int = 11, spec: str = ".5g") -> str:
    x = float(x)
    return (format(x, spec) if math.isfinite(x) else ("nan" if math.isnan(x) else str(x))).rjust(width)


def result_table(r, seconds: float) -> str:
    c = r.config
    out = io.StringIO()
    w = out.write
    w(f"NTK Explorer run — status: {r.status} ({seconds:.1f} s)\n")
    w("config: " + " ".join(f"{k}={v}" for k, v in c.to_dict().items()) + "\n")
    w(f"optimizer: {c.optimizer_label}, lr={c.lr:g}; regularization: {c.regularizer_label}\n")
    w(f"network: {c.arch_label}; NTK: {c.ntk_method}; data: {r.data_source}, n_train={c.n_train}, "
      f"n_val={c.n_val}; spectrum: {r.spectrum_method}\n")
    if r.notice:
        w(f"note: {r.notice}\n")
    w("\n")
    cols = ("train_loss", "val_loss", "val_acc", "lambda_max", "trace", "step_norm", "rel_change")
    w("epoch " + "".join(n.rjust(12) for n in cols) + "\n")
    for ep in range(r.topk.shape[0]):
        vals = [r.metrics["train_loss"][ep], r.metrics["val_loss"][ep], r.metrics["val_acc"][ep],
                r.topk[ep, 0], r.trace[ep], r.metrics["step_norm"][ep], r.metrics["rel_change"][ep]]
        mark = "*" if ep == r.best_epoch else ("!" if r.diverged_at is not None and ep >= r.diverged_at else " ")
        w(f"{ep:5d}{mark}" + "".join(" " + _g(v) for v in vals) + "\n")
    w("\n")
    w(f"lowest val_loss over the run (marked *): epoch {r.best_epoch}; patience {c.patience} "
      + (f"would stop at epoch {r.stop_epoch} and restore epoch {r.restore_epoch}\n"
         if r.stop_epoch is not None else "never stops\n"))
    bad = int(np.sum(~np.asarray(r.lanczos_converged, bool) & np.isfinite(r.topk[:, 0])))
    if bad:
        w(f"warning: the top-k eigensolver did not converge at {bad} epoch(s); max relative residual "
          f"{np.nanmax(r.lanczos_residual):.2e}\n")
    if r.diverged_at is not None:
        w(f"diverged at epoch {r.diverged_at} (marked !): metrics and spectra are NaN from there on; "
          "try a smaller --lr\n")
    finite = np.flatnonzero(np.isfinite(r.topk[:, 0]))
    if finite.size:
        ep = int(finite[-1])
        w(f"top-{r.topk.shape[1]} eigenvalues at epoch {ep}:\n  "
          + " ".join(_g(v, 0) for v in r.topk[ep]) + "\n")
    w(f"({normalization_note(c)})\n")
    return out.getvalue()


def _csv_num(x: Any) -> str:
    x = float(x)
    return repr(x) if math.isfinite(x) else ("NaN" if math.isnan(x) else ("inf" if x > 0 else "-inf"))


def _sweep_value(cfg: ExperimentConfig, vary: str) -> Any:
    return getattr(cfg, _FIELD_OF_VARY.get(vary, vary))


def sweep_csv(vary: str, results: Sequence[Any]) -> str:
    buf = io.StringIO()
    wr = csv.writer(buf, lineterminator="\n")
    wr.writerow(CSV_COLUMNS)
    for r in results:
        v = _sweep_value(r.config, vary)
        value = str(v) if isinstance(v, int) else _csv_num(v)
        for ep in range(r.topk.shape[0]):
            wr.writerow([vary, value, ep, _csv_num(r.metrics["train_loss"][ep]),
                         _csv_num(r.metrics["val_loss"][ep]), _csv_num(r.metrics["val_acc"][ep]),
                         _csv_num(r.topk[ep, 0]), _csv_num(r.trace[ep]),
                         _csv_num(r.metrics["step_norm"][ep]), _csv_num(r.metrics["rel_change"][ep]),
                         "" if r.diverged_at is None else r.diverged_at, r.status])
    return buf.getvalue()


def sweep_json(vary: str, results: Sequence[Any]) -> dict[str, Any]:
    values = [_sweep_value(r.config, vary) for r in results]
    return {"vary": vary, "values": values,
            "runs": [{"vary": vary, "value": v, **result_json(r)} for v, r in zip(values, results)]}


def _write_stdout(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


# --------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------


class Plan(NamedTuple):
    """What a command will compute, after the CLI's one validation (no work done yet)."""

    args: argparse.Namespace
    limits: Limits
    configs: list[ExperimentConfig]
    vary: str | None = None
    fmt: str = "csv"
    out_path: Path | None = None


def plan(argv: Sequence[str]) -> Plan:
    """Parses and validates a command line: every flag, every sweep value and the
    ``NTK_*`` environment, before any computation or cache access.

    Raises:
      _UsageError: argparse-level problems (unknown flag, missing value).
      ConfigError: a value outside its range, naming the parameter.
    """
    args = build_parser().parse_args(_glue_dash_values(list(argv)))
    limits = Limits.from_env()
    if getattr(args, "plan_configs", None) is not None:  # theory commands: their protocol's configs
        return Plan(args, limits, args.plan_configs(args, limits))
    if args.command == "findings":
        from runner import _findings

        return Plan(args, limits, [_findings.protocol("quick" if args.quick else "full", limits,
                                                      network_of(args, limits)).base])
    base = validate_config(_base_config(args), limits)
    if args.command == "run":
        return Plan(args, limits, [base])
    fmt = str(args.format).strip().lower()
    if fmt not in ("csv", "json"):
        raise ConfigError("format", args.format, "one of csv, json")
    out_path = Path(args.output).expanduser() if args.output and args.output != "-" else None
    if out_path is not None and (out_path.is_dir() or not out_path.parent.is_dir()):
        raise ConfigError("output", args.output, "a file path in an existing directory")
    vary = args.vary if args.vary is None else args.vary.strip().lower()
    configs = _run.sweep_configs(base, vary, _split_values(args.values), limits)
    return Plan(args, limits, configs, vary, fmt, out_path)


def cmd_run(p: Plan) -> int:
    args = p.args
    with _Session(args) as s:
        store = s.open_store()
        t0 = time.monotonic()
        r = _run.run(p.configs[0], p.limits, store=store, progress=s.bar)
        seconds = time.monotonic() - t0
        s.bar.clear()
        if args.json:
            if r.notice:
                _say(f"note: {r.notice}")
            _write_stdout(_dumps(result_json(r)) + "\n")
        else:
            _write_stdout(result_table(r, seconds))
    return 0


def cmd_sweep(p: Plan) -> int:
    args, vary, fmt, out_path = p.args, p.vary, p.fmt, p.out_path
    with _Session(args) as s:
        store = s.open_store()
        t0 = time.monotonic()
        results = _run.run_configs(p.configs, p.limits, store=store, progress=s.bar)
        seconds = time.monotonic() - t0
        s.bar.clear()
        for note in dict.fromkeys(r.notice for r in results if r.notice):
            _say(f"note: {note}")
        text = sweep_csv(vary, results) if fmt == "csv" else _dumps(sweep_json(vary, results)) + "\n"
        if out_path is None:
            _write_stdout(text)
        else:
            out_path.write_text(text, encoding="utf-8")
        if not args.quiet:
            counts: dict[str, int] = {}
            for r in results:
                counts[r.status] = counts.get(r.status, 0) + 1
            where = str(out_path) if out_path is not None else "stdout"
            diverged = [str(_sweep_value(r.config, vary)) for r in results if r.diverged_at is not None]
            _say(f"sweep over {vary}: {len(results)} runs ("
                 + ", ".join(f"{n} {k}" for k, n in counts.items()) + f") in {seconds:.1f} s, {fmt} written to {where}"
                 + (f"; diverged at {vary} = {', '.join(diverged)}" if diverged else ""))
    return 0


def theory_command(fn, protocol_for, table):
    """CLI handler of a theory page's command: the protocol from the flags (already
    validated by ``plan``), one runner call with the progress bar, then ONE JSON object
    (``--json``) or the table."""
    def handler(p: Plan) -> int:
        args = p.args
        proto = protocol_for(args, p.limits)
        with _Session(args) as s:
            store = s.open_store()
            res = fn(proto, p.limits, store=store, progress=s.bar)
            s.bar.clear()
            _write_stdout(_dumps(res.to_json()) + "\n" if args.json else table(res))
        return 0

    return handler


def cmd_findings(p: Plan) -> int:
    from runner import _findings

    args = p.args
    proto = _findings.protocol("quick" if args.quick else "full", p.limits, network_of(args, p.limits))
    with _Session(args) as s:
        store = s.open_store()
        res = _findings.findings(proto, p.limits, store=store, progress=s.bar)
        s.bar.clear()
        if args.json:
            _write_stdout(_dumps(res.to_json()) + "\n")
        else:
            _write_stdout(findings_table(res))
    return 0


def findings_table(res) -> str:
    """A human table: one row per claim × optimizer, then the conditions and criteria."""
    out = io.StringIO()
    w = out.write
    p = res.protocol
    w(f"NTK Explorer findings — {p.name} protocol ({res.status}, {res.seconds:.1f} s), "
      f"config hash {p.key}\n")
    b = p.base
    w(f"network: {b.network.label}; base: width {b.width}, n={b.n_train}, n_val={b.n_val}, {b.epochs} epochs, batch {b.batch_size}, "
      f"{b.parameterization} param.; seeds {list(p.seeds)}; optimizers "
      + ", ".join(f"{o} (lr {lr:g})" for o, lr in p.optimizers) + "\n\n")
    w(f"{'claim':34s} {'optimizer':9s} verdict\n")
    for c in res.claims:
        w(f"{c.claim_id:34s} {c.optimizer:9s} {c.verdict.verdict}"
          + (f" — {c.verdict.condition}" if c.verdict.condition else "") + "\n")
    w("\nEigenvalues are of the raw traced empirical NTK Θ (mean over the 10 logits), not divided by n.\n")
    return out.getvalue()


def _flag_for(exc: ConfigError, args: argparse.Namespace | None) -> str:
    vary = getattr(args, "vary", None)
    if (vary and exc.param in (vary, _FIELD_OF_VARY.get(vary, vary)) and exc.param != "vary"
            and exc.value in _split_values(getattr(args, "values", None))):
        return "--values"
    if exc.param in _FLAG_OF:
        return _FLAG_OF[exc.param]
    if exc.param in ("vary", "values", "format", "output"):
        return "--" + exc.param
    if exc.param.startswith("NTK_"):
        return "environment variable"
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the CLI; returns the exit status (0 ok, 2 bad arguments, 1 other failure)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    for stream in (sys.stdout, sys.stderr):
        try:  # Θ, λ in a non-UTF-8 terminal: degrade to escapes, never crash
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            pass
    tune_allocator()  # process setup: a sweep allocates and frees hundreds of MB
    args = None
    try:
        p = plan(argv)
        args = p.args
        return p.args.handler(p)
    except _UsageError as exc:
        _say(str(exc))
        return 2
    except ConfigError as exc:
        if args is None:  # parsed, but validation failed: recover the namespace for the message
            try:
                args = build_parser().parse_args(_glue_dash_values(argv))
            except _UsageError:
                args = None
        flag = _flag_for(exc, args)
        cmd = f" {args.command}" if args is not None else ""
        _say(f"{cmd.strip() + ': ' if cmd else ''}error: {flag + ': ' if flag else ''}{exc}")
        return 2
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    except BrokenPipeError:
        # Output piped into e.g. `head`, which closed early: not an error of ours.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 1
    except OSError as exc:  # e.g. --output on a full disk
        _say(f"error: {exc}")
        return 1
    except Exception as exc:  # anything else: one line, never a traceback unless --debug
        if getattr(args, "debug", False) or "--debug" in argv:
            traceback.print_exc()
        _say(f"error: unexpected {type(exc).__name__}: {str(exc)[:500]} (run with --debug for the "
             "traceback)")
        return 1
