"""The NETWORK_CREDENTIALS payload (PROTOCOL-CORE §6.11; PROTOCOL-NETWORK-SERVICE A.3).

Defined here: :class:`NetworkCredentials` and :func:`pack_credentials`. The five
credentials it carries live one per module (:mod:`.com`, :mod:`.capability`,
:mod:`.tag`, :mod:`.revocation`, :mod:`.coo`, their shared contract in
:mod:`.credential_base`) and are re-exported here for the verb's callers.

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

from collections.abc import Sequence
from dataclasses import dataclass

from ztone.node.wire.capability import (
    MAX_CAPABILITY_RULES,
    MAX_CUSTODY_CHAIN_LENGTH,
    Capability,
    CustodyEntry,
)
from ztone.node.wire.com import CertificateOfMembership, Qualifier, identity_hash_words
from ztone.node.wire.coo import CertificateOfOwnership
from ztone.node.wire.credential_base import CooThing, CredentialType, WireReader, controller_for
from ztone.node.wire.revocation import Revocation
from ztone.node.wire.tag import Tag

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
