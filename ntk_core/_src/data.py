"""MNIST loading: the bundled 10k test set offline, the official 70k via pooch online;
Fashion-MNIST (70k, same idx format) via pooch online.

MNIST is by Yann LeCun, Corinna Cortes and Christopher J.C. Burges (CC BY-SA 3.0).
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import logging
import os
import threading
import time
from pathlib import Path

import numpy as np
import pooch

_log = logging.getLogger(__name__)

BUNDLED_DIR = Path(__file__).resolve().parents[2] / "data" / "mnist"

# sha256 of the official files (the t10k pair also matches the bundled copies).
MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}

# Tried in order; ``NTK_MNIST_MIRRORS`` (comma-separated base URLs) replaces the list.
DEFAULT_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

# Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, Zalando Research, MIT licence): the same idx
# format and file names, 60k train + 10k test, 10 clothing classes. No copy is bundled.
# sha256 pinned from two independent public download tables found with the code search
# (a dataset loader's ``_SHA256_*`` constants and an mnist/fashion-mnist/emnist downloader's
# hash table, whose MNIST entries equal MNIST_FILES above); zalandoresearch/fashion-mnist's
# README publishes md5 only.
FASHION_MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc",
    "train-labels-idx1-ubyte.gz": "b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc",
    "t10k-images-idx3-ubyte.gz": "78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229",
    "t10k-labels-idx1-ubyte.gz": "42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf",
}

# Tried in order; ``NTK_FASHION_MNIST_MIRRORS`` (comma-separated base URLs) replaces the list.
FASHION_DEFAULT_MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
)

DATASETS = ("bundled", "full", "fashion_mnist")

NUM_CLASSES = 10
INPUT_DIM = 784


class DataUnavailable(RuntimeError):
    """A downloaded dataset (full MNIST, Fashion-MNIST) could not be fetched from any mirror."""


@dataclasses.dataclass(frozen=True)
class Split:
    """A deterministic, class-stratified train/validation split.

    Attributes:
      x_train: (n_train, 784) float32 pixels in [0, 1].
      y_train: (n_train, 10) float32 one-hot targets.
      x_val: (n_val, 784) float32.
      y_val: (n_val, 10) float32 one-hot.
      labels_train: (n_train,) int32 class labels.
      labels_val: (n_val,) int32.
      source: "bundled", "full" or "fashion_mnist" — what was actually used.
      notice: a human-readable note (e.g. fallback to the bundled set) or "".
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    labels_train: np.ndarray
    labels_val: np.ndarray
    source: str
    notice: str = ""


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic = int.from_bytes(raw[0:4], "big")
    ndim = magic & 0xFF
    if magic >> 8 != 0x08 or ndim not in (1, 3):
        raise ValueError(f"{path.name}: not an unsigned-byte idx file (magic {magic:#x})")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    count = int(np.prod(dims))
    if len(raw) - offset != count:
        raise ValueError(f"{path.name}: expected {count} bytes of data, found {len(raw) - offset}")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims)


def _to_arrays(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = images.reshape(images.shape[0], INPUT_DIM).astype(np.float32) / np.float32(255.0)
    return x, labels.astype(np.int32)


@functools.lru_cache(maxsize=2)
def load_bundled(data_dir: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Loads the bundled MNIST test set, checking it against the known sha256.

    Returns:
      (x, labels): x (10000, 784) float32 in [0, 1]; labels (10000,) int32.
    """
    d = Path(data_dir) if data_dir else BUNDLED_DIR
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        if pooch.file_hash(str(d / name), alg="sha256") != MNIST_FILES[name]:
            raise ValueError(f"bundled MNIST file {d / name} fails its sha256 check")
    return _to_arrays(_read_idx(d / "t10k-images-idx3-ubyte.gz"),
                      _read_idx(d / "t10k-labels-idx1-ubyte.gz"))


def mirrors_from_env() -> tuple[str, ...]:
    env = os.environ.get("NTK_MNIST_MIRRORS", "").strip()
    return tuple(m.strip() for m in env.split(",") if m.strip()) or DEFAULT_MIRRORS


def fetch_full(cache_dir: str | Path | None = None, mirrors: tuple[str, ...] | None = None,
               files: dict[str, str] | None = None) -> tuple[dict[str, Path], list[str]]:
    """Downloads the four official MNIST files, verifying each sha256.

    Each file is tried on every mirror in order; a mirror that is down or serves a
    file with the wrong hash is skipped (pooch deletes the bad download).

    Args:
      files: file name → sha256 (default: the four official files).

    Returns:
      (paths, problems): file name → local path, and one line per failed attempt.

    Raises:
      DataUnavailable: when some file could not be fetched from any mirror.
    """
    mirrors = mirrors_from_env() if mirrors is None else mirrors
    target = Path(cache_dir) if cache_dir else Path(pooch.os_cache("ntk-explorer")) / "mnist"
    return _fetch(MNIST_FILES if files is None else files, mirrors, target)


def _fetch(files: dict[str, str], mirrors: tuple[str, ...], target: Path
           ) -> tuple[dict[str, Path], list[str]]:
    """Each file from the first mirror that serves it with the right sha256 (pooch, cached)."""
    paths: dict[str, Path] = {}
    problems: list[str] = []
    for name, sha in files.items():
        for base in mirrors:
            url = base.rstrip("/") + "/" + name
            try:
                p = pooch.retrieve(url, known_hash=f"sha256:{sha}", fname=name,
                                   path=target, progressbar=False)
                paths[name] = Path(p)
                break
            except Exception as exc:  # network errors, HTTP errors, hash mismatch
                problems.append(f"{url}: {type(exc).__name__}: {str(exc)[:200]}")
        else:
            raise DataUnavailable(f"could not fetch {name} from any mirror: " + "; ".join(problems))
    return paths, problems


def fashion_mirrors_from_env() -> tuple[str, ...]:
    env = os.environ.get("NTK_FASHION_MNIST_MIRRORS", "").strip()
    return tuple(m.strip() for m in env.split(",") if m.strip()) or FASHION_DEFAULT_MIRRORS


def fetch_fashion_mnist(cache_dir: str | Path | None = None, mirrors: tuple[str, ...] | None = None,
                        files: dict[str, str] | None = None) -> tuple[dict[str, Path], list[str]]:
    """Downloads the four Fashion-MNIST files, verifying each sha256 (as :func:`fetch_full`).

    Args:
      cache_dir: where the files are kept (default: the per-user cache, ``fashion_mnist/``,
        apart from MNIST's files of the same names).
      mirrors: base URLs tried in order (default ``NTK_FASHION_MNIST_MIRRORS`` or
        :data:`FASHION_DEFAULT_MIRRORS`).
      files: file name → sha256 (default :data:`FASHION_MNIST_FILES`).

    Returns:
      (paths, problems): file name → local path, and one line per failed attempt.

    Raises:
      DataUnavailable: when some file could not be fetched from any mirror.
    """
    mirrors = fashion_mirrors_from_env() if mirrors is None else tuple(mirrors)
    target = Path(cache_dir) if cache_dir else Path(pooch.os_cache("ntk-explorer")) / "fashion_mnist"
    try:
        return _fetch(FASHION_MNIST_FILES if files is None else files, mirrors, target)
    except DataUnavailable as exc:
        raise DataUnavailable(f"Fashion-MNIST: {exc}") from None


def _train_then_test(paths: dict, problems: list[str], name: str) -> tuple[np.ndarray, np.ndarray, str]:
    """The fetched idx files as one pool, train then test: (x, labels, notice)."""
    xs, ys = zip(*(_to_arrays(_read_idx(paths[f"{split}-images-idx3-ubyte.gz"]),
                              _read_idx(paths[f"{split}-labels-idx1-ubyte.gz"]))
                   for split in ("train", "t10k")))
    note = f"{name} loaded after skipping failed mirrors: " + "; ".join(problems) if problems else ""
    return np.concatenate(xs), np.concatenate(ys), note


@functools.lru_cache(maxsize=2)
def _load_fashion_cached(cache_dir: str | None, mirrors: tuple[str, ...], files: tuple | None
                         ) -> tuple[np.ndarray, np.ndarray, str]:
    paths, problems = fetch_fashion_mnist(cache_dir, mirrors, dict(files) if files else None)
    return _train_then_test(paths, problems, "Fashion-MNIST")


def load_fashion_mnist(cache_dir: str | None = None, mirrors: tuple[str, ...] | None = None,
                       files: dict[str, str] | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """Fashion-MNIST, train then test images (70k with the official files), cached in-process.

    A failure is remembered for :data:`FAILURE_TTL_S` seconds (a request in that window
    raises at once instead of waiting on every dead mirror again).

    Returns:
      (x, labels, notice): x (N, 784) float32 in [0, 1], labels (N,) int32, and a notice
      ("" when every file came from the first mirror tried).

    Raises:
      DataUnavailable: no mirror served some file with the pinned sha256. There is no
        fallback: another dataset under this name would be mislabelled.
    """
    mirrors = fashion_mirrors_from_env() if mirrors is None else tuple(mirrors)
    key = ("fashion_mnist", cache_dir, mirrors)
    failed = _recent_failure(key)
    if failed:
        raise DataUnavailable(f"Fashion-MNIST unavailable ({failed})")
    try:
        return _load_fashion_cached(cache_dir, mirrors, tuple(sorted(files.items())) if files else None)
    except DataUnavailable as exc:
        _remember_failure(key, exc)
        raise


@functools.lru_cache(maxsize=1)
def _load_full_cached(cache_dir: str | None, mirrors: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, str]:
    paths, problems = fetch_full(cache_dir, mirrors)
    return _train_then_test(paths, problems, "full MNIST")


# How long a failed download of the full set is remembered before it is tried again: a
# page or sweep asks for many splits, and each retry would wait on every dead mirror.
FAILURE_TTL_S = 600.0
_FAILURES: dict[tuple, tuple[float, str]] = {}
_FAILURES_LOCK = threading.Lock()


def _recent_failure(key: tuple) -> str:
    """"download failed … s ago: …; mirrors are tried again in … s" while a failure of
    ``key`` is remembered, else ""."""
    with _FAILURES_LOCK:
        failed = _FAILURES.get(key)
    age = time.monotonic() - failed[0] if failed is not None else FAILURE_TTL_S
    if age >= FAILURE_TTL_S:
        return ""
    return (f"download failed {age:.0f} s ago: {failed[1]}; mirrors are tried again in "
            f"{FAILURE_TTL_S - age:.0f} s")


def _remember_failure(key: tuple, exc: Exception) -> None:
    with _FAILURES_LOCK:
        _FAILURES[key] = (time.monotonic(), str(exc)[:300])


def forget_download_failures() -> None:
    """Clears the remembered download failures (the next request tries the mirrors again)."""
    with _FAILURES_LOCK:
        _FAILURES.clear()


def load_pool(dataset: str = "bundled", *, cache_dir: str | None = None,
              mirrors: tuple[str, ...] | None = None) -> tuple[np.ndarray, np.ndarray, str, str]:
    """Loads the pool of images a split is drawn from.

    ``"full"`` falls back to the bundled set with a notice when no mirror works;
    ``"fashion_mnist"`` raises :class:`DataUnavailable` instead (see
    :func:`load_fashion_mnist`). A failure
    is remembered for :data:`FAILURE_TTL_S` seconds: requests in that window fall back at
    once (and say when the mirrors will be tried again) instead of retrying every mirror.

    Returns:
      (x, labels, source, notice): x (N, 784) float32, labels (N,) int32, the source
      actually used ("bundled", "full" or "fashion_mnist") and a notice ("" when nothing to say).
    """
    if dataset == "bundled":
        x, y = load_bundled()
        return x, y, "bundled", ""
    if dataset == "fashion_mnist":  # no fallback: DataUnavailable propagates
        x, y, note = load_fashion_mnist(cache_dir, mirrors)
        return x, y, "fashion_mnist", note
    if dataset != "full":
        raise ValueError(f"dataset={dataset!r}; allowed: {', '.join(DATASETS)}")
    mirrors = mirrors_from_env() if mirrors is None else tuple(mirrors)
    key = (cache_dir, mirrors)
    failed = _recent_failure(key)
    if failed:
        x, y = load_bundled()
        return x, y, "bundled", f"full MNIST unavailable ({failed}); using the bundled 10k test set"
    try:
        x, y, note = _load_full_cached(cache_dir, mirrors)
        return x, y, "full", note
    except DataUnavailable as exc:
        _remember_failure(key, exc)
        _log.warning("full MNIST unavailable, using the bundled set for %.0f s: %s", FAILURE_TTL_S, exc)
        x, y = load_bundled()
        return x, y, "bundled", f"full MNIST unavailable ({exc}); using the bundled 10k test set"


def stratified_split(labels: np.ndarray, n_train: int, n_val: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class-stratified, seeded, disjoint train/validation indices.

    Class quotas follow the pool's class frequencies (largest-remainder rounding).

    Returns:
      (train_idx, val_idx): int64 index arrays of lengths n_train and n_val.
    """
    total = labels.shape[0]
    if n_train + n_val > total:
        raise ValueError(f"n_train={n_train} + n_val={n_val} exceeds the pool of {total} images")
    rng = np.random.default_rng(seed)
    classes = np.arange(NUM_CLASSES)
    counts = np.bincount(labels, minlength=NUM_CLASSES)
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in classes]

    def quotas(m: int, avail: np.ndarray) -> np.ndarray:
        exact = m * counts / total
        q = np.minimum(np.floor(exact).astype(np.int64), avail)
        order = np.argsort(-(exact - np.floor(exact)), kind="stable")
        i = 0
        while q.sum() < m:
            c = order[i % NUM_CLASSES]
            if q[c] < avail[c]:
                q[c] += 1
            i += 1
        return q

    qt = quotas(n_train, counts)
    qv = quotas(n_val, counts - qt)
    train = np.concatenate([p[:qt[c]] for c, p in zip(classes, per_class)])
    val = np.concatenate([p[qt[c]:qt[c] + qv[c]] for c, p in zip(classes, per_class)])
    return rng.permutation(train), rng.permutation(val)


def one_hot(labels: np.ndarray) -> np.ndarray:
    return np.eye(NUM_CLASSES, dtype=np.float32)[labels]


def load_split(n_train: int, n_val: int, seed: int, dataset: str = "bundled") -> Split:
    """Loads a deterministic, class-stratified train/validation split of a dataset
    ("bundled", "full" MNIST, or "fashion_mnist"; see :func:`load_pool`).

    Returns:
      A :class:`Split` with float32 pixels in [0, 1] (784 per image) and one-hot
      float32 targets (10 per image).
    """
    x, labels, source, notice = load_pool(dataset)  # stratified_split checks the sizes
    tr, va = stratified_split(labels, n_train, n_val, seed)
    return Split(x_train=x[tr], y_train=one_hot(labels[tr]), x_val=x[va], y_val=one_hot(labels[va]),
                 labels_train=labels[tr], labels_val=labels[va], source=source, notice=notice)
