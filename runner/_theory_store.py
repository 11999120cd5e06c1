"""The one cache path of the theory commands (kernel-motion, infinite-width, linearized,
stability): a protocol's key → its stored value (JSON text of data and verdicts, seconds),
decoded by the command's own ``decode(value, status, seconds)``."""

from __future__ import annotations

import time
from typing import Any, Callable, TypeVar

from cache import ResultStore

R = TypeVar("R")
Decode = Callable[[dict[str, Any], str, float], R]


def cached(store: ResultStore | None, key: dict[str, Any], decode: Decode) -> R | None:
    """The stored result under ``key`` (status "hit"), or None (nothing stored, no store)."""
    if store is None or not store.enabled:
        return None
    t0 = time.monotonic()
    v = store.get("theory", key)
    return None if v is None else decode(v, "hit", time.monotonic() - t0)


def cached_or_compute(store: ResultStore | None, key: dict[str, Any],
                      work: Callable[[], dict[str, Any]], decode: Decode) -> R:
    """The stored result, or ``work()`` computed once (one process computes, the others wait
    on the store's lock) and stored; "uncached" without a store."""
    t0 = time.monotonic()
    if store is None or not store.enabled:
        value, status = work(), "uncached"
    else:
        value, status = store.get_or_compute("theory", key, work)
    return decode(value, status, time.monotonic() - t0)
