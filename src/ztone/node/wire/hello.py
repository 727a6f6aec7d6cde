"""HELLO and OK(HELLO) payloads (PROTOCOL-CORE §6.2, §4.6).

HELLO, sent with suite 0 (MAC only)::

    28  <[1] protocol version (12)> <[1] major> <[1] minor> <[2] revision>
    33  <[8] timestamp (sender's clock, echoed in OK)>
    41  <[71] sender identity, public binary form>
    112 <[1/7/19] InetAddress the HELLO was sent to>
    +0  <[8] planet world id> <[8] planet world timestamp>
    +16 <[2] moon count N>                       \\ encrypted with cryptField:
    +18 N x <[1] type 127> <[8] id> <[8] ts>     / Salsa20/12, unmangled key

OK(HELLO) payload (after the OK header's in-re verb and packet id)::

    <[8] echoed timestamp> <[1] protocol> <[1] major> <[1] minor> <[2] revision>
    <[1/7/19] InetAddress the HELLO came from> <[2] W> <[W] serialized worlds>
"""

from __future__ import annotations

from dataclasses import dataclass

from ztone.crypto.armor import SUITE_POLY1305_NONE, PeerKey, armor, crypt_field, dearmor
from ztone.errors import MalformedPacket
from ztone.node.wire.address import Address
from ztone.node.wire.identity import Identity
from ztone.node.wire.inetaddress import InetAddress, parse_inet, serialize_inet
from ztone.node.wire.packet import IDX_PAYLOAD, PROTO_VERSION, Verb, build_packet

MOON_RECORD_LENGTH = 17
WORLD_TYPE_MOON = 127
IDX_HELLO_IDENTITY = 41


@dataclass(frozen=True, slots=True)
class MoonRecord:
    world_type: int
    world_id: int
    timestamp: int


@dataclass(frozen=True, slots=True)
class Hello:
    """A decoded HELLO. Optional tail fields are ``None``/empty when absent."""

    protocol_version: int
    version: tuple[int, int, int]
    timestamp: int
    identity: Identity
    destination: InetAddress | None = None
    planet_id: int | None = None
    planet_timestamp: int | None = None
    moons: tuple[MoonRecord, ...] = ()


def _encode_fields(hello: Hello) -> tuple[bytes, int]:
    """Payload bytes after the verb and the payload-relative cryptField start."""
    major, minor, revision = hello.version
    body = bytearray()
    body.append(hello.protocol_version & 0xFF)
    body.append(major & 0xFF)
    body.append(minor & 0xFF)
    body += (revision & 0xFFFF).to_bytes(2, "big")
    body += (hello.timestamp & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big")
    body += hello.identity.serialize(False)
    body += serialize_inet(hello.destination)
    body += (hello.planet_id or 0).to_bytes(8, "big")
    body += (hello.planet_timestamp or 0).to_bytes(8, "big")
    crypt_start = len(body)
    body += len(hello.moons).to_bytes(2, "big")
    for m in hello.moons:
        body.append(m.world_type & 0xFF)
        body += m.world_id.to_bytes(8, "big") + m.timestamp.to_bytes(8, "big")
    return bytes(body), crypt_start


def make_hello_packet(packet_id: bytes, destination: Address, key: PeerKey, hello: Hello) -> bytes:
    """Build, cryptField-encrypt and armor (suite 0) a HELLO to ``destination``."""
    body, crypt_start = _encode_fields(hello)
    packet = build_packet(packet_id, destination, hello.identity.address, Verb.HELLO, body)
    crypt_field(key, packet, IDX_PAYLOAD + crypt_start)
    armor(packet, key, SUITE_POLY1305_NONE)
    return bytes(packet)


def hello_identity(packet: bytes | bytearray | memoryview) -> Identity:
    """The sender identity of a HELLO, readable before any key is known."""
    identity, _ = Identity.parse(packet, IDX_HELLO_IDENTITY)
    return identity


def parse_hello(packet: bytes | bytearray | memoryview, key: PeerKey | None) -> Hello:
    """Decode a HELLO packet (header included).

    With ``key`` the MAC is checked (MalformedPacket if it fails) and the moon list
    decrypted; without it the moon list is left out.
    """
    data = bytearray(packet)
    if len(data) < IDX_HELLO_IDENTITY:
        raise MalformedPacket("truncated HELLO")
    if key is not None and not dearmor(data, key):
        raise MalformedPacket("HELLO MAC check failed")
    protocol_version = data[28]
    version = (data[29], data[30], int.from_bytes(data[31:33], "big"))
    timestamp = int.from_bytes(data[33:41], "big")
    identity, pos = Identity.parse(data, IDX_HELLO_IDENTITY)
    if identity.address != int.from_bytes(data[13:18], "big"):
        raise MalformedPacket("HELLO identity does not match its source address")
    destination: InetAddress | None = None
    planet_id = planet_ts = None
    moons: list[MoonRecord] = []
    if pos < len(data):
        destination, pos = parse_inet(data, pos)
    if pos + 16 <= len(data):
        planet_id = int.from_bytes(data[pos : pos + 8], "big")
        planet_ts = int.from_bytes(data[pos + 8 : pos + 16], "big")
        pos += 16
    if key is not None and pos < len(data):
        crypt_field(key, data, pos)
        if pos + 2 <= len(data):
            count = int.from_bytes(data[pos : pos + 2], "big")
            pos += 2
            for _ in range(count):
                if pos + MOON_RECORD_LENGTH > len(data):
                    raise MalformedPacket("truncated HELLO moon list")
                moons.append(
                    MoonRecord(
                        data[pos],
                        int.from_bytes(data[pos + 1 : pos + 9], "big"),
                        int.from_bytes(data[pos + 9 : pos + 17], "big"),
                    )
                )
                pos += MOON_RECORD_LENGTH
    return Hello(
        protocol_version,
        version,
        timestamp,
        identity,
        destination,
        planet_id,
        planet_ts,
        tuple(moons),
    )


@dataclass(frozen=True, slots=True)
class OkHello:
    """The OK(HELLO) payload (after the in-re verb and packet id)."""

    timestamp: int
    protocol_version: int
    version: tuple[int, int, int]
    external_address: InetAddress | None
    worlds: bytes  # the raw world-update area; parse with ztone.node.wire.world

    def serialize(self) -> bytes:
        major, minor, revision = self.version
        return (
            self.timestamp.to_bytes(8, "big")
            + bytes((self.protocol_version, major, minor))
            + revision.to_bytes(2, "big")
            + serialize_inet(self.external_address)
            + len(self.worlds).to_bytes(2, "big")
            + self.worlds
        )

    @classmethod
    def parse(cls, payload: bytes | bytearray | memoryview) -> OkHello:
        if len(payload) < 13:
            raise MalformedPacket("truncated OK(HELLO)")
        timestamp = int.from_bytes(payload[0:8], "big")
        proto = payload[8]
        version = (payload[9], payload[10], int.from_bytes(payload[11:13], "big"))
        external: InetAddress | None = None
        pos = 13
        worlds = b""
        if pos < len(payload):
            external, pos = parse_inet(payload, pos)
        if pos + 2 <= len(payload):
            length = int.from_bytes(payload[pos : pos + 2], "big")
            pos += 2
            if pos + length > len(payload):
                raise MalformedPacket("truncated OK(HELLO) world area")
            worlds = bytes(payload[pos : pos + length])
        return cls(timestamp, proto, version, external, worlds)


DEFAULT_VERSION = (1, 14, 1)
__all__ = [
    "DEFAULT_VERSION",
    "PROTO_VERSION",
    "Hello",
    "MoonRecord",
    "OkHello",
    "hello_identity",
    "make_hello_packet",
    "parse_hello",
]
