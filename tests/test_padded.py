"""One compiled program per sweep: padded widths and masked sample counts vs separate runs.

``train_sweep`` trains runs of different widths zero-padded to the largest width, and runs
of different training-set sizes padded to the largest n with a sample mask, in ONE
compiled, vmapped program. Every record and every (unpadded) parameter must equal the
separate, unpadded ``train_grid`` run to float32 tolerance: the programs differ only in
summation order (sums over extra exact zeros), so agreement is measured at ~1e-7 relative
and asserted at TOL below. Initial parameters are compared bit for bit, and padded
hidden units must stay exactly 0 at every epoch.

Compilations are counted with JAX's own backend-compile event
(``/jax/core/compile/backend_compile_duration``, which carries the jitted function's name).
"""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntk_core as nc

# float32 tolerance for padded vs unpadded runs (observed differences ≤ 3e-7 relative).
TOL = dict(rtol=1e-5, atol=1e-6)
EPOCHS = 4
WIDTHS = (1, 3, 8, 16)
RECORDS = ("train_loss", "objective", "val_loss", "val_acc", "step_norm", "rel_change", "weight_norm")
BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"

# (parameterization, optimizer, batch_size, reg, λ, lr): every pair of parameterization ×
# optimizer and of optimizer × batch (full, minibatch) appears, and L1 and L2 each with SGD
# and Adam; the first case's λ = 0 diverging row stands for no penalty. Adam + L1 checks
# the L1 subgradient at 0 and Adam's 0/(√0 + ε) on the padded units. Four cases, not the
# full product: each compiles five programs.
CASES = {
    "standard-sgd-full-l2": ("standard", "sgd", 0, "l2", 1e-2, 0.1),
    "ntk-sgd-mb16-l1": ("ntk", "sgd", 16, "l1", 1e-3, 0.1),
    "standard-adam-mb16-l2": ("standard", "adam", 16, "l2", 1e-2, 1e-3),
    "ntk-adam-full-l1": ("ntk", "adam", 0, "l1", 1e-3, 1e-3),
}


def rows_for(case):
    """(width, λ, lr, seed) per run: one run per width, plus a diverging one (SGD full batch)."""
    par, opt, bs, reg, lam, lr = CASES[case]
    rows = [(w, lam, lr, g) for g, w in enumerate(WIDTHS)]
    if case == "standard-sgd-full-l2":
        rows.append((3, 0.0, 1e3, 7))
    return rows


@contextlib.contextmanager
def count_compiles():
    """Yields a list that collects the names of the functions XLA compiles in the block."""
    names: list[str] = []

    def listener(event, duration, **kw):
        if event == BACKEND_COMPILE_EVENT:
            names.append(str(kw.get("fun_name", "")))

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield names
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def assert_same_run(padded, g, single, j, what):
    assert padded.diverged_at[g] == single.diverged_at[j], f"{what}: diverged_at"
    for name in RECORDS:
        np.testing.assert_allclose(getattr(padded, name)[g], getattr(single, name)[j], equal_nan=True,
                                   err_msg=f"{what}: {name}", **TOL)
    mine = padded.run_params(g)
    for k in single.params:
        assert mine[k].shape == single.params[k][j].shape, (what, k, mine[k].shape)
        np.testing.assert_allclose(mine[k], single.params[k][j], err_msg=f"{what}: params[{k}]", **TOL)
        np.testing.assert_array_equal(mine[k][0], single.params[k][j, 0], err_msg=f"{what}: init {k}")


# ----------------------------------------------------------------------------------------
# Padded widths

@pytest.fixture(scope="module", params=list(CASES))
def width_sweep(request, mnist_small):
    case = request.param
    par, opt, bs, reg, _, _ = CASES[case]
    s = mnist_small
    rows = rows_for(case)
    widths, lams, lrs, seeds = zip(*rows)
    kw = dict(parameterization=par, optimizer=opt, batch_size=bs, reg=reg, epochs=EPOCHS)
    padded = nc.train_sweep(s.x_train, s.y_train, s.x_val, s.y_val, widths=list(widths),
                            reg_strengths=list(lams), lrs=list(lrs), seeds=list(seeds), **kw)
    singles = {}
    for w in sorted(set(widths)):
        idx = [i for i, r in enumerate(rows) if r[0] == w]
        singles[w] = (idx, nc.train_grid(s.x_train, s.y_train, s.x_val, s.y_val, width=w,
                                         reg_strengths=[lams[i] for i in idx],
                                         lrs=[lrs[i] for i in idx],
                                         seeds=[seeds[i] for i in idx], **kw))
    return case, padded, singles


def test_padded_widths_equal_separate_runs(width_sweep):
    case, padded, singles = width_sweep
    w_max = max(WIDTHS)
    assert padded.params["W1"].shape[-1] == w_max and padded.params["W2"].shape[-2] == w_max
    for w, (idx, single) in singles.items():
        for j, g in enumerate(idx):
            assert padded.widths[g] == w
            assert_same_run(padded, g, single, j, f"{case}, width {w} (run {g})")
    if case == "standard-sgd-full-l2":
        assert padded.diverged_at[-1] >= 1, "the lr=1e3 row should diverge"
        assert np.all(padded.diverged_at[:-1] == -1)


def test_padded_units_stay_exactly_zero(width_sweep):
    case, padded, _ = width_sweep
    for g, w in enumerate(padded.widths):
        p = {k: v[g] for k, v in padded.params.items()}
        for k, tail in (("W1", p["W1"][..., w:]), ("b1", p["b1"][..., w:]), ("W2", p["W2"][..., w:, :])):
            assert not np.any(tail), f"{case}, width {w}: padded {k} moved (max |.| {np.abs(tail).max()})"


def test_padded_kernel_equals_unpadded(width_sweep, mnist_small):
    """Closed-form traced Θ (and its diagonal, the matrix-free product and the autodiff
    reference) of the padded params with the true width's scales = the unpadded kernel."""
    case, padded, singles = width_sweep
    par = CASES[case][0]
    x = jnp.asarray(mnist_small.x_train)
    g_mat = nc.gram(x, parameterization=par)
    v = jnp.asarray(np.random.default_rng(0).standard_normal(x.shape[0]), jnp.float32)
    for w, (idx, single) in singles.items():
        g, j = idx[0], 0
        for e in (0, EPOCHS):
            mine = {k: jnp.asarray(a[g, e]) for k, a in padded.params.items()}
            ref = {k: jnp.asarray(a[j, e]) for k, a in single.params.items()}
            sc = nc.layer_scales(int(w), par)
            what = f"{case}, width {w}, epoch {e}"
            k_ref = np.asarray(nc.traced_ntk_from_gram(ref, x, g_mat, parameterization=par))
            k_pad = np.asarray(nc.traced_ntk_from_gram(mine, x, g_mat, parameterization=par, scales=sc))
            np.testing.assert_allclose(k_pad, k_ref, rtol=1e-5, atol=1e-5 * np.abs(k_ref).max(),
                                       err_msg=f"{what}: traced Θ")
            d_pad = nc.ntk_diagonal(mine, x, parameterization=par, scales=sc)
            np.testing.assert_allclose(d_pad, np.diag(k_ref), rtol=1e-5, err_msg=f"{what}: diagonal")
            st = nc.matfree_state(mine, x, parameterization=par, scales=sc)
            mv_ref = k_ref.astype(np.float64) @ np.asarray(v, np.float64)
            np.testing.assert_allclose(nc.matfree_matvec(st, v), mv_ref, rtol=1e-4,
                                       atol=1e-5 * np.abs(mv_ref).max(), err_msg=f"{what}: Θ·v")
        if w == WIDTHS[1]:  # the autodiff reference once per case (it is slow)
            ad = nc.empirical_ntk(mine, x[:16], parameterization=par, method="autodiff", scales=sc)
            np.testing.assert_allclose(ad, k_ref[:16, :16], rtol=1e-5, atol=1e-5 * np.abs(k_ref).max(),
                                       err_msg=f"{case}, width {w}: autodiff Θ of padded params")


def test_one_compile_for_a_padded_width_sweep(mnist_small):
    """4 widths padded: 1 training compile (and 1 init compile); unpadded: 4 of each.
    The kernel of every padded width also compiles once."""
    s = mnist_small
    kw = dict(parameterization="ntk", epochs=2)
    jax.clear_caches()
    with count_compiles() as padded_names:
        tr = nc.train_sweep(s.x_train, s.y_train, s.x_val, s.y_val, widths=list(WIDTHS),
                            reg_strengths=[0.0] * 4, lrs=[0.1] * 4, seeds=[0, 1, 2, 3], **kw)
    jax.clear_caches()
    with count_compiles() as single_names:
        for w in WIDTHS:
            nc.train_grid(s.x_train, s.y_train, s.x_val, s.y_val, width=w, reg_strengths=[0.0],
                          lrs=[0.1], seeds=[0], **kw)
    train = lambda names: sum(n == "jit(_train_grid)" for n in names)
    init = lambda names: sum(n.startswith("jit(_init") for n in names)
    assert train(padded_names) == 1, padded_names
    assert train(single_names) == len(WIDTHS), single_names
    assert init(padded_names) == 1, padded_names
    assert init(single_names) == len(WIDTHS), single_names

    x = jnp.asarray(s.x_train)
    g_mat = nc.gram(x, parameterization="ntk")
    with count_compiles() as kernel_names:
        for g, w in enumerate(WIDTHS):
            p = {k: jnp.asarray(v[g, -1]) for k, v in tr.params.items()}
            nc.traced_ntk_from_gram(p, x, g_mat, parameterization="ntk",
                                    scales=nc.layer_scales(w, "ntk")).block_until_ready()
    assert sum("traced_ntk_from_gram" in n for n in kernel_names) == 1, kernel_names


def test_pad_width_larger_than_every_width(mnist_small):
    s = mnist_small
    kw = dict(reg_strengths=[0.0], lrs=[0.1], seeds=[0], epochs=2)
    tr = nc.train_sweep(s.x_train, s.y_train, s.x_val, s.y_val, widths=[3], pad_width=8, **kw)
    single = nc.train_grid(s.x_train, s.y_train, s.x_val, s.y_val, width=3, **kw)
    assert tr.params["W1"].shape == (1, 3, 784, 8)
    assert_same_run(tr, 0, single, 0, "width 3 padded to 8")
    with pytest.raises(ValueError, match="pad_width"):
        nc.train_sweep(s.x_train, s.y_train, s.x_val, s.y_val, widths=[16], pad_width=8, **kw)


def test_pad_unpad_roundtrip():
    rng = np.random.default_rng(0)
    p = {"W1": rng.standard_normal((2, 3, 784, 5)), "b1": rng.standard_normal((2, 3, 5)),
         "W2": rng.standard_normal((2, 3, 5, 10)), "b2": rng.standard_normal((2, 3, 10))}
    big = nc.pad_params(p, 9)
    assert big["W1"].shape == (2, 3, 784, 9) and big["W2"].shape == (2, 3, 9, 10)
    assert not np.any(big["W1"][..., 5:]) and not np.any(big["W2"][..., 5:, :]) and not np.any(big["b1"][..., 5:])
    back = nc.unpad(big, 5)
    for k in p:
        np.testing.assert_array_equal(back[k], p[k], err_msg=k)


# ----------------------------------------------------------------------------------------
# Masked sample counts (full batch) and per-run data

SAMPLE_COUNTS = (20, 50, 80)
N_VAL = 32
# (parameterization, optimizer, reg, λ, lr, widths per n): the second one varies width too.
SAMPLE_CASES = {
    "standard-sgd": ("standard", "sgd", "none", 0.0, 0.1, (16, 16, 16)),
    "ntk-adam-l1-widths": ("ntk", "adam", "l1", 1e-3, 1e-3, (3, 16, 8)),
}


@pytest.fixture(scope="module")
def sample_splits():
    return [nc.load_split(n, N_VAL, seed=0) for n in SAMPLE_COUNTS]


@pytest.mark.parametrize("case", list(SAMPLE_CASES))
def test_masked_sample_counts_equal_separate_runs(case, sample_splits):
    par, opt, reg, lam, lr, widths = SAMPLE_CASES[case]
    sp = sample_splits
    # The train sets for different n are not nested prefixes: each run needs its own data.
    assert not np.array_equal(sp[1].x_train[:20], sp[0].x_train)
    kw = dict(parameterization=par, optimizer=opt, reg=reg, epochs=EPOCHS, batch_size=0)
    g_runs = len(sp)
    tr = nc.train_sweep([s.x_train for s in sp], [s.y_train for s in sp], [s.x_val for s in sp],
                        [s.y_val for s in sp], widths=list(widths), reg_strengths=[lam] * g_runs,
                        lrs=[lr] * g_runs, seeds=[0] * g_runs, **kw)
    np.testing.assert_array_equal(tr.n_train, SAMPLE_COUNTS)
    for g, (s, w) in enumerate(zip(sp, widths)):
        single = nc.train_grid(s.x_train, s.y_train, s.x_val, s.y_val, width=w, reg_strengths=[lam],
                               lrs=[lr], seeds=[0], **kw)
        assert_same_run(tr, g, single, 0, f"{case}: n={SAMPLE_COUNTS[g]}, width {w}")


def test_per_run_splits_with_minibatches(mnist_small):
    """A seed sweep with each seed's own split (equal n) fuses minibatch SGD too."""
    splits = [mnist_small] + [nc.load_split(64, 32, seed=s) for s in (1, 2)]
    kw = dict(parameterization="standard", epochs=EPOCHS, batch_size=16, width=WIDTHS[2])
    tr = nc.train_sweep([s.x_train for s in splits], [s.y_train for s in splits],
                        [s.x_val for s in splits], [s.y_val for s in splits],
                        widths=kw.pop("width"), reg_strengths=[0.0] * 3, lrs=[0.1] * 3,
                        seeds=[0, 1, 2], **kw)
    for g, s in enumerate(splits):
        single = nc.train_grid(s.x_train, s.y_train, s.x_val, s.y_val, width=WIDTHS[2],
                               reg_strengths=[0.0], lrs=[0.1], seeds=[g], **kw)
        assert_same_run(tr, g, single, 0, f"split seed {g}, minibatch 16")


def test_minibatch_with_different_sample_counts_is_rejected(sample_splits):
    sp = sample_splits
    with pytest.raises(ValueError, match="full-batch"):
        nc.train_sweep([s.x_train for s in sp], [s.y_train for s in sp], sp[0].x_val, sp[0].y_val,
                       widths=4, reg_strengths=[0.0] * 3, lrs=[0.1] * 3, seeds=[0] * 3,
                       batch_size=16, epochs=1)


def test_per_run_data_length_mismatch_rejected(sample_splits):
    sp = sample_splits
    with pytest.raises(ValueError, match="3 entries"):
        nc.train_sweep([s.x_train for s in sp[:2]], [s.y_train for s in sp[:2]], sp[0].x_val,
                       sp[0].y_val, widths=4, reg_strengths=[0.0] * 3, lrs=[0.1] * 3,
                       seeds=[0] * 3, epochs=1)
    with pytest.raises(ValueError, match="train_sweep"):
        nc.train_grid([s.x_train for s in sp], [s.y_train for s in sp], sp[0].x_val, sp[0].y_val,
                      width=4, reg_strengths=[0.0] * 3, lrs=[0.1] * 3, seeds=[0] * 3, epochs=1)
