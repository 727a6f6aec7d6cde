"""What the network credentials share (PROTOCOL-NETWORK-SERVICE A.3.1).

All integers are big-endian. Every credential but the COM is signed over its
*for-sign* form ``7f x8 | body without the signature section | u16 0 | 7f x8``; its
wire form ends ``u8 1 | u16 96 | 96-byte signature | u16 extLen | extLen bytes``.
On parse a signature type other than 1 makes the reader skip ``u16 len`` bytes and
keep no signature (an all-zero one, as upstream); type 1 with a length other than
96 is an error; the trailing extension is skipped.

:class:`SignedCredential` is that contract once, for Tag, Revocation and the
Certificate of Ownership: each states only its fields and its :meth:`body`.
Capability (a chain of custody instead of one signature) uses :func:`for_sign`, and
the COM (qualifiers signed bare) :func:`signed_by_controller`.
"""

from __future__ import annotations

from dataclasses import replace
from enum import IntEnum
from typing import TYPE_CHECKING, Self, cast

from ztone.errors import MalformedPacket
from ztone.node.wire.address import Address
from ztone.node.wire.identity import Identity

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

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


def for_sign(body: bytes) -> bytes:
    """The message a credential's signature covers: ``7f x8 | body | u16 0 | 7f x8``."""
    return FOR_SIGN_MARK + body + b"\x00\x00" + FOR_SIGN_MARK


def signed_by_controller(
    network_id: int, signed_by: int, signer: Identity, message: bytes, signature: bytes
) -> bool:
    """``signed_by`` is non-zero and the network's controller, ``signer`` is that
    identity, and ``signature`` over ``message`` is valid."""
    if signed_by == 0 or signed_by != controller_for(network_id):
        return False
    if signer.address != signed_by:
        return False
    return signer.verify(message, signature)


class SignedCredential:
    """A credential with one controller signature (Tag, COO, Revocation; A.3.4-A.3.6).

    Mixed into a frozen dataclass that has the fields ``network_id``, ``signed_by``
    and ``signature``; the subclass writes :meth:`body`, its wire form up to the
    signature section (the signer's address included). Wire form:
    ``body | u8 1 | u16 96 | signature | u16 0``.
    """

    __slots__ = ()

    network_id: int
    signed_by: Address
    signature: bytes

    def body(self) -> bytes:
        """The credential's own fields, as on the wire, up to the signature section."""
        raise NotImplementedError

    def serialize(self) -> bytes:
        return self.body() + signature_section(self.signature) + b"\x00\x00"

    def signed_message(self) -> bytes:
        return for_sign(self.body())

    def sign(self, identity: Identity) -> Self:
        """A copy signed by ``identity`` (its address becomes ``signed_by``)."""
        this = cast("DataclassInstance", self)  # every subclass is a frozen dataclass
        unsigned = cast(Self, replace(this, signed_by=identity.address))
        signature = identity.sign(unsigned.signed_message())
        return cast(Self, replace(this, signed_by=identity.address, signature=signature))

    def verify(self, signer: Identity) -> bool:
        """Signed by the network's controller (``signer``), signature valid."""
        return signed_by_controller(
            self.network_id, self.signed_by, signer, self.signed_message(), self.signature
        )
