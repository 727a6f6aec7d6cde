"""The node: the I/O-free core a host drives (DESIGN.md, the core contract).

Inputs, each taking ``now`` (the host's clock, milliseconds):

* :meth:`Node.on_wire_packet` a UDP datagram (local socket id, remote address, bytes)
* :meth:`Node.on_timer` the timer the host arms at :meth:`Node.next_deadline`
* :meth:`Node.on_config_answer` the host's controller answering a
  :class:`~ztone.node.actions.ConfigRequested`
* commands: :meth:`Node.orbit`, :meth:`Node.deorbit`, :meth:`Node.join`,
  :meth:`Node.leave`, :meth:`Node.on_tap_frame`, :meth:`Node.send_user_message`,
  :meth:`Node.set_local_addresses`, :meth:`Node.flush_state`, ...

After each input the host drains :meth:`Node.drain_actions` (datagrams to send,
state objects to store, frames, events, config requests) and re-arms its timer.
Randomness and persistent state come in through the constructor. Hostile datagrams
raise :class:`~ztone.errors.MalformedPacket` internally; it is caught at the packet
boundary, counted and the datagram dropped. Any other exception escaping
``on_wire_packet`` is a bug (the fuzz tests check this).

The node is a thin front: it owns the peer table, the planet and moons and the
outbox, and implements :class:`~ztone.node.port.NodePort` for its collaborators:
the :class:`~ztone.node.vl1.switch.Switch` (paths, queues, WHOIS, relay),
:class:`~ztone.node.vl1.selfaware.SelfAwareness`, :mod:`~ztone.node.vl1.keepalive`
and the VL2 modules (:mod:`~ztone.node.vl2.controller_link`,
:mod:`~ztone.node.vl2.frames`, :mod:`~ztone.node.vl2.multicast`, ...).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Protocol

from ztone.crypto.backend import DEFAULT, Backend
from ztone.crypto.c25519 import KeyAgreementError
from ztone.errors import MalformedPacket
from ztone.node import constants as C
from ztone.node.actions import (
    Action,
    ConfigRequested,
    ControllerAnswer,
    EventKind,
    NodeEvent,
    PutState,
    StateKind,
)
from ztone.node.fast_grants import Activity, Grant, SendGrant
from ztone.node.fastpath import FastPath
from ztone.node.metrics import NodeMetrics
from ztone.node.port import LocalController
from ztone.node.status import MoonStatus, NodeStatus, PathStatus, PeerStatus
from ztone.node.vl1 import keepalive
from ztone.node.vl1.peer import Peer
from ztone.node.vl1.peers import PeerTable
from ztone.node.vl1.root_members import RootMemberships
from ztone.node.vl1.selfaware import SelfAwareness
from ztone.node.vl1.switch import PathCheck, PathLookup, PhysicalPathSetting, Switch
from ztone.node.vl1.topology import Topology
from ztone.node.vl2 import controller_link, controller_side, frames, multicast
from ztone.node.vl2.multicaster import Multicaster
from ztone.node.vl2.network import Network, NetworkView, overlay_owns
from ztone.node.wire import credentials as cr
from ztone.node.wire import frame_hop
from ztone.node.wire.address import Address
from ztone.node.wire.default_planet import default_planet
from ztone.node.wire.identity import Identity
from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.network_config import NetworkConfig
from ztone.node.wire.packet import Verb
from ztone.node.wire.vl2_verbs import MulticastGroup
from ztone.node.wire.world import World, WorldType

RandomBytes = Callable[[int], bytes]
HashFunction = Callable[[bytes], bytes]

VERSION = (1, 14, 1)

__all__ = [
    "VERSION",
    "ControllerAnswer",
    "LocalController",
    "Node",
    "PhysicalPathSetting",
    "StateReader",
]


class StateReader(Protocol):
    """Read access to the host's persistent state objects."""

    def get(self, kind: StateKind, object_id: int) -> bytes | None: ...


class Node:
    """A ZeroTier node: peers, paths, roots and moons, and the networks it joined."""

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
        fast_path: bool | None = None,
    ) -> None:
        """``fast_path``: carry the steady state's frames through :mod:`ztone.node.fastpath`
        (None: when the native accelerator has the hop functions)."""
        if identity.secret is None:
            raise ValueError("the node's identity needs its private key")
        self.identity = identity
        self.address: Address = identity.address
        self.version = version
        self.random: RandomBytes = random_bytes
        self._state = state
        self.crypto = crypto  # the peer keys' backend (ztone.crypto.backend)
        self.controller = controller
        self.os_arch = os_arch
        self.networks: dict[int, Network] = {}
        self.multicaster = Multicaster(int(identity.address))
        self.root_memberships = RootMemberships()
        self._actions: list[Action] = []
        self.emit: Callable[[Action], None] = self._actions.append
        self.counters: Counter[str] = Counter()
        self.metrics = NodeMetrics()
        self.peers: dict[int, Peer] = {}
        self.selfaware = SelfAwareness(self)
        self.switch = Switch(
            self,
            self.selfaware,
            physical=physical,
            path_check=path_check,
            path_lookup=path_lookup,
            allow_loopback=allow_loopback_paths,
            overlay_check=lambda ip: overlay_owns(self.networks, ip),
        )
        switch = self.switch
        # The port's sending and path methods are the switch's own (no extra call).
        self.send = switch.send
        self.send_reply = switch.send_reply
        self.request_whois = switch.request_whois
        self.best_upstream = switch.best_upstream
        self.received = switch.received
        self.should_use_path = switch.should_use_path
        self.attempt_contact = switch.attempt_contact
        self.send_junk = switch.send_junk
        self.expecting_reply = switch.expecting_reply
        self.iam = self.selfaware.iam
        # The fast path (ztone.node.fastpath) pays with the native hop; without it the
        # path is off unless asked for (the tests compare it with the general path).
        hop = frame_hop.native_hop(crypto.native)
        if fast_path is None:
            fast_path = hop is not None
        self.fastpath: FastPath | None = FastPath(self, switch, hop) if fast_path else None
        self.peer_table = PeerTable(self, switch, hash_function or crypto.memory_hard_hash)
        table = self.peer_table
        self.add_peer = table.add
        self.get_peer = table.get
        self.peer_learned = table.learned
        self.learn_identity = table.learn_identity
        self.identity_validation_allowed = table.identity_validation_allowed
        self.validate_identity = table.validate_identity
        self._online = keepalive.OnlineState()
        self._last_switch = now
        self.last_ping = 0
        self._last_housekeeping = now
        self.topology = Topology(int(self.address), self._load_planet())
        self._ensure_upstream_peers()
        self._check_online(now)

    # ------------------------------------------------------------------ inputs

    def on_wire_packet(self, now: int, local_socket: int, remote: InetAddress, data: bytes) -> None:
        """A UDP datagram arrived. Never raises for any ``data`` (bugs aside)."""
        self.counters["rx_datagrams"] += 1
        try:
            fast = self.fastpath
            if fast is None or not fast.receive(now, local_socket, remote, data):
                self.switch.on_datagram(now, local_socket, remote, data)
        except (MalformedPacket, KeyAgreementError):
            self.counters["rx_malformed"] += 1
        self._check_online(now)

    def enable_receive_grants(self) -> bool:
        """Make receive grants for the host's native data plane (:mod:`ztone.node.
        fast_grants`); False when there is no fast path (then there are none)."""
        if self.fastpath is None:
            return False
        self.fastpath.enable_grants()
        return True

    def receive_grants(self, now: int) -> tuple[int, list[Grant]]:
        """The receive grants that hold now (each re-checked) and the table's version
        (it changes whenever the table does): the host mirrors them when it changed.
        Call after every input (a change of state revokes what it touched at once)."""
        table = self.fastpath.grants if self.fastpath is not None else None
        if table is None:
            return 0, []
        table.revalidate(now)
        return table.version, list(table.grants.values())

    def send_grants(self) -> list[SendGrant]:
        """The send grants as of the last :meth:`receive_grants` (same version)."""
        table = self.fastpath.grants if self.fastpath is not None else None
        return [] if table is None else list(table.sends.values())

    def on_fast_send_activity(self, now: int, records: list[Activity]) -> None:
        """What the host's data plane sent under the send grants since its last report."""
        table = self.fastpath.grants if self.fastpath is not None else None
        if table is not None:
            table.on_send_activity(now, records)

    def on_fast_activity(self, now: int, records: list[Activity]) -> None:
        """What the host's data plane carried under the grants since its last report
        (:data:`~ztone.node.fast_grants.Activity`); renews the grants that carried it."""
        table = self.fastpath.grants if self.fastpath is not None else None
        if table is not None:
            table.on_activity(now, records)
            self._check_online(now)

    def on_timer(self, now: int) -> None:
        """Run every periodic task that is due."""
        if now - self._last_switch >= C.SWITCH_TIMER_PERIOD:
            self._last_switch = now
            self.switch.timer(now)
        if now - self.last_ping >= C.PING_CHECK_INTERVAL:
            self.last_ping = now
            also = [
                a
                for net in self.networks.values()
                if net.config is not None
                for a in net.config.always_contact_addresses()
            ]
            keepalive.ping_pass(self, self.switch, now, also)
            controller_link.periodic(self, now)
        if now - self._last_housekeeping >= C.HOUSEKEEPING_PERIOD:
            self._last_housekeeping = now
            self._housekeeping(now)
        self._check_online(now)

    def on_config_answer(
        self, now: int, request: ConfigRequested, answer: ControllerAnswer
    ) -> None:
        """The host's controller answered ``request`` (an action this node emitted)."""
        try:
            if request.remote is None:
                controller_link.own_answer(self, now, request.nwid, answer)
            else:
                path = self.switch.path(request.local_socket, request.remote)
                controller_side.answer(self, now, request, answer, path)
        except (MalformedPacket, KeyAgreementError):
            self.counters["config_answer_malformed"] += 1

    def next_deadline(self) -> int:
        """When :meth:`on_timer` next wants to run (same clock as ``now``)."""
        deadline = min(
            self.last_ping + C.PING_CHECK_INTERVAL,
            self._last_housekeeping + C.HOUSEKEEPING_PERIOD,
        )
        if self.switch.has_pending():
            deadline = min(deadline, self._last_switch + C.SWITCH_TIMER_PERIOD)
        return deadline

    def drain_actions(self) -> list[Action]:
        actions = self._actions[:]
        self._actions.clear()  # in place: ``emit`` is bound to this list
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
            self.ping_soon()  # contact the seed at once

    def deorbit(self, now: int, world_id: int) -> None:
        if self.topology.remove_moon(world_id):
            self.emit(PutState(StateKind.MOON, world_id, None))
            self._ensure_upstream_peers()

    def send_user_message(self, now: int, destination: int, message_type: int, data: bytes) -> None:
        """USER_MESSAGE to ``destination`` (message types <= 65535 are ZeroTier's)."""
        payload = message_type.to_bytes(8, "big") + data
        self.send(now, destination, Verb.USER_MESSAGE, payload, compress=True)

    def join(self, now: int, nwid: int) -> None:
        """Join network ``nwid`` (idempotent); its config is requested at once."""
        controller_link.join(self, now, nwid)

    def leave(self, now: int, nwid: int) -> bool:
        """Leave ``nwid``; False if it was not joined."""
        return controller_link.leave(self, now, nwid)

    def on_tap_frame(
        self, now: int, nwid: int, source: int, destination: int, ethertype: int, payload: bytes
    ) -> None:
        """An Ethernet frame the host sent into a network's virtual port."""
        fast = self.fastpath
        if fast is not None and fast.send_frame(now, nwid, source, destination, ethertype, payload):
            return
        frames.on_tap_frame(self, now, nwid, source, destination, ethertype, payload)

    def multicast_subscribe(self, now: int, nwid: int, mac: int, adi: int = 0) -> None:
        multicast.subscribe(self, now, nwid, MulticastGroup(mac, adi))

    def multicast_unsubscribe(self, now: int, nwid: int, mac: int, adi: int = 0) -> None:
        multicast.unsubscribe(self, now, nwid, MulticastGroup(mac, adi))

    def network_views(self) -> list[NetworkView]:
        return [self.networks[n].view() for n in sorted(self.networks)]

    def set_port_error(self, nwid: int, error: int) -> None:
        """What the host's port callback answered for ``nwid`` (0 = fine, e.g. -999 when
        the virtual port could not be made); non-zero makes the status PORT_ERROR
        (PROTOCOL-NETWORK-SERVICE A.5.5, C.5.1)."""
        net = self.networks.get(nwid)
        if net is not None:
            net.port_error = error

    def push_config(self, now: int, nwid: int, member: int, config: NetworkConfig) -> None:
        """Controller side: send ``config`` to ``member`` unsolicited (NETWORK_CONFIG)."""
        if member == self.address:
            net = self.networks.get(nwid)
            if net is not None:
                net.set_configuration(self, now, config, save=True)
            return
        peer = self.get_peer(now, member)
        if peer is None:
            self.request_whois(now, member)
            return
        controller_side.send_config(self, now, nwid, peer, config, in_re=None)

    def send_revocation(self, now: int, members: list[int], revocation: cr.Revocation) -> None:
        """Controller side: send a revocation to the given members."""
        controller_side.send_revocation(self, now, members, revocation)
        net = self.networks.get(revocation.network_id)
        if net is not None:
            net.add_credential(self, now, revocation, int(self.address))

    def set_local_addresses(self, addresses: list[InetAddress]) -> None:
        """The host's bound interface addresses, advertised by PUSH_DIRECT_PATHS."""
        self.switch.local_addresses = list(addresses)

    def flush_state(self, now: int) -> None:
        """Store every peer in the cache (on shutdown)."""
        self.peer_table.flush()

    # ------------------------------------------------------------------ status

    @property
    def online(self) -> bool:
        return self._online.online

    def status(self, now: int) -> NodeStatus:
        return NodeStatus(
            address=int(self.address),
            public_identity=self.identity.to_string(False),
            online=self._online.online,
            planet_world_id=self.topology.planet.id,
            planet_world_timestamp=self.topology.planet.timestamp,
            clock=now,
        )

    def peer_status(self, now: int) -> list[PeerStatus]:
        out = []
        for address in sorted(self.peers):
            peer = self.peers[address]
            best = peer.best_path(now)
            trusted = self.switch.trusted_path_id
            paths = tuple(
                PathStatus(
                    p.address, p.last_out, p.last_in, trusted(p.address), p is best, p.local_socket
                )
                for p in (s.path for s in peer.slots)
            )
            latency = peer.latency(now)
            out.append(
                PeerStatus(
                    address,
                    peer.version,
                    -1 if latency >= C.LATENCY_UNKNOWN else latency,
                    self.topology.role(address),
                    paths,
                )
            )
        return out

    def moon_status(self) -> list[MoonStatus]:
        moons = [MoonStatus(w.id, 0, w) for w in self.topology.moons.values()]
        moons += [MoonStatus(i, s, None) for i, s in self.topology.moon_seeds.items()]
        return sorted(moons, key=lambda m: m.world_id)

    def surface_addresses(self) -> list[InetAddress]:
        """External addresses peers have reported for us (``SelfAwareness::whoami``)."""
        return self.selfaware.addresses()

    # ------------------------------------------------------- planet and moons

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
        self.emit(PutState(kind, 0 if kind == StateKind.PLANET else world.id, world.serialize()))
        self._ensure_upstream_peers()
        return True

    def accept_worlds(self, worlds: list[World]) -> None:
        for world in worlds:
            self._accept_world(world, always_accept_new=False)

    def _ensure_upstream_peers(self) -> None:
        for world in [self.topology.planet, *self.topology.moons.values()]:
            for root in world.roots:
                address = int(root.identity.address)
                if address != self.address and address not in self.peers:
                    self.add_peer(root.identity)

    # ------------------------------------------------------------------ state

    def load_state(self, kind: StateKind, object_id: int) -> bytes | None:
        return self._state.get(kind, object_id)

    def ping_soon(self) -> None:
        self.last_ping = 0

    # ------------------------------------------------------------------ timers

    def _housekeeping(self, now: int) -> None:
        controller_link.housekeeping(self, now)
        self.peer_table.clean(now)
        self.switch.clean(now)
        self.selfaware.clean(now)
        self.root_memberships.clean(now, self.peers)

    def _check_online(self, now: int) -> None:
        online = self._online
        if now < online.until and online.generation == self.topology.generation:
            return  # the memo holds: the common case, checked here on every datagram
        if online.check(self, now):
            self.emit(NodeEvent(EventKind.ONLINE if self._online.online else EventKind.OFFLINE))
