"""Records of the TCP fallback tunnel (docs/TCP-FALLBACK-RELAY.md, "Framing").

Every record on the stream, both directions::

    0x17 0x03 0x03 | length (u16 BE) | body (length bytes)

Bodies: 4 bytes = hello (version major, minor, revision u16 BE); otherwise an
address type byte, then the endpoint, then one datagram::

    0x04 | IPv4 (4) | port (u16 BE) | datagram
    0x06 | IPv6 (16) | port (u16 BE) | datagram
    0x00 | datagram                              (no endpoint)
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

RECORD_HEADER = b"\x17\x03\x03"
HEADER_SIZE = 5
MAX_BODY = 0xFFFF
HELLO_BODY_SIZE = 4
IPV4_ENDPOINT_SIZE = 7  # type + 4 + 2
IPV6_ENDPOINT_SIZE = 19  # type + 16 + 2
MAX_DATAGRAM_V4 = MAX_BODY - IPV4_ENDPOINT_SIZE

ADDRESS_NONE = 0
ADDRESS_IPV4 = 4
ADDRESS_IPV6 = 6


class FramingError(ValueError):
    """The stream holds something that is not a record this protocol allows."""


@dataclass(frozen=True, slots=True)
class Hello:
    """A 4-byte record: the sender's version."""

    major: int
    minor: int
    revision: int


@dataclass(frozen=True, slots=True)
class Datagram:
    """A datagram and its far endpoint (None for address type 0)."""

    endpoint: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int] | None
    data: bytes


Record = Hello | Datagram


def hello_record(major: int, minor: int, revision: int) -> bytes:
    """The hello a client of version ``major.minor.revision`` sends first."""
    return RECORD_HEADER + struct.pack(">HBBH", HELLO_BODY_SIZE, major, minor, revision)


def datagram_record(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int, data: bytes
) -> bytes:
    """One datagram with its endpoint (the destination from a client, the source from
    a relay). ValueError if it cannot fit one record."""
    if not 0 <= port <= 0xFFFF:
        raise ValueError(f"port {port} out of range")
    if ip.version == 4:
        head = struct.pack(">B4sH", ADDRESS_IPV4, ip.packed, port)
    else:
        head = struct.pack(">B16sH", ADDRESS_IPV6, ip.packed, port)
    body_len = len(head) + len(data)
    if body_len > MAX_BODY:
        raise ValueError(f"datagram of {len(data)} bytes does not fit one record")
    return RECORD_HEADER + struct.pack(">H", body_len) + head + data


def parse_body(body: bytes) -> Record:
    """Interpret one record's body. FramingError on an unknown address type or a body
    too short for its address."""
    if len(body) == HELLO_BODY_SIZE:
        major, minor, revision = struct.unpack(">BBH", body)
        return Hello(major, minor, revision)
    if not body:
        raise FramingError("empty record")
    kind = body[0]
    if kind == ADDRESS_IPV4:
        if len(body) < IPV4_ENDPOINT_SIZE:
            raise FramingError("IPv4 record shorter than its address")
        ip4 = ipaddress.IPv4Address(body[1:5])
        return Datagram((ip4, int.from_bytes(body[5:7], "big")), body[7:])
    if kind == ADDRESS_IPV6:
        if len(body) < IPV6_ENDPOINT_SIZE:
            raise FramingError("IPv6 record shorter than its address")
        ip6 = ipaddress.IPv6Address(body[1:17])
        return Datagram((ip6, int.from_bytes(body[17:19], "big")), body[19:])
    if kind == ADDRESS_NONE:
        return Datagram(None, body[1:])
    raise FramingError(f"unknown address type {kind}")


class RecordReader:
    """Cuts a byte stream into record bodies; holds at most one partial record.

    The header's first three bytes are not checked, as neither upstream program
    checks them; the length alone delimits records.
    """

    def __init__(self, max_buffer: int = HEADER_SIZE + MAX_BODY) -> None:
        self._buffer = bytearray()
        self._max_buffer = max_buffer

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """The bodies of the records ``data`` completes. FramingError when a record
        could not fit the buffer bound (the stream is then unusable)."""
        buf = self._buffer
        buf += data
        out: list[bytes] = []
        at = 0
        end = len(buf)
        while end - at >= HEADER_SIZE:
            length = (buf[at + 3] << 8) | buf[at + 4]
            if end - at < HEADER_SIZE + length:
                break
            out.append(bytes(buf[at + HEADER_SIZE : at + HEADER_SIZE + length]))
            at += HEADER_SIZE + length
        if at:
            del buf[:at]
        if len(buf) > self._max_buffer:
            raise FramingError(f"more than {self._max_buffer} bytes without a whole record")
        return out
