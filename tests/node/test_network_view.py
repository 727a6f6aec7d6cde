"""What the host sees of a network joined but not configured yet (``Network::_externalConfig``
without a config): the network id, the member MAC, status REQUESTING_CONFIGURATION, type
PRIVATE, MTU 2800 (``ZT_DEFAULT_MTU``), no bridging, broadcast off, revision 0, nothing
assigned. The lab's reference member ``a`` shows the same fields once configured
(tests/vectors/lab1_api/a).
"""

from __future__ import annotations

from sim.network import START, MemoryState, vector_identities
from ztone.node.node import Node

IDS = vector_identities()


def test_unconfigured_network_view() -> None:
    """Guards the constants of the unconfigured view (``netconf_revision`` 0 -> 1, MTU,
    type, broadcast, bridge, name)."""
    node = Node(IDS[2], now=START, random_bytes=bytes, state=MemoryState())
    node.join(START, 0x1FAD486CAFE468E2)
    [view] = node.network_views()
    # MAC (A.5.1): first octet (0xe2 & 0xfe) | 0x02 = 0xe2, then the address bytes
    # 1e 26 eb 3b f1 XOR the network id's bytes (nwid >> 8, 16, 24, 32, 40) 68 e4 af 6c 48.
    addr = 0x1E26EB3BF1
    b1 = ((addr >> 32) & 0xFF) ^ 0x68
    b2 = ((addr >> 24) & 0xFF) ^ 0xE4
    b3 = ((addr >> 16) & 0xFF) ^ 0xAF
    b4 = ((addr >> 8) & 0xFF) ^ 0x6C
    b5 = (addr & 0xFF) ^ 0x48
    assert view.mac == int.from_bytes(bytes([0xE2, b1, b2, b3, b4, b5]), "big")
    assert (view.nwid, view.name, view.status, view.type) == (
        0x1FAD486CAFE468E2,
        "",
        "REQUESTING_CONFIGURATION",
        "PRIVATE",
    )
    assert (view.mtu, view.bridge, view.broadcast_enabled, view.netconf_revision) == (
        2800,
        False,
        False,
        0,
    )
    assert (view.assigned_addresses, view.routes, view.dns_domain, view.dns_servers) == (
        (),
        (),
        "",
        (),
    )
