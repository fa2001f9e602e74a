"""Running a fixed list of work items on N threads, results in item order.

The items are fixed by the work (a training batch's chunks, tagging's batches), never by the
thread count: the threads only decide who runs an item, so results, and sums of them taken in
item order, are the same for any N. The kernels are compiled with ``nogil=True`` and idle
threads wait on a lock, never spin (no OpenMP or BLAS pools: those spin on a busy machine).
"""

from __future__ import annotations

import itertools
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, Sequence


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
        self._executor: ThreadPoolExecutor | None = None

    def map(self, fn: Callable, items: Sequence) -> list:
        n = len(items)
        workers = min(self.threads, n) - 1
        if workers <= 0:
            return [fn(x) for x in items]
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.threads - 1, thread_name_prefix="seqtag")
        results = [None] * n
        claim = itertools.count()      # next() on it is atomic: each item is run once

        def run():
            for i in iter(claim.__next__, None):
                if i >= n:
                    return
                results[i] = fn(items[i])

        futures = [self._executor.submit(run) for _ in range(workers)]
        error = None
        try:
            run()
        except BaseException as e:      # the workers still use shared buffers: wait for them
            error = e
        for f in futures:
            e = f.exception()
            error = error or e
        if error is not None:
            raise error
        return results

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None


def ordered(fn: Callable, jobs: Iterable, threads: int | None = 1) -> Iterator:
    """(job, fn(job)) for each job of a stream, in the stream's order, with up to ``threads``
    calls of fn running at once on worker threads while this thread makes the next jobs
    (the stream is read only as far as the results are taken, plus ``threads`` ahead)."""
    threads = available_cores() if threads is None else max(1, int(threads))
    if threads == 1:
        for job in jobs:
            yield job, fn(job)
        return
    pending: deque = deque()
    stream = iter(jobs)
    with ThreadPoolExecutor(threads, thread_name_prefix="seqtag") as executor:
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
                if len(pending) > threads:
                    job, future = pending.popleft()
                    yield job, future.result()
            while pending:
                job, future = pending.popleft()
                yield job, future.result()
        finally:
            for _, future in pending:
                future.cancel()
