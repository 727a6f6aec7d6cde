"""Random bytes for the node core without a system call per packet.

Every packet the core sends gets an 8-byte random packet id (which is also the
cipher nonce; it must stay unpredictable). :class:`RandomPool` draws 4 KiB at a
time from ``os.urandom`` (the kernel CSPRNG) and hands it out in slices, so the
common case is a slice of a buffer, not a ``getrandom`` call. Bytes are never
handed out twice, not even across ``fork``: a child process empties its pools.
"""

from __future__ import annotations

import os
import weakref

POOL_SIZE = 4096

_pools: weakref.WeakSet[RandomPool] = weakref.WeakSet()


def _forget_after_fork() -> None:
    for pool in list(_pools):
        pool._buf = b""
        pool._pos = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


class RandomPool:
    """A callable ``(n) -> n random bytes``, buffered from ``os.urandom``."""

    __slots__ = ("__weakref__", "_buf", "_pos", "_size")

    def __init__(self, size: int = POOL_SIZE) -> None:
        self._size = size
        self._buf = b""
        self._pos = 0
        _pools.add(self)

    def __call__(self, n: int) -> bytes:
        pos = self._pos
        end = pos + n
        if end > len(self._buf):
            if n > self._size // 4:
                return os.urandom(n)  # large requests are rare: no need to buffer them
            self._buf = os.urandom(self._size)
            pos, end = 0, n
        self._pos = end
        return self._buf[pos:end]
