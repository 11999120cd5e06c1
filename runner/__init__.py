"""The experiment runner: validated config → cached results, shared by the CLI and the app.

Validate once at the entry (``validate_config``), then pass the config and the limits::

    import runner
    limits = runner.Limits.from_env()
    config = runner.validate_config({"width": 64, "n_train": 500}, limits)
    result = runner.run(config, limits, store=runner.open_store())
"""

from runner._config import ARCHS
from runner._config import DATASET_LABELS
from runner._config import DATASETS
from runner._config import MAX_CNN_CHANNELS
from runner._config import Bounds
from runner._config import ConfigError
from runner._config import ExperimentConfig
from runner._config import Limits
from runner._config import Network
from runner._config import bounds
from runner._config import estimate_memory_mb
from runner._config import validate_config
from runner._config import validate_network
from runner._findings import ClaimResult
from runner._findings import FindingsResult
from runner._findings import Protocol
from runner._findings import cached_findings
from runner._findings import findings
from runner._findings import protocol
from runner._malloc import trim_heap
from runner._malloc import tune_allocator
from runner._run import COUNTERS
from runner._run import GENERIC_SPECTRUM_EPOCHS
from runner._run import GRID_PARAMS
from runner._run import apply_fn_of
from runner._run import every_epoch
from runner._run import spectrum_epochs
from runner._run import RunResult
from runner._run import analytic_reference
from runner._run import configure_jax_cache
from runner._run import open_store
from runner._run import run
from runner._run import run_configs
from runner._run import run_sweep
from runner._run import spectrum_at
from runner._run import sweep_configs
from runner._theory_dynamics import DYNAMICS_CLAIMS
from runner._theory_dynamics import DynamicsProtocol
from runner._theory_dynamics import DynamicsResult
from runner._theory_dynamics import cached_dynamics
from runner._theory_dynamics import linearized
from runner._theory_dynamics import linearized_protocol
from runner._theory_dynamics import stability
from runner._theory_dynamics import stability_protocol
from runner._theory_motion import THEORY_CLAIMS
from runner._theory_motion import TheoryProtocol
from runner._theory_motion import TheoryResult
from runner._theory_motion import cached_theory
from runner._theory_motion import infinite_protocol
from runner._theory_motion import infinite_width
from runner._theory_motion import kernel_motion
from runner._theory_motion import motion_protocol
from runner._types import Progress
from runner._types import ProgressFn
from runner._types import ReferenceResult
from runner._types import SpectrumResult
from runner._types import Stage
from runner._verdicts import CLAIMS
from runner._verdicts import RULES
from runner._verdicts import Verdict

__all__ = (
    "ARCHS",
    "GENERIC_SPECTRUM_EPOCHS",
    "apply_fn_of",
    "every_epoch",
    "spectrum_epochs",
    "DATASET_LABELS",
    "DATASETS",
    "MAX_CNN_CHANNELS",
    "DYNAMICS_CLAIMS",
    "DynamicsProtocol",
    "DynamicsResult",
    "cached_dynamics",
    "linearized",
    "linearized_protocol",
    "stability",
    "stability_protocol",
    "THEORY_CLAIMS",
    "TheoryProtocol",
    "TheoryResult",
    "cached_theory",
    "infinite_protocol",
    "infinite_width",
    "kernel_motion",
    "motion_protocol",
    "Bounds",
    "CLAIMS",
    "COUNTERS",
    "ClaimResult",
    "ConfigError",
    "ExperimentConfig",
    "FindingsResult",
    "GRID_PARAMS",
    "Limits",
    "Network",
    "Progress",
    "Protocol",
    "ProgressFn",
    "RULES",
    "ReferenceResult",
    "RunResult",
    "SpectrumResult",
    "Stage",
    "Verdict",
    "analytic_reference",
    "bounds",
    "cached_findings",
    "configure_jax_cache",
    "estimate_memory_mb",
    "findings",
    "open_store",
    "protocol",
    "run",
    "run_configs",
    "run_sweep",
    "spectrum_at",
    "sweep_configs",
    "trim_heap",
    "tune_allocator",
    "validate_config",
    "validate_network",
)
