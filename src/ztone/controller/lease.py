"""Which of several ztone daemons with one controller identity is the active one
(issue 16): a PostgreSQL session advisory lock, the controller's lease.

Two daemons with the same identity on two hosts share one database. The one whose
connection holds the lock for its controller address runs the node and the controller;
the other waits (off the ZeroTier network: the same identity online twice would confuse
peers), trying the lock every second. The lock is the server's: it goes the moment the
holder's session ends (its process killed, its connection closed), and when a holder
loses the server (network, server restart) :meth:`ControllerLease.alive` turns False and
the holder fences itself (stops answering at once). Server-side TCP keepalives on the
lease session (3 s idle, 1 s interval, 3 probes) end a session whose host vanished
without closing it, so a standby takes over well within 10 s.

Key: the two-int advisory lock space (apart from the one-bigint space the store's
per-record transaction locks use): ``(address >> 8, (address & 0xff) << 24 | 0x7a746f)``
as signed 32-bit integers; unique per 40-bit address.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import psycopg

from ztone.controller.store import StoreError

log = logging.getLogger(__name__)

LEASE_POLL = 1.0  # seconds between a standby's tries
_TAG = 0x7A746F  # "zto"


def _int32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def lease_key(address: int) -> tuple[int, int]:
    """The advisory lock key of controller ``address`` (see the module docstring)."""
    return _int32(address >> 8), _int32(((address & 0xFF) << 24) | _TAG)


class ControllerLease:
    """The lease of controller ``address`` in the database ``conninfo``.

    Not thread-safe: one caller at a time (the service calls it from a worker thread).
    """

    def __init__(self, conninfo: str, address: int) -> None:
        self._conninfo = conninfo
        self.key = lease_key(address)
        self._conn: psycopg.Connection[Any] | None = None
        self.held = False

    def _connect(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            conn = psycopg.connect(
                self._conninfo,
                autocommit=True,
                connect_timeout=5,
                keepalives=1,
                keepalives_idle=3,
                keepalives_interval=1,
                keepalives_count=3,
            )
            for setting, value in (("idle", 3), ("interval", 1), ("count", 3)):
                # Ignored on unix sockets; the server's view of a TCP client that vanished.
                conn.execute(f"SET tcp_keepalives_{setting} = {value}")
            conn.execute("SET application_name = 'ztone controller lease'")
            self._conn = conn
        return self._conn

    def try_acquire(self) -> bool:
        """Take the lease if it is free; True if this process holds it now."""
        if self.held:
            return self.alive()
        try:
            conn = self._connect()
            row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", self.key).fetchone()
        except psycopg.Error as e:
            self._drop()
            raise StoreError(f"controller lease: {str(e).strip().splitlines()[0]}") from None
        self.held = bool(row and row[0])
        return self.held

    def alive(self) -> bool:
        """Whether the lease is still held: the session that took it still answers."""
        if not self.held or self._conn is None:
            return False
        try:
            self._conn.execute("SELECT 1")
        except psycopg.Error:
            self._drop()
            return False
        return True

    def _drop(self) -> None:
        self.held = False
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def release(self) -> None:
        """Give the lease up (closing the session releases the lock)."""
        self._drop()
