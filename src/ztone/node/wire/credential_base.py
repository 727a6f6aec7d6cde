"""Wire helpers shared by the network credentials (PROTOCOL-NETWORK-SERVICE A.3.1).

All integers are big-endian. Every credential but the COM is signed over its
*for-sign* form ``7f x8 | body without the signature section | u16 0 | 7f x8``; its
wire form ends ``u8 1 | u16 96 | 96-byte signature | u16 extLen | extLen bytes``.
On parse a signature type other than 1 makes the reader skip ``u16 len`` bytes and
keep no signature (an all-zero one, as upstream); type 1 with a length other than
96 is an error; the trailing extension is skipped.
"""

from __future__ import annotations

from enum import IntEnum

from ztone.errors import MalformedPacket
from ztone.node.wire.address import Address

SIGNATURE_LENGTH = 96
SIGNATURE_TYPE_C25519 = 1
FOR_SIGN_MARK = b"\x7f" * 8
MAX_COO_THINGS = 16
COO_THING_VALUE_SIZE = 16
REVOCATION_FLAG_FAST_PROPAGATE = 0x1
NO_SIGNATURE = bytes(SIGNATURE_LENGTH)
NULL_ADDRESS = Address(0)
_U64 = (1 << 64) - 1


class CredentialType(IntEnum):
    """``Credential::Type`` (A.3.1), used in revocations."""

    NULL = 0
    COM = 1
    CAPABILITY = 2
    TAG = 3
    COO = 4
    REVOCATION = 6


class CooThing(IntEnum):
    """Thing types of a Certificate of Ownership (A.3.5)."""

    NULL = 0
    MAC = 1
    IPV4 = 2
    IPV6 = 3


def controller_for(network_id: int) -> int:
    """The controller's address of a network (its top 40 bits)."""
    return (network_id >> 24) & 0xFFFFFFFFFF


def to_int64(value: int) -> int:
    """Reinterpret a 64-bit unsigned value as signed (a C ``int64_t`` cast)."""
    value &= _U64
    return value - (1 << 64) if value >> 63 else value


class WireReader:
    """Bounds-checked big-endian reads; every overrun is :class:`MalformedPacket`."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes | bytearray | memoryview, offset: int = 0) -> None:
        if offset < 0:
            raise MalformedPacket("negative offset")
        self.data = data if isinstance(data, bytes) else bytes(data)
        self.pos = offset

    def take(self, n: int, what: str = "field") -> bytes:
        end = self.pos + n
        if n < 0 or end > len(self.data):
            raise MalformedPacket(f"truncated {what}")
        out = self.data[self.pos : end]
        self.pos = end
        return out

    def uint(self, n: int, what: str = "integer") -> int:
        return int.from_bytes(self.take(n, what), "big")

    def u8(self, what: str = "byte") -> int:
        return self.uint(1, what)

    def u16(self, what: str = "u16") -> int:
        return self.uint(2, what)

    def u32(self, what: str = "u32") -> int:
        return self.uint(4, what)

    def u64(self, what: str = "u64") -> int:
        return self.uint(8, what)

    def address(self, what: str = "address") -> Address:
        return Address(self.uint(5, what))

    def skip(self, n: int, what: str = "field") -> None:
        self.take(n, what)

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos


def read_signature(r: WireReader) -> bytes:
    """``u8 type | u16 len | sig``; returns 96 bytes (zeros if the type is not 1)."""
    sig_type = r.u8("signature type")
    length = r.u16("signature length")
    if sig_type == SIGNATURE_TYPE_C25519:
        if length != SIGNATURE_LENGTH:
            raise MalformedPacket(f"signature length {length} (expected 96)")
        return r.take(SIGNATURE_LENGTH, "signature")
    r.skip(length, "unknown signature")
    return NO_SIGNATURE


def signature_section(signature: bytes) -> bytes:
    sig = signature if len(signature) == SIGNATURE_LENGTH else NO_SIGNATURE
    return bytes((SIGNATURE_TYPE_C25519,)) + SIGNATURE_LENGTH.to_bytes(2, "big") + sig


def skip_extension(r: WireReader) -> None:
    """The trailing ``u16 length`` of future fields and those bytes."""
    r.skip(r.u16("extension length"), "extension fields")


def u64_bytes(v: int) -> bytes:
    return (v & _U64).to_bytes(8, "big")


def u32_bytes(v: int) -> bytes:
    return (v & 0xFFFFFFFF).to_bytes(4, "big")


def address_bytes(v: int) -> bytes:
    return (v & 0xFFFFFFFFFF).to_bytes(5, "big")
