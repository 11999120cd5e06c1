"""Benchmark section ``sharded``: the sample-sharded top-10 on a forced 4-device CPU mesh.

    .venv/bin/python bench/run.py --only sharded --json      # via the benchmark driver
    .venv/bin/python bench/_sharded.py                       # this section alone, one JSON line

``run(out)`` starts a fresh process (this file with ``--probe``) under
``XLA_FLAGS=--xla_force_host_platform_device_count=4`` — the calling process has already
initialised JAX with one device — and copies its results into ``out``. The probe, at
n = 10 000 (bundled MNIST), width 128, k = 10, float32:

* builds the closed-form operator on a 4-device mesh and on a 1-device mesh (the first
  device), and reads the bytes each device holds from ``addressable_shards``;
* solves the top-10 on both (``operator_top_k``, warm: compiled by a first call, then the
  median of 3) and with the single-device library path (ARPACK ``top_k_eigs`` on
  ``matfree_matvec``, median of 3);
* at widths 128 and 1024, on the 4-device mesh and on one device: XLA's FLOP and byte count
  of the compiled one-column product (``cost_analysis``, per device), the median time of a
  15-column block product, and the single-vector ``matfree_matvec`` (docs/scaling.md's cost
  model is built from these).

The 4 "devices" are 4 XLA CPU clients sharing this machine's 2 cores, so the overhead ratio
measures what the SPMD program costs (collectives, per-device dispatch, smaller GEMMs) on
the same silicon — not a speed-up, which needs real devices.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
DEVICES = 4


def run(out: dict) -> dict:
    """Runs the probe in a fresh 4-device process; fills and returns ``out``."""
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={DEVICES}",
           "JAX_PLATFORMS": "cpu", "JAX_ENABLE_COMPILATION_CACHE": "false"}
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    t = time.perf_counter()
    p = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--probe"], env=env,
                       cwd=str(REPO), capture_output=True, text=True, timeout=1800)
    if p.returncode != 0:
        raise RuntimeError(f"_sharded.py --probe failed ({p.returncode}):\n{p.stderr[-3000:]}")
    res = json.loads(p.stdout.strip().splitlines()[-1])
    res["process_wall_s"] = time.perf_counter() - t
    out.update(res)
    return out


def _median(ts):
    s = sorted(ts)
    return s[len(s) // 2]


def probe(n: int = 10_000, width: int = 128, k: int = 10, reps: int = 3) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    import ntk_core as nc

    def timed(fn, r=reps):
        fn()  # compile / warm
        ts, last = [], None
        for _ in range(r):
            t = time.perf_counter()
            last = fn()
            ts.append(time.perf_counter() - t)
        return _median(ts), ts, last

    out: dict = {"loadavg_start": [round(v, 2) for v in os.getloadavg()], "n": n, "width": width, "k": k,
                 "sharded_devices": jax.device_count(), "jax": jax.__version__,
                 "xla_flags": os.environ.get("XLA_FLAGS", "")}
    x_all, _ = nc.load_bundled()
    x = np.asarray(x_all[:n])
    params = nc.init_params(jax.random.PRNGKey(0), width)
    op4 = nc.sharded_closed_form(params, x)
    op1 = nc.sharded_closed_form(params, x, mesh=nc.sample_mesh(jax.devices()[:1]))

    def per_device_bytes(op):
        b: dict = {}
        for name in ("x", "h", "m"):
            for s in op.state[name].addressable_shards:
                b[str(s.device)] = b.get(str(s.device), 0) + s.data.nbytes
        return b

    b4, b1 = per_device_bytes(op4), per_device_bytes(op1)
    out["bytes_per_device_4"] = b4
    out["bytes_single_device"] = b1
    out["x_rows_per_device"] = [s.data.shape[0] for s in op4.state["x"].addressable_shards]
    out["sharded_bytes_per_device_ratio"] = max(b4.values()) / max(b1.values())

    t4, ts4, r4 = timed(lambda: nc.operator_top_k(op4, k))
    t1, ts1, r1 = timed(lambda: nc.operator_top_k(op1, k))
    st = nc.matfree_state(params, jnp.asarray(x))
    mv = lambda v: nc.matfree_matvec(st, jnp.asarray(v))
    ta, tsa, ra = timed(lambda: nc.top_k_eigs(mv, k, n=n, return_result=True))
    rel = lambda a, b: float(np.max(np.abs(a - b) / np.abs(b)))
    out.update({
        "sharded_top10_rel_err": rel(r4.values, ra.values),
        "sharded_vs_1device_rel_diff": rel(r4.values, r1.values),
        "sharded_top10_s": t4, "sharded_top10_s_all": ts4,
        "one_device_mesh_top10_s": t1, "one_device_mesh_top10_s_all": ts1,
        "arpack_top10_s": ta, "arpack_top10_s_all": tsa,
        "sharded_overhead_ratio": t4 / t1,
        "sharded_vs_arpack_time_ratio": t4 / ta,
        "sharded_matvecs": r4.matvecs, "arpack_matvecs": ra.matvecs,
        "sharded_converged": r4.converged, "sharded_max_residual": r4.max_residual,
        "arpack_max_residual": ra.max_residual, "eigenvalues": r4.values.tolist(),
        "sharded_note": r4.note,
    })
    tr4, tr1 = nc.operator_trace(op4), nc.operator_trace(op1)
    out["sharded_trace_rel_diff"] = abs(tr4 - tr1) / abs(tr1)

    # Product costs for the cost model (docs/scaling.md). FLOPs and bytes are XLA's own count
    # of the compiled program (cost_analysis) for ONE column (b = 1: the per-column loop inside
    # the product runs once, and XLA counts a loop body once), per device, on the 4-device
    # mesh and on one device; the time is the measured median of a 15-column block product.
    from ntk_core._src import sharded as sh

    rates = {}
    d = x.shape[1]
    for w in (128, 1024):
        p = nc.init_params(jax.random.PRNGKey(0), w)
        row: dict = {"allreduce_bytes_per_column": 4 * (d * w + 2 * w + 1)}
        for label, mesh in (("mesh4", nc.sample_mesh()), ("one_device", nc.sample_mesh(jax.devices()[:1]))):
            o = nc.sharded_closed_form(p, x, mesh=mesh)
            one = nc.shard_rows(np.ones((n, 1), np.float32), o.mesh)
            ca = sh._matmat_jit.lower(o._static(), o.state, o.mask, one).compile().cost_analysis()
            ca = ca[0] if isinstance(ca, list) else ca
            blk = nc.shard_rows(np.random.default_rng(0).standard_normal((n, 15)).astype(np.float32), o.mesh)
            tb, _, _ = timed(lambda: jax.block_until_ready(o.matmat(blk)))
            row[label] = {"flops_per_column_per_device": float(ca["flops"]),
                          "bytes_accessed_per_column_per_device": float(ca["bytes accessed"]),
                          "state_bytes_per_device": max(per_device_bytes(o).values()),
                          "block15_s": tb, "s_per_column": tb / 15,
                          "gflops_per_device": 15 * float(ca["flops"]) / tb / 1e9}
        s = nc.matfree_state(p, jnp.asarray(x))
        v = jnp.ones(n, jnp.float32)
        tv, _, _ = timed(lambda: jax.block_until_ready(nc.matfree_matvec(s, v)), 5)
        row["matfree_matvec_s"] = tv
        row["analytic_flops_per_column"] = 4.0 * n * d * w + 8.0 * n * w
        rates[w] = row
    out["product_rates"] = rates
    out["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    try:
        out["cpu_model"] = next(l.split(":", 1)[1].strip() for l in subprocess.run(
            ["lscpu"], capture_output=True, text=True).stdout.splitlines() if l.startswith("Model name:"))
    except (OSError, StopIteration):
        out["cpu_model"] = "unknown"
    return out


if __name__ == "__main__":
    if "--probe" in sys.argv:
        if str(REPO) not in sys.path:
            sys.path.insert(0, str(REPO))
        print(json.dumps(probe()))
    else:
        print(json.dumps(run({})))
