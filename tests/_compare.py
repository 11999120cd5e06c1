"""Comparison helpers shared by the kernel tests (imported as ``from _compare import rel``:
pytest puts this folder on sys.path)."""

from __future__ import annotations

import numpy as np


def rel(a, b) -> float:
    """max |a − b| / max |b| in float64: the error relative to the largest reference entry."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())
