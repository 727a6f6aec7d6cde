"""The ``userspace`` port backend over real stacks: the FrameDevice/LinkConfig halves,
the asyncio driver, and the per-network backend choice (issue 15).

Two user-space ports are wired back to back by a "segment" that does what the
service's frame pump does (watch each device's descriptor, read a batch, write it to
the other port), on a real event loop.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable

import pytest

from userspace_pair import MAC_A, MAC_B, NWID, pair, rand_bits
from ztone.netstack import arp
from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.vl2_verbs import MulticastGroup
from ztone.osdep.base import TapError
from ztone.osdep.factory import ChoosingTapFactory
from ztone.osdep.fake import FakeTapFactory
from ztone.osdep.managed import managed_route
from ztone.osdep.userspace import UserspaceTap, UserspaceTapFactory


def run(coro_fn: Callable[[], object]) -> None:
    asyncio.run(asyncio.wait_for(coro_fn(), 60))  # type: ignore[arg-type]


def test_link_halves() -> None:
    async def body() -> None:
        async with pair() as (a, _, _):
            link = a.link
            assert link.device_name == f"ztus-{NWID:016x}" and a.device_name == link.device_name
            assert (link.mac, link.mtu) == (MAC_A, 2800)
            assert [str(x) for x in link.ips()] == ["10.147.17.1/24", "fd00:5a7e::1/88"]
            link.set_mtu(1500)
            assert link.mtu == 1500
            with pytest.raises(TapError):
                link.set_mtu(10)
            groups = link.multicast_groups()
            assert MulticastGroup(0x3333FF000001, 0) in groups  # solicited-node of ::1
            assert all(g.mac != 0xFFFFFFFFFFFF for g in groups)
            route = managed_route(ipaddress.ip_network("10.200.0.0/16"),
                                  ipaddress.ip_address("10.147.17.2"))  # fmt: skip
            assert link.add_route(route) and link.add_route(route)
            assert link.remove_route(route) and not link.remove_route(route)
            assert link.remove_ip(InetAddress(ipaddress.ip_address("10.147.17.1"), 24))
            assert [str(x) for x in link.ips()] == ["fd00:5a7e::1/88"]

    run(body)


def test_arp_through_the_device() -> None:
    async def body() -> None:
        async with pair() as (a, _, seg):
            seg.close()  # drive a's device by hand
            request = arp.Arp(arp.REQUEST, MAC_B, bytes([10, 147, 17, 2]), 0,
                              bytes([10, 147, 17, 1]))  # fmt: skip
            assert a.device.write_batch([(MAC_B, 0xFFFFFFFFFFFF, 0x0806,
                                          arp.build_arp(request))]) == 0  # fmt: skip
            loop = asyncio.get_running_loop()
            readable: asyncio.Future[None] = loop.create_future()

            def ready() -> None:
                if not readable.done():
                    readable.set_result(None)

            loop.add_reader(a.device.fileno(), ready)
            await asyncio.wait_for(readable, 5)
            loop.remove_reader(a.device.fileno())
            frames = a.device.read_batch(10)
            assert len(frames) == 1
            src, dst, ethertype, payload = frames[0]
            assert (src, dst, ethertype) == (MAC_A, MAC_B, 0x0806)
            reply = arp.parse_arp(payload)
            assert reply.op == arp.REPLY and reply.sender_mac == MAC_A
            assert a.device.read_batch(10) == []  # and the descriptor no longer polls readable
            import select  # noqa: PLC0415

            assert select.select([a.device.fileno()], [], [], 0)[0] == []

    run(body)


def test_udp_between_two_ports_both_families() -> None:
    async def body() -> None:
        async with pair() as (a, b, _):
            for dst in ("10.147.17.2", "fd00:5a7e::2"):
                rx = b.host.stack.udp_bind(5000)
                tx = a.host.stack.udp_bind()
                tx.sendto(b"hello " + dst.encode(), (ipaddress.ip_address(dst), 5000),
                          a.host.now())  # fmt: skip
                a.host.kick()
                got = None
                for _ in range(100):
                    got = rx.recvfrom()
                    if got is not None:
                        break
                    await asyncio.sleep(0.02)
                assert got is not None and got[0] == b"hello " + dst.encode()
                rx.close()
                tx.close()

    run(body)


def test_closed_port_drops_frames_and_stops_the_host() -> None:
    async def body() -> None:
        async with pair() as (a, _, seg):
            seg.close()
            a.close()
            assert a.device.write_batch([(MAC_B, MAC_A, 0x0800, b"x")]) == 1
            assert a.host.closed
            with pytest.raises(ConnectionError):
                await a.host.connect(ipaddress.ip_address("10.147.17.2"), 80)

    run(body)


def test_route_picks_the_most_specific_port() -> None:
    async def body() -> None:
        loop = asyncio.get_running_loop()
        f = UserspaceTapFactory(loop, rand=rand_bits(3))
        one = f.create(1, MAC_A, 2800, "one")
        two = f.create(2, MAC_B, 2800, "two")
        one.link.add_ip(InetAddress(ipaddress.ip_address("10.1.0.1"), 16))
        two.link.add_ip(InetAddress(ipaddress.ip_address("10.2.0.1"), 16))
        two.link.add_route(managed_route(ipaddress.ip_network("10.1.5.0/24"),
                                         ipaddress.ip_address("10.2.0.9")))  # fmt: skip
        ip = ipaddress.ip_address
        assert f.route(ip("10.1.9.9")) is one
        assert f.route(ip("10.1.5.9")) is two
        assert f.route(ip("10.1.5.9"), only=1) is one
        assert f.route(ip("10.3.0.1")) is None and f.route(ip("fd00::1")) is None
        seen: list[tuple[int, bool]] = []
        f.on_change = lambda nwid, tap: seen.append((nwid, tap is not None))
        one.close()
        assert f.route(ip("10.1.9.9")) is None and seen == [(1, False)]
        two.close()

    run(body)


def test_backend_choice(caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        loop = asyncio.get_running_loop()
        userspace = UserspaceTapFactory(loop, rand=rand_bits(4))
        choice = {1: "auto", 2: "tap", 3: "userspace"}
        broken = FakeTapFactory(fail_create=True)
        f = ChoosingTapFactory(broken, lambda: userspace, choice.__getitem__)
        with caplog.at_level(logging.WARNING):
            t1 = f.create(1, MAC_A, 2800, "n1")
            t1b = f.create(1, MAC_A, 2800, "n1")
        assert isinstance(t1, UserspaceTap) and isinstance(t1b, UserspaceTap)
        assert sum("user-space network stack instead" in r.message for r in caplog.records) == 1
        with pytest.raises(TapError):
            f.create(2, MAC_A, 2800, "n2")
        assert isinstance(f.create(3, MAC_A, 2800, "n3"), UserspaceTap)
        assert (f.backend_of(1), f.backend_of(3), f.backend_of(9)) == ("userspace", "userspace", "")
        working = FakeTapFactory()
        g = ChoosingTapFactory(working, lambda: userspace, choice.__getitem__)
        assert not isinstance(g.create(1, MAC_A, 2800, "n1"), UserspaceTap)
        assert g.backend_of(1) == "tap"
        assert isinstance(g.create(3, MAC_A, 2800, "n3"), UserspaceTap)
        none = ChoosingTapFactory(None, lambda: userspace, choice.__getitem__, "no /dev/net/tun")
        assert isinstance(none.create(1, MAC_A, 2800, "n1"), UserspaceTap)
        with pytest.raises(TapError, match="no /dev/net/tun"):
            none.create(2, MAC_A, 2800, "n2")
        for tap in list(userspace.taps.values()):
            tap.close()

    run(body)
