"""Controller storage: the :class:`ControllerStore` interface and its SQLite backend.

A store holds network and member records as JSON objects (PROTOCOL-NETWORK-SERVICE
B.7, B.8) and gives them the reference DB's save semantics (B.5): a save that changes
anything other than ``revision`` bumps ``revision`` by one, is written, and is
announced to the change listeners; an unchanged record is not written.

:class:`SqliteStore` is the embedded default: one SQLite file (by default
``<home>/controller.d/ztone-controller.db``) in WAL mode with ``synchronous=FULL``.
Every change is one transaction, committed before the call returns, so anything a
caller acknowledged survives ``kill -9`` (and, with FULL, a power cut). Records are
stored as compact JSON text keyed by their lower-case hex ids.

:func:`read_controller_d` reads a zerotier-one ``controller.d`` tree (B.5: the
FileDB layout) and :meth:`SqliteStore.import_controller_d` copies it into a store
field for field.

Threads: a store may be used from several threads (one lock serializes all access).
Listeners run on the thread that made the change, after its transaction committed,
outside the lock.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from ztone.controller.objects import (
    JsonObject,
    address_hex,
    is_authorized,
    network_id_hex,
    parse_address,
    parse_network_id,
    revise,
)
from ztone.util.atomic import fsync_directory

log = logging.getLogger(__name__)

DB_FILENAME = "ztone-controller.db"
SCHEMA_VERSION = 1

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS network ("
    " nwid TEXT PRIMARY KEY NOT NULL,"
    " doc TEXT NOT NULL"
    ") WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS member ("
    " nwid TEXT NOT NULL,"
    " address TEXT NOT NULL,"
    " doc TEXT NOT NULL,"
    " PRIMARY KEY (nwid, address)"
    ") WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS meta ("
    " key TEXT PRIMARY KEY NOT NULL,"
    " value TEXT NOT NULL"
    ") WITHOUT ROWID",
)

_IMPORT_CHECKED = "controller_d_import_checked"


class StoreError(Exception):
    """The store cannot do what was asked (closed, bad record...)."""


class UnknownNetwork(StoreError, KeyError):
    """A member operation named a network the store does not hold."""


# --- change events ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One committed change. ``old``/``new`` are None for a creation/deletion."""

    kind: Literal["network", "member"]
    nwid: int
    address: int | None  # the member's address; None for a network event
    old: JsonObject | None
    new: JsonObject | None

    @property
    def deleted(self) -> bool:
        return self.new is None

    @property
    def deauthorized(self) -> bool:
        """A member that was authorized is not any more (changed or deleted): the
        reference's ``onNetworkMemberDeauthorize`` case (B.4)."""
        if self.kind != "member" or self.old is None or not is_authorized(self.old):
            return False
        return self.new is None or not is_authorized(self.new)


ChangeListener = Callable[[ChangeEvent], None]

Mutation = Callable[[JsonObject | None], JsonObject]
"""Given the stored record (a private copy) or None, return the record to save."""


class Listeners:
    """A store's change listeners (shared by every store): added and removed from any
    thread, called in order after each commit. A listener that raises is logged; the
    write it follows stands."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: list[ChangeListener] = []

    def add(self, listener: ChangeListener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def remove(self, listener: ChangeListener) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def notify(self, events: list[ChangeEvent]) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for event in events:
            for listener in listeners:
                try:
                    listener(event)
                except Exception:
                    log.exception("controller store listener failed on %s", event)


def record_network_id(record: JsonObject) -> int:
    """The network id a network record names itself by (its ``id``)."""
    nwid = parse_network_id(record.get("id"))
    if nwid is None:
        raise StoreError("network record needs a 16-hex id")
    return nwid


def record_member_ids(record: JsonObject) -> tuple[int, int]:
    """The (network id, address) a member record names itself by (``nwid``, ``id``)."""
    nwid = parse_network_id(record.get("nwid"))
    address = parse_address(record.get("id"))
    if nwid is None or address is None:
        raise StoreError("member record needs a 16-hex nwid and a 10-hex id")
    return nwid, address


def mutated_network(old: JsonObject | None, nwid: int, mutate: Mutation) -> JsonObject | None:
    """What an update of network ``nwid`` stores: ``mutate`` of a private copy of
    ``old``, which must keep its id, with the revision rule; None if nothing changed."""
    new = mutate(None if old is None else copy.deepcopy(old))
    if record_network_id(new) != nwid:
        raise StoreError("mutation changed the network id")
    return revise(old, new)


def mutated_member(
    old: JsonObject | None, nwid: int, address: int, mutate: Mutation
) -> JsonObject | None:
    """:func:`mutated_network` for member ``address`` of ``nwid``."""
    new = mutate(None if old is None else copy.deepcopy(old))
    if record_member_ids(new) != (nwid, address):
        raise StoreError("mutation changed the member's nwid or id")
    return revise(old, new)


# --- the interface ----------------------------------------------------------------------


class ControllerStore(Protocol):
    """Networks and members, with the reference DB's revision and listener rules.

    Records are returned as fresh copies (the caller may modify them). ``save_*`` and
    ``update_*`` return ``(stored record, changed)``; when ``changed`` is False
    nothing was written and no listener was called.
    """

    def is_ready(self) -> bool: ...

    def add_listener(self, listener: ChangeListener) -> None: ...

    def remove_listener(self, listener: ChangeListener) -> None: ...

    # networks

    def has_network(self, nwid: int) -> bool: ...

    def get_network(self, nwid: int) -> JsonObject | None: ...

    def list_networks(self) -> list[int]: ...  # ascending

    def save_network(self, network: JsonObject) -> tuple[JsonObject, bool]: ...

    def update_network(self, nwid: int, mutate: Mutation) -> tuple[JsonObject, bool]: ...

    def delete_network(self, nwid: int) -> JsonObject | None: ...  # and its members

    # members

    def get_member(self, nwid: int, address: int) -> JsonObject | None: ...

    def list_members(self, nwid: int) -> list[JsonObject]: ...  # ascending address

    def save_member(self, member: JsonObject) -> tuple[JsonObject, bool]: ...

    def update_member(
        self, nwid: int, address: int, mutate: Mutation
    ) -> tuple[JsonObject, bool]: ...

    def delete_member(self, nwid: int, address: int) -> JsonObject | None: ...

    def import_tree(self, tree: ControllerDTree) -> tuple[int, int]: ...  # records as they are

    def close(self) -> None: ...


# --- controller.d (zerotier-one's FileDB tree) -----------------------------------------


@dataclass(frozen=True, slots=True)
class ControllerDTree:
    """What :func:`read_controller_d` found."""

    networks: dict[int, JsonObject]
    members: dict[int, dict[int, JsonObject]]  # nwid -> address -> member
    skipped: list[str]  # files that were not loaded, and why


def _read_json_object(path: Path) -> JsonObject:
    data = json.loads(path.read_bytes().decode("utf-8"))
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def read_controller_d(path: str | os.PathLike[str]) -> ControllerDTree:
    """Read a zerotier-one ``controller.d`` directory as ``FileDB`` loads it (B.5).

    ``network/<16 hex>.json`` files (names of exactly 21 characters) whose ``id`` is
    16 hex digits, then ``network/<id>/member/<10 hex>.json`` (15 characters) whose
    ``id`` is 10 hex digits. A member's network is the one whose directory holds it.
    Anything else (``trace/``, unparsable or foreign files) is skipped and listed.
    Records are returned exactly as stored: every field, revisions unchanged.
    """
    root = Path(path)
    networks: dict[int, JsonObject] = {}
    members: dict[int, dict[int, JsonObject]] = {}
    skipped: list[str] = []
    network_dir = root / "network"
    try:
        names = sorted(os.listdir(network_dir))
    except FileNotFoundError:
        return ControllerDTree(networks, members, skipped)
    for name in names:
        file = network_dir / name
        if len(name) != 21 or not name.endswith(".json") or not file.is_file():
            if not (file.is_dir() and parse_network_id(name) is not None):
                skipped.append(f"{file}: not a network file")
            continue
        try:
            network = _read_json_object(file)
        except (OSError, ValueError) as e:
            skipped.append(f"{file}: {e}")
            continue
        nwid = parse_network_id(network.get("id"))
        if nwid is None:
            skipped.append(f"{file}: no 16-hex id")
            continue
        networks[nwid] = network
        members[nwid] = {}
        member_dir = network_dir / network["id"] / "member"
        try:
            member_names = sorted(os.listdir(member_dir))
        except FileNotFoundError:
            continue
        for member_name in member_names:
            member_file = member_dir / member_name
            if len(member_name) != 15 or not member_name.endswith(".json"):
                skipped.append(f"{member_file}: not a member file")
                continue
            try:
                member = _read_json_object(member_file)
            except (OSError, ValueError) as e:
                skipped.append(f"{member_file}: {e}")
                continue
            address = parse_address(member.get("id"))
            if address is None:
                skipped.append(f"{member_file}: no 10-hex id")
                continue
            members[nwid][address] = member
    return ControllerDTree(networks, members, skipped)


# --- SQLite -----------------------------------------------------------------------------


def _dump(record: JsonObject) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _load(text: str) -> JsonObject:
    data: Any = json.loads(text)
    if not isinstance(data, dict):
        raise StoreError("stored record is not a JSON object")
    return data


class SqliteStore:
    """The embedded controller database (see the module docstring).

    ``SqliteStore(path)`` opens (creating if needed) the database file ``path``;
    :func:`open_controller_store` picks the default path under ``controller.d``.
    Only this process should write the file while it is open.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self.listeners = Listeners()
        existed = self.path.exists()
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not existed:
            # Create the file 0600 before SQLite opens it (it keeps the mode).
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
        self._db: sqlite3.Connection | None = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        try:
            self._setup()
        except BaseException:
            self._db.close()
            self._db = None
            raise
        if not existed:
            fsync_directory(self.path.parent)

    def _setup(self) -> None:
        db = self._conn()
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()
        if mode is None or str(mode[0]).lower() != "wal":
            raise StoreError(f"{self.path}: cannot use WAL mode (got {mode!r})")
        db.execute("PRAGMA synchronous=FULL")
        with self._transaction() as cur:
            version = cur.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path}: database schema {version} is newer than this ztone's "
                    f"({SCHEMA_VERSION})"
                )
            for statement in _SCHEMA:
                cur.execute(statement)
            cur.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    # --- plumbing ----------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError("controller store is closed")
        return self._db

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Cursor]:
        """One write transaction: committed (durably) at the end, rolled back if the
        block raises."""
        db = self._conn()
        cur = db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            yield cur
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")

    @staticmethod
    def _get_network_text(cur: sqlite3.Cursor, nwid: int) -> str | None:
        row = cur.execute(
            "SELECT doc FROM network WHERE nwid = ?", (network_id_hex(nwid),)
        ).fetchone()
        return None if row is None else str(row[0])

    @staticmethod
    def _get_member_text(cur: sqlite3.Cursor, nwid: int, address: int) -> str | None:
        row = cur.execute(
            "SELECT doc FROM member WHERE nwid = ? AND address = ?",
            (network_id_hex(nwid), address_hex(address)),
        ).fetchone()
        return None if row is None else str(row[0])

    @staticmethod
    def _put_network(cur: sqlite3.Cursor, nwid: int, record: JsonObject) -> None:
        cur.execute(
            "INSERT OR REPLACE INTO network (nwid, doc) VALUES (?, ?)",
            (network_id_hex(nwid), _dump(record)),
        )

    @staticmethod
    def _put_member(cur: sqlite3.Cursor, nwid: int, address: int, record: JsonObject) -> None:
        cur.execute(
            "INSERT OR REPLACE INTO member (nwid, address, doc) VALUES (?, ?, ?)",
            (network_id_hex(nwid), address_hex(address), _dump(record)),
        )

    # --- lifecycle ---------------------------------------------------------------------

    def is_ready(self) -> bool:
        return self._db is not None

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                db, self._db = self._db, None
                db.close()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_listener(self, listener: ChangeListener) -> None:
        self.listeners.add(listener)

    def remove_listener(self, listener: ChangeListener) -> None:
        self.listeners.remove(listener)

    # --- networks ----------------------------------------------------------------------

    def has_network(self, nwid: int) -> bool:
        with self._lock:
            return self._get_network_text(self._conn().cursor(), nwid) is not None

    def get_network(self, nwid: int) -> JsonObject | None:
        with self._lock:
            text = self._get_network_text(self._conn().cursor(), nwid)
        return None if text is None else _load(text)

    def list_networks(self) -> list[int]:
        with self._lock:
            rows = self._conn().execute("SELECT nwid FROM network").fetchall()
        return sorted(int(r[0], 16) for r in rows)

    def save_network(self, network: JsonObject) -> tuple[JsonObject, bool]:
        """Save ``network`` (its ``id`` names it) with the revision rule."""
        nwid = record_network_id(network)
        record = copy.deepcopy(network)
        return self.update_network(nwid, lambda _old: record)

    def update_network(self, nwid: int, mutate: Mutation) -> tuple[JsonObject, bool]:
        """Read, ``mutate`` and save network ``nwid`` in one transaction. An exception
        from ``mutate`` rolls back and propagates (nothing changed)."""
        with self._lock, self._transaction() as cur:
            old_text = self._get_network_text(cur, nwid)
            old = None if old_text is None else _load(old_text)
            record = mutated_network(old, nwid, mutate)
            if record is None:
                assert old is not None
                return old, False
            self._put_network(cur, nwid, record)
        self.listeners.notify([ChangeEvent("network", nwid, None, old, copy.deepcopy(record))])
        return copy.deepcopy(record), True

    def delete_network(self, nwid: int) -> JsonObject | None:
        """Delete network ``nwid`` and all its members; return the network record (None
        if there was none). Listeners get one event per member, then the network's."""
        key = network_id_hex(nwid)
        with self._lock, self._transaction() as cur:
            old_text = self._get_network_text(cur, nwid)
            rows = cur.execute(
                "SELECT address, doc FROM member WHERE nwid = ? ORDER BY address", (key,)
            ).fetchall()
            if old_text is None and not rows:
                return None
            cur.execute("DELETE FROM member WHERE nwid = ?", (key,))
            cur.execute("DELETE FROM network WHERE nwid = ?", (key,))
        events = [ChangeEvent("member", nwid, int(a, 16), _load(d), None) for a, d in rows]
        old = None if old_text is None else _load(old_text)
        events.append(ChangeEvent("network", nwid, None, old, None))
        self.listeners.notify(events)
        return old

    # --- members -----------------------------------------------------------------------

    def get_member(self, nwid: int, address: int) -> JsonObject | None:
        with self._lock:
            text = self._get_member_text(self._conn().cursor(), nwid, address)
        return None if text is None else _load(text)

    def list_members(self, nwid: int) -> list[JsonObject]:
        with self._lock:
            rows = (
                self._conn()
                .execute(
                    "SELECT doc FROM member WHERE nwid = ? ORDER BY address",
                    (network_id_hex(nwid),),
                )
                .fetchall()
            )
        return [_load(str(r[0])) for r in rows]

    def save_member(self, member: JsonObject) -> tuple[JsonObject, bool]:
        """Save ``member`` (its ``nwid``/``id`` name it) with the revision rule;
        :class:`UnknownNetwork` if its network is not stored."""
        nwid, address = record_member_ids(member)
        record = copy.deepcopy(member)
        return self.update_member(nwid, address, lambda _old: record)

    def update_member(self, nwid: int, address: int, mutate: Mutation) -> tuple[JsonObject, bool]:
        """Read, ``mutate`` and save member ``address`` of ``nwid`` in one transaction
        (:class:`UnknownNetwork` if the network is not stored). An exception from
        ``mutate`` rolls back and propagates."""
        with self._lock, self._transaction() as cur:
            if self._get_network_text(cur, nwid) is None:
                raise UnknownNetwork(network_id_hex(nwid))
            old_text = self._get_member_text(cur, nwid, address)
            old = None if old_text is None else _load(old_text)
            record = mutated_member(old, nwid, address, mutate)
            if record is None:
                assert old is not None
                return old, False
            self._put_member(cur, nwid, address, record)
        self.listeners.notify([ChangeEvent("member", nwid, address, old, copy.deepcopy(record))])
        return copy.deepcopy(record), True

    def delete_member(self, nwid: int, address: int) -> JsonObject | None:
        """Delete a member; return its record (None if there was none)."""
        with self._lock, self._transaction() as cur:
            old_text = self._get_member_text(cur, nwid, address)
            if old_text is None:
                return None
            cur.execute(
                "DELETE FROM member WHERE nwid = ? AND address = ?",
                (network_id_hex(nwid), address_hex(address)),
            )
        old = _load(old_text)
        self.listeners.notify([ChangeEvent("member", nwid, address, old, None)])
        return old

    # --- import --------------------------------------------------------------------------

    def import_controller_d(self, path: str | os.PathLike[str]) -> tuple[int, int]:
        """Copy a zerotier-one ``controller.d`` tree into the store in one transaction:
        every record as it is (all fields, its revision), replacing records with the
        same ids. Returns (networks, members) imported. Listeners are not called
        (as the reference loads its files at start without notifying)."""
        return self._import(read_controller_d(path), None)

    def import_tree(self, tree: ControllerDTree) -> tuple[int, int]:
        """Write every record of ``tree`` as it is (revisions kept), replacing records
        with the same ids, in one transaction; listeners are not called."""
        return self._import(tree, None)

    def _import(self, tree: ControllerDTree, mark: str | None) -> tuple[int, int]:
        for line in tree.skipped:
            log.info("controller.d import: skipped %s", line)
        count = 0
        with self._lock, self._transaction() as cur:
            for nwid, network in tree.networks.items():
                self._put_network(cur, nwid, network)
                for address, member in tree.members.get(nwid, {}).items():
                    self._put_member(cur, nwid, address, member)
                    count += 1
            if mark is not None:
                cur.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                    (_IMPORT_CHECKED, mark),
                )
        return len(tree.networks), count

    def import_once(self, controller_d: str | os.PathLike[str]) -> tuple[int, int] | None:
        """The first time this database is opened over ``controller_d`` (it remembers),
        import the zerotier-one tree found there (possibly empty); later calls do
        nothing and return None. The import and the mark are one transaction."""
        with self._lock:
            row = (
                self._conn()
                .execute("SELECT value FROM meta WHERE key = ?", (_IMPORT_CHECKED,))
                .fetchone()
            )
            if row is not None:
                return None
            return self._import(read_controller_d(controller_d), str(controller_d))


def default_db_path(controller_d: str | os.PathLike[str]) -> Path:
    return Path(controller_d) / DB_FILENAME


def open_controller_store(
    controller_d: str | os.PathLike[str], db_path: str | os.PathLike[str] | None = None
) -> SqliteStore:
    """Open the controller database (``<controller_d>/ztone-controller.db`` unless
    ``db_path`` is given). The first time, a zerotier-one ``network/`` tree in
    ``controller_d`` is imported (:meth:`SqliteStore.import_once`), so a zerotier-one
    home keeps its controller's networks and members."""
    path = Path(db_path) if db_path is not None else default_db_path(controller_d)
    store = SqliteStore(path)
    try:
        imported = store.import_once(controller_d)
    except BaseException:
        store.close()
        raise
    if imported is not None and imported != (0, 0):
        log.info(
            "controller: imported %d networks and %d members from %s",
            imported[0],
            imported[1],
            controller_d,
        )
    return store
