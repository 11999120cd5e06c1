"""Shared test configuration: strict JAX numerics, warnings as errors, isolated cache.

Strictness (equinox-style), applied at import so that every test module, whoever wrote
it, runs under it:

* ``jax_numpy_rank_promotion="raise"``: no implicit broadcasting between arrays of
  different rank; every broadcast in the core is spelled out with ``[None, :]``.
* ``jax_numpy_dtype_promotion="strict"``: no implicit dtype promotion (e.g. float32
  with float64, or an int32 array with a Python float). The closed-form and autodiff
  kernels, the matrix-free operator, the spectra and SGD training all pass under it.
  optax's Adam computes its bias correction as ``1 - b1**count`` (Python float ** int32
  step count), which has no strict promotion path, so ``ntk_core/_src/train.py`` scopes
  its optimiser update in ``jax.numpy_dtype_promotion("standard")``; the Adam tests in
  ``tests/test_train.py`` run under the strict setting and pass.
* ``filterwarnings = error`` (added in :func:`pytest_configure`): any warning fails the
  test that triggered it.
"""

from __future__ import annotations

import os

# Before JAX initialises a backend: CPU only, whatever accelerators the machine has.
os.environ["JAX_PLATFORMS"] = "cpu"

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")

GOLDEN_PATH = os.path.join(os.path.dirname(__file__), "fixtures", "neural_tangents_0.6.5.npz")


def pytest_configure(config):
    config.addinivalue_line("filterwarnings", "error")


@pytest.fixture(scope="session", autouse=True)
def _isolated_environment(tmp_path_factory):
    """Per-session cache dir (no test touches the user's cache) and CPU-only JAX."""
    cache_dir = tmp_path_factory.mktemp("ntk_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NTK_CACHE_DIR", str(cache_dir))
        mp.setenv("JAX_PLATFORMS", "cpu")
        yield cache_dir


@pytest.fixture(scope="session")
def golden():
    """Kernels computed by neural-tangents 0.6.5 (see fixtures/GOLDEN_README.md), float64."""
    with np.load(GOLDEN_PATH) as npz:
        return {k: npz[k] for k in npz.files}


@pytest.fixture(scope="session")
def mnist_small():
    """A small deterministic split of the bundled MNIST: 64 train, 32 validation."""
    from ntk_core import load_split

    return load_split(64, 32, seed=0)


@pytest.fixture(scope="session")
def quick_findings(tmp_path_factory):
    """``python -m ntk_core findings --quick --json`` run once, in a subprocess, into its own
    cache dir: (cache dir, parsed JSON, seconds). The Findings page's browser test serves
    from the same dir, so it shows the cached verdicts."""
    import json
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    cache_dir = tmp_path_factory.mktemp("findings_cache")
    env = {**os.environ, "NTK_CACHE_DIR": str(cache_dir), "JAX_PLATFORMS": "cpu"}
    for var in ("NTK_HOSTED", "NTK_MAX_N", "NTK_MAX_WIDTH", "NTK_MAX_EPOCHS", "NTK_MAX_TOPK",
                "NTK_MAX_DENSE_N", "NTK_MAX_GRID", "NTK_MAX_MEMORY_MB"):
        env.pop(var, None)
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "ntk_core", "findings", "--quick", "--json", "-q"],
                       cwd=root, env=env, capture_output=True, text=True, timeout=900)
    seconds = time.monotonic() - t0
    assert p.returncode == 0, p.stderr[-3000:]
    return cache_dir, json.loads(p.stdout), seconds
