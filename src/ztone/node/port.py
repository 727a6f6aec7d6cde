"""The node's internal port: what its collaborators may use of it (docs/ARCHITECTURE.md).

The switch (:mod:`ztone.node.vl1.switch`), the verb handlers
(:mod:`ztone.node.vl1.incoming`) and the VL2 modules (:mod:`ztone.node.vl2`) act
through a :class:`NodePort`, never through the node's private members. The
:class:`~ztone.node.node.Node` is the one real implementation; unit tests use a
small fake. This module imports only leaf modules of the core, so no collaborator
needs the node itself (no import cycle, not even under ``TYPE_CHECKING``).

Time is not part of the port: every method that needs it takes ``now``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from enum import Enum
from typing import Protocol

from ztone.crypto.armor import PeerKey
from ztone.crypto.backend import Backend
from ztone.node.actions import Action, StateKind
from ztone.node.metrics import NodeMetrics
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


class Outcome(Enum):
    """What a verb handler did with a packet (``IncomingPacket::tryDecode``'s bool)."""

    DONE = "done"
    """Handled (or dropped for good): forget the packet."""
    DEFER = "defer"
    """Waiting for something (an identity, a certificate): retry it for up to 5 s."""


class LocalController(Protocol):
    """The embedded network controller as the node sees it (B.1, B.2).

    Only the in-memory gates: the config request itself leaves the core as a
    :class:`~ztone.node.actions.ConfigRequested` action, and the host answers it
    through :meth:`ztone.node.node.Node.on_config_answer`.
    """

    def rate_gate(self, nwid: int, member: int, now: int) -> bool:
        """True unless the same member asked less than 1 s ago."""

    def recently_authorized(self, nwid: int, member: int, now: int) -> bool: ...

    def note_authorized(self, nwid: int, member: int, now: int) -> None: ...


class NodePort(Protocol):
    """What the node offers its collaborators."""

    identity: Identity
    address: Address
    version: tuple[int, int, int]
    os_arch: str
    crypto: Backend
    """The crypto backend peer keys are made with (ztone.crypto.backend)."""
    networks: dict[int, Network]
    peers: dict[int, Peer]
    topology: Topology
    multicaster: Multicaster
    root_memberships: RootMemberships
    controller: LocalController | None
    counters: Counter[str]
    metrics: NodeMetrics
    emit: Callable[[Action], None]
    """Queue an action for the host (append to the outbox)."""
    random: Callable[[int], bytes]
    """The host's randomness: ``random(n)`` is n fresh bytes."""

    def load_state(self, kind: StateKind, object_id: int) -> bytes | None:
        """A persistent state object the host stored, or None."""

    def send(
        self,
        now: int,
        destination: int,
        verb: int,
        payload: bytes,
        encrypt: bool = True,
        compress: bool = False,
    ) -> None:
        """To a peer by address; queued (and WHOIS asked) while it is unknown (§8.2)."""

    def send_reply(
        self,
        now: int,
        peer: Peer,
        path: Path,
        verb: int,
        payload: bytes,
        compress_payload: bool = False,
    ) -> None:
        """Over the path the request came in on."""

    def get_peer(self, now: int, address: int) -> Peer | None:
        """The peer, from memory or the host's peer cache; None if unknown."""

    def request_whois(self, now: int, address: int) -> None: ...

    def best_upstream(self, now: int) -> Peer | None: ...

    def received(
        self, now: int, path: Path, peer: Peer, hops: int, verb: int, trust: bool = False
    ) -> None:
        """``Peer::received``: receive bookkeeping and path learning (§8.2)."""

    def should_use_path(self, address: int, local_socket: int, remote: InetAddress) -> bool: ...

    def attempt_contact(
        self, now: int, peer: Peer, local_socket: int, remote: InetAddress, full_hello: bool
    ) -> None: ...

    def send_junk(self, now: int, local_socket: int, remote: InetAddress) -> None: ...

    def expecting_reply(self, packet_id: int) -> bool: ...

    def identity_validation_allowed(self, now: int, remote: InetAddress) -> bool: ...

    def validate_identity(self, identity: Identity) -> bool: ...

    def add_peer(self, identity: Identity, key: PeerKey | None = None) -> Peer | None:
        """Make (and store) a peer for ``identity``; None if no key can be agreed."""

    def peer_learned(self, now: int, peer: Peer) -> None:
        """A new identity is known: retry what waited for it."""

    def learn_identity(self, now: int, identity: Identity) -> None: ...

    def accept_worlds(self, worlds: list[World]) -> None: ...

    def iam(self, now: int, reporter: Peer, path: Path, reported: InetAddress) -> None: ...

    def ping_soon(self) -> None:
        """Run the ping pass (config requests, contacts) at the next timer."""
