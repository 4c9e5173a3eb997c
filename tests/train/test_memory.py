import ctypes
import ctypes.util
from pathlib import Path

import pytest

from almea_pyg.train import memory


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="not Linux")
def test_peak_memory_matches_the_kernels_high_water_mark():
    block = bytearray(64 << 20)
    block[::4096] = b"x" * len(block[::4096])
    status = dict(
        line.split(":", 1)
        for line in Path("/proc/self/status").read_text().splitlines()
    )
    rss, hwm = (int(status[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM"))
    # ru_maxrss lags the live count a little; it is in MiB, not KiB or pages.
    assert 0.9 * rss <= memory.peak_memory_mib() <= hwm + 1
    assert rss > 64


@pytest.mark.skipif(
    not hasattr(ctypes.CDLL(ctypes.util.find_library("c")), "malloc_trim"),
    reason="not glibc",
)
def test_release_free_memory_hands_freed_heap_pages_back():
    # Heap blocks freed below a live one stay resident until trimmed.
    blocks = [bytearray(64 << 10) for _ in range(2000)]
    for block in blocks:
        block[::4096] = b"x" * len(block[::4096])
    pin = bytearray(64 << 10)
    del blocks, block
    assert memory.release_free_memory() is True
    assert len(pin) == 64 << 10


@pytest.mark.skipif(
    not hasattr(ctypes.CDLL(ctypes.util.find_library("c")), "mallopt"),
    reason="not glibc",
)
def test_limit_heap_fragmentation_sets_the_threshold():
    assert memory.limit_heap_fragmentation(32 << 20) is True
    assert memory.limit_heap_fragmentation() is True


def test_without_glibc_both_are_no_ops(monkeypatch):
    memory._libc_function.cache_clear()

    def no_libc(name):
        raise OSError("no C library")

    monkeypatch.setattr(memory.ctypes, "CDLL", no_libc)
    try:
        assert memory.release_free_memory() is False
        assert memory.limit_heap_fragmentation() is False
    finally:
        memory._libc_function.cache_clear()
