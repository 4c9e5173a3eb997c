"""Process memory: the peak resident size, and handing freed heap memory back."""

from __future__ import annotations

import ctypes
import ctypes.util
import resource
from functools import cache
from typing import Callable


def peak_memory_mib() -> float:
    """Peak resident memory of this process so far, in MiB (Linux: ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None


def release_free_memory() -> bool:
    """Return the heap's free pages to the system (glibc ``malloc_trim``).

    A training step frees many multi-MiB tensors whose pages glibc keeps
    resident; the next step's different allocation pattern then grows the heap
    again. Trimming between epochs stops that creep: on FB15K-DB15K (ALMEA, one
    thread, 4 epochs and an evaluation) peak RSS 2,098 MiB without, 1,907 MiB with,
    at no measurable cost (one call, a few ms). Serving big blocks by ``mmap``
    instead (a fixed ``M_MMAP_THRESHOLD``) also works but cost 25 % more CPU time
    in page faults.

    Returns:
        ``True`` if memory was released; ``False`` if none was, or the C library
        is not glibc.
    """
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False
