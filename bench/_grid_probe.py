"""Fresh-process probe: an uncached L2 grid through the runner, compile included.

Run by ``bench/run.py`` in its own process (no in-process JAX cache can help; the
persistent compilation cache is off; the results store is not used: ``store=None``).

    python bench/_grid_probe.py --mode vmapped|sequential [--n 2000] [--epochs 30]
        [--values 1e-4,1e-3,1e-2,1e-1] [--width 128] [--variant asis|jaxmv|nopart|jaxmv+nopart]
        [--blas-threads N]

``vmapped``: ONE ``runner.run_sweep(base, "l2", values, store=None)`` (the runner trains the
4 points in one vmapped program). ``sequential``: one ``runner.run`` per value (one compile
of the G=1 program, reused by the later calls).

The library is timed, not changed: thin wrappers record wall time spent in
train_grid / checkpoint_spectra and, inside the latter, in gram / ntk_diagonal /
traced_ntk_from_gram / top_k_eigs, plus JAX compile time per stage (jax.monitoring).

Variants (what-if measurements of proposed fixes, NOT the library as shipped):
  jaxmv   per-checkpoint Lanczos with the dense Θ product done by XLA on the JAX array
          instead of scipy/OpenBLAS (same ARPACK, same float32, same tolerance);
  nopart  jax_threefry_partitionable=False (cheaper threefry compile; changes the init
          random stream, so only a measurement of where compile time goes);
  --blas-threads N sets OPENBLAS_NUM_THREADS before NumPy loads.

Prints ONE JSON object on stdout; progress on stderr.
"""

from __future__ import annotations

import time

T_START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402


def log(msg: str) -> None:
    print(f"[grid {time.perf_counter() - T_START:7.2f}s] {msg}", file=sys.stderr, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=("vmapped", "sequential"), required=True)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--n-val", type=int, default=500)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--top-k", type=int, default=10)
    ap.add_argument("--values", default="1e-4,1e-3,1e-2,1e-1")
    ap.add_argument("--variant", default="asis")
    ap.add_argument("--blas-threads", type=int, default=0)
    args = ap.parse_args()
    values = [float(v) for v in args.values.split(",")]
    variant = set(args.variant.split("+")) - {"asis"}

    if args.blas_threads:
        os.environ["OPENBLAS_NUM_THREADS"] = str(args.blas_threads)
    if not os.environ.get("NTK_CACHE_DIR"):  # run.py passes a temporary one (and removes it)
        os.environ["NTK_CACHE_DIR"] = tempfile.mkdtemp(prefix="ntk-bench-")
    os.environ["JAX_ENABLE_COMPILATION_CACHE"] = "false"

    t = time.perf_counter()
    import jax

    jax.config.update("jax_enable_compilation_cache", False)
    if "nopart" in variant:
        jax.config.update("jax_threefry_partitionable", False)
    import jax.numpy as jnp
    import numpy as np

    import ntk_core as nc
    import runner
    from ntk_core._src import kernel_spectra as _ks
    import_s = time.perf_counter() - t
    log(f"imports {import_s:.2f}s (mode={args.mode}, variant={args.variant}, "
        f"blas_threads={args.blas_threads or 'default'})")

    # ---- instrumentation: wall time per stage, compile time per stage --------------------
    acc: dict[str, float] = {}
    counts: dict[str, int] = {}
    stage = ["other"]

    def add(key: str, dt: float, k: int = 1) -> None:
        acc[key] = acc.get(key, 0.0) + dt
        counts[key] = counts.get(key, 0) + k

    compile_events = {"/jax/core/compile/backend_compile_duration": "backend_compile",
                      "/jax/core/compile/jaxpr_trace_duration": "trace",
                      "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower"}

    def on_duration(event: str, duration: float, **_kw) -> None:
        name = compile_events.get(event)
        if name is not None:
            add(f"{stage[0]}.{name}", duration)

    jax.monitoring.register_event_duration_secs_listener(on_duration)

    def timed(key: str, fn, block: bool = False, set_stage: bool = False):
        def wrapper(*a, **kw):
            prev = stage[0]
            if set_stage:
                stage[0] = key
            t0 = time.perf_counter()
            try:
                r = fn(*a, **kw)
                if block:
                    r = jax.block_until_ready(r)
                return r
            finally:
                add(key, time.perf_counter() - t0)
                stage[0] = prev
        return wrapper

    nc.train_grid = timed("train_grid", nc.train_grid, set_stage=True)
    nc.checkpoint_spectra = timed("spectra", nc.checkpoint_spectra, set_stage=True)
    nc.load_split = timed("load_split", nc.load_split)
    # The results are consumed right away (float(...), np.asarray(...)), so blocking here
    # only moves the wait into the wrapper; it adds no work.
    import types

    from ntk_core._src import ntk as _ntk_mod
    from ntk_core._src import spectra as _spectra_mod
    # Shadow copies of the two modules as seen from kernel_spectra (the real modules are
    # left untouched), with timed entry points.
    _ks._ntk = types.SimpleNamespace(**vars(_ntk_mod))
    _ks._ntk.gram = timed("spectra.gram", _ntk_mod.gram, block=True)
    _ks._ntk.ntk_diagonal = timed("spectra.diag", _ntk_mod.ntk_diagonal, block=True)
    _ks._ntk.traced_ntk_from_gram = timed("spectra.kernel", _ntk_mod.traced_ntk_from_gram, block=True)
    _ks._ntk.matfree_state = timed("spectra.matfree_state", _ntk_mod.matfree_state, block=True)
    top_k = library_top_k = _spectra_mod.top_k_eigs

    if "jaxmv" in variant:
        import scipy.sparse.linalg as spla

        @jax.jit
        def _sym(a):
            return 0.5 * (a + a.T)

        @jax.jit
        def _mv(a, v):
            return jnp.matmul(a, v, precision=jax.lax.Precision.HIGHEST)

        def top_k_jax(operator, k, **kw):
            if isinstance(operator, np.ndarray) and kw.get("dtype") == np.float32:
                a = _sym(jnp.asarray(operator, jnp.float32))
                n = a.shape[0]
                operator = spla.LinearOperator(
                    (n, n), dtype=np.float32,
                    matvec=lambda v: np.asarray(_mv(a, jnp.asarray(np.ravel(v), jnp.float32))))
            return library_top_k(operator, k, **kw)

        top_k = top_k_jax

    _ks._spectra = types.SimpleNamespace(**vars(_spectra_mod))
    _ks._spectra.top_k_eigs = timed("spectra.topk", top_k)

    # ---- the experiment ----------------------------------------------------------------
    base = dict(width=args.width, n_train=args.n, n_val=args.n_val, epochs=args.epochs,
                lr=args.lr, top_k=args.top_k, reg="l2", batch_size=0, seed=0,
                parameterization="standard", optimizer="sgd")
    cpu0 = time.process_time()
    t = time.perf_counter()
    limits = runner.Limits.from_env()
    base = runner.validate_config(base, limits)
    if args.mode == "vmapped":
        results = runner.run_sweep(base, "l2", values, limits, store=None)
    else:
        results = [runner.run(runner.validate_config(base, limits, reg_strength=v), limits, store=None)
                   for v in values]
    run_s = time.perf_counter() - t
    run_cpu_s = time.process_time() - cpu0
    total_s = time.perf_counter() - T_START

    ckpts = sum(int(np.isfinite(r.topk[:, 0]).sum()) for r in results)
    out = {
        "mode": args.mode, "variant": args.variant, "blas_threads": args.blas_threads or None,
        "n": args.n, "n_val": args.n_val, "width": args.width, "epochs": args.epochs,
        "values": values, "lr": args.lr, "top_k": args.top_k,
        "total_s": total_s, "import_s": import_s, "run_s": run_s, "run_cpu_s": run_cpu_s,
        "checkpoints": ckpts,
        "spectrum_method": sorted({r.spectrum_method for r in results}),
        "statuses": sorted({r.status for r in results}),
        "diverged": [r.diverged_at for r in results],
        "topk": [r.topk.tolist() for r in results],
        "final_val_acc": [float(r.metrics["val_acc"][-1]) for r in results],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "times": {k: round(v, 4) for k, v in sorted(acc.items())},
        "calls": dict(sorted(counts.items())),
    }
    sp = acc.get("spectra", 0.0)
    out["spectra_s"] = sp
    out["spectra_s_per_checkpoint"] = sp / max(ckpts, 1)
    out["train_grid_s"] = acc.get("train_grid", 0.0)
    out["train_compile_s"] = sum(acc.get(f"train_grid.{k}", 0.0) for k in ("backend_compile", "trace", "lower"))
    out["spectra_compile_s"] = sum(acc.get(f"spectra.{k}", 0.0) for k in ("backend_compile", "trace", "lower"))
    out["other_s"] = run_s - sp - out["train_grid_s"]
    log(f"{args.mode}: total {total_s:.2f}s (run {run_s:.2f}s: train_grid {out['train_grid_s']:.2f}s "
        f"[compile {out['train_compile_s']:.2f}s], spectra {sp:.2f}s over {ckpts} checkpoints)")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
