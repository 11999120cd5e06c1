"""Tests for the ``cache`` package: a real diskcache on ``tmp_path``, no mocks.

Multi-process behaviour (shared computation, crashes, full disks) is tested
with real subprocesses running small scripts written to ``tmp_path``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import diskcache
import filelock
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from cache import SCHEMA_VERSION, ResultStore, config_key, default_cache_dir
from cache import _store

# Subprocesses import the package from here (pytest.ini's pythonpath is not inherited).
REPO_ROOT = Path(__file__).resolve().parents[1]
MIB = 2**20
CONFIG = {"lr": 1e-3, "width": 512, "model": {"depth": 3, "act": "relu"}}


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

# Shared verbatim with the subprocess scripts, so parent and children hash
# values the same way.
DIGEST_SRC = r'''
def digest(value):
    h = hashlib.sha256()
    for name in sorted(value):
        item = value[name]
        h.update(name.encode())
        if isinstance(item, np.ndarray):
            h.update(f"{item.dtype.str}{item.shape}".encode())
            h.update(np.ascontiguousarray(item).tobytes())
        else:
            h.update(json.dumps(item).encode())
    return h.hexdigest()
'''
exec(DIGEST_SRC)  # defines digest()


def _val_files(directory: Path) -> list[Path]:
    """Value files diskcache wrote (entries of 32 KiB and more)."""
    return sorted(directory.rglob("*.val"))


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def _write_script(tmp_path: Path, name: str, body: str) -> Path:
    script = tmp_path / name
    script.write_text("import hashlib, json, os, sys, time\nimport numpy as np\n" + DIGEST_SRC + body)
    return script


def _run_script(script: Path, *args: object, timeout: float = 60) -> str:
    proc = subprocess.run(
        [sys.executable, str(script), *map(str, args)],
        capture_output=True, text=True, env=_env(), timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _assert_same_value(got: dict, expected: dict) -> None:
    assert list(got) == list(expected)
    for name, want in expected.items():
        have = got[name]
        if isinstance(want, np.ndarray):
            assert type(have) is np.ndarray, name  # NumPy, never a JAX array
            assert have.dtype == want.dtype, name
            assert have.shape == want.shape, name
            np.testing.assert_array_equal(have, want, err_msg=name)
        elif isinstance(want, float) and math.isnan(want):
            assert type(have) is float and math.isnan(have), name
        else:
            assert type(have) is type(want), name
            assert have == want, name


def _sample_value(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "f32": rng.standard_normal((3, 4)).astype(np.float32),
        "f64": rng.standard_normal(5),
        "i64": np.arange(-3, 3, dtype=np.int64),
        "u8": np.array([0, 7, 255], dtype=np.uint8),
        "mask": np.array([True, False, True]),
        "zero_d": np.array(3.25),
        "empty": np.empty((0, 3), dtype=np.float32),
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "big_endian": np.arange(4, dtype=">i4"),
        "special": np.array([np.nan, np.inf, -np.inf, -0.0]),
        "labels": np.array(["relu", "erf"]),
        "large": rng.standard_normal(10_000),  # > 32 KiB: diskcache stores it as a file
        "steps": 7,
        "huge_int": 2**70,
        "loss": 0.1,
        "diverged": float("nan"),
        "name": "héllo",
        "converged": True,
        "note": None,
        "history": [1, 2.5, "x", None, [True]],
        "meta": {"a": 1, "b": {"c": [0.5]}},
    }


# --------------------------------------------------------------------------
# values
# --------------------------------------------------------------------------


def test_roundtrip_preserves_arrays_and_scalars(tmp_path):
    value = _sample_value()
    with ResultStore(tmp_path / "c") as store:
        assert store.get("train", CONFIG) is None
        assert store.put("train", CONFIG, value) is True
        got = store.get("train", CONFIG)
    _assert_same_value(got, value)
    assert got["fortran"].flags.f_contiguous
    assert got["big_endian"].dtype.str == ">i4"
    assert np.signbit(got["special"][-1])
    assert got["f64"].flags.writeable  # loaded arrays are independent copies

    # Another store instance (as in another process) reads the same value.
    with ResultStore(tmp_path / "c") as other:
        _assert_same_value(other.get("train", CONFIG), value)
        assert other.stats == {"hits": 1, "misses": 0, "computes": 0, "corrupt": 0, "errors": 0}


def test_numpy_scalars_and_tuples_are_normalized(tmp_path):
    value = {"loss": np.float32(0.5), "steps": np.int64(3), "ok": np.bool_(True), "shape": (2, 3)}
    expected = {"loss": 0.5, "steps": 3, "ok": True, "shape": [2, 3]}
    with ResultStore(tmp_path / "c") as store:
        computed, status = store.get_or_compute("train", CONFIG, lambda: value)
        assert status == "computed"
        _assert_same_value(computed, expected)
        hit, status = store.get_or_compute("train", CONFIG, lambda: value)
        assert status == "hit"
        _assert_same_value(hit, expected)


_DTYPES = hnp.scalar_dtypes() | hnp.byte_string_dtypes() | hnp.unicode_string_dtypes()
_SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory):
    # Module-scoped so hypothesis examples reuse one store (and its setup cost).
    with ResultStore(tmp_path_factory.mktemp("shared")) as store:
        yield store


@settings(max_examples=40, deadline=None, database=None)
@given(array=hnp.arrays(dtype=_DTYPES, shape=_SHAPES), scalar=st.floats(allow_nan=False) | st.integers())
def test_any_array_roundtrips_bit_exactly(shared_store, array, scalar):
    assert shared_store.put("prop", {"n": 1}, {"a": array, "s": scalar})
    got = shared_store.get("prop", {"n": 1})
    assert type(got["a"]) is np.ndarray
    assert got["a"].dtype == array.dtype and got["a"].shape == array.shape
    assert got["a"].tobytes() == array.tobytes()  # bit-exact, NaN payloads and -0.0 included
    assert type(got["s"]) is type(scalar) and got["s"] == scalar


class FakeJaxArray:
    """Quacks like a JAX array: converts to NumPy only on request."""

    def __init__(self, data):
        self._data = np.asarray(data)

    def __jax_array__(self):
        return self._data


class FakeDeviceArray:
    device = "gpu:0"


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(FakeJaxArray([1.0, 2.0]), id="jax-like"),
        pytest.param(FakeDeviceArray(), id="device-attribute"),
        pytest.param([1.0, FakeJaxArray([1.0])], id="nested-jax-like"),
        pytest.param(np.array([None, 1], dtype=object), id="object-array"),
        pytest.param(np.ma.masked_array([1, 2], mask=[0, 1]), id="masked-array"),
        pytest.param(1 + 2j, id="complex"),
        pytest.param(object(), id="object"),
    ],
)
def test_unsupported_values_are_rejected(tmp_path, bad):
    with ResultStore(tmp_path / "c") as store:
        with pytest.raises(TypeError, match="'w"):
            store.put("train", CONFIG, {"w": bad})
        with pytest.raises(TypeError, match="'w"):
            store.get_or_compute("train", CONFIG, lambda: {"w": bad})
        assert len(store) == 0
    # Rejected even with caching off, so the bug shows up in every setup.
    with pytest.raises(TypeError):
        ResultStore(tmp_path / "off", enabled=False).get_or_compute("train", CONFIG, lambda: {"w": bad})


def test_real_jax_arrays_are_rejected(tmp_path):
    jnp = pytest.importorskip("jax.numpy")
    with ResultStore(tmp_path / "c") as store:
        with pytest.raises(TypeError, match="np.asarray"):
            store.put("train", CONFIG, {"w": jnp.ones(3)})
        assert store.put("train", CONFIG, {"w": np.asarray(jnp.ones(3))})
        assert type(store.get("train", CONFIG)["w"]) is np.ndarray


def test_value_must_be_dict_with_str_names(tmp_path):
    with ResultStore(tmp_path / "c") as store:
        with pytest.raises(TypeError):
            store.put("train", CONFIG, [np.zeros(3)])
        with pytest.raises(TypeError):
            store.put("train", CONFIG, {1: np.zeros(3)})


# --------------------------------------------------------------------------
# keys
# --------------------------------------------------------------------------


def test_config_key_is_canonical():
    reordered = {"model": {"act": "relu", "depth": 3}, "width": 512, "lr": 0.001}
    assert config_key("train", CONFIG) == config_key("train", reordered)
    spellings = [1e-3, 0.001, float("1e-3"), 1 / 1000, np.float64(0.001)]
    assert len({config_key("train", {"lr": lr}) for lr in spellings}) == 1
    assert config_key("t", {"x": -0.0}) == config_key("t", {"x": 0.0})
    assert config_key("t", {"x": (1, 2)}) == config_key("t", {"x": [1, 2]})
    assert config_key("t", {"x": np.int64(3), "y": np.bool_(True)}) == config_key("t", {"x": 3, "y": True})

    key = config_key("train", CONFIG)
    assert len(key) == 64 and int(key, 16) >= 0


def test_config_key_pins_the_serialization():
    # If this fails, the serialization changed: every existing entry is now
    # unreachable. Intended? Then bump SCHEMA_VERSION and update the string.
    canonical = (
        '{"config":{"lr":0.001,"model":{"act":"relu","depth":3},"width":512},'
        f'"kind":"train","schema":{SCHEMA_VERSION}}}'
    )
    assert config_key("train", CONFIG) == hashlib.sha256(canonical.encode()).hexdigest()


def test_config_key_distinguishes_what_matters(monkeypatch):
    base = config_key("train", {"lr": 0.001, "width": 512})
    others = [
        config_key("train", {"lr": 0.002, "width": 512}),
        config_key("train", {"lr": 0.001, "width": 513}),
        config_key("train", {"lr": 0.001}),
        config_key("train", {"lr": 0.001, "width": 512.0}),  # int vs float: deliberately distinct
        config_key("train", {"lr": "0.001", "width": 512}),  # str vs float
        config_key("spectrum", {"lr": 0.001, "width": 512}),
    ]
    assert len({base, *others}) == len(others) + 1
    assert config_key("t", {"flag": True}) != config_key("t", {"flag": 1})

    monkeypatch.setattr(_store, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    assert config_key("train", {"lr": 0.001, "width": 512}) != base


@pytest.mark.parametrize(
    ("config", "error", "field"),
    [
        ({"lr": float("nan")}, ValueError, "'lr'"),
        ({"opt": {"lr": float("inf")}}, ValueError, "'opt.lr'"),
        ({"kernel": np.zeros(3)}, TypeError, "'kernel'"),
        ({"grid": [1, object()]}, TypeError, "'grid[1]'"),
        ({"m": {1: "a"}}, TypeError, "'m'"),
    ],
)
def test_config_key_rejects_unhashable_fields(config, error, field):
    with pytest.raises(error) as info:
        config_key("train", config)
    assert field in str(info.value)


def test_config_key_rejects_bad_kind():
    with pytest.raises(TypeError):
        config_key("", CONFIG)
    with pytest.raises(TypeError):
        config_key(None, CONFIG)


# --------------------------------------------------------------------------
# get_or_compute
# --------------------------------------------------------------------------


def test_get_or_compute_hit_skips_compute(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"weights": np.random.default_rng().standard_normal((8, 8)), "loss": 0.25}

    with ResultStore(tmp_path / "c") as store:
        first, status = store.get_or_compute("train", CONFIG, compute)
        assert status == "computed"
        second, status = store.get_or_compute("train", CONFIG, compute)
        assert status == "hit"
        assert len(calls) == 1
        _assert_same_value(second, first)
        assert store.stats["computes"] == 1 and store.stats["hits"] == 1
        key = config_key("train", CONFIG)
        assert (store.directory / "locks" / f"{key}.lock").exists()

    with ResultStore(tmp_path / "c") as other:
        third, status = other.get_or_compute("train", CONFIG, compute)
    assert status == "hit" and len(calls) == 1
    _assert_same_value(third, first)


def test_failing_compute_stores_nothing_and_releases_the_lock(tmp_path):
    def boom():
        raise RuntimeError("training diverged")

    with ResultStore(tmp_path / "c") as store:
        with pytest.raises(RuntimeError, match="diverged"):
            store.get_or_compute("train", CONFIG, boom)
        assert len(store) == 0
        assert store.get("train", CONFIG) is None
        lock = filelock.FileLock(str(store.directory / "locks" / f"{config_key('train', CONFIG)}.lock"))
        lock.acquire(timeout=1)  # raises filelock.Timeout if still held
        lock.release()
        value, status = store.get_or_compute("train", CONFIG, lambda: {"x": 1})
        assert (value, status) == ({"x": 1}, "computed")


def test_threads_share_one_computation(tmp_path):
    calls = []
    results = []

    def compute():
        calls.append(1)
        time.sleep(0.3)
        return {"w": np.random.default_rng().standard_normal(100)}

    store = ResultStore(tmp_path / "c")

    def worker():
        results.append(store.get_or_compute("train", CONFIG, compute))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(calls) == 1
    assert sorted(status for _, status in results) == ["computed", "hit", "hit", "hit"]
    assert len({digest(value) for value, _ in results}) == 1


# --------------------------------------------------------------------------
# corruption
# --------------------------------------------------------------------------


def _assert_discarded_and_recomputed(directory: Path) -> None:
    store = ResultStore(directory)
    assert store.get("train", CONFIG) is None
    assert store.stats["corrupt"] == 1
    assert len(store) == 0  # the bad entry was deleted, not just skipped
    calls = []
    value, status = store.get_or_compute("train", CONFIG, lambda: calls.append(1) or {"x": np.arange(3)})
    assert status == "computed" and len(calls) == 1
    assert store.get("train", CONFIG)["x"].tolist() == [0, 1, 2]
    assert store.stats["corrupt"] == 1


@pytest.mark.parametrize("damage", ["truncate", "flip-byte", "empty", "append"])
def test_damaged_value_file_is_detected(tmp_path, damage):
    directory = tmp_path / "c"
    with ResultStore(directory) as store:
        assert store.put("train", CONFIG, {"w": np.arange(20_000, dtype=np.float64), "loss": 0.5})
    (path,) = _val_files(directory)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flip-byte":
        garbled = bytearray(data)
        garbled[-100] ^= 0x01  # one bit inside the array payload
        path.write_bytes(bytes(garbled))
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        path.write_bytes(data + b"\0")
    _assert_discarded_and_recomputed(directory)
    assert path not in _val_files(directory)


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param(b"", id="empty-bytes"),
        pytest.param(b"not a result", id="short-bytes"),
        pytest.param(bytes(range(256)) * 400, id="large-bytes"),
        pytest.param(_store._MAGIC + bytes(100), id="magic-bad-checksum"),
        pytest.param("a string", id="str"),
        pytest.param({"w": [1, 2, 3]}, id="pickled-dict"),
        pytest.param(None, id="pickled-none"),
        pytest.param(42, id="int"),
    ],
)
def test_foreign_entry_under_our_key_is_discarded(tmp_path, garbage):
    directory = tmp_path / "c"
    with ResultStore(directory) as store:
        assert store.put("train", CONFIG, {"w": np.ones(3)})
    with diskcache.Cache(str(directory)) as raw:
        raw.set(config_key("train", CONFIG), garbage)
    _assert_discarded_and_recomputed(directory)


def test_entry_copied_to_another_key_is_rejected(tmp_path):
    directory = tmp_path / "c"
    other_config = {**CONFIG, "lr": 0.5}
    with ResultStore(directory) as store:
        assert store.put("train", CONFIG, {"w": np.ones(3)})
    with diskcache.Cache(str(directory)) as raw:
        raw.set(config_key("train", other_config), raw.get(config_key("train", CONFIG)))
    with ResultStore(directory) as store:
        assert store.get("train", other_config) is None
        assert store.stats["corrupt"] == 1
        assert store.get("train", CONFIG)["w"].tolist() == [1.0, 1.0, 1.0]


def test_entry_from_another_schema_version_is_rejected(tmp_path, monkeypatch):
    directory = tmp_path / "c"
    with ResultStore(directory) as store:
        assert store.put("train", CONFIG, {"w": np.ones(3)})
    monkeypatch.setattr(_store, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    new_key = config_key("train", CONFIG)
    with ResultStore(directory) as store:
        assert store.get("train", CONFIG) is None  # new version, new key: plain miss
        assert store.stats == {"hits": 0, "misses": 1, "computes": 0, "corrupt": 0, "errors": 0}
    # A blob with the right key but an old header version (e.g. a hash
    # collision across versions) is refused too.
    monkeypatch.setattr(_store, "SCHEMA_VERSION", SCHEMA_VERSION)
    old_blob = _store._encode(new_key, "train", {"w": np.ones(3)})
    monkeypatch.setattr(_store, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with diskcache.Cache(str(directory)) as raw:
        raw.set(new_key, old_blob)
    with ResultStore(directory) as store:
        assert store.get("train", CONFIG) is None
        assert store.stats["corrupt"] == 1


# --------------------------------------------------------------------------
# disabled store, size limits, environment
# --------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["under-file", "is-file"])
def test_unusable_directory_disables_store(tmp_path, layout):
    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file")
    directory = blocker / "cache" if layout == "under-file" else blocker
    store = ResultStore(directory)
    assert store.enabled is False
    assert store.notice.startswith("cache disabled:")
    assert str(directory) in store.notice and "not saved" in store.notice

    calls = []
    for _ in range(2):
        value, status = store.get_or_compute("train", CONFIG, lambda: calls.append(1) or {"x": np.arange(2)})
        assert status == "uncached"
        assert value["x"].tolist() == [0, 1]
    assert len(calls) == 2
    assert store.put("train", CONFIG, {"x": 1}) is False
    assert store.get("train", CONFIG) is None
    assert (len(store), store.volume_bytes(), store.clear()) == (0, 0, 0)
    store.close()


def test_garbage_database_disables_store(tmp_path):
    directory = tmp_path / "c"
    directory.mkdir()
    (directory / "cache.db").write_bytes(b"this is not an sqlite database" * 100)
    store = ResultStore(directory)
    assert store.enabled is False
    assert "cache disabled" in store.notice
    assert store.get_or_compute("train", CONFIG, lambda: {"x": 1}) == ({"x": 1}, "uncached")


def test_disabled_on_request(tmp_path):
    store = ResultStore(tmp_path / "c", enabled=False)
    assert store.enabled is False and store.notice is None
    assert not (tmp_path / "c").exists()
    assert store.get_or_compute("train", CONFIG, lambda: {"x": 1}) == ({"x": 1}, "uncached")


def test_value_larger_than_limit_is_not_stored(tmp_path):
    with ResultStore(tmp_path / "c", size_limit_mb=1) as store:
        big = {"x": np.zeros(200_000)}  # 1.6 MB
        assert store.put("train", CONFIG, big) is False
        assert "limit" in store.notice
        assert len(store) == 0 and not _val_files(store.directory)
        value, status = store.get_or_compute("train", CONFIG, lambda: big)
        assert status == "uncached" and value["x"].shape == (200_000,)
        assert store.put("train", {"small": True}, {"x": np.zeros(10)}) is True


def test_volume_stays_bounded(tmp_path):
    with ResultStore(tmp_path / "c", size_limit_mb=1) as store:
        for i in range(40):  # 40 x 100 KB = 4x the limit
            assert store.put("train", {"i": i}, {"x": np.full(12_500, i, dtype=np.float64)})
            assert store.volume_bytes() <= 1 * MIB
        assert 0 < len(store) < 40
        assert len(_val_files(store.directory)) == len(store)  # evicted files are removed
        assert store.get("train", {"i": 39})["x"][0] == 39  # newest kept
        assert store.get("train", {"i": 0}) is None  # oldest evicted


def test_environment_sets_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("NTK_CACHE_DIR", str(tmp_path / "env-cache"))
    monkeypatch.setenv("NTK_CACHE_SIZE_MB", "2.5")
    assert default_cache_dir() == tmp_path / "env-cache"
    with ResultStore() as store:
        assert store.directory == tmp_path / "env-cache" and store.enabled
        assert store.size_limit_mb == 2.5

    monkeypatch.setenv("NTK_CACHE_SIZE_MB", "lots")
    store = ResultStore(tmp_path / "c")
    assert store.size_limit_mb == 1024 and "NTK_CACHE_SIZE_MB" in store.notice
    assert ResultStore(tmp_path / "c", size_limit_mb=3).size_limit_mb == 3
    with pytest.raises(ValueError):
        ResultStore(tmp_path / "c", size_limit_mb=0)

    monkeypatch.delenv("NTK_CACHE_DIR")
    import pooch

    assert default_cache_dir() == Path(pooch.os_cache("ntk-explorer")) / "results"


def test_housekeeping(tmp_path):
    with ResultStore(str(tmp_path / "c")) as store:
        assert store.directory == tmp_path / "c"
        for i in range(3):
            assert store.put("train", {"i": i}, {"x": np.arange(i + 1)})
        assert store.put("train", {"i": 0}, {"x": np.arange(5)})  # replaces
        assert len(store) == 3 and store.volume_bytes() > 0
        assert store.get("train", {"i": 0})["x"].tolist() == [0, 1, 2, 3, 4]
        assert store.clear() == 3
        assert len(store) == 0 and store.get("train", {"i": 1}) is None
    assert "ResultStore(" in repr(store)


def test_import_does_not_pull_in_heavy_modules():
    code = (
        "import sys, cache\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'jax', 'jaxlib', 'streamlit', 'ntk_core'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------
# processes
# --------------------------------------------------------------------------

WORKER = r'''
from pathlib import Path
from cache import ResultStore

directory, key_id, counter, barrier, n_workers = sys.argv[1:6]
key_id, barrier, n_workers = int(key_id), Path(barrier), int(n_workers)

# Rendezvous, so every worker asks for its key at the same moment.
(barrier / f"ready-{os.getpid()}").touch()
deadline = time.monotonic() + 60
while len(list(barrier.glob("ready-*"))) < n_workers:
    if time.monotonic() > deadline:
        sys.exit("barrier timed out")
    time.sleep(0.005)

def compute():
    time.sleep(0.5)
    with open(counter, "a") as fh:  # O_APPEND: whole lines, even concurrently
        fh.write(f"{key_id} {os.getpid()}\n")
    rng = np.random.default_rng()  # unseeded: a second computation would differ
    return {
        "weights": rng.standard_normal((128, 128)).astype(np.float32),
        "spectrum": rng.random(20_000),
        "key_id": key_id,
        "loss": float(rng.random()),
    }

store = ResultStore(directory)
value, status = store.get_or_compute("train", {"key_id": key_id}, compute)
print(json.dumps({"status": status, "digest": digest(value), "key_id": value["key_id"],
                  "stats": store.stats, "notice": store.notice}))
'''


def _run_workers(tmp_path: Path, directory: Path, key_ids: list[int]) -> tuple[list[dict], list[str]]:
    script = _write_script(tmp_path, "worker.py", WORKER)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    counter = tmp_path / "counter.txt"
    counter.touch()
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(directory), str(k), str(counter), str(barrier), str(len(key_ids))],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
        )
        for k in key_ids
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results, counter.read_text().splitlines()


def test_processes_compute_a_shared_key_once(tmp_path):
    directory = tmp_path / "c"
    results, computed = _run_workers(tmp_path, directory, [7] * 8)
    assert len(computed) == 1, computed
    assert sorted(r["status"] for r in results) == ["computed"] + ["hit"] * 7
    assert len({r["digest"] for r in results}) == 1  # everyone got the one computed value
    assert all(r["stats"]["corrupt"] == 0 and r["stats"]["errors"] == 0 for r in results)
    with ResultStore(directory) as store:
        assert digest(store.get("train", {"key_id": 7})) == results[0]["digest"]
        assert len(store) == 1


def test_processes_with_distinct_keys_do_not_interfere(tmp_path):
    directory = tmp_path / "c"
    results, computed = _run_workers(tmp_path, directory, [0, 1, 2, 3])
    assert sorted(int(line.split()[0]) for line in computed) == [0, 1, 2, 3]
    assert [r["status"] for r in results] == ["computed"] * 4
    assert len({r["digest"] for r in results}) == 4
    with ResultStore(directory) as store:
        assert len(store) == 4
        for key_id, result in enumerate(results):
            value = store.get("train", {"key_id": key_id})
            assert value["key_id"] == key_id
            assert digest(value) == result["digest"]
        assert store.stats["corrupt"] == 0


KILLED_WRITER = r'''
from cache import ResultStore

store = ResultStore(sys.argv[1], size_limit_mb=4096)
print("start", flush=True)
value, status = store.get_or_compute("train", {"n": 1}, lambda: {"big": np.ones(25_000_000)})  # 200 MB
print("done", status, flush=True)
time.sleep(600)
'''


def _kill_while_writing(script: Path, directory: Path) -> tuple[bool, int]:
    """Runs the writer and SIGKILLs it once its value file has data.

    Returns:
        Whether the kill landed before the write completed, and the size of
        the value file at that moment.
    """
    proc = subprocess.Popen(
        [sys.executable, str(script), str(directory)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
    )
    try:
        deadline = time.monotonic() + 60
        size = 0
        while time.monotonic() < deadline and proc.poll() is None:
            sizes = [path.stat().st_size for path in _val_files(directory)] if directory.exists() else []
            if sizes and sizes[0] > 0:
                size = sizes[0]
                break
            time.sleep(0.001)
        assert proc.poll() is None, proc.stderr.read()
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return "done" not in out, size


def test_writer_killed_mid_write_leaves_no_entry(tmp_path):
    script = _write_script(tmp_path, "writer.py", KILLED_WRITER)
    # The write window is a few hundred ms and we poll every ms, so one
    # attempt virtually always lands; retry rather than flake if it doesn't.
    for attempt in range(3):
        directory = tmp_path / f"c{attempt}"
        interrupted, size_at_kill = _kill_while_writing(script, directory)
        if interrupted:
            break
    else:
        pytest.fail("the writer finished before it could be killed, three times")
    assert 0 < size_at_kill

    store = ResultStore(directory)
    assert store.get("train", {"n": 1}) is None
    assert len(store) == 0
    assert store.stats["corrupt"] == 0  # nothing half-written was ever visible
    # The dead writer held the key's lock; the OS released it with the process, so a
    # non-blocking acquire succeeds at once (no wall-clock needed to see it).
    import filelock
    locks = list(Path(directory).rglob("*.lock"))
    assert locks, "the writer's per-key lock file should exist"
    for path in locks:
        with filelock.FileLock(str(path), timeout=0, **_store._LOCK_KWARGS):
            pass
    value, status = store.get_or_compute("train", {"n": 1}, lambda: {"big": np.ones(1000)})
    assert status == "computed"
    assert store.get("train", {"n": 1})["big"].shape == (1000,)
    assert len(store) == 1


DISK_FULL_WRITER = r'''
import resource, signal
from cache import ResultStore

store = ResultStore(sys.argv[1])
assert store.put("small", {"n": 0}, {"x": np.zeros(10)})
# Files may not grow past 1 MiB from here on: writes fail with EFBIG, like a full disk.
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (2**20, 2**20))
ok = store.put("big", {"n": 1}, {"x": np.zeros(1_000_000)})
value, status = store.get_or_compute("big", {"n": 1}, lambda: {"x": np.zeros(1_000_000)})
print(json.dumps({"ok": ok, "status": status, "notice": store.notice, "errors": store.stats["errors"],
                  "zeros": bool((value["x"] == 0).all())}))
'''


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses RLIMIT_FSIZE")
def test_full_disk_does_not_raise(tmp_path):
    directory = tmp_path / "c"
    script = _write_script(tmp_path, "full.py", DISK_FULL_WRITER)
    result = json.loads(_run_script(script, directory).strip().splitlines()[-1])
    assert result["ok"] is False
    assert result["status"] == "uncached" and result["zeros"]
    assert "could not save" in result["notice"] and result["errors"] == 2
    assert not _val_files(directory)  # partial files are removed
    with ResultStore(directory) as store:
        assert store.get("big", {"n": 1}) is None
        assert store.get("small", {"n": 0})["x"].shape == (10,)
