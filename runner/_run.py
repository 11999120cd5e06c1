"""The experiment runner: config → cached results. Shared by the CLI and the app.

Imports flow one way: pages/CLI → runner → (cache, ntk_core). Nothing here knows
about Streamlit; progress is reported through a plain callback.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

import ntk_core as nc
from cache import ResultStore

# Bumped whenever the meaning of a stored value changes (on top of the store's own schema).
RESULT_VERSION = 3

# Sweep axes → how each value changes the base config.
GRID_PARAMS = ("width", "samples", "l1", "l2", "lr", "seed")
# Axes that keep array shapes fixed, so missing points train in ONE vmapped program.
_VMAPPABLE = ("l1", "l2", "lr", "seed")

# Stored checkpoints beyond this size keep only init, best and final epochs.
MAX_CHECKPOINT_BYTES = 256 * 2**20

Progress = Callable[[str, int, int], None]

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


def _libc():
    """glibc via ctypes, or None off glibc (loaded once)."""
    global _LIBC
    if _LIBC is None:
        try:
            import ctypes

            _LIBC = ctypes.CDLL("libc.so.6")
            _LIBC.malloc_trim  # noqa: B018 - raises AttributeError off glibc
        except (OSError, AttributeError):
            _LIBC = False
    return _LIBC or None


def _trim_heap() -> None:
    """Returns freed heap pages to the OS (glibc only; a no-op elsewhere).

    Training and spectra allocate and free hundreds of MB of host buffers; glibc keeps
    them mapped, so a long-lived server's RSS ratchets up (measured: a 9-width sweep left
    735 MB resident, 415 MB after malloc_trim). Hosted tiers kill a server over ~700 MB.
    """
    libc = _libc()
    if libc:
        libc.malloc_trim(0)


_LIBC = None


def _release_memory() -> None:
    """After a computation: drop JAX's in-memory executables (each new shape keeps its
    own; the persistent compilation cache reloads them from disk when needed) and return
    freed heap to the OS. Measured on a 9-width sweep: RSS 505 → ~300 MB."""
    import gc

    import jax

    jax.clear_caches()
    gc.collect()
    _trim_heap()

# glibc mallopt parameters (malloc.h): M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8


def tune_allocator() -> None:
    """Makes glibc hand freed memory back promptly (no-op off glibc).

    Large host buffers are mmapped (freed at once), the heap is trimmed on every free and
    at most two arenas serve the server's threads. Measured on the app's default flow:
    peak RSS 1047 → 861 MB, same timings.
    """
    libc = _libc()
    if libc:
        libc.mallopt(_M_MMAP_THRESHOLD, 65536)
        libc.mallopt(_M_TRIM_THRESHOLD, 0)
        libc.mallopt(_M_ARENA_MAX, 2)


def configure_jax_cache(directory: str | Path | None = None) -> None:
    """Turns on JAX's persistent compilation cache next to the results cache (and tunes
    the allocator for a long-lived process, see :func:`tune_allocator`).

    Compiling the training scan takes seconds; on a second process start the compiled
    executable is read from disk instead.
    """
    import jax

    tune_allocator()
    if directory is None:
        directory = Path(os.environ.get("NTK_CACHE_DIR") or _default_dir()) / "jax-compile"
    try:
        Path(directory).mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", str(directory))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
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
      best_epoch: epoch of lowest validation loss.
      stop_epoch: epoch a patience rule would have stopped at, or None.
      spectrum_method: "dense" or "matrix_free".
      data_source: "bundled" or "full"; notice: message for the user ("" if none).
      checkpoint_epochs: epochs whose params are stored (all, or init/best/final when large).
    """

    config: nc.ExperimentConfig
    status: str
    metrics: dict[str, np.ndarray]
    topk: np.ndarray
    trace: np.ndarray
    diverged_at: int | None
    best_epoch: int
    stop_epoch: int | None
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


def _key_config(config: nc.ExperimentConfig) -> dict[str, Any]:
    return {**config.to_dict(), "result_version": RESULT_VERSION}


def _to_value(r: RunResult) -> dict[str, Any]:
    v: dict[str, Any] = {f"m_{k}": np.asarray(a) for k, a in r.metrics.items()}
    v.update({f"p_{k}": np.asarray(a) for k, a in r.params.items()})
    v.update(topk=r.topk, trace=r.trace, checkpoint_epochs=r.checkpoint_epochs,
             diverged_at=-1 if r.diverged_at is None else int(r.diverged_at),
             best_epoch=int(r.best_epoch), stop_epoch=-1 if r.stop_epoch is None else int(r.stop_epoch),
             spectrum_method=r.spectrum_method, data_source=r.data_source, notice=r.notice)
    return v


def _from_value(config: nc.ExperimentConfig, v: dict[str, Any], status: str) -> RunResult:
    return RunResult(
        config=config, status=status,
        metrics={k[2:]: np.asarray(a) for k, a in v.items() if k.startswith("m_")},
        params={k[2:]: np.asarray(a) for k, a in v.items() if k.startswith("p_")},
        topk=np.asarray(v["topk"]), trace=np.asarray(v["trace"]),
        diverged_at=None if v["diverged_at"] < 0 else int(v["diverged_at"]),
        best_epoch=int(v["best_epoch"]), stop_epoch=None if v["stop_epoch"] < 0 else int(v["stop_epoch"]),
        spectrum_method=str(v["spectrum_method"]), data_source=str(v["data_source"]),
        notice=str(v["notice"]), checkpoint_epochs=np.asarray(v["checkpoint_epochs"]))


def _split_for(config: nc.ExperimentConfig) -> nc.Split:
    return nc.load_split(config.n_train, config.n_val, config.seed, config.dataset)


def _train_points(configs: Sequence[nc.ExperimentConfig], limits: nc.Limits,
                  progress: Progress | None) -> list[RunResult]:
    """Trains configs that differ only in (reg_strength, lr, seed) in one vmapped program,
    then computes each run's per-epoch spectra."""
    base = configs[0]
    # The data split depends on the seed; runs with different seeds need separate splits,
    # so group by seed and vmap within each group (λ and lr share the split).
    results: list[RunResult | None] = [None] * len(configs)
    by_seed: dict[int, list[int]] = {}
    for i, c in enumerate(configs):
        by_seed.setdefault(c.seed, []).append(i)
    done = 0
    for seed, idx in by_seed.items():
        split = _split_for(configs[idx[0]])
        if progress:
            progress("training", done, len(configs))
        tr = nc.train_grid(split.x_train, split.y_train, split.x_val, split.y_val,
                           width=base.width, reg_strengths=[configs[i].reg_strength for i in idx],
                           lrs=[configs[i].lr for i in idx], seeds=[seed] * len(idx),
                           parameterization=base.parameterization, reg=base.reg,
                           optimizer=base.optimizer, epochs=base.epochs, batch_size=base.batch_size)
        _count("trainings", len(idx))
        for j, i in enumerate(idx):
            c = configs[i]
            div = int(tr.diverged_at[j])
            epochs = np.arange(c.epochs + 1)
            valid = epochs < div if div >= 0 else np.ones(c.epochs + 1, bool)
            params = {k: v[j] for k, v in tr.params.items()}

            def spec_progress(d, t, _i=i):
                if progress:
                    progress(f"spectra {_i + 1}/{len(configs)}", d, t)

            cs = nc.checkpoint_spectra(split.x_train, params, parameterization=c.parameterization,
                                       top_k=c.top_k, dense_max=limits.max_dense_n, valid=valid,
                                       progress=spec_progress)
            _count("spectra")
            metrics = {k: getattr(tr, k)[j] for k in _METRICS}
            best, stop = nc.early_stopping(metrics["val_loss"], c.patience)
            # Diverged epochs hold frozen copies of the last good params: never store them
            # under their own epoch number.
            keep = epochs[valid]
            if sum(v.nbytes for v in params.values()) > MAX_CHECKPOINT_BYTES:
                keep = np.unique([0, best, int(keep[-1])])
            results[i] = RunResult(
                config=c, status="computed", metrics=metrics, topk=cs.topk, trace=cs.trace,
                diverged_at=div if div >= 0 else None, best_epoch=best,
                stop_epoch=stop if stop >= 0 else None, spectrum_method=cs.method,
                data_source=split.source, notice=split.notice, checkpoint_epochs=keep,
                params={k: np.ascontiguousarray(v[keep]) for k, v in params.items()})
            done += 1
    _release_memory()
    return [r for r in results if r is not None]


def run(config: nc.ExperimentConfig | dict, *, store: ResultStore | None = None,
        limits: nc.Limits | None = None, progress: Progress | None = None) -> RunResult:
    """Trains one config (or loads it from the store) with per-epoch top-k spectra.

    Returns:
      :class:`RunResult`; ``status`` says whether it came from the cache.

    Raises:
      ConfigError: for an invalid or over-cap config.
    """
    return run_configs([config], store=store, limits=limits, progress=progress)[0]


def run_configs(configs: Sequence[nc.ExperimentConfig | dict], *, store: ResultStore | None = None,
                limits: nc.Limits | None = None, progress: Progress | None = None) -> list[RunResult]:
    """Runs many configs; cached ones are loaded, missing ones computed (vmapped when they
    differ only in λ, lr or seed) and stored one entry per config.

    Concurrency: each missing config is computed under the store's per-key lock, so two
    processes asking for the same config compute it once.
    """
    limits = nc.Limits.from_env() if limits is None else limits
    cfgs = [nc.validate_config(c, limits) for c in configs]
    if len(cfgs) > limits.max_grid:
        raise nc.ConfigError("values", len(cfgs), f"at most {limits.max_grid} sweep points", limits.max_grid)
    out: list[RunResult | None] = [None] * len(cfgs)
    missing: list[int] = []
    for i, c in enumerate(cfgs):
        v = store.get("run", _key_config(c)) if store is not None and store.enabled else None
        if v is not None:
            out[i] = _from_value(c, v, "hit")
        else:
            missing.append(i)

    # Group missing points that can share one compiled, vmapped training program.
    groups: dict[tuple, list[int]] = {}
    for i in missing:
        c = cfgs[i]
        shape_key = dataclasses.replace(c, reg_strength=0.0, lr=1.0, seed=0)
        groups.setdefault(tuple(sorted(shape_key.to_dict().items())), []).append(i)

    for idx in groups.values():
        nc.check_memory(cfgs[idx[0]], limits, runs=len(idx))
        computed: dict[int, RunResult] = {}

        def compute_group() -> None:
            todo = [i for i in idx if i not in computed]
            for i, r in zip(todo, _train_points([cfgs[i] for i in todo], limits, progress)):
                computed[i] = r

        for i in idx:
            if store is None or not store.enabled:
                if i not in computed:
                    compute_group()
                r = computed[i]
                r.status = "uncached"
                out[i] = r
                continue

            def compute_one(i=i) -> dict[str, Any]:
                if i not in computed:
                    compute_group()
                return _to_value(computed[i])

            value, status = store.get_or_compute("run", _key_config(cfgs[i]), compute_one)
            out[i] = _from_value(cfgs[i], value, status)
    if progress:
        progress("done", len(cfgs), len(cfgs))
    return [r for r in out if r is not None]


def sweep_configs(base: nc.ExperimentConfig | dict, vary: str, values: Sequence[Any],
                  limits: nc.Limits | None = None) -> list[nc.ExperimentConfig]:
    """The configs of a one-axis sweep (validated).

    Args:
      vary: one of ``GRID_PARAMS``: width, samples (n_train), l1, l2 (set reg and its
        strength), lr, seed.
    """
    limits = nc.Limits.from_env() if limits is None else limits
    if vary not in GRID_PARAMS:
        raise nc.ConfigError("vary", vary, "one of " + ", ".join(GRID_PARAMS))
    if len(values) == 0:
        raise nc.ConfigError("values", list(values), "at least one value")
    if len(values) > limits.max_grid:
        raise nc.ConfigError("values", len(values), f"at most {limits.max_grid} sweep points",
                             limits.max_grid)
    base = nc.validate_config(base, limits)
    field = {"samples": "n_train", "l1": "reg_strength", "l2": "reg_strength"}.get(vary, vary)
    extra = {"reg": vary} if vary in ("l1", "l2") else {}
    out = []
    for v in values:
        try:
            out.append(nc.validate_config(base, limits, **{field: v}, **extra))
        except nc.ConfigError as exc:
            if exc.param == field and field != vary:
                raise nc.ConfigError(vary, exc.value, exc.allowed, exc.suggestion) from None
            raise
    return out


def run_sweep(base: nc.ExperimentConfig | dict, vary: str, values: Sequence[Any], *,
              store: ResultStore | None = None, limits: nc.Limits | None = None,
              progress: Progress | None = None) -> list[RunResult]:
    """One-axis sweep; the CLI's ``sweep`` and every app page use this.

    Returns:
      One :class:`RunResult` per value, in order.
    """
    limits = nc.Limits.from_env() if limits is None else limits
    return run_configs(sweep_configs(base, vary, values, limits), store=store, limits=limits,
                       progress=progress)


def spectrum_at(config: nc.ExperimentConfig | dict, epoch: int, *, store: ResultStore | None = None,
                limits: nc.Limits | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Whole spectrum of raw traced Θ at one stored checkpoint: dense eigvalsh when
    n ≤ max_dense_n, else SLQ (nodes/weights) plus exact top-k and trace.

    Returns:
      dict with method ("dense"/"slq"), eigenvalues (n,) or empty, nodes, weights,
      trace, topk (float64; raw Θ — divide by n for Θ/n), epoch, status.
    """
    limits = nc.Limits.from_env() if limits is None else limits
    r = run(config, store=store, limits=limits, progress=progress)
    c = r.config
    if epoch not in set(r.checkpoint_epochs.tolist()):
        raise nc.ConfigError("epoch", epoch, "stored checkpoint epochs "
                             + ", ".join(str(e) for e in r.checkpoint_epochs.tolist()),
                             int(r.checkpoint_epochs[np.argmin(np.abs(r.checkpoint_epochs - epoch))]))

    def compute() -> dict[str, Any]:
        split = _split_for(c)
        fs = nc.full_spectrum(r.checkpoint(epoch), split.x_train, parameterization=c.parameterization,
                              dense_max=limits.max_dense_n, top_k=c.top_k, seed=c.seed)
        _count("spectra")
        _release_memory()
        return {"method": fs.method, "eigenvalues": fs.eigenvalues, "nodes": fs.nodes,
                "weights": fs.weights, "trace": fs.trace, "topk": fs.topk}

    key = {**_key_config(c), "epoch": int(epoch), "dense_max": limits.max_dense_n}
    if store is None or not store.enabled:
        value, status = compute(), "uncached"
    else:
        value, status = store.get_or_compute("spectrum", key, compute)
    return {**value, "epoch": int(epoch), "status": status}


def analytic_reference(config: nc.ExperimentConfig | dict, *, store: ResultStore | None = None,
                       limits: nc.Limits | None = None) -> dict[str, Any]:
    """Top-k and trace of the analytic kernel (infinite width in NTK parameterization,
    width-w expectation at init in standard) on the config's training inputs.

    Returns:
      dict with topk (k,) and trace (float), raw traced Θ (not /n), status.
    """
    limits = nc.Limits.from_env() if limits is None else limits
    c = nc.validate_config(config, limits)
    if c.n_train > limits.max_dense_n:
        raise nc.ConfigError("n_train", c.n_train, f"at most {limits.max_dense_n} for the analytic "
                             "kernel (it is formed densely)", limits.max_dense_n)

    def compute() -> dict[str, Any]:
        split = _split_for(c)
        ntk, _ = nc.analytic_kernels(split.x_train, parameterization=c.parameterization, width=c.width)
        return {"topk": nc.top_k_eigs(ntk, min(c.top_k, c.n_train)), "trace": float(np.trace(ntk))}

    key = {"n_train": c.n_train, "n_val": c.n_val, "seed": c.seed, "dataset": c.dataset,
           "parameterization": c.parameterization, "top_k": c.top_k, "result_version": RESULT_VERSION,
           "width": c.width if c.parameterization == "standard" else None}
    if store is None or not store.enabled:
        value, status = compute(), "uncached"
    else:
        value, status = store.get_or_compute("analytic", key, compute)
    return {**value, "status": status}
