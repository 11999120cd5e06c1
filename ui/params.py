"""The sidebar's parameters: URL keys, widget bounds, and validation of untrusted input.

Pure Python (no Streamlit): the URL checks and list parsing are unit-testable.

Every value that can come from a URL goes through :func:`runner.validate_config`,
so the message a user sees names the parameter, its allowed range and the nearest
allowed value exactly as the CLI and the API would; the widgets' bounds come from
:func:`runner.bounds`, the same source validation uses.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import runner
from runner import ConfigError, ExperimentConfig, Limits

# Displayed kernel normalisation: raw Θ, or Θ/n (divide eigenvalues and trace by n).
NORM_RAW = "Θ"
NORM_PER_N = "Θ/n"
NORMS = (NORM_RAW, NORM_PER_N)

LR_MIN = 1e-6  # the engine allows any lr > 0; the widget needs a closed lower bound


@dataclasses.dataclass(frozen=True)
class Field:
    """One sidebar control.

    Attributes:
      key: widget key = URL query parameter name.
      field: ExperimentConfig field it sets (None for display-only controls).
      kind: "int", "float" or "choice".
      label: widget label.
      default: value when nothing else says otherwise.
      lo, hi: bounds of the widget (numbers only).
      options: allowed values (choices only).
      labels: display label per option (choices only); also what the URL holds.
      step: widget step (numbers only).
      help: tooltip.
    """

    key: str
    field: str | None
    kind: str
    label: str
    default: Any
    lo: float | None = None
    hi: float | None = None
    options: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    step: float | None = None
    help: str = ""

    def label_of(self, option: str) -> str:
        return self.labels[self.options.index(option)] if self.labels else option

    @property
    def shown_name(self) -> str:
        """URL key, plus the config field when they differ: ``samples (n_train)``."""
        if self.field and self.field != self.key:
            return f"{self.key} ({self.field})"
        return self.key


def max_samples(limits: Limits) -> int:
    """Largest n the sidebar offers (bundled pool, default n_val): from runner.bounds."""
    return runner.bounds(limits).n_train[1]


def fields(limits: Limits) -> tuple[Field, ...]:
    """All sidebar controls, in display order, with bounds from ``runner.bounds(limits)``."""
    b = runner.bounds(limits)
    max_n = b.n_train[1]
    return (
        Field("arch", "arch", "choice", "Network", "mlp", options=runner.ARCHS, labels=("MLP", "CNN"),
              help="MLP: ReLU layers of one width (depth 1 is the study's network, whose NTK has "
                   "a closed form). CNN: two 3×3 conv layers (stride 1, then 2) with 'width' "
                   "channels and a dense readout. Every network but the one-hidden MLP gets "
                   "its NTK from a generic path, which is slower: at n ≤ 2000 the deeper MLPs' "
                   "dense kernel layer-wise (structured) and the CNN's by Jacobian contraction "
                   "(autodiff), else the matrix-free ntk_vp."),
        Field("depth", "depth", "int", "Hidden layers", 1, *b.depth, step=1,
              help="Hidden layers of the MLP (ignored by the CNN)."),
        Field("width", "width", "int", "Hidden width / channels", min(128, b.width[1]), *b.width, step=1,
              help="Units of every hidden layer of the MLP; channels of both conv layers of "
                   f"the CNN (at most {runner.MAX_CNN_CHANNELS})."),
        Field("data", "dataset", "choice", "Dataset", "bundled", options=runner.DATASETS,
              labels=tuple(runner.DATASET_LABELS[d] for d in runner.DATASETS),
              help="MNIST's 10k test set ships with the app (offline). The 70k MNIST and "
                   "Fashion-MNIST sets are downloaded (sha256-checked) when the network "
                   "allows; Fashion-MNIST is never replaced by MNIST."),
        Field("param", "parameterization", "choice", "Parameterization", "standard",
              options=("standard", "ntk"), labels=("standard", "NTK"),
              help="standard: PyTorch nn.Linear default, weights and biases ~ U(±1/√fan_in); "
                   "NTK: raw parameters ~ N(0, 1) with σ_w/√fan_in applied in the forward pass."),
        Field("samples", "n_train", "int", "Samples n", min(1000, max_n), *b.n_train, step=100,
              help="Training samples: a class-stratified subsample of the dataset; the kernel is n × n."),
        Field("seed", "seed", "int", "Seed", 0, *b.seed, step=1,
              help="Seeds the data split, the initialization and the minibatch order."),
        Field("epochs", "epochs", "int", "Epochs", min(20, b.epochs[1]), *b.epochs, step=1),
        Field("lr", "lr", "float", "Learning rate η", 0.1, LR_MIN, b.lr[1], step=0.01),
        Field("opt", "optimizer", "choice", "Optimizer", "sgd", options=("sgd", "adam"),
              labels=("SGD", "Adam")),
        Field("batch", "batch_size", "int", "Batch size (0 = full batch)", 0, *b.batch_size, step=50,
              help="Minibatch size; 0, or any value ≥ n, trains full batch."),
        Field("reg", "reg", "choice", "Regularization", "none", options=("none", "l1", "l2"),
              labels=("none", "L1", "L2"),
              help="Penalty on the weights (biases are not penalized): λ‖W‖₁ or λ‖W‖²."),
        Field("l", "reg_strength", "float", "Strength λ", 1e-3, *b.reg_strength, step=1e-4,
              help="Ignored when regularization is none."),
        Field("wd", "weight_decay", "float", "Decoupled weight decay wd", 0.0, *b.weight_decay,
              step=1e-4,
              help="A step rule, not a loss term, on the weights (biases are not decayed): after "
                   "each optimizer step θ ← θ − η·wd·θ, with η the learning rate (optax.adamw's "
                   "convention, Loshchilov & Hutter 2019). With Adam this is AdamW. With SGD, "
                   "wd = 2λ is exactly the L2 penalty λ‖W‖² above; with Adam the two differ: "
                   "the L2 gradient is rescaled by Adam, the decay is not. 0 = off; it can be "
                   "combined with the penalty."),
        Field("topk", "top_k", "int", "Top-k eigenvalues", min(10, b.top_k[1]), *b.top_k, step=1,
              help="Eigenvalues tracked at every epoch."),
        Field("norm", None, "choice", "Kernel normalization", NORM_RAW, options=NORMS,
              help="Display only: Θ is the raw traced kernel; Θ/n divides eigenvalues and "
                   "trace by the number of training samples n."),
    )


URL_KEYS = ("width", "samples", "reg", "l", "epochs", "lr", "opt", "batch", "seed", "topk",
            "norm", "param", "wd", "arch", "depth", "data")


def defaults(limits: Limits) -> dict[str, Any]:
    """URL key → default widget value."""
    return {f.key: f.default for f in fields(limits)}


def default_config(limits: Limits) -> ExperimentConfig:
    return config_from_values(defaults(limits), limits)


@dataclasses.dataclass(frozen=True)
class UrlIssue:
    """A URL query parameter that was rejected.

    Attributes:
      key: the URL key (e.g. "samples"); name: how the message names it.
      value: the raw value; allowed: allowed range; suggestion: nearest allowed value or None.
    """

    key: str
    name: str
    value: str
    allowed: str
    suggestion: Any = None

    def message(self, used: Any = None) -> str:
        text = (f"URL parameter **{self.name}**=`{shown_value(self.value)}` is not allowed; "
                f"allowed: {self.allowed}")
        if self.suggestion is not None:
            text += f" (nearest allowed value: `{self.suggestion}`)"
        if used is not None:
            text += f". Using {self.key}=`{used}` instead."
        return text


def shown_value(value: Any, limit: int = 40) -> str:
    """An untrusted value made safe to echo inside a Markdown code span: printable
    characters only, no backticks, at most ``limit`` characters."""
    text = "".join(c if c.isprintable() and c != "`" else "?" for c in str(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"


# Other fields of the config a single URL value is checked in: as small as allowed, so the
# check is about the value's own range, not about the memory a whole request would need
# (that is checked once the config is assembled).
_PROBE_BASE = {"width": 1, "n_train": 2, "epochs": 1, "top_k": 1, "batch_size": 0}


def _last(raw: Any) -> str:
    if isinstance(raw, (list, tuple)):
        return str(raw[-1]) if raw else ""
    return str(raw)


def _match_choice(f: Field, value: str) -> str | None:
    """Case-insensitive match of a URL value to an option (by option or label)."""
    v = value.strip().lower()
    for opt in f.options:
        if v in (opt.lower(), f.label_of(opt).lower()):
            return opt
    return None


def check_url(raw: Mapping[str, Any], limits: Limits) -> tuple[list[UrlIssue], dict[str, Any]]:
    """Validates the whitelisted query parameters, each on its own.

    Only :data:`URL_KEYS` are read; everything else in ``raw`` is ignored.

    Returns:
      (issues, accepted): one issue per rejected key, and key → parsed value for the
      accepted ones (choices normalised to their option, numbers parsed).
    """
    issues: list[UrlIssue] = []
    accepted: dict[str, Any] = {}
    specs = {f.key: f for f in fields(limits)}
    for key in URL_KEYS:
        if key not in raw:
            continue
        f = specs[key]
        value = _last(raw[key])
        if f.field is None:  # display-only choice
            opt = _match_choice(f, value)
            if opt is None:
                issues.append(UrlIssue(key, f.shown_name, value, "one of " + ", ".join(f.options)))
            else:
                accepted[key] = opt
            continue
        # Range checks that do not depend on other parameters: batch and top-k are checked
        # against the largest n here, and against the actual n when the config is assembled.
        probe: dict[str, Any] = {**_PROBE_BASE, f.field: value}
        if f.field in ("batch_size", "top_k"):
            probe["n_train"] = max_samples(limits)
        if f.field == "reg_strength":
            probe["reg"] = "l2"
        try:
            parsed = getattr(runner.validate_config(probe, limits), f.field)
        except ConfigError as exc:
            issues.append(UrlIssue(key, f.shown_name, value, exc.allowed, exc.suggestion))
            continue
        if f.kind == "choice":
            opt = _match_choice(f, value)
            accepted[key] = opt if opt is not None else parsed
            continue
        # The widget's own bounds (at most as wide as the engine's).
        if f.lo is not None and f.hi is not None and not f.lo <= parsed <= f.hi:
            nearest = min(max(parsed, f.lo), f.hi)
            kind = "integer" if f.kind == "int" else "number"
            issues.append(UrlIssue(key, f.shown_name, value, f"{kind} in [{f.lo:g}, {f.hi:g}]",
                                   nearest))
            continue
        accepted[key] = parsed
    return issues, accepted


def config_from_values(values: Mapping[str, Any], limits: Limits) -> ExperimentConfig:
    """Widget values (by URL key) → validated ExperimentConfig.

    A batch size ≥ n means full batch (0). Raises ConfigError for anything else
    (e.g. top-k larger than n).
    """
    mapping: dict[str, Any] = {}
    for f in fields(limits):
        if f.field is not None and f.key in values:
            mapping[f.field] = values[f.key]
    n = mapping.get("n_train")
    if n is not None and mapping.get("batch_size") is not None:
        try:
            if int(mapping["batch_size"]) >= int(n):
                mapping["batch_size"] = 0
        except (TypeError, ValueError):
            pass  # validate_config reports it
    return runner.validate_config(mapping, limits)


def parse_number_list(text: str, name: str, *, integer: bool = False,
                      max_count: int | None = None) -> list[float] | list[int]:
    """Parses "0, 1e-4, 1e-3" (commas, semicolons or spaces) into a list of numbers.

    Duplicates are dropped, order kept. Range checks are left to the engine.

    Raises:
      ConfigError: naming ``name`` for an unparsable entry, an empty list or too many values.
    """
    parts = [p for p in text.replace(";", ",").replace(" ", ",").split(",") if p.strip()]
    kind = "integers" if integer else "numbers"
    allowed = f"comma-separated {kind}" + (f", at most {max_count}" if max_count else "")
    if not parts:
        raise ConfigError(name, text, allowed)
    out: list[Any] = []
    for p in parts:
        try:
            v = float(p)
        except ValueError:
            raise ConfigError(name, p.strip(), allowed) from None
        if not math.isfinite(v):
            raise ConfigError(name, p.strip(), allowed)
        if integer:
            if v != int(v):
                raise ConfigError(name, p.strip(), allowed, int(round(v)))
            v = int(v)
        if v not in out:
            out.append(v)
    if max_count is not None and len(out) > max_count:
        raise ConfigError(name, len(out), allowed, max_count)
    return out


def format_number_list(values: Sequence[float]) -> str:
    return ", ".join(f"{v:g}" for v in values)
