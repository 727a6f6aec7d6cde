"""service/networks.py: ports per joined network, managed IPs and routes, local.conf and
multicast scans, against the fake backend and a real frame pump."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest

from ztone.node.vl2.network import ConfigOp, NetworkView
from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.network_config import Route
from ztone.node.wire.vl2_verbs import MulticastGroup
from ztone.osdep.fake import FakeTap, FakeTapFactory, Frame
from ztone.service.config import NetworkLocalSettings, read_network_local_conf
from ztone.service.frame_pump import FramePump
from ztone.service.home import Home
from ztone.service.networks import PORT_ERROR_TAP_FAILED, NetworkPorts

NWID = 0x8056C2E21C000001
MAC = 0x0289E9300C27
PEER = 0x0289E9300C28


def ia(text: str) -> InetAddress:
    return InetAddress.parse(text)


def view(**changes: object) -> NetworkView:
    base = NetworkView(
        nwid=NWID,
        mac=MAC,
        name="net",
        status="OK",
        type="PRIVATE",
        mtu=2800,
        bridge=False,
        broadcast_enabled=True,
        netconf_revision=1,
        assigned_addresses=(ia("198.18.5.1/24"), ia("fd00:5::1/64")),
        routes=(
            Route(ia("198.18.5.0/24")),  # implied by the address: not added
            Route(ia("198.19.0.0/16"), ia("198.18.5.2/0")),
            Route(ia("0.0.0.0/0"), ia("198.18.5.2/0")),  # default: needs allowDefault
        ),
        multicast_subscriptions=(),
        dns_domain="",
        dns_servers=(),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


class Ports:
    def __init__(self, home: Path, factory: FakeTapFactory | None) -> None:
        self.loop = asyncio.new_event_loop()
        self.got: list[tuple[int, int, int, int, bytes]] = []
        self.pump = FramePump(self.loop, lambda *f: self.got.append(f))
        self.factory = factory
        self.ports = NetworkPorts(Home(home), factory, self.pump)

    def tap(self) -> FakeTap:
        assert self.factory is not None
        [tap] = self.factory.taps_for(NWID)
        return tap

    def close(self) -> None:
        self.ports.close()
        self.loop.close()


@pytest.fixture
def ports(tmp_path: Path) -> Iterator[Ports]:
    p = Ports(tmp_path, FakeTapFactory())
    yield p
    p.close()


def test_up_creates_the_port_with_managed_ips_and_routes(ports: Ports) -> None:
    assert ports.ports.apply(NWID, ConfigOp.UP, view()) == 0
    tap = ports.tap()
    assert tap.link.mtu == 2800 and ports.pump.reading(NWID)
    assert tap.link.ips() == [ia("198.18.5.1/24"), ia("fd00:5::1/64")]
    assert tap.link.routes == [Route(ia("198.19.0.0/16"), ia("198.18.5.2/0"))]
    port = ports.ports.ports[NWID]
    assert port.applied_routes == tap.link.routes
    assert port.applied_ips == tap.link.ips()


def test_updates_follow_the_config(ports: Ports) -> None:
    ports.ports.apply(NWID, ConfigOp.UP, view())
    tap = ports.tap()
    changed = view(
        mtu=1400,
        assigned_addresses=(ia("198.18.6.1/24"),),
        routes=(Route(ia("198.19.128.0/17"), ia("198.18.6.2/0"), 0, 7),),
    )
    assert ports.ports.apply(NWID, ConfigOp.CONFIG_UPDATE, changed) == 0
    assert ports.factory is not None and ports.factory.taps_for(NWID) == [tap]  # same port
    assert tap.link.mtu_history == [2800, 1400]
    assert tap.link.ips() == [ia("198.18.6.1/24")]
    assert tap.link.routes == [Route(ia("198.19.128.0/17"), ia("198.18.6.2/0"), 0, 7)]


def test_local_settings_decide_what_is_managed(ports: Ports, tmp_path: Path) -> None:
    ports.ports.apply(NWID, ConfigOp.UP, view())
    tap = ports.tap()
    ports.ports.set_local_settings(NWID, NetworkLocalSettings(allow_default=True))
    assert Route(ia("0.0.0.0/0"), ia("198.18.5.2/0")) in tap.link.routes
    ports.ports.set_local_settings(NWID, NetworkLocalSettings(allow_managed=False))
    assert tap.link.ips() == [] and tap.link.routes == []
    conf = Home(tmp_path).network_local_conf_path(NWID)
    assert read_network_local_conf(conf).allow_managed is False
    assert ports.ports.local_settings(NWID).allow_managed is False


def test_frames_go_both_ways_through_the_pump(ports: Ports) -> None:
    ports.ports.apply(NWID, ConfigOp.UP, view())
    tap = ports.tap()
    ports.pump.put(NWID, PEER, MAC, 0x0800, b"to host")
    ports.pump.flush()
    assert tap.device.put_frames == [Frame(PEER, MAC, 0x0800, b"to host")]
    tap.device.inject(MAC, PEER, 0x0800, b"from host")

    async def wait() -> None:
        for _ in range(200):
            if ports.got:
                return
            await asyncio.sleep(0.005)

    ports.loop.run_until_complete(wait())
    assert ports.got == [(NWID, MAC, PEER, 0x0800, b"from host")]


def test_destroy_removes_everything_and_the_local_conf(ports: Ports, tmp_path: Path) -> None:
    ports.ports.apply(NWID, ConfigOp.UP, view())
    ports.ports.set_local_settings(NWID, NetworkLocalSettings(allow_global=True))
    conf = Home(tmp_path).network_local_conf_path(NWID)
    assert conf.exists()
    tap = ports.tap()
    ports.pump.put(NWID, PEER, MAC, 0x0800, b"queued")
    assert ports.ports.apply(NWID, ConfigOp.DESTROY, view()) == 0
    assert tap.closed and not ports.pump.reading(NWID)
    assert tap.device.put_frames == [Frame(PEER, MAC, 0x0800, b"queued")]  # written first
    assert NWID not in ports.ports.ports and not conf.exists()
    assert ports.ports.apply(NWID, ConfigOp.DESTROY, view()) == 0  # again: nothing to do


def test_close_keeps_the_local_conf(ports: Ports, tmp_path: Path) -> None:
    ports.ports.apply(NWID, ConfigOp.UP, view())
    ports.ports.set_local_settings(NWID, NetworkLocalSettings())
    tap = ports.tap()
    ports.ports.close()
    assert tap.closed
    assert Home(tmp_path).network_local_conf_path(NWID).exists()


@pytest.mark.parametrize("factory", [None, FakeTapFactory(fail_create=True)])
def test_no_port_is_a_port_error(tmp_path: Path, factory: FakeTapFactory | None) -> None:
    ports = Ports(tmp_path, factory)
    try:
        assert ports.ports.apply(NWID, ConfigOp.UP, view()) == PORT_ERROR_TAP_FAILED
        assert ports.ports.apply(NWID, ConfigOp.CONFIG_UPDATE, view()) == PORT_ERROR_TAP_FAILED
        assert not ports.pump.reading(NWID)
        ports.pump.put(NWID, PEER, MAC, 0x0800, b"nowhere")  # ignored
        ports.pump.flush()
        assert ports.ports.scan_groups() == []
    finally:
        ports.close()


def test_a_refused_mtu_keeps_the_port(ports: Ports) -> None:
    ports.ports.apply(NWID, ConfigOp.UP, view())
    tap = ports.tap()
    tap.link.fail.add("set_mtu")
    assert ports.ports.apply(NWID, ConfigOp.CONFIG_UPDATE, view(mtu=1400)) == 0
    assert tap.link.mtu == 2800 and not tap.closed


def test_scan_groups_reports_joins_and_leaves(ports: Ports) -> None:
    ports.ports.apply(NWID, ConfigOp.UP, view(assigned_addresses=(ia("198.18.5.1/24"),)))
    tap = ports.tap()
    arp = MulticastGroup(0xFFFFFFFFFFFF, int(ipaddress.IPv4Address("198.18.5.1")))
    broadcast = MulticastGroup(0xFFFFFFFFFFFF, 0)
    [(nwid, added, removed)] = ports.ports.scan_groups()
    assert nwid == NWID and removed == []
    assert added == [broadcast, arp]
    assert ports.ports.scan_groups() == []  # nothing changed
    tap.link.join(0x01005E000001)
    assert ports.ports.scan_groups() == [(NWID, [MulticastGroup(0x01005E000001, 0)], [])]
    tap.link.leave(0x01005E000001)
    assert ports.ports.scan_groups() == [(NWID, [], [MulticastGroup(0x01005E000001, 0)])]
