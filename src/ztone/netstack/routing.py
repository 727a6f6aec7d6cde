"""A stack's addresses and routes, and the choices they make (next hop, source address).

Each address's network is on-link, and so is ``fe80::/10``; routes add on-link targets
(``via`` None) or targets behind a gateway; the longest prefix wins. The sets the stack
tests every packet against (our IPv4/IPv6 addresses, IPv4 broadcast addresses, the
Ethernet groups to listen to) are rebuilt whenever the configuration changes, and the
next hop of each destination is cached (bounded: the cache is cleared when full).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ztone.errors import LocalUsageError
from ztone.netstack import ndp
from ztone.netstack.ethernet import ALL_NODES_MAC, ipv6_multicast_mac
from ztone.netstack.udp_socket import Address

Interface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

LINK_LOCAL = ipaddress.IPv6Network("fe80::/10")
HOP_CACHE = 1024


@dataclass(frozen=True, slots=True)
class _Route:
    version: int
    network: int
    mask: int
    prefix: int
    via: bytes | None


def _route(target: Network, via: Address | None) -> _Route:
    return _Route(
        target.version,
        int(target.network_address),
        int(target.netmask),
        target.prefixlen,
        via.packed if via is not None else None,
    )


def address_of(raw: bytes) -> Address:
    """The address of 4 or 16 packed bytes."""
    return ipaddress.IPv4Address(raw) if len(raw) == 4 else ipaddress.IPv6Address(raw)


class Routing:
    def __init__(self) -> None:
        self._interfaces: list[Interface] = []
        self._routes: list[tuple[Network, Address | None]] = []
        self._table: list[_Route] = []
        self._hops: dict[bytes, bytes | None] = {}
        self.v4: dict[bytes, ipaddress.IPv4Interface] = {}
        """Our IPv4 addresses, packed."""
        self.v6: dict[bytes, ipaddress.IPv6Interface] = {}
        """Our IPv6 addresses, packed."""
        self.v4_broadcasts: set[bytes] = set()
        """The directed broadcast address of each IPv4 network (prefixes up to /30)."""
        self.groups: set[int] = {ALL_NODES_MAC}
        """Multicast MACs to listen to: ff02::1 and each address's solicited-node group."""
        self._rebuild()

    def add_address(self, ip: Interface) -> None:
        if ip in self._interfaces:
            return
        if ip.ip.is_multicast or ip.ip.is_unspecified:
            raise LocalUsageError(f"{ip} cannot be a host address")
        self._interfaces.append(ip)
        self._rebuild()

    def remove_address(self, ip: Interface) -> None:
        if ip in self._interfaces:
            self._interfaces.remove(ip)
            self._rebuild()

    def addresses(self) -> list[Interface]:
        return list(self._interfaces)

    def add_route(self, target: Network, via: Address | None) -> None:
        if via is not None and via.version != target.version:
            raise LocalUsageError(f"route {target} via {via}: mixed address families")
        if (target, via) not in self._routes:
            self._routes.append((target, via))
            self._rebuild()

    def remove_route(self, target: Network, via: Address | None) -> None:
        if (target, via) in self._routes:
            self._routes.remove((target, via))
            self._rebuild()

    def routes(self) -> list[tuple[Network, Address | None]]:
        return list(self._routes)

    def _rebuild(self) -> None:
        v4: dict[bytes, ipaddress.IPv4Interface] = {}
        v6: dict[bytes, ipaddress.IPv6Interface] = {}
        broadcasts: set[bytes] = set()
        groups = {ALL_NODES_MAC}
        table: list[_Route] = []
        for iface in self._interfaces:
            raw = iface.ip.packed
            if isinstance(iface, ipaddress.IPv4Interface):
                v4[raw] = iface
                if iface.network.prefixlen < 31:
                    broadcasts.add(iface.network.broadcast_address.packed)
            else:
                v6[raw] = iface
                groups.add(ipv6_multicast_mac(ndp.solicited_node(raw)))
            table.append(_route(iface.network, None))
        table.append(_route(LINK_LOCAL, None))
        table.extend(_route(target, via) for target, via in self._routes)
        table.sort(key=lambda r: -r.prefix)
        self.v4, self.v6, self.v4_broadcasts, self.groups = v4, v6, broadcasts, groups
        self._table = table
        self._hops = {}

    def next_hop(self, dst: bytes) -> bytes | None:
        """The on-link address to send a packet for ``dst`` to (itself or a gateway);
        None when no route holds it."""
        hops = self._hops
        if dst in hops:
            return hops[dst]
        value = int.from_bytes(dst, "big")
        version = 4 if len(dst) == 4 else 6
        hop: bytes | None = None
        for route in self._table:
            if route.version == version and value & route.mask == route.network:
                hop = dst if route.via is None else route.via
                break
        if len(hops) >= HOP_CACHE:
            hops.clear()
        hops[dst] = hop
        return hop

    def source_for(self, dst: bytes) -> bytes | None:
        """Our address for talking to ``dst``: one whose network holds it, else the first
        of its family; None when we hold none of that family."""
        table = self.v4 if len(dst) == 4 else self.v6
        target = address_of(dst)
        first = None
        for raw, iface in table.items():
            if target in iface.network:
                return raw
            if first is None:
                first = raw
        return first
