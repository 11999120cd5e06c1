"""Vmapped training grid: optimisation, regularisation, divergence handling, grid vs
individual runs, determinism, record shapes; and early stopping on hand-made curves.

Each distinct static configuration of ``train_grid`` costs one XLA compilation (~5 s on
2 cores), so the grids are module-scoped fixtures shared by several tests and all use
the same width and number of epochs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntk_core as nc

WIDTH = 16
EPOCHS = 6
RECORDS = ("train_loss", "objective", "val_loss", "val_acc", "step_norm", "rel_change", "weight_norm")
# Rows of the SGD full-batch grid: (λ, lr, seed). The last one diverges.
SGD_ROWS = ((0.0, 0.1, 0), (0.0, 0.1, 1), (0.0, 0.05, 0), (0.0, 1e3, 0))
DIVERGING_ROW = 3


def run(split, rows, **kw):
    strengths, lrs, seeds = zip(*rows)
    kw.setdefault("width", WIDTH)
    kw.setdefault("epochs", EPOCHS)
    return nc.train_grid(split.x_train, split.y_train, split.x_val, split.y_val,
                         reg_strengths=list(strengths), lrs=list(lrs), seeds=list(seeds), **kw)


@pytest.fixture(scope="module")
def sgd_grid(mnist_small):
    return run(mnist_small, SGD_ROWS)


@pytest.fixture(scope="module")
def minibatch_grid(mnist_small):
    return run(mnist_small, ((0.0, 0.1, 0), (0.0, 0.1, 1)), batch_size=16)


@pytest.fixture(scope="module")
def adam_grid(mnist_small):
    # Under the suite's strict promotion (train.py scopes optax's update itself; see
    # test_adam_under_strict_dtype_promotion below).
    return run(mnist_small, ((0.0, 1e-3, 0), (0.0, 1e-3, 1)), optimizer="adam")


REG_STRENGTHS = {"l2": (0.0, 1e-2, 3e-2, 1e-1), "l1": (0.0, 1e-3, 3e-3, 1e-2)}


@pytest.fixture(scope="module", params=["l2", "l1"])
def reg_grid(request, mnist_small):
    reg = request.param
    rows = tuple((lam, 0.1, 0) for lam in REG_STRENGTHS[reg])
    return reg, run(mnist_small, rows, reg=reg)


def assert_loss_decreases(result, rows, what):
    for g in rows:
        loss = result.train_loss[g]
        assert np.all(np.isfinite(loss)), f"{what}, row {g}: non-finite loss {loss}"
        assert loss[-1] < loss[0], f"{what}, row {g}: loss did not decrease: {loss}"
        assert result.diverged_at[g] == -1, f"{what}, row {g}: diverged_at={result.diverged_at[g]}"


# ----------------------------------------------------------------------------------------
# Optimisation

def test_sgd_full_batch_lowers_loss(sgd_grid):
    assert_loss_decreases(sgd_grid, [0, 1, 2], "SGD full batch")
    # Full-batch gradient descent at a small lr decreases the loss monotonically.
    for g in (0, 1, 2):
        assert np.all(np.diff(sgd_grid.train_loss[g]) < 0), f"SGD full batch row {g} not monotone"


def test_sgd_minibatch_lowers_loss(minibatch_grid, sgd_grid):
    assert_loss_decreases(minibatch_grid, [0, 1], "SGD minibatch (16)")
    # Four steps per epoch instead of one: after the same epochs, a lower loss.
    assert minibatch_grid.train_loss[0, -1] < sgd_grid.train_loss[0, -1], "minibatch vs full batch"
    # Same init as the full-batch run with the same seed.
    np.testing.assert_array_equal(minibatch_grid.params["W1"][0, 0], sgd_grid.params["W1"][0, 0])


def test_adam_lowers_loss(adam_grid):
    assert_loss_decreases(adam_grid, [0, 1], "Adam")


def test_adam_under_strict_dtype_promotion(mnist_small):
    """train_grid must not depend on implicit dtype promotion: optax.adam's bias correction
    does ``b1 ** count`` (float ** int32), which has no strict promotion path, so
    ntk_core/_src/train.py runs ``opt.update`` inside ``jax.numpy_dtype_promotion("standard")``."""
    with jax.numpy_dtype_promotion("strict"):
        result = run(mnist_small, ((0.0, 1e-3, 0),), optimizer="adam", epochs=1, width=4)
    assert np.all(np.isfinite(result.train_loss)), "Adam under strict promotion"


# ----------------------------------------------------------------------------------------
# Regularisation

def test_regularisation_shrinks_weights_monotonically(reg_grid, sgd_grid):
    reg, result = reg_grid
    final = result.weight_norm[:, -1]
    assert np.all(np.isfinite(final)), f"{reg}: non-finite weight norms {final}"
    assert np.all(np.diff(final) < 0), (
        f"{reg}: final ‖W‖ not strictly decreasing in λ={REG_STRENGTHS[reg]}: {final}")
    # λ = 0 is exactly the unregularised run (same lr and seed in the SGD grid).
    np.testing.assert_allclose(result.weight_norm[0], sgd_grid.weight_norm[0], rtol=1e-6,
                               err_msg=f"{reg} with λ=0 vs reg='none'")
    np.testing.assert_allclose(result.train_loss[0], sgd_grid.train_loss[0], rtol=1e-6,
                               err_msg=f"{reg} with λ=0 vs reg='none' (train loss)")
    assert np.all(final[1:] < sgd_grid.weight_norm[0, -1]), f"{reg} vs no regularisation"


def test_objective_includes_penalty(reg_grid):
    reg, result = reg_grid
    lam = np.asarray(REG_STRENGTHS[reg])
    for e in (0, EPOCHS):
        w1, w2 = result.params["W1"][:, e].astype(np.float64), result.params["W2"][:, e].astype(np.float64)
        if reg == "l2":
            pen = lam * ((w1 ** 2).sum((1, 2)) + (w2 ** 2).sum((1, 2)))
        else:
            pen = lam * (np.abs(w1).sum((1, 2)) + np.abs(w2).sum((1, 2)))
        np.testing.assert_allclose(result.objective[:, e], result.train_loss[:, e] + pen, rtol=1e-5,
                                   err_msg=f"{reg} objective = data loss + penalty at epoch {e}")


def test_loss_records_match_model(sgd_grid, mnist_small):
    """train_loss/val_loss/val_acc/weight_norm recomputed from the stored checkpoints."""
    s = mnist_small
    for e in (0, EPOCHS):
        p = {k: v[0, e] for k, v in sgd_grid.params.items()}
        f = np.asarray(nc.apply(p, s.x_train), np.float64)
        loss = 0.5 * np.mean(np.sum((f - s.y_train) ** 2, axis=1))
        fv = np.asarray(nc.apply(p, s.x_val), np.float64)
        vloss = 0.5 * np.mean(np.sum((fv - s.y_val) ** 2, axis=1))
        acc = np.mean(np.argmax(fv, 1) == s.labels_val)
        wn = np.sqrt((p["W1"].astype(np.float64) ** 2).sum() + (p["W2"].astype(np.float64) ** 2).sum())
        assert sgd_grid.train_loss[0, e] == pytest.approx(loss, rel=1e-5), f"train_loss epoch {e}"
        assert sgd_grid.val_loss[0, e] == pytest.approx(vloss, rel=1e-5), f"val_loss epoch {e}"
        assert sgd_grid.val_acc[0, e] == pytest.approx(acc, abs=1e-6), f"val_acc epoch {e}"
        assert sgd_grid.weight_norm[0, e] == pytest.approx(wn, rel=1e-5), f"weight_norm epoch {e}"


def test_norm_records_match_params(sgd_grid):
    flat = np.concatenate([sgd_grid.params[k][0].reshape(EPOCHS + 1, -1).astype(np.float64)
                           for k in sorted(sgd_grid.params)], axis=1)
    step = np.linalg.norm(np.diff(flat, axis=0), axis=1)
    rel = np.linalg.norm(flat - flat[0], axis=1) / np.linalg.norm(flat[0])
    np.testing.assert_allclose(sgd_grid.step_norm[0, 1:], step, rtol=1e-4, err_msg="step_norm")
    np.testing.assert_allclose(sgd_grid.rel_change[0, 1:], rel[1:], rtol=1e-4, err_msg="rel_change")


# ----------------------------------------------------------------------------------------
# Divergence

def test_huge_lr_diverges_and_freezes(sgd_grid):
    r, g = sgd_grid, DIVERGING_ROW
    d = int(r.diverged_at[g])
    assert d >= 1, f"lr=1e3 did not diverge: diverged_at={d}, loss {r.train_loss[g]}"
    for name in RECORDS:
        rec = getattr(r, name)[g]
        assert np.all(np.isnan(rec[d:])), f"{name} not NaN from epoch {d}: {rec}"
        assert np.all(np.isfinite(rec[:d])), f"{name} not finite before epoch {d}: {rec}"
    for k, v in r.params.items():
        assert np.all(np.isfinite(v[g])), f"params[{k}] of the diverged run are not finite"
        for e in range(d, EPOCHS + 1):
            np.testing.assert_array_equal(v[g, e], v[g, d - 1],
                                          err_msg=f"params[{k}] not frozen at epoch {e}")
    # Other rows of the same vmapped grid are unaffected.
    assert np.all(r.diverged_at[:DIVERGING_ROW] == -1)
    assert np.all(np.isfinite(r.train_loss[:DIVERGING_ROW]))


# ----------------------------------------------------------------------------------------
# Grid vs individual runs, determinism, shapes

@pytest.mark.parametrize("row", range(len(SGD_ROWS)))
def test_grid_row_equals_individual_run(sgd_grid, mnist_small, row):
    single = run(mnist_small, (SGD_ROWS[row],))
    assert single.diverged_at[0] == sgd_grid.diverged_at[row]
    for name in RECORDS:
        np.testing.assert_allclose(getattr(single, name)[0], getattr(sgd_grid, name)[row],
                                   rtol=1e-5, atol=1e-7, equal_nan=True,
                                   err_msg=f"grid row {row} vs individual run: {name}")
    for k in single.params:
        np.testing.assert_allclose(single.params[k][0], sgd_grid.params[k][row], rtol=1e-5,
                                   atol=1e-7, err_msg=f"grid row {row} vs individual run: {k}")


@pytest.mark.parametrize("grid", ["sgd", "minibatch"])
def test_deterministic(grid, mnist_small, sgd_grid, minibatch_grid):
    first = {"sgd": sgd_grid, "minibatch": minibatch_grid}[grid]
    again = run(mnist_small, SGD_ROWS) if grid == "sgd" else run(
        mnist_small, ((0.0, 0.1, 0), (0.0, 0.1, 1)), batch_size=16)
    for name in RECORDS + ("diverged_at",):
        np.testing.assert_array_equal(getattr(again, name), getattr(first, name), err_msg=name)
    for k in first.params:
        np.testing.assert_array_equal(again.params[k], first.params[k], err_msg=k)


def test_seed_controls_init(sgd_grid):
    p = sgd_grid.params["W1"]
    np.testing.assert_array_equal(p[0, 0], p[2, 0], err_msg="same seed, different lr: same init")
    assert not np.array_equal(p[0, 0], p[1, 0]), "different seeds gave the same init"


def test_shapes_and_initial_records(sgd_grid):
    g, e1 = len(SGD_ROWS), EPOCHS + 1
    for name in RECORDS:
        rec = getattr(sgd_grid, name)
        assert isinstance(rec, np.ndarray) and rec.shape == (g, e1), f"{name}: {rec.shape}"
    assert sgd_grid.diverged_at.shape == (g,)
    assert np.issubdtype(sgd_grid.diverged_at.dtype, np.integer)
    shapes = {"W1": (784, WIDTH), "b1": (WIDTH,), "W2": (WIDTH, 10), "b2": (10,)}
    for k, s in shapes.items():
        assert sgd_grid.params[k].shape == (g, e1) + s, (k, sgd_grid.params[k].shape)
        assert sgd_grid.params[k].dtype == np.float32
    np.testing.assert_array_equal(sgd_grid.rel_change[:, 0], 0.0)
    np.testing.assert_array_equal(sgd_grid.step_norm[:, 0], 0.0)
    assert np.all((sgd_grid.val_acc[:, 0] >= 0) & (sgd_grid.val_acc[:, 0] <= 1))


def test_mismatched_grid_lengths_rejected(mnist_small):
    s = mnist_small
    with pytest.raises(ValueError, match="same length"):
        nc.train_grid(s.x_train, s.y_train, s.x_val, s.y_val, width=WIDTH,
                      reg_strengths=[0.0, 0.0], lrs=[0.1], seeds=[0, 1], epochs=EPOCHS)


# ----------------------------------------------------------------------------------------
# Early stopping: EarlyStop(restore_epoch, stop_epoch, best_epoch)

@pytest.mark.parametrize("curve,patience,expected", [
    # improves, stalls for 3 epochs at e = 3, 4, 5 (stop 5, restore 2), then the global
    # best comes AFTER the stop: restore < stop < best
    ([5.0, 4.0, 3.0, 3.5, 3.6, 3.7, 2.0], 3, (2, 5, 6)),
    # the stall is interrupted by an improvement: never stalls 3 epochs in a row
    ([5.0, 4.0, 4.5, 4.6, 3.0, 3.1, 3.2], 3, (4, -1, 4)),
    # monotone improvement: never stalled
    ([5.0, 4.0, 3.0, 2.0, 1.0], 1, (4, -1, 4)),
    # patience 1: the first non-improvement stops; the later best is not restored
    ([5.0, 4.0, 4.0, 1.0], 1, (1, 2, 3)),
    # equal values are not improvements: the earliest of equal minima
    ([1.0, 1.0, 1.0, 1.0], 2, (0, 2, 0)),
    # best at the initial epoch
    ([1.0, 2.0, 3.0, 4.0], 3, (0, 3, 0)),
])
def test_early_stopping(curve, patience, expected):
    es = nc.early_stopping(np.array(curve), patience)
    assert isinstance(es, nc.EarlyStop)
    assert tuple(es) == expected, (curve, patience, es)
    assert (es.restore_epoch, es.stop_epoch, es.best_epoch) == expected


def test_early_stopping_restore_never_after_stop():
    """On random curves: restore = argmin of the curve up to the stop, never after it."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        curve = rng.uniform(size=rng.integers(2, 15))
        curve[rng.uniform(size=curve.size) < 0.1] = np.nan
        es = nc.early_stopping(curve, int(rng.integers(1, 4)))
        finite = np.where(np.isfinite(curve), curve, np.inf)
        assert es.best_epoch == int(np.argmin(finite))
        if es.stop_epoch >= 0:
            assert es.restore_epoch == int(np.argmin(finite[: es.stop_epoch + 1])) <= es.stop_epoch
            assert finite[es.best_epoch] <= finite[es.restore_epoch]
        else:
            assert es.restore_epoch == es.best_epoch


def test_early_stopping_nan_epochs_count_as_no_improvement():
    nan = np.nan
    # Diverged from epoch 3 on: NaN never improves, stall counted from the best epoch.
    assert nc.early_stopping(np.array([5.0, 4.0, 3.0, nan, nan, nan]), 2) == (2, 4, 2)
    # A NaN in the middle is skipped for the best epoch.
    assert nc.early_stopping(np.array([5.0, nan, 4.0, 3.9]), 5) == (3, -1, 3)
    # All-NaN curve after init: best is the initial epoch.
    assert nc.early_stopping(np.array([2.0, nan, nan, nan]), 3) == (0, 3, 0)
    # A NaN stall before a later finite best: restore before the stop, best after it.
    assert nc.early_stopping(np.array([3.0, nan, nan, 1.0]), 2) == (0, 2, 3)


def test_early_stopping_on_a_real_run(sgd_grid):
    es = nc.early_stopping(sgd_grid.val_loss[DIVERGING_ROW], 2)
    d = int(sgd_grid.diverged_at[DIVERGING_ROW])
    assert es.best_epoch < d and es.stop_epoch == d + 1, (es, d)
    assert es.restore_epoch == es.best_epoch


# ----------------------------------------------------------------------------------------
# Decoupled weight decay (SGD + wd, AdamW) against L2 in the loss.
# Mapping: the penalty λ·Σw² has gradient 2λ·w, so SGD with decoupled wd = 2λ takes the
# same steps as SGD on the L2 objective; Adam normalises the L2 gradient, AdamW does not.

WD_LAMBDA = 0.05
WD = 2 * WD_LAMBDA
# Rows (λ, wd): L2 in the loss, decoupled decay, neither. One compiled program per optimizer.
WD_ROWS = ((WD_LAMBDA, 0.0), (0.0, WD), (0.0, 0.0))
ADAMW_LR = 1e-2


def _wd_grid(split, optimizer, lr):
    lams, wds = zip(*WD_ROWS)
    return nc.train_grid(split.x_train, split.y_train, split.x_val, split.y_val, width=WIDTH,
                         epochs=EPOCHS, reg_strengths=list(lams), lrs=[lr] * len(WD_ROWS),
                         seeds=[0] * len(WD_ROWS), reg="l2", optimizer=optimizer,
                         weight_decay=list(wds))


@pytest.fixture(scope="module")
def wd_grids(mnist_small):
    return {"sgd": _wd_grid(mnist_small, "sgd", 0.1), "adam": _wd_grid(mnist_small, "adam", ADAMW_LR)}


def _flat(result, g, e):
    return np.concatenate([result.params[k][g, e].ravel() for k in sorted(result.params)])


def test_sgd_weight_decay_equals_l2_in_the_loss(wd_grids):
    r = wd_grids["sgd"]
    for e in range(EPOCHS + 1):
        l2, wd, plain = _flat(r, 0, e), _flat(r, 1, e), _flat(r, 2, e)
        # float32 round-off: the two compute 2λ·w (L2) vs wd·w and sum the gradient terms
        # in a different order.
        np.testing.assert_allclose(wd, l2, rtol=0, atol=1e-6 * np.abs(l2).max(),
                                   err_msg=f"SGD: wd={WD} vs L2 λ={WD_LAMBDA}, epoch {e}")
    # ... and both really decay: far from the unregularised run, with smaller weights.
    assert np.abs(_flat(r, 1, EPOCHS) - _flat(r, 2, EPOCHS)).max() > 1e-3
    assert r.weight_norm[1, -1] < r.weight_norm[2, -1]
    # The objective records the data loss + the L2 penalty only (decay is not a loss term).
    np.testing.assert_array_equal(r.objective[1], r.train_loss[1])
    assert np.all(r.objective[0, 1:] > r.train_loss[0, 1:])


def test_adamw_differs_from_adam_with_l2(wd_grids):
    r = wd_grids["adam"]
    move = np.linalg.norm(_flat(r, 1, EPOCHS) - _flat(r, 1, 0))
    gap = np.linalg.norm(_flat(r, 0, EPOCHS) - _flat(r, 1, EPOCHS))
    # Measured 1.36 on this problem: Adam rescales the L2 gradient 2λ·w per coordinate.
    assert gap > 0.1 * move, f"Adam+L2 vs AdamW: gap {gap:.3g}, AdamW's own move {move:.3g}"
    # Same init for all rows.
    np.testing.assert_array_equal(_flat(r, 0, 0), _flat(r, 1, 0))


def test_adamw_matches_numpy_reference(wd_grids, mnist_small):
    """AdamW (optax.adamw convention, decay on W1/W2 only) by hand in NumPy, full batch:
    m ← β1·m + (1−β1)·g, v ← β2·v + (1−β2)·g², θ ← θ − η·(m̂/(√v̂ + ε) + wd·θ)."""
    r, s = wd_grids["adam"], mnist_small
    x, y = jnp.asarray(s.x_train), jnp.asarray(s.y_train)

    def loss(p):
        f = nc.apply(p, x, "standard")
        return 0.5 * jnp.mean(jnp.sum((f - y) ** 2, axis=1))

    grad = jax.jit(jax.grad(loss))
    p = {k: r.params[k][1, 0].copy() for k in r.params}
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(a) for k, a in p.items()}
    b1, b2, eps = np.float32(0.9), np.float32(0.999), np.float32(1e-8)
    lr, wd = np.float32(ADAMW_LR), np.float32(WD)
    for t in range(1, EPOCHS + 1):
        g = {k: np.asarray(a) for k, a in grad(p).items()}
        for k in p:
            m[k] = b1 * m[k] + (1 - b1) * g[k]
            v[k] = b2 * v[k] + (1 - b2) * g[k] * g[k]
            mh, vh = m[k] / (1 - b1 ** t), v[k] / (1 - b2 ** t)
            decay = wd * p[k] if k in ("W1", "W2") else 0
            p[k] = p[k] - lr * (mh / (np.sqrt(vh) + eps) + decay)
        for k in p:
            # One Adam step moves a coordinate by ≈ η whatever |g| is, so where g is ~0 a
            # float32 difference between the two gradient computations can flip its
            # direction: compare the whole tensor's distance, relative to how far it moved.
            moved = np.linalg.norm(r.params[k][1, t] - r.params[k][1, 0])
            err = np.linalg.norm(r.params[k][1, t] - p[k])
            assert err <= 1e-4 * moved, f"AdamW vs NumPy reference, {k}, step {t}: {err:.3g} vs {moved:.3g}"
    # That tolerance is far below what the decay itself did (AdamW vs plain Adam).
    for k in ("W1", "W2"):
        moved = np.linalg.norm(r.params[k][1, -1] - r.params[k][1, 0])
        assert np.linalg.norm(r.params[k][1, -1] - r.params[k][2, -1]) > 10 * 1e-4 * moved, k


def test_weight_decay_rejects_bad_values(mnist_small):
    s = mnist_small
    with pytest.raises(ValueError, match="weight_decay"):
        nc.train_grid(s.x_train, s.y_train, s.x_val, s.y_val, width=4, reg_strengths=[0.0],
                      lrs=[0.1], seeds=[0], epochs=1, weight_decay=-1.0)
    with pytest.raises(ValueError, match="weight_decay"):
        nc.train_grid(s.x_train, s.y_train, s.x_val, s.y_val, width=4, reg_strengths=[0.0],
                      lrs=[0.1], seeds=[0], epochs=1, weight_decay=[0.1, 0.1])
