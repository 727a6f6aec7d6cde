"""Segmentation of the host's TCP super-packets (``ztone.osdep.linux.tso``).

The expected segments are built here from scratch (headers packed field by field,
checksums summed with ``struct``), never by the module under test: a super-packet
of ``D`` data bytes with segment size ``mss`` must become exactly the segments the
kernel's software GSO sends. Hypothesis then throws arbitrary and near-valid bytes
at the cutter: it never raises, and whatever it returns checks out.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ztone.crypto import backend
from ztone.osdep.linux.gro import F_NEEDS_CSUM, VNET_HDR_LEN
from ztone.osdep.linux.tso import GSO_TCPV4, GSO_TCPV6, MAX_SEGMENT, segment
from ztone.osdep.linux.tun import TunDevice, offload_wanted, set_offload
from ztone.util.inet_checksum import inet_sum_pure

ETH4 = bytes.fromhex("32aabbccddee32112233445a0800")
ETH6 = bytes.fromhex("32aabbccddee32112233445a86dd")
DST_MAC, SRC_MAC = 0x32AABBCCDDEE, 0x32112233445A
SRC4, DST4 = ipaddress.ip_address("198.19.0.10").packed, ipaddress.ip_address("198.19.0.11").packed
SRC6, DST6 = ipaddress.ip_address("fd00::10").packed, ipaddress.ip_address("fd00::11").packed
VNET = struct.Struct("<BBHHHH")
OPTS = bytes.fromhex("0101080a0000111100002222")  # NOP NOP timestamps
FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 1, 2, 4, 8, 16, 32, 64, 128
NATIVE = backend.NATIVE.native if backend.NATIVE is not None else None
SUMS = [inet_sum_pure] + ([NATIVE.inet_sum] if NATIVE is not None else [])


def ref_sum(data: bytes) -> int:
    if len(data) & 1:
        data += b"\x00"
    x: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while x >> 16:
        x = (x & 0xFFFF) + (x >> 16)
    return x


def pseudo(v6: bool, src: bytes, dst: bytes, tcp_len: int) -> bytes:
    if v6:
        return src + dst + tcp_len.to_bytes(4, "big") + b"\x00\x00\x00\x06"
    return src + dst + b"\x00\x06" + tcp_len.to_bytes(2, "big")


def packet(v6: bool, seq: int, data: bytes, flags: int, ident: int = 0x1234, opts: bytes = OPTS,
           ip_opts: bytes = b"", tcp_csum: int | None = None) -> bytes:  # fmt: skip
    """An IPv4 or IPv6 TCP packet with valid checksums (or TCP checksum ``tcp_csum``)."""
    tcp = bytearray(struct.pack("!HHIIBBHHH", 40000, 5201, seq & 0xFFFFFFFF, 0xA0B0C0D0,
                                (5 + len(opts) // 4) << 4, flags, 501, 0, 7) + opts)  # fmt: skip
    tcp_len = len(tcp) + len(data)
    src, dst = (SRC6, DST6) if v6 else (SRC4, DST4)
    csum = ~ref_sum(pseudo(v6, src, dst, tcp_len) + bytes(tcp) + data) & 0xFFFF
    tcp[16:18] = (csum if tcp_csum is None else tcp_csum).to_bytes(2, "big")
    if v6:
        ip = b"\x60\x0a\xbc\xde" + tcp_len.to_bytes(2, "big") + b"\x06\x40" + SRC6 + DST6
    else:
        hl = 20 + len(ip_opts)
        fields = (0x40 | hl // 4, 0x10, hl + tcp_len, ident & 0xFFFF, 0x4000, 64, 6, 0, SRC4, DST4)
        raw = bytearray(struct.pack("!BBHHHBBH4s4s", *fields) + ip_opts)
        raw[10:12] = (~ref_sum(bytes(raw)) & 0xFFFF).to_bytes(2, "big")
        ip = bytes(raw)
    return ip + bytes(tcp) + data


def super_frame(v6: bool, seq: int, data: bytes, flags: int, mss: int, ident: int = 0x1234,
                opts: bytes = OPTS, ip_opts: bytes = b"") -> tuple[bytes, bytes]:  # fmt: skip
    """(virtio_net_hdr, frame) as the kernel hands a TSO super-packet to the TAP: the
    TCP checksum field holds only the pseudo header's sum (CHECKSUM_PARTIAL)."""
    ip_hl = 40 if v6 else 20 + len(ip_opts)
    tcp_len = 20 + len(opts) + len(data)
    src, dst = (SRC6, DST6) if v6 else (SRC4, DST4)
    partial = ref_sum(pseudo(v6, src, dst, tcp_len))
    p = packet(v6, seq, data, flags, ident, opts, ip_opts, tcp_csum=partial)
    hdr_len = 14 + ip_hl + 20 + len(opts)
    vnet = VNET.pack(F_NEEDS_CSUM, GSO_TCPV6 if v6 else GSO_TCPV4, hdr_len, mss, 14 + ip_hl, 16)
    return vnet, (ETH6 if v6 else ETH4) + p


def expected(v6: bool, seq: int, data: bytes, flags: int, mss: int, ident: int = 0x1234,
             opts: bytes = OPTS, ip_opts: bytes = b"") -> list[bytes]:  # fmt: skip
    chunks = [data[i : i + mss] for i in range(0, len(data), mss)]
    out = []
    for k, chunk in enumerate(chunks):
        f = flags
        if k < len(chunks) - 1:
            f &= ~(FIN | PSH)
        if k > 0:
            f &= ~CWR
        out.append(packet(v6, seq + k * mss, chunk, f, ident + k, opts, ip_opts))
    return out


def valid(v6: bool, p: bytes) -> bool:
    """Both checksums of a segment verify (summed independently of the module)."""
    ip_hl = 40 if v6 else (p[0] & 15) * 4
    if not v6 and ref_sum(p[:ip_hl]) != 0xFFFF:
        return False
    src, dst = (p[8:24], p[24:40]) if v6 else (p[12:16], p[16:20])
    return ref_sum(pseudo(v6, src, dst, len(p) - ip_hl) + p[ip_hl:]) == 0xFFFF


@pytest.mark.parametrize("inet_sum", SUMS, ids=["pure", "native"][: len(SUMS)])
@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_cut_as_the_kernel_would(v6: bool, inet_sum: object) -> None:
    data = bytes((i * 7 + 3) & 0xFF for i in range(2748 * 23 + 1001))  # an odd last one
    for flags, seq in ((ACK | PSH, 1000), (ACK | FIN | PSH | CWR | ECE, 0xFFFFF000)):
        vnet, frame = super_frame(v6, seq, data, flags, 2748)
        got = segment(vnet, frame, inet_sum)  # type: ignore[arg-type]
        want = expected(v6, seq, data, flags, 2748)
        assert got == want
        assert len(got) == 24 and all(valid(v6, p) for p in got)
        assert got[0][(40 if v6 else 20) + 13] & CWR == flags & CWR
        assert got[-1][(40 if v6 else 20) + 13] & (FIN | PSH) == flags & (FIN | PSH)


def test_ipv4_options_identification_wrap_and_one_segment() -> None:
    ip_opts = bytes.fromhex("94040000")  # router alert, copied to every segment
    data = bytes(range(256)) * 9
    vnet, frame = super_frame(False, 5, data, ACK | URG, 1000, 0xFFFF, b"", ip_opts)
    got = segment(vnet, frame)
    assert got == expected(False, 5, data, ACK | URG, 1000, 0xFFFF, b"", ip_opts)
    assert [int.from_bytes(p[4:6], "big") for p in got] == [0xFFFF, 0, 1]
    vnet, frame = super_frame(True, 9, b"short", ACK | PSH, 1400)  # one segment
    assert segment(vnet, frame) == [packet(True, 9, b"short", ACK | PSH)]


def _malformed() -> Iterator[tuple[str, bytes, bytes]]:
    data = bytes(3000)
    vnet, frame = super_frame(False, 1, data, ACK, 1400)
    f = bytearray(frame)
    yield "gso_size 0", VNET.pack(1, GSO_TCPV4, 66, 0, 34, 16), frame
    yield "segments too large", VNET.pack(1, GSO_TCPV4, 66, MAX_SEGMENT, 34, 16), frame
    yield "udp gso", VNET.pack(1, 5, 66, 1400, 34, 16), frame
    yield "ecn bit", VNET.pack(1, GSO_TCPV4 | 0x80, 66, 1400, 34, 16), frame
    yield "v6 type, v4 frame", VNET.pack(1, GSO_TCPV6, 66, 1400, 34, 16), frame
    yield "short vnet", vnet[:9], frame
    yield "over 64 KiB", vnet, frame + bytes(65536)
    for what, at, value in (
        ("ethertype", 13, 0x06),
        ("ip version", 14, 0x65),
        ("ihl < 5", 14, 0x44),
        ("total length", 17, 0),
        ("not tcp", 23, 17),
        ("more fragments", 20, 0x60),
        ("fragment offset", 21, 1),
        ("tcp header < 20", 14 + 20 + 12, 0x40),
        ("syn", 14 + 20 + 13, SYN | ACK),
        ("rst", 14 + 20 + 13, RST),
    ):
        g = bytearray(f)
        g[at] = value
        yield what, vnet, bytes(g)
    yield "truncated", vnet, frame[:-1]
    vnet, frame = super_frame(False, 1, b"", ACK, 1400)
    yield "no data", vnet, frame
    vnet, frame = super_frame(False, 1, bytes(30), ACK, 1400, opts=b"")
    g = bytearray(frame)
    g[14 + 20 + 12] = 0xF0  # 60 bytes of TCP header: past the end
    yield "tcp header > frame", vnet, bytes(g)
    vnet, frame = super_frame(True, 1, data, ACK, 1400)
    g = bytearray(frame)
    g[14 + 6] = 0  # a hop-by-hop header
    yield "ipv6 extension header", vnet, bytes(g)
    g = bytearray(frame)
    g[14 + 5] += 1
    yield "ipv6 payload length", vnet, bytes(g)


@pytest.mark.parametrize(
    "what,vnet,frame", list(_malformed()), ids=lambda x: x if isinstance(x, str) else ""
)
def test_malformed_super_frames_are_refused(what: str, vnet: bytes, frame: bytes) -> None:
    assert segment(vnet, frame) is None, what


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=10), st.binary(max_size=200))
def test_arbitrary_bytes_never_raise(vnet: bytes, frame: bytes) -> None:
    out = segment(vnet, frame)
    assert out is None or all(isinstance(p, bytes) for p in out)


@settings(max_examples=200, deadline=None)
@given(
    v6=st.booleans(),
    size=st.integers(1, 9000),
    mss=st.integers(1, 3000),
    flags=st.integers(0, 255).map(lambda f: f & ~(SYN | RST)),
    seq=st.integers(0, 0xFFFFFFFF),
    ident=st.integers(0, 0xFFFF),
    opts=st.sampled_from([b"", OPTS]),
    noise=st.lists(st.tuples(st.integers(0, 9999), st.integers(0, 255)), max_size=3),
)
def test_fuzzed_super_frames(v6: bool, size: int, mss: int, flags: int, seq: int, ident: int,
                             opts: bytes, noise: list[tuple[int, int]]) -> None:  # fmt: skip
    data = os.urandom(size)
    vnet, frame = super_frame(v6, seq, data, flags, mss, ident, opts)
    got = segment(vnet, frame)
    assert got == expected(v6, seq, data, flags, mss, ident, opts)
    hl = (40 if v6 else 20) + 20 + len(opts)
    assert b"".join(p[hl:] for p in got) == data
    assert all(valid(v6, p) and len(p) <= hl + mss for p in got)
    mangled = bytearray(frame)
    for at, value in noise:
        mangled[at % len(mangled)] = value
    out = segment(vnet, bytes(mangled))  # never raises; what comes out checks out
    if out is not None:
        assert all(valid(v6, p) for p in out)


# --- through the frame device (a socket pair standing in for the TAP) ---------------


@pytest.fixture
def device() -> Iterator[tuple[TunDevice, socket.socket]]:
    ours, host = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.setblocking(False)
    dev = TunDevice(os.dup(ours.fileno()), "zttest", vnet=True)
    ours.close()
    yield dev, host
    dev.close()
    host.close()


def test_the_device_gives_the_segments_of_a_super_frame(
    device: tuple[TunDevice, socket.socket],
) -> None:
    dev, host = device
    data = os.urandom(65535 - 40 - 32)  # the largest a super-packet can carry
    vnet, frame = super_frame(True, 77, data, ACK | PSH, 2748)
    host.send(vnet + frame)
    host.send(VNET.pack(1, GSO_TCPV4, 0, 0, 0, 0) + frame)  # malformed: dropped, counted
    host.send(bytes(VNET_HDR_LEN) + ETH4 + b"after")
    got = dev.read_batch(8)
    want = expected(True, 77, data, ACK | PSH, 2748)
    assert got == [(SRC_MAC, DST_MAC, 0x86DD, p) for p in want] + [
        (SRC_MAC, DST_MAC, 0x0800, b"after")
    ]
    assert (dev.super_frames, dev.frames_dropped) == (1, 1)
    # the native data plane's given-back reads take the same path
    assert dev.frames_of([vnet + frame]) == [(SRC_MAC, DST_MAC, 0x86DD, p) for p in want]


def test_the_device_finishes_checksums(device: tuple[TunDevice, socket.socket]) -> None:
    dev, host = device
    whole = packet(False, 1, b"odd data!", ACK | PSH)
    partial = ref_sum(pseudo(False, SRC4, DST4, len(whole) - 20))
    raw = bytearray(ETH4 + whole)
    raw[14 + 20 + 16 : 14 + 20 + 18] = partial.to_bytes(2, "big")
    host.send(VNET.pack(F_NEEDS_CSUM, 0, 0, 0, 34, 16) + bytes(raw))
    host.send(VNET.pack(F_NEEDS_CSUM, 0, 0, 0, 4, 16) + bytes(raw))  # inside the Ethernet header
    assert dev.read_batch(8) == [(SRC_MAC, DST_MAC, 0x0800, whole)]
    assert dev.frames_dropped == 1


def test_offload_is_asked_unless_switched_off() -> None:
    assert offload_wanted({}) and offload_wanted({"ZTONE_TAP_OFFLOAD": "1"})
    assert not offload_wanted({"ZTONE_TAP_OFFLOAD": "0"})
    r, w = os.pipe()  # not a TAP: the kernel refuses, and that is only logged
    try:
        assert not set_offload(r, "zttest")
    finally:
        os.close(r)
        os.close(w)
