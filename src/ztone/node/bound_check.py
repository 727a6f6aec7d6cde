"""Check every table of a :class:`~ztone.node.node.Node` against its bound in
:mod:`ztone.node.bounds` (for the flood and fuzz tests and the benchmarks)."""

from __future__ import annotations

from ztone.node import bounds as B
from ztone.node.node import Node


def node_bound_violations(node: Node) -> list[str]:
    """Every table of :class:`~ztone.node.node.Node` above its bound, described.

    For tests and benchmarks; an empty list is good.
    """
    out: list[str] = []

    def check(name: str, size: int, bound: int) -> None:
        if size > bound:
            out.append(f"{name}: {size} > {bound}")

    root = node.topology.am_upstream
    check("peers", len(node.peers), B.max_peers(root) + len(node.topology.upstream_addresses()))
    check("paths", len(node.switch.paths), B.max_paths(root))
    for peer in node.peers.values():
        check(f"paths of {peer.address}", len(peer.slots), B.MAX_PEER_PATHS)
        check(f"tried paths of {peer.address}", len(peer.last_tried_paths), B.MAX_PEER_TRIED_PATHS)
        check(f"echo gate of {peer.address}", len(peer.echo_gate), B.MAX_PEER_ECHO_GATES)
    mc = node.multicaster  # its caps default to the constants here
    most_by_peer, most_in_network = mc.largest_counts()
    check("multicast records of one peer", most_by_peer, mc.max_per_peer)
    check("multicast records of one network", most_in_network, mc.max_per_network)
    check("multicast records", mc.total, mc.max_total)
    check("multicast send state", mc.tx_groups(), B.MULTICAST_MAX_TX_GROUPS)
    check("root membership proofs", len(node.root_memberships), node.root_memberships.max_proofs)
    check("root COM request records", node.root_memberships.asked_peers(), B.max_peers(root))
    check("WHOIS queue", len(node.switch.whois_sent), B.MAX_PENDING_WHOIS)
    check("receive queue", len(node.switch.rx), B.RX_QUEUE_SIZE)
    check("send queue", len(node.switch.tx), B.TX_QUEUE_SIZE)
    check("fragment reassembly", node.switch.reassembler.pending(), B.REASSEMBLY_SLOTS)
    check("reply expectations", max(len(b) for b in node.switch.expecting), 32)
    check("rendezvous times", len(node.switch.last_unite), B.MAX_UNITE_ENTRIES)
    check("self-awareness reports", len(node.selfaware.surface), B.MAX_SURFACE_ENTRIES)
    check("HELLO rate buckets", len(node.peer_table.identity_gate), B.IDENTITY_GATE_BUCKETS)
    if node.fastpath is not None:
        check("fast path templates", node.fastpath.template_count(), B.FAST_PATH_TEMPLATES)
        if node.fastpath.grants is not None:
            check("receive grants", len(node.fastpath.grants.grants), B.FAST_GRANTS)
    for net in node.networks.values():
        check(f"memberships of {net.nwid:016x}", len(net.memberships), B.MAX_MEMBERSHIPS)
        check(f"bridge routes of {net.nwid:016x}", len(net.bridge_routes), B.MAX_BRIDGE_ROUTES)
    return out
