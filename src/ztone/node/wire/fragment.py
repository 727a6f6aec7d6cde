"""Fragmentation and reassembly of packets larger than the path MTU (§5.5-§5.7).

Fragment datagram (16-byte header)::

    <[8] packet id>          copy of the armored head's bytes 0..7
    <[5] destination>
    <[1] 0xff>               fragment indicator (no source address starts with 0xff)
    <[1] total << 4 | number> total pieces incl. the head; this fragment's number 1..total-1
    <[1] hops>               whole byte; relays write (hops + 1) & 7
    [... fragment data]

Upstream cuts an armored packet of ``len > mtu`` into a head of ``mtu`` bytes and
fragments of ``mtu - 16`` data bytes; ztone cuts it into as many pieces, of even
length (:func:`split`). A receiver accepts at most 7 pieces, so at the default MTU of
1432 the largest packet is 1432 + 6 * 1416 = 9,928 bytes.
Reassembly uses a ring of 32 slots keyed by packet id; incomplete sets are evicted
only by reuse of their slot, exactly as upstream, which bounds memory at 32 packets.
"""

from __future__ import annotations

from dataclasses import dataclass

from ztone.errors import MalformedPacket
from ztone.node.bounds import REASSEMBLY_SLOTS
from ztone.node.wire.address import Address
from ztone.node.wire.packet import FLAG_FRAGMENTED, IDX_FLAGS, MAX_PACKET_LENGTH, MIN_PACKET_LENGTH

FRAGMENT_INDICATOR = 0xFF
IDX_FRAGMENT_INDICATOR = 13
IDX_FRAGMENT_NO = 14
IDX_FRAGMENT_HOPS = 15
FRAGMENT_HEADER_LENGTH = 16
MAX_PACKET_FRAGMENTS = 7
DEFAULT_PHYSMTU = 1432
MIN_PHYSMTU = 1400
MAX_PHYSMTU = 10324


def is_fragment(datagram: bytes | bytearray | memoryview) -> bool:
    """Classification of §5.7: more than 16 bytes and byte 13 is 0xff."""
    return len(datagram) > FRAGMENT_HEADER_LENGTH and datagram[IDX_FRAGMENT_INDICATOR] == 0xFF


@dataclass(frozen=True, slots=True)
class Fragment:
    packet_id: int
    destination: Address
    total: int
    number: int
    hops: int
    data: bytes

    def serialize(self) -> bytes:
        return (
            self.packet_id.to_bytes(8, "big")
            + self.destination.to_bytes5()
            + bytes(
                (
                    FRAGMENT_INDICATOR,
                    ((self.total & 0xF) << 4) | (self.number & 0xF),
                    self.hops & 0xFF,
                )
            )
            + self.data
        )


def parse_fragment(datagram: bytes | bytearray | memoryview) -> Fragment:
    """Decode a fragment datagram; MalformedPacket if it is not one."""
    if len(datagram) <= FRAGMENT_HEADER_LENGTH:
        raise MalformedPacket("fragment too short")
    if datagram[IDX_FRAGMENT_INDICATOR] != FRAGMENT_INDICATOR:
        raise MalformedPacket("not a fragment")
    b = datagram[IDX_FRAGMENT_NO]
    return Fragment(
        packet_id=int.from_bytes(datagram[0:8], "big"),
        destination=Address(int.from_bytes(datagram[8:13], "big")),
        total=b >> 4,
        number=b & 0xF,
        hops=datagram[IDX_FRAGMENT_HOPS],
        data=bytes(datagram[FRAGMENT_HEADER_LENGTH:]),
    )


def max_packet_for_mtu(mtu: int) -> int:
    return mtu + (MAX_PACKET_FRAGMENTS - 1) * (mtu - FRAGMENT_HEADER_LENGTH)


def mark_fragmented(packet: bytearray, mtu: int) -> bool:
    """Set or clear the fragmented flag (before armoring!); True if it will be cut."""
    if len(packet) > min(max_packet_for_mtu(mtu), MAX_PACKET_LENGTH):
        raise ValueError(f"packet of {len(packet)} bytes cannot be sent with MTU {mtu}")
    fragmented = len(packet) > mtu
    if fragmented:
        packet[IDX_FLAGS] |= FLAG_FRAGMENTED
    else:
        packet[IDX_FLAGS] &= ~FLAG_FRAGMENTED & 0xFF
    return fragmented


def split(armored: bytes | bytearray, mtu: int = DEFAULT_PHYSMTU) -> list[bytes]:
    """Cut an armored packet into datagrams: the head, then fragments 1..n (§5.6).

    As many pieces as upstream's cut (a head of ``mtu`` bytes, fragments of ``mtu -
    16`` data bytes) would make, but every datagram as long as the head, the last
    fragment excepted: the bytes are shared out evenly. A receiver concatenates
    whatever the pieces hold (``Switch::onRemotePacket`` checks only the total), so
    nothing changes for it; for the sender, the datagrams of a burst of full-size
    frames all have one length and leave in one UDP GSO send (service/udp.py).
    """
    data = bytes(armored)
    n = len(data)
    if n <= mtu:
        return [data]
    per = mtu - FRAGMENT_HEADER_LENGTH
    total = -(-(n - mtu) // per) + 1
    if total > MAX_PACKET_FRAGMENTS:
        raise ValueError(f"packet of {n} bytes needs {total} pieces (max 7)")
    # head = size bytes, every fragment 16 + (size - 16): total * size - 16 * (total - 1)
    # covers n; size <= mtu because upstream's cut fits in ``total`` pieces
    size = -(-(n + FRAGMENT_HEADER_LENGTH * (total - 1)) // total)
    chunk = size - FRAGMENT_HEADER_LENGTH
    prefix = data[0:13] + b"\xff"
    out = [data[:size]]
    offset = size
    for number in range(1, total):
        out.append(prefix + _NUMBER_AND_HOPS[(total << 4) | number] + data[offset : offset + chunk])
        offset += chunk
    return out


_NUMBER_AND_HOPS = [bytes((b, 0)) for b in range(256)]
"""Bytes 14 and 15 of a fragment as sent: ``total << 4 | number``, then 0 hops."""


class _Slot:
    __slots__ = ("have", "head", "packet_id", "pieces", "timestamp", "total")

    def __init__(self) -> None:
        self.packet_id = 0
        self.timestamp = 0
        self.total = 0
        self.have = 0
        self.head: bytes | None = None
        self.pieces: list[bytes | None] = [None] * MAX_PACKET_FRAGMENTS

    def reset(self, packet_id: int, now: int) -> None:
        self.packet_id = packet_id
        # 0 means "free" upstream; a caller at time 0 must still own the slot.
        self.timestamp = now if now != 0 else 1
        self.total = 0
        self.have = 0
        self.head = None
        self.pieces = [None] * MAX_PACKET_FRAGMENTS


class Reassembler:
    """The receive ring of §5.7 for fragmented packets addressed to us."""

    def __init__(self, size: int = REASSEMBLY_SLOTS) -> None:
        self._ring = [_Slot() for _ in range(size)]
        self._ptr = 0
        self._index: dict[int, _Slot] = {}  # packet id -> its live slot (at most one)
        self.completed = 0
        self.evicted = 0

    def _find(self, packet_id: int) -> _Slot | None:
        # A live slot (timestamp != 0) is only ever taken for an id no live slot has,
        # so the ring holds at most one live slot per id: an index finds it directly.
        slot = self._index.get(packet_id)
        if slot is not None and slot.timestamp and slot.packet_id == packet_id:
            return slot
        return None

    def _take(self, packet_id: int, now: int) -> _Slot:
        slot = self._ring[self._ptr % len(self._ring)]
        self._ptr = (self._ptr + 1) % len(self._ring)
        if slot.timestamp and slot.have:
            self.evicted += 1
        if self._index.get(slot.packet_id) is slot:
            del self._index[slot.packet_id]
        slot.reset(packet_id, now)
        self._index[packet_id] = slot
        return slot

    def _complete(self, slot: _Slot) -> bytes | None:
        if slot.head is None or slot.total < 2:
            return None
        if slot.have != (1 << slot.total) - 1:
            return None
        parts = [slot.head]
        for i in range(1, slot.total):
            piece = slot.pieces[i]
            if piece is None:
                return None
            parts.append(piece)
        slot.timestamp = 0
        self._index.pop(slot.packet_id, None)
        self.completed += 1
        return b"".join(parts)

    def add_head(self, now: int, head: bytes | bytearray | memoryview) -> bytes | None:
        """Store a head (fragmented flag set); return the whole packet if now complete."""
        if len(head) < MIN_PACKET_LENGTH:
            raise MalformedPacket("fragmented head shorter than a header")
        packet_id = int.from_bytes(head[0:8], "big")
        slot = self._find(packet_id) or self._take(packet_id, now)
        if slot.have & 1:
            return None  # duplicate head
        slot.head = bytes(head)
        slot.have |= 1
        return self._complete(slot)

    def add_fragment(self, now: int, fragment: Fragment) -> bytes | None:
        """Store a fragment; return the whole packet if now complete.

        Accepts only ``1 < total <= 7`` and ``1 <= number < total`` (a fragment
        claiming a number at or past its total can never complete a packet).
        """
        return self.add_piece(
            now, fragment.packet_id, fragment.total, fragment.number, fragment.data
        )

    def add_piece(
        self, now: int, packet_id: int, total: int, number: int, data: bytes
    ) -> bytes | None:
        """:meth:`add_fragment` from the fields of a fragment datagram."""
        if not (1 < total <= MAX_PACKET_FRAGMENTS and 1 <= number < total):
            raise MalformedPacket(f"fragment {number} of {total} is out of range")
        slot = self._find(packet_id) or self._take(packet_id, now)
        if slot.have & (1 << number):
            return None  # duplicate fragment
        slot.pieces[number] = data
        slot.total = total
        slot.have |= 1 << number
        if slot.have & ~((1 << total) - 1):
            # Pieces past a (now smaller) total: this set cannot be made whole.
            slot.timestamp = 0
            self._index.pop(slot.packet_id, None)
            raise MalformedPacket("fragments disagree about the piece count")
        return self._complete(slot)

    def pending(self) -> int:
        return sum(1 for s in self._ring if s.timestamp)
