"""The embedded controller's answer path and pushes (``ztone.service.controller``) with a
real store and a real node: a member's own request saves its record without a push
of the same config (the answer carries it), and a later store change is pushed once,
at the service's next turn (``push_pending``), never from inside the store's listener."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sim.network import MemoryState, make_planet, vector_identities
from ztone.controller.objects import apply_member_post, apply_network_post, init_network
from ztone.controller.store import ControllerStore, open_controller_store
from ztone.controller.stores import open_store
from ztone.crypto import c25519
from ztone.node.actions import StateKind
from ztone.node.node import Node
from ztone.node.wire.dictionary import Dictionary
from ztone.node.wire.network_config import request_metadata
from ztone.node.wire.packet import Verb
from ztone.service.controller import EmbeddedController

IDS = vector_identities()
CONTROLLER, MEMBER = IDS[1], IDS[3]
NWID = (int(CONTROLLER.address) << 24) | 0x51


def _now() -> int:
    return int(time.time() * 1000)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ControllerStore]:
    """The embedded controller over each store (``-k postgres``: PostgreSQL's)."""
    if request.param == "postgres":
        s = open_store(request.getfixturevalue("pg_conninfo"))
    else:
        s = open_controller_store(str(tmp_path / "controller.d"))
    yield s
    s.close()


def _setup(store: ControllerStore) -> tuple[EmbeddedController, Node, list[int]]:
    planet = make_planet([(IDS[0], "198.18.0.10")], c25519.generate(lambda n: bytes([9]) * n))
    state = MemoryState()
    state.objects[(StateKind.PLANET, 0)] = planet.serialize()
    node = Node(CONTROLLER, now=_now(), random_bytes=random.Random(1).randbytes, state=state)
    node.add_peer(MEMBER.public_only())  # known, no path: a push waits in the send queue
    wakes: list[int] = []
    ctl = EmbeddedController(CONTROLLER, store, lambda: node, lambda: wakes.append(1))
    network = apply_network_post(init_network(NWID, _now()), {"private": False}, _now())
    store.save_network(network)
    return ctl, node, wakes


def _pushes(node: Node) -> list[int]:
    return [e.destination for e in node.switch.tx if e.verb == Verb.NETWORK_CONFIG]


def _ask(ctl: EmbeddedController) -> None:
    meta = Dictionary.parse(request_metadata((1, 14, 1), "linux/x86_64").serialize())
    answer = ctl.request(_now(), NWID, MEMBER.public_only(), meta)
    assert answer.config is not None


def test_the_member_s_own_request_is_not_followed_by_a_push(store: ControllerStore) -> None:
    ctl, node, _ = _setup(store)
    _ask(ctl)  # the answer saves the new member record (a store change)
    ctl.push_pending(_now())
    assert _pushes(node) == []


def test_a_store_change_is_pushed_once_at_the_next_turn(store: ControllerStore) -> None:
    ctl, node, wakes = _setup(store)
    _ask(ctl)
    wakes.clear()
    ctl.store.update_member(NWID, int(MEMBER.address),
                            lambda m: apply_member_post(m or {}, {"name": "x"}, _now()))
    assert _pushes(node) == [] and wakes  # nothing from inside the listener; woken
    ctl.push_pending(_now())
    assert _pushes(node) == [int(MEMBER.address)]
    ctl.push_pending(_now())
    assert _pushes(node) == [int(MEMBER.address)]  # once


def test_a_request_after_a_change_makes_the_push_unnecessary(store: ControllerStore) -> None:
    ctl, node, _ = _setup(store)
    _ask(ctl)
    ctl.store.update_network(NWID, lambda n: apply_network_post(n or {}, {"name": "y"}, _now()))
    _ask(ctl)  # the member asked again before the service's turn: its answer has it
    ctl.push_pending(_now())
    assert _pushes(node) == []
