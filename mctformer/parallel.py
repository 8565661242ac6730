"""One way to spread per-image jobs over processes (CRFs, mask decoding, data generation)."""

from __future__ import annotations

import contextlib
import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

Job = TypeVar("Job")
Result = TypeVar("Result")


@contextlib.contextmanager
def worker_pool(workers: int, start_method: str | None = None) -> Iterator[ProcessPoolExecutor | None]:
    """A process pool of ``workers`` processes, or None when one process (this one) is asked for. ``start_method``
    (``forkserver``, ``spawn``; None: the platform's default, fork on Linux) for a pool started by a process that
    may hold CUDA, which a forked child cannot use safely."""
    if workers <= 1:
        yield None
        return
    context = multiprocessing.get_context(start_method) if start_method else None
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        yield pool


def map_in_processes(
    function: Callable[[Job], Result], jobs: Iterable[Job], workers: int = 1, chunksize: int = 1,
    pool: ProcessPoolExecutor | None = None,
) -> Iterator[Result]:
    """``function`` over ``jobs``, results in order: in ``pool`` when given, else in ``workers`` processes
    (here, when ``workers`` <= 1). ``function`` and its jobs must pickle (a module-level function)."""
    if pool is not None:
        yield from pool.map(function, jobs, chunksize=chunksize)
        return
    with worker_pool(workers) as own:
        if own is None:
            yield from map(function, jobs)
        else:
            yield from own.map(function, jobs, chunksize=chunksize)
