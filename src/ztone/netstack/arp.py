"""ARP for IPv4 over Ethernet (RFC 826).

Layout (28 bytes; anything after is Ethernet padding and ignored)::

    0  htype   2  1 (Ethernet)
    2  ptype   2  0x0800 (IPv4)
    4  hlen    1  6
    5  plen    1  4
    6  op      2  1 request, 2 reply
    8  sha     6  sender MAC
    14 spa     4  sender IPv4 address
    18 tha     6  target MAC (zero in a request)
    24 tpa     4  target IPv4 address
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ztone.errors import MalformedPacket

REQUEST = 1
REPLY = 2
LENGTH = 28

_HEAD = struct.Struct("!HHBBH")


@dataclass(frozen=True, slots=True)
class Arp:
    op: int
    sender_mac: int
    sender_ip: bytes
    target_mac: int
    target_ip: bytes


def parse_arp(data: bytes) -> Arp:
    """An Ethernet/IPv4 ARP request or reply; MalformedPacket for anything else."""
    if len(data) < LENGTH:
        raise MalformedPacket(f"ARP packet of {len(data)} bytes (need {LENGTH})")
    htype, ptype, hlen, plen, op = _HEAD.unpack_from(data)
    if (htype, ptype, hlen, plen) != (1, 0x0800, 6, 4):
        raise MalformedPacket(f"ARP for hardware {htype}/{hlen} protocol {ptype:#x}/{plen}")
    if op not in (REQUEST, REPLY):
        raise MalformedPacket(f"ARP operation {op}")
    return Arp(
        op,
        int.from_bytes(data[8:14], "big"),
        bytes(data[14:18]),
        int.from_bytes(data[18:24], "big"),
        bytes(data[24:28]),
    )


def build_arp(arp: Arp) -> bytes:
    if len(arp.sender_ip) != 4 or len(arp.target_ip) != 4:
        raise ValueError("ARP addresses are 4 bytes")
    return (
        _HEAD.pack(1, 0x0800, 6, 4, arp.op)
        + arp.sender_mac.to_bytes(6, "big")
        + arp.sender_ip
        + arp.target_mac.to_bytes(6, "big")
        + arp.target_ip
    )
