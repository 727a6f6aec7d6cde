"""The native receive data plane (``_speedups.Dataplane``, service/dataplane.py) writes
exactly what the general path's DeliverFrame would, and gives everything else back.

Two simulated members (tests/sim) make the traffic: b's core grants a's frames once
one went through its general path; that grant is mirrored into a real native table;
a's datagrams are then sent over real UDP sockets on loopback to a socket the native
table reads, and its port is one end of a real socketpair (one message per frame).
The reference is b's general path fed the same datagrams: each DeliverFrame as the
TAP would get it (a virtio_net_hdr of zeros, our MAC, the member's MAC, ethertype,
payload). The grant's path is the real sender socket's address (the simulator's
endpoints are not real sockets); the mapping of a grant itself is checked separately.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import os
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.test_vl2_sim import ETH_IPV4, _eth_payload_ipv4, _ipv4, build, join_and_authorize
from ztone.crypto import backend
from ztone.node import bounds as B
from ztone.node.actions import DeliverFrame, SendPacket
from ztone.node.constants import FAST_GRANT_LIFETIME
from ztone.node.fast_grants import Grant, SendGrant, accepted_ethertypes
from ztone.node.vl1.peer import Peer
from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.mac import MAC
from ztone.node.wire.rules import RULE_FLAG_NOT, Rule, RuleType
from ztone.osdep.fake import FakeLink
from ztone.osdep.linux.tun import TunDevice
from ztone.service.dataplane import (
    NativeDataplane,
    native_dataplane_module,
    native_entry,
    native_send_entry,
)
from ztone.service.frame_pump import FramePump

NATIVE = backend.NATIVE.native if backend.NATIVE is not None else None
pytestmark = pytest.mark.skipif(
    native_dataplane_module(NATIVE) is None or not sys.platform.startswith("linux"),
    reason="the native accelerator with the data plane (Linux) is not built",
)

ETH_ARP = 0x0806


class Members:
    """A simulated network with members a and b; b makes receive grants."""

    def __init__(self) -> None:
        self.net, self.controller, self.nwid = build(
            seed=5, crypto=backend.NATIVE or backend.PURE, fast_path=True
        )
        join_and_authorize(self.net, self.controller, self.nwid)
        self.a, self.b = self.net.nodes["a"], self.net.nodes["b"]
        assert self.b.node.enable_receive_grants()
        nwid = self.nwid
        self.a_mac = int(MAC.from_address(int(self.a.identity.address), nwid))
        self.b_mac = int(MAC.from_address(int(self.b.identity.address), nwid))
        self.a_ip, self.b_ip = _ipv4(self.a, nwid), _ipv4(self.b, nwid)
        self.net.run(1_000)

    def frame_datagrams(self, payload: bytes, ethertype: int = ETH_IPV4) -> list[bytes]:
        """a's datagrams for one frame to b (taken from a's actions, not transmitted)."""
        a = self.a
        a.node.on_tap_frame(self.net.now, self.nwid, self.a_mac, self.b_mac, ethertype, payload)
        out = []
        for action in a.node.drain_actions():
            if isinstance(action, SendPacket) and action.remote == self.b.endpoint:
                out.append(bytes(action.data))
        return out

    def ip_payload(self, size: int, fill: int) -> bytes:
        return _eth_payload_ipv4(self.a_ip, self.b_ip, bytes([fill]) * size)

    def grant(self) -> Grant:
        """Send frames through the simulator until b's general path, having delivered
        one over the direct path, grants a's frames (the first may be relayed)."""
        for _ in range(5):
            self.a.node.on_tap_frame(
                self.net.now, self.nwid, self.a_mac, self.b_mac, ETH_IPV4, self.ip_payload(60, 1)
            )
            self.net._drain(self.a)
            self.net.run(200)
            _, grants = self.b.node.receive_grants(self.net.now)
            if grants:
                break
        assert len(grants) == 1, grants
        return grants[0]

    def general_writes(self, datagrams: list[bytes]) -> list[bytes]:
        """What b's general path writes to the port for ``datagrams`` (from a)."""
        b = self.b
        out = []
        for data in datagrams:
            b.node.on_wire_packet(self.net.now, 1, self.a.endpoint, data)
            for action in b.node.drain_actions():
                if isinstance(action, DeliverFrame):
                    out.append(tap_bytes(action))
        return out


def tap_bytes(action: DeliverFrame) -> bytes:
    """A DeliverFrame as a TAP with IFF_VNET_HDR gets it (osdep/linux/tun.py)."""
    return (
        bytes(10)
        + action.destination.to_bytes(6, "big")
        + action.source.to_bytes(6, "big")
        + action.ethertype.to_bytes(2, "big")
        + action.payload
    )


class Wire:
    """Real sockets: ``rx`` (read by the native table), senders, and a port."""

    def __init__(self) -> None:
        self.rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rx.bind(("127.0.0.1", 0))
        self.rx.setblocking(False)
        self.tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.tx.bind(("127.0.0.1", 0))
        self.stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.stranger.bind(("127.0.0.1", 0))
        self.port_in, self.port_out = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.port_out.setblocking(False)

    def send(self, datagrams: list[bytes], sender: socket.socket | None = None) -> None:
        for data in datagrams:
            (sender or self.tx).sendto(data, self.rx.getsockname())

    def written(self) -> list[bytes]:
        out = []
        while True:
            try:
                out.append(self.port_out.recv(65536))
            except BlockingIOError:
                return out

    def close(self) -> None:
        for s in (self.rx, self.tx, self.stranger, self.port_in, self.port_out):
            s.close()


@pytest.fixture
def wire() -> Iterator[Wire]:
    w = Wire()
    yield w
    w.close()


def table(members: Members, grant: Grant, wire: Wire, vnet: bool = True, **changes: Any) -> Any:
    """A native table holding ``grant`` for the path of ``wire.tx`` (socket id 1),
    writing to ``wire``'s port (with a virtio_net_hdr when ``vnet``)."""
    grant = replace(grant, remote=wire_remote(wire), **changes)
    dp = NATIVE.Dataplane(  # type: ignore[union-attr]
        int(members.b.identity.address).to_bytes(5, "big"),
        B.FAST_GRANTS,
        B.FAST_REASSEMBLY_SLOTS,
        B.FAST_REASSEMBLY_TIMEOUT,
    )
    dp.replace([native_entry(NATIVE, grant, wire.port_in.fileno(), vnet, 2800)])  # type: ignore[arg-type]
    return dp


FAR = 1 << 62
"""A grant's expiry for the reactor thread, whose clock is the wall clock (ms)."""


def reactor_table(members: Members, grant: Grant, wire: Wire, **changes: Any) -> Any:
    """:func:`table` with its reactor thread running and reading ``wire.rx`` (socket id
    1); the grant's expiry is on the wall clock unless ``changes`` set one."""
    changes.setdefault("expires", FAR)
    dp = table(members, grant, wire, **changes)
    dp.start(B.DATAPLANE_RING_ITEMS, B.DATAPLANE_RING_BYTES)
    dp.watch_socket(wire.rx.fileno(), 1)
    return dp


def burst(dp: Any, wire: Wire, now: int, expect: int) -> list[tuple[str, int, bytes]]:
    """rx_burst until ``expect`` datagrams were delivered or given back (loopback
    delivers at once, but the test must not rely on it: bounded retries). With the
    reactor running, it reads the socket itself; what it gives back comes from take()
    (always datagrams of socket 1)."""
    passed: list[tuple[str, int, bytes]] = []
    start = dp.stats()["delivered"]
    reactor = dp.stats()["reactor"]
    for _ in range(100 if reactor else 20):
        if reactor:
            taken = dp.take()
            assert {(kind, sock_id) for kind, sock_id, _, _, _ in taken} <= {(0, 1)}
            passed += [(host, port, data) for _, _, host, port, data in taken]
        else:
            passed += dp.rx_burst(wire.rx.fileno(), 1, now, 1024)
        if dp.stats()["delivered"] - start + len(passed) >= expect:
            break
        time.sleep(0.01)
    return passed


def test_grant_row_is_the_grant(wire: Wire) -> None:
    m = Members()
    grant = m.grant()
    assert grant.nwid == m.nwid and grant.peer == int(m.a.identity.address)
    assert grant.remote == m.a.endpoint and grant.local_socket == 1
    assert grant.mac == m.b_mac and grant.peer_mac == m.a_mac
    row = native_entry(NATIVE, grant, 7, True, 1500)  # type: ignore[arg-type]
    assert row[:10] == (
        m.nwid,
        int(m.a.identity.address),
        1,
        m.a.endpoint.ip.packed,
        m.a.endpoint.port,
        7,
        True,
        1500,
        m.b_mac,
        m.a_mac,
    )
    assert row[10] == grant.ethertypes and row[12] == grant.key.salsa_key


@pytest.mark.parametrize("reactor", [False, True], ids=["event-loop", "reactor"])
@pytest.mark.parametrize("aes", [True, False], ids=["suite3", "suite1"])
def test_native_writes_what_the_general_path_delivers(
    wire: Wire, monkeypatch: pytest.MonkeyPatch, aes: bool, reactor: bool
) -> None:
    if not aes:
        monkeypatch.setattr(Peer, "supports_aes", property(lambda self: False))
    m = Members()
    grant = m.grant()
    frames = [
        m.frame_datagrams(m.ip_payload(60, 2)),
        m.frame_datagrams(m.ip_payload(2780, 3)),  # a head and a fragment
        m.frame_datagrams(m.ip_payload(1300, 4)),
        m.frame_datagrams(m.ip_payload(2780, 5)),
    ]
    assert [len(f) for f in frames] == [1, 2, 1, 2]
    suites = {(f[0][18] >> 3) & 7 for f in frames}
    assert suites == ({3} if aes else {1})
    sent = [
        frames[0][0],
        frames[1][1],  # reordered: the fragment before its head
        frames[1][0],
        frames[1][1],  # a duplicated fragment
        frames[2][0],
        frames[3][0],
        frames[3][0],  # a duplicated head
        frames[3][1],
    ]
    dp = (reactor_table if reactor else table)(m, grant, wire)
    before = int(time.time() * 1000)
    wire.send(sent)
    passed = burst(dp, wire, m.net.now, 4)
    assert passed == []
    native = wire.written()
    general = m.general_writes([d for f in frames for d in f])
    assert len(general) == 4
    assert native == general
    stats = dp.stats()
    assert stats["delivered"] == 4 and stats["passed"] == 0
    (record,) = dp.drain()
    nwid, peer, sock_id, ip, port, datagrams, packets, size, last = record
    assert (nwid, peer, sock_id, packets) == (m.nwid, grant.peer, 1, 4)
    if reactor:  # the thread's clock is the core's: the wall clock in ms
        assert before <= last <= int(time.time() * 1000)
    else:
        assert last == m.net.now
    assert (ip, port) == (socket.inet_aton(wire.tx.getsockname()[0]), wire.tx.getsockname()[1])
    assert datagrams == 6 and size == sum(len(d) for f in frames for d in f) - 32
    assert dp.drain() == []


def test_a_grant_that_stays_keeps_its_undrained_activity(wire: Wire) -> None:
    """replace() with the same grant again (the core mirrors after every change, while
    the reactor thread may be carrying frames) keeps what was not drained yet; a grant
    that goes takes its activity with it."""
    m = Members()
    grant = m.grant()
    dp = table(m, grant, wire)
    assert NATIVE is not None
    row = native_entry(
        NATIVE, replace(grant, remote=wire_remote(wire)), wire.port_in.fileno(), True, 2800
    )
    wire.send(m.frame_datagrams(m.ip_payload(60, 2)))
    assert burst(dp, wire, m.net.now, 1) == []
    other = replace(grant, nwid=grant.nwid ^ 1, remote=wire_remote(wire))
    dp.replace([native_entry(NATIVE, other, wire.port_in.fileno(), True, 2800), row])
    (record,) = dp.drain()
    assert record[:3] == (m.nwid, grant.peer, 1) and record[6] == 1
    wire.send(m.frame_datagrams(m.ip_payload(60, 3)))
    assert burst(dp, wire, m.net.now, 1) == []
    dp.replace([native_entry(NATIVE, other, wire.port_in.fileno(), True, 2800)])
    assert dp.drain() == []


def address(sock: socket.socket) -> InetAddress:
    """The address ``sock`` is bound to."""
    host, port = sock.getsockname()
    return InetAddress(ipaddress.ip_address(host), port)


def wire_remote(wire: Wire) -> InetAddress:
    return address(wire.tx)


@pytest.mark.parametrize("reactor", [False, True], ids=["event-loop", "reactor"])
def test_hostile_and_ungranted_datagrams_come_back_unchanged(wire: Wire, reactor: bool) -> None:
    m = Members()
    make = reactor_table if reactor else table
    now = int(time.time() * 1000) if reactor else m.net.now
    grant = m.grant()
    good = m.frame_datagrams(m.ip_payload(60, 7))[0]
    big = m.frame_datagrams(m.ip_payload(2780, 8))
    arp = m.frame_datagrams(bytes(28), ETH_ARP)[0]
    tampered = bytearray(good)
    tampered[-1] ^= 1
    to_other = bytearray(good)
    to_other[8:13] = bytes(5)
    relayed = bytearray(good)
    relayed[18] |= 1
    bad_total = bytearray(big[1])
    bad_total[14] = 0x91  # 9 pieces
    hostile = [
        os.urandom(200),
        b"",
        b"\x00" * 13,
        bytes(tampered),  # MAC does not hold
        bytes(to_other),  # not to us
        bytes(relayed),  # a hop count
        big[1][:16],  # a truncated fragment (no data)
        bytes(bad_total),
        good[:30],  # truncated packet
    ]
    dp = make(m, grant, wire, ethertypes=(ETH_IPV4,))
    wire.send(hostile)
    wire.send([good], wire.stranger)  # an ungranted path
    wire.send([arp])  # an ethertype the grant does not cover
    passed = burst(dp, wire, m.net.now, len(hostile) + 2)
    stranger = wire.stranger.getsockname()
    tx = wire.tx.getsockname()
    assert [(h, p) for h, p, _ in passed] == [tx] * len(hostile) + [stranger, tx]
    assert [d for _, _, d in passed] == [*hostile, good, arp]
    assert wire.written() == []
    assert dp.drain() == []
    # an expired grant and another network's grant take nothing either
    dp.stop()
    dp = make(m, grant, wire, expires=now)
    wire.send([good])
    assert [d for _, _, d in burst(dp, wire, m.net.now, 1)] == [good]
    dp.stop()
    dp = make(m, grant, wire, nwid=m.nwid ^ 1)
    wire.send([good])
    assert [d for _, _, d in burst(dp, wire, m.net.now, 1)] == [good]
    assert wire.written() == []


def test_a_flood_of_heads_is_bounded_and_counted(wire: Wire) -> None:
    m = Members()
    grant = m.grant()
    dp = table(m, grant, wire)
    head = bytearray(m.frame_datagrams(m.ip_payload(2780, 9))[0])
    flood = B.FAST_REASSEMBLY_SLOTS + 100
    for i in range(flood):
        head[0:8] = i.to_bytes(8, "big")
        wire.send([bytes(head)])
        if i % 64 == 63:
            assert dp.rx_burst(wire.rx.fileno(), 1, m.net.now, 1024) == []
    assert dp.rx_burst(wire.rx.fileno(), 1, m.net.now, 1024) == []
    stats = dp.stats()
    assert stats["reassembly_evicted"] == flood - B.FAST_REASSEMBLY_SLOTS
    # after the timeout, a held set is dropped and counted as expired
    later = m.net.now + B.FAST_REASSEMBLY_TIMEOUT + 1
    frame = m.frame_datagrams(m.ip_payload(2780, 10))
    wire.send(frame)
    assert burst(dp, wire, later, 1) == []
    assert dp.stats()["reassembly_expired"] >= 1
    assert len(wire.written()) == 1  # the flood wrote nothing, the frame its one


@pytest.mark.parametrize("reactor", [False, True], ids=["event-loop", "reactor"])
def test_a_set_that_is_not_the_steady_state_comes_back_as_received(
    wire: Wire, reactor: bool
) -> None:
    m = Members()
    grant = m.grant()
    big = m.frame_datagrams(m.ip_payload(2780, 11))
    make = reactor_table if reactor else table
    dp = make(m, grant, wire, ethertypes=(ETH_ARP,))  # IPv4 is not granted
    wire.send([big[1], big[0]])
    passed = burst(dp, wire, m.net.now, 2)
    assert [d for _, _, d in passed] == [big[0], big[1]]  # head first
    assert wire.written() == []
    # the general path makes the same frame of them
    assert len(m.general_writes([d for _, _, d in passed])) == 1


def test_ethertype_rules() -> None:
    def rule(t: int, ethertype: int = 0) -> Rule:
        return Rule(t=t, ethertype=ethertype)

    accept = rule(RuleType.ACTION_ACCEPT)
    drop = rule(RuleType.ACTION_DROP)
    not_eth = int(RuleType.MATCH_ETHERTYPE) | RULE_FLAG_NOT
    assert accepted_ethertypes([accept]) is None
    usual = [rule(not_eth, 0x0800), rule(not_eth, 0x0806), rule(not_eth, 0x86DD), drop, accept]
    assert accepted_ethertypes(usual) == (0x0800, 0x0806, 0x86DD)
    assert accepted_ethertypes([]) is False
    assert accepted_ethertypes([drop, accept]) is False
    assert accepted_ethertypes([*usual[:3], drop]) is False
    ored = [rule(not_eth, 0x0800), rule(not_eth | 0x40, 0x0806), drop, accept]
    assert accepted_ethertypes(ored) is False
    plain = [rule(int(RuleType.MATCH_ETHERTYPE), 0x0800), drop, accept]
    assert accepted_ethertypes(plain) is False


def test_grants_are_revoked_when_membership_or_config_changes() -> None:
    m = Members()
    grant = m.grant()
    version, grants = m.b.node.receive_grants(m.net.now)
    assert grants == [grant]
    # activity renews and is counted as the general path would
    peer = m.b.node.peers[grant.peer]
    rx_before = peer.metrics.rx
    later = m.net.now + 1_000
    m.b.node.on_fast_activity(later, [(m.nwid, grant.peer, 1, grant.remote, 3, 2, 500, later - 10)])
    assert peer.metrics.rx == rx_before + 2 and peer.last_receive == later - 10
    assert grant.path.last_in == later - 10
    assert grant.expires > later
    # the controller deauthorizes a: b's next config (a new object) revokes the grant
    m.controller.authorize(m.nwid, grant.peer, False, m.net.now)
    m.net.run(130_000, lambda: not m.b.node.receive_grants(m.net.now)[1])
    assert m.b.node.receive_grants(m.net.now)[1] == []
    assert m.b.node.receive_grants(m.net.now)[0] != version


def send_grant(m: Members) -> SendGrant:
    """a's send grant for frames to b (a's fast path sealed one)."""
    assert m.a.node.enable_receive_grants()
    for _ in range(5):
        m.a.node.on_tap_frame(m.net.now, m.nwid, m.a_mac, m.b_mac, ETH_IPV4, m.ip_payload(60, 1))
        m.net._drain(m.a)
        m.net.run(200)
        m.a.node.receive_grants(m.net.now)
        sends = m.a.node.send_grants()
        if sends:
            return sends[0]
    raise AssertionError("a made no send grant")


def send_table(m: Members, grant: SendGrant, wire: Wire, mtu: int = 2800, **changes: Any) -> Any:
    """A native table holding a's send ``grant`` for ``wire.rx``'s address, sending
    from ``wire.tx`` with physical MTU ``mtu``."""
    real = replace(grant, remote=address(wire.rx), **changes)
    dp = NATIVE.Dataplane(  # type: ignore[union-attr]
        int(m.a.identity.address).to_bytes(5, "big"), 16, 16, 500
    )
    dp.replace_send([native_send_entry(NATIVE, real, wire.tx.fileno(), mtu)])  # type: ignore[arg-type]
    return dp


def vnet_frame(
    dst: int, src: int, ethertype: int, payload: bytes, header: bytes = bytes(10)
) -> bytes:
    return (
        header
        + dst.to_bytes(6, "big")
        + src.to_bytes(6, "big")
        + ethertype.to_bytes(2, "big")
        + payload
    )


@pytest.mark.parametrize("aes", [True, False], ids=["suite3", "suite1"])
def test_native_send_is_what_the_member_receives(
    wire: Wire, monkeypatch: pytest.MonkeyPatch, aes: bool
) -> None:
    if not aes:
        monkeypatch.setattr(Peer, "supports_aes", property(lambda self: False))
    m = Members()
    grant = send_grant(m)
    assert (grant.nwid, grant.dst_mac, grant.src_mac) == (m.nwid, m.b_mac, m.a_mac)
    assert grant.remote == m.b.endpoint and grant.aes == aes
    dp = send_table(m, grant, wire)
    payloads = [m.ip_payload(60, 2), m.ip_payload(2780, 3), m.ip_payload(1300, 4)]
    for p in payloads:
        wire.port_out.send(vnet_frame(m.b_mac, m.a_mac, ETH_IPV4, p))
    port_fd = wire.port_in.fileno()
    wire.port_in.setblocking(False)
    assert dp.tx_burst(port_fd, True, m.nwid, m.net.now, 128) == []
    datagrams = []
    while True:
        try:
            datagrams.append(wire.rx.recv(65536))
        except BlockingIOError:
            break
    # the cut is the fast path's own: one, two, one datagrams of the same lengths
    reference = [m.frame_datagrams(p) for p in payloads]
    assert [len(d) for d in datagrams] == [len(d) for r in reference for d in r]
    assert {(d[18] >> 3) & 7 for d in datagrams if d[13] != 0xFF} == ({3} if aes else {1})
    # b's general path opens them into exactly the frames a's port was given
    b = m.b
    delivered = []
    for d in datagrams:
        b.node.on_wire_packet(m.net.now, 1, m.a.endpoint, d)
        delivered += [x for x in b.node.drain_actions() if isinstance(x, DeliverFrame)]
    assert [(f.nwid, f.source, f.destination, f.ethertype, f.payload) for f in delivered] == [
        (m.nwid, m.a_mac, m.b_mac, ETH_IPV4, p) for p in payloads
    ]
    (record,) = dp.drain_send()
    assert record[:3] == (m.nwid, grant.peer, grant.local_socket)
    assert record[5:] == (4, 3, sum(len(d) for d in datagrams), m.net.now)
    assert dp.stats()["sent"] == 3


def test_a_burst_of_full_frames_leaves_as_gso_runs_of_the_same_datagrams(wire: Wire) -> None:
    """Equal datagrams for one member leave as UDP GSO runs (loopback carries GSO);
    the receiving socket (no UDP_GRO) still gets exactly the datagrams of single sends."""
    m = Members()
    grant = send_grant(m)
    dp = send_table(m, grant, wire)
    payloads = [m.ip_payload(2780, 10 + k) for k in range(40)] + [m.ip_payload(700, 99)]
    wire.port_in.setblocking(False)
    for p in payloads:
        wire.port_out.send(vnet_frame(m.b_mac, m.a_mac, ETH_IPV4, p))
    assert dp.tx_burst(wire.port_in.fileno(), True, m.nwid, m.net.now, 128) == []
    datagrams = list(iter(lambda: _recv(wire.rx), None))
    reference = [d for p in payloads for d in m.frame_datagrams(p)]
    assert [len(d) for d in datagrams] == [len(d) for d in reference]
    stats = dp.stats()
    assert stats["gso_refused"] == 0 and stats["send_errors"] == 0
    # 81 datagrams of which 80 are equal: at least two runs (64 segments at most each)
    assert 2 <= stats["gso_runs"] < len(datagrams)
    b = m.b
    delivered = []
    for d in datagrams:
        b.node.on_wire_packet(m.net.now, 1, m.a.endpoint, d)
        delivered += [x.payload for x in b.node.drain_actions() if isinstance(x, DeliverFrame)]
    assert delivered == payloads


def test_native_send_gives_back_the_rest_in_order(wire: Wire) -> None:
    m = Members()
    grant = send_grant(m)
    dp = send_table(m, grant, wire, 1500, ethertypes=(ETH_IPV4,))
    good = vnet_frame(m.b_mac, m.a_mac, ETH_IPV4, m.ip_payload(60, 5))
    reads = [
        good,
        vnet_frame(m.b_mac ^ 1, m.a_mac, ETH_IPV4, b"x" * 40),  # another MAC
        good,  # sendable, but after one given back
    ]
    others = [
        vnet_frame(0xFFFFFFFFFFFF, m.a_mac, ETH_ARP, bytes(28)),  # broadcast
        vnet_frame(m.b_mac, m.a_mac ^ 2, ETH_IPV4, b"y" * 40),  # bridged source
        vnet_frame(m.b_mac, m.a_mac, ETH_ARP, bytes(28)),  # ethertype not granted
        vnet_frame(m.b_mac, m.a_mac, ETH_IPV4, bytes(1600)),  # over the port's MTU
        vnet_frame(m.b_mac, m.a_mac, ETH_IPV4, b"z" * 40, b"\x01" + bytes(9)),  # csum flag
        bytes(20),  # a bare header
    ]
    wire.port_in.setblocking(False)
    for r in reads:
        wire.port_out.send(r)
    assert dp.tx_burst(wire.port_in.fileno(), True, m.nwid, m.net.now, 128) == reads[1:]
    for r in others:
        wire.port_out.send(r)
        assert dp.tx_burst(wire.port_in.fileno(), True, m.nwid, m.net.now, 128) == [r]
    # expired, or another network: nothing is sent
    for nwid, now in ((m.nwid, grant.expires), (m.nwid ^ 1, m.net.now)):
        wire.port_out.send(good)
        assert dp.tx_burst(wire.port_in.fileno(), True, nwid, now, 128) == [good]
    assert dp.stats()["sent"] == 1
    assert len([1 for _ in iter(lambda: _recv(wire.rx), None)]) == 1


def test_packet_ids_never_repeat_and_a_forked_child_draws_its_own(
    wire: Wire, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The native send draws packet ids (suite 1's Salsa20 nonces) 32 at a time; a
    child forked with part of its parent's pool must not send the ids the parent sends
    next (the pool starts empty after fork)."""
    monkeypatch.setattr(Peer, "supports_aes", property(lambda self: False))
    m = Members()
    grant = send_grant(m)
    dp = send_table(m, grant, wire)
    wire.port_in.setblocking(False)
    frame = vnet_frame(m.b_mac, m.a_mac, ETH_IPV4, m.ip_payload(60, 7))

    def send_ids(n: int) -> list[bytes]:
        for _ in range(n):
            wire.port_out.send(frame)
        assert dp.tx_burst(wire.port_in.fileno(), True, m.nwid, m.net.now, 128) == []
        ids = [d[:8] for d in iter(lambda: _recv(wire.rx), None)]
        assert len(ids) == n
        return ids

    before = send_ids(70)  # two refills and part of a third pool
    pid = os.fork()
    if pid == 0:  # the child: send 4 and leave at once, whatever happens
        code = 1
        try:
            for _ in range(4):
                wire.port_out.send(frame)
            code = 0 if dp.tx_burst(wire.port_in.fileno(), True, m.nwid, m.net.now, 8) == [] else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    child = [d[:8] for d in iter(lambda: _recv(wire.rx), None)]
    after = send_ids(4)
    assert len(child) == 4
    assert not set(child) & set(after), "the child sent the ids its parent sent next"
    everything = before + child + after
    assert len(set(everything)) == len(everything)


def _recv(sock: socket.socket) -> bytes | None:
    try:
        return sock.recv(65536)
    except BlockingIOError:
        return None


def test_send_grants_follow_the_best_path_and_config() -> None:
    m = Members()
    grant = send_grant(m)
    node = m.a.node
    assert node.send_grants() == [grant]
    node.on_fast_send_activity(
        m.net.now, [(m.nwid, grant.peer, 1, grant.remote, 2, 1, 100, m.net.now)]
    )
    assert grant.path.last_out == m.net.now
    later = grant.expires
    node.receive_grants(later)
    assert node.send_grants() == []  # expired: no activity since it was renewed


def test_send_grants_are_renewed_by_activity_and_push_credentials_when_due() -> None:
    """Steady traffic keeps a send grant (before, one frame in each FAST_GRANT_LIFETIME
    took the general path, a ping in eight 0.4 ms slower); the renewal does the general
    path's duty for the frames the table sent: our credentials go to the member when
    due."""
    m = Members()
    grant = send_grant(m)
    node = m.a.node
    version = node.receive_grants(m.net.now)[0]
    first_expiry = grant.expires
    membership = node.networks[m.nwid].membership(grant.peer)
    pushed = membership.last_pushed_credentials
    t = first_expiry - 100
    record = (m.nwid, grant.peer, grant.local_socket, grant.remote, 1, 1, 100, t - 5)
    node.on_fast_send_activity(t, [record])
    assert grant.expires == t + FAST_GRANT_LIFETIME
    assert membership.last_pushed_credentials == pushed  # not due: nothing pushed
    # the host mirrors the new expiry (the version moved); at the old one it still holds
    assert node.receive_grants(first_expiry)[0] != version
    assert node.send_grants() == [grant]
    # a due push (the 500 s timeout) is made by the renewal
    membership.last_pushed_credentials = t - 600_000
    t2 = t + 400
    node.on_fast_send_activity(t2, [(*record[:7], t2)])
    assert membership.last_pushed_credentials == t2
    assert grant.expires == t2 + FAST_GRANT_LIFETIME
    assert any(isinstance(a, SendPacket) for a in node.drain_actions())
    # no activity: it lapses as before
    node.receive_grants(grant.expires)
    assert node.send_grants() == []


@functools.cache
def fuzz_lab() -> tuple[Members, Grant, tuple[bytes, ...], tuple[bytes, ...]]:
    """One granted pair of members for every fuzz example: a's datagrams for three
    frames (one of them a head and a fragment) and the frames b's general path makes
    of them."""
    m = Members()
    grant = m.grant()
    datagrams = [
        *m.frame_datagrams(m.ip_payload(60, 21)),
        *m.frame_datagrams(m.ip_payload(2780, 22)),
        *m.frame_datagrams(m.ip_payload(1300, 23)),
    ]
    frames = m.general_writes(datagrams)
    return m, grant, tuple(datagrams), tuple(frames)


@st.composite
def mangled(draw: st.DrawFn, datagrams: tuple[bytes, ...]) -> bytes:
    """A good datagram with a few bytes changed, cut short or left whole, or noise."""
    if draw(st.integers(0, 5)) == 0:
        return draw(st.binary(max_size=3000))
    data = bytearray(draw(st.sampled_from(datagrams)))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(0, len(data)))]) if draw(st.booleans()) else bytes(data)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), reactor=st.booleans())
def test_fuzzed_datagrams_never_deliver_what_the_general_path_would_not(
    data: st.DataObject, reactor: bool
) -> None:
    m, grant, datagrams, frames = fuzz_lab()
    sent = data.draw(st.lists(mangled(datagrams), min_size=1, max_size=12))
    wire = Wire()
    try:
        dp = (reactor_table if reactor else table)(m, grant, wire)
        wire.send(sent)
        passed = burst(dp, wire, m.net.now, len(sent))
        dp.stop()  # joined: nothing more is written after this
        written = wire.written()
    finally:
        wire.close()
    # what comes back is what was sent, byte for byte (never more often than sent)
    returned = [d for _, _, d in passed]
    for d in set(returned):
        assert returned.count(d) <= sent.count(d)
    # a frame written to the port is one the general path makes of the good datagrams
    assert all(frame in frames for frame in written)
    assert len(written) == dp.stats()["delivered"] <= len(sent)


class _Port:
    """A Tap over the wire's port socket (a TunDevice reads and writes any datagram fd)."""

    def __init__(self, device: TunDevice, link: FakeLink) -> None:
        self.device = device
        self.link = link
        self.device_name = link.device_name

    def close(self) -> None:
        self.device.close()


def test_a_burst_that_delivered_reads_the_granted_ports_at_once(wire: Wire) -> None:
    """The host's stack answers a ping (and acknowledges TCP data) inside the write of
    the frame, so after a burst that delivered, the data plane reads the ports at once:
    the answer does not wait for another event-loop turn. A burst that delivered
    nothing reads no port."""
    m = Members()
    grant = m.grant()
    loop = asyncio.new_event_loop()
    frames: list[tuple[int, int, int, int, bytes]] = []
    pump = FramePump(loop, lambda *frame: frames.append(frame))
    wire.port_in.setblocking(False)  # as a TAP is opened (shared with the dup)
    device = TunDevice(os.dup(wire.port_in.fileno()), "ztlat0", True)
    try:
        pump.attach(m.nwid, _Port(device, FakeLink("ztlat0", m.b_mac, 2800)))
        dp = NativeDataplane(
            NATIVE,  # type: ignore[arg-type]
            m.b.node,
            pump,
            lambda: m.net.now,
            lambda: True,
            lambda *args: None,
            lambda: True,
            lambda sock_id, remote: None,
            lambda remote, size: None,
            lambda: True,
        )
        # the grant for the wire's loopback path (the simulator's addresses are not ours)
        dp._table = table(m, grant, wire)
        dp._fds = {m.nwid: device.fileno()}
        answer = vnet_frame(m.a_mac, m.b_mac, ETH_IPV4, m.ip_payload(60, 7))
        wire.port_out.send(answer)  # already there, as the host's answer would be
        dp.after_burst()
        assert frames == []  # nothing delivered yet: no port read
        wire.send(m.frame_datagrams(m.ip_payload(60, 2)))
        for _ in range(20):  # loopback delivers at once, but bounded retries
            assert dp.reader(wire.rx.fileno(), 1) == []
            if dp.stats()["delivered"]:
                break
            time.sleep(0.01)
        assert dp.stats()["delivered"] == 1 and len(wire.written()) == 1
        dp.after_burst()
        assert frames == [(m.nwid, m.b_mac, m.a_mac, ETH_IPV4, m.ip_payload(60, 7))]
        wire.port_out.send(answer)
        dp.after_burst()  # nothing delivered since
        assert len(frames) == 1
    finally:
        pump.close()
        device.close()
        loop.close()
