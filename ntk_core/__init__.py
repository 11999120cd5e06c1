"""ntk_core: exact, fast empirical NTK of a one-hidden-layer ReLU MLP, its spectra,
training and the infinite-width limit.

Pure numerics (JAX/NumPy/SciPy, plus pooch for the optional full-MNIST download): it
imports nothing of the runner, the cache or the UI, and takes plain, already-validated
values. Experiment configs, limits and input validation live in :mod:`runner`.
"""

from ntk_core._src.archs import Architecture
from ntk_core._src.archs import architecture_apply
from ntk_core._src.archs import cnn_apply
from ntk_core._src.archs import init_cnn
from ntk_core._src.archs import init_mlp
from ntk_core._src.archs import mlp_apply
from ntk_core._src.data import DataUnavailable
from ntk_core._src.deep_mlp import mlp_traced_ntk
from ntk_core._src.data import Split
from ntk_core._src.data import fetch_full
from ntk_core._src.data import forget_download_failures
from ntk_core._src.data import load_bundled
from ntk_core._src.data import load_pool
from ntk_core._src.data import load_split
from ntk_core._src.data import stratified_split
from ntk_core._src.generic import NTKOperator
from ntk_core._src.generic import jacobian_dense
from ntk_core._src.generic import jacobian_samples_per_block
from ntk_core._src.generic import ntk_vp
from ntk_core._src.generic import ntk_vp_dense
from ntk_core._src.generic import ntk_vp_diagonal
from ntk_core._src.infinite import analytic_kernels
from ntk_core._src.kernel_spectra import CheckpointSpectra
from ntk_core._src.kernel_spectra import FullSpectrum
from ntk_core._src.kernel_spectra import checkpoint_spectra
from ntk_core._src.kernel_spectra import full_spectrum
from ntk_core._src.kernel_spectra import generic_dense_kernel
from ntk_core._src.kernel_spectra import traced_ntk_float64
from ntk_core._src.full_kernel import FullNTKState
from ntk_core._src.full_kernel import full_ntk_lambda_max
from ntk_core._src.full_kernel import full_ntk_matrix
from ntk_core._src.full_kernel import full_ntk_matvec
from ntk_core._src.full_kernel import full_ntk_matvec_state
from ntk_core._src.full_kernel import full_ntk_state
from ntk_core._src.full_kernel import stable_lr_bound
from ntk_core._src.model import apply
from ntk_core._src.model import init_params
from ntk_core._src.model import layer_scales
from ntk_core._src.model import pad_params
from ntk_core._src.model import unpad
from ntk_core._src.ntk import MatFreeState
from ntk_core._src.ntk import NTKMethod
from ntk_core._src.ntk import empirical_ntk
from ntk_core._src.ntk import empirical_ntk_fn
from ntk_core._src.ntk import gram
from ntk_core._src.ntk import matfree_matmat
from ntk_core._src.ntk import matfree_matvec
from ntk_core._src.ntk import matfree_state
from ntk_core._src.ntk import ntk_diagonal
from ntk_core._src.ntk import ntk_operator
from ntk_core._src.ntk import traced_ntk_from_gram
from ntk_core._src.sharded import ShardedOperator
from ntk_core._src.sharded import operator_top_k
from ntk_core._src.sharded import operator_trace
from ntk_core._src.sharded import sample_mesh
from ntk_core._src.sharded import shard_rows
from ntk_core._src.sharded import sharded_closed_form
from ntk_core._src.sharded import sharded_jacobian
from ntk_core._src.spectra import condition_number
from ntk_core._src.spectra import cumulative_share
from ntk_core._src.spectra import density_on_grid
from ntk_core._src.spectra import effective_rank
from ntk_core._src.spectra import eigvalsh_desc
from ntk_core._src.spectra import empirical_cdf
from ntk_core._src.spectra import slq
from ntk_core._src.spectra import top_k_eigs
from ntk_core._src.spectra import TraceEstimate
from ntk_core._src.spectra import trace_estimate
from ntk_core._src.spectra import DenseSpectrum
from ntk_core._src.spectra import EigResult
from ntk_core._src.spectra import EigshNotConverged
from ntk_core._src.spectra import dense_spectrum
from ntk_core._src.spectra import roundoff_floor
from ntk_core._src.spectra import split_at_floor
from ntk_core._src.train import EarlyStop
from ntk_core._src.train import TrainResult
from ntk_core._src.train import early_stopping
from ntk_core._src.train import train_grid
from ntk_core._src.train import train_sweep

__all__ = (
    "Architecture",
    "architecture_apply",
    "cnn_apply",
    "init_cnn",
    "init_mlp",
    "mlp_apply",
    "NTKOperator",
    "ntk_vp",
    "ntk_vp_dense",
    "jacobian_dense",
    "mlp_traced_ntk",
    "generic_dense_kernel",
    "jacobian_samples_per_block",
    "ntk_vp_diagonal",
    "empirical_ntk_fn",
    "ntk_operator",
    "TraceEstimate",
    "trace_estimate",
    "CheckpointSpectra",
    "DataUnavailable",
    "EarlyStop",
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
    "forget_download_failures",
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
    "pad_params",
    "slq",
    "stratified_split",
    "top_k_eigs",
    "traced_ntk_from_gram",
    "traced_ntk_float64",
    "DenseSpectrum",
    "EigResult",
    "EigshNotConverged",
    "FullNTKState",
    "dense_spectrum",
    "full_ntk_lambda_max",
    "full_ntk_matrix",
    "full_ntk_matvec",
    "full_ntk_matvec_state",
    "full_ntk_state",
    "roundoff_floor",
    "split_at_floor",
    "stable_lr_bound",
    "train_grid",
    "train_sweep",
    "unpad",
    "ShardedOperator",
    "operator_top_k",
    "operator_trace",
    "sample_mesh",
    "shard_rows",
    "sharded_closed_form",
    "sharded_jacobian",
)
