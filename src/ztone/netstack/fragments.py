"""Bounded reassembly of IPv4 (RFC 791 s3.2) and IPv6 (RFC 8200 s4.5) fragments.

A datagram is keyed by what both protocols use to tell datagrams apart: source,
destination, protocol (IPv4) or upper-layer next header (IPv6) and the identification.
Its fragments are kept until they cover ``0..total`` (``total`` is known from the
fragment without "more fragments"), then joined. Every bound a remote party could
push is explicit:

* at most ``max_datagrams`` datagrams under way (a new one evicts the oldest);
* at most ``max_bytes`` buffered over all of them (a fragment beyond it drops its
  datagram);
* at most ``max_pieces`` fragments per datagram and 65535 bytes per datagram;
* ``timeout`` seconds from a datagram's first fragment to its last.

Overlapping fragments drop the whole datagram (RFC 5722; the same rule for IPv4 is
what a careful receiver does anyway); exact duplicates are ignored. Fragments other
than the last must carry a multiple of 8 bytes.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

Key = tuple[bytes, bytes, int, int]
"""``(source, destination, protocol, identification)``."""

MAX_DATAGRAM = 65535


@dataclass(slots=True)
class _Partial:
    started: float
    pieces: dict[int, bytes] = field(default_factory=dict)
    size: int = 0
    total: int | None = None


class Reassembler:
    def __init__(self, max_datagrams: int, max_bytes: int, max_pieces: int, timeout: float):
        self.max_datagrams = max_datagrams
        self.max_bytes = max_bytes
        self.max_pieces = max_pieces
        self.timeout = timeout
        self._partials: OrderedDict[Key, _Partial] = OrderedDict()
        self._bytes = 0
        self.dropped = 0
        """Datagrams given up: evicted, over a bound, overlapping, malformed, timed out."""
        self.reassembled = 0

    def __len__(self) -> int:
        return len(self._partials)

    @property
    def buffered(self) -> int:
        return self._bytes

    def add(self, key: Key, offset: int, more: bool, data: bytes, now: float) -> bytes | None:
        """Take one fragment (its payload ``data`` at byte ``offset``); the whole
        datagram's payload when this fragment completed it, else None."""
        partial = self._partials.get(key)
        end = offset + len(data)
        if end > MAX_DATAGRAM or (more and (not data or len(data) % 8)):
            if partial is not None:
                self._drop(key)
            else:
                self.dropped += 1
            return None
        if partial is None:
            while len(self._partials) >= self.max_datagrams:
                self._drop(next(iter(self._partials)))
            partial = self._partials[key] = _Partial(now)
        if partial.pieces.get(offset) == data:
            return None  # an exact duplicate
        for o, d in partial.pieces.items():
            if o < end and offset < o + len(d):
                self._drop(key)  # overlap
                return None
        if not more:
            if partial.total is not None and partial.total != end:
                self._drop(key)
                return None
            partial.total = end
        total = partial.total
        if (
            (total is not None and end > total)
            or len(partial.pieces) >= self.max_pieces
            or self._bytes + len(data) > self.max_bytes
        ):
            self._drop(key)
            return None
        if total is not None and any(o + len(d) > total for o, d in partial.pieces.items()):
            self._drop(key)
            return None
        partial.pieces[offset] = data
        partial.size += len(data)
        self._bytes += len(data)
        if total is None or partial.size != total:
            return None
        del self._partials[key]
        self._bytes -= partial.size
        self.reassembled += 1
        return b"".join(partial.pieces[o] for o in sorted(partial.pieces))

    def _drop(self, key: Key) -> None:
        partial = self._partials.pop(key)
        self._bytes -= partial.size
        self.dropped += 1

    def expire(self, now: float) -> None:
        """Give up the datagrams whose first fragment is ``timeout`` seconds old."""
        while self._partials:
            key, partial = next(iter(self._partials.items()))
            if now < partial.started + self.timeout:  # the same sum as deadline()
                break
            self._drop(key)

    def deadline(self) -> float | None:
        if not self._partials:
            return None
        return next(iter(self._partials.values())).started + self.timeout
