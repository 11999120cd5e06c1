"""Spectra: Lanczos top-k, stochastic Lanczos quadrature, summary statistics, and the
checkpoint / full-spectrum drivers, each compared with dense ``eigvalsh``."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import ntk_core as nc

# Relative accuracy of λ1 (and of the top-k, relative to λ1) per arithmetic dtype.
EIG_RTOL = {np.dtype(np.float64): 1e-6, np.dtype(np.float32): 1e-5}

N_KERNEL = 200


def make_params(width, parameterization="standard", seed=0):
    rng = np.random.default_rng(seed)
    shapes = {"W1": (784, width), "b1": (width,), "W2": (width, 10), "b2": (10,)}
    fan_in = {"W1": 784, "b1": 784, "W2": width, "b2": width}
    if parameterization == "standard":
        return {k: rng.uniform(-1, 1, s).astype(np.float32) / np.float32(np.sqrt(fan_in[k]))
                for k, s in shapes.items()}
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}


@pytest.fixture(scope="module")
def pool_x():
    x, _ = nc.load_bundled()
    return x[:400]


@pytest.fixture(scope="module", params=["standard", "ntk"])
def ntk_case(request, pool_x):
    """(parameterization, params, x, float32 dense Θ, matrix-free state) on 200 images."""
    par = request.param
    params = make_params(96, par, seed=1)
    x = jnp.asarray(pool_x[:N_KERNEL])
    theta = np.asarray(nc.empirical_ntk(params, x, parameterization=par))
    assert theta.dtype == np.float32
    state = nc.matfree_state(params, x, parameterization=par)
    return par, params, x, theta, state


def spread_matrix(n=400, seed=0, decades=3.0):
    """Q diag(λ) Qᵀ with λ log-spaced over ``decades`` and Haar-random Q (float64)."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = np.logspace(-decades, 0, n)
    return (q * lam) @ q.T, lam


def ks_distance(eigs, nodes, weights) -> float:
    """sup_t |F_dense(t) − F_slq(t)| over both step functions (left and right limits)."""
    ev = np.sort(np.asarray(eigs, np.float64))
    order = np.argsort(nodes)
    ns = np.asarray(nodes)[order]
    cw = np.concatenate([[0.0], np.cumsum(np.asarray(weights)[order])])
    pts = np.concatenate([ev, ns])
    d = 0.0
    for side in ("left", "right"):
        f = np.searchsorted(ev, pts, side=side) / ev.size
        g = cw[np.searchsorted(ns, pts, side=side)]
        d = max(d, float(np.abs(f - g).max()))
    return d


def assert_eigs_close(got, ref, rtol, what):
    got = np.asarray(got, np.float64)
    ref = np.asarray(ref, np.float64)
    assert got.shape == ref.shape, f"{what}: shape {got.shape} != {ref.shape}"
    assert np.all(np.diff(got) <= 0), f"{what}: not descending: {got}"
    err1 = abs(got[0] - ref[0]) / abs(ref[0])
    assert err1 <= rtol, f"{what}: λ1 relative error {err1:.3g} > {rtol:g}"
    errk = np.abs(got - ref).max() / abs(ref[0])
    assert errk <= rtol, f"{what}: top-{got.size} error / λ1 = {errk:.3g} > {rtol:g}"


# ----------------------------------------------------------------------------------------
# top_k_eigs

@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("k", [1, 10])
def test_top_k_dense(ntk_case, k, dtype):
    par, _, _, theta, _ = ntk_case
    dense64 = theta.astype(np.float64)
    ref = nc.eigvalsh_desc(dense64)[:k]
    got = nc.top_k_eigs(dense64, k, dtype=dtype)
    assert got.dtype == np.float64
    assert_eigs_close(got, ref, EIG_RTOL[np.dtype(dtype)], f"top_k_eigs(dense, dtype={dtype.__name__}, {par})")


def test_top_k_dense_float64_reaches_machine_precision(ntk_case):
    """With a float64 ARPACK the documented ≤1e-6 is met with a wide margin."""
    _, _, _, theta, _ = ntk_case
    dense64 = theta.astype(np.float64)
    ref = nc.eigvalsh_desc(dense64)[:10]
    got = nc.top_k_eigs(dense64, 10)
    assert np.abs(got - ref).max() <= 1e-10 * ref[0], "top_k_eigs(dense float64)"


@pytest.mark.parametrize("k", [1, 10])
def test_top_k_matrix_free(ntk_case, k):
    par, _, _, theta, state = ntk_case
    ref = nc.eigvalsh_desc(theta)[:k]   # dense eigvalsh of the float32 kernel
    got = nc.top_k_eigs(lambda v: nc.matfree_matvec(state, jnp.asarray(v)), k, n=N_KERNEL)
    assert_eigs_close(got, ref, EIG_RTOL[np.dtype(np.float32)], f"top_k_eigs(matfree_matvec, {par})")


def test_top_k_return_vectors(ntk_case):
    _, _, _, theta, _ = ntk_case
    a = theta.astype(np.float64)
    w, v = nc.top_k_eigs(a, 4, return_vectors=True)
    assert v.shape == (N_KERNEL, 4)
    resid = np.linalg.norm(a @ v - v * w[None, :], axis=0) / w
    assert resid.max() <= 1e-6, f"top_k_eigs eigenvector residuals {resid}"
    np.testing.assert_allclose(v.T @ v, np.eye(4), atol=1e-8, err_msg="top_k_eigs vectors not orthonormal")


def test_top_k_warm_start(ntk_case):
    _, _, _, theta, _ = ntk_case
    a = theta.astype(np.float64)
    w0, v0 = nc.top_k_eigs(a, 3, return_vectors=True)
    w1 = nc.top_k_eigs(a, 3, v0=v0[:, 0])
    assert_eigs_close(w1, w0, 1e-8, "top_k_eigs with v0")


@pytest.mark.parametrize("kind", ["dense", "callable", "linear_operator"])
@pytest.mark.parametrize("dk", [-1, 0], ids=["k=n-1", "k=n"])
def test_top_k_falls_back_to_dense(kind, dk):
    n = 12
    rng = np.random.default_rng(3)
    b = rng.standard_normal((n, n))
    a = b @ b.T + np.diag(np.arange(n, dtype=np.float64))
    k = n + dk
    ref = nc.eigvalsh_desc(a)[:k]
    if kind == "dense":
        got = nc.top_k_eigs(a, k)
        tol = 1e-12
    elif kind == "callable":
        got = nc.top_k_eigs(lambda v: (a @ np.asarray(v, np.float64)).astype(np.float32), k, n=n)
        tol = 1e-5  # float32 products
    else:
        from scipy.sparse.linalg import aslinearoperator
        got = nc.top_k_eigs(aslinearoperator(a), k)
        tol = 1e-12
    assert got.shape == (k,)
    assert np.abs(got - ref).max() <= tol * ref[0], f"top_k_eigs({kind}) with k={k}, n={n}"


def test_eigvalsh_desc():
    rng = np.random.default_rng(4)
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    lam = np.array([5.0, 3.0, 2.0, 1.0, 0.5, 0.0])
    a = (q * lam) @ q.T
    # float32 with round-off asymmetry must still be handled as symmetric.
    a32 = a.astype(np.float32)
    a32[0, 1] += np.float32(1e-6)
    got = nc.eigvalsh_desc(a32)
    assert got.dtype == np.float64 and got.shape == (6,)
    np.testing.assert_allclose(got, lam, atol=1e-5, err_msg="eigvalsh_desc")
    np.testing.assert_allclose(nc.eigvalsh_desc(a), lam, atol=1e-12, err_msg="eigvalsh_desc float64")


def test_trace_equals_sum_of_eigenvalues(ntk_case):
    par, params, x, theta, _ = ntk_case
    eigs = nc.eigvalsh_desc(theta)
    diag_trace = float(np.sum(np.asarray(nc.ntk_diagonal(params, x, parameterization=par), np.float64)))
    assert abs(eigs.sum() - diag_trace) <= 1e-5 * diag_trace, (
        f"Σλ = {eigs.sum()} vs Σ ntk_diagonal = {diag_trace} ({par})")
    assert abs(eigs.sum() - np.trace(theta.astype(np.float64))) <= 1e-5 * diag_trace


# ----------------------------------------------------------------------------------------
# Stochastic Lanczos quadrature

def test_slq_trace_spread_spectrum():
    a, lam = spread_matrix()
    nodes, weights = nc.slq(lambda v: a @ v, 400, num_probes=30, steps=60, seed=0)
    assert nodes.shape == weights.shape and nodes.dtype == weights.dtype == np.float64
    assert abs(weights.sum() - 1) <= 1e-10, "slq weights must sum to 1"
    est = 400 * np.sum(weights * nodes)
    assert abs(est / lam.sum() - 1) <= 0.05, f"slq trace estimate {est} vs exact {lam.sum()}"
    # Ritz values lie inside the spectrum.
    assert nodes.min() >= lam.min() * (1 - 1e-8) and nodes.max() <= lam.max() * (1 + 1e-8)


def test_slq_cdf_spread_spectrum():
    a, lam = spread_matrix(seed=1)
    nodes, weights = nc.slq(lambda v: a @ v, 400, num_probes=30, steps=60, seed=1)
    d = ks_distance(lam, nodes, weights)
    assert d < 0.1, f"slq CDF vs exact CDF: Kolmogorov distance {d:.3f}"


def test_slq_cdf_matrix_free_ntk(ntk_case):
    """SLQ through the float32 matrix-free product on the NTK (cond ~1e3–1e4)."""
    par, _, _, theta, state = ntk_case
    eigs = nc.eigvalsh_desc(theta)
    mv = lambda v: np.asarray(nc.matfree_matvec(state, jnp.asarray(v, jnp.float32)), np.float64)
    nodes, weights = nc.slq(mv, N_KERNEL, num_probes=8, steps=60, seed=0)
    d = ks_distance(eigs, nodes, weights)
    assert d < 0.1, f"slq on matfree_matvec ({par}): Kolmogorov distance {d:.3f}"
    assert abs(weights.sum() - 1) <= 1e-10


def test_slq_exact_on_block_diagonal():
    """For diag(1×100, 2×200, 5×100) the Krylov space of a Rademacher probe has
    dimension 3, Lanczos stops early and the quadrature is exact: nodes {1, 2, 5} with
    weights {¼, ½, ¼} for every probe."""
    d = np.concatenate([np.full(100, 1.0), np.full(200, 2.0), np.full(100, 5.0)])
    nodes, weights = nc.slq(lambda v: d * v, 400, num_probes=4, steps=30, seed=0)
    assert nodes.size == 12, f"expected 3 nodes per probe after early stop, got {nodes.size}"
    for value, share in ((1.0, 0.25), (2.0, 0.5), (5.0, 0.25)):
        sel = np.abs(nodes - value) < 1e-8
        assert sel.sum() == 4, f"node {value} found {sel.sum()} times"
        assert abs(weights[sel].sum() - share) <= 1e-10, f"weight of {value}: {weights[sel].sum()}"
    assert abs(400 * np.sum(weights * nodes) - d.sum()) <= 1e-8 * d.sum()


def test_slq_identity_and_determinism():
    nodes, weights = nc.slq(lambda v: 3.0 * v, 50, num_probes=5, steps=10, seed=0)
    np.testing.assert_allclose(nodes, 3.0, rtol=1e-12, err_msg="slq of 3·I")
    assert abs(weights.sum() - 1) <= 1e-12
    a, _ = spread_matrix(n=60, seed=2)
    r1 = nc.slq(lambda v: a @ v, 60, num_probes=3, steps=20, seed=7)
    r2 = nc.slq(lambda v: a @ v, 60, num_probes=3, steps=20, seed=7)
    r3 = nc.slq(lambda v: a @ v, 60, num_probes=3, steps=20, seed=8)
    np.testing.assert_array_equal(r1[0], r2[0])
    np.testing.assert_array_equal(r1[1], r2[1])
    assert not np.array_equal(r1[0], r3[0]), "different seeds gave identical probes"


def test_density_on_grid_integrates_to_weight_sum():
    a, lam = spread_matrix(n=100, seed=3)
    nodes, weights = nc.slq(lambda v: a @ v, 100, num_probes=4, steps=20)
    grid = np.linspace(-1, 2, 6001)
    dens = nc.density_on_grid(nodes, weights, grid, sigma=0.02)
    assert dens.shape == grid.shape
    integral = np.sum(0.5 * (dens[1:] + dens[:-1]) * np.diff(grid))
    assert abs(integral - weights.sum()) <= 1e-6, f"density integrates to {integral}"
    # A single unit node is a Gaussian pdf.
    one = nc.density_on_grid(np.array([0.5]), np.array([1.0]), np.array([0.5, 0.7]), sigma=0.1)
    pdf = np.exp(-0.5 * np.array([0.0, 2.0]) ** 2) / (0.1 * np.sqrt(2 * np.pi))
    np.testing.assert_allclose(one, pdf, rtol=1e-12)


# ----------------------------------------------------------------------------------------
# Summary statistics

@pytest.mark.parametrize("scale", [1e-6, 1.0, 1e6])
def test_effective_rank(scale):
    assert nc.effective_rank(scale * np.array([1.0, 0, 0, 0])) == pytest.approx(1.0, abs=1e-12)
    for m in (1, 2, 7, 100):
        assert nc.effective_rank(scale * np.ones(m)) == pytest.approx(m, rel=1e-12), m
    # Zeros and tiny negative round-off do not count; scale invariance.
    lam = np.array([3.0, 2.0, 1.0, 0.0, -1e-12])
    assert nc.effective_rank(scale * lam) == pytest.approx(nc.effective_rank(lam), rel=1e-12)
    assert 1.0 < nc.effective_rank(lam) < 3.0
    assert nc.effective_rank(np.zeros(4)) == 0.0


def test_cumulative_share():
    lam = np.array([1.0, 4.0, 2.0, 3.0])   # unsorted on purpose
    share = nc.cumulative_share(lam)
    np.testing.assert_allclose(share, [0.4, 0.7, 0.9, 1.0], rtol=1e-12)
    assert share.dtype == np.float64
    partial = nc.cumulative_share(np.array([4.0, 3.0]), total=20.0)
    np.testing.assert_allclose(partial, [0.2, 0.35], rtol=1e-12)


def test_empirical_cdf():
    lam = np.array([3.0, 1.0, 2.0, 5.0])
    t, f = nc.empirical_cdf(lam)
    np.testing.assert_array_equal(t, [1.0, 2.0, 3.0, 5.0])
    np.testing.assert_allclose(f, [0.25, 0.5, 0.75, 1.0])
    assert t.dtype == f.dtype == np.float64


def test_empirical_cdf_with_ties_is_count_below():
    """Documented: F(t) = #{λ ≤ t}/n at each returned t — also at tied eigenvalues
    (e.g. the repeated zeros of a rank-deficient kernel)."""
    lam = np.array([0.0, 0.0, 0.0, 1.0, 2.0])
    t, f = nc.empirical_cdf(lam)
    expected = np.array([np.mean(lam <= ti) for ti in t])
    np.testing.assert_allclose(f, expected, err_msg="empirical_cdf at tied eigenvalues")


def test_condition_number():
    assert nc.condition_number(np.array([4.0, 2.0, 0.5])) == pytest.approx(8.0)
    assert nc.condition_number(np.array([0.5, 4.0])) == pytest.approx(8.0)
    assert nc.condition_number(np.array([3.0, 3.0])) == pytest.approx(1.0)
    assert nc.condition_number(np.array([1.0, 0.0])) == np.inf
    assert nc.condition_number(np.array([1.0, -1e-9])) == np.inf


# ----------------------------------------------------------------------------------------
# Drivers: checkpoint_spectra and full_spectrum

def _checkpoint_stack(width, par, count=3, seed=5):
    base = make_params(width, par, seed=seed)
    rng = np.random.default_rng(seed + 1)
    return {k: np.stack([v * np.float32(1 + 0.2 * c) + np.float32(0.01 * c) * rng.standard_normal(v.shape).astype(np.float32)
                         for c in range(count)]) for k, v in base.items()}


@pytest.mark.parametrize("parameterization", ["standard", "ntk"])
def test_checkpoint_spectra_dense_vs_matrix_free(parameterization, pool_x):
    x = pool_x[:96]
    stack = _checkpoint_stack(24, parameterization)
    calls = []
    dense = nc.checkpoint_spectra(x, stack, parameterization=parameterization, top_k=6,
                                  progress=lambda d, t: calls.append((d, t)))
    mfree = nc.checkpoint_spectra(x, stack, parameterization=parameterization, top_k=6, dense_max=0)
    assert dense.method == "dense" and mfree.method == "matrix_free"
    assert calls == [(1, 3), (2, 3), (3, 3)], f"progress calls {calls}"
    assert dense.topk.shape == mfree.topk.shape == (3, 6)
    for c in range(3):
        p = {k: jnp.asarray(v[c]) for k, v in stack.items()}
        theta = np.asarray(nc.empirical_ntk(p, jnp.asarray(x), parameterization=parameterization))
        ref = nc.eigvalsh_desc(theta)
        assert_eigs_close(dense.topk[c], ref[:6], EIG_RTOL[np.dtype(np.float32)],
                          f"checkpoint_spectra dense path, checkpoint {c}")
        assert_eigs_close(mfree.topk[c], ref[:6], EIG_RTOL[np.dtype(np.float32)],
                          f"checkpoint_spectra matrix-free path, checkpoint {c}")
        assert abs(dense.trace[c] - ref.sum()) <= 1e-5 * ref.sum(), f"dense trace, checkpoint {c}"
        assert abs(mfree.trace[c] - ref.sum()) <= 1e-5 * ref.sum(), f"matrix-free trace, checkpoint {c}"
    np.testing.assert_allclose(dense.topk, mfree.topk, rtol=1e-4, err_msg="dense vs matrix-free top-k")


@pytest.mark.parametrize("dense_max", [4000, 0], ids=["dense", "matrix_free"])
def test_checkpoint_spectra_skips_invalid(dense_max, pool_x):
    x = pool_x[:40]
    stack = _checkpoint_stack(8, "standard", count=3)
    out = nc.checkpoint_spectra(x, stack, parameterization="standard", top_k=50,
                                dense_max=dense_max, valid=np.array([True, False, True]))
    assert out.topk.shape == (3, 40), "top_k is clipped to n"
    assert np.all(np.isnan(out.topk[1])) and np.isnan(out.trace[1])
    assert np.all(np.isfinite(out.topk[[0, 2]])) and np.all(np.isfinite(out.trace[[0, 2]]))
    p = {k: jnp.asarray(v[2]) for k, v in stack.items()}
    ref = nc.eigvalsh_desc(nc.empirical_ntk(p, jnp.asarray(x)))
    assert np.abs(out.topk[2] - ref).max() <= 1e-5 * ref[0], f"all-eigenvalue path ({dense_max=})"


@pytest.mark.parametrize("parameterization", ["standard", "ntk"])
def test_full_spectrum_dense_vs_slq(parameterization, pool_x):
    x = pool_x[:160]
    params = make_params(48, parameterization, seed=9)
    dense = nc.full_spectrum(params, x, parameterization=parameterization, top_k=8)
    slq = nc.full_spectrum(params, x, parameterization=parameterization, top_k=8, dense_max=0,
                           slq_probes=8, slq_steps=60)
    assert dense.method == "dense" and slq.method == "slq"
    theta = np.asarray(nc.empirical_ntk(params, jnp.asarray(x), parameterization=parameterization))
    ref = nc.eigvalsh_desc(theta)
    assert dense.eigenvalues.shape == (160,) and dense.nodes.size == 0
    assert np.abs(dense.eigenvalues - ref).max() <= 1e-6 * ref[0], "full_spectrum dense eigenvalues"
    assert slq.eigenvalues.size == 0 and slq.nodes.shape == slq.weights.shape
    assert abs(slq.weights.sum() - 1) <= 1e-10
    assert abs(dense.trace - slq.trace) <= 1e-6 * dense.trace, "trace: dense vs slq path"
    assert abs(dense.trace - ref.sum()) <= 1e-5 * ref.sum(), "trace vs Σλ"
    assert_eigs_close(dense.topk, ref[:8], 1e-6, "full_spectrum dense top-k")
    assert_eigs_close(slq.topk, ref[:8], EIG_RTOL[np.dtype(np.float32)], "full_spectrum slq top-k")
    assert ks_distance(ref, slq.nodes, slq.weights) < 0.1, "full_spectrum slq CDF"


@pytest.mark.parametrize("n", [6, 11, 40])
def test_full_spectrum_topk_length_independent_of_path(n, pool_x):
    """Both paths return min(top_k, n) exact top eigenvalues (the dense fallback of
    top_k_eigs handles k ≥ n − 1)."""
    x = pool_x[:n]
    params = make_params(8, "standard", seed=10)
    dense = nc.full_spectrum(params, x, parameterization="standard", top_k=10)
    slq = nc.full_spectrum(params, x, parameterization="standard", top_k=10, dense_max=0, slq_steps=10)
    k = min(10, n)
    assert dense.topk.shape == (k,), f"dense path returned {dense.topk.shape[0]} of {k} eigenvalues"
    assert slq.topk.shape == (k,), f"slq path returned {slq.topk.shape[0]} of {k} eigenvalues"
    np.testing.assert_allclose(slq.topk, dense.topk, rtol=1e-4, atol=1e-5 * dense.topk[0])


# ----------------------------------------------------------------------------------------
# Round-off floor and float64 kernel formation

def _low_rank(n, r, seed):
    return np.random.default_rng(seed).standard_normal((n, r)).astype(np.float32)


def test_roundoff_floor_definition():
    """floor = ε(formation dtype)·tr Θ + n·ε₆₄·λ_max, as documented."""
    e32, e64 = np.finfo(np.float32).eps, np.finfo(np.float64).eps
    assert nc.roundoff_floor(50.0, 10, 20.0, np.float32) == pytest.approx(e32 * 50 + 10 * e64 * 20, rel=1e-15)
    assert nc.roundoff_floor(50.0, 10, 20.0, np.float64) == pytest.approx(e64 * 50 + 10 * e64 * 20, rel=1e-15)
    # never above the cruder n·ε·λ_max + solver term, since tr ≤ n·λ_max for PSD
    assert nc.roundoff_floor(50.0, 10, 20.0) <= 10 * e32 * 20 + 10 * e64 * 20


def test_split_at_floor():
    lam = np.array([5.0, 2.0, 1e-3, 1e-9, 0.0, -1e-9])
    resolved, below = nc.split_at_floor(lam, 1e-6)
    np.testing.assert_array_equal(resolved, [5.0, 2.0, 1e-3])
    assert below == 3 and resolved.dtype == np.float64
    resolved, below = nc.split_at_floor(lam[::-1], 1e-6)   # order is kept
    np.testing.assert_array_equal(resolved, [1e-3, 2.0, 5.0])
    assert nc.split_at_floor(lam, 1e-6 * 0)[1] == 1       # only the negative one is below 0


@pytest.mark.parametrize("n,r,seed", [(300, 20, 0), (400, 7, 1)])
def test_dense_spectrum_floor_on_known_low_rank_kernel(n, r, seed):
    """K = XXᵀ with X (n, r): exactly n − r eigenvalues are zero.

    Formed in float32, the zeros come out as round-off of size ~1e-7·λ: all n − r of them
    must be below the float32 floor and the r true ones above it. Formed in float64, the
    floor drops by ~9 decades, still exactly n − r lie below it, and the r nonzero
    eigenvalues match the exact σ_j(X)² to 1e-10 relative."""
    x32 = _low_rank(n, r, seed)
    x64 = x32.astype(np.float64)
    exact = np.linalg.svd(x64, compute_uv=False) ** 2          # descending, (r,)

    ds32 = nc.dense_spectrum(x32 @ x32.T)                      # float32 formation
    assert ds32.formed_dtype == "float32" and ds32.eigenvalues.dtype == np.float64
    assert ds32.below_floor == n - r, f"float32: {ds32.below_floor} below the floor, expected {n - r}"
    resolved, below = nc.split_at_floor(ds32.eigenvalues, ds32.floor)
    assert below == n - r and resolved.size == r
    assert np.abs(ds32.eigenvalues[r:]).max() > 0, "float32 zeros should show round-off"
    np.testing.assert_allclose(resolved, exact, rtol=1e-5)

    ds64 = nc.dense_spectrum(x64 @ x64.T)                      # float64 formation
    assert ds64.formed_dtype == "float64"
    assert ds64.floor < 1e-6 * ds32.floor
    assert ds64.below_floor == n - r, f"float64: {ds64.below_floor} below the floor, expected {n - r}"
    rel = np.abs(ds64.eigenvalues[:r] - exact) / exact
    assert rel.max() <= 1e-10, f"float64-formed nonzero eigenvalues vs exact: rel. error {rel.max():.2e}"

    # a float32 kernel cast to float64 keeps its float32 floor unless told otherwise
    cast = nc.dense_spectrum((x32 @ x32.T).astype(np.float64), formed_dtype=np.float32)
    assert cast.below_floor == n - r and cast.floor == pytest.approx(ds32.floor, rel=1e-6)
    upper = nc.dense_spectrum(np.triu(x64 @ x64.T), triangle="upper")
    np.testing.assert_allclose(upper.eigenvalues[:r], exact, rtol=1e-10)


@pytest.mark.parametrize("parameterization", ["standard", "ntk"])
def test_traced_ntk_float64_matches_jax_kernel(parameterization, pool_x):
    x = pool_x[:120]
    params = make_params(32, parameterization, seed=11)
    k64 = nc.traced_ntk_float64(params, x, parameterization=parameterization)
    k32 = np.asarray(nc.empirical_ntk(params, jnp.asarray(x), parameterization=parameterization), np.float64)
    assert k64.dtype == np.float64 and k64.shape == (120, 120)
    np.testing.assert_array_equal(k64, k64.T, err_msg="traced_ntk_float64 must be exactly symmetric")
    assert np.abs(k64 - k32).max() <= 2e-6 * np.abs(k32).max(), "float64 vs float32 kernel"


def test_full_spectrum_floor_separates_true_zeros_of_narrow_ntk(pool_x):
    """Width 2 (standard): the traced NTK on 300 images is rank-deficient. The float32
    dense path's below-floor count must equal the number of float64-formed eigenvalues
    below the float32 floor, and the float64 path (floor ~1e-9 lower) must agree on
    which are zero."""
    x = pool_x[:300]
    params = make_params(2, "standard", seed=0)
    f32 = nc.full_spectrum(params, x, parameterization="standard", dense_dtype="float32")
    f64 = nc.full_spectrum(params, x, parameterization="standard")
    assert f32.kernel_dtype == "float32" and f64.kernel_dtype == "float64"
    assert f64.floor < 1e-4 * f32.floor
    true_below = int(np.sum(f64.eigenvalues < f32.floor))
    assert 0 < f32.below_floor == true_below, (f32.below_floor, true_below)
    assert f64.below_floor == true_below, "float64 path should find the same zero eigenvalues"
    resolved, below = nc.split_at_floor(f32.eigenvalues, f32.floor)
    assert below == f32.below_floor and resolved.size == 300 - below
    # Weyl: round-off of size ‖E‖ moves every eigenvalue by at most ‖E‖, which the floor
    # estimates — so the resolved ones agree to the floor in absolute terms (one just above
    # it differed by 1.4e-4 relative on a machine without AVX-512), the large ones to 1e-4.
    np.testing.assert_allclose(resolved, f64.eigenvalues[: resolved.size], rtol=1e-4, atol=f32.floor)


@pytest.mark.parametrize("parameterization", ["standard", "ntk"])
def test_full_spectrum_reports_floor_and_convergence(parameterization, pool_x):
    x = pool_x[:160]
    params = make_params(48, parameterization, seed=9)
    dense = nc.full_spectrum(params, x, parameterization=parameterization, top_k=8)
    slq = nc.full_spectrum(params, x, parameterization=parameterization, top_k=8, dense_max=0)
    e = dense.eigenvalues
    assert dense.kernel_dtype == "float64" and dense.converged and np.isnan(dense.residual)
    assert dense.floor == pytest.approx(nc.roundoff_floor(dense.trace, 160, e[0], np.float64), rel=1e-6)
    assert dense.below_floor == int(np.sum(e < dense.floor)) == 0
    assert slq.kernel_dtype == "float32" and slq.converged and slq.note == ""
    assert 0 < slq.residual <= 1e-5, f"slq top-k residual {slq.residual}"
    assert slq.floor == pytest.approx(nc.roundoff_floor(slq.trace, 160, slq.topk[0], np.float32), rel=1e-6)


# ----------------------------------------------------------------------------------------
# Convergence reporting of top_k_eigs

def _clustered_operator(n=3000, seed=0):
    """Diagonal operator whose top 5 eigenvalues are within 4e-6 of each other."""
    rng = np.random.default_rng(seed)
    d = np.concatenate([1.0 - 1e-6 * np.arange(5), rng.uniform(0.0, 0.99, n - 5)])
    from scipy.sparse.linalg import LinearOperator
    op = LinearOperator((n, n), dtype=np.float64, matvec=lambda v: d * np.ravel(v),
                        matmat=lambda v: d[:, None] * v)
    return op, d


@pytest.fixture
def eigsh_calls(monkeypatch):
    """Records every ARPACK call made by top_k_eigs (to prove no loosened retry)."""
    from ntk_core._src import spectra as sp
    calls, real = [], sp.spla.eigsh

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(sp.spla, "eigsh", spy)
    return calls


def test_top_k_result_converged(ntk_case, eigsh_calls):
    _, _, _, theta, _ = ntk_case
    a = theta.astype(np.float64)
    res = nc.top_k_eigs(a, 5, return_result=True, return_vectors=True)
    assert isinstance(res, nc.EigResult) and res.converged and res.method == "arpack" and res.note == ""
    assert res.values.dtype == res.residuals.dtype == np.float64 and res.residuals.shape == (5,)
    recomputed = np.linalg.norm(a @ res.vectors - res.vectors * res.values[None, :], axis=0) / res.values
    np.testing.assert_allclose(res.residuals, recomputed, rtol=1e-6, atol=1e-15)
    assert res.max_residual <= 1e-10
    from ntk_core._src.spectra import DEFAULT_MAXITER
    assert res.maxiter == DEFAULT_MAXITER
    assert len(eigsh_calls) == 1 and eigsh_calls[0]["maxiter"] == res.maxiter > 0, "maxiter must be bounded"
    assert res.matvecs > 0
    assert nc.top_k_eigs(a, 5, return_result=True).vectors is None


def test_top_k_non_convergence_is_reported_not_loosened(eigsh_calls):
    """A tightly clustered top spectrum with maxiter=2 makes ARPACK fail for real. The
    result must say so, carry residuals above tol that are the true ‖Av − λv‖/|λ|, and
    ARPACK must have been called exactly once, with the requested tol."""
    op, d = _clustered_operator()
    tol = 1e-10
    res = nc.top_k_eigs(op, 3, tol=tol, maxiter=2, return_result=True, return_vectors=True,
                        dense_fallback_max=0)
    assert res.converged is False and res.method == "ritz_estimate"
    assert "did not converge" in res.note and res.tol == tol and res.maxiter == 2
    assert [c["tol"] for c in eigsh_calls] == [tol], f"ARPACK calls: {eigsh_calls}"
    assert [c["maxiter"] for c in eigsh_calls] == [2]
    v, w = res.vectors, res.values
    assert np.all(np.isfinite(w)) and np.all(np.diff(w) <= 0)
    recomputed = np.linalg.norm(d[:, None] * v - v * w[None, :], axis=0) / np.abs(w)
    np.testing.assert_allclose(res.residuals, recomputed, rtol=1e-8)
    assert res.max_residual > tol, f"non-converged pairs reported residual {res.max_residual}"
    # Ritz values never exceed the top of the spectrum (Cauchy interlacing)
    assert w[0] <= d.max() * (1 + 1e-12)


def test_top_k_non_convergence_dense_fallback(eigsh_calls):
    op, d = _clustered_operator(n=600, seed=1)
    res = nc.top_k_eigs(op, 3, tol=1e-10, maxiter=2, return_result=True, return_vectors=True)
    assert res.method == "dense_fallback" and res.converged and "dense LAPACK" in res.note
    assert len(eigsh_calls) == 1
    np.testing.assert_allclose(res.values, np.sort(d)[::-1][:3], rtol=1e-14)
    assert res.max_residual <= 1e-12


def test_top_k_array_api_warns_on_non_convergence():
    op, _ = _clustered_operator()
    with pytest.warns(nc.EigshNotConverged, match="did not converge"):
        w = nc.top_k_eigs(op, 3, tol=1e-10, maxiter=2, dense_fallback_max=0)
    assert w.shape == (3,) and np.all(np.isfinite(w))


def test_top_k_uses_arpack_partial_pairs_when_k_available(monkeypatch):
    """ARPACK's ArpackNoConvergence may carry partial pairs; with ≥ k of them they are
    returned, flagged not converged, with their measured residuals."""
    from scipy.sparse.linalg import ArpackNoConvergence
    from ntk_core._src import spectra as sp
    op, d = _clustered_operator(n=500, seed=2)
    idx = np.argsort(d)[::-1][:3]
    vecs = np.zeros((500, 3))
    vecs[idx, np.arange(3)] = 1.0
    vecs[np.argmin(d), 1] = 1e-3                             # one vector off by 1e-3 in the bulk
    vecs /= np.linalg.norm(vecs, axis=0)

    def fail(*args, **kwargs):
        raise ArpackNoConvergence("No convergence (stub)", d[idx], vecs)

    monkeypatch.setattr(sp.spla, "eigsh", fail)
    res = nc.top_k_eigs(op, 3, return_result=True, return_vectors=True)
    assert res.method == "arpack_partial" and res.converged is False
    assert res.residuals[1] > 1e-4 and res.residuals[0] < 1e-12


def test_checkpoint_spectra_reports_residuals(pool_x):
    x = pool_x[:60]
    stack = _checkpoint_stack(8, "standard", count=3)
    valid = np.array([True, False, True])
    for dense_max in (4000, 0):
        out = nc.checkpoint_spectra(x, stack, parameterization="standard", top_k=5,
                                    dense_max=dense_max, valid=valid)
        assert out.residual.shape == (3,) and out.converged.shape == (3,) and len(out.notes) == 3
        assert out.converged.dtype == bool
        np.testing.assert_array_equal(out.converged, valid)
        assert np.isnan(out.residual[1])
        assert np.all(out.residual[[0, 2]] <= 1e-4), f"{dense_max=}: residuals {out.residual}"
