"""Blocks of independent array work, run over the cores, or over a Dask cluster.

NumPy and SciPy release the GIL inside their array loops and random samplers, so blocks
of a large computation (groups, grid points) run in parallel in threads, with no copies
and no pickling. Each block writes its own slice of a preallocated output.

Within :func:`on_cluster` (a fit whose rows a ``distributed`` cluster reduced), work that is
large enough to be worth sending — each group's posterior at 10^7 groups — runs as tasks
on that cluster instead (:func:`map_on_cluster`): pure functions of their arguments, whose
results come back one at a time.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

__all__ = ["cluster_scheduler", "map_on_cluster", "on_cluster", "run_blocks", "thread_count"]

#: the Dask scheduler (an address or a ``distributed.Client``) of :func:`on_cluster`
_SCHEDULER: ContextVar[Any] = ContextVar("poolwise_scheduler", default=None)

T = TypeVar("T")


def thread_count(threads: int | None = None) -> int:
    """The threads to use: ``threads``, or the cores this process may run on."""
    if threads is not None:
        return max(1, int(threads))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def run_blocks(work: Callable[[T], object], blocks: Sequence[T],
               threads: int | None = None) -> None:
    """Call ``work(block)`` for every block, in a pool of :func:`thread_count` threads
    when there is more than one block (in order, in this thread, otherwise)."""
    workers = min(thread_count(threads), len(blocks))
    if workers <= 1:
        for block in blocks:
            work(block)
        return
    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(work, blocks):  # re-raises the first error of a block
            pass


@contextmanager
def on_cluster(scheduler: Any) -> Iterator[None]:
    """Within, :func:`cluster_scheduler` is ``scheduler`` (a ``distributed`` scheduler's
    address or a ``Client``; None changes nothing)."""
    token = _SCHEDULER.set(scheduler)
    try:
        yield
    finally:
        _SCHEDULER.reset(token)


def cluster_scheduler() -> Any:
    """The scheduler of the innermost :func:`on_cluster`, or None."""
    return _SCHEDULER.get()


def map_on_cluster(work: Callable[..., T], blocks: Sequence[tuple[Any, ...]]
                   ) -> Iterator[tuple[int, T]]:
    """``(k, work(*blocks[k]))`` for every block, computed as tasks on the
    :func:`cluster_scheduler` and fetched in order, each released once yielded (the
    others wait on the workers, so the caller holds one result at a time). ``work``
    must be importable by the workers."""
    from distributed import Client

    scheduler = cluster_scheduler()
    if scheduler is None:
        raise RuntimeError("map_on_cluster runs inside on_cluster(scheduler)")
    client = (Client(scheduler, timeout="10s", set_as_default=False)
              if isinstance(scheduler, str) else scheduler)
    try:
        futures = [client.submit(work, *block, pure=False) for block in blocks]
        for k, future in enumerate(futures):
            yield k, future.result()
            future.release()
    finally:
        if client is not scheduler:
            client.close()
