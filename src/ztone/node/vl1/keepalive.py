"""Keeping peers reachable: the ping pass (``_PingPeersThatNeedPing``,
``Peer::doPingAndKeepalive``, PROTOCOL-CORE §8.4) and the online state (§8.5).

Roots, moon seeds and the anchors of our networks are always contacted (by their
stable endpoints if we have no path); other peers only while they are active.
"""

from __future__ import annotations

from collections.abc import Iterable

from ztone.node import constants as C
from ztone.node.actions import ANY_LOCAL_SOCKET
from ztone.node.port import NodePort
from ztone.node.vl1.peer import Peer
from ztone.node.vl1.switch import Switch
from ztone.node.wire.inetaddress import InetAddress

ONLINE_FOREVER = 1 << 62


def ping_pass(port: NodePort, switch: Switch, now: int, also: Iterable[int]) -> None:
    """Contact every peer that needs it; ``also``: addresses our networks always contact."""
    topology = port.topology
    always: dict[int, tuple[InetAddress, ...]] = {
        a: topology.stable_endpoints(a) for a in topology.upstream_addresses()
    }
    for seed in topology.moon_seeds.values():
        always.setdefault(seed, ())
    for address in also:
        always.setdefault(address, ())
    best_root = switch.best_upstream(now)
    for address, endpoints in always.items():
        if address == port.address:
            continue
        peer = port.get_peer(now, address)
        if peer is None:
            switch.request_whois(now, address)
            continue
        if topology.is_upstream(address):
            scale = C.ROOT_PING_MULTIPLIER if peer.slots else 0
        else:
            scale = 2
        if now - peer.last_sent_full_hello <= C.PATH_HEARTBEAT_PERIOD * scale:
            continue
        v4, v6 = ping_peer(switch, now, peer)
        sent = v4 or v6
        for family, done in ((4, v4), (6, v6)):
            if done:
                continue
            candidates = [e for e in endpoints if e.ip.version == family]
            if candidates:
                pick = candidates[port.random(1)[0] % len(candidates)]
                switch.send_hello(now, peer, ANY_LOCAL_SOCKET, pick)
                sent = True
        if not sent and best_root is not None and best_root is not peer:
            root_path = best_root.best_path(now)
            if root_path is not None:
                switch.send_hello(now, peer, root_path.local_socket, root_path.address)
    active_after = now - C.PEER_ACTIVITY_TIMEOUT  # active(now) == this < last nontrivial
    for address, peer in list(port.peers.items()):
        if peer.last_nontrivial_receive > active_after and address not in always:
            ping_peer(switch, now, peer)


def ping_peer(switch: Switch, now: int, peer: Peer) -> tuple[bool, bool]:
    """``Peer::doPingAndKeepalive``: which families (v4, v6) were contacted."""
    full = now - peer.last_sent_full_hello >= C.PEER_PING_PERIOD
    if full:
        peer.last_sent_full_hello = now
    max_priority = max((s.priority for s in peer.slots), default=0)
    keep = []
    v4 = v6 = False
    for slot in peer.slots:
        if slot.expired(now) or slot.priority != max_priority:
            continue
        path = slot.path
        if full or path.needs_heartbeat(now):
            switch.attempt_contact(now, peer, path.local_socket, path.address, full)
            path.last_out = now
            if path.address.ip.version == 4:
                v4 = True
            else:
                v6 = True
        keep.append(slot)
    peer.slots = keep
    peer.metrics.latency.observe(peer.latency(now))
    return v4, v6


class OnlineState:
    """Online while an upstream was heard from within ``PEER_ACTIVITY_TIMEOUT`` (or we
    are an upstream). Memoized until the upstream that makes it so goes quiet."""

    def __init__(self) -> None:
        self.online = False
        self.until = 0
        self.generation = -1

    def check(self, port: NodePort, now: int) -> bool:
        """Recompute; True if the state changed (``self.online`` is the new one)."""
        topology = port.topology
        if now < self.until and self.generation == topology.generation:
            return False  # online, and the upstream that makes it so is alive until then
        until = 0
        if topology.am_upstream:
            online = True
            until = ONLINE_FOREVER
        else:
            for a in topology.upstream_addresses():
                p = port.peers.get(a)
                if p is not None and p.alive(now) and p.last_receive > 0:
                    # last_receive only grows and upstream peers are never dropped
                    until = max(until, p.last_receive + C.PEER_ACTIVITY_TIMEOUT)
            online = until > 0
        self.until = until
        self.generation = topology.generation
        if online == self.online:
            return False
        self.online = online
        return True
