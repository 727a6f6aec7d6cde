"""The embedded controller's answer path and pushes (``ztone.service.controller``) with a
real store and a real node: a member's own request saves its record without a push
of the same config (the answer carries it), and a later store change is pushed once,
at the service's next turn (``push_pending``), never from inside the store's listener."""

from __future__ import annotations

import contextlib
import queue
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sim.network import MemoryState, make_planet, vector_identities
from ztone.controller.objects import (
    apply_member_post,
    apply_network_post,
    init_member,
    init_network,
)
from ztone.controller.store import ControllerStore, StoreError, open_controller_store
from ztone.controller.stores import open_store
from ztone.crypto import c25519
from ztone.node.actions import StateKind
from ztone.node.node import Node
from ztone.node.wire.dictionary import Dictionary
from ztone.node.wire.network_config import request_metadata
from ztone.node.wire.packet import Verb
from ztone.service.config import LocalConf, Settings
from ztone.service.controller import EmbeddedController
from ztone.service.controller_lazy import controller_location

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


def _meta() -> Dictionary:
    return Dictionary.parse(request_metadata((1, 14, 1), "linux/x86_64").serialize())


def _ask(ctl: EmbeddedController) -> None:
    answer = ctl.request(_now(), NWID, MEMBER.public_only(), _meta())
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
    ctl.store.update_member(
        NWID, int(MEMBER.address), lambda m: apply_member_post(m or {}, {"name": "x"}, _now())
    )
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


# --- changes made elsewhere (PostgreSQL notifications, issue 16) --------------------------


class _Posted:
    """The service's thread: calls posted from the store's notification thread wait
    here until the test (the 'service') runs them."""

    def __init__(self) -> None:
        self.calls: queue.Queue[Callable[[], None]] = queue.Queue()

    def post(self, call: Callable[[], None]) -> None:
        self.calls.put(call)

    def run_one(self, timeout: float = 5.0) -> float:
        """Run the next posted call; the seconds waited for it."""
        start = time.monotonic()
        self.calls.get(timeout=timeout)()
        return time.monotonic() - start


def _pg_setup(conninfo: str) -> tuple[EmbeddedController, Node, ControllerStore, _Posted]:
    store = open_store(conninfo)
    ctl, node, _ = _setup(store)
    ctl.close()  # the same controller again, with a service thread of its own
    posted = _Posted()
    ctl = EmbeddedController(CONTROLLER, store, lambda: node, lambda: None, post=posted.post)
    _ask(ctl)
    return ctl, node, store, posted


def test_a_change_through_another_instance_is_pushed_postgres(pg_conninfo: str) -> None:
    ctl, node, store, posted = _pg_setup(pg_conninfo)
    try:
        with contextlib.closing(open_store(pg_conninfo)) as other:  # another ztone API
            other.update_member(
                NWID,
                int(MEMBER.address),
                lambda m: apply_member_post(m or {}, {"name": "elsewhere"}, _now()),
            )
            assert _pushes(node) == []  # nothing from the notification thread itself
            posted.run_one()
        ctl.push_pending(_now())
        assert _pushes(node) == [int(MEMBER.address)]
        assert posted.calls.empty()  # announced once, not echoed
    finally:
        store.close()


def test_a_deauthorization_by_another_program_revokes_postgres(pg_conninfo: str) -> None:
    ctl, node, store, posted = _pg_setup(pg_conninfo)
    try:
        ctl.store.update_member(
            NWID,
            int(MEMBER.address),
            lambda m: apply_member_post(m or {}, {"authorized": True}, _now()),
        )
        ctl.push_pending(_now())
        before = len(node.switch.tx)
        import psycopg  # noqa: PLC0415 (present: pg_conninfo did not skip)

        # Another program, following the documented schema: plain SQL.
        with psycopg.connect(pg_conninfo, autocommit=True) as conn:
            conn.execute(
                "UPDATE ztone_member SET doc = jsonb_set(doc, '{authorized}', 'false')"
                " WHERE nwid = %s AND address = %s",
                (f"{NWID:016x}", f"{int(MEMBER.address):010x}"),
            )
        posted.run_one()
        sent = [e.verb for e in node.switch.tx[before:]]
        assert Verb.NETWORK_CREDENTIALS in sent  # the revocation
        assert ctl.counts.member_deauths == 1
    finally:
        store.close()


def test_the_store_location_comes_from_env_file_or_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def settings(**conf: str) -> Settings:
        return LocalConf.from_json({"settings": conf}).settings

    assert controller_location(settings(), "/home/controller.d") == "/home/controller.d"
    assert controller_location(settings(controllerDbPath="postgres:host=h"), "d") == (
        "postgres:host=h"
    )
    secret = tmp_path / "db.url"
    secret.write_text("postgresql://ztone:s3cret@db/ztone\n")
    conf = settings(controllerDbPath="x", controllerDbUrlFile=str(secret))
    assert controller_location(conf, "d") == "postgresql://ztone:s3cret@db/ztone"
    monkeypatch.setenv("ZTONE_TEST_DB", "postgresql://from-env/db")
    conf = settings(controllerDbUrlFile=str(secret), controllerDbUrlEnv="ZTONE_TEST_DB")
    assert controller_location(conf, "d") == "postgresql://from-env/db"
    monkeypatch.setenv("ZTONE_TEST_DB", "")
    with pytest.raises(StoreError, match="ZTONE_TEST_DB is empty"):
        controller_location(conf, "d")
    with pytest.raises(StoreError, match="No such file"):
        controller_location(settings(controllerDbUrlFile=str(tmp_path / "none")), "d")


def test_answers_see_members_saved_after_the_first_answer(store: ControllerStore) -> None:
    """The kept member view follows the store: an IP given to another member after
    the view was read is not handed out again."""
    ctl, _node, _ = _setup(store)
    store.update_network(
        NWID,
        lambda n: apply_network_post(
            n or {},
            {
                "v4AssignMode": {"zt": True},
                "ipAssignmentPools": [{"ipRangeStart": "198.19.0.1", "ipRangeEnd": "198.19.0.3"}],
                "routes": [{"target": "198.19.0.0/24", "via": None}],
            },
            _now(),
        ),
    )
    _ask(ctl)  # builds the view; the member gets one of .1 and .2 (the pool's quirk)
    got = store.get_member(NWID, int(MEMBER.address))
    assert got is not None and got["ipAssignments"] in (["198.19.0.1"], ["198.19.0.2"])
    first = got["ipAssignments"][0]
    # Through the store: the member gives its IP up and another member takes it. A
    # view that missed either change would hand it out again.
    give_up: dict[str, object] = {"ipAssignments": []}
    store.update_member(NWID, int(MEMBER.address), lambda x: apply_member_post(x or {}, give_up, 0))
    take = {"authorized": True, "ipAssignments": [first]}
    store.save_member(apply_member_post(init_member(NWID, 0x0102030405, 0), take, 0))
    ctl.request(_now(), NWID, MEMBER.public_only(), _meta())
    got = store.get_member(NWID, int(MEMBER.address))
    assert got is not None and got["ipAssignments"] != [first]
    assert got["ipAssignments"] in (["198.19.0.1"], ["198.19.0.2"])


def test_a_network_deleted_through_another_instance_is_not_served_postgres(
    pg_conninfo: str,
) -> None:
    ctl, _node, store, posted = _pg_setup(pg_conninfo)  # answered once: the network is kept
    try:
        with contextlib.closing(open_store(pg_conninfo)) as other:
            other.delete_network(NWID)
            posted.run_one()  # the member's deletion
            posted.run_one()  # the network's
        answer = ctl.request(_now(), NWID, MEMBER.public_only(), _meta())
        assert answer.config is None and answer.error is not None
    finally:
        store.close()
