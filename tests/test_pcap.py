"""The test-only pcap reader (tests/pcap.py) on synthetic captures and broken files."""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path

import pytest

from pcap import (
    LINKTYPE_EN10MB,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    PcapError,
    PcapStats,
    UdpDatagram,
    read_ip,
    read_udp,
)

V4A, V4B = ipaddress.IPv4Address("198.18.0.12"), ipaddress.IPv4Address("198.18.0.13")
V6A, V6B = ipaddress.IPv6Address("2001:db8::12"), ipaddress.IPv6Address("2001:db8::13")


def _udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload


def _ipv4(
    src: ipaddress.IPv4Address,
    dst: ipaddress.IPv4Address,
    proto: int,
    body: bytes,
    *,
    ttl: int = 64,
    frag: int = 0,
) -> bytes:
    return (
        struct.pack(">BBHHHBBH", 0x45, 0, 20 + len(body), 1, frag, ttl, proto, 0)
        + src.packed
        + dst.packed
        + body
    )


def _ipv6(
    src: ipaddress.IPv6Address,
    dst: ipaddress.IPv6Address,
    next_header: int,
    body: bytes,
    hop_limit: int = 64,
) -> bytes:
    return (
        struct.pack(">IHBB", 6 << 28, len(body), next_header, hop_limit)
        + src.packed
        + dst.packed
        + body
    )


def _ether(ethertype: int, body: bytes, vlan: bool = False) -> bytes:
    frame = bytes(6) + bytes(6)
    if vlan:
        frame += struct.pack(">HH", 0x8100, 42)
    frame += struct.pack(">H", ethertype) + body
    return frame + bytes(max(0, 60 - len(frame)))  # Ethernet minimum-size padding


def _pcap(
    linktype: int,
    frames: list[bytes],
    order: str = "<",
    nanosecond: bool = False,
    orig_extra: int = 0,
) -> bytes:
    magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
    out = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)
    for i, frame in enumerate(frames):
        out += struct.pack(
            order + "IIII", 1_700_000_000 + i, 250, len(frame), len(frame) + orig_extra
        )
        out += frame
    return out


def _write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "capture.pcap"
    path.write_bytes(data)
    return path


def test_ethernet_vlan_padding_and_skips(tmp_path: Path) -> None:
    frames = [
        _ether(0x0800, _ipv4(V4A, V4B, 17, _udp(9993, 9993, b"junk"), ttl=2)),  # padded
        _ether(0x0800, _ipv4(V4B, V4A, 17, _udp(9993, 1234, b"x" * 100)), vlan=True),
        _ether(0x0806, bytes(28)),  # ARP
        _ether(0x0800, _ipv4(V4A, V4B, 6, bytes(20))),  # TCP
        _ether(0x0800, _ipv4(V4A, V4B, 17, _udp(1, 2, b"frag"), frag=0x2000)),  # MF set
    ]
    stats = PcapStats()
    path = _write(tmp_path, _pcap(LINKTYPE_EN10MB, frames))
    got = list(read_udp(path, stats))
    assert got == [
        UdpDatagram(1_700_000_000.00025, V4A, 9993, V4B, 9993, b"junk"),
        UdpDatagram(1_700_000_001.00025, V4B, 9993, V4A, 1234, b"x" * 100),
    ]
    assert stats.records == 5 and stats.link_type == LINKTYPE_EN10MB
    assert stats.skipped == {"ethertype 0x0806": 1, "IP protocol 6": 1, "IPv4 fragment": 1}
    assert [p.ttl for p in read_ip(path)][:2] == [2, 64]


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nanosecond", [False, True])
def test_ipv6_with_extension_header_on_linux_sll(
    tmp_path: Path, order: str, nanosecond: bool
) -> None:
    hop_by_hop = bytes((17, 0)) + bytes(6)  # next header UDP, 8 bytes long
    packet = _ipv6(V6A, V6B, 0, hop_by_hop + _udp(9993, 9993, b"hello"), hop_limit=7)
    sll = struct.pack(">HHH8sH", 0, 1, 6, bytes(8), 0x86DD)
    stats = PcapStats()
    path = _write(tmp_path, _pcap(LINKTYPE_LINUX_SLL, [sll + packet], order, nanosecond))
    (datagram,) = read_udp(path, stats)
    assert datagram[1:] == (V6A, 9993, V6B, 9993, b"hello")
    assert datagram.timestamp == pytest.approx(1_700_000_000 + (250e-9 if nanosecond else 250e-6))
    assert stats.nanosecond == nanosecond
    assert next(read_ip(path)).ttl == 7


def test_other_link_types(tmp_path: Path) -> None:
    v4 = _ipv4(V4A, V4B, 17, _udp(1, 2, b"a"))
    v6 = _ipv6(V6A, V6B, 17, _udp(3, 4, b"b"))
    sll2 = struct.pack(">HHIHBB8s", 0x86DD, 0, 1, 1, 0, 6, bytes(8))
    cases = {
        LINKTYPE_RAW: [v4, v6],
        LINKTYPE_LINUX_SLL2: [sll2 + v6],
        LINKTYPE_NULL: [struct.pack("<I", 2) + v4, struct.pack("<I", 30) + v6],
        LINKTYPE_LOOP: [struct.pack(">I", 2) + v4],
    }
    for linktype, frames in cases.items():
        path = _write(tmp_path, _pcap(linktype, frames))
        payloads = [d.payload for d in read_udp(path)]
        assert payloads == [b"a" if f.endswith(b"a") else b"b" for f in frames], linktype


def test_truncated_by_snaplen_is_skipped(tmp_path: Path) -> None:
    frame = _ether(0x0800, _ipv4(V4A, V4B, 17, _udp(1, 2, b"z" * 200)))[:100]
    stats = PcapStats()
    path = _write(tmp_path, _pcap(LINKTYPE_EN10MB, [frame], orig_extra=134))
    assert list(read_udp(path, stats)) == []
    assert stats.skipped == {"cut by the snap length": 1}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "too short"),
        (b"\x00\x01\x02\x03" + bytes(20), "bad pcap magic"),
        (bytes.fromhex("0a0d0d0a") + bytes(40), "pcapng"),
        (bytes.fromhex("d4c3b2a1") + bytes(10), "truncated pcap global header"),
        (_pcap(LINKTYPE_RAW, [bytes(30)])[:-1], "remain in the file"),
        (_pcap(LINKTYPE_RAW, [bytes(30)]) + bytes(5), "truncated record header"),
        (_pcap(LINKTYPE_RAW, []) + struct.pack("<IIII", 0, 0, 1 << 20, 1 << 20), "claims"),
        (_pcap(147, [bytes(30)]), "unsupported pcap link type 147"),
    ],
)
def test_malformed_files_raise(tmp_path: Path, data: bytes, message: str) -> None:
    path = _write(tmp_path, data)
    with pytest.raises(PcapError, match=message):
        list(read_udp(path))
