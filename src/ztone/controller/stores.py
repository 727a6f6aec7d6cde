"""Choosing a controller store from a location string (issue 16).

A location is either a SQLite database file path or a PostgreSQL connection string
(:mod:`ztone.util.store_location` tells them apart). The PostgreSQL backend needs the
``postgres`` extra (psycopg).
"""

from __future__ import annotations

from pathlib import Path

from ztone.controller.store import ControllerStore, SqliteStore, StoreError
from ztone.util.store_location import postgres_conninfo


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
