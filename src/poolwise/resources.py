"""How much memory a fit may use, and a check that refuses a fit that would not fit.

A fit that runs out of memory is killed by the operating system and its work is lost, so
every model kind estimates the peak memory of a fit from the sizes that drive it (draws,
groups, rows) before allocating anything (:meth:`poolwise.kinds.base.BaseModel.
check_memory`), and :func:`check_memory` refuses with one line when the estimate exceeds
what :func:`available_memory` finds.

The memory available is the least of

* ``MemAvailable`` of ``/proc/meminfo`` (what can be allocated without swapping);
* the cgroup's limit less its usage (v2: ``memory.max`` − ``memory.current`` of the process's
  cgroup and its ancestors; v1: ``memory.limit_in_bytes`` − ``memory.usage_in_bytes``), as
  containers and batch schedulers set;
* the address-space limit (``ulimit -v``, ``prlimit --as``; ``RLIMIT_AS``) less the
  process's virtual size (``VmSize``). JAX reserves address space that it does not use
  (thread stacks, allocator arenas): :class:`MemoryEstimate` counts it as ``reserved``,
  only against this limit.

The environment variable ``POOLWISE_MEMORY_LIMIT`` (``8G``, ``500M``, ``1.5GiB``, or bytes)
replaces all three. No NumPy here: the command line's help imports this module.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from poolwise.exceptions import ResourceError, SpecificationError

__all__ = ["ENVIRONMENT", "HEADROOM", "MemoryEstimate", "MemoryLimits", "available_memory",
           "check_disk", "check_memory", "format_bytes", "jax_reserved", "memory_limits",
           "parse_size"]

#: the environment variable that sets the memory available, e.g. ``8G``
ENVIRONMENT = "POOLWISE_MEMORY_LIMIT"
#: the share of the available memory an estimate may take (the rest is a safety margin
#: for what the estimate leaves out: the interpreter's own growth, other processes)
HEADROOM = 0.9
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9,
          "gb": 10**9, "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30,
          "tib": 2**40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*")


def parse_size(text: str) -> int:
    """Bytes from ``"8G"``, ``"500 MB"``, ``"1.5GiB"`` or ``"123456"`` (K, M, G, T are
    powers of 1000; KiB, MiB, GiB, TiB of 1024)."""
    match = _SIZE.fullmatch(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise SpecificationError(
            f"{ENVIRONMENT}={text!r} is not a size; write e.g. 8G, 500M, 1.5GiB or a number "
            "of bytes")
    return int(float(match.group(1)) * _UNITS[unit])


def format_bytes(size: float) -> str:
    """``"38 GB"``, ``"7.6 GB"``, ``"520 MB"``: two significant figures, powers of 1000."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            value = size / scale
            return f"{value:.1f} {unit}" if value < 10 else f"{value:,.0f} {unit}"
    return f"{max(size, 0):.0f} bytes"


@dataclass(frozen=True)
class MemoryLimits:
    """The memory a process may still use: ``resident`` (physical memory: MemAvailable, a
    cgroup; ``source`` says which) and ``address_space`` (RLIMIT_AS less the virtual
    size), each None where there is no such limit."""

    resident: int | None
    address_space: int | None
    source: str = "free memory"

    @property
    def available(self) -> int | None:
        """The least of the two (None: no limit was found)."""
        known = [x for x in (self.resident, self.address_space) if x is not None]
        return min(known) if known else None


#: how the message names the address-space limit
ADDRESS_SPACE = "the address-space limit, ulimit -v"


def memory_limits() -> MemoryLimits:
    """What :func:`available_memory` reads, kept apart (module docstring)."""
    given = os.environ.get(ENVIRONMENT, "").strip()
    if given:
        return MemoryLimits(parse_size(given), None, ENVIRONMENT)
    found = [(x, source) for x, source in (
        (_proc_field("/proc/meminfo", "MemAvailable"), "free memory"),
        (_cgroup_available(), "the cgroup's limit")) if x is not None]
    resident, source = min(found) if found else (None, "")
    return MemoryLimits(resident, _address_space_available(), source)


def available_memory() -> int:
    """Bytes this process can still allocate: the least of free memory, the cgroup's limit
    and the address-space limit, or ``POOLWISE_MEMORY_LIMIT`` (module docstring).
    Where none can be read (not Linux), a very large number."""
    available = memory_limits().available
    return available if available is not None else 2**62


@dataclass(frozen=True)
class MemoryEstimate:
    """The peak memory a job is expected to add, as (what, bytes) parts; ``reserved`` is
    address space it reserves but does not fill (JAX's), which counts only against an
    address-space limit."""

    parts: tuple[tuple[str, int], ...]
    reserved: int = 0

    @property
    def bytes(self) -> int:
        return sum(size for _, size in self.parts)

    def describe(self, reserved: bool = False) -> str:
        """The largest parts in words: ``"θ draws 32 GB, JAX 700 MB"``; with ``reserved``,
        the address space reserved too."""
        parts = [*self.parts, ("JAX's reserved address space", self.reserved if reserved else 0)]
        shown = sorted((p for p in parts if p[1] > 0), key=lambda p: -p[1])[:3]
        return ", ".join(f"{what} {format_bytes(size)}" for what, size in shown)

    def fits(self, limits: MemoryLimits | None = None) -> bool:
        """Whether the estimate is within :data:`HEADROOM` of ``limits`` (default: now)."""
        return _shortfall(self, memory_limits() if limits is None else limits) is None


def check_memory(estimate: MemoryEstimate, *, what: str, alternatives: list[str]) -> None:
    """Refuse, with one line, a job whose ``estimate`` does not fit in the memory available.

    ``what`` says what would be done (``"fitting 1,000,000 groups with 4 × 1000 draws"``),
    ``alternatives`` the settings that would fit, each with its own estimate.

    Raises
    ------
    ResourceError
        ``fitting … needs about 38 GB (θ draws 32 GB, …), but 7.6 GB is available
        (free memory); use draws=200 (--draws 200, about 7 GB) or …``.
    """
    short = _shortfall(estimate, memory_limits())
    if short is None:
        return
    needed, available, source = short
    parts = estimate.describe(reserved=source == ADDRESS_SPACE)
    advice = (f"use {' or '.join(alternatives)}" if alternatives else
              "no smaller setting fits: free memory or use a larger machine")
    raise ResourceError(
        f"{what} needs about {format_bytes(needed)} ({parts}), but "
        f"{format_bytes(max(available, 0))} is available ({source}); {advice}")


def check_disk(size: int, directory: str | Path, *, what: str, alternatives: list[str]
               ) -> None:
    """Refuse, with one line, a job that would write ``size`` bytes into ``directory`` (or
    the nearest folder above it that exists) when its file system has less free space.

    Raises
    ------
    ResourceError
        ``--save-draws would write about 32 GB, but /data has 9.1 GB free; use …``.
    """
    folder = Path(directory).absolute()
    while not folder.exists():
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if size <= free:
        return
    advice = f"; use {' or '.join(alternatives)}" if alternatives else ""
    raise ResourceError(f"{what} would write about {format_bytes(size)}, but {folder} has "
                        f"{format_bytes(free)} free{advice}")


def _shortfall(estimate: MemoryEstimate, limits: MemoryLimits
               ) -> tuple[int, int, str] | None:
    """(needed, available, which limit) for the first limit the estimate exceeds."""
    if limits.resident is not None and estimate.bytes > HEADROOM * limits.resident:
        return estimate.bytes, limits.resident, limits.source
    space, needed = limits.address_space, estimate.bytes + estimate.reserved
    if space is not None and needed > HEADROOM * space:
        return needed, space, ADDRESS_SPACE
    return None


# ----------------------------------------------------------------------------- reading


def _proc_field(path: str, key: str) -> int | None:
    """A ``key: N kB`` line of a /proc file, in bytes."""
    try:
        with open(path) as lines:
            for line in lines:
                name, _, value = line.partition(":")
                if name == key:
                    return int(value.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_available() -> int | None:
    """The least of limit − usage over the process's cgroup and its ancestors."""
    try:
        entries = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    root = Path("/sys/fs/cgroup")
    found: list[int] = []
    for entry in entries:
        _, controllers, path = entry.split(":", 2)
        if controllers == "":  # v2
            files, base = ("memory.max", "memory.current"), root
        elif "memory" in controllers.split(","):  # v1
            files, base = ("memory.limit_in_bytes", "memory.usage_in_bytes"), root / "memory"
        else:
            continue
        folder = base / path.lstrip("/")
        for directory in (folder, *folder.parents):
            if not str(directory).startswith(str(base)):
                break
            limit, usage = _read_int(directory / files[0]), _read_int(directory / files[1])
            if limit is not None and usage is not None and limit < 2**60:
                found.append(limit - usage)
    return min(found) if found else None


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None  # absent, or "max"


def _address_space_available() -> int | None:
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY or soft < 0:
        return None
    used = _proc_field("/proc/self/status", "VmSize")
    return soft - (used or 0)


def jax_reserved() -> int:
    """Address space JAX will reserve beyond what it fills, where it is not loaded yet.

    Measured on a 2-core machine: ``VmSize`` grew 1.46–1.6 GB over a first NUTS fit whose
    RSS grew 0.46–0.69 GB; its thread pools grow with the cores, so 0.9 GB and 64 MB a
    core are allowed beside the resident estimate.
    """
    if "jax" in sys.modules:
        return 0
    return int(0.9e9 + 64e6 * (os.cpu_count() or 1))
