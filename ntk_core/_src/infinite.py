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


def _relu_expectations(sig12, sig11, sig22):
    """E[relu(z) relu(z')] and E[1[z>0] 1[z'>0]] for (z, z') ~ N(0, [[σ11, σ12], [σ12, σ22]])."""
    norms = np.sqrt(np.outer(sig11, sig22))
    cos = np.clip(sig12 / np.where(norms > 0, norms, 1.0), -1.0, 1.0)
    phi = np.arccos(cos)
    e_hh = norms * (np.sin(phi) + (np.pi - phi) * cos) / (2 * np.pi)
    e_mm = (np.pi - phi) / (2 * np.pi)
    return e_hh, e_mm


def _layer_consts(parameterization: str, fan_in: int, width: int | None, sigma_w: float,
                  sigma_b: float) -> tuple[float, float, float, float]:
    """(a², c², v_W, v_b) of a Dense layer with ``fan_in`` inputs."""
    if parameterization == "ntk":
        return sigma_w ** 2 / fan_in, sigma_b ** 2, 1.0, 1.0
    if parameterization == "standard":
        if width is None:
            raise ValueError("width is required for the standard parameterization, whose "
                             "expected NTK grows linearly with width")
        return 1.0, 1.0, 1.0 / (3 * fan_in), 1.0 / (3 * fan_in)
    raise ValueError(f"parameterization={parameterization!r}; allowed: standard, ntk")


def analytic_kernels(x1, x2=None, *, parameterization: str = "ntk", width: int | None = None,
                     sigma_w: float = _model.SIGMA_W, sigma_b: float = _model.SIGMA_B,
                     depth: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Infinite-width (NTK parameterization) or width-w expected (standard) kernels.

    Deep MLPs (``depth`` hidden ReLU layers of one width, the layout of
    :func:`ntk_core._src.archs.mlp_apply`) by the arc-cosine recursion. For the Dense layer
    z = a·h W + c·b (raw W ~ v_W, b ~ v_b, fan_in m) after the kernels (K, Θ) of its input:

      K' = a²·v_W·m·E[relu relu'] + c²·v_b,   Θ' = a²·m·E[relu relu'] + c² + a²·v_W·m·E[1·1']·Θ

    with the expectations under N(0, K); the first layer uses x·x' in place of
    m·E[relu relu'] and Θ = 0. In NTK parameterization a²·m = σ_w² and v = 1 (neural-tangents'
    ``stax`` Dense(ntk)/Relu recursion); depth 1 reproduces the one-hidden formula below.
    Tested: NTK parameterization at depths 2 and 3 against neural-tangents 0.6.5
    (tests/test_archs.py). The standard parameterization at depth > 1 applies the same
    Gaussian approximation of the hidden pre-activations layer by layer and is not checked
    against an independent reference.

    Args:
      x1: (n1, d), x2: (n2, d) inputs (default x1), any float dtype; computed in float64.
      width: hidden width; only used by the standard parameterization.
      depth: hidden layers, integer 1–4 (default 1: the app's MLP).

    Returns:
      (ntk, nngp): each (n1, n2) float64. The NTK is per logit, which equals the traced
      (mean over the 10 logits) kernel; raw, not divided by n. The NNGP is the output
      covariance at init.
    """
    if not (isinstance(depth, (int, np.integer)) and 1 <= int(depth) <= 4):
        raise ValueError(f"depth={depth!r}; allowed: integer 1–4")
    x1 = np.asarray(x1, dtype=np.float64)
    x2 = x1 if x2 is None else np.asarray(x2, dtype=np.float64)
    d = x1.shape[1]
    # first Dense layer on the inputs
    a2_, c2_, vw, vb = _layer_consts(parameterization, d, width, sigma_w, sigma_b)
    dot = x1 @ x2.T
    k12 = a2_ * vw * dot + c2_ * vb
    k11 = a2_ * vw * np.sum(x1 * x1, 1) + c2_ * vb
    k22 = a2_ * vw * np.sum(x2 * x2, 1) + c2_ * vb
    ntk = a2_ * dot + c2_
    m = width if width is not None else 1   # NTK parameterization: a²·m = σ_w² whatever m is
    for _ in range(int(depth)):              # relu, then the next Dense (hidden or output)
        e_hh, e_mm = _relu_expectations(k12, k11, k22)
        a2_, c2_, vw, vb = _layer_consts(parameterization, m, width, sigma_w, sigma_b)
        ntk = a2_ * m * e_hh + c2_ + a2_ * vw * m * e_mm * ntk
        k12 = a2_ * vw * m * e_hh + c2_ * vb
        # diagonal: φ = 0, E[relu²] = K/2 (the ReLU derivative's is 1/2, not needed for K)
        k11 = a2_ * vw * m * k11 / 2 + c2_ * vb
        k22 = a2_ * vw * m * k22 / 2 + c2_ * vb
    return ntk, k12
