"""Sample-sharded spectra (ntk_core/_src/sharded.py).

In this process JAX already runs with one CPU device, so the multi-device checks run in a
SUBPROCESS with ``XLA_FLAGS=--xla_force_host_platform_device_count=4``: there the same
functions run on a 4-device mesh and on a 1-device mesh, and the test checks the values
(≤ 1e-6 relative), where the data actually live (``sharding`` and ``addressable_shards``
shapes of the inputs, activations, mask and eigenvectors: each device holds 1/4 of the
samples), and the compiled program (all-reduces, no all-gather of anything).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntk_core as nc
from ntk_core._src import sharded as sh

ROOT = Path(__file__).resolve().parents[1]
K = 5  # one k (one compiled solver) for the in-process tests


@pytest.fixture(scope="module")
def small():
    x_all, _ = nc.load_bundled()
    x = np.asarray(x_all[:400])
    params = nc.init_params(jax.random.PRNGKey(3), 32)
    return params, x


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.abs(b)))


def test_one_device_top_k_and_trace_match_the_single_device_library(small):
    params, x = small
    n = x.shape[0]
    res = sh.operator_top_k(sh.sharded_closed_form(params, x), K)
    assert isinstance(res, nc.EigResult)
    assert res.method == "sharded_block_lanczos" and res.converged
    assert res.values.shape == (K,) and np.all(np.diff(res.values) <= 0)
    dense = np.linalg.eigvalsh(nc.traced_ntk_float64(params, x))[::-1][:K]
    st = nc.matfree_state(params, jnp.asarray(x))
    arpack = nc.top_k_eigs(lambda v: nc.matfree_matvec(st, jnp.asarray(v)), K, n=n)
    assert _rel(res.values, dense) <= 1e-6
    assert _rel(res.values, arpack) <= 1e-6
    assert res.max_residual < 1e-3 and res.matvecs > 10 and res.note == ""
    trace = sh.operator_trace(sh.sharded_closed_form(params, x))
    ref = float(np.sum(np.asarray(nc.ntk_diagonal(params, jnp.asarray(x)), np.float64)))
    assert abs(trace - ref) / ref <= 1e-6


def test_operator_product_is_the_matrix_free_product(small):
    params, x = small
    op = sh.sharded_closed_form(params, x, parameterization="ntk")
    v = np.random.default_rng(0).standard_normal((x.shape[0], 3)).astype(np.float32)
    got = np.asarray(op.matmat(sh.shard_rows(v, op.mesh)))[: x.shape[0]]
    st = nc.matfree_state(params, jnp.asarray(x), parameterization="ntk")
    want = np.asarray(nc.matfree_matmat(st, jnp.asarray(v)))
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()
    hv = op.host_matvec()(v[:, 0].astype(np.float64))
    assert hv.dtype == np.float64 and np.abs(hv - want[:, 0]).max() <= 1e-5 * np.abs(want).max()


def test_explicit_scales_and_vectors(small):
    params, x = small
    padded = nc.pad_params(params, 48)
    scales = nc.layer_scales(32, "ntk")
    a = sh.operator_top_k(sh.sharded_closed_form(params, x, parameterization="ntk"), K,
                          return_vectors=True)
    b = sh.operator_top_k(sh.sharded_closed_form(padded, x, scales=scales), K, return_vectors=True)
    assert _rel(b.values, a.values) <= 1e-6
    assert a.vectors.shape == (x.shape[0], K) and a.vectors.dtype == np.float64
    theta = nc.traced_ntk_float64(params, x, parameterization="ntk")
    r = theta @ a.vectors - a.vectors * a.values[None, :]
    assert np.max(np.linalg.norm(r, axis=0) / a.values) < 1e-3
    tr = sh.operator_trace(sh.sharded_closed_form(padded, x, scales=scales))
    assert abs(tr - np.trace(theta)) / np.trace(theta) <= 1e-6


def test_generic_jacobian_operator_is_the_closed_form_product(small):
    params, x = small
    x = x[:64]
    op = sh.sharded_jacobian(functools.partial(nc.apply, parameterization="standard"), params, x)
    ref = sh.sharded_closed_form(params, x)
    v = sh.shard_rows(np.random.default_rng(1).standard_normal((64, 2)).astype(np.float32), op.mesh)
    a, b = np.asarray(op.matmat(v)), np.asarray(ref.matmat(v))
    assert np.abs(a - b).max() <= 1e-5 * np.abs(b).max()
    with pytest.raises(ValueError, match="no diagonal"):
        sh.operator_trace(op)


def test_one_device_process_keeps_the_single_device_spectrum_path():
    assert len(jax.local_devices()) == 1 and sh.spectrum_mesh() is None
    assert sh.spectrum_mesh(devices=jax.devices()).devices.size == 1


def test_warm_start_and_bad_arguments(small):
    params, x = small
    op = sh.sharded_closed_form(params, x)
    first = sh.operator_top_k(op, K, return_vectors=True)
    warm = sh.operator_top_k(op, K, v0=first.vectors[:, 0])
    assert _rel(warm.values, first.values) <= 1e-6 and warm.matvecs <= first.matvecs
    with pytest.raises(ValueError, match="k="):
        sh.operator_top_k(op, 0)
    with pytest.raises(ValueError, match="exceeds n"):
        sh.operator_top_k(sh.sharded_closed_form(params, x[:40]), 10)
    with pytest.raises(ValueError, match="not both"):
        sh.sharded_closed_form(params, x, mesh=sh.sample_mesh(), devices=jax.devices())
    with pytest.raises(ValueError, match="1-D mesh"):
        sh.sharded_closed_form(params, x, mesh=jax.sharding.Mesh(
            np.asarray(jax.devices()).reshape(1, 1), ("a", "b")))


_CHILD = textwrap.dedent(r"""
    import json, re, functools, warnings
    warnings.simplefilter("error")
    import jax, jax.numpy as jnp, numpy as np
    jax.config.update("jax_numpy_rank_promotion", "raise")
    jax.config.update("jax_numpy_dtype_promotion", "strict")
    import ntk_core as nc
    from ntk_core._src import sharded as sh

    out = {"devices": jax.device_count()}
    x_all, _ = nc.load_bundled()
    n = 502                                    # not a multiple of 4: 504 rows, 2 masked
    x = np.asarray(x_all[:n])
    params = nc.init_params(jax.random.PRNGKey(0), 64)
    one = sh.sample_mesh(jax.devices()[:1])
    # The spectrum functions FIRST, in a fresh process: with no mesh=/devices= they must take
    # the sharded path on all 4 local devices (n > dense_max). Evidence: they compile exactly
    # one block-Lanczos program, and the explicit 4-device solve below reuses it.
    out["default_mesh"] = sh.spectrum_mesh().devices.size
    fs4 = nc.full_spectrum(params, x, parameterization="standard", dense_max=100, top_k=10,
                           slq_probes=2, slq_steps=8)
    out["fs"] = [fs4.method, fs4.topk.tolist(), fs4.trace, fs4.converged, fs4.note,
                 float(np.sum(fs4.weights))]
    stack = {k: np.stack([np.asarray(v), 1.1 * np.asarray(v)]) for k, v in params.items()}
    cs4 = nc.checkpoint_spectra(x, stack, parameterization="standard", top_k=10, dense_max=100)
    out["cs"] = [cs4.method, cs4.topk.tolist(), cs4.trace.tolist(), cs4.converged.tolist(),
                 list(cs4.notes)]
    out["solver_programs_after_spectra"] = sh._solve_jit._cache_size()
    op4 = sh.sharded_closed_form(params, x)    # default mesh: all 4 devices
    op1 = sh.sharded_closed_form(params, x, mesh=one)
    out["mesh"] = op4.mesh.devices.size
    out["shards"] = {k: [list(s.data.shape) for s in a.addressable_shards]
                     for k, a in [("x", op4.state["x"]), ("h", op4.state["h"]),
                                  ("m", op4.state["m"]), ("mask", op4.mask)]}
    out["devices_of_x"] = sorted(str(s.device) for s in op4.state["x"].addressable_shards)
    out["spec_x"] = list(op4.state["x"].sharding.spec)
    out["one_device_x"] = [list(s.data.shape) for s in op1.state["x"].addressable_shards]
    r4 = sh.operator_top_k(op4, 10, return_vectors="device")
    out["solver_programs_after_r4"] = sh._solve_jit._cache_size()
    out["vec_shards"] = [list(s.data.shape) for s in r4.vectors.addressable_shards]
    out["vec_spec"] = list(r4.vectors.sharding.spec)
    out["v4"] = r4.values.tolist()
    out["conv"] = r4.converged
    out["res4"] = r4.max_residual
    st = nc.matfree_state(params, jnp.asarray(x))
    out["arpack"] = nc.top_k_eigs(lambda v: nc.matfree_matvec(st, jnp.asarray(v)), 10, n=n).tolist()
    out["t4"], out["t1"] = sh.operator_trace(op4), sh.operator_trace(op1)
    out["t_diag"] = float(np.sum(np.asarray(nc.ntk_diagonal(params, jnp.asarray(x)), np.float64)))
    out["host_vs_device"] = float(np.abs(np.asarray(jax.device_get(r4.vectors))[n:]).max())
    # Collectives: the compiled (post-partitioner) product, and the solver's lowered program
    # (shard_map is manual SPMD: the partitioner adds nothing to it; compiling the solver a
    # second time would only cost test time).
    kinds = ("all-reduce", "all-gather", "all-to-all", "reduce-scatter", "collective-permute")
    vb = sh.shard_rows(np.ones((n, 12), np.float32), op4.mesh)
    txt = sh._matmat_jit.lower(op4._static(), op4.state, op4.mask, vb).compile().as_text()
    out["hlo"] = {k: len(re.findall(r"\b" + k + r"(?:-start)?\(", txt)) for k in kinds}
    txt = sh._solve_jit.lower(op4._static(), 10, 12, 6, 1e-5, 300, op4.state, op4.mask,
                              sh._start_block(op4, 12, 0, None)).as_text()
    out["solver_hlo"] = {k: len(re.findall(r"stablehlo\." + k.replace("-", "_") + r"\b", txt))
                         for k in kinds}
    jop = sh.sharded_jacobian(functools.partial(nc.apply, parameterization="standard"), params, x[:102])
    vj = sh.shard_rows(np.random.default_rng(1).standard_normal((102, 2)).astype(np.float32), jop.mesh)
    out["jac_shards"] = [list(s.data.shape) for s in jop.state["x"].addressable_shards]
    out["jac_vs_closed"] = [np.asarray(jop.matmat(vj)).tolist(),
                            np.asarray(sh.sharded_closed_form(params, x[:102]).matmat(vj)).tolist()]
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def four_devices():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
           "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-c", _CHILD], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-4000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_four_device_mesh_holds_a_quarter_of_the_samples_per_device(four_devices):
    o = four_devices
    assert o["devices"] == 4 and o["mesh"] == 4
    assert o["spec_x"] == ["samples", None]
    assert len(set(o["devices_of_x"])) == 4
    assert o["shards"]["x"] == [[126, 784]] * 4
    assert o["shards"]["h"] == [[126, 64]] * 4 and o["shards"]["m"] == [[126, 64]] * 4
    assert o["shards"]["mask"] == [[126]] * 4
    assert o["one_device_x"] == [[502, 784]]
    # Lanczos vectors stay sharded the same way
    assert o["vec_shards"] == [[126, 10]] * 4 and o["vec_spec"][0] == "samples"
    assert o["host_vs_device"] == 0.0  # padding rows of the eigenvectors are exactly zero


def test_four_devices_agree_with_one_device(four_devices):
    o = four_devices
    assert o["conv"] and o["res4"] < 1e-3
    assert _rel(o["v4"], o["arpack"]) <= 1e-6    # ARPACK on the single-device matfree_matvec
    assert abs(o["t4"] - o["t1"]) / o["t1"] <= 1e-6
    assert abs(o["t4"] - o["t_diag"]) / o["t_diag"] <= 1e-6
    a, b = np.asarray(o["jac_vs_closed"][0]), np.asarray(o["jac_vs_closed"][1])
    assert o["jac_shards"] == [[26, 784]] * 4   # 102 → 104 rows over 4 devices
    assert np.abs(a - b).max() <= 1e-5 * np.abs(b).max()


def test_spectrum_functions_shard_by_default_on_a_multi_device_host(four_devices):
    o = four_devices
    assert o["default_mesh"] == 4
    assert o["solver_programs_after_spectra"] == 1 and o["solver_programs_after_r4"] == 1
    method, top, trace, conv, note, wsum = o["fs"]
    assert method == "slq" and conv and note == "" and abs(wsum - 1) < 1e-9
    assert _rel(top, o["v4"]) <= 1e-6 and _rel(top, o["arpack"]) <= 1e-6
    assert abs(trace - o["t_diag"]) / o["t_diag"] <= 1e-6
    method, top, trace, conv, notes = o["cs"]
    assert method == "matrix_free" and conv == [True, True] and notes == ["", ""]
    assert _rel(top[0], o["v4"]) <= 1e-6 and _rel(top[0], o["arpack"]) <= 1e-6
    assert abs(trace[0] - o["t_diag"]) / o["t_diag"] <= 1e-6
    # the second checkpoint is 1.1·params: its Θ is ≈ 1.1²·Θ, and so must its spectrum be
    assert _rel(top[1], top[0]) > 0.1 and trace[1] > 1.1 * trace[0]


def test_reductions_are_all_reduces_inside_the_compiled_program(four_devices):
    for hlo in (four_devices["hlo"], four_devices["solver_hlo"]):
        assert hlo["all-reduce"] > 0
        assert hlo["all-gather"] == hlo["all-to-all"] == hlo["reduce-scatter"] == 0
        assert hlo["collective-permute"] == 0
