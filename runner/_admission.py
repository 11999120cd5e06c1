"""Process-wide admission of computations: a fair (FIFO) queue in front of the CPU and a
memory budget shared by every request of the process (all browser sessions of a server).

A hosted server has 2 cores and well under a GB: eight sessions that each start a training
at once would multiply peak memory by eight and share the cores eight ways, so each waits
as long as all of them together. Admission lets at most ``slots`` computations run at a
time, and only while the estimated memory of everything admitted stays within
``budget_mb`` (a single request larger than the budget still runs, alone). The others
wait in arrival order and can see their place. Identical configs are still computed once:
the results store's per-key lock makes the second caller wait for the first one's result.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from typing import Callable, Iterator

# Called while waiting with (position in the queue, 1 = next; queue length).
OnWait = Callable[[int, int], None]


class Admission:
    """A FIFO gate with a concurrency limit and a memory budget.

    Args:
      slots: computations allowed to run at once (CPU-bound work: 1 on 2 cores).
      budget_mb: estimated memory that admitted computations may hold together.
    """

    def __init__(self, slots: int = 1, budget_mb: float = float("inf")):
        self.slots = max(int(slots), 1)
        self.budget_mb = float(budget_mb)
        self._cond = threading.Condition()
        self._queue: list[int] = []
        self._tickets = itertools.count()
        self._running = 0
        self._held_mb = 0.0
        self._local = threading.local()
        self.peak_running = 0  # for tests and benchmarks
        self.admitted = 0

    def configure(self, slots: int, budget_mb: float) -> None:
        with self._cond:
            self.slots, self.budget_mb = max(int(slots), 1), float(budget_mb)
            self._cond.notify_all()

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._queue)

    def _may_start(self, ticket: int, need_mb: float) -> bool:
        if self._queue[0] != ticket or self._running >= self.slots:
            return False
        return self._running == 0 or self._held_mb + need_mb <= self.budget_mb

    @contextlib.contextmanager
    def admit(self, need_mb: float, on_wait: OnWait | None = None,
              poll_s: float = 0.5) -> Iterator[None]:
        """Runs the body once this caller's turn has come and the budget allows it.

        Re-entrant within a thread: a computation that is already admitted (e.g. a
        spectrum computed inside an admitted run) is not queued again, so it cannot wait
        for itself.
        """
        if getattr(self._local, "depth", 0):
            self._local.depth += 1
            try:
                yield
            finally:
                self._local.depth -= 1
            return
        with self._cond:
            ticket = next(self._tickets)
            self._queue.append(ticket)
            try:
                while not self._may_start(ticket, need_mb):
                    if on_wait is not None:
                        on_wait(self._queue.index(ticket) + 1, len(self._queue))
                    self._cond.wait(timeout=poll_s)
            except BaseException:
                self._queue.remove(ticket)
                self._cond.notify_all()
                raise
            self._queue.pop(0)
            self._running += 1
            self._held_mb += need_mb
            self.admitted += 1
            self.peak_running = max(self.peak_running, self._running)
            self._cond.notify_all()
        self._local.depth = 1
        try:
            yield
        finally:
            self._local.depth = 0
            with self._cond:
                self._running -= 1
                self._held_mb -= need_mb
                self._cond.notify_all()


# The process's gate (the app server's sessions are threads of one process).
ADMISSION = Admission()
