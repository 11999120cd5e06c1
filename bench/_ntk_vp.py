"""Section ``ntk_vp`` of bench/run.py: the generic matrix-free NTK (``python bench/run.py --only ntk_vp``).

Three fresh processes (bench/_ntk_vp_probe.py), each measured by ``run_probe`` (wall time,
peak RSS from wait4, the other processes' share of the machine meanwhile):

* ratio — one Θ·v by ntk_vp vs the closed form's matrix-free product, n = 10,000, width 128
  (traced, and the full (n·10)² kernel), warm, best of 3 × 2 interleaved rounds;
* top-10 of the traced NTK of the depth-3 MLP (width 128) at n = 60,000;
* top-10 of the traced NTK of the default CNN (8 channels) at n = 10,000.

Quick mode: n = 3,000 / 10,000 / 3,000.
"""

from __future__ import annotations


def run(quick: bool, run_probe) -> dict:
    n_ratio, n_mlp, n_cnn = (3_000, 10_000, 3_000) if quick else (10_000, 60_000, 10_000)
    out = {"quick": quick}
    out["ratio"] = run_probe("_ntk_vp_probe.py", ["ratio", "--n", str(n_ratio), "--width", "128"])
    out["mlp_depth3"] = run_probe("_ntk_vp_probe.py", ["top", "--arch", "mlp", "--depth", "3",
                                                       "--width", "128", "--n", str(n_mlp)], timeout=3600)
    out["cnn"] = run_probe("_ntk_vp_probe.py", ["top", "--arch", "cnn", "--width", "8",
                                                "--n", str(n_cnn)], timeout=3600)
    r, m, c = out["ratio"], out["mlp_depth3"], out["cnn"]
    out["headline"] = {
        f"ntk_vp_vs_closed_matvec_ratio_n{n_ratio}_w128": r["traced_ratio"],
        f"ntk_vp_full_vs_closed_matvec_ratio_n{n_ratio}_w128": r["full_ratio"],
        f"ntk_vp_vs_closed_flop_ratio_n{n_ratio}_w128": r["traced_flop_ratio"],
        f"ntk_vp_top10_s_n{n_mlp}_mlp_depth3": m["top10_s"],
        f"ntk_vp_top10_peak_rss_mb_n{n_mlp}_mlp_depth3": m["process_peak_rss_mb_wait4"],
        f"ntk_vp_matvec_gflops_n{n_mlp}_mlp_depth3": m["matvec_gflops"],
        f"ntk_vp_top10_s_n{n_cnn}_cnn": c["top10_s"],
        f"ntk_vp_top10_peak_rss_mb_n{n_cnn}_cnn": c["process_peak_rss_mb_wait4"],
        f"ntk_vp_matvec_gflops_n{n_cnn}_cnn": c["matvec_gflops"],
        "ntk_vp_gemm_gflops": max(r["gemm_gflops"], m["gemm_gflops"], c["gemm_gflops"]),
    }
    return out
