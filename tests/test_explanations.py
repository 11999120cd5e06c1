"""What the pages tell students, checked against the code that produces the numbers."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

import ntk_core as nc

ROOT = Path(__file__).resolve().parents[1]


def _effective_w1_variance(parameterization: str, width: int = 512) -> float:
    p = nc.init_params(jax.random.PRNGKey(0), width, parameterization)
    a1 = nc.layer_scales(width, parameterization)[0]
    return float(np.var(np.asarray(p["W1"]) * a1))


def test_home_page_init_variances_match_the_model():
    home = (ROOT / "pages" / "home.py").read_text(encoding="utf-8")
    std, ntk = _effective_w1_variance("standard"), _effective_w1_variance("ntk")
    # standard: U(±1/√784) has variance 1/(3·784); NTK: (√2/√784)²·Var N(0,1) = 2/784.
    np.testing.assert_allclose(std, 1 / (3 * 784), rtol=0.02)
    np.testing.assert_allclose(ntk, 2 / 784, rtol=0.02)
    assert "1/(3" in home and "2/\\\\text{fan-in}" in home and "6×" in home
    assert round(ntk / std) == 6
    assert "Same functions at init" not in home and "They are *not*" in home


def test_home_page_learning_rate_bound_names_the_full_kernel():
    home = (ROOT / "pages" / "home.py").read_text(encoding="utf-8")
    assert "Theta_{\\\\text{full}}" in home and "upper limit on the stable rate" in home


def test_traced_lambda_max_never_exceeds_the_full_kernels(mnist_small):
    # The statement behind the home page's bound: λ_max(traced) ≤ λ_max(full), on real data.
    x = mnist_small.x_train[:50]
    for parameterization in ("standard", "ntk"):
        p = nc.init_params(jax.random.PRNGKey(1), 64, parameterization)
        traced = nc.eigvalsh_desc(nc.empirical_ntk(p, x, parameterization=parameterization))[0]
        full = nc.full_ntk_lambda_max(p, x, parameterization=parameterization).values[0]
        assert traced <= full * (1 + 1e-5) and full / traced < 10.0, (traced, full)


def test_model_docstring_states_the_init_difference():
    from ntk_core._src import model

    assert "do NOT define the same functions at init" in model.__doc__
    # Output layer: standard U(±1/√w) has variance 1/(3w); NTK (√2/√w)²·1 = 2/w.
    w = 256
    std = nc.init_params(jax.random.PRNGKey(2), w, "standard")
    ntk = nc.init_params(jax.random.PRNGKey(2), w, "ntk")
    a2_std = nc.layer_scales(w, "standard")[2]
    a2_ntk = nc.layer_scales(w, "ntk")[2]
    np.testing.assert_allclose(np.var(np.asarray(std["W2"]) * a2_std), 1 / (3 * w), rtol=0.1)
    np.testing.assert_allclose(np.var(np.asarray(ntk["W2"]) * a2_ntk), 2 / w, rtol=0.1)
