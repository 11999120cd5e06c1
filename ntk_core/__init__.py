"""ntk_core: exact, fast empirical NTK of a one-hidden-layer ReLU MLP, its spectra,
training and the infinite-width limit.

Pure numerics (JAX/NumPy/SciPy, plus pooch for the optional full-MNIST download): it
imports nothing of the runner, the cache or the UI, and takes plain, already-validated
values. Experiment configs, limits and input validation live in :mod:`runner`.
"""

from ntk_core._src.data import DataUnavailable
from ntk_core._src.data import Split
from ntk_core._src.data import fetch_full
from ntk_core._src.data import load_bundled
from ntk_core._src.data import load_pool
from ntk_core._src.data import load_split
from ntk_core._src.data import stratified_split
from ntk_core._src.infinite import analytic_kernels
from ntk_core._src.kernel_spectra import CheckpointSpectra
from ntk_core._src.kernel_spectra import FullSpectrum
from ntk_core._src.kernel_spectra import checkpoint_spectra
from ntk_core._src.kernel_spectra import full_spectrum
from ntk_core._src.model import apply
from ntk_core._src.model import init_params
from ntk_core._src.model import layer_scales
from ntk_core._src.ntk import MatFreeState
from ntk_core._src.ntk import NTKMethod
from ntk_core._src.ntk import empirical_ntk
from ntk_core._src.ntk import gram
from ntk_core._src.ntk import matfree_matmat
from ntk_core._src.ntk import matfree_matvec
from ntk_core._src.ntk import matfree_state
from ntk_core._src.ntk import ntk_diagonal
from ntk_core._src.ntk import traced_ntk_from_gram
from ntk_core._src.spectra import condition_number
from ntk_core._src.spectra import cumulative_share
from ntk_core._src.spectra import density_on_grid
from ntk_core._src.spectra import effective_rank
from ntk_core._src.spectra import eigvalsh_desc
from ntk_core._src.spectra import empirical_cdf
from ntk_core._src.spectra import slq
from ntk_core._src.spectra import top_k_eigs
from ntk_core._src.train import TrainResult
from ntk_core._src.train import early_stopping
from ntk_core._src.train import train_grid

__all__ = (
    "CheckpointSpectra",
    "DataUnavailable",
    "FullSpectrum",
    "MatFreeState",
    "NTKMethod",
    "Split",
    "TrainResult",
    "analytic_kernels",
    "apply",
    "checkpoint_spectra",
    "condition_number",
    "cumulative_share",
    "density_on_grid",
    "early_stopping",
    "effective_rank",
    "eigvalsh_desc",
    "empirical_cdf",
    "empirical_ntk",
    "fetch_full",
    "full_spectrum",
    "gram",
    "init_params",
    "layer_scales",
    "load_bundled",
    "load_pool",
    "load_split",
    "matfree_matmat",
    "matfree_matvec",
    "matfree_state",
    "ntk_diagonal",
    "slq",
    "stratified_split",
    "top_k_eigs",
    "traced_ntk_from_gram",
    "train_grid",
)
