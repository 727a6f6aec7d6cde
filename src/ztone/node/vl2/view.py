"""What the host sees of a network: its status, the port operation and the
``ZT_VirtualNetworkConfig`` view (PROTOCOL-NETWORK-SERVICE A.5.5, C.5.1).

A leaf module (no other module of the core below it) so the output contract in
:mod:`ztone.node.actions` can name these types without an import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.network_config import Route
from ztone.node.wire.vl2_verbs import MulticastGroup


class Failure(Enum):
    NONE = 0
    ACCESS_DENIED = 2
    NOT_FOUND = 3
    AUTHENTICATION_REQUIRED = 6


class ConfigOp(Enum):
    """What the host should do with the network's port (``ZT_VirtualNetworkConfigOperation``)."""

    UP = 1
    CONFIG_UPDATE = 2
    DOWN = 3
    DESTROY = 4


@dataclass(frozen=True, slots=True)
class NetworkView:
    """What the host and the API see of a network (``ZT_VirtualNetworkConfig``)."""

    nwid: int
    mac: int
    name: str
    status: str
    type: str
    mtu: int
    bridge: bool
    broadcast_enabled: bool
    netconf_revision: int
    assigned_addresses: tuple[InetAddress, ...]
    routes: tuple[Route, ...]
    multicast_subscriptions: tuple[MulticastGroup, ...]
    dns_domain: str
    dns_servers: tuple[InetAddress, ...]
