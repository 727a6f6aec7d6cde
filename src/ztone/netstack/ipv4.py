"""IPv4 headers (RFC 791).

Layout (20 bytes plus options, ``ihl`` 32-bit words)::

    0  version/ihl  1  0x45 without options
    1  tos          1
    2  total length 2  header + payload (Ethernet padding may follow)
    4  ident        2
    6  flags/frag   2  bit 0x4000 DF, 0x2000 MF, low 13 bits the offset in 8-byte units
    8  ttl          1
    9  protocol     1  1 ICMP, 6 TCP, 17 UDP
    10 checksum     2  over the header only
    12 source       4
    16 destination  4

A fragment (MF set or a non-zero offset) is flagged with its identification, offset
and MF for the stack's bounded reassembly (:mod:`ztone.netstack.fragments`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ztone.errors import MalformedPacket
from ztone.netstack.checksum import header_checksum, inet_sum

PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
HEADER = 20
DEFAULT_TTL = 64

_HEAD = struct.Struct("!BBHHHBBH4s4s")


@dataclass(slots=True)  # not frozen: built once per packet, and frozen init is slow
class Ipv4Packet:
    src: bytes
    dst: bytes
    protocol: int
    ttl: int
    payload: bytes
    fragment: bool
    ident: int = 0
    offset: int = 0
    """A fragment's place in its datagram, in bytes."""
    more: bool = False
    """The "more fragments" flag."""


def parse_ipv4(data: bytes) -> Ipv4Packet:
    """The header fields and the payload (without Ethernet padding).

    Checks version, header length, total length and the header checksum.
    """
    if len(data) < HEADER:
        raise MalformedPacket(f"IPv4 packet of {len(data)} bytes")
    vihl, _tos, total, ident, frag, ttl, proto, _ck, src, dst = _HEAD.unpack_from(data)
    if vihl >> 4 != 4:
        raise MalformedPacket(f"IP version {vihl >> 4} in an IPv4 frame")
    ihl = (vihl & 0x0F) * 4
    if ihl < HEADER or total < ihl or total > len(data):
        raise MalformedPacket(f"IPv4 header length {ihl}, total {total}, have {len(data)}")
    if inet_sum(data[:ihl], 0) != 0xFFFF:
        raise MalformedPacket("IPv4 header checksum mismatch")
    payload = bytes(data[ihl:total])
    if not frag & 0x3FFF:
        return Ipv4Packet(src, dst, proto, ttl, payload, False)
    more = bool(frag & 0x2000)
    return Ipv4Packet(src, dst, proto, ttl, payload, True, ident, (frag & 0x1FFF) * 8, more)


def build_ipv4(
    src: bytes, dst: bytes, protocol: int, payload: bytes, ident: int, ttl: int = DEFAULT_TTL
) -> bytes:
    """A 20-byte header with DF set (the stack never fragments) and the payload."""
    total = HEADER + len(payload)
    fields = (0x45, 0, total, ident & 0xFFFF, 0x4000, ttl, protocol, 0, src, dst)
    header = bytearray(_HEAD.pack(*fields))
    struct.pack_into("!H", header, 10, header_checksum(header))
    return bytes(header) + payload
