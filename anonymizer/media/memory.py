"""Frame-sized buffers go straight back to the system when freed.

glibc raises its mmap threshold to the size of every large block freed, up to 32 MiB, after
which 4K frames (12-25 MB each, allocated and freed hundreds of times a minute by several
threads) come from the heap instead and fragment it: a 4K clip's RSS crept up with its length.
A fixed threshold keeps every buffer over 1 MiB in its own mapping, returned when freed.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
THRESHOLD = 1 << 20


def return_large_buffers() -> bool:
    """Fix glibc's mmap threshold; False (and nothing changed) where there is no glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, THRESHOLD))
    except (OSError, AttributeError):
        return False
