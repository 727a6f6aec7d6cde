"""Records of the TCP fallback tunnel against bytes worked out by hand from
zerotier-one 1.14.1's OneService.cpp and tcp-proxy.cpp (docs/TCP-FALLBACK-RELAY.md)."""

from __future__ import annotations

import ipaddress

import pytest

from ztone.relay.framing import (
    Datagram,
    FramingError,
    Hello,
    RecordReader,
    datagram_record,
    hello_record,
    parse_body,
)

# A 1.14.1 client's first record: fake TLS application data header, length 4,
# then major 1, minor 14, revision 1 as a 16-bit big-endian number.
HELLO_1_14_1 = bytes([0x17, 0x03, 0x03, 0x00, 0x04, 0x01, 0x0E, 0x00, 0x01])

PAYLOAD = bytes(range(16, 36))  # 20 bytes, as long as a short ZeroTier packet
# The same datagram for 198.18.0.1 port 9993: length 20 + 7 = 27 = 0x001b, address
# type 4, the address in network order (c6 12 00 01), the port in network order
# (9993 = 0x2709), then the datagram.
DATAGRAM_TO_ROOT = (
    bytes([0x17, 0x03, 0x03, 0x00, 0x1B, 0x04, 0xC6, 0x12, 0x00, 0x01, 0x27, 0x09]) + PAYLOAD
)


def test_tcp_relay_hello_bytes() -> None:
    assert hello_record(1, 14, 1) == HELLO_1_14_1
    assert parse_body(HELLO_1_14_1[5:]) == Hello(1, 14, 1)


def test_tcp_relay_datagram_bytes() -> None:
    ip = ipaddress.IPv4Address("198.18.0.1")
    assert datagram_record(ip, 9993, PAYLOAD) == DATAGRAM_TO_ROOT
    assert parse_body(DATAGRAM_TO_ROOT[5:]) == Datagram((ip, 9993), PAYLOAD)


def test_tcp_relay_ipv6_and_unaddressed_bodies() -> None:
    ip6 = ipaddress.IPv6Address("fd00::1")
    record = datagram_record(ip6, 443, PAYLOAD)
    assert record[:6] == bytes([0x17, 0x03, 0x03, 0x00, 20 + 19, 0x06])
    assert record[6:22] == ip6.packed and record[22:24] == b"\x01\xbb"
    assert parse_body(record[5:]) == Datagram((ip6, 443), PAYLOAD)
    assert parse_body(b"\x00" + PAYLOAD) == Datagram(None, PAYLOAD)


@pytest.mark.parametrize(
    "body",
    [b"", b"\x05" + PAYLOAD, b"\x04\x01\x02\x03\x04\x05", b"\x06" + bytes(17)],
    ids=["empty", "unknown-type", "short-v4", "short-v6"],
)
def test_tcp_relay_bad_bodies(body: bytes) -> None:
    with pytest.raises(FramingError):
        parse_body(body)


def test_tcp_relay_record_too_big() -> None:
    with pytest.raises(ValueError):
        datagram_record(ipaddress.IPv4Address("198.18.0.1"), 9993, bytes(0xFFFF - 6))
    assert len(datagram_record(ipaddress.IPv4Address("198.18.0.1"), 9993,
                               bytes(0xFFFF - 7))) == 0xFFFF + 5  # fmt: skip


def test_tcp_relay_reader_cuts_any_split() -> None:
    stream = HELLO_1_14_1 + DATAGRAM_TO_ROOT + HELLO_1_14_1
    for cut in range(len(stream) + 1):
        for step in (1, 3, 7):
            reader = RecordReader()
            bodies = reader.feed(stream[:cut])
            rest = stream[cut:]
            for i in range(0, len(rest), step):
                bodies += reader.feed(rest[i : i + step])
            assert bodies == [HELLO_1_14_1[5:], DATAGRAM_TO_ROOT[5:], HELLO_1_14_1[5:]]
            assert reader.pending == 0


def test_tcp_relay_reader_bound() -> None:
    reader = RecordReader(max_buffer=100)
    with pytest.raises(FramingError):
        reader.feed(b"\x17\x03\x03\x01\x00" + bytes(100))
    assert RecordReader(max_buffer=100).feed(b"\x17\x03\x03\x00\x5f" + bytes(95)) == [bytes(95)]
