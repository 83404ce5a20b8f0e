"""Process-wide settings that restyle's own entry points apply.

glibc's ``malloc`` serves every block above 32 MB with a fresh ``mmap`` and gives it back
to the system on ``free``, so each large feature map of a 1024 px image (a 24-channel
bfloat16 map at 1024x768 is 38 MB) is paid for again with tens of thousands of page faults
on its first touch: allocating and filling a 50 MB tensor takes 14 ms, a 25 MB one 0.6 ms
(measured on the 2-core machine). :func:`keep_freed_memory` makes ``malloc`` take large
blocks from its heap and keep freed memory for reuse, the way onnxruntime's arena does:
measured in one process at 1024 px, adain-lite 0.169 -> 0.131 s and the style network
0.176 -> 0.141 s per photo. The cost is that the process keeps its peak heap (it is reused,
not returned to the system until the process ends).

The command line (``restyle ...``), the studio, batch workers and benchmark workers call
it at start. A program embedding restyle may call it too; ``RESTYLE_MALLOC=system`` turns
it off everywhere.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

#: Environment variable: ``system`` leaves the C allocator as it is.
MALLOC_ENV = "RESTYLE_MALLOC"

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Serve large allocations from the heap and keep freed memory (glibc only).

    Returns whether the setting is in effect; idempotent; a no-op (False) on other C
    libraries or with ``RESTYLE_MALLOC=system``."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get(MALLOC_ENV, "").strip().lower() == "system":
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(_M_MMAP_MAX, 0) == 1
        ok = libc.mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1) == 1 and ok
    except (OSError, AttributeError):
        return False
    _applied = ok
    return ok
