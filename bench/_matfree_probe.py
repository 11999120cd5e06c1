"""Fresh-process probe: matrix-free top-k of the traced NTK at large n.

Run by ``bench/run.py`` in its own process so that the peak RSS it reports covers the
JAX import, the data build, the state and the Lanczos solve, and nothing else.

    python bench/_matfree_probe.py [--n 60000] [--width 128] [--k 10] [--matvec-reps 8]

Prints ONE JSON object on stdout; progress goes to stderr.

Data: the bundled 10k MNIST test images tiled n/10000 times (rounded up, then cut to n)
with seeded N(0, 0.01²) pixel noise, clipped to [0, 1], float32 (MNIST-shaped, distinct
rows). Network: standard parameterization, PRNGKey(0).
"""

from __future__ import annotations

import time

T_START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402


def log(msg: str) -> None:
    print(f"[matfree {time.perf_counter() - T_START:7.2f}s] {msg}", file=sys.stderr, flush=True)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=60_000)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--matvec-reps", type=int, default=8)
    ap.add_argument("--noise", type=float, default=0.01)
    args = ap.parse_args()
    out: dict = {"n": args.n, "width": args.width, "k": args.k}

    t = time.perf_counter()
    import jax
    import jax.numpy as jnp
    import numpy as np

    import ntk_core as nc
    out["import_s"] = time.perf_counter() - t
    out["rss_after_import_mb"] = rss_mb()
    log(f"imported jax {jax.__version__} in {out['import_s']:.2f}s, rss {out['rss_after_import_mb']:.0f} MB")

    # --- data: tile the bundled 10k set, perturb, clip (in place: one n×784 float32 buffer)
    t = time.perf_counter()
    x10k, _ = nc.load_bundled()
    reps = -(-args.n // x10k.shape[0])
    x = np.tile(x10k, (reps, 1))[: args.n]
    rng = np.random.default_rng(0)
    for lo in range(0, args.n, 10_000):  # chunked noise keeps the temporary at 10k rows
        hi = min(lo + 10_000, args.n)
        x[lo:hi] += np.float32(args.noise) * rng.standard_normal((hi - lo, x.shape[1]), dtype=np.float32)
    np.clip(x, 0.0, 1.0, out=x)
    xd = jnp.asarray(x)
    del x
    xd.block_until_ready()
    params = nc.init_params(jax.random.PRNGKey(0), args.width)
    jax.block_until_ready(params)
    out["data_build_s"] = time.perf_counter() - t
    out["rss_after_data_mb"] = rss_mb()
    out["peak_rss_after_data_mb"] = peak_rss_mb()
    log(f"data {xd.shape} built in {out['data_build_s']:.2f}s, rss {out['rss_after_data_mb']:.0f} MB")

    # --- state (activations + masks): first call includes compile, second is warm
    t = time.perf_counter()
    state = nc.matfree_state(params, xd)
    jax.block_until_ready(state)
    out["state_build_first_s"] = time.perf_counter() - t
    t = time.perf_counter()
    state = nc.matfree_state(params, xd)
    jax.block_until_ready(state)
    out["state_build_s"] = time.perf_counter() - t
    out["peak_rss_after_state_mb"] = peak_rss_mb()
    log(f"state: first {out['state_build_first_s']:.2f}s, warm {out['state_build_s']:.3f}s")

    # --- one matvec: compile, then timed repetitions
    n = args.n
    v = jnp.asarray(np.random.default_rng(1).standard_normal(n).astype(np.float32))
    t = time.perf_counter()
    nc.matfree_matvec(state, v).block_until_ready()
    out["matvec_first_call_s"] = time.perf_counter() - t
    times = []
    for _ in range(args.matvec_reps):
        t = time.perf_counter()
        nc.matfree_matvec(state, v).block_until_ready()
        times.append(time.perf_counter() - t)
    flops = 2 * 2 * n * 784 * args.width  # the two n×784×w GEMMs (Jᵀv on W1, then J·a)
    out["matvec_s_median"] = float(np.median(times))
    out["matvec_s_min"] = float(np.min(times))
    out["matvec_gflops"] = flops / out["matvec_s_median"] / 1e9
    out["matvec_gflops_best"] = flops / out["matvec_s_min"] / 1e9
    out["matvec_flops"] = flops
    out["peak_rss_after_matvec_mb"] = peak_rss_mb()
    log(f"matvec: median {out['matvec_s_median'] * 1e3:.1f} ms "
        f"({out['matvec_gflops']:.0f} GFLOP/s; best {out['matvec_gflops_best']:.0f})")

    # --- top-k: exactly the library path (float32 matvec callable → ARPACK, tol 1e-6)
    count = [0]
    mv_time = [0.0]

    per_call = []

    def matvec(vec):
        count[0] += 1
        t0 = time.perf_counter()
        r = nc.matfree_matvec(state, jnp.asarray(vec)).block_until_ready()
        per_call.append(time.perf_counter() - t0)
        mv_time[0] += per_call[-1]
        return r

    cpu0 = time.process_time()
    t = time.perf_counter()
    eigs = nc.top_k_eigs(matvec, args.k, n=n)
    out["top10_s"] = time.perf_counter() - t
    out["top10_cpu_s"] = time.process_time() - cpu0
    out["lanczos_matvecs"] = count[0]
    out["top10_time_in_matvec_s"] = mv_time[0]
    out["top10_time_outside_matvec_s"] = out["top10_s"] - mv_time[0]
    out["top10_matvec_s_median"] = float(np.median(per_call))
    out["top10_matvec_s_max"] = float(np.max(per_call))
    out["eigenvalues"] = [float(e) for e in eigs]
    out["peak_rss_after_top10_mb"] = peak_rss_mb()
    # Exact trace from the diagonal: a sanity check (Σλ_top ≤ trace).
    out["trace"] = float(jnp.sum(nc.ntk_diagonal(params, xd)))
    out["peak_rss_mb"] = peak_rss_mb()
    out["total_s"] = time.perf_counter() - T_START
    log(f"top-{args.k}: {out['top10_s']:.2f}s, {count[0]} matvecs, λ1={eigs[0]:.6g}, "
        f"peak rss {out['peak_rss_mb']:.0f} MB")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
