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


@pytest.fixture(scope="session")
def tiny_theory(tmp_path_factory):
    """``python -m ntk_core kernel-motion --quick --json`` and ``infinite-width --quick --json``
    with ``NTK_THEORY_QUICK=tiny`` (3 widths, n=64, 5 epochs, 3 seeds), run once in
    subprocesses into their own cache dir: (cache dir, {command: parsed JSON}, env). The
    theory pages' AppTests serve from the same dir and env, so they load the cached results."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    cache_dir = tmp_path_factory.mktemp("theory_cache")
    env = {**os.environ, "NTK_CACHE_DIR": str(cache_dir), "JAX_PLATFORMS": "cpu",
           "NTK_THEORY_QUICK": "tiny"}
    for var in ("NTK_HOSTED", "NTK_MAX_N", "NTK_MAX_WIDTH", "NTK_MAX_EPOCHS", "NTK_MAX_TOPK",
                "NTK_MAX_DENSE_N", "NTK_MAX_GRID", "NTK_MAX_MEMORY_MB"):
        env.pop(var, None)
    # Both commands in one process (what `python -m ntk_core` runs: runner.cli.main), which
    # saves a second interpreter and JAX start-up.
    commands = ("kernel-motion", "infinite-width")
    code = ("import sys; from runner import cli; sys.exit(max(cli.main([c, '--quick', '--json', '-q']) "
            f"for c in {commands!r}))")
    p = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    lines = p.stdout.splitlines()
    assert len(lines) == 2 and p.stdout.endswith("\n"), "one JSON object per command, one line each"
    return cache_dir, dict(zip(commands, map(json.loads, lines))), env


@pytest.fixture(scope="session")
def tiny_dynamics(tmp_path_factory):
    """``python -m ntk_core linearized --quick --json`` and ``stability --quick --json`` with
    ``NTK_THEORY_QUICK=tiny`` (linearized: widths 16/64/256, n=32, 5 epochs, 2 seeds;
    stability: width 64, n=32, 20 steps, 2 seeds), run once in subprocesses into their own
    cache dir: (cache dir, {command: parsed JSON}, env). The pages' AppTests and the fuzz
    test serve from the same dir and env, so they load the cached results."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    cache_dir = tmp_path_factory.mktemp("dynamics_cache")
    env = {**os.environ, "NTK_CACHE_DIR": str(cache_dir), "JAX_PLATFORMS": "cpu",
           "NTK_THEORY_QUICK": "tiny"}
    for var in ("NTK_HOSTED", "NTK_MAX_N", "NTK_MAX_WIDTH", "NTK_MAX_EPOCHS", "NTK_MAX_TOPK",
                "NTK_MAX_DENSE_N", "NTK_MAX_GRID", "NTK_MAX_MEMORY_MB"):
        env.pop(var, None)
    out = {}
    for command in ("linearized", "stability"):
        p = subprocess.run([sys.executable, "-m", "ntk_core", command, "--quick", "--json", "-q"],
                           cwd=root, env=env, capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stderr[-3000:]
        assert p.stdout.count("\n") == 1, "one JSON object on one line"
        out[command] = json.loads(p.stdout)
    return cache_dir, out, env
