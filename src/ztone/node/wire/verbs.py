"""Payload codecs of the VL1 verbs other than HELLO (PROTOCOL-CORE §6.3-§6.6, §6.16, §6.19).

Offsets are absolute packet offsets; the payload starts at 28.

* OK / ERROR: ``<[1] in-re verb> <[8] in-re packet id>`` then, for ERROR,
  ``<[1] error code>``; the verb-specific part follows (OK at 37, ERROR at 38).
* WHOIS: one or more ``<[5] address>``; OK(WHOIS): concatenated public identities.
* RENDEZVOUS: ``<[1] flags> <[5] address> <[2] port> <[1] ip length 4|16> <[4|16] ip>``.
* PUSH_DIRECT_PATHS: ``<[2] count>`` then records ``<[1] flags> <[2] ext length E>
  <[E] ext> <[1] address type 4|6> <[1] address length> <[...] ip, port>``.
* USER_MESSAGE: ``<[8] message type> <[...] data>``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ztone.errors import MalformedPacket
from ztone.node.wire.address import Address
from ztone.node.wire.identity import Identity
from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.packet import IDX_PAYLOAD

IDX_INRE_VERB = 28
IDX_INRE_PACKET_ID = 29
IDX_OK_PAYLOAD = 37
IDX_ERROR_CODE = 37
IDX_ERROR_PAYLOAD = 38

PUSH_FLAG_FORGET_PATH = 0x01
PUSH_FLAG_CLUSTER_REDIRECT = 0x02


@dataclass(frozen=True, slots=True)
class InRe:
    verb: int
    packet_id: int


def parse_in_re(packet: bytes | bytearray | memoryview) -> InRe:
    if len(packet) < IDX_OK_PAYLOAD:
        raise MalformedPacket("truncated OK/ERROR header")
    return InRe(packet[IDX_INRE_VERB] & 0x1F, int.from_bytes(packet[29:37], "big"))


def in_re_payload(verb: int, packet_id: int) -> bytes:
    return bytes((verb & 0xFF,)) + packet_id.to_bytes(8, "big")


def parse_error_code(packet: bytes | bytearray | memoryview) -> int:
    if len(packet) < IDX_ERROR_PAYLOAD:
        raise MalformedPacket("truncated ERROR")
    return packet[IDX_ERROR_CODE]


def parse_whois(packet: bytes | bytearray | memoryview) -> list[Address]:
    out = []
    pos = IDX_PAYLOAD
    while pos + 5 <= len(packet):
        out.append(Address.from_bytes5(packet, pos))
        pos += 5
    return out


def parse_ok_whois(packet: bytes | bytearray | memoryview) -> Identity:
    """Only the first identity of an OK(WHOIS) is used (§6.4)."""
    identity, _ = Identity.parse(packet, IDX_OK_PAYLOAD)
    return identity


@dataclass(frozen=True, slots=True)
class Rendezvous:
    address: Address
    endpoint: InetAddress
    flags: int = 0

    def serialize(self) -> bytes:
        ip = self.endpoint.ip.packed
        return (
            bytes((self.flags,))
            + self.address.to_bytes5()
            + self.endpoint.port.to_bytes(2, "big")
            + bytes((len(ip),))
            + ip
        )


def parse_rendezvous(packet: bytes | bytearray | memoryview) -> Rendezvous:
    if len(packet) < 37:
        raise MalformedPacket("truncated RENDEZVOUS")
    flags = packet[28]
    address = Address.from_bytes5(packet, 29)
    port = int.from_bytes(packet[34:36], "big")
    length = packet[36]
    if length not in (4, 16) or len(packet) < 37 + length:
        raise MalformedPacket("invalid RENDEZVOUS address")
    raw = bytes(packet[37 : 37 + length])
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = (
        ipaddress.IPv4Address(raw) if length == 4 else ipaddress.IPv6Address(raw)
    )
    return Rendezvous(address, InetAddress(ip, port), flags)


@dataclass(frozen=True, slots=True)
class PushedPath:
    flags: int
    endpoint: InetAddress | None  # None: a record of an unknown address type


def serialize_push_direct_paths(endpoints: list[InetAddress]) -> list[bytes]:
    """Payloads (after the verb) carrying every endpoint, each kept under ~1,200 bytes."""
    payloads: list[bytes] = []
    records: list[bytes] = []
    size = IDX_PAYLOAD + 2
    for ep in endpoints:
        raw = ep.ip.packed + ep.port.to_bytes(2, "big")
        rec = b"\x00\x00\x00" + bytes((4 if ep.ip.version == 4 else 6, len(raw))) + raw
        if records and size + 24 >= 1200:
            payloads.append(len(records).to_bytes(2, "big") + b"".join(records))
            records, size = [], IDX_PAYLOAD + 2
        records.append(rec)
        size += len(rec)
    if records:
        payloads.append(len(records).to_bytes(2, "big") + b"".join(records))
    return payloads


def parse_push_direct_paths(packet: bytes | bytearray | memoryview) -> list[PushedPath]:
    if len(packet) < IDX_PAYLOAD + 2:
        raise MalformedPacket("truncated PUSH_DIRECT_PATHS")
    count = int.from_bytes(packet[28:30], "big")
    pos = 30
    out: list[PushedPath] = []
    for _ in range(count):
        if pos + 3 > len(packet):
            raise MalformedPacket("truncated PUSH_DIRECT_PATHS record")
        flags = packet[pos]
        ext = int.from_bytes(packet[pos + 1 : pos + 3], "big")
        pos += 3 + ext
        if pos + 2 > len(packet):
            raise MalformedPacket("truncated PUSH_DIRECT_PATHS record")
        kind, length = packet[pos], packet[pos + 1]
        pos += 2
        if pos + length > len(packet):
            raise MalformedPacket("truncated PUSH_DIRECT_PATHS address")
        endpoint: InetAddress | None = None
        if kind == 4 and length >= 6:
            ip4 = ipaddress.IPv4Address(bytes(packet[pos : pos + 4]))
            endpoint = InetAddress(ip4, int.from_bytes(packet[pos + 4 : pos + 6], "big"))
        elif kind == 6 and length >= 18:
            ip6 = ipaddress.IPv6Address(bytes(packet[pos : pos + 16]))
            endpoint = InetAddress(ip6, int.from_bytes(packet[pos + 16 : pos + 18], "big"))
        out.append(PushedPath(flags, endpoint))
        pos += length
    return out


def parse_user_message(packet: bytes | bytearray | memoryview) -> tuple[int, bytes]:
    if len(packet) < IDX_PAYLOAD + 8:
        raise MalformedPacket("truncated USER_MESSAGE")
    return int.from_bytes(packet[28:36], "big"), bytes(packet[36:])
