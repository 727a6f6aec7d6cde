"""The daemon's UDP sockets on loopback: what is sent is what arrives, datagram for
datagram and in order, whether runs leave as one UDP GSO ``sendmsg`` and arrive as
one ``UDP_GRO`` read or go one by one (the kernel refusing, or switched off); runs
longer than one GSO send may carry are cut."""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import random
import socket
import time

import pytest

from ztone.node.wire.inetaddress import InetAddress
from ztone.service import udp
from ztone.service.udp import SOL_UDP, UDP_GRO, UdpSockets


def _datagrams(rng: random.Random) -> list[bytes]:
    out = []
    for _ in range(40):
        kind = rng.randrange(4)
        if kind == 0:  # a packet's head and its fragment
            out += [rng.randbytes(1432), rng.randbytes(rng.randint(17, 1432))]
        elif kind == 1:  # a head and several fragments
            out += [rng.randbytes(1432)] * 3 + [rng.randbytes(100)]
        elif kind == 2:  # small, same size twice
            out += [rng.randbytes(66), rng.randbytes(66)]
        else:
            out.append(rng.randbytes(rng.randint(1, 1500)))
    return out


@pytest.mark.parametrize(("gso", "gro"), [(True, True), (True, False), (False, True),
                                          (False, False)])  # fmt: skip
def test_datagrams_arrive_as_sent(gso: bool, gro: bool) -> None:
    rng = random.Random(3)
    sent = _datagrams(rng)
    # a burst of frames cut evenly: 100 datagrams of one length, more than one GSO
    # run may hold (64 segments, 64 KiB), then the last fragment
    burst = [rng.randbytes(1427) for _ in range(100)] + [rng.randbytes(700)]

    async def run() -> list[bytes]:
        loop = asyncio.get_running_loop()
        got: list[bytes] = []
        events: list[str] = []

        def on_datagram(sock_id: int, remote: InetAddress, data: bytes) -> None:
            got.append(data)
            events.append("datagram")

        rx = UdpSockets(loop, on_datagram, lambda: events.append("batch end"))
        tx = UdpSockets(loop, lambda *args: None)
        rid = rx.bind("127.0.0.1", 0)
        tid = tx.bind("127.0.0.1", 0)
        if not gro and rx._sockets[rid].gro:  # as on a kernel without UDP_GRO
            rx._sockets[rid].sock.setsockopt(SOL_UDP, UDP_GRO, 0)
            rx._sockets[rid].gro = False
        tx._gso = tx._gso and gso
        dest = InetAddress(ipaddress.ip_address("127.0.0.1"), rx.bound[0][1].port)
        other = InetAddress(ipaddress.ip_address("127.0.0.1"), 9)  # a second route in between
        try:
            for i, data in enumerate(sent):
                tx.send(tid, dest, data)
                if i % 7 == 6:
                    tx.send(tid, other, b"elsewhere")
                if i % 11 == 10:
                    tx.flush()
            tx.flush()
            for data in burst:
                tx.send(tid, dest, data)
            tx.send(tid, dest, b"with a TTL", ttl=3)
            tx.flush()
            for _ in range(100):
                if len(got) >= len(sent) + len(burst) + 1:
                    break
                await asyncio.sleep(0.02)
        finally:
            rx.close()
            tx.close()
        # every wakeup that handed datagrams over ends with one batch end
        assert events[-1] == "batch end" and events[0] == "datagram"
        assert all(x != y for x, y in itertools.pairwise(events) if x == "batch end")
        return got

    got = asyncio.run(run())
    assert got == [*sent, *burst, b"with a TTL"]


def test_a_flooding_source_does_not_hold_up_another() -> None:
    """Datagrams wait per source and are handed round-robin: a datagram from a second
    source, read behind 150 of a flood, reaches the core within the first few handed
    (read one by one in arrival order, it would be the 151st)."""

    async def run() -> list[int]:
        loop = asyncio.get_running_loop()
        got: list[int] = []
        rx = UdpSockets(loop, lambda sock_id, remote, data: got.append(remote.port))
        rid = rx.bind("127.0.0.1", 0)
        if rx._sockets[rid].gro:  # every datagram its own read, as from a real flood
            rx._sockets[rid].sock.setsockopt(SOL_UDP, UDP_GRO, 0)
            rx._sockets[rid].gro = False
        dest = ("127.0.0.1", rx.bound[0][1].port)
        flood, other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socket.socket(
            socket.AF_INET, socket.SOCK_DGRAM)  # fmt: skip
        try:
            for i in range(300):  # all queued in the kernel before the loop reads any
                flood.sendto(i.to_bytes(2, "big") * 8, dest)
                if i == 150:
                    for _ in range(3):
                        other.sendto(b"ping", dest)
            for _ in range(100):
                if len(got) >= 303:
                    break
                await asyncio.sleep(0.02)
            return [i for i, port in enumerate(got) if port == other.getsockname()[1]]
        finally:
            rx.close()
            flood.close()
            other.close()

    positions = asyncio.run(run())
    assert len(positions) == 3
    assert positions[-1] < 10, positions


def test_waiting_datagrams_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sources, datagrams per source and bytes in all stay within their bounds; when
    the bytes are full, the source with the most waiting makes room for a newcomer."""
    monkeypatch.setattr(udp, "RX_SOURCES", 4)
    monkeypatch.setattr(udp, "RX_PER_SOURCE", 50)
    monkeypatch.setattr(udp, "RX_BYTES", 3000)
    loop = asyncio.new_event_loop()
    try:
        rx = UdpSockets(loop, lambda *args: None)

        def key(port: int) -> tuple[int, InetAddress]:
            return (1, InetAddress(ipaddress.ip_address("198.18.0.7"), port))

        def waiting_bytes() -> int:
            return sum(len(d) for q in rx._waiting.values() for d in q)

        for _ in range(80):  # the flood: 50 kept (per source), 30 shed
            rx._queue(key(1), bytes(20))
        assert len(rx._waiting[key(1)]) == 50 and rx.rx_shed == 30
        for _ in range(200):  # fills the bytes: 3000 in all at most
            rx._queue(key(2), bytes(100))
            assert waiting_bytes() <= 3000
        assert waiting_bytes() == rx._waiting_bytes
        rx._queue(key(3), b"newcomer")  # the fattest (2) makes room
        assert list(rx._waiting[key(3)]) == [b"newcomer"]
        rx._queue(key(4), b"x")
        rx._queue(key(5), b"one source too many")
        assert key(5) not in rx._waiting and len(rx._waiting) == 4
        assert waiting_bytes() == rx._waiting_bytes <= 3000
    finally:
        loop.close()


@pytest.mark.parametrize("sources", [1, 3])
def test_a_turn_of_costly_datagrams_ends_on_time(
    monkeypatch: pytest.MonkeyPatch, sources: int
) -> None:
    """A turn hands datagrams for HAND_TURN_SECONDS at most, however few that is of
    HAND_PER_TURN: costly ones (2 ms each here) leave the loop to its other events
    after a few, and the rest wait for the next turn, in order."""
    monkeypatch.setattr(udp, "HAND_TURN_SECONDS", 0.005)
    loop = asyncio.new_event_loop()
    try:
        got: list[bytes] = []

        def costly(sock_id: int, remote: InetAddress, data: bytes) -> None:
            time.sleep(0.002)
            got.append(data)

        rx = UdpSockets(loop, costly)
        for i in range(60):
            port = 1000 + i % sources
            rx._queue((1, InetAddress(ipaddress.ip_address("198.18.0.7"), port)), bytes([i]))
        rx._hand()
        assert 1 <= len(got) <= 5, len(got)
        assert rx._hand_scheduled and sum(len(q) for q in rx._waiting.values()) == 60 - len(got)
        while rx._waiting:
            rx._hand()
        assert sorted(got) == [bytes([i]) for i in range(60)]
        if sources == 1:
            assert got == [bytes([i]) for i in range(60)]
    finally:
        loop.close()


def test_a_burst_readers_after_hook_runs_once_the_wakeup_was_handed() -> None:
    """The data plane's cue to read the ports it wrote to: once per wakeup the burst
    reader read, after what it gave back went to the core (and the batch ended)."""

    async def run() -> list[str]:
        loop = asyncio.get_running_loop()
        events: list[str] = []
        rx = UdpSockets(
            loop, lambda *args: events.append("datagram"), lambda: events.append("batch end")
        )
        rid = rx.bind("127.0.0.1", 0)
        sock = rx._sockets[rid].sock
        done = loop.create_future()

        def reader(fd: int, sock_id: int) -> list[tuple[str, int, bytes]]:
            assert (fd, sock_id) == (sock.fileno(), rid)
            out: list[tuple[str, int, bytes]] = []
            while True:
                try:
                    data, addr = sock.recvfrom(2048)
                except BlockingIOError:
                    return out
                events.append("read")
                if data != b"taken":  # the burst reader keeps this one itself
                    out.append((addr[0], addr[1], data))

        def after() -> None:
            events.append("after")
            if not done.done():
                done.set_result(None)

        rx.set_burst_reader(reader, after)
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            tx.sendto(b"given back", ("127.0.0.1", rx.bound[0][1].port))
            await asyncio.wait_for(done, 10)
            events.append("|")
            done = loop.create_future()
            tx.sendto(b"taken", ("127.0.0.1", rx.bound[0][1].port))
            await asyncio.wait_for(done, 10)
        finally:
            tx.close()
            rx.close()
        return events

    assert asyncio.run(run()) == ["read", "datagram", "batch end", "after", "|", "read", "after"]
