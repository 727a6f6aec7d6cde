"""The VL1 packet: header codec, verbs, compression (PROTOCOL-CORE §5, §6.0).

Header (28 bytes before the verb payload)::

    <[8] packet id / IV>          random; suite 3: first half of the SIV tag
    <[5] destination address>
    <[5] source address>
    <[1] flags>                   F F C C C H H H: 0x80 deprecated "encrypted",
                                  0x40 fragmented, cipher suite, hop count
    <[8] MAC>                     suites 0/1: Poly1305; 2: trusted path id; 3: tag half
    <[1] verb>                    bits 4..0 verb, 0x80 = payload LZ4-compressed
    [... verb payload]

Compression (§5.4): the bytes after the verb as a raw LZ4 block; applied before
armor, only when the payload exceeds 64 bytes and shrinks.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import lz4.block

from ztone.errors import MalformedPacket
from ztone.node.wire.address import Address

IDX_IV = 0
IDX_DEST = 8
IDX_SOURCE = 13
IDX_FLAGS = 18
IDX_MAC = 19
IDX_VERB = 27
IDX_PAYLOAD = 28
MIN_PACKET_LENGTH = 28
MAX_PACKET_LENGTH = 10024
MAX_UNCOMPRESSED_PAYLOAD = MAX_PACKET_LENGTH - IDX_PAYLOAD

FLAG_ENCRYPTED = 0x80
FLAG_FRAGMENTED = 0x40
VERB_FLAG_COMPRESSED = 0x80
VERB_MASK = 0x1F
HOPS_MASK = 0x07
COMPRESSION_THRESHOLD = 64
PROTO_VERSION = 12
PROTO_VERSION_MIN = 4


class Verb(IntEnum):
    """Verb numbers (§6.0)."""

    NOP = 0x00
    HELLO = 0x01
    ERROR = 0x02
    OK = 0x03
    WHOIS = 0x04
    RENDEZVOUS = 0x05
    FRAME = 0x06
    EXT_FRAME = 0x07
    ECHO = 0x08
    MULTICAST_LIKE = 0x09
    NETWORK_CREDENTIALS = 0x0A
    NETWORK_CONFIG_REQUEST = 0x0B
    NETWORK_CONFIG = 0x0C
    MULTICAST_GATHER = 0x0D
    MULTICAST_FRAME = 0x0E
    PUSH_DIRECT_PATHS = 0x10
    ACK = 0x12
    QOS_MEASUREMENT = 0x13
    USER_MESSAGE = 0x14
    REMOTE_TRACE = 0x15
    PATH_NEGOTIATION_REQUEST = 0x16


class ErrorCode(IntEnum):
    """ERROR codes (§6.3)."""

    NONE = 0x00
    INVALID_REQUEST = 0x01
    BAD_PROTOCOL_VERSION = 0x02
    OBJ_NOT_FOUND = 0x03
    IDENTITY_COLLISION = 0x04
    UNSUPPORTED_OPERATION = 0x05
    NEED_MEMBERSHIP_CERTIFICATE = 0x06
    NETWORK_ACCESS_DENIED = 0x07
    UNWANTED_MULTICAST = 0x08
    NETWORK_AUTHENTICATION_REQUIRED = 0x09


def verb_name(verb: int) -> str:
    try:
        return Verb(verb).name
    except ValueError:
        return f"UNKNOWN_{verb:#04x}"


@dataclass(frozen=True, slots=True)
class Header:
    """The parsed 28-byte header of a packet (head datagram or reassembled)."""

    packet_id: int
    destination: Address
    source: Address
    flags: int
    mac: bytes

    @property
    def cipher(self) -> int:
        return (self.flags >> 3) & 7

    @property
    def hops(self) -> int:
        return self.flags & HOPS_MASK

    @property
    def fragmented(self) -> bool:
        return bool(self.flags & FLAG_FRAGMENTED)


def parse_header(data: bytes | bytearray | memoryview) -> Header:
    """Decode the header; :class:`MalformedPacket` if shorter than 28 bytes."""
    if len(data) < MIN_PACKET_LENGTH:
        raise MalformedPacket(f"packet of {len(data)} bytes is shorter than its header")
    return Header(
        packet_id=int.from_bytes(data[0:8], "big"),
        destination=Address(int.from_bytes(data[8:13], "big")),
        source=Address(int.from_bytes(data[13:18], "big")),
        flags=data[IDX_FLAGS],
        mac=bytes(data[IDX_MAC:IDX_VERB]),
    )


def build_packet(
    packet_id: bytes,
    destination: int,
    source: int,
    verb: int,
    payload: bytes | bytearray | memoryview = b"",
) -> bytearray:
    """A plaintext packet with flags 0 and a zero MAC field, ready to compress/armor."""
    if len(packet_id) != 8:
        raise ValueError("packet id must be 8 bytes")
    packet = bytearray(packet_id)
    packet += destination.to_bytes(5, "big")
    packet += source.to_bytes(5, "big")
    packet += bytes(9)
    packet.append(verb & 0xFF)
    packet += payload
    return packet


def verb_of(packet: bytes | bytearray | memoryview) -> int:
    """The verb number of a de-armored packet (compression flag masked off)."""
    if len(packet) < MIN_PACKET_LENGTH:
        raise MalformedPacket("packet too short for a verb")
    return packet[IDX_VERB] & VERB_MASK


def increment_hops(packet: bytearray) -> int:
    """Relay step: hops = (hops + 1) mod 8 keeping the upper 5 flag bits; new count."""
    flags = packet[IDX_FLAGS]
    hops = ((flags & HOPS_MASK) + 1) & HOPS_MASK
    packet[IDX_FLAGS] = (flags & 0xF8) | hops
    return hops


def compress(packet: bytearray) -> bytearray:
    """Compress the payload in place if that helps (sender rule of §5.4)."""
    payload = packet[IDX_PAYLOAD:]
    if len(payload) <= COMPRESSION_THRESHOLD or packet[IDX_VERB] & VERB_FLAG_COMPRESSED:
        return packet
    packed = lz4.block.compress(bytes(payload), mode="default", store_size=False)
    if len(packed) < len(payload):
        del packet[IDX_PAYLOAD:]
        packet += packed
        packet[IDX_VERB] |= VERB_FLAG_COMPRESSED
    return packet


def uncompress(packet: bytearray) -> bytearray:
    """Undo :func:`compress` in place (receiver rule of §5.4); MalformedPacket on failure."""
    if len(packet) < MIN_PACKET_LENGTH:
        raise MalformedPacket("packet too short")
    if not packet[IDX_VERB] & VERB_FLAG_COMPRESSED:
        return packet
    try:
        plain = lz4.block.decompress(
            bytes(packet[IDX_PAYLOAD:]), uncompressed_size=MAX_PACKET_LENGTH
        )
    except (lz4.block.LZ4BlockError, ValueError) as e:
        raise MalformedPacket(f"LZ4 decompression failed: {e}") from e
    if not 0 < len(plain) <= MAX_UNCOMPRESSED_PAYLOAD:
        raise MalformedPacket(f"decompressed payload of {len(plain)} bytes is out of bounds")
    del packet[IDX_PAYLOAD:]
    packet += plain
    packet[IDX_VERB] &= ~VERB_FLAG_COMPRESSED & 0xFF
    return packet
