"""The experiment runner: config → cached results, shared by the CLI and the app."""

from runner._run import COUNTERS
from runner._run import GRID_PARAMS
from runner._run import RunResult
from runner._run import analytic_reference
from runner._run import configure_jax_cache
from runner._run import open_store
from runner._run import run
from runner._run import run_configs
from runner._run import run_sweep
from runner._run import spectrum_at
from runner._run import sweep_configs

__all__ = (
    "COUNTERS",
    "GRID_PARAMS",
    "RunResult",
    "analytic_reference",
    "configure_jax_cache",
    "open_store",
    "run",
    "run_configs",
    "run_sweep",
    "spectrum_at",
    "sweep_configs",
)
