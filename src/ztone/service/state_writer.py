"""The core's state writes, done on a worker thread so the event loop never waits for a disk.

Every write is atomic and durable (``ztone.util.atomic.atomic_write_file``: fsync of the file and of
its directory), which on an ordinary disk takes milliseconds; a member rewrites its
network's config file each time the controller re-issues it, and peers' files as
paths change. Done on the event loop, each such write would hold up every packet
behind it. Here :meth:`StateWriter.apply` only queues the write; one worker thread
carries the writes out in order.

Reads stay consistent: :meth:`StateWriter.get` answers from the queued writes first
(the newest one for that object), so the core never sees a state older than what it
asked to store. :meth:`StateWriter.flush` waits for the queue to drain (shutdown and
tests); :meth:`StateWriter.call` runs other file work (pruning ``peers.d``) on the
same thread, in order with the writes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from ztone.node.actions import PutState, StateKind
from ztone.service.home import FileStateStore

log = logging.getLogger(__name__)

T = TypeVar("T")

_Key = tuple[StateKind, int]


class StateWriter:
    """A :class:`FileStateStore` whose writes happen on one worker thread, in order."""

    def __init__(self, store: FileStateStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._pending: dict[_Key, tuple[int, bytes | None]] = {}
        self._serial = 0
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="ztone-state")
        self._closed = False

    @property
    def store(self) -> FileStateStore:
        return self._store

    def get(self, kind: StateKind, object_id: int) -> bytes | None:
        """The newest state of an object: a queued write if there is one, else the file."""
        with self._lock:
            queued = self._pending.get((kind, object_id))
        if queued is not None:
            return queued[1]
        return self._store.get(kind, object_id)

    def apply(self, action: PutState) -> None:
        """Queue a core :class:`PutState` (done at once if the writer was closed)."""
        if self._closed:
            self._store.apply(action)
            return
        key = (action.kind, action.object_id)
        with self._lock:
            self._serial += 1
            serial = self._serial
            self._pending[key] = (serial, action.data)
        self._executor.submit(self._write, key, serial, action)

    def _write(self, key: _Key, serial: int, action: PutState) -> None:
        try:
            self._store.apply(action)  # logs its own failures
        except Exception:
            log.exception("writing %s %x failed", action.kind.name, action.object_id)
        with self._lock:
            queued = self._pending.get(key)
            if queued is not None and queued[0] == serial:
                del self._pending[key]  # no newer write of this object is waiting

    def call(self, fn: Callable[[], T]) -> Future[T]:
        """Run ``fn`` on the writer's thread after the writes queued so far."""
        return self._executor.submit(fn)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every write queued so far is on disk."""
        self._executor.submit(lambda: None).result(timeout)

    def close(self) -> None:
        """Finish the queued writes; later writes happen at once, on the caller's thread."""
        if self._closed:
            return
        self._closed = True
        self._executor.shutdown(wait=True)

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)
