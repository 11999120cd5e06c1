"""Fashion-MNIST download, against real HTTP servers on 127.0.0.1 (never the internet).

No Fashion-MNIST file is committed: a tiny dataset in the same idx/gzip format is written at
test time, its sha256 computed, and served by a good mirror; a second server serves
corrupted bytes (hash mismatch) and a third port is closed (mirror down) — exactly the
MNIST download tests' set-up (tests/test_download.py).
"""

from __future__ import annotations

import functools
import gzip
import http.server
import re
import socket
import threading
from pathlib import Path

import numpy as np
import pooch
import pytest

import ntk_core
from ntk_core._src import data as data_mod

SIZES = {"train": 30, "t10k": 20}


def _idx_bytes(a: np.ndarray) -> bytes:
    header = (0x0800 | a.ndim).to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in a.shape)
    return gzip.compress(header + a.astype(np.uint8).tobytes(), mtime=0)


@pytest.fixture()
def tiny_fashion(tmp_path):
    """Writes the four files of a 50-image Fashion-MNIST look-alike; returns (dir, files, arrays)."""
    rng = np.random.default_rng(0)
    d = tmp_path / "good"
    d.mkdir()
    files, arrays = {}, {}
    for split, n in SIZES.items():
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        arrays[split] = (images, labels)
        for kind, a in (("images-idx3", images), ("labels-idx1", labels)):
            name = f"{split}-{kind}-ubyte.gz"
            (d / name).write_bytes(_idx_bytes(a))
            files[name] = pooch.file_hash(str(d / name), alg="sha256")
    return d, files, arrays


def _serve(directory: Path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def _closed_port_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/"


@pytest.fixture()
def mirrors(tiny_fashion, tmp_path):
    good_dir, files, _ = tiny_fashion
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    for name in files:
        raw = bytearray((good_dir / name).read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        (bad_dir / name).write_bytes(bytes(raw))
    good, good_url = _serve(good_dir)
    bad, bad_url = _serve(bad_dir)
    yield {"down": _closed_port_url(), "bad": bad_url, "good": good_url}
    for server in (good, bad):
        server.shutdown()
        server.server_close()


def test_pinned_hashes_are_sha256_of_the_four_idx_files():
    assert set(data_mod.FASHION_MNIST_FILES) == set(data_mod.MNIST_FILES)   # same file names
    for sha in data_mod.FASHION_MNIST_FILES.values():
        assert re.fullmatch(r"[0-9a-f]{64}", sha)
    assert not set(data_mod.FASHION_MNIST_FILES.values()) & set(data_mod.MNIST_FILES.values())


def test_falls_through_down_and_corrupt_mirrors_and_loads_the_exact_pixels(tiny_fashion, mirrors, tmp_path):
    _, files, arrays = tiny_fashion
    order = (mirrors["down"], mirrors["bad"], mirrors["good"])
    ntk_core.forget_download_failures()
    x, labels, note = data_mod.load_fashion_mnist(str(tmp_path / "dl"), order, files=files)
    assert x.shape == (50, 784) and x.dtype == np.float32 and labels.dtype == np.int32
    images = np.concatenate([arrays["train"][0], arrays["t10k"][0]]).reshape(50, 784)
    np.testing.assert_array_equal(x, images.astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(labels, np.concatenate([arrays["train"][1], arrays["t10k"][1]]))
    assert note.count(mirrors["down"]) == 4 and note.count(mirrors["bad"]) == 4
    for name, sha in files.items():                      # cached where asked, verified
        assert pooch.file_hash(str(tmp_path / "dl" / name), alg="sha256") == sha
    assert not list((tmp_path / "dl").glob("*.tmp*"))


def test_only_bad_mirrors_is_a_clear_error_and_is_remembered(tiny_fashion, mirrors, tmp_path):
    _, files, _ = tiny_fashion
    ntk_core.forget_download_failures()
    with pytest.raises(ntk_core.DataUnavailable, match="Fashion-MNIST.*any mirror"):
        data_mod.load_fashion_mnist(str(tmp_path / "dl"), (mirrors["down"], mirrors["bad"]), files=files)
    assert not any((tmp_path / "dl").glob("t10k*")), "a corrupted file was kept"
    with pytest.raises(ntk_core.DataUnavailable, match="tried again in"):
        data_mod.load_fashion_mnist(str(tmp_path / "dl"), (mirrors["down"], mirrors["bad"]), files=files)
    ntk_core.forget_download_failures()


def test_load_split_of_fashion_mnist_never_falls_back_to_mnist(mirrors, monkeypatch):
    # the real pinned hashes: no local mirror can serve them, so the request must fail
    # visibly instead of returning MNIST under the Fashion-MNIST name
    monkeypatch.setenv("NTK_FASHION_MNIST_MIRRORS", f"{mirrors['down']},{mirrors['bad']}")
    ntk_core.forget_download_failures()
    with pytest.raises(ntk_core.DataUnavailable, match="Fashion-MNIST"):
        ntk_core.load_split(20, 10, seed=0, dataset="fashion_mnist")
    ntk_core.forget_download_failures()
    with pytest.raises(ValueError, match="dataset='fmnist'; allowed: bundled, full, fashion_mnist"):
        ntk_core.load_pool("fmnist")
