"""Fresh-process probe: XLA compile time of the training program, as shipped vs init hoisted.

    python bench/_compile_probe.py [--n 2000] [--epochs 30] [--reps 3]

Compiles (``.trace().lower().compile()``, caches cleared before every repetition, the
persistent compilation cache off) for the 4-run L2 grid of bench/_grid_probe.py:

  asis_g4      ntk_core's ``_train_grid`` for G = 4 (what ``run_sweep`` compiles);
  asis_g1      the same for G = 1 (what each sequential ``runner.run`` needs, compiled once);
  hoist_g4     the G = 4 training program with the initial parameters passed in as an
               argument (init traced outside the vmap), plus
  hoist_init   the separate G-independent jitted init it needs (once per width);
  init_vmap_g4 the vmapped init alone (the part of asis_g4 that hoisting removes).

Reports the minimum over repetitions (wall and process CPU). ONE JSON object on stdout.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import time
import types


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    os.environ["JAX_ENABLE_COMPILATION_CACHE"] = "false"
    import jax

    jax.config.update("jax_enable_compilation_cache", False)
    import jax.numpy as jnp

    import ntk_core as nc
    from ntk_core._src import model as _model
    from ntk_core._src import train as _train

    split = nc.load_split(args.n, 500, 0)
    data = tuple(jnp.asarray(a) for a in (split.x_train, split.y_train, split.x_val, split.y_val))
    kw = dict(width=128, parameterization="standard", reg="l2", optimizer="sgd",
              epochs=args.epochs, batch_size=0)

    def grid_args(g):
        keys = jnp.stack([jax.random.PRNGKey(0)] * g)
        return (jnp.full(g, 1e-3, jnp.float32), jnp.full(g, 0.1, jnp.float32), keys)

    @functools.partial(jax.jit, static_argnames=("width", "parameterization"))
    def init_one(key, *, width, parameterization):
        k_init, _ = jax.random.split(key)
        return _model.init_params(k_init, width, parameterization, dtype=jnp.float32)

    @functools.partial(jax.jit, static_argnames=tuple(kw))
    def train_hoisted(strengths, lrs, keys, params0, x, y, xv, yv, **kw_):
        def one(s, lr, key, p0):
            fake = types.SimpleNamespace(**vars(_model))
            fake.init_params = lambda *a, **k: p0  # trace-time substitution only
            real, _train._model = _train._model, fake
            try:
                return _train._single_run(s, lr, key, x, y, xv, yv, **kw_)
            finally:
                _train._model = real
        return jax.vmap(one)(strengths, lrs, keys, params0)

    g4 = grid_args(4)
    p0 = jax.tree_util.tree_map(lambda a: jnp.stack([a] * 4),
                                init_one(g4[2][0], width=128, parameterization="standard"))
    jobs = {
        "asis_g4": lambda: _train._train_grid.trace(*g4, *data, **kw),
        "asis_g1": lambda: _train._train_grid.trace(*grid_args(1), *data, **kw),
        "hoist_g4": lambda: train_hoisted.trace(*g4, p0, *data, **kw),
        "hoist_init": lambda: init_one.trace(g4[2][0], width=128, parameterization="standard"),
        "init_vmap_g4": lambda: jax.jit(lambda k: jax.vmap(
            lambda kk: _model.init_params(jax.random.split(kk)[0], 128, "standard"))(k)).trace(g4[2]),
    }
    out: dict = {"n": args.n, "epochs": args.epochs, "reps": args.reps}
    for name, job in jobs.items():
        walls, cpus = [], []
        for _ in range(args.reps):
            jax.clear_caches()
            c0, t0 = time.process_time(), time.perf_counter()
            job().lower().compile()
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
        out[f"{name}_s"] = min(walls)
        out[f"{name}_cpu_s"] = min(cpus)
        out[f"{name}_all_s"] = walls
    out["hoist_total_g4_s"] = out["hoist_g4_s"] + out["hoist_init_s"]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
