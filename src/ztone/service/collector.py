"""When the cyclic garbage collector may walk the daemon's long-lived objects.

CPython's full (generation 2) collection walks every tracked object. A root keeps
about 20 per peer (paths, addresses, keys, identities, metrics), so at 10,000 peers a
full collection holds every packet up for ~0.1 s and at 50,000 for ~0.4 s
(bench/root_core.py), and the interpreter starts one whenever the objects that
survived the young generations reach a quarter of the old ones: about once a minute
on a busy root.

:class:`CollectorPolicy` keeps those pauses rare. Every :data:`FREEZE_PERIOD` it
collects the young generations (cheap: only what is new) and freezes what survived
(``gc.freeze``: out of every later collection's walk), so the automatic full
collections only walk what the last period made. Every :data:`FULL_PERIOD` it unfreezes
everything and runs one full collection, which frees any cycle that became garbage
among the frozen objects (the daemon's long-lived state holds no cycles, so this finds
little; it bounds what could pile up), then freezes again. Objects freed by reference
counting are freed at once whether frozen or not.

Every :data:`TRIM_PERIOD` it also gives the C heap's free pages back to the kernel
(``trim``, from :func:`ztone.service.heap.heap_trimmer`): what a join or a burst freed
stays resident otherwise.

The times come in as arguments (seconds of a monotonic clock), so tests drive it
without waiting.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

FREEZE_PERIOD = 60.0
"""Seconds between freezes of what survived (a young collection each)."""

FULL_PERIOD = 6 * 3600.0
"""Seconds between full collections over everything, frozen objects included."""

TRIM_PERIOD = 10.0
"""Seconds between heap trims (the first one this long after start-up)."""


class CollectorPolicy:
    """Freeze survivors every :data:`FREEZE_PERIOD`, walk everything every
    :data:`FULL_PERIOD` (see the module). ``full_collections`` and ``freed`` count
    the full passes and the objects they found unreachable; ``trims`` the calls of
    ``trim`` (None: no heap trim on this platform)."""

    def __init__(self, now: float, trim: Callable[[], object] | None = None) -> None:
        self._last_freeze = now
        self._last_full = now
        self._last_trim = now
        self._trim = trim
        self.full_collections = 0
        self.freed = 0
        self.trims = 0

    def tick(self, now: float) -> None:
        """Call periodically (every few seconds); does what is due at ``now``."""
        if now - self._last_full >= FULL_PERIOD:
            self._last_full = self._last_freeze = now
            gc.unfreeze()
            found = gc.collect()
            gc.freeze()
            self.full_collections += 1
            self.freed += found
            if found:
                log.debug("full collection: %d unreachable objects freed", found)
        elif now - self._last_freeze >= FREEZE_PERIOD:
            self._last_freeze = now
            gc.collect(1)  # young cycles first: frozen, they would wait for the full pass
            gc.freeze()
        # After the collections: what they freed goes back with the rest.
        if self._trim is not None and now - self._last_trim >= TRIM_PERIOD:
            self._last_trim = now
            self._trim()
            self.trims += 1


__all__ = ["FREEZE_PERIOD", "FULL_PERIOD", "TRIM_PERIOD", "CollectorPolicy"]
