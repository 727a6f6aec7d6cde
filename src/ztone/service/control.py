"""What the local API may do with the running daemon (C.2): :class:`DaemonControl`.

The API's routes talk to two documented protocols, ``ApiControl``
(:mod:`ztone.service.api.routes`: status, settings, peers, moons, metrics) and
``NetworkControl`` (:mod:`ztone.service.api.network_routes`: join, leave, per-network
settings). :class:`DaemonControl` implements both over the daemon's parts, given
to it explicitly by the runner once they are up; the routes never see the runner,
its event loop or its sockets.

Changes made through it (join, leave, orbit, deorbit) are core calls; the runner's
``after_input`` then carries out the core's actions and re-arms its timer, as after
any other input.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ztone.node.node import Node
from ztone.node.status import MoonStatus, NodeStatus, PeerStatus
from ztone.node.vl2.network import NetworkView
from ztone.node.wire.inetaddress import InetAddress
from ztone.service.clock import now_ms
from ztone.service.config import ConfigError, LocalConf, NetworkLocalSettings, update_settings
from ztone.service.controller_lazy import LazyController
from ztone.service.frame_pump import FramePump
from ztone.service.home import Home
from ztone.service.metrics import ControllerCounts, ControllerSnapshot, render_metrics
from ztone.service.networks import NetworkPorts
from ztone.service.tcp_fallback import TcpFallback
from ztone.service.udp import UdpSockets

ManagementNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass
class DaemonCounters:
    """The runner's own counters, shown in ``/metrics`` (``ztone_packets_total``)."""

    bugs: int = 0
    """Inputs whose core call raised (the core's contract is that only bugs do)."""
    udp_rx_bytes: int = 0


@dataclass(frozen=True, slots=True)
class DaemonParts:
    """The running daemon's parts the API reaches (all up before the API starts)."""

    node: Node
    home: Home
    ports: NetworkPorts
    pump: FramePump
    udp: UdpSockets
    fallback: TcpFallback | None
    controller: LazyController | None
    """None: no controller; not loaded yet: it has served nothing (zero counts)."""
    counters: DaemonCounters
    primary_port: int
    secondary_port: int
    report_activity: Callable[[], None] | None = None
    """Hands the native data plane's activity to the core (before peers/metrics show)."""
    native_stats: Callable[[], dict[str, int]] | None = None
    """The native data plane's counters (service/dataplane.py), when it runs."""


class DaemonControl:
    """``ApiControl`` and ``NetworkControl`` over the daemon's parts.

    ``conf`` gives the current ``local.conf`` (it is re-read while running),
    ``listening_on`` the addresses the daemon listens on, and ``after_input`` is called
    after every core call made here.
    """

    def __init__(
        self,
        parts: DaemonParts,
        *,
        conf: Callable[[], LocalConf],
        listening_on: Callable[[], list[InetAddress]],
        after_input: Callable[[], None],
        auth_token: str,
        metrics_token: str,
        allow_management_from: list[ManagementNetwork],
    ) -> None:
        self._parts = parts
        self._conf = conf
        self._listening_on = listening_on
        self._after_input = after_input
        self.auth_token = auth_token
        self.metrics_token = metrics_token
        self.allow_management_from = allow_management_from
        """Replaced by the runner when ``local.conf`` changes."""

    # --- ApiControl -----------------------------------------------------------------

    def _fresh(self) -> None:
        report = self._parts.report_activity
        if report is not None:
            report()

    def node_status(self) -> NodeStatus:
        self._fresh()
        return self._parts.node.status(now_ms())

    def service_settings(self) -> dict[str, object]:
        conf = self._conf()
        parts = self._parts
        raw = conf.raw.get("settings")
        settings: dict[str, Any] = dict(raw) if isinstance(raw, dict) else {}
        s = conf.settings
        settings.update(
            {
                "allowTcpFallbackRelay": s.allow_tcp_fallback_relay,
                "forceTcpRelay": s.force_tcp_relay,
                "primaryPort": parts.primary_port,
                "secondaryPort": s.secondary_port or parts.secondary_port,
                "tertiaryPort": s.tertiary_port,
                "homeDir": str(parts.home.path),
                "listeningOn": [str(a) for a in self._listening_on()],
                "surfaceAddresses": [str(a) for a in parts.node.surface_addresses()],
                "portMappingEnabled": False,  # ztone has no UPnP/NAT-PMP
                "softwareUpdate": s.software_update,
                "softwareUpdateChannel": s.software_update_channel,
            }
        )
        return settings

    def local_conf(self) -> dict[str, object]:
        return dict(self._conf().raw)

    def update_settings(self, changes: dict[str, object]) -> None:
        try:
            update_settings(self._parts.home.local_conf_path, dict(changes))
        except ConfigError as e:
            raise ValueError(str(e)) from None

    def peers(self) -> list[PeerStatus]:
        self._fresh()
        return self._parts.node.peer_status(now_ms())

    def moons(self) -> list[MoonStatus]:
        return self._parts.node.moon_status()

    def orbit(self, world_id: int, seed: int) -> None:
        self._parts.node.orbit(now_ms(), world_id, seed)
        self._after_input()

    def deorbit(self, world_id: int) -> None:
        self._parts.node.deorbit(now_ms(), world_id)
        self._after_input()

    def tcp_fallback_active(self) -> bool:
        fallback = self._parts.fallback
        return fallback is not None and fallback.active

    def metrics_text(self) -> str | None:
        """Prometheus text: zerotier-one's families and ztone's own counters
        (:mod:`ztone.service.metrics`)."""
        self._fresh()
        parts = self._parts
        counters = dict(parts.node.counters)
        counters["bugs"] = parts.counters.bugs
        counters["udp_send_errors"] = parts.udp.send_errors
        counters["udp_rx_shed"] = parts.udp.rx_shed
        counters["port_frames_dropped"] = parts.pump.frames_dropped
        counters["port_read_errors"] = parts.pump.read_errors
        if parts.native_stats is not None:
            for name, value in parts.native_stats().items():
                counters[f"dataplane_{name}"] = value
        fallback = parts.fallback
        if fallback is not None:
            counters["tcp_fallback_connects"] = fallback.connects
            counters["tcp_fallback_dropped"] = fallback.dropped
        snapshot = None
        lazy = parts.controller
        if lazy is not None and lazy.loaded is not None:
            store = lazy.loaded.store
            nwids = store.list_networks()
            snapshot = ControllerSnapshot(
                networks=len(nwids),
                members=sum(len(store.list_members(n)) for n in nwids),
                counts=lazy.loaded.counts,
            )
        elif lazy is not None and not lazy.failed:
            # Not loaded: no store was there at start and nothing has used it since,
            # so it serves no network yet (what a just-opened empty store would say).
            snapshot = ControllerSnapshot(networks=0, members=0, counts=ControllerCounts())
        return render_metrics(
            parts.node,
            now_ms(),
            udp_bytes=(parts.counters.udp_rx_bytes, parts.udp.tx_bytes),
            tcp_bytes=(
                (fallback.received_bytes, fallback.sent_bytes) if fallback is not None else (0, 0)
            ),
            controller=snapshot,
            ztone_counters=counters,
        )

    # --- NetworkControl -------------------------------------------------------------

    def network_views(self) -> list[NetworkView]:
        return self._parts.node.network_views()

    def join(self, nwid: int) -> NetworkView:
        node = self._parts.node
        node.join(now_ms(), nwid)
        self._after_input()
        return next(v for v in node.network_views() if v.nwid == nwid)

    def leave(self, nwid: int) -> bool:
        left = self._parts.node.leave(now_ms(), nwid)
        self._after_input()
        return left

    def local_settings(self, nwid: int) -> NetworkLocalSettings:
        return self._parts.ports.local_settings(nwid)

    def set_local_settings(self, nwid: int, settings: NetworkLocalSettings) -> None:
        self._parts.ports.set_local_settings(nwid, settings)

    def port_info(self, nwid: int) -> tuple[str, int]:
        """(device name, port error); ``("", 0)`` for a network without a port."""
        port = self._parts.ports.ports.get(nwid)
        if port is None:
            return "", 0
        return (port.tap.device_name if port.tap is not None else "", port.error)


__all__ = ["DaemonControl", "DaemonCounters", "DaemonParts"]
