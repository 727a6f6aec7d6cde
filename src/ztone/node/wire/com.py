"""The Certificate of Membership (PROTOCOL-NETWORK-SERVICE A.3.2, PROTOCOL-CORE §6.22.1).

Wire form::

    <[1] type = 1> <[2] qualifier count N (<= 8)>
    N x <[8] id> <[8] value> <[8] max delta>      ids non-decreasing
    <[5] signer address>                           zero: unsigned
    <[96] signature>                               only if signed

The signature covers the qualifier triples alone (no type, count or signer). A
controller issues seven qualifiers: 0 timestamp (its credential window as max delta),
1 network id (delta 0), 2 member address and 3..6 the SHA-384 of the member's
``address(5) | public key(64)`` as four big-endian words (delta ``2^64 - 1``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

from ztone.errors import MalformedPacket
from ztone.node.wire.address import Address
from ztone.node.wire.credential_base import (
    NO_SIGNATURE,
    NULL_ADDRESS,
    WireReader,
    signed_by_controller,
    to_int64,
)
from ztone.node.wire.identity import Identity

COM_TYPE = 1
MAX_QUALIFIERS = 8
QUALIFIER_TIMESTAMP = 0
QUALIFIER_NETWORK_ID = 1
QUALIFIER_ISSUED_TO = 2
QUALIFIER_IDENTITY_HASH = (3, 4, 5, 6)
_ANY = (1 << 64) - 1


def identity_hash_words(identity: Identity) -> tuple[int, int, int, int]:
    """``Identity::publicKeyHash`` as the four COM words: SHA-384 bytes 0..32, 8 per word."""
    digest = hashlib.sha384(identity.address.to_bytes5() + identity.public).digest()
    w = [int.from_bytes(digest[8 * k : 8 * k + 8], "big") for k in range(4)]
    return w[0], w[1], w[2], w[3]


@dataclass(frozen=True, slots=True)
class Qualifier:
    id: int
    value: int
    max_delta: int


@dataclass(frozen=True, slots=True)
class CertificateOfMembership:
    """A COM: qualifier triples and the controller's signature. Its credential id is 0."""

    qualifiers: tuple[Qualifier, ...] = ()
    signed_by: Address = NULL_ADDRESS
    signature: bytes = NO_SIGNATURE

    @classmethod
    def make(
        cls, timestamp: int, max_delta: int, network_id: int, issued_to: Identity
    ) -> CertificateOfMembership:
        """The unsigned COM a controller issues (``CertificateOfMembership(ts, ...)``)."""
        words = identity_hash_words(issued_to)
        qualifiers = [
            Qualifier(QUALIFIER_TIMESTAMP, timestamp & _ANY, max_delta & _ANY),
            Qualifier(QUALIFIER_NETWORK_ID, network_id, 0),
            Qualifier(QUALIFIER_ISSUED_TO, int(issued_to.address), _ANY),
        ]
        qualifiers += [Qualifier(3 + k, words[k], _ANY) for k in range(4)]
        return cls(tuple(qualifiers))

    @classmethod
    def parse(
        cls, data: bytes | bytearray | memoryview, offset: int = 0
    ) -> tuple[CertificateOfMembership, int]:
        r = WireReader(data, offset)
        if r.u8("COM type") != COM_TYPE:
            raise MalformedPacket("COM type is not 1")
        count = r.u16("COM qualifier count")
        qualifiers: list[Qualifier] = []
        last_id = 0
        for _ in range(count):
            qid = r.u64("COM qualifier id")
            if qid < last_id:
                raise MalformedPacket("COM qualifier ids out of order")
            last_id = qid
            if len(qualifiers) >= MAX_QUALIFIERS:
                raise MalformedPacket("COM with more than 8 qualifiers")
            qualifiers.append(Qualifier(qid, r.u64("COM qualifier"), r.u64("COM qualifier")))
        signed_by = r.address("COM signer")
        signature = NO_SIGNATURE
        if signed_by:
            signature = r.take(96, "COM signature")
        return cls(tuple(qualifiers), signed_by, signature), r.pos

    def serialize(self) -> bytes:
        out = bytearray((COM_TYPE,))
        out += len(self.qualifiers).to_bytes(2, "big")
        out += self.signed_message()
        out += self.signed_by.to_bytes5()
        if self.signed_by:
            out += self.signature
        return bytes(out)

    def signed_message(self) -> bytes:
        """The qualifier triples as big-endian u64s, nothing else."""
        return b"".join(
            (q.id & _ANY).to_bytes(8, "big")
            + (q.value & _ANY).to_bytes(8, "big")
            + (q.max_delta & _ANY).to_bytes(8, "big")
            for q in self.qualifiers
        )

    def sign(self, identity: Identity) -> CertificateOfMembership:
        return replace(
            self, signed_by=identity.address, signature=identity.sign(self.signed_message())
        )

    def verify(self, signer: Identity) -> bool:
        """Signed, by the network's controller (``signer``), with at most 8 qualifiers."""
        if len(self.qualifiers) > MAX_QUALIFIERS:
            return False
        return signed_by_controller(
            self.network_id, self.signed_by, signer, self.signed_message(), self.signature
        )

    def _value(self, qid: int) -> int | None:
        for q in self.qualifiers:
            if q.id == qid:
                return q.value
        return None

    @property
    def is_empty(self) -> bool:
        """No qualifiers (upstream's ``operator bool`` is false)."""
        return not self.qualifiers

    @property
    def is_signed(self) -> bool:
        return self.signed_by != 0

    @property
    def timestamp(self) -> int:
        return to_int64(self._value(QUALIFIER_TIMESTAMP) or 0)

    @property
    def network_id(self) -> int:
        return self._value(QUALIFIER_NETWORK_ID) or 0

    @property
    def issued_to(self) -> Address:
        return Address((self._value(QUALIFIER_ISSUED_TO) or 0) & 0xFFFFFFFFFF)

    @property
    def id(self) -> int:
        return 0

    def agrees_with(self, other: CertificateOfMembership, other_identity: Identity) -> bool:
        """``agreesWith``: may I (``self``) talk to the holder of ``other``?

        Every qualifier of mine must be in ``other`` within *my* max delta; if mine
        carries identity-hash words, ``other``'s must match ``other_identity``.
        """
        if not self.qualifiers or not other.qualifiers:
            return False
        theirs = {q.id: q.value for q in other.qualifiers}  # last duplicate wins, as std::map
        full_identity = False
        for q in self.qualifiers:
            if 3 <= q.id <= 6:
                full_identity = True
            value = theirs.get(q.id)
            if value is None or abs(q.value - value) > q.max_delta:
                return False
        if full_identity:
            words = identity_hash_words(other_identity)
            if any(theirs.get(3 + k) != words[k] for k in range(4)):
                return False
        return True
