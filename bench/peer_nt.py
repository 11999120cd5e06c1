"""Side by side with the field's reference: neural-tangents 0.6.5 vs this project's closed form.

    .venv/bin/python bench/peer_nt.py --setup                 # once: isolated peer venv
    .venv/bin/python bench/peer_nt.py --json --markdown BENCHMARKS.md      # ~25 min on 2 busy cores
    .venv/bin/python bench/peer_nt.py --from-json bench/last_peer_nt.json --add-generic \
        --markdown BENCHMARKS.md                                          # + autodiff / ntk_vp

Same params, same data, same machine, one run. neural-tangents 0.6.5 needs JAX 0.4.23 (and
TensorFlow, which it imports at package import), so it lives in its OWN virtualenv
(default /work/peer-venv, outside the repository; ``--setup`` creates it from
bench/requirements-peer-nt.txt). It is never a dependency of the app or of the tests.

Flow: this process (project venv) draws the parameters with ``ntk_core.init_params``
(standard parameterization, ``PRNGKey(0)``) and takes the first n bundled MNIST images,
writes them to a temporary .npz, and runs this same file with ``--worker`` under the peer
venv's Python. The worker times ``nt.empirical_ntk_fn(f, trace_axes=(-1,), vmap_axes=0,
implementation=...)`` for JACOBIAN_CONTRACTION, NTK_VECTOR_PRODUCTS and
STRUCTURED_DERIVATIVES on f(x) = relu(x·W1 + b1)·W2 + b2 and saves the kernels. Then this
process times ``ntk_core.empirical_ntk(..., method="closed_form")`` on the same arrays
(after the worker has exited: the two never share the CPU) and compares.

Timing: float32, compiled and warm (one untimed call first, or an AOT compile), then the
median of ``--reps`` (≥ 3) calls each ending in ``block_until_ready``. Exception, stated in
the output: an implementation whose untimed warm call took longer than ``--budget-s`` is
timed once (``reps: 1``) — it is then far from being the fastest and the verdict does not
depend on it. Implementations that would not fit in memory unbatched
(JACOBIAN_CONTRACTION materialises n×10×P Jacobians: 8 GB at width 128, 65 GB at 1024)
run through ``nt.batch(kernel_fn, batch_size)``, neural-tangents' own blocking, with the
batch size stated.

Accuracy: max |Θ_nt − Θ_closed| / max |Θ_nt| over the n×n kernel, per implementation.
Speed ratio: median time of neural-tangents' fastest implementation / closed form's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PEER_VENV = Path(os.environ.get("NTK_PEER_VENV", "/work/peer-venv"))
IMPLS = ("JACOBIAN_CONTRACTION", "NTK_VECTOR_PRODUCTS", "STRUCTURED_DERIVATIVES")
# nt.batch block size per width for implementations that cannot hold the whole kernel's
# Jacobians (chosen so the peer process stays under ~4 GB on this 24 GB shared machine).
BATCH = {"JACOBIAN_CONTRACTION": {128: 250, 1024: 50}}
# Measured at --heavy-n (default 250) instead of n = 2000: JACOBIAN_CONTRACTION materialises
# n·10·P Jacobian floats (8 GB at width 128, 65 GB at 1024 for n = 2000) and
# NTK_VECTOR_PRODUCTS costs n² network passes; at n = 250 they already take 15 s to 15 min
# on this machine, 10–10⁴× slower than STRUCTURED_DERIVATIVES at n = 2000.
HEAVY = ("JACOBIAN_CONTRACTION@128", "NTK_VECTOR_PRODUCTS@128",
         "JACOBIAN_CONTRACTION@1024", "NTK_VECTOR_PRODUCTS@1024")


def log(msg: str) -> None:
    print(f"[peer_nt] {msg}", file=sys.stderr, flush=True)


def loadavg() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def peak_rss_mb() -> float:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def median(ts):
    s = sorted(ts)
    return s[len(s) // 2]


# ------------------------------------------------------------------------------------------
# worker (runs in the peer venv: numpy, jax 0.4.23, neural_tangents 0.6.5 only)

def worker(npz_in: str, npz_out: str, reps: int, budget_s: float, jobs: list) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import jax
    import jax.numpy as jnp
    import numpy as np
    import neural_tangents as nt

    data = np.load(npz_in)
    x_full = jnp.asarray(data["x"])
    hp = jax.lax.Precision.HIGHEST

    def f(params, xx):
        h = jax.nn.relu(jnp.matmul(xx, params["W1"], precision=hp) + params["b1"])
        return jnp.matmul(h, params["W2"], precision=hp) + params["b2"]

    results, kernels = [], {}
    for job in jobs:
        w, name, n = int(job["width"]), job["impl"], int(job["n"])
        x = x_full[:n]
        params = {k: jnp.asarray(data[f"w{w}_{k}"]) for k in ("W1", "b1", "W2", "b2")}
        impl = getattr(nt.NtkImplementation, name)
        kfn = nt.empirical_ntk_fn(f, trace_axes=(-1,), vmap_axes=0, implementation=impl)
        bs = BATCH.get(name, {}).get(w)
        compile_s = None
        if bs:  # nt.batch jits each block itself (its docs: do not jit the batched function)
            call = nt.batch(kfn, batch_size=bs, store_on_device=True)
        else:
            t = time.perf_counter()
            compiled = jax.jit(kfn).lower(x, None, params).compile()
            compile_s = time.perf_counter() - t
            call = compiled
        log(f"n {n} width {w} {name}{f' (nt.batch {bs})' if bs else ''}: first call ...")
        t = time.perf_counter()
        theta = jax.block_until_ready(call(x, None, params))
        first = time.perf_counter() - t
        if first > budget_s:
            ts = [first]  # over the budget: that (compiled, warm) call is the one timing
        else:
            ts = []
            for _ in range(reps):
                t = time.perf_counter()
                theta = jax.block_until_ready(call(x, None, params))
                ts.append(time.perf_counter() - t)
        log(f"n {n} width {w} {name}: compile {compile_s if compile_s is None else round(compile_s, 2)} s, "
            f"first {first:.2f}s, timed {', '.join(f'{v:.3f}' for v in ts)} s (load {loadavg()})")
        kernels[f"n{n}_w{w}_{name}"] = np.asarray(theta, np.float32)
        results.append({"n": n, "width": w, "impl": name, "batch_size": bs, "compile_s": compile_s,
                        "first_call_s": first, "times_s": ts, "median_s": median(ts), "reps": len(ts),
                        "dtype": str(theta.dtype), "peak_rss_mb_so_far": peak_rss_mb(),
                        "loadavg_after": loadavg()})
    np.savez(npz_out, **kernels)
    info = {"python": platform.python_version(), "jax": jax.__version__,
            "jaxlib": __import__("jaxlib").__version__, "neural_tangents": nt.__version__,
            "numpy": np.__version__, "backend": jax.default_backend(), "results": results}
    print(json.dumps(info))


# ------------------------------------------------------------------------------------------
# orchestration (project venv)

def setup(base_python: str) -> None:
    req = BENCH / "requirements-peer-nt.txt"
    if not (PEER_VENV / "bin" / "python").exists():
        log(f"creating {PEER_VENV} with {base_python}")
        subprocess.run([base_python, "-m", "venv", str(PEER_VENV)], check=True)
    subprocess.run([str(PEER_VENV / "bin" / "pip"), "install", "-q", "-r", str(req)], check=True)
    subprocess.run([str(PEER_VENV / "bin" / "python"), "-c",
                    "import neural_tangents as nt, jax; print('neural-tangents', nt.__version__, "
                    "'jax', jax.__version__)"], check=True)


def machine() -> dict:
    out = {"cpu_model": "unknown", "cores": os.cpu_count(), "os": platform.platform()}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in lscpu.splitlines():
            if line.startswith("Model name:"):
                out["cpu_model"] = line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def closed_form_times(x, cases: list[tuple[int, int]], params_by_w: dict, reps: int
                      ) -> tuple[list[dict], dict]:
    """Closed form on each (n, width) case: first call (compile), then median of ≥ 5 warm calls."""
    import jax
    import numpy as np

    sys.path.insert(0, str(REPO))
    import ntk_core as nc

    rows, kernels = [], {}
    for n, w in cases:
        xj = jax.numpy.asarray(x[:n])
        p = {k: jax.numpy.asarray(v) for k, v in params_by_w[w].items()}
        t = time.perf_counter()
        theta = jax.block_until_ready(nc.empirical_ntk(p, xj, method="closed_form"))  # compile + run
        first = time.perf_counter() - t
        ts = []
        for _ in range(max(reps, 5)):
            t = time.perf_counter()
            theta = jax.block_until_ready(nc.empirical_ntk(p, xj, method="closed_form"))
            ts.append(time.perf_counter() - t)
        kernels[(n, w)] = np.asarray(theta, np.float32)
        rows.append({"n": n, "width": w, "impl": "ntk_core closed_form", "first_call_s": first,
                     "times_s": ts, "median_s": median(ts), "reps": len(ts)})
        log(f"n {n} width {w} closed form: first {first:.2f}s, median {median(ts) * 1e3:.1f} ms")
    return rows, kernels


def generic_times(x, cases: list[tuple[int, int]], params_by_w: dict, reps: int, budget_s: float,
                  cf_kernels: dict) -> list[dict]:
    """This project's generic paths on the same arrays: ``empirical_ntk(method="autodiff")``
    (per-logit jax.grad Jacobians, contracted) and ``method="ntk_vp"`` (matrix-free vjp/jvp,
    formed densely). Same protocol as the closed form (first call compiles; a first call over
    ``budget_s`` is the one timing). Skipped where autodiff's two (n, P) Jacobians exceed 4 GB."""
    import jax
    import numpy as np

    sys.path.insert(0, str(REPO))
    import ntk_core as nc

    rows = []
    for n, w in cases:
        xj = jax.numpy.asarray(x[:n])
        p = {k: jax.numpy.asarray(v) for k, v in params_by_w[w].items()}
        n_params = sum(int(np.size(v)) for v in p.values())
        for method in ("autodiff", "ntk_vp"):
            if method == "autodiff" and 2 * n * n_params * 4 > 4e9:
                rows.append({"n": n, "width": w, "impl": f"ntk_core {method}", "skipped":
                             f"two (n, P) Jacobians = {2 * n * n_params * 4 / 1e9:.1f} GB > 4 GB"})
                continue
            t = time.perf_counter()
            theta = jax.block_until_ready(nc.empirical_ntk(p, xj, method=method))
            first = time.perf_counter() - t
            ts = [first] if first > budget_s else []
            for _ in range(0 if ts else max(reps, 3)):
                t = time.perf_counter()
                theta = jax.block_until_ready(nc.empirical_ntk(p, xj, method=method))
                ts.append(time.perf_counter() - t)
            ref = cf_kernels[(n, w)].astype(np.float64)
            rows.append({"n": n, "width": w, "impl": f"ntk_core {method}", "first_call_s": first,
                         "times_s": ts, "median_s": median(ts), "reps": len(ts),
                         "max_rel_diff_vs_closed_form": float(np.abs(np.asarray(theta, np.float64) - ref).max()
                                                              / np.abs(ref).max()),
                         "loadavg_after": loadavg()})
            log(f"n {n} width {w} {method}: first {first:.2f}s, median {median(ts):.3f} s")
    return rows


def run(n: int, widths: list[int], reps: int, budget_s: float, impls: list[str],
        heavy: set[str], heavy_n: int, generic_n: int = 0) -> dict:
    import jax
    import numpy as np

    sys.path.insert(0, str(REPO))
    import ntk_core as nc

    peer_py = PEER_VENV / "bin" / "python"
    if not peer_py.exists():
        raise SystemExit(f"{peer_py} missing: run `.venv/bin/python bench/peer_nt.py --setup` first")
    x_all, _ = nc.load_bundled()
    x = np.ascontiguousarray(np.asarray(x_all[:n], np.float32))
    params_by_w = {w: {k: np.asarray(v) for k, v in nc.init_params(jax.random.PRNGKey(0), w).items()}
                   for w in widths}
    jobs = [{"width": w, "impl": i, "n": heavy_n if f"{i}@{w}" in heavy else n}
            for w in widths for i in impls]
    out: dict = {"n": n, "widths": widths, "dtype": "float32", "parameterization": "standard",
                 "heavy": sorted(heavy), "heavy_n": heavy_n, "budget_s": budget_s, "reps": reps,
                 "machine": machine(), "loadavg_start": loadavg(),
                 "project": {"python": platform.python_version(), "jax": jax.__version__}}
    with tempfile.TemporaryDirectory(prefix="ntk-peer-") as tmp:
        npz_in, npz_out = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.npz")
        arrays = {"x": x}
        for w, p in params_by_w.items():
            arrays.update({f"w{w}_{k}": v for k, v in p.items()})
        np.savez(npz_in, **arrays)
        cmd = [str(peer_py), str(Path(__file__).resolve()), "--worker", npz_in, npz_out,
               "--reps", str(reps), "--budget-s", str(budget_s), "--jobs", json.dumps(jobs)]
        env = {**os.environ, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3"}
        env.pop("PYTHONPATH", None)
        t = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp)
        other: list[str] = []
        for line in p.stderr:  # progress lines live, TensorFlow's chatter kept for errors
            (sys.stderr.write(line) if line.startswith("[peer_nt]") else other.append(line))
        stdout = p.stdout.read()
        p.wait()
        out["peer_process_s"] = time.perf_counter() - t
        if p.returncode != 0:
            raise RuntimeError(f"peer worker failed ({p.returncode}):\n{''.join(other)[-4000:]}")
        out["peer"] = json.loads(stdout.strip().splitlines()[-1])
        with np.load(npz_out) as z:
            nt_kernels = {k: z[k] for k in z.files}
    out["loadavg_after_peer"] = loadavg()
    cases = sorted({(j["n"], j["width"]) for j in jobs}, key=lambda c: (c[1], -c[0]))
    cf_rows, cf_kernels = closed_form_times(x, cases, params_by_w, reps)
    out["closed_form"] = cf_rows
    if generic_n:
        gcases = sorted({(min(generic_n, n), w) for w in widths}, key=lambda c: c[1])
        missing = [c for c in gcases if c not in cf_kernels]
        if missing:
            more_rows, more = closed_form_times(x, missing, params_by_w, reps)
            out["closed_form"] += more_rows
            cf_kernels.update(more)
        out["generic"] = generic_times(x, gcases, params_by_w, reps, budget_s, cf_kernels)
    out["loadavg_end"] = loadavg()
    for r in out["peer"]["results"]:
        cf = next(c for c in cf_rows if c["width"] == r["width"] and c["n"] == r["n"])
        ref = nt_kernels[f"n{r['n']}_w{r['width']}_{r['impl']}"].astype(np.float64)
        r["max_rel_diff_vs_closed_form"] = float(np.abs(ref - cf_kernels[(r["n"], r["width"])]).max()
                                                 / np.abs(ref).max())
        r["closed_form_speedup"] = r["median_s"] / cf["median_s"]
        r["projected_s_at_n"] = r["median_s"] * (n / r["n"]) ** 2 if r["n"] != n else None
    table = []
    for w in widths:
        cf = next(c for c in cf_rows if c["width"] == w and c["n"] == n)
        at_n = [r for r in out["peer"]["results"] if r["width"] == w and r["n"] == n]
        best = min(at_n, key=lambda r: r["median_s"])
        table.append({"width": w, "n": n, "closed_form_median_s": cf["median_s"], "nt_best_impl": best["impl"],
                      "nt_best_median_s": best["median_s"],
                      "speedup_vs_nt_best": best["median_s"] / cf["median_s"],
                      "max_rel_diff_worst_impl": max(r["max_rel_diff_vs_closed_form"]
                                                     for r in out["peer"]["results"] if r["width"] == w)})
    out["summary"] = table
    goal = max(table, key=lambda t: t["width"])
    out["goal"] = {"width": goal["width"], "speedup_target": 6.0, "rel_diff_target": 1e-5,
                   "speedup": goal["speedup_vs_nt_best"], "max_rel_diff": goal["max_rel_diff_worst_impl"],
                   "pass": bool(goal["speedup_vs_nt_best"] >= 6.0 and goal["max_rel_diff_worst_impl"] <= 1e-5)}
    return out


def _t(sec: float) -> str:
    return f"{sec:.2f} s" if sec >= 1 else f"{sec * 1e3:.1f} ms"


def markdown(res: dict) -> str:
    m, pe, n = res["machine"], res["peer"], res["n"]
    L = ["## Peer benchmark: neural-tangents 0.6.5 vs the closed form", "",
         f"Traced empirical NTK Θ (mean over the 10 logits, nt's `trace_axes=(-1,)`) of the one-hidden-layer "
         f"ReLU MLP on the first n bundled MNIST images, standard parameterization: the same float32 "
         "parameters (`init_params(PRNGKey(0), w)`) and inputs in both libraries, handed over in one .npz. "
         f"neural-tangents {pe['neural_tangents']} on JAX {pe['jax']} (own venv, Python {pe['python']}); "
         f"this project on JAX {res['project']['jax']} (Python {res['project']['python']}); both on the CPU, "
         "the nt worker process and this project's timings one after the other, never at the same time "
         "(other load on the machine: see below). nt: `jax.jit(nt.empirical_ntk_fn(f, trace_axes=(-1,), "
         "vmap_axes=0, implementation=…))`, compiled ahead of time; closed form: `empirical_ntk(params, x)`, "
         "compiled by a first call. Times are warm medians of the timed calls, each ending in "
         "`block_until_ready`. Max rel. diff = max |Θ_nt − Θ_closed| / max |Θ_nt| on the same n.", "",
         f"Machine: {m['cpu_model']} (`lscpu`), {m['cores']} cores, shared with other sessions: 1/5/15-min "
         f"load average {res['loadavg_start']} at start, {res['loadavg_after_peer']} after the nt process, "
         f"{res['loadavg_end']} at the end.", "",
         "| width | n | implementation | time (median) | timed calls | closed form faster by | max rel. diff |",
         "|---|---|---|---|---|---|---|"]
    for w in res["widths"]:
        for cf in sorted((c for c in res["closed_form"] if c["width"] == w), key=lambda c: -c["n"]):
            L.append(f"| {w} | {cf['n']} | **ntk_core closed form** | **{_t(cf['median_s'])}** | {cf['reps']} | – | – |")
        for r in sorted((r for r in pe["results"] if r["width"] == w), key=lambda r: (-r["n"], r["median_s"])):
            extra = f" via `nt.batch`({r['batch_size']})" if r["batch_size"] else ""
            reps = f"{r['reps']}" + (f" (first call > {res['budget_s']:g} s budget)" if r["reps"] == 1 else "")
            proj = (f" (n = {n}: ≈ {r['projected_s_at_n']:.0f} s by n² scaling, not run)"
                    if r.get("projected_s_at_n") else "")
            L.append(f"| {w} | {r['n']} | nt {r['impl']}{extra} | {_t(r['median_s'])}{proj} | {reps} | "
                     f"{r['closed_form_speedup']:.1f}× | {r['max_rel_diff_vs_closed_form']:.1e} |")
    for g in res.get("generic", []):
        if g.get("skipped"):
            L.append(f"| {g['width']} | {g['n']} | {g['impl']} | not run: {g['skipped']} | – | – | – |")
            continue
        cf = next(c for c in res["closed_form"] if c["width"] == g["width"] and c["n"] == g["n"])
        L.append(f"| {g['width']} | {g['n']} | {g['impl']} | {_t(g['median_s'])} | {g['reps']} | "
                 f"{g['median_s'] / cf['median_s']:.1f}× | {g['max_rel_diff_vs_closed_form']:.1e} (vs closed form) |")
    L.append("")
    for s in res["summary"]:
        L.append(f"* width {s['width']}, n = {s['n']}: closed form **{s['speedup_vs_nt_best']:.1f}×** faster "
                 f"than neural-tangents' fastest implementation ({s['nt_best_impl']}); kernels agree to "
                 f"{s['max_rel_diff_worst_impl']:.1e} or better (worst implementation).")
    g = res["goal"]
    L += ["", f"Goal (width {g['width']}): ≥ {g['speedup_target']:g}× faster than nt's best, rel. diff ≤ "
          f"{g['rel_diff_target']:g} — measured **{g['speedup']:.1f}×** and **{g['max_rel_diff']:.1e}**: "
          f"**{'PASS' if g['pass'] else 'MISS'}**.", ""]
    if res.get("generic"):
        L += ["This project's generic paths (`empirical_ntk(method=\"autodiff\")`: per-logit `jax.grad` "
              "Jacobians contracted; `method=\"ntk_vp\"`: matrix-free vjp/jvp formed densely) were timed "
              f"at n = {res['generic'][0]['n']} with `--add-generic`, in a later process on the same "
              "arrays and protocol (load average at its end "
              f"{res.get('generic_loadavg_end', '?')}); their ratio is against the closed form of the main run.", ""]
    if res.get("heavy"):
        L += [f"Not run at n = {n}: {', '.join(res['heavy'])} (implementation@width). Measured at n = "
              f"{res['heavy_n']} instead, in the same run, against the closed form at that n; the "
              "projection assumes the n² cost of a kernel. JACOBIAN_CONTRACTION holds n·10·P Jacobian "
              "floats (8 GB at width 128, 65 GB at width 1024 for n = 2000) and NTK_VECTOR_PRODUCTS "
              "costs n² network passes; both are already far slower than STRUCTURED_DERIVATIVES at the "
              "smaller n, so the fastest implementation at n = 2000 is measured.", ""]
    cmd = res.get("command", ".venv/bin/python bench/peer_nt.py --json --markdown BENCHMARKS.md")
    L += ["Rerun (`--setup` once creates the isolated /work/peer-venv from "
          "`bench/requirements-peer-nt.txt`; neural-tangents is never a dependency of the app or "
          "its tests):", "", "```bash", ".venv/bin/python bench/peer_nt.py --setup", cmd, "```", ""]
    return "\n".join(L)


MD_BEGIN = "<!-- bench/peer_nt.py: generated section begin -->"
MD_END = "<!-- bench/peer_nt.py: generated section end -->"


def write_markdown(res: dict, path: Path) -> None:
    block = MD_BEGIN + "\n" + markdown(res) + MD_END + "\n"
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    if MD_BEGIN in old and MD_END in old:
        head, rest = old.split(MD_BEGIN, 1)
        text = head + block + rest.split(MD_END, 1)[1].lstrip("\n")
    else:
        text = old + ("\n" if old else "") + block
    path.write_text(text, encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--setup", action="store_true", help=f"create/refresh the peer venv at {PEER_VENV}")
    ap.add_argument("--base-python", default="python3.11", help="interpreter for --setup's venv")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--widths", default="128,1024")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--budget-s", type=float, default=60.0,
                    help="an implementation whose warm-up call exceeds this is timed once")
    ap.add_argument("--impls", default=",".join(IMPLS))
    ap.add_argument("--heavy", default=",".join(HEAVY),
                    help="impl@width pairs measured at --heavy-n instead of --n (cost, memory)")
    ap.add_argument("--heavy-n", type=int, default=250)
    ap.add_argument("--generic-n", type=int, default=250,
                    help="also time this project's autodiff and ntk_vp paths at this n (0: skip)")
    ap.add_argument("--json", action="store_true", help="print ONE JSON object on stdout")
    ap.add_argument("--markdown", metavar="PATH", help="write/refresh the report section in PATH")
    ap.add_argument("--save", metavar="PATH", default=str(BENCH / "last_peer_nt.json"))
    ap.add_argument("--from-json", metavar="PATH", help="re-render --markdown from a saved run")
    ap.add_argument("--add-generic", action="store_true",
                    help="with --from-json: time the project's generic paths now and add them")
    ap.add_argument("--worker", nargs=2, metavar=("IN", "OUT"), help=argparse.SUPPRESS)
    ap.add_argument("--jobs", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        worker(a.worker[0], a.worker[1], a.reps, a.budget_s, json.loads(a.jobs))
        return
    if a.setup:
        setup(a.base_python)
        return
    if a.from_json:
        res = json.loads(Path(a.from_json).read_text())
        if a.add_generic:  # time the project's generic paths now, add them to the saved run
            import jax
            import numpy as np
            sys.path.insert(0, str(REPO))
            import ntk_core as nc
            x = np.ascontiguousarray(np.asarray(nc.load_bundled()[0][: res["n"]], np.float32))
            pbw = {w: {k: np.asarray(v) for k, v in nc.init_params(jax.random.PRNGKey(0), w).items()}
                   for w in res["widths"]}
            gcases = sorted({(min(a.generic_n, res["n"]), w) for w in res["widths"]}, key=lambda c: c[1])
            rows, kern = closed_form_times(x, gcases, pbw, res["reps"])
            have = {(c["n"], c["width"]) for c in res["closed_form"]}
            res["closed_form"] += [r for r in rows if (r["n"], r["width"]) not in have]
            res["generic"] = generic_times(x, gcases, pbw, res["reps"], res["budget_s"], kern)
            res["generic_loadavg_end"] = loadavg()
            res["command"] = res.get("command", "") + " && " + " ".join(
                [".venv/bin/python", "bench/peer_nt.py"] + sys.argv[1:])
            Path(a.from_json).write_text(json.dumps(res, indent=1))
    else:
        if a.reps < 3:
            raise SystemExit("--reps must be ≥ 3 (median of at least three warm calls)")
        res = run(a.n, [int(w) for w in a.widths.split(",")], a.reps, a.budget_s, a.impls.split(","),
                  {h for h in a.heavy.split(",") if h}, a.heavy_n, a.generic_n)
        res["command"] = " ".join([".venv/bin/python", "bench/peer_nt.py"] + sys.argv[1:])
        if a.save:
            Path(a.save).write_text(json.dumps(res, indent=1))
    if a.markdown:
        write_markdown(res, Path(a.markdown))
    if a.json:
        print(json.dumps(res))
    else:
        print(markdown(res))


if __name__ == "__main__":
    main()
