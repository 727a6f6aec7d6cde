"""The controller store in PostgreSQL (issue 16), behind :class:`ControllerStore`.

Schema (created and migrated by ztone itself; ``ztone_meta.schema_version`` holds the
version, and a newer database than this ztone knows is refused)::

    ztone_meta    (key text PRIMARY KEY, value text)
    ztone_network (nwid text PRIMARY KEY,               -- 16 lower-case hex digits
                   doc jsonb)                           -- the network record (B.7)
    ztone_member  (nwid text REFERENCES ztone_network ON DELETE CASCADE,
                   address text,                        -- 10 lower-case hex digits
                   doc jsonb,                           -- the member record (B.8)
                   PRIMARY KEY (nwid, address))

Another program may write these tables directly (a record must carry the same ids as
its key; ``revision`` is its own business). Every insert, update or delete, whoever
makes it, fires a trigger that sends ``NOTIFY ztone_controller`` with the JSON payload
``{"kind": "network"|"member", "op": "INSERT"|"UPDATE"|"DELETE", "nwid": hex,
"address": hex (members), "oldAuthorized": json (updates and deletes of members),
"origin": text|null}``. A store LISTENs on a connection of its own and turns
notifications from elsewhere into :class:`ChangeEvent` s (its own writes it announces
itself, synchronously, as :class:`SqliteStore` does; ``origin`` tells them apart).
Events from elsewhere carry the current record as ``new`` and, for members, an ``old``
that holds only ``authorized``: enough for the deauthorization rule (B.4).

Durability: each save is one transaction committed before the call returns
(PostgreSQL's ``synchronous_commit`` applies). Read-modify-write runs under a
transaction-scoped advisory lock on the record's key, so concurrent writers from any
number of ztone processes keep the revision rule.

Threads: the pool serves any thread. Listeners run on the writing thread for this
store's own changes and on the store's notification thread for the others.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from ztone.controller.objects import (
    JsonObject,
    address_hex,
    network_id_hex,
    parse_address,
    parse_network_id,
)
from ztone.controller.store import (
    ChangeEvent,
    ChangeListener,
    ControllerDTree,
    Listeners,
    Mutation,
    StoreError,
    UnknownNetwork,
    mutated_member,
    mutated_network,
    read_controller_d,
    record_member_ids,
    record_network_id,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
CHANNEL = "ztone_controller"
NOTIFY_RECONNECT_DELAY = 1.0
_MIGRATION_LOCK = 0x7A746F6E65_00  # "ztone" + 0: serializes concurrent schema set-ups

_NOTIFY_FUNCTION = f"""
CREATE OR REPLACE FUNCTION ztone_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    payload jsonb;
    rec jsonb;
BEGIN
    IF TG_OP = 'DELETE' THEN rec := to_jsonb(OLD); ELSE rec := to_jsonb(NEW); END IF;
    payload := jsonb_build_object(
        'kind', TG_ARGV[0], 'op', TG_OP, 'nwid', rec->>'nwid',
        'origin', current_setting('ztone.origin', true));
    IF TG_ARGV[0] = 'member' THEN
        payload := payload || jsonb_build_object('address', rec->>'address');
        IF TG_OP <> 'INSERT' THEN
            payload := payload || jsonb_build_object(
                'oldAuthorized', COALESCE(OLD.doc->'authorized', 'false'::jsonb));
        END IF;
    END IF;
    PERFORM pg_notify('{CHANNEL}', payload::text);
    RETURN NULL;
END
$$
"""

# version -> the statements that bring the schema from version - 1 to it
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "CREATE TABLE ztone_network ("
        " nwid text PRIMARY KEY CHECK (nwid ~ '^[0-9a-f]{16}$'),"
        " doc jsonb NOT NULL CHECK (jsonb_typeof(doc) = 'object'))",
        "CREATE TABLE ztone_member ("
        " nwid text NOT NULL REFERENCES ztone_network (nwid) ON DELETE CASCADE,"
        " address text NOT NULL CHECK (address ~ '^[0-9a-f]{10}$'),"
        " doc jsonb NOT NULL CHECK (jsonb_typeof(doc) = 'object'),"
        " PRIMARY KEY (nwid, address))",
        _NOTIFY_FUNCTION,
        "CREATE TRIGGER ztone_network_notify AFTER INSERT OR UPDATE OR DELETE"
        " ON ztone_network FOR EACH ROW EXECUTE FUNCTION ztone_notify('network')",
        "CREATE TRIGGER ztone_member_notify AFTER INSERT OR UPDATE OR DELETE"
        " ON ztone_member FOR EACH ROW EXECUTE FUNCTION ztone_notify('member')",
    ),
}


def _doc(value: Any) -> JsonObject:
    if isinstance(value, str):  # a text column or an old driver
        value = json.loads(value)
    if not isinstance(value, dict):
        raise StoreError("stored record is not a JSON object")
    return value


def migrate_schema(conn: psycopg.Connection[Any]) -> int:
    """Create or bring up to date the schema; returns the version found before."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS ztone_meta (key text PRIMARY KEY, value text NOT NULL)"
        )
        row = conn.execute("SELECT value FROM ztone_meta WHERE key = 'schema_version'").fetchone()
        found = int(row[0]) if row is not None else 0
        if found > SCHEMA_VERSION:
            raise StoreError(
                f"controller database schema {found} is newer than this ztone's ({SCHEMA_VERSION})"
            )
        for version in range(found + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[version]:
                conn.execute(statement.encode())
        conn.execute(
            "INSERT INTO ztone_meta (key, value) VALUES ('schema_version', %s)"
            " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            (str(SCHEMA_VERSION),),
        )
    return found


class PostgresStore:
    """Networks and members in PostgreSQL (see the module docstring).

    ``conninfo`` is a libpq connection string or URI; it may hold a password, so it
    is never logged. ``listen`` starts the notification thread (changes made
    elsewhere reach the listeners).
    """

    def __init__(
        self, conninfo: str, *, listen: bool = True, min_size: int = 1, max_size: int = 4
    ) -> None:
        self._conninfo = conninfo
        self._lock = threading.RLock()
        self.listeners = Listeners()
        self.origin = uuid.uuid4().hex
        self._closed = threading.Event()
        try:
            with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
                migrate_schema(conn)
        except psycopg.Error as e:
            raise StoreError(f"PostgreSQL controller store: {_safe(e)}") from None
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = ConnectionPool(
            conninfo,
            min_size=min_size,
            max_size=max_size,
            open=False,
            timeout=10.0,
            kwargs={"connect_timeout": 10},
        )
        self._pool.open(wait=True, timeout=10.0)
        self._listen_ready = threading.Event()
        self._thread: threading.Thread | None = None
        if listen:
            self._thread = threading.Thread(
                target=self._listen_loop, name="ztone-pg-notify", daemon=True
            )
            self._thread.start()
            self._listen_ready.wait(10.0)

    # --- plumbing ----------------------------------------------------------------------

    def _pool_or_raise(self) -> ConnectionPool[psycopg.Connection[Any]]:
        if self._pool is None:
            raise StoreError("controller store is closed")
        return self._pool

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        try:
            with self._pool_or_raise().connection() as conn:
                yield conn
        except psycopg.Error as e:
            raise StoreError(f"PostgreSQL controller store: {_safe(e)}") from e

    @contextlib.contextmanager
    def _transaction(self, *lock_keys: str) -> Iterator[psycopg.Connection[Any]]:
        """One transaction tagged with this store's origin, holding advisory locks on
        ``lock_keys`` (record keys) until it ends."""
        with self._connection() as conn, conn.transaction():
            conn.execute("SELECT set_config('ztone.origin', %s, true)", (self.origin,))
            for key in lock_keys:
                conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (key,))
            yield conn

    @staticmethod
    def _get_network(conn: psycopg.Connection[Any], nwid: int, lock: str = "") -> JsonObject | None:
        row = conn.execute(
            f"SELECT doc FROM ztone_network WHERE nwid = %s {lock}", (network_id_hex(nwid),)
        ).fetchone()
        return None if row is None else _doc(row[0])

    @staticmethod
    def _get_member(conn: psycopg.Connection[Any], nwid: int, address: int) -> JsonObject | None:
        row = conn.execute(
            "SELECT doc FROM ztone_member WHERE nwid = %s AND address = %s",
            (network_id_hex(nwid), address_hex(address)),
        ).fetchone()
        return None if row is None else _doc(row[0])

    @staticmethod
    def _put_network(conn: psycopg.Connection[Any], nwid: int, record: JsonObject) -> None:
        conn.execute(
            "INSERT INTO ztone_network (nwid, doc) VALUES (%s, %s)"
            " ON CONFLICT (nwid) DO UPDATE SET doc = EXCLUDED.doc",
            (network_id_hex(nwid), Jsonb(record)),
        )

    @staticmethod
    def _put_member(
        conn: psycopg.Connection[Any], nwid: int, address: int, record: JsonObject
    ) -> None:
        conn.execute(
            "INSERT INTO ztone_member (nwid, address, doc) VALUES (%s, %s, %s)"
            " ON CONFLICT (nwid, address) DO UPDATE SET doc = EXCLUDED.doc",
            (network_id_hex(nwid), address_hex(address), Jsonb(record)),
        )

    # --- lifecycle ---------------------------------------------------------------------

    def is_ready(self) -> bool:
        return self._pool is not None

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        self._closed.set()
        if pool is not None:
            pool.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5.0)

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_listener(self, listener: ChangeListener) -> None:
        self.listeners.add(listener)

    def remove_listener(self, listener: ChangeListener) -> None:
        self.listeners.remove(listener)

    # --- networks ----------------------------------------------------------------------

    def has_network(self, nwid: int) -> bool:
        return self.get_network(nwid) is not None

    def get_network(self, nwid: int) -> JsonObject | None:
        with self._connection() as conn:
            return self._get_network(conn, nwid)

    def list_networks(self) -> list[int]:
        with self._connection() as conn:
            rows = conn.execute("SELECT nwid FROM ztone_network").fetchall()
        return sorted(int(r[0], 16) for r in rows)

    def save_network(self, network: JsonObject) -> tuple[JsonObject, bool]:
        nwid = record_network_id(network)
        record = copy.deepcopy(network)
        return self.update_network(nwid, lambda _old: record)

    def update_network(self, nwid: int, mutate: Mutation) -> tuple[JsonObject, bool]:
        with self._transaction(network_id_hex(nwid)) as conn:
            old = self._get_network(conn, nwid, "FOR UPDATE")
            record = mutated_network(old, nwid, mutate)
            if record is None:
                assert old is not None
                return old, False
            self._put_network(conn, nwid, record)
        self.listeners.notify([ChangeEvent("network", nwid, None, old, copy.deepcopy(record))])
        return copy.deepcopy(record), True

    def delete_network(self, nwid: int) -> JsonObject | None:
        key = network_id_hex(nwid)
        with self._transaction(key) as conn:
            old = self._get_network(conn, nwid, "FOR UPDATE")
            rows = conn.execute(
                "DELETE FROM ztone_member WHERE nwid = %s RETURNING address, doc", (key,)
            ).fetchall()
            if old is None and not rows:
                return None
            conn.execute("DELETE FROM ztone_network WHERE nwid = %s", (key,))
        events = [
            ChangeEvent("member", nwid, int(a, 16), _doc(d), None)
            for a, d in sorted(rows, key=lambda r: str(r[0]))
        ]
        events.append(ChangeEvent("network", nwid, None, old, None))
        self.listeners.notify(events)
        return old

    # --- members -----------------------------------------------------------------------

    def get_member(self, nwid: int, address: int) -> JsonObject | None:
        with self._connection() as conn:
            return self._get_member(conn, nwid, address)

    def list_members(self, nwid: int) -> list[JsonObject]:
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT doc FROM ztone_member WHERE nwid = %s ORDER BY address",
                (network_id_hex(nwid),),
            ).fetchall()
        return [_doc(r[0]) for r in rows]

    def save_member(self, member: JsonObject) -> tuple[JsonObject, bool]:
        nwid, address = record_member_ids(member)
        record = copy.deepcopy(member)
        return self.update_member(nwid, address, lambda _old: record)

    def update_member(self, nwid: int, address: int, mutate: Mutation) -> tuple[JsonObject, bool]:
        key = f"{network_id_hex(nwid)}/{address_hex(address)}"
        with self._transaction(key) as conn:
            # FOR SHARE: the network cannot be deleted under this write.
            if self._get_network(conn, nwid, "FOR SHARE") is None:
                raise UnknownNetwork(network_id_hex(nwid))
            old = self._get_member(conn, nwid, address)
            record = mutated_member(old, nwid, address, mutate)
            if record is None:
                assert old is not None
                return old, False
            self._put_member(conn, nwid, address, record)
        self.listeners.notify([ChangeEvent("member", nwid, address, old, copy.deepcopy(record))])
        return copy.deepcopy(record), True

    def delete_member(self, nwid: int, address: int) -> JsonObject | None:
        key = f"{network_id_hex(nwid)}/{address_hex(address)}"
        with self._transaction(key) as conn:
            row = conn.execute(
                "DELETE FROM ztone_member WHERE nwid = %s AND address = %s RETURNING doc",
                (network_id_hex(nwid), address_hex(address)),
            ).fetchone()
        if row is None:
            return None
        old = _doc(row[0])
        self.listeners.notify([ChangeEvent("member", nwid, address, old, None)])
        return old

    # --- import ------------------------------------------------------------------------

    def import_controller_d(self, path: str) -> tuple[int, int]:
        """Copy a zerotier-one ``controller.d`` tree in, records as they are (as
        :meth:`SqliteStore.import_controller_d`)."""
        return self.import_tree(read_controller_d(path))

    def import_tree(self, tree: ControllerDTree) -> tuple[int, int]:
        """Write every record of ``tree`` as it is (revisions kept), replacing records
        with the same ids, in one transaction; listeners here are not called."""
        count = 0
        with self._transaction() as conn:
            for nwid, network in tree.networks.items():
                self._put_network(conn, nwid, network)
                for address, member in tree.members.get(nwid, {}).items():
                    self._put_member(conn, nwid, address, member)
                    count += 1
        return len(tree.networks), count

    # --- notifications from elsewhere --------------------------------------------------

    def _listen_loop(self) -> None:
        """LISTEN until closed; reconnect after a failure, and then announce every
        network as changed (notifications may have been missed meanwhile)."""
        first = True
        while not self._closed.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=10) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._listen_ready.set()
                    if not first:
                        self._announce_all()
                    first = False
                    while not self._closed.is_set():
                        for notify in conn.notifies(timeout=0.5):
                            self._on_notify(notify.payload)
            except psycopg.Error as e:
                if self._closed.is_set():
                    return
                log.warning("controller store: notification connection lost: %s", _safe(e))
                first = False
            except Exception:
                log.exception("controller store: notification handling failed")
            self._closed.wait(NOTIFY_RECONNECT_DELAY)

    def _announce_all(self) -> None:
        try:
            for nwid in self.list_networks():
                network = self.get_network(nwid)
                if network is not None:
                    self.listeners.notify([ChangeEvent("network", nwid, None, network, network)])
        except StoreError as e:
            log.warning("controller store: cannot resynchronize: %s", e)

    def _on_notify(self, payload: str) -> None:
        try:
            data = json.loads(payload)
        except ValueError:
            return
        if not isinstance(data, dict) or data.get("origin") == self.origin:
            return
        nwid = parse_network_id(data.get("nwid"))
        if nwid is None:
            return
        op = data.get("op")
        if data.get("kind") == "network":
            new = None if op == "DELETE" else self.get_network(nwid)
            old_net = None if op == "INSERT" else {"id": network_id_hex(nwid)}
            if new is None and op != "DELETE":
                return  # gone again since: its deletion is announced too
            self.listeners.notify([ChangeEvent("network", nwid, None, old_net, new)])
        elif data.get("kind") == "member":
            address = parse_address(data.get("address"))
            if address is None:
                return
            new = None if op == "DELETE" else self.get_member(nwid, address)
            old = None
            if op != "INSERT":
                old = {
                    "id": address_hex(address),
                    "nwid": network_id_hex(nwid),
                    "authorized": data.get("oldAuthorized", False),
                }
            if new is None and op != "DELETE":
                return
            self.listeners.notify([ChangeEvent("member", nwid, address, old, new)])


def _safe(error: BaseException) -> str:
    """An error's first line: psycopg's messages name the server, never the password."""
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
