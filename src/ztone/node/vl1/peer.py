"""A remote node we have a key with: identity, versions, path slots, timers (§8.1).

Peer cache object (``peers.d/<address>.peer``, ``Peer::serializeForCache``)::

    <[1] format = 2> <identity, binary public form>
    <[2] protocol version> <[2] major> <[2] minor> <[2] revision>
    <[2] path count N> N x <InetAddress>

Cached paths are not restored as paths: on reload each is tried with a HELLO.
"""

from __future__ import annotations

from dataclasses import dataclass

from ztone.crypto.armor import PeerKey
from ztone.errors import MalformedPacket
from ztone.node.bounds import MAX_PEER_PATHS
from ztone.node.constants import (
    LATENCY_UNKNOWN,
    PEER_ACTIVITY_TIMEOUT,
    PEER_PATH_EXPIRATION,
    TRUST_EXPIRATION,
)
from ztone.node.metrics import PeerMetrics
from ztone.node.vl1.path import Path
from ztone.node.wire.identity import Identity
from ztone.node.wire.inetaddress import InetAddress, parse_inet, serialize_inet

CACHE_FORMAT = 2


@dataclass(slots=True)
class PathSlot:
    path: Path
    lr: int  # last authenticated receive from this peer over this path
    priority: int = 1

    def expired(self, now: int) -> bool:
        return now - self.lr >= PEER_PATH_EXPIRATION


class Peer:
    """Everything the core knows about one other node.

    Slotted: a root holds tens of thousands of these (bench/root_core.py measures the
    bytes per peer), and a per-instance ``__dict__`` was a fifth of each.
    """

    __slots__ = (
        "address",
        "direct_path_push_cutoff_count",
        "echo_gate",
        "identity",
        "key",
        "last_credentials_received",
        "last_direct_path_push_receive",
        "last_direct_path_push_sent",
        "last_nontrivial_receive",
        "last_receive",
        "last_sent_full_hello",
        "last_tried_memorized_path",
        "last_tried_paths",
        "last_trust_established",
        "last_whois_request_received",
        "metrics",
        "slots",
        "v_proto",
        "version",
    )

    def __init__(self, identity: Identity, key: PeerKey) -> None:
        self.identity = identity
        self.address = identity.address
        self.key = key
        self.v_proto = 0
        self.version: tuple[int, int, int] | None = None
        self.slots: list[PathSlot] = []
        self.last_receive = 0
        self.last_nontrivial_receive = 0
        self.last_sent_full_hello = 0
        self.last_direct_path_push_sent = 0
        self.last_direct_path_push_receive = 0
        self.direct_path_push_cutoff_count = 0
        self.last_whois_request_received = 0
        self.last_credentials_received = 0
        self.last_trust_established = 0
        self.last_tried_memorized_path = 0
        self.last_tried_paths: dict[tuple[int, InetAddress], int] = {}
        self.echo_gate: dict[tuple[int, InetAddress], int] = {}
        self.metrics = PeerMetrics()

    # --- state -----------------------------------------------------------------

    def alive(self, now: int) -> bool:
        return now - self.last_receive < PEER_ACTIVITY_TIMEOUT

    def active(self, now: int) -> bool:
        return now - self.last_nontrivial_receive < PEER_ACTIVITY_TIMEOUT

    def trust_established(self, now: int) -> bool:
        return self.last_trust_established > 0 and (
            now - self.last_trust_established < TRUST_EXPIRATION
        )

    def set_version(self, proto: int, major: int, minor: int, revision: int) -> None:
        self.v_proto = proto
        self.version = (major, minor, revision)

    @property
    def supports_aes(self) -> bool:
        return self.v_proto >= 12

    @property
    def prefers_echo(self) -> bool:
        """ECHO keepalives instead of HELLO (§8.3): protocol >= 5 and not 1.1.0."""
        return self.v_proto >= 5 and self.version != (1, 1, 0)

    # --- paths -----------------------------------------------------------------

    def best_slot(self, now: int) -> PathSlot | None:
        """``getAppropriatePath``: non-expired slot minimizing quality / priority."""
        slots = self.slots
        if len(slots) == 1:  # the usual case: no quality to compare
            slot = slots[0]
            return None if now - slot.lr >= PEER_PATH_EXPIRATION else slot
        best: PathSlot | None = None
        best_q = 0.0
        for slot in self.slots:
            if slot.expired(now):
                continue
            q = slot.path.quality(now) / slot.priority
            if best is None or q <= best_q:  # ties: the later slot wins
                best, best_q = slot, q
        return best

    def best_path(self, now: int) -> Path | None:
        slot = self.best_slot(now)
        return slot.path if slot is not None else None

    def latency(self, now: int) -> int:
        path = self.best_path(now)
        if path is None or path.latency == LATENCY_UNKNOWN:
            return LATENCY_UNKNOWN
        return path.latency

    def has_path(self, path: Path) -> bool:
        return any(s.path is path for s in self.slots)

    def learn_path(self, path: Path, now: int) -> None:
        """Install a path confirmed by an authenticated OK (the slot rule of §8.2)."""
        for slot in self.slots:
            if slot.path is path:
                slot.lr = now
                return
        replace: int | None = None
        for i, slot in enumerate(self.slots):
            p = slot.path
            if (
                p.address.ip == path.address.ip
                and p.local_socket == path.local_socket
                and not p.alive(now)
            ):
                replace = i
                break
        new = PathSlot(path, now, 1)
        if replace is not None:
            self.slots[replace] = new
        elif len(self.slots) < MAX_PEER_PATHS:
            self.slots.append(new)
        else:
            oldest = max(range(len(self.slots)), key=lambda i: self.slots[i].path.age(now))
            self.slots[oldest] = new

    def relay_quality(self, now: int) -> int:
        """``Peer::relayQuality`` for upstream choice: lower is better."""
        if now - self.last_receive >= PEER_ACTIVITY_TIMEOUT:
            return 0xFFFFFFFF
        lat = self.latency(now)
        if lat == 0:
            lat = LATENCY_UNKNOWN
        return lat * ((now - self.last_receive) // 61_000 + 1)

    # --- cache -----------------------------------------------------------------

    def serialize_for_cache(self) -> bytes:
        out = bytearray((CACHE_FORMAT,))
        out += self.identity.serialize(False)
        major, minor, revision = self.version or (0, 0, 0)
        for v in (self.v_proto, major, minor, revision):
            out += (v & 0xFFFF).to_bytes(2, "big")
        out += len(self.slots).to_bytes(2, "big")
        for slot in self.slots:
            out += serialize_inet(slot.path.address)
        return bytes(out)


@dataclass(frozen=True, slots=True)
class CachedPeer:
    identity: Identity
    v_proto: int
    version: tuple[int, int, int]
    addresses: tuple[InetAddress, ...]


def parse_peer_cache(data: bytes | bytearray | memoryview) -> CachedPeer:
    """Decode a ``peers.d`` object; MalformedPacket if it is not one."""
    if len(data) < 1 or data[0] != CACHE_FORMAT:
        raise MalformedPacket("unknown peer cache format")
    identity, pos = Identity.parse(data, 1)
    if len(data) < pos + 10:
        raise MalformedPacket("truncated peer cache")
    vals = [int.from_bytes(data[pos + 2 * i : pos + 2 * i + 2], "big") for i in range(5)]
    pos += 10
    addresses: list[InetAddress] = []
    for _ in range(vals[4]):
        addr, pos = parse_inet(data, pos)
        if addr is not None:
            addresses.append(addr)
    return CachedPeer(identity, vals[0], (vals[1], vals[2], vals[3]), tuple(addresses))
