"""Giving the C heap's free pages back to the kernel (issue 17, memory).

CPython returns its own empty arenas to the kernel, but every object above 512 bytes
and every C library's allocation (OpenSSL, SQLite, the accelerator's tables) comes from
glibc's malloc, whose ``free`` only ever shrinks the heap from its top. What start-up,
a join or a burst freed in the middle of the heap stays resident: 0.5-1.8 MB of an idle
daemon here (``bench/memory.py``). glibc's ``malloc_trim(0)`` hands those pages back
(``madvise``; they are faulted in again, zeroed, when malloc reuses them); it costs
about 10 us on an idle daemon's heap and a few milliseconds on one fragmented over
hundreds of megabytes. :class:`~ztone.service.collector.CollectorPolicy` calls it every
:data:`~ztone.service.collector.TRIM_PERIOD`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable


def heap_trimmer() -> Callable[[], object] | None:
    """``malloc_trim(0)`` as a call: the accelerator's ``trim_heap`` when it is built,
    else glibc's function through :mod:`ctypes`; None where the C library has none
    (musl, illumos: their ``free`` behaves otherwise, and nothing is trimmed)."""
    try:
        from ztone import _speedups  # noqa: PLC0415
    except ImportError:
        pass
    else:
        native: Callable[[], object] | None = getattr(_speedups, "trim_heap", None)
        if native is not None:
            return native
    if not sys.platform.startswith("linux"):
        return None
    return ctypes_trimmer()


def ctypes_trimmer() -> Callable[[], object] | None:
    """glibc's ``malloc_trim`` through :mod:`ctypes` (a daemon without the accelerator;
    ctypes costs it about 0.2 MB), or None when the process's C library lacks it."""
    try:
        import ctypes  # noqa: PLC0415

        function = ctypes.CDLL(None).malloc_trim
    except (ImportError, OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int

    def trim() -> object:
        return function(0)

    return trim


__all__ = ["ctypes_trimmer", "heap_trimmer"]
