"""PostgreSQL-only parts of the controller store: the versioned schema and the
connection string handling (the shared behaviour is in test_store.py, on both stores)."""

from __future__ import annotations

import pytest

from ztone.controller.store import StoreError
from ztone.controller.stores import open_store
from ztone.util.store_location import describe, postgres_conninfo

psycopg = pytest.importorskip("psycopg")
from ztone.controller.pgstore import SCHEMA_VERSION, PostgresStore  # noqa: E402

NWID = 0x1FAD486CAFE468E2


def test_locations_name_their_backend() -> None:
    assert postgres_conninfo("/var/lib/zt/db") is None
    assert postgres_conninfo("postgresql://u:secret@h/db") == "postgresql://u:secret@h/db"
    assert postgres_conninfo("postgres:host=h password=secret") == "host=h password=secret"
    assert describe("postgres:host=h password=secret") == "PostgreSQL"  # no secret in logs


def test_schema_is_created_once_and_versioned_postgres(pg_conninfo: str) -> None:
    with PostgresStore(pg_conninfo, listen=False):
        pass
    with PostgresStore(pg_conninfo, listen=False) as again:  # a second start migrates nothing
        assert again.list_networks() == []
    with psycopg.connect(pg_conninfo) as conn:
        row = conn.execute("SELECT value FROM ztone_meta WHERE key = 'schema_version'").fetchone()
        assert row == (str(SCHEMA_VERSION),)
        conn.execute("UPDATE ztone_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="newer"):
        PostgresStore(pg_conninfo, listen=False)


def test_the_documented_schema_refuses_bad_keys_postgres(pg_conninfo: str) -> None:
    PostgresStore(pg_conninfo, listen=False).close()
    with psycopg.connect(pg_conninfo) as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("INSERT INTO ztone_network (nwid, doc) VALUES ('XYZ', '{}')")


def test_unreachable_server_is_a_store_error_without_the_password_postgres(
    pg_conninfo: str,
) -> None:
    bad = pg_conninfo.replace("postgres@", "nobody:hunter2@")
    with pytest.raises(StoreError) as info:
        open_store(bad)
    assert "hunter2" not in str(info.value)
