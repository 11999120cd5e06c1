"""Sample-sharded matrix-free NTK spectra over a 1-D device mesh (JAX SPMD).

Past one device, the n samples are split over a 1-D mesh (axis ``"samples"``): device p
holds rows [p·n/P, (p+1)·n/P) of everything that has a sample axis — the inputs, the
activations, the ReLU masks and the eigenvector block — and nothing of size n is ever
gathered. Only what does not depend on n (parameters, Gram matrices of the block, the small
Rayleigh–Ritz problem) is replicated.

Operator contract. Every NTK is a Gram matrix, Θ = J·Jᵀ/K (J: per-sample Jacobians), so a
product Θ·V splits into a sum over samples followed by a per-sample expansion:

    Θ·V = expand(state, Σ_shards reduce(state_shard, V_shard))        (row by row)

``reduce`` maps a device's rows of V to its partial parameter-space sums (Jᵀ·V restricted to
its samples), ``psum`` over the mesh axis adds them inside the compiled program (an XLA
all-reduce), and ``expand`` maps the total back to that device's rows of Θ·V.
:class:`ShardedOperator` holds such a pair with its per-sample state; any operator of that
form plugs into :func:`operator_top_k` and :func:`operator_trace`:

* :func:`sharded_closed_form` — the closed-form traced NTK of :mod:`ntk_core._src.ntk`
  (same formula as ``matfree_matvec``): reduce = (Hᵀv, Xᵀ(M∘v), Mᵀv, Σv), i.e.
  b·(784·w + 2w + 1) floats all-reduced per block of b columns;
* :func:`sharded_jacobian` — any per-sample network ``apply_fn(params, x) -> (n, K)``
  through ``jax.vjp`` (reduce) and ``jax.jvp`` (expand), the generic autodiff path.

Eigensolver. :func:`operator_top_k` is a thick-restart block Lanczos method with full
reorthogonalisation, written in JAX and run as ONE jitted ``shard_map`` program: basis
B = [V, Q₁, …, Q_q] (r·(q+1) columns, r = k + oversampling), Rayleigh–Ritz on BᵀΘB, restart
from the top-r Ritz vectors V and the continuation block Q_{q+1} (in exact arithmetic the
residuals of all Ritz vectors lie in its span, so the restart loses no Krylov information).
Orthogonalisation is Gram-based (two passes of block Gram–Schmidt, then SVQB: the
eigendecomposition of the r×r Gram matrix), so every inner product over samples is a local
GEMM plus an all-reduce of an s×s matrix, and the basis stays sharded. Memory per device:
2·(n/P)·r·(q+2) floats for the basis and its image. Arithmetic is the operator's (float32
by default); the final eigenvalues are Rayleigh quotients v·Θv of the returned Ritz vectors
with one extra block product, and their residuals ‖Θv − λv‖/λ are measured with that same
product, as :func:`ntk_core._src.spectra.top_k_eigs` does.

Multi-host: the same code runs on a global mesh after ``jax.distributed.initialize()``
(see docs/scaling.md); the inputs are then built with ``jax.make_array_from_callback`` so
that each process only materialises its own rows.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from ntk_core._src import model as _model
from ntk_core._src import ntk as _ntk
from ntk_core._src.spectra import EigResult

AXIS = "samples"
_HP = jax.lax.Precision.HIGHEST

# Defaults of the block solver (tuned on the NTK at init and after training, n = 2000–10 000:
# see bench/_sharded.py). Residual tolerance: ‖Θv − θv‖ ≤ tol·θ₁ for each of the top k.
# A float32 operator resolves residuals down to ≈ 1e-7·θ₁·√(basis size), so 1e-5·θ₁ is
# reachable, and the Ritz values are far more accurate than the residual (quadratically).
DEFAULT_TOL = 1e-5
DEFAULT_DEPTH = 6
DEFAULT_MAX_STEPS = 300


def _oversample(k: int) -> int:
    return max(2, k // 4)


# ------------------------------------------------------------------------------------------
# mesh and placement

def sample_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh with axis ``"samples"`` over ``devices`` (default: every device JAX sees —
    on a multi-host run, all devices of all processes; one local CPU device otherwise)."""
    devs = list(jax.devices() if devices is None else devices)
    if not devs:
        raise ValueError("devices is empty")
    return Mesh(np.asarray(devs, dtype=object), (AXIS,))


def _mesh(mesh: Mesh | None, devices: Sequence[jax.Device] | None) -> Mesh:
    if mesh is not None and devices is not None:
        raise ValueError("pass mesh= or devices=, not both")
    if mesh is None:
        return sample_mesh(devices)
    if len(mesh.axis_names) != 1:
        raise ValueError(f"a 1-D mesh is required, got axes {mesh.axis_names}")
    return mesh


def spectrum_mesh(mesh: Mesh | None = None,
                  devices: Sequence[jax.Device] | None = None) -> Mesh | None:
    """The mesh the spectrum functions shard over, or None for the single-device path.

    Explicit ``mesh=`` or ``devices=`` (any size, even 1) always selects the sharded path.
    With neither, all LOCAL devices when there are more than one (a multi-GPU host, or CPU
    under ``--xla_force_host_platform_device_count``), else None: a one-device process keeps
    the ARPACK path. A multi-host run passes ``mesh=sample_mesh()`` (all global devices).
    """
    if mesh is None and devices is None:
        local = jax.local_devices()
        return sample_mesh(local) if len(local) > 1 else None
    return _mesh(mesh, devices)


def padded_size(n: int, mesh: Mesh) -> int:
    """n rounded up to a multiple of the mesh size (padding rows are masked out)."""
    p = mesh.devices.size
    return -(-n // p) * p


def shard_rows(a, mesh: Mesh, n_pad: int | None = None) -> jax.Array:
    """Places a host or device array with a leading sample axis row-sharded over ``mesh``,
    zero-padded to ``n_pad`` rows (default: the next multiple of the mesh size).

    Each device receives only its own rows (``jax.make_array_from_callback``): on a
    multi-host mesh each process reads only the rows of its devices.
    """
    axis = mesh.axis_names[0]
    a_host = a if isinstance(a, np.ndarray) else np.asarray(jax.device_get(a))
    n = a_host.shape[0]
    n_pad = padded_size(n, mesh) if n_pad is None else int(n_pad)
    spec = P(axis, *([None] * (a_host.ndim - 1)))
    sharding = NamedSharding(mesh, spec)

    def rows(index):
        sl = index[0]
        start, stop = sl.start or 0, n_pad if sl.stop is None else sl.stop
        block = np.zeros((stop - start,) + a_host.shape[1:], a_host.dtype)
        lo, hi = min(start, n), min(stop, n)
        block[: hi - lo] = a_host[lo:hi]
        return block

    return jax.make_array_from_callback((n_pad,) + a_host.shape[1:], sharding, rows)


def replicate(a, mesh: Mesh) -> jax.Array:
    return jax.device_put(jnp.asarray(a), NamedSharding(mesh, P()))


# ------------------------------------------------------------------------------------------
# operator

@dataclasses.dataclass(frozen=True)
class ShardedOperator:
    """A symmetric PSD n×n operator whose per-sample state is split over a 1-D mesh.

    Θ·V = mask ∘ expand(state, psum(reduce(state, mask ∘ V))) on each device's rows.

    Attributes:
      state: pytree of jax.Arrays; leaves whose spec is ``P(axis, …)`` have the padded sample
        count as leading axis and are row-sharded, leaves with spec ``P()`` are replicated.
      specs: pytree of PartitionSpec, same structure as ``state``.
      reduce: (local_state, V_local (n/P, b)) → pytree of partial sums over the local samples.
      expand: (local_state, reduced_total) → (n/P, b), the local rows of Θ·V.
      diag: optional local_state → (n/P,), the local diagonal entries (for the trace).
      mask: (n_pad,) float, 1 on real samples and 0 on padding rows, row-sharded.
      n: number of real samples; mesh: the 1-D mesh.
      name: label reported in :class:`EigResult.method`.
    """

    state: Any
    specs: Any
    reduce: Callable
    expand: Callable
    diag: Callable | None
    mask: jax.Array
    n: int
    mesh: Mesh
    name: str = "operator"

    @property
    def axis(self) -> str:
        return self.mesh.axis_names[0]

    @property
    def n_pad(self) -> int:
        return int(self.mask.shape[0])

    @property
    def dtype(self):
        return self.mask.dtype

    def _static(self):
        """Hashable description of the compiled program (jit cache key)."""
        leaves, tree = jax.tree_util.tree_flatten(self.specs, is_leaf=lambda s: isinstance(s, P))
        return (self.reduce, self.expand, self.diag, self.mesh, tree, tuple(leaves))

    def matmat(self, v: jax.Array) -> jax.Array:
        """Θ·V for a row-sharded (n_pad, b) block (see :func:`shard_rows`); row-sharded result."""
        return _matmat_jit(self._static(), self.state, self.mask, v)

    def host_matvec(self) -> Callable[[np.ndarray], np.ndarray]:
        """A NumPy (n,) → (n,) float64 matvec for host-side solvers (ARPACK ``top_k_eigs``,
        ``slq``): each call shards the vector, applies Θ on the mesh and gathers the result.
        The Lanczos vectors then live on the host, not on the devices."""
        n = self.n

        def mv(v):
            vs = shard_rows(np.asarray(v, dtype=self.dtype).reshape(n, 1), self.mesh, self.n_pad)
            return np.asarray(jax.device_get(self.matmat(vs)), np.float64)[:n, 0]

        return mv


def _local_apply(reduce, expand, axis, st, mask, v):
    """Local rows of Θ·V inside shard_map: reduce, all-reduce, expand."""
    v = v * mask[:, None]
    part = reduce(st, v)
    total = jax.tree_util.tree_map(lambda t: jax.lax.psum(t, axis), part)
    return expand(st, total) * mask[:, None]


def _specs_of(static):
    _, _, _, mesh, tree, leaves = static
    return mesh, jax.tree_util.tree_unflatten(tree, list(leaves))


@functools.partial(jax.jit, static_argnums=0)
def _matmat_jit(static, state, mask, v):
    reduce, expand, _, _, _, _ = static
    mesh, specs = _specs_of(static)
    axis = mesh.axis_names[0]
    f = jax.shard_map(functools.partial(_local_apply, reduce, expand, axis), mesh=mesh,
                      in_specs=(specs, P(axis), P(axis, None)), out_specs=P(axis, None))
    return f(state, mask, v)


# --- closed form -------------------------------------------------------------------------

def _cf_reduce(st, v):
    x, h, m = st["x"], st["h"], st["m"]
    hv = jnp.matmul(v.T, h, precision=_HP)                                        # (b, w)
    mv = jnp.matmul(v.T, m, precision=_HP)                                        # (b, w)
    a = jax.lax.map(lambda c: jnp.matmul(x.T, m * c[:, None], precision=_HP), v.T)  # (b, d, w)
    return {"hv": hv, "mv": mv, "a": a, "sv": jnp.sum(v, axis=0)}


def _cf_expand(st, r):
    x, h, m, sw, sc = st["x"], st["h"], st["m"], st["sw"], st["scales"]
    a1, c1, a2, c2 = sc[0], sc[1], sc[2], sc[3]
    hv = jnp.matmul(h, r["hv"].T, precision=_HP)                                  # (nl, b)
    gk = jax.lax.map(lambda a: jnp.matmul(jnp.matmul(x, a, precision=_HP) * m, sw, precision=_HP),
                     r["a"])                                                      # (b, nl)
    kv = jnp.matmul(m, (r["mv"] * sw[None, :]).T, precision=_HP)                  # (nl, b)
    return a2 ** 2 * (hv + a1 ** 2 * gk.T + c1 ** 2 * kv) + c2 ** 2 * r["sv"][None, :]


def _cf_diag(st):
    x, h, m, sw, sc = st["x"], st["h"], st["m"], st["sw"], st["scales"]
    a1, c1, a2, c2 = sc[0], sc[1], sc[2], sc[3]
    gx = a1 ** 2 * jnp.sum(x * x, axis=1) + c1 ** 2
    return a2 ** 2 * (jnp.sum(h * h, axis=1) + gx * jnp.matmul(m, sw, precision=_HP)) + c2 ** 2


@functools.partial(jax.jit, static_argnums=0)
def _cf_features(mesh, params, x, scales):
    """h, m of the row-sharded x, computed row-locally (shard_map: no gather)."""
    axis = mesh.axis_names[0]

    def local(p, xl, sc):
        z = _model.preactivations(p, xl, _model.as_scales(sc))
        return jax.nn.relu(z), (z > 0).astype(z.dtype)

    pspec = jax.tree_util.tree_map(lambda _: P(), params)
    return jax.shard_map(local, mesh=mesh, in_specs=(pspec, P(axis, None), P()),
                         out_specs=(P(axis, None), P(axis, None)))(params, x, scales)


def sharded_closed_form(params, x, *, parameterization: str = "standard",
                         mesh: Mesh | None = None, devices: Sequence[jax.Device] | None = None,
                         scales=None, sigma_w: float = _model.SIGMA_W,
                         sigma_b: float = _model.SIGMA_B) -> ShardedOperator:
    """The closed-form traced NTK Θ (raw, mean over logits, not /n) as a sharded operator.

    Args:
      params: raw parameters {"W1", "b1", "W2", "b2"} (replicated on every device).
      x: (n, 784) inputs, NumPy or JAX; placed row-sharded (zero-padded to a multiple of the
        mesh size, padding masked out). An already row-sharded jax.Array on ``mesh`` with
        n divisible by the mesh size is used as it is.
      mesh / devices: the 1-D mesh (or the devices to build it from); default all devices.
      scales: optional explicit (a1, c1, a2, c2), as in :func:`ntk_core.matfree_state`.

    Returns:
      :class:`ShardedOperator` with state x, h, m (row-sharded, (n/P)·(784 + 2w) floats per
      device) and sw, scales (replicated). Products are float32 (the inputs' dtype).
    """
    mesh = _mesh(mesh, devices)
    xs, mask, n = _place_samples(x, mesh)
    return _closed_form_on(params, xs, mask, n, mesh, parameterization=parameterization,
                           scales=scales, sigma_w=sigma_w, sigma_b=sigma_b)


def _place_samples(x, mesh: Mesh) -> tuple[jax.Array, jax.Array, int]:
    """(row-sharded padded x, row-sharded 0/1 mask of the real rows, n)."""
    axis = mesh.axis_names[0]
    n = int(x.shape[0])
    n_pad = padded_size(n, mesh)
    row = NamedSharding(mesh, P(axis, None))
    if isinstance(x, jax.Array) and n == n_pad and x.sharding.is_equivalent_to(row, x.ndim):
        xs = x
    else:
        xs = shard_rows(np.asarray(jax.device_get(x)), mesh, n_pad)
    mask = shard_rows((np.arange(n_pad) < n).astype(np.dtype(xs.dtype)), mesh, n_pad)
    return xs, mask, n


def _closed_form_on(params, xs, mask, n, mesh, *, parameterization="standard", scales=None,
                    sigma_w=_model.SIGMA_W, sigma_b=_model.SIGMA_B) -> ShardedOperator:
    """Closed-form operator on samples already placed by :func:`_place_samples` (so a run's
    checkpoints share one copy of the sharded inputs)."""
    axis = mesh.axis_names[0]
    p = {k: replicate(v, mesh) for k, v in params.items()}
    if scales is None:
        s = _model.scales_for(p, parameterization, sigma_w=sigma_w, sigma_b=sigma_b)
    else:
        s = _model.as_scales(scales)
    sc = replicate(jnp.stack([jnp.asarray(v, dtype=xs.dtype) for v in s]), mesh)
    h, m = _cf_features(mesh, p, xs, sc)
    sw = replicate(jnp.mean(p["W2"] ** 2, axis=1), mesh)
    state = {"x": xs, "h": h, "m": m, "sw": sw, "scales": sc}
    specs = {"x": P(axis, None), "h": P(axis, None), "m": P(axis, None), "sw": P(), "scales": P()}
    return ShardedOperator(state, specs, _cf_reduce, _cf_expand, _cf_diag, mask, n, mesh,
                           name="closed_form")


# --- generic: any per-sample network through vjp / jvp -----------------------------------

@functools.lru_cache(maxsize=None)
def _jacobian_fns(apply_fn: Callable, axis: str):
    """reduce/expand for the traced NTK of ``apply_fn`` (hashable, so jit caches per fn)."""

    def reduce(st, v):
        # Replicated params made device-varying first: otherwise shard_map's transpose rule
        # would already psum the cotangent of an invariant input, and the operator's own
        # psum would count every shard P times.
        params = jax.lax.pcast(st["params"], axis, to="varying")
        x = st["x"]
        f = lambda p: apply_fn(p, x)
        out, vjp = jax.vjp(f, params)
        k = out.shape[1]
        eye = jnp.eye(k, dtype=v.dtype)
        # u[b, j] = J_jᵀ v_b: the parameter-space sum of this device's samples, per logit j.
        return jax.lax.map(lambda c: jax.vmap(lambda e: vjp(c[:, None] * e[None, :])[0])(eye), v.T)

    def expand(st, u):
        params, x = st["params"], st["x"]
        f = lambda p: apply_fn(p, x)
        out, jvp = jax.linearize(f, params)
        k = out.shape[1]

        def col(ub):  # ub: pytree with leading (K,): Σ_j [J_j u_bj]_j / K
            outs = jax.vmap(jvp)(ub)                                   # (K, nl, K)
            return jnp.trace(outs, axis1=0, axis2=2) / k               # (nl,)

        return jax.lax.map(col, u).T

    return reduce, expand


def sharded_jacobian(apply_fn: Callable, params, x, *, mesh: Mesh | None = None,
                      devices: Sequence[jax.Device] | None = None) -> ShardedOperator:
    """Traced empirical NTK (1/K)·Σ_k J_k J_kᵀ of ANY per-sample network as a sharded operator.

    Args:
      apply_fn: ``apply_fn(params, x) -> (n, K)``, rows independent of each other (no batch
        statistics); must be hashable (a module-level function or a ``functools.partial``
        of one) — it is a jit cache key.
      params: any pytree (replicated); x: (n, ...) inputs, row-sharded as in
        :func:`sharded_closed_form`.

    Per column: K vector–Jacobian products on each device's rows, an all-reduce of K
    parameter-sized vectors, K Jacobian–vector products. This is the slot for the generic
    autodiff path (``ntk_core/_src/generic.py``): any reduce = Jᵀ·V / expand = J·U pair fits.
    """
    mesh = _mesh(mesh, devices)
    axis = mesh.axis_names[0]
    n = int(x.shape[0])
    n_pad = padded_size(n, mesh)
    xh = np.asarray(jax.device_get(x))
    xs = shard_rows(xh, mesh, n_pad)
    reduce, expand = _jacobian_fns(apply_fn, axis)
    p = jax.tree_util.tree_map(lambda a: replicate(a, mesh), params)
    mask = shard_rows((np.arange(n_pad) < n).astype(np.dtype(xs.dtype)), mesh, n_pad)
    specs = {"params": jax.tree_util.tree_map(lambda _: P(), params),
             "x": P(axis, *([None] * (xh.ndim - 1)))}
    return ShardedOperator({"params": p, "x": xs}, specs, reduce, expand, None, mask, n, mesh,
                           name="jacobian")


# ------------------------------------------------------------------------------------------
# trace

@functools.partial(jax.jit, static_argnums=0)
def _trace_jit(static, state, mask):
    _, _, diag, _, _, _ = static
    mesh, specs = _specs_of(static)
    axis = mesh.axis_names[0]

    def local(st, msk):
        return jax.lax.psum(jnp.sum(diag(st) * msk), axis)

    return jax.shard_map(local, mesh=mesh, in_specs=(specs, P(axis)), out_specs=P())(state, mask)


def operator_trace(op: ShardedOperator) -> float:
    """Exact tr Θ = Σ_i Θ_ii: each device sums its diagonal entries, one all-reduce."""
    if op.diag is None:
        raise ValueError(f"operator {op.name!r} has no diagonal; use a stochastic estimate")
    return float(_trace_jit(op._static(), op.state, op.mask))


# ------------------------------------------------------------------------------------------
# block eigensolver (one shard_map program)

def _gram(a, b, axis):
    return jax.lax.psum(jnp.matmul(a.T, b, precision=_HP), axis)


def _svqb(w, axis):
    """Orthonormal columns spanning w via the eigendecomposition of its (scaled) Gram matrix.
    Rank-deficient directions are kept (amplified, then fixed by the next pass), never NaN."""
    g = _gram(w, w, axis)
    d = jnp.sqrt(jnp.clip(jnp.diag(g), 0.0, None))
    d = jnp.where(d > 0, d, jnp.ones_like(d))
    s, u = jnp.linalg.eigh(g / (d[:, None] * d[None, :]))
    s = jnp.clip(s, 1e-12 * jnp.max(jnp.abs(s)) + 1e-30, None)
    return jnp.matmul(w / d[None, :], u / jnp.sqrt(s)[None, :], precision=_HP)


def _orth_against(basis, w, axis):
    """Columns of w orthonormalised against the orthonormal ``basis`` and each other."""
    for _ in range(2):
        for _gs in range(2):
            w = w - jnp.matmul(basis, _gram(basis, w, axis), precision=_HP)
        w = _svqb(w, axis)
    return w


def _rayleigh_ritz(b, ab, r, axis):
    t = _gram(b, ab, axis)
    t = 0.5 * (t + t.T)
    theta, y = jnp.linalg.eigh(t)
    theta, y = theta[::-1][:r], y[:, ::-1][:, :r]
    return theta, jnp.matmul(b, y, precision=_HP), jnp.matmul(ab, y, precision=_HP)


def _col_norms(a, axis):
    return jnp.sqrt(jax.lax.psum(jnp.sum(a * a, axis=0), axis))


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3, 4, 5))
def _solve_jit(static, k, r, depth, tol, max_steps, state, mask, v0):
    reduce, expand, _, _, _, _ = static
    mesh, specs = _specs_of(static)
    axis = mesh.axis_names[0]
    apply = functools.partial(_local_apply, reduce, expand, axis)
    size = r * (depth + 1)                      # basis buffer: the kept Ritz block + depth blocks

    def local(st, msk, v):
        mv = lambda blk: apply(st, msk, blk)
        v = _orth_against(jnp.zeros_like(v[:, :1]), v * msk[:, None], axis)
        av = mv(v)
        _, v, av = _rayleigh_ritz(v, av, r, axis)
        q = _orth_against(v, av, axis)
        zeros = jnp.zeros((v.shape[0], size), v.dtype)
        basis, images = zeros.at[:, :r].set(v), zeros.at[:, :r].set(av)

        def step(c):
            basis, images, q, j, steps, _ = c
            aq = mv(q)
            basis = jax.lax.dynamic_update_slice(basis, q, (0, j * r))
            images = jax.lax.dynamic_update_slice(images, aq, (0, j * r))
            # Unfilled buffer columns are zero: they add nothing to projections or to BᵀΘB
            # (their Ritz values are 0, below the top r of a PSD operator).
            q_next = _orth_against(basis, aq, axis)
            t = _gram(basis, images, axis)
            theta, y = jnp.linalg.eigh(0.5 * (t + t.T))
            theta, y = theta[::-1][:r], y[:, ::-1][:, :r]
            # Θ·B = B·(BᵀΘB) + Q_next·(Q_nextᵀΘB): the Ritz residuals are Q_next·E·y, so their
            # norms come from the small E without another product.
            e = _gram(q_next, images, axis)
            res = jnp.sqrt(jnp.sum(jnp.matmul(e, y, precision=_HP) ** 2, axis=0)) / jnp.abs(theta[0])
            j = j + 1

            def restart(_):  # thick restart: keep the top-r Ritz block, continue from Q_next
                vv = jnp.matmul(basis, y, precision=_HP)
                avv = jnp.matmul(images, y, precision=_HP)
                return zeros.at[:, :r].set(vv), zeros.at[:, :r].set(avv), jnp.ones_like(j)

            basis, images, j = jax.lax.cond(j > depth, restart, lambda _: (basis, images, j), None)
            return basis, images, q_next, j, steps + 1, res

        def not_done(c):
            return jnp.logical_and(c[4] < max_steps, jnp.max(c[5][:k]) > tol)

        one = jnp.ones((), jnp.int32)
        carry = (basis, images, q, one, 0 * one, jnp.full((r,), jnp.inf, v.dtype))
        basis, images, _, _, steps, res_est = jax.lax.while_loop(not_done, step, carry)
        _, v, _ = _rayleigh_ritz(basis, images, r, axis)
        # Final values: Rayleigh quotients of the top-k Ritz vectors with one extra block
        # product, whose residuals are then measured with that same product.
        vk = v[:, :k]
        avk = mv(vk)
        nrm2 = jax.lax.psum(jnp.sum(vk * vk, axis=0), axis)
        lam = jax.lax.psum(jnp.sum(vk * avk, axis=0), axis) / nrm2
        res = _col_norms(avk - vk * lam[None, :], axis) / (jnp.sqrt(nrm2) * jnp.abs(lam))
        return lam, res, res_est[:k], steps, vk

    f = jax.shard_map(local, mesh=mesh, in_specs=(specs, P(axis), P(axis, None)),
                      out_specs=(P(), P(), P(), P(), P(axis, None)))
    return f(state, mask, v0)


def _start_block(op: ShardedOperator, r: int, seed: int, v0) -> jax.Array:
    """Seeded Gaussian (n_pad, r) start block, row-sharded; identical values for every mesh
    size (generated on the host per row block, so each device draws only its rows)."""
    n, n_pad = op.n, op.n_pad
    axis = op.axis
    sharding = NamedSharding(op.mesh, P(axis, None))
    lead = None
    if v0 is not None:
        lead = np.asarray(jax.device_get(v0), np.float64).reshape(n, -1)[:, :r]

    def rows(index):
        sl = index[0]
        start, stop = sl.start or 0, n_pad if sl.stop is None else sl.stop
        # one stream per 4096-row chunk: the same numbers whatever the mesh size
        out = np.zeros((stop - start, r), np.dtype(op.dtype))
        c0, c1 = start // 4096, -(-stop // 4096)
        for c in range(c0, c1):
            g = np.random.default_rng([seed, c]).standard_normal((4096, r))
            lo, hi = max(start, c * 4096), min(stop, (c + 1) * 4096)
            out[lo - start: hi - start] = g[lo - c * 4096: hi - c * 4096]
        if lead is not None:
            lo, hi = min(start, n), min(stop, n)
            out[: hi - lo, : lead.shape[1]] = lead[lo:hi]
        out[max(0, n - start):] = 0.0
        return out

    return jax.make_array_from_callback((n_pad, r), sharding, rows)


def operator_top_k(op: ShardedOperator, k: int, *, tol: float = DEFAULT_TOL,
                   block: int | None = None, depth: int = DEFAULT_DEPTH,
                   max_steps: int = DEFAULT_MAX_STEPS, seed: int = 0, v0=None,
                   return_vectors: bool | str = False) -> EigResult:
    """Top-k eigenpairs of a sharded operator by thick-restart block Lanczos, in one program.

    Args:
      k: how many eigenpairs (k ≤ n).
      tol: stop as soon as every top-k Ritz residual ‖Θv − θv‖ ≤ tol·θ₁ (checked after every
        block product; float32 arithmetic resolves ≈ 1e-7·θ₁; see :data:`DEFAULT_TOL`).
      block: block width r = Ritz vectors kept at a restart (default k + max(2, k/4)).
      depth: block products between restarts (basis of r·(depth + 1) columns).
      max_steps: cap on block products; ``converged`` is False when it is reached.
      seed: start block seed (the same numbers for every mesh size).
      v0: optional (n,) or (n, j) warm start, e.g. the previous checkpoint's top eigenvector.
      return_vectors: False; True → (n, k) float64 NumPy (gathered to the host; single-host
        only); "device" → (n_pad, k) row-sharded jax.Array in the operator's dtype (padding
        rows 0).

    Returns:
      :class:`ntk_core.EigResult`, method ``"sharded_block_lanczos"``; ``residuals`` are
      ‖Θv − λv‖/(‖v‖·|λ|) measured with the operator after the solve (as ``top_k_eigs``);
      ``matvecs`` counts operator columns, r·(1 + steps) + k; ``maxiter`` = ``max_steps``;
      ``note`` is "" when converged, else says so.
    """
    n = op.n
    if not 1 <= k <= n:
        raise ValueError(f"k={k}; allowed: 1 ≤ k ≤ n = {n}")
    r = min(n, k + _oversample(k) if block is None else int(block))
    if r < k:
        raise ValueError(f"block={block} < k={k}")
    if r * (depth + 2) > n:
        raise ValueError(f"basis of {r * (depth + 2)} columns exceeds n = {n}: lower block/depth "
                         "or use the dense path for small n")
    vstart = _start_block(op, r, seed, v0)
    lam, res, res_est, steps, vk = _solve_jit(op._static(), int(k), int(r), int(depth),
                                              float(tol), int(max_steps), op.state, op.mask, vstart)
    lam = np.asarray(jax.device_get(lam), np.float64)
    res = np.asarray(jax.device_get(res), np.float64)
    res_est = np.asarray(jax.device_get(res_est), np.float64)
    steps = int(steps)
    converged = bool(np.all(res_est <= tol))
    order = np.argsort(lam)[::-1]
    lam, res = lam[order], res[order]
    vectors = None
    if return_vectors == "device":
        vectors = vk if np.array_equal(order, np.arange(k)) else vk[:, order]
    elif return_vectors:
        vectors = np.asarray(jax.device_get(vk), np.float64)[:n, order]
    note = ""  # as for ARPACK: "" when converged
    if not converged:
        note = (f"sharded block Lanczos ({op.mesh.devices.size} device(s), block {r}, depth "
                f"{depth}) NOT converged to tol {tol:g}·θ₁ within {max_steps} block products "
                f"(max in-loop residual {res_est.max():.1e}·θ₁)")
    return EigResult(values=lam, vectors=vectors, residuals=res, converged=converged,
                     method="sharded_block_lanczos", matvecs=r * (1 + steps) + k,
                     maxiter=int(max_steps), tol=float(tol), note=note)
