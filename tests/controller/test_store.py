"""The controller's SQLite store and the controller.d import (B.5)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from locations import VECTORS
from ztone.controller.objects import (
    apply_member_post,
    apply_network_post,
    init_member,
    init_network,
)
from ztone.controller.store import (
    DB_FILENAME,
    ChangeEvent,
    ControllerStore,
    SqliteStore,
    StoreError,
    UnknownNetwork,
    open_controller_store,
    read_controller_d,
)

CONTROLLER_D = VECTORS / "lab1_controller" / "controller.d"
API = json.loads((VECTORS / "lab1_api" / "ctrl" / "api.json").read_text())

NWID = 0x1FAD486CAFE468E2
A = 0x4B3BACDDB4
B = 0xA49ECF6441
NOW = 1_795_310_320_081


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """Each store test runs on both backends (``-k postgres`` selects PostgreSQL's)."""
    if request.param == "sqlite":
        s: Any = SqliteStore(tmp_path / "controller.d" / DB_FILENAME)
    else:
        from ztone.controller.pgstore import PostgresStore  # noqa: PLC0415

        s = PostgresStore(request.getfixturevalue("pg_conninfo"))
    yield s
    s.close()


def network(nwid: int = NWID, **body: Any) -> dict[str, Any]:
    return apply_network_post(init_network(nwid, NOW), body, NOW)


def member(address: int, nwid: int = NWID, **body: Any) -> dict[str, Any]:
    return apply_member_post(init_member(nwid, address, NOW), body, NOW)


def test_store_is_a_controller_store(store: SqliteStore) -> None:
    s: ControllerStore = store
    assert s.is_ready()


def test_network_crud_and_revisions(store: SqliteStore) -> None:
    assert store.get_network(NWID) is None
    assert not store.has_network(NWID)
    saved, changed = store.save_network(network(name="lab"))
    assert changed and saved["revision"] == 1
    assert store.has_network(NWID)
    assert store.get_network(NWID) == saved
    # Unchanged: nothing written, revision kept.
    again, changed = store.save_network(network(name="lab"))
    assert not changed and again["revision"] == 1
    # Changed: revision + 1.
    renamed, changed = store.save_network(dict(saved, name="lab2"))
    assert changed and renamed["revision"] == 2
    store.save_network(network(0x1FAD486CAF000001))
    assert store.list_networks() == [0x1FAD486CAF000001, NWID]
    assert store.delete_network(NWID) == renamed
    assert store.get_network(NWID) is None
    assert store.delete_network(NWID) is None
    assert store.list_networks() == [0x1FAD486CAF000001]


def test_returned_records_are_copies(store: SqliteStore) -> None:
    saved, _ = store.save_network(network())
    saved["routes"].append("junk")
    got = store.get_network(NWID)
    assert got is not None and got["routes"] == []
    got["name"] = "changed"
    assert store.get_network(NWID) == dict(got, name="")


def test_member_crud(store: SqliteStore) -> None:
    with pytest.raises(UnknownNetwork):
        store.save_member(member(A))
    store.save_network(network())
    m, changed = store.save_member(member(A, authorized=True))
    assert changed and m["revision"] == 1 and m["authorized"] is True
    store.save_member(member(B))
    assert store.get_member(NWID, A) == m
    assert [x["id"] for x in store.list_members(NWID)] == ["4b3bacddb4", "a49ecf6441"]
    assert store.list_members(0x1234) == []
    assert store.delete_member(NWID, A) == m
    assert store.get_member(NWID, A) is None
    assert store.delete_member(NWID, A) is None
    # Deleting the network deletes its members.
    store.delete_network(NWID)
    assert store.list_members(NWID) == []
    store.save_network(network())
    assert store.list_members(NWID) == []


def test_bad_records_are_refused(store: SqliteStore) -> None:
    with pytest.raises(StoreError):
        store.save_network({"name": "no id"})
    store.save_network(network())
    with pytest.raises(StoreError):
        store.save_member({"id": "4b3bacddb4"})
    with pytest.raises(StoreError):
        store.update_member(NWID, A, lambda old: member(B))


def test_update_is_atomic(store: SqliteStore) -> None:
    store.save_network(network())
    store.save_member(member(A))

    def fail(old: dict[str, Any] | None) -> dict[str, Any]:
        raise ValueError("no")

    with pytest.raises(ValueError):
        store.update_member(NWID, A, fail)
    with pytest.raises(ValueError):
        store.update_network(NWID, fail)
    assert store.get_member(NWID, A) == dict(member(A), revision=1)

    seen: list[dict[str, Any] | None] = []

    def bump(old: dict[str, Any] | None) -> dict[str, Any]:
        seen.append(old)
        assert old is not None
        return apply_member_post(old, {"authorized": True}, NOW + 1)

    m, changed = store.update_member(NWID, A, bump)
    assert changed and m["revision"] == 2 and m["lastAuthorizedTime"] == NOW + 1
    assert seen[0] is not None and seen[0]["revision"] == 1


def test_listeners(store: SqliteStore) -> None:
    events: list[ChangeEvent] = []
    store.add_listener(events.append)
    store.save_network(network())
    store.save_network(network())  # unchanged: no event
    store.save_member(member(A, authorized=True))
    store.save_member(member(B))
    m = store.get_member(NWID, A)
    assert m is not None
    store.save_member(apply_member_post(m, {"authorized": False}, NOW + 5))
    store.delete_member(NWID, B)
    store.save_member(member(A, authorized=True))
    store.delete_network(NWID)
    summary = [(e.kind, e.address, e.old is None, e.new is None, e.deauthorized) for e in events]
    assert summary == [
        ("network", None, True, False, False),
        ("member", A, True, False, False),
        ("member", B, True, False, False),
        ("member", A, False, False, True),  # authorized -> not
        ("member", B, False, True, False),  # deleted, was not authorized
        ("member", A, False, False, False),  # re-authorized
        ("member", A, False, True, True),  # deleted with its network while authorized
        ("network", None, False, True, False),
    ]
    assert events[0].new is not None and events[0].new["revision"] == 1
    store.remove_listener(events.append)
    store.save_network(network())
    assert len(events) == len(summary)


def test_listener_errors_do_not_undo_the_change(store: SqliteStore) -> None:
    def broken(event: ChangeEvent) -> None:
        raise RuntimeError("listener bug")

    store.add_listener(broken)
    saved, changed = store.save_network(network())
    assert changed and store.get_network(NWID) == saved


def test_reopen_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "c" / DB_FILENAME
    with SqliteStore(path) as s:
        s.save_network(network(name="lab", v4AssignMode={"zt": True}))
        s.save_member(member(A, authorized=True, ipAssignments=["198.19.0.5"]))
        s.save_member(member(B, name="b"))
        s.delete_member(NWID, B)
        before = (s.get_network(NWID), s.list_members(NWID))
    assert not s.is_ready()
    with pytest.raises(StoreError):
        s.get_network(NWID)
    with SqliteStore(path) as s2:
        assert (s2.get_network(NWID), s2.list_members(NWID)) == before
        assert s2.list_networks() == [NWID]


def test_database_file_settings(tmp_path: Path) -> None:
    path = tmp_path / "controller.d" / DB_FILENAME
    with SqliteStore(path) as s:
        s.save_network(network())
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        db = s._conn()
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    # Readable by any SQLite client: documents as JSON text keyed by hex ids.
    raw = sqlite3.connect(path)
    try:
        rows = raw.execute("SELECT nwid, doc FROM network").fetchall()
    finally:
        raw.close()
    assert rows[0][0] == "1fad486cafe468e2"
    assert json.loads(rows[0][1])["id"] == "1fad486cafe468e2"


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / DB_FILENAME
    SqliteStore(path).close()
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA user_version=99")
    raw.commit()
    raw.close()
    with pytest.raises(StoreError, match="newer"):
        SqliteStore(path)


def test_concurrent_writers(store: SqliteStore) -> None:
    store.save_network(network())
    errors: list[BaseException] = []

    def work(base: int) -> None:
        try:
            for i in range(20):
                store.save_member(member(base + i, authorized=bool(i % 2)))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(0x100 * (k + 1),)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert len(store.list_members(NWID)) == 80


# --- controller.d -----------------------------------------------------------------------


def ref_files() -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    network_doc = json.loads((CONTROLLER_D / "network" / "1fad486cafe468e2.json").read_text())
    members = {
        p.stem: json.loads(p.read_text())
        for p in (CONTROLLER_D / "network" / "1fad486cafe468e2" / "member").iterdir()
    }
    return network_doc, members


def test_read_controller_d_matches_the_api_answers() -> None:
    tree = read_controller_d(CONTROLLER_D)
    assert tree.skipped == []
    assert list(tree.networks) == [NWID]
    assert tree.networks[NWID] == API["/controller/network/1fad486cafe468e2"][1]
    assert sorted(tree.members[NWID]) == [A, B]
    assert tree.members[NWID][A] == API["/controller/network/1fad486cafe468e2/member/4b3bacddb4"][1]


def test_import_controller_d_keeps_every_field(store: SqliteStore) -> None:
    events: list[ChangeEvent] = []
    store.add_listener(events.append)
    assert store.import_controller_d(CONTROLLER_D) == (1, 2)
    assert events == []
    network_doc, members = ref_files()
    assert store.get_network(NWID) == network_doc
    assert {m["id"]: m for m in store.list_members(NWID)} == members
    # SQLite stores the reference's own compact form, byte for byte (PostgreSQL: jsonb).
    for path in (CONTROLLER_D / "network").rglob("*.json"):
        if not isinstance(store, SqliteStore):
            break
        doc = json.loads(path.read_text())
        table, where = ("member", "address") if "/member/" in str(path) else ("network", "nwid")
        row = store._conn().execute(f"SELECT doc FROM {table} WHERE {where} = ?", (doc["id"],))
        assert row.fetchone()[0] == path.read_text()
    # A later API change bumps the imported revision.
    m = store.get_member(NWID, A)
    assert m is not None
    saved, _ = store.save_member(apply_member_post(m, {"name": "a"}, NOW))
    assert saved["revision"] == 4


def test_read_controller_d_skips_what_filedb_skips(tmp_path: Path) -> None:
    root = tmp_path / "controller.d"
    shutil.copytree(CONTROLLER_D, root)
    (root / "trace").mkdir()
    net = root / "network"
    (net / "junk.txt").write_text("x")
    (net / "0000000000000001.json").write_text("{not json")
    (net / "0000000000000002.json").write_text('{"id": "short"}')
    (net / "0000000000000003.json").write_text("[1]")
    members = net / "1fad486cafe468e2" / "member"
    (members / "0000000001.json").write_text('{"id": "1"}')
    (members / "notes.md").write_text("x")
    (members / "0000000002.json").write_text("{")
    # Members of a network without a network file are not loaded.
    orphan = net / "0000000000000004" / "member"
    orphan.mkdir(parents=True)
    (orphan / "0000000005.json").write_text('{"id": "0000000005"}')
    tree = read_controller_d(root)
    assert list(tree.networks) == [NWID]
    assert sorted(tree.members[NWID]) == [A, B]
    assert len(tree.skipped) == 7
    assert read_controller_d(tmp_path / "missing").networks == {}


def test_open_controller_store_imports_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(CONTROLLER_D, home / "controller.d")
    with open_controller_store(home / "controller.d") as s:
        assert s.path == home / "controller.d" / DB_FILENAME
        assert s.list_networks() == [NWID]
        s.delete_network(NWID)
    # The tree is not imported again: the deletion stands.
    with open_controller_store(home / "controller.d") as s:
        assert s.list_networks() == []
    # A configurable path; an empty controller.d imports nothing.
    other = tmp_path / "elsewhere" / "db.sqlite"
    with open_controller_store(tmp_path / "empty", other) as s:
        assert s.path == other and s.list_networks() == []
    assert os.path.exists(other)
