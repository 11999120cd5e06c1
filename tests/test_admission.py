"""The process-wide admission queue: FIFO, bounded concurrency and memory, re-entrant,
no deadlock; and through the real runner, identical configs compute once."""

from __future__ import annotations

import threading
import time

import pytest

import runner
from cache import ResultStore
from runner._admission import ADMISSION, Admission


def _run_threads(n, target):
    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
        time.sleep(0.02)  # a known arrival order
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive(), "a thread is stuck: deadlock"


def test_one_slot_runs_one_at_a_time_in_arrival_order():
    gate = Admission(slots=1)
    started, running, peak, waits = [], [0], [0], {}
    lock, release = threading.Lock(), threading.Event()

    def work(i):
        def on_wait(pos, total):
            waits.setdefault(i, []).append((pos, total))
        with gate.admit(10.0, on_wait, poll_s=0.01):
            with lock:
                started.append(i)
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            if i == 0:
                release.wait(30)  # hold the slot until everyone else is queued
            with lock:
                running[0] -= 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for i, t in enumerate(threads):
        t.start()
        deadline = time.monotonic() + 10
        while (len(started) if i == 0 else gate.waiting) < (1 if i == 0 else i):
            assert time.monotonic() < deadline
            time.sleep(0.005)
    assert gate.waiting == 5
    release.set()
    for t in threads:
        t.join(timeout=30)
        assert not t.is_alive(), "a thread is stuck: deadlock"
    assert started == list(range(6)) and peak[0] == 1 and gate.peak_running == 1
    # Each waiting caller saw its own place: the k-th arrival was k-th in line.
    for i in range(1, 6):
        assert waits[i][0] == (i, i), (i, waits[i][:3])
        assert min(p for p, _ in waits[i]) >= 1


def test_memory_budget_bounds_what_runs_together_and_a_big_request_runs_alone():
    gate = Admission(slots=4, budget_mb=100)
    running, peak_mb, lock = [0.0], [0.0], threading.Lock()
    needs = [60, 30, 30, 250, 10]

    def work(i):
        with gate.admit(needs[i], poll_s=0.01):
            with lock:
                running[0] += needs[i]
                peak_mb[0] = max(peak_mb[0], running[0] if needs[i] <= 100 else 0)
                alone_ok = needs[i] <= 100 or running[0] == needs[i]
            assert alone_ok, "an over-budget request must run alone"
            time.sleep(0.05)
            with lock:
                running[0] -= needs[i]

    _run_threads(len(needs), work)
    assert peak_mb[0] <= 100 and gate.peak_running >= 2  # it does run things together


def test_reentrant_and_an_exception_frees_the_slot():
    gate = Admission(slots=1)
    with gate.admit(1.0):
        with gate.admit(1.0):  # the same thread: not queued behind itself
            pass
    with pytest.raises(RuntimeError):
        with gate.admit(1.0):
            raise RuntimeError("boom")
    done = threading.Event()

    def other():
        with gate.admit(1.0):
            done.set()

    t = threading.Thread(target=other)
    t.start()
    t.join(timeout=10)
    assert done.is_set() and gate.waiting == 0


def test_concurrent_sessions_through_the_runner_compute_each_config_once(tmp_path):
    lim = runner.Limits(max_concurrent=1)
    cfgs = [runner.validate_config({"width": 4 + 2 * k, "n_train": 60, "n_val": 20, "epochs": 2,
                                    "top_k": 3}, lim) for k in range(3)]
    store = ResultStore(tmp_path / "store")
    before, results, queued = runner.COUNTERS["trainings"], {}, []
    ADMISSION.peak_running = 0

    def session(i):
        def progress(p):
            if p.stage is runner.Stage.QUEUED:
                queued.append(p)
        results[i] = runner.run(cfgs[i % 3], lim, store=store, progress=progress)

    _run_threads(6, session)
    assert runner.COUNTERS["trainings"] - before == 3       # identical configs: once each
    assert ADMISSION.peak_running == 1                      # never two computations at once
    assert sorted(r.status for r in results.values()).count("computed") == 3
    for i in range(3):                                      # the twins got identical arrays
        assert (results[i].topk == results[i + 3].topk).all()
    assert queued and all("place" in p.describe() for p in queued)
