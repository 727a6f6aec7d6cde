"""Payload codecs of the VL2 verbs and derived addresses.

PROTOCOL-NETWORK-SERVICE A.5, PROTOCOL-CORE §6.7-6.15.

Offsets below are relative to the verb payload (packet offset 28)::

    FRAME             <[8] nwid> <[2] ethertype> <payload>
    EXT_FRAME         <[8] nwid> <[1] flags> [COM if flags & 0x01]
                      <[6] dest MAC> <[6] source MAC> <[2] ethertype> <payload>
    MULTICAST_LIKE    repeated <[8] nwid> <[6] MAC> <[4] ADI>
    MULTICAST_GATHER  <[8] nwid> <[1] flags> <[6] MAC> <[4] ADI> <[4] limit> [COM if flags & 1]
    OK(GATHER)        <[8] nwid> <[6] MAC> <[4] ADI> <gather results>
    gather results    <[4] total known> <[2] count> count x <[5] address>
    MULTICAST_FRAME   <[8] nwid> <[1] flags> [COM] [<[4] gather limit>] [<[6] source MAC>]
                      <[6] group MAC> <[4] ADI> <[2] ethertype> <payload>
    OK(MULTICAST_FRAME) <[8] nwid> <[6] MAC> <[4] ADI> <[1] flags> [COM] [gather results]
    NETWORK_CONFIG_REQUEST <[8] nwid> <[2] n> <[n] metadata> [<[8] revision> <[8] timestamp>]

The inline COM (deprecated flag 0x01) is parsed with a caller-supplied function
(normally ``CertificateOfMembership.parse``; one that skips it keeps None).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

from ztone.errors import MalformedPacket
from ztone.node.wire.address import Address
from ztone.node.wire.com import CertificateOfMembership
from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.mac import BROADCAST, MAC

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_ARP = 0x0806
ETHERTYPE_IPV6 = 0x86DD

EXT_FRAME_FLAG_COM = 0x01
EXT_FRAME_FLAG_ACK = 0x10
MCFRAME_FLAG_COM = 0x01
MCFRAME_FLAG_GATHER_LIMIT = 0x02
MCFRAME_FLAG_SOURCE_MAC = 0x04
MCFRAME_FLAG_REPLICATE = 0x08

ComParser = Callable[
    [bytes | bytearray | memoryview, int], tuple[CertificateOfMembership | None, int]
]
"""Reads the inline COM at an offset: (the COM or None to ignore it, offset after it)."""


@dataclass(frozen=True, slots=True, order=True)
class MulticastGroup:
    mac: int
    adi: int = 0

    def serialize(self) -> bytes:
        return self.mac.to_bytes(6, "big") + (self.adi & 0xFFFFFFFF).to_bytes(4, "big")

    def __str__(self) -> str:
        return f"{MAC(self.mac)}/{self.adi:08x}"


BROADCAST_GROUP = MulticastGroup(BROADCAST, 0)


def _need(data: bytes | bytearray | memoryview, end: int, what: str) -> None:
    if end > len(data):
        raise MalformedPacket(f"truncated {what}")


def _u(data: bytes | bytearray | memoryview, pos: int, n: int) -> int:
    return int.from_bytes(data[pos : pos + n], "big")


# --- derived addresses (A.5.1) -------------------------------------------------------


def rfc4193_address(nwid: int, address: int) -> InetAddress:
    """``fd<nwid>9993<address>/88``."""
    raw = b"\xfd" + nwid.to_bytes(8, "big") + b"\x99\x93" + address.to_bytes(5, "big")
    return InetAddress(ipaddress.IPv6Address(raw), 88)


def sixplane_address(nwid: int, address: int) -> InetAddress:
    """``fc<n32><address>00000000 0001/40`` where n32 folds the network id."""
    n32 = (nwid ^ (nwid >> 32)) & 0xFFFFFFFF
    raw = b"\xfc" + n32.to_bytes(4, "big") + address.to_bytes(5, "big") + bytes(5) + b"\x01"
    return InetAddress(ipaddress.IPv6Address(raw), 40)


def address_resolution_group(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> MulticastGroup:
    """The group an ARP request / neighbor solicitation for ``ip`` goes to."""
    if ip.version == 4:
        return MulticastGroup(BROADCAST, int(ip))
    tail = ip.packed[13:16]
    return MulticastGroup((0x3333FF << 24) | int.from_bytes(tail, "big"), 0)


def arp_request_target(ethertype: int, payload: bytes | bytearray | memoryview) -> int | None:
    """Target IPv4 of an ARP request (as a u32), else None (§1.5)."""
    if (
        ethertype == ETHERTYPE_ARP
        and len(payload) >= 28
        and payload[2] == 0x08
        and payload[3] == 0x00
        and payload[4] == 6
        and payload[5] == 4
        and payload[7] == 1
    ):
        return int.from_bytes(payload[24:28], "big")
    return None


# --- frames ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Frame:
    nwid: int
    ethertype: int
    payload: bytes


def parse_frame(p: bytes | bytearray | memoryview) -> Frame:
    _need(p, 10, "FRAME")
    return Frame(_u(p, 0, 8), _u(p, 8, 2), bytes(p[10:]))


def serialize_frame(nwid: int, ethertype: int, payload: bytes) -> bytes:
    return nwid.to_bytes(8, "big") + ethertype.to_bytes(2, "big") + payload


@dataclass(frozen=True, slots=True)
class ExtFrame:
    nwid: int
    flags: int
    com: CertificateOfMembership | None
    destination: int
    source: int
    ethertype: int
    payload: bytes


def parse_ext_frame(p: bytes | bytearray | memoryview, parse_com: ComParser) -> ExtFrame:
    _need(p, 9, "EXT_FRAME")
    nwid, flags = _u(p, 0, 8), p[8]
    pos = 9
    com = None
    if flags & EXT_FRAME_FLAG_COM:
        com, pos = parse_com(p, pos)
    _need(p, pos + 14, "EXT_FRAME")
    return ExtFrame(
        nwid, flags, com, _u(p, pos, 6), _u(p, pos + 6, 6), _u(p, pos + 12, 2), bytes(p[pos + 14 :])
    )


def serialize_ext_frame(
    nwid: int, flags: int, destination: int, source: int, ethertype: int, payload: bytes
) -> bytes:
    return (
        nwid.to_bytes(8, "big")
        + bytes((flags,))
        + destination.to_bytes(6, "big")
        + source.to_bytes(6, "big")
        + ethertype.to_bytes(2, "big")
        + payload
    )


# --- multicast ---------------------------------------------------------------------------


def parse_multicast_like(p: bytes | bytearray | memoryview) -> list[tuple[int, MulticastGroup]]:
    out = []
    pos = 0
    while pos + 18 <= len(p):
        out.append((_u(p, pos, 8), MulticastGroup(_u(p, pos + 8, 6), _u(p, pos + 14, 4))))
        pos += 18
    return out


def serialize_multicast_likes(
    nwid: int, groups: list[MulticastGroup], budget: int = 10024 - 28
) -> list[bytes]:
    """LIKE payloads, each under ``budget`` bytes."""
    payloads: list[bytes] = []
    current = bytearray()
    for g in groups:
        if len(current) + 18 > budget:
            payloads.append(bytes(current))
            current = bytearray()
        current += nwid.to_bytes(8, "big") + g.serialize()
    if current:
        payloads.append(bytes(current))
    return payloads


@dataclass(frozen=True, slots=True)
class Gather:
    nwid: int
    flags: int
    group: MulticastGroup
    limit: int
    com: CertificateOfMembership | None


def parse_gather(p: bytes | bytearray | memoryview, parse_com: ComParser) -> Gather:
    _need(p, 23, "MULTICAST_GATHER")
    com = None
    flags = p[8]
    if flags & 0x01 and len(p) > 23:
        com, _ = parse_com(p, 23)
    return Gather(_u(p, 0, 8), flags, MulticastGroup(_u(p, 9, 6), _u(p, 15, 4)), _u(p, 19, 4), com)


def serialize_gather(nwid: int, group: MulticastGroup, limit: int, com: bytes | None) -> bytes:
    flags = 0x01 if com else 0x00
    return (
        nwid.to_bytes(8, "big")
        + bytes((flags,))
        + group.serialize()
        + limit.to_bytes(4, "big")
        + (com or b"")
    )


def serialize_gather_results(total: int, addresses: list[int]) -> bytes:
    return (
        (total & 0xFFFFFFFF).to_bytes(4, "big")
        + len(addresses).to_bytes(2, "big")
        + b"".join(a.to_bytes(5, "big") for a in addresses)
    )


def parse_gather_results(p: bytes | bytearray | memoryview, pos: int) -> tuple[int, list[Address]]:
    _need(p, pos + 6, "gather results")
    total = _u(p, pos, 4)
    count = _u(p, pos + 4, 2)
    pos += 6
    _need(p, pos + 5 * count, "gather results")
    return total, [Address.from_bytes5(p, pos + 5 * i) for i in range(count)]


@dataclass(frozen=True, slots=True)
class MulticastFrame:
    nwid: int
    flags: int
    com: CertificateOfMembership | None
    gather_limit: int
    source: int | None
    group: MulticastGroup
    ethertype: int
    payload: bytes


def parse_multicast_frame(
    p: bytes | bytearray | memoryview, parse_com: ComParser
) -> MulticastFrame:
    _need(p, 9, "MULTICAST_FRAME")
    nwid, flags = _u(p, 0, 8), p[8]
    pos = 9
    com = None
    if flags & MCFRAME_FLAG_COM:
        com, pos = parse_com(p, pos)
    gather_limit = 0
    if flags & MCFRAME_FLAG_GATHER_LIMIT:
        _need(p, pos + 4, "MULTICAST_FRAME")
        gather_limit = _u(p, pos, 4)
        pos += 4
    source: int | None = None
    if flags & MCFRAME_FLAG_SOURCE_MAC:
        _need(p, pos + 6, "MULTICAST_FRAME")
        source = _u(p, pos, 6)
        pos += 6
    _need(p, pos + 12, "MULTICAST_FRAME")
    group = MulticastGroup(_u(p, pos, 6), _u(p, pos + 6, 4))
    return MulticastFrame(
        nwid, flags, com, gather_limit, source, group, _u(p, pos + 10, 2), bytes(p[pos + 12 :])
    )


def serialize_multicast_frame(
    nwid: int,
    flags: int,
    gather_limit: int,
    source: int | None,
    group: MulticastGroup,
    ethertype: int,
    payload: bytes,
) -> bytes:
    out = bytearray(nwid.to_bytes(8, "big"))
    out.append(flags)
    if flags & MCFRAME_FLAG_GATHER_LIMIT:
        out += gather_limit.to_bytes(4, "big")
    if flags & MCFRAME_FLAG_SOURCE_MAC:
        out += (source or 0).to_bytes(6, "big")
    out += group.serialize() + ethertype.to_bytes(2, "big") + payload[:10000]
    return bytes(out)


# --- config requests -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfigRequest:
    nwid: int
    metadata: bytes
    revision: int
    timestamp: int


def parse_config_request(p: bytes | bytearray | memoryview) -> ConfigRequest:
    _need(p, 10, "NETWORK_CONFIG_REQUEST")
    n = _u(p, 8, 2)
    _need(p, 10 + n, "NETWORK_CONFIG_REQUEST metadata")
    meta = bytes(p[10 : 10 + n])
    rev = ts = 0
    if len(p) >= 10 + n + 16:
        rev = _u(p, 10 + n, 8)
        ts = _u(p, 18 + n, 8)
    return ConfigRequest(_u(p, 0, 8), meta, rev, ts)


def serialize_config_request(nwid: int, metadata: bytes, revision: int, timestamp: int) -> bytes:
    return (
        nwid.to_bytes(8, "big")
        + len(metadata).to_bytes(2, "big")
        + metadata
        + revision.to_bytes(8, "big")
        + (timestamp & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big")
    )


# --- IPv6 NDP emulation (A.5.10.3) --------------------------------------------------------


def _icmpv6_checksum(src: bytes, dst: bytes, message: bytes) -> int:
    data = src + dst + len(message).to_bytes(4, "big") + b"\x00\x00\x00\x3a" + message
    if len(data) % 2:
        data += b"\x00"
    total = sum(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ndp_emulated_advertisement(
    nwid: int, my_address: int, my_ips: list[InetAddress], payload: bytes
) -> tuple[int, bytes] | None:
    """For a multicast Neighbor Solicitation of a ZeroTier member's address, the
    (source MAC, IPv6 packet) of a fabricated Neighbor Advertisement, else None."""
    if len(payload) < 64 or payload[6] != 58 or payload[40] != 135:
        return None
    target = bytes(payload[48:64])
    n32 = ((nwid ^ (nwid >> 32)) & 0xFFFFFFFF).to_bytes(4, "big")
    for ip in my_ips:
        if ip.ip.version != 6:
            continue
        s = ip.ip.packed
        embedded: int | None = None
        if (
            ip.port == 88
            and s[0] == 0xFD
            and s[9] == 0x99
            and s[10] == 0x93
            and target[:11] == s[:11]
        ):
            embedded = int.from_bytes(target[11:16], "big")
        elif ip.port == 40 and s[0] == 0xFC and s[1:5] == n32 and target[:5] == s[:5]:
            embedded = int.from_bytes(target[5:10], "big")
        if embedded is None or embedded == my_address:
            continue
        mac = MAC.from_address(embedded, nwid)
        icmp = bytearray(
            b"\x88\x00\x00\x00\x60\x00\x00\x00" + target + b"\x02\x01" + mac.to_bytes6()
        )
        csum = _icmpv6_checksum(target, s, bytes(icmp))
        icmp[2:4] = csum.to_bytes(2, "big")
        packet = b"\x60\x00\x00\x00\x00\x20\x3a\xff" + target + s + bytes(icmp)
        return int(mac), packet
    return None
