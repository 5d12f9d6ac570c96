"""Will the work fit? The memory this process may still take, and a check made before any
work; and malloc told to keep freed memory for reuse, or to give it back."""
from __future__ import annotations

import os
import sys
from typing import Callable

from .errors import ImageTooLargeError

try:
    import resource
except ImportError:  # not on Windows
    resource = None

# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
KEEP_FREED = 1 << 30   # return the heap's free top to the system only above 1 GiB


def available_bytes() -> tuple[int, int]:
    """(memory this process may still take, its resident size now), in bytes.

    The headroom is the smaller of the system's MemAvailable (/proc/meminfo) and what the
    address-space limit (RLIMIT_AS) leaves above the current virtual size. Where neither can
    be read (not Linux), the headroom is unknown and reported as a very large number.
    """
    headroom = 1 << 62
    info = _read_kb("/proc/meminfo", ("MemAvailable:",))
    if "MemAvailable:" in info:
        headroom = info["MemAvailable:"]
    status = _read_kb("/proc/self/status", ("VmRSS:", "VmSize:"))
    if resource is None:
        return headroom, status.get("VmRSS:", 0)
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (ValueError, OSError, AttributeError):
        soft = resource.RLIM_INFINITY
    if soft != resource.RLIM_INFINITY and "VmSize:" in status:
        headroom = min(headroom, max(0, soft - status["VmSize:"]))
    rss = status.get("VmRSS:")
    if rss is None:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return headroom, rss


def _read_kb(path: str, keys: tuple[str, ...]) -> dict[str, int]:
    found: dict[str, int] = {}
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if parts and parts[0] in keys:
                    found[parts[0]] = int(parts[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return found


def check_memory(estimate: Callable[[int], int], size: int, min_size: int = 32,
                 setting: str = "size") -> None:
    """Refuse, before any allocation, work whose estimated peak won't fit in memory.

    ``estimate(size)`` is the estimated peak resident size of the process, in bytes, at the
    long side ``size``. Raises :class:`ImageTooLargeError` naming the largest size that fits.
    Skipped when PAINTERLY_NO_MEMORY_CHECK=1.
    """
    if os.environ.get("PAINTERLY_NO_MEMORY_CHECK") == "1":
        return
    headroom, rss = available_bytes()
    limit = rss + headroom
    need = estimate(size)
    if need <= limit:
        return
    lo, hi = min_size, size  # the largest size that fits, by bisection (estimate grows with size)
    if estimate(lo) > limit:
        hint = "free some memory (nothing fits, even at the smallest size)"
    else:
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if estimate(mid) <= limit else (lo, mid - 1)
        hint = f"use `{setting}` ≤ {lo}"
    raise ImageTooLargeError(f"estimated peak memory {need / 2**30:.1f} GiB > available "
                             f"{limit / 2**30:.1f} GiB", hint)


def reuse_freed_memory() -> bool:
    """Make glibc's malloc serve large blocks from its heap and keep freed ones for reuse;
    False where there is no glibc (its settings are then the system's own). Only the
    painterly command calls it (painterly.launch), never ``import painterly``.

    By default glibc maps every block over 32 MiB (a feature map: relu1_1 of a 512 px
    picture is about 50 MB) fresh from the system and unmaps it when freed, so each new map's
    pages are faulted in and zeroed again: here a copy of a 116 MB map took 52 ms that way
    against 8 ms in reused memory, and an allocating op costs as much as the work it does.
    With no maps (M_MMAP_MAX 0) and freed memory kept up to 1 GiB at the heap's top, the maps
    of one picture reuse the pages of the last, and a layer's those of a layer before it.
    Painting a 1024 × 768 photo at full size (`fast --work-size 0`) took 2.9 s instead of
    3.9 s a picture in one process, as in a folder run, and 5.2 s instead of 5.8 s as a
    whole command (medians, both versions interleaved; docs/fast.md). The cost: memory freed
    stays with the process, up to its peak, until it ends or calls release_freed_memory (the
    web app does when its queue empties); the peak itself grew by under 2 %. The memory
    check counts kept memory as the process's own (resident), so it refuses nothing for it.
    """
    libc = _glibc()
    return bool(libc) and bool(libc.mallopt(M_MMAP_MAX, 0)) and \
        bool(libc.mallopt(M_TRIM_THRESHOLD, KEEP_FREED))


def release_freed_memory() -> bool:
    """Give what malloc keeps back to the system (glibc's ``malloc_trim``), free pages inside
    the heap too: for a process that stays up between jobs, such as the web app when its
    queue empties. True when something was given back."""
    libc = _glibc()
    return bool(libc) and bool(libc.malloc_trim(0))


def _glibc():
    """The process's C library when it is glibc (it has mallopt and malloc_trim), else None."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    try:
        libc = ctypes.CDLL(None)  # the process's own C library
    except OSError:
        return None
    # looked up by name: a C library without them (musl, say) is left alone
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
