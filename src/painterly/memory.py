"""Will the work fit? The memory this process may still take, and a check made before any work."""
from __future__ import annotations

import os
from typing import Callable

from .errors import ImageTooLargeError

try:
    import resource
except ImportError:  # not on Windows
    resource = None



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
