"""Choosing a controller store from a location string (issue 16).

A location is either a SQLite database file path or a PostgreSQL connection string:
``postgresql://...`` / ``postgres://...`` (libpq URIs) or ``postgres:<libpq
key=value string>`` (the form zerotier-one's ``controllerDbPath`` uses for its
PostgreSQL controller). The PostgreSQL backend needs the ``postgres`` extra (psycopg).
"""

from __future__ import annotations

from pathlib import Path

from ztone.controller.store import ControllerStore, SqliteStore, StoreError

_URI_PREFIXES = ("postgresql://", "postgres://")
_KV_PREFIX = "postgres:"


def postgres_conninfo(location: str) -> str | None:
    """The libpq connection string ``location`` names, or None if it is not one."""
    if location.startswith(_URI_PREFIXES):
        return location
    if location.startswith(_KV_PREFIX):
        return location[len(_KV_PREFIX) :]
    return None


def open_store(location: str, *, listen: bool = True) -> ControllerStore:
    """Open the store at ``location`` (see the module docstring); ``listen``: a
    PostgreSQL store also reports changes other processes make."""
    conninfo = postgres_conninfo(location)
    if conninfo is None:
        return SqliteStore(Path(location))
    try:
        from ztone.controller.pgstore import PostgresStore  # noqa: PLC0415
    except ImportError as e:
        raise StoreError(
            f"the PostgreSQL controller store needs psycopg (pip install 'ztone[postgres]'): {e}"
        ) from None
    return PostgresStore(conninfo, listen=listen)


def describe(location: str) -> str:
    """``location`` safe to log: a connection string is reduced to its kind."""
    return "PostgreSQL" if postgres_conninfo(location) is not None else location
