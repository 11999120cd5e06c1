"""Bundled MNIST loader and the deterministic, stratified train/validation split
(offline only: downloading the full set is tested elsewhere)."""

from __future__ import annotations

import gzip
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

import ntk_core as nc
import runner

DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "mnist"
FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


@pytest.fixture(scope="module")
def pool():
    return nc.load_bundled()


def test_bundled_files_match_md5sums():
    lines = (DATA_DIR / "MD5SUMS").read_text().split("\n")
    expected = dict(reversed(line.split()) for line in lines if line.strip())
    assert set(expected) == set(FILES), f"MD5SUMS lists {sorted(expected)}"
    for name, md5 in expected.items():
        got = hashlib.md5((DATA_DIR / name).read_bytes()).hexdigest()
        assert got == md5, f"{name}: md5 {got} != MD5SUMS {md5}"


def test_bundled_arrays(pool):
    x, labels = pool
    assert x.shape == (10000, 784) and x.dtype == np.float32, (x.shape, x.dtype)
    assert labels.shape == (10000,) and labels.dtype == np.int32, (labels.shape, labels.dtype)
    assert x.min() == 0.0 and x.max() == 1.0, (x.min(), x.max())
    assert set(np.unique(labels)) == set(range(10))
    # Pixels are k/255 exactly as float32.
    np.testing.assert_array_equal(np.round(x * 255).astype(np.float32) / np.float32(255), x)


def test_bundled_arrays_match_raw_idx(pool):
    """Independent parse of the idx files (header, big-endian dims, then bytes)."""
    x, labels = pool
    raw = gzip.decompress((DATA_DIR / FILES[0]).read_bytes())
    assert int.from_bytes(raw[:4], "big") == 0x803
    n, rows, cols = (int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(3))
    assert (n, rows, cols) == (10000, 28, 28)
    img = np.frombuffer(raw, np.uint8, offset=16).reshape(n, 784)
    np.testing.assert_array_equal(x, img.astype(np.float32) / np.float32(255))
    raw_l = gzip.decompress((DATA_DIR / FILES[1]).read_bytes())
    assert int.from_bytes(raw_l[:4], "big") == 0x801
    np.testing.assert_array_equal(labels, np.frombuffer(raw_l, np.uint8, offset=8).astype(np.int32))


def test_load_pool_bundled(pool):
    x, labels, source, notice = nc.load_pool("bundled")
    assert source == "bundled" and notice == ""
    np.testing.assert_array_equal(x, pool[0])
    np.testing.assert_array_equal(labels, pool[1])
    with pytest.raises(ValueError, match="dataset='cifar'"):
        nc.load_pool("cifar")


# ----------------------------------------------------------------------------------------
# Corruption

@pytest.mark.parametrize("name", FILES)
def test_corrupted_copy_fails_sha256(tmp_path, name):
    for f in FILES:
        shutil.copy(DATA_DIR / f, tmp_path / f)
    # An intact copy loads, and identically: the directory argument is honoured.
    x, labels = nc.load_bundled(str(tmp_path))
    assert x.shape == (10000, 784) and labels.shape == (10000,)
    data = bytearray((tmp_path / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (tmp_path / name).write_bytes(bytes(data))
    corrupted = tmp_path.parent / (tmp_path.name + "_corrupted")
    shutil.copytree(tmp_path, corrupted)   # a fresh path: load_bundled caches per directory
    with pytest.raises(ValueError, match="sha256") as err:
        nc.load_bundled(str(corrupted))
    assert name in str(err.value), f"message does not name the bad file: {err.value}"


# ----------------------------------------------------------------------------------------
# Split

SPLITS = [(64, 32, 0), (2, 10, 1), (7, 13, 2), (1000, 500, 3), (9000, 1000, 4), (3, 9997, 5)]


@pytest.mark.parametrize("n_train,n_val,seed", SPLITS)
def test_stratified_split_properties(pool, n_train, n_val, seed):
    _, labels = pool
    tr, va = nc.stratified_split(labels, n_train, n_val, seed)
    assert tr.shape == (n_train,) and va.shape == (n_val,)
    assert np.issubdtype(tr.dtype, np.integer) and np.issubdtype(va.dtype, np.integer)
    assert np.unique(tr).size == n_train and np.unique(va).size == n_val, "duplicate indices"
    assert np.intersect1d(tr, va).size == 0, "train and validation overlap"
    assert tr.min() >= 0 and max(tr.max(), va.max()) < labels.size
    share = np.bincount(labels, minlength=10) / labels.size
    for idx, m, what in ((tr, n_train, "train"), (va, n_val, "val")):
        dev = np.abs(np.bincount(labels[idx], minlength=10) - m * share)
        assert dev.max() <= 1.0, f"{what} class counts deviate from the pool proportions by {dev.max():.2f}"


@pytest.mark.parametrize("n_train,n_val,seed", SPLITS)
def test_stratified_split_largest_remainder(pool, n_train, n_val, seed):
    """Documented quota rule: each class gets ⌊m·p_c⌋ or ⌈m·p_c⌉ images, and the classes
    rounded up are those with the largest fractional parts (largest-remainder method)."""
    _, labels = pool
    tr, va = nc.stratified_split(labels, n_train, n_val, seed)
    counts = np.bincount(labels, minlength=10)
    for idx, m, what in ((tr, n_train, "train"), (va, n_val, "val")):
        exact = m * counts / labels.size
        got = np.bincount(labels[idx], minlength=10)
        assert np.all((got == np.floor(exact)) | (got == np.ceil(exact))), (what, got, exact)
        frac = exact - np.floor(exact)
        up = (got > np.floor(exact))
        if up.any() and (~up).any():
            assert frac[up].min() >= frac[~up].max(), (
                f"{what}: rounded up classes with remainders {frac[up]} over {frac[~up]}")


def test_stratified_split_determinism(pool):
    _, labels = pool
    a = nc.stratified_split(labels, 100, 50, seed=7)
    b = nc.stratified_split(labels, 100, 50, seed=7)
    c = nc.stratified_split(labels, 100, 50, seed=8)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0]), "different seeds, same train indices"
    assert not np.array_equal(a[1], c[1]), "different seeds, same validation indices"


@pytest.mark.parametrize("seed", [0, 3])
def test_load_split(pool, seed):
    x, labels = pool
    s = nc.load_split(64, 32, seed=seed)
    tr, va = nc.stratified_split(labels, 64, 32, seed)
    assert s.source == "bundled" and s.notice == ""
    assert s.x_train.shape == (64, 784) and s.x_train.dtype == np.float32
    assert s.x_val.shape == (32, 784) and s.x_val.dtype == np.float32
    assert s.y_train.shape == (64, 10) and s.y_train.dtype == np.float32
    assert s.y_val.shape == (32, 10) and s.y_val.dtype == np.float32
    assert s.labels_train.dtype == np.int32 and s.labels_val.dtype == np.int32
    np.testing.assert_array_equal(s.x_train, x[tr])
    np.testing.assert_array_equal(s.x_val, x[va])
    np.testing.assert_array_equal(s.labels_train, labels[tr])
    np.testing.assert_array_equal(s.labels_val, labels[va])
    for y, lab, what in ((s.y_train, s.labels_train, "train"), (s.y_val, s.labels_val, "val")):
        np.testing.assert_array_equal(y.sum(1), 1.0, err_msg=f"{what}: one-hot rows")
        np.testing.assert_array_equal(np.argmax(y, 1), lab, err_msg=f"{what}: one-hot class")
        assert set(np.unique(y)) <= {0.0, 1.0}


def test_load_split_determinism(mnist_small):
    again = nc.load_split(64, 32, seed=0)
    other = nc.load_split(64, 32, seed=1)
    for f in ("x_train", "y_train", "x_val", "y_val", "labels_train", "labels_val"):
        np.testing.assert_array_equal(getattr(again, f), getattr(mnist_small, f), err_msg=f)
    assert not np.array_equal(other.x_train, mnist_small.x_train), "seed does not change the split"


@pytest.mark.parametrize("n_train,n_val", [(10000, 32), (9969, 32), (20000, 500)])
def test_load_split_too_large(n_train, n_val):
    # The numerics refuse plainly; the user-facing range and suggestion come from the
    # runner's validation, the one place that knows the pool sizes.
    with pytest.raises(ValueError, match="exceeds the pool of 10000"):
        nc.load_split(n_train, n_val, seed=0)
    with pytest.raises(runner.ConfigError) as err:
        runner.validate_config({"n_train": n_train, "n_val": n_val}, runner.Limits())
    e = err.value
    assert e.param == "n_train", e.param
    assert f"[2, {10000 - n_val}]" in str(e), str(e)
    assert e.suggestion == 10000 - n_val


def test_stratified_split_too_large(pool):
    _, labels = pool
    with pytest.raises(ValueError, match="n_train=9990 \\+ n_val=20 exceeds the pool of 10000"):
        nc.stratified_split(labels, 9990, 20, seed=0)


def test_load_split_largest_allowed():
    s = nc.load_split(9968, 32, seed=0)
    assert s.x_train.shape == (9968, 784) and s.x_val.shape == (32, 784)
