"""IPv6 neighbour discovery: neighbour solicitation and advertisement (RFC 4861 s4.3, s4.4).

Both are ICMPv6 messages (see :mod:`ztone.netstack.icmp`) sent with hop limit 255; the
body after the 4-byte ICMPv6 header is::

    NS (type 135): 0 reserved 4 | 4 target address 16 | 20 options
    NA (type 136): 0 flags 1 (0x80 router, 0x40 solicited, 0x20 override), reserved 3
                   | 4 target address 16 | 20 options

Options are ``type (1), length (1, in 8-byte units, never 0), data``; the link-layer
address options are 8 bytes: type 1 (source, in NS) or 2 (target, in NA), length 1,
then the 6-byte MAC.

A node listens for solicitations on the solicited-node multicast address of each of its
addresses: ff02::1:ff00:0/104 plus the address's low 24 bits (RFC 4291 s2.7.1).
"""

from __future__ import annotations

from dataclasses import dataclass

from ztone.errors import MalformedPacket

NEIGHBOR_SOLICITATION = 135
NEIGHBOR_ADVERTISEMENT = 136
HOP_LIMIT = 255
OPT_SOURCE_LL = 1
OPT_TARGET_LL = 2
FLAG_ROUTER = 0x80
FLAG_SOLICITED = 0x40
FLAG_OVERRIDE = 0x20
MAX_OPTIONS = 32

_SOLICITED_PREFIX = bytes.fromhex("ff0200000000000000000001ff")


@dataclass(frozen=True, slots=True)
class NeighborMessage:
    """An NS (``flags`` 0) or NA; ``link_mac`` is the source (NS) or target (NA) MAC
    option when present."""

    type: int
    flags: int
    target: bytes
    link_mac: int | None


def solicited_node(address: bytes) -> bytes:
    """ff02::1:ffXX:XXXX for the IPv6 ``address``."""
    return _SOLICITED_PREFIX + address[13:16]


def parse_neighbor(msg_type: int, code: int, body: bytes) -> NeighborMessage:
    """An NS or NA body (after the ICMPv6 header) checked as RFC 4861 s7.1 asks."""
    if msg_type not in (NEIGHBOR_SOLICITATION, NEIGHBOR_ADVERTISEMENT):
        raise MalformedPacket(f"ICMPv6 type {msg_type} is not NS/NA")
    if code != 0:
        raise MalformedPacket(f"neighbour discovery code {code}")
    if len(body) < 20:
        raise MalformedPacket(f"neighbour discovery body of {len(body)} bytes")
    target = bytes(body[4:20])
    if target[0] == 0xFF:
        raise MalformedPacket("neighbour discovery for a multicast target")
    wanted = OPT_SOURCE_LL if msg_type == NEIGHBOR_SOLICITATION else OPT_TARGET_LL
    mac = None
    at = 20
    for _ in range(MAX_OPTIONS):
        if at >= len(body):
            break
        if at + 2 > len(body):
            raise MalformedPacket("truncated neighbour discovery option")
        kind, units = body[at], body[at + 1]
        if units == 0:
            raise MalformedPacket("neighbour discovery option of length 0")
        end = at + units * 8
        if end > len(body):
            raise MalformedPacket("neighbour discovery option longer than the message")
        if kind == wanted and units == 1:
            mac = int.from_bytes(body[at + 2 : at + 8], "big")
        at = end
    else:
        if at < len(body):
            raise MalformedPacket(f"more than {MAX_OPTIONS} neighbour discovery options")
    flags = body[0] & 0xE0 if msg_type == NEIGHBOR_ADVERTISEMENT else 0
    return NeighborMessage(msg_type, flags, target, mac)


def neighbor_body(msg: NeighborMessage) -> bytes:
    """The NS/NA body (give it to ``build_icmp6`` with ``msg.type``, code 0)."""
    option = OPT_SOURCE_LL if msg.type == NEIGHBOR_SOLICITATION else OPT_TARGET_LL
    body = bytes([msg.flags, 0, 0, 0]) + msg.target
    if msg.link_mac is not None:
        body += bytes([option, 1]) + msg.link_mac.to_bytes(6, "big")
    return body
