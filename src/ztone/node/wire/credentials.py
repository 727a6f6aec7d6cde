"""Network credentials (PROTOCOL-NETWORK-SERVICE A.3, PROTOCOL-CORE §6.11, §6.22).

Defined here: :class:`Tag`, :class:`CertificateOfOwnership`, :class:`Revocation`
and the NETWORK_CREDENTIALS (verb 0x0a) payload :class:`NetworkCredentials` with
:func:`pack_credentials`. Re-exported so that this module is the one place to
import credentials from: :class:`CertificateOfMembership` (:mod:`.com`),
:class:`Capability` (:mod:`.capability`), :class:`CredentialType` and the wire
helpers (:mod:`.credential_wire`).

Every credential is a frozen dataclass with ``parse(data, offset) -> (obj, end)``
(raising :class:`MalformedPacket` on any truncation or invalid field),
``serialize()``, ``signed_message()``, ``sign(identity) -> signed copy`` and
``verify(signer_identity) -> bool`` (the signer must be the network's controller,
``nwid >> 24``, and the signature valid).

NETWORK_CREDENTIALS payload::

    [COM]*          zero or more COMs, each starting with its type byte 0x01
    u8 0x00         end of the COM list
    u16 nCap  · nCap × Capability
    u16 nTag  · nTag × Tag
    u16 nRev  · nRev × Revocation
    u16 nCOO  · nCOO × CertificateOfOwnership

Everything after the COM list may be missing (older senders stop after it), and
each later section may be missing if the payload ends before its count. A COM list
running to the end of the payload without its terminator is accepted, as upstream.

:func:`pack_credentials` splits credentials over several payloads the way
``Membership::pushCredentials`` does: the COM goes in the first packet only, every
packet carries all five sections, and an item is added only while
``packet size + sizeof(credential) + 16 < 10024``, the packet size counting the
28-byte header and ``sizeof`` being the in-memory size of upstream's C++ object on
x86-64 (so the split points are upstream's, not tight).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from ztone.node.wire.address import Address
from ztone.node.wire.capability import (
    MAX_CAPABILITY_RULES,
    MAX_CUSTODY_CHAIN_LENGTH,
    Capability,
    CustodyEntry,
)
from ztone.node.wire.com import CertificateOfMembership, Qualifier, identity_hash_words
from ztone.node.wire.credential_base import (
    COO_THING_VALUE_SIZE,
    FOR_SIGN_MARK,
    MAX_COO_THINGS,
    NO_SIGNATURE,
    NULL_ADDRESS,
    REVOCATION_FLAG_FAST_PROPAGATE,
    CooThing,
    CredentialType,
    WireReader,
    address_bytes,
    controller_for,
    read_signature,
    signature_section,
    skip_extension,
    to_int64,
    u32_bytes,
    u64_bytes,
)
from ztone.node.wire.identity import Identity
from ztone.node.wire.inetaddress import InetAddress

__all__ = [
    "MAX_CAPABILITY_RULES",
    "MAX_CUSTODY_CHAIN_LENGTH",
    "Capability",
    "CertificateOfMembership",
    "CertificateOfOwnership",
    "CooThing",
    "CredentialType",
    "CustodyEntry",
    "NetworkCredentials",
    "Qualifier",
    "Revocation",
    "Tag",
    "controller_for",
    "identity_hash_words",
    "pack_credentials",
]


# --- Tag -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tag:
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

    def _body(self) -> bytes:
        return (
            u64_bytes(self.network_id)
            + u64_bytes(self.timestamp)
            + u32_bytes(self.id)
            + u32_bytes(self.value)
            + address_bytes(self.issued_to)
            + address_bytes(self.signed_by)
        )

    def serialize(self) -> bytes:
        return self._body() + signature_section(self.signature) + b"\x00\x00"

    def signed_message(self) -> bytes:
        return FOR_SIGN_MARK + self._body() + b"\x00\x00" + FOR_SIGN_MARK

    def sign(self, identity: Identity) -> Tag:
        unsigned = replace(self, signed_by=identity.address)
        return replace(unsigned, signature=identity.sign(unsigned.signed_message()))

    def verify(self, signer: Identity) -> bool:
        return _verify_simple(self.network_id, self.signed_by, signer, self)


class _SignedCredential(Protocol):
    @property
    def signature(self) -> bytes: ...

    def signed_message(self) -> bytes: ...


def _verify_simple(
    network_id: int, signed_by: int, signer: Identity, cred: _SignedCredential
) -> bool:
    """Signer non-zero, the network's controller, and the signature valid."""
    if signed_by == 0 or signed_by != controller_for(network_id):
        return False
    if signer.address != signed_by:
        return False
    return signer.verify(cred.signed_message(), cred.signature)


# --- Certificate of Ownership ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CertificateOfOwnership:
    """Proof that a member owns IPs or MACs (A.3.5). ``things``: (type, 16 bytes)."""

    network_id: int
    timestamp: int
    id: int
    issued_to: Address
    things: tuple[tuple[int, bytes], ...] = ()
    flags: int = 0
    signed_by: Address = NULL_ADDRESS
    signature: bytes = NO_SIGNATURE

    @classmethod
    def parse(
        cls, data: bytes | bytearray | memoryview, offset: int = 0
    ) -> tuple[CertificateOfOwnership, int]:
        r = WireReader(data, offset)
        nwid = r.u64("COO network id")
        ts = to_int64(r.u64("COO timestamp"))
        flags = r.u64("COO flags")
        coo_id = r.u32("COO id")
        count = r.u16("COO thing count")
        things: list[tuple[int, bytes]] = []
        # Quirk (A.3.5): things beyond 16 are neither kept nor consumed.
        for _ in range(min(count, MAX_COO_THINGS)):
            kind = r.u8("COO thing type")
            things.append((kind, r.take(COO_THING_VALUE_SIZE, "COO thing")))
        issued_to = r.address("COO recipient")
        signed_by = r.address("COO signer")
        signature = read_signature(r)
        skip_extension(r)
        coo = cls(nwid, ts, coo_id, issued_to, tuple(things), flags, signed_by, signature)
        return coo, r.pos

    def _body(self) -> bytes:
        out = bytearray(
            u64_bytes(self.network_id)
            + u64_bytes(self.timestamp)
            + u64_bytes(self.flags)
            + u32_bytes(self.id)
            + len(self.things).to_bytes(2, "big")
        )
        for kind, value in self.things:
            out.append(kind & 0xFF)
            out += value[:COO_THING_VALUE_SIZE].ljust(COO_THING_VALUE_SIZE, b"\x00")
        out += address_bytes(self.issued_to) + address_bytes(self.signed_by)
        return bytes(out)

    def serialize(self) -> bytes:
        return self._body() + signature_section(self.signature) + b"\x00\x00"

    def signed_message(self) -> bytes:
        return FOR_SIGN_MARK + self._body() + b"\x00\x00" + FOR_SIGN_MARK

    def sign(self, identity: Identity) -> CertificateOfOwnership:
        unsigned = replace(self, signed_by=identity.address)
        return replace(unsigned, signature=identity.sign(unsigned.signed_message()))

    def verify(self, signer: Identity) -> bool:
        return _verify_simple(self.network_id, self.signed_by, signer, self)

    def _with(self, kind: int, value: bytes) -> CertificateOfOwnership:
        if len(self.things) >= MAX_COO_THINGS:
            return self  # silently full, as upstream's addThing
        thing = (kind, value.ljust(COO_THING_VALUE_SIZE, b"\x00"))
        return replace(self, things=(*self.things, thing))

    def add_ip(
        self, ip: InetAddress | ipaddress.IPv4Address | ipaddress.IPv6Address
    ) -> CertificateOfOwnership:
        """A copy with one more IP thing (unchanged when already 16 things)."""
        addr = ip.ip if isinstance(ip, InetAddress) else ip
        kind = CooThing.IPV4 if addr.version == 4 else CooThing.IPV6
        return self._with(kind, addr.packed)

    def add_mac(self, mac: int) -> CertificateOfOwnership:
        return self._with(CooThing.MAC, (mac & 0xFFFFFFFFFFFF).to_bytes(6, "big"))

    def _owns(self, kind: int, value: bytes) -> bool:
        return any(t == kind and v[: len(value)] == value for t, v in self.things)

    def owns_ip(self, ip: InetAddress | ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        addr = ip.ip if isinstance(ip, InetAddress) else ip
        return self._owns(CooThing.IPV4 if addr.version == 4 else CooThing.IPV6, addr.packed)

    def owns_mac(self, mac: int) -> bool:
        return self._owns(CooThing.MAC, (mac & 0xFFFFFFFFFFFF).to_bytes(6, "big"))


# --- Revocation ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Revocation:
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

    def _body(self) -> bytes:
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

    def serialize(self) -> bytes:
        return self._body() + signature_section(self.signature) + b"\x00\x00"

    def signed_message(self) -> bytes:
        return FOR_SIGN_MARK + self._body() + b"\x00\x00" + FOR_SIGN_MARK

    def sign(self, identity: Identity) -> Revocation:
        unsigned = replace(self, signed_by=identity.address)
        return replace(unsigned, signature=identity.sign(unsigned.signed_message()))

    def verify(self, signer: Identity) -> bool:
        return _verify_simple(self.network_id, self.signed_by, signer, self)

    @property
    def signer(self) -> Address:
        return self.signed_by

    @property
    def fast_propagate(self) -> bool:
        return bool(self.flags & REVOCATION_FLAG_FAST_PROPAGATE)


# --- NETWORK_CREDENTIALS payload ---

MAX_PACKET_LENGTH = 10024
PACKET_HEADER_LENGTH = 28  # ZT_PACKET_IDX_PAYLOAD
# sizeof() of the C++ credential objects on x86-64 (hand-computed struct layouts:
# Capability = 32 + 64 rules x 32 + 7 custody x 112; Tag = 40 + 96; COO = 320 + 96;
# Revocation = 52 + 96, padded to 8).
SIZEOF_CAPABILITY = 2864
SIZEOF_TAG = 136
SIZEOF_COO = 416
SIZEOF_REVOCATION = 152
_SLACK = 16

_Item = Capability | Tag | Revocation | CertificateOfOwnership


@dataclass(frozen=True, slots=True)
class NetworkCredentials:
    """The credentials of one NETWORK_CREDENTIALS payload (lists are kept as tuples)."""

    coms: Sequence[CertificateOfMembership] = ()
    capabilities: Sequence[Capability] = ()
    tags: Sequence[Tag] = ()
    revocations: Sequence[Revocation] = ()
    coos: Sequence[CertificateOfOwnership] = ()

    def __post_init__(self) -> None:
        for name in ("coms", "capabilities", "tags", "revocations", "coos"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    def split(self, max_packet_length: int = MAX_PACKET_LENGTH) -> list[bytes]:
        """These credentials as one or more payloads (:func:`pack_credentials`)."""
        return pack_credentials(
            self.coms,
            self.capabilities,
            self.tags,
            self.coos,
            self.revocations,
            max_packet_length=max_packet_length,
        )

    def serialize(self) -> bytes:
        out = bytearray()
        for com in self.coms:
            out += com.serialize()
        out.append(0)
        for items in (self.capabilities, self.tags, self.revocations, self.coos):
            out += len(items).to_bytes(2, "big")
            for item in items:
                out += item.serialize()
        return bytes(out)

    @classmethod
    def parse(cls, payload: bytes | bytearray | memoryview, offset: int = 0) -> NetworkCredentials:
        """Decode the payload starting at ``offset`` (bytes after the last section are ignored)."""
        r = WireReader(payload, offset)
        data = r.data
        end = len(data)
        coms: list[CertificateOfMembership] = []
        while r.pos < end and data[r.pos] != 0:
            com, r.pos = CertificateOfMembership.parse(data, r.pos)
            coms.append(com)
        r.pos += 1  # the terminator, if present
        caps: list[Capability] = []
        tags: list[Tag] = []
        revs: list[Revocation] = []
        coos: list[CertificateOfOwnership] = []
        if r.pos < end:
            for _ in range(r.u16("capability count")):
                cap, r.pos = Capability.parse(data, r.pos)
                caps.append(cap)
            if r.pos < end:
                for _ in range(r.u16("tag count")):
                    tag, r.pos = Tag.parse(data, r.pos)
                    tags.append(tag)
                if r.pos < end:
                    for _ in range(r.u16("revocation count")):
                        rev, r.pos = Revocation.parse(data, r.pos)
                        revs.append(rev)
                    if r.pos < end:
                        for _ in range(r.u16("COO count")):
                            coo, r.pos = CertificateOfOwnership.parse(data, r.pos)
                            coos.append(coo)
        return cls(tuple(coms), tuple(caps), tuple(tags), tuple(revs), tuple(coos))


def pack_credentials(
    coms: Sequence[CertificateOfMembership] | CertificateOfMembership | None,
    capabilities: Sequence[Capability] = (),
    tags: Sequence[Tag] = (),
    coos: Sequence[CertificateOfOwnership] = (),
    revocations: Sequence[Revocation] = (),
    *,
    max_packet_length: int = MAX_PACKET_LENGTH,
) -> list[bytes]:
    """Payloads of the NETWORK_CREDENTIALS packets that push these credentials.

    Mirrors ``Membership::pushCredentials`` (which never sends revocations; here they
    fill their section in the same way). No payload at all when there is nothing to
    send. Every payload makes progress, so an item bigger than the budget still goes
    out alone.
    """
    if isinstance(coms, CertificateOfMembership):
        coms = [coms]
    first = [c for c in coms or () if not c.is_empty]
    send_com = bool(first)
    sections: list[tuple[Sequence[_Item], int]] = [
        (capabilities, SIZEOF_CAPABILITY),
        (tags, SIZEOF_TAG),
        (revocations, SIZEOF_REVOCATION),
        (coos, SIZEOF_COO),
    ]
    pointers = [0, 0, 0, 0]
    payloads: list[bytes] = []
    while send_com or any(pointers[k] < len(s[0]) for k, s in enumerate(sections)):
        out = bytearray()
        progressed = False
        if send_com:
            for com in first:
                out += com.serialize()
            send_com = False
            progressed = True
        out.append(0)
        for k, (items, reserve) in enumerate(sections):
            count_at = len(out)
            out += b"\x00\x00"
            n = 0
            while pointers[k] < len(items) and (
                PACKET_HEADER_LENGTH + len(out) + reserve + _SLACK < max_packet_length
                or not progressed
            ):
                out += items[pointers[k]].serialize()
                pointers[k] += 1
                n += 1
                progressed = True
            out[count_at : count_at + 2] = n.to_bytes(2, "big")
        payloads.append(bytes(out))
    return payloads
