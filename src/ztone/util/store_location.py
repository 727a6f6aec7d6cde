"""What kind of controller store a location string names (issue 16), without loading
the controller: the daemon asks this at start-up to decide whether its embedded
controller must be up at once (issue 17: it is otherwise loaded on first use).

A location is either a SQLite database directory/file path or a PostgreSQL connection
string: ``postgresql://...`` / ``postgres://...`` (libpq URIs) or ``postgres:<libpq
key=value string>`` (the form zerotier-one's ``controllerDbPath`` uses for its
PostgreSQL controller).
"""

from __future__ import annotations

_URI_PREFIXES = ("postgresql://", "postgres://")
_KV_PREFIX = "postgres:"


def postgres_conninfo(location: str) -> str | None:
    """The libpq connection string ``location`` names, or None if it is not one."""
    if location.startswith(_URI_PREFIXES):
        return location
    if location.startswith(_KV_PREFIX):
        return location[len(_KV_PREFIX) :]
    return None


def describe(location: str) -> str:
    """``location`` safe to log: a connection string is reduced to its kind."""
    return "PostgreSQL" if postgres_conninfo(location) is not None else location
