"""The Tag credential (PROTOCOL-NETWORK-SERVICE A.3.4, PROTOCOL-CORE §6.22.3).

Wire form (signed over ``7f x8 | bytes 0..33 | u16 0 | 7f x8``)::

    <[8] network id> <[8] timestamp> <[4] tag id> <[4] value>
    <[5] issued to> <[5] signed by>
    <[1] signature type 1> <[2] 96> <[96] signature> <[2] extension length> <...>
"""

from __future__ import annotations

from dataclasses import dataclass

from ztone.node.wire.address import Address
from ztone.node.wire.credential_base import (
    NO_SIGNATURE,
    NULL_ADDRESS,
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
class Tag(SignedCredential):
    """A signed ``id -> u32 value`` attribute of a member (A.3.4)."""

    network_id: int
    timestamp: int
    id: int
    value: int
    issued_to: Address
    signed_by: Address = NULL_ADDRESS
    signature: bytes = NO_SIGNATURE

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview, offset: int = 0) -> tuple[Tag, int]:
        r = WireReader(data, offset)
        nwid = r.u64("tag network id")
        ts = to_int64(r.u64("tag timestamp"))
        tag_id = r.u32("tag id")
        value = r.u32("tag value")
        issued_to = r.address("tag recipient")
        signed_by = r.address("tag signer")
        signature = read_signature(r)
        skip_extension(r)
        return cls(nwid, ts, tag_id, value, issued_to, signed_by, signature), r.pos

    def body(self) -> bytes:
        return (
            u64_bytes(self.network_id)
            + u64_bytes(self.timestamp)
            + u32_bytes(self.id)
            + u32_bytes(self.value)
            + address_bytes(self.issued_to)
            + address_bytes(self.signed_by)
        )
