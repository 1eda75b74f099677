"""glibc's malloc in a long-running bot process (issue 11, memory).

glibc serves a block of 128 KB or more with its own mmap and gives it back when freed, but each
such block freed raises that threshold (up to 32 MB), after which big blocks come from the heap
and stay there as holes between small ones that outlive them. With the threshold fixed at its
starting value a PostgreSQL bot process peaked 1.2-1.7 MB lower under the throughput
benchmark's load (VmHWM, same runs taking turns; docs/benchmarks.md); a SQLite one no lower,
so `branchbot run` fixes it on PostgreSQL only."""

from __future__ import annotations

import sys

M_MMAP_THRESHOLD = -3  # glibc's malloc.h; setting it also ends the threshold's adjustment
MMAP_THRESHOLD = 128 * 1024  # glibc's own starting value, kept


def fix_mmap_threshold() -> bool:
    """Keep blocks of 128 KB and more in mmap (given back when freed); False where this is not
    glibc (musl, macOS) and nothing changed."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes  # here: a process that never runs the bot does not load it

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
