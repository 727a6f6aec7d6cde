"""The neighbour table shared by ARP (IPv4) and NDP (IPv6): IP address -> MAC.

Keys are packed addresses (4 or 16 bytes). Every part a remote party can grow is
bounded by the caller's limits:

* resolved entries: at most ``capacity``; the least recently confirmed goes first.
  An entry is used for ``ttl`` seconds after its last confirmation; after that it is
  still used while a fresh request confirms it (at most ``tries`` of them, one per
  ``retry`` seconds), and forgotten when none answered;
* resolutions under way: at most ``pending`` addresses, each holding at most
  ``per_address`` packets until the answer comes (extra packets are dropped: TCP
  retransmits them); a resolution gives up after ``tries`` requests ``retry`` seconds
  apart, dropping what it held.

Only this stack's own traffic creates resolutions; a remote party creates entries only
by asking for one of our addresses (RFC 826's "merge" rule), so a flood of requests
from random sources can fill the table but never beyond ``capacity``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

Held = tuple[int, bytes]
"""A packet waiting for its neighbour: ``(ethertype, IP packet)``."""


@dataclass(slots=True)
class _Entry:
    mac: int
    confirmed: float
    probes: int = 0
    next_probe: float = 0.0


@dataclass(slots=True)
class _Pending:
    held: list[Held] = field(default_factory=list)
    tries: int = 0
    next_try: float = 0.0


class NeighbourTable:
    def __init__(
        self,
        capacity: int,
        ttl: float,
        retry: float,
        tries: int,
        pending: int,
        per_address: int,
    ) -> None:
        self.capacity = capacity
        self.ttl = ttl
        self.retry = retry
        self.tries = tries
        self.pending_capacity = pending
        self.per_address = per_address
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        self._pending: dict[bytes, _Pending] = {}
        self.evicted = 0
        self.dropped = 0
        """Packets dropped: a full hold queue, a full pending table, a failed resolution."""
        self.failed: list[bytes] = []
        """Addresses whose resolution gave up since the caller last emptied this list."""

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    def lookup(self, ip: bytes, now: float) -> int | None:
        """The MAC for ``ip`` if known and not past its grace period."""
        entry = self._entries.get(ip)
        if entry is None:
            return None
        if (
            now >= entry.confirmed + self.ttl
            and entry.probes >= self.tries
            and (now >= entry.next_probe)
        ):
            del self._entries[ip]
            return None
        return entry.mac

    def known(self, ip: bytes) -> bool:
        return ip in self._entries or ip in self._pending

    def confirm(self, ip: bytes, mac: int, now: float, create: bool) -> list[Held]:
        """Record ``ip`` at ``mac`` (a new entry only when ``create`` or a resolution for
        it is under way); returns the packets that were waiting for it."""
        pending = self._pending.pop(ip, None)
        entry = self._entries.get(ip)
        if entry is not None:
            entry.mac, entry.confirmed, entry.probes = mac, now, 0
            self._entries.move_to_end(ip)
        elif create or pending is not None:
            while len(self._entries) >= self.capacity:
                self._entries.popitem(last=False)
                self.evicted += 1
            self._entries[ip] = _Entry(mac, now)
        return pending.held if pending is not None else []

    def hold(self, ip: bytes, packet: Held, now: float) -> bool:
        """Keep ``packet`` until ``ip`` resolves; True when a first request must go now."""
        pending = self._pending.get(ip)
        if pending is None:
            if len(self._pending) >= self.pending_capacity:
                self.dropped += 1
                return False
            pending = self._pending[ip] = _Pending(tries=1, next_try=now + self.retry)
            pending.held.append(packet)
            return True
        if len(pending.held) >= self.per_address:
            self.dropped += 1
        else:
            pending.held.append(packet)
        return False

    def due(self, now: float) -> list[tuple[bytes, int | None]]:
        """The requests to send now: ``(ip, MAC to ask unicast or None to broadcast)``.

        Also ends the resolutions that ran out of tries (their packets are dropped).
        """
        out: list[tuple[bytes, int | None]] = []
        for ip, pending in list(self._pending.items()):
            if now < pending.next_try:
                continue
            if pending.tries >= self.tries:
                self.dropped += len(pending.held)
                del self._pending[ip]
                if len(self.failed) < self.pending_capacity:
                    self.failed.append(ip)
                continue
            pending.tries += 1
            pending.next_try = now + self.retry
            out.append((ip, None))
        for ip, entry in list(self._entries.items()):
            if now < entry.confirmed + self.ttl or now < entry.next_probe:
                continue
            if entry.probes >= self.tries:
                del self._entries[ip]
                continue
            entry.probes += 1
            entry.next_probe = now + self.retry
            out.append((ip, entry.mac))
        return out

    def deadline(self) -> float | None:
        times = [p.next_try for p in self._pending.values()]
        times.extend(max(e.confirmed + self.ttl, e.next_probe) for e in self._entries.values())
        return min(times) if times else None
