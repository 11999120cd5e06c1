"""Full-MNIST download faults, against real HTTP servers on 127.0.0.1 (never the internet).

The bundled t10k files are the official ones, so a local server can serve them as a
"good mirror"; a second server serves corrupted bytes (hash mismatch) and a third port is
closed (mirror down).
"""

from __future__ import annotations

import functools
import http.server
import shutil
import socket
import threading
from pathlib import Path

import pooch
import pytest

import ntk_core
from ntk_core._src import data as data_mod

T10K = {k: v for k, v in data_mod.MNIST_FILES.items() if k.startswith("t10k")}


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
    s.close()  # nothing listens there any more: connection refused
    return f"http://127.0.0.1:{port}/"


@pytest.fixture()
def mirrors(tmp_path):
    good_dir, bad_dir = tmp_path / "good", tmp_path / "bad"
    good_dir.mkdir()
    bad_dir.mkdir()
    for name in T10K:
        shutil.copy(data_mod.BUNDLED_DIR / name, good_dir / name)
        raw = bytearray((data_mod.BUNDLED_DIR / name).read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        (bad_dir / name).write_bytes(bytes(raw))
    good, good_url = _serve(good_dir)
    bad, bad_url = _serve(bad_dir)
    yield {"down": _closed_port_url(), "bad": bad_url, "good": good_url}
    for server in (good, bad):
        server.shutdown()
        server.server_close()


def test_falls_through_down_and_corrupt_mirrors_to_a_good_one(mirrors, tmp_path):
    order = (mirrors["down"], mirrors["bad"], mirrors["good"])
    paths, problems = ntk_core.fetch_full(tmp_path / "dl", order, files=T10K)
    assert set(paths) == set(T10K)
    for name, sha in T10K.items():
        assert pooch.file_hash(str(paths[name]), alg="sha256") == sha
    # one failure per file on each bad mirror, each named
    assert sum(mirrors["down"] in p for p in problems) == len(T10K)
    assert sum(mirrors["bad"] in p for p in problems) == len(T10K)
    assert not list((tmp_path / "dl").glob("*.tmp*")), "a rejected download was left behind"


def test_hash_mismatch_only_is_an_error_not_a_wrong_file(mirrors, tmp_path):
    with pytest.raises(ntk_core.DataUnavailable, match="any mirror"):
        ntk_core.fetch_full(tmp_path / "dl", (mirrors["bad"],), files=T10K)
    assert not any((tmp_path / "dl").glob("t10k*")), "a corrupted file was kept"


def test_no_network_falls_back_to_bundled_with_notice(mirrors, monkeypatch):
    # No mirror can serve the 60k training files: the loader must fall back, visibly.
    monkeypatch.setenv("NTK_MNIST_MIRRORS", f"{mirrors['down']},{mirrors['bad']}")
    data_mod._load_full_cached.cache_clear()
    ntk_core.forget_download_failures()
    split = ntk_core.load_split(100, 50, seed=0, dataset="full")
    assert split.source == "bundled"
    assert "bundled" in split.notice and "unavailable" in split.notice
    assert split.x_train.shape == (100, 784)


class _CountingHandler(http.server.SimpleHTTPRequestHandler):
    hits = 0

    def do_GET(self):  # noqa: N802 - http.server's name
        type(self).hits += 1
        self.send_error(503)

    def log_message(self, *a, **k):
        pass


@pytest.fixture()
def counting_mirror():
    handler = type("Handler", (_CountingHandler,), {"hits": 0})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield handler, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_a_failed_download_is_remembered_not_retried_per_split(counting_mirror, monkeypatch):
    handler, url = counting_mirror
    monkeypatch.setenv("NTK_MNIST_MIRRORS", url)
    data_mod._load_full_cached.cache_clear()
    ntk_core.forget_download_failures()
    first = ntk_core.load_split(100, 50, seed=0, dataset="full")
    tried = handler.hits
    assert tried >= 1 and first.source == "bundled"
    for seed in (1, 2, 3):  # a sweep asks for several splits: no new request reaches the mirror
        again = ntk_core.load_split(100, 50, seed=seed, dataset="full")
        assert again.source == "bundled" and "tried again in" in again.notice
    assert handler.hits == tried
    ntk_core.forget_download_failures()  # after the window, the mirrors are tried again
    ntk_core.load_split(100, 50, seed=0, dataset="full")
    assert handler.hits > tried


def test_fallback_run_is_never_stored_under_the_full_dataset_key(mirrors, monkeypatch, tmp_path):
    import runner
    from cache import ResultStore

    monkeypatch.setenv("NTK_MNIST_MIRRORS", mirrors["down"])
    data_mod._load_full_cached.cache_clear()
    ntk_core.forget_download_failures()
    lim = runner.Limits()
    full = runner.validate_config({"width": 4, "n_train": 60, "n_val": 20, "epochs": 1,
                                   "dataset": "full"}, lim)
    with ResultStore(tmp_path / "store") as store:
        r = runner.run(full, lim, store=store)
        assert r.data_source == "bundled" and r.config.dataset == "bundled"
        assert "unavailable" in r.notice
        # Nothing under the full-dataset key; the result lives under the bundled key.
        from runner._run import _key_config
        assert store.get("run", _key_config(full)) is None
        assert store.get("run", _key_config(r.config)) is not None
        # A request that only the full set can hold is refused, naming the dataset.
        big = runner.validate_config({"width": 4, "n_train": 20_000, "n_val": 20, "epochs": 1,
                                      "dataset": "full"}, lim)
        with pytest.raises(runner.ConfigError) as err:
            runner.run(big, lim, store=store)
        assert err.value.param == "dataset" and "n_train" in str(err.value)
