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

Because the heap fragments, peak memory rises for the VGG-sized paths (WCT at 1024 px
3.0 -> 4.5 GB, deep image analogy 5.8 -> 8.5 GB in BENCHMARKS.md runs) while it falls for the
small networks. So the default (``RESTYLE_MALLOC=auto``) keeps freed memory only on machines
with at least 16 GiB of RAM, where that headroom exists; ``RESTYLE_MALLOC=keep`` forces it,
``RESTYLE_MALLOC=system`` leaves the C allocator alone.

The command line (``restyle ...``), the studio, batch workers and benchmark workers call
:func:`keep_freed_memory` at start; a program embedding restyle may call it too.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import threading
from typing import Callable

from .errors import RestyleError

#: Environment variable: ``auto`` (default), ``keep`` or ``system``.
MALLOC_ENV = "RESTYLE_MALLOC"

#: ``auto`` keeps freed memory on machines with at least this much RAM.
AUTO_MIN_RAM = 16 * 2 ** 30

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Serve large allocations from the heap and keep freed memory (glibc only), when
    :func:`wanted` says so. Returns whether the setting is in effect; idempotent."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if not wanted(os.environ.get(MALLOC_ENV, ""), physical_memory()):
        return False
    if not _glibc():
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(_M_MMAP_MAX, 0) == 1
        ok = libc.mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1) == 1 and ok
    except (OSError, AttributeError):
        return False
    _applied = ok
    return ok


def _glibc() -> bool:
    """Whether the C library is glibc (asked of the library, not by scanning the binary as
    ``platform.libc_ver`` does)."""
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (ValueError, OSError, AttributeError):
        return False


def physical_memory() -> int | None:
    """Bytes of RAM, or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def wanted(setting: str, ram: int | None) -> bool:
    """Whether to keep freed memory, for a ``RESTYLE_MALLOC`` value and the machine's RAM."""
    setting = setting.strip().lower() or "auto"
    if setting not in ("auto", "keep", "system"):
        raise RestyleError(f"{MALLOC_ENV} must be auto, keep or system, not {setting!r}")
    if setting == "auto":
        return ram is not None and ram >= AUTO_MIN_RAM
    return setting == "keep"


# ----------------------------------------------------------------------------- cancellation

class Stop(Exception):
    """Raised by a progress callback (or by :func:`check_cancelled`) to end the work early;
    an optimization keeps its current image (``restyle.optimize.Stop`` is this class)."""


_cancel = threading.local()


@contextlib.contextmanager
def cancel_when(flag: Callable[[], bool]):
    """In this thread, inside the block, :func:`check_cancelled` raises :class:`Stop` once
    ``flag()`` is true. The studio wraps each job in it, so that a cancel reaches work that
    reports no progress between its steps: every VGG layer, every tile of a tiled pass and
    every loss evaluation checks it (a thread-local lookup: nothing measurable)."""
    previous = getattr(_cancel, "flag", None)
    _cancel.flag = flag
    try:
        yield
    finally:
        _cancel.flag = previous


def check_cancelled() -> None:
    flag = getattr(_cancel, "flag", None)
    if flag is not None and flag():
        raise Stop()
