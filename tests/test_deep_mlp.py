"""The deeper MLPs' layer-wise (structured) traced NTK against the generic references.

``ntk_core.mlp_traced_ntk`` forms Θ from backprop signals of the 10 logits, never a
Jacobian; here it is compared, float32 to 1e-5 relative to the largest entry, with the
per-sample ``jacrev`` Jacobian contraction (itself equal to ntk_vp, tests/test_generic.py)
for depth 1–4 in both parameterizations, with the one-hidden MLP's closed form at depth 1, across
row blocks (cross kernels, an uneven tail) and through the spectrum functions.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntk_core as nc
from _compare import rel
from ntk_core._src import generic

TOL = 1e-5


@pytest.fixture(scope="module")
def x30():
    x, _ = nc.load_bundled()
    return jnp.asarray(x[:30])


@pytest.mark.parametrize("parameterization", ["standard", "ntk"])
@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_layerwise_kernel_equals_jacobian_contraction_and_ntk_vp(x30, depth, parameterization):
    arch = nc.Architecture("mlp", width=12, depth=depth, parameterization=parameterization)
    p = arch.init(jax.random.PRNGKey(depth))
    k = nc.mlp_traced_ntk(p, x30, parameterization=parameterization)
    assert k.shape == (30, 30) and k.dtype == np.float32
    np.testing.assert_array_equal(k, k.T)
    assert rel(k, generic.autodiff_dense(arch.apply, p, x30)) < TOL   # (ntk_vp = autodiff: test_generic)
    if depth == 1:   # the study's network: the closed form
        assert rel(k, nc.empirical_ntk(p, x30, parameterization=parameterization)) < TOL


def test_row_blocks_and_cross_kernels_are_the_same_matrix(x30):
    arch = nc.Architecture("mlp", width=8, depth=3)
    p = arch.init(jax.random.PRNGKey(5))
    whole = nc.mlp_traced_ntk(p, x30)
    blocked = nc.mlp_traced_ntk(p, x30, block=7)             # 30 = 4·7 + 2: an uneven tail
    assert rel(blocked, whole) < 1e-6
    np.testing.assert_array_equal(blocked, blocked.T)
    cross = nc.mlp_traced_ntk(p, x30[:11], x30[11:], block=4)
    assert cross.shape == (11, 19) and rel(cross, whole[:11, 11:]) < TOL


def test_the_runner_method_gives_the_spectra_of_the_dense_reference(x30):
    """checkpoint_spectra / full_spectrum with generic_method="structured" are eigen-
    decompositions of the same kernel as the Jacobian contraction; the method refuses a
    network that is not the MLP."""
    arch = nc.Architecture("mlp", width=16, depth=2, parameterization="ntk")
    stack = {k: jnp.stack([arch.init(jax.random.PRNGKey(s))[k] for s in (1, 2)])
             for k in arch.init(jax.random.PRNGKey(1))}
    cs = nc.checkpoint_spectra(x30, stack, parameterization="ntk", top_k=4, apply_fn=arch.apply,
                               generic_method="structured")
    assert cs.method == "structured" and cs.converged.all()
    for i in range(2):
        p = {k: v[i] for k, v in stack.items()}
        ref = np.asarray(generic.autodiff_dense(arch.apply, p, x30), np.float64)
        eig = np.linalg.eigvalsh((ref + ref.T) / 2)[::-1]
        np.testing.assert_allclose(cs.topk[i], eig[:4], rtol=TOL)
        np.testing.assert_allclose(cs.trace[i], np.trace(ref), rtol=TOL)
    p = {k: v[0] for k, v in stack.items()}
    fs = nc.full_spectrum(p, x30, parameterization="ntk", apply_fn=arch.apply, generic_method="structured")
    ref = np.asarray(generic.autodiff_dense(arch.apply, p, x30), np.float64)
    assert fs.method == "dense" and fs.eigenvalues.size == 30
    np.testing.assert_allclose(fs.eigenvalues[:4], np.linalg.eigvalsh(ref)[::-1][:4], rtol=TOL)
    cnn = nc.Architecture("cnn", width=2)
    with pytest.raises(ValueError, match="structured.*MLP"):
        nc.full_spectrum(cnn.init(jax.random.PRNGKey(0)), x30, parameterization="standard",
                         apply_fn=cnn.apply, generic_method="structured")
