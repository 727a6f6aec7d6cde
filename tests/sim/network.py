"""A deterministic multi-node simulator on a virtual clock.

Cores are wired by their ``SendPacket`` actions: a datagram to an address one of the
simulated nodes owns is delivered after a random delay (reordering), or lost with
probability ``loss``, or duplicated with probability ``duplicate``. Time jumps from
event to event (the next delivery or the earliest node deadline). Everything is
bounded: ``run`` stops after ``max_events`` events even if the caller's condition
never holds.
"""

from __future__ import annotations

import heapq
import ipaddress
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ztone.crypto.backend import DEFAULT, Backend
from ztone.node.actions import (
    Action,
    ConfigRequested,
    ControllerAnswer,
    DeliverFrame,
    NodeEvent,
    PutState,
    SendPacket,
    StateKind,
)
from ztone.node.node import Node
from ztone.node.wire.dictionary import Dictionary
from ztone.node.wire.identity import Identity
from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.world import Root, World, WorldType

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
START = 1_700_000_000_000  # a wall-clock-like start: the core's clock is in ms


def vector_identities() -> list[Identity]:
    data = json.loads((VECTORS / "identities.json").read_text())
    return [Identity.from_string(e["secret"]) for e in data["identities"]]


class MemoryState:
    """A host's state store kept in memory."""

    def __init__(self) -> None:
        self.objects: dict[tuple[StateKind, int], bytes] = {}

    def get(self, kind: StateKind, object_id: int) -> bytes | None:
        return self.objects.get((kind, object_id))

    def apply(self, action: PutState) -> None:
        if action.data is None:
            self.objects.pop((action.kind, action.object_id), None)
        else:
            self.objects[(action.kind, action.object_id)] = action.data


class Answerer(Protocol):
    """A simulated node's embedded controller, as its host asks it (ConfigRequested)."""

    def request(self, now: int, nwid: int, identity: Identity,
                metadata: Dictionary) -> ControllerAnswer: ...  # fmt: skip


@dataclass
class SimNode:
    name: str
    identity: Identity
    endpoint: InetAddress
    state: MemoryState
    node: Node
    events: list[NodeEvent] = field(default_factory=list)
    delivered: list[DeliverFrame] = field(default_factory=list)
    received_datagrams: int = 0
    sent_datagrams: int = 0
    controller: Answerer | None = None


@dataclass(order=True)
class _Flight:
    at: int
    seq: int
    src: InetAddress = field(compare=False)
    dst: InetAddress = field(compare=False)
    data: bytes = field(compare=False)


class SimNetwork:
    def __init__(self, seed: int = 1, loss: float = 0.0, duplicate: float = 0.0,
                 min_delay: int = 1, max_delay: int = 5,
                 crypto: Backend = DEFAULT,
                 fast_path: bool | None = None) -> None:  # fmt: skip
        self.now = START
        self.crypto = crypto  # every node's crypto backend
        self.fast_path = fast_path  # every node's (None: the Node's default)
        self.rng = random.Random(seed)
        self.loss = loss
        self.duplicate = duplicate
        self.min_delay = min_delay
        self.max_delay = max_delay
        self.nodes: dict[str, SimNode] = {}
        self._by_endpoint: dict[InetAddress, SimNode] = {}
        self._flights: list[_Flight] = []
        self._seq = 0
        self.delivered = 0
        self.dropped = 0
        self.blocked: set[frozenset[str]] = set()  # pairs that cannot talk directly

    def random_bytes(self, n: int) -> bytes:
        return self.rng.randbytes(n)

    def add_node(self, name: str, identity: Identity, ip: str, planet: World | None = None,
                 **node_options: Any) -> SimNode:  # fmt: skip
        endpoint = InetAddress(ipaddress.ip_address(ip), 9993)
        state = MemoryState()
        if planet is not None:
            state.objects[(StateKind.PLANET, 0)] = planet.serialize()
        node_options.setdefault("crypto", self.crypto)
        node_options.setdefault("fast_path", self.fast_path)
        node = Node(identity, now=self.now, random_bytes=self.random_bytes, state=state,
                    **node_options)  # fmt: skip
        sim = SimNode(name, identity, endpoint, state, node,
                      controller=node_options.get("controller"))  # fmt: skip
        self.nodes[name] = sim
        self._by_endpoint[endpoint] = sim
        self._drain(sim)
        return sim

    def _drain(self, sim: SimNode) -> None:
        actions = sim.node.drain_actions()
        while actions:
            self._apply(sim, actions)
            actions = sim.node.drain_actions()  # what answering config requests made

    def _apply(self, sim: SimNode, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, SendPacket):
                sim.sent_datagrams += 1
                self._transmit(sim, action)
            elif isinstance(action, PutState):
                sim.state.apply(action)
            elif isinstance(action, DeliverFrame):
                sim.delivered.append(action)
            elif isinstance(action, NodeEvent):
                sim.events.append(action)
            elif isinstance(action, ConfigRequested) and sim.controller is not None:
                answer = sim.controller.request(self.now, action.nwid, action.requester,
                                                action.metadata)  # fmt: skip
                sim.node.on_config_answer(self.now, action, answer)

    def _transmit(self, sim: SimNode, action: SendPacket) -> None:
        target = self._by_endpoint.get(action.remote)
        if target is None:
            self.dropped += 1
            return
        if frozenset((sim.name, target.name)) in self.blocked:
            self.dropped += 1
            return
        copies = 1
        if self.rng.random() < self.loss:
            copies = 0
        elif self.rng.random() < self.duplicate:
            copies = 2
        for _ in range(copies):
            delay = self.rng.randint(self.min_delay, self.max_delay)
            self._seq += 1
            heapq.heappush(self._flights, _Flight(self.now + delay, self._seq, sim.endpoint,
                                                  action.remote, action.data))  # fmt: skip
        if copies == 0:
            self.dropped += 1

    def step(self, limit: int | None = None) -> bool:
        """Advance to and process the next event, but not past ``limit``."""
        next_timer = min(s.node.next_deadline() for s in self.nodes.values())
        next_event = min(next_timer, self._flights[0].at) if self._flights else next_timer
        if limit is not None and next_event > limit:
            self.now = max(self.now, limit)
            return False
        if self._flights and self._flights[0].at <= next_timer:
            flight = heapq.heappop(self._flights)
            self.now = max(self.now, flight.at)
            target = self._by_endpoint[flight.dst]
            target.received_datagrams += 1
            self.delivered += 1
            target.node.on_wire_packet(self.now, 1, flight.src, flight.data)
            self._drain(target)
            return True
        self.now = max(self.now, next_timer)
        for sim in self.nodes.values():
            if sim.node.next_deadline() <= self.now:
                sim.node.on_timer(self.now)
                self._drain(sim)
        return True

    def run(self, duration_ms: int, until: Callable[[], bool] | None = None,
            max_events: int = 2_000_000) -> bool:  # fmt: skip
        """Run for ``duration_ms`` of virtual time or until ``until()``; its last value."""
        end = self.now + duration_ms
        for _ in range(max_events):
            if until is not None and until():
                return True
            if self.now >= end:
                break
            self.step(end)
        return until() if until is not None else True


def make_planet(roots: list[tuple[Identity, str]], signing: tuple[bytes, bytes],
                world_id: int = 0x5A5A, timestamp: int = START) -> World:  # fmt: skip
    public, private = signing
    return World.make(
        WorldType.PLANET,
        world_id,
        timestamp,
        public,
        [Root(i.public_only(), (InetAddress(ipaddress.ip_address(ip), 9993),)) for i, ip in roots],
        private,
    )
