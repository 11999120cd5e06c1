"""One checkpoint's spectrum of a deeper MLP by each generic method (issue 12).

What the runner pays per checkpoint (top-10 and trace) when the sidebar names an MLP of
depth 2–4: the layer-wise kernel ("structured", ``ntk_core.mlp_traced_ntk`` + ARPACK on the
formed kernel), the Jacobian contraction ("autodiff") and the matrix-free operator
("ntk_vp", ARPACK on Θ·v and its exact diagonal). Warm calls (one untimed call first),
best of ``--repeat``, one process, same parameters and inputs; the top-10 of every method
are compared. Ratios are the result; absolute times depend on the machine (recorded).

    .venv/bin/python bench/deep_mlp_bench.py [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import ntk_core as nc  # noqa: E402
from run import loadavg, machine_info  # noqa: E402

CASES = ((2, 128, 200), (3, 128, 200), (2, 128, 1000), (4, 256, 1000))
METHODS = ("structured", "autodiff", "ntk_vp")


def one_checkpoint(depth: int, width: int, n: int, repeat: int) -> dict:
    arch = nc.Architecture("mlp", width, depth, "standard")
    params = arch.init(jax.random.PRNGKey(0))
    stack = {k: v[None] for k, v in params.items()}
    x = jnp.asarray(nc.load_split(n, 100, 0, "bundled").x_train)
    out: dict = {"depth": depth, "width": width, "n": n}
    tops = {}
    for m in METHODS:
        if m == "autodiff" and n > 200:
            continue   # minutes per call at n = 1000 (see the n = 200 rows)
        best = float("inf")
        for i in range(repeat + 1):
            t0 = time.perf_counter()
            cs = nc.checkpoint_spectra(x, stack, parameterization="standard", top_k=10,
                                       apply_fn=arch.apply, generic_method=m)
            dt = time.perf_counter() - t0
            if i:
                best = min(best, dt)
        out[f"{m}_s"] = best
        tops[m] = cs.topk[0]
    ref = tops["structured"]
    for m in tops:
        out[f"{m}_top10_rel_diff"] = float(np.abs(tops[m] - ref).max() / ref[0])
        out[f"{m}_vs_structured"] = out[f"{m}_s"] / out["structured_s"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    res = {"machine": machine_info(), "loadavg_before": loadavg(), "cases": []}
    for depth, width, n in CASES:
        r = one_checkpoint(depth, width, n, args.repeat)
        res["cases"].append(r)
        print(json.dumps(r), file=sys.stderr, flush=True)
    res["loadavg_after"] = loadavg()
    Path(__file__).with_name("last_deep_mlp_bench.json").write_text(json.dumps(res, indent=1))
    if args.json:
        print(json.dumps(res))
    else:
        for r in res["cases"]:
            print(f"MLP {r['depth']}×{r['width']} n={r['n']}: structured {r['structured_s']:.3f} s; "
                  + "; ".join(f"{m} {r[m + '_s']:.2f} s ({r[m + '_vs_structured']:.0f}×, top-10 "
                              f"diff {r[m + '_top10_rel_diff']:.1e})" for m in METHODS[1:] if m + "_s" in r))


if __name__ == "__main__":
    main()
