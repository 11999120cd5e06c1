"""What a user waits for when the sidebar names another network (issue 12).

One uncached ``runner.run`` per network on the same data and protocol (fresh results store,
JAX compile cache off, one process), split into training and spectra by the runner's own
progress stages, plus the whole-spectrum call of the Spectrum explorer at the last epoch.
Ratios against the one-hidden MLP (closed form) are the result; absolute times depend on
the machine (recorded) and its load (recorded before and after).

    .venv/bin/python bench/networks_bench.py [--n 500] [--epochs 10] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import runner  # noqa: E402
from run import loadavg, machine_info  # noqa: E402

NETWORKS = (("mlp", 1, 128), ("mlp", 2, 128), ("mlp", 3, 128), ("cnn", 1, 8))


def one(arch: str, depth: int, width: int, n: int, epochs: int, store) -> dict:
    limits = runner.Limits()
    c = runner.validate_config({"arch": arch, "depth": depth, "width": width, "n_train": n,
                                "epochs": epochs, "top_k": 10}, limits)
    spectra_marks: list[float] = []

    def progress(p):
        # the runner reports each checkpoint's spectrum when it is done
        if p.stage == runner.Stage.SPECTRA and p.done > 0:
            spectra_marks.append(time.perf_counter())

    t0 = time.perf_counter()
    r = runner.run(c, limits, store=store, progress=progress)
    t1 = time.perf_counter()
    sp = runner.spectrum_at(c, c.epochs, limits, store=store)
    t2 = time.perf_counter()
    # epochs without a spectrum (generic networks) report almost instantly: time per
    # computed checkpoint from the spacing of the reports of the computed ones
    done = r.topk[:, 0] == r.topk[:, 0]
    k = int(done.sum())
    gaps = [b - a for a, b in zip(spectra_marks, spectra_marks[1:])]
    per = sorted(gaps)[-(k - 1):] if k > 1 else []
    per_ckpt = sum(per) / len(per) if per else float("nan")
    spectra_start = t1 - per_ckpt * k
    return {"network": c.arch_label, "ntk_method": c.ntk_method, "spectrum_method": r.spectrum_method,
            "epochs_with_spectra": int((r.topk[:, 0] == r.topk[:, 0]).sum()),
            "run_s": t1 - t0, "train_s": spectra_start - t0, "spectra_s": t1 - spectra_start,
            "spectrum_per_checkpoint_s": per_ckpt,
            "whole_spectrum_s": t2 - t1, "whole_spectrum_method": sp.method,
            "lambda_max_end": float(r.topk[-1, 0]), "max_residual": float(r.lanczos_residual[r.topk[:, 0] == r.topk[:, 0]].max())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    out = {"machine": machine_info(), "loadavg_before": loadavg(), "n": args.n, "epochs": args.epochs,
           "runs": []}
    with tempfile.TemporaryDirectory() as d:
        with runner.open_store(Path(d) / "store") as store:
            for arch, depth, width in NETWORKS:
                res = one(arch, depth, width, args.n, args.epochs, store)
                out["runs"].append(res)
                print(json.dumps(res), file=sys.stderr, flush=True)
    base = out["runs"][0]
    for r in out["runs"]:
        r["run_ratio_vs_closed_form"] = r["run_s"] / base["run_s"]
        r["whole_spectrum_ratio_vs_closed_form"] = r["whole_spectrum_s"] / base["whole_spectrum_s"]
    out["loadavg_after"] = loadavg()
    Path(__file__).with_name("last_networks_bench.json").write_text(json.dumps(out, indent=1))
    if args.json:
        print(json.dumps(out))
    else:
        for r in out["runs"]:
            print(f"{r['network']:>10} {r['ntk_method']:>11}: run {r['run_s']:6.1f} s (train {r['train_s']:5.1f}, "
                  f"spectra {r['spectra_s']:5.1f} at {r['epochs_with_spectra']} epochs) ×{r['run_ratio_vs_closed_form']:.1f}; "
                  f"whole spectrum {r['whole_spectrum_s']:5.1f} s ({r['whole_spectrum_method']})")


if __name__ == "__main__":
    main()
