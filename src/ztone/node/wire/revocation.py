"""The Revocation credential (PROTOCOL-NETWORK-SERVICE A.3.6, PROTOCOL-CORE §6.22.5).

Wire form (signed over ``7f x8 | bytes 0..50 | u16 0 | 7f x8``)::

    <[4] reserved 0> <[4] revocation id> <[8] network id> <[4] reserved 0>
    <[4] revoked credential id> <[8] threshold (timestamp)> <[8] flags>
    <[5] target> <[5] signed by> <[1] revoked credential type>
    <[1] signature type 1> <[2] 96> <[96] signature> <[2] extension length> <...>

Flag bit 0: fast propagate (the receiver passes it on to the network's members).
"""

from __future__ import annotations

from dataclasses import dataclass

from ztone.node.wire.address import Address
from ztone.node.wire.credential_base import (
    NO_SIGNATURE,
    NULL_ADDRESS,
    REVOCATION_FLAG_FAST_PROPAGATE,
    SignedCredential,
    WireReader,
    address_bytes,
    read_signature,
    skip_extension,
    to_int64,
    u32_bytes,
    u64_bytes,
)


@dataclass(frozen=True, slots=True)
class Revocation(SignedCredential):
    """Revokes a member's credentials of one type up to a timestamp (A.3.6)."""

    id: int
    network_id: int
    credential_id: int
    threshold: int
    flags: int
    target: Address
    credential_type: int
    signed_by: Address = NULL_ADDRESS
    signature: bytes = NO_SIGNATURE

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview, offset: int = 0) -> tuple[Revocation, int]:
        r = WireReader(data, offset)
        r.skip(4, "revocation reserved")
        rev_id = r.u32("revocation id")
        nwid = r.u64("revocation network id")
        r.skip(4, "revocation reserved")
        credential_id = r.u32("revoked credential id")
        threshold = to_int64(r.u64("revocation threshold"))
        flags = r.u64("revocation flags")
        target = r.address("revocation target")
        signed_by = r.address("revocation signer")
        kind = r.u8("revoked credential type")
        signature = read_signature(r)
        skip_extension(r)
        rev = cls(rev_id, nwid, credential_id, threshold, flags, target, kind, signed_by, signature)
        return rev, r.pos

    def body(self) -> bytes:
        return (
            bytes(4)
            + u32_bytes(self.id)
            + u64_bytes(self.network_id)
            + bytes(4)
            + u32_bytes(self.credential_id)
            + u64_bytes(self.threshold)
            + u64_bytes(self.flags)
            + address_bytes(self.target)
            + address_bytes(self.signed_by)
            + bytes((self.credential_type & 0xFF,))
        )

    @property
    def signer(self) -> Address:
        return self.signed_by

    @property
    def fast_propagate(self) -> bool:
        return bool(self.flags & REVOCATION_FLAG_FAST_PROPAGATE)
