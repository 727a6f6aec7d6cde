"""The illumos port's link configuration: ifconfig, route and dladm (ILLUMOS.md §2).

The visible VNIC is the host's interface. Its MTU is the datalink property of both
VNICs plus the IP MTU (raised link first, lowered IP first); addresses are logical
interfaces (``ifconfig addif``/``removeif``, IPv6 plumbed on first use); routes go
through ``route -n`` (an on-link route names the port's best-matching address as
its gateway with ``-interface``); multicast groups are the address-resolution groups
of the port's addresses plus its IP group memberships (``netstat -g``). All of it is
ifconfig's non-persistent kind: a reboot leaves nothing.
"""

from __future__ import annotations

import logging

from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.network_config import Route
from ztone.node.wire.vl2_verbs import MulticastGroup
from ztone.osdep.base import TapError
from ztone.osdep.illumos.commands import Commands, IPAddress, IPNetwork
from ztone.osdep.illumos.names import LinkNames
from ztone.osdep.managed import route_gateway, route_network

log = logging.getLogger(__name__)

MIN_MTU = 576
MAX_MTU = 9000
"""An etherstub VNIC's MTU range (ILLUMOS.md §2.4)."""

BROADCAST_MAC = 0xFFFFFFFFFFFF


def multicast_mac(group: IPAddress) -> int:
    """The Ethernet address an IP multicast group maps to (RFC 1112, RFC 2464)."""
    if group.version == 4:
        return 0x01005E000000 | (int(group) & 0x7FFFFF)
    return 0x333300000000 | (int(group) & 0xFFFFFFFF)


def address_resolution_group(ip: IPAddress) -> MulticastGroup:
    """ARP: broadcast with the IPv4 address as ADI; NDP: the solicited-node group."""
    if ip.version == 4:
        return MulticastGroup(BROADCAST_MAC, int(ip))
    return MulticastGroup(0x3333FF000000 | (int(ip) & 0xFFFFFF), 0)


def _common_prefix(a: IPAddress, b: IPAddress) -> int:
    bits = a.max_prefixlen
    diff = int(a) ^ int(b)
    return bits - diff.bit_length()


class IllumosLink:
    """The :class:`~ztone.osdep.base.LinkConfig` of one port's visible VNIC."""

    def __init__(self, commands: Commands, names: LinkNames, mac: int, mtu: int) -> None:
        self._cmd = commands
        self.names = names
        self._mac = mac
        self._mtu = mtu
        self._v6_plumbed = False
        self._routes: dict[Route, tuple[IPAddress, bool]] = {}
        self.closed = False

    @property
    def device_name(self) -> str:
        return self.names.visible

    @property
    def mac(self) -> int:
        return self._mac

    @property
    def mtu(self) -> int:
        return self._mtu

    def set_mtu(self, mtu: int) -> None:
        if self.closed or mtu == self._mtu:
            return
        if not MIN_MTU <= mtu <= MAX_MTU:
            log.warning(
                "%s: MTU %d outside the etherstub range %d..%d; keeping %d",
                self.device_name,
                mtu,
                MIN_MTU,
                MAX_MTU,
                self._mtu,
            )
            return
        try:
            if mtu > self._mtu:
                self._set_link_mtu(mtu)
                self._set_ip_mtu(mtu)
            else:
                self._set_ip_mtu(mtu)
                self._set_link_mtu(mtu)
        except TapError as e:
            log.warning("%s: could not change the MTU to %d: %s", self.device_name, mtu, e)
            return
        self._mtu = mtu

    def _set_link_mtu(self, mtu: int) -> None:
        for link in (self.names.visible, self.names.backend):
            self._cmd.dladm.set_linkprop(link, "mtu", str(mtu))

    def _set_ip_mtu(self, mtu: int) -> None:
        self._cmd.ifconfig.set_mtu(self.device_name, 4, mtu)
        if self._v6_plumbed:
            self._cmd.ifconfig.set_mtu(self.device_name, 6, mtu)

    # --- addresses ------------------------------------------------------------------

    def _port_addresses(self) -> list[tuple[IPAddress, int]]:
        out: list[tuple[IPAddress, int]] = []
        for a in self._cmd.ifconfig.addresses():
            if a.interface == self.device_name and not a.ip.is_unspecified:
                out.append((a.ip, a.prefixlen))
        return out

    def ips(self) -> list[InetAddress]:
        if self.closed:
            return []
        try:
            found = self._port_addresses()
        except TapError as e:
            log.warning("%s: cannot list addresses: %s", self.device_name, e)
            return []
        return sorted({InetAddress(ip, bits) for ip, bits in found}, key=_inet_key)

    def _ensure_family(self, family: int) -> None:
        if family == 6 and not self._v6_plumbed:
            self._cmd.ifconfig.plumb(self.device_name, 6, self._mtu)
            self._v6_plumbed = True

    def add_ip(self, address: InetAddress) -> bool:
        if self.closed:
            return False
        ip, bits = address.ip, address.port
        if not 0 < bits <= ip.max_prefixlen:
            log.warning("%s: refusing %s: bad prefix length", self.device_name, address)
            return False
        try:
            current = self._port_addresses()
            if (ip, bits) in current:
                return True
            for other_ip, other_bits in current:
                if other_ip == ip:  # same address, other prefix: replace it
                    log.info("%s: replacing %s/%d", self.device_name, other_ip, other_bits)
                    self._cmd.ifconfig.removeif(self.device_name, other_ip)
            self._ensure_family(ip.version)
            self._cmd.ifconfig.addif(self.device_name, ip, bits)
        except TapError as e:
            log.warning("%s: could not add %s: %s", self.device_name, address, e)
            return False
        return True

    def remove_ip(self, address: InetAddress) -> bool:
        if self.closed:
            return False
        try:
            if all(ip != address.ip for ip, _ in self._port_addresses()):
                return True
            self._cmd.ifconfig.removeif(self.device_name, address.ip)
        except TapError as e:
            log.warning("%s: could not remove %s: %s", self.device_name, address, e)
            return False
        return True

    # --- routes ---------------------------------------------------------------------

    def _source_for(self, target: IPNetwork) -> IPAddress | None:
        best: IPAddress | None = None
        best_len = -1
        for ip, _ in self._port_addresses():
            if ip.version != target.version or ip.is_link_local:
                continue
            common = _common_prefix(ip, target.network_address)
            if common > best_len:
                best, best_len = ip, common
        return best

    def _route_args(self, route: Route) -> tuple[IPAddress, bool] | None:
        via = route_gateway(route)
        if via is not None:
            if via.version != route.target.ip.version:
                return None
            return via, False
        source = self._source_for(route_network(route))
        return None if source is None else (source, True)

    def add_route(self, route: Route) -> bool:
        if self.closed:
            return False
        try:
            args = self._route_args(route)
            if args is None:
                log.warning("%s: no address to route %s from", self.device_name, route.target)
                return False
            gateway, on_link = args
            self._cmd.route.add(route_network(route), gateway, self.device_name, on_link)
        except TapError as e:
            log.warning("%s: could not add route %s: %s", self.device_name, route, e)
            return False
        self._routes[route] = args
        return True

    def remove_route(self, route: Route) -> bool:
        if self.closed:
            return False
        args = self._routes.pop(route, None)
        try:
            if args is None:
                args = self._route_args(route)
            if args is None:
                return False
            self._cmd.route.delete(route_network(route), args[0], self.device_name, args[1])
        except TapError as e:
            log.warning("%s: could not remove route %s: %s", self.device_name, route, e)
            return False
        return True

    # --- multicast ------------------------------------------------------------------

    def multicast_groups(self) -> list[MulticastGroup]:
        """Address-resolution groups of the port's IPs plus its IP group memberships."""
        if self.closed:
            return []
        groups: set[MulticastGroup] = set()
        try:
            for ip, _ in self._port_addresses():
                groups.add(address_resolution_group(ip))
            memberships = self._cmd.netstat.group_memberships()
        except TapError as e:
            log.debug("%s: multicast scan incomplete: %s", self.device_name, e)
            memberships = {}
        for group in memberships.get(self.device_name, set()):
            groups.add(MulticastGroup(multicast_mac(group), 0))
        return sorted(groups, key=lambda g: (g.mac, g.adi))

    def release(self) -> None:
        """Remove the routes ztone added; no change is made afterwards."""
        if self.closed:
            return
        self.closed = True
        for route, (gateway, on_link) in list(self._routes.items()):
            try:
                self._cmd.route.delete(route_network(route), gateway, self.device_name, on_link)
            except TapError as e:
                log.warning("%s: could not remove route %s: %s", self.device_name, route, e)
        self._routes.clear()


def _inet_key(a: InetAddress) -> tuple[int, int, int]:
    return (a.ip.version, int(a.ip), a.port)


__all__ = [
    "MAX_MTU",
    "MIN_MTU",
    "IllumosLink",
    "address_resolution_group",
    "multicast_mac",
]
