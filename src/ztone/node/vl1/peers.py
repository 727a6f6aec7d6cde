"""The peer table: who we have a key with, made from HELLOs, WHOIS answers, the
roots of our worlds and the host's peer cache (``Topology``'s peer half, §8.1).

Bounded by ``MAX_PEERS`` (``MAX_ROOT_PEERS`` on a root): when full, the least recently
heard 1/16 goes (never an upstream). New identities from HELLOs are rate-limited per source bucket
(``IDENTITY_GATE_BUCKETS``, one validation per 2 s, §6.2.2).
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Callable

from ztone.crypto.armor import PeerKey
from ztone.crypto.c25519 import KeyAgreementError
from ztone.errors import MalformedPacket
from ztone.node import bounds as B
from ztone.node import constants as C
from ztone.node.actions import ANY_LOCAL_SOCKET, PutState, StateKind
from ztone.node.port import NodePort
from ztone.node.vl1.peer import Peer, parse_peer_cache
from ztone.node.vl1.switch import Switch
from ztone.node.wire.identity import Identity
from ztone.node.wire.inetaddress import InetAddress

HashFunction = Callable[[bytes], bytes]


class PeerTable:
    """Adds, finds, evicts and expires the node's peers (``port.peers`` is the table)."""

    def __init__(
        self, port: NodePort, switch: Switch, hash_function: HashFunction | None = None
    ) -> None:
        self.port = port
        self.switch = switch
        self.hash_function = hash_function
        self.identity_gate: dict[int, int] = {}
        """Source bucket -> time of the last new-identity validation (§6.2.2)."""

    def add(self, identity: Identity, key: PeerKey | None = None) -> Peer | None:
        """Make (and store) a peer for ``identity``; None if no key can be agreed."""
        port = self.port
        if key is None:
            try:
                key = PeerKey(port.identity.agree(identity), port.crypto)
            except KeyAgreementError:
                port.counters["peer_bad_key"] += 1
                return None
        peer = Peer(identity, key)
        self._make_room()
        port.peers[int(identity.address)] = peer
        return peer

    def _make_room(self) -> None:
        """At the bound: forget the least recently heard 1/16 (never a root).

        A batch, so the scan is paid once per 1/16 of the table and not per HELLO.
        """
        peers = self.port.peers
        topology = self.port.topology
        bound = B.max_peers(topology.am_upstream)
        if len(peers) < bound:
            return
        candidates = [p for a, p in peers.items() if not topology.is_upstream(a)]
        for peer in heapq.nsmallest(max(1, bound // 16), candidates, key=lambda p: p.last_receive):
            del peers[int(peer.address)]
            self.port.root_memberships.forget_peer(int(peer.address))
        self.port.counters["peers_evicted"] += 1

    def get(self, now: int, address: int) -> Peer | None:
        """The peer, from memory or the host's peer cache (then greeted); None if unknown."""
        port = self.port
        peer = port.peers.get(address)
        if peer is not None or address == port.address:
            return peer
        data = port.load_state(StateKind.PEER, address)
        if data is None:
            return None
        try:
            cached = parse_peer_cache(data)
        except MalformedPacket:
            port.counters["state_bad_peer"] += 1
            return None
        if cached.identity.address != address:
            return None
        peer = self.add(cached.identity)
        if peer is None:
            return None
        peer.set_version(cached.v_proto, *cached.version)
        for addr in cached.addresses:
            self.switch.send_hello(now, peer, ANY_LOCAL_SOCKET, addr)
        return peer

    def learned(self, now: int, peer: Peer) -> None:
        """A new identity is known: retry everything that waited for it."""
        self.switch.peer_learned(now, int(peer.address))

    def learn_identity(self, now: int, identity: Identity) -> None:
        """OK(WHOIS) from an upstream: trusted without the proof-of-work check (§6.4)."""
        address = int(identity.address)
        if address == self.port.address or address in self.port.peers:
            return
        peer = self.add(identity)
        if peer is not None:
            self.port.counters["whois_learned"] += 1
            self.learned(now, peer)

    def identity_validation_allowed(self, now: int, remote: InetAddress) -> bool:
        """One new-identity validation per source bucket per 2 s (§6.2.2)."""
        packed = remote.ip.packed
        prefix = packed[:3] if remote.ip.version == 4 else packed[:6]
        digest = hashlib.sha256(prefix).digest()
        bucket = int.from_bytes(digest[:2], "big") % B.IDENTITY_GATE_BUCKETS
        last = self.identity_gate.get(bucket)
        if last is not None and now - last < C.IDENTITY_VALIDATION_SOURCE_RATE_LIMIT:
            return False
        self.identity_gate[bucket] = now
        return True

    def validate_identity(self, identity: Identity) -> bool:
        return identity.locally_validate(self.hash_function)

    def clean(self, now: int) -> None:
        """Housekeeping: dead peers go to the host's cache (upstreams stay); the
        per-peer gates drop what can no longer matter (every entry older than its
        interval is ignored anyway), so an idle peer holds two empty tables."""
        port = self.port
        # One pass over every peer every 30 s: kept to attribute reads (a root has tens
        # of thousands; bench/root_core.py times this pass).
        alive_after = now - C.PEER_ACTIVITY_TIMEOUT  # alive(now) == last_receive > this
        dead: list[int] = []
        for address, peer in port.peers.items():
            if peer.last_tried_paths and all(
                now - t > C.PATH_CONFIRM_INTERVAL for t in peer.last_tried_paths.values()
            ):
                peer.last_tried_paths = {}
            if peer.echo_gate and all(
                now - t >= C.ECHO_RATE_LIMIT for t in peer.echo_gate.values()
            ):
                peer.echo_gate = {}
            if peer.last_receive <= alive_after:
                dead.append(address)
        for address in dead:
            if port.topology.is_upstream(address):
                continue
            peer = port.peers.pop(address)
            port.emit(PutState(StateKind.PEER, address, peer.serialize_for_cache()))
        self.identity_gate = {
            k: t
            for k, t in self.identity_gate.items()
            if now - t < C.IDENTITY_VALIDATION_SOURCE_RATE_LIMIT
        }

    def flush(self) -> None:
        """Store every peer in the host's cache (on shutdown)."""
        for peer in self.port.peers.values():
            self.port.emit(PutState(StateKind.PEER, int(peer.address), peer.serialize_for_cache()))
