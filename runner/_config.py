"""Experiment configuration, resource limits and input validation.

This is the one place that knows the allowed range of every input. Each entry point
(the Python API, CLI flags, URL query parameters / sidebar widgets) validates once, here,
so a bad value gets the same message everywhere: it names the parameter, the allowed
range and, where one exists, the nearest allowed value. Widget bounds are read from
:func:`bounds`, never copied.

The numerics in ``ntk_core`` know nothing of this: they take plain, already-checked values.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import ntk_core as nc

REG_KINDS = ("none", "l1", "l2")
OPTIMIZERS = ("sgd", "adam")
PARAMETERIZATIONS = ("standard", "ntk")
DATASETS = ("bundled", "full", "fashion_mnist")
ARCHS = ("mlp", "cnn")

# Upper bounds that hold whatever the environment says: beyond them the model or the
# optimiser stops making sense, not just the machine.
HARD_MAX_WIDTH = 4096
MAX_DEPTH = 4            # hidden layers of the MLP (ntk_core.Architecture's range)
MAX_CNN_CHANNELS = 32    # the CNN's width is its channel count; its generic kernel is slow beyond that
HARD_MAX_LR = 100.0
HARD_MAX_REG = 100.0
HARD_MAX_WEIGHT_DECAY = 100.0
HARD_MAX_SEED = 2**31 - 1
MIN_N_TRAIN = 2
MIN_N_VAL = 10
MAX_N_VAL = 10_000
MAX_PATIENCE = 1_000


class ConfigError(ValueError):
    """A parameter is outside its allowed range or of the wrong type.

    Attributes:
      param: the parameter's name, as the user typed it.
      value: the offending value (as received).
      allowed: human-readable allowed range.
      suggestion: the nearest allowed value, or None when there is none.
    """

    def __init__(self, param: str, value: Any, allowed: str, suggestion: Any = None):
        self.param = param
        self.value = value
        self.allowed = allowed
        self.suggestion = suggestion
        msg = f"{param}={value!r} is not allowed; allowed: {allowed}"
        if suggestion is not None:
            msg += f" (nearest allowed value: {suggestion!r})"
        super().__init__(msg)


@dataclasses.dataclass(frozen=True)
class Limits:
    """Resource caps. Read from env vars by :meth:`from_env`.

    ``NTK_HOSTED=1`` (also implied on Streamlit Community Cloud, detected by its
    ``/mount/src`` checkout) selects conservative defaults for a ~700 MB hosted server;
    each cap can be overridden by ``NTK_MAX_N``, ``NTK_MAX_WIDTH``, ``NTK_MAX_EPOCHS``,
    ``NTK_MAX_TOPK``, ``NTK_MAX_DENSE_N``, ``NTK_MAX_GRID`` and ``NTK_MAX_MEMORY_MB``
    (working memory of one request, estimated before it starts; also the budget of
    everything the process computes at once) and ``NTK_MAX_CONCURRENT`` (computations
    running at once; the rest wait in a fair queue).
    """

    max_n: int = 60_000
    max_width: int = HARD_MAX_WIDTH
    max_epochs: int = 500
    max_topk: int = 100
    max_dense_n: int = 4_000
    max_grid: int = 16
    max_memory_mb: int = 6_000
    max_concurrent: int = 1
    is_hosted: bool = False  # hosted: visitors see no exception details

    @classmethod
    def hosted(cls) -> "Limits":
        return cls(max_n=5_000, max_width=1_024, max_epochs=100, max_topk=30,
                   max_dense_n=2_000, max_grid=8, max_memory_mb=350, is_hosted=True)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Limits":
        env = os.environ if env is None else env
        flag = env.get("NTK_HOSTED", "").strip().lower()
        if flag not in _TRUE + _FALSE + ("",):
            raise ConfigError("NTK_HOSTED", env["NTK_HOSTED"], "1/true/yes/on, 0/false/no/off, "
                              "or unset (auto-detect Streamlit Community Cloud)")
        hosted = flag in _TRUE or (flag == "" and _on_community_cloud())
        base = cls.hosted() if hosted else cls()
        updates = {}
        for field, var in (("max_n", "NTK_MAX_N"), ("max_width", "NTK_MAX_WIDTH"),
                           ("max_epochs", "NTK_MAX_EPOCHS"), ("max_topk", "NTK_MAX_TOPK"),
                           ("max_dense_n", "NTK_MAX_DENSE_N"), ("max_grid", "NTK_MAX_GRID"),
                           ("max_memory_mb", "NTK_MAX_MEMORY_MB"),
                           ("max_concurrent", "NTK_MAX_CONCURRENT")):
            if var in env and env[var].strip():
                updates[field] = _parse_int(var, env[var], 2 if field == "max_n" else 1, 10**9)
        limits = dataclasses.replace(base, **updates)
        if limits.max_width > HARD_MAX_WIDTH:
            limits = dataclasses.replace(limits, max_width=HARD_MAX_WIDTH)
        return limits


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _on_community_cloud() -> bool:
    return Path(__file__).resolve().as_posix().startswith("/mount/src/")


class Network(NamedTuple):
    """The network and data a protocol page (Findings, the theory pages) runs its grids on:
    the sidebar's choice, everything else is the protocol's. Defaults: the study's network."""

    arch: str = "mlp"
    depth: int = 1
    dataset: str = "bundled"

    @property
    def closed_form(self) -> bool:
        """True for the study's one-hidden MLP, whose NTK has a closed form."""
        return self.arch == "mlp" and self.depth == 1

    @property
    def label(self) -> str:
        """"MLP 1 hidden layer", "MLP 3 hidden layers" or "CNN", with the dataset."""
        net = "CNN" if self.arch == "cnn" else (
            f"MLP, {self.depth} hidden layer{'s' if self.depth > 1 else ''}")
        return f"{net} on {DATASET_LABELS[self.dataset]}"


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """One training run and its spectra. All fields are validated by :func:`validate_config`.

    Attributes:
      arch: "mlp" (ReLU MLP of ``depth`` hidden layers of ``width`` units) or "cnn" (the
        small CNN of ``ntk_core.Architecture``: two 3×3 conv layers of ``width`` channels,
        1..64, then a dense readout).
      depth: hidden layers of the MLP, 1..4 (1 = the study's one-hidden-layer MLP, whose NTK
        has the closed form); always 1 for the CNN (one cache key per network).
      width: hidden units of every hidden layer of the MLP, 1..4096; channels of the CNN.
      n_train: training samples n (class-stratified subsample).
      n_val: validation samples (disjoint from training).
      reg: "none", "l1" (λ‖W‖₁) or "l2" (λ‖W‖²); weights only, biases are not penalised.
      reg_strength: λ ≥ 0 (ignored when reg == "none", and then normalised to 0).
      weight_decay: decoupled weight decay wd in [0, 100] on W1 and W2 (biases are not
        decayed), independent of ``reg`` and applied as a step rule, not a loss term, with
        optax.adamw's learning-rate-coupled convention: each step also does θ ← θ − η·wd·θ
        (SGD + wd; Adam becomes AdamW, Loshchilov & Hutter 2019). With SGD, wd = 2λ is
        exactly L2 with strength λ (its gradient is 2λ·w); with Adam it is not. 0 = off.
      lr: learning rate.
      epochs: passes over the training set.
      optimizer: "sgd" or "adam".
      batch_size: minibatch size; 0 means full batch.
      seed: seeds the data split, the init and the minibatch order.
      parameterization: "standard" (PyTorch-style) or "ntk".
      top_k: number of top eigenvalues tracked per epoch.
      patience: early-stopping patience in epochs (reported, never truncates training).
      dataset: "bundled" (10k MNIST test set shipped with the repo), "full" (70k MNIST,
        downloaded) or "fashion_mnist" (70k Fashion-MNIST, downloaded; never replaced by MNIST).
    """

    arch: str = "mlp"
    depth: int = 1
    width: int = 128
    n_train: int = 1000
    n_val: int = 500
    reg: str = "none"
    reg_strength: float = 0.0
    weight_decay: float = 0.0
    lr: float = 0.1
    epochs: int = 30
    optimizer: str = "sgd"
    batch_size: int = 0
    seed: int = 0
    parameterization: str = "standard"
    top_k: int = 10
    patience: int = 5
    dataset: str = "bundled"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "ExperimentConfig":
        return dataclasses.replace(self, **changes)

    @property
    def full_batch(self) -> bool:
        return self.batch_size == 0 or self.batch_size >= self.n_train

    @property
    def closed_form(self) -> bool:
        """True for the one-hidden-layer MLP: its NTK has a closed form; every other
        network's kernel comes from the generic paths (see :attr:`ntk_method`)."""
        return self.network.closed_form

    @property
    def ntk_method(self) -> str:
        """How this network's empirical NTK is computed: "closed_form" (1-hidden MLP),
        "structured" (the deeper MLPs at n ≤ STRUCTURED_MAX_N: their dense kernel
        layer-wise, ``ntk_core.mlp_traced_ntk``), "autodiff" (the CNN while its blocked
        Jacobian contraction is cheap, see
        :func:`uses_jacobian`) or "ntk_vp" (the generic matrix-free vjp/jvp operator)."""
        if self.closed_form:
            return "closed_form"
        if self.arch == "mlp" and self.n_train <= STRUCTURED_MAX_N:
            return "structured"
        return "autodiff" if uses_jacobian(self.arch, self.width, self.depth, self.n_train) else "ntk_vp"

    @property
    def network(self) -> Network:
        """The architecture and dataset alone (what the protocol pages take from the sidebar)."""
        return Network(self.arch, 1 if self.arch == "cnn" else self.depth, self.dataset)

    @property
    def arch_label(self) -> str:
        """"MLP 1×128", "MLP 3×128" (hidden layers × width) or "CNN 8 ch"."""
        if self.arch == "cnn":
            return f"CNN {self.width} ch"
        return f"MLP {self.depth}×{self.width}"

    @property
    def dataset_label(self) -> str:
        return DATASET_LABELS[self.dataset]

    @property
    def optimizer_label(self) -> str:
        """"SGD", "Adam", or "AdamW" (Adam with decoupled weight decay)."""
        if self.optimizer == "adam":
            return "AdamW" if self.weight_decay > 0 else "Adam"
        return self.optimizer.upper()

    @property
    def decay_label(self) -> str:
        """"decoupled weight decay wd=…", or "" when there is none."""
        return f"decoupled weight decay wd={self.weight_decay:g}" if self.weight_decay > 0 else ""

    @property
    def regularizer_label(self) -> str:
        """Every regulariser in force, named so the two kinds cannot be confused:
        "no regularization", "L2 λ=0.001 in the loss", "decoupled weight decay wd=0.01",
        or both joined by " + ". The one label every chart and caption uses."""
        parts = []
        if self.reg != "none":
            parts.append(f"{self.reg.upper()} λ={self.reg_strength:g} in the loss")
        if self.weight_decay > 0:
            parts.append(self.decay_label)
        return " + ".join(parts) if parts else "no regularization"


FIELDS = tuple(f.name for f in dataclasses.fields(ExperimentConfig))

# Pool sizes per dataset (training + validation must fit inside).
POOL_SIZE = {"bundled": 10_000, "full": 70_000, "fashion_mnist": 70_000}
DATASET_LABELS = {"bundled": "MNIST 10k (bundled)", "full": "MNIST 70k", "fashion_mnist": "Fashion-MNIST 70k"}


class Bounds(NamedTuple):
    """Inclusive (lo, hi) of every numeric field under some limits: the single source of
    truth for validation AND for the sidebar widgets' bounds. ``lr``'s lower bound is
    open (lr > 0)."""

    width: tuple[int, int]
    depth: tuple[int, int]
    n_train: tuple[int, int]
    n_val: tuple[int, int]
    reg_strength: tuple[float, float]
    weight_decay: tuple[float, float]
    lr: tuple[float, float]
    epochs: tuple[int, int]
    batch_size: tuple[int, int]
    seed: tuple[int, int]
    top_k: tuple[int, int]
    patience: tuple[int, int]


def bounds(limits: Limits, dataset: str = "bundled", n_val: int | None = None,
           n_train: int | None = None, arch: str = "mlp") -> Bounds:
    """Allowed ranges given the limits and, for the dependent fields, the dataset's pool,
    n_val (training + validation must fit in the pool) and n_train (batch, top-k ≤ n).

    With n_val/n_train omitted, the default n_val and the largest allowed n_train are
    assumed (the widest range a single value can take on its own).
    """
    pool = POOL_SIZE[dataset]
    n_val = ExperimentConfig.n_val if n_val is None else n_val
    max_n = max(min(limits.max_n, pool - n_val), MIN_N_TRAIN)
    n = max_n if n_train is None else n_train
    max_width = min(limits.max_width, MAX_CNN_CHANNELS) if arch == "cnn" else limits.max_width
    return Bounds(width=(1, max_width), depth=(1, MAX_DEPTH), n_train=(MIN_N_TRAIN, max_n),
                  n_val=(MIN_N_VAL, min(MAX_N_VAL, pool - MIN_N_TRAIN)),
                  reg_strength=(0.0, HARD_MAX_REG), weight_decay=(0.0, HARD_MAX_WEIGHT_DECAY),
                  lr=(0.0, HARD_MAX_LR),
                  epochs=(1, limits.max_epochs), batch_size=(0, n), seed=(0, HARD_MAX_SEED),
                  top_k=(1, min(limits.max_topk, n)), patience=(1, MAX_PATIENCE))


def _parse_int(name: str, raw: Any, lo: int, hi: int) -> int:
    allowed = f"integer in [{lo}, {hi}]"
    if isinstance(raw, bool):
        raise ConfigError(name, raw, allowed)
    if isinstance(raw, str):
        text = raw.strip()
        try:
            value = int(text)
        except ValueError:
            try:
                as_float = float(text)
            except ValueError:
                raise ConfigError(name, raw, allowed) from None
            if not math.isfinite(as_float) or as_float != int(as_float):
                raise ConfigError(name, raw, allowed, _clip_int(as_float, lo, hi))
            value = int(as_float)
    elif isinstance(raw, int):
        value = raw
    elif isinstance(raw, float):
        if not math.isfinite(raw) or raw != int(raw):
            raise ConfigError(name, raw, allowed, _clip_int(raw, lo, hi))
        value = int(raw)
    else:
        # numpy integers are fine; anything else is a type error.
        try:
            import numpy as np
            if isinstance(raw, np.integer):
                value = int(raw)
            else:
                raise ConfigError(name, raw, allowed)
        except ImportError:  # pragma: no cover - numpy is a hard dependency
            raise ConfigError(name, raw, allowed) from None
    if not lo <= value <= hi:
        raise ConfigError(name, raw, allowed, min(max(value, lo), hi))
    return value


def _clip_int(x: float, lo: int, hi: int) -> int | None:
    if not math.isfinite(x):
        return hi if x > 0 else lo if x < 0 else None
    return int(min(max(round(x), lo), hi))


def _parse_float(name: str, raw: Any, lo: float, hi: float, *, lo_open: bool = False) -> float:
    allowed = f"number in {'(' if lo_open else '['}{lo:g}, {hi:g}]"
    if isinstance(raw, bool):
        raise ConfigError(name, raw, allowed)
    if isinstance(raw, str):
        try:
            value = float(raw.strip())
        except (ValueError, OverflowError):
            raise ConfigError(name, raw, allowed) from None
    else:
        try:
            value = float(raw)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(name, raw, allowed) from None
    if not math.isfinite(value):
        raise ConfigError(name, raw, allowed, None if math.isnan(value) else (hi if value > 0 else lo))
    too_low = value <= lo if lo_open else value < lo
    if too_low or value > hi:
        nearest = hi if value > hi else (lo if not lo_open else None)
        raise ConfigError(name, raw, allowed, nearest)
    return value


def _parse_choice(name: str, raw: Any, choices: tuple[str, ...]) -> str:
    allowed = "one of " + ", ".join(choices)
    if not isinstance(raw, str) or raw.strip().lower() not in choices:
        raise ConfigError(name, raw, allowed)
    return raw.strip().lower()


def validate_config(config: ExperimentConfig | Mapping[str, Any] | None = None,
                    limits: Limits | None = None, **overrides: Any) -> ExperimentConfig:
    """Validates and normalises a configuration.

    Accepts an :class:`ExperimentConfig`, a mapping (values may be strings, as from a
    URL or a command line) or keyword overrides. Unknown keys are rejected.

    Returns:
      A new, validated :class:`ExperimentConfig`.

    Raises:
      ConfigError: naming the first bad parameter, its allowed range and the nearest
        allowed value.
    """
    limits = Limits.from_env() if limits is None else limits
    if config is None:
        raw: dict[str, Any] = {}
    elif isinstance(config, ExperimentConfig):
        raw = config.to_dict()
    elif isinstance(config, Mapping):
        raw = dict(config)
    else:
        raise ConfigError("config", config, "an ExperimentConfig or a mapping of its fields")
    raw.update(overrides)
    try:
        cfg = _parse_fields(raw, limits)
    except ConfigError as exc:
        # A range suggestion must itself be acceptable: shrink it to what fits in memory.
        if exc.param in _MEMORY_FIELDS and isinstance(exc.suggestion, int):
            try:
                fixed = _parse_fields({**raw, exc.param: exc.suggestion}, limits)
            except ConfigError:
                raise exc from None
            fit = _largest_fitting(fixed, exc.param, limits, 1)
            if fit is not None and fit < exc.suggestion:
                raise ConfigError(exc.param, exc.value, exc.allowed, fit) from None
        raise
    check_memory(cfg, limits)
    return cfg


_MEMORY_FIELDS = ("width", "epochs", "n_train")


def validate_network(raw: dict[str, Any], limits: Limits) -> Network:
    """The network fields (arch, depth, dataset) of ``raw``, defaults for the missing ones,
    parsed and range-checked — the one check of these three inputs (validate_config uses it).

    Raises:
      ConfigError: naming the field and the allowed values.
    """
    d = {**Network()._asdict(), **{k: v for k, v in raw.items() if k in Network._fields}}
    dataset = _parse_choice("dataset", d["dataset"], DATASETS)
    arch = _parse_choice("arch", d["arch"], ARCHS)
    depth = _parse_int("depth", d["depth"], *bounds(limits).depth)
    # The CNN has one layout: one cache key whatever depth was passed.
    return Network(arch, 1 if arch == "cnn" else depth, dataset)


def _parse_fields(raw: dict[str, Any], limits: Limits) -> ExperimentConfig:
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise ConfigError(unknown[0], raw[unknown[0]], "known parameters: " + ", ".join(FIELDS))
    d = ExperimentConfig().to_dict()
    d.update(raw)

    out: dict[str, Any] = validate_network(d, limits)._asdict()
    out["width"] = _parse_int("width", d["width"], *bounds(limits, arch=out["arch"]).width)
    out["n_val"] = _parse_int("n_val", d["n_val"], *bounds(limits, out["dataset"]).n_val)
    out["n_train"] = _parse_int("n_train", d["n_train"],
                                *bounds(limits, out["dataset"], out["n_val"]).n_train)
    b = bounds(limits, out["dataset"], out["n_val"], out["n_train"])
    out["reg"] = _parse_choice("reg", d["reg"], REG_KINDS)
    out["reg_strength"] = _parse_float("reg_strength", d["reg_strength"], *b.reg_strength)
    if out["reg"] == "none":
        out["reg_strength"] = 0.0  # one cache entry for "no regularisation"
    # + 0.0: -0.0 and 0.0 are one setting (and one cache key).
    out["weight_decay"] = _parse_float("weight_decay", d["weight_decay"], *b.weight_decay) + 0.0
    out["lr"] = _parse_float("lr", d["lr"], *b.lr, lo_open=True)
    out["epochs"] = _parse_int("epochs", d["epochs"], *b.epochs)
    out["optimizer"] = _parse_choice("optimizer", d["optimizer"], OPTIMIZERS)
    out["batch_size"] = _parse_int("batch_size", d["batch_size"], *b.batch_size)
    if out["batch_size"] >= out["n_train"]:
        out["batch_size"] = 0  # full batch, whatever it was spelled as
    out["seed"] = _parse_int("seed", d["seed"], *b.seed)
    out["parameterization"] = _parse_choice("parameterization", d["parameterization"],
                                            PARAMETERIZATIONS)
    out["top_k"] = _parse_int("top_k", d["top_k"], *b.top_k)
    out["patience"] = _parse_int("patience", d["patience"], *b.patience)
    return ExperimentConfig(**out)


def estimate_memory_mb(config: ExperimentConfig, limits: Limits, runs: int = 1) -> float:
    """Rough peak working memory of training ``runs`` vmapped configs plus their spectra.

    Dominated by the per-epoch checkpoints (kept on device and copied to the host), the
    data, and either the dense n×n kernel (+ Gram matrix) or the matrix-free state.

    Returns:
      Megabytes (float).
    """
    w, n, e = config.width, config.n_train, config.epochs
    n_params = num_params(config.arch, w, config.depth)
    ckpt = 2 * runs * (e + 1) * n_params * 4                 # device result + host copy
    opt = runs * 4 * n_params * 4                            # params, grads, Adam moments
    data = 2 * (n + config.n_val) * 784 * 4
    rows = max(n if config.batch_size == 0 else config.batch_size, config.n_val)
    acts = runs * 4 * rows * activations_per_sample(config.arch, w, config.depth) * 4
    if config.closed_form:
        kernel = 4 * n * n * 4 if n <= limits.max_dense_n else 4 * n * w * 4
    else:
        # ntk_vp: chunked vjp/jvp intermediates (ntk_core's 2²⁴-float budget), 10 + 1
        # parameter-space vectors, the float64 operator vectors, and the dense kernel of
        # the whole-spectrum page when n ≤ max_dense_n (of every checkpoint for "autodiff",
        # whose two Jacobian blocks fit the same 2²⁴ floats).
        kernel = (2**24 + 11 * n_params + 40 * n) * 4
        dense = n <= limits.max_dense_n or config.ntk_method in DENSE_METHODS
        kernel += 2 * n * n * 8 if dense else 0
    return (ckpt + opt + data + acts + kernel) / 2**20


# The CNN's forward pass costs far more than its parameter count (each filter is applied
# at 784 positions), so a per-sample Jacobian (one backward pass per logit) is cheap next
# to the ~45 products × 2·10 passes of an ARPACK solve on the matrix-free operator:
# measured at n = 200, 8 channels, 1.6 s to form the kernel vs 25 s for the top-10.
# ntk_core.jacobian_dense works in blocks of b samples (two blocks' Jacobians in ntk_core's
# 2²⁴-float budget, ntk_core.jacobian_samples_per_block) and recomputes (m + 1)/2 blocks
# per block for m blocks: up to
# JACOBIAN_MAX_BLOCKS that stays several times cheaper than ARPACK. For the MLPs the
# matrix-free path is faster (n = 200, 3×128: 6.4 s Jacobian vs 1.5 s top-10). The n×n
# kernel is capped at the hosted dense limit so the memory estimate's dense term covers it.
JACOBIAN_MAX_BLOCKS = 32
JACOBIAN_MAX_N = 2_000
# The deeper MLPs' dense kernel layer-wise (backprop signals of the 10 logits, no
# Jacobian): measured at n = 400, 2×64, 0.05 s per checkpoint against 1.5 s for the
# ntk_vp top-10 (BENCHMARKS.md). Same n cap as the Jacobian, for the same memory reason.
STRUCTURED_MAX_N = JACOBIAN_MAX_N
DENSE_METHODS = ("autodiff", "structured")   # every checkpoint's kernel formed n×n


def uses_jacobian(arch: str, width: int, depth: int, n: int) -> bool:
    """True when the generic NTK of this network on n samples is formed densely by blocked
    Jacobian contraction (method "autodiff") instead of the matrix-free ntk_vp operator."""
    if arch != "cnn" or n > JACOBIAN_MAX_N:
        return False
    block = nc.jacobian_samples_per_block(num_params(arch, width, depth), 10)
    return -(-n // block) <= JACOBIAN_MAX_BLOCKS


def num_params(arch: str, width: int, depth: int = 1) -> int:
    """Trainable parameters of a network (the same count as ``ntk_core.Architecture``)."""
    if arch == "cnn":
        c = width
        return 10 * c + (9 * c + 1) * c + (196 * c + 1) * 10
    return (784 + 1) * width + (depth - 1) * (width + 1) * width + (width + 1) * 10


def activations_per_sample(arch: str, width: int, depth: int = 1) -> int:
    """Floats one sample's forward pass keeps for the backward pass (order of magnitude):
    the hidden activations, and for the CNN its im2col patches too."""
    if arch == "cnn":
        return (28 * 28 + 14 * 14) * width * 2 + 28 * 28 * 9 + 14 * 14 * 9 * width
    return depth * width


def _largest_fitting(config: ExperimentConfig, name: str, limits: Limits, runs: int) -> int | None:
    """Largest value of ``name`` (≤ its current value) whose estimate fits, by bisection."""
    lo, hi = (2 if name == "n_train" else 1), getattr(config, name)
    best = None
    while lo <= hi:
        mid = (lo + hi) // 2
        changes = {name: mid}
        if name == "n_train":  # keep the config self-consistent while shrinking n
            changes.update(top_k=min(config.top_k, mid),
                           batch_size=0 if config.batch_size >= mid else config.batch_size)
        if estimate_memory_mb(dataclasses.replace(config, **changes), limits, runs) <= limits.max_memory_mb:
            best, lo = mid, mid + 1
        else:
            hi = mid - 1
    return best


def check_memory(config: ExperimentConfig, limits: Limits, runs: int = 1) -> None:
    """Raises ConfigError when a request would exceed ``limits.max_memory_mb``.

    The error names the parameter that dominates the estimate and suggests the largest
    value of it that fits.
    """
    need = estimate_memory_mb(config, limits, runs)
    if need <= limits.max_memory_mb:
        return
    for name in _MEMORY_FIELDS:
        value, lo = getattr(config, name), (2 if name == "n_train" else 1)
        best = _largest_fitting(config, name, limits, runs)
        if best is not None and best >= max(lo, value // 4):
            raise ConfigError(name, value, f"a request needing at most {limits.max_memory_mb} MB "
                              f"(this one needs ~{need:.0f} MB for {runs} run(s))", best)
    raise ConfigError("width", config.width, f"a request needing at most {limits.max_memory_mb} MB "
                      f"(this one needs ~{need:.0f} MB for {runs} run(s)); reduce width, epochs or n_train")
