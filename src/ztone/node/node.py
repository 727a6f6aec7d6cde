"""The VL1 node: the I/O-free core a host drives (DESIGN.md, the core contract).

Inputs, each taking ``now`` (the host's clock, milliseconds):

* :meth:`Node.on_wire_packet` a UDP datagram (local socket id, remote address, bytes)
* :meth:`Node.on_timer` the timer the host arms at :meth:`Node.next_deadline`
* commands: :meth:`Node.orbit`, :meth:`Node.deorbit`, :meth:`Node.send_user_message`,
  :meth:`Node.set_local_addresses`, :meth:`Node.flush_state`

After each input the host drains :meth:`Node.drain_actions` (datagrams to send,
state objects to store, events) and re-arms its timer. Randomness and persistent
state come in through the constructor. Hostile datagrams raise
:class:`~ztone.errors.MalformedPacket` internally; it is caught at the packet
boundary, counted and the datagram dropped. Any other exception escaping
``on_wire_packet`` is a bug (the fuzz tests check this).
"""

from __future__ import annotations

import hashlib
import heapq
import ipaddress
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ztone.crypto.armor import (
    SUITE_AES_GMAC_SIV,
    SUITE_NONE_TRUSTED,
    SUITE_POLY1305_NONE,
    SUITE_POLY1305_SALSA2012,
    PeerKey,
    armor,
    dearmor,
)
from ztone.crypto.backend import DEFAULT, Backend
from ztone.crypto.c25519 import KeyAgreementError
from ztone.errors import MalformedPacket
from ztone.node import bounds as B
from ztone.node import constants as C
from ztone.node.actions import (
    ANY_LOCAL_SOCKET,
    Action,
    EventKind,
    NodeEvent,
    PutState,
    SendPacket,
    StateKind,
)
from ztone.node.metrics import TX, NodeMetrics
from ztone.node.status import MoonStatus, NodeStatus, PathStatus, PeerStatus
from ztone.node.vl1.incoming import dispatch, handle_hello
from ztone.node.vl1.path import Path
from ztone.node.vl1.peer import Peer, parse_peer_cache
from ztone.node.vl1.root_members import RootMemberships
from ztone.node.vl1.topology import Topology
from ztone.node.vl2 import conduct as vl2
from ztone.node.vl2.multicaster import Multicaster
from ztone.node.vl2.network import Network, NetworkView
from ztone.node.wire.default_planet import default_planet
from ztone.node.wire.dictionary import Dictionary
from ztone.node.wire.fragment import (
    DEFAULT_PHYSMTU,
    MAX_PHYSMTU,
    MIN_PHYSMTU,
    Reassembler,
    mark_fragmented,
    split,
)
from ztone.node.wire.hello import Hello, MoonRecord, make_hello_packet
from ztone.node.wire.identity import Identity
from ztone.node.wire.inetaddress import InetAddress, IpScope
from ztone.node.wire.packet import (
    IDX_FLAGS,
    IDX_PAYLOAD,
    IDX_VERB,
    MAX_PACKET_LENGTH,
    MIN_PACKET_LENGTH,
    PROTO_VERSION,
    Verb,
    build_packet,
    compress,
    uncompress,
)
from ztone.node.wire.verbs import Rendezvous, in_re_payload, serialize_push_direct_paths
from ztone.node.wire.vl2_verbs import MulticastGroup
from ztone.node.wire.world import World, WorldType

RandomBytes = Callable[[int], bytes]
HashFunction = Callable[[bytes], bytes]
PathCheck = Callable[[int, int, InetAddress], bool]
"""Host policy: may (peer address, local socket, remote) carry ZeroTier traffic?"""
PathLookup = Callable[[int, int], InetAddress | None]
"""Host hint: an address to try for (peer address, IP version 4/6 or 0 for any)."""

VERSION = (1, 14, 1)

_NONTRIVIAL_VERBS = frozenset(
    int(v)
    for v in (Verb.FRAME, Verb.EXT_FRAME, Verb.NETWORK_CONFIG_REQUEST, Verb.NETWORK_CONFIG,
              Verb.MULTICAST_FRAME)
)  # fmt: skip
"""Verbs that make a peer "active" (``Peer::received``'s non-trivial receive)."""


class StateReader(Protocol):
    """Read access to the host's persistent state objects."""

    def get(self, kind: StateKind, object_id: int) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class ControllerAnswer:
    """What a local controller says to a config request: a config or an error code."""

    config: Any = None  # NetworkConfig
    error: int | None = None
    error_info: bytes = b""


class LocalController(Protocol):
    """The embedded network controller as the node sees it (B.1, B.2)."""

    def request(self, now: int, nwid: int, identity: Identity,
                metadata: Dictionary) -> ControllerAnswer: ...  # fmt: skip

    def rate_gate(self, nwid: int, member: int, now: int) -> bool:
        """True unless the same member asked less than 1 s ago."""

    def recently_authorized(self, nwid: int, member: int, now: int) -> bool: ...

    def note_authorized(self, nwid: int, member: int, now: int) -> None: ...


@dataclass(frozen=True, slots=True)
class PhysicalPathSetting:
    """A ``local.conf`` ``physical`` entry: trusted path id and/or MTU for a network."""

    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    trusted_path_id: int = 0
    mtu: int = 0


@dataclass(slots=True)
class _TxEntry:
    created: int
    destination: int
    verb: int
    payload: bytes
    encrypt: bool
    compress: bool


@dataclass(slots=True)
class _RxEntry:
    created: int
    path: Path
    packet: bytearray
    authenticated: bool
    source: int


class Node:
    """A ZeroTier VL1 node: peers, paths, roots and moons."""

    def __init__(
        self,
        identity: Identity,
        *,
        now: int,
        random_bytes: RandomBytes,
        state: StateReader,
        hash_function: HashFunction | None = None,
        crypto: Backend = DEFAULT,
        path_check: PathCheck | None = None,
        path_lookup: PathLookup | None = None,
        physical: list[PhysicalPathSetting] | None = None,
        version: tuple[int, int, int] = VERSION,
        allow_loopback_paths: bool = False,
        controller: LocalController | None = None,
        os_arch: str = "linux/x86_64",
    ) -> None:
        if identity.secret is None:
            raise ValueError("the node's identity needs its private key")
        self.identity = identity
        self.address = identity.address
        self.version = version
        self._random = random_bytes
        self._state = state
        self.crypto = crypto  # the peer keys' backend (ztone.crypto.backend)
        self._hash = hash_function or crypto.memory_hard_hash
        self._path_check = path_check
        self._path_lookup = path_lookup
        self._allow_loopback = allow_loopback_paths
        self.controller = controller
        self.os_arch = os_arch
        self.networks: dict[int, Network] = {}
        self.multicaster = Multicaster(int(identity.address))
        self.root_memberships = RootMemberships()
        self._physical = sorted(physical or [], key=lambda s: s.network.prefixlen, reverse=True)
        self._actions: list[Action] = []
        self.counters: Counter[str] = Counter()
        self.metrics = NodeMetrics()
        self.peers: dict[int, Peer] = {}
        self._paths: dict[tuple[int, InetAddress], Path] = {}
        self._reassembler = Reassembler()
        self._tx: list[_TxEntry] = []
        self._rx: list[_RxEntry] = []
        self._whois_sent: dict[int, int] = {}
        self._expecting: list[list[int]] = [[] for _ in range(256)]
        self._last_unite: dict[tuple[int, int], int] = {}
        self._identity_gate: dict[int, int] = {}
        self._surface: dict[tuple[int, int, InetAddress, int], tuple[InetAddress, int]] = {}
        self._local_addresses: list[InetAddress] = []
        self._last_beacon_reply = 0
        self._last_switch = now
        self._last_ping = 0
        self._last_housekeeping = now
        self._online = False
        self._online_until = 0
        self._online_generation = -1
        self.topology = Topology(int(self.address), self._load_planet())
        self._ensure_upstream_peers()
        self._check_online(now)

    # ------------------------------------------------------------------ inputs

    def on_wire_packet(self, now: int, local_socket: int, remote: InetAddress, data: bytes) -> None:
        """A UDP datagram arrived. Never raises for any ``data`` (bugs aside)."""
        self.counters["rx_datagrams"] += 1
        try:
            self._on_datagram(now, local_socket, remote, data)
        except (MalformedPacket, KeyAgreementError):
            self.counters["rx_malformed"] += 1
        self._check_online(now)

    def on_timer(self, now: int) -> None:
        """Run every periodic task that is due."""
        if now - self._last_switch >= C.SWITCH_TIMER_PERIOD:
            self._last_switch = now
            self._switch_timer(now)
        if now - self._last_ping >= C.PING_CHECK_INTERVAL:
            self._last_ping = now
            self._ping_pass(now)
        if now - self._last_housekeeping >= C.HOUSEKEEPING_PERIOD:
            self._last_housekeeping = now
            self._housekeeping(now)
        self._check_online(now)

    def next_deadline(self) -> int:
        """When :meth:`on_timer` next wants to run (same clock as ``now``)."""
        deadline = min(
            self._last_ping + C.PING_CHECK_INTERVAL,
            self._last_housekeeping + C.HOUSEKEEPING_PERIOD,
        )
        if self._tx or self._rx or self._whois_sent:
            deadline = min(deadline, self._last_switch + C.SWITCH_TIMER_PERIOD)
        return deadline

    def drain_actions(self) -> list[Action]:
        actions, self._actions = self._actions, []
        return actions

    # ---------------------------------------------------------------- commands

    def orbit(self, now: int, world_id: int, seed: int = 0) -> None:
        """Join a moon: from stored state if we have it, else fetch it from ``seed``."""
        if world_id in self.topology.moons:
            return
        data = self._state.get(StateKind.MOON, world_id)
        if data is not None:
            try:
                world = World.parse(data)
                if world.type == WorldType.MOON and world.id == world_id:
                    self._accept_world(world, always_accept_new=True)
                    return
            except MalformedPacket:
                self.counters["state_bad_moon"] += 1
        if seed:
            self.topology.moon_seeds[world_id] = seed
            self._last_ping = 0  # contact the seed at once

    def deorbit(self, now: int, world_id: int) -> None:
        if self.topology.remove_moon(world_id):
            self._actions.append(PutState(StateKind.MOON, world_id, None))
            self._ensure_upstream_peers()

    def send_user_message(self, now: int, destination: int, message_type: int,
                          data: bytes) -> None:  # fmt: skip
        """USER_MESSAGE to ``destination`` (message types <= 65535 are ZeroTier's)."""
        payload = message_type.to_bytes(8, "big") + data
        self._send(now, destination, Verb.USER_MESSAGE, payload, compress=True)

    def join(self, now: int, nwid: int) -> None:
        """Join network ``nwid`` (idempotent); its config is requested at once."""
        vl2.join(self, now, nwid)

    def leave(self, now: int, nwid: int) -> bool:
        """Leave ``nwid``; False if it was not joined."""
        return vl2.leave(self, now, nwid)

    def on_tap_frame(self, now: int, nwid: int, source: int, destination: int, ethertype: int,
                     payload: bytes) -> None:  # fmt: skip
        """An Ethernet frame the host sent into a network's virtual port."""
        vl2.on_tap_frame(self, now, nwid, source, destination, ethertype, payload)

    def multicast_subscribe(self, now: int, nwid: int, mac: int, adi: int = 0) -> None:
        vl2.multicast_subscribe(self, now, nwid, MulticastGroup(mac, adi))

    def multicast_unsubscribe(self, now: int, nwid: int, mac: int, adi: int = 0) -> None:
        vl2.multicast_unsubscribe(self, now, nwid, MulticastGroup(mac, adi))

    def network_views(self) -> list[NetworkView]:
        return [self.networks[n].view() for n in sorted(self.networks)]

    def set_port_error(self, nwid: int, error: int) -> None:
        """What the host's port callback answered for ``nwid`` (0 = fine, e.g. -999 when
        the virtual port could not be made); non-zero makes the status PORT_ERROR
        (PROTOCOL-NETWORK-SERVICE A.5.5, C.5.1)."""
        net = self.networks.get(nwid)
        if net is not None:
            net.port_error = error

    def push_config(self, now: int, nwid: int, member: int, config: Any) -> None:
        """Controller side: send ``config`` to ``member`` unsolicited (NETWORK_CONFIG)."""
        if member == self.address:
            net = self.networks.get(nwid)
            if net is not None:
                vl2._set_configuration(self, now, net, config, save=True)
            return
        peer = self._get_peer(now, member)
        if peer is None:
            self.request_whois(now, member)
            return
        vl2.send_config(self, now, nwid, peer, config, in_re=None)

    def send_revocation(self, now: int, members: list[int], revocation: Any) -> None:
        """Controller side: send a revocation to the given members."""
        vl2.send_revocation(self, now, members, revocation)
        for net in self.networks.values():
            if net.nwid == revocation.network_id:
                vl2.add_credential(self, now, revocation, int(self.address))

    def set_local_addresses(self, addresses: list[InetAddress]) -> None:
        """The host's bound interface addresses, advertised by PUSH_DIRECT_PATHS."""
        self._local_addresses = list(addresses)

    def flush_state(self, now: int) -> None:
        """Store every peer in the cache (on shutdown)."""
        for peer in self.peers.values():
            self._actions.append(
                PutState(StateKind.PEER, int(peer.address), peer.serialize_for_cache())
            )

    # ------------------------------------------------------------------ status

    @property
    def online(self) -> bool:
        return self._online

    def status(self, now: int) -> NodeStatus:
        return NodeStatus(
            address=int(self.address),
            public_identity=self.identity.to_string(False),
            online=self._online,
            planet_world_id=self.topology.planet.id,
            planet_world_timestamp=self.topology.planet.timestamp,
            clock=now,
        )

    def peer_status(self, now: int) -> list[PeerStatus]:
        out = []
        for address in sorted(self.peers):
            peer = self.peers[address]
            best = peer.best_path(now)
            paths = tuple(
                PathStatus(
                    address=s.path.address,
                    last_send=s.path.last_out,
                    last_receive=s.path.last_in,
                    trusted_path_id=self._trusted_path_id(s.path.address),
                    preferred=s.path is best,
                    local_socket=s.path.local_socket,
                )
                for s in peer.slots
            )
            latency = peer.latency(now)
            out.append(
                PeerStatus(
                    address=address,
                    version=peer.version,
                    latency=-1 if latency >= C.LATENCY_UNKNOWN else latency,
                    role=self.topology.role(address),
                    paths=paths,
                )
            )
        return out

    def moon_status(self) -> list[MoonStatus]:
        moons = [MoonStatus(w.id, 0, w) for w in self.topology.moons.values()]
        moons += [MoonStatus(i, s, None) for i, s in self.topology.moon_seeds.items()]
        return sorted(moons, key=lambda m: m.world_id)

    def surface_addresses(self) -> list[InetAddress]:
        """External addresses peers have reported for us (``SelfAwareness::whoami``)."""
        seen: list[InetAddress] = []
        for addr, _ in self._surface.values():
            if addr not in seen:
                seen.append(addr)
        return seen

    # ----------------------------------------------------------------- planet

    def _load_planet(self) -> World:
        planet = default_planet()
        data = self._state.get(StateKind.PLANET, 0)
        if data is not None:
            try:
                cached = World.parse(data)
                if cached.type == WorldType.PLANET:
                    # The cached planet is taken unverified; the built-in one replaces it
                    # only as a properly signed, newer revision of the same world.
                    if cached.should_be_replaced_by(planet):
                        return planet
                    return cached
            except MalformedPacket:
                self.counters["state_bad_planet"] += 1
        return planet

    def _accept_world(self, world: World, always_accept_new: bool) -> bool:
        if not self.topology.add_world(world, always_accept_new):
            return False
        kind = StateKind.PLANET if world.type == WorldType.PLANET else StateKind.MOON
        self._actions.append(PutState(kind, 0 if kind == StateKind.PLANET else world.id,
                                      world.serialize()))  # fmt: skip
        self._ensure_upstream_peers()
        return True

    def _ensure_upstream_peers(self) -> None:
        for world in [self.topology.planet, *self.topology.moons.values()]:
            for root in world.roots:
                address = int(root.identity.address)
                if address != self.address and address not in self.peers:
                    self._add_peer(root.identity)

    # ------------------------------------------------------------------ peers

    def _add_peer(self, identity: Identity) -> Peer | None:
        try:
            key = PeerKey(self.identity.agree(identity), self.crypto)
        except KeyAgreementError:
            self.counters["peer_bad_key"] += 1
            return None
        peer = Peer(identity, key)
        self._make_room_for_peer()
        self.peers[int(identity.address)] = peer
        return peer

    def _make_room_for_peer(self) -> None:
        """At ``MAX_PEERS``: forget the least recently heard 1/16 (never a root).

        A batch, so the scan is paid once per 2,048 new peers and not per HELLO.
        """
        if len(self.peers) < B.MAX_PEERS:
            return
        topology = self.topology
        candidates = [p for a, p in self.peers.items() if not topology.is_upstream(a)]
        for peer in heapq.nsmallest(max(1, B.MAX_PEERS // 16), candidates,
                                    key=lambda p: p.last_receive):  # fmt: skip
            del self.peers[int(peer.address)]
            self.root_memberships.forget_peer(int(peer.address))
        self.counters["peers_evicted"] += 1

    def _get_peer(self, now: int, address: int) -> Peer | None:
        peer = self.peers.get(address)
        if peer is not None or address == self.address:
            return peer
        data = self._state.get(StateKind.PEER, address)
        if data is None:
            return None
        try:
            cached = parse_peer_cache(data)
        except MalformedPacket:
            self.counters["state_bad_peer"] += 1
            return None
        if cached.identity.address != address:
            return None
        peer = self._add_peer(cached.identity)
        if peer is None:
            return None
        peer.set_version(cached.v_proto, *cached.version)
        for addr in cached.addresses:
            self._send_hello(now, peer, ANY_LOCAL_SOCKET, addr)
        return peer

    def _peer_learned(self, now: int, peer: Peer) -> None:
        """A new identity is known: retry everything that waited for it."""
        self._whois_sent.pop(int(peer.address), None)
        self._retry_rx(now, only=int(peer.address))
        self._retry_tx(now, only=int(peer.address))

    # ------------------------------------------------------------------ paths

    def _path(self, local_socket: int, remote: InetAddress) -> Path:
        key = (local_socket, remote)
        path = self._paths.get(key)
        if path is None:
            if len(self._paths) >= B.MAX_PATHS:
                self._prune_paths()
            path = Path(local_socket, remote)
            self._paths[key] = path
        return path

    def _prune_paths(self) -> None:
        """At ``MAX_PATHS``: drop the oldest paths no peer uses, down to 7/8 of it."""
        used = {id(s.path) for p in self.peers.values() for s in p.slots}
        target = B.MAX_PATHS * 7 // 8
        for key in list(self._paths):
            if len(self._paths) <= target:
                break
            if id(self._paths[key]) not in used:
                del self._paths[key]
        self.counters["paths_pruned"] += 1

    def _trusted_path_id(self, remote: InetAddress) -> int:
        for setting in self._physical:
            if remote.ip.version == setting.network.version and remote.ip in setting.network:
                return setting.trusted_path_id
        return 0

    def _mtu_for(self, remote: InetAddress) -> int:
        for setting in self._physical:
            if remote.ip.version == setting.network.version and remote.ip in setting.network:
                if setting.mtu > 0:
                    return max(MIN_PHYSMTU, min(setting.mtu, MAX_PHYSMTU))
                break
        return DEFAULT_PHYSMTU

    def should_use_path(self, address: int, local_socket: int, remote: InetAddress) -> bool:
        """``Node::shouldUsePathForZeroTierTraffic`` (§8.2)."""
        if not remote.is_valid_for_path() and not (
            self._allow_loopback and remote.scope() == IpScope.LOOPBACK
        ):
            return False
        if self.topology.is_prohibited_endpoint(address, remote):
            return False
        if vl2.static_ip_owner(self, remote.ip):
            return False  # never ZeroTier over ZeroTier
        return self._path_check is None or self._path_check(address, local_socket, remote)

    # ------------------------------------------------------------- receiving

    def _on_datagram(self, now: int, local_socket: int, remote: InetAddress, data: bytes) -> None:
        path = self._path(local_socket, remote)
        path.last_in = now
        n = len(data)
        if n == 13:
            self._on_lan_beacon(now, path, data)
            return
        if n <= 16 or n > MAX_PACKET_LENGTH:
            self.counters["rx_bad_length"] += 1
            return
        if data[13] == 0xFF:  # a fragment (parse_fragment's fields, without the object)
            if int.from_bytes(data[8:13], "big") != self.address:
                self._relay(now, path, data, is_fragment=True)
                return
            b = data[14]
            whole = self._reassembler.add_piece(now, int.from_bytes(data[0:8], "big"), b >> 4,
                                                b & 0xF, bytes(data[16:]))  # fmt: skip
            if whole is not None:
                self._decode(now, path, bytearray(whole))
            return
        if n < MIN_PACKET_LENGTH:
            self.counters["rx_bad_length"] += 1
            return
        source = int.from_bytes(data[13:18], "big")
        destination = int.from_bytes(data[8:13], "big")
        if source == self.address:
            self.counters["rx_from_self"] += 1
            return
        if destination != self.address:
            self._relay(now, path, data, is_fragment=False)
            return
        if data[IDX_FLAGS] & 0x40:
            whole = self._reassembler.add_head(now, data)
            if whole is not None:
                self._decode(now, path, bytearray(whole))
            return
        self._decode(now, path, bytearray(data))

    def _on_lan_beacon(self, now: int, path: Path, data: bytes) -> None:
        address = int.from_bytes(data[8:13], "big")
        if address == self.address or now - self._last_beacon_reply < C.LAN_BEACON_REPLY_INTERVAL:
            return
        peer = self.peers.get(address)
        if peer is not None and self.should_use_path(address, path.local_socket, path.address):
            self._last_beacon_reply = now
            packet = build_packet(self._random(8), address, self.address, Verb.NOP)
            self._send_via_path(now, peer, packet, path)

    def _decode(self, now: int, path: Path, packet: bytearray, authenticated: bool = False,
                retry: bool = False) -> bool:  # fmt: skip
        """Authenticate and dispatch; False if it must wait (unknown sender, ...)."""
        source = int.from_bytes(packet[13:18], "big")
        cipher = (packet[IDX_FLAGS] >> 3) & 7
        trusted = False
        if not authenticated:
            if cipher == SUITE_NONE_TRUSTED:
                tp = self._trusted_path_id(path.address)
                if tp == 0 or tp != int.from_bytes(packet[19:27], "big"):
                    self.counters["rx_untrusted_path"] += 1
                    return True
                trusted = True
            elif cipher == SUITE_POLY1305_NONE and (packet[27] & 0x1F) == Verb.HELLO:
                handle_hello(self, now, path, packet, already_authenticated=False)
                return True
        peer = self.peers.get(source)
        if peer is None:
            peer = self._get_peer(now, source)
        if peer is None:
            self.request_whois(now, source)
            if not retry:
                self.counters["rx_unknown_source"] += 1
                self._defer_rx(now, path, packet, authenticated or trusted, source)
            return False
        if not authenticated:
            if not trusted and not dearmor(packet, peer.key):
                self.counters["rx_bad_mac"] += 1
                peer.metrics.errors += 1
                return True
            uncompress(packet)
        done = dispatch(self, now, path, peer, packet)
        if not done and not retry:
            self._defer_rx(now, path, packet, True, source)
        return done

    def _defer_rx(self, now: int, path: Path, packet: bytearray, authenticated: bool,
                  source: int) -> None:  # fmt: skip
        if len(self._rx) >= B.RX_QUEUE_SIZE:
            self._rx.pop(0)
            self.counters["rx_queue_overflow"] += 1
        self._rx.append(_RxEntry(now, path, packet, authenticated, source))

    def _retry_rx(self, now: int, only: int | None = None) -> None:
        keep: list[_RxEntry] = []
        pending, self._rx = self._rx, []
        for entry in pending:
            if now - entry.created > C.RECEIVE_QUEUE_TIMEOUT:
                self.counters["rx_queue_expired"] += 1
                continue
            if only is not None and entry.source != only:
                keep.append(entry)
                continue
            try:
                done = self._decode(now, entry.path, bytearray(entry.packet),
                                    entry.authenticated, retry=True)  # fmt: skip
            except (MalformedPacket, KeyAgreementError):
                self.counters["rx_malformed"] += 1
                done = True
            if not done:
                keep.append(entry)
        self._rx = keep + self._rx

    # ---------------------------------------------------------------- relaying

    def _relay(self, now: int, path: Path, data: bytes, is_fragment: bool) -> None:
        """Forward a datagram for someone else (§5.8). Never decrypts it."""
        if not (self.topology.am_upstream or path.trusted(now)):
            self.counters["relay_refused"] += 1
            return
        out = bytearray(data)
        if is_fragment:
            hops = out[15]
            if hops >= C.RELAY_MAX_HOPS:
                self.counters["relay_hops_exceeded"] += 1
                return
            out[15] = (hops + 1) & 7
        else:
            hops = out[IDX_FLAGS] & 7
            if hops >= C.RELAY_MAX_HOPS:
                self.counters["relay_hops_exceeded"] += 1
                return
            out[IDX_FLAGS] = (out[IDX_FLAGS] & 0xF8) | ((hops + 1) & 7)
        destination = int.from_bytes(data[8:13], "big")
        source = 0 if is_fragment else int.from_bytes(data[13:18], "big")
        dest_peer = self.peers.get(destination)
        dest_path = dest_peer.best_path(now) if dest_peer is not None else None
        if dest_path is not None and dest_peer is not None:
            self._emit(now, dest_path, bytes(out))
            self.counters["relayed"] += 1
            if not is_fragment:
                src_peer = self.peers.get(source)
                if src_peer is not None:
                    self._unite(now, src_peer, dest_peer, rate_limited=True)
            return
        upstream = self.best_upstream(now)
        if upstream is None or (not is_fragment and int(upstream.address) == source):
            self.counters["relay_no_route"] += 1
            return
        up_path = upstream.best_path(now) or (upstream.slots[0].path if upstream.slots else None)
        if up_path is None:
            self.counters["relay_no_route"] += 1
            return
        self._emit(now, up_path, bytes(out))
        self.counters["relayed"] += 1
        if not is_fragment:
            src_peer = self.peers.get(source)
            if src_peer is not None:
                self._unite(now, src_peer, upstream, rate_limited=False)

    def _unite(self, now: int, a: Peer, b: Peer, rate_limited: bool) -> None:
        """Introduce two peers to each other with RENDEZVOUS (§8.8)."""
        key = (min(int(a.address), int(b.address)), max(int(a.address), int(b.address)))
        if rate_limited and now - self._last_unite.get(key, -C.MIN_UNITE_INTERVAL) < (
            C.MIN_UNITE_INTERVAL
        ):
            return

        def best_by_scope(peer: Peer) -> dict[tuple[int, int], Path]:
            best: dict[tuple[int, int], tuple[float, Path]] = {}
            for slot in peer.slots:
                if slot.expired(now):
                    continue
                p = slot.path
                k = (p.scope, p.address.ip.version)
                q = p.quality(now) / slot.priority
                if k not in best or q <= best[k][0]:
                    best[k] = (q, p)
            return {k: v[1] for k, v in best.items()}

        pa, pb = best_by_scope(a), best_by_scope(b)
        for scope in range(7, -1, -1):
            for family in (6, 4):
                k = (scope, family)
                if k in pa and k in pb:
                    self._last_unite.pop(key, None)
                    if len(self._last_unite) >= B.MAX_UNITE_ENTRIES:
                        del self._last_unite[next(iter(self._last_unite))]
                    self._last_unite[key] = now
                    pairs = [(b, pb[k], a, pa[k]), (a, pa[k], b, pb[k])]
                    if self._random(1)[0] & 1:
                        pairs.reverse()
                    for to, to_path, about, about_path in pairs:
                        payload = Rendezvous(about.address, about_path.address).serialize()
                        packet = build_packet(self._random(8), to.address, self.address,
                                              Verb.RENDEZVOUS, payload)  # fmt: skip
                        self._send_via_path(now, to, packet, to_path)
                    return

    # ----------------------------------------------------------------- sending

    def _emit(self, now: int, path: Path, data: bytes, ttl: int = 0) -> None:
        self._actions.append(SendPacket(path.local_socket, path.address, data, ttl))
        path.last_out = now

    def _expect_reply(self, packet_id: bytes | bytearray) -> None:
        bucket = self._expecting[packet_id[3]]
        bucket.append(int.from_bytes(packet_id[0:4], "big"))
        if len(bucket) > 32:
            del bucket[0]

    def expecting_reply(self, packet_id: int) -> bool:
        upper = packet_id >> 32
        return upper in self._expecting[(packet_id >> 32) & 0xFF]

    def best_upstream(self, now: int) -> Peer | None:
        """``Topology::getUpstreamPeer``: minimum relay quality, ties to the later one."""
        best: Peer | None = None
        best_q = 0
        for address in self.topology.upstream_addresses():
            peer = self.peers.get(address)
            if peer is None:
                continue
            q = peer.relay_quality(now)
            if best is None or q <= best_q:
                best, best_q = peer, q
        return best

    def request_whois(self, now: int, address: int) -> None:
        """Ask the best upstream who ``address`` is (at most every 500 ms per address)."""
        if address == self.address:
            return
        last = self._whois_sent.get(address)
        if last is not None and now - last < C.WHOIS_RETRY_DELAY:
            return
        if last is None and len(self._whois_sent) >= B.MAX_PENDING_WHOIS:
            # DoS bound: a flood of packets from made-up addresses must not make us
            # flood the root with WHOIS; the table drains every 500 ms.
            self.counters["whois_table_full"] += 1
            return
        self._whois_sent[address] = now
        upstream = self.best_upstream(now)
        if upstream is None or int(upstream.address) == address:
            return
        packet = build_packet(self._random(8), upstream.address, self.address, Verb.WHOIS,
                              address.to_bytes(5, "big"))  # fmt: skip
        self.counters["whois_sent"] += 1
        if not self._try_send(now, upstream, packet, encrypt=True, compress=False):
            self.counters["whois_unsent"] += 1

    def _send(self, now: int, destination: int, verb: int, payload: bytes,
              encrypt: bool = True, compress: bool = False) -> None:  # fmt: skip
        """Send to a peer by address, queueing and asking WHOIS if needed (§8.2)."""
        peer = self._get_peer(now, destination)
        if peer is not None:
            packet = build_packet(self._random(8), destination, self.address, verb, payload)
            if self._try_send(now, peer, packet, encrypt, compress):
                return
        else:
            self.request_whois(now, destination)
        if len(self._tx) >= B.TX_QUEUE_SIZE:
            self._tx.pop(0)
            self.counters["tx_queue_overflow"] += 1
        self._tx.append(_TxEntry(now, destination, verb, payload, encrypt, compress))

    def _retry_tx(self, now: int, only: int | None = None) -> None:
        keep: list[_TxEntry] = []
        pending, self._tx = self._tx, []
        for entry in pending:
            if now - entry.created > C.TRANSMIT_QUEUE_TIMEOUT:
                self.counters["tx_queue_expired"] += 1
                continue
            if only is not None and entry.destination != only:
                keep.append(entry)
                continue
            peer = self._get_peer(now, entry.destination)
            if peer is None:
                self.request_whois(now, entry.destination)
                keep.append(entry)
                continue
            packet = build_packet(self._random(8), entry.destination, self.address,
                                  entry.verb, entry.payload)  # fmt: skip
            if not self._try_send(now, peer, packet, entry.encrypt, entry.compress):
                keep.append(entry)
        self._tx = keep + self._tx

    def _try_send(self, now: int, peer: Peer, packet: bytearray, encrypt: bool,
                  compress: bool) -> bool:  # fmt: skip
        path = peer.best_path(now)
        if path is None:
            if (
                self._path_lookup is not None
                and now - peer.last_tried_memorized_path >= C.TRY_MEMORIZED_PATH_INTERVAL
            ):
                peer.last_tried_memorized_path = now
                hint = self._path_lookup(int(peer.address), 0)
                if hint is not None:
                    self._send_hello(now, peer, ANY_LOCAL_SOCKET, hint)
            upstream = self.best_upstream(now)
            if upstream is not None and upstream is not peer:
                path = upstream.best_path(now)
            if path is None and peer.slots:
                path = peer.slots[0].path  # an expired path beats nothing
            if path is None:
                return False
        self._send_via_path(now, peer, packet, path, encrypt, compress)
        return True

    def _send_via_path(self, now: int, peer: Peer, packet: bytearray, path: Path,
                       encrypt: bool = True, compress_payload: bool = False) -> None:  # fmt: skip
        """Compress, armor (or mark trusted), fragment and emit (§5.6, §4.2, §9.1)."""
        verb = packet[IDX_VERB] & 0x1F
        self.metrics.verbs[TX][verb] += 1
        if verb == Verb.ERROR and len(packet) > IDX_PAYLOAD + 9:
            self.metrics.error(TX, packet[IDX_PAYLOAD + 9])  # after in-re verb and packet id
        peer.metrics.tx += 1
        if compress_payload:
            compress(packet)
        address = path.address
        if self._physical:
            mtu = self._mtu_for(address)
            trusted = self._trusted_path_id(address)
        else:
            mtu, trusted = DEFAULT_PHYSMTU, 0
        try:
            mark_fragmented(packet, mtu)
        except ValueError:
            self.counters["tx_too_big"] += 1
            return
        if trusted:
            packet[IDX_FLAGS] = (packet[IDX_FLAGS] & 0x47) | (SUITE_NONE_TRUSTED << 3)
            packet[19:27] = trusted.to_bytes(8, "big")
        else:
            if not encrypt:
                suite = SUITE_POLY1305_NONE
            elif peer.supports_aes:
                suite = SUITE_AES_GMAC_SIV
            else:
                suite = SUITE_POLY1305_SALSA2012
            armor(packet, peer.key, suite)
            self._expect_reply(packet[0:8])
        local_socket = path.local_socket
        actions = self._actions
        for piece in split(packet, mtu):
            actions.append(SendPacket(local_socket, address, piece))
        path.last_out = now
        self.counters["tx_packets"] += 1

    def send_reply(self, now: int, peer: Peer, path: Path, verb: int, payload: bytes,
                   compress_payload: bool = False) -> None:  # fmt: skip
        """A reply over the path the request came in on (possibly a relay's)."""
        packet = build_packet(self._random(8), peer.address, self.address, verb, payload)
        self._send_via_path(now, peer, packet, path, True, compress_payload)

    def _send_hello(self, now: int, peer: Peer, local_socket: int, remote: InetAddress) -> None:
        moons = [
            MoonRecord(WorldType.MOON, w.id, w.timestamp) for w in self.topology.moons.values()
        ]
        moons += [MoonRecord(WorldType.MOON, i, 0) for i in self.topology.moon_seeds]
        planet = self.topology.planet
        hello = Hello(PROTO_VERSION, self.version, now, self.identity.public_only(), remote,
                      planet.id, planet.timestamp, tuple(moons))  # fmt: skip
        packet_id = self._random(8)
        wire = make_hello_packet(packet_id, peer.address, peer.key, hello)
        self.metrics.verb(TX, Verb.HELLO)
        peer.metrics.tx += 1
        self._expect_reply(packet_id)
        self._actions.append(SendPacket(local_socket, remote, wire))
        if local_socket != ANY_LOCAL_SOCKET:
            self._path(local_socket, remote).last_out = now
        self.counters["hello_sent"] += 1

    def attempt_contact(self, now: int, peer: Peer, local_socket: int, remote: InetAddress,
                        full_hello: bool) -> None:  # fmt: skip
        """``Peer::attemptToContactAt``: an empty ECHO if the peer can, else HELLO (§8.3)."""
        if not full_hello and peer.prefers_echo:
            path = self._path(local_socket, remote)
            packet = build_packet(self._random(8), peer.address, self.address, Verb.ECHO)
            self._send_via_path(now, peer, packet, path)
        else:
            self._send_hello(now, peer, local_socket, remote)

    def send_junk(self, now: int, local_socket: int, remote: InetAddress) -> None:
        """4 bytes with IP TTL 2: opens our side of a NAT before a direct contact."""
        self._actions.append(SendPacket(local_socket, remote, self._random(4), ttl=2))

    # -------------------------------------------------------------- timers

    def _switch_timer(self, now: int) -> None:
        self._retry_tx(now)
        self._retry_rx(now)
        for address in [
            a for a, t in self._whois_sent.items() if now - t > 2 * C.WHOIS_RETRY_DELAY
        ]:
            waiting = any(e.destination == address for e in self._tx) or any(
                e.source == address for e in self._rx
            )
            if waiting:
                self.request_whois(now, address)
            else:
                del self._whois_sent[address]

    def _ping_pass(self, now: int) -> None:
        """``_PingPeersThatNeedPing``: keep roots, moons and active peers reachable (§8.4)."""
        always: dict[int, tuple[InetAddress, ...]] = {
            a: self.topology.stable_endpoints(a) for a in self.topology.upstream_addresses()
        }
        for seed in self.topology.moon_seeds.values():
            always.setdefault(seed, ())
        for net in self.networks.values():
            if net.config is not None:
                for address in net.config.always_contact_addresses():
                    always.setdefault(address, ())
        best_root = self.best_upstream(now)
        for address, endpoints in always.items():
            if address == self.address:
                continue
            peer = self._get_peer(now, address)
            if peer is None:
                self.request_whois(now, address)
                continue
            if self.topology.is_upstream(address):
                scale = C.ROOT_PING_MULTIPLIER if peer.slots else 0
            else:
                scale = 2
            if now - peer.last_sent_full_hello <= C.PATH_HEARTBEAT_PERIOD * scale:
                continue
            v4, v6 = self._ping_peer(now, peer)
            sent = v4 or v6
            for family, done in ((4, v4), (6, v6)):
                if done:
                    continue
                candidates = [e for e in endpoints if e.ip.version == family]
                if candidates:
                    pick = candidates[self._random(1)[0] % len(candidates)]
                    self._send_hello(now, peer, ANY_LOCAL_SOCKET, pick)
                    sent = True
            if not sent and best_root is not None and best_root is not peer:
                root_path = best_root.best_path(now)
                if root_path is not None:
                    self._send_hello(now, peer, root_path.local_socket, root_path.address)
        for address, peer in list(self.peers.items()):
            if address not in always and peer.active(now):
                self._ping_peer(now, peer)
        vl2.periodic(self, now)

    def _ping_peer(self, now: int, peer: Peer) -> tuple[bool, bool]:
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
                self.attempt_contact(now, peer, path.local_socket, path.address, full)
                path.last_out = now
                if path.address.ip.version == 4:
                    v4 = True
                else:
                    v6 = True
            keep.append(slot)
        peer.slots = keep
        peer.metrics.latency.observe(peer.latency(now))
        return v4, v6

    def _housekeeping(self, now: int) -> None:
        vl2.housekeeping(self, now)
        for address, peer in list(self.peers.items()):
            if self.topology.is_upstream(address) or peer.alive(now):
                continue
            del self.peers[address]
            self._actions.append(PutState(StateKind.PEER, address, peer.serialize_for_cache()))
        used = {id(s.path) for p in self.peers.values() for s in p.slots}
        for key, path in list(self._paths.items()):
            if id(path) not in used and now - path.last_in > C.PEER_PATH_EXPIRATION:
                del self._paths[key]
        self._last_unite = {k: t for k, t in self._last_unite.items() if now - t < C.UNITE_FORGET}
        self._identity_gate = {
            k: t for k, t in self._identity_gate.items()
            if now - t < C.IDENTITY_VALIDATION_SOURCE_RATE_LIMIT
        }  # fmt: skip
        self._surface = {
            k: v for k, v in self._surface.items() if now - v[1] < C.SELFAWARENESS_ENTRY_TIMEOUT
        }
        self.root_memberships.clean(now, self.peers)

    def _check_online(self, now: int) -> None:
        topology = self.topology
        if now < self._online_until and self._online_generation == topology.generation:
            return  # online, and the upstream that makes it so is alive until then
        until = 0
        if topology.am_upstream:
            online = True
            until = 1 << 62
        else:
            for a in topology.upstream_addresses():
                p = self.peers.get(a)
                if p is not None and p.alive(now) and p.last_receive > 0:
                    # last_receive only grows and upstream peers are never dropped
                    until = max(until, p.last_receive + C.PEER_ACTIVITY_TIMEOUT)
            online = until > 0
        self._online_until = until
        self._online_generation = topology.generation
        if online != self._online:
            self._online = online
            self._actions.append(NodeEvent(EventKind.ONLINE if online else EventKind.OFFLINE))

    # ------------------------------------------------------------ helpers for incoming

    def identity_validation_allowed(self, now: int, remote: InetAddress) -> bool:
        """One new-identity validation per source bucket per 2 s (§6.2.2)."""
        packed = remote.ip.packed
        prefix = packed[:3] if remote.ip.version == 4 else packed[:6]
        digest = hashlib.sha256(prefix).digest()
        bucket = int.from_bytes(digest[:2], "big") % B.IDENTITY_GATE_BUCKETS
        last = self._identity_gate.get(bucket)
        if last is not None and now - last < C.IDENTITY_VALIDATION_SOURCE_RATE_LIMIT:
            return False
        self._identity_gate[bucket] = now
        return True

    def validate_identity(self, identity: Identity) -> bool:
        return identity.locally_validate(self._hash)

    def new_peer_from_hello(self, now: int, identity: Identity, key: PeerKey) -> Peer:
        peer = Peer(identity, key)
        self._make_room_for_peer()
        self.peers[int(identity.address)] = peer
        return peer

    def learn_identity(self, now: int, identity: Identity) -> None:
        """OK(WHOIS) from an upstream: trusted without the proof-of-work check (§6.4)."""
        address = int(identity.address)
        if address == self.address or address in self.peers:
            return
        if self._add_peer(identity) is not None:
            self.counters["whois_learned"] += 1
            self._peer_learned(now, self.peers[address])

    def accept_worlds(self, worlds: list[World]) -> None:
        for world in worlds:
            self._accept_world(world, always_accept_new=False)

    def iam(self, now: int, reporter: Peer, path: Path, reported: InetAddress) -> None:
        """``SelfAwareness::iam``: remember how a peer sees us (§8.10)."""
        scope = int(reported.scope())
        if scope != path.scope or scope in (0, 1, 2):
            return
        key = (int(reporter.address), path.local_socket, path.address, scope)
        previous = self._surface.get(key)
        trusted = self.topology.is_upstream(int(reporter.address))
        if (trusted and previous is not None and previous[0].ip != reported.ip
                and now - previous[1] < C.SELFAWARENESS_ENTRY_TIMEOUT):  # fmt: skip
            # Our external address changed: forget this scope and re-probe its paths.
            self._surface = {k: v for k, v in self._surface.items() if k[3] != scope}
            for peer in self.peers.values():
                for slot in peer.slots:
                    p = slot.path
                    if p.scope == scope and p.address.ip.version == reported.ip.version:
                        self.attempt_contact(now, peer, p.local_socket, p.address, False)
                        slot.lr = 0
        if key not in self._surface and len(self._surface) >= B.MAX_SURFACE_ENTRIES:
            del self._surface[next(iter(self._surface))]
        self._surface[key] = (reported, now)

    def received(self, now: int, path: Path, peer: Peer, hops: int, verb: int,
                 trust: bool = False) -> None:  # fmt: skip
        """``Peer::received``: receive bookkeeping and path learning (§8.2)."""
        peer.metrics.rx += 1
        peer.last_receive = now
        if verb in _NONTRIVIAL_VERBS:
            peer.last_nontrivial_receive = now
        if trust:
            peer.last_trust_established = now
            path.last_trust = now
        if hops == 0:
            have = False
            for slot in peer.slots:
                if slot.path is path:
                    slot.lr = now
                    have = True
                    break
                if (slot.path.address.ip == path.address.ip
                        and slot.path.local_socket == path.local_socket
                        and slot.path.alive(now)):  # fmt: skip
                    have = True
                    break
            if not have and self.should_use_path(int(peer.address), path.local_socket,
                                                 path.address):  # fmt: skip
                if verb == Verb.OK:
                    peer.learn_path(path, now)
                else:
                    key = (path.local_socket, path.address)
                    peer.last_tried_paths = {
                        k: t for k, t in peer.last_tried_paths.items()
                        if now - t <= C.PATH_CONFIRM_INTERVAL
                    }  # fmt: skip
                    if key not in peer.last_tried_paths:
                        if len(peer.last_tried_paths) >= B.MAX_PEER_TRIED_PATHS:
                            peer.last_tried_paths.clear()
                        peer.last_tried_paths[key] = now
                        self.attempt_contact(now, peer, path.local_socket, path.address, True)
                        path.last_out = now
        if peer.trust_established(now):
            interval = (C.DIRECT_PATH_PUSH_INTERVAL_HAVEPATH if hops == 0
                        else C.DIRECT_PATH_PUSH_INTERVAL)  # fmt: skip
            if now - peer.last_direct_path_push_sent >= interval:
                peer.last_direct_path_push_sent = now
                self._push_direct_paths(now, peer, path)

    def _push_direct_paths(self, now: int, peer: Peer, path: Path) -> None:
        addresses = list(self._local_addresses)
        for a in self.surface_addresses():
            if a not in addresses:
                addresses.append(a)
        for payload in serialize_push_direct_paths(addresses):
            self.send_reply(now, peer, path, Verb.PUSH_DIRECT_PATHS, payload, compress_payload=True)

    def emit_event(self, event: NodeEvent) -> None:
        self._actions.append(event)

    def send_raw(self, now: int, path: Path, data: bytes) -> None:
        self._emit(now, path, data)

    def ok_payload(self, verb: int, packet_id: int, body: bytes) -> bytes:
        return in_re_payload(verb, packet_id) + body
