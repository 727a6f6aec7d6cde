"""UDP datagrams (RFC 768; over IPv6, RFC 8200 s8.1).

Layout::

    0 source port      2
    2 destination port 2
    4 length           2  header + data (8 or more; Ethernet/IP padding may follow)
    6 checksum         2  over the pseudo-header (protocol 17) and the datagram; 0 means
                          "none" over IPv4, and is invalid over IPv6; a computed 0 is
                          sent as 0xffff
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ztone.errors import MalformedPacket
from ztone.netstack.checksum import transport_checksum, transport_checksum_ok

PROTO_UDP = 17
HEADER = 8

_HEAD = struct.Struct("!HHHH")


@dataclass(slots=True)  # not frozen: built once per packet, and frozen init is slow
class UdpDatagram:
    src_port: int
    dst_port: int
    payload: bytes


def parse_udp(data: bytes, src_ip: bytes, dst_ip: bytes) -> UdpDatagram:
    """Checks the length and (when present) the checksum; ``src_ip``/``dst_ip`` are 4 or
    16 bytes (the family of the pseudo-header)."""
    if len(data) < HEADER:
        raise MalformedPacket(f"UDP datagram of {len(data)} bytes")
    sport, dport, length, checksum = _HEAD.unpack_from(data)
    if length < HEADER or length > len(data):
        raise MalformedPacket(f"UDP length {length}, have {len(data)}")
    data = data[:length]
    if checksum == 0:
        if len(src_ip) == 16:
            raise MalformedPacket("UDP over IPv6 without a checksum")
    elif not transport_checksum_ok(src_ip, dst_ip, PROTO_UDP, data):
        raise MalformedPacket("UDP checksum mismatch")
    return UdpDatagram(sport, dport, bytes(data[HEADER:]))


def build_udp(dgram: UdpDatagram, src_ip: bytes, dst_ip: bytes) -> bytes:
    packet = bytearray(_HEAD.pack(dgram.src_port, dgram.dst_port, HEADER + len(dgram.payload), 0))
    packet += dgram.payload
    checksum = transport_checksum(src_ip, dst_ip, PROTO_UDP, packet) or 0xFFFF
    struct.pack_into("!H", packet, 6, checksum)
    return bytes(packet)
