"""Receive coalescing for the Linux TAP (``ztone.osdep.linux.gro``).

A merged frame must be exactly what the kernel would rebuild the original segments
from: segmenting it as GSO does (``gso_size`` bytes of payload each, sequence
numbers advancing, IP lengths and checksums redone) gives back every original
segment byte for byte, apart from the IPv4 identification, which GSO numbers
upwards from the first. Runs the kernel's GRO would not merge stay apart, and a
segment with a bad checksum is never merged.
"""

from __future__ import annotations

import ipaddress
import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ztone.crypto import backend
from ztone.osdep.linux.gro import (
    F_NEEDS_CSUM,
    GSO_TCPV4,
    GSO_TCPV6,
    VNET_NONE,
    coalesce,
    complete_checksum,
)
from ztone.util.inet_checksum import inet_sum_pure

ETH4 = bytes.fromhex("32aabbccddee32112233445a0800")
ETH6 = bytes.fromhex("32aabbccddee32112233445a86dd")
SRC4, DST4 = ipaddress.ip_address("198.19.0.10").packed, ipaddress.ip_address("198.19.0.11").packed
SRC6, DST6 = ipaddress.ip_address("fd00::10").packed, ipaddress.ip_address("fd00::11").packed
VNET = struct.Struct("<BBHHHH")
OPTS = bytes.fromhex("0101080a0000111100002222")  # NOP NOP timestamps


def fold(x: int) -> int:
    while x >> 16:
        x = (x & 0xFFFF) + (x >> 16)
    return x


def ref_sum(data: bytes, initial: int = 0) -> int:
    if len(data) & 1:
        data += b"\x00"
    return fold(sum(struct.unpack(f"!{len(data) // 2}H", data)) + initial)


def tcp_segment(v6: bool, seq: int, payload: bytes, flags: int = 0x10, *, ack: int = 777,
                window: int = 500, ident: int = 1, bad_checksum: bool = False,
                opts: bytes = OPTS) -> bytes:  # fmt: skip
    tcp = bytearray(struct.pack("!HHIIBBHHH", 40000, 5201, seq & 0xFFFFFFFF, ack,
                                (5 + len(opts) // 4) << 4, flags, window, 0, 0) + opts)  # fmt: skip
    tcp_len = len(tcp) + len(payload)
    if v6:
        pseudo = SRC6 + DST6 + tcp_len.to_bytes(4, "big") + b"\x00\x00\x00\x06"
    else:
        pseudo = SRC4 + DST4 + b"\x00\x06" + tcp_len.to_bytes(2, "big")
    csum = ~ref_sum(pseudo + bytes(tcp) + payload) & 0xFFFF
    tcp[16:18] = (csum ^ (1 if bad_checksum else 0)).to_bytes(2, "big")
    if v6:
        ip = bytearray(b"\x60\x00\x00\x00" + tcp_len.to_bytes(2, "big") + b"\x06\x40" + SRC6 + DST6)
    else:
        ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + tcp_len, ident, 0x4000, 64, 6,
                                   0, SRC4, DST4))  # fmt: skip
        ip[10:12] = (~ref_sum(bytes(ip)) & 0xFFFF).to_bytes(2, "big")
    return bytes(ip) + bytes(tcp) + payload


def gso_segment(vnet: bytes, frame: bytes) -> list[bytes]:
    """What the kernel makes of a merged frame (the payloads after the Ethernet header)."""
    flags, gso_type, hdr_len, gso_size, csum_start, csum_offset = VNET.unpack(vnet)
    assert flags == F_NEEDS_CSUM and csum_offset == 16
    v6 = gso_type == GSO_TCPV6
    assert gso_type in (GSO_TCPV4, GSO_TCPV6)
    ip_hl = 40 if v6 else 20
    assert csum_start == 14 + ip_hl
    packet = frame[14:]
    hl = hdr_len - 14
    header, body = packet[:hl], packet[hl:]
    # the partial checksum is the pseudo header's sum over the whole merged segment
    tcp_total = len(packet) - ip_hl
    if v6:
        pseudo = packet[8:40] + tcp_total.to_bytes(4, "big") + b"\x00\x00\x00\x06"
    else:
        pseudo = packet[12:20] + b"\x00\x06" + tcp_total.to_bytes(2, "big")
        assert ref_sum(packet[:20]) == 0xFFFF  # a valid IPv4 header checksum
    assert int.from_bytes(packet[ip_hl + 16 : ip_hl + 18], "big") == ref_sum(pseudo)
    seq0 = int.from_bytes(header[ip_hl + 4 : ip_hl + 8], "big")
    last_flags = header[ip_hl + 13]
    out = []
    chunks = [body[i : i + gso_size] for i in range(0, len(body), gso_size)]
    for k, chunk in enumerate(chunks):
        flags_k = last_flags if k == len(chunks) - 1 else last_flags & ~0x08
        seq = (seq0 + k * gso_size) & 0xFFFFFFFF
        ident = int.from_bytes(header[4:6], "big") + k
        out.append(rebuild(v6, header, ip_hl, seq, flags_k, chunk, ident))
    return out


def rebuild(v6: bool, header: bytes, ip_hl: int, seq: int, flags: int, payload: bytes,
            ident: int) -> bytes:  # fmt: skip
    tcp = bytearray(header[ip_hl:])
    tcp[4:8] = seq.to_bytes(4, "big")
    tcp[13] = flags
    tcp[16:18] = b"\x00\x00"
    tcp_len = len(tcp) + len(payload)
    ip = bytearray(header[:ip_hl])
    if v6:
        ip[4:6] = tcp_len.to_bytes(2, "big")
        pseudo = bytes(ip[8:40]) + tcp_len.to_bytes(4, "big") + b"\x00\x00\x00\x06"
    else:
        ip[2:4] = (20 + tcp_len).to_bytes(2, "big")
        ip[4:6] = (ident & 0xFFFF).to_bytes(2, "big")
        ip[10:12] = b"\x00\x00"
        ip[10:12] = (~ref_sum(bytes(ip)) & 0xFFFF).to_bytes(2, "big")
        pseudo = bytes(ip[12:20]) + b"\x00\x06" + tcp_len.to_bytes(2, "big")
    tcp[16:18] = (~ref_sum(pseudo + bytes(tcp) + payload) & 0xFFFF).to_bytes(2, "big")
    return bytes(ip) + bytes(tcp) + payload


def sums() -> list[object]:
    fns: list[object] = [inet_sum_pure]
    native = backend.DEFAULT.native
    if native is not None:
        fns.append(native.inet_sum)
    return fns


@pytest.mark.parametrize("inet_sum", sums())
@pytest.mark.parametrize("v6", [False, True])
def test_a_run_merges_and_segments_back(inet_sum: object, v6: bool) -> None:
    rng = random.Random(7)
    eth = ETH6 if v6 else ETH4
    mss = 1388
    seq = 0xFFFFF000  # wraps around 2**32 in the middle of the run
    originals = []
    for k in range(10):
        size = mss if k < 9 else 300
        flags = 0x18 if k == 9 else 0x10
        originals.append(tcp_segment(v6, seq, rng.randbytes(size), flags, ident=5 + k))
        seq += size
    writes = coalesce([(eth, p) for p in originals], inet_sum)  # type: ignore[arg-type]
    assert len(writes) == 1
    vnet, eh, merged = writes[0]
    assert eh == eth and VNET.unpack(vnet)[3] == mss
    assert gso_segment(vnet, eh + merged) == originals


def test_what_stays_apart() -> None:
    p = [tcp_segment(False, 1000 + 100 * k, bytes([k]) * 100) for k in range(3)]
    single = coalesce([(ETH4, p[0])])
    assert single == [(VNET_NONE, ETH4, p[0])]
    cases = {
        "gap": [p[0], p[2]],
        "out of order": [p[1], p[0]],
        "bad checksum first": [tcp_segment(False, 1000, bytes(100), bad_checksum=True), p[1]],
        "bad checksum second": [
            p[0],
            tcp_segment(False, 1100, bytes([1]) * 100, bad_checksum=True),
        ],
        "PSH first": [tcp_segment(False, 1000, bytes(100), 0x18), p[1]],
        "FIN": [p[0], tcp_segment(False, 1100, bytes(100), 0x11)],
        "SYN": [tcp_segment(False, 1000, bytes(100), 0x12), p[1]],
        "no payload": [tcp_segment(False, 1000, b""), tcp_segment(False, 1000, bytes(100))],
        "other ack": [p[0], tcp_segment(False, 1100, bytes([1]) * 100, ack=778)],
        "other window": [p[0], tcp_segment(False, 1100, bytes([1]) * 100, window=501)],
        "other options": [p[0], tcp_segment(False, 1100, bytes([1]) * 100, opts=b"")],
        "longer second": [p[0], tcp_segment(False, 1100, bytes(150))],
        "ECE": [p[0], tcp_segment(False, 1100, bytes(100), 0x50)],
    }
    for name, segments in cases.items():
        writes = coalesce([(ETH4, s) for s in segments])
        assert [w[2] for w in writes] == segments, name
        assert all(w[0] == VNET_NONE for w in writes), name
    # a different Ethernet header, or not IP at all
    other_eth = bytes(6) + ETH4[6:]
    assert len(coalesce([(ETH4, p[0]), (other_eth, p[1])])) == 2
    arp = bytes.fromhex("ffffffffffff32112233445a0806")
    assert len(coalesce([(arp, bytes(28)), (arp, bytes(28))])) == 2


def test_runs_end_at_64k_and_after_a_short_segment() -> None:
    mss = 1400
    segs = [tcp_segment(False, k * mss, bytes([k % 256]) * mss, ident=k) for k in range(60)]
    writes = coalesce([(ETH4, s) for s in segs])
    assert len(writes) == 2 and all(len(w[2]) <= 65535 for w in writes)
    assert [x for w in writes for x in gso_segment(w[0], w[1] + w[2])] == segs
    short = [
        tcp_segment(False, 0, bytes(mss), ident=1),
        tcp_segment(False, mss, bytes(10), ident=2),
        tcp_segment(False, mss + 10, bytes(mss), ident=3),
    ]
    writes = coalesce([(ETH4, s) for s in short])
    assert len(writes) == 2 and writes[1] == (VNET_NONE, ETH4, short[2])
    assert gso_segment(writes[0][0], writes[0][1] + writes[0][2]) == short[:2]


def test_interleaved_flows_keep_their_order() -> None:
    a = [tcp_segment(False, 100 * k, bytes(100)) for k in range(2)]
    b = [tcp_segment(True, 100 * k, bytes(100)) for k in range(2)]
    frames = [(ETH4, a[0]), (ETH6, b[0]), (ETH4, a[1]), (ETH6, b[1])]
    assert [w[2] for w in coalesce(frames)] == [a[0], b[0], a[1], b[1]]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000), st.integers(0, (1 << 32) - 1))
def test_inet_sum_pure_and_native(data: bytes, initial: int) -> None:
    expected = ref_sum(data, initial)
    assert inet_sum_pure(data, initial) == expected
    native = backend.DEFAULT.native
    if native is not None:
        assert native.inet_sum(data, initial) == expected
        assert native.inet_sum(memoryview(bytearray(data))) == ref_sum(data)


def test_complete_checksum() -> None:
    segment = tcp_segment(False, 5, bytes(range(200)))
    frame = bytearray(ETH4 + segment)
    csum_at = 14 + 20 + 16
    tcp_len = len(segment) - 20
    partial = ref_sum(SRC4 + DST4 + b"\x00\x06" + tcp_len.to_bytes(2, "big"))
    frame[csum_at : csum_at + 2] = partial.to_bytes(2, "big")
    assert complete_checksum(VNET.pack(F_NEEDS_CSUM, 0, 0, 0, 34, 16), frame)
    assert bytes(frame) == ETH4 + segment
    assert complete_checksum(VNET_NONE, frame)
    assert not complete_checksum(VNET.pack(0, GSO_TCPV4, 54, 1400, 34, 16), frame)
