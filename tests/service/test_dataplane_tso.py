"""The native send path cuts the host's super-packets exactly as the general path does.

With TAP offloads on, a read may be a TCP super-packet (GSO) or a frame whose
checksum is still to be finished (``_dp_tso.h``). For a send-granted member
``Dataplane.tx_burst`` cuts/finishes it and seals every segment as a FRAME; the
reference is the general path's ``TunDevice`` (``osdep/linux/tso.py`` and
``gro.complete_checksum``) given the same read. What member b receives (its general
path opening the real datagrams sent over loopback) must be exactly those frames.
Anything the native side does not carry goes back as read, for the general path.
The traffic is made as in test_dataplane.py (simulated members, real sockets).
"""

from __future__ import annotations

import functools
import os
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_dataplane import NATIVE, Members, Wire, send_grant, send_table, vnet_frame

from osdep.linux.test_tso import ACK, CWR, FIN, PSH, VNET, expected, packet, pseudo, ref_sum
from osdep.linux.test_tso import super_frame as host_super_frame
from ztone.node.actions import DeliverFrame
from ztone.node.fast_grants import SendGrant
from ztone.osdep.linux.gro import F_NEEDS_CSUM
from ztone.osdep.linux.tun import TunDevice
from ztone.service.dataplane import native_dataplane_module

pytestmark = pytest.mark.skipif(
    native_dataplane_module(NATIVE) is None,
    reason="the native accelerator with the data plane (Linux) is not built",
)

ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD
MTU = 2800


@functools.cache
def lab() -> tuple[Members, SendGrant]:
    m = Members()
    return m, send_grant(m)


def super_read(m: Members, v6: bool, seq: int, data: bytes, flags: int, mss: int,
               ident: int = 1, src: int | None = None) -> bytes:  # fmt: skip
    """A read of a super-packet from a to b (virtio_net_hdr included)."""
    vnet, frame = host_super_frame(v6, seq, data, flags, mss, ident)
    source = m.a_mac if src is None else src
    return vnet + m.b_mac.to_bytes(6, "big") + source.to_bytes(6, "big") + frame[12:]


class Sender:
    """a's native table with its send grant to b, reading one end of ``wire``'s port."""

    def __init__(self, m: Members, grant: SendGrant, wire: Wire, mtu: int = MTU) -> None:
        self.m, self.wire = m, wire
        self.dp: Any = send_table(m, grant, wire, mtu)
        wire.port_in.setblocking(False)
        self.reference = TunDevice(os.dup(wire.stranger.fileno()), "zttest", vnet=True)

    def run(self, reads: list[bytes]) -> tuple[list[bytes], list[tuple[int, int, int, bytes]]]:
        """(reads given back, frames b's general path delivers of what was sent)."""
        for r in reads:
            self.wire.port_out.send(r)
        back: list[bytes] = self.dp.tx_burst(
            self.wire.port_in.fileno(), True, self.m.nwid, self.m.net.now, 128
        )
        b, delivered = self.m.b, []
        while True:
            try:
                d = self.wire.rx.recv(65536)
            except BlockingIOError:
                break
            b.node.on_wire_packet(self.m.net.now, 1, self.m.a.endpoint, d)
            delivered += [
                (x.source, x.destination, x.ethertype, x.payload)
                for x in b.node.drain_actions()
                if isinstance(x, DeliverFrame)
            ]
        return back, delivered

    def general(self, reads: list[bytes]) -> list[tuple[int, int, int, bytes]]:
        """The frames the general path's TunDevice makes of the same reads."""
        return [tuple(f) for f in self.reference.frames_of(reads)]  # type: ignore[misc]

    def close(self) -> None:
        self.reference.close()


@pytest.fixture
def sender() -> Any:
    m, grant = lab()
    wire = Wire()
    s = Sender(m, grant, wire)
    yield s
    s.close()
    wire.close()


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_a_64k_super_packet_arrives_as_the_general_path_cuts_it(sender: Sender, v6: bool) -> None:
    m = sender.m
    hl = (40 if v6 else 20) + 32
    data = os.urandom(65535 - hl)  # 24 segments of 2748: ~48 datagrams, one burst
    read = super_read(m, v6, 0xFFFFF000, data, ACK | PSH | FIN | CWR, MTU - hl)
    back, delivered = sender.run([read])
    assert back == []
    want = sender.general([read])
    assert len(want) == 24 and delivered == want
    eth = ETH_IPV6 if v6 else ETH_IPV4
    flags = ACK | PSH | FIN | CWR
    assert [p for *_, p in want] == expected(v6, 0xFFFFF000, data, flags, MTU - hl, 1)
    assert all(f[:3] == (m.a_mac, m.b_mac, eth) for f in want)
    assert sender.dp.stats()["sent"] == 1


def test_checksums_are_finished_and_flags_without_work_pass(sender: Sender) -> None:
    m = sender.m
    whole = packet(False, 1, b"odd data!", ACK | PSH)
    raw = bytearray(vnet_frame(m.b_mac, m.a_mac, ETH_IPV4, whole))
    at = 10 + 14 + 20 + 16
    partial = ref_sum(pseudo(False, whole[12:16], whole[16:20], len(whole) - 20))
    raw[at : at + 2] = partial.to_bytes(2, "big")
    raw[:10] = VNET.pack(F_NEEDS_CSUM, 0, 0, 0, 34, 16)
    valid = vnet_frame(m.b_mac, m.a_mac, ETH_IPV4, whole, VNET.pack(2, 0, 0, 0, 0, 0))  # DATA_VALID
    # a sum that finishes as 0 is written 0xFFFF (UDP: 0 would mean "no checksum")
    # the words from csum_start (ports 0x35, 0x35, length 0xc, the field) sum to 0xFFFF
    udp = bytes(20) + struct.pack("!HHHH", 0x35, 0x35, 0xC, 0xFFFF - 0x76) + bytes(4)
    zero = vnet_frame(m.b_mac, m.a_mac, ETH_IPV4, udp, VNET.pack(F_NEEDS_CSUM, 0, 0, 0, 34, 6))
    reads = [bytes(raw), valid, zero]
    back, delivered = sender.run(reads)
    assert back == [] and delivered == sender.general(reads)
    assert [p for *_, p in delivered][:2] == [whole, whole]
    assert delivered[2][3][26:28] == b"\xff\xff"


def test_what_is_not_carried_goes_back_as_read() -> None:
    m, grant = lab()
    data = os.urandom(9000)
    good = super_read(m, False, 5, data, ACK, 2748)
    wire = Wire()
    small = Sender(m, grant, wire, mtu=1500)  # segments over the grant's MTU
    try:
        assert small.run([good]) == ([good], [])
        assert small.dp.stats()["sent"] == 0
    finally:
        small.close()
    s = Sender(m, grant, wire)
    try:
        bad_sum = bytearray(vnet_frame(m.b_mac, m.a_mac, ETH_IPV4, b"z" * 40))
        bad_sum[:10] = VNET.pack(F_NEEDS_CSUM, 0, 0, 0, 53, 0)  # past the end
        others = [
            super_read(m, False, 5, data, ACK, 2748, src=m.a_mac ^ 2),  # bridged source
            super_read(m, False, 5, data, ACK, 0),  # gso_size 0
            VNET.pack(1, 5, 0, 1400, 34, 6) + good[10:],  # UDP GSO: never asked for
            bytes(bad_sum),
        ]
        for r in others:
            assert s.run([r]) == ([r], [])
        # in order: a read after one given back goes back too, carried or not
        assert s.run([good, others[1], good]) == ([others[1], good], s.general([good]))
    finally:
        s.close()
        wire.close()


@st.composite
def cuts(draw: st.DrawFn) -> tuple[int, int]:
    """(data size, segment size) of at most 60 segments: the loopback socket's default
    receive buffer holds the whole burst (one tx_burst sends it before b reads)."""
    size = draw(st.integers(1, 20000))
    return size, draw(st.integers(max(1, -(-size // 60)), MTU - 72))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    v6=st.booleans(),
    cut=cuts(),
    flags=st.sampled_from([ACK, ACK | PSH, ACK | FIN | PSH, ACK | CWR, ACK | CWR | FIN]),
    seq=st.integers(0, 0xFFFFFFFF),
    ident=st.integers(0, 0xFFFF),
)
def test_fuzzed_super_packets_native_equals_general(
    v6: bool, cut: tuple[int, int], flags: int, seq: int, ident: int
) -> None:
    size, mss = cut
    m, grant = lab()
    wire = Wire()
    s = Sender(m, grant, wire)
    try:
        read = super_read(m, v6, seq, os.urandom(size), flags, mss, ident)
        back, delivered = s.run([read])
        assert back == [] and delivered == s.general([read])
        assert s.dp.stats()["send_errors"] == 0
    finally:
        s.close()
        wire.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    v6=st.booleans(),
    size=st.integers(1, 9000),
    noise=st.lists(st.tuples(st.integers(0, 10 + 14 + 60 + 60), st.integers(0, 255)), max_size=3),
    cut_short=st.integers(0, 40),
)
def test_mangled_super_packets_are_the_general_paths_either_way(
    v6: bool, size: int, noise: list[tuple[int, int]], cut_short: int
) -> None:
    """A read whose headers were changed: the native side either gives it back as read
    or sends exactly what the general path makes of it (never something else)."""
    m, grant = lab()
    read = bytearray(super_read(m, v6, 7, os.urandom(size), ACK | PSH, 2748))
    for at, value in noise:
        if at < len(read) and not 10 <= at < 22:  # the MACs: only "not granted"
            read[at] = value
    raw = bytes(read[: len(read) - cut_short])
    wire = Wire()
    s = Sender(m, grant, wire)
    try:
        back, delivered = s.run([raw])
        assert (back == [raw] and delivered == []) or (back == [] and delivered == s.general([raw]))
    finally:
        s.close()
        wire.close()
