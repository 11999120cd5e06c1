"""Training: one compiled program for a whole grid of runs (vmap over λ, lr, seed).

Loss (documented scaling): L(θ) = ½·mean_i ‖f(x_i) − y_i‖² (squared error summed over
the 10 outputs, averaged over samples) + λ·Σ_{W1,W2} w² (L2) or λ·Σ |w| (L1); biases are
not regularised. Under gradient flow on the ½-mean loss, df/dt = −(η/n)·Θ_full·(f − y).

Decoupled weight decay (``weight_decay`` = wd ≥ 0, independent of the penalty above), on the
weights W1, W2 only (biases are not decayed, as they are not penalised), with the
learning-rate-coupled convention of ``optax.adamw`` (Loshchilov & Hutter 2019, AdamW with
their schedule multiplier η_t equal to the learning rate η):
  SGD + wd:  θ ← θ − η·g − η·wd·θ
  AdamW:     θ ← θ − η·m̂/(√v̂ + ε) − η·wd·θ      (m̂, v̂ from the DATA gradient only)
where g is the gradient of the objective (data loss + penalty). For SGD this is exactly
L2-in-the-loss: the penalty λ·Σw² has gradient 2λ·w, so wd = 2λ gives the same step
(tests/test_train.py checks the runs agree to float32 round-off). For Adam it is not: an
L2 gradient 2λ·w goes through Adam's per-coordinate normalisation (a large weight with a
large gradient history is barely shrunk), while decoupled decay shrinks every weight by the
same factor (1 − η·wd) per step.

Sweeps in one program (:func:`train_sweep`). Runs of different hidden widths are trained
zero-padded to the largest width W: each run's init is exactly ``init_params`` at its
true width, padded with zeros; a per-run hidden-unit mask multiplies the activations and
the width-dependent multipliers (NTK: a2 = σ_w/√w; a1, c1, c2 do not depend on width; in
the standard parameterization only the init's U(±1/√w) range of W2 and b2 does) are
per-run traced values. A padded unit has pre-activation exactly 0 and a zero W2 row, so
its gradient is exactly 0: the data term gives a2·h_u·r = 0 (W2) and W2[u]·relu'(0) = 0
(W1, b1), and the mask zeroes it whatever the values; L2 gives 2λ·0 = 0, and decoupled
weight decay wd·0 = 0; L1 would give λ
(JAX's d|w|/dw at w = 0 is 1, not sign(0) = 0), so the penalty is taken over mask·W and
its gradient on padded weights is 0·1 = 0. SGD then moves them by −η·0 and Adam by
−η·m̂/(√v̂ + ε) = −η·0/(0 + ε) = 0: they stay exactly 0 (tests/test_padded.py checks it).
Runs with different training sets (e.g. different n_train or split seeds) stack their
own data, padded to the largest n with a per-run sample mask; the loss is the mask-weighted
sum over that run's samples divided by its own n (full batch only when n differs).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ntk_core._src import archs as _archs
from ntk_core._src import model as _model

DIVERGENCE_FACTOR = 1e6


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """Per-run, per-epoch records of a grid of G runs over E epochs (index 0 = init).

    Attributes:
      params: dict of (G, E+1, ...) float32 checkpoints. From :func:`train_sweep` with
        several widths they are zero-padded to the largest width W: run g's own params are
        ``unpad(params, widths[g])`` (see :meth:`run_params`).
      train_loss: (G, E+1) data loss ½·mean‖f−y‖² on the full training set (no penalty).
      objective: (G, E+1) train loss + penalty (decoupled weight decay is a step rule,
        not a loss term, and is not in it).
      val_loss: (G, E+1) same data loss on the validation split.
      val_acc: (G, E+1) validation accuracy in [0, 1].
      step_norm: (G, E+1) ‖θ_e − θ_{e−1}‖₂ (0 at e = 0).
      rel_change: (G, E+1) ‖θ_e − θ_0‖₂ / ‖θ_0‖₂.
      weight_norm: (G, E+1) ‖(W1, W2)‖₂.
      diverged_at: (G,) int, first epoch whose loss is non-finite or above
        DIVERGENCE_FACTOR × max(initial loss, 1), or -1. Metrics from that
        epoch on are NaN and params are frozen at the last finite checkpoint.
      widths: (G,) int true hidden width of each run.
      n_train: (G,) int number of training samples of each run.
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
    widths: np.ndarray | None = None
    n_train: np.ndarray | None = None

    def run_params(self, g: int) -> dict:
        """Run g's checkpoints at its true width: dict of (E+1, ...) arrays (views)."""
        p = {k: v[g] for k, v in self.params.items()}
        return p if self.widths is None else _model.unpad(p, int(self.widths[g]))


unpad = _model.unpad


def _forward(params, x, parameterization, *, apply_fn=None, scales=None, unit_mask=None):
    """The one-hidden MLP (``model.apply``, with padding scales/mask) or ``apply_fn``."""
    if apply_fn is None:
        return _model.apply(params, x, parameterization, scales=scales, unit_mask=unit_mask)
    return apply_fn(params, x)


def is_weight(name: str) -> bool:
    """Weights (penalised, decayed) vs biases: the architectures name weights with a capital
    (W1, W2, …, C1, C2, W) and biases in lower case (b1, …, c1, c2, b)."""
    return name[:1].isupper()


def data_loss(params, x, y, parameterization: str, *, scales=None, unit_mask=None,
              sample_mask=None, n=None, apply_fn=None):
    """½·mean over samples of the squared error summed over outputs; scalar.

    With ``sample_mask`` ((N,) bool) only masked-in rows count and the sum is divided by
    ``n`` (the run's own sample count); ``scales``/``unit_mask`` as in ``model.apply``;
    ``apply_fn`` (another architecture's ``f(params, x)``) replaces the one-hidden MLP.
    """
    r = _forward(params, x, parameterization, apply_fn=apply_fn, scales=scales, unit_mask=unit_mask) - y
    se = jnp.sum(r * r, axis=1)
    if sample_mask is None:
        return 0.5 * jnp.mean(se)
    # where, not multiply: the cotangent of a masked-out row is exactly 0 whatever its value.
    return 0.5 * (jnp.sum(jnp.where(sample_mask, se, jnp.zeros_like(se))) / n)


def penalty(params, reg: str, strength, unit_mask=None):
    """λ·Σ w² (l2) or λ·Σ |w| (l1) over the weights (:func:`is_weight`: W1 and W2 of the
    one-hidden MLP, every W_l of a deep one, C1, C2 and W of the CNN); with ``unit_mask``
    ((width,) 0/1, one-hidden MLP only) only over the masked-in hidden units, whose padded
    weights then get exactly zero gradient (JAX's d|w|/dw at w = 0 is 1, not 0, so
    without the mask L1 would move them)."""
    ws = tuple(v for k, v in sorted(params.items()) if is_weight(k))
    if unit_mask is not None:
        ws = (ws[0] * unit_mask[None, :], ws[1] * unit_mask[:, None])
    if reg == "l2":
        return strength * sum(jnp.sum(w * w) for w in ws)
    if reg == "l1":
        return strength * sum(jnp.sum(jnp.abs(w)) for w in ws)
    return jnp.zeros((), ws[0].dtype)


def _tree_norm(t):
    return jnp.sqrt(sum(jnp.sum(a * a) for a in jax.tree_util.tree_leaves(t)))


# Decoupled weight decay acts on the weights only, like the L2/L1 penalty.
DECAY_MASK = {"W1": True, "b1": False, "W2": True, "b2": False}


def decay_mask(params) -> dict:
    return {k: is_weight(k) for k in params}


def _make_optimizer(name: str, lr, wd=None, mask=None):
    """optax transformation for ``name``; with ``wd`` (a possibly traced scalar) the
    decoupled weight decay of the module docstring on W1, W2: SGD as
    ``chain(add_decayed_weights(wd), sgd(lr))`` (update −η·(g + wd·θ)), Adam as
    ``optax.adamw(lr, weight_decay=wd)`` (update −η·(adam(g) + wd·θ)). ``wd=None`` is the
    plain optimizer (the same compiled program as before weight decay existed)."""
    if name not in ("sgd", "adam"):
        raise ValueError(f"optimizer={name!r}; allowed: sgd, adam")
    if wd is None:
        return optax.sgd(lr) if name == "sgd" else optax.adam(lr)
    mask = DECAY_MASK if mask is None else mask
    if name == "sgd":
        return optax.chain(optax.add_decayed_weights(wd, mask), optax.sgd(lr))
    return optax.adamw(lr, weight_decay=wd, mask=mask)


@functools.partial(jax.jit, static_argnames=("width", "parameterization"))
def _init(key, *, width, parameterization):
    # Drawn outside the vmapped program: XLA compiles a vmapped RNG init slowly (measured
    # 1.6 s of a 2.5 s compile), and the draws are identical either way.
    return _model.init_params(jax.random.split(key)[0], width, parameterization)


def _prefix_draws_exact() -> bool:
    """True when a draw of shape (m, w) equals the first m·w entries of a longer flat draw
    with the same key (partitionable threefry: element k uses counter k whatever the
    shape); then every width's exact init comes from one compiled program."""
    return bool(jax.config.jax_threefry_partitionable) and jax.config.jax_default_prng_impl == "threefry2x32"


@functools.partial(jax.jit, static_argnames=("pad_width", "parameterization"))
def _init_padded(key, width, inv_sqrt_w, *, pad_width, parameterization):
    """``pad_params(_init(key, width=w), pad_width)`` with a TRACED true width w: one
    compile for all widths. Needs :func:`_prefix_draws_exact` (checked by the caller; the
    tests compare it bit for bit with ``init_params``)."""
    d, out, dtype = _model.INPUT_DIM, _model.OUTPUT_DIM, jnp.float32
    k1, k2, k3, k4 = jax.random.split(jax.random.split(key)[0], 4)  # as init_params

    def draw(k, size):
        if parameterization == "standard":
            return jax.random.uniform(k, (size,), dtype, -1.0, 1.0)
        if parameterization == "ntk":
            return jax.random.normal(k, (size,), dtype)
        raise ValueError(f"parameterization={parameterization!r}; allowed: standard, ntk")

    unit = jnp.arange(pad_width, dtype=jnp.int32)
    live = unit < width                                               # (W,)
    zero = jnp.zeros((), dtype)
    # W1 (d, w) row-major: entry (i, j) is flat entry i·w + j of the longer draw.
    flat_idx = jnp.arange(d, dtype=jnp.int32)[:, None] * width + unit[None, :]
    w1 = jnp.where(live[None, :], draw(k1, d * pad_width)[jnp.where(live[None, :], flat_idx, 0)], zero)
    b1 = jnp.where(live, draw(k2, pad_width), zero)
    w2 = jnp.where(live[:, None], draw(k3, pad_width * out).reshape(pad_width, out), zero)
    b2 = draw(k4, out)
    if parameterization == "standard":
        # The same float32 multipliers as init_params: 1/√784 and the run's 1/√w (host-computed).
        s_in = _model.inv_sqrt(d, np.float32)
        w1, b1, w2, b2 = w1 * s_in, b1 * s_in, w2 * inv_sqrt_w, b2 * inv_sqrt_w
    return {"W1": w1, "b1": b1, "W2": w2, "b2": b2}


def _single_run(strength, lr, key, params0, x, y, xv, yv, pad, wd=None, *, parameterization,
                reg, optimizer, epochs, batch_size, apply_fn=None):
    """One run. ``pad`` holds optional per-run padding info: ``scales`` (4,) and
    ``unit_mask`` (W,) for padded widths, ``sample_mask`` (N,) and ``n`` for padded data.
    ``wd``: this run's decoupled weight decay, or None (no decay in the program).
    ``apply_fn``: another architecture's ``f(params, x)`` (None: the one-hidden MLP)."""
    n = x.shape[0]
    k_data = jax.random.split(key)[1]
    opt = _make_optimizer(optimizer, lr, wd, decay_mask(params0))
    full = batch_size == 0 or batch_size >= n
    bs = n if full else batch_size
    steps = n // bs
    model_kw = dict(scales=pad.get("scales"), unit_mask=pad.get("unit_mask"), apply_fn=apply_fn)
    loss_kw = dict(model_kw, sample_mask=pad.get("sample_mask"), n=pad.get("n"))

    # Padded data (a sample mask) come only with full batch (train_sweep checks), so the
    # mask always lines up with the rows of the batch.
    assert full or pad.get("sample_mask") is None

    def pen(p):
        return penalty(p, reg, strength, pad.get("unit_mask"))

    def objective(p, xb, yb):
        return data_loss(p, xb, yb, parameterization, **loss_kw) + pen(p)

    grad_fn = jax.grad(objective)

    def step(carry, idx):
        p, s = carry
        g = grad_fn(p, x, y) if full else grad_fn(p, x[idx], y[idx])
        # optax's Adam bias correction is `1 - b1**count` (Python float ** int32), which has
        # no path under strict dtype promotion; scope the standard rules to the optimiser.
        with jax.numpy_dtype_promotion("standard"):
            upd, s = opt.update(g, s, p)
        return (optax.apply_updates(p, upd), s), None

    def metrics(p):
        tl = data_loss(p, x, y, parameterization, **loss_kw)
        fv = _forward(p, xv, parameterization, **model_kw)
        rv = fv - yv
        vl = 0.5 * jnp.mean(jnp.sum(rv * rv, axis=1))
        acc = jnp.mean((jnp.argmax(fv, 1) == jnp.argmax(yv, 1)).astype(x.dtype))
        return tl, tl + pen(p), vl, acc

    norm0 = _tree_norm(params0)
    loss0 = data_loss(params0, x, y, parameterization, **loss_kw)
    wnorm = lambda p: _tree_norm(tuple(v for k, v in sorted(p.items()) if is_weight(k)))

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


@functools.partial(jax.jit, static_argnames=("parameterization", "reg", "optimizer", "epochs",
                                             "batch_size", "data_per_run", "apply_fn"))
def _train_grid(strengths, lrs, keys, params0, x, y, xv, yv, pad, wds=None, *, parameterization,
                reg, optimizer, epochs, batch_size, data_per_run=False, apply_fn=None):
    """G runs in one program. Array shapes (width, n) are part of the compiled program;
    everything per-run (λ, lr, wd, key, init, padding masks, scales, per-run data) is
    vmapped. ``wds`` None (no run decays) leaves weight decay out of the program."""
    run = functools.partial(_single_run, parameterization=parameterization, reg=reg,
                            optimizer=optimizer, epochs=epochs, batch_size=batch_size,
                            apply_fn=apply_fn)
    d = 0 if data_per_run else None
    if wds is None:
        return jax.vmap(run, in_axes=(0, 0, 0, 0, d, d, d, d, 0))(
            strengths, lrs, keys, params0, x, y, xv, yv, pad)
    return jax.vmap(run, in_axes=(0, 0, 0, 0, d, d, d, d, 0, 0))(
        strengths, lrs, keys, params0, x, y, xv, yv, pad, wds)


def _is_per_run(a) -> bool:
    return isinstance(a, (list, tuple))


def train_sweep(x_train, y_train, x_val, y_val, *, widths, reg_strengths, lrs, seeds,
                parameterization: str = "standard", reg: str = "none", optimizer: str = "sgd",
                epochs: int = 30, batch_size: int = 0, pad_width: int | None = None,
                weight_decay=0.0, arch: str = "mlp", depth: int = 1) -> TrainResult:
    """Trains G runs that may differ in width, data, λ, lr and seed in ONE compiled program.

    Widths: params are zero-padded to ``pad_width`` (default max(widths)); see the module
    docstring for why padded units stay exactly 0 and why every metric equals that of the
    unpadded run (up to float32 summation order). Run g's init is exactly
    ``init_params(split(PRNGKey(seeds[g]))[0], widths[g])``, as in :func:`train_grid`.

    Data: each of ``x_train, y_train, x_val, y_val`` is either one array shared by all runs
    or a list/tuple of G per-run arrays (e.g. ``load_split(n, n_val, seed)`` per run, whose
    train sets are NOT nested prefixes of each other). Per-run training sets of different
    lengths are padded to the largest N with a sample mask; the loss is the sum over the
    run's own samples divided by its own n. That is only exact for full-batch training
    (``batch_size`` 0 or ≥ max n): minibatch SGD with different n has different steps per
    epoch, so it raises ValueError (train each n with its own :func:`train_grid`). Per-run
    validation sets must share one length. Per-run data costs G·N·(784+10)·4 bytes on the
    host and in the program (train) plus G·n_val·(784+10)·4 (validation): 29 MB for 9 runs
    of n=1000.

    Args:
      widths: one int for all runs or a sequence of G true widths.
      reg_strengths, lrs, seeds: sequences of length G.
      pad_width: compiled width (≥ every width); a fixed value keeps one compiled program
        across sweeps with different maxima.
      weight_decay: decoupled weight decay wd ≥ 0 (one float for all runs or G values), on
        W1 and W2, lr-coupled as ``optax.adamw``: each step also subtracts η·wd·θ (SGD + wd;
        Adam becomes AdamW). For SGD, wd = 2λ equals ``reg="l2"`` with strength λ; for Adam
        it does not (see the module docstring). All zero: the plain optimizer's program.
      arch, depth: the network (``ntk_core.Architecture``): "mlp" with ``depth`` hidden
        layers (1 = the one-hidden MLP of :mod:`ntk_core._src.model`) or "cnn" (``widths``
        = channels). Every network other than the one-hidden MLP is trained by the same
        vmapped/scanned program through its ``apply`` function; it is not zero-padded, so
        all its runs must share one width. Run g's init is
        ``Architecture(arch, width, depth, parameterization).init(split(PRNGKey(seeds[g]))[0])``.

    Returns:
      :class:`TrainResult` of NumPy arrays with a leading grid axis G; params padded to the
      compiled width (slice with :meth:`TrainResult.run_params` or :func:`unpad`).
    """
    strengths = jnp.asarray(np.asarray(reg_strengths, dtype=np.float32))
    lrs = jnp.asarray(np.asarray(lrs, dtype=np.float32))
    keys = jnp.stack([jax.random.PRNGKey(int(s)) for s in seeds])
    g_runs = keys.shape[0]
    if not (strengths.shape == lrs.shape == (g_runs,)):
        raise ValueError("reg_strengths, lrs and seeds must have the same length")
    widths = (np.full(g_runs, int(widths)) if np.ndim(widths) == 0
              else np.asarray([int(w) for w in widths], dtype=np.int64))
    if widths.shape != (g_runs,):
        raise ValueError(f"widths: expected one int or {g_runs} values, got {widths.shape[0]}")
    if np.any(widths < 1):
        raise ValueError(f"widths must be ≥ 1, got {widths.tolist()}")
    wds = (np.full(g_runs, float(weight_decay), np.float32) if np.ndim(weight_decay) == 0
           else np.asarray(weight_decay, dtype=np.float32))
    if wds.shape != (g_runs,):
        raise ValueError(f"weight_decay: expected one number or {g_runs} values, got {wds.shape[0]}")
    if not np.all(np.isfinite(wds) & (wds >= 0)):
        raise ValueError(f"weight_decay must be finite and ≥ 0, got {wds.tolist()}")
    big_w = int(widths.max()) if pad_width is None else int(pad_width)
    if big_w < widths.max():
        raise ValueError(f"pad_width={big_w} < largest width {int(widths.max())}")
    padded_units = bool(np.any(widths != big_w))
    generic = not (arch == "mlp" and depth == 1)
    if generic and padded_units:
        raise ValueError(f"arch={arch!r}, depth={depth}: runs of different widths "
                         f"{sorted(set(widths.tolist()))} cannot share one program (only the "
                         "one-hidden MLP is zero-padded); train each width on its own")

    # Data: shared, or per run (stacked, train sets padded to the largest n with a mask).
    data = [x_train, y_train, x_val, y_val]
    per_run = [_is_per_run(a) for a in data]
    data_per_run = any(per_run)
    if data_per_run:
        data = [[np.asarray(a_g) for a_g in a] if pr else [np.asarray(a)] * g_runs
                for a, pr in zip(data, per_run)]
        if any(len(a) != g_runs for a in data):
            raise ValueError(f"per-run data must have {g_runs} entries (one per run)")
        xs, ys, xvs, yvs = data
        ns = np.asarray([a.shape[0] for a in xs], dtype=np.int64)
        if any(b.shape[0] != n for b, n in zip(ys, ns)):
            raise ValueError("x_train and y_train lengths differ")
        if len({a.shape[0] for a in xvs} | {a.shape[0] for a in yvs}) != 1:
            raise ValueError("per-run validation sets must all have the same length")
        big_n = int(ns.max())
        masked_samples = bool(np.any(ns != big_n))
        if masked_samples and not (batch_size == 0 or batch_size >= big_n):
            raise ValueError(
                f"training sets of different sizes {sorted(set(ns.tolist()))} can only be "
                f"fused with full-batch training (batch_size 0 or ≥ {big_n}), got "
                f"batch_size={batch_size}: minibatch SGD takes a different number of steps per "
                "epoch for each n; train each n with its own train_grid call")

        def pad_rows(a):  # pad with copies of row 0 (finite whatever the params): masked out
            return np.concatenate([a, np.repeat(a[:1], big_n - a.shape[0], axis=0)]) if a.shape[0] < big_n else a

        x, y = (jnp.asarray(np.stack([pad_rows(a) for a in arrs])) for arrs in (xs, ys))
        xv, yv = jnp.asarray(np.stack(xvs)), jnp.asarray(np.stack(yvs))
    else:
        x, y, xv, yv = (jnp.asarray(a) for a in data)
        ns = np.full(g_runs, x.shape[0], dtype=np.int64)
        masked_samples = False

    apply_fn = None
    if generic:
        net = _archs.Architecture(arch, big_w, depth, parameterization)
        apply_fn = net.apply
        inits = [net.init(jax.random.split(k)[0]) for k in keys]
    elif padded_units and _prefix_draws_exact():
        inits = [_init_padded(k, jnp.asarray(w, jnp.int32), jnp.asarray(_model.inv_sqrt(int(w), np.float32)),
                              pad_width=big_w, parameterization=parameterization)
                 for k, w in zip(keys, widths)]
    else:
        inits = [_init(k, width=int(w), parameterization=parameterization) for k, w in zip(keys, widths)]
        if padded_units:
            inits = [_model.pad_params(jax.device_get(p), big_w) for p in inits]
    params0 = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *inits)

    pad: dict = {}
    if padded_units:
        pad["scales"] = jnp.asarray(np.asarray(
            [_model.layer_scales(int(w), parameterization) for w in widths], dtype=np.float32))
        pad["unit_mask"] = jnp.asarray((np.arange(big_w)[None, :] < widths[:, None]).astype(np.float32))
    if masked_samples:
        pad["sample_mask"] = jnp.asarray(np.arange(big_n)[None, :] < ns[:, None])
        pad["n"] = jnp.asarray(ns.astype(np.float32))

    out = _train_grid(strengths, lrs, keys, params0, x, y, xv, yv, pad,
                      jnp.asarray(wds) if np.any(wds > 0) else None, parameterization=parameterization, reg=reg, optimizer=optimizer,
                      epochs=int(epochs), batch_size=int(batch_size), data_per_run=data_per_run,
                      apply_fn=apply_fn)
    out = jax.device_get(out)
    params = {k: np.asarray(v) for k, v in out.pop("params").items()}
    return TrainResult(params=params, **{k: np.asarray(v) for k, v in out.items()},
                       widths=None if generic else widths, n_train=ns)


def train_grid(x_train, y_train, x_val, y_val, *, width: int, reg_strengths, lrs, seeds,
               parameterization: str = "standard", reg: str = "none", optimizer: str = "sgd",
               epochs: int = 30, batch_size: int = 0, weight_decay=0.0) -> TrainResult:
    """Trains G runs that differ only in (λ, lr, seed) in ONE compiled, vmapped program.

    Data are passed as arguments (never closed over, so XLA does not constant-fold them).
    Each epoch is a ``lax.scan`` over minibatches inside a ``lax.scan`` over epochs.
    :func:`train_sweep` generalises this to runs of different widths and data.

    Args:
      reg_strengths, lrs, seeds: sequences of equal length G.
      weight_decay: decoupled weight decay, one float or G values (see :func:`train_sweep`).

    Returns:
      :class:`TrainResult` of NumPy arrays with a leading grid axis G.
    """
    for a in (x_train, y_train, x_val, y_val):
        if _is_per_run(a):
            raise ValueError("train_grid takes one data set shared by all runs; use train_sweep "
                             "for per-run data")
    return train_sweep(x_train, y_train, x_val, y_val, widths=int(width),
                       reg_strengths=reg_strengths, lrs=lrs, seeds=seeds,
                       parameterization=parameterization, reg=reg, optimizer=optimizer,
                       epochs=epochs, batch_size=batch_size, weight_decay=weight_decay)


class EarlyStop(NamedTuple):
    """Early stopping by validation loss (epochs index the records, 0 = init).

    Attributes:
      restore_epoch: lowest validation loss up to and including ``stop_epoch`` (the
        checkpoint a patience rule would restore); ``best_epoch`` when it never stalled.
      stop_epoch: first epoch after which the loss had not improved for ``patience``
        epochs, or -1 if training never stalled that long.
      best_epoch: lowest validation loss over ALL epochs (may come after ``stop_epoch``
        when the loss improves again later).
    """

    restore_epoch: int
    stop_epoch: int
    best_epoch: int


def early_stopping(val_loss: np.ndarray, patience: int) -> EarlyStop:
    """Epoch a patience rule would stop at and restore, and the overall best epoch.

    NaN (diverged) epochs count as no improvement and are never best; equal values are
    not improvements (the earliest of equal minima wins).

    Returns:
      :class:`EarlyStop` ``(restore_epoch, stop_epoch, best_epoch)`` with
      restore_epoch ≤ stop_epoch when stopped, restore_epoch == best_epoch otherwise.
    """
    v = np.asarray(val_loss, dtype=np.float64)
    finite = np.where(np.isfinite(v), v, np.inf)
    best_e = int(np.argmin(finite))
    best, best_so_far, since = np.inf, 0, 0
    for e, val in enumerate(finite):
        if val < best:
            best, best_so_far, since = val, e, 0
        elif e > 0:
            since += 1
            if since >= patience:
                return EarlyStop(best_so_far, e, best_e)
    return EarlyStop(best_e, -1, best_e)
