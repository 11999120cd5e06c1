"""Disk-backed store of experiment results shared across processes.

Results (trained checkpoints, metrics, spectra) are keyed by a hash of the
experiment configuration and kept in a size-bounded ``diskcache.Cache``. Every
entry is a self-describing blob::

    magic (8 bytes) | sha256 of the rest (32 bytes) | header length (8 bytes,
    little-endian) | JSON header | concatenated .npy payloads

The header records the schema version, the entry's key and, per field, either
its JSON scalar value or the location of its ``.npy`` payload. Reads verify all
of it, so a truncated, garbled or misplaced entry is discarded instead of being
returned.

This module deliberately avoids importing Streamlit, JAX or ``ntk_core``: both
the app and the CLI use it, and it must stay cheap to import.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import logging
import math
import os
import sqlite3
import struct
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import diskcache
import filelock
import numpy as np

logger = logging.getLogger(__name__)

SCHEMA_VERSION: int = 1
"""Version of the meaning of stored values.

Bump it whenever what a stored result means changes (training procedure,
metric definitions, blob layout). It is part of every key and every blob, so
entries written under another version are never reused.
"""

_ENV_DIR = "NTK_CACHE_DIR"
_ENV_SIZE = "NTK_CACHE_SIZE_MB"
_DEFAULT_SIZE_MB = 1024.0
_MIB = 2**20

_MAGIC = b"NTKRES\x00\x01"
_DIGEST_SIZE = 32
_LENGTH = struct.Struct("<Q")
_PREFIX_SIZE = len(_MAGIC) + _DIGEST_SIZE + _LENGTH.size

# Waiting longer than this for another process's computation means the holder
# is probably hung; computing a duplicate is then better than blocking forever.
_LOCK_TIMEOUT_S = 1800.0

# filelock >= 4 silently falls back to an existence-based lock on file systems
# without flock(); such a lock survives a crashed holder, so opt out and let
# get_or_compute compute uncached instead.
_LOCK_KWARGS: dict[str, Any] = (
    {"fallback_to_soft": False}
    if "fallback_to_soft" in inspect.signature(filelock.FileLock.__init__).parameters
    else {}
)

# Faults of the storage medium. They disable or bypass the cache but never
# reach the caller, who can always compute the result instead.
_STORAGE_ERRORS = (OSError, sqlite3.Error, diskcache.Timeout)


class _CorruptEntryError(ValueError):
    """A stored entry failed verification."""


class _ForeignEntryError(ValueError):
    """diskcache holds a value under our key that this module did not write."""


class _BlobDisk(diskcache.Disk):
    """diskcache serializer that only hands out raw bytes.

    Everything this module stores is ``bytes``. Refusing to unpickle anything
    else keeps a tampered or foreign entry from executing code on read, and
    removing the partial file of a failed write keeps a full disk from filling
    up further with orphans.
    """

    def __init__(self, directory: str, **kwargs: Any) -> None:
        super().__init__(directory, **kwargs)
        self._pending = threading.local()

    def filename(self, key: Any = diskcache.core.UNKNOWN, value: Any = diskcache.core.UNKNOWN):
        filename, full_path = super().filename(key, value)
        self._pending.path = full_path
        return filename, full_path

    def store(self, value: Any, read: bool, key: Any = diskcache.core.UNKNOWN):
        self._pending.path = None
        try:
            return super().store(value, read, key=key)
        except BaseException:
            path = getattr(self._pending, "path", None)
            if path is not None:
                try:
                    os.remove(path)
                except OSError:
                    pass
            raise

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool):
        if mode in (diskcache.core.MODE_TEXT, diskcache.core.MODE_PICKLE):
            raise _ForeignEntryError(f"entry stored in diskcache mode {mode}, expected bytes")
        return super().fetch(mode, filename, value, read)


# --------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """Returns the directory used when a store is created without one.

    Returns:
        ``$NTK_CACHE_DIR`` if set and non-empty, otherwise ``results`` inside
        the per-user cache directory (e.g. ``~/.cache/ntk-explorer/results``)
        when it is writable, else ``ntk-explorer/results`` under the system temp
        dir (hosted containers often have a read-only or missing home).
    """
    env = os.environ.get(_ENV_DIR)
    if env:
        return Path(env).expanduser()
    # Imported lazily: pooch pulls in requests, which the common path
    # (NTK_CACHE_DIR set, or a directory passed explicitly) never needs.
    import pooch

    user = Path(pooch.os_cache("ntk-explorer")) / "results"
    try:
        user.mkdir(parents=True, exist_ok=True)
        probe = user / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
        return user
    except OSError:
        import tempfile

        return Path(tempfile.gettempdir()) / "ntk-explorer" / "results"


def _canonical_config(obj: Any, path: str) -> Any:
    """Converts a config value to plain JSON types, rejecting anything else."""
    if obj is None:
        return None
    if isinstance(obj, str):
        return str(obj)
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        if not math.isfinite(x):
            raise ValueError(f"config field {path!r} is {x!r}; NaN and infinity cannot be keyed")
        # -0.0 == 0.0 but their reprs differ; they mean the same setting.
        return x + 0.0
    if isinstance(obj, Mapping):
        out = {}
        for name, item in obj.items():
            if not isinstance(name, str):
                # json would turn 1 into "1" and make {1: x} and {"1": x} collide.
                raise TypeError(f"config field {path!r} has non-string key {name!r}")
            out[str(name)] = _canonical_config(item, f"{path}.{name}" if path else name)
        return out
    if isinstance(obj, (list, tuple)):
        return [_canonical_config(item, f"{path}[{i}]") for i, item in enumerate(obj)]
    raise TypeError(
        f"config field {path!r} has unsupported type {type(obj).__name__}; "
        "use str, int, float, bool, None, or lists/dicts of them"
    )


def config_key(kind: str, config: Mapping[str, Any]) -> str:
    """Hashes an experiment configuration into a cache key.

    The key is the sha256 of ``{"config": ..., "kind": kind, "schema":
    SCHEMA_VERSION}`` serialized as JSON with sorted keys, no whitespace and
    ``allow_nan=False``. Before hashing, values are normalized:

    * floats (including NumPy floats) become Python floats, which JSON writes
      with ``repr(float(x))``; hence ``1e-3`` and ``0.001`` hash equal, and
      ``-0.0`` is folded into ``0.0``;
    * ints stay ints and bools stay bools, so ``1``, ``1.0`` and ``True`` give
      three *different* keys: a width of ``512`` and a learning rate of
      ``512.0`` are not interchangeable settings;
    * tuples become lists, so ``(1, 2)`` and ``[1, 2]`` hash equal;
    * NumPy integer/bool scalars become their Python counterparts.

    Args:
        kind: What is stored, e.g. ``"train"`` or ``"spectrum"``. Results of
            different kinds never share a key.
        config: Mapping of str to JSON scalars, nested lists, tuples or dicts.

    Returns:
        A 64-character lowercase hex string.

    Raises:
        TypeError: If ``kind`` is not a non-empty str, or a field has an
            unsupported type (e.g. a NumPy array) or a non-str dict key.
        ValueError: If a field is NaN or infinite.
    """
    if not isinstance(kind, str) or not kind:
        raise TypeError(f"kind must be a non-empty str, got {kind!r}")
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a mapping, got {type(config).__name__}")
    document = {"config": _canonical_config(config, ""), "kind": kind, "schema": SCHEMA_VERSION}
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


# --------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------


def _looks_like_device_array(obj: Any) -> bool:
    # np.ndarray and NumPy scalars have `.device` too (array API), so callers
    # test for those first.
    return hasattr(obj, "__jax_array__") or hasattr(obj, "device")


def _normalize_scalar(obj: Any, path: str) -> Any:
    """Converts a non-array field to plain JSON types (NaN allowed)."""
    if obj is None:
        return None
    if isinstance(obj, str):
        return str(obj)
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        # A diverged loss is a legitimate NaN result, so NaN is allowed here.
        return float(obj)
    if isinstance(obj, Mapping):
        out = {}
        for name, item in obj.items():
            if not isinstance(name, str):
                raise TypeError(f"value field {path!r} has non-string key {name!r}")
            out[name] = _normalize_scalar(item, f"{path}.{name}")
        return out
    if isinstance(obj, (list, tuple)):
        return [_normalize_scalar(item, f"{path}[{i}]") for i, item in enumerate(obj)]
    if not isinstance(obj, np.generic) and _looks_like_device_array(obj):
        raise TypeError(
            f"value field {path!r} is a device array ({type(obj).__name__}); "
            "convert it with np.asarray() before storing"
        )
    raise TypeError(
        f"value field {path!r} has unsupported type {type(obj).__name__}; use a NumPy array, "
        "str, int, float, bool, None, or lists/dicts of those scalars"
    )


def _normalize_value(value: Any) -> dict[str, Any]:
    """Validates a result dict; returns it with NumPy scalars made Python."""
    if not isinstance(value, Mapping):
        raise TypeError(f"value must be a dict of fields, got {type(value).__name__}")
    out: dict[str, Any] = {}
    for name, item in value.items():
        if not isinstance(name, str):
            raise TypeError(f"value field names must be str, got {name!r}")
        if isinstance(item, np.ndarray):
            if type(item) is not np.ndarray and not isinstance(item, np.memmap):
                # Subclasses such as MaskedArray would lose their extra state.
                raise TypeError(f"value field {name!r} is a {type(item).__name__}; store a plain np.ndarray")
            if item.dtype.hasobject:
                raise TypeError(f"value field {name!r} has object dtype, which cannot be stored without pickle")
            out[name] = np.asarray(item)
        elif not isinstance(item, np.generic) and _looks_like_device_array(item):
            raise TypeError(
                f"value field {name!r} is a device array ({type(item).__name__}); "
                "results are stored as NumPy, convert it with np.asarray() first"
            )
        else:
            out[name] = _normalize_scalar(item, name)
    return out


def _encode(key: str, kind: str, normalized: Mapping[str, Any]) -> bytes:
    """Serializes a value returned by ``_normalize_value`` into a blob."""
    fields: list[dict[str, Any]] = []
    payload = io.BytesIO()
    for name, item in normalized.items():
        if isinstance(item, np.ndarray):
            start = payload.tell()
            np.save(payload, item, allow_pickle=False)
            fields.append({"name": name, "npy": [start, payload.tell() - start]})
        else:
            fields.append({"name": name, "json": item})
    header = json.dumps(
        {
            "schema": SCHEMA_VERSION,
            "key": key,
            "kind": kind,
            "payload_bytes": payload.tell(),
            "fields": fields,
        },
        separators=(",", ":"),
        allow_nan=True,
    ).encode("utf-8")
    with payload.getbuffer() as body:
        parts = [_LENGTH.pack(len(header)), header, body]
        digest = hashlib.sha256()
        for part in parts:
            digest.update(part)
        return b"".join([_MAGIC, digest.digest(), *parts])


def _decode(blob: Any, key: str) -> dict[str, Any]:
    """Verifies and deserializes a blob written by ``_encode`` for ``key``.

    Raises:
        _CorruptEntryError: If anything about the blob does not check out.
    """
    if not isinstance(blob, bytes):
        raise _CorruptEntryError(f"entry is {type(blob).__name__}, expected bytes")
    if len(blob) < _PREFIX_SIZE or not blob.startswith(_MAGIC):
        raise _CorruptEntryError("missing header")
    view = memoryview(blob)
    start = len(_MAGIC)
    if hashlib.sha256(view[start + _DIGEST_SIZE :]).digest() != blob[start : start + _DIGEST_SIZE]:
        raise _CorruptEntryError("checksum mismatch")
    try:
        (header_size,) = _LENGTH.unpack_from(blob, start + _DIGEST_SIZE)
        header_end = _PREFIX_SIZE + header_size
        header = json.loads(bytes(view[_PREFIX_SIZE:header_end]))
        if header["schema"] != SCHEMA_VERSION:
            raise _CorruptEntryError(f"schema version {header['schema']}, expected {SCHEMA_VERSION}")
        if header["key"] != key:
            raise _CorruptEntryError("entry belongs to another key")
        payload = view[header_end:]
        if len(payload) != header["payload_bytes"]:
            raise _CorruptEntryError("payload length mismatch")
        value: dict[str, Any] = {}
        for field in header["fields"]:
            if "npy" in field:
                offset, size = field["npy"]
                if offset < 0 or size < 0 or offset + size > len(payload):
                    raise _CorruptEntryError(f"field {field['name']!r} out of bounds")
                array = np.load(io.BytesIO(payload[offset : offset + size]), allow_pickle=False)
                if not isinstance(array, np.ndarray):
                    raise _CorruptEntryError(f"field {field['name']!r} is not an array")
                value[field["name"]] = array
            else:
                value[field["name"]] = field["json"]
        return value
    except _CorruptEntryError:
        raise
    except (ValueError, KeyError, TypeError, IndexError, struct.error, OSError, EOFError) as exc:
        # The checksum matched, so this is a blob from an incompatible writer.
        raise _CorruptEntryError(f"undecodable entry: {exc}") from exc


# --------------------------------------------------------------------------
# Store
# --------------------------------------------------------------------------


def _resolve_size_limit(size_limit_mb: float | None) -> tuple[float, str | None]:
    """Returns the size limit in MiB and a notice if the env var was ignored."""
    if size_limit_mb is not None:
        limit = float(size_limit_mb)
        if not math.isfinite(limit) or limit <= 0:
            raise ValueError(f"size_limit_mb must be a positive number, got {size_limit_mb!r}")
        return limit, None
    env = os.environ.get(_ENV_SIZE)
    if env:
        try:
            limit = float(env)
        except ValueError:
            limit = math.nan
        if math.isfinite(limit) and limit > 0:
            return limit, None
        return _DEFAULT_SIZE_MB, f"ignoring {_ENV_SIZE}={env!r} (not a positive number); using {_DEFAULT_SIZE_MB:g} MB"
    return _DEFAULT_SIZE_MB, None


class ResultStore:
    """Size-bounded, process-safe store of experiment results.

    Values are dicts mapping field names to NumPy arrays or JSON scalars
    (``int``, ``float``, ``str``, ``bool``, ``None`` and lists/dicts of them).
    Storage faults (unwritable directory, full disk, broken database) never
    raise: the store disables itself or skips saving, records a human-readable
    message in ``notice``, and results are simply recomputed.

    Several stores (in one or many processes) may share a directory. The size
    limit and eviction policy are persisted by diskcache, so the most recently
    opened store's limit applies to all of them.

    A process killed while writing a large entry leaves no entry, but may
    leave an unreferenced value file behind; diskcache never reads it, it only
    takes space until the directory is deleted.

    Attributes:
        directory: Root directory of the store. diskcache files live directly
            in it, per-key lock files in ``directory / "locks"``.
        enabled: False if the store was disabled on request or because the
            directory is unusable; every lookup then misses.
        notice: Latest message about a storage problem, or None.
        size_limit_mb: Size bound in MiB (2**20 bytes).
        stats: Counters ``hits``, ``misses`` (lookups that returned None,
            corrupt ones included), ``computes`` (calls of ``compute``),
            ``corrupt`` (entries discarded on verification failure) and
            ``errors`` (storage faults).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        size_limit_mb: float | None = None,
        enabled: bool = True,
    ) -> None:
        """Opens (creating if needed) the store.

        Args:
            directory: Store directory; defaults to ``default_cache_dir()``.
            size_limit_mb: Size bound in MiB; defaults to
                ``$NTK_CACHE_SIZE_MB`` or 1024.
            enabled: Pass False to bypass caching entirely.

        Raises:
            ValueError: If ``size_limit_mb`` is not a positive number. Faults
                of the directory never raise; they disable the store.
        """
        # A store disabled on request touches no disk, not even to probe the default dir.
        if directory is not None:
            self.directory = Path(directory).expanduser()
        elif enabled:
            self.directory = default_cache_dir()
        else:
            self.directory = Path(os.devnull)
        self.size_limit_mb, self.notice = _resolve_size_limit(size_limit_mb)
        self.stats: dict[str, int] = {"hits": 0, "misses": 0, "computes": 0, "corrupt": 0, "errors": 0}
        self.enabled = False
        self._size_limit_bytes = int(self.size_limit_mb * _MIB)
        self._stats_lock = threading.Lock()
        self._cache: diskcache.Cache | None = None
        if not enabled:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._lock_dir.mkdir(exist_ok=True)
            self._cache = diskcache.Cache(
                str(self.directory),
                disk=_BlobDisk,
                size_limit=self._size_limit_bytes,
                eviction_policy="least-recently-stored",
            )
        except _STORAGE_ERRORS as exc:
            self._bump("errors")
            self._set_notice(f"cache disabled: cannot use {self.directory} ({exc}); results are computed but not saved")
            return
        self.enabled = True

    # -- public API ---------------------------------------------------------

    def get(self, kind: str, config: Mapping[str, Any]) -> dict[str, Any] | None:
        """Looks up a stored result.

        Args:
            kind: Result kind, see ``config_key``.
            config: Experiment configuration, see ``config_key``.

        Returns:
            The stored value, or None if absent, corrupt (the entry is then
            deleted) or unreadable.
        """
        key = config_key(kind, config)
        if not self.enabled:
            self._bump("misses")
            return None
        return self._lookup(key)

    def put(self, kind: str, config: Mapping[str, Any], value: Mapping[str, Any]) -> bool:
        """Stores a result, replacing any previous one for the same config.

        The value is fully serialized before the cache is touched, and
        diskcache commits the entry in one transaction, so an interrupted put
        leaves either the old entry or the new one, never a partial one.

        Args:
            kind: Result kind, see ``config_key``.
            config: Experiment configuration, see ``config_key``.
            value: Dict of NumPy arrays and JSON scalars. NumPy scalars are
                stored as Python scalars, tuples as lists.

        Returns:
            True if the value was saved. False if the store is disabled, the
            value exceeds the size limit, or the disk failed (see ``notice``).

        Raises:
            TypeError: If the value holds device (e.g. JAX) arrays, object
                arrays or other unsupported types.
        """
        key = config_key(kind, config)
        normalized = _normalize_value(value)
        if not self.enabled:
            return False
        return self._save(key, kind, _encode(key, kind, normalized))

    def get_or_compute(
        self,
        kind: str,
        config: Mapping[str, Any],
        compute: Callable[[], Mapping[str, Any]],
    ) -> tuple[dict[str, Any], str]:
        """Returns the stored result, computing and storing it if absent.

        Concurrent callers for the same config, in any process sharing the
        directory, serialize on a per-key file lock, so the result is computed
        once and everyone gets the same arrays. The lock is released by the OS
        if its holder dies.

        Args:
            kind: Result kind, see ``config_key``.
            config: Experiment configuration, see ``config_key``.
            compute: Produces the value when it is not stored; see ``put``.

        Returns:
            ``(value, status)`` where status is ``"hit"`` (loaded from the
            store), ``"computed"`` (computed and saved) or ``"uncached"``
            (computed but not saved: store disabled, locking failed, value too
            large or disk fault). Computed values are returned normalized as
            they would be loaded, e.g. NumPy scalars as Python scalars.

        Raises:
            Exception: Whatever ``compute`` raises; nothing is stored then.
            TypeError: If ``compute`` returns an unsupported value.
        """
        key = config_key(kind, config)
        if not self.enabled:
            return self._compute(compute), "uncached"

        value = self._lookup(key)
        if value is not None:
            return value, "hit"

        lock = filelock.FileLock(str(self._lock_dir / f"{key}.lock"), timeout=_LOCK_TIMEOUT_S, **_LOCK_KWARGS)
        try:
            lock.acquire()
        except (OSError, RuntimeError) as exc:  # filelock.Timeout is an OSError
            self._bump("errors")
            self._set_notice(f"could not lock the {kind!r} entry ({exc}); result computed without caching")
            return self._compute(compute), "uncached"
        try:
            # Someone else may have stored it while we waited for the lock.
            value = self._lookup(key, count_miss=False)
            if value is not None:
                return value, "hit"
            value = self._compute(compute)
            saved = self._save(key, kind, _encode(key, kind, value))
            return value, ("computed" if saved else "uncached")
        finally:
            lock.release()

    def clear(self) -> int:
        """Removes all entries.

        Lock files are kept: deleting one while another process holds it
        would let a third process lock a fresh file and compute concurrently.

        Returns:
            The number of entries removed.
        """
        if not self.enabled:
            return 0
        try:
            return self._cache.clear(retry=True)
        except _STORAGE_ERRORS as exc:
            self._fault("could not clear the cache", exc)
            return 0

    def volume_bytes(self) -> int:
        """Returns the estimated size of the store on disk, in bytes."""
        if not self.enabled:
            return 0
        try:
            return int(self._cache.volume())
        except _STORAGE_ERRORS as exc:
            self._fault("could not measure the cache", exc)
            return 0

    def close(self) -> None:
        """Closes this thread's database connection (reopened on next use)."""
        if self._cache is not None:
            self._cache.close()

    def __len__(self) -> int:
        if not self.enabled:
            return 0
        try:
            return len(self._cache)
        except _STORAGE_ERRORS as exc:
            self._fault("could not count cache entries", exc)
            return 0

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "enabled" if self.enabled else "disabled"
        return f"ResultStore({str(self.directory)!r}, size_limit_mb={self.size_limit_mb:g}, {state})"

    # -- internals ----------------------------------------------------------

    @property
    def _lock_dir(self) -> Path:
        return self.directory / "locks"

    def _bump(self, counter: str) -> None:
        # Streamlit serves sessions from threads sharing one store.
        with self._stats_lock:
            self.stats[counter] += 1

    def _set_notice(self, message: str) -> None:
        self.notice = message
        logger.warning("%s", message)

    def _fault(self, what: str, exc: BaseException) -> None:
        self._bump("errors")
        self._set_notice(f"{what} ({type(exc).__name__}: {exc}); results are computed but not saved")

    def _compute(self, compute: Callable[[], Mapping[str, Any]]) -> dict[str, Any]:
        value = compute()
        self._bump("computes")
        # Normalized even when it is not saved, so callers see the same types
        # as on a hit and JAX arrays are rejected with the cache off too.
        return _normalize_value(value)

    def _lookup(self, key: str, count_miss: bool = True) -> dict[str, Any] | None:
        try:
            blob = self._cache.get(key, default=None, retry=True)
        except _ForeignEntryError as exc:
            blob, problem = None, exc
        except _STORAGE_ERRORS as exc:
            self._fault("could not read the cache", exc)
            if count_miss:
                self._bump("misses")
            return None
        else:
            if blob is None:
                if count_miss:
                    self._bump("misses")
                return None
            try:
                value = _decode(blob, key)
            except _CorruptEntryError as exc:
                problem = exc
            else:
                self._bump("hits")
                return value
        logger.warning("discarding corrupt cache entry %s: %s", key, problem)
        self._bump("corrupt")
        if count_miss:
            self._bump("misses")
        self._discard(key, blob)
        return None

    def _discard(self, key: str, seen: bytes | None) -> None:
        """Deletes the entry under ``key`` if it is still the corrupt one."""
        try:
            # In a transaction, so a valid entry that another process stored
            # since our read is not deleted by mistake.
            with self._cache.transact(retry=True):
                try:
                    current = self._cache.get(key, default=None, retry=True)
                except _ForeignEntryError:
                    current = None
                if current == seen:
                    self._cache.delete(key, retry=True)
        except _STORAGE_ERRORS as exc:
            self._fault("could not delete a corrupt cache entry", exc)

    def _save(self, key: str, kind: str, blob: bytes) -> bool:
        if len(blob) > self._size_limit_bytes:
            self._set_notice(
                f"{kind!r} result is {len(blob) / _MIB:.1f} MB, more than the cache limit of "
                f"{self.size_limit_mb:g} MB; it was computed but not saved"
            )
            return False
        try:
            if len(blob) < self._cache.disk.min_file_size:
                self._cache.set(key, blob, retry=True)
            else:
                # Streamed from a file object: diskcache writes plain bytes
                # line by line, which is slow for binary data.
                self._cache.set(key, io.BytesIO(blob), read=True, retry=True)
        except _STORAGE_ERRORS as exc:
            self._fault(f"could not save the {kind!r} result", exc)
            return False
        return True
