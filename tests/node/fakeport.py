"""A tiny :class:`~ztone.node.port.NodePort` for unit tests of the node's collaborators.

It records what the collaborator asked for (sends, replies, actions, WHOIS, receive
bookkeeping, contacts) instead of doing it, so one module is tested without the
node, the switch or the simulator. Peers are real (vector identities, agreed keys).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from sim.network import START, make_planet, vector_identities
from ztone.crypto import c25519
from ztone.crypto.armor import PeerKey
from ztone.crypto.backend import DEFAULT
from ztone.node.actions import Action, StateKind
from ztone.node.metrics import NodeMetrics
from ztone.node.port import LocalController
from ztone.node.vl1.path import Path
from ztone.node.vl1.peer import Peer
from ztone.node.vl1.root_members import RootMemberships
from ztone.node.vl1.topology import Topology
from ztone.node.vl2.multicaster import Multicaster
from ztone.node.vl2.network import Network
from ztone.node.wire.address import Address
from ztone.node.wire.identity import Identity
from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.world import World

IDS = vector_identities()
ROOT_IP = "198.18.0.10"


@dataclass(frozen=True)
class Sent:
    destination: int
    verb: int
    payload: bytes
    compress: bool


@dataclass(frozen=True)
class Reply:
    destination: int
    path: Path
    verb: int
    payload: bytes


@dataclass(frozen=True)
class Received:
    source: int
    verb: int
    trust: bool


def private_planet(roots: list[Identity] | None = None) -> World:
    signing = c25519.generate(lambda n: bytes([9]) * n)
    return make_planet([(r, ROOT_IP) for r in (roots or [IDS[0]])], signing)


def make_peer(me: Identity, other: Identity) -> Peer:
    return Peer(other.public_only(), PeerKey(me.agree(other.public_only())))


class FakePort:
    """Records everything; knows the peers in ``peers`` and the state in ``state``."""

    def __init__(self, identity: Identity = IDS[2], planet: World | None = None,
                 seed: int = 1) -> None:  # fmt: skip
        self.identity = identity
        self.address: Address = identity.address
        self.version = (1, 14, 1)
        self.os_arch = "linux/x86_64"
        self.crypto = DEFAULT
        self.networks: dict[int, Network] = {}
        self.peers: dict[int, Peer] = {}
        self.topology = Topology(int(identity.address), planet or private_planet())
        self.multicaster = Multicaster(int(identity.address))
        self.root_memberships = RootMemberships()
        self.controller: LocalController | None = None
        self.counters: Counter[str] = Counter()
        self.metrics = NodeMetrics()
        self.actions: list[Action] = []
        self.emit: Callable[[Action], None] = self.actions.append
        rng = random.Random(seed)
        self.random: Callable[[int], bytes] = rng.randbytes
        self.state: dict[tuple[StateKind, int], bytes] = {}
        self.sent: list[Sent] = []
        self.replies: list[Reply] = []
        self.whois: list[int] = []
        self.received_log: list[Received] = []
        self.contacts: list[tuple[int, InetAddress, bool]] = []
        self.learned: list[int] = []
        self.surface: list[tuple[int, InetAddress]] = []
        self.expected: set[int] = set()
        self.pinged = False

    def add_known_peer(self, other: Identity) -> Peer:
        peer = make_peer(self.identity, other)
        self.peers[int(other.address)] = peer
        return peer

    # --- NodePort -----------------------------------------------------------------

    def load_state(self, kind: StateKind, object_id: int) -> bytes | None:
        return self.state.get((kind, object_id))

    def send(self, now: int, destination: int, verb: int, payload: bytes,
             encrypt: bool = True, compress: bool = False) -> None:  # fmt: skip
        self.sent.append(Sent(destination, verb, payload, compress))

    def send_reply(self, now: int, peer: Peer, path: Path, verb: int, payload: bytes,
                   compress_payload: bool = False) -> None:  # fmt: skip
        self.replies.append(Reply(int(peer.address), path, verb, payload))

    def get_peer(self, now: int, address: int) -> Peer | None:
        return self.peers.get(address)

    def request_whois(self, now: int, address: int) -> None:
        self.whois.append(address)

    def best_upstream(self, now: int) -> Peer | None:
        for address in self.topology.upstream_addresses():
            if address in self.peers:
                return self.peers[address]
        return None

    def received(self, now: int, path: Path, peer: Peer, hops: int, verb: int,
                 trust: bool = False) -> None:  # fmt: skip
        self.received_log.append(Received(int(peer.address), verb, trust))

    def should_use_path(self, address: int, local_socket: int, remote: InetAddress) -> bool:
        return True

    def attempt_contact(self, now: int, peer: Peer, local_socket: int, remote: InetAddress,
                        full_hello: bool) -> None:  # fmt: skip
        self.contacts.append((int(peer.address), remote, full_hello))

    def send_junk(self, now: int, local_socket: int, remote: InetAddress) -> None:
        self.contacts.append((0, remote, False))

    def expecting_reply(self, packet_id: int) -> bool:
        return packet_id in self.expected

    def identity_validation_allowed(self, now: int, remote: InetAddress) -> bool:
        return True

    def validate_identity(self, identity: Identity) -> bool:
        return True

    def add_peer(self, identity: Identity, key: PeerKey | None = None) -> Peer | None:
        peer = Peer(identity, key or PeerKey(self.identity.agree(identity)))
        self.peers[int(identity.address)] = peer
        return peer

    def peer_learned(self, now: int, peer: Peer) -> None:
        self.learned.append(int(peer.address))

    def learn_identity(self, now: int, identity: Identity) -> None:
        self.add_peer(identity)
        self.learned.append(int(identity.address))

    def accept_worlds(self, worlds: list[World]) -> None:
        for world in worlds:
            self.topology.add_world(world, always_accept_new=False)

    def iam(self, now: int, reporter: Peer, path: Path, reported: InetAddress) -> None:
        self.surface.append((int(reporter.address), reported))

    def ping_soon(self) -> None:
        self.pinged = True


NOW = START
