"""The experiment runner: config → cached results. Shared by the CLI and the app.

Imports flow one way: pages/CLI → runner → (cache, ntk_core). Nothing here knows
about Streamlit; progress is reported through a plain callback.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np

import ntk_core as nc
from cache import ResultStore
from runner._config import (DENSE_METHODS, ConfigError, ExperimentConfig, Limits, check_memory, estimate_memory_mb,
                            validate_config)
from runner._admission import ADMISSION
from runner._malloc import trim_heap
from runner._types import Progress, ProgressFn, ReferenceResult, SpectrumResult, Stage

# Bumped whenever the meaning of a stored value changes (on top of the store's own schema).
RESULT_VERSION = 9  # 9: deeper MLPs at n ≤ 2000 by the layer-wise kernel ("structured"); 8: the CNN's spectra by Jacobian contraction ("autodiff") at small n

# Sweep axes → how each value changes the base config.
GRID_PARAMS = ("width", "samples", "l1", "l2", "lr", "seed")
# Padding a width (or, full batch, a sample count) to a group's largest costs compute:
# a group is split until its padded cost is at most this multiple of the unpadded one.
PAD_COST_FACTOR = 3.0

# Networks without a closed-form NTK (deep MLPs, the CNN) get their per-epoch spectrum from
# the generic matrix-free operator, ~K = 10 vjp/jvp passes per product (bench/run.py
# --only ntk_vp): at most this many evenly spaced epochs (always init, the final epoch and
# the best-validation epoch) carry a top-k and trace; the others are NaN and charts
# draw only the computed epochs.
GENERIC_SPECTRUM_EPOCHS = 11

# Stored checkpoints beyond this size keep only init, best and final epochs.
MAX_CHECKPOINT_BYTES = 256 * 2**20

# Counts real trainings in this process (tests use it to prove a cache hit skipped work).
COUNTERS = {"trainings": 0, "spectra": 0}
_COUNTER_LOCK = threading.Lock()


def _count(name: str, k: int = 1) -> None:
    with _COUNTER_LOCK:
        COUNTERS[name] += k
    # An append-only audit log across processes (the concurrency tests count trainings
    # of a whole server with it; operators can watch it too).
    log = os.environ.get("NTK_COMPUTE_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"{name} {k} pid={os.getpid()}\n")


def _release_memory() -> None:
    """After a computation: drop JAX's in-memory executables (each new shape keeps its
    own; the persistent compilation cache reloads them from disk when needed) and return
    freed heap to the OS. Measured on a 9-width sweep: RSS 505 → ~300 MB."""
    import gc

    import jax

    jax.clear_caches()
    gc.collect()
    trim_heap()


_COMPILE_LOG_ON = False


def log_compiles() -> None:
    """With ``NTK_COMPILE_LOG`` set, appends one line per XLA compilation ("compile <seconds>
    <function>") to that file, from JAX's own compile events (the benchmarks count the
    programs a page compiles with it). Idempotent."""
    global _COMPILE_LOG_ON
    path = os.environ.get("NTK_COMPILE_LOG")
    if not path or _COMPILE_LOG_ON:
        return
    import jax

    def listener(event: str, seconds: float, **kw: Any) -> None:
        if event == "/jax/core/compile/backend_compile_duration":
            with open(path, "a", encoding="utf-8") as f:
                f.write(f"compile {seconds:.4f} {kw.get('fun_name', '')} pid={os.getpid()}\n")

    jax.monitoring.register_event_duration_secs_listener(listener)
    _COMPILE_LOG_ON = True


def configure_jax_cache(directory: str | Path | None = None) -> None:
    """Turns on JAX's persistent compilation cache next to the results cache.

    Compiling the training scan takes seconds; on a second process start (or after
    :func:`_release_memory` dropped the in-memory copy) the compiled executable is read
    from disk instead. Every program is persisted (minimum compile time 0): a program
    that is not written would be compiled again after each release.
    """
    import jax

    log_compiles()
    if directory is None:
        directory = Path(os.environ.get("NTK_CACHE_DIR") or _default_dir()) / "jax-compile"
    try:
        Path(directory).mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", str(directory))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    except OSError:
        pass  # read-only location: compile every time, still correct


def _default_dir() -> Path:
    from cache import default_cache_dir
    return default_cache_dir()


def open_store(directory: str | Path | None = None, *, enabled: bool = True) -> ResultStore:
    """Opens the results store (``NTK_CACHE_DIR`` or the per-user cache dir by default)."""
    return ResultStore(directory, enabled=enabled)


@dataclasses.dataclass
class RunResult:
    """Everything recorded for one training run. Arrays are NumPy.

    Eigenvalues are of the raw traced Θ (mean over the 10 logits, summed over
    parameters, NOT divided by n); divide by ``config.n_train`` for Θ/n.

    Attributes:
      config: the validated config.
      status: "hit" (from cache), "computed" or "uncached" (cache unusable).
      metrics: name → (E+1,) arrays: train_loss, objective, val_loss, val_acc, step_norm,
        rel_change, weight_norm (index = epoch, 0 = init).
      topk: (E+1, k) float64 descending eigenvalues per epoch (NaN after divergence).
      trace: (E+1,) float64 exact trace per epoch.
      diverged_at: first diverged epoch or None.
      best_epoch: epoch of lowest validation loss over the whole run.
      stop_epoch: epoch a patience rule would have stopped at, or None.
      restore_epoch: the epoch early stopping would restore: lowest validation loss up to
        and including ``stop_epoch`` (= best_epoch when training never stalled).
      lanczos_residual: (E+1,) max relative residual ‖Θv − λv‖/|λ| of each epoch's top-k
        solve (NaN where skipped). lanczos_converged: (E+1,) bool.
      spectrum_method: "dense" or "matrix_free" (closed form of the one-hidden MLP), or
        "ntk_vp" / "autodiff" / "structured" (every other network, as ``config.ntk_method``: the generic
        matrix-free vjp/jvp operator, or the CNN's kernel by blocked Jacobian contraction;
        top-k and trace at :func:`spectrum_epochs` only, NaN at the other epochs, except
        "structured": every epoch).
      data_source: "bundled" or "full"; notice: message for the user ("" if none).
      checkpoint_epochs: epochs whose params are stored (all, or init/best/final when large).
    """

    config: ExperimentConfig
    status: str
    metrics: dict[str, np.ndarray]
    topk: np.ndarray
    trace: np.ndarray
    diverged_at: int | None
    best_epoch: int
    stop_epoch: int | None
    restore_epoch: int
    lanczos_residual: np.ndarray
    lanczos_converged: np.ndarray
    spectrum_method: str
    data_source: str
    notice: str
    checkpoint_epochs: np.ndarray
    params: dict[str, np.ndarray] = dataclasses.field(repr=False, default_factory=dict)

    @property
    def lambda_max(self) -> np.ndarray:
        """(E+1,) largest eigenvalue of raw traced Θ per epoch."""
        return self.topk[:, 0]

    def checkpoint(self, epoch: int) -> dict[str, np.ndarray]:
        """Params at ``epoch`` (must be one of ``checkpoint_epochs``)."""
        hits = np.flatnonzero(self.checkpoint_epochs == epoch)
        if hits.size == 0:
            raise ValueError(f"epoch={epoch} has no stored checkpoint; stored epochs: "
                             f"{self.checkpoint_epochs.tolist()}")
        return {k: v[hits[0]] for k, v in self.params.items()}


_METRICS = ("train_loss", "objective", "val_loss", "val_acc", "step_norm", "rel_change", "weight_norm")


def _key_config(config: ExperimentConfig) -> dict[str, Any]:
    return {**config.to_dict(), "result_version": RESULT_VERSION}


def _to_value(r: RunResult) -> dict[str, Any]:
    v: dict[str, Any] = {f"m_{k}": np.asarray(a) for k, a in r.metrics.items()}
    v.update({f"p_{k}": np.asarray(a) for k, a in r.params.items()})
    v.update(topk=r.topk, trace=r.trace, checkpoint_epochs=r.checkpoint_epochs,
             diverged_at=-1 if r.diverged_at is None else int(r.diverged_at),
             best_epoch=int(r.best_epoch), stop_epoch=-1 if r.stop_epoch is None else int(r.stop_epoch),
             restore_epoch=int(r.restore_epoch), lanczos_residual=np.asarray(r.lanczos_residual, np.float64),
             lanczos_converged=np.asarray(r.lanczos_converged, bool),
             spectrum_method=r.spectrum_method, data_source=r.data_source, notice=r.notice)
    return v


def _from_value(config: ExperimentConfig, v: dict[str, Any], status: str) -> RunResult:
    return RunResult(
        config=config, status=status,
        metrics={k[2:]: np.asarray(a) for k, a in v.items() if k.startswith("m_")},
        params={k[2:]: np.asarray(a) for k, a in v.items() if k.startswith("p_")},
        topk=np.asarray(v["topk"]), trace=np.asarray(v["trace"]),
        diverged_at=None if v["diverged_at"] < 0 else int(v["diverged_at"]),
        best_epoch=int(v["best_epoch"]), stop_epoch=None if v["stop_epoch"] < 0 else int(v["stop_epoch"]),
        restore_epoch=int(v["restore_epoch"]), lanczos_residual=np.asarray(v["lanczos_residual"]),
        lanczos_converged=np.asarray(v["lanczos_converged"], bool),
        spectrum_method=str(v["spectrum_method"]), data_source=str(v["data_source"]),
        notice=str(v["notice"]), checkpoint_epochs=np.asarray(v["checkpoint_epochs"]))


def _admitted(configs: Sequence[ExperimentConfig], limits: Limits, progress: ProgressFn | None):
    """The process-wide admission (see runner._admission) for computing ``configs``: at
    most ``limits.max_concurrent`` computations at once, within ``limits.max_memory_mb``
    together; waiting callers see their place in the queue through ``progress``."""
    ADMISSION.configure(limits.max_concurrent, limits.max_memory_mb)
    big = dataclasses.replace(configs[0], width=max(c.width for c in configs),
                              n_train=max(c.n_train for c in configs))
    need = estimate_memory_mb(big, limits, runs=len(configs))
    on_wait = (lambda pos, total: progress(Progress(Stage.QUEUED, pos, total))) if progress else None
    return ADMISSION.admit(need, on_wait)


def _split_for(config: ExperimentConfig) -> nc.Split:
    split = nc.load_split(config.n_train, config.n_val, config.seed, config.dataset)
    if split.source != config.dataset:
        # Never compute (and so never store) a result under a key that names data it was
        # not computed on; _resolve_dataset() should have caught this before.
        raise RuntimeError(f"dataset {config.dataset!r} requested but {split.source!r} loaded: "
                           f"{split.notice}")
    return split


def _resolve_dataset(config: ExperimentConfig, limits: Limits) -> tuple[ExperimentConfig, str]:
    """The config actually computable and a notice: a request for the full set while the
    full set cannot be fetched becomes the same request on the bundled set (stored under
    the bundled key, never under the full one), or a ConfigError when it does not fit.
    Fashion-MNIST is never replaced by MNIST: when it cannot be fetched, a ConfigError."""
    if config.dataset == "fashion_mnist":
        try:
            _, _, _, notice = nc.load_pool("fashion_mnist")
        except nc.DataUnavailable as exc:
            raise ConfigError("dataset", "fashion_mnist", f"a dataset that can be loaded here: {exc}",
                              "bundled") from None
        return config, notice
    if config.dataset != "full":
        return config, ""
    _, _, source, notice = nc.load_pool("full")
    if source == "full":
        return config, notice
    try:
        return validate_config(config, limits, dataset="bundled"), notice
    except ConfigError as exc:
        raise ConfigError("dataset", "full", f"the bundled set only, as {notice}; with it "
                          f"{exc.param} must be {exc.allowed}", "bundled") from None


def _check(config: Any) -> ExperimentConfig:
    if not isinstance(config, ExperimentConfig):
        raise TypeError(f"expected a validated ExperimentConfig (runner.validate_config), "
                        f"got {type(config).__name__}")
    return config


def _fusable_key(c: ExperimentConfig) -> tuple:
    """Configs with equal keys train in one compiled program: they may differ in λ, lr,
    seed and width (zero-padded; the one-hidden MLP only), and in n when training is full
    batch (masked samples)."""
    shape = dataclasses.replace(c, reg_strength=0.0, lr=1.0, seed=0, width=0 if c.closed_form else c.width,
                                n_train=0 if c.batch_size == 0 else c.n_train,
                                top_k=0, patience=0)
    return tuple(sorted(shape.to_dict().items()))


def _chunks(idx: list[int], cfgs: Sequence[ExperimentConfig], limits: Limits) -> list[list[int]]:
    """Splits a fusable group into chunks whose padded compute (runs × largest width ×
    largest n) stays within PAD_COST_FACTOR × the unpadded one and whose estimated memory
    (every run at the chunk's largest width and n) fits the budget. Largest configs are
    split off first, so small ones share one program."""
    order = sorted(idx, key=lambda i: (cfgs[i].width * cfgs[i].n_train, i))

    def padded(ch):
        return len(ch) * max(cfgs[i].width for i in ch) * max(cfgs[i].n_train for i in ch)

    def fits(ch):
        big = dataclasses.replace(cfgs[ch[0]], width=max(cfgs[i].width for i in ch),
                                  n_train=max(cfgs[i].n_train for i in ch))
        return estimate_memory_mb(big, limits, runs=len(ch)) <= limits.max_memory_mb

    out: list[list[int]] = []
    rest = list(order)
    while rest:
        # The largest prefix (in size order) that is cheap enough and fits.
        k = len(rest)
        while k > 1 and (padded(rest[:k]) > PAD_COST_FACTOR * sum(cfgs[i].width * cfgs[i].n_train
                                                                  for i in rest[:k])
                         or not fits(rest[:k])):
            k -= 1
        out.append(rest[:k])
        rest = rest[k:]
    return out


def every_epoch(config: ExperimentConfig) -> bool:
    """True when every epoch's top-k and trace are computed: the closed form and the deeper
    MLPs' layer-wise kernel are cheap enough; ntk_vp and autodiff are not."""
    return config.ntk_method in ("closed_form", "structured")


def spectrum_epochs(epochs: int, best_epoch: int, all_epochs: bool) -> np.ndarray:
    """(E+1,) bool: the epochs whose top-k and trace are computed — all of them when
    ``all_epochs`` (:func:`every_epoch`), else :data:`GENERIC_SPECTRUM_EPOCHS` evenly spaced
    ones plus the best validation epoch."""
    if all_epochs or epochs + 1 <= GENERIC_SPECTRUM_EPOCHS:
        return np.ones(epochs + 1, bool)
    chosen = np.zeros(epochs + 1, bool)
    chosen[np.unique(np.round(np.linspace(0, epochs, GENERIC_SPECTRUM_EPOCHS)).astype(int))] = True
    chosen[best_epoch] = True
    return chosen


def apply_fn_of(config: ExperimentConfig):
    """The network's ``f(params, x)`` for the generic NTK, or None for the closed form."""
    if config.closed_form:
        return None
    return nc.Architecture(config.arch, config.width, config.depth, config.parameterization).apply


def _train_points(configs: Sequence[ExperimentConfig], limits: Limits,
                  progress: ProgressFn | None) -> list[RunResult]:
    """Trains fusable configs (see :func:`_fusable_key`) in ONE compiled program with
    ``nc.train_sweep``, then computes each run's per-epoch spectra (padded params with
    the run's true-width scales, so every width shares one kernel program per n)."""
    base = configs[0]
    if progress:
        progress(Progress(Stage.TRAINING, 0, len(configs)))
    splits = [_split_for(c) for c in configs]
    shared = len({(c.n_train, c.n_val, c.seed) for c in configs}) == 1
    data = [getattr(splits[0], a) if shared else [getattr(sp, a) for sp in splits]
            for a in ("x_train", "y_train", "x_val", "y_val")]
    tr = nc.train_sweep(*data, widths=[c.width for c in configs],
                        reg_strengths=[c.reg_strength for c in configs], lrs=[c.lr for c in configs],
                        seeds=[c.seed for c in configs], parameterization=base.parameterization,
                        reg=base.reg, optimizer=base.optimizer, epochs=base.epochs,
                        batch_size=base.batch_size, weight_decay=[c.weight_decay for c in configs],
                        arch=base.arch, depth=base.depth)
    _count("trainings", len(configs))
    results: list[RunResult] = []
    for j, c in enumerate(configs):
        div = int(tr.diverged_at[j])
        epochs = np.arange(c.epochs + 1)
        valid = epochs < div if div >= 0 else np.ones(c.epochs + 1, bool)

        def spec_progress(d, t, _j=j):
            if progress:
                progress(Progress(Stage.SPECTRA, d, t, run=_j, runs=len(configs)))

        params = tr.run_params(j)
        metrics = {k: getattr(tr, k)[j] for k in _METRICS}
        es = nc.early_stopping(metrics["val_loss"], c.patience)
        best, stop, restore = es.best_epoch, es.stop_epoch, es.restore_epoch
        if c.closed_form:
            # Kernels at the next power of two ≥ the true width (zero-padded units add
            # exactly nothing; the scales are the true width's): one kernel program per
            # bucket, and a width-1 run does not pay for the sweep's widest network.
            bucket = min(int(tr.params["W2"].shape[-2]), 1 << max(c.width - 1, 0).bit_length())
            padded = nc.unpad({k: v[j] for k, v in tr.params.items()}, bucket)
            cs = nc.checkpoint_spectra(splits[j].x_train, padded, parameterization=c.parameterization,
                                       top_k=c.top_k, dense_max=limits.max_dense_n, valid=valid,
                                       progress=spec_progress,
                                       scales=nc.layer_scales(c.width, c.parameterization))
        else:
            cs = nc.checkpoint_spectra(splits[j].x_train, params, parameterization=c.parameterization,
                                       top_k=c.top_k, valid=valid & spectrum_epochs(c.epochs, best, every_epoch(c)),
                                       progress=spec_progress, apply_fn=apply_fn_of(c),
                                       generic_method=c.ntk_method)
        _count("spectra")
        # Diverged epochs hold frozen copies of the last good params: never store them
        # under their own epoch number.
        keep = epochs[valid]
        if sum(v.nbytes for v in params.values()) > MAX_CHECKPOINT_BYTES:
            keep = np.unique([0, best, restore, int(keep[-1])])
        results.append(RunResult(
            config=c, status="computed", metrics=metrics, topk=cs.topk, trace=cs.trace,
            diverged_at=div if div >= 0 else None, best_epoch=best,
            stop_epoch=stop if stop >= 0 else None, restore_epoch=restore,
            lanczos_residual=cs.residual, lanczos_converged=cs.converged, spectrum_method=cs.method,
            data_source=splits[j].source, notice=splits[j].notice, checkpoint_epochs=keep,
            params={k: np.ascontiguousarray(v[keep]) for k, v in params.items()}))
    _release_memory()
    return results


def run(config: ExperimentConfig, limits: Limits, *, store: ResultStore | None = None,
        progress: ProgressFn | None = None) -> RunResult:
    """Trains one validated config (or loads it from the store) with per-epoch top-k spectra.

    Returns:
      :class:`RunResult`; ``status`` says whether it came from the cache.

    Raises:
      ConfigError: when the request does not fit the memory budget, or the full dataset
        is unavailable and the request does not fit the bundled one.
    """
    return run_configs([config], limits, store=store, progress=progress)[0]


def run_configs(configs: Sequence[ExperimentConfig], limits: Limits, *,
                store: ResultStore | None = None,
                progress: ProgressFn | None = None) -> list[RunResult]:
    """Runs many validated configs; cached ones are loaded, missing ones computed
    (vmapped when they differ only in λ, lr or seed) and stored one entry per config.

    Concurrency: each missing config is computed under the store's per-key lock, so two
    processes asking for the same config compute it once.
    """
    if len(configs) > limits.max_grid:
        raise ConfigError("values", len(configs), f"at most {limits.max_grid} sweep points",
                          limits.max_grid)
    resolved = [_resolve_dataset(_check(c), limits) for c in configs]
    cfgs = [c for c, _ in resolved]
    fallback_notes = [n if c.dataset != orig.dataset else "" for (c, n), orig in zip(resolved, configs)]
    out: list[RunResult | None] = [None] * len(cfgs)
    missing: list[int] = []
    for i, c in enumerate(cfgs):
        v = store.get("run", _key_config(c)) if store is not None and store.enabled else None
        if v is not None:
            out[i] = _from_value(c, v, "hit")
        else:
            missing.append(i)

    # Group missing points that can share one compiled training program.
    groups: dict[tuple, list[int]] = {}
    for i in missing:
        groups.setdefault(_fusable_key(cfgs[i]), []).append(i)
    chunks = [ch for idx in groups.values() for ch in _chunks(idx, cfgs, limits)]

    for idx in chunks:
        for i in idx:  # each alone must fit (the chunking keeps the group within budget)
            check_memory(cfgs[i], limits)
        computed: dict[int, RunResult] = {}

        def compute_group(idx=idx, computed=computed) -> None:
            todo = [i for i in idx if i not in computed]
            with _admitted([cfgs[i] for i in todo], limits, progress):
                for i, r in zip(todo, _train_points([cfgs[i] for i in todo], limits, progress)):
                    computed[i] = r

        for i in idx:
            if store is None or not store.enabled:
                if i not in computed:
                    compute_group()
                out[i] = dataclasses.replace(computed[i], status="uncached")
                continue

            def compute_one(i=i) -> dict[str, Any]:
                if i not in computed:
                    compute_group()
                return _to_value(computed[i])

            value, status = store.get_or_compute("run", _key_config(cfgs[i]), compute_one)
            out[i] = _from_value(cfgs[i], value, status)
    for i, note in enumerate(fallback_notes):
        if note and out[i] is not None:
            out[i] = dataclasses.replace(out[i], notice=note)
    if progress:
        progress(Progress(Stage.DONE, len(cfgs), len(cfgs)))
    return [r for r in out if r is not None]


# Sweep axis → the ExperimentConfig field it sets.
FIELD_OF_VARY = {"samples": "n_train", "l1": "reg_strength", "l2": "reg_strength"}


def sweep_configs(base: ExperimentConfig, vary: str, values: Sequence[Any],
                  limits: Limits) -> list[ExperimentConfig]:
    """The validated configs of a one-axis sweep (the sweep values are an entry point:
    each is validated here, with the swept axis's name in the message).

    Args:
      base: a validated config.
      vary: one of ``GRID_PARAMS``: width, samples (n_train), l1, l2 (set reg and its
        strength), lr, seed.
    """
    _check(base)
    if vary not in GRID_PARAMS:
        raise ConfigError("vary", vary, "one of " + ", ".join(GRID_PARAMS))
    if len(values) == 0:
        raise ConfigError("values", list(values), "at least one value")
    if len(values) > limits.max_grid:
        raise ConfigError("values", len(values), f"at most {limits.max_grid} sweep points",
                          limits.max_grid)
    field = FIELD_OF_VARY.get(vary, vary)
    extra = {"reg": vary} if vary in ("l1", "l2") else {}
    out = []
    for v in values:
        try:
            out.append(validate_config(base, limits, **{field: v}, **extra))
        except ConfigError as exc:
            if exc.param == field and field != vary:
                raise ConfigError(vary, exc.value, exc.allowed, exc.suggestion) from None
            raise
    return out


def run_sweep(base: ExperimentConfig, vary: str, values: Sequence[Any], limits: Limits, *,
              store: ResultStore | None = None, progress: ProgressFn | None = None) -> list[RunResult]:
    """One-axis sweep; the CLI's ``sweep`` and every app page use this.

    Returns:
      One :class:`RunResult` per value, in order.
    """
    return run_configs(sweep_configs(base, vary, values, limits), limits, store=store,
                       progress=progress)


def spectrum_at(config: ExperimentConfig, epoch: int, limits: Limits, *,
                store: ResultStore | None = None, progress: ProgressFn | None = None) -> SpectrumResult:
    """Whole spectrum of raw traced Θ at one stored checkpoint: dense eigvalsh when
    n ≤ max_dense_n, else SLQ (nodes/weights) plus exact top-k and trace.

    Returns:
      :class:`SpectrumResult` (raw Θ — divide by n for Θ/n).
    """
    r = run(config, limits, store=store, progress=progress)
    c = r.config
    if epoch not in set(r.checkpoint_epochs.tolist()):
        raise ConfigError("epoch", epoch, "stored checkpoint epochs "
                          + ", ".join(str(e) for e in r.checkpoint_epochs.tolist()),
                          int(r.checkpoint_epochs[np.argmin(np.abs(r.checkpoint_epochs - epoch))]))

    def compute() -> dict[str, Any]:
        with _admitted([c], limits, progress):
            return compute_spectrum()

    def compute_spectrum() -> dict[str, Any]:
        if progress:
            progress(Progress(Stage.SPECTRUM, 0, 1))
        split = _split_for(c)
        generic = {} if c.closed_form else {"apply_fn": apply_fn_of(c), "generic_method": c.ntk_method}
        # the dense methods form every checkpoint's kernel anyway (n ≤ 2000): dense here too
        dense_max = c.n_train if c.ntk_method in DENSE_METHODS else limits.max_dense_n
        fs = nc.full_spectrum(r.checkpoint(epoch), split.x_train, parameterization=c.parameterization,
                              dense_max=dense_max, top_k=c.top_k, seed=c.seed, **generic)
        _count("spectra")
        _release_memory()
        return {"method": fs.method, "eigenvalues": fs.eigenvalues, "nodes": fs.nodes,
                "weights": fs.weights, "trace": fs.trace, "topk": fs.topk, "floor": float(fs.floor),
                "below_floor": int(fs.below_floor), "kernel_dtype": fs.kernel_dtype,
                "residual": float(fs.residual), "converged": bool(fs.converged), "note": fs.note}

    key = {**_key_config(c), "epoch": int(epoch), "dense_max": limits.max_dense_n}
    if store is None or not store.enabled:
        value, status = compute(), "uncached"
    else:
        value, status = store.get_or_compute("spectrum", key, compute)
    return SpectrumResult(method=str(value["method"]), eigenvalues=np.asarray(value["eigenvalues"]),
                          nodes=np.asarray(value["nodes"]), weights=np.asarray(value["weights"]),
                          trace=float(value["trace"]), topk=np.asarray(value["topk"]),
                          floor=float(value["floor"]), below_floor=int(value["below_floor"]),
                          kernel_dtype=str(value["kernel_dtype"]), residual=float(value["residual"]),
                          converged=bool(value["converged"]), note=str(value["note"]),
                          epoch=int(epoch), status=status)


def analytic_reference(config: ExperimentConfig, limits: Limits, *,
                       store: ResultStore | None = None) -> ReferenceResult:
    """Top-k and trace of the analytic kernel (infinite width in NTK parameterization,
    width-w expectation at init in standard) on the config's training inputs.

    Returns:
      :class:`ReferenceResult`, raw traced Θ (not /n).
    """
    c, _ = _resolve_dataset(_check(config), limits)
    if c.arch != "mlp":
        raise ConfigError("arch", c.arch, "mlp: the analytic (arc-cosine) kernel is implemented "
                          "for ReLU MLPs only", "mlp")
    if c.n_train > limits.max_dense_n:
        raise ConfigError("n_train", c.n_train, f"at most {limits.max_dense_n} for the analytic "
                          "kernel (it is formed densely)", limits.max_dense_n)
    kind = "expected_at_init" if c.parameterization == "standard" else "infinite_width"

    def compute() -> dict[str, Any]:
        with _admitted([c], limits, None):
            return compute_reference()

    def compute_reference() -> dict[str, Any]:
        split = _split_for(c)
        ntk, _ = nc.analytic_kernels(split.x_train, parameterization=c.parameterization, width=c.width,
                                     depth=c.depth)
        return {"topk": nc.top_k_eigs(ntk, min(c.top_k, c.n_train)), "trace": float(np.trace(ntk))}

    key = {"n_train": c.n_train, "n_val": c.n_val, "seed": c.seed, "dataset": c.dataset,
           "parameterization": c.parameterization, "top_k": c.top_k, "result_version": RESULT_VERSION,
           "depth": c.depth,
           "width": c.width if c.parameterization == "standard" else None}
    if store is None or not store.enabled:
        value, status = compute(), "uncached"
    else:
        value, status = store.get_or_compute("analytic", key, compute)
    return ReferenceResult(kind=kind, topk=np.asarray(value["topk"]), trace=float(value["trace"]),
                           status=status)
