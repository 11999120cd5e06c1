"""Fresh-process probe: the generic matrix-free NTK (ntk_vp) — matvec cost and top-k.

Run by ``bench/_ntk_vp.py`` (section ``ntk_vp`` of ``bench/run.py``) in its own process so
that the peak RSS covers the JAX import, the data, the operator and the solve, nothing else.

    python bench/_ntk_vp_probe.py top   --arch mlp --depth 3 --width 128 --n 60000 --k 10
    python bench/_ntk_vp_probe.py top   --arch cnn --width 8 --n 10000 --k 10
    python bench/_ntk_vp_probe.py ratio --n 10000 --width 128

``top``: top-k of the traced NTK through ``nc.NTKOperator`` → ``nc.top_k_eigs`` (ARPACK,
tol 1e-6), the library path. ``ratio``: one traced (and one full) Θ·v by ntk_vp against the
closed form's matrix-free product on the same one-hidden MLP and data (warm, min over reps).
Both report FLOPs (XLA's cost analysis of the compiled product), the achieved GFLOP/s and
the machine's float32 GEMM rate (jnp.matmul 2048², warm, best of 5), so the distance to the
floor is visible.

Data: the bundled 10k MNIST test images tiled to n with seeded N(0, 0.01²) pixel noise,
clipped to [0, 1], float32 (as bench/_matfree_probe.py). Network: standard
parameterization, PRNGKey(0). Prints ONE JSON object on stdout; progress on stderr.
"""

from __future__ import annotations

import time

T_START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402


def log(msg: str) -> None:
    print(f"[ntk_vp {time.perf_counter() - T_START:7.2f}s] {msg}", file=sys.stderr, flush=True)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def data(n: int):
    import jax.numpy as jnp
    import numpy as np

    import ntk_core as nc
    x10k, _ = nc.load_bundled()
    x = np.tile(x10k, (-(-n // x10k.shape[0]), 1))[:n]
    rng = np.random.default_rng(0)
    for lo in range(0, n, 10_000):
        hi = min(lo + 10_000, n)
        x[lo:hi] += np.float32(0.01) * rng.standard_normal((hi - lo, x.shape[1]), dtype=np.float32)
    np.clip(x, 0.0, 1.0, out=x)
    xd = jnp.asarray(x)
    xd.block_until_ready()
    return xd


def best(fn, reps: int) -> float:
    import jax
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        ts.append(time.perf_counter() - t)
    return min(ts)


def gemm_gflops() -> float:
    import jax
    import jax.numpy as jnp
    a = jax.random.normal(jax.random.PRNGKey(0), (2048, 2048), jnp.float32)
    mm = jax.jit(lambda u, w: u @ w)
    mm(a, a).block_until_ready()
    return 2 * 2048 ** 3 / best(lambda: mm(a, a), 5) / 1e9


def top(args) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    import ntk_core as nc
    from ntk_core._src import generic
    out: dict = {"mode": "top", "arch": args.arch, "depth": args.depth, "width": args.width,
                 "n": args.n, "k": args.k}
    x = data(args.n)
    arch = nc.Architecture(args.arch, width=args.width, depth=args.depth)
    params = arch.init(jax.random.PRNGKey(0))
    out["num_params"] = arch.num_params()
    t = time.perf_counter()
    op = nc.NTKOperator(arch.apply, params, x)
    out["chunk"] = op.chunk
    v = jnp.asarray(np.random.default_rng(1).standard_normal(args.n), jnp.float32)
    op.jax_matmat(v).block_until_ready()
    out["matvec_first_call_s"] = time.perf_counter() - t
    out["matvec_s"] = best(lambda: op.jax_matmat(v), args.reps)
    out["matvec_flops"] = generic.matvec_flops(arch.apply, params, x, chunk=op.chunk)
    out["matvec_gflops"] = out["matvec_flops"] / out["matvec_s"] / 1e9
    log(f"{args.arch} n={args.n}: chunk {op.chunk}, matvec {out['matvec_s']:.2f}s, "
        f"{out['matvec_gflops']:.1f} GFLOP/s")
    t = time.perf_counter()
    res = nc.top_k_eigs(op, args.k, return_result=True)
    out["top10_s"] = time.perf_counter() - t
    out.update(values=res.values.tolist(), converged=res.converged, method=res.method,
               matvecs=res.matvecs, max_residual=res.max_residual, tol=res.tol)
    out["solve_gflops"] = out["matvec_flops"] * res.matvecs / out["top10_s"] / 1e9
    out["peak_rss_mb_self"] = peak_rss_mb()
    out["gemm_gflops"] = gemm_gflops()
    out["matvec_share_of_gemm_rate"] = out["matvec_gflops"] / out["gemm_gflops"]
    log(f"top-{args.k}: {out['top10_s']:.1f}s, {res.matvecs} products, converged {res.converged}, "
        f"peak RSS {out['peak_rss_mb_self']:.0f} MB, GEMM {out['gemm_gflops']:.0f} GFLOP/s")
    return out


def ratio(args) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    import ntk_core as nc
    from ntk_core._src import full_kernel, generic
    out: dict = {"mode": "ratio", "n": args.n, "width": args.width}
    x = data(args.n)
    params = nc.init_params(jax.random.PRNGKey(0), args.width)
    apply = nc.architecture_apply("mlp")          # depth 1 = the closed form's network
    rng = np.random.default_rng(1)
    v = jnp.asarray(rng.standard_normal(args.n), jnp.float32)
    vf = jnp.asarray(rng.standard_normal(args.n * 10), jnp.float32)
    op_t = nc.NTKOperator(apply, params, x)
    op_f = nc.NTKOperator(apply, params, x, trace=False)
    st = nc.matfree_state(params, x)
    fst = full_kernel.full_ntk_state(params, x)
    closed_f = jax.jit(lambda s, u: full_kernel.full_ntk_matvec_state(s, u.reshape(-1, 10)).reshape(-1))
    fns = {"vp_traced": lambda: op_t.jax_matmat(v), "closed_traced": lambda: nc.matfree_matvec(st, v),
           "vp_full": lambda: op_f.jax_matmat(vf), "closed_full": lambda: closed_f(fst, vf)}
    for f in fns.values():
        jax.block_until_ready(f())
    # agreement on this very product (float32 vs float32)
    a, b = np.asarray(fns["vp_traced"]()), np.asarray(fns["closed_traced"]())
    out["traced_max_rel_diff"] = float(np.abs(a - b).max() / np.abs(b).max())
    a, b = np.asarray(fns["vp_full"]()), np.asarray(fns["closed_full"]())
    out["full_max_rel_diff"] = float(np.abs(a - b).max() / np.abs(b).max())
    for _ in range(2):  # interleaved rounds: load changes hit both alike
        for name, f in fns.items():
            out[f"{name}_s"] = min(out.get(f"{name}_s", float("inf")), best(f, args.reps))
    out["traced_ratio"] = out["vp_traced_s"] / out["closed_traced_s"]
    out["full_ratio"] = out["vp_full_s"] / out["closed_full_s"]
    out["vp_traced_flops"] = generic.matvec_flops(apply, params, x, chunk=op_t.chunk)
    out["vp_full_flops"] = generic.matvec_flops(apply, params, x, trace=False, chunk=op_f.chunk)
    for name, f in (("closed_traced", lambda: nc.matfree_matvec.lower(st, v)),
                    ("closed_full", lambda: closed_f.lower(fst, vf))):
        cost = f().compile().cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        out[f"{name}_flops"] = float(cost.get("flops", float("nan")))
    for name in fns:
        out[f"{name}_gflops"] = out[f"{name}_flops"] / out[f"{name}_s"] / 1e9
    out["traced_flop_ratio"] = out["vp_traced_flops"] / out["closed_traced_flops"]
    out["full_flop_ratio"] = out["vp_full_flops"] / out["closed_full_flops"]
    out["gemm_gflops"] = gemm_gflops()
    out["peak_rss_mb_self"] = peak_rss_mb()
    log(f"traced: ntk_vp {out['vp_traced_s'] * 1e3:.1f} ms vs closed {out['closed_traced_s'] * 1e3:.1f} ms "
        f"({out['traced_ratio']:.1f}×, FLOPs {out['traced_flop_ratio']:.1f}×); full: "
        f"{out['vp_full_s'] * 1e3:.1f} vs {out['closed_full_s'] * 1e3:.1f} ms ({out['full_ratio']:.1f}×)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=("top", "ratio"))
    ap.add_argument("--arch", default="mlp", choices=("mlp", "cnn"))
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    out = top(args) if args.mode == "top" else ratio(args)
    out["probe_wall_s"] = time.perf_counter() - T_START
    print(json.dumps(out))


if __name__ == "__main__":
    main()
