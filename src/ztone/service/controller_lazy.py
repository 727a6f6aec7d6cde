"""The embedded controller, loaded on first use (issue 17, memory).

Every node serves ``/controller`` and the ``controller_*`` metrics and answers config
requests for its own networks (PROTOCOL-NETWORK-SERVICE B.1, B.6), but most nodes are
never asked: their controller's modules (the msgspec records, the SQLite store, the
config answer) would be memory every daemon keeps for nothing. So at start-up the
daemon opens the store only when one is there to serve (:func:`needed_at_start`);
otherwise it hands the node and the API a :class:`LazyController`, which opens the
store and builds the :class:`~ztone.service.controller.EmbeddedController` the first
time something needs it: a ``/controller`` request, or a config request addressed to
this node as controller (its ``ConfigRequested`` action, in the service's action
drain: never inside the node's packet handling, which only passes the rate gate).

Nothing a peer or an API client sees changes: before that first use the controller
has answered nothing, so its in-memory gates are empty (nobody is recently
authorized) and its counters are zero, which is what :attr:`LazyController.loaded`
being None stands for. This module imports nothing from ``ztone.controller``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ztone.node.bounds import CONTROLLER_MAX_PENDING
from ztone.service.config import Settings
from ztone.util.store_location import postgres_conninfo

if TYPE_CHECKING:
    from ztone.service.controller import EmbeddedController

log = logging.getLogger(__name__)

RATE_LIMIT = 1_000
"""ms: a member asking again within this is not answered (the controller's rate gate)."""

SQLITE_FILENAME = "ztone-controller.db"
"""``ztone.controller.store.DB_FILENAME`` (a test checks they agree)."""


def controller_location(settings: Settings, default_controller_d: str) -> str:
    """Where the controller's store is, from local.conf's settings: the environment
    variable ``controllerDbUrlEnv`` names, else the file ``controllerDbUrlFile``, else
    ``controllerDbPath``, else ``default_controller_d``. A PostgreSQL connection
    string is returned as is (callers log it only through ``describe``).
    :class:`~ztone.controller.store.StoreError` if the variable or file is unusable."""
    if settings.controller_db_url_env:
        value = os.environ.get(settings.controller_db_url_env, "").strip()
        if not value:
            raise _store_error(f"environment variable {settings.controller_db_url_env} is empty")
        return value
    if settings.controller_db_url_file:
        try:
            with open(settings.controller_db_url_file, encoding="utf-8") as f:
                value = f.read().strip()
        except OSError as e:
            raise _store_error(f"controllerDbUrlFile: {e.strerror}: {e.filename}") from None
        if not value:
            raise _store_error(f"{settings.controller_db_url_file} is empty")
        return value
    return settings.controller_db_path or default_controller_d


def _store_error(message: str) -> Exception:
    # Only a configured store gets here, and a configured store loads the controller
    # at start anyway: importing the store module for its error type costs nothing.
    from ztone.controller.store import StoreError  # noqa: PLC0415

    return StoreError(message)


def needed_at_start(location: str, default_controller_d: str) -> bool:
    """True if the store at ``location`` must be opened at start-up: a store configured
    in local.conf (PostgreSQL, with its active/standby lease, or a SQLite path of its
    own), an existing ztone database, or a zerotier-one ``controller.d`` holding
    networks to import. A node that never served as a controller has none of these."""
    if location != default_controller_d or postgres_conninfo(location) is not None:
        return True
    controller_d = Path(location)
    if (controller_d / SQLITE_FILENAME).exists():
        return True
    try:
        return any(p.suffix == ".json" for p in (controller_d / "network").iterdir())
    except OSError:
        return False  # no zerotier-one tree (or none we could import anyway)


class LazyController:
    """The node's ``LocalController`` until (and after) the real one is loaded.

    ``load`` builds the controller, or returns None if its store cannot be opened (it
    logs why); it is called at most once. After a failed load the daemon has no
    controller, as it would have had with a start-up failure.
    """

    def __init__(self, load: Callable[[], EmbeddedController | None]) -> None:
        self._load: Callable[[], EmbeddedController | None] | None = load
        self.loaded: EmbeddedController | None = None
        # The rate gate's entries from before the load (the requests whose
        # ConfigRequested will load it), handed to the controller when it loads.
        self._early: dict[tuple[int, int], int] = {}
        self.max_early = CONTROLLER_MAX_PENDING

    @property
    def failed(self) -> bool:
        return self._load is None and self.loaded is None

    def get(self) -> EmbeddedController | None:
        """The controller, loading it now if this is its first use."""
        load, self._load = self._load, None
        if load is not None:
            self.loaded = controller = load()
            early, self._early = self._early, {}
            if controller is not None:
                for (nwid, member), when in early.items():
                    controller.rate_gate(nwid, member, when)  # records it
        return self.loaded

    def last_requests(self, nwid: int) -> dict[int, int]:
        """See :meth:`EmbeddedController.last_requests` (nothing asked yet: none)."""
        return {} if self.loaded is None else self.loaded.last_requests(nwid)

    # --- LocalController ----------------------------------------------------------

    def rate_gate(self, nwid: int, member: int, now: int) -> bool:
        # Called inside the node's packet handling: no loading (store I/O) here.
        if self.loaded is not None:
            return self.loaded.rate_gate(nwid, member, now)
        if self._load is None:
            return False  # the load failed: there is no controller to ask
        key = (nwid, member)
        last = self._early.get(key)
        if last is not None and now - last <= RATE_LIMIT:
            return False
        self._early.pop(key, None)
        while len(self._early) >= self.max_early:  # bounded: drop the oldest
            del self._early[next(iter(self._early))]
        self._early[key] = now
        return True

    def recently_authorized(self, nwid: int, member: int, now: int) -> bool:
        return self.loaded is not None and self.loaded.recently_authorized(nwid, member, now)

    def note_authorized(self, nwid: int, member: int, now: int) -> None:
        if self.loaded is not None:  # only a loaded controller answers (and authorizes)
            self.loaded.note_authorized(nwid, member, now)
