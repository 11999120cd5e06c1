"""Edge of stability and the catapult: full-batch gradient descent at learning rates placed
relative to the initial sharpness, with the sharpness tracked at every step.

Which λ, in which normalization. The loss is L(θ) = ½·(1/n)·Σ_i ‖f(x_i) − y_i‖² (squared
error summed over the K = 10 outputs, mean over the n samples; ``train.data_loss``). Its
Hessian is ∇²L = (1/n)·JᵀJ + (1/n)·Σ_{i,a} r_ia ∇²f_a(x_i) with J the (n·K)×P Jacobian and
r = f − y. The first term, the Gauss–Newton matrix, has the same non-zero eigenvalues as
(1/n)·JJᵀ = Θ_full/n, the full (n·K)×(n·K) empirical NTK (raw Θ[(i,a),(j,b)] =
∇θf_a(x_i)·∇θf_b(x_j), not traced) divided by n. One gradient step moves the outputs to
first order by f ← f − (η/n)·Θ_full·(f − y) (``full_kernel`` module docstring), so along
the top eigenvector the residual is multiplied by 1 − η·λ_max(Θ_full)/n. Hence

    λ(t) := λ_max(Θ_full(θ_t)) / n,     λ_0 := λ(0),

and gradient descent on the linearised model is stable iff η·λ_0 < 2 (exact for a linear
model: the residual's top component grows by |1 − η·λ_0| > 1 per step beyond 2; tested).
For the network, λ(t) moves with θ_t: above 2 the loss can spike and λ fall until
η·λ(t) < 2 (the catapult, Lewkowycz et al. 2020), or λ can rise to ≈ 2/η and hover (the
edge of stability, Cohen et al. 2021 — there measured on the full Hessian; the
Gauss–Newton part is what this module tracks, the residual term vanishes as r → 0).

λ(t) at every step is estimated by power iteration on the matrix-free full kernel,
warm-started from the previous step's top eigenvector (the first step from ARPACK's at
init), with the relative residual ‖Θv − λ_raw v‖/λ_raw recorded per step so its accuracy is
visible; runner code checks the last step against ARPACK.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ntk_core._src import model as _model
from ntk_core._src import train as _train

_HP = jax.lax.Precision.HIGHEST
POWER_ITERS = 8            # power-iteration products per step (warm-started)
DIVERGED_LOSS = 1e8        # a run whose loss exceeds this (or is not finite) stops there


class SharpnessRuns(NamedTuple):
    """R full-batch gradient-descent runs (one per learning rate) over S steps.

    Attributes (index 0 = init, NaN from a run's divergence on):
      loss: (R, S+1) data loss ½·mean‖f − y‖² on the training set.
      lam: (R, S+1) λ(t) = λ_max(Θ_full(θ_t))/n (power iteration, warm-started).
      lam_residual: (R, S+1) relative residual ‖Θv − λ_raw v‖₂/λ_raw of that estimate.
      dead: (R, S+1) fraction of hidden units inactive (pre-activation ≤ 0) on every
        training sample (dead ReLUs: no gradient, no contribution to f or Θ).
      acc: (R, S+1) training accuracy. diverged_at: (R,) first bad step, or -1.
      lr: (R,) the learning rates.
      final_params: dict of (R, ...) float32 parameters after the last step (frozen at the
        last finite step of a diverged run).
    """

    loss: np.ndarray
    lam: np.ndarray
    lam_residual: np.ndarray
    dead: np.ndarray
    acc: np.ndarray
    diverged_at: np.ndarray
    lr: np.ndarray
    final_params: dict


def _matvec(p, x, g, v, s: _model.Scales):
    """Θ_full·V (raw) with the Gram matrix G = a1²XXᵀ + c1² precomputed: O(n·w·(4K + n))."""
    z = _model.preactivations(p, x, s)
    h, m = jax.nn.relu(z), (z > 0).astype(z.dtype)
    w2 = p["W2"]
    out = jnp.matmul(h, jnp.matmul(h.T, v, precision=_HP), precision=_HP)
    q = jnp.matmul(g, m * jnp.matmul(v, w2.T, precision=_HP), precision=_HP)
    out = out + jnp.matmul(m * q, w2, precision=_HP)
    return s.a2 ** 2 * out + s.c2 ** 2 * jnp.sum(v, axis=0)[None, :]


def _generic_matvec(fwd, p, v):
    """Θ_full·V (raw) of any network ``fwd(p) -> (n, K)`` as J(JᵀV): one vjp, one jvp."""
    _, vjp = jax.vjp(fwd, p)
    return jax.jvp(fwd, (p,), (vjp(v)[0],))[1]


def _net(params0, x, parameterization: str, arch):
    """(forward f(p), Θ_full-product mv(p, V), dead-unit fraction dead(p)) on inputs x: the
    one-hidden MLP's closed form (``arch`` None; Gram matrix formed once) or any
    :class:`ntk_core._src.archs.Architecture` (generic vjp/jvp product)."""
    if arch is None:
        s = _model.scales_for(params0, parameterization)
        g = s.a1 ** 2 * jnp.matmul(x, x.T, precision=_HP) + s.c1 ** 2
        return (lambda p: _model.apply(p, x, parameterization),
                lambda p, v: _matvec(p, x, g, v, s),
                lambda p: jnp.mean(jnp.all(_model.preactivations(p, x, s) <= 0, axis=0).astype(x.dtype)))
    fwd = lambda p: arch.apply(p, x)  # noqa: E731
    return fwd, functools.partial(_generic_matvec, fwd), lambda p: arch.dead_fraction(p, x)


def _power(mv, v, iters):
    """``iters`` power-iteration products of ``mv`` from v, then the Rayleigh quotient and
    the relative residual."""
    def body(_, v):
        u = mv(v)
        return u / jnp.maximum(jnp.linalg.norm(u), 1e-30)

    v = jax.lax.fori_loop(0, iters, body, v)
    u = mv(v)
    lam = jnp.sum(u * v)
    res = jnp.linalg.norm(u - lam * v) / jnp.maximum(jnp.abs(lam), 1e-30)
    return v, lam, res


@functools.partial(jax.jit, static_argnames=("steps", "parameterization", "iters", "arch"))
def _runs(params0, x, y, lrs, v0, *, steps: int, parameterization: str, iters: int, arch=None):
    n = x.shape[0]
    fwd, mv, dead_of = _net(params0, x, parameterization, arch)
    grad = jax.grad(_train.data_loss)
    apply_fn = None if arch is None else arch.apply
    labels = jnp.argmax(y, axis=1)

    def measure(p, v):
        f = fwd(p)
        loss = 0.5 * jnp.mean(jnp.sum((f - y) ** 2, axis=1))
        acc = jnp.mean((jnp.argmax(f, axis=1) == labels).astype(f.dtype))
        v, lam, res = _power(functools.partial(mv, p), v, iters)
        return v, (loss, lam / n, res, dead_of(p), acc)

    def one(lr):
        v_init, m0 = measure(params0, v0)

        def step(carry, _):
            p, v, alive = carry
            gr = grad(p, x, y, parameterization, apply_fn=apply_fn)
            new = jax.tree_util.tree_map(lambda a, b: a - lr * b, p, gr)
            v_new, m = measure(new, v)
            ok = alive & jnp.isfinite(m[0]) & (m[0] < DIVERGED_LOSS) & jnp.isfinite(m[1])
            new = jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, p)
            v_new = jnp.where(ok, v_new, v)
            nan = jnp.asarray(jnp.nan, m[0].dtype)
            return (new, v_new, ok), tuple(jnp.where(ok, a, nan) for a in m) + (ok,)

        (pf, _, _), ms = jax.lax.scan(step, (params0, v_init, jnp.asarray(True)), None, length=steps)
        return tuple(jnp.concatenate([a0[None], a]) for a0, a in zip(m0, ms[:5])) + (ms[5], pf)

    return jax.vmap(one)(lrs)


def sharpness_runs(params0, x, y, lrs, *, steps: int, parameterization: str = "ntk",
                   v0: np.ndarray | None = None, iters: int = POWER_ITERS, arch=None) -> SharpnessRuns:
    """Full-batch gradient descent from ``params0`` at each learning rate (one vmapped,
    compiled program), with loss, λ(t), dead-unit fraction and accuracy at every step.

    Args:
      params0: raw initial parameters. x: (n, 784). y: (n, K) one-hot targets.
      lrs: (R,) learning rates η. steps: S.
      v0: (n·K,) start vector of the power iteration (e.g. ARPACK's top eigenvector at
        init, index i·K + a); default a fixed random vector (then step 0 needs more
        iterations: 4×``iters`` are used there).
      iters: power-iteration products per step.
      arch: any :class:`ntk_core._src.archs.Architecture` (its parameterization is used):
        Θ_full products by vjp/jvp, dead units over every ReLU layer; default the one-hidden
        MLP's closed form.

    Returns:
      :class:`SharpnessRuns` (float64 host arrays; λ in the loss's normalization, Θ_full/n).
    """
    x = jnp.asarray(x)
    y = jnp.asarray(y)
    n, k = y.shape
    if v0 is None:
        v0 = np.random.default_rng(0).standard_normal(n * k)
        p = {kk: jnp.asarray(v) for kk, v in params0.items()}
        _, mv, _ = _net(p, x, parameterization, arch)
        vv = jnp.asarray(v0.reshape(n, k) / np.linalg.norm(v0), x.dtype)
        vv, _, _ = _power(functools.partial(mv, p), vv, 4 * iters)
        v0 = np.asarray(vv).reshape(-1)
    v = jnp.asarray(np.asarray(v0, np.float64).reshape(n, k) / np.linalg.norm(v0), x.dtype)
    p = {kk: jnp.asarray(a) for kk, a in params0.items()}
    lrs = np.asarray(lrs, np.float64)
    out = _runs(p, x, y, jnp.asarray(lrs, x.dtype), v, steps=int(steps),
                parameterization=parameterization, iters=int(iters), arch=arch)
    loss, lam, res, dead, acc, ok = (np.asarray(a) for a in out[:6])
    final = {k: np.asarray(v) for k, v in out[6].items()}
    div = np.array([int(np.flatnonzero(~o)[0]) + 1 if (~o).any() else -1 for o in ok])
    f64 = lambda a: np.asarray(a, np.float64)
    return SharpnessRuns(f64(loss), f64(lam), f64(res), f64(dead), f64(acc), div, lrs, final)


def full_matvec_gram(params, x, v, *, parameterization: str = "ntk") -> np.ndarray:
    """Θ_full·V (raw, V (n, K)) by this module's Gram-matrix product (tests compare it with
    :func:`ntk_core._src.full_kernel.full_ntk_matvec`)."""
    p = {k: jnp.asarray(a) for k, a in params.items()}
    x = jnp.asarray(x)
    _, mv, _ = _net(p, x, parameterization, None)
    return np.asarray(mv(p, jnp.asarray(v, x.dtype)))


def linear_model_losses(params0, x, y, lrs, *, steps: int, parameterization: str = "ntk",
                        arch=None) -> np.ndarray:
    """Loss of the network's linearization f^lin_θ = f_0 + J_0(θ − θ_0) trained by the same
    full-batch gradient descent, in PARAMETER space (``jax.linearize``; an independent
    path from the kernel formulas): (R, S+1) losses, inf/NaN once it overflows.

    Its residual evolves by r ← (I − (η/n)Θ_full) r exactly, so it diverges iff
    η·λ_max(Θ_full)/n > 2 (given the top mode is excited).
    """
    p0 = {k: jnp.asarray(a) for k, a in params0.items()}
    x, y = jnp.asarray(x), jnp.asarray(y)
    fwd, _, _ = _net(p0, x, parameterization, arch)
    f0, jvp = jax.linearize(fwd, p0)

    def loss(d):
        r = f0 + jvp(d) - y
        return 0.5 * jnp.mean(jnp.sum(r * r, axis=1))

    grad = jax.grad(loss)

    @jax.jit
    def one(lr):
        def step(d, _):
            d = jax.tree_util.tree_map(lambda a, b: a - lr * b, d, grad(d))
            return d, loss(d)

        d0 = jax.tree_util.tree_map(jnp.zeros_like, p0)
        _, ls = jax.lax.scan(step, d0, None, length=steps)
        return jnp.concatenate([loss(d0)[None], ls])

    return np.stack([np.asarray(one(jnp.asarray(lr, x.dtype)), np.float64) for lr in np.asarray(lrs)])



@functools.partial(jax.jit, static_argnames=("steps", "parameterization", "arch"))
def _kernel_linear(params0, x, y, lrs, *, steps: int, parameterization: str, arch=None):
    n = x.shape[0]
    fwd, mv, _ = _net(params0, x, parameterization, arch)
    r0 = fwd(params0) - y

    def one(lr):
        def step(r, _):
            r = r - (lr / n) * mv(params0, r)
            return r, 0.5 * jnp.sum(r * r) / n

        _, ls = jax.lax.scan(step, r0, None, length=steps)
        return jnp.concatenate([(0.5 * jnp.sum(r0 * r0) / n)[None], ls])

    return jax.vmap(one)(lrs)


def kernel_linear_losses(params0, x, y, lrs, *, steps: int, parameterization: str = "ntk",
                         arch=None) -> np.ndarray:
    """The same linear model as :func:`linear_model_losses`, in FUNCTION space: its residual
    r ← r − (η/n)·Θ_full(θ_0)·r with the matrix-free kernel product (cheap: no parameter
    gradients), all rates in one compiled program. Returns (R, S+1) losses ½·‖r_t‖²/n
    (inf/NaN once it overflows)."""
    p = {k: jnp.asarray(a) for k, a in params0.items()}
    x, y = jnp.asarray(x), jnp.asarray(y)
    out = _kernel_linear(p, x, y, jnp.asarray(np.asarray(lrs), x.dtype), steps=int(steps),
                         parameterization=parameterization, arch=arch)
    return np.asarray(out, np.float64)
