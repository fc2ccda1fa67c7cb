"""Blocks of independent array work, run over the cores.

NumPy and SciPy release the GIL inside their array loops and random samplers, so blocks
of a large computation (groups, grid points) run in parallel in threads, with no copies
and no pickling. Each block writes its own slice of a preallocated output.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["run_blocks", "thread_count"]

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
