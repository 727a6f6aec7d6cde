"""One joined virtual network: config, status, members' credentials, multicast groups
(PROTOCOL-NETWORK-SERVICE A.5.2-A.5.9).

The packet-level behaviour (frames, multicast, config transport) lives in
``vl2.py``; this module holds the state and the decisions that need no I/O of
any kind, not even sending.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from ztone.node.bounds import MAX_BRIDGE_ROUTES
from ztone.node.vl2.membership import Membership
from ztone.node.wire.identity import Identity
from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.mac import MAC, _xor_mask, first_octet_for_network
from ztone.node.wire.network_config import Route
from ztone.node.wire.vl2_verbs import BROADCAST_GROUP, MulticastGroup

AUTOCONF_DELAY = 60_000
MULTICAST_ANNOUNCE_PERIOD = 60_000
MULTICAST_EXPLICIT_GATHER_DELAY = 60_000
CREDENTIAL_PUSH_TIMEOUT = 500_000
CREDENTIAL_REQUEST_INTERVAL = 1_000
LOCAL_CONTROLLER_AUTH_MEMORY = 180_000


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


class Network:
    def __init__(self, nwid: int, my_address: int) -> None:
        self.nwid = nwid
        self.my_address = my_address
        self.controller = nwid >> 24
        self.mac = int(MAC.from_address(my_address, nwid))
        self.mac_first_octet = first_octet_for_network(nwid)
        self._mac_mask = _xor_mask(nwid)
        self.config: Any = None  # NetworkConfig once configured
        self.config_bytes: bytes = b""
        self.failure = Failure.NONE
        self.last_config_update = 0
        self.last_request_sent = 0
        self.port_error = 0
        self.filter_counts = [0, 0, 0, 0]  # metrics.RX_ACCEPTED, RX_DROPPED, TX_...
        self.destroyed = False
        self.up = False
        self.memberships: dict[int, Membership] = {}
        self.subscriptions: set[MulticastGroup] = set()
        self.bridged_groups: dict[MulticastGroup, int] = {}
        self.bridge_routes: dict[int, int] = {}  # MAC -> address of the bridge behind which it is
        self.last_upstream_announce = 0
        self.assembler: Any = None
        self.parsed_rules: Any = None  # list[Rule] of the current config, parsed lazily
        self.rule_cache: dict[tuple[bytes, int], Any] = {}  # capabilities' rules, parsed
        self.authorized_by_me: dict[int, int] = {}  # member -> time (when we are its controller)

    # --- status -------------------------------------------------------------------

    @property
    def status(self) -> str:
        if self.port_error:
            return "PORT_ERROR"
        if self.failure is Failure.ACCESS_DENIED:
            return "ACCESS_DENIED"
        if self.failure is Failure.NOT_FOUND:
            return "NOT_FOUND"
        if self.failure is Failure.AUTHENTICATION_REQUIRED:
            return "AUTHENTICATION_REQUIRED"
        return "OK" if self.config is not None else "REQUESTING_CONFIGURATION"

    def needs_config_request(self, now: int) -> bool:
        if self.destroyed or self.nwid >> 56 == 0xFF:
            return False
        return self.config is None or now - self.last_config_update >= AUTOCONF_DELAY

    def view(self) -> NetworkView:
        c = self.config
        if c is None:
            return NetworkView(self.nwid, self.mac, "", self.status, "PRIVATE", 2800, False, False,
                               0, (), (), tuple(sorted(self.subscriptions)), "", ())  # fmt: skip
        return NetworkView(
            nwid=self.nwid,
            mac=self.mac,
            name=c.name,
            status=self.status,
            type="PUBLIC" if c.is_public else "PRIVATE",
            mtu=c.mtu,
            bridge=c.permits_bridging(self.my_address),
            broadcast_enabled=c.enable_broadcast,
            netconf_revision=c.revision,
            assigned_addresses=tuple(c.static_ips),
            routes=tuple(c.routes),
            multicast_subscriptions=tuple(sorted(self.subscriptions)),
            dns_domain=c.dns.domain if c.dns is not None else "",
            dns_servers=tuple(c.dns.servers) if c.dns is not None else (),
        )

    # --- MACs of members (``MAC.from_address`` / ``to_address`` without objects) ---

    def member_mac(self, address: int) -> int:
        """``MAC.from_address(address, nwid)`` as a plain int."""
        return (self.mac_first_octet << 40) | ((address ^ self._mac_mask) & 0xFFFFFFFFFF)

    def mac_to_member(self, mac: int) -> int | None:
        """The member address behind a ZeroTier MAC of this network, else None."""
        if (mac >> 40) != self.mac_first_octet:
            return None
        return (mac ^ self._mac_mask) & 0xFFFFFFFFFF

    # --- membership -----------------------------------------------------------------

    def membership(self, address: int) -> Membership:
        m = self.memberships.get(address)
        if m is None:
            m = Membership()
            self.memberships[address] = m
        return m

    def is_allowed(self, address: int, identity: Identity | None, now: int) -> bool:
        """``gate()`` / ``isAllowedOnNetwork``: public, or a live agreeing COM."""
        c = self.config
        if c is None:
            return False
        if c.is_public:
            return True
        m = self.memberships.get(address)
        if m is None or m.com is None or identity is None or c.com is None:
            return False
        return m.com_allows(c.com, identity)

    def remote_tags(self, address: int) -> dict[int, int]:
        m = self.memberships.get(address)
        c = self.config
        if m is None or c is None:
            return {}
        return {
            t.id: t.value
            for t in m.tags.values()
            if m.credential_timestamp_valid(3, t, c.timestamp, c.credential_time_max_delta)
        }

    def remote_capabilities(self, address: int) -> list[Any]:
        m = self.memberships.get(address)
        c = self.config
        if m is None or c is None:
            return []
        return [
            cap
            for cap in m.capabilities.values()
            if m.credential_timestamp_valid(2, cap, c.timestamp, c.credential_time_max_delta)
        ]

    def my_tags(self) -> dict[int, int]:
        c = self.config
        return {t.id: t.value for t in c.tags} if c is not None else {}

    def should_push_credentials(self, address: int, now: int) -> bool:
        m = self.membership(address)
        return (
            m.last_pushed_credentials < self.last_config_update
            or now - m.last_pushed_credentials > CREDENTIAL_PUSH_TIMEOUT
        )

    # --- multicast ------------------------------------------------------------------

    def all_groups(self) -> set[MulticastGroup]:
        groups = set(self.subscriptions) | set(self.bridged_groups)
        if self.config is not None and self.config.enable_broadcast:
            groups.add(BROADCAST_GROUP)
        return groups

    def subscribed_or_bridged(self, group: MulticastGroup) -> bool:
        return group in self.subscriptions or group in self.bridged_groups

    def is_active_bridge(self, address: int) -> bool:
        return self.config is not None and bool(self.config.permits_bridging(address))

    def active_bridges(self) -> list[int]:
        return list(self.config.active_bridges()) if self.config is not None else []

    def learn_bridge_route(self, mac: int, address: int) -> None:
        self.bridge_routes[mac] = address
        if len(self.bridge_routes) > MAX_BRIDGE_ROUTES:
            counts: dict[int, int] = {}
            for a in self.bridge_routes.values():
                counts[a] = counts.get(a, 0) + 1
            worst = max(counts, key=lambda a: counts[a])
            self.bridge_routes = {m: a for m, a in self.bridge_routes.items() if a != worst}
