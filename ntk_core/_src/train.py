"""Training: one compiled program for a whole grid of runs (vmap over λ, lr, seed).

Loss (documented scaling): L(θ) = ½·mean_i ‖f(x_i) − y_i‖² (squared error summed over
the 10 outputs, averaged over samples) + λ·Σ_{W1,W2} w² (L2) or λ·Σ |w| (L1); biases are
not regularised. Under gradient flow on the ½-mean loss, df/dt = −(η/n)·Θ_full·(f − y).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ntk_core._src import model as _model

DIVERGENCE_FACTOR = 1e6


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """Per-run, per-epoch records of a grid of G runs over E epochs (index 0 = init).

    Attributes:
      params: dict of (G, E+1, ...) float32 checkpoints.
      train_loss: (G, E+1) data loss ½·mean‖f−y‖² on the full training set (no penalty).
      objective: (G, E+1) train loss + penalty.
      val_loss: (G, E+1) same data loss on the validation split.
      val_acc: (G, E+1) validation accuracy in [0, 1].
      step_norm: (G, E+1) ‖θ_e − θ_{e−1}‖₂ (0 at e = 0).
      rel_change: (G, E+1) ‖θ_e − θ_0‖₂ / ‖θ_0‖₂.
      weight_norm: (G, E+1) ‖(W1, W2)‖₂.
      diverged_at: (G,) int, first epoch whose loss is non-finite or above
        DIVERGENCE_FACTOR × max(initial loss, 1), or -1. Metrics from that
        epoch on are NaN and params are frozen at the last finite checkpoint.
    """

    params: dict
    train_loss: np.ndarray
    objective: np.ndarray
    val_loss: np.ndarray
    val_acc: np.ndarray
    step_norm: np.ndarray
    rel_change: np.ndarray
    weight_norm: np.ndarray
    diverged_at: np.ndarray


def data_loss(params, x, y, parameterization: str):
    """½·mean over samples of the squared error summed over outputs; scalar."""
    r = _model.apply(params, x, parameterization) - y
    return 0.5 * jnp.mean(jnp.sum(r * r, axis=1))


def penalty(params, reg: str, strength):
    ws = (params["W1"], params["W2"])
    if reg == "l2":
        return strength * sum(jnp.sum(w * w) for w in ws)
    if reg == "l1":
        return strength * sum(jnp.sum(jnp.abs(w)) for w in ws)
    return jnp.zeros((), params["W1"].dtype)


def _tree_norm(t):
    return jnp.sqrt(sum(jnp.sum(a * a) for a in jax.tree_util.tree_leaves(t)))


def _make_optimizer(name: str, lr):
    if name == "sgd":
        return optax.sgd(lr)
    if name == "adam":
        return optax.adam(lr)
    raise ValueError(f"optimizer={name!r}; allowed: sgd, adam")


@functools.partial(jax.jit, static_argnames=("width", "parameterization"))
def _init(key, *, width, parameterization):
    # Drawn outside the vmapped program: XLA compiles a vmapped RNG init slowly (measured
    # 1.6 s of a 2.5 s compile), and the draws are identical either way.
    return _model.init_params(jax.random.split(key)[0], width, parameterization)


def _single_run(strength, lr, key, params0, x, y, xv, yv, *, width, parameterization, reg,
                optimizer, epochs, batch_size):
    n = x.shape[0]
    k_data = jax.random.split(key)[1]
    opt = _make_optimizer(optimizer, lr)
    full = batch_size == 0 or batch_size >= n
    bs = n if full else batch_size
    steps = n // bs

    def objective(p, xb, yb):
        return data_loss(p, xb, yb, parameterization) + penalty(p, reg, strength)

    grad_fn = jax.grad(objective)

    def step(carry, idx):
        p, s = carry
        g = grad_fn(p, x[idx], y[idx])
        # optax's Adam bias correction is `1 - b1**count` (Python float ** int32), which has
        # no path under strict dtype promotion; scope the standard rules to the optimiser.
        with jax.numpy_dtype_promotion("standard"):
            upd, s = opt.update(g, s, p)
        return (optax.apply_updates(p, upd), s), None

    def metrics(p):
        tl = data_loss(p, x, y, parameterization)
        fv = _model.apply(p, xv, parameterization)
        rv = fv - yv
        vl = 0.5 * jnp.mean(jnp.sum(rv * rv, axis=1))
        acc = jnp.mean((jnp.argmax(fv, 1) == jnp.argmax(yv, 1)).astype(x.dtype))
        return tl, tl + penalty(p, reg, strength), vl, acc

    norm0 = _tree_norm(params0)
    loss0 = data_loss(params0, x, y, parameterization)
    wnorm = lambda p: _tree_norm((p["W1"], p["W2"]))

    def epoch(carry, e):
        p, s, k, div = carry
        k, kp = jax.random.split(k)
        order = jnp.arange(n) if full else jax.random.permutation(kp, n)
        batches = order[: steps * bs].reshape(steps, bs)
        (p_new, s_new), _ = jax.lax.scan(step, (p, s), batches)
        tl, obj, vl, acc = metrics(p_new)
        leaves_ok = jnp.all(jnp.array([jnp.all(jnp.isfinite(a)) for a in jax.tree_util.tree_leaves(p_new)]))
        # Diverged: non-finite, or a loss 1e6× above the initial one (float32 would overflow
        # a few steps later anyway; stopping here keeps the last checkpoint meaningful).
        ok = (jnp.isfinite(tl) & jnp.isfinite(vl) & leaves_ok & (div < 0)
              & (tl < DIVERGENCE_FACTOR * jnp.maximum(loss0, 1.0)))
        div = jnp.where((div < 0) & ~ok, e, div)
        # Freeze at the last finite checkpoint so NaNs never reach a stored kernel.
        p_keep = jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), p_new, p)
        s_keep = jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), s_new, s)
        nan = jnp.asarray(jnp.nan, x.dtype)
        rec = dict(train_loss=jnp.where(ok, tl, nan), objective=jnp.where(ok, obj, nan),
                   val_loss=jnp.where(ok, vl, nan), val_acc=jnp.where(ok, acc, nan),
                   step_norm=jnp.where(ok, _tree_norm(jax.tree_util.tree_map(jnp.subtract, p_keep, p)), nan),
                   rel_change=jnp.where(ok, _tree_norm(jax.tree_util.tree_map(jnp.subtract, p_keep, params0)) / norm0, nan),
                   weight_norm=jnp.where(ok, wnorm(p_keep), nan), params=p_keep)
        return (p_keep, s_keep, k, div), rec

    tl0, obj0, vl0, acc0 = metrics(params0)
    zero = jnp.zeros((), x.dtype)
    rec0 = dict(train_loss=tl0, objective=obj0, val_loss=vl0, val_acc=acc0, step_norm=zero,
                rel_change=zero, weight_norm=wnorm(params0), params=params0)
    init = (params0, opt.init(params0), k_data, jnp.asarray(-1, jnp.int32))
    (_, _, _, div), recs = jax.lax.scan(epoch, init, jnp.arange(1, epochs + 1, dtype=jnp.int32))
    out = jax.tree_util.tree_map(lambda a0, a: jnp.concatenate([a0[None], a], 0), rec0, recs)
    out["diverged_at"] = div
    return out


@functools.partial(jax.jit, static_argnames=("width", "parameterization", "reg", "optimizer",
                                             "epochs", "batch_size"))
def _train_grid(strengths, lrs, keys, params0, x, y, xv, yv, *, width, parameterization, reg,
                optimizer, epochs, batch_size):
    run = functools.partial(_single_run, width=width, parameterization=parameterization, reg=reg,
                            optimizer=optimizer, epochs=epochs, batch_size=batch_size)
    return jax.vmap(run, in_axes=(0, 0, 0, 0, None, None, None, None))(
        strengths, lrs, keys, params0, x, y, xv, yv)


def train_grid(x_train, y_train, x_val, y_val, *, width: int, reg_strengths, lrs, seeds,
               parameterization: str = "standard", reg: str = "none", optimizer: str = "sgd",
               epochs: int = 30, batch_size: int = 0) -> TrainResult:
    """Trains G runs that differ only in (λ, lr, seed) in ONE compiled, vmapped program.

    Data are passed as arguments (never closed over, so XLA does not constant-fold them).
    Each epoch is a ``lax.scan`` over minibatches inside a ``lax.scan`` over epochs.

    Args:
      reg_strengths, lrs, seeds: sequences of equal length G.

    Returns:
      :class:`TrainResult` of NumPy arrays with a leading grid axis G.
    """
    strengths = jnp.asarray(np.asarray(reg_strengths, dtype=np.float32))
    lrs = jnp.asarray(np.asarray(lrs, dtype=np.float32))
    keys = jnp.stack([jax.random.PRNGKey(int(s)) for s in seeds])
    if not (strengths.shape == lrs.shape == (keys.shape[0],)):
        raise ValueError("reg_strengths, lrs and seeds must have the same length")
    inits = [_init(k, width=int(width), parameterization=parameterization) for k in keys]
    params0 = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *inits)
    out = _train_grid(strengths, lrs, keys, params0, jnp.asarray(x_train), jnp.asarray(y_train),
                      jnp.asarray(x_val), jnp.asarray(y_val), width=int(width),
                      parameterization=parameterization, reg=reg, optimizer=optimizer,
                      epochs=int(epochs), batch_size=int(batch_size))
    out = jax.device_get(out)
    params = {k: np.asarray(v) for k, v in out.pop("params").items()}
    return TrainResult(params=params, **{k: np.asarray(v) for k, v in out.items()})


def early_stopping(val_loss: np.ndarray, patience: int) -> tuple[int, int]:
    """Best epoch by validation loss and the epoch a patience rule would have stopped at.

    Returns:
      (best_epoch, stop_epoch): stop_epoch is the first epoch after which val loss has not
      improved for ``patience`` epochs, or -1 if training never stalled that long. NaN
      (diverged) epochs count as no improvement.
    """
    v = np.asarray(val_loss, dtype=np.float64)
    finite = np.where(np.isfinite(v), v, np.inf)
    best_e = int(np.argmin(finite))
    best, since = np.inf, 0
    for e, val in enumerate(finite):
        if val < best:
            best, since = val, 0
        elif e > 0:
            since += 1
            if since >= patience:
                return best_e, e
    return best_e, -1
