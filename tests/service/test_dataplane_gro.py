"""The native data plane merges TCP segments exactly as the general path's TAP does.

A burst of FRAMEs carrying consecutive segments of one TCP connection reaches a port
with a virtio_net_hdr as one GSO write per run (``_dp_gro.h``). The reference is
``osdep/linux/gro.py``'s ``coalesce`` of the same frames (what ``TunDevice.write_batch``
writes for them): the native writes must be the same, byte for byte, write for write.
The traffic is made as in test_dataplane.py: member a's real datagrams (simulated
members, tests/sim), sent over loopback UDP to the socket the native table reads; the
port is one end of a socketpair (one message per write).
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from test_dataplane import NATIVE, Members, Wire, table

from ztone.node.fast_grants import Grant
from ztone.osdep.linux import gro
from ztone.service.dataplane import native_dataplane_module
from ztone.util.inet_checksum import inet_sum_pure

pytestmark = pytest.mark.skipif(
    native_dataplane_module(NATIVE) is None,
    reason="the native accelerator with the data plane (Linux) is not built",
)

ETH_IPV4, ETH_IPV6, ETH_ARP = 0x0800, 0x86DD, 0x0806
ACK, PSH, SYN = 0x10, 0x08, 0x02
A6 = ipaddress.IPv6Address("fd00::a").packed
B6 = ipaddress.IPv6Address("fd00::b").packed
TIMESTAMPS = bytes([1, 1, 8, 10]) + bytes(range(8))  # NOP NOP TS (12 bytes)


@dataclass(frozen=True)
class Seg:
    """One TCP segment (the fields a run's rules look at)."""

    seq: int
    size: int
    flags: int = ACK
    sport: int = 40000
    dport: int = 5201
    ack: int = 7777
    window: int = 512
    options: bytes = TIMESTAMPS
    v6: bool = False
    bad_checksum: bool = False
    tos: int = 0


def tcp_packet(m: Members, s: Seg) -> bytes:
    """The IP packet (a -> b) of ``s``, its TCP checksum right unless told otherwise."""
    header_len = 20 + len(s.options)
    tcp = bytearray(header_len)
    tcp[0:2] = s.sport.to_bytes(2, "big")
    tcp[2:4] = s.dport.to_bytes(2, "big")
    tcp[4:8] = (s.seq & 0xFFFFFFFF).to_bytes(4, "big")
    tcp[8:12] = s.ack.to_bytes(4, "big")
    tcp[12] = (header_len // 4) << 4
    tcp[13] = s.flags
    tcp[14:16] = s.window.to_bytes(2, "big")
    tcp[20:] = s.options
    body = bytes((s.seq + i) & 0xFF for i in range(s.size))
    segment = bytes(tcp) + body
    if s.v6:
        addresses = A6 + B6
        ip = bytes([0x60 | s.tos >> 4, (s.tos & 15) << 4, 0, 0])
        ip += len(segment).to_bytes(2, "big") + bytes([6, 64]) + addresses
    else:
        addresses = ipaddress.IPv4Address(m.a_ip).packed + ipaddress.IPv4Address(m.b_ip).packed
        ip4 = bytearray(20)
        ip4[0], ip4[1] = 0x45, s.tos
        ip4[2:4] = (20 + len(segment)).to_bytes(2, "big")
        ip4[6], ip4[8], ip4[9] = 0x40, 64, 6
        ip4[12:20] = addresses
        ip4[10:12] = (~inet_sum_pure(ip4, 0) & 0xFFFF).to_bytes(2, "big")
        ip = bytes(ip4)
    total = inet_sum_pure(segment, inet_sum_pure(addresses, 6 + len(segment)))
    checksum = ~total & 0xFFFF
    if s.bad_checksum:
        checksum ^= 0x0101
    return ip + segment[:16] + checksum.to_bytes(2, "big") + segment[18:]


Frame = tuple[int, bytes]
"""(ethertype, payload)."""


@functools.cache
def gro_lab() -> tuple[Members, Grant]:
    m = Members()
    return m, m.grant()


@pytest.fixture
def wire() -> Iterator[Wire]:
    w = big_wire()
    yield w
    w.close()


def big_wire() -> Wire:
    """A Wire whose sockets hold a whole test burst (loopback queues at once)."""
    w = Wire()
    for s in (w.rx, w.port_in, w.port_out):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    return w


def native_writes(m: Members, dp: Any, wire: Wire, frames: list[Frame]) -> list[bytes]:
    """What the table writes to the port for ``frames``, all read in ONE burst."""
    datagrams = [d for ethertype, p in frames for d in m.frame_datagrams(p, ethertype)]
    wire.send(datagrams)
    before = dp.stats()["delivered"]
    passed = dp.rx_burst(wire.rx.fileno(), 1, m.net.now, 4096)
    assert passed == []
    assert dp.stats()["delivered"] - before == len(frames)
    return wire.written()


def reference(m: Members, frames: list[Frame]) -> list[bytes]:
    """gro.coalesce's writes for ``frames`` (as write_batch makes them for the TAP)."""
    eh = m.b_mac.to_bytes(6, "big") + m.a_mac.to_bytes(6, "big")
    pairs = [(eh + ethertype.to_bytes(2, "big"), p) for ethertype, p in frames]
    return [b"".join(w) for w in gro.coalesce(pairs, inet_sum_pure)]


def run_of(m: Members, segs: list[Seg]) -> list[Frame]:
    return [(ETH_IPV6 if s.v6 else ETH_IPV4, tcp_packet(m, s)) for s in segs]


def check(m: Members, grant: Grant, wire: Wire, frames: list[Frame]) -> list[bytes]:
    dp = table(m, grant, wire)
    native = native_writes(m, dp, wire, frames)
    assert native == reference(m, frames)
    stats = dp.stats()
    merged = [w for w in native if w[0] == gro.F_NEEDS_CSUM]
    assert stats["gro_writes"] == len(merged)
    assert stats["gro_frames"] == len(frames) - (len(native) - len(merged))
    return native


def steady(m: Members, n: int, mss: int = 1200, seq: int = 1000, **kw: Any) -> list[Seg]:
    return [Seg(seq + i * mss, mss, **kw) for i in range(n)]


def test_a_run_is_one_gso_write(wire: Wire) -> None:
    m, grant = gro_lab()
    segs = steady(m, 6)
    segs[-1] = replace(segs[-1], flags=ACK | PSH, size=300)
    native = check(m, grant, wire, run_of(m, segs))
    assert len(native) == 1
    vnet = native[0][:10]
    flags, gso_type, hdr_len, gso_size, csum_start, csum_offset = gro._VNET.unpack(vnet)
    assert (flags, gso_type, gso_size) == (gro.F_NEEDS_CSUM, gro.GSO_TCPV4, 1200)
    assert (hdr_len, csum_start, csum_offset) == (14 + 20 + 32, 14 + 20, 16)
    ip = native[0][24:]
    assert int.from_bytes(ip[2:4], "big") == len(ip) == 20 + 32 + 5 * 1200 + 300
    assert inet_sum_pure(ip[:20], 0) == 0xFFFF  # the IPv4 header checksum holds
    assert ip[20 + 13] == ACK | PSH


def test_ipv6_runs_merge(wire: Wire) -> None:
    m, grant = gro_lab()
    native = check(m, grant, wire, run_of(m, steady(m, 5, v6=True, tos=0x28)))
    assert len(native) == 1 and native[0][1] == gro.GSO_TCPV6


@pytest.mark.parametrize(
    "break_at",
    [
        "bad_checksum_middle",
        "bad_checksum_first",
        "psh_middle",
        "gap",
        "short_middle",
        "longer_than_mss",
        "other_flow",
        "other_window",
        "syn",
        "non_tcp",
        "ipv6_between",
        "seq_wraps",
    ],
)
def test_runs_end_where_coalesce_ends_them(wire: Wire, break_at: str) -> None:
    m, grant = gro_lab()
    segs = steady(m, 8, mss=1000)
    frames: list[Frame]
    k = 3
    if break_at == "bad_checksum_middle":
        segs[k] = replace(segs[k], bad_checksum=True)
    elif break_at == "bad_checksum_first":
        segs[0] = replace(segs[0], bad_checksum=True)
    elif break_at == "psh_middle":
        segs[k] = replace(segs[k], flags=ACK | PSH)
    elif break_at == "gap":
        segs[k:] = [replace(s, seq=s.seq + 1) for s in segs[k:]]
    elif break_at == "short_middle":
        segs[k] = replace(segs[k], size=500)
        segs[k + 1 :] = [replace(s, seq=s.seq - 500) for s in segs[k + 1 :]]
    elif break_at == "longer_than_mss":
        segs[k] = replace(segs[k], size=1001)
        segs[k + 1 :] = [replace(s, seq=s.seq + 1) for s in segs[k + 1 :]]
    elif break_at == "other_flow":
        segs[k] = replace(segs[k], sport=40001)
    elif break_at == "other_window":
        segs[k] = replace(segs[k], window=513)
    elif break_at == "syn":
        segs[k] = replace(segs[k], flags=SYN | ACK)
    elif break_at == "seq_wraps":
        segs = steady(m, 8, mss=1000, seq=(1 << 32) - 2500)
    frames = run_of(m, segs)
    if break_at == "non_tcp":
        frames.insert(k, (ETH_ARP, bytes(28)))
    elif break_at == "ipv6_between":
        frames.insert(k, run_of(m, [Seg(5, 1000, v6=True)])[0])
    native = check(m, grant, wire, frames)
    if break_at == "seq_wraps":
        assert len(native) == 1  # sequence numbers wrap inside a run
    else:
        assert 1 < len(native) < len(frames)  # merged, and broken where it should


def test_a_run_stops_below_64k(wire: Wire) -> None:
    m, grant = gro_lab()
    segs = steady(m, 50, mss=1448)  # 1500-byte IP packets
    native = check(m, grant, wire, run_of(m, segs))
    assert len(native) == 2
    assert len(native[0]) - 10 - 14 == 20 + 32 + 45 * 1448 <= 65535


def test_ports_without_vnet_get_each_frame_alone(wire: Wire) -> None:
    m, grant = gro_lab()
    frames = run_of(m, steady(m, 5))
    dp = table(m, grant, wire, vnet=False)
    native = native_writes(m, dp, wire, frames)
    eh = m.b_mac.to_bytes(6, "big") + m.a_mac.to_bytes(6, "big")
    assert native == [eh + t.to_bytes(2, "big") + p for t, p in frames]
    assert dp.stats()["gro_writes"] == 0


def test_a_run_never_outlives_its_burst(wire: Wire) -> None:
    """Two bursts: each writes its own runs by its end (nothing waits for the next)."""
    m, grant = gro_lab()
    segs = steady(m, 6)
    dp = table(m, grant, wire)
    first = native_writes(m, dp, wire, run_of(m, segs[:3]))
    second = native_writes(m, dp, wire, run_of(m, segs[3:]))
    assert first == reference(m, run_of(m, segs[:3]))
    assert second == reference(m, run_of(m, segs[3:]))
    assert len(first) == len(second) == 1


def test_a_failed_write_is_counted_once_per_write(wire: Wire) -> None:
    """A port that refuses the merged write: one tap error, nothing counted delivered."""
    m, grant = gro_lab()
    frames = run_of(m, steady(m, 5))
    dp = table(m, grant, wire)
    wire.port_out.close()  # the port's far end is gone: every write fails
    datagrams = [d for ethertype, p in frames for d in m.frame_datagrams(p, ethertype)]
    wire.send(datagrams)
    assert dp.rx_burst(wire.rx.fileno(), 1, m.net.now, 4096) == []
    stats = dp.stats()
    assert (stats["tap_errors"], stats["delivered"], stats["gro_writes"]) == (1, 0, 0)
    (record,) = dp.drain()  # the table still carried them: the core hears of it
    assert record[6] == len(frames)


PERTURBATIONS = [
    "none",
    "none",
    "none",
    "none",
    "none",
    "none",
    "psh",
    "gap",
    "short",
    "long",
    "bad_checksum",
    "other_flow",
    "ack_moves",
    "options",
    "syn",
    "fin",
    "non_tcp",
    "ipv6",
    "tos",
    "duplicate",
    "empty",
    "mangled",
]


@st.composite
def segment_frames(draw: st.DrawFn, m: Members) -> list[Frame]:
    """Mostly mergeable segments of one flow, with random perturbations."""
    mss = draw(st.sampled_from([64, 536, 1000, 1400, 1448]))
    seq = draw(st.sampled_from([0, 12345, (1 << 32) - 3000]))
    frames: list[Frame] = []
    for _ in range(draw(st.integers(1, 30))):
        what = draw(st.sampled_from(PERTURBATIONS))
        s = Seg(seq, mss)
        if what == "psh":
            s = replace(s, flags=ACK | PSH)
        elif what == "gap":
            s = replace(s, seq=seq + draw(st.integers(1, 3000)))
        elif what == "short":
            s = replace(s, size=draw(st.integers(1, mss)))
        elif what == "long":
            s = replace(s, size=mss + draw(st.integers(1, 50)))
        elif what == "bad_checksum":
            s = replace(s, bad_checksum=True)
        elif what == "other_flow":
            s = replace(s, dport=5202)
        elif what == "ack_moves":
            s = replace(s, ack=7778)
        elif what == "options":
            s = replace(s, options=b"")
        elif what == "syn":
            s = replace(s, flags=SYN | ACK)
        elif what == "fin":
            s = replace(s, flags=ACK | 0x01)
        elif what == "ipv6":
            s = replace(s, v6=True)
        elif what == "tos":
            s = replace(s, tos=0x10)
        elif what == "duplicate":
            s = replace(s, seq=seq - mss)
        elif what == "empty":
            s = replace(s, size=0)
        if what == "non_tcp":
            frames.append((ETH_ARP, bytes(28)))
            continue
        ethertype, packet = run_of(m, [s])[0]
        if what == "mangled":  # a byte of the headers changed
            at = draw(st.integers(0, 20 + 32 - 1))
            raw = bytearray(packet)
            raw[at] = draw(st.integers(0, 255))
            packet = bytes(raw)
        frames.append((ethertype, packet))
        if what not in ("gap", "duplicate", "other_flow", "ipv6", "non_tcp"):
            seq = (s.seq + s.size) & 0xFFFFFFFF
    return frames


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_native_runs_are_coalesce_runs(data: st.DataObject) -> None:
    m, grant = gro_lab()
    frames = data.draw(segment_frames(m))
    wire = big_wire()
    try:
        native = check(m, grant, wire, frames)
        merged = sum(1 for w in native if w[0] == gro.F_NEEDS_CSUM)
        event(f"merged writes: {min(merged, 3)}{'+' if merged > 3 else ''}")
    finally:
        wire.close()
