"""Which managed IPs and routes go on a port (PROTOCOL-NETWORK-SERVICE C.5.3, C.1.4).

Pure policy, shared by every OS backend: ``OneService::checkIfManagedIsAllowed`` and
the selection half of ``syncManagedStuff``. Applying the result (adding and
removing on the port, remembering what was applied) is the service's job.

A target (managed IP ``ip/bits`` or route ``network/bits``) is allowed when:

1. ``allowManaged`` is on;
2. with an ``allowManaged`` whitelist, some whitelist network contains the target
   and is no more specific than it;
3. a default target (``0.0.0.0/0``, ``::/0``) needs ``allowDefault``;
4. otherwise by scope: none, multicast, loopback and link-local never; global needs
   ``allowGlobal``; private, pseudo-private and shared always.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Protocol

from ztone.node.wire.inetaddress import InetAddress, IPAddress, IpScope
from ztone.node.wire.network_config import Route
from ztone.osdep.base import IPNetwork


class ManagedPolicy(Protocol):
    """The ``networks.d/<nwid>.local.conf`` settings that decide (``NetworkLocalSettings``)."""

    @property
    def allow_managed(self) -> bool: ...

    @property
    def managed_whitelist(self) -> Sequence[IPNetwork]: ...

    @property
    def allow_global(self) -> bool: ...

    @property
    def allow_default(self) -> bool: ...


def is_default_target(target: InetAddress) -> bool:
    """``InetAddress::isDefaultRoute``: all-zero address and zero bits."""
    return int(target.ip) == 0 and target.port == 0


def network_target(network: IPNetwork) -> InetAddress:
    """A route target network as the ``ip/bits`` value the policy looks at."""
    return InetAddress(network.network_address, network.prefixlen)


def managed_route(
    network: IPNetwork, via: IPAddress | None = None, metric: int = 0, flags: int = 0
) -> Route:
    """The config's :class:`Route` for ``network`` via ``via`` (None: on-link)."""
    gateway = InetAddress(via, 0) if via is not None else None
    return Route(network_target(network), gateway, flags, metric)


def route_network(route: Route) -> IPNetwork:
    """A route's target as a network (host bits of ``ip/bits`` cleared)."""
    return ipaddress.ip_network((route.target.ip, route.target.port), strict=False)


def route_gateway(route: Route) -> IPAddress | None:
    """A route's gateway address, None for an on-link route."""
    return route.via.ip if route.via is not None else None


def _whitelisted(whitelist: Sequence[IPNetwork], target: InetAddress) -> bool:
    return any(
        net.version == target.ip.version and target.ip in net and net.prefixlen <= target.port
        for net in whitelist
    )


def is_managed_allowed(policy: ManagedPolicy, target: InetAddress) -> bool:
    """``checkIfManagedIsAllowed(network, target)`` (``target.port`` = prefix length)."""
    if not policy.allow_managed:
        return False
    whitelist = policy.managed_whitelist
    if whitelist and not _whitelisted(whitelist, target):
        return False
    if is_default_target(target):
        return policy.allow_default
    scope = target.scope()
    if scope in (IpScope.NONE, IpScope.MULTICAST, IpScope.LOOPBACK, IpScope.LINK_LOCAL):
        return False
    if scope == IpScope.GLOBAL:
        return policy.allow_global
    return True


def upstream_sort_key(address: InetAddress) -> tuple[int, int, bytes]:
    """``InetAddress::operator<`` as compiled on little-endian hosts (x86-64, arm64).

    Family first (IPv4 before IPv6), then the port field as stored (network byte
    order read as a host integer), then for IPv4 the address read as a host
    integer (so the last octet weighs most), for IPv6 the address bytes. The order
    decides which address zerotier-one adds first, i.e. which becomes primary.
    """
    port = address.port
    swapped_port = ((port & 0xFF) << 8) | (port >> 8)
    packed = address.ip.packed
    if address.ip.version == 4:
        return (4, swapped_port, packed[::-1])
    return (6, swapped_port, packed)


def is_default_route(route: Route) -> bool:
    """A route to ``0.0.0.0/0`` or ``::/0`` (gateway ones are only synced while online)."""
    return route.target.port == 0


def fork_default_route(target: IPNetwork) -> list[IPNetwork]:
    """``ManagedRoute``'s split of a default target into two halves, else ``[target]``.

    ``0.0.0.0/0`` -> ``0.0.0.0/1``, ``128.0.0.0/1``; ``::/0`` -> ``::/1``, ``8000::/1``:
    more specific than the system's default route, which therefore stays in place.
    """
    if target.prefixlen != 0:
        return [target]
    return list(target.subnets(prefixlen_diff=1))


def plan_managed(
    config_ips: Iterable[InetAddress],
    config_routes: Iterable[Route],
    policy: ManagedPolicy,
    tap_ips: Iterable[InetAddress] = (),
) -> tuple[list[InetAddress], list[Route]]:
    """The managed IPs and routes ``syncManagedStuff`` would keep on the port.

    ``config_ips`` are the config's static IPs (``ip/bits``); ``tap_ips`` what the
    port holds now (they count, with every config IP, as "my IPs" for the route
    checks). Returns the allowed IPs sorted as zerotier-one sorts them, without
    duplicates, and the routes to keep: on-link routes first, then gateway routes,
    each in target order; for one target only the first config route counts.

    A route is left out if its target is not allowed, if its gateway is one of my
    IPs (no route via myself), if no IP of the target's family is mine (no source
    address), or if a planned IP already implies it (same prefix length, inside the
    target: the kernel adds that route with the address).
    """
    config_ips = list(config_ips)
    ips = sorted(
        {a for a in config_ips if is_managed_allowed(policy, a)},
        key=upstream_sort_key,
    )
    my_ips = [*tap_ips, *config_ips]
    my_ip_values = {a.ip for a in my_ips}
    my_families = {a.ip.version for a in my_ips}

    chosen: dict[InetAddress, Route] = {}
    for route in config_routes:
        network = route_network(route)
        via = route_gateway(route)
        target = network_target(network)
        if target in chosen or not is_managed_allowed(policy, target):
            continue
        if via is not None and via.version == network.version and via in my_ip_values:
            continue
        if network.version not in my_families:
            continue
        if any(
            a.port == network.prefixlen and a.ip.version == network.version and a.ip in network
            for a in ips
        ):
            continue
        chosen[target] = route

    ordered = sorted(chosen.items(), key=lambda item: upstream_sort_key(item[0]))
    on_link = [route for _, route in ordered if route.via is None]
    gateway = [route for _, route in ordered if route.via is not None]
    return ips, on_link + gateway


__all__ = [
    "ManagedPolicy",
    "fork_default_route",
    "is_default_route",
    "is_default_target",
    "is_managed_allowed",
    "managed_route",
    "network_target",
    "plan_managed",
    "route_gateway",
    "route_network",
    "upstream_sort_key",
]
