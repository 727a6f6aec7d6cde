"""Transport checksums over the IPv4/IPv6 pseudo-header (RFC 768, RFC 793, RFC 8200 s8.1).

The sum itself is ``ztone.util.inet_checksum`` (native when ztone's extension is built).
Pseudo-header: source and destination address (4 or 16 bytes each), then the upper-layer
length and the protocol number; as a one's complement sum, its order and field widths
do not matter, only the 16-bit word alignment, so ``protocol + length`` is added as one
number.
"""

from __future__ import annotations

from ztone.util.inet_checksum import inet_sum_function

inet_sum = inet_sum_function()
"""``inet_sum(data, initial)``: the folded one's complement sum, not complemented."""


def pseudo_sum(src: bytes, dst: bytes, protocol: int, length: int) -> int:
    """The folded sum of the pseudo-header (both address lengths are even)."""
    return inet_sum(src + dst, protocol + length)


def transport_checksum(src: bytes, dst: bytes, protocol: int, data: bytes | bytearray) -> int:
    """The checksum to put in ``data`` (whose checksum field holds zero)."""
    return ~inet_sum(data, pseudo_sum(src, dst, protocol, len(data))) & 0xFFFF


def transport_checksum_ok(src: bytes, dst: bytes, protocol: int, data: bytes) -> bool:
    """True when ``data`` (checksum field included) sums to all ones with its pseudo-header."""
    return inet_sum(data, pseudo_sum(src, dst, protocol, len(data))) == 0xFFFF


def header_checksum(header: bytes | bytearray) -> int:
    """The IPv4 header checksum of ``header`` whose checksum field holds zero."""
    return ~inet_sum(header, 0) & 0xFFFF
