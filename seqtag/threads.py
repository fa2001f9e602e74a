"""Running a fixed list of work items on N threads, results in item order.

The items are fixed by the work (a training batch's chunks, tagging's batches), never by the
thread count: the threads only decide who runs an item, so results, and sums of them taken in
item order, are the same for any N. The kernels are compiled with ``nogil=True`` and idle
threads wait on a lock, never spin (no OpenMP or BLAS pools: those spin on a busy machine).
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, Sequence

# Python's switch interval while threads run kernels. A thread back from a kernel (which runs
# without the GIL) waits for the GIL until the thread that holds it lets go, which Python makes
# a busy thread do only after the interval: 5 ms by default, against a batch's 8 kernel calls of
# 0.1-10 ms each. At 0.1 ms, big.txt tags about 10% faster on 2 threads (median of 4 runs
# each, in one process); shorter gained nothing more.
SWITCH_INTERVAL = 1e-4

# Jobs per thread that ``ordered`` keeps given out ahead of the result it waits for: with one,
# a worker that finished could find no job while this thread was busy with the results of the
# oldest. With two, big.txt tagged 5-9% faster on 2 threads (in one process, medians of 3 and 4
# rounds, interleaved); four gained no more and raised the peak memory by 10-20 MB.
READ_AHEAD = 2


def available_cores() -> int:
    """The cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class Pool:
    """``map(fn, items)`` on ``threads`` threads: the caller's and threads - 1 workers, started
    at the first map with several items and kept."""

    def __init__(self, threads: int | None = 1):
        self.threads = available_cores() if threads is None else max(1, int(threads))
        self._workers: list[_Worker] = []

    def map(self, fn: Callable, items: Sequence) -> list:
        n = len(items)
        workers = min(self.threads, n) - 1
        if workers <= 0:
            return [fn(x) for x in items]
        while len(self._workers) < workers:
            self._workers.append(_Worker())
        results = [None] * n
        claim = itertools.count()      # next() on it is atomic: each item is run once

        def run():
            for i in iter(claim.__next__, None):
                if i >= n:
                    return
                results[i] = fn(items[i])

        started = self._workers[:workers]
        for w in started:
            w.give(run)
        error = None
        try:
            run()
        except BaseException as e:      # the workers still use shared buffers: wait for them
            error = e
        for w in started:
            e = w.wait()
            error = error or e
        if error is not None:
            raise error
        return results

    def close(self) -> None:
        for w in self._workers:
            w.give(None)
        for w in self._workers:
            w.join()
        self._workers = []


class _Worker(threading.Thread):
    """A thread that runs the jobs it is given, one at a time. A lock hands a job over and an
    event hands it back (a training step makes four maps): a map of two trivial items took
    21 µs, against 17 µs with a lock both ways (see wait) and 23 µs with a ThreadPoolExecutor's
    future (2026-12-04, AMD EPYC)."""

    def __init__(self):
        super().__init__(daemon=True, name="seqtag")
        self._go, self._done = threading.Lock(), threading.Event()
        self._go.acquire()
        self._job: Callable | None = None
        self._error: BaseException | None = None
        self.start()

    def give(self, job: Callable | None) -> None:
        """Run job (None: end the thread). A job given before and not taken yet is replaced: an
        interrupt between a map's give and its wait leaves one so, and close() then gives None
        (releasing the lock a second time raised "release unlocked lock" instead of the
        interrupt). Only this thread releases the lock, so it cannot change between the
        check and the release."""
        self._job, self._error = job, None
        self._done.clear()
        if self._go.locked():
            self._go.release()

    def wait(self) -> BaseException | None:
        """Wait for the job given last; what it raised, if anything, or what interrupted the
        wait (Ctrl-C, SIGTERM): the job still uses shared buffers, so the interrupt is kept and
        given to the caller to raise once the job is done. The job's end is a state (an event
        that stays set), not a lock to take once: an interrupt just after the taking would lose
        it and wait for ever (a training run given SIGTERM hung so, now and then), and one
        swallowed went on training."""
        interrupt = None
        while True:
            try:
                self._done.wait()
                return interrupt or self._error
            except BaseException as e:
                interrupt = interrupt or e

    def run(self) -> None:
        while True:
            self._go.acquire()
            job = self._job
            if job is None:
                return
            try:
                job()
            except BaseException as e:
                self._error = e
            self._done.set()


def ordered(fn: Callable, jobs: Iterable, threads: int | None = 1) -> Iterator:
    """(job, fn(job)) for each job of a stream, in the stream's order, with up to ``threads``
    calls of fn running at once on worker threads while this thread makes the next jobs
    (the stream is read only as far as the results are taken, plus READ_AHEAD × ``threads``
    jobs ahead)."""
    threads = available_cores() if threads is None else max(1, int(threads))
    if threads == 1:
        for job in jobs:
            yield job, fn(job)
        return
    pending: deque = deque()
    stream = iter(jobs)
    with quick_switches(), ThreadPoolExecutor(threads, thread_name_prefix="seqtag") as executor:
        try:
            while True:
                try:
                    job = next(stream)
                except StopIteration:
                    break
                except Exception:
                    # The stream failed (a bad input line): the jobs read before it are still
                    # given out, in order, as one thread would have, and then the error.
                    while pending:
                        done, future = pending.popleft()
                        yield done, future.result()
                    raise
                pending.append((job, executor.submit(fn, job)))
                if len(pending) > READ_AHEAD * threads:
                    job, future = pending.popleft()
                    yield job, future.result()
            while pending:
                job, future = pending.popleft()
                yield job, future.result()
        finally:
            for _, future in pending:
                future.cancel()


@contextmanager
def quick_switches():
    """Python's switch interval at most SWITCH_INTERVAL inside, as it was after."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(min(before, SWITCH_INTERVAL))
    try:
        yield
    finally:
        sys.setswitchinterval(before)
