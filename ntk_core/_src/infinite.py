"""Analytic (arc-cosine) NTK and NNGP of the one-hidden-layer ReLU MLP.

For hidden pre-activations (z, z') ~ N(0, Σ) with Σ(x, x') = a1²·v_W1·x·x' + c1²·v_b1,
cos φ = Σ(x,x')/√(Σ(x,x)Σ(x',x')):

  E[relu(z) relu(z')] = √(Σ(x,x)Σ(x',x'))·(sin φ + (π − φ) cos φ)/(2π)
  E[1[z>0] 1[z'>0]]  = (π − φ)/(2π)

and the expected traced kernel at width w is

  Θ(x, x') = a2²·w·E[relu relu'] + c2² + a2²·w·v_W2·(a1²·x·x' + c1²)·E[1·1']
  K(x, x') = a2²·w·v_W2·E[relu relu'] + c2²·v_b2          (NNGP)

NTK parameterization (raw params N(0,1), a2 = σ_w/√w): w cancels and this is the
infinite-width limit, identical to neural-tangents' ``stax`` Dense–Relu–Dense kernel.
Standard parameterization (PyTorch uniform init): the expectation grows ∝ w, so the
"limit" is only defined per width; we return the width-w expectation, using a
Gaussian approximation of the (sum-of-uniforms) pre-activations.
"""

from __future__ import annotations

import numpy as np

from ntk_core._src import model as _model


def _variances(parameterization: str, width: int | None, in_dim: int):
    """(v_W1, v_b1, v_W2, v_b2): variances of the raw parameters at init."""
    if parameterization == "ntk":
        return 1.0, 1.0, 1.0, 1.0
    if parameterization == "standard":
        if width is None:
            raise ValueError("width is required for the standard parameterization, whose "
                             "expected NTK grows linearly with width")
        return 1.0 / (3 * in_dim), 1.0 / (3 * in_dim), 1.0 / (3 * width), 1.0 / (3 * width)
    raise ValueError(f"parameterization={parameterization!r}; allowed: standard, ntk")


def analytic_kernels(x1, x2=None, *, parameterization: str = "ntk", width: int | None = None,
                     sigma_w: float = _model.SIGMA_W, sigma_b: float = _model.SIGMA_B
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Infinite-width (NTK parameterization) or width-w expected (standard) kernels.

    Args:
      x1: (n1, d), x2: (n2, d) inputs (default x1), any float dtype; computed in float64.
      width: hidden width; only used by the standard parameterization.

    Returns:
      (ntk, nngp): each (n1, n2) float64. The NTK is per logit, which equals the traced
      (mean over the 10 logits) kernel; raw, not divided by n. The NNGP is the output
      covariance at init.
    """
    x1 = np.asarray(x1, dtype=np.float64)
    x2 = x1 if x2 is None else np.asarray(x2, dtype=np.float64)
    d = x1.shape[1]
    w_eff = width if width is not None else 1
    a1, c1, a2, c2 = _model.layer_scales(w_eff, parameterization, in_dim=d,
                                         sigma_w=sigma_w, sigma_b=sigma_b)
    v_w1, v_b1, v_w2, v_b2 = _variances(parameterization, width, d)
    dot = x1 @ x2.T
    sig12 = a1 ** 2 * v_w1 * dot + c1 ** 2 * v_b1
    sig11 = a1 ** 2 * v_w1 * np.sum(x1 * x1, 1) + c1 ** 2 * v_b1
    sig22 = a1 ** 2 * v_w1 * np.sum(x2 * x2, 1) + c1 ** 2 * v_b1
    norms = np.sqrt(np.outer(sig11, sig22))
    cos = np.clip(sig12 / np.where(norms > 0, norms, 1.0), -1.0, 1.0)
    phi = np.arccos(cos)
    e_hh = norms * (np.sin(phi) + (np.pi - phi) * cos) / (2 * np.pi)
    e_mm = (np.pi - phi) / (2 * np.pi)
    # a2²·w is σ_w² in NTK parameterization (layer_scales saw width w_eff) and w in standard.
    aw = a2 ** 2 * w_eff
    nngp = aw * v_w2 * e_hh + c2 ** 2 * v_b2
    # NTK: W2/b2 gradients (h·h', 1) need no weight variance; W1/b1 gradients carry W2².
    ntk = aw * e_hh + c2 ** 2 + aw * v_w2 * (a1 ** 2 * dot + c1 ** 2) * e_mm
    return ntk, nngp
