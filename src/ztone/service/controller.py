"""The embedded network controller wired into the daemon (PROTOCOL-NETWORK-SERVICE B.1, B.4).

It answers the node's config requests from the store (``ztone.controller.core``):
the core emits a ``ConfigRequested`` action, the service's action drain calls
:meth:`EmbeddedController.request` and hands the answer back to the node, so no
storage I/O runs inside the node's packet handling. It remembers which members are
online (asked within 120 s) and turns store changes into pushes: a changed network
or member is marked stale and gets a fresh config at the service's next turn
(:meth:`EmbeddedController.push_pending`) unless an answer carried it meanwhile;
a deauthorized member gets a revocation sent to every online member.

Changes made elsewhere (another ztone instance or program writing the same PostgreSQL
database) arrive as the store's notifications and are handled the same way, on the
service's thread.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from ztone.controller.core import answer_request, make_revocation
from ztone.controller.member_index import NetworkMembers
from ztone.controller.objects import JsonObject, is_authorized, same_record
from ztone.controller.store import ChangeEvent, ControllerStore, open_controller_store
from ztone.controller.stores import open_store
from ztone.node.actions import ControllerAnswer
from ztone.node.bounds import CONTROLLER_MAX_PENDING
from ztone.node.node import Node
from ztone.node.wire.dictionary import Dictionary
from ztone.node.wire.identity import Identity
from ztone.service.controller_lazy import RATE_LIMIT
from ztone.service.metrics import ControllerCounts
from ztone.util.store_location import postgres_conninfo

log = logging.getLogger(__name__)

ONLINE_WINDOW = 120_000
REQUEST_RATE_LIMIT = RATE_LIMIT
AUTHORIZED_MEMORY = 180_000


T = TypeVar("T")


def open_location(location: str) -> ControllerStore:
    """The store at ``location``: PostgreSQL for a connection string, else the SQLite
    database in the ``controller.d`` directory ``location`` (importing a zerotier-one
    tree found there the first time)."""
    if postgres_conninfo(location) is not None:
        return open_store(location)
    return open_controller_store(location)


def _put_bounded(
    table: dict[tuple[int, int], T],
    key: tuple[int, int],
    value: T,
    stale: Callable[[T], bool],
    limit: int,
) -> None:
    """Set ``table[key]`` as its newest entry; at ``limit`` first drop stale entries,
    then the oldest (the tables of :mod:`ztone.node.bounds` the controller keeps)."""
    table.pop(key, None)
    if len(table) >= limit:
        for k in [k for k, v in table.items() if stale(v)]:
            del table[k]
        while len(table) >= limit:
            del table[next(iter(table))]
    table[key] = value


@dataclass
class _Online:
    last_request: int
    identity: Identity
    metadata: bytes


class EmbeddedController:
    """``LocalController`` for the node and ``ControllerApiBackend`` for the API."""

    def __init__(
        self,
        identity: Identity,
        store: ControllerStore,
        node: Callable[[], Node],
        wake: Callable[[], None],
        post: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        """``post`` runs a call on the service's thread (the event loop's
        ``call_soon_threadsafe``): a store reports changes made by other processes
        (PostgreSQL's notifications) from a thread of its own, and the node is only
        ever touched from the service's thread. Without it, changes are handled where
        they are reported."""
        self.identity = identity
        self._store = store
        self._node = node
        self._wake = wake
        self._online: dict[tuple[int, int], _Online] = {}
        self._last_request: dict[tuple[int, int], int] = {}
        self._authorized: dict[tuple[int, int], int] = {}
        self._stale: dict[tuple[int, int], None] = {}  # online members owed a fresh config
        self._views: dict[int, NetworkMembers] = {}  # per network, see _view
        self._networks: dict[int, JsonObject] = {}  # see _network
        self.max_pending = CONTROLLER_MAX_PENDING
        self.counts = ControllerCounts()
        self._post = post
        self.fenced = False
        self._thread = threading.get_ident()
        store.add_listener(self._on_store_event)

    # --- ControllerApiBackend ----------------------------------------------------

    @property
    def address(self) -> int:
        return int(self.identity.address)

    @property
    def store(self) -> ControllerStore:
        return self._store

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def random_u64(self) -> int:
        return int.from_bytes(os.urandom(8), "big")

    def notify_changed(self, nwid: int, member: int | None) -> None:
        self._wake()

    def last_requests(self, nwid: int) -> dict[int, int]:
        """When each member of ``nwid`` last got a config from us (ms since the epoch),
        for members heard from within the online window (the table is bounded)."""
        return {addr: o.last_request for addr, o in self._online_members(nwid, self.now_ms())}

    # --- LocalController ----------------------------------------------------------

    def rate_gate(self, nwid: int, member: int, now: int) -> bool:
        key = (nwid, member)
        last = self._last_request.get(key)
        if last is not None and now - last <= REQUEST_RATE_LIMIT:
            return False
        _put_bounded(
            self._last_request, key, now, lambda t: now - t > REQUEST_RATE_LIMIT, self.max_pending
        )
        return True

    def recently_authorized(self, nwid: int, member: int, now: int) -> bool:
        t = self._authorized.get((nwid, member))
        return t is not None and now - t < AUTHORIZED_MEMORY

    def note_authorized(self, nwid: int, member: int, now: int) -> None:
        _put_bounded(
            self._authorized,
            (nwid, member),
            now,
            lambda t: now - t >= AUTHORIZED_MEMORY,
            self.max_pending,
        )

    def request(
        self, now: int, nwid: int, identity: Identity, metadata: Dictionary
    ) -> ControllerAnswer:
        self.counts.config_requests += 1
        if self.fenced:
            return ControllerAnswer(None, None)
        return self._answer(now, nwid, identity, metadata, real_request=True)

    def _answer(
        self, now: int, nwid: int, identity: Identity, metadata: Dictionary, real_request: bool
    ) -> ControllerAnswer:
        address = int(identity.address)
        network = self._network(nwid)
        member = self._store.get_member(nwid, address) if network else None
        view = self._view(nwid) if network else NetworkMembers()
        answer = answer_request(
            now=now,
            controller=self.identity,
            nwid=nwid,
            network=network,
            member=member,
            requester=identity,
            metadata=metadata,
            members=(),
            rand64=self.random_u64,
            real_request=real_request,
            view=view,
        )
        if answer.config is not None:
            online = _Online(now, identity, metadata.serialize())
            _put_bounded(
                self._online,
                (nwid, address),
                online,
                lambda o: now - o.last_request >= ONLINE_WINDOW,
                self.max_pending,
            )
        # Saved only when the answer changed it (a store write is a durable commit;
        # the store would find it unchanged too, after a locked read).
        if answer.member is not None and (member is None or not same_record(member, answer.member)):
            try:
                self._store.save_member(answer.member)
            except Exception:
                log.exception("controller: cannot save member %010x of %016x", address, nwid)
        # This answer reflects every change stored before it: nothing more is owed.
        self._stale.pop((nwid, address), None)
        return ControllerAnswer(answer.config, answer.error)

    # --- pushing changes --------------------------------------------------------------

    def _online_members(self, nwid: int, now: int) -> list[tuple[int, _Online]]:
        return [
            (addr, o)
            for (n, addr), o in self._online.items()
            if n == nwid and now - o.last_request < ONLINE_WINDOW
        ]

    def push_pending(self, now: int) -> None:
        """Send a fresh config to every online member a store change made stale.

        Called by the service between inputs (never from inside the node); a member
        whose own request was answered since the change is skipped (its answer
        carried the config). Bounded: only online members are marked, and the online
        table is bounded by ``max_pending``.
        """
        stale, self._stale = self._stale, {}
        if self.fenced:
            return
        for nwid, address in stale:
            online = self._online.get((nwid, address))
            if online is not None and now - online.last_request < ONLINE_WINDOW:
                self._push(now, nwid, address, online)

    def _mark_stale(self, nwid: int, address: int) -> None:
        self._stale[(nwid, address)] = None

    def _push(self, now: int, nwid: int, address: int, online: _Online) -> None:
        answer = self._answer(
            now, nwid, online.identity, Dictionary.parse(online.metadata), real_request=False
        )
        if answer.config is not None:
            self._node().push_config(now, nwid, address, answer.config)

    def _count(self, event: ChangeEvent) -> None:
        """The ``controller_*_count`` counters, as the reference's DB change hooks count."""
        if event.kind == "network":
            if event.old is not None and event.new is not None:
                self.counts.network_changes += 1
            return
        was = event.old is not None and is_authorized(event.old)
        now_authorized = event.new is not None and is_authorized(event.new)
        if now_authorized and not was:
            self.counts.member_auths += 1
        elif was and not now_authorized:
            self.counts.member_deauths += 1
        else:
            self.counts.member_changes += 1

    def _on_store_event(self, event: ChangeEvent) -> None:
        if self._post is None or threading.get_ident() == self._thread:
            self._on_change(event)
        else:
            self._post(lambda: self._on_change(event))

    def fence(self) -> None:
        """The controller lease is lost: from now on answer no request and push nothing
        (another daemon with this identity may be the active one already)."""
        self.fenced = True
        self._stale.clear()

    def close(self) -> None:
        """Stop taking store events (the store may outlive this controller)."""
        self._store.remove_listener(self._on_store_event)

    def _network(self, nwid: int) -> JsonObject | None:
        """The network's record: read once, then kept from the store's change events
        (a network that does not exist is asked of the store each time: those are
        not kept, so requests for made-up networks fill nothing)."""
        network = self._networks.get(nwid)
        if network is None:
            network = self._store.get_network(nwid)
            if network is not None:
                self._networks[nwid] = network
        return network

    def _view(self, nwid: int) -> NetworkMembers:
        """The network's members as answers need them: read once, then kept up to
        date from the store's change events (:meth:`_on_change`)."""
        view = self._views.get(nwid)
        if view is None:
            view = NetworkMembers(self._store.list_members(nwid))
            self._views[nwid] = view
        return view

    def _on_change(self, event: ChangeEvent) -> None:
        if event.kind == "network":
            # Also how a store says it may have missed changes: read the members again.
            self._views.pop(event.nwid, None)
            if event.new is None:
                self._networks.pop(event.nwid, None)
            else:
                self._networks[event.nwid] = event.new
        elif event.address is not None and (view := self._views.get(event.nwid)) is not None:
            if event.new is None:
                view.remove(event.address)
            else:
                view.put(event.new)
        self._count(event)
        now = self.now_ms()
        if event.kind == "member" and event.address is not None:
            if event.deauthorized:
                self._revoke(now, event.nwid, event.address)
            online = self._online.get((event.nwid, event.address))
            if online is not None and now - online.last_request < ONLINE_WINDOW and event.new:
                self._mark_stale(event.nwid, event.address)
        elif event.kind == "network":
            if event.deleted:
                for address, _ in self._online_members(event.nwid, now):
                    self._revoke(now, event.nwid, address)
                return
            for address, _ in self._online_members(event.nwid, now):
                self._mark_stale(event.nwid, address)
        self._wake()

    def _revoke(self, now: int, nwid: int, address: int) -> None:
        revocation = make_revocation(self.identity, nwid, address, now, self.random_u64())
        members = [a for a, _ in self._online_members(nwid, now)]
        self._node().send_revocation(now, members, revocation)
        self._online.pop((nwid, address), None)
