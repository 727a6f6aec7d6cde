"""ICMP for IPv4 (RFC 792) and ICMPv6 (RFC 4443): the header and echo.

Both start with the same 4 bytes::

    0 type     1
    1 code     1
    2 checksum 2  ICMPv4: over the ICMP message; ICMPv6: also over the IPv6
                  pseudo-header (next header 58)
    4 body     ...  echo: identifier (2), sequence (2), data

Echo request/reply types: 8/0 (ICMPv4), 128/129 (ICMPv6). Destination unreachable:
3 code 3 "port unreachable" (ICMPv4), 1 code 4 (ICMPv6); its body is 4 unused bytes then
as much of the offending packet as fits (RFC 1812 4.3.2.3, RFC 4443 3.1).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ztone.errors import MalformedPacket
from ztone.netstack.checksum import inet_sum, transport_checksum, transport_checksum_ok
from ztone.netstack.ipv6 import PROTO_ICMPV6

ECHO_REPLY_V4 = 0
UNREACHABLE_V4 = 3
ECHO_REQUEST_V4 = 8
PORT_UNREACHABLE_V4 = 3
UNREACHABLE_V6 = 1
PORT_UNREACHABLE_V6 = 4
ECHO_REQUEST_V6 = 128
ECHO_REPLY_V6 = 129

_HEAD = struct.Struct("!BBH")


@dataclass(frozen=True, slots=True)
class Icmp:
    type: int
    code: int
    body: bytes


def parse_icmp4(data: bytes) -> Icmp:
    if len(data) < 4:
        raise MalformedPacket(f"ICMP message of {len(data)} bytes")
    if inet_sum(data, 0) != 0xFFFF:
        raise MalformedPacket("ICMP checksum mismatch")
    return Icmp(data[0], data[1], bytes(data[4:]))


def build_icmp4(msg: Icmp) -> bytes:
    packet = bytearray(_HEAD.pack(msg.type, msg.code, 0) + msg.body)
    struct.pack_into("!H", packet, 2, ~inet_sum(packet, 0) & 0xFFFF)
    return bytes(packet)


def parse_icmp6(data: bytes, src: bytes, dst: bytes) -> Icmp:
    if len(data) < 4:
        raise MalformedPacket(f"ICMPv6 message of {len(data)} bytes")
    if not transport_checksum_ok(src, dst, PROTO_ICMPV6, data):
        raise MalformedPacket("ICMPv6 checksum mismatch")
    return Icmp(data[0], data[1], bytes(data[4:]))


def build_icmp6(msg: Icmp, src: bytes, dst: bytes) -> bytes:
    packet = bytearray(_HEAD.pack(msg.type, msg.code, 0) + msg.body)
    struct.pack_into("!H", packet, 2, transport_checksum(src, dst, PROTO_ICMPV6, packet))
    return bytes(packet)
