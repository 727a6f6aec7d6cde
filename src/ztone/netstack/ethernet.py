"""Ethernet frames as the stack sees them, and the MAC addresses of IP multicast.

A frame is the tuple :data:`EthernetFrame` ``(source MAC, destination MAC, ethertype,
payload)`` -- the same shape as ``ztone.osdep.base.EthernetFrame`` (the stack does not
import osdep); the payload is what follows the 14-byte Ethernet header. MACs are
48-bit integers, most significant byte first on the wire.
"""

from __future__ import annotations

EthernetFrame = tuple[int, int, int, bytes]
"""``(source MAC, destination MAC, ethertype, payload)``."""

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_ARP = 0x0806
ETHERTYPE_IPV6 = 0x86DD

BROADCAST_MAC = 0xFFFF_FFFF_FFFF
ALL_NODES_MAC = 0x3333_0000_0001
"""33:33:00:00:00:01, the MAC of ff02::1 (RFC 2464 section 7)."""

_GROUP_BIT = 0x0100_0000_0000


def is_group_mac(mac: int) -> bool:
    """True for broadcast and multicast MACs (the I/G bit of the first byte)."""
    return bool(mac & _GROUP_BIT)


def ipv6_multicast_mac(address: bytes) -> int:
    """33:33 followed by the last 4 bytes of an IPv6 multicast address (RFC 2464 s7)."""
    return 0x3333_0000_0000 | int.from_bytes(address[12:16], "big")


def ipv4_multicast_mac(address: bytes) -> int:
    """01:00:5e followed by the low 23 bits of an IPv4 multicast address (RFC 1112 s6.4)."""
    return 0x0100_5E00_0000 | (int.from_bytes(address[1:4], "big") & 0x7F_FFFF)


def mac_bytes(mac: int) -> bytes:
    return mac.to_bytes(6, "big")
