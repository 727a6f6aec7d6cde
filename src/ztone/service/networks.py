"""The service side of joined networks: one virtual port each, managed IPs and routes,
``networks.d/<nwid>.local.conf`` and multicast subscriptions (C.1.4, C.5).

The core says what a network looks like (``NetworkConfigChanged`` with a
``NetworkView``); this module makes the host match: it creates the port on UP,
syncs MTU, addresses and routes on every update (as ``allowManaged``, ``allowGlobal``
and ``allowDefault`` permit), deletes it on DESTROY, and reports the port's
multicast groups back to the core.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from ztone.node.vl2.network import ConfigOp, NetworkView
from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.network_config import Route
from ztone.node.wire.vl2_verbs import MulticastGroup
from ztone.osdep.base import Tap, TapError, TapFactory
from ztone.osdep.managed import plan_managed
from ztone.osdep.multicast import port_groups
from ztone.service.config import (
    NetworkLocalSettings,
    read_network_local_conf,
    write_network_local_conf,
)
from ztone.service.frame_pump import FramePump
from ztone.service.home import Home

log = logging.getLogger(__name__)

PORT_ERROR_TAP_FAILED = -999


@dataclass
class Port:
    nwid: int
    tap: Tap | None
    settings: NetworkLocalSettings
    view: NetworkView
    error: int = 0
    applied_ips: list[InetAddress] = field(default_factory=list)
    applied_routes: list[Route] = field(default_factory=list)
    groups: set[MulticastGroup] = field(default_factory=set)


class NetworkPorts:
    """Every joined network's port; its frames move through ``pump``."""

    def __init__(self, home: Home, factory: TapFactory | None, pump: FramePump) -> None:
        self.home = home
        self.factory = factory
        self.pump = pump
        self.ports: dict[int, Port] = {}

    # --- core actions ----------------------------------------------------------

    def apply(self, nwid: int, op: ConfigOp, view: NetworkView) -> int:
        """Carry out one port operation; the answer is the port's error (0 = fine,
        ``PORT_ERROR_TAP_FAILED`` while it has no working virtual port)."""
        if op is ConfigOp.DESTROY:
            self.destroy(nwid, delete_local_conf=True)
            return 0
        port = self.ports.get(nwid)
        if port is None:
            port = self._create(nwid, view)
        port.view = view
        if port.tap is not None:
            try:
                if port.tap.link.mtu != view.mtu:
                    port.tap.link.set_mtu(view.mtu)
            except TapError as e:
                log.warning("network %016x: cannot set MTU %d: %s", nwid, view.mtu, e)
            self.sync_managed(port)
        return port.error

    def _create(self, nwid: int, view: NetworkView) -> Port:
        settings = read_network_local_conf(self.home.network_local_conf_path(nwid))
        port = Port(nwid, None, settings, view)
        self.ports[nwid] = port
        if self.factory is None:
            port.error = PORT_ERROR_TAP_FAILED
            log.error("network %016x: no virtual network backend on this platform", nwid)
            return port
        try:
            tap = self.factory.create(nwid, view.mac, view.mtu, view.name)
        except TapError as e:
            port.error = PORT_ERROR_TAP_FAILED
            log.error("network %016x: cannot create its virtual port: %s", nwid, e)
            return port
        try:
            self.pump.attach(nwid, tap)
        except (OSError, ValueError, TapError) as e:
            port.error = PORT_ERROR_TAP_FAILED
            log.error("network %016x: cannot watch its virtual port: %s", nwid, e)
            self._close_tap(nwid, tap)
            return port
        port.tap = tap
        log.info("network %016x: port %s up", nwid, tap.device_name)
        return port

    def _close_tap(self, nwid: int, tap: Tap) -> None:
        try:
            tap.close()
        except TapError as e:
            log.warning("network %016x: closing its port: %s", nwid, e)

    def destroy(self, nwid: int, delete_local_conf: bool) -> None:
        port = self.ports.pop(nwid, None)
        if port is not None and port.tap is not None:
            self.pump.detach(nwid)
            link = port.tap.link
            for route in port.applied_routes:
                link.remove_route(route)
            for ip in port.applied_ips:
                link.remove_ip(ip)
            self._close_tap(nwid, port.tap)
        if delete_local_conf:
            try:
                os.unlink(self.home.network_local_conf_path(nwid))
            except FileNotFoundError:
                pass
            except OSError as e:
                log.warning("network %016x: cannot delete its local.conf: %s", nwid, e)

    def close(self) -> None:
        for nwid in list(self.ports):
            self.destroy(nwid, delete_local_conf=False)
        self.pump.close()

    # --- managed addresses and routes -------------------------------------------

    def sync_managed(self, port: Port) -> None:
        if port.tap is None:
            return
        tap = port.tap.link
        view = port.view
        want_ips, want_routes = plan_managed(
            view.assigned_addresses, view.routes, port.settings, tap_ips=[]
        )
        for ip in [i for i in port.applied_ips if i not in want_ips]:
            tap.remove_ip(ip)
        for ip in want_ips:
            if ip not in port.applied_ips and not tap.add_ip(ip):
                log.warning("network %016x: could not add %s", port.nwid, ip)
        port.applied_ips = [ip for ip in want_ips if ip in tap.ips()] or list(want_ips)
        for route in [r for r in port.applied_routes if r not in want_routes]:
            tap.remove_route(route)
        applied = []
        for route in want_routes:
            if route in port.applied_routes or tap.add_route(route):
                applied.append(route)
        port.applied_routes = applied

    def set_local_settings(self, nwid: int, settings: NetworkLocalSettings) -> None:
        write_network_local_conf(self.home.network_local_conf_path(nwid), settings)
        port = self.ports.get(nwid)
        if port is not None:
            port.settings = settings
            self.sync_managed(port)

    def local_settings(self, nwid: int) -> NetworkLocalSettings:
        port = self.ports.get(nwid)
        if port is not None:
            return port.settings
        return read_network_local_conf(self.home.network_local_conf_path(nwid))

    # --- multicast -----------------------------------------------------------------

    def scan_groups(self) -> list[tuple[int, list[MulticastGroup], list[MulticastGroup]]]:
        """Per network: (nwid, groups joined since last scan, groups left)."""
        out = []
        for nwid, port in self.ports.items():
            if port.tap is None:
                continue
            try:
                link = port.tap.link
                joined = [g.mac for g in link.multicast_groups()]
                groups = set(port_groups(joined, link.ips()))
            except TapError:
                continue
            added = sorted(groups - port.groups)
            removed = sorted(port.groups - groups)
            port.groups = groups
            if added or removed:
                out.append((nwid, added, removed))
        return out
