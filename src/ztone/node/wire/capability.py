"""The Capability credential (PROTOCOL-NETWORK-SERVICE A.3.3, PROTOCOL-CORE §6.22.2).

Wire form::

    <[8] network id> <[8] timestamp> <[4] capability id> <[2] rule count R (<= 64)>
    <R rule entries: [1] type [1] length [length] data>
    <[1] max custody chain length M (1..7)>
    M' <= M custody entries: <[5] to> <[5] from> <[1] sig type 1> <[2] 96> <[96] sig>
    <[5] zero "to": end of chain> <[2] extension length X> <[X] extension>

Every custody signature signs ``7f x8 | everything up to M | u16 0 | 7f x8`` (the
chain itself is not covered). The controller issues a capability with M = 1 and one
entry ``controller -> member``.

The rules are kept as raw bytes plus a count, split by their ``type len data``
framing (A.4.2) and not decoded here (see :mod:`ztone.node.wire.rules`). The signature
covers those raw bytes; for canonically encoded rules (all a 1.14.1 controller
emits) that is exactly what upstream signs (it re-serializes its decoded rules).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from ztone.errors import LocalUsageError, MalformedPacket
from ztone.node.wire.address import Address
from ztone.node.wire.credential_base import (
    NO_SIGNATURE,
    WireReader,
    address_bytes,
    controller_for,
    for_sign,
    read_signature,
    signature_section,
    skip_extension,
    to_int64,
    u32_bytes,
    u64_bytes,
)
from ztone.node.wire.identity import Identity

MAX_CAPABILITY_RULES = 64
MAX_CUSTODY_CHAIN_LENGTH = 7


def rule_table_end(
    data: bytes | bytearray | memoryview, offset: int, count: int | None, limit: int
) -> tuple[int, int]:
    """Walk serialized rules (``type len data`` entries) without decoding them.

    Reads ``count`` entries (every entry until the end of ``data`` when ``None``),
    at most ``limit``. Returns (entries read, offset after the last). Raises
    :class:`MalformedPacket` if an entry is cut short or fewer than ``count`` remain.
    """
    end = len(data)
    pos = offset
    n = 0
    while n < limit and (pos < end if count is None else n < count):
        if pos + 2 > end:
            raise MalformedPacket("truncated rule entry")
        pos += 2 + data[pos + 1]
        if pos > end:
            raise MalformedPacket("truncated rule data")
        n += 1
    return n, pos


@dataclass(frozen=True, slots=True)
class CustodyEntry:
    """One link of a capability's chain of custody: ``from_`` gave it ``to``."""

    to: Address
    from_: Address
    signature: bytes = NO_SIGNATURE


@dataclass(frozen=True, slots=True)
class Capability:
    """A signed bundle of rules granted to a member (A.3.3)."""

    network_id: int
    timestamp: int
    id: int
    rules_raw: bytes = b""
    rule_count: int = 0
    max_custody_chain_length: int = 1
    custody: tuple[CustodyEntry, ...] = ()

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview, offset: int = 0) -> tuple[Capability, int]:
        r = WireReader(data, offset)
        nwid = r.u64("capability network id")
        ts = to_int64(r.u64("capability timestamp"))
        cap_id = r.u32("capability id")
        count = r.u16("capability rule count")
        if count > MAX_CAPABILITY_RULES:
            raise MalformedPacket(f"capability with {count} rules")
        rules_start = r.pos
        _, r.pos = rule_table_end(r.data, rules_start, count, MAX_CAPABILITY_RULES)
        rules = r.data[rules_start : r.pos]
        mccl = r.u8("custody chain length")
        if not 1 <= mccl <= MAX_CUSTODY_CHAIN_LENGTH:
            raise MalformedPacket(f"custody chain length {mccl}")
        chain: list[CustodyEntry] = []
        while True:
            to = r.address("custody recipient")
            if to == 0:
                break
            if len(chain) >= mccl:
                raise MalformedPacket("custody chain longer than its maximum")
            sender = r.address("custody sender")
            chain.append(CustodyEntry(to, sender, read_signature(r)))
        skip_extension(r)
        return cls(nwid, ts, cap_id, rules, count, mccl, tuple(chain)), r.pos

    def _body(self) -> bytes:
        return (
            u64_bytes(self.network_id)
            + u64_bytes(self.timestamp)
            + u32_bytes(self.id)
            + self.rule_count.to_bytes(2, "big")
            + self.rules_raw
            + bytes((self.max_custody_chain_length & 0xFF,))
        )

    def serialize(self) -> bytes:
        out = bytearray(self._body())
        limit = min(self.max_custody_chain_length, MAX_CUSTODY_CHAIN_LENGTH)
        for entry in self.custody[:limit]:
            if entry.to == 0:
                break
            out += (
                address_bytes(entry.to)
                + address_bytes(entry.from_)
                + signature_section(entry.signature)
            )
        out += bytes(5)  # a zero "to" ends the chain
        out += b"\x00\x00"
        return bytes(out)

    def signed_message(self) -> bytes:
        """What every custody signature signs (the chain itself is not covered)."""
        return for_sign(self._body())

    def sign(self, identity: Identity, to: int) -> Capability:
        """Append a custody entry ``identity -> to`` (``Capability::sign``)."""
        limit = min(self.max_custody_chain_length, MAX_CUSTODY_CHAIN_LENGTH)
        if len(self.custody) >= limit or to == 0:
            raise LocalUsageError("custody chain is full (or the recipient is zero)")
        entry = CustodyEntry(Address(to), identity.address, identity.sign(self.signed_message()))
        return replace(self, custody=(*self.custody, entry))

    @property
    def issued_to(self) -> Address:
        """The last recipient in the chain of custody (zero if none)."""
        last = Address(0)
        for entry in self.custody[:MAX_CUSTODY_CHAIN_LENGTH]:
            if entry.to == 0:
                break
            last = entry.to
        return last

    def custody_signers(self) -> list[Address]:
        """Addresses whose identities :meth:`verify` needs, in chain order."""
        return [e.from_ for e in self.custody]

    def verify(
        self, signer: Identity, lookup: Callable[[int], Identity | None] | None = None
    ) -> bool:
        """``Capability::verify`` == 0: the chain starts at the controller, links hold.

        ``signer`` is the controller; identities of later links come from ``lookup``
        (a link whose identity is unknown fails here; upstream would WHOIS it).
        """
        if not 1 <= self.max_custody_chain_length <= MAX_CUSTODY_CHAIN_LENGTH:
            return False
        message = self.signed_message()
        chain = list(self.custody[: self.max_custody_chain_length])
        for c in range(self.max_custody_chain_length):
            entry = chain[c] if c < len(chain) else None
            if c == 0:
                if entry is None or entry.to == 0 or entry.from_ == 0:
                    return False
                if entry.from_ != controller_for(self.network_id):
                    return False
            else:
                if entry is None or entry.to == 0:
                    return True
                if entry.from_ == 0 or entry.from_ != chain[c - 1].to:
                    return False
            identity = signer if entry.from_ == signer.address else None
            if identity is None and lookup is not None:
                identity = lookup(entry.from_)
            if identity is None or identity.address != entry.from_:
                return False
            if not identity.verify(message, entry.signature):
                return False
        return True
