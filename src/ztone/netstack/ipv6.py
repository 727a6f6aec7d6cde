"""IPv6 headers (RFC 8200).

Layout (40 bytes)::

    0  version/class/flow 4  version 6 in the top 4 bits
    4  payload length     2  bytes after this header (Ethernet padding may follow)
    6  next header        1  58 ICMPv6, 6 TCP, 17 UDP, or an extension header
    7  hop limit          1
    8  source             16
    24 destination        16

Extension headers hop-by-hop (0), routing (43) and destination options (60) are
skipped by their length byte (``(len + 1) * 8`` bytes). A fragment header (44) ends
the walk: ``next header (1), reserved (1), offset in 8-byte units << 3 | M (2),
identification (4)``; the packet is flagged as a fragment whose ``next_header`` is the
fragment header's and whose payload is what follows it (the stack reassembles them,
:mod:`ztone.netstack.fragments`). At most :data:`MAX_EXTENSIONS` extension headers are
walked.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ztone.errors import MalformedPacket

PROTO_TCP = 6
PROTO_UDP = 17
PROTO_ICMPV6 = 58
HEADER = 40
DEFAULT_HOP_LIMIT = 64
MAX_EXTENSIONS = 8

_SKIPPED = frozenset({0, 43, 60})
_FRAGMENT = 44
_HEAD = struct.Struct("!IHBB16s16s")
_FRAG = struct.Struct("!BBHI")


@dataclass(slots=True)  # not frozen: built once per packet, and frozen init is slow
class Ipv6Packet:
    src: bytes
    dst: bytes
    next_header: int
    hop_limit: int
    payload: bytes
    fragment: bool
    ident: int = 0
    offset: int = 0
    """A fragment's place in its datagram, in bytes."""
    more: bool = False
    """The M ("more fragments") flag."""


def parse_ipv6(data: bytes) -> Ipv6Packet:
    """The addresses, the upper-layer protocol and its payload (extension headers skipped)."""
    if len(data) < HEADER:
        raise MalformedPacket(f"IPv6 packet of {len(data)} bytes")
    vcf, plen, nh, hops, src, dst = _HEAD.unpack_from(data)
    if vcf >> 28 != 6:
        raise MalformedPacket(f"IP version {vcf >> 28} in an IPv6 frame")
    end = HEADER + plen
    if end > len(data):
        raise MalformedPacket(f"IPv6 payload length {plen}, have {len(data) - HEADER}")
    at = HEADER
    for _ in range(MAX_EXTENSIONS):
        if nh == _FRAGMENT:
            if at + 8 > end:
                raise MalformedPacket("truncated IPv6 fragment header")
            upper, _reserved, place, ident = _FRAG.unpack_from(data, at)
            payload = bytes(data[at + 8 : end])
            return Ipv6Packet(
                src, dst, upper, hops, payload, True, ident, place & 0xFFF8, bool(place & 1)
            )
        if nh not in _SKIPPED:
            return Ipv6Packet(src, dst, nh, hops, bytes(data[at:end]), False)
        if at + 8 > end:
            raise MalformedPacket("truncated IPv6 extension header")
        nh, size = data[at], (data[at + 1] + 1) * 8
        at += size
        if at > end:
            raise MalformedPacket("IPv6 extension header longer than the packet")
    raise MalformedPacket(f"more than {MAX_EXTENSIONS} IPv6 extension headers")


def build_ipv6(
    src: bytes, dst: bytes, next_header: int, payload: bytes, hop_limit: int = DEFAULT_HOP_LIMIT
) -> bytes:
    return _HEAD.pack(0x6000_0000, len(payload), next_header, hop_limit, src, dst) + payload
