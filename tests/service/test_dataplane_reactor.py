"""The data plane's reactor thread (``Dataplane.start``, src/ztone/_dp_reactor.h).

Real sockets and socketpairs as in test_dataplane.py (its members, wire and grants):
the thread reads them itself; these tests check what only the thread does: a whole
turnaround (a granted FRAME in, the port's answer out) with nothing for Python, the
ring's order and bounds, fds unwatched before they close, the thread's end, and the
install order of new grants. Grants expire on the wall clock here (the thread's).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from test_dataplane import (
    ETH_ARP,
    FAR,
    NATIVE,
    Members,
    Wire,
    _Port,
    _recv,
    address,
    reactor_table,
    send_grant,
    send_table,
    table,
    vnet_frame,
    wire,
)

from sim.test_vl2_sim import ETH_IPV4
from ztone.node import bounds as B
from ztone.node.actions import DeliverFrame, SendPacket
from ztone.node.fast_grants import Grant
from ztone.node.wire.inetaddress import InetAddress
from ztone.osdep.fake import FakeLink
from ztone.osdep.linux.tun import TunDevice
from ztone.service.dataplane import NativeDataplane, native_entry, native_send_entry
from ztone.service.frame_pump import FramePump
from ztone.service.udp import UdpSockets

pytestmark = pytest.mark.skipif(NATIVE is None, reason="the native data plane is not built")
__all__ = ["wire"]  # the fixture, imported to be used here

RING_MIN_BYTES = 10024 + 7 * 16 + 65536 + (10 + 14 + 65535)
"""The smallest ring start() takes: a held set and a datagram, or one port read (a
virtio_net_hdr and a 64 KiB super-packet with its Ethernet header)."""


def until(check: Callable[[], bool], seconds: float = 2.0) -> bool:
    """Poll ``check`` every 5 ms for at most ``seconds`` (the thread runs on its own)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.005)
    return check()


def threads() -> int:
    return len(os.listdir("/proc/self/task"))


def receive_grant_at_a(m: Members) -> Grant:
    """a's receive grant for b's frames (a's send grant is made first: send_grant)."""
    for _ in range(5):
        m.b.node.on_tap_frame(m.net.now, m.nwid, m.b_mac, m.a_mac, ETH_IPV4, bytes(60))
        m.net._drain(m.b)
        m.net.run(200)
        _, grants = m.a.node.receive_grants(m.net.now)
        if grants:
            return grants[0]
    raise AssertionError("a made no receive grant")


def b_datagrams(m: Members, payload: bytes) -> list[bytes]:
    """b's datagrams for one frame to a (not transmitted)."""
    m.b.node.on_tap_frame(m.net.now, m.nwid, m.b_mac, m.a_mac, ETH_IPV4, payload)
    return [
        bytes(x.data)
        for x in m.b.node.drain_actions()
        if isinstance(x, SendPacket) and x.remote == m.a.endpoint
    ]


def test_a_ping_turns_around_in_the_thread_without_python(wire: Wire) -> None:
    """Member a's table: b's FRAME (from wire.tx) arrives on wire.rx, goes to a's port,
    and the port's answer (already waiting there, as the host's stack answers inside
    the write) leaves natively to b from wire.rx. The ring stays empty: nothing woke
    Python; b's general path opens the datagram into exactly the answer."""
    m = Members()
    sg = replace(send_grant(m), remote=address(wire.tx), expires=FAR)
    rg = replace(receive_grant_at_a(m), remote=address(wire.tx), expires=FAR)
    dp = NATIVE.Dataplane(  # type: ignore[union-attr]
        int(m.a.identity.address).to_bytes(5, "big"), 16, 16, 500
    )
    wire.port_in.setblocking(False)
    dp.replace([native_entry(NATIVE, rg, wire.port_in.fileno(), True, 2800)])  # type: ignore[arg-type]
    dp.replace_send([native_send_entry(NATIVE, sg, wire.rx.fileno(), 2800)])  # type: ignore[arg-type]
    dp.start(B.DATAPLANE_RING_ITEMS, B.DATAPLANE_RING_BYTES)
    try:
        dp.watch_socket(wire.rx.fileno(), 1)
        dp.watch_port(wire.port_in.fileno(), m.nwid, True)
        request = m.ip_payload(60, 31)
        wire.send(b_datagrams(m, request))
        assert until(lambda: dp.stats()["delivered"] == 1)
        (frame,) = [wire.port_out.recv(65536)]
        assert frame[24:] == request and frame[10:22] == m.a_mac.to_bytes(
            6, "big"
        ) + m.b_mac.to_bytes(6, "big")
        answer = m.ip_payload(80, 32)
        wire.port_out.send(vnet_frame(m.b_mac, m.a_mac, ETH_IPV4, answer))
        assert until(lambda: dp.stats()["sent"] == 1)
        stats = dp.stats()
        assert stats["ring_items"] == 0 and stats["ring_taken"] == 0
        assert stats["passed"] == 0 and stats["given_back"] == 0
        assert dp.take() == []
        wire.tx.settimeout(2)
        datagram = wire.tx.recv(65536)
        wire.tx.setblocking(False)
        assert _recv(wire.tx) is None
        m.b.node.on_wire_packet(m.net.now, 1, m.a.endpoint, datagram)
        delivered = [x for x in m.b.node.drain_actions() if isinstance(x, DeliverFrame)]
        assert [(f.source, f.destination, f.payload) for f in delivered] == [
            (m.a_mac, m.b_mac, answer)
        ]
        (rx,) = dp.drain()
        (tx,) = dp.drain_send()
        assert (rx[6], tx[6]) == (1, 1)  # one packet each way, counted for the core
    finally:
        dp.stop()


def test_port_reads_come_back_in_order_and_the_rule_holds_until_take(wire: Wire) -> None:
    """tx_burst's rule in the thread: after a read given back, the port's later reads
    go to the ring too (unchanged, in order) until Python handed them on (taken());
    then a sendable frame is sent again."""
    m = Members()
    dp = send_table(m, send_grant(m), wire, 1500, ethertypes=(ETH_IPV4,), expires=FAR)
    wire.port_in.setblocking(False)
    good = vnet_frame(m.b_mac, m.a_mac, ETH_IPV4, m.ip_payload(60, 5))
    arp = vnet_frame(m.b_mac, m.a_mac, ETH_ARP, bytes(28))
    dp.start(B.DATAPLANE_RING_ITEMS, B.DATAPLANE_RING_BYTES)
    try:
        for r in (good, arp, good, arp):
            wire.port_out.send(r)
        dp.watch_port(wire.port_in.fileno(), m.nwid, True)
        assert until(lambda: dp.stats()["ring_items"] == 3)
        assert dp.stats()["sent"] == 1
        wire.port_out.send(good)  # still after one given back: to the ring
        assert until(lambda: dp.stats()["ring_items"] == 4)
        assert dp.take() == [(1, m.nwid, "", 1, r) for r in (arp, good, arp, good)]
        wire.port_out.send(good)  # taken, but not yet handed on: still to the ring
        assert until(lambda: dp.stats()["ring_items"] == 1)
        dp.taken()  # a read in the ring since take(): the port keeps giving back
        wire.port_out.send(good)
        assert until(lambda: dp.stats()["ring_items"] == 2)
        assert dp.take() == [(1, m.nwid, "", 1, good)] * 2
        dp.taken()
        wire.port_out.send(good)  # handed on: sendable frames are sent again
        assert until(lambda: dp.stats()["sent"] == 2)
        assert dp.take() == []
        assert len([1 for _ in iter(lambda: _recv(wire.rx), None)]) == 2
    finally:
        dp.stop()


def test_the_ring_bound_holds_under_a_flood_and_the_thread_waits(wire: Wire) -> None:
    """A ring of 16 items: a flood of datagrams for the core fills it, the thread stops
    reading (the rest waits in the socket's buffer; no wakeups while it waits) and
    resumes after take(); every datagram arrives once, in order, unchanged."""
    m = Members()
    grant = m.grant()
    wire.rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    dp = table(m, grant, wire, expires=FAR)
    dp.start(16, RING_MIN_BYTES)
    try:
        dp.watch_socket(wire.rx.fileno(), 1)
        flood = [i.to_bytes(4, "big") + os.urandom(96) for i in range(120)]
        wire.send(flood, wire.stranger)
        assert until(lambda: dp.stats()["ring_blocked"] == 1)
        stats = dp.stats()
        assert stats["ring_items"] <= 16 and stats["ring_bytes"] <= RING_MIN_BYTES
        wakeups = stats["reactor_wakeups"]
        time.sleep(0.2)
        assert dp.stats()["reactor_wakeups"] == wakeups  # waiting, not spinning
        got: list[bytes] = []
        for _ in range(400):
            taken = dp.take()
            assert len(taken) <= 16
            got += [d for _, _, _, _, d in taken]
            if len(got) >= len(flood):
                break
            time.sleep(0.005)
        assert got == flood
        assert dp.stats()["ring_full"] >= len(flood) // 16 - 1
    finally:
        dp.stop()


def test_unwatch_then_close_is_safe_even_when_the_fd_number_returns(wire: Wire) -> None:
    """unwatch() drops the grants writing to the fd: after close, a granted datagram is
    given back, and a new descriptor with the old number gets nothing."""
    m = Members()
    grant = m.grant()
    dp = reactor_table(m, grant, wire)
    try:
        good = m.frame_datagrams(m.ip_payload(60, 41))
        wire.send(good)
        assert until(lambda: dp.stats()["delivered"] == 1)
        old = wire.port_in.fileno()
        dp.watch_port(old, m.nwid, True)
        assert dp.unwatch(old) is True and dp.stats()["grants"] == 0
        assert dp.unwatch(old) is False
        wire.port_in.close()
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            if a.fileno() != old:  # make the old number live again if the OS did not
                os.dup2(a.fileno(), old)
            b.setblocking(False)
            wire.send(good)
            assert until(lambda: dp.stats()["ring_items"] == 1)
            assert [d for *_, d in dp.take()] == good
            assert _recv(b) is None and dp.stats()["delivered"] == 1
        finally:
            if a.fileno() != old:
                os.close(old)
            a.close()
            b.close()
    finally:
        dp.stop()


def test_stop_joins_and_dealloc_stops() -> None:
    dp = NATIVE.Dataplane(bytes(5), 4, 4, 500)  # type: ignore[union-attr]
    before = set(os.listdir("/proc/self/task"))
    base = len(before)
    fd = dp.start(64, RING_MIN_BYTES)
    assert fd >= 0 and threads() == base + 1 and dp.stats()["reactor"] == 1
    (tid,) = set(os.listdir("/proc/self/task")) - before
    # no wakeup preemption of the host's own senders (see rt_main)
    assert until(lambda: os.sched_getscheduler(int(tid)) == os.SCHED_BATCH)
    with pytest.raises(RuntimeError):
        dp.start(64, RING_MIN_BYTES)
    dp.stop()
    assert threads() == base and dp.stats()["reactor"] == 0
    dp.stop()  # twice is nothing
    with pytest.raises(RuntimeError):
        dp.watch_socket(0, 1)
    with pytest.raises(ValueError):
        dp.start(64, 1000)  # smaller than one port read
    dp.start(64, RING_MIN_BYTES)
    assert threads() == base + 1
    del dp
    assert threads() == base


def test_a_new_grant_waits_while_the_ring_holds_a_datagram(wire: Wire) -> None:
    """replace(grants, kept): while a datagram for the core waits in the ring, only the
    grants already installed go in (a later datagram must not overtake it natively)."""
    m = Members()
    grant = m.grant()
    dp = reactor_table(m, grant, wire)
    try:
        granted = replace(grant, remote=address(wire.tx), expires=FAR)
        row = native_entry(NATIVE, granted, wire.port_in.fileno(), True, 2800)  # type: ignore[arg-type]
        assert dp.replace([], None) is True and dp.stats()["grants"] == 0
        first = m.frame_datagrams(m.ip_payload(60, 51))
        wire.send(first)  # no grant: to the ring
        assert until(lambda: dp.stats()["ring_items"] == 1)
        assert dp.replace([row], []) is False and dp.stats()["grants"] == 0
        assert dp.replace([row]) is True and dp.stats()["grants"] == 1  # no kept: as asked
        assert dp.replace([], []) is False and dp.stats()["grants"] == 0
        assert [d for *_, d in dp.take()] == first
        assert dp.replace([row], []) is True and dp.stats()["grants"] == 1
    finally:
        dp.stop()


def test_the_service_hands_the_ring_on_as_the_event_loop_would(wire: Wire) -> None:
    """NativeDataplane with the reactor: udp.py's socket and the pump's Linux port are
    owned by the thread (no loop reader); a datagram for the core reaches udp.py's
    handler and a port read the pump's sink, through the ring's eventfd on the loop;
    set_owner(None) gives the fds back to the loop."""
    m = Members()
    loop = asyncio.new_event_loop()
    received: list[tuple[int, InetAddress, bytes]] = []
    frames: list[tuple[int, int, int, int, bytes]] = []
    udp = UdpSockets(loop, lambda sock_id, remote, data: received.append((sock_id, remote, data)))
    pump = FramePump(loop, lambda *frame: frames.append(frame))
    wire.port_in.setblocking(False)
    device = TunDevice(os.dup(wire.port_in.fileno()), "ztrt0", True)
    dp = NativeDataplane(
        NATIVE,  # type: ignore[arg-type]
        m.b.node,
        pump,
        lambda: int(time.time() * 1000),
        lambda: udp.queues_empty,
        lambda *args: None,
        lambda: True,
        lambda sock_id, remote: None,
        lambda remote, size: None,
        lambda: True,
    )
    try:
        assert dp.start_reactor(loop, udp)
        udp.set_owner(dp)
        pump.set_owner(dp)
        sock_id = udp.bind("127.0.0.1", 0)
        ((_, local),) = udp.bound
        pump.attach(m.nwid, _Port(device, FakeLink("ztrt0", m.b_mac, 2800)))
        selector: Any = loop._selector  # type: ignore[attr-defined]
        udp_fd = udp.socket_fd(sock_id, address(wire.tx))
        assert udp_fd is not None
        assert udp_fd not in selector.get_map() and device.fileno() not in selector.get_map()
        wire.tx.sendto(b"for the core", ("127.0.0.1", local.port))
        read = vnet_frame(m.a_mac, m.b_mac, ETH_IPV4, m.ip_payload(60, 61))
        wire.port_out.send(read)

        async def wait() -> None:
            for _ in range(200):
                if received and frames:
                    return
                await asyncio.sleep(0.01)

        loop.run_until_complete(wait())
        assert received == [(sock_id, address(wire.tx), b"for the core")]
        assert frames == [(m.nwid, m.b_mac, m.a_mac, ETH_IPV4, m.ip_payload(60, 61))]
        udp.set_owner(None)
        pump.set_owner(None)
        assert udp_fd in selector.get_map() and device.fileno() in selector.get_map()
        assert dp.stats()["reactor"] == 1
    finally:
        dp.close()
        assert dp.stats()["reactor"] == 0
        pump.close()
        udp.close()
        device.close()
        loop.close()
