"""Which multicast groups a port reports to the core (PROTOCOL-NETWORK-SERVICE C.5.4, A.5.1).

zerotier-one's taps report every Ethernet group the host joined on the device
(ADI 0) plus the address-resolution group of every IP on the device:

* IPv4 ``a.b.c.d`` -> ``(ff:ff:ff:ff:ff:ff, ADI = a.b.c.d as a 32-bit integer)`` (ARP);
* IPv6 -> ``(33:33:ff:XX:YY:ZZ, 0)``, the solicited-node MAC of its last three bytes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.vl2_verbs import MulticastGroup

BROADCAST_MAC = 0xFFFFFFFFFFFF
SOLICITED_NODE_MAC_PREFIX = 0x3333FF000000


def address_resolution_group(address: InetAddress) -> MulticastGroup:
    """``MulticastGroup::deriveMulticastGroupForAddressResolution``."""
    ip = address.ip
    if isinstance(ip, ipaddress.IPv4Address):
        return MulticastGroup(BROADCAST_MAC, int(ip))
    return MulticastGroup(SOLICITED_NODE_MAC_PREFIX | int.from_bytes(ip.packed[13:], "big"), 0)


def port_groups(joined_macs: Iterable[int], ips: Iterable[InetAddress]) -> list[MulticastGroup]:
    """Joined MACs (ADI 0) plus address-resolution groups, sorted (MAC, ADI) and unique."""
    groups = {MulticastGroup(mac, 0) for mac in joined_macs}
    groups.update(address_resolution_group(ip) for ip in ips)
    return sorted(groups, key=lambda g: (g.mac, g.adi))
