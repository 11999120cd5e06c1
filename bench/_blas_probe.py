"""Fresh-process probe: what a process-wide OPENBLAS_NUM_THREADS=1 would cost the dense paths.

    OPENBLAS_NUM_THREADS=1 python bench/_blas_probe.py [--n 4000]

Times ``eigvalsh_desc`` and ``top_k_eigs`` (float64 and float32) on the dense traced Θ
(bundled MNIST, width 128) — the LAPACK/BLAS-3 work that does use both cores — so the
gain of single-threaded BLAS for ARPACK can be weighed against it. ONE JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4000)
    args = ap.parse_args()
    import jax
    import jax.numpy as jnp
    import numpy as np

    import ntk_core as nc

    x, _ = nc.load_bundled()
    theta = np.asarray(nc.empirical_ntk(nc.init_params(jax.random.PRNGKey(0), 128), jnp.asarray(x[: args.n])))
    out = {"n": args.n, "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS")}
    t = time.perf_counter()
    nc.eigvalsh_desc(theta)
    out["eigvalsh_s"] = time.perf_counter() - t
    for name, dt in (("topk_dense_f64_s", np.float64), ("topk_dense_f32_s", np.float32)):
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            nc.top_k_eigs(theta, 10, dtype=dt)
            best = min(best, time.perf_counter() - t)
        out[name] = best
    # Does OpenBLAS keep a core busy after a call? CPU burned by this process while its only
    # Python thread sleeps 100 ms right after one ARPACK-sized gemv (60000×21).
    import resource

    def cpu():
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    a = np.random.default_rng(0).standard_normal((60_000, 21))
    v = np.ones(60_000)
    _ = a.T @ v
    spins = []
    for _ in range(3):
        _ = a.T @ v
        c = cpu()
        time.sleep(0.1)
        spins.append(cpu() - c)
    out["cpu_s_burned_in_100ms_sleep_after_gemv"] = min(spins)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
