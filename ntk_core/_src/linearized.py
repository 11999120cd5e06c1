"""Does the network train like its linearization? (Lee et al. 2019, arXiv:1902.06720)

The linear model around θ_0 is f^lin_θ(x) = f_0(x) + J_0(x)(θ − θ_0). Full-batch gradient
descent with the app's loss L = ½·(1/n)·Σ_i ‖f(x_i) − y_i‖² (squared error summed over the
K = 10 outputs, mean over the n samples, no penalty) on the linear model moves its
parameters by θ_{t+1} − θ_t = −(η/n)·J_0ᵀ r_t with r_t = f^lin_t(X) − Y flattened to (n·K,)
(index i·K + a). Hence, exactly (no approximation beyond linearity):

    r_{t+1} = (I − (η/n)·Θ) r_t            ⇒  r_t = (I − (η/n)·Θ)^t r_0,
    f^lin_t(X_v) = f_0(X_v) − (η/n)·Θ(X_v, X)·Σ_{s<t} r_s,

with Θ = J_0 J_0ᵀ the **full** (n·K)×(n·K) empirical NTK at init (raw, not /n; not traced:
Θ[(i,a),(j,b)] = ∇θf_a(x_i)·∇θf_b(x_j)) and Θ(X_v, X) the (n_v·K)×(n·K) cross kernel.
Gradient flow (η → 0 with t·η fixed) gives the matrix exponential instead:
r(τ) = exp(−τ·Θ/n) r_0, τ = η·t.

Two evaluations of the same formulas (tested against each other and against dense
``numpy.linalg.matrix_power`` / ``scipy.linalg.expm``):

* ``"eigh"`` (small n): Θ formed (float32 closed form, symmetrised, eigendecomposed in
  float64), r_t = V·diag(ρ(λ)^t)·Vᵀ r_0 with ρ = 1 − ηλ/n, and Σ_{s<t} r_s =
  V·diag((1 − ρ^t)/(ηλ/n))·Vᵀ r_0 (limit t at λ = 0).
* ``"krylov"`` (matrix-free; the default of the runner at every n): the power action is
  applied step by step with the closed-form full-kernel product (one product per epoch,
  O(n·w·(4K + n)) with the Gram matrix a1²XXᵀ + c1² formed once, no kernel formed) —
  exact for discrete gradient descent, in float32; the validation outputs need one
  cross-kernel product per epoch (the same product with X_v's activations, tested against
  :func:`cross_full_matvec` and the dense cross kernel).
  Gradient flow uses SciPy's ``expm_multiply`` (Al-Mohy & Higham's truncated-Taylor Krylov
  action) on the (n·K + 1) augmented operator [[−A, r_0], [0, 0]], A = Θ/n, whose
  exponential gives both r(τ) and ∫_0^τ r ds.

No traced-kernel approximation is used anywhere here: the traced kernel (mean over the
logits) does not define the dynamics of the 10 outputs.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg
import scipy.sparse.linalg as spla

from ntk_core._src import deep_mlp as _deep_mlp
from ntk_core._src import full_kernel as _full
from ntk_core._src import generic as _generic
from ntk_core._src import model as _model
from ntk_core._src import ntk as _ntk
from ntk_core._src import train as _train

_HP = jax.lax.Precision.HIGHEST
DENSE_MAX_N = 400          # "auto": eigh up to this n (n·K = 4000 → 128 MB float64 kernel)
DIVERGED_LOSS = 1e8        # a gradient-descent run whose loss exceeds this is frozen (NaN after)


class Trajectory(NamedTuple):
    """Outputs of one full-batch gradient-descent run, at every epoch 0..E.

    Attributes:
      f_train: (E+1, n, K) float32 outputs on the training inputs (epoch 0 = init).
      f_val: (E+1, n_val, K) float32 outputs on the validation inputs.
      diverged_at: first epoch whose loss is non-finite or above DIVERGED_LOSS, or -1;
        outputs from that epoch on are NaN.
    """

    f_train: np.ndarray
    f_val: np.ndarray
    diverged_at: int


class LinearKernel(NamedTuple):
    """The eigendecomposed full kernel at init and the cross kernel, reusable for any η.

    Attributes:
      lam: (N,) eigenvalues of Θ_full(X, X) (raw, float64, ascending), N = n·K.
      vec: (N, N) eigenvectors. cross: (n_v·K, N) Θ_full(X_v, X).
    """

    lam: np.ndarray
    vec: np.ndarray
    cross: np.ndarray


class LinearizedOutputs(NamedTuple):
    """Predictions of the linear model around θ_0 at every epoch 0..E.

    Attributes:
      f_train, f_val: (E+1, n, K) / (E+1, n_val, K) float64.
      method: "eigh" or "krylov". dynamics: "gd" (discrete, exact for the trained
        network's optimizer) or "flow" (gradient flow, τ = η·t).
      eta_lambda_max: η·λ_max(Θ)/n of the full kernel (eigh only, else NaN): the linear
        model diverges iff it exceeds 2 (and the top mode is excited).
    """

    f_train: np.ndarray
    f_val: np.ndarray
    method: str
    dynamics: str
    eta_lambda_max: float


# ------------------------------------------------------------------------------ the network


def _apply_of(parameterization: str, arch):
    """f(params, x): the one-hidden MLP (``arch`` None) or any Architecture's apply — the
    training code's own dispatch (``train._forward``)."""
    return functools.partial(_train._forward, parameterization=parameterization,
                             apply_fn=None if arch is None else arch.apply)


@functools.partial(jax.jit, static_argnames=("epochs", "parameterization", "arch"))
def _gd_scan(params0, x, y, x_val, lr, *, epochs: int, parameterization: str, arch=None):
    apply = _apply_of(parameterization, arch)
    grad = jax.grad(_train.data_loss)
    apply_fn = None if arch is None else arch.apply

    def step(carry, _):
        p, alive = carry
        g = grad(p, x, y, parameterization, apply_fn=apply_fn)
        new = jax.tree_util.tree_map(lambda a, b: a - lr * b, p, g)
        f = apply(new, x)
        loss = 0.5 * jnp.mean(jnp.sum((f - y) ** 2, axis=1))
        ok = alive & jnp.isfinite(loss) & (loss < DIVERGED_LOSS)
        new = jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, p)
        fv = apply(new, x_val)
        nan = jnp.asarray(jnp.nan, f.dtype)
        return (new, ok), (jnp.where(ok, f, nan), jnp.where(ok, fv, nan), ok)

    (_, _), (ft, fv, ok) = jax.lax.scan(step, (params0, jnp.asarray(True)), None, length=epochs)
    f0 = apply(params0, x)
    fv0 = apply(params0, x_val)
    return (jnp.concatenate([f0[None], ft]), jnp.concatenate([fv0[None], fv]), ok)


@functools.partial(jax.jit, static_argnames=("epochs", "parameterization", "arch"))
def _gd_scan_many(params0, x, y, x_val, lrs, *, epochs: int, parameterization: str, arch=None):
    return jax.vmap(lambda lr: _gd_scan(params0, x, y, x_val, lr, epochs=epochs,
                                        parameterization=parameterization, arch=arch))(lrs)


def gd_trajectories(params0, x, y, x_val, *, lrs, epochs: int,
                    parameterization: str = "ntk", arch=None) -> list[Trajectory]:
    """:func:`gd_trajectory` for several learning rates in one compiled, vmapped program
    (``arch``: any :class:`ntk_core._src.archs.Architecture`; default the one-hidden MLP)."""
    p = {k: jnp.asarray(v) for k, v in params0.items()}
    ft, fv, ok = _gd_scan_many(p, jnp.asarray(x), jnp.asarray(y), jnp.asarray(x_val),
                               jnp.asarray(np.asarray(lrs), jnp.float32), epochs=int(epochs),
                               parameterization=parameterization, arch=arch)
    ft, fv, ok = np.asarray(ft), np.asarray(fv), np.asarray(ok)
    out = []
    for r in range(ok.shape[0]):
        bad = np.flatnonzero(~ok[r])
        out.append(Trajectory(ft[r], fv[r], int(bad[0]) + 1 if bad.size else -1))
    return out


def gd_trajectory(params0, x, y, x_val, *, lr: float, epochs: int,
                  parameterization: str = "ntk") -> Trajectory:
    """Trains the real network by full-batch gradient descent (θ ← θ − η∇θL, the app's
    ½-mean squared loss without penalty, ``ntk_core._src.train.data_loss``) and records its
    outputs on the training and validation inputs after every step (epoch = step).

    Returns:
      :class:`Trajectory` (float32 outputs, NaN after divergence).
    """
    p = {k: jnp.asarray(v) for k, v in params0.items()}
    ft, fv, ok = _gd_scan(p, jnp.asarray(x), jnp.asarray(y), jnp.asarray(x_val),
                          jnp.asarray(lr, jnp.float32), epochs=int(epochs),
                          parameterization=parameterization)
    ok = np.asarray(ok)
    bad = np.flatnonzero(~ok)
    return Trajectory(np.asarray(ft), np.asarray(fv), int(bad[0]) + 1 if bad.size else -1)


# ------------------------------------------------------------------------------ kernels


def full_kernel_dense(params, x1, x2=None, *, parameterization: str = "ntk", arch=None) -> np.ndarray:
    """The full empirical NTK as a float64 (n1·K, n2·K) matrix (row i·K + a, column j·K + b).

    Formed in float32 and cast; symmetrised when ``x2`` is None. Raw Θ (not /n). By the
    one-hidden MLP's closed form (:func:`ntk_core._src.ntk.empirical_ntk`, trace=False) when
    ``arch`` is None; for another :class:`~ntk_core._src.archs.Architecture`, a deeper MLP's
    layer-wise (:func:`ntk_core._src.deep_mlp.mlp_full_ntk`) or the CNN's from the generic
    vjp/jvp path (:func:`ntk_core._src.generic.ntk_vp_dense`, trace=False).
    """
    p = {k: jnp.asarray(v) for k, v in params.items()}
    x1 = jnp.asarray(x1)
    x2j = None if x2 is None else jnp.asarray(x2)
    if arch is None:
        t = _ntk.empirical_ntk(p, x1, x2j, parameterization=parameterization, trace=False)
    elif arch.kind == "mlp":
        t = _deep_mlp.mlp_full_ntk(p, x1, x2j, parameterization=arch.parameterization)
    else:
        t = _generic.ntk_vp_dense(arch.apply, p, x1, x2j, trace=False)
    t = np.asarray(t, np.float64)
    n1, n2, k, _ = t.shape
    m = t.transpose(0, 2, 1, 3).reshape(n1 * k, n2 * k)
    return 0.5 * (m + m.T) if x2 is None else m


@jax.jit
def _cross_matvec(state_v: _full.FullNTKState, state: _full.FullNTKState, v):
    a1, c1, a2, c2 = state.scales[0], state.scales[1], state.scales[2], state.scales[3]
    out = jnp.matmul(state_v.h, jnp.matmul(state.h.T, v, precision=_HP), precision=_HP)
    p = state.m * jnp.matmul(v, state.w2.T, precision=_HP)                       # (n, w)
    q = a1 ** 2 * jnp.matmul(state_v.x, jnp.matmul(state.x.T, p, precision=_HP), precision=_HP) \
        + c1 ** 2 * jnp.sum(p, axis=0)[None, :]                                  # (n_v, w)
    out = out + jnp.matmul(state_v.m * q, state.w2, precision=_HP)
    return a2 ** 2 * out + c2 ** 2 * jnp.sum(v, axis=0)[None, :]


def cross_full_matvec(params, x_val, x, v, *, parameterization: str = "ntk") -> np.ndarray:
    """Θ_full(X_v, X)·V without forming the kernel: V (n, K) → (n_v, K), raw (not /n).

    Same closed form as :func:`ntk_core._src.full_kernel.full_ntk_matvec` with the left
    factor's activations and masks taken at X_v (see that module's docstring).
    """
    p = {k: jnp.asarray(a) for k, a in params.items()}
    sv = _full.full_ntk_state(p, jnp.asarray(x_val), parameterization=parameterization)
    s = _full.full_ntk_state(p, jnp.asarray(x), parameterization=parameterization)
    return np.asarray(_cross_matvec(sv, s, jnp.asarray(v, jnp.float32)))


# ------------------------------------------------------------------------------ the linear model


def _series_eigh(lam: np.ndarray, c: float, epochs: int, dynamics: str) -> tuple[np.ndarray, np.ndarray]:
    """For A = c·Θ (c = η/n), per eigenvalue: (E+1, N) factors of r_t and of c·Σ_{s<t} r_s."""
    t = np.arange(epochs + 1, dtype=np.float64)[:, None]
    a = c * lam[None, :]
    if dynamics == "gd":
        decay = (1.0 - a) ** t
    else:
        decay = np.exp(-a * t)
    with np.errstate(divide="ignore", invalid="ignore"):
        integ = np.where(np.abs(a) > 1e-12, (1.0 - decay) / np.where(a == 0, 1.0, a) * c, c * t)
    return decay, integ


def linear_kernel(params0, x, x_val, *, parameterization: str = "ntk", arch=None) -> LinearKernel:
    """Forms and eigendecomposes Θ_full(X, X) and forms Θ_full(X_v, X) (for method "eigh")."""
    p = {k: jnp.asarray(v) for k, v in params0.items()}
    xj, xv = jnp.asarray(x), jnp.asarray(x_val)
    kw = dict(parameterization=parameterization, arch=arch)
    lam, vec = np.linalg.eigh(full_kernel_dense(p, xj, **kw))
    return LinearKernel(lam, vec, full_kernel_dense(p, xv, xj, **kw))


def linearized_outputs(params0, x, y, x_val, *, lr: float, epochs: int,
                       parameterization: str = "ntk", method: str = "auto",
                       dynamics: str = "gd", dense_max_n: int = DENSE_MAX_N,
                       kernel: LinearKernel | None = None, arch=None) -> LinearizedOutputs:
    """Outputs of the network's linearization around ``params0`` under the same training.

    Args:
      params0: the initial parameters (θ_0). x, y: (n, 784) inputs and (n, K) targets.
      x_val: (n_v, 784) validation inputs. lr: η. epochs: E.
      method: "eigh", "krylov" or "auto" (eigh for n ≤ ``dense_max_n``).
      dynamics: "gd" (discrete gradient descent, what :func:`gd_trajectory` runs) or "flow".
      kernel: for "eigh", a precomputed :func:`linear_kernel` of the same params and inputs.
      arch: any :class:`ntk_core._src.archs.Architecture` (default the one-hidden MLP); the
        matrix-free "krylov" method is the closed form's, so another network uses "eigh"
        (its full kernel formed by :func:`full_kernel_dense`) whatever ``method`` says.

    Returns:
      :class:`LinearizedOutputs` with f^lin_t on X and X_v for t = 0..E (module docstring).
    """
    if dynamics not in ("gd", "flow"):
        raise ValueError(f"dynamics={dynamics!r}; allowed: gd, flow")
    n, k = np.shape(y)
    if arch is not None:
        method = "eigh"      # "krylov" is the closed form's product
    elif method == "auto":
        method = "eigh" if n <= dense_max_n else "krylov"
    p = {kk: jnp.asarray(v) for kk, v in params0.items()}
    xj, xv = jnp.asarray(x), jnp.asarray(x_val)
    apply = _apply_of(parameterization, arch)
    f0 = np.asarray(apply(p, xj), np.float64)
    fv0 = np.asarray(apply(p, xv), np.float64)
    r0 = (f0 - np.asarray(y, np.float64)).reshape(-1)
    c = float(lr) / n
    if method == "eigh":
        if kernel is None:
            kernel = linear_kernel(p, xj, xv, parameterization=parameterization, arch=arch)
        lam, vec, cross = kernel
        decay, integ = _series_eigh(lam, c, epochs, dynamics)
        coef = vec.T @ r0                                                   # (N,)
        r_t = (decay * coef[None, :]) @ vec.T                               # (E+1, N)
        s_t = (integ * coef[None, :]) @ vec.T                               # c·Σ r_s
        f_val = fv0.reshape(1, -1) - s_t @ cross.T
        eta_lam = float(lr * lam.max() / n)
    elif method == "krylov":
        if dynamics == "gd":
            r_t, f_val = _krylov_gd(p, xj, xv, jnp.asarray(r0.reshape(n, k), jnp.float32),
                                    jnp.asarray(fv0, jnp.float32), jnp.asarray(c, jnp.float32),
                                    epochs=int(epochs), parameterization=parameterization)
            r_t = np.asarray(r_t, np.float64).reshape(epochs + 1, -1)
            f_val = np.asarray(f_val, np.float64).reshape(epochs + 1, -1)
        else:
            state = _full.full_ntk_state(p, xj, parameterization=parameterization)
            svs = _full.full_ntk_state(p, xv, parameterization=parameterization)
            r_t, s_t = _flow_expm_multiply(state, r0, c, lr, epochs, n, k, p, xj, parameterization)
            cv = np.stack([np.asarray(_cross_matvec(svs, state, jnp.asarray(s, jnp.float32)), np.float64)
                           for s in s_t.reshape(epochs + 1, n, k)])
            f_val = fv0.reshape(1, -1) - cv.reshape(epochs + 1, -1)
        eta_lam = float("nan")
    else:
        raise ValueError(f"method={method!r}; allowed: auto, eigh, krylov")
    f_train = r_t.reshape(epochs + 1, n, k) + np.asarray(y, np.float64)[None]
    return LinearizedOutputs(f_train, f_val.reshape(epochs + 1, -1, k), method, dynamics, eta_lam)


@functools.partial(jax.jit, static_argnames=("epochs", "parameterization"))
def _krylov_gd(params, x, xv, r0, fv0, c, *, epochs: int, parameterization: str):
    """r_t = (I − cΘ)^t r_0 and f^lin_t(X_v) = f_0(X_v) − cΘ(X_v, X)·Σ_{s<t} r_s, t = 0..E, by
    E products with the matrix-free full kernel (Gram matrices G = a1²XXᵀ + c1² and
    G_v = a1²X_vXᵀ + c1² formed once: O(n·w·(4K + n)) per product)."""
    s = _model.scales_for(params, parameterization)
    g = s.a1 ** 2 * jnp.matmul(x, x.T, precision=_HP) + s.c1 ** 2
    gv = s.a1 ** 2 * jnp.matmul(xv, x.T, precision=_HP) + s.c1 ** 2
    z, zv = _model.preactivations(params, x, s), _model.preactivations(params, xv, s)
    h, m = jax.nn.relu(z), (z > 0).astype(z.dtype)
    hv, mv = jax.nn.relu(zv), (zv > 0).astype(zv.dtype)
    w2 = params["W2"]

    def prod(hl, ml, gl, v):   # Θ_full(X_l, X)·v for v (n, K)
        out = jnp.matmul(hl, jnp.matmul(h.T, v, precision=_HP), precision=_HP)
        q = jnp.matmul(gl, m * jnp.matmul(v, w2.T, precision=_HP), precision=_HP)
        out = out + jnp.matmul(ml * q, w2, precision=_HP)
        return s.a2 ** 2 * out + s.c2 ** 2 * jnp.sum(v, axis=0)[None, :]

    def step(carry, _):
        r, acc = carry
        acc = acc + r
        r = r - c * prod(h, m, g, r)
        return (r, acc), (r, fv0 - c * prod(hv, mv, gv, acc))

    _, (rs, fvs) = jax.lax.scan(step, (r0, jnp.zeros_like(r0)), None, length=epochs)
    return jnp.concatenate([r0[None], rs]), jnp.concatenate([fv0[None], fvs])


def _flow_expm_multiply(state, r0, c, lr, epochs, n, k, p, xj, parameterization):
    """Gradient flow by ``scipy.sparse.linalg.expm_multiply`` on the augmented operator
    B = [[−cΘ, r_0], [0, 0]] (size N + 1): exp(t·B)·[0; 1] = [∫_0^t e^{−scΘ} r_0 ds; 1], and
    r(t) = r_0 − cΘ·∫_0^t r ds. Evaluated at t = 0..E (τ = η·t)."""
    big_n = n * k

    def mv(v):
        v = np.asarray(v, np.float64).reshape(-1)
        top = -c * np.asarray(_full.full_ntk_matvec_state(
            state, jnp.asarray(v[:big_n].reshape(n, k), jnp.float32)), np.float64).reshape(-1)
        return np.concatenate([top + r0 * v[big_n], [0.0]])

    def rmv(v):  # Bᵀ = [[−cΘ, 0], [r_0ᵀ, 0]]
        v = np.asarray(v, np.float64).reshape(-1)
        top = -c * np.asarray(_full.full_ntk_matvec_state(
            state, jnp.asarray(v[:big_n].reshape(n, k), jnp.float32)), np.float64).reshape(-1)
        return np.concatenate([top, [r0 @ v[:big_n]]])

    op = spla.LinearOperator((big_n + 1, big_n + 1), matvec=mv, rmatvec=rmv, dtype=np.float64)
    trace = -c * float(k) * float(np.sum(np.asarray(_ntk.ntk_diagonal(p, xj, parameterization=parameterization),
                                                    np.float64)))
    e0 = np.zeros(big_n + 1)
    e0[-1] = 1.0
    out = spla.expm_multiply(op, e0, start=0.0, stop=float(epochs), num=epochs + 1, endpoint=True,
                             traceA=trace)
    integ = out[:, :big_n]                                                # ∫_0^t r ds (E+1, N)
    theta_integ = np.stack([np.asarray(_full.full_ntk_matvec_state(
        state, jnp.asarray(s.reshape(n, k), jnp.float32)), np.float64).reshape(-1) for s in integ])
    r_t = r0[None, :] - c * theta_integ
    return r_t, integ * c


def dense_reference(theta: np.ndarray, cross: np.ndarray, r0: np.ndarray, fv0: np.ndarray, *,
                    lr: float, n: int, epochs: int, dynamics: str = "gd") -> tuple[np.ndarray, np.ndarray]:
    """The same linear model by dense matrix functions (tests): gd by ``matrix_power`` of
    I − (η/n)Θ, flow by ``scipy.linalg.expm`` of −(η t/n)Θ and of the augmented matrix.

    Returns:
      (r_t (E+1, N), f_val flattened (E+1, n_v·K)).
    """
    big_n = theta.shape[0]
    c = lr / n
    rs, fvs = [], []
    for t in range(epochs + 1):
        if dynamics == "gd":
            step = np.eye(big_n) - c * theta
            r = np.linalg.matrix_power(step, t) @ r0
            s = sum((np.linalg.matrix_power(step, u) @ r0 for u in range(t)), np.zeros(big_n))
        else:
            aug = np.zeros((big_n + 1, big_n + 1))
            aug[:big_n, :big_n] = -c * theta
            aug[:big_n, big_n] = r0
            e = scipy.linalg.expm(t * aug)
            s = e[:big_n, big_n]
            r = scipy.linalg.expm(-c * t * theta) @ r0
        rs.append(r)
        fvs.append(fv0 - c * cross @ s)
    return np.stack(rs), np.stack(fvs)


# ------------------------------------------------------------------------------ metrics


def loss_acc(f: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per epoch: ½·mean over samples of ‖f − y‖² (summed over K) and accuracy (argmax).

    Args: f (E+1, n, K), y (n, K) one-hot. Returns (E+1,) loss and (E+1,) accuracy in [0, 1]
    (NaN where f is NaN).
    """
    f = np.asarray(f, np.float64)
    loss = 0.5 * np.mean(np.sum((f - y[None]) ** 2, axis=2), axis=1)
    acc = np.mean(np.argmax(f, axis=2) == np.argmax(y, axis=1)[None], axis=1).astype(np.float64)
    acc[~np.isfinite(loss)] = np.nan
    return loss, acc


def output_gap(f: np.ndarray, f_lin: np.ndarray) -> np.ndarray:
    """Per epoch ‖f_t − f^lin_t‖_F / √n (RMS over samples of the output-vector distance),
    (E+1,)."""
    d = np.asarray(f, np.float64) - np.asarray(f_lin, np.float64)
    return np.sqrt(np.sum(d * d, axis=(1, 2)) / d.shape[1])
