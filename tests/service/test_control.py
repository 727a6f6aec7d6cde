"""service/control.py: the API's control object over real daemon parts (a node core, a
fake port backend, unbound UDP sockets), without the runner."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from sim.network import START, MemoryState, vector_identities
from ztone.node.actions import NetworkConfigChanged
from ztone.node.node import Node
from ztone.node.wire.inetaddress import InetAddress
from ztone.osdep.fake import FakeTapFactory
from ztone.service.api.network_routes import NetworkControl
from ztone.service.api.routes import ApiControl
from ztone.service.config import LocalConf, NetworkLocalSettings, load_local_conf
from ztone.service.control import DaemonControl, DaemonCounters, DaemonParts
from ztone.service.frame_pump import FramePump
from ztone.service.home import Home
from ztone.service.networks import PORT_ERROR_TAP_FAILED, NetworkPorts
from ztone.service.udp import UdpSockets

NWID = 0x1FAD486CAFE468E2
OTHER = 0x8056C2E21C000001


class Daemon:
    def __init__(self, home: Path, factory: FakeTapFactory) -> None:
        self.loop = asyncio.new_event_loop()
        self.home = Home(home)
        self.home.ensure()
        self.node = Node(vector_identities()[2], now=START, random_bytes=bytes, state=MemoryState())
        self.pump = FramePump(self.loop, lambda *frame: None)
        self.ports = NetworkPorts(self.home, factory, self.pump)
        self.udp = UdpSockets(self.loop, lambda *datagram: None)
        self.counters = DaemonCounters(bugs=2, udp_rx_bytes=1234)
        self.conf = LocalConf()
        self.woken = 0
        self.control = DaemonControl(
            DaemonParts(
                node=self.node,
                home=self.home,
                ports=self.ports,
                pump=self.pump,
                udp=self.udp,
                fallback=None,
                controller=None,
                counters=self.counters,
                primary_port=9993,
                secondary_port=0,
            ),
            conf=lambda: self.conf,
            listening_on=lambda: [InetAddress.parse("198.18.0.1/9993")],
            after_input=self.after_input,
            auth_token="secret",
            metrics_token="metrics",
            allow_management_from=[],
        )

    def after_input(self) -> None:
        """As the runner does: carry out the core's port operations."""
        self.woken += 1
        for action in self.node.drain_actions():
            if isinstance(action, NetworkConfigChanged):
                error = self.ports.apply(action.nwid, action.op, action.view)
                self.node.set_port_error(action.nwid, error)

    def close(self) -> None:
        self.ports.close()
        self.udp.close()
        self.loop.close()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path, FakeTapFactory())
    yield d
    d.close()


def _protocol_check(control: DaemonControl) -> tuple[ApiControl, NetworkControl]:
    """Never called: mypy checks that the control object is what the API's routes take."""
    return control, control


def test_join_and_leave_go_through_the_core_and_act(daemon: Daemon) -> None:
    c = daemon.control
    assert c.network_views() == []
    view = c.join(NWID)
    assert view.nwid == NWID and daemon.woken == 1
    assert [v.nwid for v in c.network_views()] == [NWID]
    device, error = c.port_info(NWID)
    assert device.startswith("zt") and error == 0  # the port came with the join
    assert c.port_info(OTHER) == ("", 0)
    assert c.leave(NWID) is True and daemon.woken == 2
    assert c.network_views() == [] and c.port_info(NWID) == ("", 0)
    assert c.leave(NWID) is False


def test_a_port_that_cannot_be_made_shows_its_error(tmp_path: Path) -> None:
    d = Daemon(tmp_path, FakeTapFactory(fail_create=True))
    try:
        d.control.join(NWID)
        assert d.control.port_info(NWID) == ("", PORT_ERROR_TAP_FAILED)
    finally:
        d.close()


def test_local_settings_are_kept_per_network(daemon: Daemon) -> None:
    c = daemon.control
    c.join(NWID)
    assert c.local_settings(NWID) == NetworkLocalSettings()
    c.set_local_settings(NWID, NetworkLocalSettings(allow_global=True))
    assert c.local_settings(NWID).allow_global is True
    assert daemon.home.network_local_conf_path(NWID).exists()


def test_settings_status_and_config(daemon: Daemon, tmp_path: Path) -> None:
    c = daemon.control
    settings = c.service_settings()
    assert settings["primaryPort"] == 9993
    assert settings["homeDir"] == str(tmp_path)
    assert settings["listeningOn"] == ["198.18.0.1/9993"]
    assert settings["portMappingEnabled"] is False
    assert c.node_status().address == daemon.node.address
    assert c.local_conf() == {}
    c.update_settings({"primaryPort": 9994})
    on_disk = json.loads(daemon.home.local_conf_path.read_text())
    assert on_disk["settings"]["primaryPort"] == 9994
    daemon.conf = load_local_conf(daemon.home.local_conf_path)  # the runner's reload
    assert c.local_conf() == on_disk
    with pytest.raises(ValueError, match="primaryPort"):
        c.update_settings({"primaryPort": "not a port"})
    assert c.tcp_fallback_active() is False
    # the planet's roots (nothing is sent here: the test drops the core's packets)
    assert {p.role.value for p in c.peers()} == {"PLANET"} and c.moons() == []


def test_metrics_carry_the_daemons_counters(daemon: Daemon) -> None:
    daemon.pump.frames_dropped = 5
    text = daemon.control.metrics_text()
    assert text is not None
    assert 'ztone_packets_total{what="bugs"} 2' in text
    assert 'ztone_packets_total{what="port_frames_dropped"} 5' in text
    assert 'ztone_packets_total{what="port_read_errors"} 0' in text
