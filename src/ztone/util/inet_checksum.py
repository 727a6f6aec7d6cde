"""The internet checksum (RFC 1071): the one implementation ztone uses.

``_speedups.inet_sum`` is the native version; :func:`inet_sum_pure` is its pure-Python
reference. Both the Linux TAP's receive coalescing (``osdep/linux/gro.py``) and the
user-space network stack (``ztone.netstack``) take theirs from
:func:`inet_sum_function`. Pure: no I/O (the user-space stack is sans-IO).
"""

from __future__ import annotations

from collections.abc import Callable

from ztone.crypto.backend import DEFAULT, Backend

InetSum = Callable[[bytes | bytearray | memoryview, int], int]
"""``inet_sum(data, initial)``: native or :func:`inet_sum_pure`."""


def inet_sum_pure(data: bytes | bytearray | memoryview, initial: int = 0) -> int:
    """The one's complement sum of big-endian 16-bit words plus ``initial``, folded.

    Pure-Python reference of ``_speedups.inet_sum``: the data as one integer, folded
    in halves whose widths are multiples of 16 bits (2^16 = 1 modulo 2^16 - 1, so
    every fold keeps the sum), then the 16-bit end-around carry.
    """
    raw = bytes(data)
    if len(raw) & 1:
        raw += b"\x00"
    n = int.from_bytes(raw, "big") + initial
    bits = max(len(raw) * 8, initial.bit_length()) + 1
    while bits > 64:
        half = ((bits >> 1) + 15) & ~15
        n = (n & ((1 << half) - 1)) + (n >> half)
        bits = max(half, bits - half) + 1
    while n >> 16:
        n = (n & 0xFFFF) + (n >> 16)
    return n


def inet_sum_function(crypto: Backend = DEFAULT) -> InetSum:
    """``crypto``'s ``inet_sum`` (the native one unless that backend is pure)."""
    native = crypto.native
    if native is not None:
        fn: InetSum = native.inet_sum
        return fn
    return inet_sum_pure
