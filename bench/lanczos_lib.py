"""Hand-written Lanczos/SLQ (ntk_core) vs the matfree library, on the real NTK operator.

    python bench/lanczos_lib.py                 # human table on stdout
    python bench/lanczos_lib.py --json          # also write bench/last_lanczos_lib.json
    python bench/lanczos_lib.py --sizes 2000 --reps 3

Operator: closed-form traced NTK (raw, not /n) of the width-128 MLP at init (standard
parameterization, PRNGKey(0)), applied matrix-free by ``ntk_core.matfree_matvec`` (float32,
exactly what ``full_spectrum`` uses for n > dense_max). Inputs: ``load_split(n, n_val, 0)``
on the bundled 10k MNIST test set, n_val = 500 when the pool allows it, else 10000 − n
(n = 10000 takes the whole pool, so n_val = 0).

Every measured method runs in its OWN fresh subprocess (``--worker METHOD --n N``), so its
peak-RSS increase is its own: RSS is sampled every 2 ms by a thread (psutil) and reported as
max(RSS during the call) − RSS just before it, for the first call (compile included) and for
the warm calls. Warm wall time = median of ``--reps`` calls (min also kept); compile time =
first call − warm median. Deflation pairs for SLQ (ARPACK top-10, seeded v0, as in
``full_spectrum``) are computed in the worker before the baseline and are not timed.

Methods:
  project_slq      ntk_core.slq: NumPy Lanczos, float64 basis, full reorthogonalisation,
                   8 Rademacher probes × 60 steps, deflated by the top-10 pairs.
  matfree_slq_f32  matfree.decomp.tridiag_sym(60, reortho="full") vmapped over the SAME 8
                   probes (same deflating projector, written here in JAX), eigh of each
                   60×60 T → nodes/weights; all jitted; float32 throughout (the project's
                   default: JAX x64 off).
  matfree_slq_f32_seq  the same with jax.lax.map over the probes instead of vmap (one probe
                   at a time: less memory, no batching of the 8 products).
  matfree_slq_f64  the same (vmap) with jax_enable_x64 in that worker: float64 basis, float32
                   operator (cast in and out) — the precision split of the project's code.
  arpack_top10     ntk_core.top_k_eigs as in full_spectrum (ARPACK, tol 1e-6; includes its
                   10-product residual check).
  matfree_top10    matfree.eig.eigh_partial(tridiag_sym(m)) — one unrestarted m-step
                   Lanczos run from the same v0, top-10 Ritz pairs; m = ARPACK's product
                   count at that n (equal budget). Residuals measured afterwards, not timed.
  hutch10          matfree.stochtrace Hutchinson, 10 Rademacher probes (vmapped).
  xtrace10         matfree.stochtrace XTrace (leave-one-out), 10 Gaussian samples (20 products).
  exact_diag       sum(ntk_core.ntk_diagonal) — the exact trace the project uses.
  reference        (n ≤ 4000 only) float64-formed dense Θ (traced_ntk_float64) + LAPACK
                   eigvalsh: the exact spectrum accuracy is measured against.

Accuracy (computed in the parent from the workers' nodes/weights):
  W1 on log10 eigenvalues between the SLQ measure and the exact eigenvalue distribution
  (uniform weights 1/n), both clipped below at the float32 floor ε₃₂·tr Θ + n·ε₆₄·λ_max
  (``roundoff_floor``); Kolmogorov–Smirnov distance of the two CDFs; relative error of
  n·Σ wᵢθᵢ (SLQ trace) vs the exact float64 trace. Same probes for both SLQs, so their
  difference is the implementation (and precision), not the probe draw.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

WIDTH = 128
K = 10
PROBES = 8
STEPS = 60
POOL = 10_000
TRACE_KEYS = {2000: 20}  # keys (independent estimates) for the stochastic trace; default 5
METHODS = ("project_slq", "matfree_slq_f32", "matfree_slq_f32_seq", "matfree_slq_f64", "arpack_top10",
           "matfree_top10", "hutch10", "xtrace10", "exact_diag")


def log(msg: str) -> None:
    print(f"[lanczos_lib {time.perf_counter() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------
# worker side

class PeakRSS:
    """Peak RSS increase over a block, sampled by a thread every ``dt`` seconds (psutil)."""

    def __init__(self, dt: float = 0.002):
        import psutil

        self.proc, self.dt = psutil.Process(), dt

    def __enter__(self):
        self.base = self.proc.memory_info().rss
        self.peak = self.base
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.dt)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)
        self.increase_mb = (self.peak - self.base) / 2**20


def _timed_calls(fn, reps: int) -> dict:
    """First call (compile included) and ``reps`` warm calls, each with its RSS increase."""
    import resource

    import numpy as np

    def cpu():  # this process's CPU seconds, all threads (robust to other load, unlike wall time)
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    load0 = os.getloadavg()[0]
    with PeakRSS() as r0:
        c, t = cpu(), time.perf_counter()
        out = fn()
        first, cpu_first = time.perf_counter() - t, cpu() - c
    warm, cpu_warm, rss_warm = [], [], []
    for _ in range(reps):
        with PeakRSS() as r:
            c, t = cpu(), time.perf_counter()
            out = fn()
            warm.append(time.perf_counter() - t)
            cpu_warm.append(cpu() - c)
        rss_warm.append(r.increase_mb)
    med = float(np.median(warm))
    return {"out": out, "first_s": first, "warm_median_s": med, "warm_min_s": min(warm),
            "warm_all_s": warm, "compile_s": max(first - med, 0.0),
            "cpu_first_s": cpu_first, "cpu_warm_median_s": float(np.median(cpu_warm)),
            "loadavg1_before": load0, "loadavg1_after": os.getloadavg()[0],
            "rss_base_mb": r0.base / 2**20, "rss_increase_first_mb": r0.increase_mb,
            "rss_increase_warm_mb": max(rss_warm)}


def _setup(n: int):
    import jax
    import jax.numpy as jnp
    import numpy as np

    import ntk_core as nc

    n_val = 500 if n + 500 <= POOL else POOL - n
    split = nc.load_split(n, n_val, 0)
    x = jnp.asarray(split.x_train)
    params = nc.init_params(jax.random.PRNGKey(0), WIDTH)
    state = jax.block_until_ready(nc.matfree_state(params, x, parameterization="standard"))

    def mv(v):  # the project's float64 → float32 → float64 matvec (full_spectrum)
        return np.asarray(nc.matfree_matvec(state, jnp.asarray(v, jnp.float32)), np.float64)

    mv(np.ones(n))  # compile the operator once, outside every measurement
    return {"nc": nc, "jax": jax, "jnp": jnp, "np": np, "x": x, "params": params, "state": state,
            "mv": mv, "n_val": n_val, "source": split.source}


def _arpack(env, n):
    nc = env["nc"]
    return nc.top_k_eigs(nc._src.spectra.as_operator(env["mv"], n), K, return_vectors=True,
                         return_result=True, tol=1e-6)


def _probes(n: int, seed: int = 0):
    """The project's probes: rng.choice([-1, 1], n) per probe, in order (spectra.slq)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return np.stack([rng.choice(np.array([-1.0, 1.0]), size=n) for _ in range(PROBES)])


def _matfree_slq_fn(env, dtype, sequential=False):
    import matfree.decomp

    jax, jnp, nc = env["jax"], env["jnp"], env["nc"]
    tridiag = matfree.decomp.tridiag_sym(STEPS, materialize=True, reortho="full", custom_vjp=False)

    @jax.jit
    def run(state, vd, z):
        def op(v):  # P Θ P, P = I − V Vᵀ (as spectra.slq); Θ in float32
            v = v - vd @ (vd.T @ v)
            w = nc.matfree_matvec(state, v.astype(jnp.float32)).astype(dtype)
            return w - vd @ (vd.T @ w)

        def one(zi):
            zi = zi - vd @ (vd.T @ zi)
            _, t, *_ = tridiag(op, zi)
            theta, s = jnp.linalg.eigh(t)
            return theta, s[0] ** 2 * jnp.dot(zi, zi)

        return jax.lax.map(one, z) if sequential else jax.vmap(one)(z)

    return run


def worker(method: str, n: int, reps: int, budget: int) -> dict:
    if method == "matfree_slq_f64":
        import jax

        jax.config.update("jax_enable_x64", True)
    t = time.perf_counter()
    env = _setup(n)
    np, jnp, jax, nc = env["np"], env["jnp"], env["jax"], env["nc"]
    res = {"method": method, "n": n, "n_val": env["n_val"], "data_source": env["source"],
           "setup_s": time.perf_counter() - t, "x64": bool(jax.config.jax_enable_x64)}
    if method == "reference":
        t = time.perf_counter()
        theta = nc.traced_ntk_float64(env["params"], np.asarray(env["x"]), parameterization="standard")
        ds = nc.dense_spectrum(theta, formed_dtype=np.float64, triangle=None)
        res.update(eigvalsh_s=time.perf_counter() - t, eigenvalues=ds.eigenvalues.tolist(),
                   trace_f64=float(np.trace(theta)),
                   trace_diag_f32=float(jnp.sum(nc.ntk_diagonal(env["params"], env["x"]))))
        return res
    if method.startswith(("project_slq", "matfree_slq")):
        top = _arpack(env, n)
        vals, vecs = top.values, top.vectors
        res["deflate_top1"] = float(vals[0])
        z = _probes(n)
        if method == "project_slq":
            fn = lambda: nc.slq(env["mv"], n, num_probes=PROBES, steps=STEPS, seed=0,
                                deflate=(vals, vecs))
        else:
            dt = jnp.float64 if method.endswith("f64") else jnp.float32
            run = _matfree_slq_fn(env, dt, sequential=method.endswith("_seq"))
            vd, zj = jnp.asarray(vecs, dt), jnp.asarray(z, dt)

            def fn():
                th, w = jax.block_until_ready(run(env["state"], vd, zj))
                nodes = np.concatenate([vals, np.asarray(th, np.float64).ravel()])
                wts = np.concatenate([np.full(K, 1.0 / n),
                                      np.asarray(w, np.float64).ravel() / (n * PROBES)])
                return nodes, wts / wts.sum()
        r = _timed_calls(fn, reps)
        nodes, wts = r.pop("out")
        res.update(r, nodes=np.asarray(nodes).tolist(), weights=np.asarray(wts).tolist())
        res["dtype"] = "float32" if "f32" in method else "float64 basis, float32 operator"
        return res
    if method == "arpack_top10":
        r = _timed_calls(lambda: _arpack(env, n), reps)
        out = r.pop("out")
        res.update(r, values=out.values.tolist(), max_residual=out.max_residual,
                   matvecs=int(out.matvecs), converged=bool(out.converged))
        return res
    if method == "matfree_top10":
        import matfree.decomp
        import matfree.eig

        eigh = matfree.eig.eigh_partial(matfree.decomp.tridiag_sym(budget, reortho="full",
                                                                   custom_vjp=False))
        f = jax.jit(lambda st, v0: eigh(lambda v: nc.matfree_matvec(st, v), v0))
        v0 = jnp.asarray(np.random.default_rng(0).standard_normal(n), jnp.float32)  # top_k_eigs' v0

        def fn():
            w, v = jax.block_until_ready(f(env["state"], v0))
            order = jnp.argsort(w)[::-1][:K]
            return np.asarray(w[order], np.float64), np.asarray(v[order], np.float64).T
        r = _timed_calls(fn, reps)
        w, v = r.pop("out")
        av = np.stack([env["mv"](v[:, j]) for j in range(K)], axis=1)
        resid = np.linalg.norm(av - v * w[None, :], axis=0) / np.abs(w)
        res.update(r, values=w.tolist(), residuals=resid.tolist(), max_residual=float(resid.max()),
                   matvecs=budget)
        return res
    if method in ("hutch10", "xtrace10"):
        import matfree.stochtrace as st

        like = jnp.zeros(n, jnp.float32)
        if method == "hutch10":
            est = st.estimator_monte_carlo(st.monte_carlo_trace(), st.sampler_signs(like, num=10))
        else:
            est = st.estimator_leave_one_out(st.leave_one_out_xtrace(), st.sampler_normal(like, num=10))
        f = jax.jit(lambda key, s: est(lambda v, s_: nc.matfree_matvec(s_, v), key, s))
        nkeys = TRACE_KEYS.get(n, 5)
        keys = [jax.random.PRNGKey(i) for i in range(nkeys)]
        ests = []

        def fn(i=[0]):
            e = float(f(keys[i[0] % nkeys], env["state"]))
            i[0] += 1
            ests.append(e)
            return e
        r = _timed_calls(fn, max(reps, nkeys - 1))
        r.pop("out")
        res.update(r, estimates=ests[:nkeys], matvecs=10 if method == "hutch10" else 20)
        return res
    if method == "exact_diag":
        f = lambda: float(jnp.sum(nc.ntk_diagonal(env["params"], env["x"])))
        r = _timed_calls(f, max(reps, 5))
        res.update(r, trace=r.pop("out"))
        return res
    raise ValueError(method)


def import_probe() -> dict:
    """Import cost of matfree on top of an already imported jax (fresh process)."""
    import resource

    import jax  # noqa: F401
    import jax.numpy  # noqa: F401

    r0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    import matfree.decomp  # noqa: F401
    import matfree.eig  # noqa: F401
    import matfree.funm  # noqa: F401
    import matfree.stochtrace  # noqa: F401
    dt = time.perf_counter() - t
    return {"import_s": dt, "import_maxrss_increase_mb":
            (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - r0) / 1024}


# ------------------------------------------------------------------------------------------
# parent side

def run_worker(args: list[str], timeout: float = 1800) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve())] + args
    log("run " + " ".join(args))
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    if p.returncode != 0:
        log(f"FAILED {args}: {p.stderr[-2000:]}")
        return {"error": p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"rc={p.returncode}"}
    return json.loads(p.stdout.strip().splitlines()[-1])


def machine_info() -> dict:
    import importlib.metadata as md

    info = {"processor": platform.processor(), "machine": platform.machine(),
            "os": platform.platform(), "python": platform.python_version(),
            "cpu_count": os.cpu_count()}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
    except OSError:
        pass
    for pkg in ("jax", "jaxlib", "numpy", "scipy", "matfree"):
        try:
            info[f"{pkg}_version"] = md.version(pkg)
        except md.PackageNotFoundError:
            info[f"{pkg}_version"] = None
    try:
        dist = md.distribution("matfree")
        files = [f for f in (dist.files or []) if str(f).startswith("matfree/")]
        hard = [r for r in (dist.requires or []) if "extra ==" not in r]
        info["matfree_requires"] = ", ".join(hard) or "none (jax only via the optional [cpu] extra)"
        info["matfree_installed_kb"] = round(sum(
            (Path(dist.locate_file(f)).stat().st_size for f in files
             if Path(dist.locate_file(f)).exists())) / 1024, 1)
        info["matfree_py_files"] = sum(1 for f in files if str(f).endswith(".py"))
    except md.PackageNotFoundError:
        pass
    return info


def _log_clip(v, floor):
    import numpy as np

    return np.log10(np.maximum(np.asarray(v, np.float64), floor))


def slq_metrics(nodes, weights, exact, trace, floor) -> dict:
    import numpy as np
    from scipy.stats import wasserstein_distance

    nodes, weights, exact = (np.asarray(a, np.float64) for a in (nodes, weights, exact))
    n = exact.size
    w1 = wasserstein_distance(_log_clip(exact, floor), _log_clip(nodes, floor), None, weights)
    grid = np.unique(np.concatenate([exact, nodes]))
    cdf_e = np.searchsorted(np.sort(exact), grid, side="right") / n
    o = np.argsort(nodes)
    cdf_s = np.concatenate([[0.0], np.cumsum(weights[o])])[np.searchsorted(nodes[o], grid, side="right")]
    tr = n * float(weights @ nodes)
    return {"w1_log10": float(w1), "ks": float(np.abs(cdf_e - cdf_s).max()),
            "trace_rel_err": abs(tr - trace) / trace}


def analyse(raw: dict, sizes: list[int]) -> dict:
    import numpy as np
    from scipy.stats import wasserstein_distance

    out: dict = {}
    ref = raw.get("reference_2000") or {}
    for n in sizes:
        ref_n = raw.get(f"reference_{n}") or {}
        exact = np.asarray(ref_n.get("eigenvalues", []), np.float64)
        tr_exact = raw.get(f"exact_diag_{n}", {}).get("trace")
        tr_ref = ref_n.get("trace_f64", tr_exact)
        floor = None
        if exact.size:
            floor = float(np.finfo(np.float32).eps * tr_ref + n * np.finfo(np.float64).eps * exact.max())
            out[f"exact_lambda_max_n{n}"] = float(exact.max())
            out[f"exact_lambda_min_n{n}"] = float(exact.min())
            out[f"exact_trace_f64_n{n}"] = tr_ref
            out[f"float32_floor_n{n}"] = floor
            out[f"exact_below_floor_n{n}"] = int((exact < floor).sum())
            out[f"eigvalsh_s_n{n}"] = ref_n.get("eigvalsh_s")
        for m in METHODS:
            r = raw.get(f"{m}_{n}")
            if not r:
                continue
            if "error" in r:
                out[f"{m}_error_n{n}"] = r["error"]
                continue
            p = f"{m}_n{n}_"
            for key in ("warm_median_s", "warm_min_s", "first_s", "compile_s", "rss_increase_first_mb",
                        "rss_increase_warm_mb", "rss_base_mb", "matvecs", "max_residual",
                        "cpu_first_s", "cpu_warm_median_s", "warm_all_s", "loadavg1_before",
                        "loadavg1_after"):
                if key in r:
                    out[p + key] = r[key]
            if "nodes" in r and exact.size:
                for k, v in slq_metrics(r["nodes"], r["weights"], exact, tr_ref, floor).items():
                    out[p + k] = v
            elif "nodes" in r and tr_exact:
                nn = np.asarray(r["nodes"])
                out[p + "trace_rel_err"] = abs(n * float(np.asarray(r["weights"]) @ nn) - tr_exact) / tr_exact
            if m.endswith("top10"):
                vals = np.asarray(r["values"])
                refv = exact[:K] if exact.size else None
                if refv is not None:
                    out[p + "max_rel_err_vs_dense"] = float(np.max(np.abs(vals - refv) / refv))
                arp = raw.get(f"arpack_top10_{n}", {}).get("values")
                if arp is not None and m != "arpack_top10":
                    out[p + "max_rel_diff_vs_arpack"] = float(np.max(np.abs(vals - np.asarray(arp)) / np.asarray(arp)))
                out[p + "lambda1"] = float(vals[0])
            if m in ("hutch10", "xtrace10") and tr_exact:
                e = np.abs(np.asarray(r["estimates"]) - tr_exact) / tr_exact
                out[p + "rel_err_mean"] = float(e.mean())
                out[p + "rel_err_max"] = float(e.max())
                out[p + "n_estimates"] = int(e.size)
            if m == "exact_diag" and ref_n:
                out[p + "rel_err_vs_f64_trace"] = abs(r["trace"] - tr_ref) / tr_ref
        # the two SLQ measures against each other (same probes): implementation difference
        a, b = raw.get(f"project_slq_{n}"), raw.get(f"matfree_slq_f32_{n}")
        fl = floor if floor is not None else float(np.finfo(np.float32).eps * (tr_exact or 1.0))
        for name in ("matfree_slq_f32", "matfree_slq_f32_seq", "matfree_slq_f64"):
            b = raw.get(f"{name}_{n}")
            if a and b and "nodes" in a and "nodes" in b:
                out[f"{name}_vs_project_w1_log10_n{n}"] = float(wasserstein_distance(
                    _log_clip(a["nodes"], fl), _log_clip(b["nodes"], fl), a["weights"], b["weights"]))
        a = raw.get(f"arpack_top10_{n}", {})
        if "matvecs" in a:
            out[f"arpack_top10_n{n}_converged"] = a.get("converged")
    del ref
    return out


def table(res: dict, sizes: list[int]) -> str:
    rows = [("method", "n", "warm s (median)", "warm CPU s", "1st call s", "compile s", "ΔRSS 1st MB",
             "ΔRSS warm MB", "accuracy")]
    f = lambda v, fmt="{:.3g}": "—" if v is None else fmt.format(v)
    for n in sizes:
        for m in METHODS:
            p = f"{m}_n{n}_"
            if p + "warm_median_s" not in res:
                if f"{m}_error_n{n}" in res:
                    rows.append((m, str(n), "error: " + res[f"{m}_error_n{n}"][:60], "", "", "", "", "", ""))
                continue
            acc = []
            if p + "w1_log10" in res:
                acc.append(f"W1(log10)={res[p + 'w1_log10']:.3g} KS={res[p + 'ks']:.3g}")
            if p + "trace_rel_err" in res:
                acc.append(f"tr err={res[p + 'trace_rel_err']:.2g}")
            if m.startswith("matfree_slq") and f"{m}_vs_project_w1_log10_n{n}" in res:
                acc.append(f"W1 vs project={res[f'{m}_vs_project_w1_log10_n{n}']:.2g}")
            if p + "max_rel_err_vs_dense" in res:
                acc.append(f"max rel err vs dense={res[p + 'max_rel_err_vs_dense']:.2g}")
            if p + "max_rel_diff_vs_arpack" in res:
                acc.append(f"vs ARPACK={res[p + 'max_rel_diff_vs_arpack']:.2g}")
            if p + "max_residual" in res:
                acc.append(f"max resid={res[p + 'max_residual']:.2g}")
            if p + "matvecs" in res:
                acc.append(f"{res[p + 'matvecs']} products")
            if p + "rel_err_mean" in res:
                acc.append(f"rel err mean={res[p + 'rel_err_mean']:.2g} max={res[p + 'rel_err_max']:.2g}"
                           f" ({res[p + 'n_estimates']} keys)")
            if p + "rel_err_vs_f64_trace" in res:
                acc.append(f"rel err vs f64 trace={res[p + 'rel_err_vs_f64_trace']:.2g}")
            rows.append((m, str(n), f(res.get(p + "warm_median_s")), f(res.get(p + "cpu_warm_median_s")),
                         f(res.get(p + "first_s")),
                         f(res.get(p + "compile_s")), f(res.get(p + "rss_increase_first_mb"), "{:.0f}"),
                         f(res.get(p + "rss_increase_warm_mb"), "{:.0f}"), "; ".join(acc)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="write bench/last_lanczos_lib.json")
    ap.add_argument("--sizes", default="2000,10000")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=2000, help=argparse.SUPPRESS)
    ap.add_argument("--budget", type=int, default=60, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker == "import":
        print(json.dumps(import_probe()))
        return
    if args.worker:
        print(json.dumps(worker(args.worker, args.n, args.reps, args.budget)))
        return

    sizes = [int(s) for s in args.sizes.split(",")]
    methods = [m for m in args.methods.split(",") if m]
    raw: dict = {}
    res: dict = {"command": "python bench/lanczos_lib.py --json", "reps": args.reps,
                 "width": WIDTH, "slq_probes": PROBES, "slq_steps": STEPS, "k": K,
                 "sizes": ",".join(map(str, sizes)), "loadavg_start": " ".join(f"{x:.2f}" for x in os.getloadavg())}
    res.update(machine_info())
    imp = run_worker(["--worker", "import"])
    res.update({f"matfree_{k}": v for k, v in imp.items()})
    for n in sizes:
        if n <= 4000:
            raw[f"reference_{n}"] = run_worker(["--worker", "reference", "--n", str(n)])
        for m in methods:
            budget = raw.get(f"arpack_top10_{n}", {}).get("matvecs", 60)
            raw[f"{m}_{n}"] = run_worker(["--worker", m, "--n", str(n), "--reps", str(args.reps),
                                          "--budget", str(budget)])
            r = raw[f"{m}_{n}"]
            log(f"  {m} n={n}: warm {r.get('warm_median_s')} s, first {r.get('first_s')} s, "
                f"ΔRSS {r.get('rss_increase_first_mb')} MB")
        res[f"n_val_n{n}"] = next((r.get("n_val") for r in raw.values() if r.get("n") == n and "n_val" in r), None)
    res.update(analyse(raw, sizes))
    res["loadavg_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    res["total_s"] = time.perf_counter() - T0
    print(f"machine: {res.get('cpu_model')} ({res['cpu_count']} cpus), processor={res['processor']!r}, "
          f"jax {res['jax_version']}, matfree {res['matfree_version']}, "
          f"load {res['loadavg_start']} → {res['loadavg_end']}")
    print(table(res, sizes))
    if args.json:
        (BENCH / "last_lanczos_lib.json").write_text(json.dumps(res, indent=1, sort_keys=True) + "\n")
        log(f"wrote {BENCH / 'last_lanczos_lib.json'}")


if __name__ == "__main__":
    main()
