"""Codecs of the user-space stack against hand-made bytes (ARP, IPv4, IPv6, ICMP, NDP, UDP).

Expected checksums come from :func:`ref_checksum`, a word-by-word RFC 1071 sum written
here, independent of ``ztone.util.inet_checksum``.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ztone.errors import MalformedPacket
from ztone.netstack import arp, icmp, ndp
from ztone.netstack.ipv4 import build_ipv4, parse_ipv4
from ztone.netstack.ipv6 import build_ipv6, parse_ipv6
from ztone.netstack.udp import UdpDatagram, build_udp, parse_udp

A4 = ipaddress.IPv4Address("198.18.0.1").packed
B4 = ipaddress.IPv4Address("198.18.0.2").packed
A6 = ipaddress.IPv6Address("fd00::1").packed
B6 = ipaddress.IPv6Address("fd00::2").packed


def ref_checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = 0
    for (word,) in struct.iter_unpack("!H", data):
        total += word
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def pseudo(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    if len(src) == 4:
        return src + dst + struct.pack("!BBH", 0, proto, length)
    return src + dst + struct.pack("!IxxxB", length, proto)


def every_truncation(data: bytes, parse: Callable[[bytes], object]) -> None:
    for n in range(len(data)):
        with pytest.raises(MalformedPacket):
            parse(data[:n])


# -- ARP ----------------------------------------------------------------------------------

ARP_REQUEST = bytes.fromhex(
    "0001 0800 06 04 0001 32aabbccddee c6120001 000000000000 c6120002".replace(" ", "")
)


def test_arp_request_known_bytes() -> None:
    msg = arp.parse_arp(ARP_REQUEST + bytes(18))  # Ethernet padding is ignored
    assert msg == arp.Arp(arp.REQUEST, 0x32AABBCCDDEE, A4, 0, B4)
    assert arp.build_arp(msg) == ARP_REQUEST
    every_truncation(ARP_REQUEST, arp.parse_arp)


@pytest.mark.parametrize(
    ("offset", "value"),
    [(0, b"\x00\x06"), (2, b"\x86\xdd"), (4, b"\x08"), (5, b"\x10"), (6, b"\x00\x03")],
)
def test_arp_rejects_other_kinds(offset: int, value: bytes) -> None:
    bad = ARP_REQUEST[:offset] + value + ARP_REQUEST[offset + len(value) :]
    with pytest.raises(MalformedPacket):
        arp.parse_arp(bad)


# -- IPv4 ---------------------------------------------------------------------------------

# The header of a well-known example: 192.168.0.1 -> 192.168.0.199, UDP, checksum b861.
IPV4_HEADER = bytes.fromhex("450000730000400040 11 b861 c0a80001 c0a800c7".replace(" ", ""))


def test_ipv4_known_header() -> None:
    packet = IPV4_HEADER + bytes(0x73 - 20) + b"pad"
    parsed = parse_ipv4(packet)
    assert parsed.src == bytes([192, 168, 0, 1]) and parsed.dst == bytes([192, 168, 0, 199])
    assert parsed.protocol == 17 and parsed.ttl == 64 and not parsed.fragment
    assert parsed.payload == bytes(0x73 - 20)  # padding stripped
    every_truncation(packet[:0x73], parse_ipv4)


def test_ipv4_build_matches_reference() -> None:
    packet = build_ipv4(A4, B4, 6, b"hello", ident=0x1234)
    header = packet[:20]
    assert header[:10] == bytes.fromhex("45000019123440004006")
    assert struct.unpack("!H", header[10:12])[0] == ref_checksum(
        header[:10] + b"\0\0" + header[12:]
    )
    assert parse_ipv4(packet).payload == b"hello"


def test_ipv4_rejects_bad_checksum_version_and_flags_fragments() -> None:
    good = build_ipv4(A4, B4, 17, b"x" * 8, ident=1)
    with pytest.raises(MalformedPacket):
        parse_ipv4(good[:10] + b"\0\0" + good[12:])
    with pytest.raises(MalformedPacket):
        parse_ipv4(b"\x65" + good[1:])
    frag = bytearray(good)
    frag[6:8] = b"\x20\x00"  # MF
    frag[10:12] = b"\0\0"
    frag[10:12] = struct.pack("!H", ref_checksum(bytes(frag[:20])))
    parsed = parse_ipv4(bytes(frag))
    assert (parsed.fragment, parsed.ident, parsed.offset, parsed.more) == (True, 1, 0, True)


# -- IPv6 ---------------------------------------------------------------------------------


def test_ipv6_known_header_and_extensions() -> None:
    packet = build_ipv6(A6, B6, 17, b"abcdefgh", hop_limit=7)
    assert packet[:8] == bytes.fromhex("6000000000081107")
    parsed = parse_ipv6(packet + b"padding")
    assert (parsed.src, parsed.dst, parsed.next_header, parsed.hop_limit) == (A6, B6, 17, 7)
    assert parsed.payload == b"abcdefgh"
    every_truncation(packet, parse_ipv6)
    # a hop-by-hop header (8 bytes, next header UDP) is skipped
    hbh = bytes([17, 0]) + bytes(6)
    with_ext = build_ipv6(A6, B6, 0, hbh + b"abcdefgh")
    assert parse_ipv6(with_ext).payload == b"abcdefgh"
    # a fragment header: next header 17, offset 1448 (181 units), M set, ident 0x01020304
    frag = parse_ipv6(build_ipv6(A6, B6, 44, bytes.fromhex("110005a901020304") + b"x"))
    assert (frag.fragment, frag.next_header, frag.offset, frag.more) == (True, 17, 1448, True)
    assert (frag.ident, frag.payload) == (0x01020304, b"x")
    with pytest.raises(MalformedPacket):
        parse_ipv6(build_ipv6(A6, B6, 44, bytes(7)))
    with pytest.raises(MalformedPacket):
        parse_ipv6(build_ipv6(A6, B6, 0, bytes([17, 5]) + bytes(6)))  # longer than the packet


# -- ICMP and NDP -------------------------------------------------------------------------


def test_icmp4_echo_known_bytes() -> None:
    body = struct.pack("!HH", 0x1234, 1) + b"ping"
    packet = icmp.build_icmp4(icmp.Icmp(icmp.ECHO_REQUEST_V4, 0, body))
    assert packet[:2] == b"\x08\x00"
    assert struct.unpack("!H", packet[2:4])[0] == ref_checksum(b"\x08\x00\0\0" + body)
    assert icmp.parse_icmp4(packet) == icmp.Icmp(8, 0, body)
    every_truncation(packet[:4], icmp.parse_icmp4)
    with pytest.raises(MalformedPacket):
        icmp.parse_icmp4(packet[:-1] + b"X")


def test_icmp6_checksum_covers_the_pseudo_header() -> None:
    body = struct.pack("!HH", 7, 9) + b"data"
    packet = icmp.build_icmp6(icmp.Icmp(icmp.ECHO_REQUEST_V6, 0, body), A6, B6)
    raw = bytes([128, 0, 0, 0]) + body
    assert struct.unpack("!H", packet[2:4])[0] == ref_checksum(pseudo(A6, B6, 58, len(raw)) + raw)
    assert icmp.parse_icmp6(packet, A6, B6).body == body
    with pytest.raises(MalformedPacket):
        icmp.parse_icmp6(packet, A6, A6)


def test_neighbor_solicitation_known_bytes() -> None:
    target = ipaddress.IPv6Address("fd00::abcd:ef01").packed
    msg = ndp.NeighborMessage(ndp.NEIGHBOR_SOLICITATION, 0, target, 0x32AABBCCDDEE)
    body = ndp.neighbor_body(msg)
    assert body == bytes(4) + target + bytes.fromhex("010132aabbccddee")
    assert ndp.parse_neighbor(135, 0, body) == msg
    assert ndp.solicited_node(target) == ipaddress.IPv6Address("ff02::1:ffcd:ef01").packed
    every_truncation(body[:20], lambda b: ndp.parse_neighbor(135, 0, b))
    with pytest.raises(MalformedPacket):
        ndp.parse_neighbor(135, 0, body[:20] + bytes([1, 0]) + bytes(6))  # option length 0
    with pytest.raises(MalformedPacket):
        ndp.parse_neighbor(135, 1, body)
    with pytest.raises(MalformedPacket):
        ndp.parse_neighbor(135, 0, bytes(4) + b"\xff" + bytes(15))


def test_neighbor_advertisement_flags_and_target_option() -> None:
    target = A6
    msg = ndp.NeighborMessage(136, ndp.FLAG_SOLICITED | ndp.FLAG_OVERRIDE, target, 0x020000000001)
    body = ndp.neighbor_body(msg)
    assert body[:4] == b"\x60\0\0\0" and body[20:22] == b"\x02\x01"
    assert ndp.parse_neighbor(136, 0, body) == msg
    # an NA's source link-layer option is not its target MAC
    assert ndp.parse_neighbor(136, 0, body[:20] + b"\x01\x01" + body[22:]).link_mac is None


# -- UDP ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("src", "dst"), [(A4, B4), (A6, B6)])
def test_udp_checksum_matches_reference(src: bytes, dst: bytes) -> None:
    packet = build_udp(UdpDatagram(5000, 53, b"query!"), src, dst)
    header = struct.pack("!HHHH", 5000, 53, 14, 0)
    assert struct.unpack("!H", packet[6:8])[0] == ref_checksum(
        pseudo(src, dst, 17, 14) + header + b"query!"
    )
    assert parse_udp(packet + b"pad", src, dst) == UdpDatagram(5000, 53, b"query!")
    every_truncation(packet, lambda b: parse_udp(b, src, dst))
    with pytest.raises(MalformedPacket):
        parse_udp(packet[:-1] + b"?", src, dst)


def test_udp_zero_checksum_only_over_ipv4() -> None:
    packet = struct.pack("!HHHH", 1, 2, 9, 0) + b"z"
    assert parse_udp(packet, A4, B4).payload == b"z"
    with pytest.raises(MalformedPacket):
        parse_udp(packet, A6, B6)


# -- every parser raises only MalformedPacket ----------------------------------------------


@settings(max_examples=300)
@given(st.binary(max_size=120), st.sampled_from([(A4, B4), (A6, B6)]), st.integers(0, 255))
def test_parsers_raise_only_malformed(data: bytes, pair: tuple[bytes, bytes], kind: int) -> None:
    src, dst = pair
    parsers: list[Callable[[bytes], object]] = [
        arp.parse_arp,
        parse_ipv4,
        parse_ipv6,
        icmp.parse_icmp4,
        lambda b: icmp.parse_icmp6(b, src, dst),
        lambda b: ndp.parse_neighbor(kind, 0, b),
        lambda b: ndp.parse_neighbor(135, 0, b),
        lambda b: ndp.parse_neighbor(136, 0, b),
        lambda b: parse_udp(b, src, dst),
    ]
    for parse in parsers:
        try:
            parse(data)
        except MalformedPacket:
            pass
