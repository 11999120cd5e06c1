"""Disk-backed cache of experiment results shared by the app and the CLI.

Results are dicts of NumPy arrays and JSON scalars, keyed by a canonical hash
of the experiment configuration (see ``config_key``). ``ResultStore`` keeps
them in a size-bounded diskcache directory, verifies every entry on read, and
computes each missing result once even when several processes ask at the same
time::

    store = ResultStore()
    value, status = store.get_or_compute("train", config, lambda: train(config))
"""

from cache._store import SCHEMA_VERSION
from cache._store import ResultStore
from cache._store import config_key
from cache._store import default_cache_dir

__all__ = [
    "SCHEMA_VERSION",
    "ResultStore",
    "config_key",
    "default_cache_dir",
]
